"""Posterior draws as an ArviZ InferenceData (an xarray ``DataTree``), written as netCDF.

ArviZ >= 1.0 (its base package ``arviz_base``; on Python 3.11, where ArviZ 1.x
itself does not install, the same ``arviz_base`` / ``arviz_stats`` packages at
0.8) holds a run as an xarray ``DataTree`` with one group per kind of quantity,
every sampled quantity with dims ``(chain, draw, ...)``. deepbn fills

- ``posterior``: one variable per latent node, dims ``(chain, draw, case,
  <node>_coordinate)``, latent values z whatever form was sampled, the
  coordinate labels the node's table columns (``z``, or ``z[0]``, ``z[1]``, ...);
  each variable's attributes say its form: ``centring`` (the mean centring
  weight over its coordinates and cases, 1 centred, 0 auxiliary) and ``form``;
- ``sample_stats``: the sampler's per-transition statistics under ArviZ's names,
  ``lp`` (log density of the sampled target, in its form's coordinates),
  ``energy``, ``acceptance_rate``, ``diverging``, ``step_size``, and for NUTS
  ``tree_depth`` and ``n_steps`` (leapfrog steps), for HMC
  ``num_integration_steps``;
- ``observed_data``: the observed nodes' values, dims ``(case, <node>_coordinate)``;
- attributes of the tree: ``deepbn_version``, ``seed``, ``sampler``, ``form``
  and the run's ``chains``, ``warmup`` and ``samples``.

ArviZ's diagnostics on this tree (``arviz_stats.ess`` bulk ESS, ``arviz_stats.rhat``
rank-normalised split R-hat, Vehtari et al., Bayesian Analysis 2021) are the
estimators behind ``summary.json``'s ``ess_min`` and ``rhat_max``.

ArviZ is the optional extra ``deepbn[arviz]``: :func:`arviz_missing` says in
one line how to get it, :func:`to_arviz` raises :class:`~deepbn.errors.MissingExtra`
with that line.

Example:
    >>> post = deepbn.sample_posterior(bn, observed, warmup=200, samples=200)  # doctest: +SKIP
    >>> tree = to_arviz(post)                                                  # doctest: +SKIP
    >>> write_netcdf(tree, "posterior.nc")                                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from deepbn.atomic import atomic_write
from deepbn.bn import column_names
from deepbn.errors import MissingExtra, UsageError

if TYPE_CHECKING:
    from xarray import DataTree

    from deepbn.inference.hmc import PosteriorSamples

INSTALL = 'pip install "deepbn[arviz]"'
ENGINE = "h5netcdf"  # writes to an open file, so that the file appears whole or not at all
NEEDS = ("arviz_base", "h5netcdf")  # ArviZ's DataTree builder and the netCDF engine


def arviz_missing() -> str | None:
    """``None`` if posterior.nc can be written here, else one line saying how to get ArviZ."""
    for module in NEEDS:
        try:
            importlib.import_module(module)
        except ImportError:
            if sys.version_info < (3, 11):
                return ("posterior.nc not written: ArviZ >= 1.0 needs Python >= 3.11 "
                        f"(this is {sys.version_info.major}.{sys.version_info.minor})")
            return f"posterior.nc not written: it needs ArviZ ({module} is missing); {INSTALL}"
    return None


def _form_label(weight: float) -> str:
    return "centred" if weight == 1.0 else "auxiliary" if weight == 0.0 else "partial"


def _stats_group(post: PosteriorSamples) -> dict[str, np.ndarray]:
    stats = dict(post.stats or {})
    if post.summary.get("sampler") == "hmc" and "n_steps" in stats:
        # fixed-length HMC: the step count is the one setting, named as BlackJAX names it
        stats["num_integration_steps"] = stats.pop("n_steps")
    return {k: np.asarray(v) for k, v in stats.items()}


def to_arviz(post: PosteriorSamples, observed: Mapping[str, Any] | None = None) -> DataTree:
    """``post`` (from :func:`deepbn.sample_posterior`) as an ArviZ ``DataTree``.

    ``observed`` (node -> (cases, dim)) defaults to the data ``post`` was
    conditioned on. Groups, dims and attributes: this module's docstring.
    """
    missing = arviz_missing()
    if missing:
        raise MissingExtra(missing)
    import arviz_base

    import deepbn

    observed = post.observed if observed is None else observed
    observed = {n: np.atleast_2d(np.asarray(v)) for n, v in (observed or {}).items()}
    nodes = [*post.samples, *observed]
    # a DataTree forbids '/' in variable names; the exact node name stays in the attributes
    var = {n: n.replace("/", "_") for n in nodes}
    dim = {n: f"{var[n]}_coordinate" for n in nodes}
    names = [*var.values(), *dim.values(), "chain", "draw", "case"]
    if len(set(names)) < len(names):
        clash = sorted({x for x in names if names.count(x) > 1})
        raise UsageError(f"node name(s) {', '.join(clash)} clash with another node's variable "
                         "or dimension name in posterior.nc; rename the node")
    cases = int(next(iter(post.samples.values())).shape[2])
    coords: dict[str, Any] = {"case": np.arange(cases)}
    dims: dict[str, list[str]] = {}
    for n in nodes:
        width = (post.samples[n].shape[-1] if n in post.samples else observed[n].shape[-1])
        coords[dim[n]] = np.asarray(column_names(n, int(width)), dtype=str)
        dims[var[n]] = ["case", dim[n]]
    summary = post.summary
    root = {"deepbn_version": deepbn.__version__, "seed": summary.get("seed"),
            "sampler": summary.get("sampler"), "form": post.form,
            "chains": summary.get("chains"), "warmup": summary.get("warmup"),
            "samples": summary.get("samples")}
    library = {"inference_library": "deepbn", "inference_library_version": deepbn.__version__}
    groups = {"posterior": {var[n]: np.asarray(v) for n, v in post.samples.items()}}
    if post.stats:
        groups["sample_stats"] = _stats_group(post)
    if observed:
        groups["observed_data"] = {var[n]: v for n, v in observed.items()}
    tree = arviz_base.from_dict(
        groups, dims=dims, coords=coords,
        attrs={"/": {k: v for k, v in root.items() if v is not None},
               **{g: library for g in groups}})
    centring = post.space.node_values(post.centring)
    for n in post.samples:
        attrs = tree["posterior"][var[n]].attrs
        attrs.update(node=n, centring=float(centring[n]), form=_form_label(centring[n]))
    for n in observed:
        tree["observed_data"][var[n]].attrs["node"] = n
    return tree


def write_netcdf(tree: DataTree, path: str | os.PathLike) -> None:
    """Write an ArviZ ``DataTree`` to ``path`` (netCDF-4, one HDF5 group per ArviZ group),
    atomically: a crash leaves the old file or the new one."""
    with atomic_write(path, "w+b") as f:  # h5py reads back what it writes
        tree.to_netcdf(f, engine=ENGINE)
