"""The paper's Table 5: one row per dataset, the teachers' accuracy and four students from ten
images; every cell mean ± sd over seeds, never mixing seeds trained different ways."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from classvis import runkeys as keys
from classvis.report.cells import mean_sd_text
from classvis.report.labels import variants_label
from classvis.report.runs import (
    DATASET_TITLES,
    TABLE5_TEACHER,
    RunRecord,
    is_table5_run,
    latest_runs_by,
    ordered_datasets,
)

# column -> (extractor, student) of its runs; "Trainset" is the teachers' own accuracy
TABLE5_COLUMNS = {
    "Trainset": None,
    "Class Vis.": ("class_vis", "linear"),
    "Class Vis. Deeper": ("class_vis", "mlp30"),
    "Avg. Images": ("class_average", "linear"),
    "Output W's": ("output_weights", "linear"),
}


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # one per seed, fractions
    recipe: str = ""                                    # what its runs changed (split_by_recipe)

    @property
    def text(self) -> str:
        return mean_sd_text(self.values)


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


def split_by_recipe(runs: list[RunRecord], teacher_only: bool = False
                ) -> tuple[str, list[RunRecord], dict[str, list[RunRecord]]]:
    """Split one cell's runs by what they changed from their preset's defaults (the teacher
    recipe, and for the student columns also the extractor's settings and the student recipe),
    so that no mean mixes seeds trained different ways. Returns the setting shown in the table
    (the one with the most seeds; on a tie, the defaults, or else the one run last), its runs
    (the latest per seed), and every other setting's runs."""
    kinds = ("teacher",) if teacher_only else ("extractor", "teacher", "student")
    latest = {label: group for (label,), group in
              latest_runs_by(runs, lambda r: (variants_label(r.tags, kinds),)).items()}
    if not latest:
        return "", [], {}
    shown = max(latest, key=lambda label: (len(latest[label]), label == "",
                                           max(r.start_time for r in latest[label])))
    return shown, latest[shown], {label: group for label, group in latest.items()
                                  if label != shown}


def runs_of_column(dataset_runs: list[RunRecord], selector: tuple[str, str] | None
                   ) -> list[RunRecord]:
    """The runs of one column: its (extractor, student), or every run for the teachers'."""
    if selector is None:
        return dataset_runs
    return [r for r in dataset_runs
            if (r.tags.get(keys.EXTRACTOR), r.tags.get(keys.STUDENT)) == selector]


def table5(runs: list[RunRecord]) -> Table:
    """Table 5 from every Table 5 run among ``runs``; missing cells are listed."""
    by_dataset: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if is_table5_run(run):
            by_dataset[run.tags[keys.DATASET]].append(run)
    rows, missing, teachers, others = {}, [], {}, []
    for dataset in ordered_datasets(by_dataset):
        dataset_runs = by_dataset[dataset]
        cells: dict[str, Cell] = {}
        for column, selector in TABLE5_COLUMNS.items():
            # the Trainset column is the teachers' own accuracy, once per seed
            metric = keys.accuracy("teacher") if selector is None else keys.accuracy("student")
            shown, chosen, rest = split_by_recipe(runs_of_column(dataset_runs, selector),
                                              teacher_only=selector is None)
            cells[column] = Cell([r.metrics[metric] for r in chosen if metric in r.metrics],
                                 shown)
            for label, group in sorted(rest.items()):
                others.append((dataset, column, Cell(
                    [r.metrics[metric] for r in group if metric in r.metrics], label)))
            if not chosen and selector is not None:
                extractor, student = selector
                missing.append(f"{DATASET_TITLES.get(dataset, dataset)} / {column}: no "
                               f"FINISHED run with extractor={extractor}, student={student}, "
                               f"teacher={TABLE5_TEACHER}")
        rows[dataset] = cells
        sources = [r.tags.get(keys.TEACHER_ORIGIN, "trained") for r in dataset_runs]
        teachers[dataset] = {"runs": len(dataset_runs), "trained": sources.count("trained"),
                             "cache": sources.count("cache"),
                             "teachers": len({keys.tag_of(r.tags, keys.TEACHER_KEY, r.run_id)
                                              for r in dataset_runs})}
    return Table(list(TABLE5_COLUMNS), rows, missing, teachers, others)
