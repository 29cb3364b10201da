"""The gated latent-DAG VAE (Graph VAE) and its fixed-gate special cases (VAE, Ladder VAE,
fully-connected VAE): the model (:mod:`.model`), its test-set evaluation
(:mod:`.evaluate`) and training into a results folder (:mod:`.experiment`)."""
