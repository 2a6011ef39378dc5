"""`rlvr eval --model PATH|testbed --benchmarks a,b --out DIR [...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlvr.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="local Hugging Face model folder, or `testbed`")
    p.add_argument("--benchmarks", required=True, help="comma-separated names, e.g. math500,aime24 or testbed/test")
    p.add_argument("--out", type=Path, help="output folder (samples.jsonl per benchmark, summary.json/.md); "
                                            "re-running with the same folder resumes")
    p.add_argument("--protocol", default="paper", help="per-benchmark settings preset: paper | greedy")
    p.add_argument("--template", help="prompt template (default: the protocol's)")
    p.add_argument("--n-samples", type=int, help="samples per problem")
    p.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-p", type=float, help="nucleus sampling threshold")
    p.add_argument("--max-new-tokens", type=int, help="response token limit")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--limit", type=int, help="only the first N problems of each benchmark")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per generation batch")
    p.add_argument("--grading", choices=["boxed", "lenient"], default="boxed",
                   help="boxed: the training reward (default); lenient: the paper kit's last-number fallback")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="generation backend")
    p.add_argument("--workers", type=int, default=2, help="grading worker processes")
    p.add_argument("--threads", type=int, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from rlvr.data import dataset_names
    from rlvr.errors import closest
    from rlvr.eval.evaluate import EvalConfig, evaluate, summary_markdown
    from rlvr.models import load_model_and_tokenizer, resolve_model_path

    console = Console()
    benches = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    names = dataset_names()
    for b in benches:  # before loading the model: a typo costs nothing
        if b not in names:
            raise UserError(f"unknown benchmark {b!r}{closest(b, names)}; `rlvr data list` shows them")
    resolve_model_path(args.model)
    if args.backend == "vllm":
        from rlvr.eval.backends import require_vllm

        require_vllm()
        raise UserError("the vllm evaluation backend is not wired into `rlvr eval` yet; use --backend hf")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model, tok = load_model_and_tokenizer(args.model)
    import gc

    gc.collect()
    gc.freeze()  # the libraries' and the model's long-lived objects: not walked again by every full collection
    cfg = EvalConfig(protocol=args.protocol, n_samples=args.n_samples, temperature=args.temperature,
                     top_p=args.top_p, max_new_tokens=args.max_new_tokens, template=args.template, seed=args.seed,
                     limit=args.limit, batch_size=args.batch_size, grading=args.grading, workers=args.workers)
    results = evaluate(model, tok, benches, cfg, out_dir=args.out, console=console, model_name=str(args.model))
    console.print(summary_markdown(results), highlight=False, markup=False)
    if args.out:
        console.print(f"wrote {args.out / 'summary.json'}, {args.out / 'summary.md'}")
    return 0
