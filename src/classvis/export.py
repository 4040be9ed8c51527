"""``classvis export RUN_ID -o FILE``: a run's synthetic set as one self-describing file.

The file (safetensors, no pickle) holds the images, the teacher's soft targets, the labels, and in
its header the class names, the image shape, what the set was extracted from (dataset, teacher
architecture, recipe, accuracy and parameter count, extractor and its settings, seed) and which
MLflow run made it. ``python train.py dataset=synthetic dataset.path=FILE`` trains a student from
it with no access to the original training data.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from classvis import __version__
from classvis import runkeys as keys
from classvis.integrity import DIGEST_KEY, RawSafetensors
from classvis.progress import interactive, quiet_mlflow_when
from classvis.track.store import Store, StoreError

ARTIFACT = keys.SYNTHETIC_SET_ARTIFACT


class ExportError(RuntimeError):
    pass


def export_run(store: Store, run_id: str, output: Path) -> RawSafetensors:
    """Download run ``run_id``'s synthetic set, check its content digest, add the run's identity
    to its header, write it to ``output``. The tensors are copied as bytes: no torch import."""
    try:
        run = store.run(run_id)
    except StoreError as error:
        raise ExportError(str(error)) from None
    if run.status != "FINISHED":
        raise ExportError(f"RUN_ID: run {run_id} is {run.status}, not FINISHED; only a "
                          f"finished run's synthetic set is exported")
    if ARTIFACT not in store.artifact_names(run_id):
        raise ExportError(f"RUN_ID: run {run_id} has no {ARTIFACT} artifact (is it a classvis "
                          f"training run? a report run has none)")
    with tempfile.TemporaryDirectory(prefix="classvis-export-") as folder:
        downloaded = store.download_artifact(run_id, ARTIFACT, Path(folder))
        try:
            synthetic = RawSafetensors.read(downloaded)
        except ValueError as error:
            raise ExportError(f"RUN_ID: run {run_id}'s {ARTIFACT}: {error}") from None
    header = synthetic.metadata
    if header.get("format") != keys.SYNTHETIC_SET_FORMAT:
        raise ExportError(f"RUN_ID: run {run_id}'s {ARTIFACT} is not a classvis synthetic set")
    if DIGEST_KEY in header and synthetic.digest() != header[DIGEST_KEY]:
        raise ExportError(f"RUN_ID: run {run_id}'s {ARTIFACT} is damaged (its content does not "
                          f"match its digest)")
    synthetic.metadata.update({
        "run_id": run_id,
        "run_name": run.run_name,
        "experiment": store.experiment_name(run.experiment_id),
        "tracking_uri": store.uri,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "exported_by": f"classvis {__version__}",
    })
    for model in ("teacher", "student"):
        if keys.accuracy(model) in run.metrics:
            synthetic.metadata[f"{model}_accuracy"] = repr(run.metrics[keys.accuracy(model)])
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    synthetic.write(partial)
    umask = os.umask(0)
    os.umask(umask)
    partial.chmod(0o666 & ~umask)  # an ordinary file to share (the writer makes it private)
    partial.replace(output)  # never leave a half-written file under the final name
    return synthetic


def describe(synthetic: RawSafetensors) -> str:
    meta = synthetic.metadata
    count, *shape = synthetic.shape("images")
    names = json.loads(meta["class_names"])
    return (f"{count} images {'x'.join(map(str, shape))} of "
            f"{len(names)} classes ({', '.join(names)}) from "
            f"{meta.get('dataset', '?')} | {meta.get('teacher', '?')} teacher "
            f"({float(meta['teacher_accuracy']):.2%}) -> {meta.get('extractor', '?')}"
            if "teacher_accuracy" in meta else
            f"{count} images of {len(names)} classes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="classvis export",
        description="Write a run's synthetic set (images, soft targets, labels, class names, "
                    "provenance) to one safetensors file.")
    parser.add_argument("run_id", metavar="RUN_ID", help="the MLflow run (its id, as printed at "
                                                         "the end of the run and in the UI)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the file to write (e.g. mnist_class_vis.safetensors)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 "sqlite:///mlflow.db"),
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                             "sqlite:///mlflow.db in this directory)")
    args = parser.parse_args(argv)

    quiet_mlflow_when(not interactive())
    try:
        synthetic = export_run(Store.open(args.tracking_uri, Path.cwd()), args.run_id,
                               args.output)
    except (ExportError, StoreError) as error:
        print(f"classvis export: error: {error}", file=sys.stderr)
        return 2
    print(f"classvis export: wrote {args.output}: {describe(synthetic)}")
    print(f"train a student from it: python train.py dataset=synthetic "
          f"dataset.path={json.dumps(str(args.output))[1:-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
