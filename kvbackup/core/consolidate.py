"""Merging a group's index fragments, so that reading its index costs a few requests
however many backups wrote into it. A backup merges once the group has
:data:`MERGE_AT` fragments (prune merges every group it touches). The merged fragment is
written before the fragments it replaces are deleted; a reader that listed them and then
misses one lists again (:meth:`RepoCore.load_fragments`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import KeyNotFoundError
from ..format.envelope import ObjectType
from ..format.index import BlobLocation, decode_fragment

if TYPE_CHECKING:
    from .repo import RepoCore

MERGE_AT = 32


def merge_fragments(repo: RepoCore, group: str, keys: Sequence[str]) -> int:
    """Replace the fragments ``keys`` of ``group`` by one; return how many were replaced
    (0 if one of them is gone already: someone else merged them)."""
    if len(keys) < 2:
        return 0
    tables: dict[bytes, list[BlobLocation]] = {}
    for key in keys:
        try:
            packs = decode_fragment(repo.get_object(key, ObjectType.INDEX), key)
            for pack_id, blobs in packs:
                tables.setdefault(pack_id, blobs)
        except KeyNotFoundError:
            return 0
    repo.write_index_fragment(group, list(tables.items()))
    for key in keys:
        repo.store.delete(key)
    return len(keys)
