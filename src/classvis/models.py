"""Architectures (config group ``architecture``): the paper's softmax regression and MLPs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from classvis.settings import require

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


@dataclass(frozen=True)
class ArchitectureSettings:
    """``linear``: input straight to the class scores. ``mlp``: hidden layers in between.

    ``init: zeros`` zero-initialises every layer where that still lets the model learn: the whole
    linear model, and an MLP's output layer (its hidden layers keep PyTorch's random init, which
    breaks their symmetry). An untrained model then scores every class 0 and is at chance level.
    ``glorot``: every weight Glorot-uniform (Glorot & Bengio 2010), every bias zero, the classic
    TensorFlow default. ``default``: PyTorch's own initialisation.
    """

    name: Literal["linear", "mlp"]
    hidden: tuple[int, ...] = ()
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"
    init: Literal["zeros", "default", "glorot"] = "zeros"

    def check(self, key: str) -> None:
        if self.name == "linear":
            require(not self.hidden, f"{key}.hidden", "[] for the linear model", list(self.hidden))
        else:
            require(len(self.hidden) > 0, f"{key}.hidden", "at least one hidden layer size",
                    list(self.hidden))
            for size in self.hidden:
                require(size > 0, f"{key}.hidden", "layer sizes > 0", list(self.hidden))

    @property
    def label(self) -> str:
        """Short name for run names and tags: ``linear``, ``mlp30``, ``mlp100-50``."""
        if self.name == "linear":
            return "linear"
        suffix = "" if self.activation == "relu" else f"-{self.activation}"
        return "mlp" + "-".join(str(size) for size in self.hidden) + suffix


class Classifier(nn.Sequential):
    """Flatten, then fully connected layers; the last ``nn.Linear`` gives the class scores."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int,
                 hidden: tuple[int, ...], activation: str):
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    @property
    def output_layer(self) -> nn.Linear:
        return self[-1]

    @property
    def has_hidden_layers(self) -> bool:
        return len(self) > 2


def build_model(settings: ArchitectureSettings, input_shape: tuple[int, ...], num_classes: int,
                seed: int) -> Classifier:
    """A fresh model, initialised from ``seed`` alone (independent of the global RNG state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(input_shape, num_classes, settings.hidden, settings.activation)
        if settings.init == "glorot":
            for layer in model:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)
    if settings.init == "zeros":
        zero_layers = model if settings.name == "linear" else [model.output_layer]
        for layer in zero_layers:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
