"""``classvis report``: read an experiment's runs, print and write its tables and figures, and
log them to a summary run in the same experiment."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

from classvis import runkeys as keys
from classvis.report.cells import Section
from classvis.report.figures import accuracy_vs_images_figures, f1_figures
from classvis.report.runs import DATASET_TITLES, RunRecord, fetch_runs, with_per_class_scores
from classvis.report.sections import deep, privacy, section8, section10
from classvis.report.sweep import sweep_table
from classvis.report.table5 import Table, table5
from classvis.track.store import Store, StoreError

DESCRIPTION = "MLflow runs -> the paper's tables and figures."


def write_report(table: Table, runs: list[RunRecord], folder: Path,
                 sections: list[Section] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sections = sections or []
    (folder / "report.md").write_text(markdown_document(table, sections))
    files = [folder / "report.md"]
    if table.rows or not sections:
        (folder / "table5.md").write_text(markdown_document(table, []))
        table.write_csv(folder / "table5.csv")
        files += [folder / "table5.md", folder / "table5.csv", *f1_figures(runs, folder)]
    for section in sections:
        section.write_csv(folder / f"{section.slug}.csv")
        files.append(folder / f"{section.slug}.csv")
    files += accuracy_vs_images_figures(runs, folder)
    return files


def markdown_document(table: Table, sections: list[Section] | None = None) -> str:
    sections = sections or []
    if sections and not table.rows:
        return "\n\n".join(section.markdown() for section in sections) + "\n"
    lines = ["# Table 5: test accuracy (%)", "", table.markdown(), ""]
    lines.append("Teachers (from the runs' `teacher_origin` tags):")
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


def sweep_runs(store: Store, parent_id: str) -> tuple[str, list[RunRecord]]:
    """A sweep's runs: the FINISHED runs nested under its parent, and the earlier runs its jobs
    skipped to (listed in the parent's sweep/jobs.csv)."""
    parent = store.run(parent_id, option="--sweep")
    if parent.tags.get(keys.KIND) != keys.SWEEP_KIND:
        kind = parent.tags.get(keys.KIND, "training")
        raise StoreError(f"--sweep: run {parent_id} is a {kind} run, not a sweep's parent run "
                         f"(a sweep prints its parent's id when it ends)")
    found = {run.run_id: run for run in store.children(parent.experiment_id, parent_id)}
    if "sweep/jobs.csv" in store.artifact_names(parent_id, "sweep"):
        with tempfile.TemporaryDirectory(prefix="classvis-report-") as folder:
            path = store.download_artifact(parent_id, "sweep/jobs.csv", Path(folder))
            with path.open(newline="") as handle:
                listed = [row["run_id"] for row in csv.DictReader(handle)
                          if row["status"] == "SKIPPED" and row["run_id"]]
        found.update({run.run_id: run for run in store.runs(listed) if run.status == "FINISHED"})
    return parent.experiment_id, [RunRecord.of(run) for run in found.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classvis-report", description=DESCRIPTION)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 "sqlite:///mlflow.db"),
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                             "sqlite:///mlflow.db in this directory)")
    parser.add_argument("--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME",
                                                               "classvis"),
                        help="MLflow experiment to read (default: $MLFLOW_EXPERIMENT_NAME or "
                             "classvis)")
    parser.add_argument("--sweep", metavar="PARENT_RUN_ID", default=None,
                        help="report one sweep: the runs of its jobs (its parent run's id, as "
                             "printed when the sweep ends), logged back to that parent run")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the files (default: reports/<experiment>, or "
                             "reports/sweep-<id> with --sweep)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the report to a summary run in MLflow")
    args = parser.parse_args(argv)

    try:
        store = Store.open(args.tracking_uri, Path.cwd())
        if args.sweep is None:
            experiment_id = store.experiment_id(args.experiment)
            runs = fetch_runs(store, experiment_id)
        else:
            experiment_id, runs = sweep_runs(store, args.sweep)
        runs = with_per_class_scores(store, runs)
    except StoreError as error:
        print(f"classvis-report: error: {error}", file=sys.stderr)
        return 2
    table = table5(runs)
    sections = [section for section in (section8(runs), section10(runs), deep(runs),
                                        privacy(runs))
                if section is not None]
    if args.sweep is not None:
        sections.insert(0, sweep_table(runs))
    name = args.experiment if args.sweep is None else f"sweep-{args.sweep[:8]}"
    output = args.output or Path("reports") / name
    files = write_report(table, runs, output, sections)
    print(markdown_document(table, sections))
    print(f"written: {', '.join(str(path) for path in files)}")
    if not args.no_log and args.sweep is not None:
        store.log_files(args.sweep, files, artifact_path="report")
        print(f"logged to the sweep's MLflow run {args.sweep}")
    elif not args.no_log:
        title = "report: Table 5" if table.rows or not sections else "report"
        run_id = store.log_files_to_summary_run(experiment_id, keys.REPORT_KIND, title, files,
                                                 artifact_path="report")
        print(f"logged to MLflow run {run_id} (experiment {args.experiment!r})")
    return 0
