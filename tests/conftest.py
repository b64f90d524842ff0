"""Shared fixtures. S3 servers (``moto_s3``, ``rclone_s3``) live in ``s3servers.py``."""

from __future__ import annotations

from s3servers import moto_s3, rclone_s3

__all__ = ["moto_s3", "rclone_s3"]
