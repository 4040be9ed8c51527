"""The combination matrix: every combination of config groups a user can type either runs to the
end or is refused before any work in one line naming the key.

The test walks ``conf/`` (which mirrors the registries: ``models.ARCHITECTURES``, the extractor
presets, the dataset loaders), so a new dataset, architecture or extractor option is covered
without editing it: every dataset kind (a loader and its channels: 1-channel 8x8 digits and 28x28
IDX files, 3-channel image folders) x every teacher x every extractor (and the default, which
follows the teacher) x every student, then swap and compress for every kind and teacher, then a
student from an exported synthetic-set file for every student, each through the real pipeline
on generated images. A refusal must come from ``run_settings`` (before data is loaded or a run is
opened) as one line naming its key; a run must end with finite losses and evaluated models.
A model of more than a million parameters (resnet18: 11 million) costs a second a run even here,
so its combinations are all checked at the door, and run against every extractor with the linear
model and itself on the other side (pairwise, not the whole cross product).

At these tiny sizes (a few steps per stage) a convolutional model has not learnt yet, so whether
the student beats chance is asserted where the tiny budget suffices, dense teacher and dense
student (the paper's setting); the defaults' accuracy for every combination on real MNIST and
CIFAR-10 is what ``benchmarks/bench_matrix.py`` measures (docs/results.md).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, make_mnist
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from classvis import pipeline
from classvis.from_config import run_settings
from classvis.loaders import known_class_names
from classvis.loaders.torchvision_files import TORCHVISION_CLASSES
from classvis.models import ARCHITECTURES
from classvis.validation import ConfigError

pytestmark = pytest.mark.slow

CONF = ROOT / "conf"
CLASSES = 3            # classes per run (dataset.classes)
TRAIN, TEST = 20, 10   # generated images per class
# the tiny sizes, set where the composed config has the key (values a user could type)
TINY = {"trainer.teacher.epochs": 1, "trainer.teacher.batch_size": 10,
        "trainer.student.steps": 3, "trainer.student.batch_size": 0, "extractor.steps": 3,
        "privacy.test_sample": 10, "compress.batch_size": 10, "compress.epochs": 1}
# dense teacher and student: sizes at which the paper's recipes learn the generated images
LEARNABLE = {**TINY, "trainer.teacher.epochs": 10, "trainer.student.steps": 200,
             "extractor.steps": 200}
PER_CLASS = 2          # extractor.per_class, at most
# combinations whose student stays near chance at the learnable sizes, and why: the test fails
# when one of them is fixed (strike it off) as when another joins them
KNOWN_WEAK = {
    **{f"cifar10_jpg | mlp -> (default) -> {student}": "an MLP teacher's default extractor (class "
       "visualizations from noise, spread apart) leaves them noise the teacher does not tell "
       "apart: the same weakness as its 44% student on real MNIST (issue 25's open target)"
       for student in ("linear", "mlp")},
    "cifar10_jpg | mlp -> class_vis -> mlp": "one image per class from a teacher with hidden "
    "layers (the paper's Section 10; its caveat says so): with the deeper student's lr 0.1 (0.6 "
    "diverged on real MNIST) its MLP student no longer beats chance on 3-channel images",
    **{f"digits | {teacher} -> deep_vis -> {student}": "deep_vis's jitter of 2 pixels and "
       "10% rescaling are a quarter of an 8x8 image: priors for larger images and "
       "convolutional teachers (class_vis suits a dense one)"
       for teacher in ("linear", "mlp") for student in ("linear", "mlp")},
}
IDX_FORMAT = ("MNIST", "FashionMNIST", "KMNIST")  # torchvision reads these files as written
FOLDER_SIZE = 16       # generated image folders: 3-channel 16x16
LARGE = 1_000_000      # parameters: above it, an architecture runs pairwise (see above)


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


ARCHITECTURE_OPTIONS = options("architecture")
EXTRACTOR_OPTIONS = ["(default)", *options("extractor")]


def blobs(count: int, classes: int, size: int, channels: int, seed: int):
    """Images whose class is a bright square at its own place (and in its own channel)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    images = rng.integers(0, 40, (count, size, size, channels)).astype(np.uint8)
    cell = max(size // 4, 2)
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[index, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell,
               int(label) % channels] = 230
    return images, labels


def make_folder(root: Path, size: int = FOLDER_SIZE, classes: int = CLASSES) -> Path:
    from PIL import Image

    for split, count, seed in (("train", TRAIN, 0), ("test", TEST, 1)):
        images, labels = blobs(count * classes, classes, size, 3, seed)
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{index:04d}.png")
    return root


def dataset_kinds(data: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The overrides that point one dataset option of each kind (loader, channels) at generated
    files, and why each other option is not run (another of its kind is, or its files cannot be
    generated); the paper's MNIST first."""
    runs: dict[str, list[str]] = {}
    kinds: dict[tuple, str] = {}
    not_run: dict[str, str] = {}
    names = sorted(options("dataset"), key=lambda name: name != "mnist")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name in names:
            node = compose(config_name="config", overrides=[f"dataset={name}"]).dataset
            loader, overrides = node.loader, [f"dataset={name}"]
            if loader == "synthetic":
                continue  # a student from a file: its own test below
            if loader == "none":  # no data: only a given teacher, tests/test_data_optional.py
                not_run[name] = "no images: it takes a given teacher (teacher_from)"
                continue
            if loader == "digits":
                kind = ("digits", 1)
            elif loader == "torchvision" and node.torchvision_class in IDX_FORMAT:
                kind = ("idx", 1)
                if kind not in kinds:
                    make_mnist(data / name, train=TRAIN * 10, test=TEST * 10,
                               folder=TORCHVISION_CLASSES[node.torchvision_class])
                overrides += [f"dataset.root={data / name}", "dataset.download=false"]
            elif loader == "torchvision":
                not_run[name] = (f"torchvision checks {node.torchvision_class}'s files against "
                                 f"their published checksums, so none can be generated")
                continue
            elif loader == "image_folder":
                kind = ("image_folder", 3)
                if kind not in kinds:
                    make_folder(data / name)
                overrides += [f"dataset.root={data / name}"]
            else:
                pytest.fail(f"dataset={name}: no files are generated for loader {loader!r}; "
                            f"teach tests/test_matrix.py to write them")
            if kind in kinds:
                not_run[name] = f"the same kind as dataset={kinds[kind]}"
                continue
            kinds[kind] = name
            runs[name] = overrides
    return runs, not_run


def sized(cfg: DictConfig, sizes: dict[str, int]) -> DictConfig:
    """``cfg`` (a copy) with the given sizes where it has the keys, as a command line sets them,
    and without Hydra's own node (what a job is handed)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for key, value in sizes.items():
            if OmegaConf.select(cfg, key) is not None:
                OmegaConf.update(cfg, key, value)
        per_class = OmegaConf.select(cfg, "extractor.per_class")
        if per_class is not None:
            cfg.extractor.per_class = min(per_class, PER_CLASS)
        cfg.pop("hydra", None)
    return cfg


def with_student(cfg: DictConfig, student_cfg: DictConfig) -> DictConfig:
    """The config of ``cfg``'s run with ``student_cfg``'s student: the student's choice decides
    only the ``student`` and ``trainer.student`` nodes (checked against whole compositions by
    test_a_student_choice_changes_only_the_student_nodes)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.student = student_cfg.student
        cfg.trainer.student = student_cfg.trainer.student
    return cfg


class Outcomes:
    def __init__(self) -> None:
        self.finished: list[str] = []
        self.refused: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.door_only: list[str] = []
        self.seconds = 0.0

    def refuse(self, what: str, error: ConfigError) -> None:
        line = str(error)
        if "\n" in line or not line.startswith(f"{error.key}: expected "):
            self.failed[what] = f"a refusal that is not one line naming its key: {line!r}"
        else:
            self.refused[what] = line

    def check(self, what: str, result: pipeline.RunResult, above_chance: bool) -> None:
        losses = [*result.student_losses, *result.teacher_losses]
        evaluations = result.evaluations
        student = evaluations["student"].accuracy
        classes = len(result.class_names)
        chance = 1.0 / classes
        test_size = TEST * classes
        bar = chance + 3 * math.sqrt(chance * (1 - chance) / test_size)
        if not all(math.isfinite(loss) for loss in losses):
            self.failed[what] = "a loss is not finite"
        elif not all(math.isfinite(e.accuracy) for e in evaluations.values()):
            self.failed[what] = "an accuracy is not finite"
        elif above_chance and student <= bar:
            self.failed[what] = f"student {student:.3f}, chance {chance:.3f} (bar {bar:.3f})"
        else:
            self.finished.append(what)

    def run(self, what: str, cfg: DictConfig, base: Path, data_cache: dict,
            above_chance: bool = False, door_only: bool = False) -> pipeline.RunResult | None:
        try:
            settings = run_settings(cfg, base)
        except ConfigError as error:
            self.refuse(what, error)
            return None
        if door_only:
            self.door_only.append(what)
            return None
        key = (settings.dataset.name, settings.dataset.classes)
        started = time.perf_counter()
        try:
            if key not in data_cache and not settings.from_file:
                data_cache[key] = pipeline.load_data(settings)
            result = pipeline.run(settings, data=data_cache.get(key))
        except Exception as error:  # noqa: BLE001 - the matrix lists every failure at once
            self.failed[what] = f"{type(error).__name__}: {error}".splitlines()[0]
            return None
        finally:
            self.seconds += time.perf_counter() - started
        self.check(what, result, above_chance)
        return result

    def report(self, title: str) -> None:
        print(f"\n{title}: {len(self.finished)} ran to the end, {len(self.door_only)} passed the "
              f"door (not run: a large model's), {len(self.refused)} refused at the door, "
              f"{len(self.failed)} failed; {self.seconds:.0f} s in the pipeline")
        for what, line in sorted(self.refused.items()):
            print(f"  refused {what}: {line}")
        for what, why in sorted(self.failed.items()):
            print(f"  FAILED {what}: {why}")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    data = tmp_path_factory.mktemp("matrix-data")
    runs, not_run = dataset_kinds(data)
    return data, runs, not_run


def large_architectures(composed: dict[str, DictConfig], shape=(1, 28, 28)) -> set[str]:
    """The architectures whose default model (``composed``: a config choosing each as the
    student) has more than ``LARGE`` parameters on MNIST's images."""
    from classvis.models import build_model, count_parameters, parse_architecture

    large = set()
    for name, cfg in composed.items():
        try:
            settings = parse_architecture(OmegaConf.to_container(cfg.student), "student")
            settings.check_input(shape, "student")
            model = build_model(settings, shape, CLASSES, 0)
        except ConfigError:  # module: your own network, named on the command line; torchvision:
            continue         # its weights' 224x224 input
        if count_parameters(model) > LARGE:
            large.add(name)
    return large


def first_classes(overrides: list[str]) -> list[str]:
    """``dataset.classes=[...]``: the dataset's first classes, so every run has 3."""
    cfg = compose(config_name="config", overrides=overrides)
    settings = run_settings(sized(cfg, {}), Path.cwd())
    names = known_class_names(settings.dataset) or []
    return [f"dataset.classes=[{','.join(names[:CLASSES])}]"] if len(names) > CLASSES else []


def test_a_student_choice_changes_only_the_student_nodes():
    rng = random.Random(0)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for _ in range(6):
            teacher, student = rng.choice(ARCHITECTURE_OPTIONS), rng.choice(ARCHITECTURE_OPTIONS)
            extractor = rng.choice(EXTRACTOR_OPTIONS[1:])
            base = ["dataset=digits", f"architecture@teacher={teacher}", f"extractor={extractor}"]
            whole = compose(config_name="config",
                            overrides=[*base, f"architecture@student={student}"])
            merged = with_student(compose(config_name="config", overrides=base),
                                  compose(config_name="config",
                                          overrides=[f"architecture@student={student}"]))
            assert OmegaConf.to_container(merged) == OmegaConf.to_container(whole)


def test_every_dataset_teacher_extractor_and_student_runs_or_is_refused(matrix, tmp_path,
                                                                        monkeypatch):
    data, runs, not_run = matrix
    monkeypatch.setenv("CLASSVIS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    outcomes, data_cache = Outcomes(), {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        students = {student: compose(config_name="config",
                                     overrides=[f"architecture@student={student}"])
                    for student in ARCHITECTURE_OPTIONS}
        large = large_architectures(students)
        assert large == {"resnet18"}  # what the docstring says; update both together
        for dataset, dataset_overrides in runs.items():
            common = [*dataset_overrides, *first_classes(dataset_overrides),
                      f"teacher_cache.dir={tmp_path / 'teachers'}"]
            for teacher in ARCHITECTURE_OPTIONS:
                for extractor in EXTRACTOR_OPTIONS:
                    choice = [] if extractor == "(default)" else [f"extractor={extractor}"]
                    cfg = compose(config_name="config",
                                  overrides=[*common, f"architecture@teacher={teacher}", *choice])
                    for student, student_cfg in students.items():
                        what = f"{dataset} | {teacher} -> {extractor} -> {student}"
                        whole = with_student(cfg, student_cfg)
                        dense = all(ARCHITECTURES[name].trait("dense")
                                    for name in (teacher, student))
                        pair = {teacher, student}
                        door_only = bool(pair & large) and not pair <= large | {"linear"}
                        outcomes.run(what, sized(whole, LEARNABLE if dense else TINY), tmp_path,
                                     data_cache, above_chance=dense, door_only=door_only)
    outcomes.report(f"matrix (not run: {not_run})")
    total = len(runs) * len(ARCHITECTURE_OPTIONS) ** 2 * len(EXTRACTOR_OPTIONS)
    assert len(outcomes.finished) + len(outcomes.refused) + len(outcomes.failed) + len(
        outcomes.door_only) == total
    assert outcomes.finished
    unexpected = {what: why for what, why in outcomes.failed.items() if what not in KNOWN_WEAK}
    assert not unexpected, sorted(unexpected.items())[:5]
    fixed = sorted(set(KNOWN_WEAK) - set(outcomes.failed))
    assert not fixed, f"these now beat chance: strike them off KNOWN_WEAK: {fixed}"


def test_swap_and_compress_for_every_kind_and_teacher(matrix, tmp_path, monkeypatch):
    """Every swap and compress option (with all the dataset's classes, as they need) for every
    kind and teacher, the default extractor and a linear student; a dense teacher's student
    beats chance. A large teacher (resnet18: a donor teacher too) is checked at the door only."""
    data, runs, _ = matrix
    monkeypatch.setenv("CLASSVIS_CACHE", str(tmp_path / "cache"))
    outcomes, data_cache = Outcomes(), {}
    stages = [*(f"swap={name}" for name in options("swap") if name != "none"),
              *(f"compress={name}" for name in options("compress") if name != "none")]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        large = large_architectures({name: compose(config_name="config", overrides=[
            f"architecture@student={name}"]) for name in ARCHITECTURE_OPTIONS})
        for dataset, dataset_overrides in runs.items():
            for teacher in ARCHITECTURE_OPTIONS:
                for stage in stages:
                    what = f"{dataset} | {teacher} | {stage}"
                    cfg = compose(config_name="config", overrides=[
                        *dataset_overrides, f"architecture@teacher={teacher}", stage,
                        f"teacher_cache.dir={tmp_path / 'teachers'}"])
                    dense = ARCHITECTURES[teacher].trait("dense")
                    outcomes.run(what, sized(cfg, LEARNABLE if dense else TINY), tmp_path,
                                 data_cache, above_chance=dense, door_only=teacher in large)
    outcomes.report("swap and compress")
    assert len(outcomes.finished) + len(outcomes.refused) + len(outcomes.failed) + len(
        outcomes.door_only) == len(
        runs) * len(ARCHITECTURE_OPTIONS) * len(stages)
    assert outcomes.finished and set(outcomes.failed) == {
        "cifar10_jpg | mlp | compress=biases"}, sorted(outcomes.failed.items())[:5]
    # ^ the MLP teacher's default extractor on 3-channel images again (KNOWN_WEAK)


def test_a_student_from_an_exported_file_for_every_student(matrix, tmp_path, monkeypatch):
    """``dataset=synthetic``: every student from a synthetic-set file, evaluated on the real
    test set the file names."""
    data, runs, _ = matrix
    monkeypatch.setenv("CLASSVIS_CACHE", str(tmp_path / "cache"))
    outcomes, data_cache = Outcomes(), {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        source = compose(config_name="config", overrides=[
            *runs["mnist"], "extractor.per_class=2", "extractor.start_std=0.3",
            f"teacher_cache.dir={tmp_path / 'teachers'}"])
        made = outcomes.run("the file's run", sized(source, LEARNABLE), tmp_path, data_cache,
                            above_chance=True)
        assert made is not None, outcomes.failed
        path = tmp_path / "set.safetensors"
        made.synthetic.save(path)
        for student in ARCHITECTURE_OPTIONS:
            cfg = compose(config_name="config", overrides=[
                "dataset=synthetic", f"dataset.path={path}", f"architecture@student={student}"])
            dense = ARCHITECTURES[student].trait("dense")
            outcomes.run(f"synthetic | {student}", sized(cfg, LEARNABLE if dense else TINY),
                         tmp_path, {}, above_chance=dense)
    outcomes.report("from a file")
    assert not outcomes.failed
    assert len(outcomes.finished) + len(outcomes.refused) == 1 + len(ARCHITECTURE_OPTIONS)
    # refused: only a student that cannot be one (module, your own trained network)
    assert all(line.startswith("architecture@student: ") for line in outcomes.refused.values())
    assert len(outcomes.refused) < len(ARCHITECTURE_OPTIONS) // 2
