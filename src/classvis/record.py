"""Recording a run in MLflow: resume or dedup first, then the run with its params, tags, series,
datasets, models, files and metrics, and the summary line a finished run prints."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from classvis import artifacts, pipeline, runrecords
from classvis import runkeys as keys
from classvis.device import device_name
from classvis.from_config import config_digest, resolved_mapping
from classvis.job import Job, write_status
from classvis.lifecycle import while_running
from classvis.loaders import source_location
from classvis.models import is_dense
from classvis.progress import Progress, quiet_mlflow_when
from classvis.provenance import commit_tags
from classvis.resume import Yielded, claim, reap_or_skip_running, skip_if_finished, yielded
from classvis.runparams import used_params
from classvis.runsettings import RunSettings
from classvis.synthetic import file_digest
from classvis.track.connect import connect
from classvis.track.runs import tracked_run
from classvis.validation import ConfigError


def run_tags(settings: RunSettings, job: Job) -> dict[str, str]:
    tags = {
        keys.DATASET: settings.dataset_name,
        keys.EXTRACTOR: settings.extractor_name,
        keys.PER_CLASS: str(settings.per_class),
        keys.TEACHER: settings.teacher_label,
        keys.TEACHER_DENSE: str(is_dense(settings.teacher)).lower(),
        keys.STUDENT: settings.student.label,
        keys.SEED: str(settings.seed),
        keys.HYDRA_OVERRIDES: job.overrides,
        keys.HYDRA_JOB_NUM: "" if job.number is None else str(job.number),
        keys.SOURCE_NAME: "train.py",
        keys.DEVICE: settings.device,
        keys.DEVICE_NAME: device_name(settings.device),
    }
    for group, option in job.choices.items():
        tags[keys.choice(group)] = option
    for kind, variant in (("extractor", settings.extractor_variant),
                          ("teacher", settings.teacher_variant),
                          ("student", settings.student_variant)):
        if variant:
            tags[keys.variant(kind)] = variant
    if settings.dataset.classes is not None:
        tags[keys.CLASSES] = json.dumps(list(settings.dataset.classes))
    if settings.dataset.one_vs_rest is not None:
        tags[keys.ONE_VS_REST] = str(settings.dataset.one_vs_rest)
    if settings.one_vs_rest_balance is not None:
        tags[keys.ONE_VS_REST_BALANCE] = settings.one_vs_rest_balance
    if settings.swap.enabled:
        tags[keys.SWAP] = settings.swap.label
        tags[keys.SWAP_CLASS] = str(settings.swap.replace)
        tags[keys.SWAP_TARGETS] = settings.swap.targets
    if settings.compress.enabled:
        tags[keys.COMPRESS] = "biases"
    if settings.caveat:
        tags[keys.CAVEAT] = settings.caveat
    if settings.given_weights is not None:
        tags[keys.TEACHER_WEIGHTS] = settings.given_weights.path
        tags[keys.TEACHER_WEIGHTS_DIGEST] = settings.given_weights.digest
    if settings.file_header is not None:
        tags.update({keys.EXTRACTOR: settings.file_header.get("extractor_name", "unknown"),
                     keys.PER_CLASS: settings.file_header.get("per_class", "1"),
                     keys.SYNTHETIC_FILE: str(settings.dataset.path)})
        for key in ("run_id", "experiment"):
            if key in settings.file_header:
                tags[keys.FILE_HEADER_PREFIX + key] = settings.file_header[key]
    tags.update(commit_tags())
    return tags


def summary_line(run_name: str, result: pipeline.RunResult, metrics: dict[str, float],
                 link: str, caveat: str = "") -> str:
    """One line per finished run: what it was, the accuracies, the time, where to look, and why
    the combination is weak when it is (``RunSettings.caveat``)."""
    evaluations = result.evaluations
    parts = [f"{name.replace('_', ' ')} {evaluations[name].accuracy:.2%}"
             for name in ("teacher", "student", "untrained", "baseline_student", "compressed",
                          "donor_teacher") if name in evaluations]
    if result.file_info is not None:
        if "file_teacher_accuracy" in result.file_info:
            parts.insert(0, f"teacher {result.file_info['file_teacher_accuracy']:.2%} (recorded "
                            f"in the file)")
        if result.test_unavailable is not None:
            parts.append(f"no real test set ({result.test_unavailable})")
        parts.append(f"agreement with the file's soft targets "
                     f"{result.file_info['synthetic_agreement']:.2%}")
    if result.file_info is None and result.test_unavailable is not None:
        parts.append(f"no real test set ({result.test_unavailable})")
    if result.agreement is not None and not evaluations:
        parts.append(f"student agrees with the teacher on {result.agreement.views:.2%} of "
                     f"held-out synthetic views, teacher confidence "
                     f"{float(result.agreement.confidence.mean()):.2%}")
    if result.privacy is not None:
        parts.append(f"privacy distance ratio {result.privacy.ratio:.2f}")
    if result.privacy_skipped is not None:
        parts.append(f"privacy skipped ({result.privacy_skipped})")
    weak = f"; weak by nature: {caveat}" if caveat else ""
    return (f"classvis: {run_name}: {', '.join(parts)} in {metrics[keys.TOTAL_TIME]:.1f}s "
            f"({link}){weak}")


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to find a run: its page on a tracking server (in the UI's model-training view,
    which MLflow 3's UI opens only when asked: its sidebar switch defaults to GenAI, whatever
    the experiment's kind), or its id in a local store."""
    if uri.startswith(("http://", "https://")):
        return (f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
                f"?workflowType=machine_learning")
    return f"MLflow run {run_id}"


class InvalidInput(Exception):
    """The run's data does not suit its config (found on loading it, before a run is opened)."""


def record_run(cfg: DictConfig, settings: RunSettings, job: Job
                 ) -> tuple[dict[str, float], str | None]:
    started = time.perf_counter()
    experiment_id = connect(settings.tracking)
    resolved = resolved_mapping(cfg, "config")
    resolved["device"] = settings.device   # where "auto" led on this machine
    if settings.synthetic_file is not None:  # the file's content, not its name, determines the run
        resolved["dataset"]["sha256"] = file_digest(settings.synthetic_file.path)
    if settings.given_weights is not None:  # the weights, not the file's name
        resolved["teacher_from"]["sha256"] = settings.given_weights.digest
    if isinstance(resolved.get("dataset"), dict) and settings.dataset.loader != "synthetic":
        resolved["dataset"]["splits"] = settings.dataset.splits  # what auto found here
        if settings.dataset.loader == "none":  # as the teacher declared them
            resolved["dataset"]["image_shape"] = list(settings.dataset.image_shape or ())
            resolved["dataset"]["class_names"] = list(settings.dataset.class_names or ())
    digest = config_digest(resolved)
    skipped = skip_if_finished(experiment_id, digest, settings, job)
    if skipped is not None:
        return skipped, None
    running = reap_or_skip_running(experiment_id, digest, settings, job)
    if running is not None:
        return running, None
    loading = time.perf_counter()
    try:  # before the run is opened: bad data is bad input, not a failed run
        data = None if settings.from_file else pipeline.load_data(settings)
    except ConfigError as error:
        raise InvalidInput(str(error)) from None
    load_seconds = time.perf_counter() - loading
    tags = {**run_tags(settings, job), keys.CONFIG_DIGEST: digest}
    if job.parent_run is not None:
        tags[keys.PARENT_RUN] = job.parent_run
    progress = Progress(settings.progress)
    quiet_mlflow_when(not progress.enabled)
    name = job.run_name(settings)
    tags[keys.NOTE] = settings.run_name + (f"\n\nWeak by nature: {settings.caveat}"
                                           if settings.caveat else "")
    try:
        with tracked_run(job.mlflow_name(settings), tags, settings.tracking.system_metrics,
                         settings.tracking.heartbeat_every) as run, while_running(run), \
                contextlib.ExitStack() as stack:
            claim(experiment_id, digest, run.run_id, settings)  # two sweeps at once
            run.log_params(used_params(resolved))
            result = pipeline.run(settings, on_teacher_epoch=lambda epoch, loss: run.log_metrics(
                {keys.TEACHER_LOSS: loss}, step=epoch), progress=progress, data=data)
            result.seconds["load"] = result.seconds.get("load", 0.0) + load_seconds
            logging_started = time.perf_counter()
            staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="classvis-")))
            folder = staging / "artifacts"
            folder.mkdir()
            (folder / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
            figures = artifacts.write_artifacts(result, folder, name)
            run.set_tags({keys.TEACHER_ORIGIN: result.teacher_origin,
                          keys.TEACHER_KEY: result.teacher_key,
                          keys.CLASS_NAMES: json.dumps(result.class_names)})
            run.set_tags({keys.TEST_SET: "real" if result.test_unavailable is None
                          else "unavailable"})
            if settings.teacher_from.given:
                run.set_tags({keys.TRAINING_SET: {("train", "test"): "real", ("test",):
                              "test split only"}.get(settings.real_splits, "none")})
            if result.privacy_skipped is not None:
                run.set_tags({keys.PRIVACY_SKIPPED: result.privacy_skipped})
            if result.swap is not None:
                run.set_tags({keys.DONOR_TEACHER_ORIGIN: result.swap.donor_origin,
                              keys.DONOR_TEACHER_KEY: result.swap.donor_key})
            series = {keys.STUDENT_LOSS: list(enumerate(result.student_losses, start=1)),
                      keys.STUDENT_LOG10_LOSS: [(step, math.log10(max(loss, 1e-30)))
                                                for step, loss in enumerate(
                                                    result.student_losses, start=1)]}
            if result.teacher_origin == "cache":  # the stored curve, so every run shows it
                series[keys.TEACHER_LOSS] = list(enumerate(result.teacher_losses, start=1))
            run.log_series(series)
            if settings.teacher_model_id is not None:  # teacher_from=mlflow: the model it is
                run.link_model(settings.teacher_model_id)
            datasets = runrecords.run_datasets(
                result, source_location(settings.dataset),
                f"{run.artifact_uri.rstrip('/')}/{keys.SYNTHETIC_SET_ARTIFACT}")
            run.log_datasets(datasets)
            run.log_models(runrecords.run_models(result, settings.tracking.log_models,
                                                 settings.dataset_name))
            figures.draw(folder)
            run.log_artifacts(folder)
            metrics = artifacts.run_metrics(result, settings.tracking.per_class_metrics)
            metrics[keys.LOG_TIME] = time.perf_counter() - logging_started
            metrics[keys.TOTAL_TIME] = time.perf_counter() - started
            run.log_metrics(metrics, datasets={item.context: (item.name, item.digest)
                                               for item in datasets})
            claim(experiment_id, digest, run.run_id, settings)  # a slow twin that started first
    except Yielded as error:
        return yielded(error, settings, job), None
    line = summary_line(name, result, metrics,
                        run_link(settings.tracking.uri, experiment_id, run.run_id),
                        settings.caveat)
    student = result.evaluations.get("student")
    accuracy = student.accuracy if student is not None else math.nan
    write_status(job, "FINISHED", run_id=run.run_id, student_accuracy=accuracy)
    return metrics, line
