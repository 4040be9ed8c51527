"""Trained teachers on disk, so that a sweep over extractors and students trains each once.

A teacher is keyed by everything that determines it: the source data's fingerprint and class
selection, the architecture, the teacher's training recipe, the seed, and the source code of the
functions that build and train it. Weights are stored as safetensors (never unpickled); parallel
jobs wanting the same teacher wait on a file lock, so one trains and the others load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from classvis import fit as fit_module
from classvis import models, optim
from classvis.data import ImageData
from classvis.evaluate import predict
from classvis.filelock import locked
from classvis.fit import TeacherTraining
from classvis.integrity import DIGEST_KEY, damage, tensors_digest
from classvis.models import ArchitectureSettings
from classvis.validation import require, writable_folder

log = logging.getLogger(__name__)
FORMAT = "classvis.teacher/3"  # 2: the header holds the weights' sha256; 3: the test accuracy
# how far the re-measured test accuracy of a loaded entry may differ from the one recorded when
# it was trained (another device or BLAS can flip a few borderline predictions), as a fraction
ACCURACY_TOLERANCE = 0.005


@dataclass(frozen=True)
class TeacherCacheSettings:
    enabled: bool = True
    dir: str = ".classvis-cache/teachers"

    def check(self, key: str) -> None:
        require(bool(self.dir), f"{key}.dir", "a folder for cached teachers", self.dir)
        if self.enabled:
            writable_folder(self.dir, f"{key}.dir")


def training_code_version() -> str:
    """A digest of the code that builds and trains a teacher: editing it misses the cache."""
    sources = [inspect.getsource(item) for item in (  # type: ignore[arg-type]
        fit_module.fit, optim, fit_module.check_finite,
        models.build_model,
        *(entry.function for entry in models.ARCHITECTURES.values()))]
    sources.append(f"{fit_module.TRAINING_CODE_VERSION}|torch {torch.__version__}")
    return hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]


def teacher_key(data: ImageData, architecture: ArchitectureSettings, training: TeacherTraining,
                seed: int) -> tuple[str, dict]:
    material = {
        "data": data.fingerprint,
        "classes": data.class_names,
        "image_shape": list(data.image_shape),
        "train_images": len(data.train_x),
        "architecture": dataclasses.asdict(architecture),
        "training": dataclasses.asdict(training),
        "seed": seed,
        "code": training_code_version(),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest[:20], material


@dataclass
class ObtainedTeacher:
    model: nn.Module
    epoch_losses: list[float]
    origin: str   # "trained", "cache", or the given teacher's kind: "weights", "module"
    key: str


def test_accuracy(model: nn.Module, data: ImageData) -> float | None:
    """The teacher's accuracy on the data's test split (None without one): recorded in the entry
    when it is trained, measured again when it is loaded."""
    if not len(data.test_x):
        return None
    predicted = torch.from_numpy(predict(model, data.test_x))
    return float((predicted == data.test_y.cpu()).double().mean())


def _load(path: Path, model: nn.Module, key: str, data: ImageData) -> list[float] | None:
    """The cached weights, loaded into ``model``, and the epoch losses; None (and one line saying
    why) when the entry cannot be trusted: it is then retrained and overwritten. A digest proves
    the bytes are whole, not that they are this teacher: the test accuracy recorded at training
    is measured again, and a difference beyond ``ACCURACY_TOLERANCE`` discards the entry."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
        found = header.get("format")
        why: str | None
        if found != FORMAT:
            why = (f"it is of an older format ({found}, expected {FORMAT})"
                   if str(found).startswith("classvis.teacher/") else
                   f"it is not a classvis teacher entry (format {found!r}, expected {FORMAT})")
        elif header.get("key") != key:
            why = "it holds another teacher"
        else:
            why = damage(state, header)
        if why is None:
            model.load_state_dict(state, strict=True)
            recorded, measured = header.get("test_accuracy", ""), test_accuracy(model, data)
            if recorded and measured is not None and abs(
                    float(recorded) - measured) > ACCURACY_TOLERANCE:
                why = (f"its test accuracy is {measured:.2%} where {float(recorded):.2%} was "
                       f"recorded when it was trained (consistent bytes, wrong weights)")
            else:
                return [float(loss) for loss in json.loads(header["epoch_losses"])]
    except Exception as error:  # truncated, unreadable or foreign
        why = f"it cannot be read ({type(error).__name__}: {error})".splitlines()[0]
    log.warning("discarding teacher cache entry %s: %s; training the teacher again", path, why)
    return None


def _save(path: Path, model: nn.Module, key: str, material: dict, losses: list[float],
          data: ImageData) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    training = model.training
    accuracy = test_accuracy(model, data)
    model.train(training)  # as it was handed over
    # stored from the CPU, so a teacher trained on any device loads on any other
    state = {name: tensor.detach().cpu().contiguous()
             for name, tensor in model.state_dict().items()}
    save_file(state, str(partial), metadata={
        "format": FORMAT, "key": key, "material": json.dumps(material, sort_keys=True),
        "epoch_losses": json.dumps(losses), DIGEST_KEY: tensors_digest(state),
        "test_accuracy": "" if accuracy is None else repr(accuracy)})
    os.replace(partial, path)


def obtain_teacher(settings: TeacherCacheSettings, data: ImageData, key: str, material: dict,
                   build: Callable[[], nn.Module],
                   train: Callable[[nn.Module], list[float]]) -> ObtainedTeacher:
    """The cached teacher for ``key`` if there is one, else ``train(build())``, then cached."""
    if not settings.enabled:
        model = build()
        return ObtainedTeacher(model, train(model), "trained", key)
    label = material["architecture"]["name"]
    path = Path(settings.dir) / f"{data.name}-{label}-{key}.safetensors"
    with locked(path.with_suffix(".lock")):
        if path.exists():
            model = build()
            losses = _load(path, model, key, data)
            if losses is not None:
                model.eval()
                return ObtainedTeacher(model, losses, "cache", key)
        model = build()
        losses = train(model)
        _save(path, model, key, material, losses, data)
        return ObtainedTeacher(model, losses, "trained", key)
