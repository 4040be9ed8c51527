"""Every preset's seed-0 metrics with this tree and with a baseline source tree: the same config and
seed must give the same numbers across a change that should not move them.

    python benchmarks/compare_presets.py --baseline /path/to/other/checkout \
        [--presets table5,section8,section10,section10_paper,deep] [--folder DIR]

Runs ``python train.py +experiment=<preset> seed=0`` with each tree's ``src`` and ``train.py``, each
tree with its own store and caches (so each trains its own teachers), and compares the runs of
each sweep pairwise in the order the sweep ran them (the presets enumerate their jobs alike in
both trees; the run names of both are printed so the pairing can be read). Prints, per preset,
the number of runs and metrics compared and every metric that differs (``time/*`` and
``system/*`` measure the machine, not the result, and are left out); metrics that only one tree
logs (added or removed by the change) are listed apart, by name. A preset already run into
``--folder`` is not run again, so an interrupted comparison resumes. Needs the real data under
``$CLASSVIS_DATA`` (default ../shared/data); ``deep_cifar10`` is sized for a GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from classvis import runkeys as keys

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ("time/", "system/")


def run_preset(tree: Path, preset: str, folder: Path, env: dict[str, str]) -> str:
    """The store of ``+experiment=<preset> seed=0`` run with ``tree``, running it if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{folder / 'store.db'}"
    done = folder / "done"
    if not done.exists():
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(tree / "train.py"), f"+experiment={preset}", "seed=0",
             "progress=false", f"tracking.uri={store}"],
            cwd=folder, env={**env, "PYTHONPATH": str(tree / "src"),
                             "CLASSVIS_CACHE": str(folder.parent / "cache")},
            capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"compare: {preset} with {tree} failed:\n{result.stderr[-3000:]}")
        done.write_text(f"{time.perf_counter() - started:.1f}\n")
    return store


def job_runs(store: str) -> list[tuple[str, dict[str, float]]]:
    """The sweep's job runs (not its parent), in the order they started: name and metrics."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])
            if keys.PARENT_RUN in run.data.tags]
    runs.sort(key=lambda run: run.info.start_time)
    return [(run.info.run_name, dict(run.data.metrics)) for run in runs]


def compare(base: list[tuple[str, dict[str, float]]], new: list[tuple[str, dict[str, float]]]
            ) -> tuple[int, list[str], dict[str, int], dict[str, int]]:
    """How many metrics both trees logged, each of those that differs, and the metrics only one
    tree logged (name -> runs): metrics added or removed by the change, not numbers moved."""
    if len(base) != len(new):
        return 0, [f"{len(base)} runs in the baseline, {len(new)} in this tree"], {}, {}
    compared, moved = 0, []
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    for (base_name, before), (name, after) in zip(base, new, strict=True):
        for metric in sorted(set(before) | set(after)):
            if metric.startswith(TIMINGS):
                continue
            if metric not in before:
                added[metric] = added.get(metric, 0) + 1
            elif metric not in after:
                removed[metric] = removed.get(metric, 0) + 1
            else:
                compared += 1
                if before[metric] != after[metric]:
                    moved.append(f"{name} (baseline: {base_name}): {metric} "
                                 f"{before[metric]} -> {after[metric]}")
    return compared, moved, added, removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--presets", default="table5,section8,section10,section10_paper,deep")
    parser.add_argument("--folder", type=Path, default=Path(".compare-presets"))
    args = parser.parse_args()
    data = Path(os.environ.get("CLASSVIS_DATA", ROOT.parent / "shared" / "data"))
    if not (data / "MNIST" / "raw").is_dir():
        sys.exit(f"compare: real MNIST not found under {data}/MNIST/raw; set CLASSVIS_DATA")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["CLASSVIS_DATA"] = str(data.resolve())
    trees = {"baseline": args.baseline.resolve(), "this_tree": ROOT}
    for preset in args.presets.split(","):
        runs = {}
        for name, tree in trees.items():
            folder = args.folder.resolve() / name / preset
            runs[name] = job_runs(run_preset(tree, preset, folder, env))
            wall = (folder / "done").read_text().strip()
            print(f"{preset}, {name}: {len(runs[name])} runs in {wall} s: "
                  + ", ".join(run for run, _ in runs[name]), flush=True)
        compared, moved, added, removed = compare(runs["baseline"], runs["this_tree"])
        print(f"{preset}: {compared} metrics in both trees compared, {len(moved)} differ"
              + "".join(f"\n    {line}" for line in moved), flush=True)
        for what, found in (("only in this tree", added), ("only in the baseline", removed)):
            if found:
                print(f"{preset}: metrics {what} (runs): "
                      + ", ".join(f"{metric} ({count})" for metric, count in found.items()))


if __name__ == "__main__":
    main()
