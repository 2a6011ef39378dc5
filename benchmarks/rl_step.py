"""Time rlvr's real GRPO training step on the standard work, against the machine's matmul ceiling
and, with `--peer trl`, against TRL's GRPOTrainer on identical work in the same run.

    python benchmarks/rl_step.py                       # fp32, standard work (1 M params, 128 tokens)
    python benchmarks/rl_step.py --precision bf16      # bf16 rollouts/reference, fp32 master weights
    python benchmarks/rl_step.py --precision mixed     # fp32 rollouts, bf16 reference and update autocast
    python benchmarks/rl_step.py --precision mixed --kv-cache-dtype bfloat16   # ... and a bf16 KV cache
    python benchmarks/rl_step.py --peer trl --peer-python /tmp/trlvenv/bin/python
    python benchmarks/rl_step.py --scaling             # 1/6/30 M parameters x 128/512/2048 tokens

Standard work (issue 10, `../shared/bench/README.md`): a random Qwen2 (hidden 128, 4 layers, 4 heads,
MLP 512, tied embeddings, character vocabulary of 100), the prompt `Compute 12+35*2. Put the answer
in \\boxed{}.` 8 times per step, 8 samples each (64 rollouts), exactly 128 completion tokens
(`rollout.ignore_eos`), temperature 1, KL loss (k3) against a reference with coefficient 0.001,
lr 1e-5, no weight decay, one optimiser step per batch, reward 1 if the completion contains "7".

The step is `rlvr.trainer.train` itself (rollout, reward, reference, update, logging), timed by the
trainer's own `timing/*` metrics; the median is over steps 3..N. The ceiling is the best of a few
large square matmuls in the same process and thread count. Run nothing else while timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Compute 12+35*2. Put the answer in \\boxed{}."
ROOT = Path(__file__).resolve().parents[1]
PEER_SCRIPT = ROOT.parent / "shared" / "bench" / "peer_trl_grpo.py"
SIZES = {  # name: (hidden, layers, heads, intermediate)
    "1m": (128, 4, 4, 512),
    "6m": (256, 7, 4, 1024),
    "30m": (512, 9, 8, 2048),
}
# The architecture of Qwen2.5-Math-1.5B (its public config.json), random weights: GPU runs only.
# Sampled ids past the character vocabulary decode to nothing, which the toy reward does not mind.
QWEN25_MATH_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                       num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=4096,
                       rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)


def arch(size: str, vocab: int, resp: int) -> dict:
    """Qwen2Config keyword arguments of a benchmark size (the model built and the FLOPs counted)."""
    if size == "qwen2.5-math-1.5b":
        return dict(QWEN25_MATH_15B)
    hidden, layers, heads, inter = SIZES[size]
    return dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max(512, resp + 64),
                tie_word_embeddings=True)


def matmul_ceiling(dtype, threads: int, n: int = 2048, reps: int = 8, device: str = "cpu") -> float:
    """Best GFLOP/s of an n x n matmul in `dtype` on `threads` threads (or on the GPU)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def step_flops(hidden: int, layers: int, inter: int, vocab: int, prompt: int, resp: int, rollouts: int,
               kv_dim: int | None = None) -> dict:
    """Matmul FLOPs of one step: train forward+backward (3x forward) and the reference forward over the
    full sequences, plus generation (prefill + one token at a time with a KV cache)."""
    kv_dim = hidden if kv_dim is None else kv_dim  # k and v projections are narrower under GQA
    dense = layers * (2 * hidden * hidden + 2 * hidden * kv_dim + 3 * hidden * inter) + hidden * vocab  # MACs/token
    L = prompt + resp

    def fwd_seq(n_tok: int, ctx_sum: int) -> float:  # matmuls + attention (QK^T and PV) over a sequence
        return 2 * dense * n_tok + 2 * 2 * layers * hidden * ctx_sum

    full = fwd_seq(L, L * (L + 1) // 2) * rollouts
    gen = fwd_seq(L, L * (L + 1) // 2) * rollouts  # prefill + decode reads every earlier position once
    return {"train": 3 * full, "ref": full, "gen": gen, "total": 5 * full}


def make_work(tmp: Path, size: str, resp: int, seed: int = 0) -> tuple[Path, Path, int]:
    """A random Qwen2 of `size` with the character tokenizer (no chat template), and the one-row dataset."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.utils.io import atomic_write_jsonl
    from rlvr.utils.tiny_models import make_char_tokenizer

    tok = make_char_tokenizer(chat_template=None)
    torch.manual_seed(seed)
    cfg = Qwen2Config(**arch(size, len(tok), resp), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    model = Qwen2ForCausalLM(cfg)
    model_dir = tmp / f"model-{size}"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp / "prompt.jsonl"
    atomic_write_jsonl(data, [{"problem": PROMPT, "answer": "7", "id": "bench/0", "index": 0}])
    return model_dir, data, sum(p.numel() for p in model.parameters())


def run_rlvr(args, size: str, resp: int, tmp: Path) -> dict:
    """rlvr's trainer on the standard work; returns per-step timings and loss statistics."""
    import torch

    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train
    from rlvr.utils.io import read_jsonl

    model_dir, data, n_params = make_work(tmp, size, resp)
    cfg = TrainConfig()
    cfg.model.path, cfg.model.dtype = str(model_dir), "float32"
    cfg.model.rollout_dtype = "bfloat16" if args.precision == "bf16" else "float32"
    cfg.model.reference_dtype = "bfloat16" if args.precision == "mixed" else "auto"
    cfg.model.mixed_precision = "bf16" if args.mixed_precision or args.precision == "mixed" else "none"
    cfg.model.gradient_checkpointing = args.grad_ckpt
    cfg.strategy = args.strategy
    cfg.data.train, cfg.data.template, cfg.data.shuffle = str(data), "plain", False
    r = cfg.rollout
    r.samples_per_prompt, r.temperature, r.top_p, r.max_response_tokens = args.samples, 1.0, 1.0, resp
    r.ignore_eos, r.generation_batch_seqs = True, args.prompts * args.samples
    r.cuda_graphs = not args.no_cuda_graphs
    r.compile = args.compile_decode
    r.kv_cache_dtype = args.kv_cache_dtype
    a = cfg.algo
    a.kl_coef, a.kl_kind, a.entropy_coef, a.loss_agg_mode = 0.001, "k3", 0.0, "token-mean"
    o = cfg.optim
    o.lr, o.weight_decay, o.prompts_per_step, o.micro_batch_seqs = 1e-5, 0.0, args.prompts, args.micro_batch
    o.micro_batch_tokens = args.micro_batch_tokens
    o.share_prompt_prefix = not args.no_share_prefix
    cfg.steps, cfg.seed, cfg.threads = args.steps, 0, args.threads
    cfg.run_dir = str(tmp / f"run-{size}-{resp}-{args.precision}")
    cfg.save_every, cfg.log_rollouts, cfg.tensorboard = 0, False, False
    cfg.reward_fn = "rlvr.reward.toy:contains_answer"
    cfg.eval.benchmarks = []
    cfg.validate()
    from rich.console import Console

    train(cfg, console=Console(stderr=True) if args.verbose else Console(file=open(os.devnull, "w")))
    torch.set_num_threads(args.threads)
    rows = read_jsonl(Path(cfg.run_dir) / "metrics.jsonl")
    steady = rows[2:]

    def med(k: str) -> float:
        return statistics.median(r.get(k, 0.0) for r in steady)

    return {
        "params": n_params, "size": size, "response_tokens": resp, "precision": args.precision,
        "kv_cache_dtype": args.kv_cache_dtype,
        "step_s": [r["timing/step"] for r in rows], "median_step_s": med("timing/step"),
        "median_gen_s": med("timing/gen"), "median_ref_s": med("timing/ref"),
        "median_update_s": med("timing/update_actor"), "median_reward_s": med("timing/reward"),
        "mean_completion_tokens": statistics.mean(r["response_length/mean"] for r in steady),
        "reward": [r["critic/score/mean"] for r in rows], "kl": [r["actor/kl_loss"] for r in rows],
        "entropy": [r["actor/entropy"] for r in rows],
    }


def run_peer(args) -> dict:
    """TRL's GRPOTrainer on the same work, in its own process (its own peak RSS)."""
    if not PEER_SCRIPT.exists():
        raise SystemExit(f"--peer trl needs the peer script at {PEER_SCRIPT}")
    cmd = [args.peer_python, str(PEER_SCRIPT), "--max_steps", str(args.steps), "--threads", str(args.threads), "--verbose"]
    if args.precision == "bf16":
        cmd.append("--bf16")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"peer failed ({' '.join(cmd)}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    res = dict(kv.split("=", 1) for kv in re.search(r"^RESULT (.*)$", out.stdout, re.M).group(1).split())
    logs = []
    for line in out.stdout.splitlines():  # TRL's per-step log dicts (printed with --verbose)
        if line.startswith("{") and "'reward'" in line:
            import ast

            logs.append(ast.literal_eval(line))
    return {"median_step_s": float(res["median_step_s"]), "median_gen_s": float(res["median_gen_s"]),
            "peak_rss_mb": float(res["peak_rss_mb"]), "tokens_per_s": float(res["tokens_per_s"]),
            "reward": [float(x["reward"]) for x in logs], "kl": [float(x.get("kl", "nan")) for x in logs],
            "entropy": [float(x.get("entropy", "nan")) for x in logs], "raw": res}


def machine_info(threads: int) -> dict:
    import torch

    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", choices=["fp32", "bf16", "mixed"], default="fp32",
                   help="bf16: rollouts and reference forward in bf16, fp32 master weights and update; mixed: fp32 "
                        "rollouts, bf16 reference, bf16 autocast in the update (the peer runs fp32, its best)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--micro-batch", type=int, default=64, help="sequences per forward/backward")
    p.add_argument("--micro-batch-tokens", type=int, default=0,
                   help="also cap a forward/backward at this many padded tokens (optim.micro_batch_tokens; 0 = no cap)")
    p.add_argument("--size", choices=[*SIZES, "qwen2.5-math-1.5b"], default="1m",
                   help="qwen2.5-math-1.5b: that architecture with random weights (GPU)")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--samples", type=int, default=8, help="samples per prompt")
    p.add_argument("--mixed-precision", action="store_true", help="bf16 autocast in the update (fp32 master weights)")
    p.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing")
    p.add_argument("--no-cuda-graphs", action="store_true", help="GPU: decode eagerly (rollout.cuda_graphs false)")
    p.add_argument("--compile-decode", action="store_true", help="rollout.compile: the decoder's layer pieces compiled")
    p.add_argument("--kv-cache-dtype", choices=["auto", "bfloat16", "float16"], default="auto",
                   help="rollout.kv_cache_dtype: the decoder's KV cache (bfloat16 under fp32 rollouts halves its reads)")
    p.add_argument("--no-share-prefix", action="store_true",
                   help="reference and update run every row's prompt (optim.share_prompt_prefix false)")
    p.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp", help="under torchrun")
    p.add_argument("--response-tokens", type=int, default=128)
    p.add_argument("--peer", choices=["trl"], help="also run TRL's GRPOTrainer on identical work and print the ratio")
    p.add_argument("--peer-python", default=sys.executable, help="a python with trl installed (the bench extra)")
    p.add_argument("--scaling", action="store_true", help="step time at 1/6/30 M params and 128/512/2048 tokens")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--verbose", action="store_true", help="show the trainer's progress line")
    p.add_argument("--work-dir", help="where the temporary model and run folders go (default: the system's tmp)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    gpu = torch.cuda.is_available()
    dev, n = ("cuda", 8192) if gpu else ("cpu", 2048)
    if gpu:
        info["gpu"] = torch.cuda.get_device_name()
    ceil32 = matmul_ceiling(torch.float32, args.threads, n=n, device=dev)
    ceil16 = matmul_ceiling(torch.bfloat16, args.threads, n=n, device=dev)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {args.threads} threads, torch {info['torch']}")
    print(f"matmul ceiling: fp32 {ceil32:.0f} GFLOP/s, bf16 {ceil16:.0f} GFLOP/s")
    result: dict = {"machine": info, "ceiling_gflops": {"fp32": ceil32, "bf16": ceil16}, "runs": []}
    cases = [(args.size, args.response_tokens)]
    if args.scaling:
        cases = [(s, 128) for s in SIZES] + [("1m", 512), ("1m", 2048)]
    with tempfile.TemporaryDirectory(dir=args.work_dir) as td:
        for size, resp in cases:
            res = run_rlvr(args, size, resp, Path(td))
            rollouts = args.prompts * args.samples
            a = arch(size, 100, resp)
            fl = step_flops(a["hidden_size"], a["num_hidden_layers"], a["intermediate_size"], a["vocab_size"],
                            len(PROMPT), resp, rollouts,
                            kv_dim=a["hidden_size"] // a["num_attention_heads"] * a["num_key_value_heads"])
            ceil = ceil16 if args.precision == "bf16" else ceil32
            res["gflop_per_step"] = fl["total"] / 1e9
            res["share_of_ceiling"] = fl["total"] / 1e9 / res["median_step_s"] / ceil
            res["tokens_per_s"] = rollouts * res["mean_completion_tokens"] / res["median_step_s"]
            res["rollout_tokens_per_s"] = rollouts * res["mean_completion_tokens"] / res["median_gen_s"]
            if gpu:
                res["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
            result["runs"].append(res)
            print(f"rlvr {size} ({res['params'] / 1e6:.2f} M params), {resp} tokens, {args.precision}: "
                  f"median step {res['median_step_s']:.3f} s (gen {res['median_gen_s']:.3f}, ref {res['median_ref_s']:.3f}, "
                  f"update {res['median_update_s']:.3f}); {res['tokens_per_s']:.0f} completion tokens/s; "
                  f"{res['gflop_per_step']:.0f} GFLOP/step = {100 * res['share_of_ceiling']:.0f}% of the "
                  f"{'bf16' if args.precision == 'bf16' else 'fp32'} ceiling")
            if gpu:
                print(f"  rollout {res['rollout_tokens_per_s']:.0f} tokens/s, peak GPU memory {res['peak_gpu_mem_gb']:.1f} GiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result["peak_rss_mb"] = peak
    main_run = result["runs"][0]
    if args.peer:
        peer = run_peer(args)
        result["peer_trl"] = peer
        ratio = peer["median_step_s"] / main_run["median_step_s"]
        result["speedup_vs_trl"] = ratio
        print(f"TRL GRPOTrainer ({'bf16' if args.precision == 'bf16' else 'fp32'}): median step {peer['median_step_s']:.3f} s (gen {peer['median_gen_s']:.3f}), "
              f"peak RSS {peer['peak_rss_mb']:.0f} MB")
        print(f"rlvr is {ratio:.2f}x faster than TRL per step (peak RSS {peak:.0f} vs {peer['peak_rss_mb']:.0f} MB)")
        for k in ("reward", "kl", "entropy"):
            a, b = main_run[k][2:], peer[k][2:]
            if a and b:
                print(f"  {k:8s} rlvr mean {statistics.mean(a):.4g}  TRL mean {statistics.mean(b):.4g}")
    if args.out:
        from rlvr.utils.io import atomic_write_json

        atomic_write_json(args.out, result)
    print(f"RESULT median_step_s={main_run['median_step_s']:.4f} tokens_per_s={main_run['tokens_per_s']:.1f} "
          f"mean_completion_tokens={main_run['mean_completion_tokens']:.1f} median_gen_s={main_run['median_gen_s']:.4f} "
          f"peak_rss_mb={peak:.0f} threads={args.threads} precision={args.precision}")


if __name__ == "__main__":
    main()
