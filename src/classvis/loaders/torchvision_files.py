"""torchvision's datasets (MNIST, Fashion-MNIST, KMNIST, CIFAR-10/100): found, or downloaded
(``dataset.download``), before any work; decoded by torchvision."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from classvis.loaders import LOADERS, Arrays, as_nchw_uint8, given, root
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
    location=lambda settings: str(_torchvision_folder(settings).resolve()))
def decode(settings: DatasetSettings) -> Arrays:
    import torchvision

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


__all__ = ["TORCHVISION_CLASSES", "TORCHVISION_CLASS_NAMES", "TORCHVISION_SHAPES",
           "decode", "ensure_torchvision_files"]
