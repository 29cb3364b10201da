"""A sweep's pooled results: one row per run, mean ± standard error over seeds, plots.

``results.csv`` has one row per run: ``run`` (its folder name), ``status``, the
settings, ``seed``, ``exit_code``, ``error``, ``wall_seconds``, then every number
of the run's ``summary.json`` and ``eval.json`` (top-level numbers; ``null`` is an
empty cell). A number's column is its key, prefixed ``summary.`` where the key is a
setting's name or one of the sweep's own columns, and ``eval.`` where
``summary.json`` has a number of the same name and a different value in some run
(one column where the two files agree). Failed runs keep no numbers.

``results.md`` has one row per setting (grid point): how many of its seeds are
done, then mean ± standard error over those seeds of each metric (the spec's
``metrics``, default every number), the standard error being the sample
standard deviation / sqrt(k) over the k seeds that reported the number.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepbn.atomic import atomic_write
from deepbn.sweep.execute import read_record, run_folder
from deepbn.sweep.spec import RESERVED, Run, SweepSpec, text

OWN = ("run", "status")
AFTER = ("seed", "exit_code", "error", "wall_seconds")
FILES = ("summary.json", "eval.json")


def _numbers(path: Path) -> dict[str, float | None] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def collect(spec: SweepSpec, runs: Sequence[Run], out: str | Path
            ) -> tuple[list[str], list[dict]]:
    """The columns and rows of ``results.csv``, read from the runs' folders."""
    settings = list(spec.grid)
    taken = set(settings) | set(RESERVED) | set(OWN) | set(AFTER)
    found = []
    for run in runs:
        folder = run_folder(out, run)
        record = read_record(folder) or {}
        status = record.get("status", "not run")
        status = "interrupted" if status == "partial" else status
        row = {"run": run.name, "status": status, **run.settings, "seed": run.seed,
               "exit_code": record.get("exit_code"), "error": record.get("error", ""),
               "wall_seconds": record.get("seconds")}
        files = {f: (_numbers(folder / f) if status == "done" else None) or {} for f in FILES}
        found.append((row, files))
    summary_keys = {k for _, files in found for k in files["summary.json"]}
    # a number both files hold: one column where they agree in every run (siren writes its
    # evaluation into both), eval.KEY beside KEY where they differ (vae's train and test ELBO)
    differ = {k for _, f in found for k, v in f["eval.json"].items()
              if k in summary_keys and f["summary.json"].get(k, v) != v}
    metrics: list[str] = []
    for row, files in found:
        for file, numbers in files.items():
            stem = file.removesuffix(".json")
            for key, value in numbers.items():
                if stem == "eval" and key in summary_keys and key not in differ:
                    if key not in files["summary.json"]:
                        row[key] = value
                    continue
                clash = key in taken or (stem == "eval" and key in summary_keys)
                column = f"{stem}.{key}" if clash else key
                row[column] = value
                if column not in metrics:
                    metrics.append(column)
    columns = [*OWN, *settings, *AFTER, *metrics]
    return columns, [row for row, _ in found]


def metric_columns(columns: Sequence[str], spec: SweepSpec) -> list[str]:
    """The numbers of ``results.csv`` (after the sweep's own columns)."""
    return list(columns[len(OWN) + len(spec.grid) + len(AFTER):])


def csv_text(columns: Sequence[str], rows: Sequence[dict]) -> str:
    """``results.csv``: booleans as true/false, missing numbers as empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            cells.append("" if v is None else text(v) if isinstance(v, bool) else
                         repr(v) if isinstance(v, float) else str(v))
        writer.writerow(cells)
    return buffer.getvalue()


def mean_stderr(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, standard error (sample std / sqrt(k); NaN for one value) and k."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, 0
    se = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), se, int(x.size)


def format_mean(mean: float, se: float, k: int) -> str:
    """``3.215 ± 0.41``; the mean alone for one seed, ``–`` for none."""
    if k == 0:
        return "–"
    return f"{mean:.4g}" if k == 1 else f"{mean:.4g} ± {se:.2g}"


def variants(spec: SweepSpec, rows: Sequence[dict]) -> dict[tuple, list[dict]]:
    """Rows grouped by their settings (the seed left out), in grid order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[s] for s in spec.grid), []).append(row)
    return groups


def markdown(spec: SweepSpec, columns: Sequence[str], rows: Sequence[dict]) -> str:
    """``results.md``: a table of mean ± standard error over seeds, one row per setting."""
    metrics = [m for m in (spec.metrics or metric_columns(columns, spec))]
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    lines = [f"# sweep {spec.path.name}", "",
             f"{len(rows)} runs: {done} done, {failed} failed, "
             f"{len(rows) - done - failed} not finished. Each cell is the mean ± standard "
             "error (sample standard deviation / √k) over the k seeds that reported the "
             "number; `seeds`: the seeds done of those in the grid.", ""]
    header = [*spec.grid, "seeds", *metrics]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, group in variants(spec, rows).items():
        ok = [r for r in group if r["status"] == "done"]
        cells = [text(v) for v in key] + [f"{len(ok)}/{len(group)}"]
        cells += [format_mean(*mean_stderr([r.get(m) for r in ok])) for m in metrics]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(spec: SweepSpec, runs: Sequence[Run], out: str | Path
                  ) -> tuple[list[str], list[dict]]:
    """Write ``results.csv`` and ``results.md`` into ``out``; return the columns and rows."""
    out = Path(out)
    columns, rows = collect(spec, runs, out)
    with atomic_write(out / "results.csv") as f:
        f.write(csv_text(columns, rows))
    with atomic_write(out / "results.md") as f:
        f.write(markdown(spec, columns, rows))
    return columns, rows


def write_plots(spec: SweepSpec, rows: Sequence[dict], out: str | Path) -> list[str]:
    """Draw the spec's plots into ``out``; returns one warning line per plot not drawn."""
    from deepbn import plots

    warnings = []
    for k, plot in enumerate(spec.plots):
        ok = [r for r in rows if r["status"] == "done" and r.get(plot.metric) is not None]
        if not ok:
            warnings.append(f"plot[{k}]: no finished run reported '{plot.metric}'; "
                            f"{plot.file} not drawn")
            continue
        others = [s for s in spec.grid if s != plot.x]
        xs = list(spec.grid[plot.x])
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
        lines = {}
        for key, group in variants(spec, ok).items():
            settings = dict(zip(spec.grid, key))
            label = ", ".join(f"{s}={text(settings[s])}" for s in others) or plot.metric
            x, mean, se = lines.setdefault(label, ([], [], []))
            m, s, _ = mean_stderr([r[plot.metric] for r in group])
            x.append(settings[plot.x] if numeric else xs.index(settings[plot.x]))
            mean.append(m)
            se.append(0.0 if math.isnan(s) else s)
        logy = plot.logy and all(m > 0 for _, means, _ in lines.values() for m in means)
        if plot.logy and not logy:
            warnings.append(f"plot[{k}]: '{plot.metric}' has values <= 0; {plot.file} drawn "
                            "with a linear y axis instead of logy")
        plots.sweep_lines(lines, Path(out) / plot.file, xlabel=plot.x, ylabel=plot.metric,
                          ticks=None if numeric else [text(v) for v in xs], logx=plot.logx,
                          logy=logy,
                          title=plot.title or f"{plot.metric} against {plot.x} "
                                              "(mean ± s.e. over seeds)")
    return warnings
