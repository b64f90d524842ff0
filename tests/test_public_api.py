"""The public API: what ``kvbackup`` exports, and that every public signature is typed."""

from __future__ import annotations

import inspect
import typing
from datetime import datetime

import pytest

import kvbackup
from kvbackup import Repository

RESULT_TYPES = [
    kvbackup.Snapshot,
    kvbackup.BackupResult,
    kvbackup.BackupStats,
    kvbackup.RestoreResult,
    kvbackup.VerifyResult,
    kvbackup.Problem,
    kvbackup.Affected,
    kvbackup.FullVerifyResult,
    kvbackup.Difference,
    kvbackup.DiffResult,
    kvbackup.Change,
    kvbackup.Stats,
    kvbackup.Entry,
    kvbackup.ProgressEvent,
    kvbackup.RepoConfig,
]


def public_callables(cls: type) -> list[tuple[str, typing.Any]]:
    """Every public method, classmethod, staticmethod and property getter of ``cls``."""
    out = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property):
            assert member.fget is not None
            out.append((name, member.fget))
        elif inspect.isfunction(member) or inspect.ismethod(member):
            out.append((name, member))
    return out


def test_everything_in_all_is_exported() -> None:
    missing = [name for name in kvbackup.__all__ if not hasattr(kvbackup, name)]
    assert missing == []


def test_all_names_the_facade_results_errors_and_plugin_contracts() -> None:
    wanted = {"Repository", "hookimpl", "Store", "Source", "Transform", "KvbackupError"}
    wanted |= {cls.__name__ for cls in RESULT_TYPES}
    assert wanted <= set(kvbackup.__all__)


@pytest.mark.parametrize(
    ("name", "method"), [pytest.param(n, m, id=n) for n, m in public_callables(Repository)]
)
def test_every_public_repository_method_has_resolvable_type_hints(
    name: str, method: typing.Any
) -> None:
    hints = typing.get_type_hints(method)
    assert "return" in hints, f"Repository.{name} has no return annotation"
    params = [p for p in inspect.signature(method).parameters if p not in ("self", "cls")]
    unannotated = [p for p in params if p not in hints and p not in ("exc",)]
    assert unannotated == [], f"Repository.{name}: untyped {unannotated}"


@pytest.mark.parametrize("cls", RESULT_TYPES, ids=lambda c: c.__name__)
def test_result_types_and_their_methods_have_resolvable_type_hints(cls: type) -> None:
    assert typing.get_type_hints(cls)
    for name, method in public_callables(cls):
        hints = typing.get_type_hints(method)
        assert "return" in hints, f"{cls.__name__}.{name} has no return annotation"


def test_snapshot_time_is_a_datetime() -> None:
    assert typing.get_type_hints(kvbackup.Snapshot)["time"] is datetime
    repo = Repository.init({})
    snap = repo.backup([("a.txt", b"alpha")]).snapshot
    listed = repo.snapshots()[0]
    assert isinstance(listed.time, datetime) and listed.time.tzinfo is not None
    assert listed.time == snap.time


def test_repository_stats_is_a_dataclass() -> None:
    repo = Repository.init({})
    repo.backup([("a.txt", b"alpha")])
    stats = repo.stats()
    assert isinstance(stats, kvbackup.Stats)
    assert stats.snapshots == 1 and stats.logical_bytes == 5
