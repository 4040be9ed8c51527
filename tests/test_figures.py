"""The run's figures: what they show, drawn in the drawing process or, whatever befalls it, in the
run's own, byte for byte the same."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from classvis import drawing, plots


def test_image_rows_label_every_tile_and_row():
    images = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    fig = plots.image_rows({"synthetic": (images, ["a", "b", "c"]),
                            "nearest": (images[:2], ["d", "e"])}, "Nearest training images")
    texts = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert sorted(texts) == ["a", "b", "c", "d", "e", "nearest", "synthetic"]
    assert fig._suptitle is not None and fig._suptitle.get_text() == "Nearest training images"
    # each row shows its tiles side by side, padded to the longest row, scaled on their own
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert [array.shape for array in shown] == [(8, 3 * 8 + 2 * plots.GAP)] * 2
    assert float(shown[0][:, :8].min()) == 0.0 and float(shown[0][:, :8].max()) == 1.0


def figure_list() -> drawing.FigureList:
    """One figure of each kind a run draws."""
    rng = np.random.default_rng(1)
    names = ["cat", "dog", "frog"]
    images = rng.random((3, 1, 6, 6), dtype=np.float32)
    figures = drawing.FigureList()
    figures.add("confusion/teacher.png", "confusion_figure",
                confusion=np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]]), class_names=names,
                title="Teacher on the test set (accuracy 84.00%)", highlight=None)
    figures.add("visualizations.png", "image_grid", images=images, titles=names, title="set")
    figures.add("privacy/nearest_training_images.png", "image_rows",
                rows={"synthetic": (images, names), "nearest train": (images[::-1], names)},
                title="Nearest training images")
    figures.add("f1_comparison.png", "f1_comparison_figure", class_names=names,
                f1_by_model={"teacher": np.array([0.9, 0.8, 0.7]),
                             "student": np.array([0.5, 0.6, 0.9])}, title="F1")
    return figures


EXPECTED = ["confusion/teacher.png", "f1_comparison.png", "privacy/nearest_training_images.png",
            "visualizations.png"]


def files(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*.png"))}


@pytest.fixture
def helper(monkeypatch):
    """A drawing process of this test's own, stopped after it."""
    monkeypatch.delenv(drawing.DISABLE, raising=False)
    monkeypatch.setattr(drawing._Helper, "process", None)
    monkeypatch.setattr(drawing._Helper, "broken", False)
    drawing.start()
    yield drawing._Helper
    process = drawing._Helper.process
    drawing.stop()
    if process is not None:
        process.wait(timeout=30)


def test_the_drawing_process_draws_what_the_run_would_byte_for_byte(tmp_path, helper):
    drawn_there = tmp_path / "there"
    drawn_there.mkdir()
    pending = drawing.submit(figure_list(), tmp_path / "spec1", drawn_there)
    assert pending.sent
    pending.wait(timeout_s=60)
    assert helper.process is not None and helper.process.poll() is None  # still serving
    drawn_here = tmp_path / "here"
    drawing.draw(tmp_path / "spec1", drawn_here)  # what the run's own process draws
    assert sorted(files(drawn_there)) == EXPECTED
    assert files(drawn_there) == files(drawn_here)
    with Image.open(drawn_there / "confusion" / "teacher.png") as image:
        assert image.format == "PNG" and image.size[0] > 300


@pytest.mark.parametrize("fault", ["killed", "stopped"])
def test_whatever_befalls_the_drawing_process_the_run_has_every_figure(tmp_path, helper, caplog,
                                                                        fault):
    """Killed (say, out of memory) or hanging, the run's process draws the figures itself and
    says so in one line."""
    import os
    import signal

    out = tmp_path / "out"
    out.mkdir()
    process = helper.process
    if fault == "killed":
        process.kill()
        process.wait(timeout=30)
    else:
        os.kill(process.pid, signal.SIGSTOP)
    try:
        with caplog.at_level("WARNING", logger="classvis"):
            drawing.submit(figure_list(), tmp_path / "spec", out).wait(timeout_s=1.0)
    finally:
        if fault == "stopped":
            os.kill(process.pid, signal.SIGCONT)
    assert sorted(files(out)) == EXPECTED
    (line,) = [record.getMessage() for record in caplog.records]
    assert line == {"killed": "the drawing process ended (exit status -9); the run draws its "
                              "figures itself",
                    "stopped": "the drawing process did not answer within 1 s; the run draws "
                               "its figures itself"}[fault]
    assert helper.process is None and helper.broken  # later runs do not wait for it again


def test_a_figure_is_drawn_once_per_process_for_what_it_shows(tmp_path, monkeypatch):
    """The runs of a sweep that share a teacher share its confusion figure, byte for byte."""
    drawn = []
    original = plots.confusion_figure

    def counted(*args, **kwargs):
        drawn.append(kwargs["title"])
        return original(*args, **kwargs)

    monkeypatch.setattr(plots, "confusion_figure", counted)
    monkeypatch.setattr(drawing, "_DRAWN", {})
    confusion = np.array([[5, 1], [2, 7]])
    for index, highlight in enumerate([None, None, 1]):
        figures = drawing.FigureList()
        figures.add("c.png", "confusion_figure", confusion=confusion, class_names=["a", "b"],
                    title="Teacher (80.00%)", highlight=highlight)
        figures.write(tmp_path / f"spec{index}")
        drawing.draw(tmp_path / f"spec{index}", tmp_path / f"out{index}")
    assert drawn == ["Teacher (80.00%)", "Teacher (80.00%)"]  # the third highlights a class
    first, second, third = ((tmp_path / f"out{i}" / "c.png").read_bytes() for i in range(3))
    assert first == second != third


def test_the_drawing_process_does_not_import_torch():
    """It starts while the run imports torch: importing it too would take the other core's time."""
    done = subprocess.run([sys.executable, "-c", "import sys, classvis.drawing, classvis.plots; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
