"""The class visualization extractor (``class_vis``; ``deep_vis`` and ``deep_vis_bn`` are its
presets with priors): gradient ascent on a frozen teacher's class scores."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from classvis.data import ImageData
from classvis.extract import EXTRACTORS, Extraction, soft_targets
from classvis.fit import DivergenceError
from classvis.optim import make_optimizer
from classvis.priors import (
    FourierImage,
    batchnorm_statistics,
    gaussian_blur,
    total_variation,
    within_class_similarity,
    within_class_spread,
)
from classvis.validation import non_negative, positive, require


@dataclass(frozen=True)
class ClassVisSettings:
    """Gradient ascent on the pre-softmax class score S_c(I) - l2 * ||I||^2 (Simonyan et al. 2013)
    until no image changes by more than ``tol`` of its norm in one step, or after ``steps``; the
    teacher is frozen. The image change is tested, not the objective, whose gain near the optimum
    drowns in float32 rounding long before the image converges. Beyond the paper: k images per
    class kept apart by ``diversity``, and the priors deep teachers need (``priors``; keys:
    conf/extractor/class_vis.yaml). With random views or blur the images never settle, so all
    ``steps`` run.
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
    flip: bool = False
    scale: float = 0.0
    param: Literal["pixel", "fourier"] = "pixel"
    bn: float = 0.0
    target: Literal["score", "log_prob"] = "score"
    optimizer: Literal["sgd", "adam"] = "sgd"
    batch_size: int = 0

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
        if self.optimizer == "sgd" and self.param == "pixel":
            require(self.lr * (2 * self.l2 + 16 * self.tv) < 2, f"{key}.lr",
                    "lr * (2 * l2 + 16 * tv) < 2 (larger steps make the penalties diverge)",
                    self.lr)
        non_negative(self.blur, f"{key}.blur")
        positive(self.blur_every, f"{key}.blur_every", "an integer >= 1")
        require(0 <= self.scale < 1, f"{key}.scale", "a fraction in [0, 1)", self.scale)
        non_negative(self.bn, f"{key}.bn")
        non_negative(self.batch_size, f"{key}.batch_size")

    @property
    def random_views(self) -> bool:
        return self.jitter > 0 or self.flip or self.scale > 0

    def group_size(self, num_classes: int) -> int:
        """Images per class in each group optimised together."""
        if self.batch_size == 0:
            return self.per_class
        return max(1, min(self.per_class, self.batch_size // num_classes))

    def classes_per_group(self, num_classes: int) -> int:
        """Classes in each group: every class, unless a batch cannot hold one image of each
        (``batch_size`` < classes, a large teacher's many classes): then ``batch_size``
        classes at a time, which bounds the memory of extracting a thousand."""
        if self.batch_size == 0 or self.batch_size >= num_classes:
            return num_classes
        return self.batch_size

    def progress_steps(self, num_classes: int) -> int:
        return (self.steps * math.ceil(self.per_class / self.group_size(num_classes))
                * math.ceil(num_classes / self.classes_per_group(num_classes)))


def _view(images: torch.Tensor, settings: ClassVisSettings,
          generator: torch.Generator) -> torch.Tensor:
    """What the teacher sees at this step: the images under this step's random transformation."""
    seen = images
    if settings.jitter:
        dy, dx = torch.randint(-settings.jitter, settings.jitter + 1, (2,),
                               generator=generator).tolist()
        seen = torch.roll(seen, shifts=(dy, dx), dims=(-2, -1))
    if settings.scale:
        factor = 1 + (2 * torch.rand((), generator=generator).item() - 1) * settings.scale
        theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]],
                             dtype=seen.dtype, device=seen.device).expand(len(seen), 2, 3)
        seen = F.grid_sample(seen, F.affine_grid(theta, list(seen.shape), align_corners=False),
                             mode="bilinear", padding_mode="zeros", align_corners=False)
    if settings.flip and torch.rand((), generator=generator).item() < 0.5:
        seen = seen.flip(-1)
    return seen


def _ascend(teacher: nn.Module, start: torch.Tensor, classes: torch.Tensor, k: int,
            settings: ClassVisSettings, generator: torch.Generator,
            on_step: Callable[[int, float], None] | None, offset: int) -> tuple[torch.Tensor, int]:
    """Optimise one group of images (class by class, ``k`` each) from ``start``; returns them
    and the number of steps taken."""
    fourier = FourierImage(start) if settings.param == "fourier" else None
    images = start.clone().requires_grad_(True) if fourier is None else fourier.images()
    variable = images if fourier is None else fourier.coefficients
    optimizer = make_optimizer(settings.optimizer, [variable], settings.lr)
    rows = torch.arange(len(classes), device=start.device)
    converges = not settings.random_views and settings.blur == 0
    statistics: contextlib.AbstractContextManager[list[torch.Tensor]] = (
        batchnorm_statistics(teacher) if settings.bn else contextlib.nullcontext([]))
    with statistics as bn_terms:
        for step in range(1, settings.steps + 1):
            if fourier is not None:
                images = fourier.images()
            before = images.detach().clone()
            logits = teacher(_view(images, settings, generator))
            if settings.target == "log_prob":
                logits = F.log_softmax(logits, dim=1)
            objective = logits[rows, classes] - settings.l2 * images.pow(2).flatten(1).sum(1)
            if settings.tv:
                objective = objective - settings.tv * total_variation(images)
            if settings.diversity and k > 1:
                objective = objective + settings.diversity * within_class_spread(images, k)
            loss = -objective.sum()
            if settings.bn:
                loss = loss + settings.bn * len(images) * torch.stack(bn_terms).sum()
                bn_terms.clear()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(offset + step, loss.item() / len(images))
            with torch.no_grad():
                if fourier is not None:
                    images = fourier.images()
                if settings.blur and step % settings.blur_every == 0:
                    images.copy_(gaussian_blur(images, settings.blur))
                if settings.clip:
                    images.clamp_(0.0, 1.0)
                if fourier is not None and (settings.blur or settings.clip):
                    fourier.coefficients.copy_(torch.fft.rfft2(images, norm="ortho")
                                               / fourier.scale)
                if converges:
                    change = (images - before).flatten(1).norm(dim=1)
                    size = images.flatten(1).norm(dim=1).clamp_min(1e-12)
                    if bool((change <= settings.tol * size).all()):
                        break
    return images.detach(), step


@EXTRACTORS.register("class_vis", ClassVisSettings, teacher_without_hidden_layers=False,
                    needs_training_data=False)
def class_vis(teacher: nn.Module, data: ImageData, settings: ClassVisSettings,
              seed: int = 0, on_step: Callable[[int, float], None] | None = None
              ) -> Extraction:
    k = settings.per_class
    device = data.train_x.device
    classes = torch.arange(data.num_classes, device=device).repeat_interleave(k)
    count = len(classes)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(count, *data.image_shape, generator=generator) * settings.start_std
    start = start.to(device)
    images = torch.empty_like(start)
    group = settings.group_size(data.num_classes)
    together = settings.classes_per_group(data.num_classes)
    teacher.eval()
    trainable = [parameter for parameter in teacher.parameters() if parameter.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    steps, done = 0, 0
    try:
        for chunk in torch.arange(data.num_classes, device=device).split(together):
            for first in range(0, k, group):  # the group's members: k' images of its classes
                members = (chunk.view(-1, 1) * k
                           + torch.arange(first, min(first + group, k), device=device)).flatten()
                images[members], taken = _ascend(
                    teacher, start[members], classes[members], len(members) // len(chunk),
                    settings, generator, on_step, offset=done * settings.steps)
                steps, done = max(steps, taken), done + 1
    finally:  # as they were (a given teacher stays frozen)
        for parameter in trainable:
            parameter.requires_grad_(True)
    if not bool(torch.isfinite(images).all()):
        raise DivergenceError(f"class_vis extraction diverged by step {steps}: the images are "
                              f"no longer finite")
    logits = soft_targets(teacher, images, batch_size=max(group * together, 256))
    rows = torch.arange(count, device=device)
    info = {"steps": float(steps), "mean_class_score": logits[rows, classes].mean().item(),
            "teacher_agreement": (logits.argmax(1) == classes).float().mean().item()}
    if k > 1:
        info["within_class_similarity"] = within_class_similarity(images, k).mean().item()
    return Extraction(images, classes, info)
