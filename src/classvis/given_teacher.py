"""A teacher the user brings instead of one classvis trains (config group ``teacher_from``):
``train`` (the default: trained here, or taken from the teacher cache), ``weights`` (the
teacher's built-in architecture, ``architecture@teacher``, with the weights in a file) or
``module`` (a network of the user's code, architecture ``module``, with its weights). A weights
file is safetensors or a PyTorch state dict (``.pt``/``.pth``, read with
``torch.load(weights_only=True)``, never unpickled).

The file is read once, when the settings are parsed, and checked strictly against the network
built for the dataset: a missing, unexpected or mis-shaped key is refused in one line naming the
first of each; then one forward pass of a zero batch checks the scores' shape. No tracking and
no config framework in here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from classvis.integrity import tensors_digest
from classvis.validation import ConfigError, require

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")
_SHOWN = 3  # keys named per kind of mismatch


@dataclass(frozen=True)
class TeacherFromSettings:
    """Config group ``teacher_from``: where the teacher comes from; ``path`` is the weights file
    of ``kind: weights``."""

    kind: Literal["train", "weights", "module", "mlflow", "torchvision"] = "train"
    path: str | None = None
    uri: str | None = None
    # torchvision: the weights file from the torch hub cache (false: a seeded random init, to
    # try the route without the file), fetched there when missing (download)
    pretrained: bool = True
    download: bool = True
    # mlflow: load a model logged with mlflow.pytorch (a pickled module), with a warning; only
    # its weights are kept. Never the default: unpickling runs whatever code the file holds
    unpickle: bool = False

    def check(self, key: str) -> None:
        if self.kind == "torchvision":
            for name in ("path", "uri"):
                require(getattr(self, name) is None, f"{key}.{name}", "null with teacher_from="
                        "torchvision (teacher.weights names the weights)", getattr(self, name))
            return
        if self.kind == "mlflow":
            require(isinstance(self.uri, str) and bool(self.uri), f"{key}.uri",
                    "the teacher's MLflow model URI (models:/<name>/<version>, "
                    "models:/<name>@<alias>, models:/<model id>, runs:/<run id>/<path>)",
                    self.uri)
            require(self.path is None, f"{key}.path", "null with teacher_from=mlflow (the "
                    "weights come with the model)", self.path)
            return
        require(not self.unpickle, f"{key}.unpickle", "false unless teacher_from=mlflow",
                self.unpickle)
        require(self.uri is None, f"{key}.uri", "null unless teacher_from=mlflow", self.uri)
        if self.kind != "train":
            require(isinstance(self.path, str) and bool(self.path), f"{key}.path",
                    "the teacher's weights file (.safetensors, .pt or .pth)", self.path)
        else:
            require(self.path is None, f"{key}.path", "null with teacher_from=train (a teacher "
                    "trained here has no weights file)", self.path)

    @property
    def given(self) -> bool:
        return self.kind != "train"


@dataclass(frozen=True, eq=False)
class GivenWeights:
    """The weights file of ``teacher_from=weights``, read once at the door: its tensors (on the
    CPU) and their content digest (which keys resume, tags and the run's provenance)."""

    path: str
    state: Mapping[str, torch.Tensor]
    digest: str


def read_weights(path: str, key: str) -> GivenWeights:
    """The tensors of a weights file; a ``ConfigError`` on ``key`` when the file is missing,
    of an unknown kind, unreadable, or not a mapping of names to tensors."""
    file = Path(path)
    require(file.suffix in WEIGHT_SUFFIXES, key, "a .safetensors, .pt or .pth weights file",
            path)
    require(file.is_file(), key, "an existing weights file", path)
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(file))
        else:
            loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, foreign, or a pickle of more than tensors
        raise ConfigError(key, "a readable weights file", f"{path}: {type(error).__name__}: "
                          f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}"
                          ) from None
    # a checkpoint that nests the state dict (``{"state_dict": ..., "epoch": ...}``)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not (isinstance(loaded, Mapping) and loaded
            and all(isinstance(name, str) and isinstance(value, torch.Tensor)
                    for name, value in loaded.items())):
        raise ConfigError(key, "a state dict (names to tensors)",
                          f"{path} holds {type(loaded).__name__}")
    state = {name: value.detach().cpu() for name, value in loaded.items()}
    return GivenWeights(str(file), state, tensors_digest(state)[:20])


def weights_root(model: nn.Module) -> nn.Module:
    """The part of ``model`` a weights file fits: the user's own network inside the wrapper
    that normalises its input (architecture ``module``), else the model."""
    root = getattr(model, "weights_root", model)
    assert isinstance(root, nn.Module)
    return root


def mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``state`` does not fit ``model`` exactly, naming the first missing, unexpected and
    mis-shaped keys (None: it fits)."""
    expected = weights_root(model).state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    shaped = [f"{name} {list(state[name].shape)} (expected {list(tensor.shape)})"
              for name, tensor in expected.items()
              if name in state and state[name].shape != tensor.shape]
    parts = [f"{what} {', '.join(names[:_SHOWN])}{' ...' if len(names) > _SHOWN else ''}"
             for what, names in (("missing", missing), ("unexpected", unexpected),
                                 ("mis-shaped", shaped)) if names]
    return "; ".join(parts) or None


def load_given(model: nn.Module, weights: GivenWeights) -> nn.Module:
    """``model`` with the given weights, frozen and in eval mode (a teacher is only scored and
    differentiated through, never trained)."""
    why = mismatch(model, weights.state)
    if why is not None:
        raise ConfigError("teacher_from.path", "weights that fit the teacher's architecture",
                          f"{weights.path}: {why}")
    weights_root(model).load_state_dict(weights.state, strict=True)  # into the model's dtype
    model.requires_grad_(False)
    return model.eval()


def output_mismatch(model: nn.Module, input_shape: tuple[int, ...], num_classes: int
                    ) -> str | None:
    """Why ``model`` (its weights loaded) does not score a batch of ``input_shape`` images as
    ``(N, num_classes)``, from one forward pass of a zero batch (None: it does)."""
    batch = torch.zeros(2, *input_shape)
    try:
        with torch.no_grad():
            scores = model.eval()(batch)
    except Exception as error:  # the user's network rejects the declared input
        return (f"a zero batch of {list(batch.shape)} raised {type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}")
    if not isinstance(scores, torch.Tensor):
        return f"it returned {type(scores).__name__}, not a tensor of class scores"
    if tuple(scores.shape) != (2, num_classes):
        return (f"a zero batch of {list(batch.shape)} gave scores of shape "
                f"{list(scores.shape)}, expected {[2, num_classes]} (the dataset's classes)")
    return None
