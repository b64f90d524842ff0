"""The fault-injecting S3 proxy now lives in :mod:`kvbackup.testkit.faultproxy`."""

from kvbackup.testkit.faultproxy import SLOWDOWN, FaultProxy

__all__ = ["SLOWDOWN", "FaultProxy"]
