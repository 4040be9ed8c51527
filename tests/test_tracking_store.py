"""A new SQLite store opened by several processes at once, and a store MLflow cannot open."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, training_runs

from classvis.track.connect import prepare_store

JOB = """
import sys
from classvis.track.connect import connect
from classvis.track.runs import tracked_run
from classvis.track.settings import TrackingSettings
connect(TrackingSettings(sys.argv[1], "race"))
with tracked_run(f"job {sys.argv[2]}", {"job": sys.argv[2]}) as run:
    run.log_series({"value": [(step, float(sys.argv[2])) for step in range(20)]})
"""


def client_once_created(db):
    """An ``MlflowClient`` on the store at ``db`` once a job has created it (None before). The
    store is opened as a job opens it (``prepare_store``, under its lock), and only then is the
    client made: making one opens its store, and MLflow creates the tables of a database
    without them, so a test's client made while a job creates the store races that job's own
    migration (the job then cannot open the store)."""
    import mlflow

    if not db.exists():
        return None
    prepare_store(f"sqlite:///{db}")
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")


def runs_so_far(db, experiment: str) -> list:
    """The experiment's training runs in the store at ``db`` (none while it does not exist)."""
    client = client_once_created(db)
    found = client.get_experiment_by_name(experiment) if client is not None else None
    return training_runs(client, [found.experiment_id]) if found else []


@pytest.mark.slow
def test_processes_creating_one_new_store_at_once_lose_nothing(tmp_path):
    """Four processes open a store that does not exist yet at the same moment, twice over:
    one creates and migrates it while the others wait, and every run lands whole."""
    import mlflow

    for attempt in range(2):
        uri = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        jobs = [subprocess.Popen([sys.executable, "-c", JOB, uri, str(job)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for job in range(4)]
        errors = [job.communicate(timeout=300)[1] for job in jobs]
        assert [job.returncode for job in jobs] == [0, 0, 0, 0], [e[-2000:] for e in errors]
        client = mlflow.MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
        assert sorted(run.data.tags["job"] for run in runs) == ["0", "1", "2", "3"]
        assert {run.info.status for run in runs} == {"FINISHED"}
        for run in runs:
            assert len(client.get_metric_history(run.info.run_id, "value")) == 20


def test_a_store_mlflow_cannot_open_is_one_line_naming_the_key(tmp_path):
    from classvis.track.connect import connect
    from classvis.track.settings import TrackingSettings
    from classvis.validation import ConfigError

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not an SQLite database, nor a half of one" * 100)
    with pytest.raises(ConfigError) as raised:
        connect(TrackingSettings(f"sqlite:///{broken}", "any"))
    message = str(raised.value)
    assert message.startswith("tracking.uri: expected an MLflow store this MLflow version can "
                              "open (") and str(broken) in message and "\n" not in message


def test_an_unreachable_tracking_server_is_one_line_within_seconds():
    import time

    from classvis.track.connect import connect
    from classvis.track.settings import TrackingSettings
    from classvis.validation import ConfigError

    started = time.perf_counter()
    with pytest.raises(ConfigError) as raised:
        connect(TrackingSettings("http://127.0.0.1:1", "any"))
    assert time.perf_counter() - started < 15  # MLflow's own client retried for minutes
    message = str(raised.value)
    assert message.startswith("tracking.uri: expected a reachable MLflow tracking server (")
    assert message.endswith("got 'http://127.0.0.1:1'") and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("signum,words", [
    ("SIGTERM", "Terminated: SIGTERM received"),
    ("SIGINT", "KeyboardInterrupt: interrupted (Ctrl-C, SIGINT): run stopped"),
])
def test_a_signal_during_a_run_marks_it_killed_with_the_reason(tmp_path, signum, words):
    """A scheduler's time limit sends SIGTERM, a user Ctrl-C (SIGINT): the run ends KILLED, not
    RUNNING forever, with one line and the shell's status (128 + the signal's number)."""
    import os
    import signal
    import time

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    job = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "dataset=digits",
                            "trainer.teacher.epochs=2", "trainer.student.steps=1000000",
                            f"tracking.uri={uri}", "tracking.experiment=term"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"},
                           # a shell's background job inherits SIGINT ignored: a terminal's default
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the run is on its student steps
        client = client_once_created(tmp_path / "store.db")
        experiment = client.get_experiment_by_name("term") if client is not None else None
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and client.get_metric_history(runs[0].info.run_id, "teacher/loss"):
            break
        time.sleep(0.5)
    else:
        job.kill()
        pytest.fail("the run never started: " + job.communicate()[1][-2000:])
    job.send_signal(getattr(signal, signum))
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + getattr(signal, signum), stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("classvis:")]
    assert len(lines) == 1 and lines[0].endswith("its MLflow run is marked KILLED"), lines
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.tags["error"].startswith(words)


def test_sigterm_inside_a_store_call_waits_for_the_call_then_stops_the_run(tmp_path):
    """A SIGTERM that lands inside a store call is raised when the call returns: raised inside a
    SQLite commit it left that connection holding the write lock, and the run's KILLED marking
    waited 20 s on it (a joblib worker outlived its grace period so)."""
    import os
    import signal

    import mlflow

    from classvis.track.connect import connect
    from classvis.track.interrupt import Terminated
    from classvis.track.runs import tracked_run
    from classvis.track.settings import TrackingSettings

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    connect(TrackingSettings(uri, "mid-call"))
    with pytest.raises(Terminated), tracked_run("cut", {}) as run:
        write, signalled = run.client.log_batch, []

        def signalled_then_written(*args, **kwargs):
            if not signalled:
                signalled.append(True)
                os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler right here
            return write(*args, **kwargs)

        run.client.log_batch = signalled_then_written
        run.set_tags({"written": "yes"})
        pytest.fail("the SIGTERM was lost")
    stored = mlflow.MlflowClient(uri).get_run(run.run_id)
    assert stored.data.tags["written"] == "yes"
    assert stored.info.status == "KILLED"
    assert stored.data.tags["error"].startswith("Terminated: SIGTERM received")


@pytest.mark.slow
def test_a_sweep_killed_mid_job_is_completed_by_its_rerun_and_the_dead_run_marked(tmp_path):
    """SIGKILL during the second of three jobs, to the sweep and its watchdog alike (a machine
    lost, pre-emption) leaves its run RUNNING; the re-run of the sweep marks it KILLED with the
    reason, skips the finished job, runs the other two, and ends with the full set FINISHED."""
    import os
    import signal
    import time

    import mlflow
    import psutil

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    sweep = [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1,2",
             "trainer.teacher.epochs=2", "trainer.student.steps=8000", f"tracking.uri={uri}",
             "tracking.experiment=killed", "privacy.enabled=false"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([*sweep, f"hydra.sweep.dir={tmp_path}/a"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=environment, start_new_session=True)
    def runs() -> list:
        return runs_so_far(tmp_path / "store.db", "killed")

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # the second job's run has started
        if any(run.data.tags["seed"] == "1" for run in runs()):
            break
        time.sleep(0.3)
    else:
        first.kill()
        pytest.fail("the second job never started: " + first.communicate()[1][-2000:])
    watchdogs = [p for p in psutil.process_iter(["cmdline"])
                 if "classvis.watchdog" in " ".join(p.info["cmdline"] or ())
                 and str(first.pid) in (p.info["cmdline"] or ())]
    assert len(watchdogs) == 1
    for process in watchdogs:
        process.kill()
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    stuck = [run for run in runs() if run.info.status == "RUNNING"]
    assert [run.data.tags["seed"] for run in stuck] == ["1"]

    second = subprocess.run([*sweep, f"hydra.sweep.dir={tmp_path}/b"], cwd=tmp_path,
                            capture_output=True, text=True, env=environment, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (f"classvis: marked MLflow run {stuck[0].info.run_id} KILLED: its process "
            f"{stuck[0].data.tags['classvis.pid']} on ") in second.stdout
    assert "3 jobs: 2 succeeded, 1 skipped as already FINISHED" in second.stdout
    final = runs()
    assert sorted((run.data.tags["seed"], run.info.status) for run in final) == [
        ("0", "FINISHED"), ("1", "FINISHED"), ("1", "KILLED"), ("2", "FINISHED")]
    killed = next(run for run in final if run.info.status == "KILLED")
    assert killed.data.tags["error"].startswith("Killed: its process ")
    # the killed sweep's parent run too; the re-run's parent ends FINISHED
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("killed")
    parents = client.search_runs([experiment.experiment_id],
                                 filter_string="tags.`classvis.kind` = 'sweep'",
                                 order_by=["attributes.start_time ASC"])
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert "marked the sweep's parent run" in second.stdout


def test_running_runs_are_killed_only_when_their_process_is_gone(tmp_path):
    """Same host: the process is gone (or its PID now belongs to another process). Another host:
    no heartbeat for stale_after_s. A live run is returned, never killed."""
    import os
    import socket
    import time

    import mlflow

    from classvis.track.liveness import identity, reap

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'store.db'}")
    experiment = client.create_experiment("live")
    here, now = socket.gethostname(), time.time()
    cases = {
        "this process": identity(),
        "gone": {**identity(), "classvis.pid": "999999999"},
        "pid reused": {**identity(), "classvis.pid_started": "12.0"},
        "quiet host": {"classvis.host": "node7", "classvis.heartbeat": f"{now - 1000:.0f}"},
        "beating host": {"classvis.host": "node8", "classvis.heartbeat": f"{now - 10:.0f}"},
    }
    ids = {name: client.create_run(experiment, run_name=name,
                                   tags={**tags, "classvis.config_digest": "d"}).info.run_id
           for name, tags in cases.items()}
    client.create_run(experiment, tags={**cases["gone"], "classvis.config_digest": "other"})
    killed, alive = reap(client, experiment, "d", stale_after=600)
    reasons = {run_id: reason for run_id, reason in killed}
    assert set(reasons) == {ids["gone"], ids["pid reused"], ids["quiet host"]}
    assert reasons[ids["gone"]] == f"its process 999999999 on {here} is gone (killed)"
    assert reasons[ids["quiet host"]].startswith("no heartbeat from node7 for 10")
    assert alive.info.run_id in {ids["this process"], ids["beating host"]}
    for name, run_id in ids.items():
        status = client.get_run(run_id).info.status
        assert status == ("KILLED" if run_id in reasons else "RUNNING"), name
    assert int(cases["this process"]["classvis.pid"]) == os.getpid()


def test_a_dataset_two_jobs_log_at_once_is_retried_not_failed():
    """MLflow's get-or-create of a dataset is not atomic: of two jobs logging the same new dataset
    to a server at once, one insert fails on the unique key (seen in CI with two submitit jobs);
    the next try finds the dataset and succeeds."""
    from classvis.runrecords import DatasetInput
    from classvis.track.runs import TrackedRun

    class RacingClient:
        calls = 0

        def log_inputs(self, run_id, datasets):
            RacingClient.calls += 1
            if RacingClient.calls == 1:
                raise RuntimeError("RestException: BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE "
                                   "constraint failed: datasets.experiment_id, datasets.name")

    run = TrackedRun("run", RacingClient())
    run.log_datasets([DatasetInput("training", "digits/train", "abc", '{"uri": "x"}', "local",
                                   "{}", "{}")])
    assert RacingClient.calls == 2


@pytest.mark.slow
def test_joblib_workers_stop_with_their_killed_sweep(tmp_path):
    """SIGKILL to a joblib sweep's own process (not its group: what an out-of-memory kill or a
    lost terminal does) stops its workers too: their runs end KILLED, no queued job starts."""
    import os
    import signal
    import time

    import psutil

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1,2,3,4,5",
         "trainer.teacher.epochs=400", f"tracking.uri={uri}", "tracking.experiment=orphans",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}/s",
         "teacher_cache.enabled=false"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    def runs() -> list:
        return runs_so_far(tmp_path / "store.db", "orphans")

    deadline = time.monotonic() + 180
    while len(runs()) < 2 and time.monotonic() < deadline:  # both workers are in a job
        time.sleep(0.3)
    workers = psutil.Process(sweep.pid).children(recursive=True)
    assert len(runs()) == 2 and workers, sweep.communicate(timeout=5)[1][-2000:]
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.communicate(timeout=60)
    gone, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"workers outlived their sweep: {[p.pid for p in alive]}"
    final = runs()
    assert sorted(run.info.status for run in final) == ["KILLED", "KILLED"]
    # ended by the worker itself (its watcher, or SIGTERM from the watchdog), or, a worker that
    # could not finish writing before SIGKILL, by the watchdog that found its process gone
    assert all(run.data.tags["error"].startswith(("Killed: its sweep's process",
                                                  "Terminated: SIGTERM",
                                                  "Killed: its process"))
               for run in final), [run.data.tags["error"] for run in final]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("orphans").experiment_id
    deadline = time.monotonic() + 60  # the sweep's watchdog ends its parent run
    while time.monotonic() < deadline:
        (parent,) = client.search_runs([experiment], "tags.`classvis.kind` = 'sweep'")
        if parent.info.status != "RUNNING":
            break
        time.sleep(0.5)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["error"] == (f"Killed: its sweep's process {sweep.pid} ended before "
                                         f"it could end this run")


@pytest.mark.slow
def test_joblib_workers_of_a_sweep_killed_while_they_start_stop_before_any_job(tmp_path):
    """SIGKILL to the sweep's process while its joblib workers are still starting (no run open
    yet): each worker, reparented, stops at its first job instead of running it."""
    import os
    import signal
    import time

    import psutil

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1,2,3",
         "trainer.teacher.epochs=2", f"tracking.uri={uri}", "tracking.experiment=startup",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}/s",
         "privacy.enabled=false"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    deadline = time.monotonic() + 180
    workers: list = []
    while time.monotonic() < deadline and sweep.poll() is None:
        workers = [child for child in psutil.Process(sweep.pid).children()
                   if "loky" in " ".join(child.cmdline()).lower()]
        if len([w for w in workers if "LokyProcess" in " ".join(w.cmdline())]) >= 2:
            break
        time.sleep(0.05)
    assert workers and not runs_so_far(tmp_path / "store.db", "startup"), "no start-up phase"
    os.kill(sweep.pid, signal.SIGKILL)
    _, err = sweep.communicate(timeout=60)
    group = [p for p in psutil.process_iter() if _in_group(p, sweep.pid)]
    gone, alive = psutil.wait_procs(group, timeout=60)
    assert not alive, f"outlived their sweep: {[' '.join(p.cmdline())[:80] for p in alive]}"
    assert runs_so_far(tmp_path / "store.db", "startup") == []
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("startup").experiment_id
    deadline = time.monotonic() + 60  # and the watchdog ends the sweep's parent run
    while time.monotonic() < deadline:
        (parent,) = client.search_runs([experiment], "tags.`classvis.kind` = 'sweep'")
        if parent.info.status != "RUNNING":
            break
        time.sleep(0.5)
    assert parent.info.status == "KILLED"


def _in_group(process, group: int) -> bool:
    import os

    try:
        return os.getpgid(process.pid) == group
    except OSError:
        return False


@pytest.mark.slow
def test_two_sweeps_at_once_into_a_new_store_lose_nothing():
    """benchmarks/load_faults.py at a small scale: a joblib sweep and a basic sweep started at the
    same moment into a store that does not exist yet; every run FINISHED with its full metric
    histories and its synthetic set (the script exits 1 otherwise)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load_faults.py"), "--jobs",
                           "2", "--workers", "2", "--repeats", "1"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| 4 | 4 | 0 | 0 | 0 | 0 |" in done.stdout


def test_a_config_is_claimed_by_its_first_run_and_the_later_ones_withdraw(tmp_path):
    """``resume.claim``: of the live runs of one config the earliest holds it, a FINISHED one
    before all; a twin that reaches the store late but started earlier takes it over, so the run
    that checked first and then finds it at its second check withdraws (and is deleted)."""
    import mlflow
    from mlflow.entities import ViewType

    from classvis import runkeys as keys
    from classvis.resume import Yielded, claim
    from classvis.runsettings import RunSettings
    from classvis.track.liveness import identity
    from classvis.track.runs import tracked_run

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("claims").experiment_id
    client = mlflow.MlflowClient()
    settings = RunSettings.__new__(RunSettings)
    object.__setattr__(settings, "force", False)
    object.__setattr__(settings, "tracking", type("T", (), {"stale_after_s": 600.0})())

    def twin(started_ms: int) -> str:
        return client.create_run(experiment, start_time=started_ms,
                                 tags={keys.CONFIG_DIGEST: "d", **identity()}).info.run_id

    with pytest.raises(Yielded, match="RUNNING as MLflow run "), \
            tracked_run("first", {keys.CONFIG_DIGEST: "d"}) as run:
        claim(experiment, "d", run.run_id, settings)            # alone: it holds the config
        late = twin(client.get_run(run.run_id).info.start_time - 5)   # started earlier, seen now
        claim(experiment, "d", run.run_id, settings)
    withdrawn = client.get_run(run.run_id)
    assert (withdrawn.info.status, withdrawn.info.lifecycle_stage) == ("KILLED", "deleted")
    assert withdrawn.data.tags[keys.ERROR].startswith("withdrawn: an identical config is RUNNING")
    claim(experiment, "d", late, settings)                      # the twin holds it
    later = twin(client.get_run(late).info.start_time + 1000)
    with pytest.raises(Yielded):
        claim(experiment, "d", later, settings)
    client.set_terminated(later, "FINISHED")                    # a FINISHED run comes first
    with pytest.raises(Yielded, match=f"FINISHED as MLflow run {later}"):
        claim(experiment, "d", late, settings)
    object.__setattr__(settings, "force", True)                 # force=true runs it again
    claim(experiment, "d", late, settings)
    active = client.search_runs([experiment], run_view_type=ViewType.ACTIVE_ONLY)
    assert sorted(r.info.run_id for r in active) == sorted([late, later])


@pytest.mark.slow
@pytest.mark.parametrize("sweeps", [2, 4])
def test_identical_sweeps_started_at_once_run_each_config_once(tmp_path, sweeps):
    """Two or four copies of one sweep started in the same second into one new store: each has
    its own folder and parent run, every config FINISHED exactly once, no run left RUNNING."""
    import os

    import mlflow

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    command = [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1",
               "trainer.teacher.epochs=2", "trainer.student.steps=200", "privacy.enabled=false",
               f"tracking.uri={uri}", "tracking.experiment=twins", "tracking.log_models=none",
               "progress=false"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    started = [subprocess.Popen(command, cwd=tmp_path, env=environment, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for _ in range(sweeps)]
    outputs = [process.communicate(timeout=600)[0] for process in started]
    assert [process.returncode for process in started] == [0] * sweeps, outputs
    assert "Traceback" not in "".join(outputs)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("twins").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    jobs = [run for run in runs if run.data.tags.get("classvis.kind") != "sweep"]
    parents = [run for run in runs if run.data.tags.get("classvis.kind") == "sweep"]
    assert sorted((r.data.tags["seed"], r.info.status) for r in jobs) == [
        ("0", "FINISHED"), ("1", "FINISHED")]
    assert [p.info.status for p in parents] == ["FINISHED"] * sweeps
    assert len({p.data.tags["sweep_dir"] for p in parents}) == sweeps


def test_a_sweep_folder_a_live_sweep_writes_to_is_refused(tmp_path, capsys):
    """Two sweeps given one ``hydra.sweep.dir``: the second is refused in one line while the first
    lives; the folder of a sweep whose process is gone is reused (a re-run resumes there)."""
    import json
    import os
    import socket

    import psutil

    from classvis import runkeys as keys
    from classvis.sweep import SWEEP_FILE, sweep_dir_in_use

    parent = psutil.Process(os.getppid())
    record = {"parent_run_id": "abc", keys.HOST: socket.gethostname(),
              keys.PID: str(parent.pid), keys.PID_STARTED: f"{parent.create_time():.3f}"}
    (tmp_path / SWEEP_FILE).write_text(json.dumps(record))
    with pytest.raises(SystemExit) as refused:
        sweep_dir_in_use(tmp_path)
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"classvis: error: hydra.sweep.dir: {tmp_path} is in use by the sweep of process "
        f"{parent.pid} (MLflow run abc); expected a folder of its own (the default, "
        f"multirun/<date>/<time>, is one per process)"]
    record[keys.PID_STARTED] = "1.000"               # that PID now names another process
    (tmp_path / SWEEP_FILE).write_text(json.dumps(record))
    sweep_dir_in_use(tmp_path)


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_that_answers_health_but_fails_its_api_is_one_line(status):
    """A server up but broken (its API answering HTTP 500 or 503): retried for
    tracking.retry_for_s, then one error naming tracking.uri and the status."""
    from conftest import server_answering

    from classvis.track.connect import connect
    from classvis.track.settings import TrackingSettings
    from classvis.validation import ConfigError

    with server_answering(status) as url, pytest.raises(ConfigError) as refused:
        connect(TrackingSettings(url, "broken", retry_for_s=1.0))
    assert str(refused.value) == (
        f"tracking.uri: expected an MLflow tracking server that answers its API (it answered "
        f"HTTP {status}, for 1 s of retries: tracking.retry_for_s), got '{url}'")


@pytest.mark.slow
def test_a_run_against_a_broken_server_exits_with_one_error_line(tmp_path):
    import os

    from conftest import server_answering

    environment = {**os.environ}
    environment.pop("MLFLOW_TRACKING_URI", None)
    with server_answering(503) as url:
        result = subprocess.run([sys.executable, str(ROOT / "train.py"), "dataset=digits",
                                 f"tracking.uri={url}", "tracking.retry_for_s=2"], cwd=tmp_path,
                                env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("classvis: error")]
    assert errors == [f"classvis: error: tracking.uri: expected an MLflow tracking server that "
                      f"answers its API (it answered HTTP 503, for 2 s of retries: "
                      f"tracking.retry_for_s), got '{url}'"]


@pytest.mark.slow
def test_a_sweep_whose_last_write_fails_ends_its_parent_failed_with_the_reason(tmp_path):
    """The parent's artifacts cannot be written at the sweep's end (here a file stands where its
    artifact folder goes; a full disk alike): the sweep says so in one line, exits 1, and its
    parent run ends FAILED with the reason instead of staying RUNNING."""
    import json
    import os
    import time

    import mlflow

    from classvis.sweep import SWEEP_FILE

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "dataset=digits", "seed=0,1",
         "trainer.teacher.epochs=2", "trainer.student.steps=3000", "privacy.enabled=false",
         f"tracking.uri={uri}", "tracking.experiment=lastwrite", "tracking.log_models=none",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=environment, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    record = tmp_path / "sweep" / SWEEP_FILE
    deadline = time.monotonic() + 240
    while not record.exists() and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    parent = json.loads(record.read_text())["parent_run_id"]
    blocker = tmp_path / "mlartifacts" / "lastwrite" / parent
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    out, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 1, err[-3000:]
    assert "2 jobs: 2 succeeded" in out
    assert "Traceback" not in out + err
    told = [line for line in err.splitlines() if line.startswith("classvis: error")]
    assert len(told) == 1 and told[0].startswith(
        f"classvis: error: could not record the sweep in its parent run {parent}: ")
    assert told[0].endswith("; it is marked FAILED with the reason")
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("could not record the sweep: ")
