"""Built-in example networks, addressable as ``example:NAME``.

- ``kingma-dbn``: the dynamic Bayes net of Kingma & Welling (ICML 2014, Sec. 5.1):
  z_1 ~ N(0, I), z_{t+1} ~ N(tanh(W z_t + b), sigma_z^2 I),
  x_t ~ Bernoulli(sigmoid(w^T z_t + c)); latents z_t, observed x_t. Its
  transitions (tie group ``transition``) and emissions (``emission``) are tied:
  one W, b, sigma_z and one w, c for every time step.
- ``kingma-mnist``: the generative model of MNIST of Kingma & Welling (arXiv
  1306.0733; ICML 2014, arXiv 1402.0480): z ~ N(0, I_2) latent, x ∈ {0, 1}^784
  ~ Bernoulli(sigmoid(MLP(z))) observed, a decoder 2 -> 200 tanh -> 784 (the hidden
  size is our assumption: we could not check the papers' own).
- ``gaussian-binary-tree``: a linear-Gaussian binary tree, root on top, edges
  parent -> child, coefficients U(0.5, 2), unit noise; the leaves are observed.
- ``gaussian-er10``: a 10-node linear-Gaussian Erdős–Rényi network (1.5 edges
  per node, |weights| U(0.5, 2) with random signs, unit noise), used by the demo.
- ``gaussian-hierarchy``: mu -> z_1..z_10 -> x_1..x_10 (each x_k 20-d, noise 0.1):
  observations that pin the latents down, where the centred form wins.
- ``arithmetic-circuit``: the nonlinear 8-node network of Mouton & Kroon (2022,
  SIReN-VAE, Sec. 5): Laplace roots, tanh and product conditionals; x0, x1
  observed.
- ``ecoli70``, ``magic-niab``: Gaussian networks from the bnlearn repository
  (Scutari & Denis), shipped with the package.

Example:
    >>> bn = load("example:kingma-dbn")
    >>> len(bn.latent_names), len(bn.observed_names)
    (20, 20)
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from deepbn import graph
from deepbn.bn import BayesNet
from deepbn.conditionals import (
    ActivationGaussian,
    Bernoulli,
    Laplace,
    LinearGaussian,
    ProductGaussian,
)
from deepbn.errors import NetworkFileError
from deepbn.io.networks import network_from_json, read_network
from deepbn.nn import MLP

PREFIX = "example:"


def kingma_dbn(T: int = 20, dim: int = 10, sigma_z: float = 0.1, seed: int = 0,
               tie: bool = True) -> BayesNet:
    """Kingma & Welling's dynamic Bayes net with T steps of a ``dim``-d latent state.

    W has entries N(0, (2/sqrt(dim))^2) and b = 0; the emission weights w have
    entries N(0, 1) and c = 0. Parameters are shared across time steps: with
    ``tie`` as tie groups ``transition`` (z2..zT) and ``emission`` (x1..xT), one
    parameter set each; without, each node holds its own copy of the same values.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 2.0 / np.sqrt(dim), (dim, dim)).astype(np.float32)
    w = rng.normal(0.0, 1.0, (1, dim)).astype(np.float32)
    names, parents, conds, observed = [], [], [], []
    for t in range(1, T + 1):
        names.append(f"z{t}")
        if t == 1:
            parents.append([])
            conds.append(LinearGaussian(jnp.zeros((dim, 0)), jnp.zeros(dim), jnp.ones(dim)))
        else:
            parents.append([f"z{t - 1}"])
            conds.append(ActivationGaussian(jnp.asarray(W), jnp.zeros(dim),
                                            jnp.full(dim, sigma_z, jnp.float32), "tanh"))
        observed.append(False)
    for t in range(1, T + 1):
        names.append(f"x{t}")
        parents.append([f"z{t}"])
        conds.append(Bernoulli(MLP(((jnp.asarray(w).T, jnp.zeros(1)),), activation="tanh")))
        observed.append(True)
    ties = {}
    if tie:
        ties = {n: "transition" for n in names[1:T]} | {n: "emission" for n in names[T:]}
    return BayesNet(names, parents, conds, observed, source="example:kingma-dbn", ties=ties)


MNIST_PIXELS = 784


def kingma_mnist(hidden: int = 200, latent: int = 2, pixels: int = MNIST_PIXELS,
                 seed: int = 0) -> BayesNet:
    """Kingma & Welling's MNIST model: z ~ N(0, I), x ~ Bernoulli(sigmoid(MLP(z))).

    Two nodes: ``z`` (``latent``-d, latent; a root N(0, I)) and ``x``
    (``pixels``-d binary, observed) with a two-layer decoder latent -> hidden
    (tanh) -> pixels logits, initialised at random (``seed``). The 2-D latent space
    is the one whose manifold the papers draw (arXiv 1306.0733; AEVB, arXiv
    1312.6114, Fig. 5); ``hidden`` = 200 is an assumption (see the module doc).
    """
    key = jax.random.key(seed)
    prior = LinearGaussian(jnp.zeros((latent, 0)), jnp.zeros(latent), jnp.ones(latent))
    decoder = Bernoulli.init(key, latent, pixels, hidden=(hidden,), activation="tanh")
    return BayesNet(["z", "x"], [[], ["z"]], [prior, decoder], [False, True],
                    source="example:kingma-mnist")


def gaussian_binary_tree(depth: int = 5, seed: int = 0) -> BayesNet:
    """A binary tree of ``depth`` levels (2^depth - 1 nodes), leaves observed.

    Node ``n{k}`` (heap numbering, root n0) has parent ``n{(k-1)//2}``; each
    child is its parent times a coefficient U(0.5, 2) plus N(0, 1) noise.
    """
    rng = np.random.default_rng(seed)
    size = 2**depth - 1
    first_leaf = 2 ** (depth - 1) - 1
    names = [f"n{k}" for k in range(size)]
    parents = [[] if k == 0 else [f"n{(k - 1) // 2}"] for k in range(size)]
    conds = [
        LinearGaussian(
            jnp.asarray(rng.uniform(0.5, 2.0, (1, len(pa))), jnp.float32),
            jnp.zeros(1), jnp.ones(1),
        )
        for pa in parents
    ]
    observed = [k >= first_leaf for k in range(size)]
    return BayesNet(names, parents, conds, observed, source="example:gaussian-binary-tree")


def linear_gaussian_network(A: np.ndarray, seed: int = 0, names=None,
                            weight_range=(0.5, 2.0), noise_scale: float = 1.0,
                            source: str = "network") -> BayesNet:
    """A linear-Gaussian network on DAG ``A`` with |weights| U(range), random signs."""
    rng = np.random.default_rng(seed)
    d = A.shape[0]
    names = list(names) if names is not None else [f"x{k}" for k in range(d)]
    parents, conds = [], []
    for j in range(d):
        pa = graph.parents(A, j)
        w = rng.uniform(*weight_range, len(pa)) * rng.choice([-1.0, 1.0], len(pa))
        parents.append([names[i] for i in pa])
        conds.append(LinearGaussian(jnp.asarray(w.reshape(1, -1), jnp.float32), jnp.zeros(1),
                                    jnp.full(1, noise_scale, jnp.float32)))
    return BayesNet(names, parents, conds, source=source)


def gaussian_er10(seed: int = 0) -> BayesNet:
    """The demo network: a 10-node linear-Gaussian ER graph, 1.5 edges per node."""
    A = graph.random_er_dag(seed, 10, 1.5)
    return linear_gaussian_network(A, seed=seed + 1, source="example:gaussian-er10")


def gaussian_hierarchy(groups: int = 10, per_group: int = 20, noise: float = 0.1,
                       seed: int = 0) -> BayesNet:
    """A two-level linear-Gaussian hierarchy whose data pin every latent down.

    mu ~ N(0, 1); z_k ~ N(mu, 1) for k = 1..groups; x_k ~ N(z_k 1, noise² I) of
    dimension ``per_group``, observed. Strongly informative observations: the
    network where sampling in the centred form beats the auxiliary form
    (Papaspiliopoulos et al. 2007). Its posterior is Gaussian in closed form.
    """
    del seed  # no random parameters; kept for a uniform builder signature
    names, parents, conds, observed = ["mu"], [[]], [
        LinearGaussian(jnp.zeros((1, 0)), jnp.zeros(1), jnp.ones(1))], [False]
    for k in range(1, groups + 1):
        names.append(f"z{k}")
        parents.append(["mu"])
        conds.append(LinearGaussian(jnp.ones((1, 1)), jnp.zeros(1), jnp.ones(1)))
        observed.append(False)
    for k in range(1, groups + 1):
        names.append(f"x{k}")
        parents.append([f"z{k}"])
        conds.append(LinearGaussian(jnp.ones((per_group, 1)), jnp.zeros(per_group),
                                    jnp.full(per_group, noise, jnp.float32)))
        observed.append(True)
    return BayesNet(names, parents, conds, observed, source="example:gaussian-hierarchy")


def arithmetic_circuit(seed: int = 0) -> BayesNet:
    """Mouton & Kroon's arithmetic circuit (standard deviations, not variances).

    z0 ~ Laplace(5, 1), z1 ~ Laplace(-2, 1), z2 ~ N(tanh(z0 + z1 - 2.8), 0.1),
    z3 ~ N(z0 z1, 0.1), z4 ~ N(7, 2), z5 ~ N(tanh(z3 + z4), 0.1),
    x0 ~ N(z3, 0.1), x1 ~ N(z5, 0.1); the z are latent, the x observed.
    """
    del seed  # no random parameters
    one = jnp.ones(1)

    def fixed(v):
        return jnp.full(1, v, jnp.float32)

    nodes = [
        ("z0", [], Laplace(jnp.zeros((1, 0)), fixed(5.0), one), False),
        ("z1", [], Laplace(jnp.zeros((1, 0)), fixed(-2.0), one), False),
        ("z2", ["z0", "z1"], ActivationGaussian(jnp.ones((1, 2)), fixed(-2.8), fixed(0.1)),
         False),
        ("z3", ["z0", "z1"], ProductGaussian(jnp.ones((1, 2)), fixed(0.0), fixed(0.1)), False),
        ("z4", [], LinearGaussian(jnp.zeros((1, 0)), fixed(7.0), fixed(2.0)), False),
        ("z5", ["z3", "z4"], ActivationGaussian(jnp.ones((1, 2)), fixed(0.0), fixed(0.1)),
         False),
        ("x0", ["z3"], LinearGaussian(jnp.ones((1, 1)), fixed(0.0), fixed(0.1)), True),
        ("x1", ["z5"], LinearGaussian(jnp.ones((1, 1)), fixed(0.0), fixed(0.1)), True),
    ]
    return BayesNet([n[0] for n in nodes], [n[1] for n in nodes], [n[2] for n in nodes],
                    [n[3] for n in nodes], source="example:arithmetic-circuit")


def _shipped(name: str) -> Callable[[], BayesNet]:
    def build() -> BayesNet:
        text = resources.files("deepbn").joinpath("networks", f"{name}.json").read_text()
        return network_from_json(json.loads(text), f"example:{name}")

    return build


EXAMPLES: dict[str, Callable[[], BayesNet]] = {
    "kingma-dbn": kingma_dbn,
    "kingma-mnist": kingma_mnist,
    "gaussian-binary-tree": gaussian_binary_tree,
    "gaussian-er10": gaussian_er10,
    "gaussian-hierarchy": gaussian_hierarchy,
    "arithmetic-circuit": arithmetic_circuit,
    "ecoli70": _shipped("ecoli70"),
    "magic-niab": _shipped("magic-niab"),
}


def _parameters(name: str, query: str) -> dict:
    """``key=value&...`` of ``example:NAME?...`` as keyword arguments of the builder.

    Only the builder's own int, float and bool keywords are accepted, each
    converted to the type of its default: a typo is a one-line error, not a
    silently ignored setting.
    """
    builder = EXAMPLES[name]
    defaults = {p.name: p.default for p in inspect.signature(builder).parameters.values()
                if isinstance(p.default, (int, float, bool))}
    if not defaults:
        raise NetworkFileError(f"example '{name}' takes no parameters")
    out: dict = {}
    for item in query.split("&"):
        key, sep, value = item.partition("=")
        if key not in defaults:
            raise NetworkFileError(f"unknown parameter '{key}' of example '{name}'; "
                                   f"it takes {', '.join(defaults)}")
        kind = type(defaults[key])
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                parsed = value.lower() in ("true", "1")
            else:
                parsed = kind(value)
        except ValueError:
            raise NetworkFileError(f"parameter {key} of example '{name}' must be "
                                   f"{kind.__name__}; got '{value}'") from None
        if not sep or (kind is not bool and parsed <= 0 and key != "seed") or (
                kind is float and not np.isfinite(parsed)):
            raise NetworkFileError(f"parameter {key} of example '{name}' needs a positive "
                                   f"value (key=value); got '{item}'")
        out[key] = parsed
    return out


def load(spec: str | os.PathLike) -> BayesNet:
    """A network from ``example:NAME[?key=value&...]`` or from a JSON file path.

    The query sets the example builder's keywords, e.g. ``example:kingma-dbn?T=1000``
    (:func:`kingma_dbn`'s ``T``, ``dim``, ``sigma_z``, ``seed``, ``tie``).
    """
    text = str(spec)
    if text.startswith(PREFIX):
        name, _, query = text[len(PREFIX):].partition("?")
        if name not in EXAMPLES:
            raise NetworkFileError(
                f"unknown example '{name}'; available: {', '.join(sorted(EXAMPLES))}"
            )
        kwargs = _parameters(name, query) if query else {}
        bn = EXAMPLES[name](**kwargs)
        return bn
    return read_network(spec)
