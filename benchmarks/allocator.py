"""Optional malloc tuning for ``--keep-freed-memory`` (glibc only).

NumPy code allocates a fresh array for nearly every operation. glibc's malloc hands
large freed blocks back to the operating system (``munmap``, heap trimming), so the
next step maps them in again, one page fault per 4 KiB page; on a virtual machine a
fault costs about as much as writing the page several times over. PyTorch's CPU
allocator goes through the same malloc. ``keep_freed_memory`` asks glibc to keep
freed memory for reuse instead (the process' peak memory stays mapped), which is what
PyTorch's CPU performance guide gets by preloading jemalloc or tcmalloc. It applies to
the whole process, so to both libraries alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free memory at the top of the heap
MMAP_THRESHOLD = 32 << 20  # serve blocks below 32 MiB (glibc's maximum) from the heap


def keep_freed_memory() -> str:
    """Set M_TRIM_THRESHOLD and M_MMAP_THRESHOLD with mallopt; returns what was done.

    Equivalent to starting Python with MALLOC_TRIM_THRESHOLD_=1073741824 and
    MALLOC_MMAP_THRESHOLD_=33554432 in the environment.
    """
    if not sys.platform.startswith("linux"):
        return "unchanged (mallopt needs Linux with glibc)"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "unchanged (no glibc mallopt)"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1 or mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return "unchanged (mallopt refused)"
    return "glibc mallopt M_TRIM_THRESHOLD=1 GiB, M_MMAP_THRESHOLD=32 MiB (--keep-freed-memory)"
