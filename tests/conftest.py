"""Shared fixtures. S3 servers (``moto_s3``, ``rclone_s3``) live in ``s3servers.py``; the
``kvbackup_*`` fixtures come from kvbackup's pytest plugin (``kvbackup.testkit``)."""

from __future__ import annotations

import pytest
from s3servers import moto_s3, rclone_s3

import kvbackup.testkit.pytest_plugin

__all__ = ["moto_s3", "rclone_s3"]

import os
import tempfile

from kvbackup.format import keyslots


@pytest.fixture(autouse=True)
def cheap_key_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at full strength costs ~0.2 s per password check: repositories made in the
    tests' own process get the ``insecure-fast`` profile (recorded in their key slots), and
    the helpers that run the ``kvbackup`` command pass ``init --kdf insecure-fast``. Tests of
    the KDF itself ask for ``kdf_profile="standard"``."""
    monkeypatch.setattr(keyslots, "DEFAULT_KDF_PROFILE", "insecure-fast")


# Caches (verify records, S3 conditional-write probes) go to a scratch folder, not the
# user's cache directory.
os.environ.setdefault("KVBACKUP_CACHE_DIR", tempfile.mkdtemp(prefix="kvbackup-test-cache-"))


def pytest_configure(config: pytest.Config) -> None:
    # The plugin normally arrives through its pytest11 entry point; register it here when it
    # did not (an install from before the entry point existed, or autoloading switched off).
    plugin = kvbackup.testkit.pytest_plugin
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "kvbackup")
