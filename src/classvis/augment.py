"""Random image transformations on batches of tensors, drawn from a seeded CPU generator.

``crop_flip`` is the standard augmentation of a real training set (random crop of the zero-padded
image, horizontal flip). ``affine`` is the dataset-distillation convention for synthetic images
(DSA, Zhao & Bilen 2021): a random shift, scale and rotation per image and an optional flip, as
one differentiable resampling, so a handful of images shows the student many views.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Operation = Literal["shift", "scale", "rotate", "flip"]
OPERATIONS: tuple[str, ...] = ("shift", "scale", "rotate", "flip")

# DSA's strengths: shifts up to 1/8 of the image, scale in [0.8, 1.2], rotation up to 15 degrees
SHIFT, SCALE, ROTATE_DEGREES = 0.125, 0.2, 15.0


def _flip_mask(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(count, generator=generator) < 0.5).to(device).view(-1, 1, 1, 1)


def crop_flip(images: torch.Tensor, padding: int, flip: bool,
              generator: torch.Generator) -> torch.Tensor:
    """Each image cropped back to its size at a random offset from the image zero-padded by
    ``padding`` pixels on every side, and mirrored left-right with probability 1/2 if ``flip``."""
    count, channels, height, width = images.shape
    out = images
    if padding > 0:
        padded = F.pad(images, (padding,) * 4)
        offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator)
        rows = (offsets[0, :, None] + torch.arange(height)).to(images.device)
        cols = (offsets[1, :, None] + torch.arange(width)).to(images.device)
        batch = torch.arange(count, device=images.device).view(-1, 1, 1, 1)
        channel = torch.arange(channels, device=images.device).view(1, -1, 1, 1)
        out = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        out = torch.where(_flip_mask(count, generator, images.device), out.flip(-1), out)
    return out


def affine(images: torch.Tensor, operations: tuple[str, ...],
           generator: torch.Generator) -> torch.Tensor:
    """Each image resampled (bilinear, zeros outside) under its own random shift / scale /
    rotation, whichever ``operations`` name, then flipped left-right with probability 1/2 if
    they name ``flip``. Differentiable in the images."""
    count = len(images)
    if not operations:
        return images
    angle = torch.zeros(count)
    scale = torch.ones(count)
    shift = torch.zeros(count, 2)
    if "rotate" in operations:
        angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(ROTATE_DEGREES)
    if "scale" in operations:
        scale = 1 + (torch.rand(count, generator=generator) * 2 - 1) * SCALE
    if "shift" in operations:  # affine_grid's coordinates span [-1, 1]: a shift s is s/2 of it
        shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * 2 * SHIFT
    out = images
    if {"rotate", "scale", "shift"} & set(operations):
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape),
                             align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
    if "flip" in operations:
        out = torch.where(_flip_mask(count, generator, images.device), out.flip(-1), out)
    return out
