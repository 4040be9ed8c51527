"""Dataset loaders (the ``loader`` key of a ``dataset`` option): reading torchvision's
datasets, image folders and scikit-learn's digits into uint8 tensors.

A loader registers in ``LOADERS`` the function that decodes its dataset, with the traits the
rest of the code asks about it, each a function of the ``dataset`` settings: ``image_shape`` and
``class_names`` (told without loading, for the checks at the door; None when they cannot be),
``check`` (its files, before any work), ``source_folders`` (the folders whose files fingerprint
the decoded cache; None for data bundled with a package, whose pixels are fingerprinted),
``location`` (where its files are, for the run's record) and ``train_present`` (whether the
training split's files are there: a given teacher needs only the test split). A loader honours
``dataset.splits``: with ``test`` its training split is empty (no image of the test's shape).
Adding one is a module here with its function, decorated, and a YAML file in
``conf/dataset/``. (``loader: synthetic``, a student's set from a file, is read by
``classvis.synthetic``: it is not decoded into a dataset's four tensors.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from classvis.registry import Registry
from classvis.validation import ConfigError

if TYPE_CHECKING:
    from classvis.data import DatasetSettings

def given(value: str | None, key: str, expected: str) -> str:
    """``value``, or ``ConfigError`` naming ``key`` when the config left it out."""
    if value is None:
        raise ConfigError(key, expected, None)
    return value


Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]

LOADERS: Registry[Callable[[DatasetSettings], Arrays]] = Registry(
    "loader", traits=("image_shape", "class_names", "check", "source_folders", "location",
                      "train_present"))


def _trait(settings: DatasetSettings, name: str) -> Any:
    return LOADERS[settings.loader].trait(name, settings) if settings.loader in LOADERS else None


def known_image_shape(settings: DatasetSettings) -> tuple[int, int, int] | None:
    """The dataset's image shape without loading it, so that architectures can be checked
    against it at the door; None when it cannot be told."""
    shape: tuple[int, int, int] | None = _trait(settings, "image_shape")
    return shape


def known_class_names(settings: DatasetSettings) -> list[str] | None:
    """The dataset's class names without loading it, so that ``dataset.classes`` and
    ``dataset.one_vs_rest`` can be checked at the door; None when they cannot be told."""
    if settings.class_names is not None:
        return list(settings.class_names)
    names: list[str] | None = _trait(settings, "class_names")
    return names


def check_files(settings: DatasetSettings) -> None:
    """The dataset's files, found (or fetched) and laid out as its loader needs, before any
    work; else a ``ConfigError`` naming the key."""
    _trait(settings, "check")


def train_present(settings: DatasetSettings) -> bool:
    """Whether the dataset's training split is on disk (told without decoding it)."""
    return bool(_trait(settings, "train_present"))


def wants_train(settings: DatasetSettings) -> bool:
    """Whether to decode the training split: both splits asked for, or ``auto`` with the
    training files there."""
    return settings.splits == "train_and_test" or (settings.splits == "auto"
                                                   and train_present(settings))


def test_only(test_x: torch.Tensor, test_y: torch.Tensor, class_names: list[str]) -> Arrays:
    """A dataset's arrays without a training split: no image, of the test images' shape."""
    return test_x[:0].clone(), test_y[:0].clone(), test_x, test_y, class_names


def source_folders(settings: DatasetSettings) -> list[Path] | None:
    """The folders whose files fingerprint the decoded cache; None for bundled data."""
    folders: list[Path] | None = LOADERS[settings.loader].trait("source_folders", settings)
    return folders


def source_location(settings: DatasetSettings) -> str:
    """Where the dataset's files are (an absolute folder), or the code that makes it."""
    if settings.loader == "synthetic":
        return str(Path(given(settings.path, "dataset.path", "a synthetic-set file")).resolve())
    location: str = LOADERS[settings.loader].trait("location", settings)
    return location


def root(settings: DatasetSettings) -> Path:
    return Path(given(settings.root, "dataset.root", "a data directory"))


def as_nchw_uint8(data: Any) -> torch.Tensor:
    images = torch.as_tensor(data)
    if images.ndim == 3:  # (N, H, W) grey
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)


# the loaders, each registering itself (imported last: they use the names above)
from classvis.loaders import declared, digits, image_folder, torchvision_files  # noqa: E402

__all__ = ["LOADERS", "Arrays", "as_nchw_uint8", "check_files", "declared", "digits", "given",
           "image_folder", "known_class_names", "known_image_shape", "root", "source_folders",
           "source_location", "test_only", "torchvision_files", "train_present", "wants_train"]
