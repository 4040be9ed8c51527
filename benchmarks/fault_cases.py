"""Faults injected, one repeatable case each, and what each left behind.

    python benchmarks/fault_cases.py [--only NAME ...]

Every case builds its own folder, store and data (the scikit-learn digits, small generated image
folders), injects one fault through the command line a user types (``train.py``), and reports
what it left: the exit status, the tracebacks on the console, the runs by status in MLflow
(``RUNNING`` after every process exited is a leak), whether a bad input reached a FINISHED run,
and the line that told the user. Two identical sweeps at once are counted by
``load_faults.py --twins``. Cases that need root (a tmpfs, a read-only bind mount) say so and are
skipped elsewhere. Exits 1 if any case leaves a run RUNNING, a traceback on the console, or a bad
input FINISHED.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
QUICK = ["trainer.teacher.epochs=2", "trainer.student.steps=200", "privacy.enabled=false",
         "tracking.log_models=none", "progress=false"]


@dataclass
class Outcome:
    exit: int | None
    console: str
    statuses: dict[str, int] = field(default_factory=dict)
    bad_finished: bool = False
    note: str = ""

    @property
    def tracebacks(self) -> int:
        return self.console.count("Traceback (most recent call last)")

    def told(self) -> str:
        said = self.console.splitlines()
        lines = ([line for line in said if line.startswith("classvis: error")]
                 or [line for line in said if "classvis" in line and (
                     "interrupted" in line or "marked KILLED" in line or "discarding" in line
                     or "converted" in line or "is gone" in line)])
        return (lines[0].split("] - ")[-1] if lines else "")[:170]


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "CLASSVIS_DATA")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def train(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=folder,
                          env=environment(), capture_output=True, text=True, timeout=timeout)


def store(folder: Path) -> list[str]:
    return [f"tracking.uri=sqlite:///{folder / 'store.db'}", "tracking.experiment=faults",
            f"teacher_cache.dir={folder / 'teachers'}"]


def statuses(folder: Path) -> dict[str, int]:
    """Runs (jobs and sweep parents) by status in the case's store."""
    import mlflow

    from classvis.track.connect import prepare_store

    if not (folder / "store.db").exists():
        return {}
    prepare_store(f"sqlite:///{folder / 'store.db'}")  # as a job opens it: never mid-creation
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'store.db'}")
    experiment = client.get_experiment_by_name("faults")
    counts: dict[str, int] = {}
    for run in ([] if experiment is None else client.search_runs([experiment.experiment_id])):
        counts[run.info.status] = counts.get(run.info.status, 0) + 1
    return counts


def finished(completed: subprocess.CompletedProcess, folder: Path, bad_input: bool = True,
             note: str = "") -> Outcome:
    found = statuses(folder)
    return Outcome(completed.returncode, completed.stdout + completed.stderr, found,
                   bad_input and found.get("FINISHED", 0) > 0, note)


# the cases ------------------------------------------------------------------------------------

def mixed_colour_folder(folder: Path) -> Outcome:
    """A greyscale PNG first in sort order among RGB images: one channel count for the dataset."""
    import numpy as np
    from conftest import make_image_folder
    from PIL import Image

    root = make_image_folder(folder / "images")
    Image.fromarray(np.full((12, 12), 128, np.uint8), "L").save(root / "train" / "cat" / "000.png")
    done = train(folder, "dataset=image_folder", f"dataset.root={root}", *QUICK, *store(folder))
    converted = "converted to RGB" in done.stdout + done.stderr
    return finished(done, folder, bad_input=False,
                    note=f"FINISHED, warning that 1 greyscale image was converted: {converted}")


def decompression_bomb(folder: Path) -> Outcome:
    from conftest import bomb_png, make_image_folder

    root = make_image_folder(folder / "images")
    bomb_png(root / "test" / "frog" / "001.png")
    return finished(train(folder, "dataset=image_folder", f"dataset.root={root}", *QUICK,
                          *store(folder)), folder)


def _synthetic_file(folder: Path) -> Path:
    """A synthetic set that a digits run logged."""
    import mlflow

    done = train(folder, "dataset=digits", *QUICK, *store(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'store.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    return Path(client.download_artifacts(run.info.run_id, "synthetic_set.safetensors",
                                          str(folder)))


def _rewrite(path: Path, change: Callable[[dict, dict], None]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        header = dict(handle.metadata())
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    change(tensors, header)
    save_file(tensors, str(path), metadata=header)


def _synthetic_case(folder: Path, change: Callable[[dict, dict], None]) -> Outcome:
    path = _synthetic_file(folder)
    _rewrite(path, change)
    before = statuses(folder).get("FINISHED", 0)
    done = train(folder, "dataset=synthetic", f"dataset.path={path}", *QUICK, *store(folder))
    outcome = finished(done, folder)
    outcome.bad_finished = statuses(folder).get("FINISHED", 0) > before
    return outcome


def synthetic_without_digest(folder: Path) -> Outcome:
    def change(tensors: dict, header: dict) -> None:
        tensors["images"] = tensors["images"] * 0 + 0.5
        header.pop("sha256", None)
    return _synthetic_case(folder, change)


def synthetic_absurd_values(folder: Path) -> Outcome:
    from classvis.integrity import DIGEST_KEY, tensors_digest

    def change(tensors: dict, header: dict) -> None:
        tensors["images"] = tensors["images"] * 0 + 3e38
        header[DIGEST_KEY] = tensors_digest(tensors)
    return _synthetic_case(folder, change)


def teacher_cache_wrong_weights(folder: Path) -> Outcome:
    """A cache entry with its weight rows reversed and its digest recomputed."""
    import mlflow

    from classvis.integrity import DIGEST_KEY, tensors_digest

    first = train(folder, "dataset=digits", *QUICK, *store(folder))
    assert first.returncode == 0, first.stderr[-2000:]
    (entry,) = (folder / "teachers").glob("*.safetensors")

    def reverse(tensors: dict, header: dict) -> None:
        for name in list(tensors):
            tensors[name] = tensors[name].flip(0).contiguous()
        header[DIGEST_KEY] = tensors_digest(tensors)
    _rewrite(entry, reverse)
    again = train(folder, "dataset=digits", *QUICK, *store(folder), "force=true")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'store.db'}")
    runs = client.search_runs([client.get_experiment_by_name("faults").experiment_id],
                              order_by=["attributes.start_time DESC"])
    accuracy = runs[0].data.metrics.get("teacher/accuracy", float("nan"))
    origin = runs[0].data.tags.get("teacher_origin", "?")
    outcome = finished(again, folder, bad_input=False,
                       note=f"teacher {origin}, accuracy {accuracy:.2%} (first run "
                            f"{runs[-1].data.metrics['teacher/accuracy']:.2%})")
    outcome.bad_finished = accuracy < 0.5
    return outcome


def _broken_server(status: int) -> Callable[[Path], Outcome]:
    def case(folder: Path) -> Outcome:
        from conftest import server_answering

        with server_answering(status) as url:
            started = time.perf_counter()
            done = train(folder, "dataset=digits", *QUICK, f"tracking.uri={url}",
                         "tracking.retry_for_s=3")
        return Outcome(done.returncode, done.stdout + done.stderr,
                       note=f"gave up after {time.perf_counter() - started:.1f} s in all "
                            f"(tracking.retry_for_s=3)")
    case.__doc__ = f"/health answers 200, the API HTTP {status}"
    return case


def parent_last_write_fails(folder: Path) -> Outcome:
    """A file where the sweep's parent run writes its artifacts (as a full disk refuses them)."""
    from classvis.sweep import SWEEP_FILE

    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1",
         "trainer.teacher.epochs=2", "trainer.student.steps=3000", "privacy.enabled=false",
         "tracking.log_models=none", *store(folder), f"hydra.sweep.dir={folder / 'sweep'}"],
        cwd=folder, env=environment(), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    record = folder / "sweep" / SWEEP_FILE
    while not record.exists() and sweep.poll() is None:
        time.sleep(0.1)
    parent = json.loads(record.read_text())["parent_run_id"]
    blocker = folder / "mlartifacts" / "faults" / parent
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    console = sweep.communicate(timeout=600)[0]
    return Outcome(sweep.returncode, console, statuses(folder))


def store_read_only_mid_sweep(folder: Path) -> Outcome:
    """The store's folder remounted read-only while a sweep runs; then the next sweep."""
    if os.geteuid() != 0:
        return Outcome(None, "", note="skipped: needs root (a read-only bind mount)")
    data = folder / "ro"
    data.mkdir()
    uri = f"tracking.uri=sqlite:///{data / 'store.db'}"
    command = [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1,2,3",
               "trainer.teacher.epochs=2", "trainer.student.steps=3000", "privacy.enabled=false",
               "tracking.log_models=none", uri, "tracking.experiment=faults",
               f"tracking.artifact_dir={folder / 'artifacts'}", "tracking.retry_for_s=5",
               f"teacher_cache.dir={folder / 'teachers'}"]
    sweep = subprocess.Popen(command, cwd=folder, env=environment(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while statuses_at(data).get("FINISHED", 0) < 1 and sweep.poll() is None:
        time.sleep(0.2)
    subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
    try:
        console = sweep.communicate(timeout=600)[0]
    finally:
        subprocess.run(["umount", str(data)], check=True)
    left = statuses_at(data).get("RUNNING", 0)
    rerun = subprocess.run(command, cwd=folder, env=environment(), text=True,
                           capture_output=True, timeout=600)
    found = statuses_at(data)
    return Outcome(sweep.returncode, console + rerun.stdout + rerun.stderr, found,
                   note=f"{left} run(s) RUNNING after the sweep; its re-run exited "
                        f"{rerun.returncode} and marked them KILLED")


def statuses_at(data: Path) -> dict[str, int]:
    return statuses(data)


def full_disk_artifacts(folder: Path) -> Outcome:
    """tracking.artifact_dir on a 1 MiB tmpfs."""
    if os.geteuid() != 0:
        return Outcome(None, "", note="skipped: needs root (a tmpfs)")
    tiny = folder / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tiny)], check=True)
    try:
        done = train(folder, "-m", "dataset=digits", "seed=range(0,6)", *QUICK, *store(folder),
                     f"tracking.artifact_dir={tiny}")
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    return finished(done, folder, bad_input=False)


def _signal_mid_run(number: int) -> Callable[[Path], Outcome]:
    def case(folder: Path) -> Outcome:
        import mlflow

        job = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), "dataset=digits",
             "trainer.teacher.epochs=2", "trainer.student.steps=1000000",
             "privacy.enabled=false", *store(folder)],
            cwd=folder, env=environment(), text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # as a terminal's job: SIGINT not ignored (nohup, &)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while statuses(folder).get("RUNNING", 0) < 1 and job.poll() is None:
            time.sleep(0.2)
        time.sleep(2)
        job.send_signal(number)
        console = job.communicate(timeout=120)[0]
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'store.db'}")
        (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
        return Outcome(job.returncode, console, statuses(folder),
                       note=f"its run: {run.info.status}, {run.data.tags.get('error', '')}")
    case.__doc__ = f"{signal.Signals(number).name} during the student's training"
    return case


def killed_at_start_up(folder: Path) -> Outcome:
    """SIGKILL to a joblib sweep's process while its workers start (no run open yet)."""
    import psutil

    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1,2,3",
         *QUICK, *store(folder), "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        cwd=folder, env=environment(), text=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    while sweep.poll() is None:
        workers = [child for child in psutil.Process(sweep.pid).children()
                   if "LokyProcess" in " ".join(child.cmdline())]
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    time.sleep(25)  # the watchdog's grace (20 s), then it marks the runs
    alive = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == sweep.pid:
                alive.append(process)
        except OSError:
            continue
    for process in alive:
        process.kill()
    return Outcome(-signal.SIGKILL, "", statuses(folder),
                   note=f"{len(alive)} process(es) of its group alive 25 s later")


CASES: dict[str, Callable[[Path], Outcome]] = {
    "mixed colour modes in an image folder": mixed_colour_folder,
    "a decompression bomb in an image folder": decompression_bomb,
    "a synthetic set without its digest, images constant": synthetic_without_digest,
    "a synthetic set of 3e38 values, digest recomputed": synthetic_absurd_values,
    "a teacher-cache entry with reversed rows, digest recomputed": teacher_cache_wrong_weights,
    "a server: /health 200, API HTTP 500": _broken_server(500),
    "a server: /health 200, API HTTP 503": _broken_server(503),
    "a sweep's parent cannot write its artifacts": parent_last_write_fails,
    "tracking.artifact_dir on a full 1 MiB tmpfs, 6 jobs": full_disk_artifacts,
    "the store made read-only mid-sweep, then re-run": store_read_only_mid_sweep,
    "SIGINT (Ctrl-C) mid-run": _signal_mid_run(signal.SIGINT),
    "SIGTERM mid-run": _signal_mid_run(signal.SIGTERM),
    "a joblib sweep SIGKILLed while its workers start": killed_at_start_up,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="case names containing these")
    args = parser.parse_args()
    print("| case | exit | console tracebacks | runs by status | left RUNNING | bad input "
          "FINISHED | what the user read | notes | wall |")
    print("|---|---:|---:|---|---:|---|---|---|---:|")
    healthy = True
    for name, case in CASES.items():
        if args.only and not any(word in name for word in args.only):
            continue
        with tempfile.TemporaryDirectory(prefix="classvis-fault-") as temporary:
            started = time.perf_counter()
            outcome = case(Path(temporary))
            seconds = time.perf_counter() - started
        running = outcome.statuses.get("RUNNING", 0)
        runs = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
        told = outcome.told().replace("|", "/")
        print(f"| {name} | {outcome.exit} | {outcome.tracebacks} | {runs or 'none'} | {running} "
              f"| {'yes' if outcome.bad_finished else 'no'} | {told} | {outcome.note} | "
              f"{seconds:.0f} s |", flush=True)
        healthy &= not (running or outcome.tracebacks or outcome.bad_finished)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
