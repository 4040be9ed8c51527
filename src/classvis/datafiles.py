"""A dataset's files: reading torchvision's datasets, image folders and scikit-learn's digits into
uint8 tensors, and the decoded-tensor cache (safetensors next to the data or in ``cache_dir``,
keyed by a fingerprint of the source files, never unpickled). ``classvis.data`` builds the run's
``ImageData`` from these."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from classvis.integrity import DIGEST_KEY, damage, tensors_digest
from classvis.settings import ConfigError

if TYPE_CHECKING:
    from classvis.data import DatasetSettings

log = logging.getLogger(__name__)
CACHE_FORMAT = "2"  # 2: the header holds the tensors' sha256


def given(value: str | None, key: str, expected: str) -> str:
    """``value``, or ``ConfigError`` naming ``key`` when the config left it out."""
    if value is None:
        raise ConfigError(key, expected, None)
    return value


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
        for name in class_folders(train):
            for path in sorted((train / name).iterdir()):
                try:
                    with Image.open(path) as image:
                        channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
                        return (channels, image.height, image.width)
                except OSError:
                    continue
    return None


def known_class_names(settings: DatasetSettings) -> list[str] | None:
    """The dataset's class names without loading it (a folder's are its class folders), so that
    ``dataset.classes`` and ``dataset.one_vs_rest`` can be checked at the door; None when they
    cannot be told."""
    if settings.class_names is not None:
        return list(settings.class_names)
    if settings.loader == "digits":
        return [str(digit) for digit in range(10)]
    if settings.loader == "torchvision":
        return TORCHVISION_CLASS_NAMES.get(settings.torchvision_class or "")
    if settings.loader == "image_folder" and settings.root is not None:
        train = Path(settings.root) / "train"
        if train.is_dir():
            return class_folders(train)
    return None


def class_folders(folder: Path) -> list[str]:
    """The class folders of an image folder's split, sorted: the order of its labels."""
    return sorted(path.name for path in folder.iterdir() if path.is_dir())


def _ways_out(settings: DatasetSettings, folder: str) -> str:
    root = Path(str(settings.root))
    ways = [f"CLASSVIS_DATA=<a folder holding {folder}>",
            "dataset.download=false dataset.root=<that folder>",
            "dataset=digits (bundled with scikit-learn, offline)"]
    if settings.torchvision_class == "CIFAR10" and (root / "cifar10-jpg" / "train").is_dir():
        ways.insert(0, f"dataset=cifar10_jpg (a JPEG copy is in {root / 'cifar10-jpg'})")
    return "; ".join(ways)


def ensure_torchvision_files(settings: DatasetSettings) -> None:
    """A torchvision dataset's files, found, or downloaded (``dataset.download``) before any
    work; else one line saying what was tried and the ways out. A failed download leaves no
    folder behind."""
    if settings.loader != "torchvision" or settings.root is None or _source_files(settings):
        return
    import contextlib
    import io
    import shutil

    name = given(settings.torchvision_class, "dataset.torchvision_class", "a class")
    folder = Path(settings.root) / TORCHVISION_CLASSES[name]
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


def check_image_folder(settings: DatasetSettings) -> None:
    """An image folder's layout, before any work: train/ and test/ with the same class folders,
    at least two (one class makes every model trivially right). Listing folders reads no image."""
    if settings.loader != "image_folder" or settings.root is None:
        return
    root = Path(settings.root)
    found = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise ConfigError("dataset.root", f"a folder with train/ and test/ class folders "
                              f"(no {split}/ in it)", str(root))
        found[split] = class_folders(folder)
    if found["train"] != found["test"]:
        raise ConfigError("dataset.root", "the same class folders under train/ and test/",
                          f"train {found['train']} vs test {found['test']}")
    if len(found["train"]) < 2:
        raise ConfigError("dataset.root", "at least two class folders under train/ and test/",
                          f"{len(found['train'])} ({', '.join(found['train']) or 'none'}) in "
                          f"{root}")
    for split in ("train", "test"):
        for name in found[split]:
            if not any(path.is_file() for path in (root / split / name).iterdir()):
                raise ConfigError("dataset.root", "at least one image in every class folder",
                                  f"an empty {split}/{name}/ in {root}")


def _as_nchw_uint8(data) -> torch.Tensor:
    images = torch.as_tensor(data)
    if images.ndim == 3:  # (N, H, W) grey
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)


def _load_torchvision(settings: DatasetSettings) -> Arrays:
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
    return _as_nchw_uint8(np.stack(images)), labels, list(index.classes)


def _load_image_folder(settings: DatasetSettings) -> Arrays:
    root = Path(given(settings.root, "dataset.root", "a data directory"))
    check_image_folder(settings)  # the same class folders under train/ and test/, two or more
    train_x, train_y, train_classes = _decode_folder(root / "train")
    test_x, test_y, _ = _decode_folder(root / "test")
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
    root = Path(given(settings.root, "dataset.root", "a data directory"))
    if settings.loader == "torchvision":
        folders = [root / TORCHVISION_CLASSES[given(settings.torchvision_class,
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


def source_location(settings: DatasetSettings) -> str:
    """Where the dataset's files are (an absolute folder), or the code that makes it."""
    if settings.loader == "digits":
        return "sklearn.datasets.load_digits"
    if settings.loader == "synthetic":
        return str(Path(given(settings.path, "dataset.path", "a synthetic-set file")).resolve())
    root = Path(given(settings.root, "dataset.root", "a data directory")).resolve()
    if settings.loader == "torchvision":
        return str(root / TORCHVISION_CLASSES.get(settings.torchvision_class or "", ""))
    return str(root)


def _fingerprint(settings: DatasetSettings, files: list[tuple[str, int, int]]) -> str:
    digest = hashlib.sha256(
        f"{CACHE_FORMAT}|{settings.loader}|{settings.torchvision_class}".encode())
    for name, size, mtime in files:
        digest.update(f"{name}|{size}|{mtime}\n".encode())
    return digest.hexdigest()[:16]


def _cache_path(settings: DatasetSettings, fingerprint: str) -> Path:
    base = (Path(settings.cache_dir) if settings.cache_dir
            else Path(given(settings.root, "dataset.root", "a data directory"))
            / ".classvis-cache")
    return base / f"{settings.name}-{fingerprint}.safetensors"


def _read_checked(path: Path, field: str, expected: str, foreign: str
                  ) -> tuple[dict[str, torch.Tensor], dict[str, str]] | str:
    """The tensors and header of the safetensors file at ``path`` when its header's ``field``
    is ``expected`` and its content matches its digest; else why not, in one line (``foreign``
    when it was written for something else)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
        if metadata.get(field) != expected:
            return foreign
        why = damage(tensors, metadata)
        return (tensors, metadata) if why is None else why
    except Exception as error:  # truncated, unreadable or foreign: never trusted
        return f"it cannot be read ({type(error).__name__}: {error})".splitlines()[0]


def _write_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
                  ) -> None:
    """Write ``tensors`` with ``metadata`` and their digest to ``path`` at once: parallel jobs
    never read a half-written file. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(partial),
              metadata={**metadata, DIGEST_KEY: tensors_digest(tensors)})
    os.replace(partial, path)


def _read_cache(path: Path, fingerprint: str) -> Arrays | None:
    """The decoded arrays, when the cache file holds exactly what was written for
    ``fingerprint``; else None (and one line saying why), and the data is decoded again."""
    if not path.is_file():
        return None
    found = _read_checked(path, "fingerprint", fingerprint, "it was made from other source files")
    if isinstance(found, str):
        log.warning("discarding dataset cache %s: %s; decoding the dataset again", path, found)
        return None
    tensors, metadata = found
    return (tensors["train_x"], tensors["train_y"], tensors["test_x"], tensors["test_y"],
            [str(name) for name in json.loads(metadata["class_names"])])


def _write_cache(path: Path, fingerprint: str, arrays: Arrays) -> None:
    train_x, train_y, test_x, test_y, class_names = arrays
    try:
        _write_atomic(path, {"train_x": train_x, "train_y": train_y, "test_x": test_x,
                             "test_y": test_y},
                      {"fingerprint": fingerprint, "class_names": json.dumps(class_names)})
    except OSError as error:
        log.warning("could not write dataset cache %s: %s", path, error)


def derived_cache_path(settings: DatasetSettings, fingerprint: str, what: str) -> Path | None:
    """Where tensors computed from the dataset (``what``: a name with its key) are kept beside
    its decoded cache; None where there is no such cache (``dataset.cache=false``, digits)."""
    if not settings.cache or settings.loader in ("digits", "synthetic"):
        return None
    decoded = _cache_path(settings, fingerprint)
    return decoded.with_name(f"{decoded.stem}.{what}{decoded.suffix}")


def cached_tensors(path: Path | None, key: str,
                   compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tensors at ``path`` when it holds exactly what was written for ``key``; else
    ``compute()``, written there (atomically; a damaged or foreign file is computed again)."""
    if path is not None and path.is_file():
        found = _read_checked(path, "key", key, "it was computed for other data or settings")
        if not isinstance(found, str):
            return found[0]
        log.warning("discarding cache %s: %s; computing it again", path, found)
    tensors = compute()
    if path is not None:
        try:
            _write_atomic(path, tensors, {"key": key})
        except OSError as error:
            log.warning("could not write cache %s: %s", path, error)
    return tensors


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
