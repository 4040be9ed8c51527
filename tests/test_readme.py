"""The README is executable: every ``python train.py ...``, ``classvis ...`` and
``python -m classvis.report ...`` command of its shell blocks, and every console transcript
(``$ python train.py ...`` with the lines it prints), runs here in the README's order, in one
launch folder with the default store (``./mlflow.db``), as a user would type it.

The data the commands name is generated (``CLASSVIS_DATA``: MNIST and Fashion-MNIST files in
torchvision's layout, a CIFAR-10 JPEG copy); small epochs and steps are appended to every
``train.py`` command. What is changed, and every README command not run, says why below.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, make_mnist
from test_matrix import blobs

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
RUNNABLE = ("python train.py", "python -m classvis.report", "classvis ", "python examples/")
NOT_RUN = {  # a README command (its start) -> why this test does not run it
    "python3 -m venv": "the set-up: what .ci/run does on a clean clone before these tests",
    "pip install": "the set-up: what .ci/run does on a clean clone",
    "ruff check": "the lint step of the test command .ci/run runs",
    "mypy": "the type check of the test command .ci/run runs",
    "python -m pytest": "the test command itself (.ci/run runs it)",
    "mlflow ui": "a server for a browser: tests/test_mlflow_ui.py drives it in one",
    "python train.py architecture@teacher=lenet5 teacher_from=mlflow":
        "needs a teacher registered as mnist-lenet5 in the store, which no README command does "
        "(registering is MLflow's UI or API): tests/test_given_mlflow.py logs, registers and "
        "runs one",
    "python train.py teacher_from=torchvision":
        "needs ResNet18's pretrained file in the torch hub cache, which the tests cannot "
        "download: tests/test_given_torchvision.py runs the route with a random resnet18 saved "
        "where the loader reads it",
    "python -m classvis.report --tracking-uri http://mlflow:5000":
        "needs a tracking server named mlflow holding the deep preset's runs; the report's "
        "--tracking-uri and --output are run by tests/test_architectures.py",
}
# appended to every train.py command: the README's commands, at test sizes
SMALL = ["trainer.teacher.epochs=1", "trainer.student.steps=20", "privacy.test_sample=50"]


def shell_lines() -> list[str]:
    """The commands of the README's ``bash`` blocks, split at ``&&``, comments dropped."""
    commands, inside = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside and line.strip():
            words = shlex.split(line, comments=True)
            command: list[str] = []
            for word in [*words, "&&"]:
                if word == "&&":
                    if command:  # the README's set-up runs its venv's python: here, ours
                        commands.append(shlex.join(command).removeprefix(".venv/bin/"))
                    command = []
                else:
                    command.append(word)
    return commands


def transcripts() -> list[tuple[str, list[str]]]:
    """The README's console transcripts: ``$ command`` and the lines it printed."""
    found: list[tuple[str, list[str]]] = []
    for line in README.read_text().splitlines():
        if line.startswith("    $ "):
            found.append((line[6:], []))
        elif found and line.startswith("    ") and not line.startswith("     $"):
            found[-1][1].append(line[4:])
        elif found and found[-1][1] and not line.startswith("    "):
            found.append(("", []))  # the transcript ended
    return [(command, printed) for command, printed in found if command]


def write_cifar10_jpg(root: Path) -> None:
    """A CIFAR-10 JPEG copy in the layout of ../shared/data (10 classes of 32x32 images)."""
    from PIL import Image

    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    for split, count, seed in (("train", 12, 0), ("test", 4, 1)):
        images, labels = blobs(count * 10, 10, 32, 3, seed)
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{index:04d}.jpg")


def as_run(command: str, run_id: str | None) -> list[str]:
    """The argv a README command runs as here."""
    words = shlex.split(command)
    if words[0] == "python":
        words[0] = sys.executable
    elif words[0] == "classvis":
        words = [sys.executable, "-m", "classvis.cli", *words[1:]]
    if words[1].startswith("examples/"):  # a user's own training script: one epoch here
        words[1] = str(ROOT / words[1])
        words = [*words, "--epochs", "1"]
    if "train.py" in words[:2]:
        words[1] = str(ROOT / "train.py")
        # torchvision's CIFAR-10 files cannot be generated (their checksums are published):
        # the sweep over three datasets runs on the JPEG copy of CIFAR-10 instead
        words = [re.sub(r"^(dataset=.*)\bcifar10\b(?!_)", r"\1cifar10_jpg", word)
                 for word in words]
        chooses = any(word.startswith(("extractor=", "+experiment=")) for word in words)
        words += SMALL + ([] if chooses else ["extractor.steps=20"])
    if run_id is not None:
        words = [word.replace("<RUN_ID>", run_id) for word in words]
    return words


def test_every_readme_command_runs_as_the_readme_says(tmp_path):
    data = make_mnist(tmp_path / "data", train=600, test=200)
    make_mnist(data, train=600, test=200, folder="FashionMNIST")
    write_cifar10_jpg(data / "cifar10-jpg")
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MLFLOW_", "CLASSVIS_"))}
    env.update(CLASSVIS_DATA=str(data), CLASSVIS_CACHE=str(tmp_path / "cache"), CI="true")
    commands = shell_lines()
    skipped = [c for c in commands if not c.startswith(RUNNABLE)]
    assert all(c.startswith(tuple(NOT_RUN)) for c in skipped), (
        f"a README command neither run here nor said why: "
        f"{[c for c in skipped if not c.startswith(tuple(NOT_RUN))]}")
    assert all(any(c.startswith(start) for c in commands) for start in NOT_RUN), \
        "a reason for a command the README no longer has"
    ran, run_id = [], None
    for command in commands:
        if command.startswith(tuple(NOT_RUN)) or not command.startswith(RUNNABLE):
            continue
        argv = as_run(command, run_id)
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)
        print(f"  {time.perf_counter() - started:5.1f} s  {command}")
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        sweep = command.startswith("python train.py") and (
            "-m" in command.split() or "+experiment=" in command)
        if sweep:  # every job of its grid ran (or had already FINISHED)
            jobs = re.search(r"sweep finished: (\d+) jobs: (\d+) succeeded, (\d+) skipped as "
                             r"already FINISHED or RUNNING, 0 failed", done.stdout)
            assert jobs and int(jobs[1]) == int(jobs[2]) + int(jobs[3]) >= 2, done.stdout[-2000:]
        found = re.search(r"\(MLflow run ([0-9a-f]{32})\)", done.stdout)
        if run_id is None and found:
            run_id = found.group(1)  # the first run's id, for `classvis export <RUN_ID>`
        ran.append(command)
    for command, printed in transcripts():
        done = subprocess.run(as_run(command, run_id), cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 2, (command, done.stderr[-2000:])
        first = printed[0]
        if first.endswith(("in", "...")) or len(first) > 90:  # wrapped in the README
            first = first.rsplit(" ", 1)[0]
        assert done.stderr.strip().splitlines()[0].startswith(first), (command, done.stderr)
        ran.append(command)
    print(f"\nREADME: {len(ran)} commands run, {len(skipped)} not run (reasons in the test)")
    assert len(ran) >= 15
