"""Training the teacher on real labels (config group ``trainer``, key ``teacher``); the student's
training on soft targets is ``classvis.distill``.

Plain functions over tensors: no tracking, no config framework. Both stop at once with a
``DivergenceError`` when the loss stops being finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from classvis.augment import crop_flip
from classvis.optim import make_optimizer
from classvis.validation import non_negative, positive, require

# Bumped whenever a change to this module changes what training produces (keys the teacher cache).
TRAINING_CODE_VERSION = "1"


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TeacherTraining:
    """Minibatch training on the real training set (paper: SGD, lr 0.5, batch 100, cross-entropy).

    The run lasts ``epochs`` passes over the data, or exactly ``steps`` minibatch updates (set
    ``epochs: null``; the last pass is cut short), e.g. a recipe stated in updates, not epochs.
    ``schedule: cosine`` anneals the learning rate from ``lr`` to 0 over the whole run, so the
    final weights are not a snapshot of SGD's noise (useful where the constant rate oscillates).
    ``augment: crop`` shows each minibatch image at a random offset of the image zero-padded by
    ``crop_padding`` pixels; ``crop_flip`` also mirrors half of them (not for digits or text)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 100
    epochs: int | None = 10
    schedule: Literal["constant", "cosine"] = "constant"
    steps: int | None = None
    augment: Literal["none", "crop", "crop_flip"] = "none"
    crop_padding: int = 4

    def check(self, key: str) -> None:
        positive(self.lr, f"{key}.lr")
        non_negative(self.crop_padding, f"{key}.crop_padding")
        non_negative(self.momentum, f"{key}.momentum")
        non_negative(self.weight_decay, f"{key}.weight_decay")
        positive(self.batch_size, f"{key}.batch_size", "an integer >= 1")
        require((self.epochs is None) != (self.steps is None), f"{key}.steps",
                "null when epochs is set (set epochs=null to train for a number of steps), or a "
                "number of steps when epochs is null", self.steps)
        if self.epochs is not None:
            positive(self.epochs, f"{key}.epochs", "an integer >= 1")
        else:
            assert self.steps is not None  # one of the two is set (checked above)
            positive(self.steps, f"{key}.steps", "an integer >= 1")

    def total_steps(self, count: int) -> int:
        """Minibatch updates over ``count`` training images."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None  # one of the two is set (checked at the door)
        return self.epochs * math.ceil(count / self.batch_size)

    def total_epochs(self, count: int) -> int:
        """Passes over ``count`` training images (the last one may be partial)."""
        return math.ceil(self.total_steps(count) / math.ceil(count / self.batch_size))


def check_finite(loss: torch.Tensor, what: str) -> None:
    if not torch.isfinite(loss):
        raise DivergenceError(f"{what} loss became {loss.item()}")


def fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, settings: TeacherTraining,
        seed: int, on_epoch: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` with cross-entropy on labelled images; returns the mean loss per epoch
    (of a last, partial epoch: over the images it saw)."""
    require(len(images) == len(labels), "images", "one label per image", (len(images), len(labels)))
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.lr,
                               settings.momentum, settings.weight_decay)
    model.train()
    count = len(images)
    total_steps = settings.total_steps(count)
    step = 0
    epoch_losses = []
    for epoch in range(settings.total_epochs(count)):
        order = torch.randperm(count, generator=generator).to(images.device)
        total = torch.zeros((), device=images.device)
        seen = 0
        for start in range(0, count, settings.batch_size):
            if step == total_steps:
                break
            if settings.schedule == "cosine":
                progress = step / total_steps
                for group in optimizer.param_groups:
                    group["lr"] = settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
            batch = order[start:start + settings.batch_size]
            inputs = images[batch]
            if settings.augment != "none":
                inputs = crop_flip(inputs, settings.crop_padding, settings.augment == "crop_flip",
                                   generator)
            loss = F.cross_entropy(model(inputs), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
            seen += len(batch)
            step += 1
            # NaN and inf propagate through the running total, so one check per 100 steps suffices
            if start // settings.batch_size % 100 == 99:
                check_finite(total, f"teacher (epoch {epoch + 1})")
        check_finite(total, f"teacher (epoch {epoch + 1})")
        epoch_losses.append(total.item() / seen)
        if on_epoch is not None:
            on_epoch(epoch + 1, epoch_losses[-1])
    model.eval()
    return epoch_losses
