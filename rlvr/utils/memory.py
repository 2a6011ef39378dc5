"""The C allocator's settings for CPU training: keep freed activation memory for reuse instead of giving it back
to the operating system after every pass.

Why: a training pass on CPU allocates and frees activations of tens of MB each (a 64 x 129-token MLP activation
of a model with intermediate size 512 is 17 MB). glibc serves such sizes by mapping fresh pages and unmaps them on
free, or trims the heap top back, so the next pass touches new pages again: on the standard GRPO step of
`benchmarks/rl_step.py` that was about 41,000 page faults per update pass (2 with these settings) and about a
tenth of its time. PyTorch keeps no CPU memory cache of its own (its CUDA allocator does this on GPUs).

`retain_freed_memory()` raises glibc's mmap threshold to its maximum (32 MB: smaller blocks come from the
heap, and freed ones stay there for reuse) and its trim threshold, so freed memory stays with the process: it
holds on to its peak between passes (the benchmark's peak RSS did not grow: 1,064 against 1,115 MB in fp32,
840 against 833 MB in mixed precision). Linux with glibc only; elsewhere, or with RLVR_RETAIN_MEMORY=0, it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20

_done: list[bool] = []


def retain_freed_memory() -> bool:
    """Apply the settings above once per process: True if they are in effect."""
    if _done:
        return _done[0]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("RLVR_RETAIN_MEMORY", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = all(mallopt(p, v) == 1 for p, v in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                       (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            ok = False
    _done.append(ok)
    return ok
