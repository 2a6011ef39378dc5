"""Peak memory of the update's per-token terms over full-vocabulary logits: the plain autograd pair
(`token_logp_from_logits` + `entropy_from_logits`) against the fused `token_logp_and_entropy`.

    python benchmarks/logits_memory.py                  # 2,048 positions x 151,936 (Qwen2.5's vocabulary)
    python benchmarks/logits_memory.py --dtype bf16

Each variant runs in its own process: logits (a leaf that requires grad, as a model's output would), then
forward, a loss using both terms, backward. Reported: the peak memory above the moment the logits exist, in
MB: the process's peak RSS on CPU, torch's peak allocated GPU memory with `--device cuda`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def child(variant: str, tokens: int, vocab: int, dtype: str, device: str) -> None:
    import torch

    from rlvr.algo import entropy_from_logits, token_logp_and_entropy, token_logp_from_logits

    torch.manual_seed(0)
    logits = torch.randn(1, tokens, vocab, dtype=getattr(torch, dtype), device=device).requires_grad_(True)
    tok = torch.randint(0, vocab, (1, tokens), device=device)
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated() / 1024
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "fused":
        lp, ent = token_logp_and_entropy(logits, tok, 0.6)
    else:
        lp, ent = token_logp_from_logits(logits, tok, 0.6), entropy_from_logits(logits, 0.6)
    (lp.sum() - 0.001 * ent.sum()).backward()
    peak = torch.cuda.max_memory_allocated() / 1024 if gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"variant": variant, "peak_above_logits_mb": (peak - base) / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--device", default="cpu", help="cpu, or cuda (peak allocated GPU memory)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child, a.tokens, a.vocab, a.dtype, a.device)
    one = a.tokens * a.vocab * 4 / 2 ** 20
    print(f"{a.tokens} positions x {a.vocab} vocabulary, {a.dtype} logits on {a.device}; one fp32 copy = {one:.0f} MB")
    for variant in ("plain", "fused"):
        out = subprocess.run([sys.executable, __file__, "--child", variant, "--tokens", str(a.tokens), "--vocab",
                              str(a.vocab), "--dtype", a.dtype, "--device", a.device], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{variant:6s} peak above the logits: {r['peak_above_logits_mb']:.0f} MB "
              f"({r['peak_above_logits_mb'] / one:.1f} fp32 copies)")


if __name__ == "__main__":
    main()
