"""The local cache directory, private to its user.

What kvbackup remembers between runs (verification records, which S3 servers honour
conditional writes, which key slot last opened a repository) lives under
``$KVBACKUP_CACHE_DIR`` or the user cache directory. Every folder kvbackup makes there is
0700 and every file 0600: the cache says which repositories a user has and when they were
checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

CACHE_DIR_ENV = "KVBACKUP_CACHE_DIR"
DIR_MODE = 0o700


def cache_root() -> str:
    """``$KVBACKUP_CACHE_DIR``, else the user cache directory's ``kvbackup`` folder."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return env
    import platformdirs

    return platformdirs.user_cache_dir("kvbackup", appauthor=False)


def make_private_dir(path: str) -> None:
    """Create ``path`` and any missing parents below the cache root, each 0700 (a folder
    that exists already is left as it is)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, DIR_MODE)


def write_private_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` atomically, as a 0600 file in a 0700 folder.
    ``OSError`` if it cannot be written (callers of a cache usually ignore it)."""
    directory = os.path.dirname(path)
    make_private_dir(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any:
    """The JSON in ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None
