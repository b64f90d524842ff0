"""Shared fixtures. S3 servers (``moto_s3``, ``rclone_s3``) live in ``s3servers.py``."""

from __future__ import annotations

from s3servers import moto_s3, rclone_s3

__all__ = ["moto_s3", "rclone_s3"]

import os

# Argon2id at full strength costs ~0.2 s per password check; tests use cheap parameters
# (tests of the KDF itself unset this).
os.environ.setdefault("KVBACKUP_TEST_FAST_KDF", "1")

import tempfile

# Caches (verify records, S3 conditional-write probes) go to a scratch folder, not the
# user's cache directory.
os.environ.setdefault("KVBACKUP_CACHE_DIR", tempfile.mkdtemp(prefix="kvbackup-test-cache-"))
