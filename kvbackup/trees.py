"""Removing a local folder tree of any depth (``shutil.rmtree`` recurses)."""

from __future__ import annotations

import contextlib
import os
from typing import Any


def remove_tree(path: str | bytes) -> None:
    """Remove ``path`` and everything below it, without recursion, so a tree thousands of
    levels deep goes too; what cannot be removed is left (like ``ignore_errors=True``).
    Symbolic links are removed, never followed."""
    stack: list[tuple[Any, bool]] = [(path, False)]
    while stack:
        folder, emptied = stack.pop()
        if emptied:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
            continue
        stack.append((folder, True))
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError:
            continue
        for child in children:
            try:
                is_dir = child.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((child.path, False))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(child.path)
