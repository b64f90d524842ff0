"""kvbackup's pytest plugin: fixtures for testing code that backs up through kvbackup.

pytest loads it through the ``pytest11`` entry point named ``kvbackup`` (``-p no:kvbackup``
turns it off). Fixtures (see ``docs/testing.md``):

- ``kvbackup_repo``: an initialised, encrypted :class:`~kvbackup.Repository` (password
  :data:`kvbackup.testkit.PASSWORD`) on an in-memory store, or on the stores named by
  ``@pytest.mark.kvbackup_store("memory", "dir", "s3", "fsspec-memory")`` (one run each);
  ``kvbackup_repo_url`` is its location;
- ``kvbackup_s3_server``: a fresh bucket on a real S3 server (moto) on 127.0.0.1, started
  once per session (``kvbackup_moto_server``);
- ``kvbackup_faulty_store``: wraps a store in a :class:`~kvbackup.testkit.FaultyStore`;
- ``kvbackup_tree``: an awkward source tree that compares restored trees with itself.

This module imports only pytest and the standard library; each fixture imports what it
needs when it runs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING

import pytest

from . import PASSWORD

if TYPE_CHECKING:
    from kvbackup import Repository
    from kvbackup.store import Store

    from .faultystore import FaultyStore
    from .s3server import S3Bucket, S3Server
    from .trees import SourceTree

#: What ``@pytest.mark.kvbackup_store(...)`` accepts.
STORE_KINDS = ("memory", "dir", "s3", "fsspec-memory")
_MARKER = "kvbackup_store"
#: The URL of a moto server already running, to use instead of starting one.
ENDPOINT_ENV = "KVBACKUP_TEST_S3_ENDPOINT"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(*kinds): run the test once per store kind ({', '.join(STORE_KINDS)}) "
        "under the kvbackup_repo fixture (default: memory)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kvbackup_store_kind" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(_MARKER)
    if marker is None:
        return
    kinds = list(marker.args)
    unknown = [k for k in kinds if k not in STORE_KINDS]
    if not kinds or unknown:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: @pytest.mark.{_MARKER} takes one or more of "
            f"{', '.join(STORE_KINDS)} (got {', '.join(map(repr, kinds)) or 'nothing'})"
        )
    metafunc.parametrize("kvbackup_store_kind", kinds, indirect=True, ids=kinds)


@pytest.fixture
def kvbackup_store_kind(request: pytest.FixtureRequest) -> str:
    """The store kind ``kvbackup_repo`` uses: from the ``kvbackup_store`` marker, else
    ``"memory"``."""
    return str(getattr(request, "param", "memory"))


@pytest.fixture
def kvbackup_repo_url(
    request: pytest.FixtureRequest,
    kvbackup_store_kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The location of ``kvbackup_repo``, to open it again or hand it to code under test.

    For ``s3`` the ``AWS_*`` variables of the test's bucket are set in the environment.
    """
    name = f"kvbackup-test-{uuid.uuid4().hex[:12]}"
    if kvbackup_store_kind == "memory":
        url = f"memory://{name}"
    elif kvbackup_store_kind == "fsspec-memory":
        url = f"fsspec::memory://{name}/repo"
    elif kvbackup_store_kind == "dir":
        url = str(tmp_path_factory.mktemp("kvbackup-repo") / "repo")
    elif kvbackup_store_kind == "s3":
        bucket: S3Bucket = request.getfixturevalue("kvbackup_s3_server")
        for variable, value in bucket.env.items():
            monkeypatch.setenv(variable, value)
        url = bucket.url("repo")
    else:
        raise pytest.UsageError(
            f"unknown kvbackup store kind {kvbackup_store_kind!r}: one of {', '.join(STORE_KINDS)}"
        )
    yield url
    if kvbackup_store_kind in ("memory", "fsspec-memory"):
        _wipe(url)  # in-process stores outlive the test otherwise


@pytest.fixture
def kvbackup_repo(kvbackup_repo_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repository]:
    """An initialised, encrypted repository (password :data:`kvbackup.testkit.PASSWORD`).

    Its key slot uses the cheap ``insecure-fast`` KDF profile (recorded in the slot).
    """
    from kvbackup import Repository

    repo = Repository.init(kvbackup_repo_url, password=PASSWORD, kdf_profile="insecure-fast")
    yield repo
    repo.close()


@pytest.fixture(scope="session")
def kvbackup_moto_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the whole session (skips the test when moto's
    server is not installed), or the one already running at ``$KVBACKUP_TEST_S3_ENDPOINT``."""
    from .s3server import S3Server, S3ServerUnavailable, moto_server

    running = os.environ.get(ENDPOINT_ENV)
    if running:
        yield S3Server("moto", running)
        return
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(moto_server())
        except S3ServerUnavailable as exc:
            pytest.skip(str(exc))
        yield server


@pytest.fixture
def kvbackup_s3_server(kvbackup_moto_server: S3Server) -> Iterator[S3Bucket]:
    """A fresh, empty bucket on the session's S3 server: ``.endpoint_url``, ``.bucket``,
    ``.env`` (the ``AWS_*`` variables), ``.url(prefix)``, ``.client()``."""
    from .s3server import S3Bucket

    bucket = S3Bucket(kvbackup_moto_server, kvbackup_moto_server.new_bucket())
    yield bucket
    with contextlib.suppress(Exception):  # clean-up only: the test's outcome stands
        kvbackup_moto_server.remove_bucket(bucket.bucket)


@pytest.fixture
def kvbackup_faulty_store() -> Iterator[Callable[..., FaultyStore]]:
    """A function wrapping a store in a :class:`~kvbackup.testkit.FaultyStore`: give it a
    store, a mutable mapping, a URL or path (opened through kvbackup's store plugins), or
    nothing for a new in-memory store."""
    from kvbackup.core.repo import open_store

    from .faultystore import FaultyStore

    opened: list[Store] = []

    def wrap(
        store: Store | MutableMapping[str, bytes] | str | os.PathLike[str] | None = None,
    ) -> FaultyStore:
        if store is None:
            store = {}
        elif isinstance(store, (str, os.PathLike)):
            store = open_store(store)
            opened.append(store)
        return FaultyStore(store)

    yield wrap
    for store in opened:
        store.close()


@pytest.fixture
def kvbackup_tree(tmp_path_factory: pytest.TempPathFactory) -> SourceTree:
    """A source tree with awkward names, symlinks, empty files and folders and a 3 MiB
    file; ``.path`` is its folder, ``.assert_restored(target)`` compares a restore with it."""
    from .trees import SourceTree, make_tree

    root = tmp_path_factory.mktemp("kvbackup-tree") / "source"
    return SourceTree(make_tree(root))


def _wipe(url: str) -> None:
    from kvbackup.core.repo import open_store

    store = open_store(url)
    try:
        for key in list(store.list("")):
            store.delete(key)
    finally:
        store.close()
