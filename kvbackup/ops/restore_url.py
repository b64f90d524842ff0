"""Restore to a URL (``s3://bucket/prefix``, ``sftp://...``): the snapshot is restored, with
every check of a local restore, into a private temporary folder, and each complete file is
then handed to the ``upload`` method of the source plugin that serves the URL (the fsspec
source has one). It needs local space for the restored files (each is removed once
uploaded)."""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Any

from ..core.repo import RepoCore
from ..display import display_name
from ..errors import SourceError
from ..format.snapshots import Snapshot
from ..trees import remove_tree
from .restore import RestoreResult, run_restore


def restore_to_url(
    repo: RepoCore,
    snapshot: Snapshot,
    url: str,
    options: dict[str, str] | None = None,
    **kwargs: Any,
) -> RestoreResult:
    """Restore ``snapshot`` below ``url``, written through the source plugin for ``url``
    (given ``options``); ``kwargs`` as for :func:`run_restore` (the overwrite policy,
    ``delete`` and ``dry_run`` do not apply to a URL)."""
    target, name = repo.registry.make_source(url, None, options)
    upload = getattr(target, "upload", None)
    if not callable(upload):
        target.close()
        raise SourceError(f"{url}: the {name!r} source cannot be restored to")
    workdir = tempfile.mkdtemp(prefix="kvbackup-restore-")  # private: mode 0700
    try:
        result = run_restore(repo, snapshot, workdir, **kwargs)
        base = os.fsencode(workdir)
        stack = [b""]
        while stack:  # iterative: no recursion however deep the tree
            rel = stack.pop()
            with os.scandir(os.path.join(base, rel)) as it:
                children = sorted(it, key=lambda d: d.name)
            for child in children:
                path = rel + b"/" + child.name if rel else child.name
                st = child.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(path)
                elif stat.S_ISREG(st.st_mode):
                    try:
                        upload(os.fsdecode(child.path), os.fsdecode(path))
                    except OSError as exc:
                        result.errors.append((display_name(path), f"upload failed: {exc}"))
                    os.unlink(child.path)
    finally:
        remove_tree(workdir)
        target.close()
    return result
