"""Progress bars for the long stages (teacher epochs, extraction steps, student steps).

``progress: auto`` (the default) shows them only when stderr is a terminal and the ``CI``
environment variable is not set; elsewhere (a log file, a pipe, a batch job, a Slurm log, CI) a long
stage prints a plain line at most every 30 s (stage, step / total, loss, elapsed), so nothing is
silent for minutes and logs stay free of bar redraws. ``true`` forces the bars, ``false`` silences
both. The numeric code only calls back ``(step, loss)``; the bars and lines live here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from classvis.validation import require

Mode = Literal["auto", True, False]


def check_mode(value: object, key: str = "progress") -> Mode:
    require(value in ("auto", True, False), key, "auto, true or false", value)
    return value  # type: ignore[return-value]


def interactive(stream=None, environ=None) -> bool:
    """Whether ``auto`` shows bars: a terminal, and not under CI."""
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


PLAIN_EVERY_SECONDS = 30.0


class Progress:
    """Hands out one bar (or plain-line writer) per stage; ``Progress(False)`` hands out callbacks
    that do nothing. ``enabled`` says whether bars are drawn."""

    def __init__(self, mode: Mode = "auto", stream=None, refresh_seconds: float = 0.2,
                 plain_every: float = PLAIN_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.refresh_seconds = refresh_seconds
        self.enabled = interactive(self.stream) if mode == "auto" else bool(mode)
        self.plain = mode == "auto" and not self.enabled
        self.plain_every = plain_every
        self.clock = clock

    @contextmanager
    def bar(self, description: str, total: int, unit: str = "step",
            ) -> Iterator[Callable[[int, float], None]]:
        """A ``(step, loss)`` callback that moves a bar of ``total`` steps; closed on exit."""
        if self.plain:
            yield self._plain_lines(description, total, unit)
            return
        if not self.enabled:
            yield lambda step, loss: None
            return
        from tqdm import tqdm

        bar = tqdm(total=total, desc=description, unit=unit, file=self.stream, leave=False,
                   dynamic_ncols=True, mininterval=self.refresh_seconds,
                   miniters=1 if self.refresh_seconds == 0 else None)
        shown = 0

        def update(step: int, loss: float) -> None:
            nonlocal shown
            bar.update(step - shown)
            shown = step
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

        try:
            yield update
        finally:
            bar.close()

    def _plain_lines(self, description: str, total: int, unit: str) -> Callable[[int, float], None]:
        started = last = self.clock()

        def update(step: int, loss: float) -> None:
            nonlocal last
            now = self.clock()
            if now - last < self.plain_every:
                return
            last = now
            self.stream.write(f"classvis: {description}: {unit} {step}/{total}, loss {loss:.4g}, "
                              f"{now - started:.0f} s elapsed\n")
            self.stream.flush()

        return update


QUIET = Progress(False)


def quiet_mlflow_when(quiet: bool) -> None:
    """Keep MLflow's own artifact up/download bars out of non-interactive output (unless the
    user set MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR)."""
    if quiet:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
