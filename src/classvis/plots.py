"""Figures (headless matplotlib). Each function returns a Figure; callers save or log it.

Inputs are numpy arrays and plain values, never tensors: ``classvis.drawing`` draws a run's
figures in a second process that does not import torch."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from classvis.evaluate import class_errors


def confusion_figure(confusion: np.ndarray, class_names: list[str], title: str,
                     highlight: int | None = None) -> Figure:
    """The confusion matrix with counts. ``highlight``: a class whose false positives (its
    column, off the diagonal) are framed in red and false negatives (its row) in orange."""
    size = max(4.5, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), layout="constrained")
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="test images")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    threshold = confusion.max() / 2 if confusion.size else 0
    for (row, col), count in np.ndenumerate(confusion):  # inside the axes: not laid out
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black", in_layout=False)
    if highlight is not None:
        from matplotlib.patches import Rectangle

        for other in range(len(class_names)):
            if other == highlight:
                continue
            for (row, col), colour in (((other, highlight), "red"), ((highlight, other), "orange")):
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                                       edgecolor=colour, linewidth=1.8))
        false_pos, false_neg = class_errors(confusion, highlight)
        ax.set_xlabel(f"predicted class   (class {class_names[highlight]}: {false_pos} false "
                      f"positives in red, {false_neg} false negatives in orange)")
    return fig


def _display(image: np.ndarray) -> np.ndarray:
    """Min-max scale one (C, H, W) image to [0, 1] for display (visualizations are not in pixel
    range)."""
    image = np.asarray(image, dtype=np.float32)
    low, high = image.min(), image.max()
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    array = scaled.transpose(1, 2, 0)
    return array[..., 0] if array.shape[2] == 1 else array


GAP = 2  # pixels between tiles


def _mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """One row of tiles, each scaled on its own, ``GAP`` white pixels apart, padded to
    ``columns`` tiles: drawn as one image, so a figure costs one axes per row, not per image."""
    tiles = [_display(image) for image in images]
    height, width = tiles[0].shape[:2]
    shape = (height, columns * (width + GAP) - GAP) + tiles[0].shape[2:]
    mosaic = np.ones(shape, dtype=np.float32)
    for index, tile in enumerate(tiles):
        left = index * (width + GAP)
        mosaic[:, left:left + width] = tile
    return mosaic


ROW_INCHES, TITLE_INCHES, LABEL_INCHES = 1.55, 0.4, 0.3  # a row of tiles, the title on top


def _draw_rows(rows: list[tuple[str, np.ndarray, list[str]]], columns: int,
               title: str) -> Figure:
    """Rows of labelled tiles: each row one axes holding its mosaic, each tile's label under it
    and the row's label on its left. The geometry is known, so the axes are placed by hand and
    labelled with plain text (tick machinery and a layout engine cost most of a figure's time)."""
    width_in = 1.3 * columns + 0.6
    height_in = ROW_INCHES * len(rows) + TITLE_INCHES
    fig = plt.figure(figsize=(width_in, height_in))
    for index, (label, images, titles) in enumerate(rows):
        top = TITLE_INCHES + ROW_INCHES * index
        ax = fig.add_axes((LABEL_INCHES / width_in,
                           1 - (top + ROW_INCHES - LABEL_INCHES) / height_in,
                           (width_in - LABEL_INCHES - 0.1) / width_in,
                           (ROW_INCHES - LABEL_INCHES - 0.05) / height_in))
        height, width = images.shape[-2:]
        ax.imshow(_mosaic(images, columns), cmap="gray", vmin=0.0, vmax=1.0,
                  interpolation="nearest", aspect="equal")
        ax.set_axis_off()
        under = ax.get_xaxis_transform()  # x in pixels of the mosaic, y in the axes' height
        for tile, name in enumerate(titles):
            ax.text((width + GAP) * tile + (width - 1) / 2, -0.04, name, transform=under,
                    ha="center", va="top", fontsize=8)
        if label:
            ax.text(-0.004, 0.5, label, transform=ax.transAxes, rotation=90, ha="right",
                    va="center", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height_in, va="top")
    return fig


def image_grid(images: np.ndarray, titles: list[str], title: str, columns: int = 10) -> Figure:
    """One tile per image, each scaled on its own, with its title under it, ``columns`` a row."""
    columns = min(columns, len(images))
    rows = [("", images[start:start + columns], titles[start:start + columns])
            for start in range(0, len(images), columns)]
    return _draw_rows(rows, columns, title)


def image_rows(rows: dict[str, tuple[np.ndarray, list[str]]], title: str) -> Figure:
    """Several labelled rows of images (e.g. two teachers' visualizations side by side)."""
    columns = max(len(images) for images, _ in rows.values())
    return _draw_rows([(label, images, titles) for label, (images, titles) in rows.items()],
                      columns, title)


def f1_comparison_figure(class_names: list[str], f1_by_model: dict[str, np.ndarray],
                         title: str) -> Figure:
    """Per-class F1 of several models side by side (the paper's Figures 4, 6, 8, 10)."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(class_names) + 2), 3.8),
                           layout="constrained")
    positions = np.arange(len(class_names))
    width = 0.8 / max(1, len(f1_by_model))
    for index, (label, f1) in enumerate(f1_by_model.items()):
        ax.bar(positions + (index - (len(f1_by_model) - 1) / 2) * width, f1, width, label=label)
    ax.set_xticks(positions, class_names, rotation=45 if len(class_names) > 10 else 0)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("F1 score on the test set")
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=len(f1_by_model), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def accuracy_vs_images_figure(curves: dict[str, tuple[list[int], list[float]]],
                              reference: float, reference_label: str, title: str) -> Figure:
    """Test accuracy against the number of synthetic images (log scale), a reference line.
    ``curves``: label -> (image counts, accuracies in [0, 1]). The legend goes under the plot,
    long labels wrapped; each curve's values sit above its points, the second curve's below."""
    fig, ax = plt.subplots(figsize=(7.6, 3.8 + 0.3 * len(curves)), layout="constrained")
    for index, (label, (counts, values)) in enumerate(curves.items()):
        ax.plot(counts, [100 * v for v in values], marker="o",
                label=textwrap.fill(label, 110, subsequent_indent="  "))
        offset = -12 if index % 2 else 6
        for count, value in zip(counts, values, strict=True):
            ax.annotate(f"{100 * value:.1f}", (count, 100 * value), textcoords="offset points",
                        xytext=(0, offset), ha="center", fontsize=7)
    ax.axhline(100 * reference, color="black", linestyle="--", label=reference_label)
    ax.margins(y=0.12)  # room above the top point's label and the reference line
    ax.set_xscale("log")
    ticks = sorted({count for counts, _ in curves.values() for count in counts})
    ax.set_xticks(ticks, [str(c) for c in ticks])
    ax.set_xlabel("synthetic images (classes x per class)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=7, loc="outside lower center")
    return fig


def save(fig: Figure, path) -> None:
    """Write ``fig`` as a PNG to ``path`` (a file name or a binary stream) and close it; zlib's
    fastest level (a grid of 100 images: 14% larger, encoded in 40% less time)."""
    fig.savefig(path, dpi=110, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)
