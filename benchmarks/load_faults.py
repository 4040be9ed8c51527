"""Load and faults on the tracking store, counted: what a sweep leaves in MLflow when many jobs
and sweeps write to one store at once, and when a tracking server restarts mid-sweep.

    python benchmarks/load_faults.py [--jobs 16] [--workers 4] [--repeats 3] [--server]
                                     [--twins 20]

Each repetition starts, at the same moment and into one SQLite store that does not exist yet, a
sweep of ``--jobs`` digits jobs on ``--workers`` joblib workers and a second sweep of as many
jobs on the basic launcher. Every run must end FINISHED with its full metric histories (one
``teacher/loss`` point per epoch, one ``student/loss`` point per step) and its synthetic set.
``--server`` adds a sweep against a local ``mlflow server`` that is stopped mid-sweep and
restarted within ``tracking.retry_for_s``. Prints one row per case (expected, FINISHED, FAILED,
KILLED, lost runs) and exits 1 if any run is missing or unfinished.

``--twins N`` starts, N times each, 2 and then 4 copies of one 3-job sweep at the same moment
into a new store (each in its default sweep folder) and counts configs FINISHED more than once,
runs left RUNNING (jobs and parents) after every sweep exited, and tracebacks on the consoles.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classvis import runkeys as keys

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, STEPS = 2, 300


def sweep(folder: Path, uri: str, seeds: range, name: str | None, *launcher: str
          ) -> subprocess.Popen:
    """A digits sweep over ``seeds``; in ``folder / name``, or its default folder when None."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    where = [] if name is None else [f"hydra.sweep.dir={folder / name}"]
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits",
         f"seed={','.join(map(str, seeds))}", f"trainer.teacher.epochs={EPOCHS}",
         f"trainer.student.steps={STEPS}", "privacy.enabled=false", f"tracking.uri={uri}",
         "tracking.experiment=load", "tracking.log_models=none", "progress=false",
         f"teacher_cache.dir={folder / 'teachers'}", *where, *launcher],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def count(uri: str, seeds: list[int]) -> dict[str, int]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("load")
    runs = [] if experiment is None else [
        run for run in client.search_runs([experiment.experiment_id], max_results=5000)
        if keys.KIND not in run.data.tags]  # not a sweep's parent run
    found = {"expected": len(seeds), "FINISHED": 0, "FAILED": 0, "KILLED": 0, "incomplete": 0}
    finished_seeds = set()
    for run in runs:
        found[run.info.status] = found.get(run.info.status, 0) + 1
        if run.info.status != "FINISHED":
            continue
        histories = (len(client.get_metric_history(run.info.run_id, "teacher/loss")),
                     len(client.get_metric_history(run.info.run_id, "student/loss")))
        has_set = any(item.path == "synthetic_set.safetensors"
                      for item in client.list_artifacts(run.info.run_id))
        if histories != (EPOCHS, STEPS) or not has_set:
            found["incomplete"] += 1
        finished_seeds.add(int(run.data.tags["seed"]))
    found["lost"] = len(set(seeds) - finished_seeds)
    return found


def row(case: str, found: dict[str, int], seconds: float) -> str:
    return (f"| {case} | {found['expected']} | {found['FINISHED']} | {found['FAILED']} | "
            f"{found['KILLED']} | {found['lost']} | {found['incomplete']} | {seconds:.0f} s |")


def two_sweeps_at_once(folder: Path, jobs: int, workers: int) -> tuple[dict[str, int], float]:
    uri = f"sqlite:///{folder / 'new.db'}"  # does not exist yet
    started = time.perf_counter()
    first = sweep(folder, uri, range(jobs), "joblib", "hydra/launcher=joblib",
                  f"hydra.launcher.n_jobs={workers}")
    second = sweep(folder, uri, range(100, 100 + jobs), "basic")
    outputs = [process.communicate(timeout=3600)[0] for process in (first, second)]
    seconds = time.perf_counter() - started
    for process, output in zip((first, second), outputs, strict=True):
        if process.returncode != 0:
            print(output[-3000:], file=sys.stderr)
    return count(uri, [*range(jobs), *range(100, 100 + jobs)]), seconds


def server_restarted_mid_sweep(folder: Path, jobs: int) -> tuple[dict[str, int], float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_port, mlflow_server_at

    port = free_port()
    backend = f"sqlite:///{folder / 'server.db'}"
    options = ("--artifacts-destination", str(folder / "server-artifacts"))
    uri = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with mlflow_server_at(folder, backend, *options, port=port):
        running = sweep(folder, uri, range(jobs), "server", "tracking.retry_for_s=120")
        while count(uri, list(range(jobs)))["FINISHED"] < jobs // 2:  # half-way
            if running.poll() is not None:
                break
            time.sleep(0.5)
    time.sleep(10)  # down for ten seconds, mid-job
    with mlflow_server_at(folder, backend, *options, port=port):
        output = running.communicate(timeout=3600)[0]
        seconds = time.perf_counter() - started
        if running.returncode != 0:
            print(output[-3000:], file=sys.stderr)
        waited = "retrying for up to" in output
        found = count(uri, list(range(jobs)))
    print(f"server restart: the jobs said they were waiting: {waited}")
    return found, seconds


def identical_sweeps_at_once(folder: Path, copies: int) -> tuple[dict[str, int], float]:
    """``copies`` copies of one 3-job sweep started together into a new store."""
    import mlflow

    uri = f"sqlite:///{folder / 'twins.db'}"
    started = time.perf_counter()
    processes = [sweep(folder, uri, range(3), None) for _ in range(copies)]
    outputs = [process.communicate(timeout=3600)[0] for process in processes]
    seconds = time.perf_counter() - started
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("load")
    runs = [] if experiment is None else client.search_runs([experiment.experiment_id],
                                                           max_results=5000)
    finished: dict[str, int] = {}
    for run in runs:
        if keys.KIND not in run.data.tags and run.info.status == "FINISHED":
            finished[run.data.tags["seed"]] = finished.get(run.data.tags["seed"], 0) + 1
    return {"expected": 3, "FINISHED": sum(finished.values()),
            "duplicates": sum(n - 1 for n in finished.values()),
            "lost": 3 - len(finished),
            "RUNNING": sum(run.info.status == "RUNNING" for run in runs),
            "parents": sum(keys.KIND in run.data.tags for run in runs),
            "tracebacks": sum(output.count("Traceback") for output in outputs),
            "failed exits": sum(process.returncode != 0 for process in processes)}, seconds


def twins(tries: int) -> bool:
    print("| copies | tries | configs FINISHED / expected | duplicates | lost | left RUNNING | "
          "parent runs | tracebacks | failed exits | wall per try |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    healthy = True
    for copies in (2, 4):
        total: dict[str, float] = {}
        for _ in range(tries):
            with tempfile.TemporaryDirectory(prefix="classvis-twins-") as temporary:
                found, seconds = identical_sweeps_at_once(Path(temporary), copies)
            for key, value in {**found, "seconds": seconds}.items():
                total[key] = total.get(key, 0) + value
        print(f"| {copies} | {tries} | {total['FINISHED']:.0f} / {total['expected']:.0f} | "
              f"{total['duplicates']:.0f} | {total['lost']:.0f} | {total['RUNNING']:.0f} | "
              f"{total['parents']:.0f} | {total['tracebacks']:.0f} | "
              f"{total['failed exits']:.0f} | {total['seconds'] / tries:.0f} s |", flush=True)
        healthy &= not (total["duplicates"] or total["lost"] or total["RUNNING"]
                        or total["tracebacks"] or total["failed exits"])
    return healthy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--twins", type=int, default=0,
                        help="tries of 2 and of 4 identical sweeps started at once")
    args = parser.parse_args()
    if args.twins:
        healthy = twins(args.twins)
        if not args.repeats and not args.server:
            return 0 if healthy else 1
    else:
        healthy = True
    print("| case | expected | FINISHED | FAILED | KILLED | lost | incomplete | wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="classvis-load-") as temporary:
            found, seconds = two_sweeps_at_once(Path(temporary), args.jobs, args.workers)
        print(row(f"{args.jobs} jobs on {args.workers} joblib workers + {args.jobs} on the basic "
                  f"launcher, at once, new store (try {repeat})", found, seconds), flush=True)
        healthy &= found["FINISHED"] == found["expected"] and not found["lost"] + found[
            "incomplete"]
    if args.server:
        with tempfile.TemporaryDirectory(prefix="classvis-server-") as temporary:
            found, seconds = server_restarted_mid_sweep(Path(temporary), args.jobs)
        print(row(f"{args.jobs} jobs, tracking server down 10 s mid-sweep", found, seconds),
              flush=True)
        healthy &= found["FINISHED"] == found["expected"] and not found["lost"]
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
