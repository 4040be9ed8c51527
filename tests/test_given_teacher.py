"""``teacher_from=weights``: your own trained weights for a built-in architecture as the teacher.
The same weights give the same run as the teacher classvis trained; every bad file is refused at
the door in one line naming the key; nothing is unpickled; the weights' content keys resume."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import training_runs
from safetensors.torch import save_file
from test_config import settings_for

from classvis import pipeline
from classvis.from_config import config_digest
from classvis.validation import ConfigError

DIGITS = ["dataset=digits", "trainer.teacher.epochs=3", "trainer.student.steps=100",
          "device=cpu", "privacy.enabled=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run whose teacher classvis trained, and that teacher's weights in every accepted form."""
    folder = tmp_path_factory.mktemp("given")
    result = pipeline.run(settings_for(*DIGITS, "teacher_cache.enabled=false"))
    state = {name: tensor.detach().cpu().contiguous()
             for name, tensor in result.teacher.state_dict().items()}
    save_file(state, str(folder / "teacher.safetensors"))
    torch.save(state, folder / "teacher.pt")
    torch.save({"state_dict": state, "epoch": 3}, folder / "checkpoint.pth")
    return folder, result, state


def given(path: Path, *overrides: str):
    return settings_for(*DIGITS, "teacher_from=weights", f"teacher_from.path={path}", *overrides)


@pytest.mark.parametrize("file", ["teacher.safetensors", "teacher.pt", "checkpoint.pth"])
def test_the_weights_of_a_trained_teacher_give_the_same_run(trained, file, tmp_path):
    folder, own, _ = trained
    result = pipeline.run(given(folder / file, f"teacher_cache.dir={tmp_path / 'teachers'}"))
    assert result.teacher_origin == "weights" and result.teacher_losses == []
    for model in ("teacher", "student", "untrained"):
        assert result.evaluations[model].accuracy == own.evaluations[model].accuracy, model
    assert torch.equal(result.synthetic.images, own.synthetic.images)
    assert torch.equal(result.synthetic.soft_targets, own.synthetic.soft_targets)
    assert not result.teacher.training
    assert not any(parameter.requires_grad for parameter in result.teacher.parameters())
    assert result.synthetic.metadata["teacher_from"] == "weights"
    assert not (tmp_path / "teachers").exists()  # a given teacher is never cached


def test_a_given_teacher_is_named_and_keyed_by_its_weights(trained):
    folder, _, _ = trained
    settings = given(folder / "teacher.pt")
    assert settings.run_name == "digits | linear [weights] -> class_vis -> linear | seed 0"
    assert settings.given_weights is not None
    # the same tensors, whatever the file format, are the same teacher
    assert given(folder / "teacher.safetensors").given_weights.digest == (
        settings.given_weights.digest)
    base = {"seed": 0, "teacher_from": {"kind": "weights", "path": "a.pt", "sha256": "x"}}
    moved = {**base, "teacher_from": {**base["teacher_from"], "path": "elsewhere/a.pt"}}
    changed = {**base, "teacher_from": {**base["teacher_from"], "sha256": "y"}}
    assert config_digest(base) == config_digest(moved) != config_digest(changed)
    # a trained teacher leaves the digests of runs recorded before the group existed as they were
    assert config_digest({"seed": 0, "teacher_from": {"kind": "train", "path": None}}) == (
        config_digest({"seed": 0}))


class _Payload:
    """Writes a file when unpickled: a loader that unpickles would run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def _bad_files(folder: Path, state: dict) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (file, extra overrides, the start of the one-line refusal)."""
    (folder / "garbage.pt").write_bytes(b"not a state dict at all")
    with (folder / "payload.pt").open("wb") as handle:
        pickle.dump({"weight": _Payload(folder / "ran")}, handle)
    torch.save([torch.zeros(1)], folder / "list.pt")
    save_file({"hidden.weight": torch.zeros(4, 64)}, str(folder / "foreign.safetensors"))
    torch.save({key: value[:2] for key, value in state.items()}, folder / "two_classes.pt")
    (folder / "weights.npz").write_bytes(b"")
    expected = "teacher_from.path: expected"
    return {
        "missing file": (folder / "absent.pt", [], f"{expected} an existing weights file"),
        "unknown kind": (folder / "weights.npz", [], f"{expected} a .safetensors, .pt or .pth"),
        "unreadable": (folder / "garbage.pt", [], f"{expected} a readable weights file"),
        "a pickled object": (folder / "payload.pt", [], f"{expected} a readable weights file"),
        "not a state dict": (folder / "list.pt", [], f"{expected} a state dict"),
        "other keys": (folder / "foreign.safetensors", [],
                       f"{expected} weights that fit architecture@teacher=linear"),
        "mis-shaped": (folder / "two_classes.pt", [],
                       f"{expected} weights that fit architecture@teacher=linear"),
        "a swap": (folder / "teacher.pt", ["swap=3_vs_4"], "swap: expected none with"),
        "teacher_init": (folder / "teacher.pt", ["trainer.student.start=teacher_init"],
                         "trainer.student.start: expected own_init with teacher_from=weights"),
    }


def test_every_bad_weights_file_is_refused_in_one_line_and_nothing_is_unpickled(trained):
    folder, _, state = trained
    for name, (path, extra, message) in _bad_files(folder, state).items():
        with pytest.raises(ConfigError) as refused:
            given(path, *extra)
        assert str(refused.value).startswith(message), (name, str(refused.value))
        assert "\n" not in str(refused.value), name
    assert not (folder / "ran").exists()
    mismatch = str(pytest.raises(ConfigError, given, folder / "foreign.safetensors").value)
    assert "missing 1.weight, 1.bias; unexpected hidden.weight" in mismatch
    shaped = str(pytest.raises(ConfigError, given, folder / "two_classes.pt").value)
    assert "mis-shaped 1.weight [2, 64] (expected [10, 64])" in shaped


def test_teacher_from_options_that_do_not_fit_are_refused(trained):
    folder, own, _ = trained
    own.synthetic.save(folder / "set.safetensors")
    for overrides, message in (
            (["teacher_from=weights"], "teacher_from.path: expected a value"),
            ([f"teacher_from.path={folder / 'teacher.pt'}"],
             "teacher_from.path: expected null with teacher_from=train"),
            (["teacher_from=weights", f"teacher_from.path={folder / 'teacher.pt'}",
              "dataset=synthetic", f"dataset.path={folder / 'set.safetensors'}"],
             "teacher_from: expected train with dataset=synthetic")):
        with pytest.raises(ConfigError) as refused:
            settings_for(*DIGITS, *overrides)
        assert str(refused.value).startswith(message), str(refused.value)


@pytest.mark.slow
def test_a_run_with_given_weights_is_tagged_resumed_by_content_and_refused_at_the_door(
        trained, tmp_path):
    from test_train_e2e import client_for, train

    folder, _, _ = trained
    weights = tmp_path / "teacher.pt"
    weights.write_bytes((folder / "teacher.pt").read_bytes())
    command = ["dataset=digits", "trainer.student.steps=50", "teacher_from=weights",
               f"teacher_from.path={weights}"]
    first = train(tmp_path, *command)
    assert first.returncode == 0, first.stderr[-3000:]
    again = train(tmp_path, *command)
    assert again.returncode == 0 and "classvis: skipped digits" in again.stdout
    refused = train(tmp_path, *command[:-1], f"teacher_from.path={folder / 'absent.pt'}")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "classvis: error: invalid config: teacher_from.path: expected an existing weights file")
    state = torch.load(weights, weights_only=True)
    state["1.bias"] += 0.01
    torch.save(state, weights)  # the same file name, other weights: another teacher
    changed = train(tmp_path, *command)
    assert changed.returncode == 0 and "skipped" not in changed.stdout
    client = client_for(tmp_path / "mlflow.db")
    runs = training_runs(client, [client.get_experiment_by_name("classvis").experiment_id],
                         order_by=["attributes.start_time"])
    assert len(runs) == 2 and len({r.data.tags["teacher_weights_digest"] for r in runs}) == 2
    run = runs[0]
    tags, params = run.data.tags, run.data.params
    assert run.info.run_name == "digits | linear [weights] -> class_vis -> linear | seed 0"
    assert tags["teacher_origin"] == "weights" and tags["teacher_weights"] == str(weights)
    assert tags["teacher_weights_digest"] == tags["classvis.teacher_key"] == (
        params["teacher_from.sha256"])
    assert tags["choice.teacher_from"] == "weights"
    assert "teacher/loss" not in run.data.metrics  # not trained here: no curve
    assert run.data.metrics["teacher/accuracy"] > 0.85


def test_every_architecture_takes_its_own_weights_and_refuses_the_others(mnist_root,
                                                                         monkeypatch):
    """The registry's every entry as a given teacher on 1x28x28 MNIST: its own state dict loads
    exactly (frozen, eval), every other entry's is refused at the door in one line."""
    from classvis import stages
    from classvis.models import ARCHITECTURES, build_model

    monkeypatch.setenv("CLASSVIS_DATA", str(mnist_root))
    files = {}
    for name in ARCHITECTURES:
        if name in ("module", "torchvision"):  # teacher_from=module / torchvision: their own
            continue                             # tests (test_given_module, _torchvision)
        architecture = settings_for("dataset=mnist", f"architecture@teacher={name}").teacher
        model = build_model(architecture, (1, 28, 28), 10, 1)
        files[name] = mnist_root / f"{name}.safetensors"
        save_file({key: value.contiguous() for key, value in model.state_dict().items()},
                  str(files[name]))
    for name, path in files.items():
        base = ["dataset=mnist", f"architecture@teacher={name}", "teacher_from=weights",
                "device=cpu"]
        settings = settings_for(*base, f"teacher_from.path={path}")
        teacher = stages.obtain_run_teacher(settings, pipeline.load_data(settings))
        saved = settings.given_weights.state
        assert all(torch.equal(value, saved[key])
                   for key, value in teacher.model.state_dict().items()), name
        assert teacher.origin == "weights" and not teacher.model.training, name
        for other, wrong in files.items():
            if other == name:
                continue
            with pytest.raises(ConfigError) as refused:
                settings_for(*base, f"teacher_from.path={wrong}")
            message = str(refused.value)
            assert message.startswith("teacher_from.path: expected weights that fit "
                                      f"architecture@teacher={name}"), (name, other, message)
            assert "\n" not in message
