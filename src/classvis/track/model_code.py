"""An MLflow model from code: a classvis network that gives the logits of a batch of images.

MLflow runs this file to load a model that ``classvis.track.models`` logged (models-from-code):
the network is rebuilt from ``architecture.json`` and its weights read from
``weights.safetensors``; nothing is unpickled. ``predict`` takes float32 images shaped
``(N, C, H, W)``, as the run's data gave them to the model, and returns float32 logits
``(N, classes)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class ClassifierLogits(PythonModel):
    # the signature is logged with the model (tensors in, logits out); MLflow's validation by
    # type hints does not know tensors, and would warn on every load
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        import torch
        from safetensors.torch import load_file

        from classvis.models import model_from_description

        description = json.loads(Path(context.artifacts["architecture"]).read_text())
        self.network = model_from_description(description)
        self.network.load_state_dict(load_file(context.artifacts["weights"]))
        self.network.eval()
        self.torch = torch

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them
        import numpy as np

        torch = self.torch
        images = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.network(images).numpy()


mlflow.models.set_model(ClassifierLogits())
