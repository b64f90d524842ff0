"""The ``fsspec`` store and source: any fsspec filesystem URL (``gcs://``, ``az://``,
``sftp://``...).

It serves every scheme no other store claims (``"*"``, lowest priority). Prefix a URL with
``fsspec::`` to choose it explicitly: ``fsspec::s3://bucket/prefix`` goes through s3fs,
``fsspec::memory://x`` through fsspec's memory filesystem. Store options become fsspec
storage options. See ``docs/stores.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvbackup import hookimpl

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterSource, RegisterStore
    from kvbackup.sources import Source
    from kvbackup.store import Store

#: URL prefix that selects this store explicitly.
PREFIX = "fsspec::"
#: Schemes registered with the prefix, so ``fsspec::s3://`` beats the ``s3`` store; any other
#: ``fsspec::`` URL still reaches this store through the ``"*"`` fallback.
EXPLICIT_SCHEMES = tuple(
    PREFIX + p
    for p in (
        "file", "local", "memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl",
        "sftp", "ssh", "ftp", "http", "https", "webdav", "hdfs", "oci", "oss", "github",
        "dropbox", "box", "smb", "zip", "tar", "simplecache", "filecache", "blockcache",
    )
)  # fmt: skip


@hookimpl
def kvbackup_register_stores(register: RegisterStore) -> None:
    register(
        "fsspec",
        _factory,
        schemes=("*", *EXPLICIT_SCHEMES),
        priority=-10,
        accepts=knows_protocol,
        description="any fsspec filesystem URL (fallback; or explicitly fsspec::URL)",
    )


def knows_protocol(url: str) -> bool:
    """Whether fsspec knows the protocol of ``url`` (the fallback takes no other): an
    unknown scheme is then reported as a store plugin that is not installed."""
    if url.startswith(PREFIX):
        return True
    from fsspec.registry import known_implementations, registry

    protocol = url.split("://", 1)[0]
    return protocol in known_implementations or protocol in registry


def _factory(url: str, options: dict[str, str]) -> Store:
    from .store import FsspecStore  # fsspec and its backends load only when used

    return FsspecStore.from_url(url, options)


def _accepts_source(spec: Any) -> bool:
    return isinstance(spec, str) and (spec.startswith(PREFIX) or "://" in spec)


def _source_factory(spec: Any, options: dict[str, str]) -> Source:
    from .source import FsspecSource

    return FsspecSource(str(spec), options)


@hookimpl
def kvbackup_register_sources(register: RegisterSource) -> None:
    register(
        "fsspec",
        _source_factory,
        accepts=_accepts_source,
        priority=-5,  # a fallback for URLs: a source plugin for a scheme of its own wins
        description="objects below any fsspec URL (s3://bucket/prefix, gcs://..., fsspec::URL); "
        "source options are fsspec storage options",
    )
