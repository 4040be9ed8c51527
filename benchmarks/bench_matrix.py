"""The combination matrix on real data at the defaults: every dataset x teacher x extractor x
student (the test's matrix, tests/test_matrix.py, at full size), each as a user types it.

    python benchmarks/bench_matrix.py [--datasets mnist,cifar10_jpg] [--teachers ...]
        [--students ...] [--extractors default,class_vis,...] [--store DIR] [--write]

Each combination is one ``python train.py dataset=D architecture@teacher=T [extractor=E]
architecture@student=S`` with nothing else set (``default``: no extractor chosen, so it follows
the teacher), into a store under ``--store`` (default ``.bench-matrix/``); the data comes from
``$CLASSVIS_DATA`` (default ../shared/data). A combination refused at the door is listed with its
one line. A re-run resumes: a combination already measured (``results.jsonl`` in the store
folder) is not run again. It prints the table (teacher and student test accuracy, wall time,
or the refusal) and, with ``--write``, puts it in docs/results.md between the matrix markers,
with the command and the date. The whole matrix is days of CPU time; choose with the options.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
BEGIN, END = "<!-- bench_matrix:begin -->", "<!-- bench_matrix:end -->"
SUMMARY = re.compile(r"teacher (?P<teacher>[\d.]+)%, student (?P<student>[\d.]+)%")


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="mnist,cifar10_jpg")
    parser.add_argument("--teachers", default=",".join(options("architecture")))
    parser.add_argument("--students", default=",".join(options("architecture")))
    parser.add_argument("--extractors", default=",".join(["default", *options("extractor")]))
    parser.add_argument("--store", type=Path, default=ROOT / ".bench-matrix")
    parser.add_argument("--write", action="store_true", help="put the table in docs/results.md")
    return parser.parse_args()


def measure(dataset: str, teacher: str, extractor: str, student: str, store: Path,
            env: dict[str, str]) -> dict:
    overrides = [f"dataset={dataset}", f"architecture@teacher={teacher}",
                 *([] if extractor == "default" else [f"extractor={extractor}"]),
                 f"architecture@student={student}"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides,
                           f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
                           "tracking.experiment=matrix", "force=true"], cwd=store, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    record = {"dataset": dataset, "teacher": teacher, "extractor": extractor,
              "student": student, "seconds": round(seconds, 1), "exit": done.returncode}
    found = SUMMARY.search(done.stdout)
    if done.returncode == 0 and found:
        record.update(teacher_accuracy=float(found["teacher"]),
                      student_accuracy=float(found["student"]),
                      caveat="weak by nature" in done.stdout)
    else:
        lines = [line for line in done.stderr.splitlines() if line.startswith("classvis:")]
        record["error"] = (lines or done.stderr.splitlines()[-1:] or ["(no output)"])[0]
    return record


def table(records: list[dict]) -> str:
    rows = ["| dataset | teacher | extractor | student | teacher % | student % | wall s |",
            "|---|---|---|---|---:|---:|---:|"]
    for r in records:
        what = f"| {r['dataset']} | {r['teacher']} | {r['extractor']} | {r['student']} |"
        if "student_accuracy" in r:
            note = " (caveat)" if r.get("caveat") else ""
            rows.append(f"{what} {r['teacher_accuracy']:.2f} | {r['student_accuracy']:.2f}"
                        f"{note} | {r['seconds']:.0f} |")
        else:
            rows.append(f"{what} refused or failed (exit {r['exit']}): "
                        f"{r['error'].removeprefix('classvis: error: ')[:120]} | | "
                        f"{r['seconds']:.0f} |")
    return "\n".join(rows)


def write(text: str, command: str) -> None:
    path = ROOT / "docs" / "results.md"
    doc = path.read_text()
    block = (f"{BEGIN}\n`{command}`, {datetime.date.today():%Y-%m-%d}, 2-core CPU, real data, "
             f"defaults only:\n\n{text}\n{END}")
    if BEGIN in doc:
        doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n## The combination matrix on real data\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    args = arguments()
    args.store.mkdir(parents=True, exist_ok=True)
    results_file = args.store / "results.jsonl"
    done = {}
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            record = json.loads(line)
            done[(record["dataset"], record["teacher"], record["extractor"],
                  record["student"])] = record
    # this tree's code, whatever classvis the interpreter has installed (an editable install
    # of another checkout would otherwise be measured)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CLASSVIS_DATA": os.environ.get(
        "CLASSVIS_DATA", str(ROOT.parent / "shared" / "data"))}
    records = []
    for dataset in args.datasets.split(","):
        for teacher in args.teachers.split(","):
            for extractor in args.extractors.split(","):
                for student in args.students.split(","):
                    key = (dataset, teacher, extractor, student)
                    if key not in done:
                        done[key] = measure(*key, args.store, env)
                        with results_file.open("a") as handle:
                            handle.write(json.dumps(done[key]) + "\n")
                        print(json.dumps(done[key]), flush=True)
                    records.append(done[key])
    text = table(records)
    print(text)
    if args.write:
        write(text, "python benchmarks/bench_matrix.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
