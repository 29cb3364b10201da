"""``deepbn sweep``: a grid of deepbn runs from a TOML spec, pooled into one table."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from deepbn.cli.common import JsonOption, console, progress_bar, report
from deepbn.errors import UsageError, require_choice, require_count


def _commands() -> set[str]:
    from deepbn.cli.app import app

    return ({c.name for c in app.registered_commands if c.name}
            | {g.name for g in app.registered_groups if g.name})


def _number(value) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def sweep(
    spec_file: Path = typer.Argument(..., metavar="SPEC", help="The sweep: a TOML file with "
                                     "command, seeds and the tables grid, resources, plot."),
    out: Path = typer.Option(..., "--out", help="Folder for the runs and the pooled results "
                                                "(created); run again to resume."),
    executor: str = typer.Option("local", "--executor", help="local (here, one run after "
                                 "another or --jobs at once) or ray."),
    jobs: int = typer.Option(None, "--jobs", help="Runs at once (local: default 1; ray: "
                                                  "default as many as the resources allow)."),
    address: str = typer.Option(None, "--address", help="Address of a running Ray cluster "
                                "(ray executor); default: a local Ray started for the sweep."),
    as_json: bool = JsonOption,
) -> None:
    """Run a grid of deepbn commands (settings x seeds), each in its own folder under
    OUT/runs/; pool their numbers into OUT/results.csv and OUT/results.md (mean ± s.e.
    over seeds) and draw the spec's plots. Finished runs are skipped, interrupted ones
    resume."""
    from deepbn.results import ResultsFolder
    from deepbn.sweep import execute, pool
    from deepbn.sweep.spec import load_spec

    require_choice("--executor", executor, ("local", "ray"))
    if jobs is not None:
        require_count("--jobs", jobs)
    if address is not None and executor != "ray":
        raise UsageError("--address is the address of a Ray cluster; add --executor ray")
    spec = load_spec(spec_file, commands=_commands() - {"sweep"})
    if executor == "ray":
        execute._import_ray()  # before any folder is made
    runs = spec.runs()
    folder = ResultsFolder(out, "sweep")
    folder.write_config({"spec": str(spec_file.resolve()), "command": list(spec.command),
                         "grid": spec.grid, "seeds": list(spec.seeds), "executor": executor,
                         "jobs": jobs, "address": address})
    todo = [r for r in runs if not execute.finished(r, execute.run_folder(out, r))]
    skipped = len(runs) - len(todo)
    if skipped:
        console.print(f"{skipped} of {len(runs)} runs already done in {out}/runs; "
                      f"running {len(todo)}")
    start = time.perf_counter()
    columns = [TextColumn("sweep"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
               TimeElapsedColumn()]
    outcomes = []
    with progress_bar(*columns) as bar:
        task = bar.add_task("sweep", total=len(runs), completed=skipped)

        def on_end(outcome):
            outcomes.append(outcome)
            bar.advance(task)
            line = f"{outcome.status:6}  {outcome.name}  {outcome.seconds:.1f} s"
            if outcome.status == "done" and spec.metrics:
                run = next(r for r in runs if r.name == outcome.name)
                _, (row,) = pool.collect(spec, [run], out)
                line += "  " + "  ".join(f"{m} {_number(row.get(m))}" for m in spec.metrics)
            elif outcome.status == "failed":
                line += f"  exit {outcome.exit_code}: {outcome.error}"
            bar.console.print(Text(line), soft_wrap=True)
            # pooled after every run: a grid of hours shows its numbers as they come
            pool.write_results(spec, runs, out)

        if executor == "ray":
            execute.run_ray(todo, out, spec, jobs=jobs, address=address, on_end=on_end)
        else:
            execute.run_local(todo, out, spec, jobs=jobs or 1, on_end=on_end)
    seconds = time.perf_counter() - start
    columns, rows = pool.write_results(spec, runs, out)
    for warning in pool.write_plots(spec, rows, out):
        console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    failed = [r for r in rows if r["status"] == "failed"]
    unfinished = [r for r in rows if r["status"] not in ("done", "failed")]
    summary = folder.write_summary({
        "spec": str(spec_file), "runs": len(runs), "ran": len(outcomes), "skipped": skipped,
        "done": sum(r["status"] == "done" for r in rows), "failed": len(failed),
        "seconds": round(seconds, 3), "executor": executor,
    })
    plots = ", ".join(p.file for p in spec.plots if (out / p.file).exists())
    lines = [f"{summary['done']} of {len(runs)} runs done ({len(outcomes)} ran, {skipped} "
             f"already done) in {seconds:.1f} s",
             f"results in {out}/ (results.csv, results.md{', ' + plots if plots else ''}; "
             "one folder per run in runs/)"]
    if failed:
        lines.append(f"{len(failed)} of {len(runs)} runs failed (results.csv, column error; "
                     f"each run's output in {out}/runs/NAME/sweep.log); run the sweep again "
                     "to retry them")
    if unfinished:  # a command stopped by a signal that was not the sweep's
        lines.append(f"{len(unfinished)} of {len(runs)} runs did not finish; run the sweep "
                     "again to resume them")
    report(summary, as_json, lines)
    if failed or unfinished:
        raise typer.Exit(1)
