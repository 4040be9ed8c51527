"""train.py ends without the interpreter's teardown, yet nothing that a normal exit does is lost:
exit handlers run, buffered output and log records are written, the exit status is kept."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, logging, logging.handlers, sys, threading, time
from pathlib import Path
from classvis.app import exit_without_teardown

folder, how = Path(sys.argv[1]), sys.argv[2]
atexit.register(lambda: (folder / "atexit.txt").write_text("ran"))
buffered = logging.handlers.MemoryHandler(1000, target=logging.FileHandler(folder / "log.txt"))
logging.getLogger("job").addHandler(buffered)  # written only when logging shuts down
logging.getLogger("job").warning("the run's last record")
sys.stdout.write("summary line, not flushed")
if how == "thread":  # a thread still running: the usual exit, which waits for it
    threading.Thread(target=lambda: time.sleep(0.5)).start()
with exit_without_teardown():
    if how == "status":
        sys.exit(3)
    if how == "message":
        sys.exit("classvis: error: something")
    if how == "error":
        raise ValueError("a bug")
"""


@pytest.mark.parametrize("how,status", [("done", 0), ("thread", 0), ("status", 3),
                                        ("message", 1), ("error", 1)])
def test_the_quick_exit_keeps_what_a_normal_exit_does(tmp_path, how, status):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), how],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert done.stdout == "summary line, not flushed"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "log.txt").read_text() == "the run's last record\n"
    if how == "message":
        assert done.stderr.strip() == "classvis: error: something"
    if how == "error":
        assert "ValueError: a bug" in done.stderr and "Traceback" in done.stderr
