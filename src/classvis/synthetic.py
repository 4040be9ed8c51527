"""The synthetic training set as a portable file: images, soft targets, labels, class names.

Stored as safetensors (no pickle): tensors plus a string-to-string metadata header. The header
always holds ``format``, ``class_names`` and ``image_shape`` (JSON); a run's set also records where
it came from (``dataset``, ``extractor``, ``teacher``, ``seed``, ``teacher_accuracy``,
``teacher_parameters``, ``teacher_key``, ``teacher_architecture``, ``source_dataset``: the dataset
settings as JSON, so the real test set can be found again), and ``classvis export`` adds the MLflow
run (``run_id``, ``run_name``, ``experiment``, ``tracking_uri``, ``exported_at``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "classvis.synthetic_set/1"


@dataclass
class SyntheticSet:
    images: torch.Tensor        # (M, C, H, W) float32
    soft_targets: torch.Tensor  # (M, K) teacher logits
    labels: torch.Tensor        # (M,) int64
    class_names: list[str]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def save(self, path: str | Path) -> None:
        header = dict(self.metadata)
        header.update(format=FORMAT, class_names=json.dumps(self.class_names),
                      image_shape=json.dumps(list(self.image_shape)))
        save_file({name: getattr(self, name).detach().cpu().contiguous() for name in TENSORS},
                  str(path), metadata=header)

    @classmethod
    def load(cls, path: str | Path) -> SyntheticSet:
        header = read_metadata(path)
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in TENSORS}
        class_names = json.loads(header.pop("class_names"))
        shape = tuple(json.loads(header.pop("image_shape")))
        header.pop("format")
        images, targets, labels = (tensors[name] for name in TENSORS)
        if (images.ndim != 4 or tuple(images.shape[1:]) != shape or len(targets) != len(images)
                or len(labels) != len(images) or targets.shape[1:] != (len(class_names),)):
            raise ValueError(f"{path}: inconsistent synthetic set (images {tuple(images.shape)}, "
                             f"soft targets {tuple(targets.shape)}, labels {tuple(labels.shape)}, "
                             f"{len(class_names)} classes, image shape {shape})")
        return cls(images.float(), targets.float(), labels.long(), class_names, header)


TENSORS = ("images", "soft_targets", "labels")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header of a synthetic set file, without reading its tensors; ``ValueError`` if the
    file is not one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = dict(handle.metadata() or {})
            names = set(handle.keys())
    except Exception as error:  # safetensors raises its own error types for foreign files
        raise ValueError(f"{path}: not a safetensors file ({error})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a classvis synthetic set (format {header.get('format')!r})")
    missing = [name for name in TENSORS if name not in names] + [
        key for key in ("class_names", "image_shape") if key not in header]
    if missing:
        raise ValueError(f"{path}: synthetic set lacks {', '.join(missing)}")
    return header


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a synthetic set's identity, whatever it is called)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
