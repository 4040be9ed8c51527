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
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from classvis import runkeys as keys
from classvis.integrity import DIGEST_KEY, tensors_digest

FORMAT = keys.SYNTHETIC_SET_FORMAT
log = logging.getLogger(__name__)


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
        tensors = {name: getattr(self, name).detach().cpu().contiguous() for name in TENSORS}
        header = dict(self.metadata)
        header.update(format=FORMAT, class_names=json.dumps(self.class_names),
                      image_shape=json.dumps(list(self.image_shape)))
        header[DIGEST_KEY] = tensors_digest(tensors)
        save_file(tensors, str(path), metadata=header)

    @classmethod
    def load(cls, path: str | Path, allow_undigested: bool = False) -> SyntheticSet:
        """The set in ``path``; ``ValueError`` (one line) if it is not one, is damaged (its
        content digest), holds values no run can use, or has no digest (unless
        ``allow_undigested``: then it is read as it is, with a warning)."""
        header = read_metadata(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                tensors = {name: handle.get_tensor(name) for name in TENSORS}
        except Exception as error:  # truncated after its header
            raise ValueError(f"{path}: damaged synthetic set ({error})".splitlines()[0]) from None
        recorded = header.pop(DIGEST_KEY, None)
        if recorded is not None and tensors_digest(tensors) != recorded:
            raise ValueError(f"{path}: damaged synthetic set (its content does not match its "
                             f"digest)")
        try:
            class_names = [str(name) for name in _json_list(header.pop("class_names"))]
            shape = tuple(int(size) for size in _json_list(header.pop("image_shape")))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: bad synthetic set header ({error})") from None
        header.pop("format")
        images, targets, labels = (tensors[name] for name in TENSORS)
        if (images.ndim != 4 or tuple(images.shape[1:]) != shape or len(targets) != len(images)
                or len(labels) != len(images) or targets.shape[1:] != (len(class_names),)):
            raise ValueError(f"{path}: inconsistent synthetic set (images {tuple(images.shape)}, "
                             f"soft targets {tuple(targets.shape)}, labels {tuple(labels.shape)}, "
                             f"{len(class_names)} classes, image shape {shape})")
        _check_values(path, images, targets, labels, len(class_names))
        if recorded is None:  # nothing proves its content is what was written
            if not allow_undigested:
                raise ValueError(f"{path}: unverifiable synthetic set (no {DIGEST_KEY} digest in "
                                 f"its header; dataset.allow_undigested=true reads it as it is)")
            log.warning("%s: synthetic set without a digest, read as it is "
                        "(dataset.allow_undigested=true)", path)
        return cls(images.float(), targets.float(), labels.long(), class_names, header)


TENSORS = ("images", "soft_targets", "labels")


def _json_list(text: str) -> list:
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list, got {text[:40]!r}")
    return value


# beyond any image or logit a run makes (pixels are 0..1, visualizations rarely pass 100): values
# whose squares, summed over a batch, overflow float32 and train a student to chance
MAX_VALUE = 1e6


def _check_values(path: str | Path, images: torch.Tensor, targets: torch.Tensor,
                  labels: torch.Tensor, classes: int) -> None:
    problem = None
    if len(images) == 0:
        problem = "it holds no images"
    elif classes < 2:
        problem = f"it names {classes} class; a student needs at least 2"
    elif not (images.dtype.is_floating_point and targets.dtype.is_floating_point):
        problem = f"images and soft targets must be floats, got {images.dtype}, {targets.dtype}"
    elif labels.dtype.is_floating_point or labels.dtype == torch.bool:
        problem = f"labels must be integers, got {labels.dtype}"
    elif not bool(torch.isfinite(images).all()):
        problem = "its images hold NaN or infinite values"
    elif not bool(torch.isfinite(targets).all()):
        problem = "its soft targets hold NaN or infinite values"
    elif (peak := max(float(images.abs().max()), float(targets.abs().max()))) > MAX_VALUE:
        problem = f"its values reach {peak:.3g}, beyond +-{MAX_VALUE:.0e}"
    elif len(images) > 1 and bool((images == images[:1]).all()):
        problem = "its images are all the same"
    elif int(labels.min()) < 0 or int(labels.max()) >= classes:
        problem = (f"its labels run {int(labels.min())}..{int(labels.max())}, outside "
                   f"0..{classes - 1}")
    if problem is not None:
        raise ValueError(f"{path}: unusable synthetic set ({problem})")


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
