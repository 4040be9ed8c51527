"""Trained networks as MLflow models (``tracking.log_models``), loadable without unpickling.

Each model is logged from code (``model_code.py``): its directory holds the network's weights as
safetensors, its description as JSON, and the few classvis modules that rebuild it, so
``mlflow.pyfunc.load_model(uri).predict(images)`` gives the logits in any environment with torch,
safetensors and MLflow, and the model can be registered and served like any other.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import classvis
from classvis.track.retry import retrying

CODE_FILE = Path(__file__).with_name("model_code.py")
# what rebuilds a network: the package marker, the settings parser, the registry and the
# architectures
_PACKAGE_FILES = ("__init__.py", "validation.py", "registry.py", "models/__init__.py",
                  "models/base.py", "models/conv.py", "models/dense.py", "models/given.py",
                  "models/pretrained.py")


def _requirements() -> list[str]:
    return [f"{package}=={version(package)}" for package in ("torch", "safetensors", "numpy")]


def _stage(model: Any, folder: Path) -> dict[str, str]:
    from safetensors.torch import save_file

    weights = folder / "weights.safetensors"
    save_file({name: tensor.detach().cpu().contiguous()
               for name, tensor in model.network.state_dict().items()}, str(weights))
    architecture = folder / "architecture.json"
    architecture.write_text(json.dumps(model.description, indent=2))
    package = Path(classvis.__file__).parent
    for name in _PACKAGE_FILES:
        target = folder / "code" / "classvis" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / name, target)
    return {"weights": str(weights), "architecture": str(architecture)}


def _log_one(model: Any) -> tuple[str, str]:
    import mlflow
    import torch
    from mlflow.models import infer_signature

    example = model.example.detach().cpu().float()
    model.network.eval()
    with torch.no_grad():
        logits = model.network(example.to(next(model.network.parameters()).device))
    example_array = example.numpy()
    signature = infer_signature(example_array, logits.cpu().numpy())
    with tempfile.TemporaryDirectory(prefix="classvis-model-") as staging:
        folder = Path(staging)
        artifacts = _stage(model, folder)
        info = retrying(lambda: mlflow.pyfunc.log_model(
            name=model.shown_name, python_model=str(CODE_FILE), artifacts=artifacts,
            code_paths=[str(folder / "code" / "classvis")], signature=signature,
            input_example=example_array, pip_requirements=_requirements()))
    return str(info.model_uri), str(info.model_id)


def log_models(models: list[Any]) -> dict[str, tuple[str, str]]:
    """Log each ``runrecords.ModelRecord`` as an MLflow model of the active run; returns each
    one's model URI and model id, by role."""
    return {model.role: _log_one(model) for model in models}
