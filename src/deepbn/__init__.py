"""deepbn: Bayesian networks with continuous variables and neural conditionals."""

from deepbn.bn import BayesNet
from deepbn.bnfile import read_network, write_network
from deepbn.errors import DeepBNError
from deepbn.examples import load as load_network

__version__ = "0.1.0"

__all__ = ["BayesNet", "DeepBNError", "load_network", "read_network", "write_network"]
