"""Dataset loaders on small files written here, through the real torchvision readers."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    blob_images,
    bomb_png,
    flip_data_byte,
    make_image_folder,
    truncate,
    write_idx,
)

from classvis.data import DatasetSettings, load_dataset
from classvis.validation import ConfigError, parse


def mnist_settings(root, cache_dir, **extra) -> DatasetSettings:
    return parse(DatasetSettings, {"name": "mnist", "loader": "torchvision",
                                   "torchvision_class": "MNIST", "root": str(root),
                                   "download": False, "cache_dir": str(cache_dir), **extra},
                 "dataset")


def test_mnist_idx_files_load_through_torchvision(mnist_root, tmp_path):
    data = load_dataset(mnist_settings(mnist_root, tmp_path / "cache"))
    images, labels = blob_images(600, 10, 28, seed=0)
    assert data.train_x.shape == (600, 1, 28, 28) and data.test_x.shape == (200, 1, 28, 28)
    assert data.train_x.dtype == torch.float32
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(images).float() / 255)
    assert data.train_y.tolist() == labels.tolist()
    assert data.class_names[0] == "0 - zero"  # torchvision's names unless the config renames them
    assert data.image_shape == (1, 28, 28) and data.num_classes == 10


def test_second_load_reads_the_cache_and_a_changed_file_misses_it(mnist_root, tmp_path,
                                                                   monkeypatch):
    settings = mnist_settings(mnist_root, tmp_path / "cache")
    first = load_dataset(settings)
    assert len(list((tmp_path / "cache").glob("mnist-*.safetensors"))) == 1

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    import torchvision

    monkeypatch.setattr(torchvision.datasets, "MNIST", must_not_decode)
    second = load_dataset(settings)
    assert torch.equal(first.train_x, second.train_x) and first.class_names == second.class_names

    monkeypatch.undo()
    images, labels = blob_images(600, 10, 28, seed=5)
    write_idx(mnist_root / "MNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    write_idx(mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte", images)
    third = load_dataset(settings)
    assert third.train_y.tolist() == labels.tolist()


def test_image_folder_loads_every_split_and_class(tmp_path):
    root = make_image_folder(tmp_path / "pets")
    settings = parse(DatasetSettings, {"name": "pets", "loader": "image_folder",
                                       "root": str(root)}, "dataset")
    data = load_dataset(settings)
    assert data.class_names == ["cat", "dog", "frog"]
    assert data.train_x.shape == (24, 3, 12, 12) and data.test_x.shape == (12, 3, 12, 12)
    assert data.train_y.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    # the class-coloured channel is the bright one
    ones = data.train_x[data.train_y == 1]
    assert ones[:, 1].mean() > 0.5 > ones[:, 0].mean()
    assert list((root / ".classvis-cache").glob("pets-*.safetensors"))


def test_an_image_folder_of_mixed_colour_modes_is_rgb_throughout(tmp_path, caplog):
    from PIL import Image

    from classvis.loaders import known_image_shape

    root = make_image_folder(tmp_path / "pets")
    Image.new("L", (12, 12), 200).save(root / "train" / "cat" / "000.png")  # first in sort order
    Image.new("1", (12, 12), 1).save(root / "test" / "frog" / "003.png")
    settings = parse(DatasetSettings, {"name": "pets", "loader": "image_folder",
                                       "root": str(root)}, "dataset")
    assert known_image_shape(settings) == (3, 12, 12)
    with caplog.at_level("WARNING"):
        data = load_dataset(settings)
    assert data.train_x.shape == (24, 3, 12, 12) and data.test_x.shape == (12, 3, 12, 12)
    assert torch.equal(data.train_x[0], torch.full((3, 12, 12), 200 / 255))
    assert torch.equal(data.test_x[-1], torch.ones(3, 12, 12))
    assert "2 greyscale image(s) among colour ones, converted to RGB" in caplog.text
    # a greyscale folder stays one channel
    grey = tmp_path / "grey"
    for split, count in (("train", 2), ("test", 1)):
        for name in ("a", "b"):
            (grey / split / name).mkdir(parents=True)
            for k in range(count):
                Image.new("L", (5, 5), 10 * k).save(grey / split / name / f"{k}.png")
    settings = parse(DatasetSettings, {"name": "grey", "loader": "image_folder",
                                       "root": str(grey)}, "dataset")
    assert known_image_shape(settings) == (1, 5, 5)
    assert load_dataset(settings).train_x.shape == (4, 1, 5, 5)


def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path):
    from classvis.loaders import known_image_shape

    root = make_image_folder(tmp_path / "pets")
    bomb = bomb_png(root / "train" / "cat" / "000.png")
    settings = parse(DatasetSettings, {"name": "pets", "loader": "image_folder",
                                       "root": str(root)}, "dataset")
    line = (f"dataset.root: expected readable images, got '{bomb} (Image size (180000000 "
            "pixels) exceeds limit of")
    for read in (load_dataset, known_image_shape):
        with pytest.raises(ConfigError) as error:
            read(settings)
        assert str(error.value).startswith(line) and "\n" not in str(error.value)
        assert str(error.value).endswith("refused by PIL as a possible decompression bomb)'")


def test_an_image_folder_with_one_class_is_refused(tmp_path):
    root = make_image_folder(tmp_path / "cats", classes=("cat",))
    settings = parse(DatasetSettings, {"name": "cats", "loader": "image_folder",
                                       "root": str(root)}, "dataset")
    with pytest.raises(ConfigError, match=r"^dataset.root: expected at least two class folders "
                                          r"under train/ and test/, got '1 \(cat\) in "):
        load_dataset(settings)


def test_digits_and_class_subsets_are_relabelled():
    settings = parse(DatasetSettings, {"name": "digits", "loader": "digits",
                                       "classes": [4, 3]}, "dataset")
    data = load_dataset(settings)
    assert data.class_names == ["4", "3"]
    assert set(data.train_y.tolist()) == {0, 1}
    full = load_dataset(parse(DatasetSettings, {"name": "digits", "loader": "digits"}, "dataset"))
    assert full.train_x.shape == (1347, 1, 8, 8) and full.test_x.shape == (450, 1, 8, 8)
    assert (full.train_y == 4).sum() == (data.train_y == 0).sum()
    assert torch.equal(full.train_x[full.train_y == 3], data.train_x[data.train_y == 1])
    assert 0.0 <= full.train_x.min() and full.train_x.max() == 1.0


def test_unknown_class_name_is_a_one_line_error():
    settings = parse(DatasetSettings, {"name": "digits", "loader": "digits",
                                       "classes": ["3", "eleven"]}, "dataset")
    with pytest.raises(ConfigError) as error:
        load_dataset(settings)
    assert str(error.value).startswith("dataset.classes: expected class names among 0, 1,")
    assert str(error.value).endswith("got 'eleven'")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("mapping,message", [
    ({"torchvision_class": "ImageNet22k"}, "dataset.torchvision_class: expected one of MNIST"),
    ({"class_names": ["a"], "classes": ["b", "a"]}, "dataset.classes: expected class names"),
    ({"colour": True}, "dataset.colour: expected no such key"),
])
def test_bad_dataset_settings_name_the_key(tmp_path, mapping, message):
    base = {"name": "mnist", "loader": "torchvision", "torchvision_class": "MNIST",
            "root": str(tmp_path), "download": False}
    with pytest.raises(ConfigError) as error:
        parse(DatasetSettings, {**base, **mapping}, "dataset")
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("damage,why", [
    (lambda path: path.write_bytes(b"\x80\x04not a safetensors file"), "it cannot be read"),
    (flip_data_byte, "its content does not match its digest (damaged or altered)"),
    (lambda path: flip_data_byte(path, at=0.999), "its content does not match its digest"),
    (truncate, "it cannot be read"),
])
def test_damaged_cache_is_rebuilt_not_trusted(mnist_root, tmp_path, caplog, damage, why):
    settings = mnist_settings(mnist_root, tmp_path / "cache")
    sound = load_dataset(settings)
    (cache_file,) = (tmp_path / "cache").glob("mnist-*.safetensors")
    damage(cache_file)
    with caplog.at_level("WARNING", logger="classvis"):
        data = load_dataset(settings)
    (line,) = [r.getMessage() for r in caplog.records if "dataset cache" in r.getMessage()]
    assert line.startswith(f"discarding dataset cache {cache_file}: {why}")
    assert line.endswith("decoding the dataset again") and "\n" not in line
    assert torch.equal(data.train_x, sound.train_x) and torch.equal(data.test_y, sound.test_y)
    caplog.clear()
    with caplog.at_level("WARNING", logger="classvis"):
        load_dataset(settings)  # rewritten: read back without a word
    assert not caplog.records
