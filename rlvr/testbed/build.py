"""`rlvr testbed build`: regenerate the testbed's datasets and pre-train its base model from scratch.

Deterministic for a seed on a given machine and torch version (seeded data, seeded init, a fixed
thread count and a step budget rather than a time budget). The committed model under
`rlvr/testbed/assets/model/` is the output of `rlvr testbed build` with the defaults below.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlvr.testbed.world import CATEGORIES, StyleMix, make_problem, sample_document

ASSETS = Path(__file__).resolve().parent / "assets"
POOL_SIZE, TEST_SIZE = 1200, 500


@dataclass
class PretrainConfig:
    seed: int = 0
    hidden_size: int = 192
    num_layers: int = 6
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    seq_len: int = 256  # packed training windows, tokens
    batch_seqs: int = 32
    steps: int = 2400
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    threads: int = 2
    mix: StyleMix = field(default_factory=StyleMix)


def make_datasets(seed: int = 0) -> dict[str, list[dict]]:
    """The pool (training, ~dsr_sub) and the held-out test set (~MATH500), disjoint by problem text.

    Test problems are balanced across categories and levels; the pool is drawn at random.
    """
    rng = random.Random(f"testbed-data-{seed}")
    test, seen = [], set()
    per_cat = TEST_SIZE // len(CATEGORIES)
    for ci, cat in enumerate(CATEGORIES):
        n = per_cat + (1 if ci < TEST_SIZE - per_cat * len(CATEGORIES) else 0)
        rows: list[dict] = []
        attempts = 0
        while len(rows) < n:
            attempts += 1
            if attempts > 100 * n:
                raise RuntimeError(f"the generator has too few distinct {cat} problems for a {n}-row test split")
            # levels cycle 1..5; easy levels have few distinct problems, so a collision moves on
            p = make_problem(rng, cat, 1 + (len(rows) + rng.randrange(5) * (rng.random() < 0.3)) % 5)
            if p.problem in seen:
                continue
            seen.add(p.problem)
            rows.append({"problem": p.problem, "answer": p.answer, "subject": cat, "level": p.level})
        test.extend(rows)
    pool = []
    while len(pool) < POOL_SIZE:
        p = make_problem(rng)
        if p.problem in seen:
            continue
        seen.add(p.problem)
        pool.append({"problem": p.problem, "answer": p.answer, "subject": p.category, "level": p.level})
    for i, r in enumerate(test):
        r["id"] = f"testbed/test/{i}"
    for i, r in enumerate(pool):
        r["id"] = f"testbed/pool/{i}"
        r["index"] = i
    return {"pool": pool, "test": test}


def corpus_stream(seed: int, exclude: set[str], mix: StyleMix):
    """Endless (prompt, solution, style, right) pre-training documents, never a pool/test problem."""
    rng = random.Random(f"testbed-corpus-{seed}")
    while True:
        p = make_problem(rng)
        if p.problem in exclude:
            continue
        style, sol, right = sample_document(p, rng, mix)
        yield p.problem, sol, style, right


def write_datasets(data: dict[str, list[dict]], out: Path) -> None:
    from rlvr.utils.io import atomic_write_jsonl

    for name, rows in data.items():
        atomic_write_jsonl(out / f"{name}.jsonl", rows)


def pretrain(cfg: PretrainConfig, out_dir: Path, log=print) -> dict:
    """Pre-train the base model on the style-mixed corpus and save it as a Hugging Face folder."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.utils.tiny_models import make_char_tokenizer

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    tok = make_char_tokenizer()
    data = make_datasets(cfg.seed)
    exclude = {r["problem"] for rows in data.values() for r in rows}
    docs = corpus_stream(cfg.seed, exclude, cfg.mix)
    eos = tok.eos_token_id

    def render(problem: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=False, add_generation_prompt=True)

    buf: list[int] = []

    def next_batch() -> torch.Tensor:
        need = cfg.batch_seqs * (cfg.seq_len + 1)
        while len(buf) < need:
            problem, sol, _, _ = next(docs)
            buf.extend(tok.encode(render(problem) + sol, add_special_tokens=False) + [eos])
        chunk = buf[:need]
        del buf[:need]
        return torch.tensor(chunk).view(cfg.batch_seqs, cfg.seq_len + 1)

    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=eos,
    )
    model = Qwen2ForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))

    log(f"pre-training a {n_params / 1e6:.2f} M-parameter Qwen2 for {cfg.steps} steps "
        f"({cfg.batch_seqs}x{cfg.seq_len} tokens/step)")
    model.train()
    t0, tokens, history = time.time(), 0, []
    for step in range(cfg.steps):
        batch = next_batch()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        out = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone())
        # HF shifts labels internally; the window's last target comes from the extra token
        loss = out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += batch[:, :-1].numel()
        if step % 25 == 0 or step == cfg.steps - 1:
            el = time.time() - t0
            history.append({"step": step, "loss": round(loss.item(), 4), "tokens": tokens, "elapsed_s": round(el, 1)})
            log(f"step {step:5d}/{cfg.steps}  loss {loss.item():.4f}  lr {lr_at(step):.2e}  "
                f"{tokens / max(el, 1e-9):,.0f} tok/s  {el / 60:.1f} min")
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    info = {"params": n_params, "tokens": tokens, "minutes": round((time.time() - t0) / 60, 1),
            "final_loss": history[-1]["loss"], "config": asdict(cfg), "loss_history": history}
    (out_dir / "pretrain_log.json").write_text(json.dumps(info, indent=1) + "\n")
    return info
