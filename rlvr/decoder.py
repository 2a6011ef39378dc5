"""A static-KV-cache decoder for Llama-family causal LMs (Qwen2, Llama, Mistral): the weights of a
`transformers` model run by a short functional forward, for sampling.

Why: decoding runs the model once per new token. transformers' generic forward rebuilds masks,
grows its KV cache by concatenation and dispatches many small ops per layer; for the batch sizes of
RL rollouts on CPU (and for small models anywhere) that overhead, not arithmetic, sets the speed.
Here the cache is allocated once for the whole batch (layers, B, kv_heads, prompt + max_new, head_dim),
each step writes one position in place, q/k/v and gate/up projections run as one matmul each, and
attention reads the filled prefix. The arithmetic is the model's own: its RMSNorm epsilon, its
rotary module (so every rope scaling type transformers implements), its projections and biases.
`supports(model)` says which models this covers; others use transformers' forward
(`rlvr.generation` picks automatically). tests/unit/test_decoder.py checks the logits against
transformers' forward with left padding, for Qwen2 (q/k/v biases) and Llama (grouped KV heads).

Step modes. "exact" (CPU default) attends over exactly the filled cache, indexed by a Python int.
"graph" (CUDA default) is for GPUs, where a decode step of a 1.5 B model is hundreds of small kernels
whose launches, not the arithmetic, set the speed: each step reads only device state (the token
buffer, the write position as a tensor, positions, the valid mask) and attends over a fixed span
(the filled cache rounded up to `span_block`, the rest masked), so it is recorded once per span as a
CUDA graph and replayed. "span" is that same step run eagerly (tested on CPU against "exact").
Rotary cos/sin come from a table built once by the model's own rotary module, except for rope types
that rescale with the sequence length (dynamic, longrope), which keep the per-step call and "exact".

compile=True runs a decode step's per-layer pieces before and after attention (`_pre_attention`,
`_post_attention`) through torch.compile: on a GPU their dozen small elementwise kernels per layer become
a few fused ones (recorded into the step's CUDA graph like the rest); attention and the cache writes stay
eager. Prefill is not compiled (a new prompt length would mean compiling again).

cpu_kernel=True (CPU, "exact" mode): a decode step's cache write and attention run in rlvr's C++
kernel (`rlvr.kernels`, built on first use): each row's query meets its cached keys and values in one
pass, where torch ops would run hundreds of tiny matrix-vector products. Keys are then cached in
transposed blocks of 16 positions, (layers, B, kv_heads, blocks, head_dim, 16), the layout the kernel
reads fastest. An fp32 model's whole step (every layer) runs in C++, its projections multiplied by
copies of the weights packed once per decoder (`_PACK_BUDGET`). Where the kernel cannot be built, the
same step runs in torch ops.

kv_dtype (bfloat16/float16 under an fp32 model): keys and values are cached rounded to it, so every decode
step reads half the bytes; the model's arithmetic stays in its dtype (prefill attends over its own unrounded
keys and values). On CPU the C++ kernel reads the narrow cache directly; torch ops convert it each step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_FAMILY = {"qwen2", "llama", "mistral"}
_LENGTH_DEPENDENT_ROPE = {"dynamic", "longrope"}  # cos/sin of a position depend on the sequence length seen


def supports(model) -> bool:
    """A Llama-family decoder with SiLU MLP, full (not sliding-window) attention and a plain LM head."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in _FAMILY:
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "use_sliding_window", False):
        return False
    if getattr(cfg, "model_type", None) == "mistral" and getattr(cfg, "sliding_window", None):
        return False
    if getattr(cfg, "mlp_bias", False):  # Llama's option of biased MLP projections: not run here
        return False
    inner = getattr(model, "model", None)
    return inner is not None and hasattr(inner, "layers") and hasattr(inner, "rotary_emb") and hasattr(model, "lm_head")


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """The Llama-family RMSNorm (normalise in fp32, cast back, then scale) with torch's fused kernel."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), w, eps)
    return w * F.rms_norm(x.float(), (x.shape[-1],), None, eps).to(x.dtype)


def _bias(mask: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask (True = attend) as the additive fp32 bias the scores take (0 or -inf)."""
    return torch.where(mask, 0.0, float("-inf"))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding. x (B, H, T, D), cos/sin (B, 1, T, D)."""
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
    """Masked softmax attention with grouped KV heads, as plain matmuls (for a few query positions
    this beats the fused CPU kernel several times over). q (B, H, T, D), k/v (B, Hkv, S, D),
    bias (B, 1, T, S) from `_bias` -> (B, H, T, D)."""
    B, H, T, D = q.shape
    hkv = k.shape[1]
    g = H // hkv
    if k.dtype != q.dtype:  # a cache in a narrower dtype (kv_dtype)
        k, v = k.to(q.dtype), v.to(q.dtype)
    qg = q.reshape(B, hkv, g * T, D)  # heads of a group share their KV head
    s = torch.matmul(qg, k.transpose(-1, -2)).float() * scale  # (B, Hkv, g*T, S)
    s = s.view(B, hkv, g, T, -1) + bias[:, :, None]
    p = torch.softmax(s, dim=-1).to(v.dtype).view(B, hkv, g * T, -1)
    return torch.matmul(p, v).view(B, H, T, D)


def _attend_shared(q: torch.Tensor, pk: torch.Tensor, pv: torch.Tensor, pbias: torch.Tensor, k: torch.Tensor,
                   v: torch.Tensor, scale: float) -> torch.Tensor:
    """One decode position's attention when consecutive rows share their prompt: the prompt's keys and
    values are held once per unit of g rows and each unit's queries meet them in one matrix product,
    instead of every row reading its own copy; the rows' own (response) keys as usual; one softmax over
    both. q (B, H, 1, D); pk/pv (U, Hkv, P, D) with B = U * g; pbias (U, P) from `_bias`; k/v
    (B, Hkv, S, D) the positions after the prompt -> (B, H, 1, D)."""
    B, H, _, D = q.shape
    U, hkv, P, _ = pk.shape
    g, rep = B // U, H // hkv
    if k.dtype != q.dtype:  # a cache in a narrower dtype (kv_dtype)
        pk, pv, k, v = pk.to(q.dtype), pv.to(q.dtype), k.to(q.dtype), v.to(q.dtype)

    def to_units(x: torch.Tensor) -> torch.Tensor:  # (B, hkv, rep, n) -> (U, hkv, g * rep, n)
        return x.reshape(U, g, hkv, rep, x.shape[-1]).transpose(1, 2).reshape(U, hkv, g * rep, x.shape[-1])

    def to_rows(x: torch.Tensor) -> torch.Tensor:  # the inverse
        return x.reshape(U, hkv, g, rep, x.shape[-1]).transpose(1, 2).reshape(B, hkv, rep, x.shape[-1])

    qr = q.reshape(B, hkv, rep, D)  # heads of a group share their KV head
    sp = torch.matmul(to_units(qr), pk.transpose(-1, -2)).float() * scale  # (U, hkv, g*rep, P)
    sp = sp + pbias[:, None, None, :]
    so = torch.matmul(qr, k.transpose(-1, -2)).float() * scale  # (B, hkv, rep, S)
    p = torch.softmax(torch.cat([to_rows(sp), so], -1), dim=-1).to(v.dtype)
    out = to_rows(torch.matmul(to_units(p[..., :P]), pv)) + torch.matmul(p[..., P:], v)
    return out.reshape(B, H, 1, D)


def _pre_attention(h: torch.Tensor, ln1: torch.Tensor, qkv_w: torch.Tensor, qkv_b: torch.Tensor | None, cos: torch.Tensor,
                   sin: torch.Tensor, eps: float, n_heads: int, n_kv: int, head_dim: int):
    """A layer up to attention: RMSNorm, the joint q/k/v projection, rotary on q and k.
    h (B, T, hidden) -> q (B, H, T, D), k and v (B, Hkv, T, D)."""
    B, T, _ = h.shape
    qkv = F.linear(_rms(h, ln1, eps), qkv_w, qkv_b)
    nq, nk = n_heads * head_dim, n_kv * head_dim
    qk = _rotate(qkv[..., :nq + nk].view(B, T, n_heads + n_kv, head_dim).transpose(1, 2), cos, sin)
    v = qkv[..., nq + nk:].view(B, T, n_kv, head_dim).transpose(1, 2)
    return qk[:, :n_heads], qk[:, n_heads:], v


def _post_attention(h: torch.Tensor, att: torch.Tensor, o_w: torch.Tensor, o_b: torch.Tensor | None, ln2: torch.Tensor,
                    gu_w: torch.Tensor, down_w: torch.Tensor, eps: float, inter: int) -> torch.Tensor:
    """A layer after attention: output projection and residual, RMSNorm, SiLU-gated MLP and residual.
    h (B, T, hidden), att (B, H, T, D) -> (B, T, hidden)."""
    B, T, _ = h.shape
    h = h + F.linear(att.transpose(1, 2).reshape(B, T, -1), o_w, o_b)
    gu = F.linear(_rms(h, ln2, eps), gu_w)
    return h + F.linear(F.silu(gu[..., :inter]) * gu[..., inter:], down_w)


class _Compiled:
    """A function run through torch.compile (inductor: fused elementwise kernels around the matrix
    products), falling back to the plain function, with one warning, if compiling fails (no C++ compiler
    or Triton on this machine, an unsupported op)."""

    def __init__(self, fn):
        self.fn, self.compiled = fn, torch.compile(fn, fullgraph=True)

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: run it eagerly
                import warnings

                warnings.warn(f"rlvr decoder: torch.compile failed ({type(e).__name__}: {str(e)[:200]}); "
                              "decoding eagerly", stacklevel=2)
                self.compiled = None
        return self.fn(*args)


_COMPILED: dict = {}  # one wrapper per function for the process: a failure warns once, decoders share the compiled code


def _compiled(fn) -> _Compiled:
    if fn not in _COMPILED:
        _COMPILED[fn] = _Compiled(fn)
    return _COMPILED[fn]


_BLOCK = 16  # key positions per transposed block in the C++ kernel's cache layout (rlvr/kernels)
# The fused fp32 step multiplies by copies of the projection weights laid out in panels (rlvr/kernels/linear.h),
# made once per decoder (a generation batch) while they take at most this many bytes; larger models multiply
# by the weights as they are (ATen's BLAS)
_PACK_BUDGET = 1 << 30


def _blocked(k: torch.Tensor) -> torch.Tensor:
    """Keys (..., P, D) -> (..., ceil(P / _BLOCK), D, _BLOCK): transposed blocks, zero-padded."""
    P, D = k.shape[-2:]
    pad = -P % _BLOCK
    if pad:
        k = torch.cat([k, k.new_zeros((*k.shape[:-2], pad, D))], -2)
    return k.unflatten(-2, (-1, _BLOCK)).transpose(-1, -2).contiguous()


def _shared_units(inverse: torch.Tensor) -> int:
    """The largest g such that each run of g consecutive rows has one prompt (inverse: row -> distinct
    prompt), or 1. Rows of a GRPO group are consecutive, so g is at least the group size when the batch
    holds whole groups."""
    change = torch.nonzero(inverse[1:] != inverse[:-1]).squeeze(1) + 1
    bounds = [0, *change.tolist(), inverse.shape[0]]
    return math.gcd(*(b - a for a, b in zip(bounds, bounds[1:])))


class StaticDecoder:
    """Prefill a left-padded batch once, then one token per `step`; logits of the last position.

    decoder = StaticDecoder(model, batch=B, max_len=prompt_len + max_new)
    logits = decoder.prefill(input_ids, attention_mask)   # (B, V)
    logits = decoder.step(next_tokens)                    # (B, V), repeat
    decoder.keep(rows)                                    # drop finished rows; later steps take len(rows)

    mode: "exact", "span", "graph" or "auto" (graph on CUDA when the rope allows, else exact); see the
    module docstring. In graph mode the returned logits are a buffer the next step overwrites.
    """

    @torch.no_grad()
    def __init__(self, model, batch: int, max_len: int, mode: str = "auto", span_block: int = 256,
                 share_prompts: bool = True, compile: bool = False, cpu_kernel: bool = True,
                 kv_dtype: torch.dtype | None = None):
        cfg = model.config
        inner = model.model
        self.model = model
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.kv_dtype = kv_dtype or self.dtype
        if self.kv_dtype != self.dtype and not (self.dtype == torch.float32 and self.kv_dtype in (torch.bfloat16, torch.float16)):
            raise ValueError(f"kv_dtype must be the model's dtype ({self.dtype}), or bfloat16/float16 under an fp32 "
                             f"model; got {kv_dtype}")
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.scale = self.head_dim ** -0.5
        self.rotary = inner.rotary_emb
        self.embed = inner.embed_tokens.weight
        self.norm_w = inner.norm.weight
        self.lm_head = model.lm_head.weight
        self.lm_bias = getattr(model.lm_head, "bias", None)
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            qkv_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
            biases = [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]
            qkv_b = torch.cat(biases) if all(b is not None for b in biases) else None
            self.layers.append({
                "ln1": layer.input_layernorm.weight, "ln2": layer.post_attention_layernorm.weight,
                "qkv_w": qkv_w, "qkv_b": qkv_b, "o_w": a.o_proj.weight, "o_b": a.o_proj.bias,
                "gu_w": torch.cat([m.gate_proj.weight, m.up_proj.weight]), "down_w": m.down_proj.weight,
            })
        self.inter = inner.layers[0].mlp.gate_proj.weight.shape[0]
        self.valid = torch.zeros((batch, max_len), dtype=torch.bool, device=self.device)  # attendable positions
        self.pos = torch.zeros(batch, dtype=torch.long, device=self.device)  # next rotary position per row
        self.t = 0  # filled cache length
        self.max_len = max_len
        self.rope_table = None
        if getattr(self.rotary, "rope_type", "default") not in _LENGTH_DEPENDENT_ROPE:
            cos, sin = self.rotary(self.embed[:1, None], torch.arange(max_len, device=self.device)[None])
            self.rope_table = (cos[0], sin[0])  # (max_len, head_dim) each
        if mode == "auto":
            mode = "graph" if self.device.type == "cuda" and self.rope_table is not None else "exact"
        if mode not in ("exact", "span", "graph"):
            raise ValueError(f"StaticDecoder mode must be auto, exact, span or graph, got {mode!r}")
        if mode != "exact" and self.rope_table is None:
            raise ValueError(f"mode {mode!r} needs a position-only rope; this model's rope type is "
                             f"{self.rotary.rope_type!r}: use mode='exact'")
        if mode == "graph" and self.device.type != "cuda":
            raise ValueError("mode 'graph' records CUDA graphs: the model must be on a CUDA device")
        self.mode, self.span_block = mode, span_block
        self.kernel = None  # rlvr's C++ decode attention (CPU, exact mode); keys are then cached transposed
        self.fused = None  # rlvr's C++ decode step over every layer (fp32, position-only rope, not compiled)
        if cpu_kernel and mode == "exact" and self.device.type == "cpu":
            from rlvr.kernels import decode_attention, decode_layers, pack_panels

            self.kernel = decode_attention()
            if self.kernel is not None and self.dtype == torch.float32 and self.rope_table is not None and not compile:
                self.fused = decode_layers()
                none = self.embed.new_zeros(0)
                projections = ("qkv_w", "o_w", "gu_w", "down_w")
                packed = sum(w[k].numel() * 4 for w in self.layers for k in projections) <= _PACK_BUDGET
                pack = pack_panels() if packed else (lambda t: t)
                self._flat = [t if t is not None else none for w in self.layers for t in
                              (w["ln1"], pack(w["qkv_w"]), w["qkv_b"], pack(w["o_w"]), w["o_b"], w["ln2"], pack(w["gu_w"]),
                               pack(w["down_w"]))]
        shape = (len(self.layers), batch, self.n_kv, max_len, self.head_dim)
        # exact mode reads only the positions written so far (the kernel may load a block's unwritten slots,
        # but never uses them): no need to clear the cache; span and graph modes mask slots they read
        alloc = torch.empty if mode == "exact" else torch.zeros
        if self.kernel is not None:  # keys in transposed blocks of _BLOCK positions
            kshape = (len(self.layers), batch, self.n_kv, -(-max_len // _BLOCK), self.head_dim, _BLOCK)
            self.k = alloc(kshape, dtype=self.kv_dtype, device=self.device)
        else:
            self.k = alloc(shape, dtype=self.kv_dtype, device=self.device)
        self.v = alloc(shape, dtype=self.kv_dtype, device=self.device)
        self._no_prompt = (self.k.new_zeros((1, self.n_kv, 0, self.head_dim, _BLOCK)),
                           self.v.new_zeros((1, self.n_kv, 0, self.head_dim)), torch.zeros((1, 0), dtype=torch.bool))
        n = len(self.layers)  # the same, per layer, as the whole-step kernel takes it
        self._no_prompts = ([self._no_prompt[0]] * n, [self._no_prompt[1]] * n, self._no_prompt[2])
        self.share_prompts = share_prompts
        self.shared = None  # exact mode, rows sharing prompts: prompt length, units, pk/pv per layer, prompt bias per unit
        self._t_idx = torch.zeros(1, dtype=torch.long, device=self.device)  # write position, as device state
        self._tok = torch.zeros(batch, dtype=torch.long, device=self.device)  # the step's input tokens
        self._graphs: dict[tuple[int, int], tuple] = {}  # (rows, span) -> (CUDA graph, its logits buffer)
        self._pool = None
        # decode steps (one new position) may run the layer's pieces compiled; prefill runs them as they are
        self._pre_step = _compiled(_pre_attention) if compile else _pre_attention
        self._post_step = _compiled(_post_attention) if compile else _post_attention

    @property
    def drops_rows(self) -> bool:
        """Whether `keep` pays: eagerly, a smaller batch is less work; with graphs, rows cost little
        (the step is bound by reading the weights) and a new batch size means recording again."""
        return self.mode != "graph"

    def _rope(self, h: torch.Tensor, positions: torch.Tensor):
        """cos, sin for positions (B, T): (B, 1, T, head_dim) each."""
        if self.rope_table is None:
            cos, sin = self.rotary(h, positions)
        else:
            cos, sin = F.embedding(positions, self.rope_table[0]), F.embedding(positions, self.rope_table[1])
        return cos.unsqueeze(1), sin.unsqueeze(1)

    def _write(self, i: int, k: torch.Tensor, v: torch.Tensor, lo: int) -> None:
        """Cache layer i's keys and values k, v (B, Hkv, T, D) at positions [lo, lo + T)."""
        hi = lo + k.shape[2]
        self.v[i, :, :, lo:hi] = v
        if self.kernel is None:
            self.k[i, :, :, lo:hi] = k
            return
        for b0 in range(lo - lo % _BLOCK, hi, _BLOCK):  # blocked: (B, Hkv, blocks, D, _BLOCK)
            a, c = max(lo, b0), min(hi, b0 + _BLOCK)
            self.k[i, :, :, b0 // _BLOCK, :, a - b0:c - b0] = k[:, :, a - lo:c - lo].transpose(-1, -2)

    def _keys(self, i: int, end: int) -> torch.Tensor:
        """Layer i's cached keys at positions [0, end) as (B, Hkv, end, D), whatever the layout."""
        if self.kernel is None:
            return self.k[i, :, :, :end]
        blocks = self.k[i, :, :, :-(-end // _BLOCK)]
        return blocks.transpose(-1, -2).flatten(2, 3)[:, :, :end]

    def _layer(self, i: int, h: torch.Tensor, cos, sin, bias: torch.Tensor | None, span: int | None = None,
               expand: torch.Tensor | None = None) -> torch.Tensor:
        """One decoder layer over the new positions h (B, T, hidden); writes their k/v at [t, t+T), or
        (span given, T = 1) at the device index _t_idx, attending over the first `span` cache slots.
        expand (prefill of distinct prompts, t = 0): h holds U distinct rows, batch row r's cache is a copy
        of row expand[r]'s."""
        w = self.layers[i]
        T = h.shape[1]
        pre, post = (self._pre_step, self._post_step) if T == 1 else (_pre_attention, _post_attention)
        q, k, v = pre(h, w["ln1"], w["qkv_w"], w["qkv_b"], cos, sin, self.eps, self.n_heads, self.n_kv, self.head_dim)
        if expand is not None:
            self._write(i, k.index_select(0, expand), v.index_select(0, expand), 0)
            if self.shared is not None:
                pk = k.index_select(0, self.shared["units"]).to(self.kv_dtype)
                self.shared["k"].append(_blocked(pk) if self.kernel is not None else pk)
                self.shared["v"].append(v.index_select(0, self.shared["units"]).to(self.kv_dtype).contiguous())
            att = _attend(q, k, v, bias, self.scale)
        elif span is not None:
            self.k[i].index_copy_(2, self._t_idx, k.to(self.kv_dtype))
            self.v[i].index_copy_(2, self._t_idx, v.to(self.kv_dtype))
            att = _attend(q, self.k[i, :, :, :span], self.v[i, :, :, :span], bias, self.scale)
        elif self.kernel is not None and T == 1:  # writes k, v at position t and attends, in C++
            sh = self.shared
            pk, pv, pmask = (sh["k"][i], sh["v"][i], sh["mask"]) if sh is not None else self._no_prompt
            B, H, _, D = q.shape
            att = self.kernel(q.reshape(B, H, D), k.reshape(B, self.n_kv, D), v.reshape(B, self.n_kv, D), pk, pv,
                              pmask, self.k[i], self.v[i], self.valid, pv.shape[2], self.t, self.scale).view(B, H, 1, D)
        else:
            end = self.t + T
            self._write(i, k, v, self.t)
            sh = self.shared
            if sh is not None and T == 1:
                P = sh["len"]
                att = _attend_shared(q, sh["k"][i], sh["v"][i], sh["bias"], self._keys(i, end)[:, :, P:],
                                     self.v[i, :, :, P:end], self.scale)
            else:
                att = _attend(q, self._keys(i, end), self.v[i, :, :, :end], bias, self.scale)
        return post(h, att, w["o_w"], w["o_b"], w["ln2"], w["gu_w"], w["down_w"], self.eps, self.inter)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor,
                 expand: torch.Tensor | None = None, span: int | None = None) -> torch.Tensor:
        """The new positions ids (B, T) through every layer (see `_layer` for expand and span) -> logits of
        the last one (B, V). The caller advances t."""
        if self.fused is not None and ids.shape[1] == 1 and span is None:  # a decode step, all layers in C++
            sh = self.shared
            pk, pv, pmask = (sh["k"], sh["v"], sh["mask"]) if sh is not None else self._no_prompts
            last = self.fused(F.embedding(ids[:, 0], self.embed), self._flat, self.norm_w, *self.rope_table,
                              positions[:, 0], self.n_heads, self.eps, pk, pv, pmask, self.k, self.v, self.valid,
                              pv[0].shape[2], self.t, self.scale)
            return F.linear(last, self.lm_head, self.lm_bias)
        h = F.embedding(ids, self.embed)
        cos, sin = self._rope(h, positions)
        # the C++ kernel reads the valid mask itself
        bias = None if self.kernel is not None and ids.shape[1] == 1 and span is None else _bias(mask)
        for i in range(len(self.layers)):
            h = self._layer(i, h, cos, sin, bias, span, expand)
        last = _rms(h[:, -1], self.norm_w, self.eps)
        return F.linear(last, self.lm_head, self.lm_bias)

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Left-padded prompts (B, L) and their mask -> next-token logits (B, V)."""
        B, L = input_ids.shape
        attn = attention_mask.bool()
        self.valid[:, :L] = attn
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.pos = positions[:, -1] + 1
        self._t_idx.fill_(L)
        self._graphs.clear()
        # rows with the same prompt (a GRPO group, a 1-shot batch) run it once; their caches are copies
        expand = None
        self.shared = None
        if B > 1 and self.share_prompts:
            uniq, inverse = torch.unique(torch.cat([input_ids, attention_mask.long()], 1), dim=0, return_inverse=True)
            if uniq.shape[0] < B:
                rep = torch.empty(uniq.shape[0], dtype=torch.long, device=self.device)
                rep.scatter_(0, inverse, torch.arange(B, device=self.device))  # one row of each distinct prompt
                input_ids, attn, positions, expand = input_ids[rep], attn[rep], positions[rep], inverse
                g = _shared_units(inverse) if self.mode == "exact" else 1
                if g > 1:  # decode steps read each unit's prompt keys once (_attend_shared)
                    pmask = attn[inverse[::g]]
                    self.shared = {"len": L, "units": inverse[::g], "mask": pmask, "bias": _bias(pmask), "k": [], "v": []}
        causal = torch.ones((L, L), dtype=torch.bool, device=self.device).tril()
        mask = causal[None] & attn[:, None, :]  # (b, L, L): causal and not padding
        mask = mask | torch.eye(L, dtype=torch.bool, device=self.device)[None]  # pad rows attend to themselves
        logits = self._forward(input_ids, positions, mask[:, None], expand)
        self.t = L
        return logits if expand is None else logits.index_select(0, expand)

    @torch.no_grad()
    def keep(self, rows: torch.Tensor) -> None:
        """Keep only these batch rows (LongTensor of current row indices, in the order given): the
        cache, masks and positions of the others are dropped, and later steps take len(rows) tokens.
        Per-step cost grows with the batch, so dropping finished sequences speeds up the rest."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)
        self.valid = self.valid.index_select(0, rows)
        self.pos = self.pos.index_select(0, rows)
        self._tok = self._tok[:len(rows)].clone()
        self._graphs.clear()  # they read the old buffers
        self.shared = None  # the kept rows need not form whole units; each row's cache holds its prompt too

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """The tokens just sampled (B,) -> next-token logits (B, V)."""
        if self.mode == "exact":
            self.valid[:, self.t] = True
            mask = self.valid[:, None, None, :self.t + 1]  # (B, 1, 1, t+1)
            logits = self._forward(tokens[:, None], self.pos[:, None], mask)
            self.t += 1
            self.pos = self.pos + 1
            return logits
        if self.t >= self.max_len:
            raise IndexError(f"the KV cache holds {self.max_len} positions; all are filled")
        span = min(self.max_len, -(-(self.t + 1) // self.span_block) * self.span_block)
        self._tok.copy_(tokens)
        if self.mode == "span":
            logits = self._static_step(span)
        elif (key := (len(self._tok), span)) in self._graphs:
            graph, logits = self._graphs[key]
            graph.replay()
        else:
            logits = self._record(key, span)
        self.t += 1
        return logits

    def _static_step(self, span: int) -> torch.Tensor:
        """One decode step that reads only device state (_tok, pos, _t_idx, valid) and advances it:
        the same kernels whatever the step, so it can be recorded as a CUDA graph."""
        self.valid.index_fill_(1, self._t_idx, True)
        mask = self.valid[:, None, None, :span]  # (B, 1, 1, span); slots past the write position are False
        logits = self._forward(self._tok[:, None], self.pos[:, None], mask, span=span)
        self.pos.add_(1)
        self._t_idx.add_(1)
        return logits

    def _record(self, key: tuple[int, int], span: int) -> torch.Tensor:
        """First step at this (rows, span): run it eagerly on a side stream (a real step, which also
        warms up the libraries' workspaces), then record the same step as a graph for the next ones.
        Recording runs nothing, so the state advances once."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            logits = self._static_step(span)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            out = self._static_step(span)
        self._graphs[key] = (graph, out)
        return logits.clone()
