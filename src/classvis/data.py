"""Datasets as small in-memory containers of tensors (config group ``dataset``).

Every loader returns an ``ImageData``: float32 images in [0, 1] shaped (N, C, H, W), int64 labels,
and class names. Decoded pixels are cached as uint8 safetensors next to the data (or in
``cache_dir``) so that a second run does not decode again; the cache is keyed by a fingerprint of
the source files and never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file

from classvis.settings import ConfigError, require

CACHE_FORMAT = "1"


def _given(value: str | None, key: str, expected: str) -> str:
    """``value``, or ``ConfigError`` naming ``key`` when the config left it out."""
    if value is None:
        raise ConfigError(key, expected, None)
    return value


@dataclass(frozen=True)
class DatasetSettings:
    name: str
    loader: Literal["torchvision", "digits", "image_folder", "synthetic"]
    root: str | None = None
    torchvision_class: str | None = None
    download: bool = False
    class_names: tuple[str, ...] | None = None
    classes: tuple[str | int, ...] | None = None  # ints allowed: dataset.classes=[3,4]
    one_vs_rest: str | int | None = None
    # one_vs_rest: which sets keep only as many negatives as positives (drawn with the run's seed)
    one_vs_rest_balance: Literal["none", "train", "train_and_test"] = "none"
    cache: bool = True
    cache_dir: str | None = None
    # loader synthetic: a file written by ``classvis export`` (or a run's synthetic_set artifact),
    # and where the real test set of the dataset it came from lies here (null: as recorded)
    path: str | None = None
    test_root: str | None = None

    def __post_init__(self) -> None:
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(name) for name in self.classes))
        if self.one_vs_rest is not None:
            object.__setattr__(self, "one_vs_rest", str(self.one_vs_rest))

    def check(self, key: str) -> None:
        require(bool(self.name), f"{key}.name", "a non-empty name", self.name)
        if self.classes is not None:
            require(len(self.classes) >= 2 and len(set(self.classes)) == len(self.classes),
                    f"{key}.classes", "at least two distinct class names", list(self.classes))
            if self.class_names is not None:
                check_class_names(self.classes, list(self.class_names), f"{key}.classes")
        if self.one_vs_rest is not None:
            require(self.classes is None, f"{key}.one_vs_rest",
                    "null when dataset.classes is set (use one or the other)", self.one_vs_rest)
            if self.class_names is not None:
                check_class_names([self.one_vs_rest], list(self.class_names),
                                  f"{key}.one_vs_rest")
        if self.loader == "synthetic":  # its header is read (and checked) by run_settings
            require(self.path is not None, f"{key}.path", "a synthetic set file (classvis export)",
                    None)
            require(Path(str(self.path)).is_file(), f"{key}.path", "an existing file", self.path)
        if self.loader == "torchvision":
            require(
                self.torchvision_class in TORCHVISION_CLASSES,
                f"{key}.torchvision_class",
                "one of " + ", ".join(TORCHVISION_CLASSES),
                self.torchvision_class,
            )
        if self.loader in ("torchvision", "image_folder"):
            root = Path(_given(self.root, f"{key}.root", "a data directory"))
            if self.loader == "image_folder":
                for split in ("train", "test"):
                    require(
                        (root / split).is_dir(),
                        f"{key}.root",
                        f"a folder holding {split}/<class>/<images>",
                        str(root),
                    )
            elif not self.download:
                require(root.is_dir(), f"{key}.root", "an existing directory (download is off)",
                        str(root))


@dataclass
class ImageData:
    """A labelled image dataset held in memory."""

    name: str
    class_names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    fingerprint: str = ""  # identifies the source data (keys caches of models trained on it)
    # further views of the test set to evaluate on, by name (one-vs-rest: "full" and "balanced")
    test_views: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device: str | torch.device) -> ImageData:
        """The same dataset with every tensor on ``device`` (itself when they already are)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        views = {name: (x.to(device), y.to(device)) for name, (x, y) in self.test_views.items()}
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device),
                       test_views=views)


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

Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


def known_image_shape(settings: DatasetSettings) -> tuple[int, int, int] | None:
    """The dataset's image shape without loading it (one image file is opened for a folder), so
    that architectures can be checked against it at the door; None when it cannot be told."""
    if settings.loader == "digits":
        return (1, 8, 8)
    if settings.loader == "torchvision":
        return TORCHVISION_SHAPES.get(settings.torchvision_class or "")
    if settings.loader == "image_folder" and settings.root is not None:
        from PIL import Image

        train = Path(settings.root) / "train"
        for folder in sorted(path for path in train.iterdir() if path.is_dir()):
            for path in sorted(folder.iterdir()):
                try:
                    with Image.open(path) as image:
                        channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
                        return (channels, image.height, image.width)
                except OSError:
                    continue
    return None


def _as_nchw_uint8(data) -> torch.Tensor:
    images = torch.as_tensor(data)
    if images.ndim == 3:  # (N, H, W) grey
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)


def _load_torchvision(settings: DatasetSettings) -> Arrays:
    import torchvision

    dataset_class = getattr(torchvision.datasets, _given(settings.torchvision_class,
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
        _as_nchw_uint8(train.data),
        torch.as_tensor(train.targets, dtype=torch.int64),
        _as_nchw_uint8(test.data),
        torch.as_tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


def _decode_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import numpy as np
    from PIL import Image
    from torchvision.datasets import ImageFolder

    index = ImageFolder(str(folder), loader=lambda path: path)  # discovery only: classes, files
    with Image.open(index.samples[0][0]) as first:
        mode = "L" if first.mode in ("L", "I", "I;16", "1") else "RGB"

    def decode(sample: tuple[str, int]) -> np.ndarray:
        with Image.open(sample[0]) as image:
            return np.asarray(image.convert(mode))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL decodes without the GIL
        images = list(pool.map(decode, index.samples, chunksize=256))
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ConfigError("dataset.root", "images of one size", f"sizes {sorted(shapes)[:3]}")
    labels = torch.tensor([label for _, label in index.samples], dtype=torch.int64)
    return _as_nchw_uint8(np.stack(images)), labels, list(index.classes)


def _load_image_folder(settings: DatasetSettings) -> Arrays:
    root = Path(_given(settings.root, "dataset.root", "a data directory"))
    train_x, train_y, train_classes = _decode_folder(root / "train")
    test_x, test_y, test_classes = _decode_folder(root / "test")
    if train_classes != test_classes:
        raise ConfigError(
            "dataset.root", "the same class folders under train/ and test/",
            f"train {train_classes} vs test {test_classes}",
        )
    return train_x, train_y, test_x, test_y, train_classes


def _load_digits(settings: DatasetSettings) -> Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # pixel values are 0..16; scale to 0..255 so every loader yields uint8 pixels
    images = torch.as_tensor(bunch.images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=0.25, random_state=0, stratify=bunch.target
    )
    return (images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
            [str(name) for name in bunch.target_names])


LOADERS: dict[str, Callable[[DatasetSettings], Arrays]] = {
    "torchvision": _load_torchvision,
    "image_folder": _load_image_folder,
    "digits": _load_digits,
}


def _source_files(settings: DatasetSettings) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every source file, sorted: one stat per file."""
    root = Path(_given(settings.root, "dataset.root", "a data directory"))
    if settings.loader == "torchvision":
        folders = [root / TORCHVISION_CLASSES[_given(settings.torchvision_class,
                                                     "dataset.torchvision_class", "a class")]]
    else:
        folders = [root / "train", root / "test"]
    entries = []
    pending = [str(folder) for folder in folders if folder.is_dir()]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=True):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=True):
                    stat = entry.stat()
                    entries.append((os.path.relpath(entry.path, root), stat.st_size,
                                    stat.st_mtime_ns))
    return sorted(entries)


def _fingerprint(settings: DatasetSettings, files: list[tuple[str, int, int]]) -> str:
    digest = hashlib.sha256(
        f"{CACHE_FORMAT}|{settings.loader}|{settings.torchvision_class}".encode())
    for name, size, mtime in files:
        digest.update(f"{name}|{size}|{mtime}\n".encode())
    return digest.hexdigest()[:16]


def _cache_path(settings: DatasetSettings, fingerprint: str) -> Path:
    base = (Path(settings.cache_dir) if settings.cache_dir
            else Path(_given(settings.root, "dataset.root", "a data directory"))
            / ".classvis-cache")
    return base / f"{settings.name}-{fingerprint}.safetensors"


def _read_cache(path: Path, fingerprint: str) -> Arrays | None:
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("fingerprint") != fingerprint:
            return None
        tensors = load_file(str(path))
    except Exception as error:  # a damaged cache is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable dataset cache {path}: {error}", stacklevel=2)
        return None
    return (tensors["train_x"], tensors["train_y"], tensors["test_x"], tensors["test_y"],
            json.loads(metadata["class_names"]))


def _write_cache(path: Path, fingerprint: str, arrays: Arrays) -> None:
    train_x, train_y, test_x, test_y, class_names = arrays
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        save_file(
            {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y},
            str(partial),
            metadata={"fingerprint": fingerprint, "class_names": json.dumps(class_names)},
        )
        os.replace(partial, path)  # atomic: parallel jobs never read a half-written cache
    except OSError as error:
        warnings.warn(f"could not write dataset cache {path}: {error}", stacklevel=2)


def load_arrays(settings: DatasetSettings) -> tuple[Arrays, str]:
    """Decoded uint8 images (N, C, H, W), labels and class names, from the cache when valid,
    and a fingerprint of the source data."""
    loader = LOADERS[settings.loader]
    if settings.loader == "digits":  # bundled with scikit-learn: fingerprint the pixels
        pixels = loader(settings)
        digest = hashlib.sha256()
        for tensor in pixels[:4]:
            digest.update(tensor.numpy().tobytes())
        return pixels, digest.hexdigest()[:16]
    files = _source_files(settings)
    arrays: Arrays | None = None
    if not files:  # nothing on disk yet: torchvision downloads first
        arrays = loader(settings)
        files = _source_files(settings)
    fingerprint = _fingerprint(settings, files)
    if not settings.cache:
        return (arrays or loader(settings)), fingerprint
    path = _cache_path(settings, fingerprint)
    if arrays is None:
        arrays = _read_cache(path, fingerprint)
        if arrays is not None:
            return arrays, fingerprint
        arrays = loader(settings)
    _write_cache(path, fingerprint, arrays)
    return arrays, fingerprint


def check_class_names(wanted, known: list[str], key: str) -> None:
    unknown = [name for name in wanted if name not in known]
    require(not unknown, key, "class names among " + ", ".join(known),
            unknown[0] if unknown else None)


def _keep_classes(images: torch.Tensor, labels: torch.Tensor, keep: list[int]):
    """Only the images of classes ``keep``, relabelled 0..len(keep)-1 in that order."""
    relabel = torch.full((int(labels.max()) + 1,), -1, dtype=torch.int64)
    relabel[torch.tensor(keep)] = torch.arange(len(keep))
    new_labels = relabel[labels]
    mask = new_labels >= 0
    return images[mask], new_labels[mask]


def _balanced_subset(labels: torch.Tensor, positive: int,
                     generator: torch.Generator) -> torch.Tensor:
    """Indices of every image of class ``positive`` and of a random subset of the others as large
    as the positive class (all of them if there are fewer), in their original order."""
    positives = torch.nonzero(labels == positive).flatten()
    negatives = torch.nonzero(labels != positive).flatten()
    chosen = negatives[torch.randperm(len(negatives), generator=generator)[:len(positives)]]
    return torch.cat([positives, chosen.sort().values])


def _one_vs_rest(images: torch.Tensor, labels: torch.Tensor, positive: int,
                 keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ``positive`` (label 0) against all others (label 1), the images ``keep`` (None:
    every image, positives first, as in a balanced subset)."""
    if keep is None:
        keep = torch.cat([torch.nonzero(labels == positive).flatten(),
                          torch.nonzero(labels != positive).flatten()])
    return images[keep], (labels[keep] != positive).long()


def load_dataset(settings: DatasetSettings, seed: int = 0) -> ImageData:
    """Load a dataset into memory as float32 tensors in [0, 1].

    ``seed`` draws the negatives that ``one_vs_rest`` keeps in a balanced set; a one-vs-rest
    dataset is evaluated on its full and its balanced test set alike (``test_views``)."""
    if settings.loader == "synthetic":
        raise ValueError("a synthetic set is not loaded as a dataset: pipeline.run trains the "
                         "student from the file directly")
    (train_x, train_y, test_x, test_y, class_names), fingerprint = load_arrays(settings)
    if settings.class_names is not None:
        require(
            len(settings.class_names) == len(class_names),
            "dataset.class_names",
            f"{len(class_names)} names (one per class of {settings.name})",
            list(settings.class_names),
        )
        class_names = list(settings.class_names)
    if settings.classes is not None:
        check_class_names(settings.classes, class_names, "dataset.classes")
        keep = [class_names.index(str(name)) for name in settings.classes]
        train_x, train_y = _keep_classes(train_x, train_y, keep)
        test_x, test_y = _keep_classes(test_x, test_y, keep)
        class_names = [str(name) for name in settings.classes]
    test_views: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if settings.one_vs_rest is not None:
        check_class_names([settings.one_vs_rest], class_names, "dataset.one_vs_rest")
        positive = class_names.index(str(settings.one_vs_rest))
        generator = torch.Generator().manual_seed(seed)
        # both balanced subsets are drawn whatever the setting, so each is the same in every run
        balanced_train = _balanced_subset(train_y, positive, generator)
        balanced_test = _balanced_subset(test_y, positive, generator)
        full_x, full_y = _one_vs_rest(test_x, test_y, positive, None)
        small_x, small_y = _one_vs_rest(test_x, test_y, positive, balanced_test)
        balance = settings.one_vs_rest_balance
        train_x, train_y = _one_vs_rest(train_x, train_y, positive,
                                        None if balance == "none" else balanced_train)
        full_x, small_x = full_x.float().div_(255.0), small_x.float().div_(255.0)
        test_views = {"full": (full_x, full_y), "balanced": (small_x, small_y)}
        test_x, test_y = test_views["balanced" if balance == "train_and_test" else "full"]
        class_names = [str(settings.one_vs_rest), f"not {settings.one_vs_rest}"]
        material = f"{fingerprint}|one_vs_rest|{settings.one_vs_rest}|{seed}"
        if balance != "train_and_test":  # the balanced train-and-test keys stay as they were
            material += f"|balance={balance}"
        fingerprint = hashlib.sha256(material.encode()).hexdigest()[:16]
    return ImageData(
        name=settings.name,
        class_names=list(class_names),
        train_x=train_x.float().div_(255.0),
        train_y=train_y,
        test_x=test_x if test_x.is_floating_point() else test_x.float().div_(255.0),
        test_y=test_y,
        fingerprint=fingerprint,
        test_views=test_views,
    )
