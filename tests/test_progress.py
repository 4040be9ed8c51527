"""Progress bars appear on a terminal only, never under CI; the numeric code just calls back."""

from __future__ import annotations

import io

import torch

from classvis.distill import StudentTraining, distill
from classvis.models import DenseSettings, build_model
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
    model = build_model(DenseSettings("linear"), (1, 4, 4), 3, seed=0)
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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_long_stage_prints_a_plain_line_at_most_every_30_seconds():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("auto", stream=stream, clock=clock)
    assert not progress.enabled                       # no bars: mlflow's own stay quiet too
    with progress.bar("extract (deep_vis)", 800) as bar:
        for step in range(1, 801):
            clock.now += 0.125                        # 100 s in all
            bar(step, 2.0 / step)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3                            # at 30, 60 and 90 s; never a redraw
    assert lines[0] == "classvis: extract (deep_vis): step 240/800, loss 0.008333, 30 s elapsed"
    assert lines[2].endswith("step 720/800, loss 0.002778, 90 s elapsed")


def test_plain_lines_are_off_with_progress_false_and_bars_with_true():
    for mode in (False, True):
        stream, clock = Terminal() if mode else io.StringIO(), Clock()
        progress = Progress(mode, stream=stream, clock=clock, refresh_seconds=0)
        with progress.bar("teacher", 10, unit="epoch") as bar:
            for step in range(1, 11):
                clock.now += 60
                bar(step, 0.5)
        text = stream.getvalue()
        assert ("classvis: teacher" in text) is False
        assert (text != "") is mode
