"""Extreme model compression (config group ``compress``; the paper's Section 10).

The extracted images become the frozen weight rows of a model without hidden layers; only its
biases are trained, on the real training set. With k images per class a class's score is the
log-sum-exp of its k rows' scores (a soft maximum), so one image per class is the paper's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from classvis.fit import TeacherTraining, fit
from classvis.models import count_parameters


@dataclass(frozen=True)
class CompressSettings:
    """``enabled: false`` skips the stage. Training: minibatch SGD with cross-entropy on the real
    training set, as for the teacher, over the biases alone."""

    enabled: bool = False
    lr: float = 0.5
    batch_size: int = 100
    epochs: int = 1
    schedule: Literal["constant", "cosine"] = "constant"

    def check(self, key: str) -> None:
        self.training().check(key)  # the teacher recipe's own checks, under compress.*

    def training(self) -> TeacherTraining:
        return TeacherTraining(lr=self.lr, batch_size=self.batch_size, epochs=self.epochs,
                               schedule=self.schedule)


class FrozenRowsClassifier(nn.Module):
    """Scores ``x . row + bias`` for each frozen row; class score = log-sum-exp over its rows."""

    rows: torch.Tensor  # a buffer: the frozen rows, sorted by class

    def __init__(self, rows: torch.Tensor, labels: torch.Tensor, num_classes: int):
        super().__init__()
        per_class = torch.bincount(labels, minlength=num_classes)
        if not bool((per_class == per_class[0]).all()) or per_class[0] == 0:
            raise ValueError(f"every class needs the same number (>= 1) of rows, got "
                             f"{per_class.tolist()}")
        order = torch.argsort(labels, stable=True)
        self.register_buffer("rows", rows.detach().flatten(1)[order].clone())
        self.bias = nn.Parameter(torch.zeros(len(rows), device=rows.device))
        self.num_classes = num_classes
        self.per_class = int(per_class[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = images.flatten(1) @ self.rows.T + self.bias
        if self.per_class == 1:
            return scores
        return scores.view(len(images), self.num_classes, self.per_class).logsumexp(dim=2)


@dataclass
class Compressed:
    model: FrozenRowsClassifier
    epoch_losses: list[float]
    trainable_parameters: int


def compress(rows: torch.Tensor, labels: torch.Tensor, num_classes: int,
             train_x: torch.Tensor, train_y: torch.Tensor, settings: CompressSettings,
             seed: int) -> Compressed:
    """Fit the biases of a model whose weight rows are ``rows`` (frozen) on real data."""
    model = FrozenRowsClassifier(rows, labels, num_classes)
    losses = fit(model, train_x, train_y, settings.training(), seed)
    return Compressed(model, losses, count_parameters(model, trainable_only=True))
