"""kvbackup: deduplicated, incremental, compressed and encrypted backups into any key/value store.

What this package exports (``__all__``) is the stable API: the :class:`Repository` facade,
its typed results, the errors, and what plugin authors build on (the store, source and
transform contracts and ``hookimpl``). Everything else (``kvbackup.format``,
``kvbackup.core``, ``kvbackup.ops``, ``kvbackup.cli``) is internal and may change between
versions; ``docs/architecture.md`` describes the layers.

Importing this package is cheap: plugins load their heavy dependencies (boto3, s3fs,
zstandard, cryptography) only when used.
"""

from __future__ import annotations

from .core.locks import RemovedLock
from .core.progress import Progress, ProgressEvent
from .core.selection import SnapshotFilter
from .errors import (
    BadPasswordError,
    CorruptionError,
    ExitCode,
    KeyNotFoundError,
    KvbackupError,
    LockedError,
    NotEncryptedError,
    OptionError,
    PathNotFoundError,
    PluginError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    SourceError,
    SourceNotFoundError,
    StoreError,
    TransientStoreError,
    UnsafePathError,
    UsageError,
)
from .excludes import ExcludeRules
from .format.chunker import ChunkerParams
from .format.config import RepoConfig
from .format.keyslots import KeyMaterial
from .format.snapshots import Snapshot
from .hookspecs import hookimpl
from .ops.backup import BackupResult, BackupStats
from .ops.diff import Change, DiffResult
from .ops.forget import ForgetItem, ForgetResult
from .ops.fullverify import Difference, FullVerifyResult
from .ops.prune import PruneResult
from .ops.repair import IndexRepair, RepairResult, SetAside
from .ops.restore import RestoreResult
from .ops.retention import RetentionPolicy
from .ops.stats import Stats
from .ops.verify import Affected, Problem, VerifyResult
from .registry import PluginRegistry
from .repository import Repository
from .sources import Entry, Source
from .store import MappingStore, Store
from .transforms import Transform, TransformError

__version__ = "0.2.0.dev0"

__all__ = [
    "Affected",
    "BackupResult",
    "BackupStats",
    "BadPasswordError",
    "Change",
    "ChunkerParams",
    "CorruptionError",
    "DiffResult",
    "Difference",
    "Entry",
    "ExcludeRules",
    "ExitCode",
    "ForgetItem",
    "ForgetResult",
    "FullVerifyResult",
    "IndexRepair",
    "KeyMaterial",
    "KeyNotFoundError",
    "KvbackupError",
    "LockedError",
    "MappingStore",
    "NotEncryptedError",
    "OptionError",
    "PathNotFoundError",
    "PluginError",
    "PluginRegistry",
    "Problem",
    "Progress",
    "ProgressEvent",
    "PruneResult",
    "RemovedLock",
    "RepairResult",
    "RepoConfig",
    "Repository",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "RestoreResult",
    "RetentionPolicy",
    "SetAside",
    "Snapshot",
    "SnapshotFilter",
    "SnapshotNotFoundError",
    "Source",
    "SourceError",
    "SourceNotFoundError",
    "Stats",
    "Store",
    "StoreError",
    "Transform",
    "TransformError",
    "TransientStoreError",
    "UnsafePathError",
    "UsageError",
    "VerifyResult",
    "__version__",
    "hookimpl",
]
