"""Reading runs back from MLflow and telling which experiment's protocol each belongs to, by its
tags (never by run names or order)."""

from __future__ import annotations

import csv
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from classvis import runkeys as keys
from classvis.track.store import Store, StoredRun

DATASET_TITLES = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                  "cifar10_jpg": "CIFAR-10 (JPEG)", "digits": "Digits (8x8)"}
TABLE5_TEACHER = "linear"  # the paper's Table 5 teachers: softmax regression


@dataclass
class RunRecord:
    run_id: str
    start_time: int
    tags: dict[str, str]
    metrics: dict[str, float]

    @classmethod
    def of(cls, run: StoredRun) -> RunRecord:
        return cls(run.run_id, run.start_time, run.tags, run.metrics)


def fetch_runs(store: Store, experiment_id: str) -> list[RunRecord]:
    """Every FINISHED training run of the experiment (no report or sweep parent runs)."""
    return [RunRecord.of(run) for run in store.finished_runs(experiment_id)
            if keys.KIND not in run.tags]


PER_CLASS_TABLE = "metrics/{model}_per_class.csv"  # a run's per-class scores of one model
PER_CLASS_MEASURES = ("precision", "recall", "f1")


def with_per_class_scores(store: Store, runs: list[RunRecord],
                          models: tuple[str, ...] = ("teacher", "student")) -> list[RunRecord]:
    """Table 5's runs with the per-class scores its figures plot, read from each run's
    per-class tables where the run did not log them as metrics (``tracking.per_class_metrics``
    is off by default); the other runs as they are."""
    done = []
    with tempfile.TemporaryDirectory(prefix="classvis-report-") as staging:
        for run in runs:
            if not is_table5_run(run) or any(key.startswith(f"{keys.measure('student', 'f1')}/")
                                             for key in run.metrics):
                done.append(run)
                continue
            metrics = dict(run.metrics)
            for model in models:
                try:
                    path = store.download_artifact(run.run_id, PER_CLASS_TABLE.format(
                        model=model), Path(staging) / run.run_id)
                    rows = list(csv.DictReader(path.open()))
                except Exception:  # noqa: BLE001 - a run without the table: no scores to plot
                    continue
                for row in rows:
                    for measure in PER_CLASS_MEASURES:
                        metrics[keys.per_class(model, measure, row["class"])] = float(row[measure])
            done.append(RunRecord(run.run_id, run.start_time, run.tags, metrics))
    return done


def latest_per_seed(runs: list[RunRecord]) -> list[RunRecord]:
    """One run per seed: a re-run of the same cell replaces the earlier one."""
    latest: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        latest[run.tags.get(keys.SEED, "")] = run
    return [latest[seed] for seed in sorted(latest)]


def latest_runs_by(runs: list[RunRecord], key: Callable[[RunRecord], tuple]
                   ) -> dict[tuple, list[RunRecord]]:
    """The runs grouped by ``key(run)``, each group reduced to its latest run per seed."""
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return {k: latest_per_seed(v) for k, v in groups.items()}


def ordered_datasets(datasets: Iterable[str]) -> list[str]:
    """The paper's datasets in its order, then any others alphabetically."""
    known = [name for name in DATASET_TITLES if name in datasets]
    return known + sorted(set(datasets) - set(known))


def is_table5_run(run: RunRecord) -> bool:
    """A run of the paper's Table 5 protocol: linear teacher on all classes of a dataset, one
    image per class, no swap or compression stage."""
    tags = run.tags
    return (tags.get(keys.TEACHER) == TABLE5_TEACHER and keys.DATASET in tags
            and tags.get(keys.PER_CLASS, "1") == "1"
            and not any(key in tags for key in ("swap", "classes", "one_vs_rest", "compress",
                                                "synthetic_file")))


def is_deep_run(run: RunRecord) -> bool:
    """A run of a convolutional teacher, or of the real-image baseline (the deep section's)."""
    return (run.tags.get(keys.TEACHER_DENSE) == "false"
            or run.tags.get(keys.EXTRACTOR) == "real_subset")


def per_class_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Runs outside Table 5's protocol that extracted their own set: k per class, other
    teachers, compression."""
    return [r for r in runs if keys.SYNTHETIC_FILE not in r.tags and (
        r.tags.get(keys.TEACHER) != TABLE5_TEACHER or r.tags.get(keys.PER_CLASS, "1") != "1"
        or keys.COMPRESS in r.tags)]
