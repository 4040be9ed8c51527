"""Image folders: ``root/train/<class>/*`` and ``root/test/<class>/*`` (any format PIL reads,
one size), decoded in threads (PIL releases the GIL). ``test/`` alone serves a run whose teacher
is given (``dataset.splits``)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from classvis.loaders import LOADERS, Arrays, as_nchw_uint8, given, root, test_only
from classvis.validation import ConfigError

if TYPE_CHECKING:
    from classvis.data import DatasetSettings

log = logging.getLogger(__name__)


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


GREY_MODES = ("L", "I", "I;16", "1")


def _opened(path: str) -> Any:
    """``PIL.Image.open`` with its failures as one line naming the file (headers only)."""
    from PIL import Image

    try:
        return Image.open(path)
    except Image.DecompressionBombError as error:
        size = str(error).split(", could be")[0]
        raise ConfigError("dataset.root", "readable images", f"{path} ({size}: refused by PIL "
                          "as a possible decompression bomb)") from None
    except (OSError, ValueError) as error:  # truncated, not an image, unknown format
        reason = str(error).replace(repr(path), "").replace(path, "").strip()
        raise ConfigError("dataset.root", "readable images",
                          f"{path} ({reason or type(error).__name__})".splitlines()[0]) from None


def _first_files(folder: Path) -> list[str]:
    """The first file (in sort order) of each class folder of a split."""
    firsts = []
    for name in class_folders(folder):
        with os.scandir(folder / name) as entries:
            files = [entry.path for entry in entries if entry.is_file()]
        firsts.extend(sorted(files)[:1])
    return firsts


def _folder_image_shape(settings: DatasetSettings) -> tuple[int, int, int] | None:
    """The shape the loader will give, from the headers of each class folder's first image (in
    every split read): their size, 3 channels if any is in colour. The loader decides the channel
    count from every image; a colour image further down a greyscale folder is converted then."""
    if settings.root is None:
        return None
    size, channels = None, 1
    for split in _splits(settings):
        folder = Path(settings.root) / split
        for path in _first_files(folder) if folder.is_dir() else []:
            with _opened(path) as image:
                size = size or (image.height, image.width)
                channels = 1 if channels == 1 and image.mode in GREY_MODES else 3
    return None if size is None else (channels, *size)


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


def _decode_folder(folder: Path) -> tuple[list[Any], torch.Tensor, list[str]]:
    """Each image of a split as an HxW (greyscale) or HxWx3 array, its labels and classes."""
    import numpy as np
    from torchvision.datasets import ImageFolder

    try:  # discovery only: classes, files
        index = ImageFolder(str(folder), loader=lambda path: path)
    except (FileNotFoundError, OSError) as error:  # a class folder without a single image file
        raise ConfigError("dataset.root", "image files in every class folder",
                          str(error).splitlines()[0]) from None

    def decode(sample: tuple[str, int]) -> Any:
        with _opened(sample[0]) as image:
            try:
                return np.asarray(image.convert("L" if image.mode in GREY_MODES else "RGB"))
            except (OSError, ValueError) as error:  # truncated past its header
                raise ConfigError("dataset.root", "readable images", f"{sample[0]} ({error})"
                                  .splitlines()[0]) from None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL decodes without the GIL
        images = list(pool.map(decode, index.samples, chunksize=256))
    labels = torch.tensor([label for _, label in index.samples], dtype=torch.int64)
    return images, labels, list(index.classes)


def _stacked(splits: list[list[Any]], root: Path) -> list[torch.Tensor]:
    """The splits as NCHW uint8 tensors of one channel count for the whole dataset: greyscale
    images become RGB (channels repeated, as PIL converts them) when any image is in colour."""
    import numpy as np

    colour = any(image.ndim == 3 for images in splits for image in images)
    if colour:
        converted = sum(image.ndim == 2 for images in splits for image in images)
        if converted:
            log.warning("%s: %d greyscale image(s) among colour ones, converted to RGB", root,
                        converted)
        splits = [[np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
                   for image in images] for images in splits]
    shapes = {image.shape for images in splits for image in images}
    if len(shapes) != 1:
        raise ConfigError("dataset.root", "images of one size", f"sizes {sorted(shapes)[:3]}")
    return [as_nchw_uint8(np.stack(images)) for images in splits]


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
    test_images, test_y, classes = _decode_folder(root / "test")
    if _splits(settings) == ("test",):
        (test_x,) = _stacked([test_images], root)
        return test_only(test_x, test_y, classes)
    train_images, train_y, train_classes = _decode_folder(root / "train")
    train_x, test_x = _stacked([train_images, test_images], root)
    return train_x, train_y, test_x, test_y, train_classes


__all__ = ["check_image_folder", "class_folders", "decode"]
