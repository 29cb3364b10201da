"""``deepbn sweep``: spec checks, grid expansion, resumable execution, pooled results.

The logic is tested with a stand-in for the ``deepbn`` executable (a small Python
script that writes summary.json / eval.json from its options), which costs a
Python start-up per run instead of a JAX one; the sweep itself is run once
through the installed executable on a 2-run grid of ``deepbn sample`` (each
``deepbn`` process costs seconds of imports).
"""

import csv
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deepbn.errors import UsageError
from deepbn.sweep import execute, expand, load_spec, pool, run_name
from deepbn.sweep.spec import OUT

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")
REPO = Path(__file__).resolve().parents[1]

# A stand-in for deepbn: `train --lr X --seed S --out DIR` writes summary.json,
# `eval DIR --seed S` eval.json, `fail` exits 2 with an error line, `wait` waits for SIGTERM.
FAKE = r'''
import json, os, signal, sys, time
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(" ".join(args) + "\n")
opts = {a[2:]: b for a, b in zip(args, args[1:]) if a.startswith("--")}
command = args[0]
if command == "train":
    out = Path(opts["out"])
    lr, seed = float(opts["lr"]), int(opts["seed"])
    summary = {"loss": lr * 10 + seed ** 2, "steps": 7, "missing": None, "name": "x",
               "flag": True, "nested": {"a": 1}, "seed": seed}
    (out / "summary.json").write_text(json.dumps(summary))
elif command == "eval":
    out = Path(args[1])
    seed = int(opts["seed"])
    loss = json.loads((out / "summary.json").read_text())["loss"]
    (out / "eval.json").write_text(json.dumps({"ll": -loss - seed, "loss": loss / 2,
                                               "steps": 7}))
elif command == "fail":
    print("some output\nerror: planted failure", file=sys.stderr)
    sys.exit(2)
elif command == "wait":
    out = Path(opts["out"])
    def stop(signum, frame):
        (out / "stopped").write_text(str(signum))
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    (out / "started").write_text("1")
    time.sleep(60)
'''


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_deepbn.py"
    script.write_text(FAKE)
    calls = tmp_path / "calls.txt"
    calls.touch()
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    return [sys.executable, str(script)], calls


def _spec(tmp_path, text: str, commands=None):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return load_spec(path, commands)


def test_runs_are_every_setting_times_every_seed_with_readable_folder_names():
    runs = expand(["deepbn vae train --data {data} --nodes 3", "vae eval {out} --iw 10"],
                  {"structure": ["learned", "none"], "data": ["d/a.npz"], "batch_norm": [True],
                   "lr": [0.001]}, [0, 1])
    assert [r.name for r in runs][:2] == [
        "structure=learned,data=d_a.npz~" + _sha("d/a.npz") + ",batch_norm=true,lr=0.001,seed=0",
        "structure=none,data=d_a.npz~" + _sha("d/a.npz") + ",batch_norm=true,lr=0.001,seed=0",
    ]
    # seed-major: a sweep stopped part-way has every setting at its first seed
    assert [(r.settings["structure"], r.seed) for r in runs] == [
        ("learned", 0), ("none", 0), ("learned", 1), ("none", 1)]
    # placed settings fill their placeholder; the others go to the first step as options
    assert runs[3].steps == (
        ("vae", "train", "--data", "d/a.npz", "--nodes", "3", "--structure", "none",
         "--batch-norm", "--lr", "0.001", "--seed", "1", "--out", OUT),
        ("vae", "eval", OUT, "--iw", "10", "--seed", "1"))
    assert runs[3].argv("/r/x")[1][2] == "/r/x"
    placed = expand(["sample example:x -n {n} -o {out}/d.csv --seed {seed}"], {"n": [5]}, [3])
    assert placed[0].steps == (("sample", "example:x", "-n", "5", "-o", f"{OUT}/d.csv",
                                "--seed", "3"),)
    assert expand(["discover d.csv"], {"on": [False]}, [0])[0].steps[0][2:] == (
        "--seed", "0", "--out", OUT)


def _sha(text):
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:6]


def test_values_that_differ_only_in_dropped_characters_get_distinct_folders():
    names = {run_name({"data": v}, 0) for v in ("a/b.csv", "a_b.csv", "a b.csv", "x" * 300)}
    assert len(names) == 4 and all(len(n) < 100 and "/" not in n for n in names)
    assert run_name({"data": "a_b.csv"}, 0) == "data=a_b.csv,seed=0"


@pytest.mark.parametrize("text, message", [
    ("seeds = [0]", "command: missing"),
    ("command = 'discover d.csv'\ngrdi = {}", "grdi: unknown key"),
    ("command = 'discover d.csv'\n[grid]\nsteps = []", "grid.steps: an empty list"),
    ("command = 'discover d.csv'\n[grid]\nsteps = [1, 1]", "grid.steps: the value 1 is listed"),
    ("command = 'discover d.csv'\n[grid]\nseed = [1, 2]", "grid.seed: 'seed' is the sweep's"),
    ("command = 'discover d.csv'\n[grid]\nm = [[1]]", "grid.m: values must be strings"),
    ("command = 'discover d.csv --steps {stepz}'\n[grid]\nsteps = [1]",
     "command: {stepz} is not a grid setting (grid: steps"),
    ("command = ['sample x -o d.csv', 'discover d.csv']", "command[0]: the run's folder is"),
    ("command = 'discover d.csv --seed 3'", "command: leave --seed out"),
    ("command = 'discovr d.csv'", "command: 'discovr' is not a deepbn command"),
    ("command = 'sweep s.toml'", "command: 'sweep' is not a deepbn command"),
    ("command = 'discover \"d.csv'", "command: cannot split"),
    ("command = 'discover d.csv'\nseeds = [0, -1]", "seeds: must be a list of non-negative"),
    ("command = 'discover d.csv'\nseeds = 0", "seeds: a count of seeds must be at least 1"),
    ("command = 'discover d.csv'\n[resources]\ngpus = -1", "resources.gpus: must be a number"),
    ("command = 'discover d.csv'\n[resources]\nmemory = 1", "resources.memory: unknown key"),
    ("command = 'discover d.csv'\n[env]\nX = 1", "env.X: must be a string"),
    ("command = 'discover d.csv'\n[grid]\nn = [1]\n[[plot]]\nmetric = 'e'\nx = 'm'",
     "plot[0].x: 'm' is not a grid setting (grid: n)"),
    ("command = 'discover d.csv'\n[grid]\nn = [1]\n[[plot]]\nx = 'n'", "plot[0].metric: missing"),
    ("command = 'discover d.csv'\n[grid]\nn = [1]\n[[plot]]\nmetric = 'e'\nx = 'n'\n"
     "file = '../e.png'", "plot[0].file: must be a file name ending in .png"),
    ("command = 'discover d.csv'\n[grid]\nn = [1]\n[[plot]]\nmetric = 'e'\nx = 'n'\n"
     "logy = 'yes'", "plot[0].logy: must be true or false, got 'yes'"),
    ("command = 'discover d.csv'\n[grid\n", "not valid TOML"),
])
def test_spec_mistakes_are_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(UsageError) as e:
        _spec(tmp_path, text, commands={"discover", "sample"})
    assert message in str(e.value) and str(tmp_path / "spec.toml") in str(e.value)
    assert "\n" not in str(e.value)


def test_the_example_specs_expand():
    specs = sorted((REPO / "sweeps").glob("*.toml")) + sorted((REPO / "bench").glob("*.toml"))
    assert specs
    for path in specs:
        spec = load_spec(path, {"sample", "discover", "fit", "posterior", "vae", "siren"})
        assert len(spec.runs()) == math.prod(map(len, spec.grid.values())) * len(spec.seeds)


def test_the_kept_graph_vae_runs_count_as_done_for_their_spec():
    """sweeps/results/graph_vae_mnist holds finished runs for later sittings: each must be a
    run of sweeps/graph_vae_mnist.toml that the sweep skips, with the metrics it pools."""
    spec = load_spec(REPO / "sweeps" / "graph_vae_mnist.toml", {"vae"})
    runs = {r.name: r for r in spec.runs()}
    kept = sorted((REPO / "sweeps" / "results" / "graph_vae_mnist" / "runs").iterdir())
    assert kept
    for folder in kept:
        assert folder.name in runs, folder.name
        assert execute.finished(runs[folder.name], folder), folder.name
        numbers = json.loads((folder / "eval.json").read_text())
        assert set(spec.metrics) <= set(numbers) | set(
            json.loads((folder / "summary.json").read_text())), folder.name


TRAIN_EVAL = """
command = ["{mode} --lr {lr}", "eval {out}"]
seeds = [0, 1, 2]
metrics = ["loss", "ll"]
[grid]
mode = ["train", "fail"]
lr = [0.5, 0.25]
[[plot]]
metric = "ll"
x = "lr"
"""


def test_a_sweep_pools_every_run_and_a_rerun_runs_only_what_is_not_done(tmp_path, fake):
    program, calls = fake
    spec = _spec(tmp_path, TRAIN_EVAL)
    runs, out = spec.runs(), tmp_path / "out"
    ended = []
    outcomes = execute.run_local(runs, out, spec, jobs=2, on_end=ended.append, program=program)
    assert len(calls.read_text().splitlines()) == 6 * 2 + 6  # train + eval, fail stops at once
    assert sorted(o.name for o in ended) == sorted(r.name for r in runs)
    assert {o.status for o in outcomes if "mode=fail" in o.name} == {"failed"}
    columns, rows = pool.write_results(spec, runs, out)
    assert pool.write_plots(spec, rows, out) == [] and (out / "ll_vs_lr.png").exists()

    # results.csv against the files each run wrote
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["run"] for r in table] == [r.name for r in runs]
    # eval.json's loss differs from summary.json's: a column of its own; its steps agree: one
    assert list(table[0]) == ["run", "status", "mode", "lr", "seed", "exit_code", "error",
                              "wall_seconds", "loss", "steps", "missing", "summary.seed", "ll",
                              "eval.loss"]
    for row, run in zip(table, runs):
        assert (row["mode"], float(row["lr"]), int(row["seed"])) == (
            run.settings["mode"], run.settings["lr"], run.seed)
        folder = out / "runs" / run.name
        if run.settings["mode"] == "fail":
            assert (row["status"], row["exit_code"]) == ("failed", "2")
            assert row["error"] == "error: planted failure" and row["loss"] == ""
            continue
        summary = json.loads((folder / "summary.json").read_text())
        evaluation = json.loads((folder / "eval.json").read_text())
        assert row["status"] == "done" and row["error"] == "" and row["missing"] == ""
        assert float(row["loss"]) == summary["loss"] and int(row["steps"]) == summary["steps"]
        assert float(row["ll"]) == evaluation["ll"]
        assert float(row["eval.loss"]) == evaluation["loss"]
        assert int(row["summary.seed"]) == summary["seed"]

    # results.md: mean ± standard error over the three seeds, computed here from the files
    md = (out / "results.md").read_text().splitlines()
    header = md.index("| mode | lr | seeds | loss | ll |")
    body = [line.strip("| ").split(" | ") for line in md[header + 2:]]
    assert [b[:3] for b in body] == [["train", "0.5", "3/3"], ["train", "0.25", "3/3"],
                                     ["fail", "0.5", "0/3"], ["fail", "0.25", "0/3"]]
    for cells, lr in zip(body[:2], (0.5, 0.25)):
        for cell, name, key in ((cells[3], "summary.json", "loss"), (cells[4], "eval.json", "ll")):
            values = [json.loads((out / "runs" / f"mode=train,lr={lr},seed={s}" / name)
                                 .read_text())[key] for s in range(3)]
            mean, se = (float(x) for x in cell.split(" ± "))
            assert mean == pytest.approx(statistics.mean(values), rel=1e-3)
            # printed to 2 significant digits
            assert se == pytest.approx(statistics.stdev(values) / math.sqrt(3), rel=0.03)
    assert body[2][3:] == ["–", "–"]

    # a rerun: nothing that is done runs again; failed runs are tried again
    calls.write_text("")
    todo = [r for r in runs if not execute.finished(r, execute.run_folder(out, r))]
    assert sorted(r.name for r in todo) == sorted(r.name for r in runs if "fail" in r.name)
    # a run interrupted after its first step resumes at its second
    first = runs[0]
    record_path = execute.run_folder(out, first) / execute.RECORD
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "status": "partial", "steps_done": 1}))
    assert not execute.finished(first, execute.run_folder(out, first))
    execute.run_local([first], out, spec, program=program)
    assert calls.read_text().split() == ["eval", str((out / "runs" / first.name).resolve()),
                                         "--seed", "0"]
    assert execute.finished(first, execute.run_folder(out, first))
    # the same folder with other command lines is another run
    other = expand(["train --lr {lr} --steps 3", "eval {out}"], {"mode": ["train"],
                                                                    "lr": [0.5]}, [0])[0]
    assert other.name == first.name and not execute.finished(other, execute.run_folder(out, other))


def test_an_interrupted_sweep_stops_its_commands_and_leaves_their_runs_to_resume(tmp_path, fake):
    program, calls = fake
    spec = _spec(tmp_path, "command = 'wait'\nseeds = 2\n")
    runs, out = spec.runs(), tmp_path / "out"
    started = [execute.run_folder(out, r) / "started" for r in runs]

    def interrupt_when_both_wait():
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in started) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    # Ctrl-C, also where this process was started with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_when_both_wait, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            execute.run_local(runs, out, spec, jobs=2, program=program)
    finally:
        signal.signal(signal.SIGINT, previous)
    for run in runs:  # each command was stopped with SIGTERM, the run is left to resume
        folder = execute.run_folder(out, run)
        assert (folder / "stopped").read_text() == str(int(signal.SIGTERM))
        assert execute.read_record(folder) is None and not execute.finished(run, folder)


def test_missing_ray_is_a_one_line_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"^--executor ray needs Ray: pip install 'deepbn\[ray\]'"):
        execute._import_ray()


@pytest.mark.filterwarnings("ignore:os.fork")  # JAX, imported by other tests, warns of Ray's
def test_ray_executor_on_a_local_ray_with_two_cpus(tmp_path, fake):
    import ray  # the test extra installs it: a missing Ray fails here, it is not skipped
    program, calls = fake
    spec = _spec(tmp_path, "command = ['train --lr {lr}']\n[grid]\nlr = [1.0, 2.0]\n"
                           "[resources]\ncpus = 1\n")
    greedy = _spec(tmp_path, "command = 'train --lr 1'\n[resources]\ncpus = 3\n")
    runs, out = spec.runs(), tmp_path / "out"
    ended = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the sweep's own
    try:                                                                 # starts the same way
        with pytest.raises(UsageError, match="resources.cpus: each run asks for 3 but the Ray "
                                             "cluster has 2 in all"):
            execute.run_ray(greedy.runs(), out, greedy, program=program)
        outcomes = execute.run_ray(runs, out, spec, jobs=2, on_end=ended.append,
                                   program=program)
    finally:
        ray.shutdown()
    assert sorted(o.status for o in outcomes) == ["done", "done"] and len(ended) == 2
    for run in runs:
        summary = json.loads((execute.run_folder(out, run) / "summary.json").read_text())
        assert summary["loss"] == run.settings["lr"] * 10
        assert execute.finished(run, execute.run_folder(out, run))


def test_sweep_through_the_executable(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "spec.toml").write_text(
        "command = 'sample net.json -n {n} -o {out}/data.csv'\n"
        "[grid]\nn = [3, 5]\n[[plot]]\nmetric = 'rows'\nx = 'n'\n")
    shutil.copy(REPO / "src" / "deepbn" / "networks" / "ecoli70.json", folder / "net.json")
    (folder / "bad.toml").write_text("command = 'discover d.csv'\n[grid]\nsteps = 10\nn = []\n")
    out = tmp_path / "out"

    def sweep(*args):
        return subprocess.run([EXE, "sweep", *args], env=env, capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)

    with ThreadPoolExecutor(2) as threads:
        bad = threads.submit(sweep, str(folder / "bad.toml"), "--out", str(tmp_path / "bad"))
        first = sweep("specs/spec.toml", "--out", "out", "--jobs", "2")
        bad = bad.result()
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: {folder / 'bad.toml'}: grid.n: an empty list; give at least one value"]
    assert not (tmp_path / "bad").exists()
    assert first.returncode == 0, first.stderr[-2000:]
    assert "done    n=3,seed=0" in first.stderr and "done    n=5,seed=0" in first.stderr
    for n in (3, 5):  # net.json is found beside the spec, data.csv lands in the run's folder
        data = out / "runs" / f"n={n},seed=0" / "data.csv"
        assert len(data.read_text().splitlines()) == n + 1
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["run"], r["status"], r["n"]) for r in table] == [
        ("n=3,seed=0", "done", "3"), ("n=5,seed=0", "done", "5")]
    assert "| 3 | 1/1 |" in (out / "results.md").read_text()
    assert "plot[0]: no finished run reported 'rows'" in first.stderr  # sample writes no summary


def test_logy_plots_positive_metrics_and_falls_back_with_a_warning(tmp_path, fake, monkeypatch):
    program, _ = fake
    spec = _spec(tmp_path, TRAIN_EVAL.replace('mode = ["train", "fail"]', 'mode = ["train"]')
                 + "logy = true\n[[plot]]\nmetric = \"loss\"\nx = \"lr\"\nlogy = true\n")
    out = tmp_path / "out"
    execute.run_local(spec.runs(), out, spec, jobs=2, program=program)
    _, rows = pool.write_results(spec, spec.runs(), out)
    drawn = {}
    from deepbn import plots
    real = plots.sweep_lines

    def spy(lines, path, **kw):
        drawn[Path(path).name] = kw["logy"]
        real(lines, path, **kw)

    monkeypatch.setattr(plots, "sweep_lines", spy)
    # ll = -loss - seed < 0 cannot go on a log axis; loss > 0 can
    assert pool.write_plots(spec, rows, out) == [
        "plot[0]: 'll' has values <= 0; ll_vs_lr.png drawn with a linear y axis instead of logy"]
    assert drawn == {"ll_vs_lr.png": False, "loss_vs_lr.png": True}
    assert (out / "ll_vs_lr.png").exists() and (out / "loss_vs_lr.png").exists()
