"""`evaluate(model, tokenizer, benchmarks, config)`: generate, grade and score benchmark samples.

Called by `rlvr eval` on a loaded model folder and by the trainer on the policy in memory. With an
`out_dir` every graded sample is appended to `<out_dir>/<benchmark>/samples.jsonl` as it is produced,
and a re-run skips the (problem, sample) pairs already there: each sample's random stream is seeded
by (seed, problem id, sample index), so a resumed evaluation produces exactly what an uninterrupted
one would have. Grading goes through `rlvr.reward` (the training reward's grader).
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlvr.errors import UserError
from rlvr.eval.metrics import benchmark_metrics, breakdown
from rlvr.eval.protocol import PROTOCOLS, BenchmarkSettings, settings_for

CHUNK_SEQS = 256  # sequences generated and graded between two appends


@dataclass
class EvalConfig:
    protocol: str = "paper"
    n_samples: int | None = None  # the overrides below replace the protocol's per-benchmark value
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    template: str | None = None
    seed: int = 0
    limit: int | None = None  # evaluate only the first N problems of each benchmark
    batch_size: int = 64
    grading: str = "boxed"  # "boxed" = the training reward; "lenient" = the paper kit's fallbacks
    workers: int = 2
    timeout: float = 5.0
    extra: dict = field(default_factory=dict)

    def settings(self, benchmark: str) -> BenchmarkSettings:
        if self.protocol not in PROTOCOLS:
            raise UserError(f"unknown protocol {self.protocol!r} (valid: {', '.join(PROTOCOLS)})")
        s = settings_for(self.protocol, benchmark)
        over = {k: getattr(self, k) for k in ("n_samples", "temperature", "top_p", "max_new_tokens", "template")
                if getattr(self, k) is not None}
        from dataclasses import replace

        return replace(s, **over)


def sample_seed(seed: int, problem_id: str, sample: int) -> int:
    return zlib.crc32(f"{seed}/{problem_id}/{sample}".encode())


def _read_done(path: Path) -> dict[tuple[str, int], dict]:
    from rlvr.utils.io import read_jsonl, truncate_partial_tail

    if not path.exists():
        return {}
    truncate_partial_tail(path)
    return {(r["id"], r["sample"]): r for r in read_jsonl(path)}


def evaluate(model, tokenizer, benchmarks: list[str], config: EvalConfig | None = None, out_dir: str | Path | None = None,
             grader=None, console=None, model_name: str = "") -> dict:
    """Evaluate on each benchmark; returns {"benchmarks": {name: metrics}, "paper_avg": ..., ...}."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rlvr.data import SIX, load, render_prompt
    from rlvr.generation import SamplingConfig, generate
    from rlvr.reward import Grader
    from rlvr.utils.io import append_jsonl, atomic_write_json, atomic_write_text

    config = config or EvalConfig()
    problems_by_bench = {b: load(b)[: config.limit] if config.limit else load(b) for b in benchmarks}
    own_grader = grader is None
    grader = grader or Grader(workers=config.workers, timeout=config.timeout)
    out_dir = Path(out_dir) if out_dir else None
    max_pos = getattr(model.config, "max_position_embeddings", None)
    results: dict = {"model": model_name, "config": asdict(config), "benchmarks": {}, "notes": []}
    try:
        for bench, problems in problems_by_bench.items():
            s = config.settings(bench)
            ids = [p.id for p in problems]
            if len(set(ids)) != len(ids):
                raise UserError(f"benchmark {bench!r} has duplicate problem ids; ids must be unique")
            prompts = {p.id: render_prompt(p.problem, s.template, tokenizer) for p in problems}
            sample_path = out_dir / bench.replace("/", "__") / "samples.jsonl" if out_dir else None
            done = _read_done(sample_path) if sample_path else {}
            todo = [(p, j) for p in problems for j in range(s.n_samples) if (p.id, j) not in done]
            longest = max(len(tokenizer.encode(prompts[p.id], add_special_tokens=False)) for p in problems)
            if max_pos and longest + s.max_new_tokens > max_pos:
                results["notes"].append(f"{bench}: max_new_tokens capped by the model's {max_pos} positions "
                                        f"(longest prompt {longest} tokens)")
            rows = dict(done)
            cfg = SamplingConfig(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
                                 seed=config.seed)
            with Progress(TextColumn(f"[bold]{bench}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]:.1f} resp/s"), TimeElapsedColumn(), console=console,
                          transient=console is None) as bar:
                task = bar.add_task(bench, total=len(problems) * s.n_samples, completed=len(done), rate=0.0)
                t0, n_done = time.monotonic(), 0
                for start in range(0, len(todo), CHUNK_SEQS):
                    chunk = todo[start:start + CHUNK_SEQS]
                    gens = generate(model, tokenizer, [prompts[p.id] for p, _ in chunk], cfg,
                                    batch_size=config.batch_size,
                                    seeds=[sample_seed(config.seed, p.id, j) for p, j in chunk])
                    graded = grader.grade_batch([(g.text, p.answer) for (p, _), g in zip(chunk, gens)],
                                                mode=config.grading)
                    new = []
                    for (p, j), g, r in zip(chunk, gens, graded):
                        new.append({"benchmark": bench, "id": p.id, "sample": j, "prompt": prompts[p.id],
                                    "response": g.text, "gold": p.answer, "pred": r.pred, "score": r.score,
                                    "reason": r.reason, "n_tokens": len(g.response_ids),
                                    "finish_reason": g.finish_reason, "subject": p.subject, "level": p.level})
                    if sample_path:
                        append_jsonl(sample_path, new)
                    rows.update({(x["id"], x["sample"]): x for x in new})
                    n_done += len(chunk)
                    bar.update(task, advance=len(chunk), rate=n_done / max(time.monotonic() - t0, 1e-9))
            per_problem = {pid: sorted([r for (i, _), r in rows.items() if i == pid], key=lambda r: r["sample"])
                           for pid in ids}
            metrics = benchmark_metrics(per_problem, ks=(1, s.n_samples))
            metrics["by_subject"] = breakdown(per_problem, "subject")
            metrics["by_level"] = breakdown(per_problem, "level")
            metrics["settings"] = asdict(s)
            results["benchmarks"][bench] = metrics
        if all(b in results["benchmarks"] for b in SIX):
            results["paper_avg"] = sum(results["benchmarks"][b]["acc"] for b in SIX) / len(SIX)
        if out_dir:
            atomic_write_json(out_dir / "summary.json", results)
            atomic_write_text(out_dir / "summary.md", summary_markdown(results))
    finally:
        if own_grader:
            grader.close()
    return results


def summary_markdown(results: dict) -> str:
    lines = [f"# Evaluation of `{results.get('model', '')}`", "",
             "| benchmark | problems | samples | acc | pass@k | maj@k | no answer | mean length |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in results["benchmarks"].items():
        k = int(m["samples_per_problem"])
        lines.append(f"| {name} | {int(m['problems'])} | {k} | {m['acc']:.3f} | "
                     f"{m.get(f'pass@{k}', float('nan')):.3f} | {m.get(f'maj@{k}', float('nan')):.3f} | "
                     f"{m['no_answer_rate']:.3f} | {m['response_len_mean']:.1f} |")
    if "paper_avg" in results:
        lines += ["", f"Average of the paper's six benchmarks: **{results['paper_avg']:.3f}**"]
    lines += ["", "Settings: " + json.dumps({k: v for k, v in results["config"].items() if v is not None})]
    lines += [f"- {n}" for n in results.get("notes", [])]
    return "\n".join(lines) + "\n"
