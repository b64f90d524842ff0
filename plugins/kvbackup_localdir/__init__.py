"""The ``local`` store: a directory on a local or mounted filesystem, one file per key.

URL: a plain path (``/backups/repo``, ``./repo``, ``~/repo``) or ``file:///abs/path``.
Options: ``create=true`` makes the directory when the store is opened (``init`` makes it
through :meth:`~.store.LocalDirStore.ensure_root` instead), ``fsync=false`` skips flushing to
disk, ``concurrency=N``. See ``docs/stores.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvbackup import hookimpl
from kvbackup.options import option

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterStore
    from kvbackup.store import Store


@dataclass(frozen=True)
class LocalOptions:
    """``--store-option`` values of the local store."""

    create: bool = option(False, help="create the root directory when opening")
    fsync: bool = option(True, help="flush files and directories to disk on write")
    concurrency: int = option(8, min=1, help="requests in flight")


@hookimpl
def kvbackup_register_stores(register: RegisterStore) -> None:
    register(
        "local",
        _factory,
        schemes=("", "file"),
        options=LocalOptions,
        description="a directory on a local or mounted filesystem",
    )


def _factory(url: str, options: LocalOptions) -> Store:
    from .store import LocalDirStore, path_from_url

    return LocalDirStore(
        path_from_url(url),
        create=options.create,
        fsync=options.fsync,
        concurrency=options.concurrency,
    )
