"""The RL training loop: `train(cfg)`.

Each step, top to bottom: rollout -> score -> old/ref log-probs -> advantages -> update (critic,
then actor) -> sync weights (a no-op for the hf backend; where a vLLM engine would receive the new
weights) -> log -> maybe evaluate -> maybe save. Every stage is one function call timed into
`timing/<stage>`.

What is deliberately simple: the hf rollout engine (rlvr.generation on a copy of the policy in the rollout
dtype, or on the policy itself) and no sequence packing; a prompt that several rows share is run once per
pass instead (`policy_logits`).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import time
from collections import defaultdict
from pathlib import Path

import torch

from rlvr import dist
from rlvr import metrics as M
from rlvr.algo import (
    agg_loss,
    compute_gae_advantages,
    compute_grpo_advantages,
    frac_zero_std_groups,
    kl_penalty,
    outcome_to_token_rewards,
    ppo_clip_loss,
    token_logp_and_entropy,
    value_loss,
)
from rlvr.errors import UserError
from rlvr.trainer.checkpoint import latest_checkpoint, load_checkpoint_into, save_checkpoint
from rlvr.trainer.config import TrainConfig
from rlvr.trainer.passes import (
    autocast,
    critic_values,
    forward_logp,
    micro_batches,
    policy_logits,
    sync_weights,
)
from rlvr.trainer.rollout import generate_rollouts, load_reward_fn, pad_batch, score_rollouts, step_slots

# --- setup --------------------------------------------------------------------------------------

def load_training_rows(cfg: TrainConfig):
    """The training problems (before duplication by prompts_per_step) from a dataset name or a file."""
    from rlvr import data

    src = cfg.data.train
    if Path(src).suffix in (".parquet", ".jsonl", ".json"):
        rows = data.load_problems_from_file(src)
    else:
        rows = data.load(src)
    if cfg.data.indices is not None:
        by_index = {p.index: p for p in rows}
        missing = [i for i in cfg.data.indices if i not in by_index]
        if missing:
            raise UserError(f"data.indices {missing} are not in {src!r} (its indices run "
                            f"{min(by_index, default=0)}..{max(by_index, default=0)})")
        rows = [by_index[i] for i in cfg.data.indices]
    bad = [p.id for p in rows if not str(p.answer).strip()]
    if bad:
        rows = [p for p in rows if str(p.answer).strip()]
        dist.print0(f"note: dropped {len(bad)} training rows without a gold answer ({', '.join(bad[:3])})")
    if not rows:
        raise UserError(f"no training rows in {src!r}")
    if cfg.data.repeat:
        rows = [p for p in rows for _ in range(max(1, cfg.data.repeat // len(rows)))]
    return rows


def check_config_inputs(cfg: TrainConfig) -> None:
    """Everything that can fail on user input, before any model is loaded."""
    from rlvr.data import dataset_names, get_template
    from rlvr.models import resolve_model_path

    resolve_model_path(cfg.model.path)
    if cfg.reward_fn:
        load_reward_fn(cfg.reward_fn)
    get_template(cfg.data.template)
    load_training_rows(cfg)
    names = dataset_names()
    for b in cfg.eval.benchmarks:
        if b not in names:
            from rlvr.errors import closest

            raise UserError(f"eval.benchmarks: unknown benchmark {b!r}{closest(b, names)}")


class Timer:
    def __init__(self):
        self.t: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        yield
        self.t[M.timing(stage)] += time.perf_counter() - t0


def lr_at(step: int, base: float, warmup: int) -> float:
    return base * min(1.0, (step + 1) / warmup) if warmup > 0 else base


# --- the stages ---------------------------------------------------------------------------------

def compute_advantages(cfg: TrainConfig, rollouts, batch: dict, values: torch.Tensor | None,
                       old_logp: torch.Tensor, ref_logp: torch.Tensor | None):
    """Advantages aligned with batch['response_mask']: (B,) for GRPO-family, (B, L-1) for GAE."""
    rewards = torch.tensor([r.reward for r in rollouts], dtype=torch.float32)
    groups = torch.tensor([r.slot for r in rollouts])
    a = cfg.algo
    if a.adv_estimator in ("grpo", "dr_grpo"):
        adv = compute_grpo_advantages(rewards, groups, norm_by_std=a.adv_estimator == "grpo")
        return adv.to(batch["response_mask"].device), None, rewards
    mask = batch["response_mask"]
    token_rewards = outcome_to_token_rewards(rewards.to(mask.device), mask)
    if a.kl_in_reward and ref_logp is not None:
        token_rewards = token_rewards - a.kl_coef * kl_penalty(old_logp, ref_logp, a.kl_kind) * mask
    adv, returns = compute_gae_advantages(token_rewards, values, mask, a.gamma, a.lam, whiten=True)
    return adv, returns, rewards


def update_policy(cfg: TrainConfig, policy, optimizer, batch: dict, adv: torch.Tensor, old_logp: torch.Tensor,
                  ref_logp: torch.Tensor | None, on_policy: bool) -> dict[str, float]:
    """PPO-clip + KL + entropy, mini-batches x epochs, micro-batch accumulation; returns stat sums."""
    a, o = cfg.algo, cfg.optim
    B = batch["input_ids"].shape[0]
    mb = B // o.mini_batches_per_step
    use_kl = a.kl_coef != 0 and not a.kl_in_reward and ref_logp is not None
    sums: dict[str, float] = defaultdict(float)
    world = dist.world()
    # a shared prompt runs as its own forward: one process only (a DDP/FSDP module expects one forward per backward)
    share = o.share_prompt_prefix and world == 1
    for _epoch in range(o.ppo_epochs):
        for m0 in range(0, B, mb):
            mask_mb = batch["response_mask"][m0:m0 + mb]
            counts = dist.all_reduce_sums({"tok": float(mask_mb.sum()), "seq": float(mask_mb.shape[0])})
            optimizer.zero_grad(set_to_none=True)
            for idx, c0, L in micro_batches(batch, range(m0, m0 + mb), o.micro_batch_seqs, o.micro_batch_tokens):
                ids, attn = batch["input_ids"][idx, :L], batch["attention_mask"][idx, :L]
                cols = slice(c0, L - 1)  # the prediction columns this micro-batch computes
                mask = batch["response_mask"][idx, cols]
                with autocast(cfg, ids.device):
                    logits = policy_logits(policy, ids, attn, c0, batch["prompt_len"][idx] if share else None)  # (b, L-1-c0, V)
                logp, ent = token_logp_and_entropy(logits, ids[:, c0 + 1:], cfg.rollout.temperature)
                old = logp.detach() if on_policy else old_logp[idx, cols]
                adv_mb = adv[idx, cols] if adv.dim() == 2 else adv[idx]
                pg_mat, st = ppo_clip_loss(logp, old, adv_mb, mask, a.clip_low, a.clip_high, a.dual_clip_c)
                loss_mat = a.pg_coef * pg_mat
                kl_mat = kl_penalty(logp, ref_logp[idx, cols], a.kl_kind) * mask if use_kl else None
                if kl_mat is not None:
                    loss_mat = loss_mat + a.kl_coef * kl_mat
                ent_mat = (ent if a.entropy_coef != 0 else ent.detach()) * mask  # logged always, a loss term if coef != 0
                if a.entropy_coef != 0:
                    loss_mat = loss_mat - a.entropy_coef * ent_mat
                loss = agg_loss(loss_mat, mask, a.loss_agg_mode, global_tokens=counts["tok"], global_seqs=counts["seq"],
                                norm_constant=float(cfg.rollout.max_response_tokens))
                (loss * world).backward()  # DDP averages gradients over ranks; the loss is already global
                ntok = float(mask.sum())
                sums["pg_loss"] += float((pg_mat.detach()).sum())
                sums["kl_loss"] += float(kl_mat.detach().sum()) if kl_mat is not None else 0.0
                sums["entropy"] += float(ent_mat.detach().sum())
                sums["clipfrac"] += float(st["clipfrac"]) * ntok
                sums["ppo_kl"] += float(st["approx_kl"]) * ntok
                sums["tokens"] += ntok
            gn = torch.nn.utils.clip_grad_norm_(policy.parameters(), o.grad_clip)
            sums["grad_norm"] += float(gn)
            sums["opt_steps"] += 1
            optimizer.step()
    return sums


def update_critic(cfg: TrainConfig, critic, critic_opt, batch: dict, returns: torch.Tensor, old_values: torch.Tensor) -> float:
    o = cfg.optim
    B = batch["input_ids"].shape[0]
    total_tok = dist.all_reduce_sums({"tok": float(batch["response_mask"].sum())})["tok"]
    critic_opt.zero_grad(set_to_none=True)
    total = 0.0
    for idx, _c0, L in micro_batches(batch, range(B), o.micro_batch_seqs, o.micro_batch_tokens):
        v = critic(input_ids=batch["input_ids"][idx, :L], attention_mask=batch["attention_mask"][idx, :L]).logits[:, :-1, 0].float()
        cols = slice(0, L - 1)
        vl = value_loss(v, old_values[idx, cols], returns[idx, cols], batch["response_mask"][idx, cols], cfg.algo.value_clip)
        loss = vl.sum() / total_tok
        (loss * dist.world()).backward()
        total += float(vl.detach().sum())
    torch.nn.utils.clip_grad_norm_(critic.parameters(), o.grad_clip)
    critic_opt.step()
    return total / max(total_tok, 1.0)


# --- the loop -----------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False, console=None) -> dict:
    """Run (or resume) training; returns the last step's metrics."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rlvr.analysis.response import analyse_responses
    from rlvr.attention import set_attention
    from rlvr.config import to_yaml
    from rlvr.data import render_prompt
    from rlvr.fused import use_fused_layers
    from rlvr.models import load_model_and_tokenizer
    from rlvr.reward import Grader
    from rlvr.utils.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
    from rlvr.utils.memory import retain_freed_memory

    device = dist.init_from_env()
    console = console or Console()
    check_config_inputs(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.run_dir)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if dist.is_main():
        if run_dir.exists() and not resume and (run_dir / "metrics.jsonl").exists():
            raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        console.print(f"[bold]rlvr train[/] -> {run_dir}\n{to_yaml(cfg)}", highlight=False)

    if torch.device(device).type == "cpu":
        retain_freed_memory()  # activations' pages are reused, not faulted in again every pass
    policy, tok = load_model_and_tokenizer(cfg.model.path, dtype=cfg.model.dtype, device=device)
    attention = set_attention(policy, cfg.model.attention)  # the reference and rollout copies inherit it
    fused = use_fused_layers(policy) if cfg.model.fused_layers else 0  # and these
    if dist.is_main():
        console.print(f"attention of training passes: {attention}; C++ RMSNorm/MLP layers: "
                      f"{f'{fused} modules' if fused else 'none'}")
    if cfg.model.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    policy.train()
    need_ref = cfg.algo.kl_coef != 0
    infer_dtype = policy.dtype if cfg.model.rollout_dtype == "auto" else getattr(torch, cfg.model.rollout_dtype)
    ref_dtype = infer_dtype if cfg.model.reference_dtype == "auto" else getattr(torch, cfg.model.reference_dtype)
    ref = copy.deepcopy(policy).to(ref_dtype).eval().requires_grad_(False) if need_ref else None
    critic = critic_opt = None
    if cfg.algo.adv_estimator == "gae":
        from transformers import AutoModelForTokenClassification

        from rlvr.models import resolve_model_path

        torch.manual_seed(cfg.seed)
        critic = AutoModelForTokenClassification.from_pretrained(resolve_model_path(cfg.model.path), num_labels=1,
                                                                 local_files_only=True).to(device).train()
        set_attention(critic, cfg.model.attention)
        if cfg.model.fused_layers:
            use_fused_layers(critic)
    fsdp = cfg.strategy == "fsdp" and dist.is_dist()  # one process: nothing to shard over
    # the rollout engine: the policy itself, or a whole copy (in the rollout dtype, or because the
    # policy is about to be sharded) that receives the weights after every update
    engine = raw_policy = policy
    if infer_dtype != policy.dtype or fsdp:
        engine = copy.deepcopy(policy).to(infer_dtype).eval().requires_grad_(False)
    if fsdp:
        for m in (policy, ref, critic):
            if m is not None:
                dist.fsdp_shard(m, mixed_bf16=cfg.model.mixed_precision == "bf16" and m is not ref)
    elif dist.is_dist():
        from torch.nn.parallel import DistributedDataParallel as DDP

        policy = DDP(policy)
        if critic is not None:
            critic = DDP(critic)
    raw_policy = policy.module if hasattr(policy, "module") else policy
    optimizer = torch.optim.AdamW(raw_policy.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=tuple(cfg.optim.betas))
    if critic is not None:
        critic_opt = torch.optim.AdamW(critic.parameters(), lr=cfg.algo.critic_lr, weight_decay=cfg.optim.weight_decay)
    state = {"acc_history": {}}
    start = 0
    if resume and ckpt is None and dist.is_main() and (run_dir / "metrics.jsonl").exists():
        (run_dir / "metrics.jsonl").unlink()  # killed before its first checkpoint: start over cleanly
    if ckpt is not None:
        state = load_checkpoint_into(ckpt, raw_policy, optimizer, critic, critic_opt)
        start = state["step"]
        if engine is not raw_policy:
            sync_weights(engine, raw_policy)
        if dist.is_main():
            kept = [r for r in read_jsonl(run_dir / "metrics.jsonl", tolerate_partial_tail=True) if r[M.STEP] <= start] \
                if (run_dir / "metrics.jsonl").exists() else []
            atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
            console.print(f"resumed from {ckpt} (step {start})")
    # evaluation runs on rank 0 alone, so it needs whole weights: the engine when the policy is sharded
    eval_model = engine if fsdp else raw_policy

    rows = load_training_rows(cfg)
    prompts = [render_prompt(p.problem, cfg.data.template, tok) for p in rows]
    answers = {p.id: p.answer for p in rows}
    P = cfg.optim.prompts_per_step
    on_policy = cfg.optim.mini_batches_per_step == 1 and cfg.optim.ppo_epochs == 1
    tb = None
    if dist.is_main() and cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(run_dir / "tb"))
    wandb_run = None
    if dist.is_main() and cfg.wandb_project:
        try:
            import wandb
        except ImportError:
            raise UserError("wandb_project is set but wandb is not installed: pip install 'rlvr[wandb]'") from None
        wandb_run = wandb.init(project=cfg.wandb_project, config=json.loads(json.dumps(cfg, default=lambda o: o.__dict__)))

    grader = Grader(workers=cfg.grader_workers, timeout=cfg.grader_timeout)
    reward_fn = load_reward_fn(cfg.reward_fn) if cfg.reward_fn else None
    last: dict = {}

    def run_eval(step: int) -> dict:
        from rlvr.eval import EvalConfig, evaluate

        if not cfg.eval.benchmarks or not dist.is_main():
            return {}
        ec = EvalConfig(protocol=cfg.eval.protocol, n_samples=cfg.eval.n_samples, limit=cfg.eval.limit,
                        template=cfg.eval.template, seed=cfg.seed, workers=cfg.grader_workers)
        res = evaluate(eval_model, tok, cfg.eval.benchmarks, ec, out_dir=run_dir / "eval" / f"step_{step}", grader=grader)
        eval_model.train(eval_model is raw_policy)
        out = {}
        for b, m in res["benchmarks"].items():
            for k in ("acc", "no_answer_rate", "response_len_mean") + tuple(k for k in m if k.startswith(("pass@", "maj@"))):
                out[M.eval_key(b, k)] = m[k]
        return out

    # the libraries, models and data loaded so far are hundreds of thousands of long-lived Python objects that
    # every full garbage collection would walk again (~0.1-0.2 s each, a few times per run's steps): set them aside
    gc.collect()
    gc.freeze()
    try:
        if start == 0 and cfg.eval.at_start and cfg.eval.benchmarks:
            ev = run_eval(0)
            if dist.is_main():
                append_jsonl(run_dir / "metrics.jsonl", [{M.STEP: 0, **ev}])
        with Progress(TextColumn("[bold]step"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), console=console, disable=not dist.is_main()) as bar:
            task = bar.add_task("train", total=cfg.steps, completed=start, info="")
            for step in range(start, cfg.steps):
                timer = Timer()
                t_step = time.perf_counter()
                slots_all = step_slots(step, P, len(rows), cfg.seed, cfg.data.shuffle)
                my = list(range(dist.rank(), P, dist.world()))  # this rank's prompt slots
                # ---- rollout
                with timer("gen"):
                    rollouts = generate_rollouts(engine, tok, [rows[slots_all[j][1]] for j in my],
                                                 [prompts[slots_all[j][1]] for j in my], my, step, cfg)
                # ---- score
                with timer("reward"):
                    score_rollouts(rollouts, answers, grader, reward_fn)
                batch = {k: v.to(device) for k, v in pad_batch(rollouts, tok.pad_token_id).items()}
                # ---- log-probs of the sampling policy and of the reference
                old_logp = ref_logp = values = None
                if not on_policy or (cfg.algo.kl_in_reward and need_ref):
                    with timer("old_log_prob"), autocast(cfg, device):
                        old_logp, _ = forward_logp(raw_policy, batch, cfg.rollout.temperature, cfg.optim.micro_batch_seqs, False,
                                                   max_tokens=cfg.optim.micro_batch_tokens,
                                                   share_prefix=cfg.optim.share_prompt_prefix)
                if need_ref:
                    with timer("ref"):
                        ref_logp, _ = forward_logp(ref, batch, cfg.rollout.temperature, cfg.optim.micro_batch_seqs, False,
                                                   max_tokens=cfg.optim.micro_batch_tokens,
                                                   share_prefix=cfg.optim.share_prompt_prefix)
                if critic is not None:
                    values = critic_values(critic, batch, cfg.optim.micro_batch_seqs, max_tokens=cfg.optim.micro_batch_tokens)
                # ---- advantages
                with timer("adv"):
                    adv, returns, rewards = compute_advantages(cfg, rollouts, batch, values, old_logp if old_logp is not None
                                                               else batch["sampling_logp"], ref_logp)
                # ---- update
                vf_loss = 0.0
                if critic is not None:
                    with timer("update_critic"):
                        vf_loss = update_critic(cfg, critic, critic_opt, batch, returns, values)
                for g in optimizer.param_groups:
                    g["lr"] = lr_at(step, cfg.optim.lr, cfg.optim.warmup_steps)
                with timer("update_actor"):
                    if critic is not None and step < cfg.algo.critic_warmup_steps:
                        sums = defaultdict(float)
                    else:
                        sums = update_policy(cfg, policy, optimizer, batch, adv, old_logp, ref_logp, on_policy)
                if engine is not raw_policy:
                    with timer("sync"):
                        sync_weights(engine, raw_policy)
                # ---- log
                resp_lens = [len(r.response_ids) for r in rollouts]
                ana = analyse_responses([r.text for r in rollouts])
                local = {
                    "reward_sum": float(rewards.sum()), "reward_sq": float((rewards ** 2).sum()), "n": float(len(rollouts)),
                    "adv_sum": float(adv.float().mean(-1).sum() if adv.dim() == 2 else adv.sum()),
                    "len_sum": float(sum(resp_lens)), "clip_n": float(sum(r.finish_reason == "length" for r in rollouts)),
                    "no_answer": float(sum(r.reason == "no_answer" for r in rollouts)),
                    "timeouts": float(sum(r.reason == "timeout" for r in rollouts)),
                    "reflect": ana["reflection_rate"] * len(rollouts),
                    "zero_std_groups": frac_zero_std_groups(rewards, torch.tensor([r.slot for r in rollouts])) * len(my),
                    "groups": float(len(my)), "vf_loss": vf_loss,
                    **{k: v for k, v in sums.items()},
                }
                tot = dist.all_reduce_sums(local)
                len_max = max(max(resp_lens), *[m for m in dist.all_gather_objects(max(resp_lens))])
                n, ntok = tot["n"], max(tot.get("tokens", 0.0), 1.0)
                mean_r = tot["reward_sum"] / n
                row = {
                    M.STEP: step + 1,
                    M.EPOCH: slots_all[-1][0],
                    M.SCORE_MEAN: mean_r,
                    M.SCORE_STD: max(tot["reward_sq"] / n - mean_r ** 2, 0.0) ** 0.5,
                    M.ADV_MEAN: tot["adv_sum"] / n,
                    M.PG_LOSS: tot.get("pg_loss", 0.0) / ntok,
                    M.KL_LOSS: tot.get("kl_loss", 0.0) / ntok,
                    M.ENTROPY: tot.get("entropy", 0.0) / ntok,
                    M.PG_CLIPFRAC: tot.get("clipfrac", 0.0) / ntok,
                    M.PPO_KL: tot.get("ppo_kl", 0.0) / ntok,
                    M.GRAD_NORM: tot.get("grad_norm", 0.0) / max(tot.get("opt_steps", 0.0), 1.0),
                    M.LR: lr_at(step, cfg.optim.lr, cfg.optim.warmup_steps),
                    M.RESP_LEN_MEAN: tot["len_sum"] / n,
                    M.RESP_LEN_MAX: float(len_max),
                    M.RESP_CLIP_RATIO: tot["clip_n"] / n,
                    M.FRAC_ZERO_STD: tot["zero_std_groups"] / tot["groups"],
                    M.NO_ANSWER_RATE: tot["no_answer"] / n,
                    M.TIMEOUT_RATE: tot["timeouts"] / n,
                    M.REFLECTION_RATE: tot["reflect"] / n,
                }
                if critic is not None:
                    row[M.VALUE_LOSS] = tot["vf_loss"] / dist.world()
                # per-example accuracy, one entry per step an example is drawn (selection's input)
                per_ex = defaultdict(list)
                for part in dist.all_gather_objects([(r.index, r.reward) for r in rollouts]):
                    for idx, rw in part:
                        per_ex[idx].append(rw)
                for idx, rws in per_ex.items():
                    state["acc_history"].setdefault(str(idx), []).append(sum(rws) / len(rws))
                if dist.is_main() and cfg.log_rollouts:
                    gathered = [x for part in dist.all_gather_objects(
                        [{"step": step + 1, "slot": r.slot, "sample": r.sample, "index": r.index, "response": r.text,
                          "pred": r.pred, "reward": r.reward, "reason": r.reason, "length": len(r.response_ids)}
                         for r in rollouts]) for x in part]
                    append_jsonl(run_dir / "rollouts" / f"step_{step + 1}.jsonl", gathered)
                elif cfg.log_rollouts:
                    dist.all_gather_objects([])  # keep collective calls matched across ranks
                # ---- evaluate
                if cfg.eval.benchmarks and (step + 1) % cfg.eval.every == 0:
                    with timer("eval"):
                        row.update(run_eval(step + 1))
                    dist.barrier()
                # ---- save
                if cfg.save_every > 0 and ((step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps):
                    with timer("save"):
                        if dist.is_main():
                            atomic_write_json(run_dir / "acc_history.json", state["acc_history"], indent=None)
                        save_checkpoint(run_dir, step + 1, raw_policy, tok, optimizer, {"acc_history": state["acc_history"]},
                                        critic, critic_opt, keep=cfg.keep_checkpoints)
                timer.t[M.timing("step")] = time.perf_counter() - t_step
                row.update(timer.t)
                row[M.TOKENS_PER_S] = tot["len_sum"] / max(timer.t[M.timing("step")], 1e-9)
                if dist.is_main():
                    append_jsonl(run_dir / "metrics.jsonl", [row])
                    if tb is not None:
                        for k, v in row.items():
                            if isinstance(v, (int, float)) and k != M.STEP:
                                tb.add_scalar(k, v, step + 1)
                    if wandb_run is not None:
                        wandb_run.log(row, step=step + 1)
                last = row
                bar.update(task, advance=1, info=f"reward {mean_r:.3f}  zero-std {row[M.FRAC_ZERO_STD]:.2f}  "
                                                 f"len {row[M.RESP_LEN_MEAN]:.0f}  {row[M.TOKENS_PER_S]:.0f} tok/s")
    finally:
        gc.unfreeze()  # this run's objects may be collected again (the demo and experiments train in one process)
        grader.close()
        if tb is not None:
            tb.close()
        if wandb_run is not None:
            wandb_run.finish()
    whole = dist.full_state_dict(raw_policy)  # a collective when sharded
    if dist.is_main():
        atomic_write_json(run_dir / "acc_history.json", state["acc_history"], indent=None)
        final = run_dir / "final"
        raw_policy.save_pretrained(final, state_dict=whole)
        tok.save_pretrained(final)
    dist.barrier()
    return last
