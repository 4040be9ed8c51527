"""Teacher-training and extraction throughput of the convolutional models on every device this
machine has, printed side by side (the CPU is the baseline of each ratio).

    python benchmarks/bench_devices.py [--architectures lenet5 convnet] [--steps 100]

Synthetic inputs of MNIST's and CIFAR-10's shapes (no dataset needed): the teacher's training step
(the project's ``fit``, SGD with momentum, batch 128) in images per second, and class-visualization
extraction (the project's ``class_vis`` with the deep preset's priors) in image-steps per second.
Also the peak memory of extracting 1,000 CIFAR-sized images from a ResNet-18 in groups of 100
(``--memory``; CPU resident set size).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from classvis.data import ImageData
from classvis.extract import ClassVisSettings, class_vis
from classvis.fit import TeacherTraining, fit
from classvis.models import ConvNetSettings, LeNet5Settings, ResNet18Settings, build_model

ARCHITECTURES = {"lenet5": LeNet5Settings(), "convnet": ConvNetSettings(),
                 "convnet32": ConvNetSettings(width=32), "resnet18": ResNet18Settings()}
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    return found


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def data_for(shape: tuple[int, ...], count: int, device: str) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(count, *shape, generator=generator)
    y = torch.randint(0, 10, (count,), generator=generator)
    return ImageData("bench", [str(c) for c in range(10)], x, y, x[:100], y[:100]).to(device)


def teacher_rate(settings, shape, device: str, steps: int) -> float:
    batch = 128
    data = data_for(shape, batch * steps, device)
    model = build_model(settings, shape, 10, seed=0).to(device)
    recipe = TeacherTraining(lr=0.01, momentum=0.9, batch_size=batch, epochs=1)
    warm = data_for(shape, batch * 3, device)
    fit(model, warm.train_x, warm.train_y, recipe, seed=0)  # kernels chosen, caches warm
    synchronise(device)
    start = time.perf_counter()
    fit(model, data.train_x, data.train_y, recipe, seed=0)
    synchronise(device)
    return batch * steps / (time.perf_counter() - start)


def extraction_rate(settings, shape, device: str, steps: int, per_class: int = 10) -> float:
    data = data_for(shape, 100, device)
    model = build_model(settings, shape, 10, seed=0).to(device).eval()
    recipe = ClassVisSettings(per_class=per_class, start_std=0.5, steps=steps, optimizer="adam",
                              lr=0.05, target="log_prob", l2=0.001, jitter=2, scale=0.1,
                              tv=0.01, clip=True, diversity=1.0)
    class_vis(model, data, ClassVisSettings(per_class=per_class, start_std=0.5, steps=3), seed=0)
    synchronise(device)
    start = time.perf_counter()
    class_vis(model, data, recipe, seed=0)
    synchronise(device)
    return 10 * per_class * steps / (time.perf_counter() - start)


def extraction_memory(steps: int) -> tuple[float, float]:
    """Peak resident memory (GB) before and after extracting 1,000 CIFAR-sized images from a
    ResNet-18 on the CPU in groups of 100."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    data = data_for((3, 32, 32), 100, "cpu")
    model = build_model(ResNet18Settings(), (3, 32, 32), 10, seed=0).eval()
    class_vis(model, data, ClassVisSettings(per_class=100, start_std=0.5, steps=steps,
                                            optimizer="adam", lr=0.05, target="log_prob",
                                            bn=0.01, batch_size=100), seed=0)
    return before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", nargs="+", default=["lenet5", "convnet32"],
                        choices=sorted(ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=20, help="training steps / extraction steps")
    parser.add_argument("--memory", action="store_true",
                        help="also the ResNet-18 extraction's peak memory on the CPU")
    args = parser.parse_args()
    if args.memory:  # first, while the process's peak is still its own
        before, after = extraction_memory(args.steps)
        print(f"resnet18, 1,000 CIFAR-sized images in groups of 100, {args.steps} steps: peak "
              f"resident memory {after:.2f} GB (process before: {before:.2f} GB)", flush=True)
    names = devices()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(0)}" if "cuda" in names else ", no CUDA device"))
    header = ["model", "input", "measure"] + names + ([f"{names[-1]} / cpu"] if len(names) > 1
                                                      else [])
    print(" | ".join(header))
    for name in args.architectures:
        settings = ARCHITECTURES[name]
        for dataset, shape in SHAPES.items():
            for label, measure in (("teacher images/s", teacher_rate),
                                   ("extraction image-steps/s", extraction_rate)):
                rates = [measure(settings, shape, device, args.steps) for device in names]
                cells = [name, dataset, label] + [f"{rate:,.0f}" for rate in rates]
                if len(rates) > 1:
                    cells.append(f"{rates[-1] / rates[0]:.1f}x")
                print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
