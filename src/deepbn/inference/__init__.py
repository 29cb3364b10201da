"""Posterior inference and parameter learning in deep and recurrent Bayes nets."""
