"""Architectures (config group ``architecture``): a registry of model families.

Each architecture is a settings dataclass (its YAML keys, checked at the door, including against
the dataset's image size) and a module class built from ``(settings, input_shape, num_classes)``,
registered with its traits in ``models.base.ARCHITECTURES``; adding one is that class, decorated,
its settings class and a YAML file in ``conf/architecture/``. Every model exposes
``input_shape``, ``num_classes`` and ``output_layer`` (the last ``nn.Linear``).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import torch
from torch import nn

from classvis.models.base import ARCHITECTURES, ArchitectureSettings, trait
from classvis.models.conv import (
    ConvNet,
    ConvNetSettings,
    LeNet5,
    LeNet5Settings,
    ResNet18,
    ResNet18Settings,
)
from classvis.models.dense import ACTIVATIONS, Classifier, DenseSettings
from classvis.models.given import ClassSubset, GivenNetwork, ModuleSettings
from classvis.models.pretrained import TorchvisionNetwork, TorchvisionSettings


def parse_architecture(node: Any, key: str) -> ArchitectureSettings:
    """The settings of the architecture named by ``node['name']``, checked."""
    settings: ArchitectureSettings = ARCHITECTURES.parse(node, key)[1]
    return settings


def is_dense(settings: ArchitectureSettings) -> bool:
    """Whether the architecture has no convolutions (its first layer sees the image as a
    vector)."""
    return bool(trait(settings, "dense"))


def has_batchnorm(settings: ArchitectureSettings) -> bool:
    """Whether the architecture keeps BatchNorm running statistics (DeepInversion's prior)."""
    return bool(trait(settings, "batchnorm"))


def has_hidden_layers(settings: ArchitectureSettings) -> bool:
    return bool(trait(settings, "hidden_layers"))


def build_model(settings: ArchitectureSettings, input_shape: tuple[int, ...], num_classes: int,
                seed: int) -> nn.Module:
    """A fresh model, initialised from ``seed`` alone (independent of the global RNG state).

    ``init: glorot`` draws every weight Glorot-uniform and zeroes every bias; ``zeros`` zeroes
    the whole linear model, or the output layer of any other (hidden layers keep their random
    init, which breaks their symmetry), so an untrained model scores every class 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHITECTURES[settings.name].function(settings, tuple(input_shape), num_classes)
        if settings.init == "glorot":
            for layer in model.modules():
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    nn.init.xavier_uniform_(layer.weight)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)
    if settings.init == "zeros":
        zero_layers = (list(model.children()) if not has_hidden_layers(settings)
                       else [typing.cast(nn.Module, model.output_layer)])
        for layer in zero_layers:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
    return model


def describe_model(settings: ArchitectureSettings, input_shape: tuple[int, ...],
                   num_classes: int) -> dict[str, Any]:
    """Everything needed to rebuild a model's network, as JSON-able values (weights aside)."""
    return {"architecture": dataclasses.asdict(settings), "input_shape": list(input_shape),
            "num_classes": num_classes}


def model_from_description(description: dict[str, Any]) -> nn.Module:
    """The network ``describe_model`` described, with fresh weights (load the trained ones)."""
    settings = parse_architecture(description.get("architecture"), "architecture")
    return build_model(settings, tuple(description["input_shape"]),
                       int(description["num_classes"]), seed=0)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ACTIVATIONS", "ARCHITECTURES", "ArchitectureSettings", "ClassSubset", "Classifier",
           "ConvNet",
           "ConvNetSettings", "DenseSettings", "GivenNetwork", "LeNet5", "LeNet5Settings",
           "ModuleSettings", "ResNet18", "ResNet18Settings", "TorchvisionNetwork",
           "TorchvisionSettings", "build_model", "count_parameters",
           "describe_model", "has_batchnorm", "has_hidden_layers", "is_dense",
           "model_from_description", "parse_architecture", "trait"]
