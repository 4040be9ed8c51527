"""Speed of the project's training and extraction, measured side by side in one invocation.

    python benchmarks/bench_training.py [--epochs 2] [--sweeps]

Needs the real MNIST (``$CLASSVIS_DATA/MNIST/raw``, default ../shared/data) and says so when it is
missing. Prints samples/s and ratios against baselines run in the same process:
- a conventional PyTorch loop: torchvision.datasets.MNIST + ToTensor() + DataLoader(batch_size=100,
  shuffle=True), same model, same epochs (target: the project at least 5x faster);
- a bare loop over in-memory tensors, the practical floor (target: the project within 1.3x).
With ``--sweeps`` it also times the table5 sweep sequentially and with the joblib launcher on 2
workers (wall time and peak resident memory of the whole process tree).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    root = Path(os.environ.get("CLASSVIS_DATA", ROOT.parent / "shared" / "data"))
    if not (root / "MNIST" / "raw").is_dir():
        sys.exit(f"benchmark: real MNIST not found under {root}/MNIST/raw; set CLASSVIS_DATA "
                 f"to the folder holding it")
    return root


def timed(function, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sweeps", action="store_true", help="also time the table5 sweep")
    args = parser.parse_args()
    root = data_root()

    import torchvision
    from torch.utils.data import DataLoader
    from torchvision.transforms import ToTensor

    from classvis.data import DatasetSettings, load_dataset
    from classvis.extract import ClassVisSettings, class_vis
    from classvis.fit import TeacherTraining, fit
    from classvis.models import DenseSettings, build_model
    from classvis.validation import parse

    cache = tempfile.mkdtemp(prefix="classvis-bench-")
    data = load_dataset(parse(DatasetSettings, {
        "name": "mnist", "loader": "torchvision", "torchvision_class": "MNIST", "root": str(root),
        "download": False, "cache_dir": cache}, "dataset"))
    linear = DenseSettings(name="linear")
    recipe = TeacherTraining(lr=0.5, batch_size=100, epochs=args.epochs)
    samples = len(data.train_x) * args.epochs
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)  # pay torch.optim's import once

    def project_loop(architecture, training) -> Callable[[], None]:
        def project() -> None:
            model = build_model(architecture, data.image_shape, data.num_classes, seed=0)
            fit(model, data.train_x, data.train_y, training, seed=0)
        return project

    def bare_loop(architecture, lr: float) -> Callable[[], None]:
        def bare() -> None:
            model = build_model(architecture, data.image_shape, data.num_classes, seed=0)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            for _ in range(args.epochs):
                order = torch.randperm(len(data.train_x))
                for start in range(0, len(order), 100):
                    batch = order[start:start + 100]
                    loss = F.cross_entropy(model(data.train_x[batch]), data.train_y[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        return bare

    project, bare = project_loop(linear, recipe), bare_loop(linear, 0.5)

    def conventional() -> None:
        dataset = torchvision.datasets.MNIST(str(root), train=True, download=False,
                                             transform=ToTensor())
        loader = DataLoader(dataset, batch_size=100, shuffle=True)
        model = build_model(linear, data.image_shape, data.num_classes, seed=0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(args.epochs):
            for images, labels in loader:
                loss = F.cross_entropy(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    results = {name: timed(function, repeats=2 if name != "conventional" else 1)
               for name, function in (("project", project), ("bare", bare),
                                      ("conventional", conventional))}
    print(f"teacher training, MNIST softmax regression, {args.epochs} epochs "
          f"({samples:,} samples), best of runs on this machine ({os.cpu_count()} cores):")
    for name, seconds in results.items():
        print(f"  {name:<13} {seconds:7.2f} s  {samples / seconds:12,.0f} samples/s")
    speedup = results["conventional"] / results["project"]
    print(f"  project vs conventional DataLoader loop: {speedup:.1f}x faster (target >= 5x)")
    print(f"  project vs bare in-memory loop: {results['project'] / results['bare']:.2f}x the time "
          f"(target <= 1.3x)")

    mlp30 = DenseSettings(name="mlp", hidden=(30,))
    mlp_recipe = TeacherTraining(lr=0.1, batch_size=100, epochs=args.epochs)

    mlp_times = {name: timed(function, repeats=2)
                 for name, function in (("project", project_loop(mlp30, mlp_recipe)),
                                        ("bare", bare_loop(mlp30, 0.1)))}
    print(f"teacher training, MNIST MLP (30 ReLU), {args.epochs} epochs:")
    for name, seconds in mlp_times.items():
        print(f"  {name:<13} {seconds:7.2f} s  {samples / seconds:12,.0f} samples/s")
    print(f"  project vs bare in-memory loop: {mlp_times['project'] / mlp_times['bare']:.2f}x "
          f"the time")

    teacher = build_model(linear, data.image_shape, data.num_classes, seed=0)
    fit(teacher, data.train_x, data.train_y, TeacherTraining(epochs=1), seed=0)
    mlp = build_model(DenseSettings(name="mlp", hidden=(30,)), data.image_shape,
                      data.num_classes, seed=0)
    fit(mlp, data.train_x, data.train_y, TeacherTraining(epochs=1, lr=0.1), seed=0)
    for label, model in (("linear", teacher), ("mlp30", mlp)):
        steps: dict[str, float] = {}
        seconds = timed(functools.partial(
            lambda m, found: found.update(class_vis(m, data, ClassVisSettings()).info),
            model, steps), 3)
        print(f"class_vis extraction, 10 classes, {label} teacher: {seconds * 1000:.1f} ms "
              f"({int(steps['steps'])} ascent steps"
              f"{' to convergence' if steps['steps'] < ClassVisSettings().steps else ', the cap'}"
              f", all 10 images as one batch)")
        # the same fixed number of steps for 10 and for 1,000 images (10 classes x 100), each
        # set optimised as one batch: what 100x the images costs
        fixed = {}
        for per_class in (1, 100):
            settings = ClassVisSettings(per_class=per_class, start_std=0.3, diversity=0.1,
                                        steps=500, tol=0.0)
            fixed[per_class] = timed(functools.partial(class_vis, model, data, settings), 2)
        print(f"  500 steps, {label} teacher: 10 images {fixed[1] * 1000:.0f} ms, 1,000 images "
              f"{fixed[100] * 1000:.0f} ms -> {fixed[100] / fixed[1]:.1f}x the time for 100x the "
              f"images ({1000 * 500 / fixed[100]:,.0f} image-steps/s)")

    if args.sweeps:
        sweep_benchmark(root)


def sweep_benchmark(root: Path) -> None:
    rows = []
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    for label, extra in (("sequential", []), ("joblib, 2 workers", joblib)):
        with tempfile.TemporaryDirectory(prefix="classvis-sweep-") as folder:
            env = {**os.environ, "CLASSVIS_DATA": str(root),
                   "CLASSVIS_CACHE": os.environ.get("CLASSVIS_CACHE", folder)}
            env.pop("MLFLOW_TRACKING_URI", None)
            command = [sys.executable, str(ROOT / "train.py"), "+experiment=table5",
                       f"tracking.uri=sqlite:///{folder}/mlflow.db",
                       f"teacher_cache.dir={folder}/teachers",
                       f"hydra.sweep.dir={folder}/sweep", *extra]
            # a fresh parent per sweep, so its children's peak RSS is this sweep's alone
            measure = ("import resource, subprocess, sys; "
                       "code = subprocess.run(sys.argv[1:]).returncode;"
                       " print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
                       " file=sys.stderr); sys.exit(code)")
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", measure, *command], cwd=folder, env=env,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"benchmark: the {label} sweep failed:\n{done.stderr[-2000:]}")
            peak_kb = int(done.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
            rows.append((label, seconds, peak_kb / 1024))
    print("table5 sweep (12 jobs, 3 teachers), dataset cache warm:")
    for label, seconds, peak in rows:
        print(f"  {label:<18} {seconds:7.1f} s wall, "
              f"peak RSS of its largest process {peak:7.0f} MiB")
    print(f"  joblib vs sequential: {rows[0][1] / rows[1][1]:.2f}x faster")


if __name__ == "__main__":
    main()
