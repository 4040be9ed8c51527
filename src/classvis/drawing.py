"""A run's figures: listed as plain values, drawn in a second process while the run logs the rest.

Drawing the figures of a run (confusion matrices, image grids, F1 bars) takes about half a second,
and importing matplotlib another half. A helper process (``python -m classvis.drawing``, started
before torch is imported, so it imports matplotlib on the other core) draws them while the run
logs its metrics, datasets and models; the run waits for it only before it logs the files.

The parent hands over a folder holding ``figures.json`` (what to draw, arrays by name) and
``figures.npz`` (the arrays; read with ``allow_pickle=False``) and one line on the helper's stdin;
the helper answers with one line. Whatever goes wrong with the helper (it never started, died,
failed or hangs) the parent draws the figures itself, so a run always ends with every figure.
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
SPEC, ARRAYS = "figures.json", "figures.npz"
# the plots functions a spec may name
KINDS = ("confusion_figure", "image_grid", "image_rows", "f1_comparison_figure")
WAIT_S = 120.0  # how long a run waits for the helper before drawing the figures itself
DISABLE = "CLASSVIS_DRAW_IN_PROCESS"  # set to 1: no helper process, figures drawn in the run's


@dataclass
class FigureList:
    """The figures of a run: (file, plots function, its arguments), arrays kept aside."""

    figures: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, path: str, kind: str, **arguments: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown figure kind {kind!r}")
        self.figures.append({"path": path, "kind": kind,
                             "arguments": self._plain(arguments)})

    def _plain(self, value: Any) -> Any:
        """``value`` as JSON, each array replaced by a reference to its entry in ``arrays``."""
        if isinstance(value, np.ndarray):
            name = f"a{len(self.arrays)}"
            self.arrays[name] = value
            return {"array": name}
        if isinstance(value, dict):
            return {"dict": [[key, self._plain(item)] for key, item in value.items()]}
        if isinstance(value, (list, tuple)):
            return [self._plain(item) for item in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise TypeError(f"a figure argument must be an array or a plain value, not {value!r}")

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / ARRAYS, allow_pickle=False, **self.arrays)
        (folder / SPEC).write_text(json.dumps(self.figures))


def _restore(value: Any, arrays: Any, read: list[np.ndarray]) -> Any:
    """``value`` with each array reference replaced by its array, read once and kept in
    ``read`` in order (the figure's key hashes them)."""
    if isinstance(value, dict):
        if "array" in value:
            read.append(arrays[value["array"]])  # an npz entry is read from disk at each access
            return read[-1]
        return {key: _restore(item, arrays, read) for key, item in value["dict"]}
    if isinstance(value, list):
        return [_restore(item, arrays, read) for item in value]
    return value


_DRAWN: dict[str, bytes] = {}  # figures drawn in this process, by what they show
_KEPT = 16


def draw(spec_folder: Path, out_folder: Path) -> list[Path]:
    """Draw every figure listed in ``spec_folder`` into ``out_folder``. A figure already drawn in
    this process with the same arguments is written again from its bytes (the runs of a sweep
    that share a teacher share its confusion matrix)."""
    import io

    from classvis import plots

    figures = json.loads((spec_folder / SPEC).read_text())
    written = []
    with np.load(spec_folder / ARRAYS, allow_pickle=False) as arrays:
        for figure in figures:
            kind = figure["kind"]
            if kind not in KINDS:
                raise ValueError(f"unknown figure kind {kind!r}")
            read: list[np.ndarray] = []
            arguments = _restore(figure["arguments"], arrays, read)
            digest = hashlib.sha256(json.dumps(figure["arguments"]).encode())
            for array in read:
                digest.update(array.tobytes())
            key = f"{kind}:{digest.hexdigest()}"
            png = _DRAWN.get(key)
            if png is None:
                buffer = io.BytesIO()
                plots.save(getattr(plots, kind)(**arguments), buffer)
                png = _DRAWN[key] = buffer.getvalue()
                while len(_DRAWN) > _KEPT:
                    del _DRAWN[next(iter(_DRAWN))]
            path = out_folder / figure["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
            written.append(path)
    return written


class _Helper:
    """The drawing process, started once per process that runs jobs."""

    process: subprocess.Popen | None = None
    broken = False


def start() -> None:
    """Start the drawing process (idempotent; nothing when ``CLASSVIS_DRAW_IN_PROCESS=1``)."""
    if _Helper.process is not None or _Helper.broken or os.environ.get(DISABLE) == "1":
        return
    source = str(Path(__file__).resolve().parents[1])  # the folder that holds classvis
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    try:
        _Helper.process = subprocess.Popen(
            [sys.executable, "-m", "classvis.drawing"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": path})
    except OSError as error:
        _Helper.broken = True
        log.warning("figures are drawn in the run's process: the drawing process did not "
                    "start (%s)", error)


def stop() -> None:
    """Close the drawing process's input: it exits."""
    process, _Helper.process = _Helper.process, None
    if process is not None and process.stdin is not None:
        try:
            process.stdin.close()
        except OSError:
            pass


@dataclass
class Pending:
    """Figures handed to the drawing process (or to be drawn here, ``sent`` False)."""

    spec_folder: Path
    out_folder: Path
    sent: bool

    def wait(self, timeout_s: float = WAIT_S) -> None:
        """Until every figure is in ``out_folder``: the helper's answer, or drawn here."""
        if self.sent:
            why = _answer(str(self.spec_folder), timeout_s)
            if why is None:
                return
            log.warning("the drawing process %s; the run draws its figures itself", why)
            _Helper.broken = True
            stop()
        draw(self.spec_folder, self.out_folder)


def submit(figures: FigureList, spec_folder: Path, out_folder: Path) -> Pending:
    """Hand ``figures`` to the drawing process, which draws them into ``out_folder``; ``wait``
    on the result before using the files."""
    figures.write(spec_folder)
    process = _Helper.process
    if process is not None and process.poll() is not None:
        log.warning("the drawing process ended (exit status %s); the run draws its figures "
                    "itself", process.returncode)
        _Helper.process, _Helper.broken = None, True
        return Pending(spec_folder, out_folder, sent=False)
    if process is None or process.stdin is None:
        return Pending(spec_folder, out_folder, sent=False)
    try:
        process.stdin.write(f"{spec_folder}\t{out_folder}\n")
        process.stdin.flush()
    except OSError:
        return Pending(spec_folder, out_folder, sent=False)
    return Pending(spec_folder, out_folder, sent=True)


def _answer(spec: str, timeout_s: float) -> str | None:
    """None when the helper drew ``spec``; else why not (in a few words)."""
    process = _Helper.process
    if process is None or process.stdout is None:
        return "is gone"
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"did not answer within {timeout_s:.0f} s"
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:
            return f"ended (exit status {process.wait()})"
        status, _, rest = line.rstrip("\n").partition("\t")
        if rest.split("\t", 1)[0] != spec:
            continue  # an answer to an earlier request this process stopped waiting for
        if status == "done":
            return None
        return f"failed: {rest.split(chr(9), 1)[-1]}"


def main() -> None:
    """The drawing process: one request per line (spec folder, tab, output folder), one answer
    per line; it ends when its input closes."""
    from classvis import collector

    with collector.paused():  # the imports build objects that live as long as the process
        import matplotlib

        matplotlib.use("Agg")
        from classvis import plots  # noqa: F401  (imported now, before the first request)

    for line in sys.stdin:
        spec, _, out = line.rstrip("\n").partition("\t")
        try:
            draw(Path(spec), Path(out))
            answer = f"done\t{spec}"
        except Exception as error:  # the run draws them itself and says why
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            answer = f"failed\t{spec}\t{reason}"
        print(answer, flush=True)


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C reaches the whole process group
        pass
