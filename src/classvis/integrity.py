"""Content digests of tensor files, so a damaged cache or set is caught when it is read.

A cache entry that still parses after a bit flip or a tampered byte would otherwise be trusted
(a teacher with 200 flipped weights scored 58.89% instead of 84.67%, on every later run). Every
file the project writes and reads back as tensors carries ``sha256`` of its tensors in its
safetensors header; a reader recomputes it and treats a mismatch as damage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

DIGEST_KEY = "sha256"  # the header field that holds ``tensors_digest``


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def damage(tensors: Mapping[str, torch.Tensor], header: Mapping[str, str]) -> str | None:
    """Why ``tensors`` do not match the digest their header records (None: they do)."""
    recorded = header.get(DIGEST_KEY)
    if recorded is None:
        return "it records no content digest"
    if tensors_digest(tensors) != recorded:
        return "its content does not match its digest (damaged or altered)"
    return None
