"""The synthetic set file loads back exactly and is never unpickled."""

from __future__ import annotations

import pickle

import pytest
import torch
from conftest import MaliciousPickle

from classvis.runkeys import metric_key
from classvis.synthetic import SyntheticSet
from classvis.track import flatten


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


def test_metric_keys_and_params_are_mlflow_safe():
    assert metric_key("T-shirt/top") == "T-shirt_top"
    assert metric_key("Ankle boot") == "Ankle boot"
    assert metric_key("3") == "3"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]",
                                                                 "d": "None"}
