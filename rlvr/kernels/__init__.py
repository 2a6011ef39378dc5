"""rlvr's own CPU kernels, C++ built on first use with torch's extension builder (a C++ compiler with
OpenMP and ninja are needed; torch's build cache keeps the result, so later runs load it in a second).

`decode_attention()`, `decode_layers()` and `attention()` return the built ops, or None where they cannot be
built (no compiler, another OS): callers then run the same arithmetic in torch ops (the training passes in
transformers' own attention), after one warning. Set RLVR_NATIVE=0 to never build. The build targets this machine's CPU (-march=native) under a name that includes the CPU's model and
flags, so a build cache shared between different machines never loads code built for another CPU.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path

_HERE = Path(__file__).parent
_SOURCES = [_HERE / "decode_attention.cpp", _HERE / "attention.cpp", _HERE / "layers.cpp"]  # the first defines the Python module
_HEADERS = [_HERE / "common.h", _HERE / "linear.h"]
_lock = threading.Lock()
_state: dict = {}  # "module": the loaded extension or None once tried


def _cpu_tag() -> str:
    """A short hash of this CPU's model name and feature flags (Linux; the platform string elsewhere)."""
    import platform

    ident = platform.machine() + platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                ident += line
            if line.startswith("flags"):
                break
    except OSError:
        pass
    return hashlib.sha1(ident.encode()).hexdigest()[:10]


def _build():
    import torch
    from torch.utils import cpp_extension

    code = hashlib.sha1(b"".join(f.read_bytes() for f in _SOURCES + _HEADERS)).hexdigest()[:10]
    name = f"rlvr_kernels_{code}_{_cpu_tag()}_t{torch.__version__.split('+')[0].replace('.', '_')}"
    try:
        built = any(Path(cpp_extension._get_build_directory(name, verbose=False)).glob(f"{name}*.so"))
    except Exception:  # noqa: BLE001 - a private helper of torch's: only decides whether to say "building"
        built = False
    if not built:
        print("rlvr: building the CPU kernels (once per machine, about a minute)", file=sys.stderr, flush=True)
    module = cpp_extension.load(name, [str(f) for f in _SOURCES], extra_include_paths=[str(_HERE)],
                                extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"], verbose=False)
    return module


def _module():
    with _lock:
        if "module" not in _state:
            _state["module"] = None
            if os.environ.get("RLVR_NATIVE", "1") != "0":
                try:
                    _state["module"] = _build()
                except Exception as e:  # noqa: BLE001 - any build failure means: use torch ops
                    warnings.warn(f"rlvr: could not build its CPU kernels ({type(e).__name__}: "
                                  f"{str(e).strip()[-300:]}); decoding with torch ops instead (slower). Needs a "
                                  "C++ compiler with OpenMP and ninja; set RLVR_NATIVE=0 to skip this.", stacklevel=3)
        return _state["module"]


def decode_attention():
    """The C++ decode-attention op (one layer's cache write and attention; see decode_attention.cpp), or None
    where it cannot be built."""
    module = _module()
    return None if module is None else module.decode_attention


def attention():
    """The C++ attention of training and scoring passes (attention.cpp's `attention_forward` and
    `attention_backward`, as a pair; fp32 or bf16 tensors), or None where it cannot be built."""
    module = _module()
    return None if module is None else (module.attention_forward, module.attention_backward)


def decode_layers():
    """The C++ fp32 decode step over every layer (decode_attention.cpp's `decode_layers`), or None where it
    cannot be built."""
    module = _module()
    return None if module is None else module.decode_layers


def pack_panels():
    """The op that lays an fp32 (N, K) linear weight out as `decode_layers` multiplies it fastest (linear.h's
    `pack_panels`: panels of 32 output columns; the weight itself on CPUs without AVX-512), or None where the
    kernels cannot be built."""
    module = _module()
    return None if module is None else module.pack_panels


def layers():
    """The C++ RMSNorm and SiLU-gated activation of training and scoring passes (layers.cpp), as an object with
    `rms_norm_forward`, `rms_norm_backward`, `swiglu_forward` and `swiglu_backward`, or None where they cannot
    be built."""
    return _module()
