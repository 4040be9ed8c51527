"""Training (config group ``trainer``): the teacher on real labels, the student on soft targets.

Plain functions over tensors: no tracking, no config framework. Both stop at once with a
``DivergenceError`` when the loss stops being finite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from classvis.settings import non_negative, positive, require

# Bumped whenever a change to this module changes what training produces (keys the teacher cache).
TRAINING_CODE_VERSION = "1"


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TeacherTraining:
    """Minibatch training on the real training set (paper: SGD, lr 0.5, batch 100, cross-entropy)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 100
    epochs: int = 10

    def check(self, key: str) -> None:
        positive(self.lr, f"{key}.lr")
        non_negative(self.momentum, f"{key}.momentum")
        non_negative(self.weight_decay, f"{key}.weight_decay")
        positive(self.batch_size, f"{key}.batch_size", "an integer >= 1")
        positive(self.epochs, f"{key}.epochs", "an integer >= 1")


@dataclass(frozen=True)
class StudentTraining:
    """Full-batch training on the synthetic images and the teacher's logits.

    ``loss: mse`` matches the logits themselves (model compression, Ba & Caruana 2014);
    ``loss: kl`` matches softened probabilities at ``temperature`` T, scaled by T^2 (Hinton et al.
    2015). Training stops after ``steps`` or once the loss is at most ``tol``.
    """

    optimizer: Literal["sgd", "adam", "lbfgs"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    steps: int = 1000
    loss: Literal["mse", "kl"] = "mse"
    temperature: float = 1.0
    tol: float = 0.0

    def check(self, key: str) -> None:
        positive(self.lr, f"{key}.lr")
        non_negative(self.momentum, f"{key}.momentum")
        positive(self.steps, f"{key}.steps", "an integer >= 1")
        positive(self.temperature, f"{key}.temperature")
        non_negative(self.tol, f"{key}.tol")


@dataclass(frozen=True)
class TrainerSettings:
    teacher: TeacherTraining
    student: StudentTraining


def _optimizer(name: str, params, lr: float, momentum: float = 0.0,
               weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=50,
                                 line_search_fn="strong_wolfe")
    raise ValueError(f"unknown optimizer {name!r}")


def _check_finite(loss: torch.Tensor, what: str) -> None:
    if not torch.isfinite(loss):
        raise DivergenceError(f"{what} loss became {loss.item()}")


def fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, settings: TeacherTraining,
        seed: int, on_epoch: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` with cross-entropy on labelled images; returns the mean loss per epoch."""
    require(len(images) == len(labels), "images", "one label per image", (len(images), len(labels)))
    generator = torch.Generator().manual_seed(seed)
    optimizer = _optimizer(settings.optimizer, model.parameters(), settings.lr,
                           settings.momentum, settings.weight_decay)
    model.train()
    count = len(images)
    epoch_losses = []
    for epoch in range(settings.epochs):
        order = torch.randperm(count, generator=generator)
        total = torch.zeros(())
        for start in range(0, count, settings.batch_size):
            batch = order[start:start + settings.batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
            # NaN and inf propagate through the running total, so one check per 100 steps suffices
            if start // settings.batch_size % 100 == 99:
                _check_finite(total, f"teacher (epoch {epoch + 1})")
        _check_finite(total, f"teacher (epoch {epoch + 1})")
        epoch_losses.append(total.item() / count)
        if on_epoch is not None:
            on_epoch(epoch + 1, epoch_losses[-1])
    model.eval()
    return epoch_losses


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str,
                     temperature: float = 1.0) -> torch.Tensor:
    if loss == "mse":
        return F.mse_loss(logits, targets)
    if loss == "kl":
        t = temperature
        return F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(targets / t, dim=1),
                        reduction="batchmean", log_target=True) * (t * t)
    raise ValueError(f"unknown soft-target loss {loss!r}")


def distill(model: nn.Module, images: torch.Tensor, soft_targets: torch.Tensor,
            settings: StudentTraining,
            on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` full-batch to reproduce ``soft_targets`` (teacher logits) on ``images``."""
    require(len(images) == len(soft_targets), "images", "one soft target per image",
            (len(images), len(soft_targets)))
    optimizer = _optimizer(settings.optimizer, model.parameters(), settings.lr, settings.momentum)
    model.train()
    step_losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = soft_target_loss(model(images), soft_targets, settings.loss, settings.temperature)
        loss.backward()
        return loss

    for step in range(1, settings.steps + 1):
        loss = optimizer.step(closure)
        _check_finite(loss, f"student (step {step})")
        step_losses.append(loss.item())
        if on_step is not None:
            on_step(step, step_losses[-1])
        if step_losses[-1] <= settings.tol:
            break
    model.eval()
    return step_losses
