"""SIReN-VAE: a VAE whose prior, decoder and encoder respect a known Bayesian network
(:mod:`.model`), and training a variant on a data table (:mod:`.experiment`)."""
