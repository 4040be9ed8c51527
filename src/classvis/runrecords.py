"""The records a finished run gives MLflow besides its files: the datasets it used and made (the
Dataset column of ``mlflow ui``) and the networks to log as MLflow models. Plain values; the
tracking layer logs them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from classvis.models import describe_model
from classvis.pipeline import RunResult


@dataclass(frozen=True)
class DatasetInput:
    """A dataset the run used or made, as MLflow's Dataset column shows it (``track`` logs it):
    ``context`` is training, test or synthetic; ``digest`` identifies the content."""

    context: str
    name: str
    digest: str
    source: str
    source_type: str
    schema: str
    profile: str


def _schema(images, targets) -> str:
    """The images and their targets as MLflow tensor specs (the layout of ``mlflow.data``'s
    NumPy datasets): dtype and shape, the first axis free."""
    def spec(tensor) -> str:
        dtype = str(tensor.dtype).removeprefix("torch.")
        return json.dumps([{"type": "tensor", "tensor-spec": {
            "dtype": dtype, "shape": [-1, *tensor.shape[1:]]}}])
    return json.dumps({"mlflow_tensorspec": {"features": spec(images), "targets": spec(targets)}})


def _source(uri: str) -> tuple[str, str]:
    """A dataset source as MLflow records it (JSON) and its type: a local path or artifact URI,
    or the code that makes the data (scikit-learn's digits)."""
    if uri.startswith("sklearn."):
        return json.dumps({"tags": {"mlflow.source.name": uri}}), "code"
    scheme = uri.split(":", 1)[0] if ":" in uri and not uri.startswith("/") else "file"
    return json.dumps({"uri": uri}), "local" if scheme == "file" else scheme


def _content_digest(*tensors) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def run_datasets(result: RunResult, location: str, synthetic_uri: str) -> list[DatasetInput]:
    """The real training and test sets the run used (named by dataset and split, digested by the
    source data's fingerprint and any class subset) and the synthetic set it made (digested by
    its content, sourced from the run's artifact); a student trained from a file has the file as
    its training set."""
    inputs = []
    synthetic = result.synthetic
    profile = {"num_classes": len(result.class_names)}
    if result.data is not None:
        data = result.data
        for split, (images, labels) in (("train", (data.train_x, data.train_y)),
                                        ("test", (data.test_x, data.test_y))):
            if len(labels) == 0:  # a split the run went without
                continue
            digest = hashlib.sha256(f"{data.fingerprint}|{split}".encode()).hexdigest()[:16]
            inputs.append(DatasetInput(
                "training" if split == "train" else "test", f"{data.name}/{split}", digest,
                *_source(location), _schema(images, labels),
                json.dumps({"num_rows": len(labels), **profile})))
        made, name, source = "synthetic", f"{data.name}/synthetic", synthetic_uri
    else:
        made = "training"
        name = f"{synthetic.metadata.get('dataset', 'unknown')}/synthetic (file)"
        source = location
    inputs.append(DatasetInput(
        made, name, _content_digest(synthetic.images, synthetic.soft_targets), *_source(source),
        _schema(synthetic.images, synthetic.soft_targets),
        json.dumps({"num_rows": len(synthetic.labels), **profile})))
    return inputs


@dataclass(frozen=True)
class ModelRecord:
    """A trained network to log as an MLflow model (``track.models``): its ``role`` (student,
    teacher), the module, what rebuilds it (``classvis.models.describe_model``), a few input
    images (N, C, H, W) for the model's signature and example, and the name the model is shown
    by (``mnist-lenet5-student``; the role when not given)."""

    role: str
    network: Any
    description: dict[str, Any]
    example: Any
    name: str = ""

    @property
    def shown_name(self) -> str:
        return self.name or self.role


def model_name(dataset: str, architecture: str, role: str) -> str:
    """A logged model's name: what it is (``mnist-lenet5-student``), in the characters MLflow
    allows in one (no ``/ : . % " '``)."""
    text = "-".join(part for part in (dataset, architecture, role) if part)
    return re.sub(r"[/:.%\"' ]+", "_", text)


EXAMPLE_IMAGES = 2  # input images in a logged model's example


def run_models(result: RunResult, which: str, dataset: str = "") -> list[ModelRecord]:
    """The networks ``tracking.log_models`` asks for: ``student``, ``all`` (the teacher too,
    when the run had one) or ``none``, named by ``dataset``, architecture and role."""
    names = {"none": (), "student": ("student",), "all": ("student", "teacher")}[which]
    records = []
    for name in names:
        network = result.student if name == "student" else result.teacher
        if network is None or name not in result.architectures:
            continue
        records.append(ModelRecord(
            name, network, describe_model(result.architectures[name],
                                          tuple(network.input_shape),  # type: ignore[arg-type]
                                          int(network.num_classes)),  # type: ignore[arg-type]
            result.synthetic.images[:EXAMPLE_IMAGES],
            model_name(dataset, result.architectures[name].label, name)))
    return records
