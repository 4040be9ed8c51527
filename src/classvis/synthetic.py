"""The synthetic training set as a portable file: images, soft targets, labels, class names.

Stored as safetensors (no pickle): tensors plus a string-to-string metadata header.
"""

from __future__ import annotations

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
        save_file({"images": self.images.contiguous(), "soft_targets": self.soft_targets.contiguous(),
                   "labels": self.labels.contiguous()}, str(path), metadata=header)

    @classmethod
    def load(cls, path: str | Path) -> SyntheticSet:
        with safe_open(str(path), framework="pt") as handle:
            header = dict(handle.metadata() or {})
            if header.get("format") != FORMAT:
                raise ValueError(f"{path}: not a classvis synthetic set (format {header.get('format')!r})")
            tensors = {name: handle.get_tensor(name) for name in ("images", "soft_targets", "labels")}
        class_names = json.loads(header.pop("class_names"))
        header.pop("format")
        header.pop("image_shape")
        return cls(tensors["images"], tensors["soft_targets"], tensors["labels"], class_names, header)
