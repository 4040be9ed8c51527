"""The report keeps runs made with other settings apart: Section 10 rows and lines, Table 5
cells."""

from __future__ import annotations

import csv

import pytest

from classvis import plots, report


def record(number: int, k: int, seed: int, accuracy: float, variant: str = "",
           compressed: float | None = 0.7, recipe: str = "") -> report.RunRecord:
    tags = {"dataset": "mnist", "teacher": "mlp30", "student": "mlp30", "extractor": "class_vis",
            "per_class": str(k), "seed": str(seed), "compress": "biases"}
    if variant:
        tags["extractor_variant"] = variant
    if recipe:
        tags["student_variant"] = recipe
    metrics = {"student/accuracy": accuracy, "teacher/accuracy": 0.97,
               "synthetic/images": 10.0 * k, "teacher/parameters": 23860.0}
    if compressed is not None:
        metrics.update({"compressed/accuracy": compressed,
                        "compressed/trainable_parameters": 10.0 * k,
                        "compressed/compression_ratio": 23860 / (10 * k)})
    return report.RunRecord(f"run{number}", number, tags, metrics)


@pytest.fixture
def captured_curves(monkeypatch):
    seen = {}
    draw = plots.accuracy_vs_images_figure

    def capture(curves, reference, reference_label, title):
        seen.update(curves)
        return draw(curves, reference, reference_label, title)

    monkeypatch.setattr(plots, "accuracy_vs_images_figure", capture)
    return seen


def test_a_diversity_sweep_gets_a_row_and_a_line_per_setting(tmp_path, captured_curves):
    runs = [record(1, 1, 0, 0.50), record(2, 1, 1, 0.60),
            record(3, 100, 0, 0.95, "start_std=0.3, diversity=100.0"),
            record(4, 100, 0, 0.55, "start_std=0.3, diversity=1.0")]
    section = report.section10(runs)
    rows = {(row[2], row[3]): row for row in section.rows}
    assert set(rows) == {("class_vis", "1"), ("class_vis (start_std=0.3, diversity=100.0)", "100"),
                         ("class_vis (start_std=0.3, diversity=1.0)", "100")}
    assert rows[("class_vis", "1")][7] == "55.00 ± 7.07"   # both seeds of the one setting
    assert rows[("class_vis (start_std=0.3, diversity=1.0)", "100")][7] == "55.00"
    assert rows[("class_vis (start_std=0.3, diversity=100.0)", "100")][7] == "95.00"

    written = report.accuracy_vs_images_figures(runs, tmp_path)
    assert [path.name for path in written] == ["accuracy_vs_images_mnist_mlp30_mlp30.png"]
    assert captured_curves["student (mlp30; class_vis (start_std=0.3, diversity=100.0))"] == (
        [1000], [0.95])
    assert captured_curves["student (mlp30; class_vis)"] == ([10], [pytest.approx(0.55)])
    assert len([label for label in captured_curves if label.startswith("student")]) == 3


def test_one_setting_per_count_is_one_line_across_the_counts(tmp_path, captured_curves):
    runs = [record(1, 1, 0, 0.50), record(2, 10, 0, 0.60, "start_std=0.3, diversity=100.0"),
            record(3, 100, 0, 0.95, "start_std=0.3, diversity=100.0"),
            # a re-run of a cell replaces the earlier run of that seed
            record(4, 100, 0, 0.96, "start_std=0.3, diversity=100.0", compressed=0.8)]
    report.accuracy_vs_images_figures(runs, tmp_path)
    assert captured_curves["student (mlp30)"] == ([10, 100, 1000], [0.50, 0.60, 0.96])
    assert captured_curves["compressed (frozen rows, biases trained)"] == (
        [10, 100, 1000], [0.7, 0.7, 0.8])
    assert len(report.section10(runs).rows) == 3


def test_student_recipes_are_told_apart_only_where_a_cell_has_several(tmp_path, captured_curves):
    runs = [record(1, 1, 0, 0.50, recipe="lr=0.001"),
            record(2, 100, 0, 0.95, "diversity=100.0", recipe="lr=0.001"),
            record(3, 100, 0, 0.40, "diversity=100.0")]
    students = {(row[3], row[5]): row[7] for row in report.section10(runs).rows}
    assert students == {("1", "mlp30"): "50.00", ("100", "mlp30 (student lr=0.001)"): "95.00",
                        ("100", "mlp30 (paper recipe)"): "40.00"}
    report.accuracy_vs_images_figures(runs, tmp_path)
    assert captured_curves["student (mlp30; class_vis (diversity=100.0); student lr=0.001)"] == (
        [1000], [0.95])
    assert captured_curves["student (mlp30; class_vis (diversity=100.0))"] == ([1000], [0.40])


def table5_run(number: int, seed: int, accuracy: float, recipe: str = "",
               teacher_recipe: str = "", teacher_accuracy: float = 0.92) -> report.RunRecord:
    tags = {"dataset": "mnist", "teacher": "linear", "student": "linear",
            "extractor": "class_vis", "per_class": "1", "seed": str(seed)}
    if recipe:
        tags["student_variant"] = recipe
    if teacher_recipe:
        tags["teacher_variant"] = teacher_recipe
    metrics = {"student/accuracy": accuracy, "teacher/accuracy": teacher_accuracy}
    return report.RunRecord(f"run{number}", number, tags, metrics)


def test_a_table5_cell_never_mixes_seeds_of_different_recipes(tmp_path):
    runs = [table5_run(1, 0, 0.90), table5_run(2, 1, 0.92), table5_run(3, 2, 0.94),
            # a later try of another student recipe on one seed
            table5_run(4, 0, 0.50, recipe="lr=0.5")]
    table = report.table5(runs)
    cell = table.rows["mnist"]["Class Vis."]
    assert cell.values == [0.90, 0.92, 0.94] and cell.recipe == ""
    assert [(d, c, o.recipe, o.values) for d, c, o in table.others] == [
        ("mnist", "Class Vis.", "student lr=0.5", [0.50])]
    document = report.markdown_document(table)
    assert "| MNIST | 92.00 ± 0.00 | 92.00 ± 2.00 |" in document
    assert ("- MNIST / Class Vis.: student lr=0.5: 50.00 (1 seed); in the table: defaults"
            in document)
    table.write_csv(tmp_path / "table5.csv")
    with (tmp_path / "table5.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["column"] == "Class Vis."]
    listed = [(row["mean_percent"], row["seeds"], row["recipe"], row["in_table"]) for row in rows]
    assert listed == [("92.00", "3", "", "yes"), ("50.00", "1", "student lr=0.5", "no")]


def test_a_table5_tie_shows_the_defaults_or_else_the_latest_and_teachers_split_by_recipe():
    runs = [table5_run(1, 0, 0.91, recipe="lr=0.5"),
            table5_run(2, 0, 0.80, teacher_recipe="epochs=1", teacher_accuracy=0.85)]
    table = report.table5(runs)
    # two recipes, one seed each, neither the defaults: the latest is shown
    assert table.rows["mnist"]["Class Vis."].recipe == "teacher epochs=1"
    assert table.rows["mnist"]["Class Vis."].values == [0.80]
    assert [o.recipe for _, column, o in table.others if column == "Class Vis."] == [
        "student lr=0.5"]
    # the teacher column splits by the teacher's recipe alone: the defaults win its tie
    trainset = table.rows["mnist"]["Trainset"]
    assert (trainset.recipe, trainset.values) == ("", [0.92])
    assert [(o.recipe, o.values) for _, column, o in table.others if column == "Trainset"] == [
        ("teacher epochs=1", [0.85])]
    # the defaults, run first, win the tie
    table = report.table5([table5_run(0, 0, 0.90), *runs])
    assert (table.rows["mnist"]["Class Vis."].recipe, table.rows["mnist"]["Trainset"].recipe) == (
        "", "")
    assert table.rows["mnist"]["Class Vis."].values == [0.90]
    # more seeds win over the defaults
    table = report.table5([table5_run(0, 0, 0.90), *runs, table5_run(3, 1, 0.82, "lr=0.5")])
    assert table.rows["mnist"]["Class Vis."].values == [0.91, 0.82]


def test_privacy_rows_keep_teacher_recipes_apart():
    runs = []
    for number, (teacher_recipe, ratio) in enumerate([("", 1.4), ("epochs=1", 2.0), ("", 1.6)]):
        run = table5_run(number, 0, 0.9, teacher_recipe=teacher_recipe)
        run.metrics["privacy/distance_ratio"] = ratio
        runs.append(run)
    rows = {row[2]: row[9] for row in report.privacy(runs).rows}
    # one row per teacher recipe; a re-run of a seed replaces the earlier one
    assert rows == {"linear": "1.60", "linear (epochs=1)": "2.00"}


def one_vs_rest_record(number: int, seed: int, balance: str | None, teacher: float,
                       full: float, balanced: float) -> report.RunRecord:
    tags = {"dataset": "mnist", "teacher": "linear", "student": "linear", "one_vs_rest": "3",
            "extractor": "class_vis", "per_class": "1", "seed": str(seed)}
    if balance is not None:
        tags["one_vs_rest_balance"] = balance
    metrics = {"teacher/accuracy": teacher, "student/accuracy": teacher,
               "teacher/full_test_accuracy": full, "teacher/balanced_test_accuracy": balanced}
    return report.RunRecord(f"run{number}", number, tags, metrics)


def test_section8_keeps_one_vs_rest_balances_apart_and_shows_both_test_sets():
    runs = [one_vs_rest_record(1, 0, "none", 0.978, 0.978, 0.93),
            one_vs_rest_record(2, 1, "none", 0.976, 0.976, 0.92),
            one_vs_rest_record(3, 0, "train", 0.90, 0.90, 0.94),
            one_vs_rest_record(4, 0, None, 0.94, 0.91, 0.94)]   # before the tag: balanced both
    section = report.section8(runs)
    rows = {row[1]: dict(zip(section.header, row, strict=True)) for row in section.rows}
    assert set(rows) == {"3 vs rest (all images)", "3 vs rest (balanced train set)",
                         "3 vs rest (balanced)"}
    every = rows["3 vs rest (all images)"]
    assert every["Teacher acc."] == "97.70 ± 0.14"
    assert every["One-vs-rest teacher (full test)"] == "97.70 ± 0.14"
    assert every["One-vs-rest teacher (balanced test)"] == "92.50 ± 0.71"
    assert rows["3 vs rest (balanced)"]["One-vs-rest teacher (full test)"] == "91.00"
    assert every["FP (swapped)"] == "-"


def deep_record(number: int, k: int, seed: int, accuracy: float, extractor: str
                ) -> report.RunRecord:
    tags = {"dataset": "mnist", "teacher": "lenet5", "teacher.dense": "false",
            "student": "lenet5", "extractor": extractor, "per_class": str(k), "seed": str(seed)}
    if extractor == "class_vis":
        tags["extractor_variant"] = "jitter=2"
    metrics = {"student/accuracy": accuracy, "teacher/accuracy": 0.99,
               "synthetic/images": 10.0 * k}
    return report.RunRecord(f"run{number}", number, tags, metrics)


def test_the_deep_section_sets_synthetic_students_against_real_images_of_the_same_count(
        tmp_path, captured_curves):
    runs = [deep_record(1, 10, 0, 0.92, "class_vis"), deep_record(2, 10, 1, 0.94, "class_vis"),
            deep_record(3, 10, 0, 0.97, "real_subset"), deep_record(4, 100, 0, 0.98, "class_vis"),
            deep_record(5, 100, 0, 0.99, "real_subset"), record(6, 10, 0, 0.9)]
    section = report.deep(runs)
    assert [row[:5] for row in section.rows] == [["MNIST", "lenet5", "lenet5", "10", "100"],
                                                 ["MNIST", "lenet5", "lenet5", "100", "1000"]]
    assert section.rows[0][5:] == ["99.00 ± 0.00", "93.00 ± 1.41", "97.00", "-4.00",
                                   "class_vis (jitter=2)", "2"]
    assert section.rows[1][6:9] == ["98.00", "99.00", "-1.00"]
    # the dense run stays in Section 10, the deep ones leave it
    assert [row[1] for row in report.section10(runs).rows] == ["mlp30"]
    report.accuracy_vs_images_figures(runs, tmp_path)
    assert {"student (lenet5; class_vis (jitter=2))", "student (lenet5; real_subset)"} <= set(
        captured_curves)
