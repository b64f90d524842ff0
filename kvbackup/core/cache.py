"""A local cache of the repository's immutable metadata, so that commands do not re-read
what never changes: snapshot records, index fragments, and file-list chunks.

``<cache dir>/repos/<repository id>/``:

* ``objects/<key>``: the stored bytes of ``snapshots/*`` and ``groups/*/index/*`` objects,
  exactly as in the store (so encrypted and authenticated as the repository is);
* ``chunks/<2 hex>/<64 hex>``: file-list chunks, encoded with the repository's transforms
  (encrypted in an encrypted repository), checked against their id when read.

Only what was read from the store is cached (never what was written, so damage in the
store is not hidden). Every object the cache holds is written once and never changed, so a cached
copy is valid as long as the store still lists its key: each listing of ``snapshots/`` or
an index prefix drops the cached objects the store no longer has. An object that fails to
decode from the cache is read again from the store. Deleting the cache at any time is
safe; a cold cache is rebuilt as objects are read. The cache directory is
``$KVBACKUP_CACHE_DIR`` or the user cache directory (``platformdirs``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator

from ..store import Store, WrappingStore

CACHE_DIR_ENV = "KVBACKUP_CACHE_DIR"
NO_CACHE_ENV = "KVBACKUP_NO_CACHE"
_CACHEABLE = re.compile(r"^(snapshots/[^/]+|groups/[0-9a-f]{16}/index/[0-9a-f]+)$")
#: Listings after which cached objects the store no longer has are dropped; a group's index
#: is listed as ``groups/<gid>/index`` (fragments and damage records at once).
_LISTED_PREFIX = re.compile(r"^(snapshots/|groups/[0-9a-f]{16}/index/?)$")


def default_cache_root() -> str:
    """``$KVBACKUP_CACHE_DIR`` or the user cache directory."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return env
    import platformdirs

    return platformdirs.user_cache_dir("kvbackup", appauthor=False)


def cache_disabled_by_environment() -> bool:
    return os.environ.get(NO_CACHE_ENV, "").lower() in ("1", "true", "yes")


class MetadataCache:
    """Files under ``<root>/repos/<repository id>``; every failure is a miss, not an error."""

    def __init__(self, root: str | os.PathLike[str], repo_id: str):
        self.base = os.path.join(os.fspath(root), "repos", repo_id)

    def _object_path(self, key: str) -> str:
        return os.path.join(self.base, "objects", *key.split("/"))

    def _chunk_path(self, chunk_id: bytes) -> str:
        name = chunk_id.hex()
        return os.path.join(self.base, "chunks", name[:2], name)

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError:
            return None

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        with contextlib.suppress(OSError):
            directory = os.path.dirname(path)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def get_object(self, key: str) -> bytes | None:
        return self._read(self._object_path(key))

    def put_object(self, key: str, data: bytes) -> None:
        self._write(self._object_path(key), data)

    def discard_object(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._object_path(key))

    def keep_only(self, prefix: str, listed: set[str]) -> None:
        """Drop cached objects under ``prefix`` that the store no longer lists."""
        directory = os.path.dirname(self._object_path(prefix + "x"))
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                if not name.startswith(".") and prefix + name not in listed:
                    self.discard_object(prefix + name)

    def get_chunk(self, chunk_id: bytes) -> bytes | None:
        return self._read(self._chunk_path(chunk_id))

    def put_chunk(self, chunk_id: bytes, data: bytes) -> None:
        self._write(self._chunk_path(chunk_id), data)

    def discard_chunk(self, chunk_id: bytes) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._chunk_path(chunk_id))


class CachingStore(WrappingStore):
    """Serves snapshot records and index fragments from a :class:`MetadataCache`.

    Placed outside the request counter, so cached reads are not requests.
    """

    def __init__(self, inner: Store, cache: MetadataCache):
        super().__init__(inner)
        self.cache = cache
        self.supports_get_range = inner.supports_get_range

    def get(self, key: str) -> bytes:
        if _CACHEABLE.match(key):
            cached = self.cache.get_object(key)
            if cached is not None:
                return cached
            data = self.inner.get(key)
            self.cache.put_object(key, data)
            return data
        return self.inner.get(key)

    def get_fresh(self, key: str) -> bytes:
        """Read ``key`` from the store (its cached copy did not decode), caching it anew."""
        self.cache.discard_object(key)
        return self.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.get_range(key, start, length)

    # Writes are not cached: the cache holds only what was read back from the store (and
    # decoded), so damage in the store is never hidden by a copy of what was written.
    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, value)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        return self.inner.put_if_absent(key, value)

    def delete(self, key: str) -> None:
        self.cache.discard_object(key)
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = list(self.inner.list(prefix))
        if _LISTED_PREFIX.match(prefix):
            folder = prefix if prefix.endswith("/") else prefix + "/"
            self.cache.keep_only(folder, set(keys))
        return iter(keys)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)
