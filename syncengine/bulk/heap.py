"""Freed memory back to the system after each bulk-write job's big, short-lived work.

Building a job's file and journaling its result each allocate and free some
tens of megabytes of small objects. CPython hands freed arenas back to the C
allocator, but glibc's keeps them mapped until told otherwise, so the
process's resident size would stay at its highest mark through the rest of
the migration, the records pass included. `malloc_trim(0)` releases those
free pages (glibc only; elsewhere this does nothing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def give_back() -> None:
    """Return the C heap's free pages to the system, where the C library can."""
    trim = _trim()
    if trim is not None:
        trim(0)
