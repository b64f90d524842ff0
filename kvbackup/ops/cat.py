"""One file of a snapshot, as a stream of bytes (``kvbackup cat``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..core.repo import RepoCore
from ..errors import CorruptionError, KvbackupError, PathNotFoundError
from ..format.index import GroupIndex
from ..format.snapshots import Snapshot
from ..sources import DIR, FILE, SYMLINK


def cat_file(repo: RepoCore, snapshot: Snapshot, path: str | bytes) -> Iterator[bytes]:
    """The content of one file of ``snapshot``, chunk by chunk, each verified.

    The file is looked up before this returns, so a path that is not a file of the
    snapshot raises :class:`PathNotFoundError` at once; a damaged chunk raises
    :class:`CorruptionError` when the stream reaches it.
    """
    wanted = (os.fsencode(path) if isinstance(path, str) else path).strip(b"/")
    index, _ = repo.load_index(snapshot.group)
    for entry in repo.iter_entries(snapshot, index):
        if entry.path != wanted:
            continue
        if entry.kind != FILE:
            names = {DIR: "a directory", SYMLINK: "a symbolic link"}
            what = names.get(entry.kind, "a " + entry.kind)
            raise PathNotFoundError(f"{os.fsdecode(wanted)}: is {what}, not a file")
        return _stream(repo, snapshot, index, entry.chunks, os.fsdecode(wanted))
    raise PathNotFoundError(f"{os.fsdecode(wanted)}: not in snapshot {snapshot.id}")


def _stream(
    repo: RepoCore, snapshot: Snapshot, index: GroupIndex, chunks: list[bytes], name: str
) -> Iterator[bytes]:
    items = ((cid, cid) for cid in chunks)
    for _cid, data in repo.fetch_chunks(snapshot.group, index, items):
        if isinstance(data, KvbackupError):
            raise CorruptionError(f"{name}: {data}")
        yield data
