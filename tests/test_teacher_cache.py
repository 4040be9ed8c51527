"""Teachers are trained once per key, reloaded safely, and retrained when anything changes."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from conftest import MaliciousPickle, flip_data_byte, truncate
from test_numeric import toy_data

from classvis import fit as fit_module
from classvis.fit import TeacherTraining, fit
from classvis.models import DenseSettings, build_model
from classvis.teacher_cache import TeacherCacheSettings, obtain_teacher, teacher_key

LINEAR = DenseSettings(name="linear")
TRAINING = TeacherTraining(lr=0.5, batch_size=20, epochs=3)


def obtain(cache_dir, data, architecture=LINEAR, training=TRAINING, seed=0, enabled=True):
    calls = []

    def train(model):
        calls.append(1)
        return fit(model, data.train_x, data.train_y, training, seed)

    key, material = teacher_key(data, architecture, training, seed)
    teacher = obtain_teacher(TeacherCacheSettings(enabled, str(cache_dir)), data, key, material,
                             build=lambda: build_model(architecture, data.image_shape,
                                                       data.num_classes, seed),
                             train=train)
    return teacher, len(calls)


def test_same_settings_reuse_the_trained_teacher(tmp_path):
    data = toy_data()
    first, trained = obtain(tmp_path, data)
    second, retrained = obtain(tmp_path, data)
    assert (first.origin, trained) == ("trained", 1)
    assert (second.origin, retrained) == ("cache", 0)
    assert second.key == first.key and second.epoch_losses == first.epoch_losses
    for (name, a), (_, b) in zip(first.model.state_dict().items(),
                                 second.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and files[0].name.startswith("toy-linear-")


@pytest.mark.parametrize("change", [
    {"training": dataclasses.replace(TRAINING, lr=0.4)},
    {"training": dataclasses.replace(TRAINING, epochs=4)},
    {"training": dataclasses.replace(TRAINING, schedule="cosine")},
    {"architecture": DenseSettings(name="mlp", hidden=(8,))},
    {"architecture": DenseSettings(name="linear", init="default")},
    {"seed": 1},
])
def test_anything_that_shapes_the_teacher_misses_the_cache(tmp_path, change):
    data = toy_data()
    obtain(tmp_path, data)
    teacher, trained = obtain(tmp_path, data, **change)
    assert (teacher.origin, trained) == ("trained", 1)


def test_other_data_misses_the_cache(tmp_path):
    obtain(tmp_path, toy_data())
    other = toy_data()
    other.fingerprint = "another-source"
    assert obtain(tmp_path, other)[0].origin == "trained"
    subset = toy_data()
    subset.class_names = ["c1", "c0", "c2", "c3"]
    assert obtain(tmp_path, subset)[0].origin == "trained"


def test_a_change_to_the_training_code_misses_the_cache(tmp_path, monkeypatch):
    data = toy_data()
    obtain(tmp_path, data)
    monkeypatch.setattr(fit_module, "TRAINING_CODE_VERSION", "changed")
    assert obtain(tmp_path, data)[0].origin == "trained"


def test_disabled_cache_always_trains(tmp_path):
    data = toy_data()
    obtain(tmp_path, data, enabled=False)
    assert obtain(tmp_path, data, enabled=False)[1] == 1
    assert not list(tmp_path.glob("*.safetensors"))


def test_a_crafted_pickle_in_the_cache_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = toy_data()
    first, _ = obtain(tmp_path / "cache", data)
    (cached,) = (tmp_path / "cache").glob("*.safetensors")
    cached.write_bytes(pickle.dumps(MaliciousPickle()))
    teacher, trained = obtain(tmp_path / "cache", data)
    assert (teacher.origin, trained) == ("trained", 1)
    assert not (tmp_path / "PWNED").exists()
    assert obtain(tmp_path / "cache", data)[0].origin == "cache"  # rewritten as safetensors


@pytest.mark.parametrize("damage,why", [
    (flip_data_byte, "its content does not match its digest"),
    (truncate, "it cannot be read"),
])
def test_a_damaged_entry_is_reported_in_one_line_and_retrained(tmp_path, caplog, damage, why):
    data = toy_data()
    first, _ = obtain(tmp_path, data)
    (cached,) = tmp_path.glob("*.safetensors")
    damage(cached)
    with caplog.at_level("WARNING", logger="classvis"):
        again, trained = obtain(tmp_path, data)
    assert (again.origin, trained) == ("trained", 1)
    (line,) = [r.getMessage() for r in caplog.records if "teacher cache" in r.getMessage()]
    assert line.startswith(f"discarding teacher cache entry {cached}: {why}")
    assert line.endswith("training the teacher again") and "\n" not in line
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)  # the same seed retrains the same teacher
    assert obtain(tmp_path, data)[0].origin == "cache"  # and the entry is sound again


def test_a_consistent_entry_with_wrong_weights_is_caught_by_its_test_accuracy(tmp_path, caplog):
    """Weight rows reversed and the digest recomputed: the bytes check out, the teacher does not;
    its test accuracy, measured again on load against the one recorded, discards it."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from classvis.integrity import DIGEST_KEY, tensors_digest

    data = toy_data()
    first, _ = obtain(tmp_path, data)
    (cached,) = tmp_path.glob("*.safetensors")
    with safe_open(str(cached), framework="pt") as handle:
        header = handle.metadata()
        state = {name: handle.get_tensor(name) for name in handle.keys()}
    recorded = float(header["test_accuracy"])
    assert recorded > 0.5
    state = {name: tensor.flip(0).contiguous() for name, tensor in state.items()}
    save_file(state, str(cached), metadata={**header, DIGEST_KEY: tensors_digest(state)})
    with caplog.at_level("WARNING", logger="classvis"):
        again, trained = obtain(tmp_path, data)
    assert (again.origin, trained) == ("trained", 1)
    (line,) = [r.getMessage() for r in caplog.records if "teacher cache" in r.getMessage()]
    assert f"where {recorded:.2%} was recorded when it was trained" in line
    assert obtain(tmp_path, data)[0].origin == "cache"


def test_an_entry_replaced_by_another_kind_of_file_says_why_it_is_retrained(tmp_path, caplog):
    from safetensors.torch import save_file

    data = toy_data()
    obtain(tmp_path, data)
    (cached,) = tmp_path.glob("*.safetensors")
    save_file({"weight": torch.zeros(2, 2)}, str(cached), metadata={"format": "pt"})
    with caplog.at_level("WARNING", logger="classvis"):
        assert obtain(tmp_path, data)[1] == 1
    (line,) = [r.getMessage() for r in caplog.records if "teacher cache" in r.getMessage()]
    assert "it is not a classvis teacher entry (format 'pt', expected classvis.teacher/3)" in line
