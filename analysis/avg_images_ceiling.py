"""How far can a linear student trained on the ten class-average images go? (Table 5, Avg. Images)

    python analysis/avg_images_ceiling.py [--dataset mnist] [Hydra overrides,
        e.g. trainer.teacher.epochs=2]

A linear student that starts at zero and is trained by gradient descent on the ten images A (one
per class) only ever moves inside their span, so it is ``W = C A`` plus a bias ``b``. If it fits the
teacher's logits T on them exactly (what the paper's recipe aims at), ``C G + b 1^T = T^T`` with
``G = A A^T``; so, on an input x, it scores

    s(x) = T^T G^-1 A x + b (1 - 1^T G^-1 A x)

and the only thing left free is the bias vector b (ten numbers). This script computes, in closed
form on the real test set:

- the converged student (the minimum-norm fit, what gradient descent from zero reaches),
- the same family with the teacher's own bias,
- an **oracle ceiling**: b chosen to maximise accuracy *on the test labels* (which no honest student
  may do), the best any student of this family can score,
- the ridge-regularised fits (early-stopped gradient descent behaves like them).

If the oracle ceiling is under a target, no loss, step count or learning rate of a zero-started
linear student on these ten images reaches it with this teacher.

Needs the dataset (real MNIST under ``$CLASSVIS_DATA``, default ../shared/data) and says so when it
is missing; ``--dataset digits`` runs on scikit-learn's bundled digits.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Family:
    """The students that fit the teacher's logits on the images exactly: s(x) = base(x) + u(x) b."""

    base: torch.Tensor   # (N, classes)
    u: torch.Tensor      # (N, 1)

    def scores(self, bias: torch.Tensor) -> torch.Tensor:
        return self.base + self.u * bias

    def accuracy(self, bias: torch.Tensor, labels: torch.Tensor) -> float:
        return (self.scores(bias).argmax(1) == labels).double().mean().item()


def interpolating_family(images: torch.Tensor, targets: torch.Tensor,
                         inputs: torch.Tensor) -> Family:
    """images (M, D), targets (M, classes): the teacher's logits on them; inputs (N, D)."""
    a, t, x = images.double(), targets.double(), inputs.double()
    coefficients = torch.linalg.solve(a @ a.T, a @ x.T).T           # (N, M): G^-1 A x
    return Family(coefficients @ t, 1.0 - coefficients.sum(1, keepdim=True))


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (float64) with a constant 1 appended: inputs of a linear model with bias."""
    return torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)


def minimum_norm_scores(images: torch.Tensor, targets: torch.Tensor,
                        inputs: torch.Tensor) -> torch.Tensor:
    """The minimum-norm (weights and bias together) exact fit: where gradient descent from zero
    converges."""
    return _with_bias(inputs) @ torch.linalg.pinv(_with_bias(images)) @ targets.double()


def ridge_scores(images: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor,
                 strength: float) -> torch.Tensor:
    design = _with_bias(images)
    dual = torch.linalg.solve(design @ design.T + strength * torch.eye(len(images),
                                                                       dtype=torch.float64),
                              targets.double())
    return _with_bias(inputs) @ design.T @ dual


def oracle_bias(family: Family, labels: torch.Tensor, steps: int = 500) -> torch.Tensor:
    """The bias that (nearly) maximises accuracy on ``labels``: a sharp softmax surrogate, from
    several starting points, keeping the most accurate."""
    best, best_accuracy = torch.zeros(family.base.shape[1], dtype=torch.float64), -1.0
    for sharpness in (1.0, 10.0, 30.0):
        bias = torch.zeros(family.base.shape[1], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([bias], lr=0.1)
        for _ in range(steps):
            loss = F.cross_entropy(family.scores(bias) * sharpness, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy = family.accuracy(bias.detach(), labels)
        if accuracy > best_accuracy:
            best, best_accuracy = bias.detach().clone(), accuracy
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--target", type=float, default=None,
                        help="a test accuracy in percent to compare with "
                             "(mnist: the paper's 86.02)")
    args, overrides = parser.parse_known_args(argv)
    os.environ.setdefault("CLASSVIS_DATA", str(ROOT.parent / "shared" / "data"))

    from hydra import compose, initialize_config_dir

    from classvis import stages
    from classvis.data import load_dataset
    from classvis.extract import extract, soft_targets
    from classvis.from_config import run_settings
    from classvis.validation import ConfigError

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={args.dataset}",
                                           "+experiment/table5=avg_images", "hydra.mode=RUN",
                                           *overrides])
    settings = run_settings(cfg)
    try:
        data = load_dataset(settings.dataset, stages.stage_seed(settings.seed, "data/balance"))
    except (ConfigError, FileNotFoundError, RuntimeError) as error:
        first_line = str(error).splitlines()[0]
        print(f"avg_images_ceiling: dataset {args.dataset} is missing under "
              f"{os.environ['CLASSVIS_DATA']} ({first_line}); set CLASSVIS_DATA to the folder "
              f"holding it", file=sys.stderr)
        return 2
    teacher = stages.obtain_run_teacher(settings, data).model
    synthetic = extract(teacher, data, settings.extractor_name, settings.extractor)
    images = synthetic.images.flatten(1)
    with torch.no_grad():
        targets = soft_targets(teacher, synthetic.images)
        test = data.test_x.flatten(1)
        labels = data.test_y
        teacher_accuracy = (teacher(data.test_x).argmax(1) == labels).double().mean().item()
        family = interpolating_family(images, targets, test)
        converged = (minimum_norm_scores(images, targets, test).argmax(1) == labels
                     ).double().mean().item()
        own_bias = family.accuracy(teacher.output_layer.bias.double(), labels)
        ridges = {strength: (ridge_scores(images, targets, test, strength).argmax(1) == labels
                             ).double().mean().item() for strength in (0.1, 1.0, 3.0, 10.0, 30.0)}
    ceiling = family.accuracy(oracle_bias(family, labels), labels)
    target = args.target
    if target is None and args.dataset == "mnist":
        target = 86.02
    print(f"dataset {args.dataset}, teacher {100 * teacher_accuracy:.2f}% "
          f"({' '.join(overrides) or 'the paper recipe'})")
    print(f"  converged student (minimum-norm fit)      {100 * converged:.2f}%")
    print(f"  exact fit with the teacher's own bias     {100 * own_bias:.2f}%")
    for strength, accuracy in ridges.items():
        print(f"  ridge {strength:>5}                               {100 * accuracy:.2f}%")
    print(f"  oracle ceiling (bias fitted to test labels) {100 * ceiling:.2f}%")
    if target is not None:
        verdict = "reachable" if 100 * ceiling >= target else "out of reach"
        print(f"  target {target:.2f}%: {verdict} for an exact fit on these images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
