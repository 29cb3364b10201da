"""Structure learning: DiBS posteriors over DAGs (Lorch et al., NeurIPS 2021)."""
