"""Shared fixtures: small real-format datasets written by the tests themselves."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per worker process (and per train.py it starts): two workers on two cores
    # with two threads each spent most of their time waiting on each other
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format of the MNIST files."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def blob_images(count: int, classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is a bright square at a class-specific place: easy to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    images = rng.integers(0, 40, (count, size, size)).astype(np.uint8)
    cell = size // 4
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[index, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = 220
    return images, labels.astype(np.uint8)


def make_mnist(root: Path, train: int = 600, test: int = 200, folder: str = "MNIST") -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = blob_images(count, 10, 28, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    return make_mnist(tmp_path / "data")


def make_image_folder(root: Path, classes=("cat", "dog", "frog"), per_class=(8, 4)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class, strict=True):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                pixels = rng.integers(0, 50, (12, 12, 3), dtype=np.uint8)
                pixels[:, :, index % 3] += 150
                Image.fromarray(pixels).save(folder / f"{k:03d}.png")
    return root


def bomb_png(path: Path, width: int = 20000, height: int = 9000) -> Path:
    """A PNG of a few bytes whose header claims ``width`` x ``height`` pixels (a decompression
    bomb to PIL, which reads the header only)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])  # IHDR after its length, type
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(bytes(data))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server_at(folder: Path, backend_uri: str, *options: str,
                     port: int | None = None) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (at ``port``, default a free one) over
    ``backend_uri``; yields its URL once it answers /health, and stops it (and its workers)
    afterwards."""
    port = port or free_port()
    log_path = folder / "server.log"
    with log_path.open("a") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", backend_uri, "--workers", "1", *options],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError("mlflow server did not start: "
                                       + log_path.read_text()[-3000:])
                time.sleep(0.5)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


@contextlib.contextmanager
def server_answering(status: int) -> Iterator[str]:
    """A tracking server that is up but broken: ``/health`` answers 200, its API ``status``
    (HTTP 500, 503) to every request; yields its URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Broken(BaseHTTPRequestHandler):
        def answer(self) -> None:
            healthy = self.path.startswith("/health")
            self.send_response(200 if healthy else status)
            self.end_headers()
            self.wfile.write(b"OK" if healthy else b"<html>server error</html>")

        do_GET = do_POST = do_PATCH = do_DELETE = answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class MaliciousPickle:
    """Unpickling this writes ./PWNED: a file that must be refused, never unpickled."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def flip_data_byte(path: Path, at: float = 0.5) -> None:
    """Flip one byte of a safetensors file's tensor data (``at``: how far into the data), the
    damage a bad disk or a stray write does: the file still parses."""
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    where = start + int((len(raw) - start - 1) * at)
    raw[where] ^= 0x5A
    path.write_bytes(bytes(raw))


def truncate(path: Path, keep: float = 0.6) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep)])


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _mlflow_environment():
    """Each test starts with the environment's ``MLFLOW_*`` variables as the session had them:
    ``mlflow.set_tracking_uri`` and ``set_experiment`` (``track.connect`` in a test's process)
    export the store and experiment to ``os.environ`` for subprocesses, and a later test's
    ``train.py`` or ``classvis`` subprocess would otherwise inherit another test's store."""
    before = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    yield
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


def training_runs(client, experiment_ids: list[str], **search) -> list:
    """The experiments' training runs, as ``client.search_runs`` returns them, without a sweep's
    parent run or the report's summary runs (both tagged ``classvis.kind``)."""
    return [run for run in client.search_runs(experiment_ids, **search)
            if "classvis.kind" not in run.data.tags]

