"""MLflow runs -> the paper's Table 5 and per-class F1 figures.

    python -m classvis.report --experiment table5     (or: classvis-report --experiment table5)

Rows and columns come from run tags (dataset, extractor, teacher, student, seed), never from run
names or order. Several seeds give mean and standard deviation; a missing cell is listed, not
fatal. The files are written to ``--output`` and logged as artifacts of a summary run in the
same experiment, so the MLflow UI shows them next to the runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPORT_KIND = "report"
DATASET_TITLES = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                  "cifar10_jpg": "CIFAR-10 (JPEG)", "digits": "Digits (8x8)"}
# column -> (extractor, student) of its runs; "Trainset" is the teachers' own accuracy
TABLE5_COLUMNS = {
    "Trainset": None,
    "Class Vis.": ("class_vis", "linear"),
    "Class Vis. Deeper": ("class_vis", "mlp30"),
    "Avg. Images": ("class_average", "linear"),
    "Output W's": ("output_weights", "linear"),
}
TABLE5_TEACHER = "linear"


@dataclass
class RunRecord:
    run_id: str
    start_time: int
    tags: dict[str, str]
    metrics: dict[str, float]


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # one per seed, fractions
    recipe: str = ""                                    # what its runs changed (_one_recipe)

    @property
    def text(self) -> str:
        if not self.values:
            return "-"
        mean = 100 * statistics.fmean(self.values)
        if len(self.values) == 1:
            return f"{mean:.2f}"
        return f"{mean:.2f} ± {100 * statistics.stdev(self.values):.2f}"


@dataclass
class Table:
    columns: list[str]
    rows: dict[str, dict[str, Cell]]        # dataset -> column -> cell
    missing: list[str]
    teachers: dict[str, dict[str, int]]     # dataset -> {"trained": n, "cache": n, "teachers": n}
    # cells also run with other settings, not in the table: (dataset, column, cell)
    others: list[tuple[str, str, Cell]] = field(default_factory=list)

    def markdown(self) -> str:
        header = "| Dataset | " + " | ".join(self.columns) + " |"
        rule = "|---|" + "---:|" * len(self.columns)
        lines = [header, rule]
        for dataset, cells in self.rows.items():
            title = DATASET_TITLES.get(dataset, dataset)
            lines.append(f"| {title} | " + " | ".join(cells[c].text for c in self.columns) + " |")
        return "\n".join(lines)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["dataset", "column", "mean_percent", "std_percent", "seeds",
                             "recipe", "in_table"])
            listed = [(dataset, column, cells[column], True)
                      for dataset, cells in self.rows.items() for column in self.columns]
            listed += [(dataset, column, cell, False) for dataset, column, cell in self.others]
            for dataset, column, cell, in_table in listed:
                values = cell.values
                mean = f"{100 * statistics.fmean(values):.2f}" if values else ""
                std = f"{100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
                writer.writerow([dataset, column, mean, std, len(values), cell.recipe,
                                 "yes" if in_table else "no"])


def fetch_runs(client, experiment_id: str) -> list[RunRecord]:
    """Every FINISHED experiment run (summary runs excluded), following MLflow's pagination."""
    records, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=1000, page_token=token)
        for run in page:
            if run.data.tags.get("classvis.kind") == REPORT_KIND:
                continue
            records.append(RunRecord(run.info.run_id, run.info.start_time, dict(run.data.tags),
                                     dict(run.data.metrics)))
        token = page.token
        if not token:
            return records


def _latest_per_seed(runs: list[RunRecord]) -> list[RunRecord]:
    """One run per seed: a re-run of the same cell replaces the earlier one."""
    latest: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        latest[run.tags.get("seed", "")] = run
    return [latest[seed] for seed in sorted(latest)]


def _dataset_order(datasets) -> list[str]:
    known = [name for name in DATASET_TITLES if name in datasets]
    return known + sorted(set(datasets) - set(known))


def is_table5_run(run: RunRecord) -> bool:
    """A run of the paper's Table 5 protocol: linear teacher on all classes of a dataset, one
    image per class, no swap or compression stage."""
    tags = run.tags
    return (tags.get("teacher") == TABLE5_TEACHER and "dataset" in tags
            and tags.get("per_class", "1") == "1"
            and not any(key in tags for key in ("swap", "classes", "one_vs_rest", "compress",
                                                "synthetic_file")))


def _one_recipe(runs: list[RunRecord], teacher_only: bool = False
                ) -> tuple[str, list[RunRecord], dict[str, list[RunRecord]]]:
    """Split one cell's runs by what they changed from their preset's defaults (the teacher
    recipe, and for the student columns also the extractor's settings and the student recipe),
    so that no mean mixes seeds trained different ways. Returns the setting shown in the table
    (the one with the most seeds; on a tie, the defaults, or else the one run last), its runs
    (the latest per seed), and every other setting's runs."""
    kinds = ("teacher",) if teacher_only else ("extractor", "teacher", "student")
    latest = {label: group for (label,), group in
              _group(runs, lambda r: (variants_label(r.tags, kinds),)).items()}
    if not latest:
        return "", [], {}
    shown = max(latest, key=lambda label: (len(latest[label]), label == "",
                                           max(r.start_time for r in latest[label])))
    return shown, latest[shown], {label: group for label, group in latest.items()
                                  if label != shown}


def _cell_runs(dataset_runs: list[RunRecord], selector) -> list[RunRecord]:
    if selector is None:
        return dataset_runs
    return [r for r in dataset_runs if (r.tags.get("extractor"), r.tags.get("student")) == selector]


def table5(runs: list[RunRecord]) -> Table:
    by_dataset: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if is_table5_run(run):
            by_dataset[run.tags["dataset"]].append(run)
    rows, missing, teachers, others = {}, [], {}, []
    for dataset in _dataset_order(by_dataset):
        dataset_runs = by_dataset[dataset]
        cells: dict[str, Cell] = {}
        for column, selector in TABLE5_COLUMNS.items():
            # the Trainset column is the teachers' own accuracy, once per seed
            metric = "teacher/accuracy" if selector is None else "student/accuracy"
            shown, chosen, rest = _one_recipe(_cell_runs(dataset_runs, selector),
                                              teacher_only=selector is None)
            cells[column] = Cell([r.metrics[metric] for r in chosen if metric in r.metrics],
                                 shown)
            for label, group in sorted(rest.items()):
                others.append((dataset, column, Cell(
                    [r.metrics[metric] for r in group if metric in r.metrics], label)))
            if not chosen:
                extractor, student = selector
                missing.append(f"{DATASET_TITLES.get(dataset, dataset)} / {column}: no "
                               f"FINISHED run with extractor={extractor}, student={student}, "
                               f"teacher={TABLE5_TEACHER}")
        rows[dataset] = cells
        sources = [r.tags.get("teacher_source", "trained") for r in dataset_runs]
        teachers[dataset] = {"runs": len(dataset_runs), "trained": sources.count("trained"),
                             "cache": sources.count("cache"),
                             "teachers": len({r.tags.get("teacher_key", r.run_id)
                                              for r in dataset_runs})}
    return Table(list(TABLE5_COLUMNS), rows, missing, teachers, others)


def f1_figures(runs: list[RunRecord], folder: Path) -> list[Path]:
    """Per dataset: per-class F1 of the teacher and of each Table 5 student (the paper's
    Figures 4, 6, 8 and 10), averaged over seeds."""
    from classvis import plots
    from classvis.track import metric_key

    written = []
    for dataset in _dataset_order({r.tags.get("dataset") for r in runs} - {None}):
        dataset_runs = [r for r in runs if r.tags.get("dataset") == dataset
                        and is_table5_run(r) and "class_names" in r.tags]
        if not dataset_runs:
            continue
        names = json.loads(dataset_runs[-1].tags["class_names"])
        series: dict[str, np.ndarray] = {}

        def mean_f1(chosen: list[RunRecord], model: str) -> np.ndarray | None:
            rows = [[r.metrics.get(f"{model}/f1/{metric_key(name)}", np.nan) for name in names]
                    for r in chosen]
            return np.nanmean(np.array(rows), axis=0) if rows else None

        for column, selector in TABLE5_COLUMNS.items():
            _, chosen, _ = _one_recipe(_cell_runs(dataset_runs, selector),
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


def _percent(values: list[float]) -> str:
    return Cell(values).text


def _mean_metric(runs: list[RunRecord], key: str) -> list[float]:
    return [r.metrics[key] for r in runs if key in r.metrics]


def _is_number(cell: str) -> bool:
    """A numeric cell (``92.27``, ``92.27 ± 0.17``, ``2386x``, ``1,000``, ``-``): right-aligned."""
    text = cell.replace("±", " ").replace(",", "").rstrip("x").split()
    try:
        return all(part == "-" or float(part) is not None for part in text)
    except ValueError:
        return False


def _markdown_rows(header: list[str], rows: list[list[str]]) -> str:
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(header))]
    rule = "|" + "".join("---:|" if is_numeric else "---|" for is_numeric in numeric)
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _group(runs: list[RunRecord], key) -> dict[tuple, list[RunRecord]]:
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return {k: _latest_per_seed(v) for k, v in groups.items()}


@dataclass
class Section:
    slug: str      # file name: <slug>.csv
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", _markdown_rows(self.header, self.rows)]
        if self.notes:
            parts += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.header)
            writer.writerows(self.rows)


def section8(runs: list[RunRecord]) -> Section | None:
    """Class subsets, one-vs-rest teachers and the swap experiment (the paper's Section 8)."""
    chosen = [r for r in runs if any(k in r.tags for k in ("swap", "classes", "one_vs_rest"))]
    if not chosen:
        return None
    from classvis.track import metric_key

    rows = []
    groups = _group(chosen, lambda r: (r.tags.get("dataset", ""), _task(r.tags),
                                       teacher_label(r.tags), r.tags.get("student", "")))
    for (dataset, task, teacher, student), group in sorted(groups.items()):
        tags = group[-1].tags
        row = [DATASET_TITLES.get(dataset, dataset), task, teacher, student,
               _percent(_mean_metric(group, "teacher/accuracy")),
               _percent(_mean_metric(group, "student/accuracy"))]
        one_vs_rest_model = "donor_teacher" if tags.get("swap") else "teacher"
        row += [_percent(_mean_metric(group, f"{one_vs_rest_model}/{view}_test_accuracy"))
                for view in ("full", "balanced")]
        if tags.get("swap"):
            name = metric_key(tags.get("swap.class", ""))
            row += [_percent(_mean_metric(group, "donor_teacher/accuracy")),
                    _percent(_mean_metric(group, "baseline_student/accuracy")),
                    _count(group, f"student/false_positives/{name}"),
                    _count(group, f"baseline_student/false_positives/{name}"),
                    _count(group, f"student/false_negatives/{name}"),
                    _count(group, f"baseline_student/false_negatives/{name}")]
        else:
            row += ["-"] * 6
        rows.append(row)
    header = ["Dataset", "Task", "Teacher", "Student", "Teacher acc.", "Student acc.",
              "One-vs-rest teacher (full test)", "One-vs-rest teacher (balanced test)",
              "Donor teacher acc.", "Unswapped student acc.", "FP (swapped)", "FP (unswapped)",
              "FN (swapped)", "FN (unswapped)"]
    notes = ["FP / FN: false positives / negatives of the swapped class on the test set, for the "
             "student trained on the swapped set and for the same student on the unswapped set.",
             "Subset and one-vs-rest rows: the donor teachers themselves, retrained from their own "
             "visualizations (accuracy on their own test sets).",
             "One-vs-rest teacher: the one-vs-rest teacher (of the row, or the swap's donor) on "
             "the whole test set relabelled, and on its balanced subset (as many negatives as "
             "positives, drawn with the seed). Balanced: which sets kept only as many negatives "
             "as positives (dataset.one_vs_rest_balance)."]
    return Section("section8", "Section 8: other classes shape a visualization (test accuracy %)",
                   header, rows, notes)


def _count(runs: list[RunRecord], key: str, digits: int = 0) -> str:
    """The mean of a metric over runs, with ``digits`` decimals; ``-`` if no run has it."""
    values = _mean_metric(runs, key)
    return f"{statistics.fmean(values):.{digits}f}" if values else "-"


def _per_class_runs(runs: list[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if "synthetic_file" not in r.tags and (
        r.tags.get("teacher") != TABLE5_TEACHER or r.tags.get("per_class", "1") != "1"
        or "compress" in r.tags)]


CONV_ARCHITECTURES = ("lenet5", "convnet", "resnet18")


def is_deep_run(run: RunRecord) -> bool:
    """A run of a convolutional teacher, or of the real-image baseline (the deep section's)."""
    return (run.tags.get("teacher", "").startswith(CONV_ARCHITECTURES)
            or run.tags.get("extractor") == "real_subset")


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    text = f"{100 * statistics.fmean(values):.2f}"
    return text + (f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else "")


def deep(runs: list[RunRecord]) -> Section | None:
    """Data-free distillation of convolutional teachers: per dataset, teacher, student and k, the
    student from k class visualizations per class against the student from k random real
    training images per class (both with the teacher's logits), means ± sd over seeds."""
    chosen = [r for r in runs if is_deep_run(r) and "swap" not in r.tags
              and "synthetic_file" not in r.tags]
    if not chosen:
        return None
    groups = _group(chosen, lambda r: (r.tags.get("dataset", ""), r.tags.get("teacher", ""),
                                       r.tags.get("student", ""),
                                       int(r.tags.get("per_class", "1") or 1),
                                       r.tags.get("extractor") == "real_subset"))
    rows = []
    for (dataset, teacher, student, k) in sorted({key[:4] for key in groups}):
        synthetic = groups.get((dataset, teacher, student, k, False), [])
        real = groups.get((dataset, teacher, student, k, True), [])
        group = synthetic + real
        ours = _mean_metric(synthetic, "student/accuracy")
        baseline = _mean_metric(real, "student/accuracy")
        gap = (f"{100 * (statistics.fmean(ours) - statistics.fmean(baseline)):+.2f}"
               if ours and baseline else "-")
        settings = sorted({extractor_label(r.tags) for r in synthetic})
        rows.append([DATASET_TITLES.get(dataset, dataset), teacher, student, str(k),
                     _count(group, "synthetic/images"),
                     _mean_sd(_mean_metric(synthetic or real, "teacher/accuracy")), _mean_sd(ours),
                     _mean_sd(baseline), gap, "; ".join(settings) or "-",
                     str(len(synthetic or real))])
    header = ["Dataset", "Teacher", "Student", "Per class", "Images", "Teacher acc.",
              "Student (class visualizations)", "Student (real images)", "Difference",
              "Extractor", "Seeds"]
    return Section("deep", "Data-free distillation of a deep teacher (test accuracy %)", header,
                   rows, ["Student (real images): the same number of random real training images "
                          "per class, with the teacher's logits as targets (extractor "
                          "real_subset): what a synthetic set of that size must beat.",
                          "Means ± standard deviations over seeds."])


def section10(runs: list[RunRecord]) -> Section | None:
    """Students and compressed models from k images per class (the paper's Section 10 and
    beyond it), one row per dataset, teacher, student and k."""
    chosen = [r for r in _per_class_runs(runs) if "swap" not in r.tags and not is_deep_run(r)]
    if not chosen:
        return None
    groups = _group(chosen, lambda r: (r.tags.get("dataset", ""), r.tags.get("teacher", ""),
                                       r.tags.get("student", ""), extractor_label(r.tags),
                                       int(r.tags.get("per_class", "1") or 1),
                                       recipe_label(r.tags)))
    # name the training recipe only where one cell was trained with several recipes
    recipes = Counter(key[:5] for key in groups)
    rows = []
    for (dataset, teacher, student, extractor, k, recipe), group in sorted(groups.items()):
        ratio = _mean_metric(group, "compressed/compression_ratio")
        if recipes[(dataset, teacher, student, extractor, k)] > 1:
            student = f"{student} ({recipe or 'paper recipe'})"
        rows.append([DATASET_TITLES.get(dataset, dataset), teacher, extractor, str(k),
                     _count(group, "synthetic/images"), student,
                     _percent(_mean_metric(group, "teacher/accuracy")),
                     _percent(_mean_metric(group, "student/accuracy")),
                     _percent(_mean_metric(group, "compressed/accuracy")),
                     _count(group, "teacher/parameters"),
                     _count(group, "compressed/trainable_parameters"),
                     f"{statistics.fmean(ratio):.0f}x" if ratio else "-"])
    header = ["Dataset", "Teacher", "Extractor", "Per class", "Images", "Student",
              "Teacher acc.", "Student acc.", "Compressed acc.", "Teacher params",
              "Compressed trainable params", "Ratio"]
    return Section("section10", "Section 10 and k images per class (test accuracy %)", header, rows,
                   ["Compressed: a model without hidden layers whose frozen weight rows are the "
                    "images; only its biases are trained on the real training set."])


def _with_variant(tags: dict[str, str], kind: str) -> str:
    variant = tags.get(f"{kind}_variant")
    return tags.get(kind, "") + (f" ({variant})" if variant else "")


def extractor_label(tags: dict[str, str]) -> str:
    """The extractor and, when they differ from its defaults, its settings: ``class_vis
    (diversity=100.0)``. Runs of one extractor with other settings are other synthetic sets."""
    return _with_variant(tags, "extractor")


def teacher_label(tags: dict[str, str]) -> str:
    """The teacher's architecture and, when it is not the paper's, its training recipe."""
    return _with_variant(tags, "teacher")


def variants_label(tags: dict[str, str], kinds: tuple[str, ...]) -> str:
    """What the runs changed from the defaults, for ``kinds`` (of extractor, teacher, student):
    ``teacher epochs=2; student lr=0.001``; empty for the defaults."""
    return "; ".join(f"{kind} {tags[f'{kind}_variant']}" for kind in kinds
                     if tags.get(f"{kind}_variant"))


def recipe_label(tags: dict[str, str]) -> str:
    """The training recipes that differ from the paper's; empty for the paper's."""
    return variants_label(tags, ("teacher", "student"))


def setting_label(tags: dict[str, str]) -> str:
    """The extractor label, plus the training recipes where they are not the paper's."""
    recipe = recipe_label(tags)
    return extractor_label(tags) + (f"; {recipe}" if recipe else "")


BALANCE_TASK = {"none": "all images", "train": "balanced train set",
                "train_and_test": "balanced"}


def _balance(tags: dict[str, str]) -> str:
    # runs made before the tag existed balanced both sets
    return BALANCE_TASK.get(tags.get("one_vs_rest_balance", "train_and_test"), "?")


def _task(tags: dict[str, str]) -> str:
    if tags.get("swap"):
        details = [_balance(tags)] if tags["swap"].endswith("-vs-rest") else []
        if tags.get("swap.targets") == "teacher":
            details.append("base teacher's targets")
        return f"10-class set, {tags['swap']}" + (f" ({', '.join(details)})" if details else "")
    if tags.get("classes"):
        return "classes " + ", ".join(json.loads(tags["classes"]))
    if tags.get("one_vs_rest"):
        return f"{tags['one_vs_rest']} vs rest ({_balance(tags)})"
    return "all classes"


def privacy(runs: list[RunRecord]) -> Section | None:
    """How close each synthetic set is to the training records: one row per dataset, task,
    teacher, extractor and images per class (the student does not change the set)."""
    chosen = [r for r in runs if "privacy/distance_ratio" in r.metrics]
    if not chosen:
        return None

    groups = _group(chosen, lambda r: (r.tags.get("dataset", ""), _task(r.tags),
                                       teacher_label(r.tags), extractor_label(r.tags),
                                       int(r.tags.get("per_class", "1") or 1)))
    rows = []
    for (dataset, task, teacher, extractor, k), group in sorted(groups.items()):
        rows.append([DATASET_TITLES.get(dataset, dataset), task, teacher, extractor, str(k),
                     _count(group, "synthetic/images")]
                    + [_count(group, f"privacy/{key}", digits=2) for key in (
                        "nn_distance_median", "nn_distance_min", "test_nn_distance_median",
                        "distance_ratio", "nndr_median", "test_nndr_median")]
                    + [_count(group, "privacy/distinct_nearest")])
    header = ["Dataset", "Task", "Teacher", "Extractor", "Per class", "Images",
              "Synthetic -> train (median)", "Synthetic -> train (min)",
              "Test -> train (median)", "Ratio", "NNDR", "Test NNDR", "Distinct nearest"]
    return Section("privacy", "Privacy: distance to the nearest training image (pixel space, L2)",
                   header, rows,
                   ["Ratio: median distance from a synthetic image to its nearest training image "
                    "over the same median for real test images. About 0: copies of training "
                    "images; about 1: as close as fresh real data; above 1: further from every "
                    "training record than real data is.",
                    "NNDR: median over the synthetic images of nearest / second-nearest training "
                    "distance (Test NNDR: the same for the test images). About 0: each image "
                    "copies one record; about 1: no record is singled out. Distance alone "
                    "misleads for dim, low-contrast images: they lie near the dimmest training "
                    "images (Distinct nearest: how many different training images are nearest).",
                    "Several seeds: means over seeds."])


def per_class_figure(runs: list[RunRecord], folder: Path) -> list[Path]:
    """Accuracy against the number of synthetic images, one figure per (dataset, teacher,
    student) with at least two image counts, the teacher as a horizontal line. One student line
    (and one compressed line) joins the counts; when some count was run with several extractor
    settings or student recipes, each setting gets its own lines instead, named by it."""
    from classvis import plots

    chosen = [r for r in _per_class_runs(runs) if "swap" not in r.tags
              and "synthetic/images" in r.metrics]
    written = []
    series_keys = sorted({(r.tags.get("dataset", ""), r.tags.get("teacher", ""),
                           r.tags.get("student", "")) for r in chosen})
    for dataset, teacher, student in series_keys:
        group = [r for r in chosen if (r.tags.get("dataset", ""), r.tags.get("teacher", ""),
                                       r.tags.get("student", "")) == (dataset, teacher, student)]
        cells = _group(group, lambda r: (int(r.metrics["synthetic/images"]), setting_label(r.tags)))
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
                statistics.fmean(_mean_metric(points[c], "student/accuracy"))
                for c in line_counts])
            compressed = [_mean_metric(points[c], "compressed/accuracy") for c in line_counts]
            if all(compressed):
                curves[f"compressed (frozen rows, biases trained{suffix})"] = (
                    line_counts, [statistics.fmean(v) for v in compressed])
        teacher_accuracy = statistics.fmean(_mean_metric(group, "teacher/accuracy"))
        path = folder / f"accuracy_vs_images_{dataset}_{teacher}_{student}.png"
        plots.save(plots.accuracy_vs_images_figure(
            curves, teacher_accuracy, f"teacher ({teacher})",
            f"{DATASET_TITLES.get(dataset, dataset)}: accuracy vs synthetic images"), path)
        written.append(path)
    return written


def write_report(table: Table, runs: list[RunRecord], folder: Path,
                 sections: list[Section] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sections = sections or []
    (folder / "report.md").write_text(_markdown_document(table, sections))
    files = [folder / "report.md"]
    if table.rows or not sections:
        (folder / "table5.md").write_text(_markdown_document(table, []))
        table.write_csv(folder / "table5.csv")
        files += [folder / "table5.md", folder / "table5.csv", *f1_figures(runs, folder)]
    for section in sections:
        section.write_csv(folder / f"{section.slug}.csv")
        files.append(folder / f"{section.slug}.csv")
    files += per_class_figure(runs, folder)
    return files


def _markdown_document(table: Table, sections: list[Section] | None = None) -> str:
    sections = sections or []
    if sections and not table.rows:
        return "\n\n".join(section.markdown() for section in sections) + "\n"
    lines = ["# Table 5: test accuracy (%)", "", table.markdown(), ""]
    lines.append("Teachers (from the runs' `teacher_source` tags):")
    for dataset, counts in table.teachers.items():
        lines.append(f"- {DATASET_TITLES.get(dataset, dataset)}: {counts['runs']} runs, "
                     f"{counts['teachers']} distinct teacher(s), trained {counts['trained']} "
                     f"time(s), reused from the cache {counts['cache']} time(s)")
    if table.missing:
        lines += ["", "Missing cells:"] + [f"- {item}" for item in table.missing]
    if table.others:
        lines += ["", ("Cells also run with other settings (not in the table, which shows one "
                       "setting per cell: the one with the most seeds; on a tie the defaults, or "
                       "else the latest):")]
        for dataset, column, cell in table.others:
            shown = table.rows[dataset][column]
            seeds = len(cell.values)
            lines.append(f"- {DATASET_TITLES.get(dataset, dataset)} / {column}: "
                         f"{cell.recipe or 'defaults'}: {cell.text} ({seeds} "
                         f"seed{'s' if seeds != 1 else ''}); in the table: "
                         f"{shown.recipe or 'defaults'}")
    for section in sections:
        lines += ["", section.markdown()]
    return "\n".join(lines) + "\n"


def log_summary_run(client, experiment_id: str, files: list[Path], title: str) -> str:
    """Log the report's files into the experiment's summary run (created once, then updated)."""
    existing = client.search_runs([experiment_id], filter_string="tags.`classvis.kind` = 'report'",
                                  max_results=1)
    if existing:
        run_id = existing[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = client.create_run(experiment_id, run_name=title,
                                   tags={"classvis.kind": REPORT_KIND}).info.run_id
    with tempfile.TemporaryDirectory() as staging:
        for path in files:
            target = Path(staging) / path.name
            target.write_bytes(path.read_bytes())
        client.log_artifacts(run_id, staging, artifact_path="report")
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classvis-report", description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 "sqlite:///mlflow.db"),
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                             "sqlite:///mlflow.db in this directory)")
    parser.add_argument("--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME",
                                                               "classvis"),
                        help="MLflow experiment to read (default: $MLFLOW_EXPERIMENT_NAME or "
                             "classvis)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the files (default: reports/<experiment>)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the report to a summary run in MLflow")
    args = parser.parse_args(argv)

    import mlflow

    from classvis.track import absolute_uri

    uri = absolute_uri(args.tracking_uri, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        print(f"classvis-report: error: --tracking-uri: no MLflow store at {uri}", file=sys.stderr)
        return 2
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        names = ", ".join(e.name for e in client.search_experiments())
        print(f"classvis-report: error: --experiment: no experiment {args.experiment!r} in {uri} "
              f"(there are: {names})", file=sys.stderr)
        return 2
    runs = fetch_runs(client, experiment.experiment_id)
    table = table5(runs)
    sections = [section for section in (section8(runs), section10(runs), deep(runs),
                                        privacy(runs))
                if section is not None]
    output = args.output or Path("reports") / args.experiment
    files = write_report(table, runs, output, sections)
    print(_markdown_document(table, sections))
    print(f"written: {', '.join(str(path) for path in files)}")
    if not args.no_log:
        title = "report: Table 5" if table.rows or not sections else "report"
        run_id = log_summary_run(client, experiment.experiment_id, files, title)
        print(f"logged to MLflow run {run_id} (experiment {args.experiment!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
