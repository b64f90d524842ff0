"""Helpers shared by the engine and end-to-end tests: trees, comparisons, the CLI.

The tree helpers live in :mod:`kvbackup.testkit.trees` (the ``kvbackup_tree`` fixture) and
are re-exported here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from kvbackup.testkit.trees import assert_same_tree, make_tree, snapshot_of

__all__ = ["PASSWORD", "assert_same_tree", "cli_env", "kvbackup", "make_tree", "snapshot_of"]

PASSWORD = "correct horse battery staple"


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for running ``kvbackup``: a test password, no stray repo, the tests'
    cache folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(KVBACKUP_PASSWORD=PASSWORD)
    if os.environ.get("KVBACKUP_CACHE_DIR"):
        env["KVBACKUP_CACHE_DIR"] = os.environ["KVBACKUP_CACHE_DIR"]
    env.update(extra)
    return env


def cheap_kdf(args: tuple[Any, ...]) -> list[str]:
    """``args`` of a ``kvbackup`` command line, with ``--kdf insecure-fast`` added to an
    ``init`` that chooses no KDF: key slots made by tests are cheap to open."""
    words = [str(a) for a in args]
    if words[:1] == ["init"] and not any(w.startswith("--kdf") for w in words):
        words.insert(1, "--kdf=insecure-fast")
    return words


def kvbackup(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    check: bool = True,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``kvbackup`` command; with ``check``, fail on a non-zero exit."""
    exe = shutil.which("kvbackup")
    cmd = [exe] if exe else [sys.executable, "-m", "kvbackup"]
    done = subprocess.run(
        [*cmd, *cheap_kdf(args)],
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kvbackup {args} exited {done.returncode}:\n{done.stderr}")
    return done


def remove_deep_tree(path: Path) -> None:
    """Remove a tree too deep for ``shutil.rmtree`` (it recurses), so that pytest's own
    clean-up of old temporary folders never meets it."""
    subprocess.run(["rm", "-rf", "--", str(path)], check=True, timeout=120)
