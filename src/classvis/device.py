"""Where a run computes (the top-level ``device`` key): ``auto``, ``cpu``, ``cuda``, ``cuda:N``
or ``mps``. Checked at the door, so a device the machine lacks is a one-line error before work.

Random numbers are always drawn on the CPU and then moved, so a seed gives the same initial
weights, minibatch order and starting images on every device.
"""

from __future__ import annotations

import platform

import torch

from classvis.validation import ConfigError

CHOICES = "auto, cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str, key: str = "device") -> str:
    """The torch device a ``device`` setting means on this machine (``cuda`` -> ``cuda:0``)."""
    if not isinstance(name, str):
        raise ConfigError(key, CHOICES, name)
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        return "mps" if _mps_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "mps":
        if not _mps_available():
            raise ConfigError(key, "auto or cpu on this machine (MPS is not available)", name)
        return "mps"
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise ConfigError(key, CHOICES, name)
        if not torch.cuda.is_available():
            raise ConfigError(key, "auto or cpu on this machine (CUDA is not available)", name)
        count = torch.cuda.device_count()
        if int(index_text) >= count:
            raise ConfigError(key, f"cuda:0 to cuda:{count - 1} ({count} CUDA devices here)", name)
        return f"cuda:{int(index_text)}"
    raise ConfigError(key, CHOICES, name)


def device_name(device: str) -> str:
    """A human name for the device: the GPU's model, or the CPU's."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device == "mps":
        return "Apple MPS"
    return platform.processor() or platform.machine() or "cpu"
