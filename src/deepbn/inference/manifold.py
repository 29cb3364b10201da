"""The learned 2-D latent manifold: a grid of latent points decoded to mean images.

Linearly spaced points of the unit square are mapped through the inverse
Gaussian CDF to base noise ε, then through the network's own auxiliary form to
z = g(ε) (for a N(0, I) prior z = ε) and decoded to the mean of the observed
node: the figure of Kingma & Welling (AEVB, arXiv 1312.6114, Fig. 5; arXiv
1306.0733) for a generative model with a two-dimensional latent space.

Example:
    >>> from deepbn.examples import kingma_mnist
    >>> manifold_images(kingma_mnist(hidden=4, pixels=9), side=3).shape
    (9, 9)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from deepbn.bn import BayesNet
from deepbn.errors import UsageError


def manifold_images(bn: BayesNet, side: int = 20) -> np.ndarray:
    """(side², pixels) mean images of the one observed node over a side x side latent grid.

    Row-major, the first latent coordinate along the rows (left to right) and the
    second down the columns, from high to low. Needs one 2-d latent node with a
    normal base and one observed node whose parent it is.
    """
    latent, observed = bn.latent_names, bn.observed_names
    if len(latent) != 1 or bn.dims[bn.index(latent[0])] != 2 or len(observed) != 1:
        raise UsageError("a manifold plot needs one 2-d latent node and one observed node; "
                         f"this network has latent {', '.join(latent) or 'none'} and observed "
                         f"{', '.join(observed) or 'none'}")
    z_name, x_name = latent[0], observed[0]
    prior = bn.conditional(bn.index(z_name))
    if prior.base != "normal" or bn.parents[bn.index(z_name)] or bn.parents[
            bn.index(x_name)] != (z_name,):
        raise UsageError(f"a manifold plot needs a Gaussian root '{z_name}' as the only parent "
                         f"of '{x_name}'")
    q = (np.arange(side) + 0.5) / side  # cell centres of the unit square, never 0 or 1
    first, second = np.meshgrid(q, q[::-1])
    eps = jax.scipy.special.ndtri(jnp.asarray(np.stack([first, second], -1).reshape(-1, 2),
                                              jnp.float32))
    z = prior.reparam(eps, jnp.zeros((side * side, 0)))  # the auxiliary form: z = g(ε)
    cond = bn.conditional(bn.index(x_name))
    if cond.family == "bernoulli":
        mean = jax.nn.sigmoid(cond.logits(z))
    else:
        mean = cond.loc_scale(z)[0]
    return np.asarray(mean, np.float32)

