"""Damage a command found and worked around, and the fallbacks that work around it.

One unreadable snapshot record or index fragment must not take a whole command down:
the record is left out (an incomplete record stands in for an unreadable final one), a lost
index fragment is replaced by the trailers of the packs no fragment names, and each such
finding is noted here, once, for the command to report. ``kvbackup repair`` fixes the
repository for good (see :mod:`kvbackup.repair`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import CorruptionError, KeyNotFoundError, KvbackupError
from ..format.envelope import ObjectType
from ..format.index import BlobLocation, GroupIndex
from ..format.layout import new_damage_key, pack_id_from_key, pack_key, packs_prefix

if TYPE_CHECKING:
    from .repo import RepoCore


class DamageLog:
    """Messages about damage worked around, each once; ``listeners`` are told as it is found
    (the command line prints a warning)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        with self._lock:
            if message in self.messages:
                return
            self.messages.append(message)
        for listener in self.listeners:
            listener(message)

    def __bool__(self) -> bool:
        return bool(self.messages)


def unindexed_pack_tables(
    repo: RepoCore, group: str, known: set[bytes]
) -> tuple[list[tuple[bytes, list[BlobLocation]]], list[str]]:
    """The blob tables, from their trailers, of the packs of ``group`` not in ``known``;
    and the keys of those whose trailer cannot be read."""
    orphans = [
        pack_id
        for pack_id in map(pack_id_from_key, repo.store.list(packs_prefix(group)))
        if pack_id is not None and pack_id not in known
    ]

    def trailer(pack_id: bytes) -> tuple[bytes, list[BlobLocation]] | str | None:
        try:
            return pack_id, repo.read_pack_table(group, pack_id)
        except KeyNotFoundError:
            return None  # deleted since the listing
        except CorruptionError:
            return pack_key(group, pack_id)

    tables: list[tuple[bytes, list[BlobLocation]]] = []
    unreadable: list[str] = []
    for found in repo.map_parallel(trailer, orphans):
        if isinstance(found, str):
            unreadable.append(found)
        elif found is not None:
            tables.append(found)
    return tables, unreadable


class IndexFallback:
    """Looks a chunk up in ``index``; the first time one is missing, the packs of the group
    that no index fragment names are read from their trailers and added (a lost or damaged
    fragment), once. Costs nothing while every chunk is found."""

    def __init__(self, repo: RepoCore, group: str, index: GroupIndex):
        self.repo, self.group, self.index = repo, group, index
        self._lock = threading.Lock()
        self._done = False

    def __call__(self, chunk_id: bytes) -> BlobLocation | None:
        loc = self.index.get(chunk_id)
        if loc is not None or self._done:
            return loc
        with self._lock:
            if not self._done:
                self._recover()
                self._done = True
        return self.index.get(chunk_id)

    def _recover(self) -> None:
        try:
            tables, unreadable = unindexed_pack_tables(self.repo, self.group, set(self.index.packs))
        except KvbackupError as exc:
            self.repo.damage.note(f"group {self.group}: cannot look for unindexed packs: {exc}")
            return
        for pack_id, blobs in tables:
            self.index.add_pack(pack_id, blobs)
        if tables:
            self.repo.damage.note(
                f"group {self.group}: {len(tables)} packs no index fragment names were read "
                "from their trailers (a lost index fragment? run `kvbackup repair index`)"
            )
        for key in unreadable:
            self.repo.damage.note(f"{key}: no index fragment names it and its trailer is damaged")


# ---------------------------------------------------------------------- damage records
#
# ``groups/<gid>/index-damaged/<random>``: chunk copies verify found damaged (or lost with their
# pack), so that every later command avoids them and the next backup stores the chunks
# again. Written once, like every object; never rewritten.


def write_damage_record(repo: RepoCore, group: str, copies: Iterable[tuple[bytes, bytes]]) -> str:
    """Record the damaged ``(chunk id, pack id)`` copies of ``group``; return the key."""
    body = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "chunks": sorted([cid.hex(), pack_id.hex()] for cid, pack_id in copies),
    }
    key = new_damage_key(group)
    repo.put_object(key, ObjectType.DAMAGE, json.dumps(body).encode())
    return key


def decode_damage_record(plain: bytes, key: str) -> set[tuple[bytes, bytes]]:
    try:
        body = json.loads(plain)
        out = set()
        for cid, pack_id in body["chunks"]:
            pair = bytes.fromhex(cid), bytes.fromhex(pack_id)
            if len(pair[0]) != 32 or len(pair[1]) != 16:
                raise ValueError("bad id length")
            out.add(pair)
        return out
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"{key}: malformed damage record ({exc})") from None


def load_damage_records(
    repo: RepoCore, group: str, keys: list[str] | None = None
) -> set[tuple[bytes, bytes]]:
    """Every damaged copy recorded for ``group`` (in the records ``keys``, if the caller
    listed them already); an unreadable record is noted and skipped."""
    if keys is None:
        keys = repo.list_index_keys(group)[1]

    def load(key: str) -> set[tuple[bytes, bytes]]:
        try:
            return decode_damage_record(repo.get_object(key, ObjectType.DAMAGE), key)
        except KeyNotFoundError:
            return set()
        except CorruptionError as exc:
            repo.damage.note(f"{exc} (left out)")
            return set()

    out: set[tuple[bytes, bytes]] = set()
    for found in repo.map_parallel(load, keys) if keys else ():
        out |= found
    return out
