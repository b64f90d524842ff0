"""Errors with a one-line message and a stable exit code.

The command line prints ``str(error)`` and exits with ``error.exit_code``; nothing else
reaches the user, so every message must stand on its own.
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes of the ``kvbackup`` command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    PARTIAL = 3  # the backup completed, but some files could not be read
    NO_REPOSITORY = 10
    BAD_PASSWORD = 11
    CORRUPT = 12
    STORE = 13
    LOCKED = 14
    NOT_FOUND = 15
    DIFFERENCES = 16  # verify --full found differences
    PLUGIN = 17
    CONFIG = 18  # a config file that cannot be used, or a profile it does not have
    TARGET = 19  # the restore target cannot be written: read-only, permission, disk full
    INTERRUPTED = 130  # SIGINT (Ctrl-C)


class KvbackupError(Exception):
    """Base of every error kvbackup reports to its user."""

    exit_code = ExitCode.ERROR


class PluginError(KvbackupError):
    """A plugin is missing, clashes with another, or misbehaves.

    A plugin raises it for a problem of its own (a missing dependency, a broken install);
    anything a plugin's factory raises that is not a :class:`KvbackupError` is reported as
    one, naming the plugin.
    """

    exit_code = ExitCode.PLUGIN


class UsageError(KvbackupError):
    """A command or call was given something it cannot use: checked before anything is
    written."""

    exit_code = ExitCode.USAGE


class OptionError(UsageError):
    """A plugin option is unknown or has a bad value; the message lists the valid ones.

    Plugins that parse their own options raise it; schema-declared options
    (:func:`kvbackup.options.parse_options`) raise it for them.
    """


class StoreError(KvbackupError):
    """A store operation failed for good (after retries, or not retryable)."""

    exit_code = ExitCode.STORE


class TransientStoreError(StoreError):
    """A store operation failed in a way that may succeed if tried again.

    Store plugins raise this for timeouts, throttling, 5xx answers and dropped
    connections. It is never to be read as "the key is absent".
    """


class KeyNotFoundError(KvbackupError, KeyError):
    """The store answered, authoritatively, that the key does not exist."""

    exit_code = ExitCode.NOT_FOUND

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "key not found"


class RepositoryNotFoundError(KvbackupError):
    """There is no kvbackup repository at the given location."""

    exit_code = ExitCode.NO_REPOSITORY


class RepositoryExistsError(KvbackupError):
    """``init`` was asked to create a repository where one already exists."""


class BadPasswordError(KvbackupError):
    """No key slot opens with the given password."""

    exit_code = ExitCode.BAD_PASSWORD


class NotEncryptedError(KvbackupError):
    """A password was given for a repository that is not encrypted (a downgrade?)."""


class CorruptionError(KvbackupError):
    """A stored object is damaged, tampered with, or not what its name says."""

    exit_code = ExitCode.CORRUPT


class SnapshotNotFoundError(KvbackupError):
    """No snapshot, or no unique snapshot, matches the given id."""

    exit_code = ExitCode.NOT_FOUND


class PathNotFoundError(KvbackupError):
    """A path asked for is not in the snapshot."""

    exit_code = ExitCode.NOT_FOUND


class UnsafePathError(KvbackupError):
    """An entry name would escape the restore target or is otherwise hostile."""

    exit_code = ExitCode.CORRUPT


class LockedError(KvbackupError):
    """Another process holds the repository's exclusive lock."""

    exit_code = ExitCode.LOCKED


class ConfigError(KvbackupError):
    """The config file is unreadable, not TOML, holds unknown keys, or lacks the profile."""

    exit_code = ExitCode.CONFIG


class SourceError(KvbackupError):
    """The source to back up cannot be used at all."""


class TargetNotWritableError(KvbackupError):
    """The restore target cannot be written (read-only, permission denied, disk full)."""

    exit_code = ExitCode.TARGET


class ClusterError(UsageError):
    """A Dask cluster cannot be used as asked: a malformed address, or one that would carry
    the repository key over a plain network not declared trusted."""


class SourceNotFoundError(SourceError):
    """A source path to back up does not exist."""

    exit_code = ExitCode.NOT_FOUND
