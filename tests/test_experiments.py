"""Section 8 (subsets, one-vs-rest, swap), Section 10 (compression) and k images per class:
the numeric pieces on tiny tensors, then both presets end to end on digits."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from conftest import training_runs
from test_numeric import LINEAR, MLP, toy_data

from classvis import report
from classvis.compress import CompressSettings, FrozenRowsClassifier, compress
from classvis.data import DatasetSettings, load_dataset
from classvis.extract import ClassVisSettings, Extraction, class_vis
from classvis.fit import TeacherTraining, fit
from classvis.models import build_model
from classvis.priors import gaussian_blur, total_variation, within_class_similarity
from classvis.swap import SwapSettings, swap_class
from classvis.validation import ConfigError, parse


def digits(**options) -> DatasetSettings:
    return parse(DatasetSettings, {"name": "digits", "loader": "digits", **options}, "dataset")


def test_one_vs_rest_is_balanced_relabelled_and_drawn_with_the_seed():
    full = load_dataset(digits())
    data = load_dataset(digits(one_vs_rest=3, one_vs_rest_balance="train_and_test"), seed=7)
    assert data.class_names == ["3", "not 3"]
    for _images, labels, full_labels in ((data.train_x, data.train_y, full.train_y),
                                        (data.test_x, data.test_y, full.test_y)):
        positives = int((full_labels == 3).sum())
        assert int((labels == 0).sum()) == positives == int((labels == 1).sum())
    # every positive is kept, every kept negative is a real image of another class
    assert torch.equal(data.train_x[data.train_y == 0], full.train_x[full.train_y == 3])
    others = full.train_x[full.train_y != 3].flatten(1)
    kept = data.train_x[data.train_y == 1].flatten(1)
    exact = torch.cdist(kept, others, compute_mode="donot_use_mm_for_euclid_dist")
    assert (exact.min(dim=1).values == 0).all()
    # the negatives depend on the seed and only on it
    again = load_dataset(digits(one_vs_rest=3, one_vs_rest_balance="train_and_test"), seed=7)
    other_seed = load_dataset(digits(one_vs_rest=3, one_vs_rest_balance="train_and_test"), seed=8)
    assert torch.equal(again.train_x, data.train_x)
    assert not torch.equal(other_seed.train_x, data.train_x)
    assert data.fingerprint != other_seed.fingerprint != full.fingerprint


def test_one_vs_rest_and_classes_exclude_each_other():
    with pytest.raises(ConfigError, match=r"^dataset.one_vs_rest: expected null when"):
        digits(one_vs_rest=3, classes=[3, 4])


def _tagged_set(labels: list[int], offset: float) -> Extraction:
    """Image i is filled with ``offset + i`` so tests can tell where each image came from."""
    images = torch.stack([torch.full((1, 2, 2), offset + i) for i in range(len(labels))])
    return Extraction(images, torch.tensor(labels))


def test_swap_replaces_exactly_the_class_images_and_records_their_origin():
    base = _tagged_set([0, 0, 1, 1, 2, 2], offset=0.0)      # 3 classes, k = 2
    donor = _tagged_set([0, 0, 1, 1], offset=100.0)         # donor classes e.g. ["4", "1"]
    base_targets = torch.arange(18.0).view(6, 3)
    kept = swap_class(base, base_targets, donor, base_class=1, donor_class=1, donor_targets=None)
    assert kept.replaced.tolist() == [2, 3]
    assert kept.origin == ["base", "base", "donor", "donor", "base", "base"]
    assert [float(image[0, 0, 0]) for image in kept.images] == [0, 1, 102, 103, 4, 5]
    assert kept.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(kept.soft_targets, base_targets)        # "keep": the replaced targets
    scored = swap_class(base, base_targets, donor, 1, 1, donor_targets=torch.full((2, 3), -1.0))
    assert scored.soft_targets[[2, 3]].eq(-1).all()
    assert torch.equal(scored.soft_targets[[0, 1, 4, 5]], base_targets[[0, 1, 4, 5]])
    assert torch.equal(base.images[2], torch.full((1, 2, 2), 2.0))  # the inputs are untouched
    with pytest.raises(ValueError, match="must match"):
        swap_class(base, base_targets, _tagged_set([1], 0.0), 1, 1, None)


@pytest.mark.parametrize("mapping, message", [
    ({"replace": 3}, "swap.donor_classes: expected a class list, or donor_one_vs_rest"),
    ({"replace": 3, "donor_classes": [4, 5]}, "swap.donor_classes: expected a list containing"),
    ({"replace": 3, "donor_one_vs_rest": 4}, "swap.donor_one_vs_rest: expected the replaced"),
])
def test_bad_swap_settings_name_the_key(mapping, message):
    with pytest.raises(ConfigError) as error:
        parse(SwapSettings, mapping, "swap")
    assert str(error.value).startswith(message)


def test_compressed_model_trains_only_its_biases():
    data = toy_data()
    teacher = build_model(LINEAR, data.image_shape, data.num_classes, 0)
    fit(teacher, data.train_x, data.train_y, TeacherTraining(epochs=3, batch_size=20), 0)
    extracted = class_vis(teacher, data, ClassVisSettings())
    settings = CompressSettings(enabled=True, epochs=2, batch_size=20)
    result = compress(extracted.images, extracted.labels, data.num_classes, data.train_x,
                      data.train_y, settings, seed=0)
    model = result.model
    assert result.trainable_parameters == data.num_classes == model.bias.numel()
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["bias"]
    assert torch.equal(model.rows, extracted.images.flatten(1))   # the weights are the images
    assert model.bias.abs().sum() > 0                             # ... and the biases moved
    # scores are exactly x . image + bias
    x = data.test_x[:5]
    expected = x.flatten(1) @ extracted.images.flatten(1).T + model.bias
    assert torch.allclose(model(x), expected)
    # with k rows per class a class scores the log-sum-exp of its rows
    rows = torch.randn(6, 1, 6, 6)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    grouped = FrozenRowsClassifier(rows, labels, 3)
    raw = x.flatten(1) @ rows.flatten(1).T
    assert torch.allclose(grouped(x), raw.view(5, 3, 2).logsumexp(2), atol=1e-5)
    assert sum(p.numel() for p in grouped.parameters() if p.requires_grad) == 6


def closest_within_class(images: torch.Tensor, per_class: int) -> float:
    flat = images.flatten(1).view(-1, per_class, images[0].numel())
    distances = torch.cdist(flat, flat) + torch.eye(per_class) * 1e9
    return float(distances.min())


def test_k_per_class_extraction_returns_k_distinct_images_per_class():
    data = toy_data(classes=3)
    teacher = build_model(MLP, data.image_shape, data.num_classes, 0)
    fit(teacher, data.train_x, data.train_y, TeacherTraining(epochs=3, batch_size=20), 0)
    settings = ClassVisSettings(per_class=4, start_std=0.3, diversity=0.1, steps=300)
    result = class_vis(teacher, data, settings, seed=1)
    assert result.images.shape == (12, *data.image_shape)
    assert result.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    flat = result.images.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(12) * 1e9
    assert distances.min() > 1e-3 * flat.norm(dim=1).mean()      # no two images coincide
    with torch.no_grad():
        assert (teacher(result.images).argmax(1) == result.labels).all()
    assert result.info["teacher_agreement"] == 1.0
    # without the diversity term several starts converge onto one maximum; with it they do not
    plain = class_vis(teacher, data, ClassVisSettings(per_class=4, start_std=0.3, steps=300),
                      seed=1)
    assert closest_within_class(plain.images, 4) < 1e-2 < closest_within_class(result.images, 4)
    assert (within_class_similarity(result.images, 4).mean()
            < within_class_similarity(plain.images, 4).mean())
    # same seed, same images; another seed, other starting points
    assert torch.equal(class_vis(teacher, data, settings, seed=1).images, result.images)
    assert not torch.equal(class_vis(teacher, data, settings, seed=2).images, result.images)


def test_image_priors_do_what_they_say():
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 4] = 1.0
    blurred = gaussian_blur(image, 1.0)
    assert torch.isclose(blurred.sum(), torch.tensor(1.0), atol=1e-5)
    assert blurred[0, 0, 4, 4] < 1.0 and blurred[0, 0, 4, 5] > 0
    assert total_variation(blurred) < total_variation(image)
    assert total_variation(torch.ones(2, 1, 5, 5)).eq(0).all()
    data = toy_data(classes=2)
    teacher = build_model(LINEAR, data.image_shape, data.num_classes, 0)
    fit(teacher, data.train_x, data.train_y, TeacherTraining(epochs=2, batch_size=20), 0)
    clipped = class_vis(teacher, data, ClassVisSettings(clip=True, jitter=1, tv=0.1, steps=50))
    assert clipped.images.min() >= 0 and clipped.images.max() <= 1
    assert clipped.info["steps"] == 50   # priors keep the images moving: all steps run


@pytest.mark.parametrize("mapping, message", [
    ({"per_class": 3}, "extractor.start_std: expected a number > 0 when per_class > 1"),
    ({"per_class": 0}, "extractor.per_class: expected an integer >= 1"),
    ({"l2": 20.0}, "extractor.lr: expected lr * (2 * l2 + 16 * tv) < 2"),
])
def test_bad_extraction_settings_name_the_key(mapping, message):
    with pytest.raises(ConfigError) as error:
        parse(ClassVisSettings, mapping, "extractor")
    assert str(error.value).startswith(message)


@pytest.mark.slow
def test_section8_and_section10_presets_run_and_report(tmp_path, capsys):
    from test_train_e2e import all_artifacts, client_for, train

    db = tmp_path / "mlflow.db"
    common = ["dataset=digits", f"tracking.uri=sqlite:///{db}", "trainer.teacher.epochs=3",
              f"teacher_cache.dir={tmp_path}/teachers"]
    section8 = train(tmp_path, "+experiment=section8", "tracking.experiment=s8", *common,
                     f"hydra.sweep.dir={tmp_path}/s8")
    assert section8.returncode == 0, section8.stderr[-3000:]
    section10 = train(tmp_path, "+experiment=section10", "tracking.experiment=s10", *common,
                      "+experiment/section10=k1,k10", "trainer.student.steps=300",
                      "extractor.steps=300", f"hydra.sweep.dir={tmp_path}/s10")
    assert section10.returncode == 0, section10.stderr[-3000:]

    client = client_for(db)
    runs = training_runs(client, [client.get_experiment_by_name("s8").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    # a preset is one sweep: one parent run, whose params name the preset's sweep ("+section8")
    (parent,) = client.search_runs([client.get_experiment_by_name("s8").experiment_id],
                                   filter_string="tags.`classvis.kind` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.info.run_name.startswith("sweep section8: dataset=digits")
    assert "sweep.experiment/section8" in parent.data.params
    swaps = {r.data.tags["swap"]: r for r in runs if "swap" in r.data.tags}
    assert set(swaps) == {"3 from 3-vs-4", "3 from 3-vs-rest"}
    # the readings that match the paper: 3-vs-4 keeps the targets, 3-vs-all is re-scored
    assert swaps["3 from 3-vs-4"].data.tags["swap.targets"] == "keep"
    assert swaps["3 from 3-vs-rest"].data.tags["swap.targets"] == "teacher"
    swap = swaps["3 from 3-vs-4"]
    # the donor teacher is the 3-vs-4 teacher trained by the subset run: reused, not retrained
    subset = next(r for r in runs if r.data.tags.get("classes") == '["3", "4"]')
    assert swap.data.tags["classvis.donor_teacher_key"] == subset.data.tags["classvis.teacher_key"]
    assert swap.data.tags["donor_teacher_origin"] == "cache"
    assert swap.info.run_name == (
        "section8=swap_3_vs_4 | digits | linear -> class_vis (3 from 3-vs-4) -> linear | seed 0")
    metrics = swap.data.metrics
    assert metrics["student/false_positives/3"] > metrics["baseline_student/false_positives/3"]
    assert metrics["student/accuracy"] < metrics["baseline_student/accuracy"]
    assert {"swap/teachers_side_by_side.png", "swap/origin.csv",
            "confusion/baseline_student.png"} <= all_artifacts(client, swap.info.run_id)
    one_vs_rest = next(r for r in runs if r.data.tags.get("one_vs_rest") == "3")
    assert json.loads(one_vs_rest.data.tags["classvis.class_names"]) == ["3", "not 3"]

    runs10 = training_runs(client, [client.get_experiment_by_name("s10").experiment_id])
    by_k = {r.data.tags["per_class"]: r for r in runs10}
    assert set(by_k) == {"1", "10"}
    teacher_key = "classvis.teacher_key"
    assert {r.data.tags[teacher_key] for r in runs10} == {by_k["1"].data.tags[teacher_key]}
    # what each run changed from the paper's recipes is a tag (the report keeps such runs apart)
    assert by_k["10"].data.tags["teacher_variant"] == "epochs=3"
    assert by_k["10"].data.tags["student_variant"] == (
        "lr=0.001, lr_scaling=none, momentum=0.9, steps=300, hidden_init=span")
    assert by_k["10"].data.tags["extractor_variant"] == "steps=300, start_std=0.3, diversity=100.0"
    for k, run in by_k.items():
        m = run.data.metrics
        assert m["synthetic/images"] == 10 * int(k)
        assert m["compressed/trainable_parameters"] == 10 * int(k)
        assert m["compressed/compression_ratio"] == m["teacher/parameters"] / (10 * int(k))
        assert m["teacher/parameters"] == 64 * 30 + 30 + 30 * 10 + 10
        assert 0.3 < m["compressed/accuracy"] <= 1

    capsys.readouterr()
    assert report.main(["--tracking-uri", f"sqlite:///{db}", "--experiment", "s8",
                        "--output", str(tmp_path / "r8")]) == 0
    printed = capsys.readouterr().out
    assert "## Section 8" in printed and "10-class set, 3 from 3-vs-4" in printed
    assert "classes 3, 4" in printed and "3 vs rest (all images)" in printed
    assert "# Table 5" not in printed
    assert report.main(["--tracking-uri", f"sqlite:///{db}", "--experiment", "s10",
                        "--output", str(tmp_path / "r10"), "--no-log"]) == 0
    with (tmp_path / "r10" / "section10.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Per class"] for row in rows] == ["1", "10"]
    assert [row["Images"] for row in rows] == ["10", "100"]
    assert (tmp_path / "r10" / "accuracy_vs_images_digits_mlp30_mlp30.png").stat().st_size > 0


@pytest.mark.slow
def test_section10_paper_preset_trains_its_teacher_for_steps_once(tmp_path):
    """The paper-reproducing Section 10 preset on digits: a sigmoid, Glorot-initialised teacher
    trained for a number of steps goes through the teacher cache, and the student starts from
    the teacher's initial weights."""
    from test_train_e2e import client_for, train

    db = tmp_path / "mlflow.db"
    common = ["dataset=digits", f"tracking.uri=sqlite:///{db}", "trainer.teacher.steps=300",
              f"teacher_cache.dir={tmp_path}/teachers", "+experiment/section10=k1",
              "trainer.student.steps=300"]
    first = train(tmp_path, "+experiment=section10_paper", *common,
                  f"hydra.sweep.dir={tmp_path}/a")
    assert first.returncode == 0, first.stderr[-3000:]
    again = train(tmp_path, "+experiment=section10_paper", *common, "force=true",
                  f"hydra.sweep.dir={tmp_path}/b")
    assert again.returncode == 0, again.stderr[-3000:]
    client = client_for(db)
    runs = training_runs(client, [client.get_experiment_by_name("section10_paper").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.data.tags["teacher_origin"] for r in runs] == ["trained", "cache"]
    assert runs[0].data.tags["classvis.teacher_key"] == runs[1].data.tags["classvis.teacher_key"]
    assert runs[0].data.tags["teacher"] == "mlp30-sigmoid"
    assert runs[0].data.tags["teacher_variant"] == "epochs=None, steps=300"
    assert "start=teacher_init" in runs[0].data.tags["student_variant"]
    # the stored per-epoch losses: 300 steps of batch 100 over 1,347 images = 22 passes
    history = client.get_metric_history(runs[1].info.run_id, "teacher/loss")
    assert len(history) == math.ceil(300 / math.ceil(1347 / 100)) == 22
    for run in runs:
        metrics = run.data.metrics
        assert metrics["teacher/accuracy"] == runs[0].data.metrics["teacher/accuracy"] > 0.9
        assert metrics["student/accuracy"] == runs[0].data.metrics["student/accuracy"] > 0.5
        assert metrics["compressed/trainable_parameters"] == 10
