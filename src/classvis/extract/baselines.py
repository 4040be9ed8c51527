"""The extractors that optimise nothing: class averages (the paper's Algorithm 1), the output
layer's weights as images, and random real images (the baseline a synthetic set must beat)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from classvis.data import ImageData
from classvis.extract import EXTRACTORS, Extraction, NoSettings
from classvis.models import Classifier
from classvis.validation import ConfigError, positive, require


@EXTRACTORS.register("class_average", NoSettings, teacher_without_hidden_layers=False,
                    needs_training_data=True)
def class_average(teacher: nn.Module, data: ImageData, settings: NoSettings,
                  seed: int = 0, on_step: Callable[[int, float], None] | None = None
                  ) -> Extraction:
    """The mean of all training images of each class (the paper's Algorithm 1)."""
    classes = torch.arange(data.num_classes, device=data.train_x.device)
    counts = torch.bincount(data.train_y, minlength=data.num_classes)
    missing = [data.class_names[c] for c in classes.tolist() if counts[c] == 0]
    if missing:
        raise ConfigError("extractor.name", "class_average needs training images of every class",
                          f"none for {missing}")
    sums = torch.zeros(data.num_classes, *data.image_shape, device=data.train_x.device).index_add_(
        0, data.train_y, data.train_x)
    images = sums / counts.view(-1, *([1] * len(data.image_shape))).float()
    return Extraction(images, classes)


@dataclass(frozen=True)
class RealSubsetSettings:
    """``per_class`` real training images of each class, drawn at random with the run's seed."""

    per_class: int = 1

    def check(self, key: str) -> None:
        positive(self.per_class, f"{key}.per_class", "an integer >= 1")

    def check_data(self, data: ImageData, key: str) -> None:
        counts = torch.bincount(data.train_y.cpu(), minlength=data.num_classes)
        fewest = int(counts.argmin())
        require(int(counts[fewest]) >= self.per_class, f"{key}.per_class",
                f"at most {int(counts[fewest])} (the training images of class "
                f"{data.class_names[fewest]})", self.per_class)


@EXTRACTORS.register("real_subset", RealSubsetSettings, teacher_without_hidden_layers=False,
                    needs_training_data=True)
def real_subset(teacher: nn.Module, data: ImageData, settings: RealSubsetSettings,
                seed: int = 0, on_step: Callable[[int, float], None] | None = None
                ) -> Extraction:
    """Not an extraction: k random real training images per class, the baseline a synthetic
    set of the same size must beat (they too get the teacher's logits as soft targets)."""
    generator = torch.Generator().manual_seed(seed)
    labels = data.train_y.cpu()
    chosen = []
    for c in range(data.num_classes):
        members = (labels == c).nonzero().flatten()
        if len(members) < settings.per_class:
            raise ConfigError("extractor.per_class", f"at most {len(members)} (the training "
                              f"images of class {data.class_names[c]})", settings.per_class)
        chosen.append(members[torch.randperm(len(members), generator=generator)
                              [:settings.per_class]])
    index = torch.cat(chosen).to(data.train_x.device)
    return Extraction(data.train_x[index], data.train_y[index])


@EXTRACTORS.register("output_weights", NoSettings, teacher_without_hidden_layers=True,
                    needs_training_data=False)
def output_weights(teacher: nn.Module, data: ImageData, settings: NoSettings,
                   seed: int = 0, on_step: Callable[[int, float], None] | None = None
                   ) -> Extraction:
    """Each row of the teacher's output layer reshaped as an image (no-hidden-layer teachers)."""
    if not isinstance(teacher, Classifier) or teacher.has_hidden_layers:
        raise ConfigError("extractor.name", "output_weights needs a teacher without hidden layers "
                          "(architecture@teacher=linear)")
    weights = teacher.output_layer.weight.detach().clone()
    return Extraction(weights.view(-1, *data.image_shape),
                           torch.arange(data.num_classes, device=weights.device))
