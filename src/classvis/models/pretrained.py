"""Architecture ``torchvision``: a network of torchvision's model zoo named by its pretrained
weights (``weights``: ``ResNet18_Weights.IMAGENET1K_V1``, any name
``torchvision.models.get_weight`` takes). The weights' metadata declare everything else: the
builder (``resnet18``), the classes (``meta["categories"]``), the input (3 x crop x crop) and its
normalisation (the mean and std of the weights' own transforms). Like ``module``, the network
takes [0, 1] pixels behind that normalisation, and is a teacher brought with its weights
(``teacher_from=torchvision``), never trained here; the weights file lies in the torch hub cache
(``hub_file``). No config framework in here."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch

from classvis.models.base import ARCHITECTURES
from classvis.models.given import Normalised
from classvis.validation import ConfigError, require

EXAMPLE = "ResNet18_Weights.IMAGENET1K_V1"


@functools.cache
def _entry(name: str) -> Any:
    """The weights entry ``name`` names (a member of a torchvision ``WeightsEnum``)."""
    from torchvision.models import get_weight

    try:
        return get_weight(name)
    except (ValueError, KeyError, AttributeError) as error:
        raise ConfigError("teacher.weights", f"a name of torchvision's pretrained weights "
                          f"(torchvision.models.get_weight, e.g. {EXAMPLE})",
                          f"{name} ({error})".splitlines()[0]) from None


@functools.cache
def _builder_name(name: str) -> str:
    """The torchvision model the weights ``name`` are for (``resnet18``)."""
    import torchvision
    from torchvision.models import get_model_weights, list_models

    kind = type(_entry(name))
    for model in list_models(module=torchvision.models):
        if get_model_weights(model) is kind:
            return str(model)
    raise ConfigError("teacher.weights", "weights of a torchvision classification model", name)


@dataclass(frozen=True)
class TorchvisionSettings:
    """A torchvision classifier named by its pretrained weights; ``init`` is always ``default``
    (the weights come from the file, or a seeded random init with
    ``teacher_from.pretrained=false``)."""

    name: Literal["torchvision"] = "torchvision"
    weights: str = EXAMPLE
    init: Literal["default"] = "default"

    def check(self, key: str) -> None:
        require(isinstance(self.weights, str) and bool(self.weights), f"{key}.weights",
                f"a name of torchvision's pretrained weights (e.g. {EXAMPLE})", self.weights)
        _entry(self.weights)
        _builder_name(self.weights)

    @property
    def builder(self) -> str:
        return _builder_name(self.weights)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(name) for name in _entry(self.weights).meta["categories"])

    @property
    def _transforms(self) -> Any:
        return _entry(self.weights).transforms()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        crop = self._transforms.crop_size
        size = int(crop[0] if isinstance(crop, (list, tuple)) else crop)
        return (3, size, size)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(value) for value in self._transforms.mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(float(value) for value in self._transforms.std)

    @property
    def url(self) -> str:
        return str(_entry(self.weights).url)

    @property
    def hub_file(self) -> Path:
        """Where torchvision keeps the weights file: the torch hub cache's checkpoints."""
        return (Path(torch.hub.get_dir()) / "checkpoints"
                / Path(urlparse(self.url).path).name)

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        require(tuple(shape) == self.input_shape, key,
                f"images of {'x'.join(map(str, self.input_shape))} for {self.weights} (the "
                f"dataset's are {'x'.join(map(str, shape))})", self.label)

    @property
    def label(self) -> str:
        return f"torchvision:{self.builder}"


class TorchvisionNetwork(Normalised):
    """Architecture ``torchvision``: the weights' model built without them (they are loaded
    from the file), behind the weights' normalisation."""

    def __init__(self, settings: TorchvisionSettings, input_shape: tuple[int, ...],
                 num_classes: int):
        from torchvision.models import get_model_builder

        network = get_model_builder(settings.builder)(weights=None, num_classes=num_classes)
        super().__init__(network, settings.mean, settings.std, input_shape, num_classes)


@functools.cache
def _has_batchnorm(described: str) -> bool:
    from classvis.priors import batchnorm_layers

    settings = TorchvisionSettings(**json.loads(described))
    network = TorchvisionNetwork(settings, settings.input_shape, 1).network
    return bool(batchnorm_layers(network))


ARCHITECTURES.register(
    "torchvision", TorchvisionSettings, dense=False, hidden_layers=True,
    batchnorm=lambda settings: _has_batchnorm(json.dumps({"weights": settings.weights})),
)(TorchvisionNetwork)

__all__ = ["TorchvisionNetwork", "TorchvisionSettings"]
