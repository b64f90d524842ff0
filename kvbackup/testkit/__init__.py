"""Test tools for code that uses kvbackup, and for kvbackup's own tests.

The pytest plugin (:mod:`kvbackup.testkit.pytest_plugin`, loaded by pytest through the
``pytest11`` entry point) offers them as fixtures; they can also be used directly:

- :class:`FaultyStore`: a store wrapper that injects errors, throttling, latency and
  truncated reads on a schedule, and records which faults fired;
- :func:`moto_server`, :class:`S3Server`: a real S3 server on 127.0.0.1;
- :class:`FaultProxy`: an HTTP proxy injecting S3 faults on the wire;
- :func:`make_tree`, :func:`assert_same_tree`: awkward source trees and the comparison a
  restore must pass.

Names load on first use, so importing this package (and the pytest plugin) imports neither
boto3 nor moto. See ``docs/testing.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The password of repositories the fixtures create.
PASSWORD = "kvbackup test password"

_EXPORTS = {
    "FaultyStore": "faultystore",
    "FiredFault": "faultystore",
    "FaultProxy": "faultproxy",
    "S3Bucket": "s3server",
    "S3Server": "s3server",
    "moto_server": "s3server",
    "SourceTree": "trees",
    "assert_same_tree": "trees",
    "make_tree": "trees",
    "snapshot_of": "trees",
    "write_tree": "trees",
}

__all__ = [
    "PASSWORD",
    "FaultProxy",
    "FaultyStore",
    "FiredFault",
    "S3Bucket",
    "S3Server",
    "SourceTree",
    "assert_same_tree",
    "make_tree",
    "moto_server",
    "snapshot_of",
    "write_tree",
]

if TYPE_CHECKING:
    from .faultproxy import FaultProxy
    from .faultystore import FaultyStore, FiredFault
    from .s3server import S3Bucket, S3Server, moto_server
    from .trees import SourceTree, assert_same_tree, make_tree, snapshot_of, write_tree


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
