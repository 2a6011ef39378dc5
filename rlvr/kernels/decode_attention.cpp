// One decode position's attention over a static KV cache, for CPUs.
//
// In torch ops a decode step reads the cache through hundreds of tiny batched matrix-vector
// products and writes the new key and value with strided copies. Here one call writes the new
// position's key and value into the cache and attends over it: each (row, query head) is one work
// item (query heads sharing a KV head are consecutive items), split over the ATen thread pool; its
// query meets every cached key once, one softmax, one weighted sum of the values.
//
// Keys are cached in blocks of 16 positions, each block transposed: (rows, kv_heads, blocks,
// head_dim, 16). A block is one contiguous stretch of memory, and the 16 query-key products of a
// block are 16 vector lanes (no sum across lanes per position). Values stay (rows, kv_heads,
// positions, head_dim). Optionally a prompt that consecutive rows share (a GRPO group) is held once
// per unit of rows and joined with the rows' own positions in the same softmax. The cache has the
// queries' dtype, or bf16/fp16 under fp32 queries (half the bytes to read per step, for a model that
// otherwise decodes in fp32). Accumulation is in fp32 whatever the dtypes; results do not depend on the
// number of threads (each item is computed by one thread, in position order).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

using rlvr::exp_nonpositive;
using rlvr::to_float;

constexpr int64_t BLOCK = 16;  // key positions per transposed block

// out[j - lo] = q . key(j) for positions lo <= j < hi of blocked keys (blocks, D, BLOCK).
template <int64_t DD, typename T>
inline void scores(const float* __restrict q, const T* __restrict keys, int64_t lo, int64_t hi, int64_t D_,
                   float* __restrict out) {
  const int64_t D = DD > 0 ? DD : D_;
  for (int64_t b0 = lo - lo % BLOCK; b0 < hi; b0 += BLOCK) {
    const T* blk = keys + (b0 / BLOCK) * D * BLOCK;
    float acc[BLOCK] = {};
    for (int64_t d = 0; d < D; ++d) {
      const float qd = q[d];
#pragma omp simd
      for (int64_t l = 0; l < BLOCK; ++l) acc[l] += qd * to_float(blk[d * BLOCK + l]);
    }
    const int64_t first = std::max(b0, lo), last = std::min(b0 + BLOCK, hi);
    for (int64_t j = first; j < last; ++j) out[j - lo] = acc[j - b0];
  }
}

// out += sum_j w[j] * values[j], values (n, D) rows; the accumulator stays in registers for a fixed D.
template <int64_t DD, typename T>
inline void weighted_sum(const float* __restrict w, const T* __restrict values, int64_t n, int64_t D_,
                         float* __restrict out) {
  const int64_t D = DD > 0 ? DD : D_;
  if constexpr (DD > 0) {
    float acc[DD];
    for (int64_t d = 0; d < DD; ++d) acc[d] = out[d];
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j];
      const T* vj = values + j * DD;
#pragma omp simd
      for (int64_t d = 0; d < DD; ++d) acc[d] += wj * to_float(vj[d]);
    }
    for (int64_t d = 0; d < DD; ++d) out[d] = acc[d];
  } else {  // other head sizes: 16 lanes at a time in registers, the rest of the head alone
    int64_t d0 = 0;
    for (; d0 + 16 <= D; d0 += 16) {
      float acc[16];
      for (int64_t d = 0; d < 16; ++d) acc[d] = out[d0 + d];
      for (int64_t j = 0; j < n; ++j) {
        const float wj = w[j];
        const T* vj = values + j * D + d0;
#pragma omp simd
        for (int64_t d = 0; d < 16; ++d) acc[d] += wj * to_float(vj[d]);
      }
      for (int64_t d = 0; d < 16; ++d) out[d0 + d] = acc[d];
    }
    for (int64_t j = 0; d0 < D && j < n; ++j) {
      const float wj = w[j];
      const T* vj = values + j * D;
      for (int64_t d = d0; d < D; ++d) out[d] += wj * to_float(vj[d]);
    }
  }
}

// T: the query's and output's dtype; C: the cache's (the same, or bf16/fp16 under fp32 queries). Rows
// [row0, row1) of the batch only (inside a parallel region: on this thread).
template <int64_t DD, typename T, typename C>
void attend(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new, const at::Tensor& pk,
            const at::Tensor& pv, const at::Tensor& pmask, int64_t P, const at::Tensor& kc, const at::Tensor& vc,
            const at::Tensor& valid, int64_t start, int64_t pos, double scale, at::Tensor& out, int64_t row0,
            int64_t row1) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2);
  const int64_t U = pk.size(0), Hkv = pk.size(1), NBP = pk.size(2);
  const int64_t NB = kc.size(2), L = vc.size(2);
  const int64_t g = B / U, rep = H / Hkv, S = pos + 1 - start, n = P + S;
  const T* qp = q.data_ptr<T>();
  const T* knp = k_new.data_ptr<T>();
  const T* vnp = v_new.data_ptr<T>();
  const C* pkp = pk.data_ptr<C>();
  const C* pvp = pv.data_ptr<C>();
  const bool* pmp = pmask.data_ptr<bool>();
  C* kp = kc.data_ptr<C>();
  C* vp = vc.data_ptr<C>();
  const bool* vmp = valid.data_ptr<bool>();
  const int64_t vstride = valid.size(1);
  T* op = out.data_ptr<T>();
  const float sc = static_cast<float>(scale);
  const float neg_inf = -std::numeric_limits<float>::infinity();

  at::parallel_for(row0 * Hkv, row1 * Hkv, 16, [&](int64_t lo, int64_t hi) {  // cache the new keys and values
    for (int64_t bk = lo; bk < hi; ++bk) {
      C* blk = kp + (bk * NB + pos / BLOCK) * D * BLOCK + pos % BLOCK;
      C* vrow = vp + (bk * L + pos) * D;
      for (int64_t d = 0; d < D; ++d) {  // rounded to the cache's dtype as a torch copy would
        blk[d * BLOCK] = rlvr::from_float<C>(to_float(knp[bk * D + d]));
        vrow[d] = rlvr::from_float<C>(to_float(vnp[bk * D + d]));
      }
    }
  });
  at::parallel_for(row0 * H, row1 * H, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> qf(D), acc(D), s(n);
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t b = item / H, kh = (item % H) / rep, u = b / g, bk = b * Hkv + kh;
      const C* kb = kp + bk * NB * D * BLOCK;
      const C* vb = vp + bk * L * D;
      const T* qr = qp + item * D;
      for (int64_t d = 0; d < D; ++d) qf[d] = to_float(qr[d]) * sc;
      float* sp = s.data();
      scores<DD>(qf.data(), pkp + (u * Hkv + kh) * NBP * D * BLOCK, 0, P, D, sp);
      scores<DD>(qf.data(), kb, start, pos + 1, D, sp + P);
      const bool* pm = pmp + u * P;
      const bool* vm = vmp + b * vstride + start;
      float m = neg_inf;
      for (int64_t j = 0; j < n; ++j) {  // masked positions -inf; the maximum of the rest
        const float x = (j < P ? pm[j] : vm[j - P]) ? sp[j] : neg_inf;
        sp[j] = x;
        m = x > m ? x : m;
      }
      float total = 0.0f;
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < n; ++j) {
        const float e = sp[j] == neg_inf ? 0.0f : exp_nonpositive(sp[j] - m);
        sp[j] = e;
        total += e;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      weighted_sum<DD>(sp, pvp + (u * Hkv + kh) * P * D, P, D, acc.data());
      weighted_sum<DD>(sp + P, vb + start * D, S, D, acc.data());
      const float inv = total > 0.0f ? 1.0f / total : 0.0f;
      T* o = op + item * D;
      for (int64_t d = 0; d < D; ++d) o[d] = rlvr::from_float<T>(acc[d] * inv);
    }
  });
}

// the common head sizes compiled for their size, others generic
template <typename T, typename C, typename... Args>
void by_head_dim(int64_t head_dim, Args&&... args) {
  switch (head_dim) {
    case 32: attend<32, T, C>(args...); break;
    case 48: attend<48, T, C>(args...); break;
    case 64: attend<64, T, C>(args...); break;
    case 80: attend<80, T, C>(args...); break;
    case 96: attend<96, T, C>(args...); break;
    case 128: attend<128, T, C>(args...); break;
    default: attend<0, T, C>(args...);
  }
}

}  // namespace

// Writes position `pos` of the cache and attends over it: q (B, H, D) and the new key/value k_new,
// v_new (B, Hkv, D); pk (U, Hkv, ceil(P / 16), D, 16) blocked keys and pv (U, Hkv, P, D) values of a
// prompt shared by each run of B / U consecutive rows (P may be 0), pmask (U, P) its attendable
// positions; kc (B, Hkv, ceil(L / 16), D, 16) blocked keys and vc (B, Hkv, L, D) values of the cache
// (written in place at pos), of which positions [start, pos] are attended where valid (B, > pos) is
// true -> (B, H, D).
at::Tensor decode_attention(at::Tensor q, at::Tensor k_new, at::Tensor v_new, at::Tensor pk, at::Tensor pv,
                            at::Tensor pmask, at::Tensor kc, at::Tensor vc, at::Tensor valid, int64_t start,
                            int64_t pos, double scale) {
  TORCH_CHECK(q.dim() == 3 && k_new.dim() == 3 && v_new.dim() == 3 && pk.dim() == 5 && pv.dim() == 4 &&
              kc.dim() == 5 && vc.dim() == 4, "decode_attention: q (B, H, D), k_new/v_new (B, Hkv, D), pk "
              "(U, Hkv, blocks, D, 16), pv (U, Hkv, P, D), kc (B, Hkv, blocks, D, 16), vc (B, Hkv, L, D)");
  TORCH_CHECK(q.device().is_cpu() && kc.device().is_cpu() && pk.device().is_cpu(), "decode_attention runs on CPU tensors");
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2), U = pk.size(0), Hkv = kc.size(1);
  const int64_t P = pv.size(2), L = vc.size(2);
  TORCH_CHECK(H % Hkv == 0 && kc.size(0) == B && kc.size(3) == D && kc.size(4) == BLOCK &&
              kc.size(2) * BLOCK >= L && vc.size(0) == B && vc.size(1) == Hkv && vc.size(3) == D,
              "decode_attention: shapes of q, kc and vc disagree");
  TORCH_CHECK(k_new.size(0) == B && k_new.size(1) == Hkv && k_new.size(2) == D && v_new.sizes() == k_new.sizes(),
              "decode_attention: k_new and v_new must be (B, Hkv, D)");
  TORCH_CHECK(U > 0 && B % U == 0 && pk.size(1) == Hkv && pk.size(3) == D && pk.size(4) == BLOCK &&
              pk.size(2) * BLOCK >= P && pv.size(0) == U && pv.size(1) == Hkv && pv.size(3) == D,
              "decode_attention: the shared prompt's pk/pv disagree with q (the batch must be whole units)");
  TORCH_CHECK(pmask.dim() == 2 && pmask.size(0) == U && pmask.size(1) == P && pmask.scalar_type() == at::kBool,
              "decode_attention: pmask must be a (U, P) bool tensor");
  TORCH_CHECK(0 <= start && start <= pos && pos < L, "decode_attention: need 0 <= start <= pos < L");
  TORCH_CHECK(valid.dim() == 2 && valid.size(0) == B && valid.size(1) > pos && valid.scalar_type() == at::kBool,
              "decode_attention: valid must be a (B, > pos) bool tensor");
  TORCH_CHECK(kc.is_contiguous() && vc.is_contiguous(), "decode_attention: the cache kc/vc must be contiguous");
  TORCH_CHECK(k_new.scalar_type() == q.scalar_type() && v_new.scalar_type() == q.scalar_type(),
              "decode_attention: k_new and v_new must have q's dtype");
  const auto cache = kc.scalar_type();
  TORCH_CHECK(vc.scalar_type() == cache && pk.scalar_type() == cache && pv.scalar_type() == cache,
              "decode_attention: kc, vc, pk and pv must share a dtype");
  q = q.contiguous(), k_new = k_new.contiguous(), v_new = v_new.contiguous();
  pk = pk.contiguous(), pv = pv.contiguous(), pmask = pmask.contiguous(), valid = valid.contiguous();
  auto out = at::empty_like(q);
  const auto dt = q.scalar_type();
  if (dt == at::kFloat && cache == at::kFloat)
    by_head_dim<float, float>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out, 0, B);
  else if (dt == at::kFloat && cache == at::kBFloat16)
    by_head_dim<float, at::BFloat16>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out, 0, B);
  else if (dt == at::kFloat && cache == at::kHalf)
    by_head_dim<float, at::Half>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out, 0, B);
  else if (dt == at::kBFloat16 && cache == at::kBFloat16)
    by_head_dim<at::BFloat16, at::BFloat16>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out, 0, B);
  else if (dt == at::kHalf && cache == at::kHalf)
    by_head_dim<at::Half, at::Half>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out, 0, B);
  else
    TORCH_CHECK(false, "decode_attention: queries in float32, bfloat16 or float16 with a cache of the same dtype, or "
                "float32 queries with a bfloat16/float16 cache; got ", dt, " and ", cache);
  return out;
}


namespace {

// out = x / rms(x) * w for each of the B rows of x (B, N); fp32, as torch's rms_norm.
void rms_rows(const float* __restrict x, const float* __restrict w, float* __restrict out, int64_t B, int64_t N,
              float eps) {
  for (int64_t b = 0; b < B; ++b) {
    const float* xr = x + b * N;
    float* o = out + b * N;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < N; ++i) ss += xr[i] * xr[i];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(N) + eps);
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) o[i] = (xr[i] * r) * w[i];
  }
}

// The rotary embedding of a row's query and key heads (read from the joint projection qkv, row width W),
// written to q (H, D) and k (Hkv, D); its value heads copied to v (Hkv, D). c, s: cos/sin (D) of its position.
void rotate_row(const float* __restrict row, const float* __restrict c, const float* __restrict s, int64_t H,
                int64_t Hkv, int64_t D, float* __restrict q, float* __restrict k, float* __restrict v) {
  const int64_t half = D / 2;
  for (int64_t h = 0; h < H + Hkv; ++h) {
    const float* x = row + h * D;
    float* o = h < H ? q + h * D : k + (h - H) * D;
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
      o[i] = x[i] * c[i] - x[i + half] * s[i];
      o[i + half] = x[i + half] * c[i + half] + x[i] * s[i + half];
    }
  }
  std::copy(row + (H + Hkv) * D, row + (H + 2 * Hkv) * D, v);
}

// out (B, I) = silu(gu[:, :I]) * gu[:, I:], gu (B, 2I): the gated MLP's activation.
void silu_mul(const float* __restrict gu, float* __restrict out, int64_t B, int64_t I) {
  for (int64_t b = 0; b < B; ++b) {
    const float* g = gu + b * 2 * I;
    const float* u = g + I;
    float* o = out + b * I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) o[i] = g[i] * rlvr::sigmoid(g[i]) * u[i];
  }
}

}  // namespace

// A whole decode step of a Llama-family model in fp32, every layer, for one new position per row:
// h (B, hidden) the new tokens' embeddings; w per layer, in order, input_layernorm weight, joint q/k/v
// projection weight ((H + 2 Hkv) D, hidden) and bias (or an empty tensor), o_proj weight and bias (or
// empty), post_attention_layernorm weight, joint gate/up weight (2 I, hidden), down weight; norm_w the
// final norm's weight; cos/sin (max_len, D) the rotary table and positions (B,) each row's position in
// it; pks/pvs per layer and pmask the shared prompt, kc (layers, B, Hkv, blocks, D, 16) and vc (layers,
// B, Hkv, L, D) the cache and valid, start, pos, scale as for decode_attention -> the final norm's output
// (B, hidden).
//
// The batch is split into one block of rows per thread and each thread runs its rows through every
// layer alone: its matrix products (ATen's, the BLAS of torch ops, single-threaded inside the parallel
// region) are on half the rows but keep a core busy without waiting for the other, which for decode-sized
// products beats splitting every product over the threads; norms, rotary, attention and the activation
// are fused loops in between.
at::Tensor decode_layers(at::Tensor h, std::vector<at::Tensor> w, at::Tensor norm_w, at::Tensor cos, at::Tensor sin,
                         at::Tensor positions, int64_t n_heads, double eps, std::vector<at::Tensor> pks,
                         std::vector<at::Tensor> pvs, at::Tensor pmask, at::Tensor kc, at::Tensor vc, at::Tensor valid,
                         int64_t start, int64_t pos, double scale) {
  const int64_t n_layers = static_cast<int64_t>(w.size()) / 8;
  TORCH_CHECK(static_cast<int64_t>(w.size()) == 8 * n_layers && n_layers > 0 &&
              static_cast<int64_t>(pks.size()) == n_layers && static_cast<int64_t>(pvs.size()) == n_layers,
              "decode_layers: 8 weights per layer and one pk/pv per layer");
  TORCH_CHECK(h.dim() == 2 && h.scalar_type() == at::kFloat && h.device().is_cpu(),
              "decode_layers: h must be a (B, hidden) float32 CPU tensor");
  TORCH_CHECK(kc.dim() == 6 && vc.dim() == 5 && kc.size(0) == n_layers && vc.size(0) == n_layers &&
              kc.is_contiguous() && vc.is_contiguous(), "decode_layers: kc (layers, B, Hkv, blocks, D, 16) and vc "
              "(layers, B, Hkv, L, D), contiguous");
  const int64_t B = h.size(0), hidden = h.size(1), Hkv = kc.size(2), D = kc.size(4), H = n_heads, L = vc.size(3);
  const int64_t W = (H + 2 * Hkv) * D;
  TORCH_CHECK(H % Hkv == 0 && kc.size(1) == B && kc.size(5) == BLOCK && kc.size(3) * BLOCK >= L && vc.size(1) == B &&
              vc.size(2) == Hkv && vc.size(4) == D && D % 2 == 0, "decode_layers: shapes of h, kc and vc disagree");
  TORCH_CHECK(positions.dim() == 1 && positions.size(0) == B && cos.dim() == 2 && cos.size(1) == D &&
              sin.sizes() == cos.sizes() && cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat,
              "decode_layers: positions (B,) and float32 cos/sin tables (max_len, D)");
  TORCH_CHECK(0 <= start && start <= pos && pos < L && valid.dim() == 2 && valid.size(0) == B && valid.size(1) > pos &&
              valid.scalar_type() == at::kBool, "decode_layers: need 0 <= start <= pos < L and valid (B, > pos) bool");
  TORCH_CHECK(pmask.dim() == 2 && pmask.scalar_type() == at::kBool && pmask.size(0) > 0 && B % pmask.size(0) == 0,
              "decode_layers: pmask must be (U, P) bool with B a multiple of U");
  const auto cache = kc.scalar_type();
  TORCH_CHECK(vc.scalar_type() == cache && (cache == at::kFloat || cache == at::kBFloat16 || cache == at::kHalf),
              "decode_layers: the cache must be float32, bfloat16 or float16 (kc and vc alike)");
  for (int64_t i = 0; i < n_layers; ++i) {
    const at::Tensor* lw = &w[8 * i];
    for (int j = 0; j < 8; ++j)
      TORCH_CHECK(lw[j].scalar_type() == at::kFloat && lw[j].device().is_cpu(), "decode_layers: weights must be "
                  "float32 CPU tensors");
    TORCH_CHECK(lw[0].is_contiguous() && lw[5].is_contiguous() && lw[0].numel() == hidden && lw[5].numel() == hidden &&
                lw[1].dim() == 2 && lw[1].size(0) == W && lw[1].size(1) == hidden && (lw[2].numel() == 0 || lw[2].numel() == W) &&
                lw[3].dim() == 2 && lw[3].size(0) == hidden && lw[3].size(1) == H * D &&
                (lw[4].numel() == 0 || lw[4].numel() == hidden) && lw[6].dim() == 2 && lw[6].size(1) == hidden &&
                lw[7].dim() == 2 && lw[7].size(0) == hidden && 2 * lw[7].size(1) == lw[6].size(0),
                "decode_layers: layer ", i, "'s weights have unexpected shapes");
    pks[i] = pks[i].contiguous(), pvs[i] = pvs[i].contiguous();
    TORCH_CHECK(pks[i].scalar_type() == cache && pvs[i].scalar_type() == cache && pks[i].dim() == 5 && pvs[i].dim() == 4 &&
                pks[i].size(0) == pmask.size(0) && pks[i].size(1) == Hkv && pks[i].size(3) == D &&
                pks[i].size(4) == BLOCK && pks[i].size(2) * BLOCK >= pvs[i].size(2) && pvs[i].size(0) == pmask.size(0) &&
                pvs[i].size(1) == Hkv && pvs[i].size(2) == pmask.size(1) && pvs[i].size(3) == D,
                "decode_layers: the shared prompt's pk/pv/pmask disagree with the cache");
  }
  TORCH_CHECK(norm_w.numel() == hidden && norm_w.is_contiguous() && norm_w.scalar_type() == at::kFloat,
              "decode_layers: norm_w must be (hidden,) float32");
  h = h.contiguous().clone();
  positions = positions.to(at::kLong).contiguous(), cos = cos.contiguous(), sin = sin.contiguous();
  pmask = pmask.contiguous(), valid = valid.contiguous();
  const int64_t* pp = positions.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK(0 <= pp[b] && pp[b] < cos.size(0), "decode_layers: a position is outside the rotary table");
  const int64_t I = w[7].size(1);
  const auto opts = h.options();
  auto x = at::empty({B, hidden}, opts), qkv = at::empty({B, W}, opts), gu = at::empty({B, 2 * I}, opts);
  auto q = at::empty({B, H, D}, opts), k = at::empty({B, Hkv, D}, opts), v = at::empty({B, Hkv, D}, opts);
  auto att = at::empty({B, H, D}, opts), act = at::empty({B, I}, opts);
  const float feps = static_cast<float>(eps);
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B));
  at::parallel_for(0, blocks, 1, [&](int64_t c0, int64_t c1) {
    c10::InferenceMode no_autograd;  // worker threads do not inherit the caller's mode; weights require grad
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * B / blocks, r1 = (c + 1) * B / blocks, n = r1 - r0;
      auto rows = [&](const at::Tensor& t) { return t.narrow(0, r0, n); };
      auto hr = rows(h), xr = rows(x), qkvr = rows(qkv), gur = rows(gu), attr = rows(att).view({n, H * D}),
           actr = rows(act);
      float* hp = hr.data_ptr<float>();
      float* xp = xr.data_ptr<float>();
      for (int64_t i = 0; i < n_layers; ++i) {
        const at::Tensor* lw = &w[8 * i];  // ln1, qkv_w, qkv_b, o_w, o_b, ln2, gu_w, down_w
        rms_rows(hp, lw[0].data_ptr<float>(), xp, n, hidden, feps);
        if (lw[2].numel())
          at::addmm_out(qkvr, lw[2], xr, lw[1].t());
        else
          at::mm_out(qkvr, xr, lw[1].t());
        for (int64_t b = r0; b < r1; ++b)
          rotate_row(qkv.data_ptr<float>() + b * W, cp + pp[b] * D, sp + pp[b] * D, H, Hkv, D,
                     q.data_ptr<float>() + b * H * D, k.data_ptr<float>() + b * Hkv * D, v.data_ptr<float>() + b * Hkv * D);
        const auto kci = kc.select(0, i), vci = vc.select(0, i);
        const int64_t P = pvs[i].size(2);
        if (cache == at::kFloat)
          by_head_dim<float, float>(D, q, k, v, pks[i], pvs[i], pmask, P, kci, vci, valid, start, pos, scale, att, r0, r1);
        else if (cache == at::kBFloat16)
          by_head_dim<float, at::BFloat16>(D, q, k, v, pks[i], pvs[i], pmask, P, kci, vci, valid, start, pos, scale, att,
                                           r0, r1);
        else
          by_head_dim<float, at::Half>(D, q, k, v, pks[i], pvs[i], pmask, P, kci, vci, valid, start, pos, scale, att, r0, r1);
        if (lw[4].numel()) hr.add_(lw[4]);
        hr.addmm_(attr, lw[3].t());
        rms_rows(hp, lw[5].data_ptr<float>(), xp, n, hidden, feps);
        at::mm_out(gur, xr, lw[6].t());
        silu_mul(gur.data_ptr<float>(), actr.data_ptr<float>(), n, I);
        hr.addmm_(actr, lw[7].t());
      }
      rms_rows(hp, norm_w.data_ptr<float>(), xp, n, hidden, feps);
    }
  });
  return x;
}

// attention.cpp: attention of training and scoring passes
std::vector<at::Tensor> attention_forward(at::Tensor q, at::Tensor k, at::Tensor v, at::Tensor mask, bool causal,
                                          double scale);
std::vector<at::Tensor> attention_backward(at::Tensor dout, at::Tensor q, at::Tensor k, at::Tensor v, at::Tensor out,
                                           at::Tensor lse, at::Tensor mask, bool causal, double scale);

// layers.cpp: RMSNorm and the SiLU-gated activation of training and scoring passes
std::vector<at::Tensor> rms_norm_forward(at::Tensor x, at::Tensor w, double eps);
std::vector<at::Tensor> rms_norm_backward(at::Tensor dy, at::Tensor x, at::Tensor w, at::Tensor rstd);
at::Tensor swiglu_forward(at::Tensor g, at::Tensor u);
std::vector<at::Tensor> swiglu_backward(at::Tensor dh, at::Tensor g, at::Tensor u);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("decode_attention", &decode_attention, "write one decode position into a static KV cache and attend over it (CPU)");
  m.def("decode_layers", &decode_layers, "a whole fp32 decode step of a Llama-family model, every layer (CPU)");
  m.def("attention_forward", &attention_forward, "fp32 softmax attention of many query positions, with log-sum-exp (CPU)");
  m.def("attention_backward", &attention_backward, "the gradients of attention_forward (CPU)");
  m.def("rms_norm_forward", &rms_norm_forward, "RMSNorm of the last dimension, with the rows' 1/rms (CPU)");
  m.def("rms_norm_backward", &rms_norm_backward, "the gradients of rms_norm_forward (CPU)");
  m.def("swiglu_forward", &swiglu_forward, "silu(gate) * up (CPU)");
  m.def("swiglu_backward", &swiglu_backward, "the gradients of swiglu_forward (CPU)");
}
