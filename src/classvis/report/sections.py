"""The report's sections beyond Table 5: Section 8, Section 10 and k per class, deep teachers
against real-image baselines, and privacy. Each returns a ``Section`` or None when no run is of
its kind."""

from __future__ import annotations

import statistics
from collections import Counter

from classvis import runkeys as keys
from classvis.report.cells import Section, mean_sd_text, mean_text, metric_values
from classvis.report.labels import extractor_label, recipe_label, task_label, teacher_label
from classvis.report.runs import (
    DATASET_TITLES,
    RunRecord,
    is_deep_run,
    latest_runs_by,
    per_class_runs,
)


def section8(runs: list[RunRecord]) -> Section | None:
    """Class subsets, one-vs-rest teachers and the swap experiment (the paper's Section 8)."""
    chosen = [r for r in runs
              if any(k in r.tags for k in (keys.SWAP, keys.CLASSES, keys.ONE_VS_REST))]
    if not chosen:
        return None
    rows = []
    groups = latest_runs_by(chosen, lambda r: (r.tags.get(keys.DATASET, ""), task_label(r.tags),
                                       teacher_label(r.tags), r.tags.get(keys.STUDENT, "")))
    for (dataset, task, teacher, student), group in sorted(groups.items()):
        tags = group[-1].tags
        row = [DATASET_TITLES.get(dataset, dataset), task, teacher, student,
               mean_sd_text(metric_values(group, keys.accuracy("teacher"))),
               mean_sd_text(metric_values(group, keys.accuracy("student")))]
        one_vs_rest_model = "donor_teacher" if tags.get(keys.SWAP) else "teacher"
        row += [mean_sd_text(metric_values(
                    group, keys.measure(one_vs_rest_model, f"{view}_test_accuracy")))
                for view in ("full", "balanced")]
        if tags.get(keys.SWAP):
            name = tags.get(keys.SWAP_CLASS, "")
            row += [mean_sd_text(metric_values(group, keys.accuracy("donor_teacher"))),
                    mean_sd_text(metric_values(group, keys.accuracy("baseline_student"))),
                    mean_text(group, keys.per_class("student", "false_positives", name)),
                    mean_text(group, keys.per_class("baseline_student", "false_positives", name)),
                    mean_text(group, keys.per_class("student", "false_negatives", name)),
                    mean_text(group, keys.per_class("baseline_student", "false_negatives", name))]
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


def section10(runs: list[RunRecord]) -> Section | None:
    """Students and compressed models from k images per class (the paper's Section 10 and
    beyond it), one row per dataset, teacher, student and k."""
    chosen = [r for r in per_class_runs(runs) if keys.SWAP not in r.tags and not is_deep_run(r)]
    if not chosen:
        return None
    groups = latest_runs_by(chosen, lambda r: (r.tags.get(keys.DATASET, ""),
                                       r.tags.get(keys.TEACHER, ""),
                                       r.tags.get(keys.STUDENT, ""), extractor_label(r.tags),
                                       int(r.tags.get(keys.PER_CLASS, "1") or 1),
                                       recipe_label(r.tags)))
    # name the training recipe only where one cell was trained with several recipes
    recipes = Counter(key[:5] for key in groups)
    rows = []
    for (dataset, teacher, student, extractor, k, recipe), group in sorted(groups.items()):
        ratio = metric_values(group, keys.measure("compressed", "compression_ratio"))
        if recipes[(dataset, teacher, student, extractor, k)] > 1:
            student = f"{student} ({recipe or 'paper recipe'})"
        rows.append([DATASET_TITLES.get(dataset, dataset), teacher, extractor, str(k),
                     mean_text(group, keys.SYNTHETIC_IMAGES), student,
                     mean_sd_text(metric_values(group, keys.accuracy("teacher"))),
                     mean_sd_text(metric_values(group, keys.accuracy("student"))),
                     mean_sd_text(metric_values(group, keys.accuracy("compressed"))),
                     mean_text(group, keys.measure("teacher", "parameters")),
                     mean_text(group, keys.measure("compressed", "trainable_parameters")),
                     f"{statistics.fmean(ratio):.0f}x" if ratio else "-"])
    header = ["Dataset", "Teacher", "Extractor", "Per class", "Images", "Student",
              "Teacher acc.", "Student acc.", "Compressed acc.", "Teacher params",
              "Compressed trainable params", "Ratio"]
    return Section("section10", "Section 10 and k images per class (test accuracy %)", header, rows,
                   ["Compressed: a model without hidden layers whose frozen weight rows are the "
                    "images; only its biases are trained on the real training set."])


def deep(runs: list[RunRecord]) -> Section | None:
    """Data-free distillation of convolutional teachers: per dataset, teacher, student and k, the
    student from k class visualizations per class against the student from k random real
    training images per class (both with the teacher's logits), means ± sd over seeds."""
    chosen = [r for r in runs if is_deep_run(r) and keys.SWAP not in r.tags
              and keys.SYNTHETIC_FILE not in r.tags]
    if not chosen:
        return None
    groups = latest_runs_by(chosen, lambda r: (r.tags.get(keys.DATASET, ""),
                                       r.tags.get(keys.TEACHER, ""),
                                       r.tags.get(keys.STUDENT, ""),
                                       int(r.tags.get(keys.PER_CLASS, "1") or 1),
                                       r.tags.get(keys.EXTRACTOR) == "real_subset"))
    rows = []
    for (dataset, teacher, student, k) in sorted({key[:4] for key in groups}):
        synthetic = groups.get((dataset, teacher, student, k, False), [])
        real = groups.get((dataset, teacher, student, k, True), [])
        group = synthetic + real
        ours = metric_values(synthetic, keys.accuracy("student"))
        baseline = metric_values(real, keys.accuracy("student"))
        gap = (f"{100 * (statistics.fmean(ours) - statistics.fmean(baseline)):+.2f}"
               if ours and baseline else "-")
        settings = sorted({extractor_label(r.tags) for r in synthetic})
        rows.append([DATASET_TITLES.get(dataset, dataset), teacher, student, str(k),
                     mean_text(group, keys.SYNTHETIC_IMAGES),
                     mean_sd_text(metric_values(synthetic or real, keys.accuracy("teacher"))),
                     mean_sd_text(ours),
                     mean_sd_text(baseline), gap, "; ".join(settings) or "-",
                     str(len(synthetic or real))])
    header = ["Dataset", "Teacher", "Student", "Per class", "Images", "Teacher acc.",
              "Student (class visualizations)", "Student (real images)", "Difference",
              "Extractor", "Seeds"]
    return Section("deep", "Data-free distillation of a deep teacher (test accuracy %)", header,
                   rows, ["Student (real images): the same number of random real training images "
                          "per class, with the teacher's logits as targets (extractor "
                          "real_subset): what a synthetic set of that size must beat.",
                          "Means ± standard deviations over seeds."])


def privacy(runs: list[RunRecord]) -> Section | None:
    """How close each synthetic set is to the training records: one row per dataset, task,
    teacher, extractor and images per class (the student does not change the set)."""
    chosen = [r for r in runs if keys.DISTANCE_RATIO in r.metrics]
    if not chosen:
        return None

    groups = latest_runs_by(chosen, lambda r: (r.tags.get(keys.DATASET, ""), task_label(r.tags),
                                       teacher_label(r.tags), extractor_label(r.tags),
                                       int(r.tags.get(keys.PER_CLASS, "1") or 1)))
    rows = []
    for (dataset, task, teacher, extractor, k), group in sorted(groups.items()):
        rows.append([DATASET_TITLES.get(dataset, dataset), task, teacher, extractor, str(k),
                     mean_text(group, keys.SYNTHETIC_IMAGES)]
                    + [mean_text(group, keys.privacy(key), digits=2) for key in (
                        "nn_distance_median", "nn_distance_min", "test_nn_distance_median",
                        "distance_ratio", "nndr_median", "test_nndr_median")]
                    + [mean_text(group, keys.privacy("distinct_nearest"))])
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
