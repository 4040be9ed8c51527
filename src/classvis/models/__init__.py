"""Architectures (config group ``architecture``): a registry of model families.

Each architecture is a settings dataclass (its YAML keys, checked at the door, including against
the dataset's image size) and a module class built from ``(settings, input_shape, num_classes)``;
adding one is a class here and a YAML file in ``conf/architecture/``. Every model exposes
``input_shape``, ``num_classes`` and ``output_layer`` (the last ``nn.Linear``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from classvis.models.conv import (
    ConvNet,
    ConvNetSettings,
    LeNet5,
    LeNet5Settings,
    ResNet18,
    ResNet18Settings,
)
from classvis.models.dense import ACTIVATIONS, ArchitectureSettings, Classifier
from classvis.settings import parse, require

AnyArchitecture = ArchitectureSettings | LeNet5Settings | ConvNetSettings | ResNet18Settings


@dataclass(frozen=True)
class Architecture:
    settings_class: type
    module: Callable[[Any, tuple[int, ...], int], nn.Module]
    # without convolutions: the paper's models, whose first layer sees the image as a vector
    dense: bool


ARCHITECTURES: dict[str, Architecture] = {
    "linear": Architecture(ArchitectureSettings, Classifier, dense=True),
    "mlp": Architecture(ArchitectureSettings, Classifier, dense=True),
    "lenet5": Architecture(LeNet5Settings, LeNet5, dense=False),
    "convnet": Architecture(ConvNetSettings, ConvNet, dense=False),
    "resnet18": Architecture(ResNet18Settings, ResNet18, dense=False),
}


def parse_architecture(node: Any, key: str) -> AnyArchitecture:
    """The settings of the architecture named by ``node['name']``, checked."""
    require(isinstance(node, dict) and "name" in node, f"{key}.name", "an architecture name",
            node if not isinstance(node, dict) else None)
    name = node["name"]
    require(name in ARCHITECTURES, f"{key}.name", "one of " + ", ".join(ARCHITECTURES), name)
    return parse(ARCHITECTURES[name].settings_class, node, key)


def is_dense(settings: AnyArchitecture) -> bool:
    return ARCHITECTURES[settings.name].dense


def has_batchnorm(settings: AnyArchitecture) -> bool:
    """Whether the architecture keeps BatchNorm running statistics (DeepInversion's prior)."""
    return settings.name == "resnet18" or getattr(settings, "norm", None) == "batch"


def build_model(settings: AnyArchitecture, input_shape: tuple[int, ...], num_classes: int,
                seed: int) -> nn.Module:
    """A fresh model, initialised from ``seed`` alone (independent of the global RNG state).

    ``init: glorot`` draws every weight Glorot-uniform and zeroes every bias; ``zeros`` zeroes
    the whole linear model, or the output layer of any other (hidden layers keep their random
    init, which breaks their symmetry), so an untrained model scores every class 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHITECTURES[settings.name].module(settings, tuple(input_shape), num_classes)
        if settings.init == "glorot":
            for layer in model.modules():
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    nn.init.xavier_uniform_(layer.weight)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)
    if settings.init == "zeros":
        zero_layers = (list(model.children()) if settings.name == "linear"
                       else [typing.cast(nn.Module, model.output_layer)])
        for layer in zero_layers:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
    return model


def describe_model(settings: AnyArchitecture, input_shape: tuple[int, ...],
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


__all__ = ["ACTIVATIONS", "ARCHITECTURES", "AnyArchitecture", "ArchitectureSettings",
           "Classifier", "ConvNet", "ConvNetSettings", "LeNet5", "LeNet5Settings", "ResNet18",
           "ResNet18Settings", "build_model", "count_parameters", "describe_model",
           "has_batchnorm", "is_dense", "model_from_description", "parse_architecture"]
