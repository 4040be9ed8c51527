"""Figures (headless matplotlib). Each function returns a Figure; callers save or log it."""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    if highlight is not None:
        from matplotlib.patches import Rectangle

        for other in range(len(class_names)):
            if other == highlight:
                continue
            for (row, col), colour in (((other, highlight), "red"), ((highlight, other), "orange")):
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                                       edgecolor=colour, linewidth=1.8))
        from classvis.evaluate import class_errors

        false_pos, false_neg = class_errors(confusion, highlight)
        ax.set_xlabel(f"predicted class   (class {class_names[highlight]}: {false_pos} false "
                      f"positives in red, {false_neg} false negatives in orange)")
    return fig


def _display(image: torch.Tensor) -> np.ndarray:
    """Min-max scale one image to [0, 1] for display (visualizations are not in pixel range)."""
    low, high = image.min(), image.max()
    scaled = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    array = scaled.permute(1, 2, 0).detach().cpu().numpy()
    return array[..., 0] if array.shape[2] == 1 else array


def image_grid(images: torch.Tensor, titles: list[str], title: str, columns: int = 10) -> Figure:
    """One tile per image, each scaled on its own, with its title under it."""
    count = len(images)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.55 * rows + 0.4),
                             squeeze=False, layout="constrained")
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= count:
            ax.axis("off")
            continue
        ax.imshow(_display(images[index]), cmap="gray", interpolation="nearest")
        ax.set_xlabel(titles[index], fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def image_rows(rows: dict[str, tuple[torch.Tensor, list[str]]], title: str) -> Figure:
    """Several labelled rows of images (e.g. two teachers' visualizations side by side)."""
    columns = max(len(images) for images, _ in rows.values())
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.3 * columns, 1.7 * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    for row, (label, (images, titles)) in enumerate(rows.items()):
        for index in range(columns):
            ax = axes[row, index]
            ax.set_xticks([])
            ax.set_yticks([])
            if index >= len(images):
                ax.axis("off")
                continue
            ax.imshow(_display(images[index]), cmap="gray", interpolation="nearest")
            ax.set_xlabel(titles[index], fontsize=8)
            if index == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
