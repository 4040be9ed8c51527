"""Progress bars appear on a terminal only, never under CI; the numeric code just calls back."""

from __future__ import annotations

import io

import torch

from classvis.fit import StudentTraining, distill
from classvis.models import ArchitectureSettings, build_model
from classvis.progress import Progress, interactive


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_shows_bars_on_a_terminal_only_and_never_under_ci():
    assert interactive(Terminal(), environ={})
    assert not interactive(io.StringIO(), environ={})          # a pipe or a log file
    assert not interactive(Terminal(), environ={"CI": "true"})  # CI, even with a terminal
    assert interactive(Terminal(), environ={"CI": "false"})


def test_a_bar_follows_the_steps_and_closes():
    stream = Terminal()
    progress = Progress(True, stream=stream, refresh_seconds=0)
    model = build_model(ArchitectureSettings("linear"), (1, 4, 4), 3, seed=0)
    images, targets = torch.randn(6, 1, 4, 4), torch.randn(6, 3)
    with progress.bar("student", 50) as bar:
        distill(model, images, targets, StudentTraining(steps=50, lr_scaling="none", lr=0.1),
                on_step=bar)
    text = stream.getvalue()
    assert "student" in text and "50/50" in text and "loss=" in text


def test_quiet_progress_writes_nothing():
    stream = io.StringIO()
    progress = Progress("auto", stream=stream)
    with progress.bar("teacher", 10) as bar:
        for step in range(1, 11):
            bar(step, 0.5)
    assert stream.getvalue() == ""
