"""The garbage collector around a process's heavy imports (torch, Hydra, MLflow and its store).

Python 3.11 runs its collector hundreds of times while those imports build their modules, and
each full pass walks every object made so far: importing Hydra, torch, MLflow and MLflow's
SQLAlchemy store took 4.3 s with the collector on and 3.6 s with it off (2-core machine). What
the imports make lives as long as the process, so when they are done it is frozen out of the
collector's reach (``gc.freeze``) and the collector is turned back on. Each place freezes once
per process: what a process holds later may soon be garbage. The imports leave about 10,000
unreachable objects of 440,000; they are frozen with the rest (collecting them first would cost a
0.3 s pass).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_paused = 0  # how many ``pause`` calls have not been matched by ``resume``
_was_enabled = True


def pause() -> None:
    """Turn the collector off for the imports that follow (nested pauses are counted)."""
    global _paused, _was_enabled
    if _paused == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _paused += 1


def resume(freeze: bool = True) -> None:
    """The imports are done: freeze what the process has made so far (unless ``freeze`` is
    false: when a run's objects are alive, which may become garbage later), and turn the
    collector back on if it was on at the first ``pause``."""
    global _paused
    if _paused == 0:
        return
    _paused -= 1
    if _paused == 0:
        if freeze:
            gc.freeze()
        if _was_enabled:
            gc.enable()


@contextlib.contextmanager
def paused(freeze: bool = True) -> Iterator[None]:
    """``pause`` for the body, ``resume(freeze)`` after it, also when it raises."""
    pause()
    try:
        yield
    finally:
        resume(freeze)
