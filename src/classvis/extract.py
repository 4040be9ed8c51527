"""Extractors (config group ``extractor``): a trained teacher -> a small synthetic training set.

An extractor is one function ``(teacher, data, settings) -> SyntheticImages`` registered under a
name with its settings dataclass; adding one is that function plus a YAML file in
``conf/extractor/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from classvis.data import ImageData
from classvis.models import Classifier
from classvis.settings import ConfigError, positive, non_negative


@dataclass
class SyntheticImages:
    images: torch.Tensor          # (M, C, H, W) float32
    labels: torch.Tensor          # (M,) int64: the class each image stands for
    info: dict[str, float] = field(default_factory=dict)  # numbers worth logging


@dataclass(frozen=True)
class Extractor:
    settings_class: type
    function: Callable[[Classifier, ImageData, Any], SyntheticImages]
    needs_linear_teacher: bool = False


EXTRACTORS: dict[str, Extractor] = {}


def register(name: str, settings_class: type, needs_linear_teacher: bool = False):
    def decorate(function):
        EXTRACTORS[name] = Extractor(settings_class, function, needs_linear_teacher)
        return function
    return decorate


@dataclass(frozen=True)
class ClassVisSettings:
    """Gradient ascent on the pre-softmax class score S_c(I) - l2 * ||I||^2 from a blank image
    (Simonyan et al. 2013) until it stops improving: until no image changes by more than ``tol``
    (relative to its norm) in one step, or after ``steps``. The teacher is frozen; only the images
    change. (The image change, not the objective, is tested: near the optimum the objective's
    gain is quadratic in the distance and drowns in float32 rounding long before the image has
    converged.)"""

    l2: float = 0.5
    lr: float = 0.1
    steps: int = 2000
    tol: float = 1e-6

    def check(self, key: str) -> None:
        non_negative(self.l2, f"{key}.l2")
        positive(self.lr, f"{key}.lr")
        positive(self.steps, f"{key}.steps", "an integer >= 1")
        non_negative(self.tol, f"{key}.tol")


@register("class_vis", ClassVisSettings)
def class_vis(teacher: Classifier, data: ImageData, settings: ClassVisSettings) -> SyntheticImages:
    classes = torch.arange(data.num_classes)
    images = torch.zeros(data.num_classes, *data.image_shape, requires_grad=True)
    optimizer = torch.optim.SGD([images], lr=settings.lr)
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    try:
        for step in range(1, settings.steps + 1):
            before = images.detach().clone()
            scores = teacher(images)[classes, classes]
            objective = scores - settings.l2 * images.pow(2).flatten(1).sum(1)
            optimizer.zero_grad(set_to_none=True)
            (-objective.sum()).backward()
            optimizer.step()
            with torch.no_grad():
                change = (images - before).flatten(1).norm(dim=1)
                size = images.flatten(1).norm(dim=1).clamp_min(1e-12)
                if bool((change <= settings.tol * size).all()):
                    break
    finally:
        for parameter in teacher.parameters():
            parameter.requires_grad_(True)
    images = images.detach()
    with torch.no_grad():
        final_scores = teacher(images)[classes, classes]
    info = {"steps": float(step), "mean_class_score": final_scores.mean().item()}
    return SyntheticImages(images, classes, info)


@dataclass(frozen=True)
class NoSettings:
    pass


@register("class_average", NoSettings)
def class_average(teacher: Classifier, data: ImageData, settings: NoSettings) -> SyntheticImages:
    """The mean of all training images of each class (the paper's Algorithm 1)."""
    classes = torch.arange(data.num_classes)
    counts = torch.bincount(data.train_y, minlength=data.num_classes)
    missing = [data.class_names[c] for c in classes.tolist() if counts[c] == 0]
    if missing:
        raise ConfigError("extractor.name", "class_average needs training images of every class",
                          f"none for {missing}")
    sums = torch.zeros(data.num_classes, *data.image_shape).index_add_(0, data.train_y,
                                                                       data.train_x)
    images = sums / counts.view(-1, *([1] * len(data.image_shape))).float()
    return SyntheticImages(images, classes)


@register("output_weights", NoSettings, needs_linear_teacher=True)
def output_weights(teacher: Classifier, data: ImageData, settings: NoSettings) -> SyntheticImages:
    """Each row of the teacher's output layer reshaped as an image (no-hidden-layer teachers)."""
    if teacher.has_hidden_layers:
        raise ConfigError("extractor.name", "output_weights needs a teacher without hidden layers "
                          "(architecture@teacher=linear)")
    weights = teacher.output_layer.weight.detach().clone()
    return SyntheticImages(weights.view(-1, *data.image_shape), torch.arange(data.num_classes))


def extract(teacher: Classifier, data: ImageData, name: str, settings: Any) -> SyntheticImages:
    return EXTRACTORS[name].function(teacher, data, settings)


def soft_targets(teacher: Classifier, images: torch.Tensor) -> torch.Tensor:
    """The teacher's logits on ``images``: what the student learns to reproduce."""
    teacher.eval()
    with torch.no_grad():
        return teacher(images)
