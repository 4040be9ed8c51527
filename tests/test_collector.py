"""The garbage collector is off only while a process imports its heavy modules, and the objects
those imports made are frozen out of its reach afterwards (``classvis.collector``)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from classvis import collector


@pytest.fixture
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_pause_and_resume_nest_and_restore_the_collector(collector_on):
    frozen = gc.get_freeze_count()
    collector.pause()
    collector.pause()
    assert not gc.isenabled()
    collector.resume()
    assert not gc.isenabled()  # the outer pause still holds
    holder = [[]]  # a tracked object made while paused
    collector.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen
    assert holder  # frozen, not freed
    collector.resume()  # one resume too many changes nothing
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on):
    gc.disable()
    with collector.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_paused_without_freezing_resumes_even_when_the_body_raises(collector_on):
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError), collector.paused(freeze=False):
        [[] for _ in range(100)]
        raise RuntimeError("an import failed")
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


ONE_FREEZE = """
import gc, sys
from classvis.track import prepare_store
gc.enable()
before = gc.get_freeze_count()
prepare_store(f"sqlite:///{sys.argv[1]}/first.db")
first = gc.get_freeze_count()
alive = [[i] for i in range(50_000)]  # a caller's objects, garbage soon
prepare_store(f"sqlite:///{sys.argv[1]}/second.db")
print(before, first, gc.get_freeze_count(), gc.isenabled())
"""


def test_only_the_first_store_a_process_opens_freezes_its_objects(tmp_path):
    done = subprocess.run([sys.executable, "-c", ONE_FREEZE, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, first, second, enabled = done.stdout.split()
    assert int(first) > int(before) + 100_000  # MLflow and its SQLAlchemy store
    assert int(second) <= int(first)  # the caller's 50,000 lists stay collectable
    assert enabled == "True"
    assert (tmp_path / "second.db").exists()


class GcProbe:
    """A Hydra callback that records the collector's state around each job (``train.py``'s
    jobs run in its process with the basic launcher)."""

    def __init__(self, into: str):
        self.into = Path(into)

    def _record(self, moment: str) -> None:
        with self.into.open("a") as out:
            out.write(json.dumps({"moment": moment, "enabled": gc.isenabled(),
                                  "frozen": gc.get_freeze_count(),
                                  "mlflow": "mlflow" in sys.modules}) + "\n")

    def on_job_start(self, config, **kwargs) -> None:
        self._record("start")

    def on_job_end(self, config, job_return, **kwargs) -> None:
        self._record("end")


def _train(tmp_path: Path, record: Path, *overrides: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides, "dataset=digits",
         "trainer.teacher.epochs=2", "progress=false",
         "+hydra.callbacks.gc_probe._target_=test_collector.GcProbe",
         f"+hydra.callbacks.gc_probe.into={record}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.slow
def test_train_py_runs_with_the_collector_on_and_its_imports_frozen(tmp_path):
    moments = _train(tmp_path, tmp_path / "run.jsonl", f"hydra.run.dir={tmp_path}/run")
    assert [m["moment"] for m in moments] == ["start", "end"]
    assert all(m["enabled"] for m in moments)  # never off while the job runs
    assert moments[0]["frozen"] > 100_000 and not moments[0]["mlflow"]  # torch and Hydra
    assert moments[1]["mlflow"] and moments[1]["frozen"] > moments[0]["frozen"] + 100_000


@pytest.mark.slow
def test_a_sweeps_jobs_run_with_the_collector_on(tmp_path):
    moments = _train(tmp_path, tmp_path / "sweep.jsonl", "-m", "seed=0,1",
                     f"hydra.sweep.dir={tmp_path}/sweep")
    assert [m["moment"] for m in moments] == ["start", "end", "start", "end"]
    assert all(m["enabled"] for m in moments)
    assert moments[0]["frozen"] > 300_000  # MLflow too: the sweep's parent run opened the store
