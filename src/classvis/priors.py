"""What makes an extracted image look like data rather than noise: the penalties, rewards and
parameterisations that ``class_vis`` can add to the class score. Plain functions over tensors.

Feature-visualization priors (Olah et al. 2017; Mordvintsev et al. 2018): total variation,
blur, a Fourier-space parameterisation whose gradient steps favour low frequencies; DeepInversion's
BatchNorm-statistics term (Yin et al. 2020); a within-class spread that keeps k images of one
class apart.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


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


SIMILARITY_BUDGET = 1 << 24  # similarities held at once by within_class_similarity (64 MB)


def within_class_similarity(images: torch.Tensor, per_class: int) -> torch.Tensor:
    """Per image: its mean cosine similarity to the other images of its class (images are
    grouped class by class, ``per_class`` each)."""
    if per_class == 1:
        return torch.zeros(len(images))
    unit = F.normalize(images.flatten(1), dim=1).view(-1, per_class, images[0].numel())
    if len(images) * per_class > SIMILARITY_BUDGET:  # (classes, k, k) would not fit: sum first
        self_similarity = (unit * unit).sum(2)
        off_diagonal = (unit * unit.sum(1, keepdim=True)).sum(2) - self_similarity
    else:
        similarity = unit @ unit.transpose(1, 2)                   # (classes, k, k)
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


class FourierImage:
    """Images parameterised by their 2-D real Fourier coefficients, each frequency scaled by
    1 / frequency (in cycles per image, at least 1): plain gradient steps on the coefficients
    then move low frequencies much more than high ones (Mordvintsev et al. 2018), so the
    ascent builds shapes before textures instead of the high-frequency patterns of pixel steps."""

    def __init__(self, start: torch.Tensor):
        height, width = start.shape[-2:]
        rows = torch.fft.fftfreq(height, device=start.device).abs().view(-1, 1) * height
        cols = torch.fft.rfftfreq(width, device=start.device).view(1, -1) * width
        self.scale = 1.0 / torch.sqrt(rows ** 2 + cols ** 2).clamp_min(1.0)
        self.size = (height, width)
        self.coefficients = (torch.fft.rfft2(start, norm="ortho") / self.scale
                             ).detach().requires_grad_(True)

    def images(self) -> torch.Tensor:
        images: torch.Tensor = torch.fft.irfft2(self.coefficients * self.scale, s=self.size,
                                                norm="ortho")
        return images


# torch's public BatchNorm classes (a lazy one becomes its BatchNormNd at its first forward)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
BatchNorm = nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d | nn.SyncBatchNorm


def batchnorm_layers(model: nn.Module) -> list[BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BATCHNORMS)
            and m.running_mean is not None]


@contextlib.contextmanager
def batchnorm_statistics(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While open, every forward pass of ``model`` appends to the yielded list, for each
    BatchNorm layer, || batch mean - running mean ||_2 + || batch variance - running variance ||_2
    of that layer's input (DeepInversion's feature-distribution regulariser): zero when the
    batch's statistics are the ones the teacher saw in training."""
    terms: list[torch.Tensor] = []

    def hook(layer: BatchNorm, inputs: tuple[torch.Tensor, ...],
             output: torch.Tensor) -> None:
        features = inputs[0]
        dims = [0] + list(range(2, features.ndim))
        mean = features.mean(dims)
        variance = features.var(dims, unbiased=False)
        assert layer.running_mean is not None and layer.running_var is not None
        terms.append(torch.linalg.vector_norm(mean - layer.running_mean)
                     + torch.linalg.vector_norm(variance - layer.running_var))

    handles = [layer.register_forward_hook(hook) for layer in batchnorm_layers(model)]
    try:
        yield terms
    finally:
        for handle in handles:
            handle.remove()
