// One decode position's attention over a static KV cache, for CPUs.
//
// In torch ops a decode step reads the cache through hundreds of tiny batched matrix-vector
// products and writes the new key and value with strided copies. Here one call writes the new
// position's key and value into the cache and attends over it: each (row, query head) is one work
// item (query heads sharing a KV head are consecutive items), split over the ATen thread pool; its
// query meets every cached key once, one softmax, one weighted sum of the values. Up to four items run
// side by side (their sums interleaved), each summing in the same order as alone.
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
#include "linear.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

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

// 16 floats as one vector (one AVX-512 register, two AVX2 ones): the grouped loops below are written on it,
// several items' independent sums in flight at once, each cache line read as one vector load.
typedef float f32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

inline f32x16 load16(const float* p) {
  f32x16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline f32x16 load16(const at::BFloat16* p) {  // bf16 -> fp32 is the 16 bits moved to the top: exact
#ifdef __AVX512F__
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return (f32x16)_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
#else
  u16x16 h;
  __builtin_memcpy(&h, p, sizeof h);
  return (f32x16)(__builtin_convertvector(h, u32x16) << 16);
#endif
}
inline f32x16 load16(const at::Half* p) {  // fp16 -> fp32: exact
#ifdef __AVX512F__
  return (f32x16)_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#else
  f32x16 v;
  for (int i = 0; i < 16; ++i) v[i] = to_float(p[i]);
  return v;
#endif
}

// Items processed together: as many as keep their value sums in 16 vector registers (head sizes that are a
// multiple of 16), else one at a time.
constexpr int group_for(int64_t DD) {
  return DD > 0 && DD % 16 == 0 ? (256 / DD >= 4 ? 4 : (256 / DD >= 2 ? 2 : 1)) : 1;
}

// out[r][j - lo] = q[r] . key_r(j) for positions lo <= j < hi of each item's blocked keys keys[r] (blocks, D,
// BLOCK), R items at once. Every lane sums over d in order, as `scores` does: the same results.
template <int R, int64_t DD, typename T>
inline void scores_group(const float* const* q, const T* const* keys, int64_t lo, int64_t hi, float* const* out) {
  for (int64_t b0 = lo - lo % BLOCK; b0 < hi; b0 += BLOCK) {
    f32x16 acc[R] = {};
    const int64_t off = (b0 / BLOCK) * DD * BLOCK;
    for (int64_t d = 0; d < DD; ++d)
      for (int r = 0; r < R; ++r) acc[r] += q[r][d] * load16(keys[r] + off + d * BLOCK);
    const int64_t first = std::max(b0, lo), last = std::min(b0 + BLOCK, hi);
    for (int r = 0; r < R; ++r)
      for (int64_t j = first; j < last; ++j) out[r][j - lo] = acc[r][j - b0];
  }
}

// acc[r] += sum_j w[r][j] * values_r[j] over n positions, values (n, D) rows, R items at once; each lane
// sums over j in order, as `weighted_sum` does.
template <int R, int64_t DD, typename T>
inline void weighted_sum_group(const float* const* w, const T* const* values, int64_t n, f32x16 (*acc)[DD / 16]) {
  constexpr int64_t V = DD / 16;
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < R; ++r) {
      const float wj = w[r][j];
      const T* vj = values[r] + j * DD;
      for (int64_t c = 0; c < V; ++c) acc[r][c] += wj * load16(vj + c * 16);
    }
}

// A row's scores s (n: the P prompt positions, then the row's own) -> softmax numerators in place, masked
// positions 0; returns their sum.
inline float softmax_numerators(float* __restrict sp, const bool* __restrict pm, const bool* __restrict vm, int64_t P,
                                int64_t n) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
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
  return total;
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
  // one item: a (row, query head) pair; its query scaled to fp32, its scores and softmax numerators in s
  auto scaled_query = [&](int64_t item, float* qf) {
    const T* qr = qp + item * D;
    for (int64_t d = 0; d < D; ++d) qf[d] = to_float(qr[d]) * sc;
  };
  auto numerators = [&](int64_t item, float* sp) {
    const int64_t b = item / H, u = b / g;
    return softmax_numerators(sp, pmp + u * P, vmp + b * vstride + start, P, n);
  };
  auto finish = [&](int64_t item, const float* acc, float total) {
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    T* o = op + item * D;
    for (int64_t d = 0; d < D; ++d) o[d] = rlvr::from_float<T>(acc[d] * inv);
  };
  constexpr int R = group_for(DD);
  at::parallel_for(row0 * H, row1 * H, R, [&](int64_t lo, int64_t hi) {
    std::vector<float> qf(R * D), acc(D), s(R * n);
    int64_t item = lo;
    if constexpr (R > 1) {  // R items at a time: each sums in the order of the single-item path below
      for (; item + R <= hi; item += R) {
        const float* qs[R];
        const C *pks[R], *kbs[R], *pvs[R], *vbs[R];
        float *ss[R], *sps[R], totals[R];
        for (int r = 0; r < R; ++r) {
          const int64_t it = item + r, b = it / H, kh = (it % H) / rep, u = b / g, bk = b * Hkv + kh;
          scaled_query(it, qf.data() + r * D);
          qs[r] = qf.data() + r * D;
          pks[r] = pkp + (u * Hkv + kh) * NBP * D * BLOCK;
          kbs[r] = kp + bk * NB * D * BLOCK;
          pvs[r] = pvp + (u * Hkv + kh) * P * D;
          vbs[r] = vp + (bk * L + start) * D;
          ss[r] = s.data() + r * n;
          sps[r] = ss[r] + P;
        }
        scores_group<R, DD>(qs, pks, 0, P, ss);
        scores_group<R, DD>(qs, kbs, start, pos + 1, sps);
        for (int r = 0; r < R; ++r) totals[r] = numerators(item + r, ss[r]);
        f32x16 sums[R][DD / 16] = {};
        weighted_sum_group<R, DD>(ss, pvs, P, sums);
        weighted_sum_group<R, DD>(sps, vbs, S, sums);
        for (int r = 0; r < R; ++r) {
          __builtin_memcpy(acc.data(), sums[r], DD * sizeof(float));
          finish(item + r, acc.data(), totals[r]);
        }
      }
    }
    for (; item < hi; ++item) {
      const int64_t b = item / H, kh = (item % H) / rep, u = b / g, bk = b * Hkv + kh;
      float* sp = s.data();
      scaled_query(item, qf.data());
      scores<DD>(qf.data(), pkp + (u * Hkv + kh) * NBP * D * BLOCK, 0, P, D, sp);
      scores<DD>(qf.data(), kp + bk * NB * D * BLOCK, start, pos + 1, D, sp + P);
      const float total = numerators(item, sp);
      std::fill(acc.begin(), acc.end(), 0.0f);
      weighted_sum<DD>(sp, pvp + (u * Hkv + kh) * P * D, P, D, acc.data());
      weighted_sum<DD>(sp + P, vp + (bk * L + start) * D, S, D, acc.data());
      finish(item, acc.data(), total);
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

// A linear layer's (N, K) weight as nn.Linear holds it, or the same packed by rlvr::pack_panels.
bool is_weight(const at::Tensor& w, int64_t N, int64_t K) {
  if (w.dim() == 2) return w.size(0) == N && w.size(1) == K;
  return w.dim() == 3 && w.is_contiguous() && w.size(1) == K && w.size(2) == rlvr::PANEL &&
         w.size(0) == (N + rlvr::PANEL - 1) / rlvr::PANEL;
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
// empty), post_attention_layernorm weight, joint gate/up weight (2 I, hidden), down weight (the four
// projection weights as nn.Linear holds them or packed by `pack_panels`, linear.h); norm_w the
// final norm's weight; cos/sin (max_len, D) the rotary table and positions (B,) each row's position in
// it; pks/pvs per layer and pmask the shared prompt, kc (layers, B, Hkv, blocks, D, 16) and vc (layers,
// B, Hkv, L, D) the cache and valid, start, pos, scale as for decode_attention -> the final norm's output
// (B, hidden).
//
// The batch is split into one block of rows per thread and each thread runs its rows through every
// layer alone: its matrix products (rlvr::linear_rows on packed weights, else ATen's, single-threaded inside
// the parallel region) are on half the rows but keep a core busy without waiting for the other, which for
// decode-sized products beats splitting every product over the threads; norms, rotary, attention and the
// activation are fused loops in between.
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
    const int64_t I2 = 2 * lw[7].size(1);
    TORCH_CHECK(lw[0].is_contiguous() && lw[5].is_contiguous() && lw[0].numel() == hidden && lw[5].numel() == hidden &&
                is_weight(lw[1], W, hidden) && (lw[2].numel() == 0 || lw[2].numel() == W) && is_weight(lw[3], hidden, H * D) &&
                (lw[4].numel() == 0 || lw[4].numel() == hidden) && is_weight(lw[6], I2, hidden) &&
                is_weight(lw[7], hidden, I2 / 2), "decode_layers: layer ", i, "'s weights have unexpected shapes");
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
  const at::Tensor none = at::empty({0}, opts);
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
        rlvr::linear_rows(xr, lw[1], lw[2], qkvr, false);
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
        rlvr::linear_rows(attr, lw[3], lw[4], hr, true);
        rms_rows(hp, lw[5].data_ptr<float>(), xp, n, hidden, feps);
        rlvr::linear_rows(xr, lw[6], none, gur, false);
        silu_mul(gur.data_ptr<float>(), actr.data_ptr<float>(), n, I);
        rlvr::linear_rows(actr, lw[7], none, hr, true);
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
  m.def("pack_panels", &rlvr::pack_panels, "an fp32 (N, K) weight in decode_layers' panel layout (itself without AVX-512)");
  m.def("attention_forward", &attention_forward, "fp32 softmax attention of many query positions, with log-sum-exp (CPU)");
  m.def("attention_backward", &attention_backward, "the gradients of attention_forward (CPU)");
  m.def("rms_norm_forward", &rms_norm_forward, "RMSNorm of the last dimension, with the rows' 1/rms (CPU)");
  m.def("rms_norm_backward", &rms_norm_backward, "the gradients of rms_norm_forward (CPU)");
  m.def("swiglu_forward", &swiglu_forward, "silu(gate) * up (CPU)");
  m.def("swiglu_backward", &swiglu_backward, "the gradients of swiglu_forward (CPU)");
}
