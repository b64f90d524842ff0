"""The ``local`` store: a directory on a local or mounted filesystem, one file per key.

URL: a plain path (``/backups/repo``, ``./repo``, ``~/repo``) or ``file:///abs/path``.
Options: ``create=true`` makes the directory (``init`` asks for it), ``fsync=false`` skips
flushing to disk, ``concurrency=N``. See ``docs/stores.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvbackup import hookimpl

if TYPE_CHECKING:
    from kvbackup.registry import RegisterStore
    from kvbackup.store import Store


@hookimpl
def kvbackup_register_stores(register: RegisterStore) -> None:
    register(
        "local",
        _factory,
        schemes=("", "file"),
        description="a directory on a local or mounted filesystem",
    )


def _factory(url: str, options: dict[str, str]) -> Store:
    from .store import LocalDirStore

    return LocalDirStore.from_url(url, options)
