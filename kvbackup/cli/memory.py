"""Allocator tuning for the command-line process.

Backup and restore move multi-MiB buffers through several threads. glibc gives each thread
its own arena and raises its mmap threshold as large blocks are freed, so freed buffers stay
in the arenas and the resident size drifts to several times what is in use. Two arenas and a
fixed 8 MiB mmap threshold keep the peak close to what the pipeline really holds: chunk
buffers (at most 4 MiB) are reused from the arenas, without fresh page faults, while packs
and read spans (16 MiB) come from, and go back to, the kernel. The library does not do
this: the allocator belongs to the application.
"""

from __future__ import annotations

import ctypes
import platform

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Apply the settings above where the C library is glibc; do nothing elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_MMAP_THRESHOLD, 8 * 1024 * 1024)
    except (OSError, AttributeError):
        pass
