"""How the explaining processes use glibc's allocator.

Each explanation allocates and frees arrays of a few to tens of MB (SHAP's rows: 17 MB
at the default budget and 20 features; encoded calls; scores). glibc's defaults serve
such blocks with fresh ``mmap``s and hand freed memory back to the kernel, so every
request pays the page faults of touching new memory (~6 ms for 17 MB) and, at some
unpredictable ``free``, a trim of the heap (~4 ms, measured on the critical path after
the last predictor call). Serving blocks up to 32 MB from the heap and keeping up to
256 MB of it free between requests removes both (CHANGELOG.md has the measurement).
Memory stays bounded: what is kept is what the row budget (``admission``) lets requests use at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed on 64-bit
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Tune glibc's allocator as described above; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
