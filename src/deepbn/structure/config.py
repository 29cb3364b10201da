"""Settings of structure learning, checked without JAX (so that a mistyped option is an
error at once): :class:`DiBSConfig`, :class:`OrderMCMCOptions` and the data scaling."""

from __future__ import annotations

from typing import NamedTuple

from deepbn.errors import UsageError, require_choice, require_count, require_positive
from deepbn.io.tables import SCALINGS

GRAPH_PRIORS = ("er", "sf")  # :mod:`deepbn.structure.priors`
MODELS = ("bge", "linear", "mlp")
SAMPLERS = ("order", "dibs")  # discover's: order MCMC (BGe) or DiBS

# order MCMC (:mod:`deepbn.structure.order_mcmc`, :mod:`deepbn.structure.search_space`)
MAX_CANDIDATES = 20  # the table of α_j holds 2^C numbers per node
DEFAULT_CANDIDATES = 16
DEFAULT_MAX_PARENTS = 5  # above EXACT_BOUND variables
EXACT_BOUND = 20  # up to here order MCMC bounds parents only by the candidates, as --exact
DEFAULT_CHAINS = 16
DEFAULT_TEMPERATURES = 8
DEFAULT_UNTIL_RHAT = 1.05
GROW_ROUNDS = 2  # search-space growths before the final run, at most
STEPS_PER_NODE = 2000  # default budget: steps per chain = this x d, at least MIN_STEPS
MIN_STEPS = 20_000


def default_order_steps(d: int) -> int:
    """The default budget of order MCMC steps per chain for d variables."""
    return max(MIN_STEPS, STEPS_PER_NODE * d)


class OrderMCMCOptions(NamedTuple):
    """What a user sets of order MCMC run as a sampler of its own (``discover --sampler
    order``); ``None`` fields are resolved from d by :meth:`resolved`."""

    steps: int | None = None  # the budget per chain; None: default_order_steps(d)
    chains: int = DEFAULT_CHAINS
    temperatures: int = DEFAULT_TEMPERATURES
    until_rhat: float | None = DEFAULT_UNTIL_RHAT  # None: run the whole budget
    candidates: int = DEFAULT_CANDIDATES
    max_parents: int | None = None  # None: up to EXACT_BOUND variables d - 1, else 5
    grow_rounds: int = GROW_ROUNDS

    def check(self) -> OrderMCMCOptions:
        if self.steps is not None:
            require_count("the number of order MCMC steps", self.steps)
        require_count("the number of chains", self.chains)
        require_count("the number of temperatures", self.temperatures)
        require_count("the search-space growth rounds", self.grow_rounds, minimum=0)
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise UsageError(f"the number of candidate parents must be 1 to {MAX_CANDIDATES}, "
                             f"not {self.candidates}")
        if self.max_parents is not None:
            require_count("the maximum number of parents", self.max_parents)
        if self.until_rhat is not None and not self.until_rhat > 1.0:
            raise UsageError(f"the R-hat target must be above 1, not {self.until_rhat}")
        return self

    def resolved(self, d: int) -> OrderMCMCOptions:
        opts = self
        if opts.steps is None:
            opts = opts._replace(steps=default_order_steps(d))
        if opts.max_parents is None:
            opts = opts._replace(max_parents=d - 1 if d <= EXACT_BOUND else DEFAULT_MAX_PARENTS)
        return opts._replace(max_parents=min(opts.max_parents, d - 1))


# Defaults for large graphs (d > SMALL_GRAPH), where a step's cost is dominated by
# BGe's O(d³) families and the acyclicity term's log₂ d products of d x d matrices per
# Gumbel-softmax graph (bench/dibs_scale.py): parent sets bounded by K (far above the
# in-degrees of sparse networks) and 4 instead of 16 graphs for E[h(G)] (β_t grows with t,
# and RMSprop averages the noisier gradient over steps).
SMALL_GRAPH = 32
LARGE_GRAPH_MAX_PARENTS = 8


class DiBSConfig(NamedTuple):
    """Hyperparameters (hashable, static under jit). Fields left ``None`` are resolved
    from d by :meth:`resolved` (large-graph defaults above ``SMALL_GRAPH`` variables)."""

    model: str = "bge"
    graph_prior: str = "er"
    edges_per_node: float = 1.0
    n_particles: int = 20
    latent_dim: int | None = None  # k; default d
    alpha_slope: float | None = None  # α_t = alpha_slope · t; default 1 (bge), 0.5 (joint)
    beta_slope: float = 1.0  # β_t = beta_slope · t
    tau: float = 1.0  # Gumbel-softmax inverse temperature
    n_graph_samples: int = 16  # M, per particle and step
    n_acyclicity_samples: int | None = None  # Gumbel-softmax graphs for E[h(G)]; auto by d
    estimator: str = "auto"  # "score" or "reparam"; auto: reparam for mlp, score otherwise
    h_latent: float = 5.0
    h_theta: float = 500.0
    step_size: float | None = None  # RMSprop step; default 0.005 (bge), 0.01 (joint)
    hidden: int = 5
    theta_prior_sigma: float = 1.0
    # joint models: the Laplace (BIC) Occam factor of the parameters an edge brings,
    # -(p/2) log n per parent, in every graph's log terms; None: on for linear and mlp
    occam: bool | None = None
    # p, the parameters per parent the Occam factor counts; None: 1. For mlp, p = ``hidden``
    # (every first-layer weight) emptied the graphs and p = 0 left them 1.4x too dense;
    # p = 1 met dibs-lib's E-SHD (bench/dibs_vs_dibslib_mlp_occam.json)
    occam_per_parent: float | None = None
    # K: graphs with a node of more than K parents get prior probability 0, and BGe scores
    # each family on K + 1 variables instead of d; None: auto by d
    max_parents: int | None = None

    def check(self) -> DiBSConfig:
        """One-line :class:`~deepbn.errors.UsageError` for settings that cannot run."""
        choices = {"model": MODELS, "graph_prior": GRAPH_PRIORS,
                   "estimator": ("auto", "score", "reparam")}
        for name, allowed in choices.items():
            require_choice(name.replace("_", " "), getattr(self, name), allowed)
        for name in ("n_particles", "n_graph_samples", "n_acyclicity_samples"):
            if getattr(self, name) is not None:
                require_count(f"the number of {name[2:].replace('_', ' ')}", getattr(self, name))
        require_positive("the expected edges per node", self.edges_per_node)
        if self.max_parents is not None:
            require_count("the maximum number of parents", self.max_parents)
        return self

    def resolved(self, d: int) -> DiBSConfig:
        cfg = self
        if cfg.latent_dim is None:
            cfg = cfg._replace(latent_dim=d)
        if cfg.estimator == "auto":
            cfg = cfg._replace(estimator="reparam" if cfg.model == "mlp" else "score")
        if cfg.step_size is None:
            cfg = cfg._replace(step_size=0.005 if cfg.model == "bge" else 0.01)
        large = d > SMALL_GRAPH
        if cfg.max_parents is None:
            cfg = cfg._replace(max_parents=LARGE_GRAPH_MAX_PARENTS if large else d - 1)
        if cfg.n_acyclicity_samples is None:
            cfg = cfg._replace(n_acyclicity_samples=4 if large else 16)
        if cfg.occam is None:
            cfg = cfg._replace(occam=cfg.model in ("linear", "mlp"))
        if cfg.occam_per_parent is None:
            cfg = cfg._replace(occam_per_parent=1.0)
        if cfg.alpha_slope is None:
            cfg = cfg._replace(alpha_slope=1.0 if cfg.model == "bge" else 0.5)
        return cfg


def check_steps(steps: int) -> int:
    require_count("the number of SVGD steps", steps)
    return steps


def check_scaling(scaling: str) -> str:
    require_choice("scaling", scaling, SCALINGS)
    return scaling
