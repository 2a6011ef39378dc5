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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

constexpr int64_t BLOCK = 16;  // key positions per transposed block

// exp(x) for x <= 0 (scores minus their maximum), written so the compiler vectorises it:
// x = n ln2 + r with |r| <= ln2 / 2, a degree-6 polynomial for e^r, 2^n from the exponent bits.
// Relative error about 2e-7, like the float exp of a maths library.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23)
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  return y * __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
}

inline float to_float(float x) { return x; }
inline float to_float(at::BFloat16 x) { return __builtin_bit_cast(float, static_cast<uint32_t>(x.x) << 16); }
inline float to_float(at::Half x) { return static_cast<float>(x); }

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

// T: the query's and output's dtype; C: the cache's (the same, or bf16/fp16 under fp32 queries)
template <int64_t DD, typename T, typename C>
void attend(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new, const at::Tensor& pk,
            const at::Tensor& pv, const at::Tensor& pmask, int64_t P, const at::Tensor& kc, const at::Tensor& vc,
            const at::Tensor& valid, int64_t start, int64_t pos, double scale, at::Tensor& out) {
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

  at::parallel_for(0, B * Hkv, 16, [&](int64_t lo, int64_t hi) {  // cache the new keys and values
    for (int64_t bk = lo; bk < hi; ++bk) {
      C* blk = kp + (bk * NB + pos / BLOCK) * D * BLOCK + pos % BLOCK;
      C* vrow = vp + (bk * L + pos) * D;
      for (int64_t d = 0; d < D; ++d) {  // rounded to the cache's dtype as a torch copy would
        blk[d * BLOCK] = static_cast<C>(to_float(knp[bk * D + d]));
        vrow[d] = static_cast<C>(to_float(vnp[bk * D + d]));
      }
    }
  });
  at::parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
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
      for (int64_t d = 0; d < D; ++d) o[d] = static_cast<T>(acc[d] * inv);
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
    by_head_dim<float, float>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out);
  else if (dt == at::kFloat && cache == at::kBFloat16)
    by_head_dim<float, at::BFloat16>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out);
  else if (dt == at::kFloat && cache == at::kHalf)
    by_head_dim<float, at::Half>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out);
  else if (dt == at::kBFloat16 && cache == at::kBFloat16)
    by_head_dim<at::BFloat16, at::BFloat16>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out);
  else if (dt == at::kHalf && cache == at::kHalf)
    by_head_dim<at::Half, at::Half>(D, q, k_new, v_new, pk, pv, pmask, P, kc, vc, valid, start, pos, scale, out);
  else
    TORCH_CHECK(false, "decode_attention: queries in float32, bfloat16 or float16 with a cache of the same dtype, or "
                "float32 queries with a bfloat16/float16 cache; got ", dt, " and ", cache);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("decode_attention", &decode_attention, "write one decode position into a static KV cache and attend over it (CPU)");
}
