"""deepbn: Bayesian networks with continuous variables and neural conditionals.

The public API, flat: ``from deepbn import learn_structure, sample_posterior, fit``
(README, section Library, lists every name). Everything beyond the network core is
imported on first use, so ``import deepbn`` (and the ``deepbn`` command's ``--help``)
loads neither JAX nor any other heavy package.
"""

from importlib import import_module

from deepbn.errors import DeepBNError

__version__ = "0.1.0"

_LAZY = {
    # the network
    "BayesNet": "deepbn.bn",
    "load_network": "deepbn.examples:load",  # module:attribute where the names differ
    "read_network": "deepbn.io.networks",
    "write_network": "deepbn.io.networks",
    # data tables and data sets
    "read_table": "deepbn.io.tables",
    "write_table": "deepbn.io.tables",
    "load_sachs": "deepbn.io.datasets",
    "load_images": "deepbn.io.datasets",
    # structure learning
    "DiBSConfig": "deepbn.structure.config",
    "Knowledge": "deepbn.structure.knowledge",
    "learn_structure": "deepbn.structure.learn",
    "GraphPosterior": "deepbn.structure.posterior",
    "expected_shd": "deepbn.structure.metrics",
    "edge_auroc": "deepbn.structure.metrics",
    "exact_edge_probs": "deepbn.structure.exact",
    "cpdag": "deepbn.structure.equivalence",
    # inference and learning
    "Reparam": "deepbn.reparam",
    "sample_posterior": "deepbn.inference.hmc",
    "to_arviz": "deepbn.inference.arviz_export",
    "FitConfig": "deepbn.inference.config",
    "fit": "deepbn.inference.mcmc_em",
    # neural pieces, flows and the VAEs
    "MLP": "deepbn.nn",
    "FlowDensity": "deepbn.flows",
    "GraphicalResidualFlow": "deepbn.flows",
    "GraphVAEConfig": "deepbn.graph_vae.model",
    "SirenSpec": "deepbn.siren.model",
    # one way to run, one way to write results
    "run": "deepbn.run",
    "ResultsFolder": "deepbn.results",
}


def __getattr__(name: str):
    if name in _LAZY:
        module_name, _, attribute = _LAZY[name].partition(":")
        module = import_module(module_name)
        if module.__name__.endswith("." + name):
            return module
        return getattr(module, attribute or name)
    raise AttributeError(f"module 'deepbn' has no attribute '{name}'")


__all__ = ["DeepBNError", *_LAZY]
