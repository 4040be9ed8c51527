"""scikit-learn's 8x8 digits, bundled with it: offline, nothing to check or fetch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from classvis.loaders import LOADERS, Arrays, test_only

if TYPE_CHECKING:
    from classvis.data import DatasetSettings


@LOADERS.register(
    "digits", None, image_shape=lambda settings: (1, 8, 8),
    class_names=lambda settings: [str(digit) for digit in range(10)],
    check=lambda settings: None, source_folders=lambda settings: None,
    location=lambda settings: "sklearn.datasets.load_digits",
    train_present=lambda settings: True)
def decode(settings: DatasetSettings) -> Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # pixel values are 0..16; scale to 0..255 so every loader yields uint8 pixels
    images = torch.as_tensor(bunch.images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=0.25, random_state=0, stratify=bunch.target
    )
    names = [str(name) for name in bunch.target_names]
    if settings.splits == "test":
        return test_only(images[test_idx], labels[test_idx], names)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], names


__all__ = ["decode"]
