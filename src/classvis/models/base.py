"""What every architecture is: its registry entry and the settings interface the rest of the code
relies on. An architecture registers its module class (called as ``(settings, input_shape,
num_classes)``) with its settings class and its traits:

- ``dense``: no convolutions; the first layer sees the image as a vector (the paper's models);
- ``hidden_layers``: layers between the input and the class scores (``output_weights`` needs a
  teacher without; ``init: zeros`` zeroes only the output layer of one with);
- ``batchnorm``: BatchNorm running statistics, DeepInversion's prior (``extractor.bn``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from torch import nn

from classvis.registry import Registry


class ArchitectureSettings(Protocol):
    """The keys of one ``architecture`` option (``conf/architecture/<name>.yaml``): a frozen
    dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def name(self) -> str: ...

    @property
    def init(self) -> str: ...

    @property
    def label(self) -> str:
        """Short name for run names and tags (``mlp100-50``, ``convnet3x128``)."""
        ...

    def check_input(self, shape: tuple[int, ...], key: str) -> None:
        """``ConfigError`` at ``key`` unless the architecture takes images of ``shape``."""


ARCHITECTURES: Registry[Callable[[Any, tuple[int, ...], int], nn.Module]] = Registry(
    "architecture", traits=("dense", "hidden_layers", "batchnorm"))


def trait(settings: ArchitectureSettings, name: str) -> Any:
    """The value of trait ``name`` for the architecture ``settings`` describe."""
    return ARCHITECTURES[settings.name].trait(name, settings)


__all__ = ["ARCHITECTURES", "ArchitectureSettings", "trait"]
