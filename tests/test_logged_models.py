"""Trained networks as MLflow models from code: every architecture loads back, without unpickling,
to the very logits of the network that was logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from classvis.models import build_model, describe_model, parse_architecture
from classvis.runrecords import ModelRecord
from classvis.track.connect import connect
from classvis.track.runs import tracked_run
from classvis.track.settings import TrackingSettings


@pytest.mark.parametrize("architecture,shape", [
    ({"name": "linear"}, (1, 8, 8)),
    ({"name": "mlp", "hidden": [16, 8], "activation": "tanh"}, (1, 8, 8)),
    ({"name": "lenet5"}, (1, 28, 28)),
    ({"name": "convnet", "depth": 2, "width": 4, "norm": "batch"}, (3, 16, 16)),
    ({"name": "resnet18"}, (3, 16, 16)),
])
def test_a_logged_model_loads_to_the_same_logits(tmp_path, architecture, shape):
    import mlflow

    settings = parse_architecture(architecture, "teacher")
    network = build_model(settings, shape, 5, seed=3)
    with torch.no_grad():  # non-default weights and BatchNorm statistics, as after training
        for parameter in network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        for name, buffer in network.named_buffers():
            if name.endswith("running_var"):
                buffer.mul_(2.0)
    network.eval()
    images = torch.rand(6, *shape)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    connect(TrackingSettings(uri, "models"))
    with tracked_run("model", {}) as run:
        uris = run.log_models([ModelRecord("student", network,
                                           describe_model(settings, shape, 5), images[:2])])
    loaded = mlflow.pyfunc.load_model(uris["student"])
    with torch.no_grad():
        expected = network(images).numpy()
    assert (loaded.predict(images.numpy()) == expected).all()
    folder = mlflow.artifacts.download_artifacts(uris["student"], dst_path=str(tmp_path / "m"))
    files = {path.relative_to(folder).as_posix() for path in
             Path(folder).rglob("*") if path.is_file()}
    assert {"MLmodel", "artifacts/weights.safetensors", "artifacts/architecture.json",
            "code/classvis/models/conv.py"} <= files
    assert not any(name.endswith((".pkl", ".pt", ".pth", ".cloudpickle")) for name in files)
    assert json.loads((Path(folder) / "artifacts" / "architecture.json")
                      .read_text())["num_classes"] == 5
    mlflow.set_tracking_uri(None)


def test_a_logged_model_rebuilds_its_network_from_its_own_code(tmp_path):
    """Loading a model imports classvis from the model's folder, not from an installed classvis:
    the model works where classvis is not installed, as the version that logged it."""
    import subprocess
    import sys

    settings = parse_architecture({"name": "mlp", "hidden": [8]}, "student")
    network = build_model(settings, (1, 8, 8), 3, seed=0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    connect(TrackingSettings(uri, "models"))
    with tracked_run("model", {}) as run:
        model_uri = run.log_models([ModelRecord("student", network,
                                                describe_model(settings, (1, 8, 8), 3),
                                                torch.rand(2, 1, 8, 8))])["student"]
    import mlflow

    mlflow.set_tracking_uri(None)
    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, mlflow, numpy\n"
        f"mlflow.set_tracking_uri({uri!r})\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        "print(model.predict(numpy.zeros((4, 1, 8, 8), 'float32')).shape)\n"
        "print(sys.modules['classvis'].__file__)\n")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    shape, where = loaded.stdout.splitlines()[-2:]
    assert shape == "(4, 3)"
    assert Path(where).parts[-4:] == ("artifacts", "code", "classvis", "__init__.py")
