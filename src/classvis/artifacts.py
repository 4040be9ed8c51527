"""What a finished run leaves behind, as plain values and files (the tracking layer logs them).

Metric keys are fixed so that reports and tools can rely on them:
``teacher/accuracy``, ``student/accuracy``, ``untrained/accuracy`` and, per class,
``{teacher,student}/{precision,recall,f1}/<class>`` (fractions, not percent).
"""

from __future__ import annotations

import csv
from pathlib import Path

from classvis import plots
from classvis.pipeline import RunResult
from classvis.track import metric_key

MODELS = ("teacher", "student", "untrained")
PER_CLASS_MODELS = ("teacher", "student")


def run_metrics(result: RunResult) -> dict[str, float]:
    metrics: dict[str, float] = {}
    names = [metric_key(name) for name in result.data.class_names]
    for model in MODELS:
        metrics[f"{model}/accuracy"] = result.evaluations[model].accuracy
    for model in PER_CLASS_MODELS:
        evaluation = result.evaluations[model]
        for measure in ("precision", "recall", "f1"):
            for name, value in zip(names, getattr(evaluation, measure)):
                metrics[f"{model}/{measure}/{name}"] = float(value)
    metrics["student/final_loss"] = result.student_losses[-1]
    metrics["student/steps"] = float(len(result.student_losses))
    for key, value in result.extraction_info.items():
        metrics[f"extract/{key}"] = float(value)
    for model, count in result.parameters.items():
        metrics[f"{model}/parameters"] = float(count)
    metrics["synthetic/images"] = float(len(result.synthetic.images))
    for stage, seconds in result.seconds.items():
        metrics[f"time/{stage}"] = seconds
    return metrics


def _write_confusion_csv(path: Path, confusion, class_names: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion):
            writer.writerow([name, *(int(count) for count in row)])


def _write_report_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_artifacts(result: RunResult, folder: Path, title: str) -> list[Path]:
    """Write the run's figures, tables and synthetic set under ``folder``; return the files."""
    names = result.data.class_names
    (folder / "confusion").mkdir(parents=True, exist_ok=True)
    (folder / "metrics").mkdir(parents=True, exist_ok=True)
    for model in PER_CLASS_MODELS:
        evaluation = result.evaluations[model]
        _write_confusion_csv(folder / "confusion" / f"{model}.csv", evaluation.confusion, names)
        plots.save(plots.confusion_figure(
            evaluation.confusion, names,
            f"{model.capitalize()} on the test set (accuracy {evaluation.accuracy:.2%})"),
            folder / "confusion" / f"{model}.png")
        _write_report_csv(folder / "metrics" / f"{model}_per_class.csv",
                          evaluation.per_class(names))
    synthetic = result.synthetic
    tile_names = [names[label] for label in synthetic.labels.tolist()]
    plots.save(plots.image_grid(synthetic.images, tile_names, f"Synthetic training set: {title}"),
               folder / "visualizations.png")
    plots.save(plots.f1_comparison_figure(
        names, {"teacher": result.evaluations["teacher"].f1,
                "student": result.evaluations["student"].f1},
        f"Per-class F1, teacher vs student: {title}"), folder / "f1_comparison.png")
    synthetic.save(folder / "synthetic_set.safetensors")
    return sorted(path for path in folder.rglob("*") if path.is_file())
