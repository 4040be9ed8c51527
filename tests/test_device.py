"""Every stage runs on the run's device; a device the machine lacks is refused at the door."""

from __future__ import annotations

import pytest
import torch
from conftest import training_runs
from test_config import settings_for
from test_numeric import toy_data

from classvis import device as device_module
from classvis.device import device_name, resolve_device
from classvis.validation import ConfigError

CUDA = torch.cuda.is_available()


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


def test_auto_is_the_cpu_without_an_accelerator(no_accelerator):
    assert resolve_device("auto") == resolve_device("cpu") == "cpu"
    assert settings_for("dataset=digits").device == "cpu"
    assert device_name("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda:0"
    assert resolve_device("cuda") == "cuda:0" and resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert resolve_device("auto") == resolve_device("mps") == "mps"


@pytest.mark.parametrize("name, message", [
    ("cuda", "device: expected auto or cpu on this machine (CUDA is not available), got 'cuda'"),
    ("cuda:0", "device: expected auto or cpu on this machine (CUDA is not available)"),
    ("mps", "device: expected auto or cpu on this machine (MPS is not available), got 'mps'"),
    ("gpu", "device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("cuda:x", "device: expected auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
])
def test_a_device_this_machine_lacks_is_one_line_at_the_door(no_accelerator, name, message):
    with pytest.raises(ConfigError) as error:
        settings_for("dataset=digits", f"device={name}")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_cuda_index_beyond_the_devices_present_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"^device: expected cuda:0 to cuda:0 \(1 CUDA devices "
                                          r"here\), got 'cuda:7'$"):
        resolve_device("cuda:7")


def test_moving_a_dataset_keeps_it_and_is_free_on_its_own_device():
    data = toy_data()
    assert data.to("cpu") is data
    assert data.to(torch.device("cpu")) is data


@pytest.mark.slow
@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_train_py_with_cuda_on_a_cpu_machine_fails_before_any_run(tmp_path):
    from test_train_e2e import client_for, train

    db = tmp_path / "mlflow.db"
    result = train(tmp_path, "dataset=digits", "device=cuda", f"tracking.uri=sqlite:///{db}")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("classvis:")]
    assert errors == ["classvis: error: invalid config: device: expected auto or cpu on this "
                      "machine (CUDA is not available), got 'cuda'"]
    assert not db.exists() or not client_for(db).search_runs(
        [e.experiment_id for e in client_for(db).search_experiments()])


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (none on this machine)")
def test_a_run_on_cuda_logs_its_device_and_its_teacher_loads_on_the_cpu(tmp_path):
    from test_train_e2e import client_for, train

    db = tmp_path / "mlflow.db"
    common = ["dataset=digits", f"tracking.uri=sqlite:///{db}", "trainer.teacher.epochs=3",
              f"teacher_cache.dir={tmp_path}/teachers", "compress=biases"]
    on_gpu = train(tmp_path, *common, "device=cuda")
    assert on_gpu.returncode == 0, on_gpu.stderr[-3000:]
    on_cpu = train(tmp_path, *common, "device=cpu")
    assert on_cpu.returncode == 0, on_cpu.stderr[-3000:]
    client = client_for(db)
    runs = training_runs(client, [client.get_experiment_by_name("classvis").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.data.tags["device"] for r in runs] == ["cuda:0", "cpu"]
    assert runs[0].data.tags["device_name"] == torch.cuda.get_device_name(0)
    # the teacher trained on the GPU is the CPU run's teacher, from the cache
    assert [r.data.tags["teacher_origin"] for r in runs] == ["trained", "cache"]
    assert (runs[0].data.metrics["teacher/accuracy"]
            == runs[1].data.metrics["teacher/accuracy"] > 0.85)
    for run in runs:
        assert run.data.metrics["student/accuracy"] > 0.8
