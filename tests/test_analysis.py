"""analysis/avg_images_ceiling.py: its closed form describes the students the pipeline trains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from test_numeric import LINEAR, toy_data, trained_teacher

from classvis.distill import StudentTraining, distill
from classvis.extract import NoSettings, class_average, soft_targets
from classvis.models import build_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("avg_images_ceiling",
                                              ROOT / "analysis" / "avg_images_ceiling.py")
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def averages_setup():
    data = toy_data(classes=4, per_class=40, side=5)
    teacher = trained_teacher(data)
    images = class_average(teacher, data, NoSettings()).images
    return data, teacher, images, soft_targets(teacher, images)


def test_every_member_of_the_family_fits_the_teacher_on_the_images():
    data, teacher, images, targets = averages_setup()
    family = ceiling.interpolating_family(images.flatten(1), targets, images.flatten(1))
    for bias in (torch.zeros(4), torch.randn(4, generator=torch.Generator().manual_seed(0))):
        assert torch.allclose(family.scores(bias.double()), targets.double(), atol=1e-6)
    assert torch.allclose(ceiling.minimum_norm_scores(images.flatten(1), targets,
                                                      images.flatten(1)),
                          targets.double(), atol=1e-6)


def test_gradient_descent_from_zero_converges_to_the_minimum_norm_fit():
    data, teacher, images, targets = averages_setup()
    student = build_model(LINEAR, data.image_shape, data.num_classes, seed=0)
    distill(student, images, targets, StudentTraining(lr=1.0, steps=20_000, tol=1e-12), seed=0)
    with torch.no_grad():
        trained = student(data.test_x).double()
    closed = ceiling.minimum_norm_scores(images.flatten(1), targets, data.test_x.flatten(1))
    assert torch.allclose(trained, closed, atol=1e-2 * closed.abs().max().item())
    # and that student is a member of the family, with some bias
    family = ceiling.interpolating_family(images.flatten(1), targets, data.test_x.flatten(1))
    labels = data.test_y
    oracle = ceiling.oracle_bias(family, labels, steps=200)
    assert family.accuracy(oracle, labels) >= (closed.argmax(1) == labels).double().mean().item()


def test_the_script_runs_on_digits_and_gives_a_verdict(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLASSVIS_CACHE", str(tmp_path / "cache"))
    assert ceiling.main(["--dataset", "digits", "--target", "99.5",
                         "trainer.teacher.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "oracle ceiling" in out and "target 99.50%" in out
