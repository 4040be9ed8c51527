"""Every job of every experiment preset resolves to exactly the settings it had when its numbers
were measured (docs/results.md), so a change of the defaults (recipes that follow the
architecture, say) cannot move a published number without this test failing.

The expected settings are ``tests/preset_jobs.json``, written by
``python tests/test_presets.py --write`` at a commit whose presets were measured; rewrite it only
when a preset's recipe is changed on purpose, and re-measure that preset then."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "preset_jobs.json"
# where things are stored, not what is run (the same keys config_digest leaves out)
_NOT_SETTINGS = ("tracking", "teacher_cache", "force", "data_root", "progress", "hydra")
_DATASET_LOCATION = ("root", "cache", "cache_dir", "path")


def presets() -> list[str]:
    return sorted(path.stem for path in (ROOT / "conf" / "experiment").glob("*.yaml"))


def _compose(overrides: list[str], hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides,
                       return_hydra_config=hydra_config)


def preset_jobs(preset: str) -> list[list[str]]:
    """The overrides of each job the preset's sweep runs (its sweeper's choice lists)."""
    cfg = _compose([f"+experiment={preset}"], hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
    axes = [[f"{key}={value.strip()}" for value in str(values).split(",")]
            for key, values in params.items()]
    return [[f"+experiment={preset}", *job] for job in itertools.product(*axes)]


def job_settings(overrides: list[str]) -> dict:
    """What a job runs: its resolved config without storage paths."""
    cfg = _compose(overrides)
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    settings = {key: value for key, value in plain.items() if key not in _NOT_SETTINGS}
    settings["dataset"] = {key: value for key, value in settings["dataset"].items()
                           if key not in _DATASET_LOCATION}
    return settings


# measured beyond the presets' own sweeps: the default run (the README's figures) and the deep
# preset on Fashion-MNIST (multirun_examples/deep.sh dataset=fmnist)
MEASURED_ALSO = [[], ["dataset=fmnist"], ["dataset=cifar10_jpg"],
                 *[[*job, "dataset=fmnist"] for job in preset_jobs("deep")]]


def all_jobs() -> dict[str, dict]:
    jobs = [job for preset in presets() for job in preset_jobs(preset)] + MEASURED_ALSO
    return {" ".join(job) or "(defaults)": job_settings(job) for job in jobs}


@pytest.fixture(autouse=True)
def _fixed_environment(monkeypatch):
    for name in ("CLASSVIS_DATA", "CLASSVIS_CACHE", "MLFLOW_TRACKING_URI",
                 "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


def test_every_preset_job_runs_the_settings_its_numbers_were_measured_with():
    expected = json.loads(EXPECTED.read_text())
    jobs = all_jobs()
    assert sorted(jobs) == sorted(expected), "a preset gained or lost a job"
    for job, settings in jobs.items():
        assert settings == expected[job], f"{job}: its resolved settings changed"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    EXPECTED.write_text(json.dumps(all_jobs(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXPECTED}")
