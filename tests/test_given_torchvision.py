"""``teacher_from=torchvision``: a torchvision classifier named by its pretrained weights. The
weights' metadata give the network, its 1,000 classes, its 224 x 224 input and normalisation;
the file is read from the torch hub cache as a state dict (never unpickled). ``dataset.classes``
picks the classes to extract from a large teacher, and extraction goes a group of classes at a
time. The tests save a randomly initialised resnet18 where the loader reads the pretrained one."""

from __future__ import annotations

import pytest
import torch
from test_config import settings_for

from classvis import pipeline
from classvis.models import TorchvisionSettings
from classvis.validation import ConfigError

WEIGHTS = "ResNet18_Weights.IMAGENET1K_V1"
CLASSES = "dataset.classes=[tench,goldfish,tabby]"
QUICK = ["dataset=none", "teacher_from=torchvision", "device=cpu", "extractor.steps=2",
         "extractor.per_class=1", "trainer.student.steps=3", CLASSES]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A torch hub cache holding a random resnet18 as ResNet18_Weights.IMAGENET1K_V1's file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from torchvision.models import resnet18

    settings = TorchvisionSettings(weights=WEIGHTS)
    path = settings.hub_file
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    network = resnet18()
    torch.save(network.state_dict(), path)
    return path, network


def test_the_weights_metadata_declare_the_network_its_classes_and_input(hub):
    path, network = hub
    settings = settings_for(*QUICK)
    assert settings.teacher.label == "torchvision:resnet18"
    assert settings.dataset.image_shape == (3, 224, 224)
    names = settings.dataset.class_names
    assert len(names) == 1000 and names[1] == "goldfish"
    assert settings.teacher_outputs == (0, 1, 281)
    assert settings.given_weights.path == str(path)
    assert settings.run_name.startswith("none[tench,goldfish,tabby] | torchvision:resnet18")
    result = pipeline.run(settings)
    assert result.class_names == ["tench", "goldfish", "tabby"]
    assert result.synthetic.images.shape == (3, 3, 224, 224)
    assert result.synthetic.soft_targets.shape == (3, 3)  # the three classes' scores
    assert float(result.synthetic.images.min()) >= 0 and float(result.synthetic.images.max()) <= 1
    teacher = result.teacher
    # the run's teacher: the network's scores of the chosen classes, behind its normalisation
    normalised = (result.synthetic.images - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
                  ) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = network.eval()(normalised)[:, [0, 1, 281]]
        torch.testing.assert_close(teacher(result.synthetic.images), expected)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert result.evaluations == {} and result.agreement is not None


def test_many_classes_are_extracted_a_group_at_a_time(hub, monkeypatch):
    """``extractor.batch_size`` below the class count: groups of classes, each optimised on its
    own; the teacher is called with batches of at most that many images."""
    from classvis.models import ClassSubset

    seen = []
    original = ClassSubset.forward

    def counting(self, x):
        seen.append(len(x))
        return original(self, x)

    monkeypatch.setattr(ClassSubset, "forward", counting)
    settings = settings_for(*QUICK[:-1], "dataset.classes=[tench,goldfish,tabby,robin,jay]",
                            "extractor.batch_size=2", "trainer.student.augment=[]")
    assert settings.extractor.classes_per_group(5) == 2
    result = pipeline.run(settings)
    assert len(result.synthetic.images) == 5
    extraction_calls = seen[:3 * 2]  # 3 groups (2, 2, 1 classes) of 2 steps each
    assert extraction_calls == [2, 2, 2, 2, 1, 1]


def test_without_the_file_one_line_names_it_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as refused:
        settings_for(*QUICK, "teacher_from.download=false")
    message = str(refused.value)
    assert message.startswith(
        f"teacher.weights: expected {WEIGHTS}'s file in the torch hub cache: put "
        "https://download.pytorch.org/models/resnet18-f37072fd.pth at "
        f"{tmp_path / 'empty' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'}")
    assert message.endswith("got 'no resnet18-f37072fd.pth there'") and "\n" not in message
    # pretrained=false: the same network with seeded random weights, no file needed
    settings = settings_for(*QUICK, "teacher_from.pretrained=false")
    assert settings.given_weights.path == "random init of resnet18 (seed 0)"
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("overrides,message", [
    (["teacher.weights=ResNet18_Weights.NOPE"], "teacher.weights: expected a name of "
                                                "torchvision's pretrained weights"),
    (["dataset.classes=[tench,unicorn]"], "dataset.classes: expected class names among tench, "
                                          "goldfish, great white shark,"),
    (["architecture@teacher=torchvision", "teacher_from=train", "dataset=digits"],
     "teacher_from: expected torchvision with architecture@teacher=torchvision"),
    (["dataset=digits"], "dataset.classes: expected class names among 0, 1, 2,"),
    (["dataset=digits", "dataset.classes=null"], "teacher: expected images of 3x224x224 for "
                                                 f"{WEIGHTS} (the dataset's are 1x8x8)"),
])
def test_bad_torchvision_input_is_refused_in_one_line(hub, overrides, message):
    with pytest.raises(ConfigError) as refused:
        settings_for(*QUICK, *overrides)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert "... (1000 in all)" in str(refused.value) or "unicorn" not in overrides[0]
