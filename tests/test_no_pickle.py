"""Nothing the project reads back is unpickled: a file crafted to run code when unpickled (it
would write ./PWNED), placed at every path the project reads tensors from, never runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import MaliciousPickle, make_image_folder, make_mnist

from classvis.data import DatasetSettings, load_dataset
from classvis.validation import parse

PAYLOAD = pickle.dumps(MaliciousPickle())


def _settings(loader: str, root: Path, cache: Path) -> DatasetSettings:
    extra = {"torchvision_class": "MNIST", "download": False} if loader == "torchvision" else {}
    return parse(DatasetSettings, {"name": "set", "loader": loader, "root": str(root),
                                   "cache_dir": str(cache), **extra}, "dataset")


@pytest.mark.parametrize("loader", ["torchvision", "image_folder"])
def test_a_payload_as_the_dataset_cache_never_runs(tmp_path, monkeypatch, loader):
    monkeypatch.chdir(tmp_path)
    root = (make_mnist(tmp_path / "data") if loader == "torchvision"
            else make_image_folder(tmp_path / "data"))
    settings = _settings(loader, root, tmp_path / "cache")
    sound = load_dataset(settings)
    (cache,) = (tmp_path / "cache").glob("set-*.safetensors")
    cache.write_bytes(PAYLOAD)
    again = load_dataset(settings)  # decoded again, the payload discarded
    assert torch.equal(again.train_x, sound.train_x)
    assert not (tmp_path / "PWNED").exists()


def test_payloads_as_torchvisions_processed_files_never_run(tmp_path, monkeypatch):
    """torchvision's MNIST reads legacy ``processed/*.pt`` files when they exist."""
    monkeypatch.chdir(tmp_path)
    root = make_mnist(tmp_path / "data")
    (root / "MNIST" / "processed").mkdir()
    for name in ("training.pt", "test.pt"):
        (root / "MNIST" / "processed" / name).write_bytes(PAYLOAD)
    try:
        load_dataset(_settings("torchvision", root, tmp_path / "cache"))
    except Exception as error:  # refusing the payload is as good as ignoring it
        assert "PWNED" not in str(error)
    assert not (tmp_path / "PWNED").exists()


def test_a_payload_as_a_logged_models_weights_never_runs(tmp_path, monkeypatch):
    import shutil

    import mlflow

    from classvis.models import build_model, describe_model, parse_architecture
    from classvis.runrecords import ModelRecord
    from classvis.track.connect import connect
    from classvis.track.runs import tracked_run
    from classvis.track.settings import TrackingSettings

    monkeypatch.chdir(tmp_path)
    settings = parse_architecture({"name": "linear"}, "student")
    network = build_model(settings, (1, 8, 8), 3, seed=0)
    connect(TrackingSettings(f"sqlite:///{tmp_path / 'mlflow.db'}", "pickles"))
    with tracked_run("model", {}) as run:
        uri = run.log_models([ModelRecord("student", network, describe_model(
            settings, (1, 8, 8), 3), torch.rand(2, 1, 8, 8))])["student"]
    folder = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    mlflow.set_tracking_uri(None)
    shutil.copytree(folder, tmp_path / "tampered")
    (tmp_path / "tampered" / "artifacts" / "weights.safetensors").write_bytes(PAYLOAD)
    with pytest.raises(Exception):  # noqa: B017  (safetensors' own error type)
        mlflow.pyfunc.load_model(str(tmp_path / "tampered"))
    assert not (tmp_path / "PWNED").exists()
