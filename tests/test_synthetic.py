"""The synthetic set file loads back exactly and is never unpickled."""

from __future__ import annotations

import pickle

import pytest
import torch
from conftest import MaliciousPickle, flip_data_byte, truncate
from safetensors.torch import save_file

from classvis.runkeys import metric_key
from classvis.runparams import used_params
from classvis.synthetic import SyntheticSet


def test_round_trip_is_exact(tmp_path):
    original = SyntheticSet(images=torch.randn(20, 3, 5, 5), soft_targets=torch.randn(20, 10),
                            labels=torch.arange(20) % 10,
                            class_names=["T-shirt/top", "Trouser", "Ankle boot"] + list("abcdefg"),
                            metadata={"dataset": "fmnist", "teacher": "linear"})
    original.save(tmp_path / "set.safetensors")
    loaded = SyntheticSet.load(tmp_path / "set.safetensors")
    assert torch.equal(loaded.images, original.images)
    assert torch.equal(loaded.soft_targets, original.soft_targets)
    assert torch.equal(loaded.labels, original.labels) and loaded.labels.dtype == torch.int64
    assert loaded.class_names == original.class_names
    assert loaded.metadata == original.metadata
    assert loaded.image_shape == (3, 5, 5)


def test_a_pickle_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crafted = tmp_path / "set.safetensors"
    crafted.write_bytes(pickle.dumps(MaliciousPickle()))
    with pytest.raises(ValueError, match="not a safetensors file"):
        SyntheticSet.load(crafted)
    assert not (tmp_path / "PWNED").exists()


def _sound_set(**change) -> SyntheticSet:
    values = {"images": torch.rand(6, 1, 4, 4), "soft_targets": torch.randn(6, 3),
              "labels": torch.tensor([0, 1, 2, 0, 1, 2]), "class_names": ["a", "b", "c"]}
    return SyntheticSet(**{**values, **change})


def _raw(path, header_change=None, **tensors):
    """A file written without SyntheticSet.save: what a foreign tool or a hand edit leaves."""
    sound = _sound_set()
    values = {"images": sound.images, "soft_targets": sound.soft_targets,
              "labels": sound.labels, **tensors}
    header = {"format": "classvis.synthetic_set/1", "class_names": '["a", "b", "c"]',
              "image_shape": "[1, 4, 4]", **(header_change or {})}
    save_file(values, str(path), metadata=header)


@pytest.mark.parametrize("make,problem", [
    (lambda p: (_sound_set().save(p), flip_data_byte(p)), "damaged synthetic set (its content "
     "does not match its digest)"),
    (lambda p: (_sound_set().save(p), truncate(p, keep=0.9)), "not a safetensors file"),
    (lambda p: _sound_set(images=torch.full((6, 1, 4, 4), float("nan"))).save(p),
     "unusable synthetic set (its images hold NaN or infinite values)"),
    (lambda p: _sound_set(soft_targets=torch.full((6, 3), float("inf"))).save(p),
     "unusable synthetic set (its soft targets hold NaN or infinite values)"),
    (lambda p: _sound_set(images=torch.rand(0, 1, 4, 4), soft_targets=torch.rand(0, 3),
                          labels=torch.zeros(0, dtype=torch.int64)).save(p),
     "unusable synthetic set (it holds no images)"),
    (lambda p: _sound_set(labels=torch.tensor([0, 1, 2, 0, 1, 7])).save(p),
     "unusable synthetic set (its labels run 0..7, outside 0..2)"),
    (lambda p: _sound_set(labels=torch.tensor([0, 1, 2, 0, 1, -1])).save(p),
     "unusable synthetic set (its labels run -1..2, outside 0..2)"),
    (lambda p: _raw(p, {"class_names": '["a", "b", '}), "bad synthetic set header"),
    (lambda p: _raw(p, {"class_names": '{"a": 1}'}), "bad synthetic set header"),
    (lambda p: _raw(p, labels=torch.rand(6)), "unusable synthetic set (labels must be integers"),
    (lambda p: _raw(p, {"format": "other/1"}), "not a classvis synthetic set"),
    (lambda p: p.write_bytes(b""), "not a safetensors file"),
])
def test_a_damaged_or_unusable_set_is_refused_in_one_line(tmp_path, make, problem):
    path = tmp_path / "set.safetensors"
    make(path)
    with pytest.raises(ValueError) as error:
        SyntheticSet.load(path)
    assert str(error.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(error.value)


def test_a_set_without_a_digest_is_refused_unless_allowed(tmp_path, caplog):
    path = tmp_path / "old.safetensors"
    _raw(path, images=torch.full((6, 1, 4, 4), 0.5) + torch.arange(6.0).view(6, 1, 1, 1))
    with pytest.raises(ValueError) as error:
        SyntheticSet.load(path)
    assert str(error.value) == (f"{path}: unverifiable synthetic set (no sha256 digest in its "
                                "header; dataset.allow_undigested=true reads it as it is)")
    with caplog.at_level("WARNING"):
        assert SyntheticSet.load(path, allow_undigested=True).class_names == ["a", "b", "c"]
    assert "synthetic set without a digest, read as it is" in caplog.text


@pytest.mark.parametrize("images,problem", [
    (torch.full((6, 1, 4, 4), 3e38), "its values reach 3e+38, beyond +-1e+06"),
    (torch.full((6, 1, 4, 4), 0.25), "its images are all the same"),
])
def test_absurd_values_are_refused_digest_or_not(tmp_path, images, problem):
    for allowed, write in ((False, lambda p: _sound_set(images=images).save(p)),
                           (True, lambda p: _raw(p, images=images))):
        path = tmp_path / f"set-{allowed}.safetensors"
        write(path)
        with pytest.raises(ValueError) as error:
            SyntheticSet.load(path, allow_undigested=allowed)
        assert str(error.value) == f"{path}: unusable synthetic set ({problem})"


def test_metric_keys_and_params_are_mlflow_safe():
    assert metric_key("T-shirt/top") == "T-shirt_top"
    assert metric_key("Ankle boot") == "Ankle boot"
    assert metric_key("3") == "3"
    assert used_params({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]"}


def test_a_set_relabelled_as_raw_bytes_loads_back_the_same(tmp_path):
    """What export does without torch: the digest from the bytes equals the tensors' digest, and
    a header changed and written back leaves the tensors as they were."""
    from classvis.integrity import RawSafetensors

    original = _sound_set()
    original.save(tmp_path / "set.safetensors")
    raw = RawSafetensors.read(tmp_path / "set.safetensors")
    assert raw.digest() == raw.metadata["sha256"]
    assert raw.shape("images") == (6, 1, 4, 4)
    raw.metadata["run_id"] = "abc"
    raw.write(tmp_path / "relabelled.safetensors")
    loaded = SyntheticSet.load(tmp_path / "relabelled.safetensors")
    assert torch.equal(loaded.images, original.images) and loaded.metadata["run_id"] == "abc"
    flip_data_byte(tmp_path / "relabelled.safetensors")
    assert RawSafetensors.read(tmp_path / "relabelled.safetensors").digest() != raw.digest()


def test_export_does_not_import_torch():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, classvis.cli, classvis.export; "
                           "print('torch' in sys.modules)"], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
