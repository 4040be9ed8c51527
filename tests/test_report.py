"""The report rebuilds Table 5 from a real (small) sweep's MLflow runs, tags only."""

from __future__ import annotations

import csv
import statistics

import pytest
from conftest import training_runs
from test_train_e2e import all_artifacts, client_for, train

from classvis import report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory):
    """Three of Table 5's four student columns on digits, two seeds: Output W's is missing."""
    folder = tmp_path_factory.mktemp("table5")
    db = folder / "mlflow.db"
    result = train(folder, "-m", "dataset=digits",
                   "+experiment/table5=class_vis,class_vis_deeper,avg_images",
                   "seed=0,1", "trainer.teacher.epochs=3", "trainer.student.steps=300",
                   f"tracking.uri=sqlite:///{db}",
                   "tracking.experiment=t5", f"hydra.sweep.dir={folder}/sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, db


def test_table_cells_come_from_the_runs_tags(digits_sweep, capsys):
    folder, db = digits_sweep
    client = client_for(db)
    experiment_id = client.get_experiment_by_name("t5").experiment_id
    runs = training_runs(client, [experiment_id])
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}

    code = report.main(["--tracking-uri", f"sqlite:///{db}", "--experiment", "t5",
                        "--output", str(folder / "out")])
    assert code == 0
    printed = capsys.readouterr().out

    def accuracies(extractor, student, metric="student/accuracy"):
        return [r.data.metrics[metric] for r in runs
                if (r.data.tags["extractor"], r.data.tags["student"]) == (extractor, student)]

    class_vis = accuracies("class_vis", "linear")
    assert len(class_vis) == 2
    expected = f"{100 * statistics.fmean(class_vis):.2f} ± {100 * statistics.stdev(class_vis):.2f}"
    row = next(line for line in printed.splitlines() if line.startswith("| Digits"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[0] == "Digits (8x8)"
    assert cells[2] == expected                      # Class Vis.
    assert cells[5] == "-"                           # Output W's: no run
    assert "Digits (8x8) / Output W's: no FINISHED run with extractor=output_weights" in printed
    # two teachers (one per seed), each trained once and reused by the two other columns
    assert "6 runs, 2 distinct teacher(s), trained 2 time(s), reused from the cache 4 time(s)" \
        in printed

    with (folder / "out" / "table5.csv").open() as handle:
        rows = {(r["dataset"], r["column"]): r for r in csv.DictReader(handle)}
    deeper = accuracies("class_vis", "mlp30")
    assert float(rows[("digits", "Class Vis. Deeper")]["mean_percent"]) == pytest.approx(
        100 * statistics.fmean(deeper), abs=0.005)
    assert rows[("digits", "Avg. Images")]["seeds"] == "2"
    assert rows[("digits", "Output W's")]["mean_percent"] == ""
    assert (folder / "out" / "f1_digits.png").stat().st_size > 10_000

    # privacy: one row per synthetic set (teacher, extractor), means over the seeds' runs
    privacy = {(r["Extractor"]): r for r in csv.DictReader((folder / "out" / "privacy.csv").open())}
    # the deeper column's visualizations are extracted at another scale: a set of their own
    assert set(privacy) == {"class_vis", "class_vis (l2=0.135)", "class_average"}
    ratios = [r.data.metrics["privacy/distance_ratio"] for r in runs
              if (r.data.tags["extractor"], r.data.tags["student"]) == ("class_vis", "linear")]
    assert privacy["class_vis"]["Ratio"] == f"{statistics.fmean(ratios):.2f}"
    assert float(privacy["class_vis"]["Ratio"]) > 1.0  # not near-copies of training images
    assert "## Privacy: distance to the nearest training image" in printed

    summaries = client.search_runs([experiment_id], filter_string="tags.`classvis.kind` = 'report'")
    assert len(summaries) == 1 and summaries[0].info.status == "FINISHED"
    assert {"report/table5.md", "report/table5.csv", "report/f1_digits.png",
            "report/privacy.csv"} <= all_artifacts(
        client, summaries[0].info.run_id)

    # a second report updates the same summary run and ignores it as input
    assert report.main(["--tracking-uri", f"sqlite:///{db}", "--experiment", "t5",
                        "--output", str(folder / "out")]) == 0
    assert len(client.search_runs([experiment_id],
                                  filter_string="tags.`classvis.kind` = 'report'")) == 1
    assert expected in capsys.readouterr().out


def test_unknown_experiment_is_a_one_line_error(digits_sweep, capsys):
    folder, db = digits_sweep
    assert report.main(["--tracking-uri", f"sqlite:///{db}", "--experiment", "nope"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("classvis-report: error: --experiment: no experiment 'nope'")
    assert "t5" in error and "\n" not in error


def test_the_sweep_is_one_parent_run_whose_table_equals_table5(digits_sweep, capsys):
    """The 6 jobs' runs are nested under one parent run (the UI folds them under it), which holds
    the job counts and each config's mean ± sd over seeds: Table 5's cells, to the digit."""
    folder, db = digits_sweep
    client = client_for(db)
    experiment_id = client.get_experiment_by_name("t5").experiment_id
    (parent,) = client.search_runs([experiment_id], filter_string="tags.`classvis.kind` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("sweep: dataset=digits +experiment/table5=class_vis,")
    assert parent.data.params["sweep.seed"] == "0,1"
    counts = {key: value for key, value in parent.data.metrics.items()
              if key.startswith("sweep/")}
    assert counts == {"sweep/jobs": 6.0, "sweep/finished": 6.0, "sweep/failed": 0.0,
                      "sweep/skipped": 0.0}
    runs = training_runs(client, [experiment_id])
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert {"sweep/summary.md", "sweep/summary.csv", "sweep/jobs.csv"} <= all_artifacts(
        client, parent.info.run_id)
    summary = client.download_artifacts(parent.info.run_id, "sweep/summary.csv", str(folder))
    with open(summary) as handle:
        rows = list(csv.DictReader(handle))
    # best first, in the words the runs' names start with, the best marked
    sweep_rows = {r["Config"].removeprefix("**").removesuffix("** (best)"): r for r in rows}
    assert set(sweep_rows) == {"table5=class_vis", "table5=class_vis_deeper",
                               "table5=avg_images"}
    assert rows[0]["Config"].endswith("** (best)")
    students = [float(r["Student (%)"].split(" ± ")[0]) for r in rows]
    assert students == sorted(students, reverse=True)
    # the parent carries the result: the best config's mean, each config's, the best run
    best_label = rows[0]["Config"].removeprefix("**").removesuffix("** (best)")
    assert parent.data.tags["best.config"] == best_label
    note = parent.data.tags["mlflow.note.content"].splitlines()
    assert note[2].startswith(f"Best config: **{best_label}**, student/accuracy ")
    assert parent.data.metrics["student/accuracy"] == parent.data.metrics[
        "best/student/accuracy"] == pytest.approx(students[0] / 100, abs=5e-5)
    for label, row in sweep_rows.items():
        key = f"config/{label.replace('=', '_')}/student/accuracy"
        assert parent.data.metrics[key] == pytest.approx(
            float(row["Student (%)"].split(" ± ")[0]) / 100, abs=5e-5)
    best_run = next(r for r in runs if r.info.run_id == parent.data.tags["best.run_id"])
    assert best_run.info.run_name.startswith(best_label + " seed=")
    assert parent.data.tags["git_commit"] == best_run.data.tags["git_commit"]
    assert "| Seeds |" in parent.data.tags["mlflow.note.content"]

    assert report.main(["--tracking-uri", f"sqlite:///{db}", "--experiment", "t5", "--no-log",
                        "--output", str(folder / "t5")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| Digits"))
    table5 = [cell.strip() for cell in row.strip("|").split("|")]
    for config, column in (("table5=class_vis", 2), ("table5=class_vis_deeper", 3),
                           ("table5=avg_images", 4)):
        assert sweep_rows[config]["Seeds"] == "2"
        assert sweep_rows[config]["Student (%)"] == table5[column]

    # the report of that one sweep: its table, logged back to the parent run
    assert report.main(["--tracking-uri", f"sqlite:///{db}", "--sweep", parent.info.run_id,
                        "--output", str(folder / "sweep")]) == 0
    printed = capsys.readouterr().out
    assert "## Sweep: test accuracy (%) per config" in printed and row in printed
    assert "report/sweep.csv" in all_artifacts(client, parent.info.run_id)
    for wrong, message in ((runs[0].info.run_id, "is a training run, not a sweep's parent run"),
                           ("0" * 32, "no run '000")):
        assert report.main(["--tracking-uri", f"sqlite:///{db}", "--sweep", wrong]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("classvis-report: error: --sweep: ") and message in error
        assert "\n" not in error
