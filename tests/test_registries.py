"""Contract tests: every entry of every registry (architectures, extractors, dataset loaders)
keeps the promises the rest of the code relies on, and every file in ``conf/`` composes and
passes ``run_settings``. They walk the registries and ``conf/``, so a new entry is covered
without editing them, and nothing here pins what is registered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import ROOT, make_image_folder, make_mnist
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from safetensors.torch import save_file
from test_presets import preset_jobs, presets
from torch import nn

from classvis.data import DatasetSettings, ImageData
from classvis.extract import EXTRACTORS
from classvis.from_config import run_settings
from classvis.loaders import (
    LOADERS,
    check_files,
    known_class_names,
    known_image_shape,
    source_folders,
    source_location,
)
from classvis.models import ARCHITECTURES, build_model, parse_architecture
from classvis.models.base import trait
from classvis.registry import Registry
from classvis.validation import ConfigError

CONF = ROOT / "conf"
SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.fixture(autouse=True)
def _hydra():
    """One Hydra context per test: composing in it is ten times faster than opening one each."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def _compose(overrides: list[str], hydra_config: bool = False):
    return compose(config_name="config", overrides=overrides, return_hydra_config=hydra_config)


# an architecture that is your own network (module) names one, from tests/user_networks.py
NETWORK = {"module": lambda side: [f"{side}.network._target_=user_networks.AnyShape"]}


def _architecture(name: str, side: str = "teacher"):
    cfg = _compose([f"architecture@{side}={name}", *NETWORK.get(name, lambda _: [])(side)])
    return parse_architecture(OmegaConf.to_container(cfg[side]), side)


def _for_input(settings, shape: tuple[int, ...]):
    """``settings`` for images of ``shape``: an architecture that declares its input (module)
    declares this one."""
    if "channels" not in {f.name for f in dataclasses.fields(settings)}:
        return settings
    channels, height, width = shape
    return dataclasses.replace(settings, channels=channels, height=height, width=width,
                               network={**settings.network, "channels": channels})


def _shapes(settings) -> list[tuple[int, ...]]:
    """The image shapes to build ``settings`` for: both, or the one its weights declare
    (torchvision's)."""
    fixed = getattr(settings, "input_shape", None)
    declared = "channels" in {f.name for f in dataclasses.fields(settings)}
    return SHAPES if fixed is None or declared else [fixed]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_an_architecture_has_its_yaml_builds_for_both_shapes_and_keeps_its_traits(name):
    assert (CONF / "architecture" / f"{name}.yaml").is_file()
    for side in ("teacher", "student"):
        assert _architecture(name, side).name == name
    settings = dataclasses.replace(_architecture(name), init="default")
    for shape in _shapes(settings):
        settings = _for_input(settings, shape)
        settings.check_input(shape, "teacher")
        model = build_model(settings, shape, 10, seed=0)
        assert model(torch.rand(2, *shape)).shape == (2, 10)
        assert model.output_layer is [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        assert trait(settings, "dense") == (not any(isinstance(m, nn.Conv2d) for m in layers))
        assert trait(settings, "hidden_layers") == (len(layers) > 1)
        assert trait(settings, "batchnorm") == any(
            isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_an_architectures_seed_alone_sets_its_initial_weights(name):
    settings = dataclasses.replace(_architecture(name), init="default")
    shape = _shapes(settings)[0]
    settings = _for_input(settings, shape)
    torch.manual_seed(1)
    first = build_model(settings, shape, 10, seed=3).state_dict()
    torch.rand(100)  # the global generator moves on: it must not matter
    again = build_model(settings, shape, 10, seed=3).state_dict()
    other = build_model(settings, shape, 10, seed=4).state_dict()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def _tiny_data(classes: int = 3, per_class: int = 4, shape=(1, 8, 8)) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat(per_class)
    images = torch.rand(len(labels), *shape, generator=generator)
    return ImageData("tiny", [f"c{c}" for c in range(classes)], images, labels, images.clone(),
                     labels.clone())


_NAMED: dict[str, str] = {}  # extractor option -> the extractor it chooses, composed once


def _options_naming(name: str) -> list[str]:
    """The ``extractor`` options (files under conf/extractor/) that choose extractor ``name``."""
    if not _NAMED:
        for path in sorted((CONF / "extractor").rglob("*.yaml")):
            option = path.relative_to(CONF / "extractor").with_suffix("").as_posix()
            _NAMED[option] = _compose([f"extractor={option}"]).extractor.name
    return [option for option, chosen in _NAMED.items() if chosen == name]


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_an_extractor_has_an_option_and_returns_images_of_the_datas_shape(name):
    options = _options_naming(name)
    assert options, f"no file under conf/extractor/ chooses extractor {name}"

    node = OmegaConf.to_container(_compose([f"extractor={options[0]}"]).extractor)
    entry_name, settings = EXTRACTORS.parse(node, "extractor")
    assert entry_name == name and isinstance(settings, EXTRACTORS[name].settings_class)
    fields = {field.name for field in dataclasses.fields(settings)}
    short = {key: value for key, value in {"steps": 3, "per_class": 2, "batch_size": 0,
                                           "jitter": 0, "scale": 0.0}.items() if key in fields}
    settings = dataclasses.replace(settings, **short)
    data = _tiny_data()
    teacher = build_model(_architecture("linear"), data.image_shape, data.num_classes, seed=0)
    nn.init.normal_(teacher.output_layer.weight)
    found = EXTRACTORS[name].function(teacher, data, settings, 0, None)
    assert found.images.shape[1:] == data.image_shape
    assert torch.isfinite(found.images).all()
    assert set(found.labels.tolist()) == set(range(data.num_classes))
    assert EXTRACTORS[name].trait("teacher_without_hidden_layers") in (True, False)


def _generated(loader: str, root: Path) -> dict:
    """Dataset settings of ``loader`` over files generated under ``root``."""
    if loader == "torchvision":
        return {"torchvision_class": "MNIST", "root": str(make_mnist(root, train=30, test=10))}
    if loader == "image_folder":
        return {"root": str(make_image_folder(root))}
    if loader == "digits":
        return {}
    if loader == "none":  # no files: the shape and classes a given teacher declares
        return {"image_shape": (1, 8, 8), "class_names": ("a", "b")}
    pytest.fail(f"no files are generated for loader {loader}: add them here")


@pytest.mark.parametrize("name", list(LOADERS))
def test_a_loader_has_an_option_and_tells_its_shape_and_classes_before_decoding(name, tmp_path):
    chosen = {_compose([f"dataset={path.stem}"]).dataset.loader
              for path in (CONF / "dataset").glob("*.yaml")}
    assert name in chosen, f"no file under conf/dataset/ uses loader {name}"
    settings = DatasetSettings(name="generated", loader=name, cache=False,
                               **_generated(name, tmp_path))
    check_files(settings)
    shape, names = known_image_shape(settings), known_class_names(settings)
    train_x, train_y, test_x, test_y, class_names = LOADERS[name].function(settings)
    assert train_x.dtype == test_x.dtype == torch.uint8 and train_x.ndim == 4
    assert shape is None or tuple(train_x.shape[1:]) == shape == tuple(test_x.shape[1:])
    assert names is None or len(names) == len(class_names)
    assert len(train_y) == len(train_x) and len(test_y) == len(test_x)
    assert all(len(labels) == 0 or int(labels.max()) < len(class_names)
               for labels in (train_y, test_y))
    folders = source_folders(settings)
    assert folders is None or all(folder.is_dir() for folder in folders)
    assert isinstance(source_location(settings), str)


def test_the_dataset_settings_name_every_loader():
    import typing

    loaders = set(typing.get_args(typing.get_type_hints(DatasetSettings)["loader"]))
    assert loaders == {*LOADERS, "synthetic"}  # synthetic: a set from a file (classvis.synthetic)


def test_a_registry_refuses_an_entry_without_its_traits_or_registered_twice():
    registry: Registry = Registry("widget", traits=("round",))
    registry.register("a", dict, round=True)(print)
    with pytest.raises(TypeError, match="traits"):
        registry.register("b", dict)(print)
    with pytest.raises(ValueError, match="twice"):
        registry.register("a", dict, round=False)(print)
    with pytest.raises(ConfigError, match=r"^widget\.name: expected one of a, got 'c'$"):
        registry.parse({"name": "c"}, "widget")


PRESET_JOBS = [job for preset in presets() for job in preset_jobs(preset)]
# options that are refused alone by design, and the choice that makes them run
PAIRED = {"extractor=deep_vis_bn": ["architecture@teacher=resnet18"],
          # the default teacher's weights for MNIST, written by the data_root fixture
          "teacher_from=weights": ["teacher_from.path=${data_root}/linear.safetensors"]}
# your own network as the teacher: a network of tests/user_networks.py and its weights for MNIST
MODULE_TEACHER = ["teacher_from=module", "teacher.network._target_=user_networks.AnyShape",
                  "teacher_from.path=${data_root}/module.safetensors"]
PAIRED.update({option: MODULE_TEACHER for option in (
    "teacher_from=module", "architecture@teacher=module", "extractor=auto/module",
    "dataset=none")})
# a torchvision classifier by its weights' name, randomly initialised (no file to read)
PAIRED.update({option: ["teacher_from=torchvision", "teacher_from.pretrained=false",
                        "dataset=none", "dataset.classes=[tench,goldfish]"]
               for option in ("teacher_from=torchvision", "architecture@teacher=torchvision",
                              "extractor=auto/torchvision")})
# options whose files cannot be generated, or refused by design, and the one-line refusal
UNAVAILABLE = {"dataset=cifar10": "dataset.root", "dataset=synthetic": "dataset.path",
               "architecture@student=module": "architecture@student",
               "architecture@student=torchvision": "architecture@student",
               # a model logged in a store: tests/test_given_mlflow.py logs and registers one
               "teacher_from=mlflow": "teacher_from.uri"}


def conf_choices() -> list[list[str]]:
    """One override list per file in conf/: each group option (the architecture group on both
    sides; the recipes, per-dataset ones too, through the choices that select them), every job of
    every experiment preset (its sweep axes' files), every search."""
    jobs: list[list[str]] = []
    for group in ("dataset", "extractor", "trainer", "swap", "compress", "teacher_from"):
        for path in sorted((CONF / group).rglob("*.yaml")):
            option = path.relative_to(CONF / group).with_suffix("").as_posix()
            jobs.append([f"{group}={option}"])
    for path in sorted((CONF / "architecture").glob("*.yaml")):
        jobs += [[f"architecture@teacher={path.stem}"], [f"architecture@student={path.stem}"]]
    jobs += PRESET_JOBS
    return [[*job, *PAIRED.get(job[0], [])]
            + ([f"architecture@teacher={job[0].removeprefix('extractor=auto/')}"]
               if job[0].startswith("extractor=auto/") else []) for job in jobs]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_mnist(root, train=30, test=10)
    make_mnist(root, train=30, test=10, folder="FashionMNIST")
    make_image_folder(root / "cifar10-jpg", classes=tuple(f"c{i}" for i in range(10)))
    make_image_folder(root / "folder")
    linear = ARCHITECTURES.parse({"name": "linear"}, "teacher")[1]
    save_file(build_model(linear, (1, 28, 28), 10, 0).state_dict(),
              str(root / "linear.safetensors"))
    from user_networks import AnyShape

    save_file(AnyShape().state_dict(), str(root / "module.safetensors"))
    return root


def test_every_file_in_conf_composes_and_passes_run_settings(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    chosen, checked = set(), 0
    for job in [*conf_choices(), *[[f"hparams_search={path.stem}"]
                                   for path in (CONF / "hparams_search").glob("*.yaml")]]:
        cfg = _compose([*job, f"data_root={data_root}"], hydra_config=True)
        chosen.update(f"{group.split('@')[0]}/{option}.yaml" for group, option in
                      cfg.hydra.runtime.choices.items() if option is not None)
        with open_dict(cfg):
            del cfg["hydra"]  # a job's settings: Hydra fills in its own node when it runs
            if cfg.dataset.loader == "torchvision":
                cfg.dataset.download = False
            if job[0] == "dataset=image_folder":
                cfg.dataset.root = str(data_root / "folder")
        key = " ".join(job)
        if job[0] in UNAVAILABLE:
            with pytest.raises(ConfigError) as refused:
                run_settings(cfg, tmp_path)
            assert str(refused.value).startswith(UNAVAILABLE[job[0]] + ":"), key
            assert "\n" not in str(refused.value), key
            continue
        try:
            run_settings(cfg, tmp_path)
        except ConfigError as error:
            pytest.fail(f"{key}: refused: {error}")
        checked += 1
    assert checked >= 60
    # a dataset's recipe adjustments are in its defaults list (not a choice of their own)
    chosen.update(f"{line.strip().lstrip('- /')}.yaml"
                  for path in (CONF / "dataset").glob("*.yaml")
                  for line in path.read_text().splitlines() if line.strip().startswith("- /"))
    files = {path.relative_to(CONF).as_posix() for path in CONF.rglob("*.yaml")}
    unchosen = sorted(files - chosen - {"config.yaml", "hydra/launcher/slurm.yaml"})
    assert not unchosen, f"no choice composes {unchosen}"
