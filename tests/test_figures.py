"""The run's figures: what they show, and that a figure already drawn in the process is reused."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from classvis import artifacts, plots


def test_image_rows_label_every_tile_and_row():
    images = torch.rand(3, 1, 8, 8)
    fig = plots.image_rows({"synthetic": (images, ["a", "b", "c"]),
                            "nearest": (images[:2], ["d", "e"])}, "Nearest training images")
    texts = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert sorted(texts) == ["a", "b", "c", "d", "e", "nearest", "synthetic"]
    assert fig._suptitle is not None and fig._suptitle.get_text() == "Nearest training images"
    # each row shows its tiles side by side, padded to the longest row, scaled on their own
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert [array.shape for array in shown] == [(8, 3 * 8 + 2 * plots.GAP)] * 2
    assert float(shown[0][:, :8].min()) == 0.0 and float(shown[0][:, :8].max()) == 1.0


def test_a_confusion_figure_is_drawn_once_per_process_for_what_it_shows(tmp_path, monkeypatch):
    """The runs of a sweep that share a teacher share its confusion figure, byte for byte."""
    drawn = []
    original = plots.confusion_figure

    def counted(*args, **kwargs):
        drawn.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(plots, "confusion_figure", counted)
    monkeypatch.setattr(artifacts, "_CONFUSION_PNGS", {})
    confusion = np.array([[5, 1], [2, 7]])
    first, second, other = tmp_path / "1.png", tmp_path / "2.png", tmp_path / "3.png"
    artifacts._write_confusion_png(first, confusion, ["a", "b"], "Teacher (80.00%)", None)
    artifacts._write_confusion_png(second, confusion, ["a", "b"], "Teacher (80.00%)", None)
    assert drawn == ["Teacher (80.00%)"] and first.read_bytes() == second.read_bytes()
    artifacts._write_confusion_png(other, confusion, ["a", "b"], "Teacher (80.00%)", 1)
    assert len(drawn) == 2 and other.read_bytes() != first.read_bytes()
    with Image.open(first) as image:
        assert image.format == "PNG" and image.size[0] > 300
