"""Real S3-compatible servers on 127.0.0.1, run as subprocesses (for tests).

:func:`moto_server` runs moto's server (``pip install 'moto[server]'``, part of kvbackup's
``test`` extra); :func:`run_s3_server` runs any other S3 server given its command line. Both
yield an :class:`S3Server`: ``.endpoint``, ``.env()`` (the ``AWS_*`` variables for boto3,
s3fs and the ``kvbackup`` command), ``.client()`` (a boto3 client) and ``.new_bucket()``.
boto3 is imported only by ``.client()``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "S3Bucket",
    "S3Server",
    "S3ServerStartError",
    "S3ServerUnavailable",
    "free_port",
    "moto_server",
    "run_s3_server",
    "serve_on_free_port",
    "wait_for_port",
]


class S3ServerUnavailable(RuntimeError):
    """The server's program is not installed (a test using it should be skipped)."""


class S3ServerStartError(RuntimeError):
    """The server's process exited or never listened on its port."""


LOWEST_PORT = 10000
PORT_BANDS = 16


def _ephemeral_ports_start() -> int:
    """Where the kernel's range for outgoing connections starts (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_band() -> int:
    """A number per pytest-xdist worker (``gw3`` -> 3), 0 outside xdist."""
    digits = "".join(ch for ch in os.environ.get("PYTEST_XDIST_WORKER", "") if ch.isdigit())
    return int(digits or 0) % PORT_BANDS


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    It is picked below the kernel's range for outgoing connections, in a band of its own
    for each pytest-xdist worker, so that neither a client connection nor a parallel
    worker's server takes it before the server binds it (a port from ``bind(0)`` could be
    handed to any outgoing connection meanwhile).
    """
    band = (_ephemeral_ports_start() - LOWEST_PORT) // PORT_BANDS
    if band >= 64:
        start = LOWEST_PORT + _worker_band() * band
        for _ in range(64):
            port = random.randrange(start, start + band)
            if _is_free(port):
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until ``port`` accepts connections; fail with the server's log if it never does.

    A connection is trusted only if ``proc`` is still running a moment later: another
    process (a parallel test worker's server) may have taken the port between
    :func:`free_port` and the server's bind, in which case ``proc`` exits on its error.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        time.sleep(0.2)
        if proc.poll() is None:
            return
        break
    proc.kill()
    proc.wait()
    raise S3ServerStartError(f"S3 server on port {port} did not start:\n{log.read_text()[-2000:]}")


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

    def remove_bucket(self, name: str) -> None:
        """Delete every object of bucket ``name``, then the bucket."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def run_s3_server(
    name: str,
    argv: Sequence[str],
    port: int,
    workdir: Path,
    *,
    access_key: str = "testing",
    secret_key: str = "testing",
    env: dict[str, str] | None = None,
) -> Iterator[S3Server]:
    """Run ``argv`` (an S3 server listening on 127.0.0.1:``port``, logging into
    ``workdir``) until the block ends."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        wait_for_port(port, proc, log)
        yield S3Server(name, f"http://127.0.0.1:{port}", access_key, secret_key)
    finally:
        _stop(proc)


@contextlib.contextmanager
def serve_on_free_port(
    name: str,
    argv_for_port: Callable[[int], Sequence[str]],
    workdir: Path,
    *,
    attempts: int = 3,
    access_key: str = "testing",
    secret_key: str = "testing",
) -> Iterator[S3Server]:
    """:func:`run_s3_server` on a free port, trying another port if the server fails to
    start (a parallel process may take the port between :func:`free_port` and the bind)."""
    with contextlib.ExitStack() as stack:
        for attempt in range(1, attempts + 1):
            port = free_port()
            try:
                server = stack.enter_context(
                    run_s3_server(
                        name,
                        argv_for_port(port),
                        port,
                        workdir,
                        access_key=access_key,
                        secret_key=secret_key,
                    )
                )
            except S3ServerStartError:
                if attempt == attempts:
                    raise
                continue
            yield server
            return


@contextlib.contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1, until the block ends.

    Raises :class:`S3ServerUnavailable` when moto (with its server extra) is not installed.
    """
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise S3ServerUnavailable("moto's server is not installed (pip install 'moto[server]')")
    workdir = Path(tempfile.mkdtemp(prefix="kvbackup-moto-"))

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]

    try:
        with serve_on_free_port("moto", argv, workdir) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class S3Bucket:
    """A fresh, empty bucket on a running S3 server, and what a client needs to reach it."""

    server: S3Server
    bucket: str

    @property
    def endpoint_url(self) -> str:
        """The server's URL (``http://127.0.0.1:PORT``)."""
        return self.server.endpoint

    @property
    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables (endpoint, credentials, region) for boto3, s3fs and the
        ``kvbackup`` command."""
        return self.server.env()

    def url(self, prefix: str = "") -> str:
        """The kvbackup URL of ``prefix`` in this bucket: ``s3://BUCKET/PREFIX``."""
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def client(self) -> Any:
        """A boto3 S3 client for the server."""
        return self.server.client()
