"""Content digests of tensor files, so a damaged cache or set is caught when it is read.

A cache entry that still parses after a bit flip or a tampered byte would otherwise be trusted
(a teacher with 200 flipped weights scored 58.89% instead of 84.67%, on every later run). Every
file the project writes and reads back as tensors carries ``sha256`` of its tensors in its
safetensors header; a reader recomputes it and treats a mismatch as damage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DIGEST_KEY = "sha256"  # the header field that holds ``tensors_digest``
# safetensors' dtype codes, as torch names them (what the digest hashes)
TORCH_DTYPES = {"F64": "torch.float64", "F32": "torch.float32", "F16": "torch.float16",
                "BF16": "torch.bfloat16", "I64": "torch.int64", "I32": "torch.int32",
                "I16": "torch.int16", "I8": "torch.int8", "U8": "torch.uint8",
                "BOOL": "torch.bool"}


def _entry(name: str, dtype: str, shape: tuple[int, ...]) -> bytes:
    """What the digest hashes of a tensor before its bytes (``RawSafetensors.digest`` too)."""
    return f"{name}|{dtype}|{shape}\n".encode()


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(_entry(name, str(tensor.dtype), tuple(tensor.shape)))
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


class RawSafetensors:
    """A safetensors file as its header and its data bytes, read and written without torch
    (which takes 1.8 s to import): for tools that only re-label a file, as export does."""

    def __init__(self, header: dict[str, Any], data: bytes) -> None:
        self.header, self.data = header, data

    @classmethod
    def read(cls, path: str | Path) -> RawSafetensors:
        raw = Path(path).read_bytes()
        size = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
        if size < 2 or 8 + size > len(raw):
            raise ValueError(f"{path}: not a safetensors file (bad header size)")
        try:
            header = json.loads(raw[8:8 + size])
        except ValueError as error:
            raise ValueError(f"{path}: not a safetensors file ({error})") from None
        data = raw[8 + size:]
        for name, entry in cls._entries(header).items():
            begin, end = entry["data_offsets"]
            if not 0 <= begin <= end <= len(data) or entry["dtype"] not in TORCH_DTYPES:
                raise ValueError(f"{path}: damaged safetensors file (tensor {name!r})")
        return cls(header, data)

    @staticmethod
    def _entries(header: dict[str, Any]) -> dict[str, Any]:
        return {name: entry for name, entry in header.items() if name != "__metadata__"}

    @property
    def metadata(self) -> dict[str, str]:
        return self.header.setdefault("__metadata__", {})

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def digest(self) -> str:
        """``tensors_digest`` of the file's tensors, from their bytes."""
        digest = hashlib.sha256()
        for name, entry in sorted(self._entries(self.header).items()):
            begin, end = entry["data_offsets"]
            digest.update(_entry(name, TORCH_DTYPES[entry["dtype"]], tuple(entry["shape"])))
            digest.update(self.data[begin:end])
        return digest.hexdigest()

    def write(self, path: str | Path) -> None:
        header = json.dumps(self.header, separators=(",", ":")).encode()
        header += b" " * (-len(header) % 8)  # safetensors aligns the data on 8 bytes
        Path(path).write_bytes(len(header).to_bytes(8, "little") + header + self.data)


def damage(tensors: Mapping[str, torch.Tensor], header: Mapping[str, str]) -> str | None:
    """Why ``tensors`` do not match the digest their header records (None: they do)."""
    recorded = header.get(DIGEST_KEY)
    if recorded is None:
        return "it records no content digest"
    if tensors_digest(tensors) != recorded:
        return "its content does not match its digest (damaged or altered)"
    return None
