"""The repository core: a store, its keys and codec, and the read/write primitives.

Operations (:mod:`kvbackup.ops`) are written against :class:`RepoCore`: objects in and out
of the envelope, the snapshot catalogue, group indexes, pack trailers, verified chunk reads
and file-list streaming, one implementation each. :class:`kvbackup.Repository` wraps it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import (
    BadPasswordError,
    CorruptionError,
    KeyNotFoundError,
    KvbackupError,
    NotEncryptedError,
    PluginError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    UsageError,
)
from ..format.chunker import DATA_CHUNKS, ChunkerParams, ChunkHasher
from ..format.config import CHECKSUM_KEY, RepoConfig, check_chunker, decode_limits
from ..format.envelope import Codec, ObjectType
from ..format.filelist import read_entries, read_lines
from ..format.index import BlobLocation, GroupIndex, decode_fragment, encode_fragment
from ..format.keyslots import (
    KeyMaterial,
    Unlocked,
    read_slot,
    slot_profile,
    unlock,
    wrap_master_key,
)
from ..format.layout import (
    CONFIG_KEY,
    KEYS_PREFIX,
    SNAPSHOTS_PREFIX,
    index_listing_prefix,
    is_snapshot_id,
    new_index_key,
    pack_id_from_key,
    pack_key,
    packs_prefix,
    parse_snapshot_key,
    slot_id_from_key,
    slot_key,
    snapshot_key,
    snapshot_sort_key,
    split_index_listing,
)
from ..format.packs import DEFAULT_PACK_SIZE, TRAILER_LEN, decode_trailer, trailer_length
from ..format.parentlist import ParentList
from ..format.snapshots import Snapshot
from ..registry import PluginRegistry, default_registry
from ..sources import Entry
from ..store import CountingStore, RequestCounts, RetryingStore, Store, as_store
from ..transforms import Transform
from . import slotcache
from .cache import CachingStore, MetadataCache, cache_disabled_by_environment, default_cache_root
from .damage import DamageLog, IndexFallback, load_damage_records
from .fetch import Span, fetch_ordered
from .selection import SnapshotFilter, pick

T = TypeVar("T")
#: Whether to keep a local metadata cache: ``None`` (yes for a path or URL, unless
#: ``$KVBACKUP_NO_CACHE``), ``True``, ``False``, or the cache's root folder.
CacheChoice = bool | str | os.PathLike[str] | None
#: A password, or a function returning it, called only if the repository needs one.
Password = str | bytes | Callable[[], str | bytes] | None
_TAIL_GUESS = 64 * 1024


def open_store(
    location: Any,
    options: Mapping[str, str] | None = None,
    registry: PluginRegistry | None = None,
) -> Store:
    """A store for a path, a URL, a :class:`Store`, or any mutable mapping."""
    if isinstance(location, (str, os.PathLike)):
        return (registry or default_registry()).open_store(os.fspath(location), options)
    return as_store(location)


def _chain_spec(
    registry: PluginRegistry, compression: str | None, level: int | None, encryption: str | None
) -> list[dict[str, Any]]:
    """The transform chain ``init`` records; every name, role and option checked."""
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
        reg = registry.transform_for_role(name, role)
        options = {"level": level} if role == "compression" and level is not None else {}
        chain.append({"name": reg.name, **registry.transform_options(reg.name, options)})
    return chain


class RepoCore:
    """An open repository: its store (retried, counted), keys, config, codec and chunk
    hasher, and the primitives every operation is built on. Use :meth:`create` or
    :meth:`open`."""

    def __init__(
        self,
        store: Store,
        keys: KeyMaterial,
        config: RepoConfig,
        registry: PluginRegistry,
        location: str,
        cache: CacheChoice = None,
    ):
        self.counts = RequestCounts()
        self.raw_store = store
        self.store: Store = CountingStore(RetryingStore(store), self.counts)
        self.metadata_cache = _metadata_cache(cache, config.id)
        if self.metadata_cache is not None:
            # Outside the counter: what the cache serves is not a request.
            self.store = CachingStore(self.store, self.metadata_cache)
        self.keys = keys
        self.config = config
        self.registry = registry
        self.location = location
        self.hasher = ChunkHasher(keys.derive("chunk-id"))
        self._transforms: dict[str, Transform] = {}
        self._tlock = threading.Lock()
        self.codec = self.make_codec(config.transforms)
        self._pool: ThreadPoolExecutor | None = None
        #: The key slot this repository was opened (or created) with, and its KDF profile.
        self.slot_id: str | None = None
        self.kdf_profile: str | None = None
        #: How the store was named and opened (a path or URL and its options), so that
        #: another process can open the same store; ``None`` for a store given as an object.
        self.store_location: str | None = None
        self.store_options: dict[str, str] = {}
        #: Damage worked around so far (an unreadable record left out, ...), each once.
        self.damage = DamageLog()

    # ----------------------------------------------------------------- opening

    @classmethod
    def create(
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
        cache: CacheChoice = None,
        kdf_profile: str | None = None,
    ) -> RepoCore:
        """Create a repository at ``location`` (a path, a URL, a store or a mapping).

        Encryption is on unless ``encryption="none"``; it then needs a ``password``. The one
        exception is a plain in-process ``dict`` given no password: nothing in it is at rest
        anywhere, so ``Repository.init({})`` makes an unencrypted repository (for tests and
        scripts that swap a real store for a dict).
        """
        if password is None and encryption == "default" and type(location) is dict:
            encryption = "none"
        registry = plugins or default_registry()
        # Everything is checked before the store is touched: a bad option or a failing
        # plugin leaves no folder and no half-made repository behind.
        chain = _chain_spec(registry, compression, compression_level, encryption)
        try:
            check_chunker(chunker or DATA_CHUNKS)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
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
        for spec in chain:
            registry.make_transform(spec["name"], _options_of(spec), keys)
        store = open_store(location, store_options, registry)
        raw = CountingStore(RetryingStore(store))
        if raw.exists(CONFIG_KEY) or any(True for _ in raw.list(KEYS_PREFIX)):
            raise RepositoryExistsError(f"{store.description}: a repository already exists here")
        config = RepoConfig(
            id=secrets.token_hex(16),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            encryption=cipher,
            transforms=chain,
            chunker=chunker or DATA_CHUNKS,
            pack_size=pack_size,
            master_key=None if cipher else keys.master.hex(),
        )
        repo = cls(
            store, keys, config, registry, _describe(location, store), _cache_for(location, cache)
        )
        repo._remember_location(location, store_options)
        if cipher:
            if callable(password):
                password = password()
            if password is None or password == "":
                raise BadPasswordError("an encrypted repository needs a password")
        prepare = getattr(store, "ensure_root", None)
        if callable(prepare):  # the store's documented hook: make its root, now
            RetryingStore(store).retry("prepare", "", prepare)
        written: list[str] = []
        try:
            if cipher:
                assert password is not None and not callable(password)
                repo.slot_id = repo.add_password(password, kdf_profile=kdf_profile)
                written.append(slot_key(repo.slot_id))
            repo.put_object(CONFIG_KEY, ObjectType.CONFIG, config.to_json(), compress=False)
        except BaseException:
            for key in written:  # no key slot without a config: that would block a new init
                with contextlib.suppress(Exception):
                    repo.store.delete(key)
            raise
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
        cache: CacheChoice = None,
    ) -> RepoCore:
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
            config_blob = raw.get(CONFIG_KEY)
        except KeyNotFoundError:
            raise RepositoryNotFoundError(
                f"{_describe(location, store)}: no kvbackup repository here "
                "(create one with `kvbackup init`)"
            ) from None
        slots = sorted(k for k in raw.list(KEYS_PREFIX))
        unlocked: Unlocked | None = None
        if slots:
            if callable(password):
                password = password()
            if password is None:
                raise BadPasswordError("this repository is encrypted: a password is needed")
            unlocked = _unlock(raw, slots, _as_bytes(password), slotcache.recall(config_blob))
            keys: KeyMaterial | None = unlocked.keys
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
        repo = cls(
            store, keys, config, registry, _describe(location, store), _cache_for(location, cache)
        )
        if unlocked is not None:
            repo.slot_id, repo.kdf_profile = unlocked.slot_id, unlocked.profile
            slotcache.remember(config_blob, unlocked.slot_id)
        repo._remember_location(location, store_options)
        return repo

    def _remember_location(self, location: Any, options: Mapping[str, str] | None) -> None:
        if isinstance(location, (str, os.PathLike)):
            self.store_location = os.fspath(location)
            self.store_options = dict(options or {})

    @staticmethod
    def _bootstrap_codec(registry: PluginRegistry, keys: KeyMaterial | None) -> Codec:
        cache: dict[str, Transform] = {}

        def resolve(name: str) -> Transform:
            if name not in cache:
                if keys is None:
                    raise CorruptionError("config: encrypted, but the repository has no key slots")
                cache[name] = registry.make_transform(name, {}, keys)
            return cache[name]

        return Codec([], resolve, CHECKSUM_KEY, required_auth=None)

    def make_codec(self, chain: list[dict[str, Any]]) -> Codec:
        """A codec writing with ``chain`` (transform specs) and reading any known transform."""
        transforms = [self._transform(spec["name"], spec) for spec in chain]
        return Codec(
            transforms,
            self._transform,
            CHECKSUM_KEY,
            self.config.encryption,
            limits=decode_limits(self.config),
        )

    def _transform(self, name: str, spec: Mapping[str, Any] | None = None) -> Transform:
        options = _options_of(spec or {})
        cache_key = name + json.dumps(options, sort_keys=True)
        with self._tlock:
            if cache_key not in self._transforms:
                self._transforms[cache_key] = self.registry.make_transform(name, options, self.keys)
            return self._transforms[cache_key]

    def close(self) -> None:
        """Release the store and worker threads."""
        if self._pool:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.store.close()

    def __enter__(self) -> RepoCore:
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

    def add_password(
        self, password: str | bytes, label: str = "", kdf_profile: str | None = None
    ) -> str:
        """Add a key slot opening this repository with ``password``; return its id."""
        if not self.config.encryption:
            raise KvbackupError("this repository is not encrypted: it has no passwords")
        slot_id = secrets.token_hex(8)
        profile = kdf_profile or self.kdf_profile
        body = wrap_master_key(self.keys, _as_bytes(password), slot_id, label, profile)
        if self.kdf_profile is None:
            self.kdf_profile = profile
        key = slot_key(slot_id)
        self.store.put(key, self.codec.encode(ObjectType.KEY_SLOT, key.encode(), body, plain=True))
        return slot_id

    def key_slots(self) -> list[dict[str, Any]]:
        """The key slots: id, label, KDF parameters; a damaged slot has ``damaged`` set
        to what is wrong with it (and no other fields but ``id``)."""
        out: list[dict[str, Any]] = []
        for key in sorted(self.store.list(KEYS_PREFIX)):
            slot_id = slot_id_from_key(key)
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
                    "profile": slot_profile(slot),
                    "memory_kib": slot["memory_kib"],
                    "iterations": slot["iterations"],
                    "lanes": slot["lanes"],
                    "in_use": slot_id == self.slot_id,
                }
            )
        return out

    def remove_key_slot(self, slot_id: str) -> None:
        """Remove a key slot (a damaged one too); neither the last intact one nor the one
        this repository was opened with can be removed."""
        slots = self.key_slots()
        if slot_id not in {s["id"] for s in slots}:
            raise KvbackupError(f"no key slot {slot_id!r}")
        if not any(s["id"] != slot_id and "damaged" not in s for s in slots):
            raise KvbackupError(
                "cannot remove the last intact key slot: the repository would be lost"
            )
        if slot_id == self.slot_id:
            raise KvbackupError(
                f"key slot {slot_id} is the one your password opened: open the repository "
                "with another password to remove it"
            )
        self.store.delete(slot_key(slot_id))

    # ----------------------------------------------------------------- objects

    def put_object(self, key: str, otype: int, data: bytes, compress: bool = True) -> None:
        """Store ``data`` as an object of type ``otype`` under ``key``, in its envelope."""
        codec = self.codec if compress else self._auth_only_codec()
        self.store.put(key, codec.encode(otype, key.encode(), data))

    def get_object(self, key: str, otype: int) -> bytes:
        """The payload of the object under ``key``, checked to be of type ``otype``."""
        try:
            return self.codec.decode(otype, key.encode(), self.store.get(key), key)
        except CorruptionError:
            if not isinstance(self.store, CachingStore):
                raise
            # A damaged cached copy is not a damaged repository: read the store's.
            return self.codec.decode(otype, key.encode(), self.store.get_fresh(key), key)

    @contextlib.contextmanager
    def bypassing_cache(self) -> Iterator[None]:
        """Read from the store itself meanwhile (verify must see what the store holds)."""
        saved = self.store, self.metadata_cache
        if isinstance(self.store, CachingStore):
            self.store, self.metadata_cache = self.store.inner, None
        try:
            yield
        finally:
            self.store, self.metadata_cache = saved

    def _auth_only_codec(self) -> Codec:
        chain = [t for t in self.codec.chain if t.authenticates]
        return Codec(
            chain,
            self._transform,
            CHECKSUM_KEY,
            self.config.encryption,
            limits=decode_limits(self.config),
        )

    def map_parallel(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """``[fn(x) for x in items]`` with the store requests in parallel."""
        return list(self.pool.map(fn, items))

    # ----------------------------------------------------------------- snapshots

    def snapshots(
        self,
        on_error: Callable[[str, KvbackupError], None] | None = None,
        on_stray: Callable[[str], None] | None = None,
    ) -> list[Snapshot]:
        """Every snapshot, complete and incomplete, oldest first.

        A record that cannot be read is told to ``on_error`` (the key and the error); by
        default a damaged one is noted in :attr:`damage`, so it never hides the others (a
        store that fails still raises); an
        unreadable final record falls back to the snapshot's ``.open`` record (the snapshot
        then counts as incomplete). A record deleted after the listing is left out
        silently. ``on_stray`` is told of keys under ``snapshots/`` that are not snapshot
        records. Ids are ordered by time (:func:`snapshot_sort_key`), not as text.
        """
        tell = on_error
        if tell is None:

            def tell(key: str, exc: KvbackupError) -> None:
                if not isinstance(exc, CorruptionError):
                    raise exc  # a store that failed is not a damaged record: never "absent"
                self.damage.note(f"{exc} (left out; `kvbackup repair snapshots` sets it aside)")

        finals: set[str] = set()
        opens: set[str] = set()
        for key in self.store.list(SNAPSHOTS_PREFIX):
            parsed = parse_snapshot_key(key)
            if parsed is None:
                if on_stray is not None:
                    on_stray(key)
                continue
            (finals if parsed[1] else opens).add(parsed[0])

        def load(snapshot_id: str) -> Snapshot | None:
            for final in (True, False):
                if snapshot_id not in (finals if final else opens):
                    continue
                try:
                    return self.load_snapshot(snapshot_id, final)
                except KeyNotFoundError:
                    continue  # deleted (by prune) after the listing
                except KvbackupError as exc:
                    tell(snapshot_key(snapshot_id, final), exc)
            return None

        loaded = self.map_parallel(load, sorted(finals | opens, key=snapshot_sort_key))
        return [snap for snap in loaded if snap is not None]

    def load_snapshot(self, snapshot_id: str, final: bool = True) -> Snapshot:
        """The record of one snapshot (its ``.open`` record unless ``final``)."""
        key = snapshot_key(snapshot_id, final)
        snap = Snapshot.decode(self.get_object(key, ObjectType.SNAPSHOT), key)
        if snap.id != snapshot_id:
            raise CorruptionError(f"{key}: record names snapshot {snap.id}")
        return snap

    def snapshot_ids(self) -> tuple[set[str], set[str]]:
        """(ids with a final record, ids with an ``.open`` record), from one listing."""
        finals: set[str] = set()
        opens: set[str] = set()
        for key in self.store.list(SNAPSHOTS_PREFIX):
            parsed = parse_snapshot_key(key)
            if parsed is not None:
                (finals if parsed[1] else opens).add(parsed[0])
        return finals, opens

    def resolve_snapshot(
        self,
        spec: str | Snapshot,
        complete_only: bool = True,
        select: SnapshotFilter | None = None,
    ) -> Snapshot:
        """The snapshot named ``spec``: ``latest``, an id, or a unique id prefix, among
        those ``select`` matches. Without a filter only the chosen record is read: the
        listing of ``snapshots/`` tells ids and states apart."""
        if isinstance(spec, Snapshot):
            return spec
        try:
            if select is not None and not select.empty:
                return pick(select.apply(self.snapshots()), spec, complete_only)
            finals, opens = self.snapshot_ids()
            pool = sorted(finals if complete_only else finals | opens, key=snapshot_sort_key)
            if spec == "latest":
                if not pool:
                    raise SnapshotNotFoundError("the repository has no snapshot yet")
                chosen = pool[-1]
            elif spec in pool:
                chosen = spec
            else:
                # A whole id names one snapshot: it never stands for "…Z-2" as a prefix would.
                matches = [] if is_snapshot_id(spec) else [i for i in pool if i.startswith(spec)]
                if not matches:
                    raise SnapshotNotFoundError(f"no snapshot {spec!r}")
                if len(matches) > 1:
                    raise SnapshotNotFoundError(
                        f"{spec!r} matches {len(matches)} snapshots: " + ", ".join(matches[:5])
                    )
                chosen = matches[0]
            try:
                return self.load_snapshot(chosen, chosen in finals)
            except CorruptionError:
                # A damaged record: the full listing reports it and works around it.
                return pick(self.snapshots(), spec, complete_only)
        except SnapshotNotFoundError as exc:
            if self.damage:  # the one wanted may be among the unreadable records
                raise CorruptionError(f"{exc}; some snapshot records are unreadable") from None
            raise

    # ----------------------------------------------------------------- index

    def load_index(self, group: str, recover: bool = False) -> tuple[GroupIndex, int]:
        """The index of ``group``. With ``recover``, packs that no index fragment names
        (an interrupted backup) are read from their trailers and indexed; returns the
        index and the number of packs so recovered."""
        index = GroupIndex()
        fragment_keys, damage_keys = self.list_index_keys(group)  # one LIST serves both
        index.avoid(load_damage_records(self, group, damage_keys))  # verify found these
        for key, packs in self.load_fragments(group, fragment_keys):
            index.fragment_keys.append(key)
            for pack_id, blobs in packs:
                index.add_pack(pack_id, blobs)
        if not recover:
            return index, 0
        orphans = [
            pack_id
            for pack_id in map(pack_id_from_key, self.store.list(packs_prefix(group)))
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

    def list_index_keys(self, group: str) -> tuple[list[str], list[str]]:
        """The keys of ``group``'s index fragments and of its damage records, in one
        listing."""
        return split_index_listing(group, self.store.list(index_listing_prefix(group)))

    def load_fragments(
        self, group: str, listed: list[str] | None = None
    ) -> list[tuple[str, list[tuple[bytes, list[BlobLocation]]]]]:
        """Every index fragment of ``group``: (key, packs); ``listed`` is a listing of its
        fragment keys already made. A fragment that vanishes between the listing and the
        read (merged by a prune or a backup) is skipped and the listing read again, so the
        fragment that replaced it is found."""
        loaded: dict[str, list[tuple[bytes, list[BlobLocation]]]] = {}

        def load(key: str) -> list[tuple[bytes, list[BlobLocation]]] | None:
            try:
                return self.read_index_fragment(key)
            except KeyNotFoundError:
                return None
            except CorruptionError as exc:
                # Its packs still describe themselves: found from their trailers when needed.
                self.damage.note(f"{exc} (left out; `kvbackup repair index` rebuilds it)")
                return []

        for _attempt in range(5):
            if listed is None:
                listed = self.list_index_keys(group)[0]
            keys = [k for k in listed if k not in loaded]
            listed = None
            vanished = False
            for key, packs in zip(keys, self.map_parallel(load, keys), strict=True):
                if packs is None:
                    vanished = True
                else:
                    loaded[key] = packs
            if not vanished:
                break
        return sorted(loaded.items())

    def read_index_fragment(self, key: str) -> list[tuple[bytes, list[BlobLocation]]]:
        """The packs an index fragment names, each with its blob table."""
        return list(decode_fragment(self.get_object(key, ObjectType.INDEX), key))

    def read_pack_table(
        self, group: str, pack_id: bytes, data: bytes | None = None
    ) -> list[BlobLocation]:
        """The blob table of a pack, read from its trailer: from ``data`` (the whole pack)
        if given, else with ranged reads of the pack's tail."""
        key = pack_key(group, pack_id)
        tail = self.store.get_range(key, -_TAIL_GUESS, _TAIL_GUESS) if data is None else data
        if len(tail) < TRAILER_LEN.size:
            raise CorruptionError(f"{key}: too short to be a pack")
        length = trailer_length(tail)
        if length + TRAILER_LEN.size > len(tail):
            if data is None:
                tail = self.store.get_range(key, -(length + TRAILER_LEN.size), 0)
            if len(tail) < length + TRAILER_LEN.size:
                raise CorruptionError(f"{key}: trailer length exceeds the pack")
        envelope = tail[-TRAILER_LEN.size - length : -TRAILER_LEN.size]
        return decode_trailer(self.codec, key, envelope, pack_id)

    def write_index_fragment(
        self, group: str, packs: list[tuple[bytes, list[BlobLocation]]]
    ) -> str:
        """Write an index fragment naming ``packs`` (each stored already); its key."""
        key = new_index_key(group)
        self.put_object(key, ObjectType.INDEX, encode_fragment(packs))
        return key

    # ----------------------------------------------------------------- reading chunks

    def fetch_chunks(
        self,
        group: str,
        index: GroupIndex,
        items: Iterable[tuple[T, bytes]],
        *,
        strict: bool = False,
    ) -> Iterator[tuple[T, bytes | KvbackupError]]:
        """Fetch chunks by id, in order, each verified against its id.

        Nearby chunks of one pack are read with one ranged GET, several GETs in flight (see
        :mod:`kvbackup.core.fetch`). A chunk that cannot be had yields a
        :class:`KvbackupError` in place of its bytes, so the caller decides about the rest.
        A chunk the index lacks is looked for in packs no index fragment names (see
        :class:`~kvbackup.core.damage.IndexFallback`), unless ``strict`` (verify's way).
        """
        locate = index.get if strict else self.chunk_locator(group, index)
        return fetch_ordered(
            items, locate, lambda span: list(self._read_span(group, span)), self.pool
        )

    def chunk_locator(
        self, group: str, index: GroupIndex
    ) -> Callable[[bytes], BlobLocation | None]:
        """Where a chunk is: looked up in ``index``, then in packs no index fragment names
        (see :class:`~kvbackup.core.damage.IndexFallback`); ``None`` if nowhere."""
        return IndexFallback(self, group, index)

    def fetch_into(
        self,
        group: str,
        index: GroupIndex,
        items: Iterable[tuple[T, bytes]],
        sink: Callable[[T, bytes | KvbackupError], None],
        *,
        locate: Callable[[bytes], BlobLocation | None] | None = None,
    ) -> Iterator[T]:
        """:meth:`fetch_chunks`, each chunk handed to ``sink`` (with its tag) by the thread
        that fetched and decoded it, so that what the caller does with a chunk runs on the
        fetching threads too. Yields the tags in order, each once its chunk was sunk; an
        exception ``sink`` raises is raised here. Memory stays within the same budget.
        """

        def read_span(span: Span[T]) -> list[tuple[int, T, None]]:
            out: list[tuple[int, T, None]] = []
            for n, tag, data in self._read_span(group, span):
                sink(tag, data)
                out.append((n, tag, None))
            return out

        located = locate or self.chunk_locator(group, index)
        return (tag for tag, _ in fetch_ordered(items, located, read_span, self.pool))

    def _read_span(
        self, group: str, span: Span[T]
    ) -> Iterator[tuple[int, T, bytes | KvbackupError]]:
        """The chunks of ``span``, decoded one at a time (or why each cannot be had)."""
        if not span.pack_id:
            for n, tag, cid, _ in span.items:
                yield (
                    n,
                    tag,
                    CorruptionError(f"chunk {cid.hex()}: not in the index of group {group}"),
                )
            return
        key = pack_key(group, span.pack_id)
        try:
            data = self.store.get_range(key, span.start, span.size)
        except KeyNotFoundError:
            for n, tag, cid, _ in span.items:
                yield n, tag, CorruptionError(f"{key}: pack missing (needed for chunk {cid.hex()})")
            return
        for n, tag, cid, loc in span.items:
            assert loc is not None
            envelope = data[loc.offset - span.start : loc.offset - span.start + loc.length]
            what = f"chunk {cid.hex()} in {key}"
            try:
                decoded = self.decode_chunk(loc, envelope, what)
            except KvbackupError as exc:
                yield n, tag, exc
            else:
                yield n, tag, decoded

    def decode_chunk(self, loc: BlobLocation, envelope: bytes, what: str) -> bytes:
        """The plain bytes of the chunk ``loc`` from its stored ``envelope``, checked
        against its id; :class:`CorruptionError` (its message starting with ``what``) if
        the envelope is short, does not decode, or decodes to other content."""
        if len(envelope) != loc.length:
            raise CorruptionError(f"{what}: the pack is shorter than the index says")
        plain = self.codec.decode(loc.otype, loc.chunk_id, envelope, what)
        if len(plain) != loc.raw_length:  # the read window counted it at its indexed size
            raise CorruptionError(
                f"{what}: decodes to {len(plain)} bytes, the index says {loc.raw_length}"
            )
        if self.hasher(plain) != loc.chunk_id:
            raise CorruptionError(f"{what}: content does not match its id")
        return plain

    def iter_entries(
        self,
        snapshot: Snapshot,
        index: GroupIndex | None = None,
        on_damage: Callable[[bytes, KvbackupError], None] | None = None,
        strict: bool = False,
    ) -> Iterator[Entry]:
        """The entries of a snapshot's file list, streamed.

        A file-list chunk that cannot be read raises, unless ``on_damage`` is given: it is
        then told (the chunk id and why it cannot be read), and the entries after the damage
        are still read. ``on_damage`` may raise to stop there.
        """
        if index is None:
            index, _ = self.load_index(snapshot.group)

        def malformed(error: CorruptionError) -> None:
            assert on_damage is not None
            on_damage(b"", error)  # no chunk id: a malformed entry, named in ``error``

        what = f"snapshot {snapshot.id}: file list"
        chunks = self._filelist_chunks(snapshot, index, on_damage, strict)
        return read_entries(chunks, what, malformed if on_damage else None)

    def parent_list(self, snapshot: Snapshot, index: GroupIndex) -> ParentList:
        """A snapshot's file list as an incremental backup reads its parent's: lines
        decoded only where needed (:class:`ParentList`); damage raises."""
        what = f"snapshot {snapshot.id}: file list"
        return ParentList(read_lines(self._filelist_chunks(snapshot, index), what), what)

    def _filelist_chunks(
        self,
        snapshot: Snapshot,
        index: GroupIndex,
        on_damage: Callable[[bytes, KvbackupError], None] | None = None,
        strict: bool = False,
    ) -> Iterator[bytes | None]:
        """The plain bytes of a snapshot's file-list chunks, in order (from the local
        cache while it has them); ``None`` for one that cannot be read, with ``on_damage``."""
        ids = snapshot.filelist_ids()
        done = 0
        while done < len(ids):  # from the local cache while it has them
            plain = self._cached_metadata_chunk(ids[done])
            if plain is None:
                break
            yield plain
            done += 1
        items = ((cid, cid) for cid in ids[done:])
        for cid, data in self.fetch_chunks(snapshot.group, index, items, strict=strict):
            if isinstance(data, KvbackupError):
                if on_damage is None:
                    raise CorruptionError(f"snapshot {snapshot.id}: file list: {data}")
                on_damage(cid, data)
                yield None
            else:
                if self.metadata_cache is not None:
                    blob = self.codec.encode(ObjectType.METADATA, cid, data)
                    self.metadata_cache.put_chunk(cid, blob)
                yield data

    def _cached_metadata_chunk(self, chunk_id: bytes) -> bytes | None:
        """A file-list chunk from the local cache, checked against its id; else ``None``."""
        if self.metadata_cache is None:
            return None
        blob = self.metadata_cache.get_chunk(chunk_id)
        if blob is None:
            return None
        try:
            plain = self.codec.decode(ObjectType.METADATA, chunk_id, blob, "cached chunk")
            if self.hasher(plain) == chunk_id:
                return plain
        except KvbackupError:
            pass
        self.metadata_cache.discard_chunk(chunk_id)
        return None


def _options_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a transform spec (``{"name": "zstd", "level": 3}``)."""
    return {k: v for k, v in spec.items() if k != "name"}


def _as_bytes(password: str | bytes) -> bytes:
    """A password as bytes; a ``str`` read from a file that was not UTF-8 (with
    ``surrogateescape``) gives back the file's exact bytes."""
    return password.encode("utf-8", "surrogateescape") if isinstance(password, str) else password


def _unlock(store: Store, slots: list[str], password: bytes, preferred: str | None) -> Unlocked:
    def no_transforms(name: str) -> Transform:
        raise PluginError(f"key slot: unexpected transform {name!r}")

    checker = Codec([], no_transforms, CHECKSUM_KEY)
    return unlock(checker, [(key, store.get(key)) for key in slots], password, preferred)


def _cache_for(location: Any, choice: CacheChoice) -> CacheChoice:
    """By default a path or URL gets a cache (unless ``$KVBACKUP_NO_CACHE``); a store or
    mapping handed over in-process does not."""
    if choice is None:
        return isinstance(location, (str, os.PathLike)) and not cache_disabled_by_environment()
    return choice


def _metadata_cache(choice: CacheChoice, repo_id: str) -> MetadataCache | None:
    if not choice:
        return None
    root = default_cache_root() if choice is True else os.fspath(choice)
    return MetadataCache(root, repo_id)


def _describe(location: Any, store: Store) -> str:
    if isinstance(location, (str, os.PathLike)):
        return os.fspath(location)
    return store.description
