"""A run's figures: listed as plain values while the run's artifacts are written, drawn when it
logs them. The runs of a sweep that show the same thing (a shared teacher's confusion matrix)
share one drawing: a figure drawn in this process with the same arguments is written again from
its bytes."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# the plots functions a figure may name
KINDS = ("confusion_figure", "image_grid", "image_rows", "f1_comparison_figure")
_DRAWN: dict[str, bytes] = {}  # figures drawn in this process, by what they show
_KEPT = 16


@dataclass
class FigureList:
    """The figures of a run: (file, plots function, its arguments)."""

    # (file, plots function, its arguments, what the figure shows: ``_key``)
    figures: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)

    def add(self, path: str, kind: str, **arguments: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown figure kind {kind!r}")
        self.figures.append((path, kind, arguments, _key(kind, arguments)))

    def draw(self, folder: Path) -> list[Path]:
        """Draw every figure into ``folder``; returns the files written."""
        from classvis import plots  # matplotlib: imported by the runs that draw

        written = []
        for path, kind, arguments, key in self.figures:
            png = _DRAWN.get(key)
            if png is None:
                buffer = io.BytesIO()
                plots.save(getattr(plots, kind)(**arguments), buffer)
                png = _DRAWN[key] = buffer.getvalue()
                while len(_DRAWN) > _KEPT:
                    del _DRAWN[next(iter(_DRAWN))]
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png)
            written.append(target)
        return written


def _key(kind: str, arguments: dict[str, Any]) -> str:
    """What a figure shows, as a digest of its kind and arguments (arrays by their bytes); a
    ``TypeError`` for an argument that is neither an array nor a plain value."""
    digest = hashlib.sha256(kind.encode())

    def feed(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
            return "<array>"
        if isinstance(value, dict):
            return {key: feed(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [feed(item) for item in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise TypeError(f"a figure argument must be an array or a plain value, not {value!r}")

    digest.update(json.dumps(feed(arguments), sort_keys=True).encode())
    return f"{kind}:{digest.hexdigest()}"
