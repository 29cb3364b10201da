"""The gated latent-DAG VAE (Graph VAE) and its fixed-gate special cases.

The latent vector (M dims) is split into N nodes of M/N dims. Node n may have
the parents n+1, ..., N (0-based here: node j has the candidate parents
j+1, ..., N-1, and node N-1 is the root); every candidate edge i -> j carries a
gate c_ij in [0, 1] that multiplies the parent's sample where it enters node
j's top-down networks (He, Gong, Marino, Mori & Lehrmann, "Variational
Autoencoders with Jointly Optimized Latent Dependency Structure", ICLR 2019,
Sec. 3). Structures:

- ``none``: every node a root, p(z_j) = N(0, I), q(z_j | x) bottom-up only:
  the classic VAE;
- ``chain``: c_{j+1, j} = 1, all other gates 0: the Ladder VAE
  (Sønderby et al., NeurIPS 2016);
- ``full``: all gates 1: the fully-connected VAE;
- ``learned``: c_ij ~ Bernoulli(μ_ij) relaxed with the binary Gumbel-softmax
  (Maddison et al. / Jang et al., ICLR 2017) at temperature τ, the same gate
  sample in encoder and decoder; the objective is the expected ELBO over gate
  samples (paper Eq. 8) and μ is learned with the rest.

Generative model: p(z_{N-1}) = N(0, I); for j < N-1, p(z_j | z_pa) = N(μ^p_j,
σ^p_j) from a top-down MLP of the gated concatenation [c_ij z_i]_{i>j};
p(x | z) from a decoder MLP of all nodes (Bernoulli or Gaussian). Inference:
a shared encoder MLP (784-512-512-256-128, batch norm, ELU; Appendix B)
gives a feature h; per node a bottom-up MLP gives (μ^b_j, σ^b_j); for
non-root nodes a second top-down MLP (its own parameters) of the same gated
parents gives (μ^t_j, σ^t_j), and the two are fused by precision weighting
(paper Eq. 18, as in the Ladder VAE):

    σ_j^{-2} = σ^{-2}_b + σ^{-2}_t,   μ_j = (μ_b σ^{-2}_b + μ_t σ^{-2}_t) σ_j².

Nodes are sampled from N-1 down to 0. The KL term is the sampled
log q(z_j | ...) - log p(z_j | z_pa) per node against the top-down prior.

Example:
    >>> import jax, jax.numpy as jnp
    >>> cfg = GraphVAEConfig(input_dim=6, nodes=3, node_dim=2, structure="learned",
    ...                      encoder_hidden=(8,), node_hidden=4, decoder_hidden=(8,))
    >>> params, fixed = init(jax.random.key(0), cfg)
    >>> out, _ = forward(cfg, params, fixed, jax.random.key(1), jnp.ones((5, 6)), 1.0, True)
    >>> out.elbo.shape
    (5,)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepbn import nn
from deepbn.errors import UsageError

STRUCTURES = ("none", "chain", "full", "learned")
LIKELIHOODS = ("bernoulli", "gaussian")
_LOGVAR_RANGE = 12.0  # log-variances are squashed into ±this: no overflow in exp


class GraphVAEConfig(NamedTuple):
    input_dim: int = 784
    nodes: int = 5
    node_dim: int = 16
    structure: str = "learned"
    likelihood: str = "bernoulli"
    encoder_hidden: tuple[int, ...] = (512, 512, 256, 128)
    node_hidden: int = 64
    decoder_hidden: tuple[int, ...] = (128, 256, 512, 512)
    gate_init: float = 0.5  # initial μ of learned gates

    @property
    def latent_dim(self) -> int:
        return self.nodes * self.node_dim

    def check(self) -> GraphVAEConfig:
        if self.structure not in STRUCTURES:
            raise UsageError(f"unknown structure '{self.structure}'; use one of "
                             f"{', '.join(STRUCTURES)}")
        if self.likelihood not in LIKELIHOODS:
            raise UsageError(f"unknown likelihood '{self.likelihood}'; use one of "
                             f"{', '.join(LIKELIHOODS)}")
        if self.nodes < 1 or self.node_dim < 1:
            raise UsageError("need at least one latent node of at least one dimension")
        return self


def edges(nodes: int) -> list[tuple[int, int]]:
    """Candidate edges (parent i, child j), i > j, in a fixed order."""
    return [(i, j) for j in range(nodes) for i in range(j + 1, nodes)]


def is_root(cfg: GraphVAEConfig, j: int) -> bool:
    return cfg.structure == "none" or j == cfg.nodes - 1


def fixed_gates(cfg: GraphVAEConfig) -> np.ndarray | None:
    """The gate values of a fixed structure, one per edge; None when learned."""
    e = edges(cfg.nodes)
    if cfg.structure == "none":
        return np.zeros(len(e), np.float32)
    if cfg.structure == "chain":
        return np.array([1.0 if i == j + 1 else 0.0 for i, j in e], np.float32)
    if cfg.structure == "full":
        return np.ones(len(e), np.float32)
    return None


def init(key, cfg: GraphVAEConfig) -> tuple[dict, dict]:
    """``nn.split`` of a new model (Appendix B architecture): (trained parameters, the
    fixed batch-norm running averages)."""
    cfg.check()
    k_enc, k_dec, k_nodes = jax.random.split(key, 3)
    feature = cfg.encoder_hidden[-1] if cfg.encoder_hidden else cfg.input_dim
    # features get batch norm + ELU too before the per-node heads
    model = {
        "encoder": nn.MLP.init(k_enc, (cfg.input_dim, *cfg.encoder_hidden), batch_norm=True,
                               activate_last=True),
        "decoder": nn.MLP.init(k_dec, (cfg.latent_dim, *cfg.decoder_hidden, cfg.input_dim),
                               batch_norm=True),
        "bottom_up": [], "prior": [], "posterior": []}
    keys = jax.random.split(k_nodes, 3 * cfg.nodes)
    head = (cfg.node_hidden, 2 * cfg.node_dim)
    for j in range(cfg.nodes):
        model["bottom_up"].append(nn.MLP.init(keys[3 * j], (feature, *head)))
        n_in = (cfg.nodes - 1 - j) * cfg.node_dim
        if is_root(cfg, j):
            model["prior"].append(None)
            model["posterior"].append(None)
        else:
            model["prior"].append(nn.MLP.init(keys[3 * j + 1], (n_in, *head)))
            model["posterior"].append(nn.MLP.init(keys[3 * j + 2], (n_in, *head)))
    if cfg.structure == "learned":
        p = float(np.clip(cfg.gate_init, 1e-3, 1 - 1e-3))
        model["gate_logits"] = jnp.full(len(edges(cfg.nodes)), float(np.log(p / (1 - p))))
    return nn.split(model)


def gate_probabilities(cfg: GraphVAEConfig, params: dict) -> np.ndarray:
    """μ per edge (learned) or the fixed gates."""
    fixed = fixed_gates(cfg)
    return fixed if fixed is not None else np.asarray(jax.nn.sigmoid(params["gate_logits"]))


def sample_gates(cfg: GraphVAEConfig, params: dict, key, batch: int, temperature,
                 hard: bool = False) -> jnp.ndarray:
    """Gate values (batch, edges): relaxed Bernoulli samples, or fixed / thresholded.

    Binary Gumbel-softmax: c = σ((logit μ + log u - log(1 - u)) / τ), u ~ U(0, 1).
    ``hard``: the test-time structure, 1[μ > 1/2].
    """
    fixed = fixed_gates(cfg)
    n = len(edges(cfg.nodes))
    if fixed is not None:
        return jnp.broadcast_to(jnp.asarray(fixed), (batch, n))
    logits = params["gate_logits"]
    if hard:
        return jnp.broadcast_to((logits > 0).astype(jnp.float32), (batch, n))
    u = jax.random.uniform(key, (batch, n), minval=1e-6, maxval=1 - 1e-6)
    return jax.nn.sigmoid((logits + jnp.log(u) - jnp.log1p(-u)) / temperature)


def _gated_parents(cfg, j, z, gates):
    """[c_ij z_i for i > j] concatenated: (batch, (N-1-j) * node_dim)."""
    e = {edge: k for k, edge in enumerate(edges(cfg.nodes))}
    return jnp.concatenate([gates[:, e[(i, j)], None] * z[i]
                            for i in range(j + 1, cfg.nodes)], axis=-1)


def _split_head(out, node_dim):
    mean, raw = out[..., :node_dim], out[..., node_dim:]
    return mean, _LOGVAR_RANGE * jnp.tanh(raw / _LOGVAR_RANGE)


def _gaussian_head(net, inputs, node_dim):
    return _split_head(net(inputs), node_dim)


def _gaussian_log_prob(z, mean, logvar):
    return nn.normal_log_prob(z, mean, 0.5 * logvar)


def fuse(mean_b, logvar_b, mean_t, logvar_t):
    """Precision-weighted fusion of two Gaussians (paper Eq. 18)."""
    prec_b, prec_t = jnp.exp(-logvar_b), jnp.exp(-logvar_t)
    var = 1.0 / (prec_b + prec_t)
    return (mean_b * prec_b + mean_t * prec_t) * var, jnp.log(var)


class Output(NamedTuple):
    elbo: jnp.ndarray  # (batch,)
    log_lik: jnp.ndarray  # (batch,) log p(x | z)
    kl: jnp.ndarray  # (batch,) sum over nodes of log q - log p
    kl_nodes: jnp.ndarray  # (batch, nodes)
    logits: jnp.ndarray  # (batch, input_dim) decoder output (mean for Gaussian data)


def _apply(net: nn.MLP, x, train: bool):
    """(output, the network with updated batch-norm averages when training)."""
    return net.train_apply(x) if train else (net(x), net)


def _bottom_up(cfg, params, h):
    """Every node's bottom-up (mean, log-variance), (nodes, batch, node_dim) each: the heads
    all read h, so they run as one product."""
    return _split_head(nn.apply_many(params["bottom_up"], h), cfg.node_dim)


def _posterior_walk(cfg, params, bottom_up, gates, eps):
    """Sample z from q (nodes N-1 .. 0) given :func:`_bottom_up`, and return z, log q and
    log p per node."""
    z = [None] * cfg.nodes
    log_q, log_p = [None] * cfg.nodes, [None] * cfg.nodes
    for j in reversed(range(cfg.nodes)):
        mean, logvar = bottom_up[0][j], bottom_up[1][j]
        if is_root(cfg, j):
            p_mean, p_logvar = jnp.zeros_like(mean), jnp.zeros_like(logvar)
        else:
            pa = _gated_parents(cfg, j, z, gates)
            # a node's prior and posterior heads read the same gated parents: one product
            (p_mean, t_mean), (p_logvar, t_logvar) = _split_head(
                nn.apply_many([params["prior"][j], params["posterior"][j]], pa), cfg.node_dim)
            mean, logvar = fuse(mean, logvar, t_mean, t_logvar)
        z[j] = mean + jnp.exp(0.5 * logvar) * eps[..., j, :]
        log_q[j] = _gaussian_log_prob(z[j], mean, logvar)
        log_p[j] = _gaussian_log_prob(z[j], p_mean, p_logvar)
    return z, jnp.stack(log_q, -1), jnp.stack(log_p, -1)




def log_likelihood(cfg, logits, x):
    if cfg.likelihood == "bernoulli":
        return jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits),
                       axis=-1)
    # unit-variance Gaussian around the decoder output
    return nn.normal_log_prob(x, logits)


def forward(cfg: GraphVAEConfig, params: dict, fixed: dict, key, x: jnp.ndarray, temperature,
            train: bool, hard_gates: bool = False) -> tuple[Output, dict]:
    """One sampled ELBO per example of ``x`` (batch, input_dim), with fresh gates and noise;
    also the fixed part with the batch-norm averages updated (when ``train``)."""
    model = nn.merge(params, fixed)
    k_gate, k_eps = jax.random.split(key)
    gates = sample_gates(cfg, model, k_gate, x.shape[0], temperature, hard=hard_gates)
    h, encoder = _apply(model["encoder"], x, train)
    eps = jax.random.normal(k_eps, (x.shape[0], cfg.nodes, cfg.node_dim))
    z, log_q, log_p = _posterior_walk(cfg, model, _bottom_up(cfg, model, h), gates, eps)
    logits, decoder = _apply(model["decoder"], jnp.concatenate(z, -1), train)
    log_lik = log_likelihood(cfg, logits, x)
    kl_nodes = log_q - log_p
    kl = jnp.sum(kl_nodes, -1)
    new_fixed = nn.split({**model, "encoder": encoder, "decoder": decoder})[1]
    return Output(log_lik - kl, log_lik, kl, kl_nodes, logits), new_fixed


def importance_log_weights(cfg: GraphVAEConfig, params: dict, fixed: dict, key, x: jnp.ndarray,
                           k: int) -> jnp.ndarray:
    """log p(x, z) - log q(z | x) for ``k`` draws per example: (k, batch), evaluation mode.

    Gates are the test-time structure (μ > 1/2 for learned gates). The encoder
    features and the bottom-up heads are computed once per example and shared by the
    k draws.
    """
    model = nn.merge(params, fixed)
    gates = sample_gates(cfg, model, key, x.shape[0], 1.0, hard=True)
    bottom_up = _bottom_up(cfg, model, model["encoder"](x))

    def one(key):
        eps = jax.random.normal(key, (x.shape[0], cfg.nodes, cfg.node_dim))
        z, log_q, log_p = _posterior_walk(cfg, model, bottom_up, gates, eps)
        logits = model["decoder"](jnp.concatenate(z, -1))
        return log_likelihood(cfg, logits, x) + jnp.sum(log_p - log_q, -1)

    return jax.lax.map(one, jax.random.split(key, k))


def sample(cfg: GraphVAEConfig, params: dict, fixed: dict, key, n: int) -> jnp.ndarray:
    """Draws from the generative model (test-time structure): decoder means (n, input_dim)."""
    model = nn.merge(params, fixed)
    k_eps, _ = jax.random.split(key)
    gates = sample_gates(cfg, model, key, n, 1.0, hard=True)
    eps = jax.random.normal(k_eps, (n, cfg.nodes, cfg.node_dim))
    z = [None] * cfg.nodes
    for j in reversed(range(cfg.nodes)):
        if is_root(cfg, j):
            z[j] = eps[:, j]
        else:
            mean, logvar = _gaussian_head(model["prior"][j], _gated_parents(cfg, j, z, gates),
                                          cfg.node_dim)
            z[j] = mean + jnp.exp(0.5 * logvar) * eps[:, j]
    logits = model["decoder"](jnp.concatenate(z, -1))
    return jax.nn.sigmoid(logits) if cfg.likelihood == "bernoulli" else logits
