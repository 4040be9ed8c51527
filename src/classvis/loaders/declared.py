"""``dataset=none``: no images at all, only the shape (``dataset.image_shape``) and the classes
(``dataset.class_names``) a given teacher takes, filled in from its declaration at the door. A
run without data extracts, trains and reports what it can measure without a real test set."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from classvis.loaders import LOADERS, Arrays
from classvis.validation import require

if TYPE_CHECKING:
    from classvis.data import DatasetSettings


@LOADERS.register(
    "none", None, image_shape=lambda settings: settings.image_shape,
    class_names=lambda settings: (None if settings.class_names is None
                                  else list(settings.class_names)),
    check=lambda settings: None, source_folders=lambda settings: None,
    location=lambda settings: "none (dataset=none: no images)",
    train_present=lambda settings: False)
def decode(settings: DatasetSettings) -> Arrays:
    require(settings.image_shape is not None, "dataset.image_shape",
            "[channels, height, width] of the teacher's input", None)
    require(settings.class_names is not None, "dataset.class_names", "the teacher's classes",
            None)
    assert settings.image_shape is not None and settings.class_names is not None
    empty = torch.zeros(0, *settings.image_shape, dtype=torch.uint8)
    labels = torch.zeros(0, dtype=torch.int64)
    return empty, labels, empty.clone(), labels.clone(), list(settings.class_names)


__all__ = ["decode"]
