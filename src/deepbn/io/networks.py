"""Bayesian-network files: the bnlearn/pgmpy linear-Gaussian JSON layout and
deepbn's own JSON format (every family, exact round trip).

bnlearn/pgmpy layout::

    {"nodes": [...], "arcs": [[parent, child], ...],
     "cpds": {node: {"coefficients": {"(Intercept)": [b], parent: [w], ...},
                     "variance": [s2], "parents": [...]}}}

deepbn layout (``"format": "deepbn"``)::

    {"format": "deepbn", "version": 1,
     "nodes": [{"name": "z1", "parents": [], "observed": false,
                "family": "linear-gaussian",
                "params": {"weight": [[...]], "bias": [...], "scale": [...]}}, ...]}

Tied parameters: nodes with the same ``"tie": "NAME"`` share one parameter set
(e.g. a dynamic Bayes net's transitions across time steps); they need the same
family and parameter shapes. The writer gives every tied node its ``tie`` and
its (equal) ``params``, so that a reader without ties still reads the network
(as untied copies); a tied node may also omit ``family`` and ``params``, and
then has those of its group's first node that gives them.

Families and their ``params``: ``linear-gaussian``, ``laplace`` and
``product-gaussian`` (weight, bias, scale), ``activation-gaussian`` (weight,
bias, scale, activation),
``mlp-gaussian`` (layers = [{weight, bias}, ...], scale, learn_scale,
activation), ``bernoulli`` (layers, activation). Weights have shape
(dim, sum of parent dims), in the order of ``parents``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from deepbn.atomic import atomic_write
from deepbn.bn import BayesNet
from deepbn.conditionals import FAMILIES, Conditional, LinearGaussian
from deepbn.errors import NetworkFileError
from deepbn.nn import MLP

FORMAT = "deepbn"
VERSION = 1


def read_network(path: str | os.PathLike) -> BayesNet:
    """Read a network from a deepbn or bnlearn/pgmpy JSON file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise NetworkFileError(f"{path}: no such network file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NetworkFileError(f"{path}: cannot read network file ({e})") from None
    except json.JSONDecodeError as e:
        raise NetworkFileError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    return network_from_json(doc, str(path))


def network_from_json(doc, source: str = "network") -> BayesNet:
    """Build a network from a parsed JSON document of either layout."""
    if not isinstance(doc, dict):
        raise NetworkFileError(f"{source}: expected a JSON object with 'nodes'")
    if doc.get("format") == FORMAT:
        return _from_deepbn(doc, source)
    if "cpds" in doc:
        return _from_bnlearn(doc, source)
    raise NetworkFileError(
        f"{source}: unrecognised network layout; expected deepbn JSON ('format': 'deepbn') "
        "or bnlearn/pgmpy JSON ('nodes', 'arcs', 'cpds')"
    )


def _scalar(value, where: str) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NetworkFileError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _from_bnlearn(doc: dict, source: str) -> BayesNet:
    nodes = doc.get("nodes")
    if isinstance(nodes, dict):
        nodes = list(nodes)
    if not isinstance(nodes, list) or not nodes:
        raise NetworkFileError(f"{source}: 'nodes' must be a non-empty list of names")
    names = [str(n) for n in nodes]
    known = set(names)
    arc_parents: dict[str, list[str]] = {n: [] for n in names}
    arcs = doc.get("arcs", [])
    if not isinstance(arcs, list):
        raise NetworkFileError(f"{source}: 'arcs' must be a list of [parent, child] pairs")
    for arc in arcs:
        if not (isinstance(arc, list) and len(arc) == 2):
            raise NetworkFileError(f"{source}: each arc must be a [parent, child] pair: {arc!r}")
        p, c = (str(a) for a in arc)
        for n in (p, c):
            if n not in known:
                raise NetworkFileError(
                    f"{source}: arc {p} -> {c} names unknown node '{n}'; add it to 'nodes'"
                )
        arc_parents[c].append(p)
    cpds = doc["cpds"]
    if not isinstance(cpds, dict):
        raise NetworkFileError(f"{source}: 'cpds' must map each node name to its cpd")
    conditionals: list[Conditional] = []
    parents: list[list[str]] = []
    for n in names:
        cpd = cpds.get(n)
        where = f"{source}: node '{n}'"
        if not isinstance(cpd, dict):
            raise NetworkFileError(f"{where}: no cpd; add an entry under 'cpds'")
        pa = [str(p) for p in cpd.get("parents", arc_parents[n])]
        if sorted(pa) != sorted(arc_parents[n]):
            raise NetworkFileError(
                f"{where}: cpd parents [{', '.join(pa)}] disagree with the arcs "
                f"[{', '.join(arc_parents[n])}]; make them the same"
            )
        if "variance" not in cpd:
            raise NetworkFileError(f"{where}: missing 'variance'")
        var = _scalar(cpd["variance"], f"{where} variance")
        if not var > 0 or not np.isfinite(var):
            raise NetworkFileError(f"{where}: variance must be positive and finite, got {var}")
        coef = cpd.get("coefficients", {})
        if not isinstance(coef, dict):
            raise NetworkFileError(f"{where}: 'coefficients' must map names to numbers")
        extra = set(coef) - set(pa) - {"(Intercept)"}
        if extra:
            raise NetworkFileError(
                f"{where}: coefficients for non-parents {', '.join(sorted(extra))}"
            )
        missing = [p for p in pa if p not in coef]
        if missing:
            raise NetworkFileError(f"{where}: no coefficient for parent(s) {', '.join(missing)}")
        intercept = _scalar(coef.get("(Intercept)", 0.0), f"{where} intercept")
        w = [_scalar(coef[p], f"{where} coefficient of {p}") for p in pa]
        conditionals.append(
            LinearGaussian(
                weight=jnp.asarray(np.array(w, np.float32).reshape(1, len(pa))),
                bias=jnp.asarray([intercept], jnp.float32),
                scale=jnp.asarray([np.sqrt(var)], jnp.float32),
            )
        )
        parents.append(pa)
    return BayesNet(names, parents, conditionals, source=source)


# ---------------------------------------------------------------------------
# deepbn's own format
_ARRAYS = {"weight", "bias", "scale"}


def _encode(c: Conditional) -> dict:
    params: dict = {}
    for field in (f.name for f in dataclasses.fields(c)):
        value = getattr(c, field)
        if field == "net":  # an MLP: its layers and activation
            params["layers"] = [
                {"weight": np.asarray(w).T.tolist(), "bias": np.asarray(b).tolist()}
                for w, b in value.layers  # (in, out) in memory, (out, in) in the file
            ]
            params["activation"] = value.activation
        elif field in _ARRAYS:
            params[field] = np.asarray(value).tolist()
        else:
            params[field] = value
    return params


def _array(value, where: str, ndim: int) -> jnp.ndarray:
    try:
        a = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise NetworkFileError(f"{where}: expected a numeric array") from None
    if ndim == 2 and a.ndim == 1 and a.size == 0:
        a = a.reshape(0, 0)
    if a.ndim != ndim:
        raise NetworkFileError(f"{where}: wrong dimensions: expected a {ndim}-d array")
    return jnp.asarray(a)


def _decode_mlp(params: dict, where: str) -> MLP:
    value = params.get("layers")
    if value is None:
        raise NetworkFileError(f"{where}: missing parameter 'layers'")
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise NetworkFileError(f"{where}: 'layers' must be a list of {{weight, bias}}")
    activation = params.get("activation", "tanh")
    if not isinstance(activation, str):
        raise NetworkFileError(f"{where}: 'activation' must be a name such as \"tanh\"")
    layers = tuple((_array(layer.get("weight"), f"{where} layer {k} weight", 2).T,
                    _array(layer.get("bias"), f"{where} layer {k} bias", 1))
                   for k, layer in enumerate(value))
    return MLP(layers, activation=activation)


def _decode(family: str, params: dict, where: str) -> Conditional:
    if family not in FAMILIES:
        raise NetworkFileError(
            f"{where}: unknown family '{family}'; use one of {', '.join(FAMILIES)}"
        )
    cls = FAMILIES[family]
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for field, spec in fields.items():
        if field == "net":
            kwargs["net"] = _decode_mlp(params, where)
            continue
        if field not in params:
            if spec.default is not dataclasses.MISSING:
                continue
            raise NetworkFileError(f"{where}: missing parameter '{field}'")
        value = params[field]
        if field == "weight":
            kwargs[field] = _array(value, f"{where} {field}", 2)
        elif field in _ARRAYS:
            kwargs[field] = _array(value, f"{where} {field}", 1)
        else:
            kwargs[field] = value
    unknown = set(params) - set(fields) - ({"layers", "activation"} if "net" in fields else set())
    if unknown:
        raise NetworkFileError(f"{where}: unknown parameter(s) {', '.join(sorted(unknown))}")
    return cls(**kwargs)


def _from_deepbn(doc: dict, source: str) -> BayesNet:
    if doc.get("version") != VERSION:
        raise NetworkFileError(f"{source}: unsupported deepbn format version {doc.get('version')}")
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise NetworkFileError(f"{source}: 'nodes' must be a non-empty list")
    names, parents, conds, observed, ties = [], [], [], [], []
    group_params: dict[str, Conditional] = {}
    for k, node in enumerate(nodes):
        if not isinstance(node, dict) or "name" not in node:
            raise NetworkFileError(f"{source}: node #{k} needs a 'name'")
        where = f"{source}: node '{node['name']}'"
        names.append(str(node["name"]))
        parents.append([str(p) for p in node.get("parents", [])])
        flag = node.get("observed", True)
        if not isinstance(flag, bool):
            raise NetworkFileError(f"{where}: 'observed' must be true or false, got {flag!r}")
        observed.append(flag)
        tie = node.get("tie")
        if tie is not None and not (isinstance(tie, str) and tie):
            raise NetworkFileError(f"{where}: 'tie' must be a group name (a non-empty "
                                   f"string), got {tie!r}")
        ties.append(tie)
        if tie is not None and "params" not in node:
            conds.append(None)  # the group's parameters, filled in below
            continue
        conds.append(_decode(node.get("family", ""), node.get("params", {}), where))
        if tie is not None:
            group_params.setdefault(tie, conds[-1])
    for k, tie in enumerate(ties):
        if conds[k] is None:
            if tie not in group_params:
                raise NetworkFileError(f"{source}: no node of tie group '{tie}' gives "
                                       "'params'; give the parameters on one of its nodes")
            conds[k] = group_params[tie]
    return BayesNet(names, parents, conds, observed, source=source, ties=ties)


def network_to_json(bn: BayesNet) -> dict:
    """The deepbn JSON document of ``bn`` (parameters at full float32 precision).

    Tied nodes carry ``"tie"`` and each their group's parameters (readable without ties).
    """
    return {
        "format": FORMAT,
        "version": VERSION,
        "nodes": [
            {
                "name": n,
                "parents": list(pa),
                "observed": obs,
                **({"tie": tie} if tie is not None else {}),
                "family": c.family,
                "params": _encode(c),
            }
            for n, pa, obs, tie, c in zip(bn.names, bn.parents, bn.observed, bn.ties,
                                          bn.conditionals)
        ],
    }


def write_network(path: str | os.PathLike, bn: BayesNet) -> None:
    """Write ``bn`` as deepbn JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(network_to_json(bn), f, indent=1)
        f.write("\n")
