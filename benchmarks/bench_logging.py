"""What a run's MLflow logging costs a sweep: the ``table5`` sweep (12 jobs, real data) with and
without a setting, alternated in one invocation so both see the same machine.

    python benchmarks/bench_logging.py [--rounds 2] [--setting tracking.log_models] \
        [--baseline none] [--candidate student]

Every sweep gets a fresh store and a fresh teacher cache (teachers are trained each time, as in a
first sweep); the dataset cache is shared and warmed by a first untimed sweep. Prints, per sweep,
the wall time and the mean ``time/log`` and ``time/total`` per run, then the candidate's ratios
against the baseline (target for new logging: at most 1.10 on the wall time). Needs the real
MNIST, Fashion-MNIST and CIFAR-10 under ``$CLASSVIS_DATA`` (default ../shared/data).
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

ROOT = Path(__file__).resolve().parents[1]


def sweep(folder: Path, name: str, override: str, env: dict[str, str]) -> dict[str, float]:
    import mlflow

    db = folder / f"{name}.db"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "+experiment=table5", override, "progress=false",
         f"teacher_cache.dir={folder / name / 'teachers'}", f"tracking.uri=sqlite:///{db}",
         f"hydra.sweep.dir={folder / name / 'sweep'}"],
        cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"benchmark: the sweep {name} failed:\n{done.stderr[-2000:]}")
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("table5")
    runs = [run for run in client.search_runs([experiment.experiment_id])
            if run.data.tags.get("classvis.kind") != "sweep"]
    finished = sum(run.info.status == "FINISHED" for run in runs)
    if finished != 12:
        sys.exit(f"benchmark: the sweep {name} finished {finished} of 12 runs")
    return {"wall": wall,
            "log": statistics.fmean(run.data.metrics["time/log"] for run in runs),
            "total": statistics.fmean(run.data.metrics["time/total"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--setting", default="tracking.log_models")
    parser.add_argument("--baseline", default="none")
    parser.add_argument("--candidate", default="student")
    args = parser.parse_args()
    data = Path(os.environ.get("CLASSVIS_DATA", ROOT.parent / "shared" / "data"))
    if not (data / "MNIST" / "raw").is_dir():
        sys.exit(f"benchmark: real MNIST not found under {data}/MNIST/raw; set CLASSVIS_DATA")
    with tempfile.TemporaryDirectory(prefix="bench-logging-") as temporary:
        folder = Path(temporary)
        env = {**os.environ, "CLASSVIS_DATA": str(data),
               "CLASSVIS_CACHE": str(folder / "cache")}
        env.pop("MLFLOW_TRACKING_URI", None)
        sweep(folder, "warm-up", f"{args.setting}={args.baseline}", env)
        results: dict[str, list[dict[str, float]]] = {args.baseline: [], args.candidate: []}
        for round_ in range(1, args.rounds + 1):
            for value in (args.baseline, args.candidate):
                measured = sweep(folder, f"{value}-{round_}", f"{args.setting}={value}", env)
                results[value].append(measured)
                print(f"{args.setting}={value} round {round_}: wall {measured['wall']:.1f} s, "
                      f"time/log {measured['log']:.3f} s, time/total {measured['total']:.2f} s "
                      f"per run", flush=True)
    for what in ("wall", "log", "total"):
        base = statistics.fmean(m[what] for m in results[args.baseline])
        new = statistics.fmean(m[what] for m in results[args.candidate])
        print(f"{what}: {args.baseline} {base:.3f}, {args.candidate} {new:.3f}, "
              f"ratio {new / base:.3f}")


if __name__ == "__main__":
    main()
