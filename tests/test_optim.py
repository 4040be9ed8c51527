"""The CPU optimizers give torch.optim's numbers exactly, and a plain run imports no
torch._dynamo (which torch.optim's first use does, 1.1 s)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from torch import nn

from classvis.optim import PlainAdam, PlainSGD


def _train(make, steps: int = 25, schedule: bool = False) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 3))
    images, labels = torch.randn(40, 12), torch.randint(0, 3, (40,))
    optimizer = make(model.parameters())
    for step in range(steps):
        if schedule:
            optimizer.param_groups[0]["lr"] = 0.3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        batch = slice(step % 4 * 10, step % 4 * 10 + 10)
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return [parameter.detach().clone() for parameter in model.parameters()]


@pytest.mark.parametrize("ours,theirs,schedule", [
    (lambda p: PlainSGD(p, 0.3), lambda p: torch.optim.SGD(p, lr=0.3), False),
    (lambda p: PlainSGD(p, 0.3, momentum=0.9, weight_decay=5e-4),
     lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.9, weight_decay=5e-4), True),
    (lambda p: PlainAdam(p, 0.01), lambda p: torch.optim.Adam(p, lr=0.01), False),
    (lambda p: PlainAdam(p, 0.01, weight_decay=1e-3),
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3), True),
])
def test_the_plain_optimizers_are_torch_optims_arithmetic_bit_for_bit(ours, theirs, schedule):
    for mine, reference in zip(_train(ours, schedule=schedule), _train(theirs, schedule=schedule),
                               strict=True):
        assert torch.equal(mine, reference)


def test_a_plain_run_imports_no_dynamo(tmp_path):
    """The whole pipeline on digits, in a fresh process: teacher, extraction, student, report."""
    code = (
        "import sys\n"
        "from classvis import pipeline\n"
        "from classvis.config import run_settings\n"
        "from hydra import compose, initialize_config_dir\n"
        f"with initialize_config_dir(config_dir={str(ROOT / 'conf')!r}, version_base='1.3'):\n"
        "    cfg = compose(config_name='config', overrides=['dataset=digits',\n"
        "        'teacher_cache.enabled=false', 'trainer.teacher.epochs=2'])\n"
        "result = pipeline.run(run_settings(cfg, None))\n"
        "assert result.evaluations['student'].accuracy > 0.5\n"
        "heavy = sorted(name for name in sys.modules if name.startswith(('torch._dynamo',\n"
        "    'torch._inductor')))\n"
        "print(heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("architecture", [
    {"name": "linear", "init": "default"},
    {"name": "mlp", "hidden": [16], "activation": "relu"},
    {"name": "mlp", "hidden": [12, 8], "activation": "tanh", "init": "glorot"},
    {"name": "mlp", "hidden": [10], "activation": "sigmoid"},
    {"name": "mlp", "hidden": [10], "activation": "gelu"},
])
@pytest.mark.parametrize("recipe", [
    {"lr": 0.5, "batch_size": 20, "epochs": 3},
    {"lr": 0.3, "batch_size": 7, "epochs": 2, "schedule": "cosine"},   # ragged last batch
    {"lr": 0.5, "batch_size": 20, "epochs": None, "steps": 25},
])
def test_the_written_out_step_is_autograds_bit_for_bit(monkeypatch, architecture, recipe):
    from test_numeric import toy_data

    from classvis import fit as fit_module
    from classvis.fit import TeacherTraining, fit
    from classvis.models import build_model, parse_architecture

    data = toy_data()
    settings = TeacherTraining(**recipe)
    dense = parse_architecture(architecture, "teacher")
    fused = build_model(dense, data.image_shape, data.num_classes, seed=1)
    assert fit_module._written_out_step(fused, settings) is not None
    fused_losses = fit(fused, data.train_x, data.train_y, settings, seed=0)
    monkeypatch.setattr(fit_module, "_written_out_step", lambda model, settings: None)
    autograd = build_model(dense, data.image_shape, data.num_classes, seed=1)
    assert fit(autograd, data.train_x, data.train_y, settings, seed=0) == fused_losses
    for mine, reference in zip(fused.parameters(), autograd.parameters(), strict=True):
        assert torch.equal(mine, reference)
