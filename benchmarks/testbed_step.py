"""Time rlvr's GRPO step on the embedded testbed, the work of `rlvr demo`: 1-shot GRPO with the
testbed preset (8 x 8 rollouts that stop at EOS, 16 to 100 tokens), and sampling of the 500-problem
held-out set at T = 0.6 (the evaluation of the demo, one sample per problem).

    python benchmarks/testbed_step.py                  # 8 training steps, median of steps 3..8
    python benchmarks/testbed_step.py --steps 12 --out benchmarks/results/testbed_step.json

Unlike `rl_step.py` (every response exactly 128 tokens), responses here end at EOS and differ in
length, so the time goes where the batch is ragged: generation keeps stepping until the longest
response ends, and the update pads rows to the longest. The step is `rlvr.trainer.train` itself,
timed by its `timing/*` metrics. Run nothing else while timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()

    import torch

    from rlvr.config import load_config
    from rlvr.data import load, render_prompt
    from rlvr.generation import SamplingConfig, generate
    from rlvr.models import load_model_and_tokenizer
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train
    from rlvr.utils.io import atomic_write_json, read_jsonl

    torch.set_num_threads(args.threads)
    preset = Path(__file__).resolve().parents[1] / "configs" / "testbed" / "pi1-grpo.yaml"
    with tempfile.TemporaryDirectory() as td:
        cfg = load_config(TrainConfig, str(preset), [f"steps={args.steps}", f"run_dir={td}/run", "eval.benchmarks=[]",
                                                     "save_every=0", "log_rollouts=false", "tensorboard=false",
                                                     f"threads={args.threads}"])
        train(cfg)
        rows = list(read_jsonl(Path(td) / "run" / "metrics.jsonl"))[2:]
    med = {k: statistics.median(r[f"timing/{k}"] for r in rows) for k in ("step", "gen", "ref", "update_actor")}
    resp = statistics.mean(r["response_length/mean"] for r in rows)
    print(f"testbed 1-shot GRPO step: median {med['step']:.3f} s (gen {med['gen']:.3f}, ref {med['ref']:.3f}, "
          f"update {med['update_actor']:.3f}); mean response {resp:.1f} tokens; steps 3..{args.steps}")

    model, tok = load_model_and_tokenizer("testbed")
    prompts = [render_prompt(x.problem, "testbed", tok) for x in load("testbed/test")]
    t0 = time.perf_counter()
    gens = generate(model, tok, prompts, SamplingConfig(max_new_tokens=400, temperature=0.6, seed=0), batch_size=64)
    gen_s = time.perf_counter() - t0
    n_tok = sum(len(g.response_ids) for g in gens)
    print(f"sampling the 500 test problems at T=0.6: {gen_s:.2f} s, {n_tok} tokens, {n_tok / gen_s:.0f} tokens/s")
    result = {"torch": torch.__version__, "threads": args.threads, "steps": args.steps,
              "median_s": med, "mean_response_tokens": resp,
              "test_sampling": {"seconds": gen_s, "tokens": n_tok, "tokens_per_s": n_tok / gen_s}}
    if args.out:
        atomic_write_json(args.out, result)
    print(f"RESULT median_step_s={med['step']:.4f} test_sampling_s={gen_s:.2f}")


if __name__ == "__main__":
    main()
