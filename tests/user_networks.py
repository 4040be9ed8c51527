"""Networks of "the user's own code", for ``teacher_from=module`` (``teacher.network._target_=
user_networks.<Name>``; the tests folder is on the Python path)."""

from __future__ import annotations

import torch
from torch import nn


class Linear(nn.Module):
    """Softmax regression on normalised pixels, its layer named as a user might."""

    def __init__(self, inputs: int = 64, num_classes: int = 10):
        super().__init__()
        self.fc = nn.Linear(inputs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class SmallConv(nn.Module):
    """A small convolutional network with BatchNorm, for 1-channel images of any size."""

    def __init__(self, num_classes: int = 10, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def not_a_module(**_: object) -> str:
    return "a string"


class Raises(nn.Module):
    def __init__(self) -> None:
        raise RuntimeError("no GPU found")


class AnyShape(nn.Module):
    """A convolution, BatchNorm and a linear head for images of ``channels`` at any size."""

    def __init__(self, channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
