"""A sweep spec: a small TOML file that names a grid of deepbn runs.

Every combination of the ``[grid]`` settings, times every seed, is one run: the
command lines of ``command`` with the settings filled in, run in a folder of
their own whose name is made of the settings (``model=bge,n=200,seed=1``)::

    command = ["sample example:gaussian-er10 -n {n} -o {out}/data.csv",
               "discover {out}/data.csv --model {model} --steps 300"]
    seeds = [0, 1, 2]

    [grid]
    n = [50, 200]
    model = ["bge", "linear"]

    [resources]          # per run, for the ray executor
    cpus = 1
    gpus = 0

    [[plot]]
    metric = "eshd"
    x = "n"

How a setting reaches a command: ``{name}`` in a step is replaced by the
value; a setting that no step places is added to the first step as
``--name value`` (``_`` becomes ``-``; ``true`` adds the bare flag, ``false``
nothing). ``--seed S`` is added to every step that does not place ``{seed}``,
``--out {out}`` to every step that does not place ``{out}`` (the run's folder).
The steps run in the spec file's folder, so relative paths are relative to it.

Every mistake is one :class:`~deepbn.errors.UsageError` line naming the file and
the TOML key.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from deepbn.errors import UsageError

KEYS = ("command", "seeds", "grid", "metrics", "resources", "env", "plot")
RESOURCE_KEYS = ("cpus", "gpus")
PLOT_KEYS = ("metric", "x", "file", "logx", "logy", "title")
# results.csv columns the sweep itself fills; a setting of the same name would hide them
RESERVED = ("run", "status", "seed", "out", "exit_code", "error", "wall_seconds")
SETTING_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")
OUT = "{out}"
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")

Value = str | int | float | bool


@dataclass(frozen=True)
class Plot:
    """One figure: ``metric`` (mean ± s.e. over seeds) against the setting ``x``,
    one line per combination of the other settings."""

    metric: str
    x: str
    file: str
    logx: bool = False
    logy: bool = False  # for metrics spanning decades (e.g. an overfitting baseline's NLL)
    title: str = ""


@dataclass(frozen=True)
class Run:
    """One point of the grid with one seed: its folder name and its command lines.

    ``steps`` hold the literal ``{out}`` where the run's folder goes, so that a
    run is the same run wherever the sweep's folder lies.
    """

    name: str
    settings: dict[str, Value]
    seed: int
    steps: tuple[tuple[str, ...], ...]

    def argv(self, folder: str | Path) -> list[list[str]]:
        """The command lines (after ``deepbn``) with ``{out}`` replaced by ``folder``."""
        return [[token.replace(OUT, str(folder)) for token in step] for step in self.steps]

    @property
    def variant(self) -> tuple:
        """The settings without the seed: runs that differ only in the seed share it."""
        return tuple(self.settings.items())


@dataclass(frozen=True)
class SweepSpec:
    """A parsed and checked sweep spec (:func:`load_spec`)."""

    path: Path
    command: tuple[str, ...]
    grid: dict[str, tuple[Value, ...]]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...] | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    env: dict[str, str] | None = None
    plots: tuple[Plot, ...] = ()

    @property
    def folder(self) -> Path:
        """Where the steps run: relative paths in the spec are relative to it."""
        return self.path.resolve().parent

    def runs(self) -> list[Run]:
        """Every grid point times every seed, the seed varying fastest."""
        return expand(self.command, self.grid, self.seeds, where=self.path)


def _fail(where: Path | str, key: str, message: str) -> UsageError:
    return UsageError(f"{where}: {key}: {message}")


def text(value: Value) -> str:
    """A setting's value as it appears on a command line and in results."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _safe(value: Value) -> str:
    # readable where it can be; a hash where characters were dropped or cut keeps names distinct
    raw = text(value)
    safe = _SAFE.sub("_", raw)[:40]
    if safe != raw:
        safe += "~" + hashlib.sha1(raw.encode()).hexdigest()[:6]
    return safe


def run_name(settings: dict[str, Value], seed: int) -> str:
    """The folder name of a run: ``key=value`` pairs in grid order, then the seed.

    Values keep letters, digits and ``._+-``; any other character becomes ``_``
    and the name then gets ``~`` and six hex digits of the value's SHA-1, so that
    two values never share a folder (``data/a.csv`` -> ``data_a.csv~1b2c3d``).
    """
    name = ",".join([f"{k}={_safe(v)}" for k, v in settings.items()] + [f"seed={seed}"])
    if len(name) > 200:  # file names stop at 255 bytes
        name = name[:180] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def _option(name: str, value: Value) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else []
    return [flag, text(value)]


def _fill(token: str, values: dict[str, Value]) -> str:
    return PLACEHOLDER.sub(lambda m: text(values[m.group(1)]) if m.group(1) in values
                          else m.group(0), token)


def _split(command: tuple[str, ...], where) -> list[list[str]]:
    steps = []
    for k, line in enumerate(command):
        key = "command" if len(command) == 1 else f"command[{k}]"
        try:
            tokens = shlex.split(line)
        except ValueError as e:
            raise _fail(where, key, f"cannot split '{line}' into arguments ({e})") from None
        if tokens[:1] == ["deepbn"]:
            tokens = tokens[1:]
        if not tokens:
            raise _fail(where, key, "an empty command; write e.g. 'discover data.csv'")
        steps.append(tokens)
    return steps


def expand(command: Iterable[str], grid: dict[str, Iterable[Value]], seeds: Iterable[int],
           where: str | Path = "sweep") -> list[Run]:
    """The runs of a grid: every seed times every combination of the settings' values
    (seed-major order).

    See the module docstring for how settings, the seed and the run's folder
    reach the command lines.

    Example:
        >>> [r.name for r in expand(["discover d.csv"], {"steps": [5, 10]}, [0, 1])]
        ['steps=5,seed=0', 'steps=10,seed=0', 'steps=5,seed=1', 'steps=10,seed=1']
    """
    command = tuple(command)
    grid = {k: tuple(v) for k, v in grid.items()}
    steps = _split(command, where)
    placed = [{m for t in step for m in PLACEHOLDER.findall(t)} for step in steps]
    unplaced = [k for k in grid if not any(k in p for p in placed)]
    runs = []
    # seed-major: a sweep stopped part-way holds every setting at its first seeds
    for seed in seeds:
        for combination in itertools.product(*grid.values()):
            settings = dict(zip(grid, combination))
            values = {**settings, "seed": seed}
            argv = []
            for k, (tokens, names) in enumerate(zip(steps, placed)):
                line = [_fill(t, values) for t in tokens]
                if k == 0:
                    line += [a for name in unplaced for a in _option(name, settings[name])]
                if "seed" not in names:
                    line += ["--seed", str(seed)]
                if "out" not in names:
                    line += ["--out", OUT]
                argv.append(tuple(line))
            runs.append(Run(run_name(settings, seed), settings, seed, tuple(argv)))
    return runs


def _number(where, key: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= minimum):
        raise _fail(where, key, f"must be a number of at least {minimum:g}, got {value!r}")
    return float(value)


def _strings(where, key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(s, str) and s.strip() for s in items):
        raise _fail(where, key, "must be a string or a non-empty list of strings")
    return tuple(items)


def _unknown(where, table: dict, known: Iterable[str], prefix: str = "") -> None:
    for key in table:
        if key not in known:
            raise _fail(where, f"{prefix}{key}", f"unknown key (known: {', '.join(known)})")


def _grid(where, table: Any) -> dict[str, tuple[Value, ...]]:
    if not isinstance(table, dict):
        raise _fail(where, "grid", "must be a table: [grid] with one line per setting, "
                                   "e.g. steps = [100, 300]")
    grid = {}
    for name, values in table.items():
        key = f"grid.{name}"
        if not SETTING_NAME.match(name):
            raise _fail(where, key, "a setting's name starts with a letter and holds only "
                                    "letters, digits, '_' and '-'")
        if name in RESERVED:
            raise _fail(where, key, f"'{name}' is the sweep's own; "
                        + ("give the seeds as seeds = [...]" if name == "seed" else
                           "choose another name"))
        values = values if isinstance(values, list) else [values]
        if not values:
            raise _fail(where, key, "an empty list; give at least one value")
        for v in values:
            if not isinstance(v, (str, int, float, bool)):
                raise _fail(where, key, f"values must be strings, numbers or booleans, "
                                        f"got {v!r}")
        names = [_safe(v) for v in values]
        twice = sorted({text(v) for v, n in zip(values, names) if names.count(n) > 1})
        if twice:
            raise _fail(where, key, f"the value {twice[0]} is listed twice")
        grid[name] = tuple(values)
    return grid


def _seeds(where, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise _fail(where, "seeds", f"a count of seeds must be at least 1, got {value}")
        return tuple(range(value))
    if not isinstance(value, list) or not value or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        raise _fail(where, "seeds", "must be a list of non-negative integers (seeds = [0, 1, 2]) "
                                    "or a count (seeds = 3)")
    if len(set(value)) < len(value):
        raise _fail(where, "seeds", "a seed is listed twice")
    return tuple(value)


def _plots(where, value: Any, grid: dict) -> tuple[Plot, ...]:
    tables = value if isinstance(value, list) else [value]
    plots, files = [], set()
    for k, table in enumerate(tables):
        at = f"plot[{k}]"
        if not isinstance(table, dict):
            raise _fail(where, "plot", "write each plot as a [[plot]] table with metric and x")
        _unknown(where, table, PLOT_KEYS, f"{at}.")
        for key in ("metric", "x"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise _fail(where, f"{at}.{key}", "missing; a plot needs metric = \"NAME\" "
                                                  "and x = \"SETTING\"")
        if table["x"] not in grid:
            raise _fail(where, f"{at}.x", f"'{table['x']}' is not a grid setting (grid: "
                                          f"{', '.join(grid) or 'none'})")
        file = table.get("file", f"{table['metric']}_vs_{table['x']}.png")
        if not isinstance(file, str) or not file.endswith(".png") or "/" in file:
            raise _fail(where, f"{at}.file", f"must be a file name ending in .png, got {file!r}")
        if file in files:
            raise _fail(where, f"{at}.file", f"{file} is written by an earlier plot; name "
                                             "another file")
        files.add(file)
        logx, logy = table.get("logx", False), table.get("logy", False)
        for key, flag in (("logx", logx), ("logy", logy)):
            if not isinstance(flag, bool):
                raise _fail(where, f"{at}.{key}", f"must be true or false, got {flag!r}")
        title = table.get("title", "")
        if not isinstance(title, str):
            raise _fail(where, f"{at}.title", f"must be a string, got {title!r}")
        plots.append(Plot(table["metric"], table["x"], file, logx=logx, logy=logy, title=title))
    return tuple(plots)


def parse_spec(data: dict, path: str | Path = "sweep.toml",
               commands: Iterable[str] | None = None) -> SweepSpec:
    """Check a spec read from TOML (a dict) and return it; ``commands``, if given, are the
    deepbn commands a step may start with."""
    where = Path(path)
    _unknown(where, data, KEYS)
    if "command" not in data:
        raise _fail(where, "command", "missing; e.g. command = \"discover data.csv --steps 300\"")
    command = _strings(where, "command", data["command"])
    steps = _split(command, where)
    grid = _grid(where, data.get("grid", {}))
    for k, tokens in enumerate(steps):
        key = "command" if len(steps) == 1 else f"command[{k}]"
        if commands is not None and tokens[0] not in commands:
            raise _fail(where, key, f"'{tokens[0]}' is not a deepbn command (commands: "
                                    f"{', '.join(sorted(commands))})")
        if tokens[0] == "sweep":
            raise _fail(where, key, "a sweep cannot run a sweep")
        names = {m for t in tokens for m in PLACEHOLDER.findall(t)}
        for name in sorted(names - set(grid) - {"seed", "out"}):
            raise _fail(where, key, f"{{{name}}} is not a grid setting (grid: "
                                    f"{', '.join(grid) or 'none'}; also {{seed}}, {{out}})")
        if "--seed" in tokens:
            raise _fail(where, key, "leave --seed out (the seeds come from seeds = [...]) or "
                                    "write --seed {seed}")
        if ("--out" in tokens or "-o" in tokens) and "out" not in names:
            raise _fail(where, key, "the run's folder is {out}: write --out {out} (or a file "
                                    "in it, -o {out}/data.csv), or leave --out out")
    seeds = _seeds(where, data.get("seeds", [0]))
    metrics = None
    if "metrics" in data:
        metrics = _strings(where, "metrics", data["metrics"])
    resources = data.get("resources", {})
    if not isinstance(resources, dict):
        raise _fail(where, "resources", "must be a table: [resources] with cpus and gpus")
    _unknown(where, resources, RESOURCE_KEYS, "resources.")
    cpus = _number(where, "resources.cpus", resources.get("cpus", 1))
    gpus = _number(where, "resources.gpus", resources.get("gpus", 0))
    env = data.get("env", {})
    if not isinstance(env, dict):
        raise _fail(where, "env", "must be a table: [env] with NAME = \"value\" lines")
    for name, value in env.items():
        if not isinstance(value, str):
            raise _fail(where, f"env.{name}", f"must be a string, got {value!r}")
    plots = _plots(where, data["plot"], grid) if "plot" in data else ()
    return SweepSpec(where, command, grid, seeds, metrics, cpus, gpus, dict(env), plots)


def load_spec(path: str | Path, commands: Iterable[str] | None = None) -> SweepSpec:
    """Read and check a sweep spec file (TOML); every mistake is one line naming the key."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such sweep spec") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder; give the sweep's .toml file") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not valid TOML: not UTF-8 text") from None
    return parse_spec(data, path, commands)
