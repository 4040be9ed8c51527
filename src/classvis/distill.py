"""Training the student (config group ``trainer``, key ``student``): it learns to reproduce the
teacher's logits on a synthetic set.

Plain functions over tensors: no tracking, no config framework; a loss that stops being finite
raises ``fit.DivergenceError``.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from classvis.augment import OPERATIONS, Operation, affine
from classvis.fit import check_finite
from classvis.models.dense import Classifier
from classvis.optim import make_optimizer
from classvis.validation import non_negative, positive, require


@dataclass(frozen=True)
class StudentTraining:
    """Training on the synthetic images and the teacher's logits (keys: conf/trainer/paper.yaml).

    ``loss: mse`` matches the logits (Ba & Caruana 2014), ``kl`` softened probabilities scaled by
    T^2 (Hinton et al. 2015). ``lr_scaling: curvature`` measures ``lr`` in units of 1/L, L the
    largest Hessian eigenvalue of a linear student's MSE loss on these images, because
    visualizations, averages and weight rows differ in scale by orders of magnitude. ``mixup``,
    ``hidden_init: span`` and ``start: teacher_init`` use nothing but the synthetic set and the
    teacher's random init; ``span`` keeps the first layer in the images' span only under ``sgd`` or
    ``lbfgs`` (docs/notes.md). ``augment`` shows random views re-scored by the teacher (DSA).
    """

    optimizer: Literal["sgd", "adam", "lbfgs"] = "sgd"
    lr: float = 1.0
    lr_scaling: Literal["curvature", "none"] = "curvature"
    momentum: float = 0.0
    steps: int = 1000
    loss: Literal["mse", "kl"] = "mse"
    temperature: float = 1.0
    tol: float = 0.0
    mixup: int = 0
    mixup_alpha: float = 1.0
    mixup_images: int = 0
    hidden_init: Literal["model", "span"] = "model"
    start: Literal["own_init", "teacher_init"] = "own_init"
    batch_size: int = 0
    augment: tuple[Operation, ...] = ()
    # auto: teacher when the run has one, keep for a student from a synthetic set file
    # (resolved at the door by classvis.from_config)
    augment_targets: Literal["teacher", "keep", "auto"] = "teacher"

    def check(self, key: str) -> None:
        positive(self.lr, f"{key}.lr")
        non_negative(self.batch_size, f"{key}.batch_size")
        require(len(set(self.augment)) == len(self.augment), f"{key}.augment",
                "each of " + ", ".join(OPERATIONS) + " at most once", list(self.augment))
        require(not ((self.batch_size or self.augment) and self.optimizer == "lbfgs"),
                f"{key}.optimizer", "sgd or adam with minibatches or augmentation (L-BFGS needs "
                "the same batch at every evaluation)", self.optimizer)
        non_negative(self.momentum, f"{key}.momentum")
        positive(self.steps, f"{key}.steps", "an integer >= 1")
        non_negative(self.mixup, f"{key}.mixup")
        positive(self.mixup_alpha, f"{key}.mixup_alpha")
        require(self.mixup_images != 1 and self.mixup_images >= 0, f"{key}.mixup_images",
                "0 (all images) or an integer >= 2", self.mixup_images)
        require(not (self.mixup and self.optimizer == "lbfgs"), f"{key}.optimizer",
                "sgd or adam with mixup (L-BFGS needs the same batch at every evaluation)",
                self.optimizer)
        positive(self.temperature, f"{key}.temperature")
        non_negative(self.tol, f"{key}.tol")


def _step(optimizer: Any, closure: Callable[[], torch.Tensor]
          ) -> torch.Tensor:
    """One optimizer step with a closure that returns the loss tensor (torch types closures as
    returning a float); L-BFGS calls it several times per step, the others once."""
    loss = optimizer.step(typing.cast(Callable[[], float], closure))
    return typing.cast(torch.Tensor, loss)


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str,
                     temperature: float = 1.0) -> torch.Tensor:
    if loss == "mse":
        return F.mse_loss(logits, targets)
    if loss == "kl":
        t = temperature
        return F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(targets / t, dim=1),
                        reduction="batchmean", log_target=True) * (t * t)
    raise ValueError(f"unknown soft-target loss {loss!r}")


@functools.cache
def _dirichlet(arity: int, alpha: float) -> torch.distributions.Dirichlet:
    return torch.distributions.Dirichlet(torch.full((arity,), alpha))


def mix(images: torch.Tensor, targets: torch.Tensor, count: int, alpha: float, arity: int,
        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` convex combinations of ``arity`` random images each (0: all), and the same
    combinations of their targets."""
    total = len(images)
    arity = total if arity == 0 else min(arity, total)
    # Dirichlet draws from the global CPU generator: seed it from ``generator`` and put its state
    # back (torch.manual_seed would also seed every accelerator, 95 us a step against 1 us)
    cpu = torch.default_generator
    state = cpu.get_state()
    try:
        cpu.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        coefficients = _dirichlet(arity, float(alpha)).sample((count,))
    finally:
        cpu.set_state(state)
    members = torch.rand(count, total, generator=generator).argsort(dim=1)[:, :arity]
    mixing = torch.zeros(count, total).scatter_(1, members, coefficients).to(images.device)
    mixed_images = (mixing @ images.flatten(1)).view(count, *images.shape[1:])
    return mixed_images, mixing @ targets


LARGE_SET = 8192  # images beyond which linear_curvature works in the pixels' dimension


def linear_curvature(images: torch.Tensor, num_outputs: int) -> float:
    """Largest eigenvalue of the Hessian of the mean squared logit error of a linear model (with
    bias) on ``images``: 2 / (n K) * lambda_max([X 1][X 1]^T)."""
    design = torch.cat([images.flatten(1).double(),
                        torch.ones(len(images), 1, dtype=torch.float64, device=images.device)],
                       dim=1)
    # X X^T and X^T X share their nonzero eigenvalues: the smaller Gram matrix for large sets
    # (200,000 images once asked for a 320 GB one); sets of the usual sizes keep X X^T
    gram = design.T @ design if len(design) > LARGE_SET else design @ design.T
    return float(2.0 * torch.linalg.eigvalsh(gram)[-1] / (len(images) * num_outputs))


def init_first_layer_in_span(model: nn.Module, images: torch.Tensor, seed: int) -> None:
    """Replace the first layer's weights by random combinations of ``images`` (same row norms)
    and zero its bias."""
    first = next(layer for layer in model.modules() if isinstance(layer, nn.Linear))
    generator = torch.Generator().manual_seed(seed)
    flat = images.flatten(1)
    mixing = torch.randn(first.out_features, len(flat), generator=generator).to(flat.device)
    weights = mixing @ flat
    weights *= first.weight.norm(dim=1, keepdim=True) / weights.norm(dim=1, keepdim=True).clamp_min(
        1e-12)
    with torch.no_grad():
        first.weight.copy_(weights)
        first.bias.zero_()


def distill(model: nn.Module, images: torch.Tensor, soft_targets: torch.Tensor,
            settings: StudentTraining, seed: int = 0,
            on_step: Callable[[int, float], None] | None = None,
            teacher: nn.Module | None = None) -> list[float]:
    """Train ``model`` to reproduce ``soft_targets`` (teacher logits) on ``images``; ``teacher``
    re-scores augmented views when ``settings.augment_targets`` is ``teacher`` (or ``auto``
    and a teacher is given).

    Returns the loss per step, on the step's own images (as augmented; mixtures excluded)."""
    require(len(images) == len(soft_targets), "images", "one soft target per image",
            (len(images), len(soft_targets)))
    rescore = bool(settings.augment) and (settings.augment_targets == "teacher" or (
        settings.augment_targets == "auto" and teacher is not None))
    if rescore and teacher is None:
        raise ValueError("augment_targets=teacher needs the teacher (use keep without one)")
    if (settings.hidden_init == "span" and isinstance(model, Classifier)
            and model.has_hidden_layers):
        init_first_layer_in_span(model, images, seed)
    lr = settings.lr
    if settings.lr_scaling == "curvature":
        lr = settings.lr / linear_curvature(images, soft_targets.shape[1])
    optimizer = make_optimizer(settings.optimizer, model.parameters(), lr, settings.momentum)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    step_losses: list[float] = []
    count = len(images)
    batch_size = min(settings.batch_size or count, count)
    order = torch.empty(0, dtype=torch.int64)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal order
        if batch_size == count:
            return images, soft_targets
        if len(order) < batch_size:  # a new pass over the set
            order = torch.randperm(count, generator=generator)
        chosen, order = order[:batch_size].to(images.device), order[batch_size:]
        return images[chosen], soft_targets[chosen]

    def closure(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        own = len(inputs)
        if settings.mixup:
            mixed_images, mixed_targets = mix(images, soft_targets, settings.mixup,
                                              settings.mixup_alpha, settings.mixup_images,
                                              generator)
            inputs = torch.cat([inputs, mixed_images])
            targets = torch.cat([targets, mixed_targets])
        if settings.augment:
            inputs = affine(inputs, settings.augment, generator)
            if rescore:
                assert teacher is not None  # rescore: a teacher was given
                with torch.no_grad():
                    teacher.eval()
                    targets = teacher(inputs)
        outputs = model(inputs)
        loss = soft_target_loss(outputs, targets, settings.loss, settings.temperature)
        loss.backward()
        if settings.mixup:  # report the fit to the synthetic images themselves
            return soft_target_loss(outputs[:own].detach(), targets[:own], settings.loss,
                                    settings.temperature)
        return loss

    for step in range(1, settings.steps + 1):
        inputs, targets = next_batch()
        loss = _step(optimizer, functools.partial(closure, inputs, targets))
        check_finite(loss, f"student (step {step})")
        step_losses.append(loss.item())
        if on_step is not None:
            on_step(step, step_losses[-1])
        if step_losses[-1] <= settings.tol:
            break
    model.eval()
    return step_losses
