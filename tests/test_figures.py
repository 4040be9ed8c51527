"""The run's figures: what they show, every kind a run draws, and one drawing per process for
what the runs of a sweep share."""

from __future__ import annotations

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


def test_every_kind_of_figure_is_drawn_as_a_png(tmp_path):
    written = figure_list().draw(tmp_path)
    assert sorted(str(path.relative_to(tmp_path)) for path in written) == EXPECTED
    assert sorted(files(tmp_path)) == EXPECTED
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_a_figure_argument_must_be_plain():
    with pytest.raises(TypeError, match="an array or a plain value"):
        drawing.FigureList().add("x.png", "image_grid", images=object())
    with pytest.raises(ValueError, match="unknown figure kind"):
        drawing.FigureList().add("x.png", "pie")


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
        figures.draw(tmp_path / f"out{index}")
    assert drawn == ["Teacher (80.00%)", "Teacher (80.00%)"]  # the third highlights a class
    first, second, third = ((tmp_path / f"out{i}" / "c.png").read_bytes() for i in range(3))
    assert first == second != third
