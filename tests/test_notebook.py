"""``classvis.notebook``: the common path without the command line. With the same teacher and
seed it makes the same synthetic set and the same student as ``train.py``'s pipeline; what it
cannot do without real data is refused in one line; the README's example runs."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import ROOT
from test_config import settings_for

from classvis import notebook, pipeline
from classvis.synthetic import SyntheticSet
from classvis.validation import ConfigError

DIGITS = ["dataset=digits", "trainer.teacher.epochs=3", "device=cpu", "privacy.enabled=false"]


@pytest.fixture(scope="module")
def run():
    return pipeline.run(settings_for(*DIGITS, "extractor=class_vis", "trainer.student.steps=100",
                                     "teacher_cache.enabled=false"))


def test_the_notebook_path_makes_the_pipelines_set_and_student(run):
    teacher = notebook.teacher(run.teacher, channels=1, height=8, width=8)
    synthetic = notebook.synthesize(teacher, run.class_names, "extractor=class_vis")
    assert torch.equal(synthetic.images, run.synthetic.images)
    assert torch.equal(synthetic.soft_targets, run.synthetic.soft_targets)
    assert torch.equal(synthetic.labels, run.synthetic.labels)
    student = notebook.train_student(synthetic, teacher, "trainer.student.steps=100")
    data = run.data
    assert notebook.accuracy(student, data.test_x, data.test_y) == \
        run.evaluations["student"].accuracy
    assert notebook.accuracy(teacher, data.test_x, data.test_y) == \
        run.evaluations["teacher"].accuracy
    assert not any(parameter.requires_grad for parameter in teacher.parameters())


def test_a_normalised_teacher_sees_its_normalisation_and_the_images_stay_in_pixels(run):
    mean, std = 0.25, 0.5
    weight, bias = run.teacher.state_dict()["1.weight"], run.teacher.state_dict()["1.bias"]
    user = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    user.load_state_dict({"1.weight": weight * std, "1.bias": bias + mean * weight.sum(1)})
    teacher = notebook.teacher(user, channels=1, height=8, width=8, mean=[mean], std=[std])
    images = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(teacher(images), run.teacher(images), atol=1e-5, rtol=0)
    synthetic = notebook.synthesize(teacher, run.class_names, "extractor=class_vis")
    torch.testing.assert_close(synthetic.images, run.synthetic.images, atol=1e-4, rtol=0)


@pytest.mark.parametrize("call,message", [
    (lambda t, names: notebook.synthesize(t, names, "extractor=real_subset"),
     "extractor: expected a class visualization (class_vis, deep_vis, deep_vis_bn): the other "
     "extractors need real data, got 'real_subset'"),
    (lambda t, names: notebook.synthesize(t, names[:3]),
     "class_names: expected one name per class the teacher scores (10), got 3"),
    (lambda t, names: notebook.synthesize(t, names, "extractor=nonexistent"),
     "overrides: expected options and keys of conf/, got"),
    (lambda t, names: notebook.synthesize(t, names, "extractor.l2=-1"),
     "extractor.l2: expected a number >= 0, got -1.0"),
    (lambda t, names: notebook.student_settings("architecture@student=module",
                                                "student.network._target_=x.Y"),
     "architecture@student: expected a built-in architecture"),
])
def test_what_the_notebook_path_cannot_do_is_refused_in_one_line(run, call, message):
    teacher = notebook.teacher(run.teacher, channels=1, height=8, width=8)
    with pytest.raises(ConfigError) as refused:
        call(teacher, run.class_names)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def readme_python() -> str:
    """The README's ``python`` block (the notebook example)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README has one python example; teach this test another"
    return blocks[0]


def test_the_readmes_notebook_example_runs(tmp_path, monkeypatch):
    """The example as written, with a LeNet-5 of random weights for the user's trained one and
    3 steps appended to the extraction and the student (the test's sizes)."""
    from safetensors.torch import save_file

    monkeypatch.syspath_prepend(str(ROOT))  # examples/ as the README's folder has it
    from examples.train_lenet5 import LeNet5

    save_file(LeNet5().state_dict(), str(tmp_path / "lenet5.safetensors"))
    monkeypatch.chdir(tmp_path)
    code = readme_python()
    small = code.replace('"extractor.per_class=10"', '"extractor.per_class=10", "extractor.steps=3"'
                         ).replace('"architecture@student=lenet5"',
                                   '"architecture@student=lenet5", "trainer.student.steps=3"')
    assert small.count("steps=3") == 2, "the example's calls changed: update this test"
    exec(compile(small, "README.md", "exec"), {})
    saved = SyntheticSet.load(tmp_path / "mnist-k10.safetensors")
    assert saved.images.shape == (100, 1, 28, 28) and saved.class_names == [
        str(digit) for digit in range(10)]
    assert saved.metadata["extractor"] == "class_vis" and saved.metadata["per_class"] == "10"
