"""Variational autoencoders whose latent space is a Bayesian network."""
