"""Prior knowledge about the graph: required and forbidden edges, tiers, soft edge priors.

**Hard knowledge** fixes entries of the adjacency matrix. DiBS's graph model
becomes p(g_ij = 1 | Z) = σ(α u_i·v_j) for the free pairs and 1 (required) or
0 (forbidden) for the fixed ones (:mod:`deepbn.structure.dibs`), so every graph
sampled for a gradient, the soft graphs of the acyclicity penalty and the
particles' hard graphs hold it: the posterior gives a required edge probability
exactly 1 and a forbidden one exactly 0. **Tiers** (a temporal or causal order
of groups of variables) forbid every edge from a later tier into an earlier
one; variables without a tier are not constrained.

**Soft knowledge** is a prior probability p_ij for some edges i -> j. It
multiplies the structural prior (Erdős–Rényi or scale-free) by independent
Bernoulli factors, an edge-confidence prior in the manner of Castelo & Siebes
(Int. J. Approx. Reasoning 24, 2000): with O the pairs with an opinion,

    log p(G) = log p_struct(G) + Σ_{(i,j) ∈ O} [g_ij log p_ij + (1 - g_ij) log(1 - p_ij)]

up to a constant (a pair without an opinion is the constant factor p = 1/2).
Each such edge's prior odds are multiplied by p_ij / (1 - p_ij): 0.5 leaves
the edge as the structural prior has it, 0.9 makes it 9 times likelier. The
term is a sum over columns, like the structural priors, so DiBS's column-wise
gradient estimator keeps working. p_ij = 0 and p_ij = 1 are the limits of the
formula (log 0 = -∞): they make the edge forbidden or required.

Knowledge that cannot hold in any DAG (an edge both required and forbidden,
required edges forming a cycle, a required edge against the tiers, a required
edge of prior probability 0, ...) and names not among the variables raise a
one-line :class:`~deepbn.errors.DeepBNError` before any work.

Example:
    >>> k = Knowledge.from_names(["a", "b", "c"], require=[("a", "b")],
    ...                          tiers={"a": 0, "b": 1, "c": 1}, edge_prior={("b", "c"): 0.8})
    >>> k.forbidden.astype(int).tolist()   # b -> a and c -> a go against the tiers
    [[0, 0, 0], [1, 0, 0], [1, 0, 0]]
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from deepbn import graph
from deepbn.errors import DataError, KnowledgeError
from deepbn.io.tables import read_csv_rows

SOURCES = {"forbidden": "the forbidden edges", "required": "the required edges",
           "tiers": "the tiers", "edge_prior": "the edge prior"}


class Knowledge(NamedTuple):
    """What is known about the graph before the data: ``A[i, j]`` is the edge i -> j.

    Build it with :meth:`from_names` (names) or directly from arrays, then
    :meth:`check` (``learn_structure`` does) validates it and folds prior
    probabilities 0 and 1 into ``forbidden`` and ``required``.
    """

    forbidden: np.ndarray  # (d, d) bool: i -> j must be absent
    required: np.ndarray  # (d, d) bool: i -> j must be present
    prior: np.ndarray  # (d, d) float: prior P(i -> j); NaN where there is no opinion

    @classmethod
    def none(cls, d: int) -> Knowledge:
        """No knowledge about ``d`` variables."""
        return cls(np.zeros((d, d), bool), np.zeros((d, d), bool), np.full((d, d), np.nan))

    @classmethod
    def from_names(cls, names: Sequence[str], forbid: Iterable[tuple[str, str]] = (),
                   require: Iterable[tuple[str, str]] = (),
                   tiers: Mapping[str, int] | None = None,
                   edge_prior: Mapping[tuple[str, str], float] | None = None,
                   sources: Mapping[str, str] | None = None) -> Knowledge:
        """Knowledge given by variable names, checked (see :meth:`check`).

        ``forbid`` and ``require`` are (cause, effect) pairs, ``tiers`` maps a
        variable to its tier (edges go from a tier to the same or a later one),
        ``edge_prior`` maps (cause, effect) to a prior probability. ``sources``
        names where each kind came from, for the messages (e.g. file names).
        """
        names = list(names)
        src = {**SOURCES, **(sources or {})}
        index = _index(names)
        d = len(names)
        F = _pairs_matrix(forbid, index, names, src["forbidden"])
        R = _pairs_matrix(require, index, names, src["required"])
        tier = np.full(d, np.nan)
        for name, t in (tiers or {}).items():
            tier[_lookup(name, index, names, src["tiers"])] = float(t)
        P = np.full((d, d), np.nan)
        for (cause, effect), p in (edge_prior or {}).items():
            P[_lookup(cause, index, names, src["edge_prior"]),
              _lookup(effect, index, names, src["edge_prior"])] = float(p)
        return _assemble(names, F, R, tier, P, src)

    @property
    def d(self) -> int:
        return int(np.asarray(self.forbidden).shape[0])

    def is_empty(self) -> bool:
        """True when nothing is fixed and there is no opinion on any edge."""
        off = ~np.eye(self.d, dtype=bool)
        return not (np.any(np.asarray(self.forbidden, bool) & off)
                    or np.any(np.asarray(self.required, bool))
                    or np.any(~np.isnan(np.asarray(self.prior, float))))

    def check(self, names: Sequence[str] | None = None,
              sources: Mapping[str, str] | None = None) -> Knowledge:
        """This knowledge validated for the variables ``names`` (default x0, x1, ...), with
        prior probabilities 0 / 1 made forbidden / required edges; one-line
        :class:`~deepbn.errors.KnowledgeError` when it cannot hold in any DAG."""
        d = self.d
        names = list(names) if names is not None else [f"x{i}" for i in range(d)]
        arrays = [np.asarray(a) for a in self]
        for field, a in zip(self._fields, arrays):
            if a.shape != (len(names), len(names)):
                raise KnowledgeError(f"knowledge: '{field}' has shape {a.shape}, but there are "
                                     f"{len(names)} variables; give a {len(names)} x "
                                     f"{len(names)} array")
        F, R, P = arrays
        return _assemble(names, F.astype(bool), R.astype(bool), np.full(len(names), np.nan),
                         P.astype(float), {**SOURCES, **(sources or {})})

    def free(self) -> np.ndarray:
        """(d, d) bool: the pairs i -> j the data decide (off-diagonal, not fixed)."""
        return ~np.eye(self.d, dtype=bool) & ~self.forbidden & ~self.required

    def log_prior_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """(log p_ij, log(1 - p_ij)) where there is a soft opinion, 0 elsewhere."""
        P = np.asarray(self.prior, np.float64)
        soft = ~np.isnan(P) & (P > 0) & (P < 1) & self.free()
        safe = np.where(soft, P, 0.5)
        return np.where(soft, np.log(safe), 0.0), np.where(soft, np.log1p(-safe), 0.0)

    def describe(self, names: Sequence[str]) -> dict:
        """The knowledge as JSON (config.json): edge lists and the soft opinions."""
        P = np.asarray(self.prior, float)
        return {
            "forbidden": [[names[i], names[j]] for i, j in zip(*np.nonzero(self.forbidden))],
            "required": [[names[i], names[j]] for i, j in zip(*np.nonzero(self.required))],
            "edge_prior": [[names[i], names[j], float(P[i, j])]
                           for i, j in zip(*np.nonzero(~np.isnan(P)))],
        }


def _index(names: Sequence[str]) -> dict[str, int]:
    return {n: k for k, n in enumerate(names)}


def _lookup(name: str, index: dict[str, int], names: Sequence[str], source: str) -> int:
    if name not in index:
        raise KnowledgeError(f"{source}: unknown variable '{name}'; the variables are "
                             f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''}")
    return index[name]


def _pairs_matrix(pairs, index, names, source) -> np.ndarray:
    A = np.zeros((len(names), len(names)), bool)
    for cause, effect in pairs:
        A[_lookup(cause, index, names, source), _lookup(effect, index, names, source)] = True
    return A


def _assemble(names: list[str], F: np.ndarray, R: np.ndarray, tier: np.ndarray,
              P: np.ndarray, src: Mapping[str, str]) -> Knowledge:
    """Check every kind of knowledge against the others and fold it into one value."""
    d = len(names)
    off = ~np.eye(d, dtype=bool)

    def edge(i, j):
        return f"{names[i]} -> {names[j]}"

    bad = np.isinf(P) | (P < 0) | (P > 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise KnowledgeError(f"{src['edge_prior']}: P({edge(i, j)}) = {P[i, j]:g} is not a "
                             "probability; give a number in [0, 1] or leave the entry blank")
    for source, selfloop in ((src["required"], np.diag(R)),
                             (src["edge_prior"], np.diag(np.nan_to_num(P)) > 0)):
        if selfloop.any():
            k = int(np.flatnonzero(selfloop)[0])
            raise KnowledgeError(f"{source}: {edge(k, k)} would make {names[k]} its own parent; "
                                 "remove it")
    F = F & off
    P = np.where(off, P, np.nan)
    both = R & F
    if both.any():
        i, j = np.argwhere(both)[0]
        raise KnowledgeError(f"{edge(i, j)} is required ({src['required']}) and forbidden "
                             f"({src['forbidden']}); keep it in only one of them")
    T = (tier[:, None] > tier[None, :]) & off  # NaN compares False: untiered is unconstrained
    prior_required = (P == 1) & ~R
    for required, where in ((R, src["required"]),
                            (prior_required, f"prior probability 1 in {src['edge_prior']}")):
        against = required & T
        if against.any():
            i, j = np.argwhere(against)[0]
            raise KnowledgeError(
                f"{edge(i, j)} ({where}) goes from tier {tier[i]:g} to the earlier tier "
                f"{tier[j]:g} ({src['tiers']}); edges may only go to the same or a later tier")
    for fixed, mask, value in ((f"required ({src['required']})", R, 0.0),
                               (f"forbidden ({src['forbidden']})", F, 1.0)):
        clash = mask & (P == value)
        if clash.any():
            i, j = np.argwhere(clash)[0]
            raise KnowledgeError(f"{edge(i, j)} is {fixed} but has prior probability "
                                 f"{value:g} in {src['edge_prior']}; drop one of the two")
    required = R | prior_required
    forbidden = (F | T | (P == 0)) & off
    cycle = graph.find_cycle(required)
    if cycle is not None:
        path = " -> ".join(names[k] for k in [*cycle, cycle[0]])
        where = src["required"]
        if any(prior_required[a, b] for a, b in zip(cycle, [*cycle[1:], cycle[0]])):
            where += f" and the edges of prior probability 1 in {src['edge_prior']}"
        raise KnowledgeError(f"the required edges form a cycle {path} ({where}); "
                             "no DAG holds them all, remove one")
    prior = np.where(required | forbidden, np.nan, P)
    return Knowledge(forbidden, required, prior)


# -- files ----------------------------------------------------------------------------------

def read_tiers(path: str | os.PathLike, names: Sequence[str]) -> dict[str, int]:
    """A ``variable,tier`` CSV (integer tiers) as a mapping; every name must be a variable."""
    rows = read_csv_rows(path, "the tiers file")
    if not rows or [c.strip().lower() for c in rows[0]] != ["variable", "tier"]:
        raise DataError(f"{path}: a tiers file needs the header line 'variable,tier'")
    index = _index(names)
    tiers: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{path}, line {lineno}: expected 'variable,tier'")
        name, value = (c.strip() for c in row)
        _lookup(name, index, names, f"{path}, line {lineno}")
        if name in tiers:
            raise DataError(f"{path}, line {lineno}: '{name}' is listed twice; give each "
                            "variable one tier")
        try:
            tiers[name] = int(value)
        except ValueError:
            raise DataError(f"{path}, line {lineno}: tier '{value}' of '{name}' is not an "
                            "integer") from None
    return tiers


def read_edge_prior(path: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """A table of prior edge probabilities like ``edge_probs.csv``: the variable names as
    header and first column (any order, any subset), entry [i, j] = prior P(i -> j); a
    blank entry (or a variable left out) has no opinion. Returns (d, d), NaN = no opinion."""
    rows = [r for r in read_csv_rows(path, "the edge prior file")
            if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the edge-prior file is empty; give a header of variable names")
    index = _index(names)
    columns = [c.strip() for c in rows[0][1:]]
    _no_repeats(columns, f"{path}, header")
    col_idx = [_lookup(c, index, names, f"{path}, header") for c in columns]
    P = np.full((len(names), len(names)), np.nan)
    seen: list[str] = []
    for lineno, row in enumerate(rows[1:], start=2):
        name = row[0].strip()
        i = _lookup(name, index, names, f"{path}, line {lineno}")
        seen.append(name)
        _no_repeats(seen, f"{path}, line {lineno}")
        cells = row[1:]
        if len(cells) != len(columns):
            raise DataError(f"{path}, line {lineno}: {len(cells)} entries for {len(columns)} "
                            "columns; leave an entry blank for no opinion")
        for cell, column, j in zip(cells, columns, col_idx):
            cell = cell.strip()
            if not cell:
                continue
            try:
                p = float(cell)
            except ValueError:
                p = math.nan
            if not math.isfinite(p):
                raise DataError(f"{path}, line {lineno}: '{cell}' in column '{column}' is not "
                                "a probability; give a number in [0, 1] or leave it blank")
            P[i, j] = p
    return P


def _no_repeats(labels: list[str], where: str) -> None:
    if len(set(labels)) != len(labels):
        twice = next(n for n in labels if labels.count(n) > 1)
        raise DataError(f"{where}: '{twice}' is listed twice; give each variable once")


def read_knowledge(names: Sequence[str], forbid: str | os.PathLike | None = None,
                   require: str | os.PathLike | None = None,
                   tiers: str | os.PathLike | None = None,
                   edge_prior: str | os.PathLike | None = None) -> Knowledge | None:
    """Knowledge from ``discover``'s files (``cause,effect`` edge lists, a ``variable,tier``
    table, an edge-probability table), checked; ``None`` when no file is given."""
    if forbid is None and require is None and tiers is None and edge_prior is None:
        return None
    names = list(names)
    d = len(names)
    F = graph.read_edge_list(forbid, names) if forbid is not None else np.zeros((d, d), bool)
    R = graph.read_edge_list(require, names) if require is not None else np.zeros((d, d), bool)
    tier = np.full(d, np.nan)
    if tiers is not None:
        for name, t in read_tiers(tiers, names).items():
            tier[names.index(name)] = t
    P = read_edge_prior(edge_prior, names) if edge_prior is not None else np.full((d, d), np.nan)
    given = {"forbidden": forbid, "required": require, "tiers": tiers, "edge_prior": edge_prior}
    src = {**SOURCES, **{k: str(v) for k, v in given.items() if v is not None}}
    return _assemble(names, F, R, tier, P, src)
