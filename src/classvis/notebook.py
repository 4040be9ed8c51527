"""The common path from a notebook or a script, without the command line, an outputs folder or
MLflow: a trained model in memory and the input it takes -> k class visualizations per class,
scored by it -> a student trained only on them -> the synthetic set, saved as safetensors::

    from classvis import notebook

    teacher = notebook.teacher(model, channels=1, height=28, width=28, mean=[0.1307],
                               std=[0.3081])
    synthetic = notebook.synthesize(teacher, class_names, "extractor=deep_vis",
                                    "extractor.per_class=10")
    student = notebook.train_student(synthetic, teacher, "architecture@student=lenet5")
    notebook.accuracy(student, test_images, test_labels)
    synthetic.save("set.safetensors")

The settings are the project's own config (``conf/``), chosen with the overrides a command line
would take (``extractor=...``, ``extractor.steps=...``, ``architecture@student=...``,
``trainer.student.steps=...``) and checked as ``train.py`` checks them, so a notebook and a run
of ``train.py`` with the same teacher and seed make the same set and the same student. This
module only composes the settings; the work is the plain functions the pipeline runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classvis.data import ImageData
from classvis.distill import StudentTraining
from classvis.evaluate import evaluate
from classvis.extract import EXTRACTORS, ClassVisSettings, extract, soft_targets
from classvis.models import ArchitectureSettings, build_model, parse_architecture
from classvis.models.given import Normalised
from classvis.stages import stage_seed
from classvis.synthetic import SyntheticSet
from classvis.validation import ConfigError, parse, require

CONF = Path(__file__).resolve().parents[2] / "conf"


def _compose(overrides: Sequence[str]) -> Any:
    """The project's config with ``overrides``, as plain values (the dataset aside: a notebook
    brings none)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    require(CONF.is_dir(), "conf", "the project's config folder (a source checkout: pip "
            "install -e .)", str(CONF))
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or test: compose anew
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except Exception as error:  # an unknown option or key: Hydra's first line names it
        raise ConfigError("overrides", "options and keys of conf/",
                          str(error).strip().splitlines()[0]) from None
    return OmegaConf.to_container(cfg, resolve=True)


def teacher(model: nn.Module, channels: int, height: int, width: int,
            mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)) -> nn.Module:
    """``model`` as a teacher: behind its normalisation (it is handed ``(x - mean) / std`` of
    images in [0, 1]), frozen and in eval mode, on the device of its parameters."""
    require(len(mean) in (1, channels), "mean", f"1 or {channels} values", list(mean))
    require(len(std) in (1, channels) and all(s > 0 for s in std), "std",
            f"1 or {channels} values > 0", list(std))
    wrapped = Normalised(model, tuple(mean), tuple(std), (channels, height, width))
    wrapped.to(_device(model)).requires_grad_(False)
    return wrapped.eval()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def synthesize(teacher: nn.Module, class_names: Sequence[str], *overrides: str,
               seed: int = 0) -> SyntheticSet:
    """k images per class from ``teacher`` (made by :func:`teacher`), scored by it; the
    extractor is ``overrides``' (``extractor=deep_vis`` when they name none), which must be a
    class visualization: the others need real data."""
    chosen = [o for o in overrides if o.startswith("extractor=")] or ["extractor=deep_vis"]
    plain = _compose([*chosen, *(o for o in overrides if not o.startswith("extractor="))])
    name, settings = EXTRACTORS.parse(plain["extractor"], "extractor")
    require(isinstance(settings, ClassVisSettings), "extractor", "a class visualization "
            "(class_vis, deep_vis, deep_vis_bn): the other extractors need real data", name)
    shape = getattr(teacher, "input_shape", None)
    if not isinstance(shape, tuple):
        raise ConfigError("teacher", "a teacher made by notebook.teacher (it declares its "
                          "input)", type(teacher).__name__)
    device = _device(teacher)
    nothing = torch.empty(0, *shape, device=device)
    labels = torch.empty(0, dtype=torch.int64, device=device)
    data = ImageData("notebook", list(class_names), nothing, labels, nothing, labels)
    with torch.no_grad():
        scores = teacher(torch.zeros(2, *shape, device=device))
    require(tuple(scores.shape) == (2, len(class_names)), "class_names",
            f"one name per class the teacher scores ({scores.shape[-1]})", len(class_names))
    extracted = extract(teacher, data, name, settings, stage_seed(seed, "extract"))
    targets = soft_targets(teacher, extracted.images)
    return SyntheticSet(extracted.images.cpu(), targets.cpu(), extracted.labels.cpu(),
                        list(class_names),
                        {"extractor": name, "per_class": str(settings.per_class),
                         "seed": str(seed), "made_by": "classvis.notebook"})


def student_settings(*overrides: str) -> tuple[ArchitectureSettings, StudentTraining]:
    """The student's architecture and recipe the overrides choose (the linear student and the
    paper's recipe when they name none), as ``train.py`` would train it."""
    plain = _compose(overrides)
    recipe = parse(StudentTraining, plain["trainer"]["student"], "trainer.student")
    architecture = parse_architecture(plain["student"], "student")
    require(architecture.name != "module", "architecture@student",
            "a built-in architecture (a student is trained here)", architecture.name)
    require(recipe.start == "own_init", "trainer.student.start",
            "own_init (a given teacher has no initial weights)", recipe.start)
    return architecture, recipe


def train_student(synthetic: SyntheticSet, teacher: nn.Module | None = None, *overrides: str,
                  seed: int = 0) -> nn.Module:
    """A fresh student (``architecture@student=...``, the linear one by default) trained only
    on ``synthetic``; ``teacher`` re-scores its augmented views where the recipe augments (a
    set without its teacher keeps the stored targets)."""
    from dataclasses import replace

    from classvis.distill import distill

    architecture, recipe = student_settings(*overrides)
    if recipe.augment_targets == "auto":
        recipe = replace(recipe, augment_targets="teacher" if teacher is not None else "keep")
    device = _device(teacher) if teacher is not None else torch.device("cpu")
    student = build_model(architecture, synthetic.image_shape, len(synthetic.class_names),
                          stage_seed(seed, "student/init")).to(device)
    distill(student, synthetic.images.to(device), synthetic.soft_targets.to(device), recipe,
            stage_seed(seed, "student/order"), None, teacher)
    return student.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``images`` (in [0, 1], ``(N, C, H, W)``) that ``model`` classifies as
    ``labels``."""
    device = _device(model)
    model.eval()
    with torch.no_grad():
        classes = int(model(images[:1].to(device)).shape[1])
    return evaluate(model, images.to(device), labels.to(device), classes).accuracy


__all__ = ["accuracy", "student_settings", "synthesize", "teacher", "train_student"]
