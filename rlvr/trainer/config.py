"""Training configuration: one dataclass per concern, every field documented (units, paper source).

Sizes are named by what they count: `prompts_per_step` (distinct prompt slots per optimiser step,
across all ranks), `samples_per_prompt` (G), `micro_batch_seqs` (sequences per forward/backward).
Derived sizes and cross-field checks live in `TrainConfig.validate`, whose errors say what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class ModelConfig:
    path: str = _f("testbed", "policy: a local Hugging Face model folder, or `testbed` (the embedded base model)")
    dtype: Literal["auto", "float32", "bfloat16"] = _f("auto", "parameter dtype; auto = fp32 on CPU, bf16 on GPU")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward to save memory (GPU presets)")
    mixed_precision: Literal["none", "bf16"] = _f(
        "none", "bf16: policy forward/backward under bf16 autocast, master weights and optimiser in `dtype`")
    rollout_dtype: Literal["auto", "float32", "bfloat16"] = _f(
        "auto", "weights of the rollout engine and the reference model; auto = `dtype`. bfloat16 keeps a bf16 "
        "copy of the policy for sampling, synced after every update (fp32 master weights stay in training)")
    attention: Literal["auto", "rlvr", "sdpa", "eager"] = _f(
        "auto", "attention of the training and reference passes: rlvr = rlvr's C++ kernel (CPU, fp32 or bf16 "
        "passes; other calls go to sdpa), sdpa/eager = transformers' own; auto = rlvr on CPU where the kernel builds, else the "
        "model's default")
    fused_layers: bool = _f(
        True, "on CPU, run the training and reference passes' RMSNorms and SiLU-gated MLP activations in rlvr's C++ "
        "kernels (one pass over memory each, forward and backward; rlvr.fused); no effect on GPU or where they "
        "cannot be built")
    reference_dtype: Literal["auto", "float32", "bfloat16"] = _f(
        "auto", "weights of the reference model (KL term); auto = `rollout_dtype`. bfloat16 with fp32 rollouts "
        "is the fastest mix on CPUs, where small bf16 decode steps are slower than fp32 ones")


@dataclass
class DataConfig:
    train: str = _f("testbed/pool", "training data: a registered dataset name or a verl .parquet/.jsonl file")
    indices: list[int] | None = _f(None, "keep only these pool indices (extra_info.index), e.g. [124] for pi1")
    repeat: int | None = _f(None, "duplicate the selected examples to this many rows (the paper: 128)")
    template: str = _f("deepscaler", "prompt template name (rlvr.data.templates); the paper trains with deepscaler")
    shuffle: bool = _f(True, "seeded reshuffle of the training rows every epoch")


@dataclass
class RolloutConfig:
    samples_per_prompt: int = _f(8, "G: responses sampled per prompt (the paper: 8)")
    temperature: float = _f(0.6, "sampling temperature; log-probs are computed at the same temperature (the paper: 0.6)")
    top_p: float = _f(1.0, "nucleus sampling threshold (the paper: 1.0)")
    max_response_tokens: int = _f(3072, "response token limit (the paper: 3,072)")
    generation_batch_seqs: int = _f(64, "sequences per generation batch")
    ignore_eos: bool = _f(False, "never sample EOS, so every response has max_response_tokens (benchmarks)")
    cuda_graphs: bool = _f(True, "on a GPU, replay each decode step of the static-KV-cache decoder as a CUDA graph")
    compile: bool = _f(False, "run the decoder's per-layer pieces through torch.compile (fused elementwise kernels; "
                              "compiles once per process, falls back to eager if compiling fails)")
    cpu_kernel: bool = _f(True, "on CPU, run decode steps in rlvr's C++ kernels (an fp32 model's whole step, else "
                                "the attention; built once per machine, about a minute; torch ops where they cannot be "
                                "built)")
    kv_cache_dtype: Literal["auto", "bfloat16", "float16"] = _f(
        "auto", "the decoder's KV cache dtype: auto = the rollout model's; bfloat16 under an fp32 model halves the "
                "bytes each decode step reads (keys/values rounded; the model's arithmetic stays fp32)")
    backend: Literal["hf"] = _f("hf", "rollout engine; hf = rlvr.generation on the training model (vLLM: later)")


@dataclass
class AlgoConfig:
    adv_estimator: Literal["grpo", "dr_grpo", "gae"] = _f("grpo", "grpo (DeepSeekMath), dr_grpo (no std division), gae (PPO with a critic)")
    pg_coef: float = _f(1.0, "policy-gradient loss coefficient; 0 gives the paper's entropy-only ablation")
    kl_coef: float = _f(0.001, "KL loss coefficient against the frozen reference policy (the paper: 0.001)")
    kl_kind: Literal["k1", "k2", "k3", "low_var_kl"] = _f("low_var_kl", "KL estimator (the paper: low_var_kl)")
    kl_in_reward: bool = _f(False, "apply the KL as a per-token reward penalty (PPO style) instead of a loss")
    entropy_coef: float = _f(0.001, "entropy coefficient: loss = pg - entropy_coef * entropy (the paper: 0.001; negative penalises entropy)")
    clip_low: float = _f(0.2, "PPO clip ratio below 1 (the paper: 0.2)")
    clip_high: float = _f(0.2, "PPO clip ratio above 1; > clip_low is DAPO's clip-higher")
    dual_clip_c: float | None = _f(None, "dual-clip bound c > 1 for negative advantages (None = off)")
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = _f(
        "token-mean", "loss aggregation (verl's default token-mean)")
    gamma: float = _f(1.0, "GAE discount (gae only)")
    lam: float = _f(1.0, "GAE lambda (gae only)")
    value_clip: float = _f(0.5, "critic value-loss clip range (gae only)")
    critic_lr: float = _f(1e-5, "critic learning rate (gae only)")
    critic_warmup_steps: int = _f(0, "steps that train only the critic before the policy moves (gae only)")


@dataclass
class OptimConfig:
    lr: float = _f(1e-6, "policy learning rate (the paper: 1e-6, constant)")
    weight_decay: float = _f(0.01, "AdamW weight decay (verl default 0.01)")
    betas: list[float] = _f([0.9, 0.999], "AdamW betas")
    warmup_steps: int = _f(0, "linear learning-rate warm-up, optimiser steps")
    grad_clip: float = _f(1.0, "gradient-norm clip (the paper: 1.0)")
    prompts_per_step: int = _f(128, "prompt slots per rollout step across all ranks (the paper: 128)")
    mini_batches_per_step: int = _f(1, "optimiser steps per rollout batch (the paper: 1 = whole batch)")
    ppo_epochs: int = _f(1, "passes over each rollout batch (the paper: 1)")
    micro_batch_seqs: int = _f(16, "sequences per forward/backward (gradient accumulation fills the mini-batch)")
    micro_batch_tokens: int = _f(0, "also cap a forward/backward at this many padded tokens (rows x its longest "
                                    "row; 0 = no cap): long responses then go a few rows at a time, short ones "
                                    "many (verl: ppo_max_token_len_per_gpu)")
    share_prompt_prefix: bool = _f(True, "run a prompt that several rows of a pass share (a GRPO group, a 1-shot "
                                         "batch) once and attend to its cache from each row; same log-probs, fewer "
                                         "tokens (gradient passes: one process without gradient checkpointing)")


@dataclass
class EvalConfigSection:
    benchmarks: list[str] = _f([], "benchmarks evaluated every `every` steps and at step 0 (empty = none)")
    every: int = _f(20, "evaluate every N steps (the paper: 20)")
    protocol: str = _f("paper", "rlvr.eval protocol preset")
    n_samples: int | None = _f(None, "override the protocol's samples per problem")
    limit: int | None = _f(None, "only the first N problems of each benchmark (faster periodic evals)")
    template: str | None = _f(None, "override the protocol's template")
    at_start: bool = _f(True, "evaluate the step-0 policy (the baseline, from the same harness)")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the policy"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "sampling"})
    algo: AlgoConfig = field(default_factory=AlgoConfig, metadata={"help": "advantages and loss terms"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimiser and batch sizes"})
    eval: EvalConfigSection = field(default_factory=EvalConfigSection, metadata={"help": "periodic evaluation"})
    steps: int = _f(2000, "rollout steps (= optimiser steps with one mini-batch) (the paper: 2,000)")
    seed: int = _f(0, "seed for initialisation-free randomness: data order and sampling")
    run_dir: str = _f("runs/run", "output folder: config, metrics, checkpoints, rollouts")
    save_every: int = _f(20, "checkpoint every N steps and at the end; 0 = never (benchmarks)")
    keep_checkpoints: int = _f(2, "keep the newest N checkpoints")
    log_rollouts: bool = _f(True, "write every rollout (prompt index, response, reward) to rollouts/step_N.jsonl")
    threads: int | None = _f(None, "torch CPU threads (None = torch default)")
    strategy: Literal["ddp", "fsdp"] = _f("ddp", "under torchrun: ddp (a whole model per rank) or fsdp (FSDP2: "
                                                 "parameters, gradients and optimiser state sharded over ranks)")
    grader_workers: int = _f(2, "grading worker processes")
    grader_timeout: float = _f(5.0, "grading wall-clock limit per response, seconds")
    tensorboard: bool = _f(True, "write tensorboard event files to run_dir/tb")
    wandb_project: str | None = _f(None, "log to this Weights & Biases project (needs the wandb extra)")
    reward_fn: str | None = _f(None, "a custom reward `module:function(response, answer) -> float` used instead of "
                                     "the math verifier (runs in the trainer process, no time limit)")

    def validate(self) -> None:
        from rlvr.errors import UserError

        o, r = self.optim, self.rollout
        if self.steps < 1:
            raise UserError("steps must be >= 1")
        if o.prompts_per_step < 1 or r.samples_per_prompt < 1:
            raise UserError("optim.prompts_per_step and rollout.samples_per_prompt must be >= 1")
        seqs = o.prompts_per_step * r.samples_per_prompt
        if seqs % o.mini_batches_per_step:
            raise UserError(f"the step's {seqs} sequences (prompts_per_step x samples_per_prompt) do not split into "
                            f"optim.mini_batches_per_step={o.mini_batches_per_step} equal mini-batches")
        if o.micro_batch_seqs < 1 or o.micro_batch_tokens < 0:
            raise UserError("optim.micro_batch_seqs must be >= 1 and optim.micro_batch_tokens >= 0 (0 = no token cap)")
        if self.algo.adv_estimator in ("grpo", "dr_grpo") and r.samples_per_prompt < 2:
            raise UserError("GRPO compares samples of a group: set rollout.samples_per_prompt >= 2")
        if r.temperature <= 0:
            raise UserError("rollout.temperature must be > 0 for RL (greedy rollouts give no exploration)")
        if self.algo.clip_low < 0 or self.algo.clip_high < 0:
            raise UserError("clip ratios must be >= 0")
