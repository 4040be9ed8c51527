"""The decoded-tensor cache of a dataset: safetensors next to the data or in ``cache_dir``, keyed
by a fingerprint of the source files (one stat per file), never unpickled, and the cache of
tensors derived from a dataset beside it. ``classvis.loaders`` decodes the datasets;
``classvis.data`` builds the run's ``ImageData`` from these."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from classvis.integrity import DIGEST_KEY, damage, tensors_digest
from classvis.loaders import LOADERS, Arrays, given, source_folders, wants_train

if TYPE_CHECKING:
    from classvis.data import DatasetSettings

log = logging.getLogger(__name__)
CACHE_FORMAT = "2"  # 2: the header holds the tensors' sha256


def _source_files(settings: DatasetSettings) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every source file, sorted: one stat per file."""
    root = Path(given(settings.root, "dataset.root", "a data directory"))
    folders = source_folders(settings) or []
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
    if not wants_train(settings):  # the test split alone, though the training files be there
        digest.update(b"|test split only")
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
    if (not settings.cache or settings.loader not in LOADERS
            or source_folders(settings) is None):  # a file's set, or bundled data
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
    loader = LOADERS[settings.loader].function
    if source_folders(settings) is None:  # bundled with a package: fingerprint the pixels
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


__all__ = ["cached_tensors", "derived_cache_path", "load_arrays"]
