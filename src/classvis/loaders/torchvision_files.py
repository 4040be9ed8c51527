"""torchvision's datasets (MNIST, Fashion-MNIST, KMNIST, CIFAR-10/100): found, or downloaded
(``dataset.download``), before any work; decoded by torchvision. The test split of the MNIST
family alone (``dataset.splits``, no training files on disk) is read from its IDX files, which
torchvision's classes would refuse without the training files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from classvis.loaders import LOADERS, Arrays, as_nchw_uint8, given, root, test_only
from classvis.validation import ConfigError

if TYPE_CHECKING:
    from classvis.data import DatasetSettings


# torchvision dataset class -> folder (under root) whose files fingerprint the cache
TORCHVISION_CLASSES = {
    "MNIST": "MNIST",
    "FashionMNIST": "FashionMNIST",
    "KMNIST": "KMNIST",
    "CIFAR10": "cifar-10-batches-py",
    "CIFAR100": "cifar-100-python",
}

# torchvision dataset class -> its images' shape (channels, height, width)
TORCHVISION_SHAPES = {"MNIST": (1, 28, 28), "FashionMNIST": (1, 28, 28), "KMNIST": (1, 28, 28),
                      "CIFAR10": (3, 32, 32), "CIFAR100": (3, 32, 32)}

# torchvision dataset class -> its class names, as torchvision gives them
TORCHVISION_CLASS_NAMES = {
    "MNIST": ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
              "7 - seven", "8 - eight", "9 - nine"],
    "KMNIST": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    "FashionMNIST": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"],
    "CIFAR10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}

# the MNIST family's IDX files (under <folder>/raw), by split
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# CIFAR's first training batch, whose presence tells that the training split is there
CIFAR_TRAIN = {"CIFAR10": "data_batch_1", "CIFAR100": "train"}


def train_files_present(settings: DatasetSettings) -> bool:
    """Whether the training split's files are on disk."""
    if settings.root is None or settings.torchvision_class not in TORCHVISION_CLASSES:
        return False
    folder = _torchvision_folder(settings)
    if settings.torchvision_class in CIFAR_TRAIN:
        return (folder / CIFAR_TRAIN[settings.torchvision_class]).is_file()
    return all((folder / "raw" / name).is_file() for name in IDX_FILES["train"])


def refuse_cifar_test_split(settings: DatasetSettings, splits: str) -> None:
    """A test split alone of torchvision's CIFAR is refused: its python batches load only
    whole (checked at the door, and by the decoder for a direct load)."""
    if settings.torchvision_class in CIFAR_TRAIN and splits == "test":
        raise ConfigError("dataset.splits", f"train_and_test for torchvision's "
                          f"{settings.torchvision_class} (its python batches load only whole; "
                          "an image folder holding test/ alone serves a test split: "
                          "dataset=image_folder)", settings.splits)


def _test_split(settings: DatasetSettings) -> Arrays:
    """The MNIST family's test split from its IDX files alone."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = _torchvision_folder(settings) / "raw"
    images, labels = (raw / name for name in IDX_FILES["test"])
    for path in (images, labels):
        if not path.is_file():
            raise ConfigError("dataset.root", f"the test split's IDX files in {raw} (dataset."
                              f"splits=test reads {IDX_FILES['test'][0]} and "
                              f"{IDX_FILES['test'][1]})", f"no {path.name}")
    return test_only(as_nchw_uint8(read_image_file(str(images))),
                     read_label_file(str(labels)).to(torch.int64),
                     TORCHVISION_CLASS_NAMES[str(settings.torchvision_class)])


def _ways_out(settings: DatasetSettings, folder: str) -> str:
    root = Path(str(settings.root))
    ways = [f"CLASSVIS_DATA=<a folder holding {folder}>",
            "dataset.download=false dataset.root=<that folder>",
            "dataset=digits (bundled with scikit-learn, offline)"]
    if settings.torchvision_class == "CIFAR10" and (root / "cifar10-jpg" / "train").is_dir():
        ways.insert(0, f"dataset=cifar10_jpg (a JPEG copy is in {root / 'cifar10-jpg'})")
    return "; ".join(ways)


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(path.is_file() for path in folder.rglob("*"))


def ensure_torchvision_files(settings: DatasetSettings) -> None:
    """A torchvision dataset's files, found, or downloaded (``dataset.download``) before any
    work; else one line saying what was tried and the ways out. A failed download leaves no
    folder behind."""
    if settings.root is None or _has_files(_torchvision_folder(settings)):
        return
    import contextlib
    import io
    import shutil

    name = given(settings.torchvision_class, "dataset.torchvision_class", "a class")
    folder = _torchvision_folder(settings)
    tried = "none there, and dataset.download=false"
    if settings.download:
        made = next((path for path in [*reversed(folder.parents), folder]
                     if not path.exists()), None)
        try:
            import torchvision

            with contextlib.redirect_stdout(io.StringIO()):  # torchvision's mirror-by-mirror talk
                for train in (True, False):
                    getattr(torchvision.datasets, name)(root=settings.root, train=train,
                                                        download=True)
            return
        except Exception as error:  # URLError, a refused mirror, a checksum mismatch
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            tried = f"none there, and downloading them failed: {reason}"
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
    holding = folder.name + ("/" if name.startswith("CIFAR") else "/raw/")
    raise ConfigError("dataset.root", f"torchvision's {name} files in {folder} ({tried}); ways "
                      f"out: {_ways_out(settings, holding)}", settings.root)


def _torchvision_folder(settings: DatasetSettings) -> Path:
    return root(settings) / TORCHVISION_CLASSES[given(settings.torchvision_class,
                                                       "dataset.torchvision_class", "a class")]


@LOADERS.register(
    "torchvision", None,
    image_shape=lambda settings: TORCHVISION_SHAPES.get(settings.torchvision_class or ""),
    class_names=lambda settings: TORCHVISION_CLASS_NAMES.get(settings.torchvision_class or ""),
    check=lambda settings: ensure_torchvision_files(settings),
    source_folders=lambda settings: [_torchvision_folder(settings)],
    location=lambda settings: str(_torchvision_folder(settings).resolve()),
    train_present=train_files_present)
def decode(settings: DatasetSettings) -> Arrays:
    import torchvision

    if settings.splits == "test" or (settings.splits == "auto"
                                     and not train_files_present(settings)):
        refuse_cifar_test_split(settings, "test")
        return _test_split(settings)
    dataset_class = getattr(torchvision.datasets, given(settings.torchvision_class,
                                                         "dataset.torchvision_class", "a class"))
    splits = []
    for train in (True, False):
        try:
            split = dataset_class(root=settings.root, train=train, download=settings.download)
        except RuntimeError as error:  # torchvision: "Dataset not found..."
            raise ConfigError(
                "dataset.root",
                f"a folder holding torchvision's {settings.torchvision_class} files "
                f"(or dataset.download=true) [{error}]",
                settings.root,
            ) from None
        splits.append(split)
    train, test = splits
    return (
        as_nchw_uint8(train.data),
        torch.as_tensor(train.targets, dtype=torch.int64),
        as_nchw_uint8(test.data),
        torch.as_tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


__all__ = ["IDX_FILES", "TORCHVISION_CLASSES", "TORCHVISION_CLASS_NAMES", "TORCHVISION_SHAPES",
           "decode", "ensure_torchvision_files", "refuse_cifar_test_split",
           "train_files_present"]
