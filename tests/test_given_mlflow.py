"""``teacher_from=mlflow``: a teacher classvis logged (``tracking.log_models=all``), registered
and given back by its model URI, gives the same run as the run that trained it, and the new
run links to the model; nothing is unpickled, and a pickled ``mlflow.pytorch`` model, a URI
that does not exist or a model of another architecture is refused in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, training_runs
from test_config import settings_for

from classvis.validation import ConfigError

DIGITS = ["dataset=digits", "trainer.teacher.epochs=3", "trainer.student.steps=100",
          "device=cpu", "privacy.enabled=false"]


def train(store, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *DIGITS, *overrides,
                           f"tracking.uri={store}"],
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A run that logged its teacher, and that teacher registered as ``digits-teacher`` v1."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow-teacher")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    done = train(store, "tracking.log_models=all", f"teacher_cache.dir={folder / 'cache'}",
                 "tracking.experiment=source")
    assert done.returncode == 0, done.stderr[-2000:]
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("source").experiment_id
    (run,) = training_runs(client, [experiment])
    (teacher,) = [model for model in client.search_logged_models([experiment])
                  if model.name == "digits-linear-teacher"]
    mlflow.set_tracking_uri(store)
    try:
        mlflow.register_model(f"models:/{teacher.model_id}", "digits-teacher")
    finally:
        mlflow.set_tracking_uri(None)
    yield store, client, run, teacher


@pytest.mark.slow
def test_a_registered_teacher_gives_the_run_that_trained_it_and_is_linked(registered):
    store, client, source, teacher = registered
    done = train(store, "teacher_from=mlflow", "teacher_from.uri=models:/digits-teacher/1",
                 "tracking.experiment=given")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "linear [mlflow] -> class_vis -> linear" in done.stdout
    experiment = client.get_experiment_by_name("given").experiment_id
    (run,) = training_runs(client, [experiment])
    for metric in ("teacher/accuracy", "student/accuracy", "untrained/accuracy"):
        assert run.data.metrics[metric] == source.data.metrics[metric], metric
    assert run.data.tags["teacher_origin"] == "mlflow"
    assert run.data.tags["teacher_weights"] == "models:/digits-teacher/1"
    linked = client.get_run(run.info.run_id).inputs.model_inputs
    assert [model.model_id for model in linked] == [teacher.model_id]
    assert "teacher/loss" not in run.data.metrics  # not trained here


@pytest.mark.slow
def test_a_logged_teacher_by_its_model_id_and_a_wrong_architecture(registered, tmp_path):
    store, _, _, teacher = registered
    base = [*DIGITS, f"tracking.uri={store}", "teacher_from=mlflow"]
    import mlflow

    settings = settings_for(*base, f"teacher_from.uri=models:/{teacher.model_id}")
    assert settings.teacher_model_id == teacher.model_id
    assert settings.given_weights is not None
    assert settings_for(*base, "teacher_from.uri=models:/digits-teacher/1").teacher_model_id \
        == teacher.model_id
    # MLflow's global URIs are left alone: the registry still follows the tracking URI
    other = f"sqlite:///{tmp_path / 'other.db'}"
    mlflow.set_tracking_uri(other)
    try:
        assert mlflow.get_registry_uri() == other
    finally:
        mlflow.set_tracking_uri(None)
    with pytest.raises(ConfigError) as refused:
        settings_for(*base, "teacher_from.uri=models:/digits-teacher/1",
                     "architecture@teacher=mlp")
    assert str(refused.value).startswith(
        "architecture@teacher: expected the logged teacher's architecture, linear "
        "(architecture@teacher=linear with its keys as logged")
    with pytest.raises(ConfigError) as refused:
        settings_for(*base, "teacher_from.uri=models:/no-such-model/1")
    assert str(refused.value).startswith(
        f"teacher_from.uri: expected an MLflow model in {store}, got 'models:/no-such-model/1: ")
    assert "\n" not in str(refused.value)


@pytest.mark.slow
def test_a_pickled_mlflow_pytorch_model_is_refused(registered):
    import mlflow
    import torch

    store, *_ = registered
    mlflow.set_tracking_uri(store)
    try:
        with mlflow.start_run():
            info = mlflow.pytorch.log_model(torch.nn.Linear(64, 10), name="pickled",
                                            pip_requirements=["torch"],
                                            serialization_format="pickle")
    finally:
        mlflow.set_tracking_uri(None)
    with pytest.raises(ConfigError) as refused:
        settings_for(*DIGITS, f"tracking.uri={store}", "teacher_from=mlflow",
                     f"teacher_from.uri={info.model_uri}")
    assert str(refused.value) == (
        f"teacher_from.uri: expected a model classvis logged (weights as safetensors), got "
        f"'{info.model_uri} is an mlflow.pytorch model, a pickled module: loading it would "
        f"unpickle it (teacher_from.unpickle=true loads it anyway, running any code the file "
        f"holds)'")


@pytest.mark.parametrize("overrides,message", [
    (["teacher_from=mlflow"], "teacher_from.uri: expected a value"),
    (["teacher_from=mlflow", "teacher_from.uri=models:/t/1", "teacher_from.path=w.pt"],
     "teacher_from.path: expected null with teacher_from=mlflow (the weights come with the "
     "model), got"),
    (["teacher_from=weights", "teacher_from.path=w.pt", "+teacher_from.uri=models:/t/1"],
     "teacher_from.uri: expected null unless teacher_from=mlflow, got 'models:/t/1'"),
])
def test_an_mlflow_teacher_needs_its_uri_and_nothing_else(overrides, message, tmp_path):
    with pytest.raises(ConfigError) as refused:
        settings_for(*DIGITS, f"tracking.uri=sqlite:///{tmp_path / 'm.db'}", *overrides)
    assert str(refused.value).startswith(message), str(refused.value)
    assert not (tmp_path / "m.db").exists()  # refused before the store is touched


def test_an_mlflow_teacher_from_a_store_not_made_yet_is_refused_without_making_it(tmp_path):
    store = tmp_path / "none.db"
    with pytest.raises(ConfigError) as refused:
        settings_for(*DIGITS, f"tracking.uri=sqlite:///{store}", "teacher_from=mlflow",
                     "teacher_from.uri=models:/t/1")
    assert str(refused.value) == (f"teacher_from.uri: expected an MLflow model in "
                                  f"sqlite:///{store}, got 'models:/t/1: no store at {store}'")
    assert not store.exists()


@pytest.mark.slow
def test_a_pickled_model_loads_only_by_opt_in_with_a_warning_keeping_its_weights(
        registered, capfd):
    """``teacher_from.unpickle=true``: the pickled module is loaded (a warning says it runs its
    code) and its state dict is the weights of the architecture the run declares, a built-in
    one or your own class; the run equals the one with those weights from a file."""
    import mlflow
    import torch
    from user_networks import Linear

    store, *_ = registered
    network = Linear()
    torch.nn.init.normal_(network.fc.weight)
    mlflow.set_tracking_uri(store)
    try:
        with mlflow.start_run():
            info = mlflow.pytorch.log_model(network, name="pickled-user",
                                            pip_requirements=["torch"],
                                            serialization_format="pickle")
    finally:
        mlflow.set_tracking_uri(None)
    uri = f"teacher_from.uri={info.model_uri}"
    mine = ["teacher.network._target_=user_networks.Linear", "teacher.height=8",
            "teacher.width=8"]
    capfd.readouterr()
    settings = settings_for(*DIGITS, f"tracking.uri={store}", "teacher_from=mlflow", uri,
                            "teacher_from.unpickle=true", "architecture@teacher=module", *mine)
    warned = capfd.readouterr().err
    assert "classvis: warning: teacher_from.unpickle=true: loading" in warned
    assert "runs any code the file holds" in warned
    assert all(torch.equal(settings.given_weights.state[key], value)
               for key, value in network.state_dict().items())
    with pytest.raises(ConfigError, match=r"^teacher_from.uri: expected weights that fit "
                                          r"architecture@teacher=linear"):
        settings_for(*DIGITS, f"tracking.uri={store}", "teacher_from=mlflow", uri,
                     "teacher_from.unpickle=true")  # a Linear's keys are not the built-in's
    with pytest.raises(ConfigError, match=r"^teacher_from.unpickle: expected false unless "
                                          r"teacher_from=mlflow"):
        settings_for(*DIGITS, "+teacher_from.unpickle=true")
