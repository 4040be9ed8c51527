"""The report's Section 10 table and accuracy-vs-images figure keep extractor settings apart."""

from __future__ import annotations

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

    written = report.per_class_figure(runs, tmp_path)
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
    report.per_class_figure(runs, tmp_path)
    assert captured_curves["student (mlp30)"] == ([10, 100, 1000], [0.50, 0.60, 0.96])
    assert captured_curves["compressed (frozen rows, biases trained)"] == (
        [10, 100, 1000], [0.7, 0.7, 0.8])
    assert len(report.section10(runs).rows) == 3


def test_student_recipes_are_told_apart_only_where_a_cell_has_several(tmp_path, captured_curves):
    runs = [record(1, 1, 0, 0.50, recipe="lr=0.001"),
            record(2, 100, 0, 0.95, "diversity=100.0", recipe="lr=0.001"),
            record(3, 100, 0, 0.40, "diversity=100.0")]
    students = {(row[3], row[5]): row[7] for row in report.section10(runs).rows}
    assert students == {("1", "mlp30"): "50.00", ("100", "mlp30 (lr=0.001)"): "95.00",
                        ("100", "mlp30 (paper recipe)"): "40.00"}
    report.per_class_figure(runs, tmp_path)
    assert captured_curves["student (mlp30; class_vis (diversity=100.0); student lr=0.001)"] == (
        [1000], [0.95])
    assert captured_curves["student (mlp30; class_vis (diversity=100.0))"] == ([1000], [0.40])
