"""Extractors (config group ``extractor``): a trained teacher -> a small synthetic training set.

An extractor is one function ``(teacher, data, settings, seed, on_step) -> Extraction``
registered in ``EXTRACTORS`` under a name with its settings dataclass and traits; adding one is
that function, decorated, its settings class and a YAML file in ``conf/extractor/``. The class
visualizations (gradient ascent with its priors) live in ``ascent.py``, the extractors that
optimise nothing in ``baselines.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from classvis.data import ImageData
from classvis.registry import Registry


@dataclass
class Extraction:
    """What an extractor made: the images, the class each stands for, and numbers worth
    logging (a ``synthetic.SyntheticSet`` adds the teacher's logits and the class names)."""

    images: torch.Tensor          # (M, C, H, W) float32
    labels: torch.Tensor          # (M,) int64: the class each image stands for
    info: dict[str, float] = field(default_factory=dict)


# (teacher, data, settings, seed, on_step) -> images; on_step(step, loss) may be None.
# Trait ``teacher_without_hidden_layers``: the extractor reads the teacher's weights as images,
# so only a teacher whose output layer sees the pixels will do. Trait ``needs_training_data``: it
# reads real training images (a baseline), so a run without a training split cannot have it.
EXTRACTORS: Registry[Callable[..., Extraction]] = Registry(
    "extractor", traits=("teacher_without_hidden_layers", "needs_training_data"))


@dataclass(frozen=True)
class NoSettings:
    pass


def extract(teacher: nn.Module, data: ImageData, name: str, settings: Any,
            seed: int = 0, on_step: Callable[[int, float], None] | None = None
            ) -> Extraction:
    """Run extractor ``name``; ``on_step(step, loss)`` follows an iterative one's progress."""
    return EXTRACTORS[name].function(teacher, data, settings, seed, on_step)


def soft_targets(teacher: nn.Module, images: torch.Tensor, batch_size: int = 1000
                 ) -> torch.Tensor:
    """The teacher's logits on ``images``: what the student learns to reproduce (scored
    ``batch_size`` at a time, to bound memory)."""
    from classvis.evaluate import batch_for

    batch_size = batch_for(images, batch_size)
    teacher.eval()
    with torch.no_grad():
        return torch.cat([teacher(images[i:i + batch_size])
                          for i in range(0, len(images), batch_size)])


# the entries register themselves on import (they need the names above)
from classvis.extract.ascent import ClassVisSettings, class_vis  # noqa: E402
from classvis.extract.baselines import (  # noqa: E402
    RealSubsetSettings,
    class_average,
    output_weights,
    real_subset,
)

__all__ = ["EXTRACTORS", "ClassVisSettings", "Extraction", "NoSettings", "RealSubsetSettings",
           "class_average", "class_vis", "extract", "output_weights", "real_subset",
           "soft_targets"]
