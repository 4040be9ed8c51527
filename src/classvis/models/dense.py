"""The paper's architectures: softmax regression (``linear``) and fully connected MLPs (``mlp``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import nn

from classvis.models.base import ARCHITECTURES
from classvis.validation import require

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


@dataclass(frozen=True)
class DenseSettings:
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

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        pass  # any image size

    @property
    def label(self) -> str:
        """Short name for run names and tags: ``linear``, ``mlp30``, ``mlp100-50``."""
        if self.name == "linear":
            return "linear"
        suffix = "" if self.activation == "relu" else f"-{self.activation}"
        return "mlp" + "-".join(str(size) for size in self.hidden) + suffix


@ARCHITECTURES.register("mlp", DenseSettings, dense=True, hidden_layers=True, batchnorm=False)
@ARCHITECTURES.register("linear", DenseSettings, dense=True, hidden_layers=False,
                        batchnorm=False)
class Classifier(nn.Sequential):
    """Flatten, then fully connected layers; the last ``nn.Linear`` gives the class scores."""

    def __init__(self, settings: DenseSettings, input_shape: tuple[int, ...],
                 num_classes: int):
        hidden, activation = settings.hidden, settings.activation
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
        layer = self[-1]
        assert isinstance(layer, nn.Linear)
        return layer

    @property
    def has_hidden_layers(self) -> bool:
        return len(self) > 2
