"""Process start to exit of a default run and of an export, against a baseline source tree, run
alternately in one invocation so both see the same machine.

    python benchmarks/bench_run.py --baseline /path/to/other/checkout [--repeats 3]

Times ``python train.py force=true`` (MNIST defaults, dataset cache and store warmed by an untimed
first run, teacher from the cache) and ``python -m classvis.cli export <run> -o file`` with this
tree's ``src`` and with the baseline's, each ``--repeats`` times, and prints the means and the
ratio (this tree / baseline). Needs the real MNIST under ``$CLASSVIS_DATA`` (default
../shared/data). Targets (issue: start to result in a few seconds): a run at most 5 s, an export
under 3 s.
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
    for what in ("run", "export"):
        base, new = (statistics.fmean(times[name][what]) for name in trees)
        each = {name: ", ".join(f"{t:.2f}" for t in times[name][what]) for name in trees}
        print(f"{what}: baseline {base:.2f} s ({each['baseline']}), this tree {new:.2f} s "
              f"({each['this tree']}), ratio {new / base:.3f}")


if __name__ == "__main__":
    main()
