"""A local memory of which S3 servers honour conditional writes.

Probing costs two PUTs and a DELETE. The answer belongs to the server (endpoint and bucket),
not to one command, so it is kept in the user cache directory for a week and probed again
after that. A missing or unreadable cache only means probing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time

from kvbackup.cachedir import make_private_dir

MAX_AGE = 7 * 24 * 3600


def _path(endpoint: str, bucket: str) -> str:
    import platformdirs

    root = os.environ.get("KVBACKUP_CACHE_DIR") or platformdirs.user_cache_dir(
        "kvbackup", appauthor=False
    )
    name = hashlib.sha256(f"{endpoint}\0{bucket}".encode()).hexdigest()[:32]
    return os.path.join(root, "s3-conditional-writes", name + ".json")


def recall(endpoint: str, bucket: str) -> bool | None:
    """The remembered answer, if there is a fresh one."""
    try:
        with open(_path(endpoint, bucket), encoding="utf-8") as fh:
            data = json.load(fh)
        if time.time() - float(data["time"]) < MAX_AGE and isinstance(data["atomic"], bool):
            return bool(data["atomic"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def remember(endpoint: str, bucket: str, atomic: bool) -> None:
    """Keep the answer; failing to is harmless."""
    path = _path(endpoint, bucket)
    with contextlib.suppress(OSError):
        make_private_dir(os.path.dirname(path))
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {"endpoint": endpoint, "bucket": bucket, "atomic": atomic, "time": time.time()}, fh
            )
        os.replace(tmp, path)
