"""The options the paper's Section 10 and Section 8 protocols need: a teacher trained for a number
of steps, Glorot initialisation, a student started from the teacher's initial weights, and the
ways a one-vs-rest task is balanced."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_config import settings_for
from test_experiments import digits
from test_numeric import toy_data

from classvis import fit as fit_module
from classvis.data import load_dataset
from classvis.fit import TeacherTraining, fit
from classvis.models import DenseSettings, build_model
from classvis.stages import stage_seed, train_student
from classvis.validation import ConfigError, parse

SIGMOID = DenseSettings(name="mlp", hidden=(8,), activation="sigmoid", init="glorot")


def test_a_teacher_trained_for_steps_takes_exactly_that_many(monkeypatch):
    data = toy_data()   # 200 images: 10 minibatches of 20 per epoch
    steps = []
    make_optimizer = fit_module.make_optimizer

    def counting(*args, **kwargs):
        optimizer = make_optimizer(*args, **kwargs)
        step = optimizer.step
        optimizer.step = lambda *a, **k: steps.append(1) or step(*a, **k)
        return optimizer

    monkeypatch.setattr(fit_module, "make_optimizer", counting)
    model = build_model(SIGMOID, data.image_shape, data.num_classes, 0)
    losses = fit(model, data.train_x, data.train_y,
                 TeacherTraining(batch_size=20, epochs=None, steps=25), seed=0)
    assert len(steps) == 25
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)  # 10 + 10 + 5
    # steps that make whole epochs train exactly as those epochs do
    by_epochs, by_steps = (build_model(SIGMOID, data.image_shape, data.num_classes, 0)
                           for _ in range(2))
    a = fit(by_epochs, data.train_x, data.train_y, TeacherTraining(batch_size=20, epochs=2), 0)
    b = fit(by_steps, data.train_x, data.train_y,
            TeacherTraining(batch_size=20, epochs=None, steps=20), 0)
    assert a == b
    for p, q in zip(by_epochs.parameters(), by_steps.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("mapping, message", [
    ({"steps": 100}, "trainer.teacher.steps: expected null when epochs is set"),
    ({"epochs": None}, "trainer.teacher.steps: expected null when epochs is set (set epochs=null"),
    ({"epochs": None, "steps": 0}, "trainer.teacher.steps: expected an integer >= 1, got 0"),
])
def test_epochs_and_steps_exclude_each_other(mapping, message):
    with pytest.raises(ConfigError) as error:
        parse(TeacherTraining, mapping, "trainer.teacher")
    assert str(error.value).startswith(message)


def test_glorot_init_draws_every_weight_uniformly_within_its_bound_and_zeroes_biases():
    model = build_model(DenseSettings(name="mlp", hidden=(30,), init="glorot"),
                        (1, 28, 28), 10, seed=3)
    for layer in (model[1], model[3]):
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.95 * bound          # fills the interval
        assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound
        assert torch.count_nonzero(layer.bias) == 0
    again = build_model(DenseSettings(name="mlp", hidden=(30,), init="glorot"),
                        (1, 28, 28), 10, seed=3)
    assert torch.equal(again[1].weight, model[1].weight)


def test_a_student_started_from_the_teachers_init_starts_from_its_exact_weights():
    settings = settings_for("dataset=digits", "+experiment=section10_paper",
                            "trainer.student.steps=1")
    assert settings.trainer.student.start == "teacher_init"
    teacher_start = build_model(settings.teacher, (1, 8, 8), 10,
                                stage_seed(settings.seed, "teacher/init"))
    student, untrained, _ = train_student(settings, (1, 8, 8), 10, torch.rand(10, 1, 8, 8),
                                     torch.zeros(10, 10))
    for p, q in zip(untrained.parameters(), teacher_start.parameters(), strict=True):
        assert torch.equal(p, q)
    own = dataclasses.replace(settings, trainer=dataclasses.replace(
        settings.trainer, student=dataclasses.replace(settings.trainer.student,
                                                      start="own_init")))
    _, own_untrained, _ = train_student(own, (1, 8, 8), 10, torch.rand(10, 1, 8, 8),
                                   torch.zeros(10, 10))
    assert not torch.equal(own_untrained[1].weight, teacher_start[1].weight)


def test_teacher_init_needs_the_teachers_architecture():
    with pytest.raises(ConfigError) as error:
        settings_for("dataset=digits", "+experiment=section10_paper", "student.hidden=[20]")
    message = str(error.value)
    assert message.startswith("trainer.student.start: expected own_init unless the student's "
                              "architecture is the teacher's")
    assert "student mlp20-sigmoid, teacher mlp30-sigmoid" in message and "\n" not in message


def test_one_vs_rest_balance_chooses_the_sets_and_both_test_sets_are_kept():
    full = load_dataset(digits())
    positives_train = int((full.train_y == 3).sum())
    positives_test = int((full.test_y == 3).sum())
    every = load_dataset(digits(one_vs_rest=3), seed=7)
    train_only = load_dataset(digits(one_vs_rest=3, one_vs_rest_balance="train"), seed=7)
    both = load_dataset(digits(one_vs_rest=3, one_vs_rest_balance="train_and_test"), seed=7)
    # none: every image, relabelled 3 / not 3
    assert len(every.train_y) == len(full.train_y) and len(every.test_y) == len(full.test_y)
    assert int((every.train_y == 0).sum()) == positives_train
    assert sorted(every.train_x.flatten(1).sum(1).tolist()) == sorted(
        full.train_x.flatten(1).sum(1).tolist())
    # train: a balanced training set, the whole test set
    assert len(train_only.train_y) == 2 * positives_train
    assert len(train_only.test_y) == len(full.test_y)
    # train_and_test: both balanced, as before this option existed
    assert len(both.train_y) == 2 * positives_train and len(both.test_y) == 2 * positives_test
    for data in (every, train_only, both):
        assert set(data.test_views) == {"full", "balanced"}
        full_x, full_y = data.test_views["full"]
        small_x, small_y = data.test_views["balanced"]
        assert len(full_y) == len(full.test_y) and len(small_y) == 2 * positives_test
        assert int((small_y == 0).sum()) == int((small_y == 1).sum()) == positives_test
    # the balanced test set is the same draw whatever the setting, and the test set is a view
    assert torch.equal(every.test_views["balanced"][0], both.test_x)
    assert torch.equal(both.test_views["balanced"][0], train_only.test_views["balanced"][0])
    assert every.test_x is every.test_views["full"][0]
    assert torch.equal(train_only.train_x, both.train_x)
    # teachers trained on different sets never share a cache entry
    assert len({every.fingerprint, train_only.fingerprint, both.fingerprint}) == 3
    assert not load_dataset(digits()).test_views


def test_one_vs_rest_runs_name_their_balance():
    assert settings_for("dataset=digits", "dataset.one_vs_rest=3").dataset_label == (
        "digits[3 vs rest]")
    balanced = settings_for("dataset=digits", "dataset.one_vs_rest=3",
                            "dataset.one_vs_rest_balance=train")
    assert balanced.dataset_label == "digits[3 vs rest, balanced train set]"
    assert balanced.one_vs_rest_balance == "train"
    assert settings_for("dataset=digits").one_vs_rest_balance is None
    swap = settings_for("dataset=digits", "swap=3_vs_all")
    assert swap.one_vs_rest_balance == "none"
    with pytest.raises(ConfigError, match=r"^dataset.one_vs_rest_balance: expected one of "
                                          r"'none', 'train', 'train_and_test', got 'test'"):
        settings_for("dataset=digits", "dataset.one_vs_rest_balance=test")
