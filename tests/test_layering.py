"""The architecture's promise: the numeric core and the pipeline know nothing of MLflow or the
config framework, and a synthetic set file is read once, where the settings are parsed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

CORE = ["classvis.pipeline", "classvis.runsettings", "classvis.fit", "classvis.extract",
        "classvis.priors", "classvis.augment", "classvis.models", "classvis.evaluate",
        "classvis.privacy", "classvis.compress", "classvis.swap", "classvis.data",
        "classvis.datafiles"]


@pytest.mark.parametrize("module", CORE)
def test_the_numeric_core_imports_no_tracking_or_config_framework(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('mlflow', 'omegaconf', 'hydra') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_synthetic_set_file_is_read_once_when_the_settings_are_parsed(tmp_path, monkeypatch):
    import torch
    from test_config import settings_for

    from classvis import pipeline
    from classvis.synthetic import SyntheticSet

    path = tmp_path / "set.safetensors"
    SyntheticSet(torch.rand(2, 1, 8, 8), torch.randn(2, 2), torch.tensor([0, 1]), ["a", "b"],
                 {"teacher": "linear", "seed": "0"}).save(path)
    reads = []
    original = SyntheticSet.load.__func__

    def counting(cls, file):
        reads.append(file)
        return original(cls, file)

    monkeypatch.setattr(SyntheticSet, "load", classmethod(counting))
    settings = settings_for("dataset=synthetic", f"dataset.path={path}", "privacy.enabled=false",
                            "trainer.student.steps=3", "device=cpu")
    assert settings.source_file is not None and len(reads) == 1
    result = pipeline.run(settings)
    assert len(reads) == 1                     # the pipeline used the parsed record
    assert result.data is None and result.class_names == ["a", "b"]
    assert result.test_unavailable == "the file does not record its source dataset"


def test_every_mlflow_call_goes_through_the_tracking_module():
    """One home for tracking: only the ``track`` package imports MLflow (so every store call
    retries while a store is busy); the report and export read runs back through its ``Store``."""
    import ast

    importers = []
    for path in sorted((ROOT / "src" / "classvis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name == "mlflow" or name.startswith("mlflow.") for name in names):
                importers.append(path.relative_to(ROOT / "src").as_posix())
    assert importers and {path.rsplit("/", 1)[0] for path in importers} == {"classvis/track"}
