"""What a finished run leaves behind, as plain values and files (the tracking layer logs them).

Metric keys are fixed so that reports and tools can rely on them:
``teacher/accuracy``, ``student/accuracy``, ``untrained/accuracy`` and, per class,
``{teacher,student}/{precision,recall,f1}/<class>`` (fractions, not percent).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from classvis import runkeys as keys
from classvis.drawing import FigureList
from classvis.evaluate import class_errors
from classvis.pipeline import RunResult

PER_CLASS_MODELS = ("teacher", "student")
GRID_PER_CLASS = 10  # at most this many images per class in visualizations.png


def _first_per_class(labels, count: int):
    """Indices of the first ``count`` images of each class, in order."""
    import torch

    seen: dict[int, int] = {}
    keep = []
    for index, label in enumerate(labels.tolist()):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= count:
            keep.append(index)
    return torch.tensor(keep, dtype=torch.int64)


def _write_swap_figures(result: RunResult, folder: Path, title: str,
                        figures: FigureList) -> None:
    """Both teachers' visualizations side by side, and which image of the student's set came
    from where (swap/origin.csv)."""
    swap = result.swap
    assert swap is not None  # called for swap runs only
    base_names = result.class_names
    donor_names = swap.donor_data.class_names
    rows = {
        "base teacher": (swap.base_images.images,
                         [base_names[i] for i in swap.base_images.labels.tolist()]),
        "donor teacher": (swap.donor_images.images,
                          [donor_names[i] for i in swap.donor_images.labels.tolist()]),
        "student's set": (swap.swapped.images,
                          [f"{base_names[label]} ({origin})" if origin != "base"
                           else base_names[label]
                           for label, origin in zip(swap.swapped.labels.tolist(),
                                                    swap.swapped.origin, strict=True)]),
    }
    (folder / "swap").mkdir(exist_ok=True)
    figures.add("swap/teachers_side_by_side.png", "image_rows",
                rows={label: (_pixels(images), names) for label, (images, names) in rows.items()},
                title=f"Swap {swap.settings.label}: {title}")
    _write_report_csv(folder / "swap" / "origin.csv", [
        {"index": index, "class": base_names[label], "origin": origin}
        for index, (label, origin) in enumerate(zip(swap.swapped.labels.tolist(),
                                                    swap.swapped.origin, strict=True))])


def _write_privacy(result: RunResult, folder: Path, title: str, figures: FigureList) -> None:
    """Each synthetic image (at most GRID_PER_CLASS per class) above its nearest training image,
    and every image's distance in privacy/nearest_train.csv."""
    names, data, privacy = result.class_names, result.data, result.privacy
    assert data is not None and privacy is not None  # measured against a real training set
    images, labels = result.synthetic.images, result.synthetic.labels
    found = privacy.synthetic
    (folder / "privacy").mkdir(exist_ok=True)
    _write_report_csv(folder / "privacy" / "nearest_train.csv", [
        {"index": index, "class": names[label], "distance": f"{float(distance):.6g}",
         "train_index": int(where), "train_class": names[int(data.train_y[where])]}
        for index, (label, distance, where) in enumerate(zip(
            labels.tolist(), found.distances, found.indices.tolist(), strict=True))])
    shown = _first_per_class(labels, GRID_PER_CLASS)
    rows: dict[str, tuple] = {}
    one_row = len(shown) <= GRID_PER_CLASS  # one image per class: a single pair of rows
    groups = [shown] if one_row else [shown[labels[shown] == c] for c in labels[shown].unique()]
    for group in groups:
        suffix = "" if one_row else f" ({names[int(labels[group[0]])]})"
        rows[f"synthetic{suffix}"] = (images[group], [names[int(labels[i])] for i in group])
        where = found.indices[group]
        rows[f"nearest train{suffix}"] = (
            data.train_x[where],
            [f"d={float(found.distances[i]):.2f}" for i in group])
    figures.add("privacy/nearest_training_images.png", "image_rows",
                rows={label: (_pixels(images), names) for label, (images, names) in rows.items()},
                title=f"Nearest training images (distance ratio {privacy.ratio:.2f}): {title}")


def _per_class_models(result: RunResult) -> tuple[str, ...]:
    """The models evaluated on the test set (none when a student from a file has no test set)."""
    return tuple(name for name in PER_CLASS_MODELS + ("baseline_student", "compressed")
                 if name in result.evaluations)


def run_metrics(result: RunResult, per_class: bool = False) -> dict[str, float]:
    """The run's metrics; ``per_class``: also every model's per-class scores (always in the
    run's ``metrics/*_per_class.csv`` tables)."""
    metrics: dict[str, float] = {}
    for model, evaluation in result.evaluations.items():
        metrics[keys.accuracy(model)] = evaluation.accuracy
    metrics.update(result.view_accuracies)
    for model in _per_class_models(result) if per_class else ():
        evaluation = result.evaluations[model]
        for measure in ("precision", "recall", "f1"):
            for name, value in zip(result.class_names, getattr(evaluation, measure), strict=True):
                metrics[keys.per_class(model, measure, name)] = float(value)
    metrics[keys.measure("student", "final_loss")] = result.student_losses[-1]
    metrics[keys.measure("student", "steps")] = float(len(result.student_losses))
    for key, value in result.extraction_info.items():
        metrics[keys.extract(key)] = float(value)
    for model, count in result.parameters.items():
        metrics[keys.measure(model, "parameters")] = float(count)
    metrics[keys.SYNTHETIC_IMAGES] = float(len(result.synthetic.images))
    for stage, seconds in result.seconds.items():
        metrics[keys.stage_time(stage)] = seconds
    if result.compressed is not None:
        trainable = result.compressed.trainable_parameters
        metrics[keys.measure("compressed", "trainable_parameters")] = float(trainable)
        metrics[keys.measure("compressed", "frozen_parameters")] = float(
            result.compressed.model.rows.numel())
        metrics[keys.measure("compressed", "compression_ratio")] = (
            result.parameters["teacher"] / trainable)
        metrics[keys.measure("compressed", "final_loss")] = result.compressed.epoch_losses[-1]
    if result.swap is not None:
        swap = result.swap
        name = result.class_names[swap.base_class]
        for model in ("student", "baseline_student"):
            false_pos, false_neg = class_errors(result.evaluations[model].confusion,
                                                swap.base_class)
            metrics[keys.per_class(model, "false_positives", name)] = float(false_pos)
            metrics[keys.per_class(model, "false_negatives", name)] = float(false_neg)
        metrics[keys.measure("swap", "accuracy_change")] = (
            result.evaluations["student"].accuracy
            - result.evaluations["baseline_student"].accuracy)
        metrics[keys.measure("swap", "images")] = float(len(swap.swapped.replaced))
    if result.privacy is not None:
        metrics.update(result.privacy.metrics())
    if result.agreement is not None:
        agreed = result.agreement
        metrics[keys.SYNTHETIC_AGREEMENT] = agreed.synthetic
        metrics[keys.VIEW_AGREEMENT] = agreed.views
        metrics[keys.TEACHER_CONFIDENCE] = float(agreed.confidence.mean())
        metrics[keys.TEACHER_CONFIDENCE_MIN] = float(agreed.confidence.min())
        if per_class:
            for name, value in zip(result.class_names, agreed.confidence, strict=True):
                metrics[keys.per_class("teacher", "synthetic_confidence", name)] = float(value)
    if result.file_info is not None:
        metrics[keys.SYNTHETIC_AGREEMENT] = result.file_info["synthetic_agreement"]
        if "file_teacher_accuracy" in result.file_info:
            metrics[keys.FILE_TEACHER_ACCURACY] = result.file_info["file_teacher_accuracy"]
    return metrics


def _write_confusion_csv(path: Path, confusion, class_names: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion, strict=True):
            writer.writerow([name, *(int(count) for count in row)])


def _write_report_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _pixels(images) -> np.ndarray:
    """Images as float32 numpy, on the CPU, for the figures."""
    return images.detach().cpu().float().numpy()


def write_artifacts(result: RunResult, folder: Path, title: str) -> FigureList:
    """Write the run's tables and synthetic set under ``folder``; return its figures, to be
    drawn there (``classvis.drawing``)."""
    figures = FigureList()
    names = result.class_names
    (folder / "confusion").mkdir(parents=True, exist_ok=True)
    (folder / "metrics").mkdir(parents=True, exist_ok=True)
    highlight = result.swap.base_class if result.swap is not None else None
    for model in _per_class_models(result):
        evaluation = result.evaluations[model]
        _write_confusion_csv(folder / "confusion" / f"{model}.csv", evaluation.confusion, names)
        label = model.replace("_", " ").capitalize()
        figures.add(f"confusion/{model}.png", "confusion_figure",
                    confusion=np.asarray(evaluation.confusion), class_names=names,
                    title=f"{label} on the test set (accuracy {evaluation.accuracy:.2%})",
                    highlight=highlight if model in ("student", "baseline_student") else None)
        _write_report_csv(folder / "metrics" / f"{model}_per_class.csv",
                          evaluation.per_class(names))
    if result.agreement is not None:
        _write_report_csv(folder / "metrics" / "teacher_confidence_per_class.csv",
                          result.agreement.per_class(names))
    synthetic = result.synthetic
    shown = _first_per_class(synthetic.labels, GRID_PER_CLASS)
    tile_names = [names[label] for label in synthetic.labels[shown].tolist()]
    if result.swap is not None:
        origin = result.swap.swapped.origin
        tile_names = [f"{name} ({origin[i]})" if origin[i] != "base" else name
                      for name, i in zip(tile_names, shown.tolist(), strict=True)]
    more = "" if len(shown) == len(synthetic.images) else (
        f" (first {GRID_PER_CLASS} of {len(synthetic.images) // len(names)} per class)")
    figures.add("visualizations.png", "image_grid", images=_pixels(synthetic.images[shown]),
                titles=tile_names, title=f"Synthetic training set{more}: {title}")
    if result.swap is not None:
        _write_swap_figures(result, folder, title, figures)
    if result.privacy is not None:
        _write_privacy(result, folder, title, figures)
    if _per_class_models(result):
        figures.add("f1_comparison.png", "f1_comparison_figure", class_names=names,
                    f1_by_model={model.replace("_", " "): np.asarray(result.evaluations[model].f1)
                                 for model in _per_class_models(result)},
                    title=f"Per-class F1, teacher vs student: {title}")
    synthetic.save(folder / keys.SYNTHETIC_SET_ARTIFACT)
    return figures
