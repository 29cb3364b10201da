"""SIReN-VAE: a VAE whose prior, decoder and encoder respect a known Bayesian network.

Given a BN over latent nodes z and observed nodes x (scalar nodes), following
Mouton & Kroon, "SIReN-VAE: Leveraging Flows and Amortized Inference for
Bayesian Networks" (arXiv 2204.11847, Sec. 3):

- **prior** p(z): a graphical residual flow (:mod:`deepbn.flows`) masked by the
  BN's latent subgraph, in the normalising direction ε = f(a ⊙ z + b), so
  log p(z) = log N(ε) + log|det| exactly;
- **decoder** p(x | z): Gaussian, its means from an MLP masked so that x_j
  reads only its parents in the BN (latent, and observed ones as in an
  autoregressive model), with a learned scale per observed node;
- **encoder** q(z | x): a generating flow z = s(x) ⊙ f(ε; x) + m(x) masked by
  the faithful inverse of the BN (:func:`deepbn.graph.faithful_inverse`): z_j
  reads only its parents in the inverse, observed nodes entering as conditions
  (the masked affine m, s reads, per latent, only its observed parents).

Variants: ``true`` (the BN), ``fc`` (every latent depends on all earlier ones
and on all observed nodes: a fully connected latent structure), ``ind``
(independent latents, encoder reading all of x) and ``vae`` (a plain Gaussian
VAE of similar size: MLP encoder, N(0, I) prior, MLP decoder).

Example:
    >>> import jax
    >>> from deepbn import examples
    >>> bn = examples.load("example:arithmetic-circuit")
    >>> spec = SirenSpec.from_network(bn, bn.latent_names, "true")
    >>> model = init(jax.random.key(0), spec)
    >>> x = jax.numpy.zeros((4, 2))
    >>> elbo(model, jax.random.key(1), x, spec).shape
    (4,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn import graph
from deepbn.bn import BayesNet
from deepbn.errors import UsageError
from deepbn.flows import FlowDensity, GraphicalResidualFlow
from deepbn.nn import MLP, normal_log_prob

VARIANTS = ("true", "fc", "ind", "vae")


class SirenSpec(NamedTuple):
    """Structure of a SIReN-VAE: which nodes are latent and the three masks' graphs."""

    latent: tuple[str, ...]  # in a topological order of the BN
    observed: tuple[str, ...]
    variant: str
    prior_dag: tuple  # (nz, nz) latent -> latent, as nested tuples of bools
    decoder_parents: tuple  # (nz + nx, nx): which inputs [z, x] each x_j reads
    encoder_dag: tuple  # (nz, nz) latent -> latent in the inverse
    encoder_conditions: tuple  # (nx, nz): which x each latent reads in the inverse

    @staticmethod
    def from_network(bn: BayesNet, latent: Sequence[str], variant: str) -> SirenSpec:
        if variant not in VARIANTS:
            raise UsageError(f"unknown variant '{variant}'; use one of {', '.join(VARIANTS)}")
        unknown = [n for n in latent if n not in bn.names]
        if unknown:
            raise UsageError(f"latent node(s) {', '.join(unknown)} not in the network; its nodes "
                             f"are {', '.join(bn.names[:12])}{' ...' if bn.d > 12 else ''}")
        wide = [n for n in bn.names if bn.dims[bn.index(n)] != 1]
        if wide:
            raise UsageError(f"node '{wide[0]}' has dimension {bn.dims[bn.index(wide[0])]}; "
                             "SIReN-VAE needs scalar nodes")
        is_latent = np.array([n in set(latent) for n in bn.names])
        if is_latent.all() or not is_latent.any():
            raise UsageError("the network needs at least one latent and one observed node; "
                             "choose the latent nodes with --latent")
        order = graph.topological_order(bn.adjacency())
        zi = [j for j in order if is_latent[j]]
        xi = [j for j in order if not is_latent[j]]
        A = bn.adjacency().astype(bool)
        nz, nx = len(zi), len(xi)
        inv = graph.faithful_inverse(A, ~is_latent)
        if variant == "true":
            prior = A[np.ix_(zi, zi)]
            dec = np.concatenate([A[np.ix_(zi, xi)], A[np.ix_(xi, xi)]])
            enc, cond = inv[np.ix_(zi, zi)], inv[np.ix_(xi, zi)]
        elif variant in ("fc", "vae"):
            prior = np.triu(np.ones((nz, nz), bool), 1)
            dec = np.concatenate([np.ones((nz, nx), bool), np.triu(np.ones((nx, nx), bool), 1)])
            enc, cond = np.tril(np.ones((nz, nz), bool), -1), np.ones((nx, nz), bool)
        else:  # ind
            prior = np.zeros((nz, nz), bool)
            dec = np.concatenate([np.ones((nz, nx), bool), np.zeros((nx, nx), bool)])
            enc, cond = np.zeros((nz, nz), bool), np.ones((nx, nz), bool)
        tup = lambda a: tuple(map(tuple, np.asarray(a, bool).tolist()))  # noqa: E731
        return SirenSpec(tuple(bn.names[j] for j in zi), tuple(bn.names[j] for j in xi), variant,
                         tup(prior), tup(dec), tup(enc), tup(cond))


class GaussianMLP(eqx.Module):
    """Means from a (masked) MLP of the inputs, a learned log-scale per output."""

    net: MLP
    log_scale: jnp.ndarray

    @staticmethod
    def init(key, n_in: int, n_out: int, hidden, allowed=None) -> GaussianMLP:
        return GaussianMLP(MLP.init(key, (n_in, *hidden, n_out), allowed=allowed),
                           jnp.zeros(n_out))

    def mean(self, h):
        return self.net(h)

    def log_prob(self, value, h):
        log_scale = jnp.maximum(self.log_scale, -7.0)  # no collapse onto training points
        return normal_log_prob(value, self.mean(h), log_scale)


class Siren(eqx.Module):
    """Parameters of one SIReN-VAE (or of the plain VAE baseline)."""

    prior: FlowDensity | None  # None: N(0, I) (the plain VAE)
    encoder_flow: GraphicalResidualFlow | None
    encoder_net: GaussianMLP | None  # the plain VAE's encoder: [mean, log-scale]
    encoder_affine: GaussianMLP | None  # x -> [shift, log-scale] per latent (masked)
    decoder: GaussianMLP


def init(key, spec: SirenSpec, blocks: int = 4, hidden: Sequence[int] = (64,),
         linear: bool = False) -> Siren:
    nz, nx = len(spec.latent), len(spec.observed)
    k1, k2, k3 = jax.random.split(key, 3)
    dec_parents = np.array(spec.decoder_parents, bool).reshape(nz + nx, nx)
    allowed = [frozenset(np.flatnonzero(dec_parents[:, j]).tolist()) for j in range(nx)]
    decoder = GaussianMLP.init(k3, nz + nx, nx, hidden, allowed)
    if spec.variant == "vae":
        hid = tuple(2 * h for h in hidden)
        enc = GaussianMLP.init(k2, nx, 2 * nz, hid)
        dense = GaussianMLP.init(k3, nz, nx, hid)
        return Siren(None, None, enc, None, dense)
    prior = FlowDensity.init(k1, np.array(spec.prior_dag, bool).reshape(nz, nz), blocks, hidden,
                             linear=linear)
    encoder = GraphicalResidualFlow.init(
        k2, np.array(spec.encoder_dag, bool).reshape(nz, nz), blocks, hidden,
        conditions=np.array(spec.encoder_conditions, bool).reshape(nx, nz))
    # the affine after the encoder's flow reads, per latent, only its observed parents in
    # the inverse: a location and scale that follow x without breaking the structure
    cond = np.array(spec.encoder_conditions, bool).reshape(nx, nz)
    sets = [frozenset(np.flatnonzero(cond[:, j]).tolist()) for j in range(nz)]
    affine = GaussianMLP.init(jax.random.fold_in(k2, 1), nx, 2 * nz, hidden, sets + sets)
    return Siren(prior, encoder, None, affine, decoder)


def refresh(model: Siren, iterations: int = 1) -> Siren:
    """Advance the flows' power iterations (after every training step; more before evaluation)."""
    if model.prior is None:
        return model
    return eqx.tree_at(lambda m: (m.prior, m.encoder_flow), model,
                       (model.prior.refresh(iterations),
                        model.encoder_flow.refresh(iterations)))


def prior_log_prob(model: Siren, z):
    return normal_log_prob(z) if model.prior is None else model.prior.log_prob(z)


def encode_sample(model: Siren, key, x, k: int | None = None):
    """Draws z ~ q(z | x) and log q: (batch, nz), (batch,); with ``k``, (k, batch, ...)."""
    nz = (model.encoder_flow.blocks.dim if model.encoder_net is None
          else model.encoder_net.log_scale.shape[0] // 2)
    shape = ((k,) if k is not None else ()) + x.shape[:-1] + (nz,)
    eps = jax.random.normal(key, shape)
    xs = jnp.broadcast_to(x, shape[:-1] + x.shape[-1:])
    if model.encoder_net is not None:
        out = model.encoder_net.mean(xs)
        mean, log_scale = out[..., :nz], jnp.clip(out[..., nz:], -10.0, 5.0)
        z = mean + jnp.exp(log_scale) * eps
        return z, normal_log_prob(eps) - jnp.sum(log_scale, axis=-1)
    v, logdet = model.encoder_flow.forward(eps, xs)
    out = model.encoder_affine.mean(xs)
    shift, log_scale = out[..., :nz], jnp.clip(out[..., nz:], -10.0, 5.0)
    z = v * jnp.exp(log_scale) + shift
    return z, normal_log_prob(eps) - logdet - jnp.sum(log_scale, axis=-1)


def decoder_log_prob(model: Siren, x, z, spec: SirenSpec):
    inputs = z if spec.variant == "vae" else jnp.concatenate(
        [z, jnp.broadcast_to(x, z.shape[:-1] + x.shape[-1:])], axis=-1)
    return model.decoder.log_prob(x, inputs)


def elbo_terms(model: Siren, key, x, spec: SirenSpec):
    """The single-sample ELBO's two terms per example: log p(x | z) and log p(z) - log q(z | x)
    (minus a one-sample KL estimate), at one draw z ~ q(z | x)."""
    z, log_q = encode_sample(model, key, x)
    return decoder_log_prob(model, x, z, spec), prior_log_prob(model, z) - log_q


def elbo(model: Siren, key, x, spec: SirenSpec):
    """Single-sample ELBO per example: log p(x | z) + log p(z) - log q(z | x)."""
    reconstruction, kl = elbo_terms(model, key, x, spec)
    return reconstruction + kl


def importance_log_likelihood(model: Siren, key, x, spec: SirenSpec, k: int = 1000):
    """log p(x) ≈ log mean_k p(x, z_k) / q(z_k | x) (Burda et al. 2016), per example."""
    z, log_q = encode_sample(model, key, x, k)
    w = decoder_log_prob(model, x, z, spec) + prior_log_prob(model, z) - log_q
    return jax.nn.logsumexp(w, axis=0) - jnp.log(k)


def reconstruction_error(model: Siren, key, x, spec: SirenSpec):
    """Mean squared error of the decoder mean at one draw z ~ q(z | x), per example."""
    z, _ = encode_sample(model, key, x)
    inputs = z if spec.variant == "vae" else jnp.concatenate([z, x], axis=-1)
    return jnp.mean((model.decoder.mean(inputs) - x) ** 2, axis=-1)
