"""Image folders: ``root/train/<class>/*`` and ``root/test/<class>/*`` (any format PIL reads,
one size), decoded in threads (PIL releases the GIL). ``test/`` alone serves a run whose teacher
is given (``dataset.splits``)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from classvis.loaders import LOADERS, Arrays, as_nchw_uint8, given, root, test_only
from classvis.validation import ConfigError

if TYPE_CHECKING:
    from classvis.data import DatasetSettings


def class_folders(folder: Path) -> list[str]:
    """The class folders of an image folder's split, sorted: the order of its labels."""
    return sorted(path.name for path in folder.iterdir() if path.is_dir())


def _splits(settings: DatasetSettings) -> tuple[str, ...]:
    """The splits to read: test/ alone with ``dataset.splits=test``, or when ``auto`` finds no
    train/ (the door decides whether a run may go without it)."""
    if settings.splits == "test" or (settings.splits == "auto" and settings.root is not None
                                     and not (Path(settings.root) / "train").is_dir()):
        return ("test",)
    return ("train", "test")


def _folder_image_shape(settings: DatasetSettings) -> tuple[int, int, int] | None:
    """The shape of the first readable image (one file is opened)."""
    if settings.root is None:
        return None
    from PIL import Image

    first = Path(settings.root) / _splits(settings)[0]
    for name in class_folders(first) if first.is_dir() else []:
        for path in sorted((first / name).iterdir()):
            try:
                with Image.open(path) as image:
                    channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
                    return (channels, image.height, image.width)
            except OSError:
                continue
    return None


def _folder_class_names(settings: DatasetSettings) -> list[str] | None:
    first = Path(settings.root) / _splits(settings)[0] if settings.root is not None else None
    return class_folders(first) if first is not None and first.is_dir() else None


def check_image_folder(settings: DatasetSettings) -> None:
    """An image folder's layout, before any work: train/ and test/ (or test/ alone, see
    ``_splits``) with the same class folders, at least two (one class makes every model
    trivially right). Listing folders reads no image."""
    if settings.root is None:
        return
    root = Path(settings.root)
    splits = _splits(settings)
    found = {}
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise ConfigError("dataset.root", f"a folder with {' and '.join(splits)}/ class "
                              f"folders (no {split}/ in it)", str(root))
        found[split] = class_folders(folder)
    if len(set(map(tuple, found.values()))) > 1:
        raise ConfigError("dataset.root", "the same class folders under train/ and test/",
                          f"train {found['train']} vs test {found['test']}")
    names = found["test"]
    if len(names) < 2:
        raise ConfigError("dataset.root", f"at least two class folders under "
                          f"{' and '.join(f'{split}/' for split in splits)}",
                          f"{len(names)} ({', '.join(names) or 'none'}) in {root}")
    for split in splits:
        for name in found[split]:
            if not any(path.is_file() for path in (root / split / name).iterdir()):
                raise ConfigError("dataset.root", "at least one image in every class folder",
                                  f"an empty {split}/{name}/ in {root}")


def _decode_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import numpy as np
    from PIL import Image
    from torchvision.datasets import ImageFolder

    try:  # discovery only: classes, files
        index = ImageFolder(str(folder), loader=lambda path: path)
    except (FileNotFoundError, OSError) as error:  # a class folder without a single image file
        raise ConfigError("dataset.root", "image files in every class folder",
                          str(error).splitlines()[0]) from None

    def decode(sample: tuple[str, int], mode: str | None) -> Any:
        try:
            with Image.open(sample[0]) as image:
                return image.mode if mode is None else np.asarray(image.convert(mode))
        except (OSError, ValueError) as error:  # truncated, not an image, unknown format
            reason = str(error).replace(repr(sample[0]), "").replace(sample[0], "").strip()
            raise ConfigError("dataset.root", "readable images",
                              f"{sample[0]} ({reason or type(error).__name__})".splitlines()[0]
                              ) from None

    mode = "L" if decode(index.samples[0], None) in ("L", "I", "I;16", "1") else "RGB"

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL decodes without the GIL
        images = list(pool.map(lambda sample: decode(sample, mode), index.samples,
                               chunksize=256))
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ConfigError("dataset.root", "images of one size", f"sizes {sorted(shapes)[:3]}")
    labels = torch.tensor([label for _, label in index.samples], dtype=torch.int64)
    return as_nchw_uint8(np.stack(images)), labels, list(index.classes)


@LOADERS.register(
    "image_folder", None, image_shape=_folder_image_shape, class_names=_folder_class_names,
    check=lambda settings: check_image_folder(settings),
    source_folders=lambda settings: [root(settings) / split for split in _splits(settings)],
    location=lambda settings: str(root(settings).resolve()),
    train_present=lambda settings: settings.root is not None
    and (Path(settings.root) / "train").is_dir())
def decode(settings: DatasetSettings) -> Arrays:
    root = Path(given(settings.root, "dataset.root", "a data directory"))
    check_image_folder(settings)  # the same class folders under train/ and test/, two or more
    test_x, test_y, classes = _decode_folder(root / "test")
    if _splits(settings) == ("test",):
        return test_only(test_x, test_y, classes)
    train_x, train_y, train_classes = _decode_folder(root / "train")
    return train_x, train_y, test_x, test_y, train_classes


__all__ = ["check_image_folder", "class_folders", "decode"]
