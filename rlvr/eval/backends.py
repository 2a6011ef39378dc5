"""Optional generation backends. vLLM is a GPU extra, imported only when asked for."""

from __future__ import annotations

from rlvr.errors import UserError


def require_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise UserError("the vllm backend needs the gpu extra: pip install 'rlvr[gpu]' (GPU machines only)") from None
    return vllm
