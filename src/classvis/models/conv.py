"""Convolutional architectures beyond the paper: LeNet-5, the dataset-distillation ConvNet, and a
ResNet-18 for small images. Each takes 1- or 3-channel inputs of any size large enough for its
pooling, worked out from the arithmetic below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from classvis.models.base import ARCHITECTURES
from classvis.models.dense import ACTIVATIONS
from classvis.validation import positive, require

Init = Literal["default", "zeros", "glorot"]


def _require_size(shape: tuple[int, ...], key: str, minimum: int, name: str, why: str) -> None:
    """One line naming ``key`` unless the images are at least ``minimum`` pixels each way."""
    height, width = shape[-2:]
    require(min(height, width) >= minimum, key,
            f"images of at least {minimum}x{minimum} pixels for {name} ({why}), dataset images "
            f"are {height}x{width}", name)


@dataclass(frozen=True)
class LeNet5Settings:
    """LeNet-5 (LeCun et al. 1998): conv 5x5 (6 channels, padded) and 2x2 max-pool, conv 5x5
    (16) and 2x2 max-pool, then 120-84-classes. ``init`` as for the dense models."""

    name: Literal["lenet5"] = "lenet5"
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"
    init: Init = "default"

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        _require_size(shape, key, 12, "lenet5", "two 5x5 convolutions and two 2x2 poolings")

    @property
    def label(self) -> str:
        return "lenet5" + ("" if self.activation == "relu" else f"-{self.activation}")


@dataclass(frozen=True)
class ConvNetSettings:
    """The ConvNet of the dataset-distillation literature (Gidaris & Komodakis 2018; DC, DM,
    MTT): ``depth`` blocks of conv 3x3 with ``width`` channels, a norm layer, ReLU and 2x2
    average pooling, then one linear layer. ``instance`` norm is per-image (GroupNorm with one
    group per channel, as in DC's code); ``batch`` adds BatchNorm's running statistics."""

    name: Literal["convnet"] = "convnet"
    depth: int = 3
    width: int = 128
    norm: Literal["instance", "batch", "none"] = "instance"
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"
    init: Init = "default"

    def check(self, key: str) -> None:
        positive(self.depth, f"{key}.depth", "an integer >= 1")
        positive(self.width, f"{key}.width", "an integer >= 1")

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        height, width = shape[-2:]
        require(min(height, width) >> self.depth >= 1, f"{key}.depth",
                f"at most {max(min(height, width).bit_length() - 1, 0)} for {height}x{width} "
                f"images (each block halves the image; depth {self.depth} pools it below 1x1)",
                self.depth)

    @property
    def label(self) -> str:
        label = f"convnet{self.depth}x{self.width}"
        if self.norm != "instance":
            label += f"-{self.norm}norm"
        return label + ("" if self.activation == "relu" else f"-{self.activation}")


@dataclass(frozen=True)
class ResNet18Settings:
    """torchvision's ResNet-18 adapted to small images (a 3x3 stride-1 stem, no max-pool, as for
    CIFAR), with BatchNorm."""

    name: Literal["resnet18"] = "resnet18"
    init: Init = "default"

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        _require_size(shape, key, 8, "resnet18", "three stride-2 stages")

    @property
    def label(self) -> str:
        return "resnet18"


class FeaturesThenHead(nn.Module):
    """A classifier made of a feature extractor and a dense head whose last layer scores the
    classes (``output_layer``)."""

    features: nn.Module
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.head(self.features(x))
        return scores

    @property
    def output_layer(self) -> nn.Linear:
        layer = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        assert isinstance(layer, nn.Linear)
        return layer


@ARCHITECTURES.register("lenet5", LeNet5Settings, dense=False, hidden_layers=True,
                        batchnorm=False)
class LeNet5(FeaturesThenHead):
    def __init__(self, settings: LeNet5Settings, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        channels, height, width = input_shape
        activation = ACTIVATIONS[settings.activation]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), activation(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), activation(), nn.MaxPool2d(2), nn.Flatten())
        side = [((size // 2) - 4) // 2 for size in (height, width)]
        self.head = nn.Sequential(
            nn.Linear(16 * side[0] * side[1], 120), activation(), nn.Linear(120, 84),
            activation(), nn.Linear(84, num_classes))
        self.input_shape, self.num_classes = tuple(input_shape), num_classes


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(width)
    return nn.Identity()


@ARCHITECTURES.register("convnet", ConvNetSettings, dense=False, hidden_layers=True,
                        batchnorm=lambda settings: settings.norm == "batch")
class ConvNet(FeaturesThenHead):
    def __init__(self, settings: ConvNetSettings, input_shape: tuple[int, ...],
                 num_classes: int):
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for _ in range(settings.depth):
            layers += [nn.Conv2d(channels, settings.width, 3, padding=1),
                       _norm(settings.norm, settings.width), ACTIVATIONS[settings.activation](),
                       nn.AvgPool2d(2)]
            channels = settings.width
        self.features = nn.Sequential(*layers, nn.Flatten())
        features = settings.width * (height >> settings.depth) * (width >> settings.depth)
        self.head = nn.Linear(features, num_classes)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes


@ARCHITECTURES.register("resnet18", ResNet18Settings, dense=False, hidden_layers=True,
                        batchnorm=True)
class ResNet18(nn.Module):
    def __init__(self, settings: ResNet18Settings, input_shape: tuple[int, ...],
                 num_classes: int):
        super().__init__()
        from torchvision.models import resnet18

        network = resnet18(num_classes=num_classes)
        network.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
        network.maxpool = nn.Identity()
        self.network = network
        self.input_shape, self.num_classes = tuple(input_shape), num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.network(x)
        return scores

    @property
    def output_layer(self) -> nn.Linear:
        layer = self.network.fc
        assert isinstance(layer, nn.Linear)
        return layer
