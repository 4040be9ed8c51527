"""Process start to exit of a default run and of an export, against a baseline source tree, run
alternately in one invocation so both see the same machine.

    python benchmarks/bench_run.py --baseline /path/to/other/checkout [--repeats 3]

Times ``python train.py force=true`` (MNIST defaults, dataset cache and store warmed by an untimed
first run, teacher from the cache) and ``python -m classvis.cli export <run> -o file`` with this
tree's ``src`` and with the baseline's, each ``--repeats`` times, and prints the means and the
ratio (this tree / baseline). ``--sweeps N`` also times the ``table5`` sweep N times per tree
(fresh store and teacher cache each, dataset caches warm) with its mean ``time/log``, and lists
every metric of its runs that differs between the trees; ``--searches N`` times the 20-trial
search (``-m hparams_search=student_accuracy``, teacher cached) N times per tree. Needs the
real MNIST (and, for the sweep, Fashion-MNIST and the CIFAR-10 JPEGs) under ``$CLASSVIS_DATA``
(default ../shared/data). Targets (issue: start to result in a few seconds): a run at most 5 s,
an export under 3 s, the sweep at most 50 s, at most 1 s of figures and logging per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classvis import runkeys as keys

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], tree: Path, folder: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env={**env, "PYTHONPATH": str(tree / "src")},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"benchmark: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweeps", type=int, default=0,
                        help="also time the table5 sweep this many times per tree")
    parser.add_argument("--searches", type=int, default=0,
                        help="also time the 20-trial search this many times per tree")
    args = parser.parse_args()
    data = Path(os.environ.get("CLASSVIS_DATA", ROOT.parent / "shared" / "data"))
    if not (data / "MNIST" / "raw").is_dir():
        sys.exit(f"benchmark: real MNIST not found under {data}/MNIST/raw; set CLASSVIS_DATA")
    trees = {"baseline": args.baseline.resolve(), "this tree": ROOT}
    times: dict[str, dict[str, list[float]]] = {name: {"run": [], "export": []} for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as temporary:
        folder = Path(temporary)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(CLASSVIS_DATA=str(data), CLASSVIS_CACHE=str(folder / "cache"))
        for name, tree in trees.items():  # warm: decode MNIST, train and cache each teacher
            timed([sys.executable, str(tree / "train.py"), "force=true", "progress=false",
                   f"tracking.uri=sqlite:///{folder / name.replace(' ', '_')}.db"],
                  tree, folder, env)
        for _ in range(args.repeats):
            for name, tree in trees.items():
                store = f"sqlite:///{folder / name.replace(' ', '_')}.db"
                seconds, out = timed([sys.executable, str(tree / "train.py"), "force=true",
                                      "progress=false", f"tracking.uri={store}"],
                                     tree, folder, env)
                times[name]["run"].append(seconds)
                run_id = out.strip().splitlines()[-1].rsplit("MLflow run ", 1)[1].rstrip(")")
                seconds, _ = timed([sys.executable, "-m", "classvis.cli", "export", run_id, "-o",
                                    str(folder / f"{run_id}.safetensors")],
                                   tree, folder, {**env, "MLFLOW_TRACKING_URI": store})
                times[name]["export"].append(seconds)
        for name, tree in trees.items():  # untimed: decode the datasets, fill their caches
            if args.sweeps:
                sweep(tree, folder / f"warm-{name.replace(' ', '_')}", env)
        results: dict[str, dict[str, dict[str, float]]] = {}
        for round_ in range(args.sweeps):
            for name, tree in trees.items():
                seconds, log, results[name] = sweep(
                    tree, folder / f"sweep-{round_}-{name.replace(' ', '_')}", env)
                times[name].setdefault("table5 sweep", []).append(seconds)
                times[name].setdefault("time/log per run", []).append(log)
        for round_ in range(args.searches):
            for name, tree in trees.items():
                seconds = search(tree, folder / f"search-{round_}-{name.replace(' ', '_')}",
                                 env)
                times[name].setdefault("20-trial search", []).append(seconds)
    if results:
        print(f"table5 metrics that differ between the trees: {moved(*results.values()) or 'none'}")
    for what in times["baseline"]:
        base, new = (statistics.fmean(times[name][what]) for name in trees)
        each = {name: ", ".join(f"{t:.2f}" for t in times[name][what]) for name in trees}
        print(f"{what}: baseline {base:.2f} s ({each['baseline']}), this tree {new:.2f} s "
              f"({each['this tree']}), ratio {new / base:.3f}")


TIMINGS = ("time/", "system/")  # metrics that measure the machine, not the run's result


def moved(base: dict[str, dict[str, float]], new: dict[str, dict[str, float]]) -> str:
    """The metrics of the runs (by name) that are not the same in both trees."""
    if sorted(base) != sorted(new):
        return f"the runs differ: {sorted(set(base) ^ set(new))}"
    differences = []
    for run in sorted(base):
        for metric in sorted(set(base[run]) | set(new[run])):
            if metric.startswith(TIMINGS):
                continue
            before, after = base[run].get(metric), new[run].get(metric)
            if before != after:
                differences.append(f"{run}: {metric} {before} -> {after}")
    return "; ".join(differences)


def search(tree: Path, folder: Path, env: dict[str, str]) -> float:
    """The 20-trial search on MNIST into a fresh store, the teacher from the cache."""
    folder.mkdir()
    seconds, _ = timed([sys.executable, str(tree / "train.py"), "-m",
                        "hparams_search=student_accuracy", "progress=false",
                        f"tracking.uri=sqlite:///{folder / 'store.db'}"], tree, folder, env)
    return seconds


def sweep(tree: Path, folder: Path, env: dict[str, str]
          ) -> tuple[float, float, dict[str, dict[str, float]]]:
    """The table5 sweep (12 jobs) into a fresh store with a fresh teacher cache (its three
    teachers are trained), the dataset caches warm: its wall time, mean ``time/log`` and each
    run's metrics by run name."""
    import mlflow

    folder.mkdir()
    store = f"sqlite:///{folder / 'store.db'}"
    seconds, _ = timed([sys.executable, str(tree / "train.py"), "+experiment=table5",
                        "progress=false", f"tracking.uri={store}",
                        f"teacher_cache.dir={folder / 'teachers'}"], tree, folder, env)
    client = mlflow.MlflowClient(tracking_uri=store)
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])
            if keys.LOG_TIME in run.data.metrics]
    if len(runs) != 12:
        sys.exit(f"benchmark: the table5 sweep of {tree} left {len(runs)} runs, not 12")
    return (seconds, statistics.fmean(run.data.metrics[keys.LOG_TIME] for run in runs),
            {run.info.run_name: dict(run.data.metrics) for run in runs})


if __name__ == "__main__":
    main()
