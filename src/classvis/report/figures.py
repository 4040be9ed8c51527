"""The report's figures: per-class F1 of Table 5's models (the paper's Figures 4, 6, 8 and 10)
and accuracy against the number of synthetic images."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from classvis import runkeys as keys
from classvis.report.cells import metric_values
from classvis.report.labels import setting_label
from classvis.report.runs import (
    DATASET_TITLES,
    RunRecord,
    is_table5_run,
    latest_runs_by,
    ordered_datasets,
    per_class_runs,
)
from classvis.report.table5 import TABLE5_COLUMNS, runs_of_column, split_by_recipe


def f1_figures(runs: list[RunRecord], folder: Path) -> list[Path]:
    """Per dataset: per-class F1 of the teacher and of each Table 5 student (the paper's
    Figures 4, 6, 8 and 10), averaged over seeds."""
    # matplotlib (0.6 s to import) only where a figure is drawn: a sweep's parent imports the
    # report package for its table
    from classvis import plots

    written = []
    for dataset in ordered_datasets({r.tags[keys.DATASET] for r in runs if keys.DATASET in r.tags}):
        dataset_runs = [r for r in runs if r.tags.get(keys.DATASET) == dataset
                        and is_table5_run(r) and keys.tag_of(r.tags, keys.CLASS_NAMES)]
        if not dataset_runs:
            continue
        names = json.loads(keys.tag_of(dataset_runs[-1].tags, keys.CLASS_NAMES) or "[]")
        series: dict[str, np.ndarray] = {}

        def mean_f1(chosen: list[RunRecord], model: str, names: list[str] = names
                    ) -> np.ndarray | None:
            rows = [[r.metrics.get(keys.per_class(model, "f1", name), np.nan) for name in names]
                    for r in chosen]
            return np.nanmean(np.array(rows), axis=0) if rows else None

        for column, selector in TABLE5_COLUMNS.items():
            _, chosen, _ = split_by_recipe(runs_of_column(dataset_runs, selector),
                                       teacher_only=selector is None)
            if selector is None:
                values = mean_f1(chosen, "teacher")
                label = "Teacher (trainset)"
            else:
                values = mean_f1(chosen, "student")
                label = column
            if values is not None:
                series[label] = values
        path = folder / f"f1_{dataset}.png"
        plots.save(plots.f1_comparison_figure(
            names, series, f"Per-class F1 on {DATASET_TITLES.get(dataset, dataset)}"), path)
        written.append(path)
    return written


def accuracy_vs_images_figures(runs: list[RunRecord], folder: Path) -> list[Path]:
    """Accuracy against the number of synthetic images, one figure per (dataset, teacher,
    student) with at least two image counts, the teacher as a horizontal line. One student line
    (and one compressed line) joins the counts; when some count was run with several extractor
    settings or student recipes, each setting gets its own lines instead, named by it."""
    from classvis import plots

    chosen = [r for r in per_class_runs(runs) if keys.SWAP not in r.tags
              and keys.SYNTHETIC_IMAGES in r.metrics]
    written = []
    series_keys = sorted({(r.tags.get(keys.DATASET, ""), r.tags.get(keys.TEACHER, ""),
                           r.tags.get(keys.STUDENT, "")) for r in chosen})
    for dataset, teacher, student in series_keys:
        group = [r for r in chosen if (r.tags.get(keys.DATASET, ""), r.tags.get(keys.TEACHER, ""),
                                       r.tags.get(keys.STUDENT, "")) == (dataset, teacher, student)]
        cells = latest_runs_by(group, lambda r: (int(r.metrics[keys.SYNTHETIC_IMAGES]),
                                                 setting_label(r.tags)))
        counts = sorted({count for count, _ in cells})
        if len(counts) < 2:
            continue
        one_setting_per_count = len(cells) == len(counts)
        lines: dict[str, dict[int, list[RunRecord]]] = defaultdict(dict)
        for (count, label), cell in cells.items():
            lines["" if one_setting_per_count else label][count] = cell
        curves: dict[str, tuple[list[int], list[float]]] = {}
        for label, points in sorted(lines.items()):
            suffix = f"; {label}" if label else ""
            line_counts = sorted(points)
            curves[f"student ({student}{suffix})"] = (line_counts, [
                statistics.fmean(metric_values(points[c], keys.accuracy("student")))
                for c in line_counts])
            compressed = [metric_values(points[c], keys.accuracy("compressed"))
                          for c in line_counts]
            if all(compressed):
                curves[f"compressed (frozen rows, biases trained{suffix})"] = (
                    line_counts, [statistics.fmean(v) for v in compressed])
        teacher_accuracy = statistics.fmean(metric_values(group, keys.accuracy("teacher")))
        path = folder / f"accuracy_vs_images_{dataset}_{teacher}_{student}.png"
        plots.save(plots.accuracy_vs_images_figure(
            curves, teacher_accuracy, f"teacher ({teacher})",
            f"{DATASET_TITLES.get(dataset, dataset)}: accuracy vs synthetic images"), path)
        written.append(path)
    return written
