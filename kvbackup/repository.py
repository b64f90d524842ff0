"""The repository: the Python API of kvbackup.

repo = Repository.init("/srv/backups", password="...")     # or a URL, or a dict
repo.backup("/home/ann/Documents")
repo.restore("latest", "/tmp/restored")
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .chunker import DATA_CHUNKS, ChunkerParams, ChunkHasher
from .errors import (
    BadPasswordError,
    CorruptionError,
    KeyNotFoundError,
    KvbackupError,
    NotEncryptedError,
    PluginError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
)
from .fetch import Span, fetch_ordered
from .filelist import read_entries
from .index import BlobLocation, GroupIndex, decode_fragment, encode_fragment
from .keys import KeyMaterial, read_slot, unlock, wrap_master_key
from .packs import (
    DEFAULT_PACK_SIZE,
    TRAILER_LEN,
    decode_trailer,
    pack_id_from_key,
    pack_key,
    trailer_length,
)
from .registry import PluginRegistry, default_registry
from .snapshots import OPEN_SUFFIX, Snapshot, is_snapshot_id, snapshot_key
from .sources import Entry
from .store import CountingStore, RequestCounts, RetryingStore, Store, as_store
from .transforms import Codec, ObjectType, Transform

if TYPE_CHECKING:
    from .backup import BackupResult, Progress
    from .diff import DiffResult
    from .fullverify import FullVerifyResult
    from .restore import RestoreResult
    from .stats import Stats
    from .verify import VerifyResult

T = TypeVar("T")
DEFAULT_VERIFY_MAX_AGE = 30 * 86400.0  # kvbackup.verify.DEFAULT_MAX_AGE, without the import
#: A password, or a function returning it, called only if the repository needs one.
Password = str | bytes | Callable[[], str | bytes] | None
FORMAT = 1
CHECKSUM_KEY = b"kvbackup v1 object checksum key!"  # integrity only: 32 public bytes
_TAIL_GUESS = 64 * 1024


@dataclass
class RepoConfig:
    """The settings a repository is created with (the ``config`` object)."""

    id: str
    created: str
    encryption: str | None
    transforms: list[dict[str, Any]]
    chunker: ChunkerParams
    pack_size: int = DEFAULT_PACK_SIZE
    master_key: str | None = None  # only in unencrypted repositories

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "id": self.id,
            "created": self.created,
            "encryption": self.encryption,
            "transforms": self.transforms,
            "chunker": self.chunker.as_dict(),
            "pack_size": self.pack_size,
        }
        if self.master_key:
            data["master_key"] = self.master_key
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RepoConfig:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"unsupported repository format {data.get('format')!r}")
            return cls(
                id=str(data["id"]),
                created=str(data["created"]),
                encryption=data["encryption"],
                transforms=list(data["transforms"]),
                chunker=ChunkerParams(**data["chunker"]),
                pack_size=int(data["pack_size"]),
                master_key=data.get("master_key"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(f"config: malformed ({exc})") from None


def open_store(
    location: Any,
    options: Mapping[str, str] | None = None,
    registry: PluginRegistry | None = None,
) -> Store:
    """A store for a path, a URL, a :class:`Store`, or any mutable mapping."""
    if isinstance(location, (str, os.PathLike)):
        url = os.fspath(location)
        reg = (registry or default_registry()).store_for_url(url)
        store = reg.factory(url, dict(options or {}))
        if not isinstance(store, Store):
            raise PluginError(f"store plugin {reg.name!r} returned {type(store).__name__}")
        return store
    return as_store(location)


def _chain_spec(
    registry: PluginRegistry, compression: str | None, level: int | None, encryption: str | None
) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    for role, name in (("compression", compression), ("encryption", encryption)):
        if name == "none":
            continue
        if name in (None, "default"):
            default = registry.default_transform(role)
            if default is None:
                if role == "encryption":
                    raise PluginError("no default encryption transform is installed")
                continue
            name = default.name
        reg = registry.get("transform", name)
        spec: dict[str, Any] = {"name": reg.name}
        if role == "compression" and level is not None:
            spec["level"] = level
        chain.append(spec)
    return chain


class Repository:
    """A kvbackup repository in a store. Use :meth:`init` or :meth:`open`."""

    def __init__(
        self,
        store: Store,
        keys: KeyMaterial,
        config: RepoConfig,
        registry: PluginRegistry,
        location: str,
    ):
        self.counts = RequestCounts()
        self.raw_store = store
        self.store: Store = CountingStore(RetryingStore(store), self.counts)
        self.keys = keys
        self.config = config
        self.registry = registry
        self.location = location
        self.hasher = ChunkHasher(keys.derive("chunk-id"))
        self._transforms: dict[str, Transform] = {}
        self._tlock = threading.Lock()
        self.codec = self.make_codec(config.transforms)
        self._pool: ThreadPoolExecutor | None = None

    # ----------------------------------------------------------------- opening

    @classmethod
    def init(
        cls,
        location: Any,
        *,
        password: Password = None,
        encryption: str | None = "default",
        compression: str | None = "default",
        compression_level: int | None = None,
        chunker: ChunkerParams | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        store_options: Mapping[str, str] | None = None,
        plugins: PluginRegistry | None = None,
    ) -> Repository:
        """Create a repository at ``location`` (a path, a URL, a store or a mapping).

        Encryption is on unless ``encryption="none"``; it then needs a ``password``. The one
        exception is a plain in-process ``dict`` given no password: nothing in it is at rest
        anywhere, so ``Repository.init({})`` makes an unencrypted repository (for tests and
        scripts that swap a real store for a dict).
        """
        if password is None and encryption == "default" and type(location) is dict:
            encryption = "none"
        registry = plugins or default_registry()
        store = open_store(location, store_options, registry)
        retrying = RetryingStore(store)
        ensure = getattr(store, "ensure_root", None)
        if callable(ensure):
            retrying.retry("prepare", "", ensure)
        raw = CountingStore(retrying)
        if raw.exists("config") or any(True for _ in raw.list("keys/")):
            raise RepositoryExistsError(f"{store.description}: a repository already exists here")
        chain = _chain_spec(registry, compression, compression_level, encryption)
        cipher = next(
            (t["name"] for t in chain if registry.get("transform", t["name"]).role == "encryption"),
            None,
        )
        if not cipher and isinstance(password, (str, bytes)) and password:
            raise NotEncryptedError(
                "a password was given for an unencrypted repository: opening it with a "
                "password would be refused (give no password with encryption='none')"
            )
        keys = KeyMaterial.generate()
        config = RepoConfig(
            id=secrets.token_hex(16),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            encryption=cipher,
            transforms=chain,
            chunker=chunker or DATA_CHUNKS,
            pack_size=pack_size,
            master_key=None if cipher else keys.master.hex(),
        )
        repo = cls(store, keys, config, registry, _describe(location, store))
        if cipher:
            if callable(password):
                password = password()
            if password is None or password == "":
                raise BadPasswordError("an encrypted repository needs a password")
            repo.add_password(password)
        repo.put_object("config", ObjectType.CONFIG, config.to_json(), compress=False)
        return repo

    @classmethod
    def open(
        cls,
        location: Any,
        *,
        password: Password = None,
        store_options: Mapping[str, str] | None = None,
        plugins: PluginRegistry | None = None,
        expect_encrypted: bool | None = None,
    ) -> Repository:
        """Open the repository at ``location``; ``password`` if it is encrypted.

        A repository that turns out not to be encrypted is refused when
        ``expect_encrypted`` is true (by default: when a password string was given), since
        an attacker who can write to the store could have replaced an encrypted
        repository's config and key slots with unencrypted ones (see ``docs/security.md``).
        """
        registry = plugins or default_registry()
        store = open_store(location, store_options, registry)
        raw = RetryingStore(store)
        try:
            config_blob = raw.get("config")
        except KeyNotFoundError:
            raise RepositoryNotFoundError(
                f"{_describe(location, store)}: no kvbackup repository here "
                "(create one with `kvbackup init`)"
            ) from None
        slots = sorted(k for k in raw.list("keys/"))
        if slots:
            if callable(password):
                password = password()
            if password is None:
                raise BadPasswordError("this repository is encrypted: a password is needed")
            keys = _unlock(raw, slots, _as_bytes(password))
        else:
            keys = None
        probe = cls._bootstrap_codec(registry, keys)
        plain = probe.decode(ObjectType.CONFIG, b"config", config_blob, "config")
        config = RepoConfig.from_json(plain)
        if config.encryption and keys is None:
            raise CorruptionError("config: repository is encrypted but has no key slots")
        if keys is not None:
            # The config of an encrypted repository must be authenticated by its own cipher:
            # an unencrypted config next to key slots is a downgrade attempt.
            if not config.encryption:
                raise CorruptionError(
                    "config: says the repository is not encrypted, but it has key slots (tampered?)"
                )
            strict = Codec([], probe._resolve, CHECKSUM_KEY, required_auth=config.encryption)
            strict.decode(ObjectType.CONFIG, b"config", config_blob, "config")
        if expect_encrypted is None:
            expect_encrypted = isinstance(password, (str, bytes)) and password != ""
        if keys is None and expect_encrypted:
            raise NotEncryptedError(
                f"{_describe(location, store)}: a password was given, but this repository is "
                "not encrypted: refusing to use it (if it was made with --encryption none, "
                "give no password; otherwise its key slots and config have been replaced)"
            )
        if keys is None:
            if not config.master_key:
                raise CorruptionError("config: no master key in an unencrypted repository")
            keys = KeyMaterial(bytes.fromhex(config.master_key))
        return cls(store, keys, config, registry, _describe(location, store))

    @staticmethod
    def _bootstrap_codec(registry: PluginRegistry, keys: KeyMaterial | None) -> Codec:
        cache: dict[str, Transform] = {}

        def resolve(name: str) -> Transform:
            if name not in cache:
                if keys is None:
                    raise CorruptionError("config: encrypted, but the repository has no key slots")
                cache[name] = registry.get("transform", name).factory({}, keys)
            return cache[name]

        return Codec([], resolve, CHECKSUM_KEY, required_auth=None)

    def make_codec(self, chain: list[dict[str, Any]]) -> Codec:
        """A codec writing with ``chain`` (transform specs) and reading any known transform."""
        transforms = [self._transform(spec["name"], spec) for spec in chain]
        return Codec(transforms, self._transform, CHECKSUM_KEY, self.config.encryption)

    def _transform(self, name: str, spec: Mapping[str, Any] | None = None) -> Transform:
        options = {k: v for k, v in (spec or {}).items() if k != "name"}
        cache_key = name + json.dumps(options, sort_keys=True)
        with self._tlock:
            if cache_key not in self._transforms:
                reg = self.registry.get("transform", name)
                self._transforms[cache_key] = reg.factory(options, self.keys)
            return self._transforms[cache_key]

    def close(self) -> None:
        """Release the store and worker threads."""
        if self._pool:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pool(self) -> ThreadPoolExecutor:
        """Threads for store requests, sized to what the store handles well."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=max(2, self.store.concurrency), thread_name_prefix="kvbackup-io"
            )
        return self._pool

    # ----------------------------------------------------------------- keys

    def add_password(self, password: str | bytes, label: str = "") -> str:
        """Add a key slot opening this repository with ``password``; return its id."""
        if not self.config.encryption:
            raise KvbackupError("this repository is not encrypted: it has no passwords")
        slot_id = secrets.token_hex(8)
        body = wrap_master_key(self.keys, _as_bytes(password), slot_id, label)
        self.store.put(
            f"keys/{slot_id}",
            self.codec.encode(ObjectType.KEY_SLOT, f"keys/{slot_id}".encode(), body, plain=True),
        )
        return slot_id

    def key_slots(self) -> list[dict[str, Any]]:
        """The key slots: id, label, KDF parameters; a damaged slot has ``damaged`` set
        to what is wrong with it (and no other fields but ``id``)."""
        out: list[dict[str, Any]] = []
        for key in sorted(self.store.list("keys/")):
            slot_id = key.split("/", 1)[1]
            try:
                slot = read_slot(self.codec, key, self.store.get(key))
            except CorruptionError as exc:
                out.append({"id": slot_id, "damaged": str(exc)})
                continue
            out.append(
                {
                    "id": slot_id,
                    "label": slot.get("label", ""),
                    "kdf": slot["kdf"],
                    "memory_kib": slot["memory_kib"],
                    "iterations": slot["iterations"],
                    "lanes": slot["lanes"],
                }
            )
        return out

    def remove_key_slot(self, slot_id: str) -> None:
        """Remove a key slot (a damaged one too); the last intact one cannot be removed."""
        slots = self.key_slots()
        if slot_id not in {s["id"] for s in slots}:
            raise KvbackupError(f"no key slot {slot_id!r}")
        if not any(s["id"] != slot_id and "damaged" not in s for s in slots):
            raise KvbackupError(
                "cannot remove the last intact key slot: the repository would be lost"
            )
        self.store.delete(f"keys/{slot_id}")

    # ----------------------------------------------------------------- objects

    def put_object(self, key: str, otype: int, data: bytes, compress: bool = True) -> None:
        codec = self.codec if compress else self._auth_only_codec()
        self.store.put(key, codec.encode(otype, key.encode(), data))

    def get_object(self, key: str, otype: int) -> bytes:
        return self.codec.decode(otype, key.encode(), self.store.get(key), key)

    def _auth_only_codec(self) -> Codec:
        chain = [t for t in self.codec.chain if t.authenticates]
        return Codec(chain, self._transform, CHECKSUM_KEY, self.config.encryption)

    def map_parallel(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """``[fn(x) for x in items]`` with the store requests in parallel."""
        return list(self.pool.map(fn, items))

    # ----------------------------------------------------------------- snapshots

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, complete and incomplete, oldest first."""
        finals: set[str] = set()
        opens: set[str] = set()
        for key in self.store.list("snapshots/"):
            name = key.split("/", 1)[1]
            if name.endswith(OPEN_SUFFIX):
                opens.add(name[: -len(OPEN_SUFFIX)])
            else:
                finals.add(name)
        ids = sorted(i for i in finals | opens if is_snapshot_id(i))
        return self.map_parallel(lambda i: self.load_snapshot(i, i in finals), ids)

    def load_snapshot(self, snapshot_id: str, final: bool = True) -> Snapshot:
        key = snapshot_key(snapshot_id, final)
        snap = Snapshot.from_json(json.loads(self.get_object(key, ObjectType.SNAPSHOT)), key)
        if snap.id != snapshot_id:
            raise CorruptionError(f"{key}: record names snapshot {snap.id}")
        return snap

    def resolve_snapshot(self, spec: str | Snapshot, complete_only: bool = True) -> Snapshot:
        """The snapshot named ``spec``: ``latest``, an id, or a unique id prefix."""
        if isinstance(spec, Snapshot):
            return spec
        snaps = [s for s in self.snapshots() if s.complete or not complete_only]
        if spec == "latest":
            if not snaps:
                raise SnapshotNotFoundError("the repository has no snapshot yet")
            return snaps[-1]
        exact = [s for s in snaps if s.id == spec]
        if exact:
            return exact[0]
        matches = [s for s in snaps if s.id.startswith(spec)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise SnapshotNotFoundError(f"no snapshot {spec!r}")
        raise SnapshotNotFoundError(
            f"{spec!r} matches {len(matches)} snapshots: " + ", ".join(s.id for s in matches[:5])
        )

    # ----------------------------------------------------------------- index

    def load_index(self, group: str, recover: bool = False) -> tuple[GroupIndex, int]:
        """The index of ``group``. With ``recover``, packs that no index fragment names
        (an interrupted backup) are read from their trailers and indexed; returns the
        index and the number of packs so recovered."""
        index = GroupIndex()
        prefix = f"groups/{group}/index/"
        keys = list(self.store.list(prefix))

        def load(key: str) -> list[tuple[bytes, list[BlobLocation]]]:
            return list(decode_fragment(self.get_object(key, ObjectType.INDEX), key))

        for packs in self.map_parallel(load, keys):
            for pack_id, blobs in packs:
                index.add_pack(pack_id, blobs)
        if not recover:
            return index, 0
        orphans = [
            pack_id
            for pack_id in map(pack_id_from_key, self.store.list(f"groups/{group}/packs/"))
            if pack_id is not None and pack_id not in index.packs
        ]

        def trailer(pack_id: bytes) -> tuple[bytes, list[BlobLocation]] | None:
            try:
                return pack_id, self.read_pack_table(group, pack_id)
            except (CorruptionError, KeyNotFoundError):
                return None  # an unreadable leftover is not reused; verify reports it

        recovered = [r for r in self.map_parallel(trailer, orphans) if r]
        for pack_id, blobs in recovered:
            index.add_pack(pack_id, blobs)
        if recovered:
            self.write_index_fragment(group, recovered)
        return index, len(recovered)

    def read_pack_table(self, group: str, pack_id: bytes) -> list[BlobLocation]:
        """The blob table of a pack, read from its trailer."""
        key = pack_key(group, pack_id)
        tail = self.store.get_range(key, -_TAIL_GUESS, _TAIL_GUESS)
        if len(tail) < TRAILER_LEN.size:
            raise CorruptionError(f"{key}: too short to be a pack")
        length = trailer_length(tail)
        if length + TRAILER_LEN.size > len(tail):
            tail = self.store.get_range(key, -(length + TRAILER_LEN.size), 0)
            if len(tail) < length + TRAILER_LEN.size:
                raise CorruptionError(f"{key}: trailer length exceeds the pack")
        envelope = tail[-TRAILER_LEN.size - length : -TRAILER_LEN.size]
        return decode_trailer(self.codec, key, envelope, pack_id)

    def write_index_fragment(
        self, group: str, packs: list[tuple[bytes, list[BlobLocation]]]
    ) -> None:
        key = f"groups/{group}/index/{secrets.token_hex(16)}"
        self.put_object(key, ObjectType.INDEX, encode_fragment(packs))

    # ----------------------------------------------------------------- reading chunks

    def fetch_chunks(
        self, group: str, index: GroupIndex, items: Iterable[tuple[T, bytes]]
    ) -> Iterator[tuple[T, bytes | KvbackupError]]:
        """Fetch chunks by id, in order, each verified against its id.

        Nearby chunks of one pack are read with one ranged GET, several GETs in flight (see
        :mod:`kvbackup.fetch`). A chunk that cannot be had yields a
        :class:`KvbackupError` in place of its bytes, so the caller decides about the rest.
        """
        return fetch_ordered(items, index.get, lambda span: self._read_span(group, span), self.pool)

    def _read_span(self, group: str, span: Span[T]) -> list[tuple[int, T, bytes | KvbackupError]]:
        if not span.pack_id:
            return [
                (n, tag, CorruptionError(f"chunk {cid.hex()}: not in the index of group {group}"))
                for n, tag, cid, _ in span.items
            ]
        key = pack_key(group, span.pack_id)
        try:
            data = self.store.get_range(key, span.start, span.size)
        except KeyNotFoundError:
            return [
                (n, tag, CorruptionError(f"{key}: pack missing (needed for chunk {cid.hex()})"))
                for n, tag, cid, _ in span.items
            ]
        out: list[tuple[int, T, bytes | KvbackupError]] = []
        for n, tag, cid, loc in span.items:
            assert loc is not None
            envelope = data[loc.offset - span.start : loc.offset - span.start + loc.length]
            what = f"chunk {cid.hex()} in {key}"
            try:
                if len(envelope) != loc.length:
                    raise CorruptionError(f"{what}: pack is shorter than the index says")
                plain = self.codec.decode(loc.otype, cid, envelope, what)
                if self.hasher(plain) != cid:
                    raise CorruptionError(f"{what}: content does not match its id")
                out.append((n, tag, plain))
            except KvbackupError as exc:
                out.append((n, tag, exc))
        return out

    def iter_entries(
        self,
        snapshot: Snapshot,
        index: GroupIndex | None = None,
        on_damage: Callable[[KvbackupError], None] | None = None,
    ) -> Iterator[Entry]:
        """The entries of a snapshot's file list, streamed.

        A file-list chunk that cannot be read raises, unless ``on_damage`` is given: it is
        then told, and the entries after the damage are still read.
        """
        if index is None:
            index, _ = self.load_index(snapshot.group)

        def chunks() -> Iterator[bytes | None]:
            items = ((cid, cid) for cid in snapshot.filelist_ids())
            for _cid, data in self.fetch_chunks(snapshot.group, index, items):
                if isinstance(data, KvbackupError):
                    error = CorruptionError(f"snapshot {snapshot.id}: file list: {data}")
                    if on_damage is None:
                        raise error
                    on_damage(error)
                    yield None
                else:
                    yield data

        return read_entries(chunks())

    # ----------------------------------------------------------------- operations

    def backup(
        self,
        source: Any,
        *,
        full: bool = False,
        rehash: bool = False,
        source_type: str | None = None,
        source_options: Mapping[str, str] | None = None,
        compression: str | None = None,
        progress: Progress | None = None,
        host: str | None = None,
        tags: Iterable[str] = (),
    ) -> BackupResult:
        """Back ``source`` up (a path, an iterable of (name, content), or anything a source
        plugin accepts). Incremental unless ``full``; see :func:`kvbackup.backup.run_backup`."""
        from .backup import run_backup

        return run_backup(
            self,
            source,
            full=full,
            rehash=rehash,
            source_type=source_type,
            source_options=source_options,
            compression=compression,
            progress=progress,
            host=host,
            tags=list(tags),
        )

    def restore(
        self,
        snapshot: str | Snapshot,
        target: str | os.PathLike[str],
        *,
        paths: Iterable[str | bytes] = (),
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        progress: Progress | None = None,
    ) -> RestoreResult:
        """Restore ``snapshot`` (or the selected paths of it) under ``target``."""
        from .restore import run_restore

        return run_restore(
            self,
            self.resolve_snapshot(snapshot),
            target,
            paths=list(paths),
            include=list(include),
            exclude=list(exclude),
            progress=progress,
        )

    # ----------------------------------------------------------------- checking, browsing

    def verify(
        self,
        *,
        max_age: float = DEFAULT_VERIFY_MAX_AGE,
        read_data_subset: float = 100.0,
        use_cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> VerifyResult:
        """Check the structure, then read packs not verified within ``max_age`` seconds
        (all with ``use_cache=False``; a ``read_data_subset`` percentage of them at most);
        see :mod:`kvbackup.verify`."""
        from .verify import run_verify

        return run_verify(
            self,
            max_age=max_age,
            read_data_subset=read_data_subset,
            use_cache=use_cache,
            cache_dir=cache_dir,
            progress=progress,
        )

    def verify_full(
        self,
        source: str | os.PathLike[str],
        snapshot: str | Snapshot | None = None,
        *,
        temp_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> FullVerifyResult:
        """Restore ``snapshot`` (default: the latest of ``source``) into a temporary folder
        and compare it with the folder ``source``; see :mod:`kvbackup.fullverify`."""
        from .fullverify import run_verify_full

        return run_verify_full(self, source, snapshot, temp_dir=temp_dir, progress=progress)

    def diff(self, before: str | Snapshot, after: str | Snapshot) -> DiffResult:
        """What changed from snapshot ``before`` to snapshot ``after``."""
        from .diff import run_diff

        return run_diff(self, self.resolve_snapshot(before), self.resolve_snapshot(after))

    def stats(self, snapshot: str | Snapshot | None = None) -> Stats:
        """Sizes and counts of the repository, or of one snapshot."""
        from .stats import repository_stats, snapshot_stats

        if snapshot is None:
            return repository_stats(self)
        return snapshot_stats(self, self.resolve_snapshot(snapshot))

    def cat(self, snapshot: str | Snapshot, path: str | bytes) -> Iterator[bytes]:
        """The content of the file ``path`` of ``snapshot``, as a stream of verified chunks
        (``b"".join(repo.cat(...))`` for the bytes)."""
        from .cat import cat_file

        return cat_file(self, self.resolve_snapshot(snapshot), path)


def _as_bytes(password: str | bytes) -> bytes:
    return password.encode() if isinstance(password, str) else password


def _unlock(store: Store, slots: list[str], password: bytes) -> KeyMaterial:
    def no_transforms(name: str) -> Transform:
        raise PluginError(f"key slot: unexpected transform {name!r}")

    checker = Codec([], no_transforms, CHECKSUM_KEY)
    return unlock(checker, ((key, store.get(key)) for key in slots), password)


def _describe(location: Any, store: Store) -> str:
    if isinstance(location, (str, os.PathLike)):
        return os.fspath(location)
    return store.description
