"""Architecture ``module``: a network of the user's own code (or a library's, e.g.
``torchvision.models.resnet18``), named by ``network._target_`` (a class or function importable
from the Python path, called with the other keys of ``network`` as keyword arguments), with the
input it was trained on declared: ``channels``, ``height``, ``width`` and the normalisation
(``mean``, ``std``) it applies to pixels in [0, 1].

Every stage of classvis keeps images in [0, 1] pixel space (so synthetic sets stay viewable and
portable); the wrapper hands the network ``(x - mean) / std``. A ``module`` is a teacher the user
brings with its trained weights (``teacher_from=module``), never trained here: its class is the
user's code, which the teacher cache could not key. The weights file fits the network itself
(its own state-dict keys, not the wrapper's). No config framework in here: ``_target_`` is
resolved with importlib.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from classvis.models.base import ARCHITECTURES
from classvis.validation import ConfigError, positive, require

TARGET = "_target_"


def _resolve(target: str, key: str) -> Any:
    """The object a dotted path names (``package.module.Name``), importing the longest module
    prefix; a ``ConfigError`` at ``key`` when nothing imports."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not module_name.startswith(error.name):
                raise ConfigError(key, "a class or function that imports", f"{target}: "
                                  f"importing {module_name} needs {error.name!r}") from None
            continue
        except Exception as error:  # the user's module fails while importing
            raise ConfigError(key, "a class or function that imports", f"{target}: importing "
                              f"{module_name} raised {type(error).__name__}: {error}"
                              .splitlines()[0]) from None
        try:
            for name in parts[cut:]:
                found = getattr(found, name)
        except AttributeError:
            raise ConfigError(key, "a class or function that imports",
                              f"{target}: {module_name} has no {'.'.join(parts[cut:])}") from None
        return found
    raise ConfigError(key, "a class or function on the Python path (package.module.Name)",
                      target)


@dataclass(frozen=True)
class ModuleSettings:
    """Your network: ``network`` (``_target_`` and its keyword arguments) and the input it
    takes; ``init`` is always ``default`` (the weights come from your file)."""

    name: Literal["module"] = "module"
    network: Any = field(default_factory=dict)
    channels: int = 1
    height: int = 28
    width: int = 28
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    init: Literal["default"] = "default"

    def check(self, key: str) -> None:
        require(isinstance(self.network, dict) and isinstance(self.network.get(TARGET), str)
                and bool(self.network[TARGET]), f"{key}.network.{TARGET}",
                "the network's class or function (package.module.Name) with its keyword "
                "arguments beside it", self.network.get(TARGET)
                if isinstance(self.network, dict) else self.network)
        try:
            json.dumps(self.network)
        except TypeError:
            raise ConfigError(f"{key}.network", "plain values (numbers, strings, lists, "
                              "mappings) as keyword arguments", self.network) from None
        for name in ("channels", "height", "width"):
            positive(getattr(self, name), f"{key}.{name}", "an integer >= 1")
        for name in ("mean", "std"):
            values = getattr(self, name)
            require(len(values) in (1, self.channels), f"{key}.{name}",
                    f"1 or {self.channels} values (one per channel)", list(values))
        require(all(value > 0 for value in self.std), f"{key}.std", "values > 0",
                list(self.std))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        require(tuple(shape) == self.input_shape, f"{key}.channels",
                f"the dataset's image shape {'x'.join(map(str, shape))} (the network declares "
                f"{'x'.join(map(str, self.input_shape))}: {key}.channels, height, width)",
                self.channels)

    @property
    def target(self) -> str:
        return str(self.network.get(TARGET, ""))

    @property
    def label(self) -> str:
        return "module:" + self.target.rsplit(".", 1)[-1]


class Normalised(nn.Module):
    """``network`` behind its input normalisation: takes [0, 1] pixels of ``input_shape`` and
    hands it ``(x - mean) / std`` (one value for every channel, or one per channel).
    ``weights_root`` is the part a weights file fits (the network's own keys)."""

    def __init__(self, network: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 input_shape: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        self.network: nn.Module = network
        shape = (1, input_shape[0], 1, 1)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        for name, given in (("mean", mean), ("std", std)):
            values = torch.tensor(given, dtype=torch.float32).reshape(1, -1, 1, 1)
            self.register_buffer(name, values.expand(shape).clone(), persistent=False)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    @property
    def weights_root(self) -> nn.Module:
        return self.network

    @property
    def output_layer(self) -> nn.Linear | None:
        """The network's last ``nn.Linear`` (None when it has none)."""
        layers = [layer for layer in self.network.modules() if isinstance(layer, nn.Linear)]
        return layers[-1] if layers else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.network((x - self.mean) / self.std)
        return scores


class GivenNetwork(Normalised):
    """Architecture ``module``: the network ``settings.network`` names, built, behind the
    declared normalisation."""

    def __init__(self, settings: ModuleSettings, input_shape: tuple[int, ...],
                 num_classes: int):
        key = "teacher.network._target_"
        factory = _resolve(settings.target, key)
        kwargs = {name: value for name, value in settings.network.items() if name != TARGET}
        try:
            network = factory(**kwargs)
        except Exception as error:
            raise ConfigError(key, "a network built from the keyword arguments given",
                              f"{settings.target}({', '.join(map(str, kwargs))}) raised "
                              f"{type(error).__name__}: {error}".splitlines()[0]) from None
        require(isinstance(network, nn.Module), key, "a class or function that makes a "
                "torch.nn.Module", f"{settings.target} made {type(network).__name__}")
        super().__init__(network, settings.mean, settings.std, input_shape, num_classes)


class ClassSubset(nn.Module):
    """A given teacher scoring only the run's classes (``dataset.classes``): the scores of its
    outputs ``keep``, in that order, so a 1,000-class network is a teacher of five."""

    def __init__(self, teacher: nn.Module, keep: tuple[int, ...]):
        super().__init__()
        self.teacher = teacher
        self.keep: torch.Tensor
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.int64), persistent=False)
        self.input_shape = getattr(teacher, "input_shape", None)
        self.num_classes = len(keep)

    @property
    def weights_root(self) -> nn.Module:
        root = getattr(self.teacher, "weights_root", self.teacher)
        assert isinstance(root, nn.Module)
        return root

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.teacher(x)
        return scores.index_select(1, self.keep)


_BATCHNORM: dict[str, bool] = {}


def _has_batchnorm(settings: ModuleSettings) -> bool:
    """Whether the network holds BatchNorm layers (built once per network description)."""
    described = json.dumps(settings.network, sort_keys=True)
    if described not in _BATCHNORM:
        from classvis.priors import batchnorm_layers

        network = GivenNetwork(settings, settings.input_shape, 1).network
        _BATCHNORM[described] = bool(batchnorm_layers(network))
    return _BATCHNORM[described]


ARCHITECTURES.register("module", ModuleSettings, dense=False, hidden_layers=True,
                       batchnorm=_has_batchnorm)(GivenNetwork)

__all__ = ["ClassSubset", "GivenNetwork", "ModuleSettings", "Normalised"]
