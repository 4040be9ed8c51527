"""``classvis report``: read an experiment's runs, print and write its tables and figures, and
log them to a summary run in the same experiment."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from classvis.report.cells import Section
from classvis.report.figures import accuracy_vs_images_figures, f1_figures
from classvis.report.runs import DATASET_TITLES, REPORT_KIND, RunRecord, fetch_runs
from classvis.report.sections import deep, privacy, section8, section10
from classvis.report.table5 import Table, table5

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
    parser = argparse.ArgumentParser(prog="classvis-report", description=DESCRIPTION)
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
    print(markdown_document(table, sections))
    print(f"written: {', '.join(str(path) for path in files)}")
    if not args.no_log:
        title = "report: Table 5" if table.rows or not sections else "report"
        run_id = log_summary_run(client, experiment.experiment_id, files, title)
        print(f"logged to MLflow run {run_id} (experiment {args.experiment!r})")
    return 0
