"""Extractors (config group ``extractor``): a trained teacher -> a small synthetic training set.

An extractor is one function ``(teacher, data, settings) -> SyntheticImages`` registered under a
name with its settings dataclass; adding one is that function plus a YAML file in
``conf/extractor/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classvis.data import ImageData
from classvis.fit import DivergenceError
from classvis.models import Classifier
from classvis.settings import ConfigError, non_negative, positive, require


@dataclass
class SyntheticImages:
    images: torch.Tensor          # (M, C, H, W) float32
    labels: torch.Tensor          # (M,) int64: the class each image stands for
    info: dict[str, float] = field(default_factory=dict)  # numbers worth logging


@dataclass(frozen=True)
class Extractor:
    settings_class: type
    # (teacher, data, settings, seed, on_step) -> images; on_step(step, loss) may be None
    function: Callable[..., SyntheticImages]
    needs_linear_teacher: bool = False


EXTRACTORS: dict[str, Extractor] = {}


def register(name: str, settings_class: type, needs_linear_teacher: bool = False):
    def decorate(function):
        EXTRACTORS[name] = Extractor(settings_class, function, needs_linear_teacher)
        return function
    return decorate


@dataclass(frozen=True)
class ClassVisSettings:
    """Gradient ascent on the pre-softmax class score S_c(I) - l2 * ||I||^2 (Simonyan et al. 2013)
    until it stops improving: until no image changes by more than ``tol`` (relative to its norm)
    in one step, or after ``steps``. The teacher is frozen; only the images change. (The image
    change, not the objective, is tested: near the optimum the objective's gain is quadratic in
    the distance and drowns in float32 rounding long before the image has converged.)

    ``per_class: k`` (beyond the paper) extracts k images per class, all optimised together as
    one batch. They start from different random images (``start_std``: standard deviation of the
    Gaussian noise around the blank image; 0 with k = 1 is the paper's blank start), and
    ``diversity`` weighs a reward on the mean log distance between images of the same class,
    which keeps them from collapsing onto one maximum (see ``within_class_spread``). Optional image priors: ``jitter`` (random shifts of up to that
    many pixels before every step), ``tv`` (total-variation penalty) and ``blur`` (a Gaussian blur
    of that sigma, in pixels, every ``blur_every`` steps). With priors on, the images never stop
    changing, so extraction runs all ``steps``.
    """

    l2: float = 0.5
    lr: float = 0.1
    steps: int = 2000
    tol: float = 1e-6
    per_class: int = 1
    start_std: float = 0.0
    diversity: float = 0.0
    jitter: int = 0
    tv: float = 0.0
    blur: float = 0.0
    blur_every: int = 4
    clip: bool = False

    def check(self, key: str) -> None:
        non_negative(self.l2, f"{key}.l2")
        positive(self.lr, f"{key}.lr")
        positive(self.steps, f"{key}.steps", "an integer >= 1")
        non_negative(self.tol, f"{key}.tol")
        positive(self.per_class, f"{key}.per_class", "an integer >= 1")
        non_negative(self.start_std, f"{key}.start_std")
        if self.per_class > 1:
            require(self.start_std > 0, f"{key}.start_std",
                    "a number > 0 when per_class > 1 (k identical blank starts give k identical "
                    "images)", self.start_std)
        non_negative(self.diversity, f"{key}.diversity")
        non_negative(self.jitter, f"{key}.jitter")
        non_negative(self.tv, f"{key}.tv")
        require(self.lr * (2 * self.l2 + 16 * self.tv) < 2, f"{key}.lr",
                "lr * (2 * l2 + 16 * tv) < 2 (larger steps make the penalties diverge)",
                self.lr)
        non_negative(self.blur, f"{key}.blur")
        positive(self.blur_every, f"{key}.blur_every", "an integer >= 1")


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Per image: the summed squared differences between neighbouring pixels."""
    down = (images[..., 1:, :] - images[..., :-1, :]).pow(2).flatten(1).sum(1)
    right = (images[..., :, 1:] - images[..., :, :-1]).pow(2).flatten(1).sum(1)
    return down + right


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-offsets.pow(2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    cols = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)


def within_class_similarity(images: torch.Tensor, per_class: int) -> torch.Tensor:
    """Per image: its mean cosine similarity to the other images of its class (images are
    grouped class by class, ``per_class`` each)."""
    if per_class == 1:
        return torch.zeros(len(images))
    unit = F.normalize(images.flatten(1), dim=1).view(-1, per_class, images[0].numel())
    similarity = unit @ unit.transpose(1, 2)                       # (classes, k, k)
    off_diagonal = similarity.sum(2) - similarity.diagonal(dim1=1, dim2=2)
    return (off_diagonal / (per_class - 1)).flatten()


def within_class_spread(images: torch.Tensor, per_class: int) -> torch.Tensor:
    """Per image: the mean log squared distance to the other images of its class. As a reward it
    repels images of one class from each other with a force that grows as they approach (1 /
    distance), so that no two starting points converge onto the same maximum; a cosine or
    distance penalty's pull vanishes exactly there."""
    flat = images.flatten(1).view(-1, per_class, images[0].numel())
    norms = flat.pow(2).sum(-1)
    squared = (norms.unsqueeze(2) + norms.unsqueeze(1)
               - 2 * flat @ flat.transpose(1, 2)).clamp_min(0.0)       # (classes, k, k)
    eye = torch.eye(per_class, dtype=torch.bool, device=images.device)
    logs = torch.log(squared.masked_fill(eye, 1.0) + 1e-12).masked_fill(eye, 0.0)
    return (logs.sum(2) / (per_class - 1)).flatten()


@register("class_vis", ClassVisSettings)
def class_vis(teacher: nn.Module, data: ImageData, settings: ClassVisSettings,
              seed: int = 0, on_step: Callable[[int, float], None] | None = None
              ) -> SyntheticImages:
    k = settings.per_class
    device = data.train_x.device
    classes = torch.arange(data.num_classes, device=device).repeat_interleave(k)
    count = len(classes)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(count, *data.image_shape, generator=generator) * settings.start_std
    images = start.to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=settings.lr)
    rows = torch.arange(count, device=device)
    priors = settings.jitter > 0 or settings.blur > 0
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    try:
        for step in range(1, settings.steps + 1):
            before = images.detach().clone()
            seen = images
            if settings.jitter:
                dy, dx = torch.randint(-settings.jitter, settings.jitter + 1, (2,),
                                       generator=generator).tolist()
                seen = torch.roll(images, shifts=(dy, dx), dims=(-2, -1))
            scores = teacher(seen)[rows, classes]
            objective = scores - settings.l2 * images.pow(2).flatten(1).sum(1)
            if settings.tv:
                objective = objective - settings.tv * total_variation(images)
            if settings.diversity and k > 1:
                objective = objective + settings.diversity * within_class_spread(images, k)
            optimizer.zero_grad(set_to_none=True)
            (-objective.sum()).backward()
            optimizer.step()
            if on_step is not None:
                on_step(step, -objective.detach().mean().item())
            with torch.no_grad():
                if settings.blur and step % settings.blur_every == 0:
                    images.copy_(gaussian_blur(images, settings.blur))
                if settings.clip:
                    images.clamp_(0.0, 1.0)
                if not priors:
                    change = (images - before).flatten(1).norm(dim=1)
                    size = images.flatten(1).norm(dim=1).clamp_min(1e-12)
                    if bool((change <= settings.tol * size).all()):
                        break
    finally:
        for parameter in teacher.parameters():
            parameter.requires_grad_(True)
    images = images.detach()
    if not bool(torch.isfinite(images).all()):
        raise DivergenceError(f"class_vis extraction diverged by step {step}: the images are "
                              f"no longer finite")
    with torch.no_grad():
        logits = teacher(images)
        final_scores = logits[rows, classes]
        predicted = logits.argmax(1)
    info = {"steps": float(step), "mean_class_score": final_scores.mean().item(),
            "teacher_agreement": (predicted == classes).float().mean().item()}
    if k > 1:
        info["within_class_similarity"] = within_class_similarity(images, k).mean().item()
    return SyntheticImages(images, classes, info)


@dataclass(frozen=True)
class NoSettings:
    pass


@register("class_average", NoSettings)
def class_average(teacher: nn.Module, data: ImageData, settings: NoSettings,
                  seed: int = 0, on_step: Callable[[int, float], None] | None = None
                  ) -> SyntheticImages:
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
    return SyntheticImages(images, classes)


@register("output_weights", NoSettings, needs_linear_teacher=True)
def output_weights(teacher: nn.Module, data: ImageData, settings: NoSettings,
                   seed: int = 0, on_step: Callable[[int, float], None] | None = None
                   ) -> SyntheticImages:
    """Each row of the teacher's output layer reshaped as an image (no-hidden-layer teachers)."""
    if not isinstance(teacher, Classifier) or teacher.has_hidden_layers:
        raise ConfigError("extractor.name", "output_weights needs a teacher without hidden layers "
                          "(architecture@teacher=linear)")
    weights = teacher.output_layer.weight.detach().clone()
    return SyntheticImages(weights.view(-1, *data.image_shape),
                           torch.arange(data.num_classes, device=weights.device))


def extract(teacher: nn.Module, data: ImageData, name: str, settings: Any,
            seed: int = 0, on_step: Callable[[int, float], None] | None = None
            ) -> SyntheticImages:
    """Run extractor ``name``; ``on_step(step, loss)`` follows an iterative one's progress."""
    return EXTRACTORS[name].function(teacher, data, settings, seed, on_step)


def soft_targets(teacher: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The teacher's logits on ``images``: what the student learns to reproduce."""
    teacher.eval()
    with torch.no_grad():
        return teacher(images)
