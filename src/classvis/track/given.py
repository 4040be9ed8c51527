"""A teacher that lives in MLflow (``teacher_from=mlflow``): a model classvis logged
(``tracking.log_models=all``: from code, its weights as safetensors and its network described
in JSON), named by a model URI (``models:/<name>/<version>``, ``models:/<name>@<alias>``,
``models:/<model id>``, ``runs:/<run id>/<path>``). It is downloaded, its architecture read
from its description and its weights from the safetensors file: nothing is unpickled. A model
logged with ``mlflow.pytorch`` (a pickled module) is refused in one line, unless the run opts in
(``teacher_from.unpickle=true``, with a warning): then it is loaded and only its state dict is
kept, the weights of the teacher's architecture as the run declares it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classvis.given_teacher import GivenWeights, read_weights
from classvis.validation import ConfigError

KEY = "teacher_from.uri"


@dataclass(frozen=True, eq=False)
class LoggedTeacher:
    """The logged model's network description (``models.describe_model``), its weights, and
    the MLflow logged model's id (None when the URI names none, e.g. an old run's artifact)."""

    description: dict[str, Any] | None  # None: a pickled model, loaded by the user's opt-in
    weights: GivenWeights
    model_id: str | None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _model_id(uri: str, tracking_uri: str) -> str | None:
    """The id of the logged model ``uri`` names (None for a ``runs:/`` path or a version
    without one)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name = uri.removeprefix("models:/")
    if name == uri:
        return None
    try:
        if "@" in name or "/" in name:
            version = (client.get_model_version_by_alias(*name.split("@", 1)) if "@" in name
                       else client.get_model_version(*name.split("/", 1)))
            source = str(version.source or "")  # a version registered from models:/<id>
            found = version.model_id or (source.removeprefix("models:/")
                                         if source.startswith("models:/m-") else None)
        else:
            found = name  # models:/<model id>
    except Exception:  # resolved by the download already; no id to link
        return None
    return str(found) if found else None


def read_logged_teacher(uri: str, tracking_uri: str, folder: Path, unpickle: bool = False
                        ) -> LoggedTeacher:
    """Download the model ``uri`` names into ``folder`` and read it; a ``ConfigError`` on
    ``teacher_from.uri`` when it does not exist or is not a model classvis logged (an
    ``mlflow.pytorch`` one is loaded, unpickling it, only with ``unpickle``)."""
    import mlflow

    if tracking_uri.startswith("sqlite:///"):  # a store not made yet holds no model: say so,
        store = Path(tracking_uri.removeprefix("sqlite:///"))  # and do not make it
        if not store.is_file():
            raise ConfigError(KEY, f"an MLflow model in {tracking_uri}",
                              f"{uri}: no store at {store}")
    # MLflow resolves models:/ against its global tracking URI (and the registry, unless one
    # was set apart, follows it): set it for the download, then put it back. The registry URI
    # is not set: MLflow keeps a set one in the environment, for every later call
    tracking = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                          dst_path=str(folder)))
    except Exception as error:  # no such model, version, alias or run
        raise ConfigError(KEY, f"an MLflow model in {tracking_uri}",
                          f"{uri}: {_first_line(error)}") from None
    finally:
        mlflow.set_tracking_uri(tracking)
    model_id = _model_id(uri, tracking_uri)
    described = sorted(local.rglob("architecture.json"))
    weights = sorted(local.rglob("weights.safetensors"))
    if not (described and weights):
        flavors = _flavors(local)
        if "pytorch" in flavors and unpickle:
            return LoggedTeacher(None, _unpickled_weights(uri, local), model_id)
        if "pytorch" in flavors:
            raise ConfigError(KEY, "a model classvis logged (weights as safetensors)",
                              f"{uri} is an mlflow.pytorch model, a pickled module: loading it "
                              f"would unpickle it (teacher_from.unpickle=true loads it anyway, "
                              f"running any code the file holds)")
        raise ConfigError(KEY, "a model classvis logged (tracking.log_models=all)",
                          f"{uri} holds flavors {sorted(flavors) or 'none'}")
    try:
        description = json.loads(described[0].read_text())
    except ValueError as error:
        raise ConfigError(KEY, "a readable architecture.json", f"{uri}: {error}") from None
    if not (isinstance(description, dict) and isinstance(description.get("architecture"), dict)
            and isinstance(description.get("input_shape"), list)
            and isinstance(description.get("num_classes"), int)):
        raise ConfigError(KEY, "a network description (architecture, input_shape, "
                          "num_classes)", f"{uri}: {str(description)[:80]}")
    given = read_weights(str(weights[0]), KEY)
    return LoggedTeacher(description, GivenWeights(uri, given.state, given.digest), model_id)


def _unpickled_weights(uri: str, local: Path) -> GivenWeights:
    """The state dict of a pickled ``mlflow.pytorch`` model, loaded because the run opted in
    (``teacher_from.unpickle=true``), with a warning: unpickling runs whatever code the file
    holds."""
    import sys

    import mlflow.pytorch
    import torch

    print(f"classvis: warning: teacher_from.unpickle=true: loading {uri} unpickles it, which "
          f"runs any code the file holds; only its weights are kept", file=sys.stderr)
    try:
        model = mlflow.pytorch.load_model(str(sorted(local.rglob("MLmodel"))[0].parent),
                                          map_location="cpu")
    except Exception as error:  # the class does not import here, or a broken file
        raise ConfigError(KEY, "an mlflow.pytorch model that loads here",
                          f"{uri}: {_first_line(error)}") from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(KEY, "an mlflow.pytorch model of a torch.nn.Module",
                          f"{uri} holds {type(model).__name__}")
    from classvis.integrity import tensors_digest

    state = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    return GivenWeights(uri, state, tensors_digest(state)[:20])


def _flavors(local: Path) -> set[str]:
    """The flavors a downloaded model's ``MLmodel`` file lists (empty when it has none)."""
    from omegaconf import OmegaConf

    for path in sorted(local.rglob("MLmodel")):
        try:
            read = OmegaConf.to_container(OmegaConf.load(path))
        except Exception:  # not YAML: no flavors to tell
            continue
        flavors = read.get("flavors") if isinstance(read, dict) else None
        return set(flavors) if isinstance(flavors, dict) else set()
    return set()


__all__ = ["LoggedTeacher", "read_logged_teacher"]
