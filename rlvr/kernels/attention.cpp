// Softmax attention of a training or scoring pass (many query positions at once), forward and
// backward, for CPUs: fp32 or bf16 tensors, fp32 arithmetic.
//
// torch's CPU attention spends most of its time outside the arithmetic for the shapes of RL
// training (head size 32 to 128, a few hundred positions): here one work item is one (row, KV head)
// and everything it touches (its keys, values and the score row of one query) stays in the core's
// caches. Keys are copied once per item into transposed blocks of 16 positions, so the 16 scores of
// a block are 16 vector lanes; each query attends over the span its mask allows (causal rows skip
// the keys after them). The forward keeps each query's log-sum-exp; the backward recomputes the
// probabilities from it (no score matrix is stored) and accumulates the keys' and values'
// gradients of an item's query heads in place. Results do not depend on the number of threads.
//
// Shapes: q (B, H, Lq, D), k and v (B, Hkv, Lk, D) with H a multiple of Hkv, any strides whose last
// one is 1. mask: an empty tensor (then `causal`: query i sees keys j <= i + Lk - Lq, or every key) or
// bool, broadcastable to (B, H, Lq, Lk), true = attend. A query that may see no key gets zeros.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <vector>

#include "common.h"

namespace {

using rlvr::exp_nonpositive;
using rlvr::to_float;

constexpr int64_t BLK = 16;
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

inline bool zero8(const bool* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x == 0;
}

// The mask in a form every query reads the same way: row pointers by (b, h, i) and the key span to visit.
struct Mask {
  const bool* data = nullptr;  // nullptr: causal or full
  int64_t sb = 0, sh = 0, si = 0;
  bool causal = false;
  int64_t offset = 0;  // Lk - Lq

  // keys [lo, hi) may be attended by query i of (b, h); *row the mask row, or nullptr when all of [lo, hi) are
  const bool* span(int64_t b, int64_t h, int64_t i, int64_t Lk, int64_t& lo, int64_t& hi) const {
    lo = 0, hi = Lk;
    if (data == nullptr) {
      if (causal) hi = std::min(Lk, std::max<int64_t>(0, i + offset + 1));
      return nullptr;
    }
    const bool* row = data + b * sb + h * sh + i * si;
    while (lo < hi && !row[lo]) ++lo;
    while (hi - 8 >= lo && zero8(row + hi - 8)) hi -= 8;  // a causal row's masked tail, 8 at a time
    while (hi > lo && !row[hi - 1]) --hi;
    return row;
  }
};

Mask make_mask(const at::Tensor& mask, bool causal, int64_t B, int64_t H, int64_t Lq, int64_t Lk) {
  Mask m;
  m.causal = causal, m.offset = Lk - Lq;
  if (mask.numel() == 0 && mask.dim() <= 1) return m;
  TORCH_CHECK(mask.scalar_type() == at::kBool && mask.dim() == 4, "attention: mask must be bool (B, H, Lq, Lk) "
              "or broadcastable to it");
  const auto e = mask.expand({B, H, Lq, Lk});
  TORCH_CHECK(e.stride(3) == 1, "attention: the mask's last dimension must be contiguous");
  m.data = e.data_ptr<bool>();
  m.sb = e.stride(0), m.sh = e.stride(1), m.si = e.stride(2);
  return m;
}

// Keys (Lk rows of D, row stride rs) -> transposed blocks (ceil(Lk / 16), D, 16), zero-padded.
template <typename T>
void to_blocks(const T* src, int64_t rs, int64_t Lk, int64_t D, float* dst) {
  const int64_t nb = (Lk + BLK - 1) / BLK;
  std::fill(dst, dst + nb * D * BLK, 0.0f);
  for (int64_t j = 0; j < Lk; ++j)
    for (int64_t d = 0; d < D; ++d) dst[((j / BLK) * D + d) * BLK + j % BLK] = to_float(src[j * rs + d]);
}

// Rows (n of D, row stride rs) -> contiguous fp32 rows.
template <typename T>
void to_rows(const T* src, int64_t rs, int64_t n, int64_t D, float* dst) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < D; ++d) dst[j * D + d] = to_float(src[j * rs + d]);
}

template <typename T>
void store(const float* src, int64_t D, T* dst) {
  for (int64_t d = 0; d < D; ++d) dst[d] = rlvr::from_float<T>(src[d]);
}

// A tile of QT query rows (or score rows) handled together: each key or value row loaded is used QT
// times, and the QT accumulators are independent chains (one accumulator would wait on its own additions).

// s[t * ls + j] = q[t] . key(j), t < QT, j in [lo, hi), of blocked keys (the block after the last readable: zeros).
template <int64_t DD, int QT>
inline void dots(const float* __restrict q, const float* __restrict blocks, int64_t lo, int64_t hi, int64_t D_,
                 float* __restrict s, int64_t ls) {
  const int64_t D = DD > 0 ? DD : D_;
  for (int64_t b0 = lo - lo % BLK; b0 < hi; b0 += 2 * BLK) {  // two blocks at a time
    const float* k0 = blocks + (b0 / BLK) * D * BLK;
    const float* k1 = k0 + D * BLK;
    float a0[QT][BLK] = {}, a1[QT][BLK] = {};
    for (int64_t d = 0; d < D; ++d) {
#pragma GCC unroll 8
      for (int t = 0; t < QT; ++t) {
        const float qd = q[t * D + d];
#pragma omp simd
        for (int64_t l = 0; l < BLK; ++l) {
          a0[t][l] += qd * k0[d * BLK + l];
          a1[t][l] += qd * k1[d * BLK + l];
        }
      }
    }
    const int64_t first = std::max(b0, lo), last = std::min(b0 + 2 * BLK, hi);
    for (int t = 0; t < QT; ++t)
      for (int64_t j = first; j < last; ++j) s[t * ls + j] = j - b0 < BLK ? a0[t][j - b0] : a1[t][j - b0 - BLK];
  }
}

// out[t][d] = c[t] * sum_{j in [lo, hi)} w[t * ls + j] * rows[j][d]   (rows contiguous, D per row; out row t
// at out[t], none where nullptr)
template <int64_t DD, int QT>
inline void combine(const float* __restrict w, int64_t ls, const float* __restrict rows, int64_t lo, int64_t hi,
                    int64_t D_, const float* c, float* const* out) {
  if constexpr (DD > 0) {
    float acc[QT][DD] = {};
    for (int64_t j = lo; j < hi; ++j) {
      const float* r = rows + j * DD;
#pragma GCC unroll 8
      for (int t = 0; t < QT; ++t) {
        const float wj = w[t * ls + j];
#pragma omp simd
        for (int64_t d = 0; d < DD; ++d) acc[t][d] += wj * r[d];
      }
    }
    for (int t = 0; t < QT; ++t)
      if (out[t] != nullptr)
        for (int64_t d = 0; d < DD; ++d) out[t][d] = acc[t][d] * c[t];
  } else {
    for (int t = 0; t < QT; ++t) {
      if (out[t] == nullptr) continue;
      float* o = out[t];
      std::fill(o, o + D_, 0.0f);
      for (int64_t j = lo; j < hi; ++j) {
        const float wj = w[t * ls + j];
        const float* r = rows + j * D_;
#pragma omp simd
        for (int64_t d = 0; d < D_; ++d) o[d] += wj * r[d];
      }
      for (int64_t d = 0; d < D_; ++d) o[d] *= c[t];
    }
  }
}

// rows[j][d] += sum_t w[t * ls + j] * x[t][d] for j in [lo, hi)   (x: QT rows of D, contiguous)
template <int64_t DD, int QT>
inline void spread(const float* __restrict w, int64_t ls, const float* __restrict x, int64_t lo, int64_t hi,
                   int64_t D_, float* __restrict rows) {
  const int64_t D = DD > 0 ? DD : D_;
  for (int64_t j = lo; j < hi; ++j) {
    float* r = rows + j * D;
#pragma GCC unroll 8
    for (int t = 0; t < QT; ++t) {
      const float wj = w[t * ls + j];
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) r[d] += wj * x[t * D + d];
    }
  }
}

// Query i's scores s over [lo, hi) -> its probabilities: outside its own span [qlo, qhi) and where its mask
// row (if any) is false, 0. With lse given (backward) p = exp(s - lse), returning lse; without, p = exp(s - max)
// unnormalised, returning the log-sum-exp and the normaliser 1 / sum in *inv (-inf and 0 when nothing may be
// attended).
inline float probabilities(float* __restrict s, const bool* __restrict row, int64_t lo, int64_t hi, int64_t qlo,
                           int64_t qhi, float lse_in, bool have_lse, float* inv) {
  for (int64_t j = lo; j < std::min(qlo, hi); ++j) s[j] = NEG_INF;
  for (int64_t j = std::max(qhi, lo); j < hi; ++j) s[j] = NEG_INF;
  if (row != nullptr && qlo < qhi && std::memchr(row + qlo, 0, qhi - qlo) != nullptr)  // a hole inside the span
    for (int64_t j = qlo; j < qhi; ++j) s[j] = row[j] ? s[j] : NEG_INF;
  float m = have_lse ? lse_in : NEG_INF;
  if (!have_lse) {
#pragma omp simd reduction(max : m)
    for (int64_t j = qlo; j < qhi; ++j) m = s[j] > m ? s[j] : m;
  }
  if (m == NEG_INF) {
    std::fill(s + lo, s + hi, 0.0f);
    if (inv != nullptr) *inv = 0.0f;
    return NEG_INF;
  }
  float total = 0.0f;
#pragma omp simd reduction(+ : total)
  for (int64_t j = lo; j < hi; ++j) {
    const float e = s[j] == NEG_INF ? 0.0f : exp_nonpositive(s[j] - m);
    s[j] = e;
    total += e;
  }
  if (have_lse) return lse_in;
  *inv = 1.0f / total;
  return m + std::log(total);
}

struct Dims {
  int64_t B, H, Hkv, Lq, Lk, D, rep;
};

Dims dims(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q (B, H, Lq, D), k and v (B, Hkv, Lk, D)");
  TORCH_CHECK((q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16) && k.scalar_type() == q.scalar_type() &&
              v.scalar_type() == q.scalar_type() && q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "attention: float32 or bfloat16 CPU tensors, q, k and v alike");
  Dims d{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), 0};
  TORCH_CHECK(k.size(0) == d.B && v.size(0) == d.B && v.size(1) == d.Hkv && v.size(2) == d.Lk && k.size(3) == d.D &&
              v.size(3) == d.D && d.Hkv > 0 && d.H % d.Hkv == 0, "attention: shapes of q, k and v disagree");
  d.rep = d.H / d.Hkv;
  return d;
}

at::Tensor last_contiguous(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// queries per tile: as many as keep the accumulators of `dots` and `combine` in the 32 vector registers
constexpr int tile_for(int64_t DD) { return DD == 0 ? 1 : (DD <= 32 ? 8 : (DD <= 64 ? 4 : 2)); }

template <int64_t DD, typename T>
void forward_impl(const Dims& z, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Mask& mask,
                  float scale, at::Tensor& out, at::Tensor& lse) {
  constexpr int QT = tile_for(DD);
  const int64_t D = DD > 0 ? DD : z.D, nb = (z.Lk + BLK - 1) / BLK, ls = z.Lk;
  const T *qp = q.data_ptr<T>(), *kp = k.data_ptr<T>(), *vp = v.data_ptr<T>();
  T* op = out.data_ptr<T>();
  float* lp = lse.data_ptr<float>();
  at::parallel_for(0, z.B * z.Hkv, 1, [&](int64_t lo_item, int64_t hi_item) {
    std::vector<float> kb((nb + 2) * D * BLK), vr(z.Lk * D), s(QT * ls), qs(QT * D), ob(QT * D);
    for (int64_t item = lo_item; item < hi_item; ++item) {
      const int64_t b = item / z.Hkv, kh = item % z.Hkv;
      to_blocks(kp + b * k.stride(0) + kh * k.stride(1), k.stride(2), z.Lk, D, kb.data());
      to_rows(vp + b * v.stride(0) + kh * v.stride(1), v.stride(2), z.Lk, D, vr.data());
      for (int64_t h = kh * z.rep; h < (kh + 1) * z.rep; ++h) {
        for (int64_t i0 = 0; i0 < z.Lq; i0 += QT) {
          int64_t qlo[QT], qhi[QT], lo = z.Lk, hi = 0;
          const bool* rows[QT];
          float* outs[QT];  // rows of ob, then stored to out
          for (int64_t i = i0 + QT; i < std::min(z.Lq, i0 + 2 * QT); ++i)  // the next tile's queries: strided rows
            for (int64_t d = 0; d < D; d += 16) __builtin_prefetch(qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2) + d);
          for (int t = 0; t < QT; ++t) {
            const int64_t i = i0 + t;
            if (i >= z.Lq) {  // past the last query: an empty row
              qlo[t] = qhi[t] = 0, rows[t] = nullptr, outs[t] = nullptr;
              std::fill_n(qs.data() + t * D, D, 0.0f);
              continue;
            }
            const T* qi = qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
            for (int64_t d = 0; d < D; ++d) qs[t * D + d] = to_float(qi[d]) * scale;
            rows[t] = mask.span(b, h, i, z.Lk, qlo[t], qhi[t]);
            outs[t] = ob.data() + t * D;
            if (qlo[t] < qhi[t]) lo = std::min(lo, qlo[t]), hi = std::max(hi, qhi[t]);
          }
          if (lo < hi) dots<DD, QT>(qs.data(), kb.data(), lo, hi, D, s.data(), ls);
          float inv[QT];
          for (int t = 0; t < QT; ++t) {
            inv[t] = 0.0f;
            const float l = lo < hi ? probabilities(s.data() + t * ls, rows[t], lo, hi, qlo[t], qhi[t], 0.0f, false, &inv[t])
                                    : NEG_INF;
            if (outs[t] == nullptr) continue;
            lp[(b * z.H + h) * z.Lq + i0 + t] = l;
            if (l == NEG_INF) {  // nothing to attend: zeros (and no weight in the tile's sums)
              std::fill_n(outs[t], D, 0.0f);
              if (lo < hi) std::fill(s.data() + t * ls + lo, s.data() + t * ls + hi, 0.0f);
            }
          }
          if (lo < hi) combine<DD, QT>(s.data(), ls, vr.data(), lo, hi, D, inv, outs);
          for (int t = 0; t < QT && i0 + t < z.Lq; ++t)
            store(ob.data() + t * D, D, op + ((b * z.Lq + i0 + t) * z.H + h) * D);  // out is (B, Lq, H, D)
        }
      }
    }
  });
}

template <int64_t DD, typename T>
void backward_impl(const Dims& z, const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                   const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse, const Mask& mask, float scale,
                   at::Tensor& dq, at::Tensor& dk, at::Tensor& dv) {
  constexpr int QT = tile_for(DD);
  const int64_t D = DD > 0 ? DD : z.D, nb = (z.Lk + BLK - 1) / BLK, ls = z.Lk;
  const T *qp = q.data_ptr<T>(), *kp = k.data_ptr<T>(), *vp = v.data_ptr<T>();
  const T *op = out.data_ptr<T>(), *gp = dout.data_ptr<T>();
  const float* lp = lse.data_ptr<float>();
  T *dqp = dq.data_ptr<T>(), *dkp = dk.data_ptr<T>(), *dvp = dv.data_ptr<T>();
  at::parallel_for(0, z.B * z.Hkv, 1, [&](int64_t lo_item, int64_t hi_item) {
    std::vector<float> kb((nb + 2) * D * BLK), vb((nb + 2) * D * BLK), kr(z.Lk * D), gk(z.Lk * D), gv(z.Lk * D);
    std::vector<float> p(QT * ls), ds(QT * ls), qs(QT * D), qraw(QT * D), g(QT * D), gq(QT * D), zeros(D, 0.0f);
    for (int64_t item = lo_item; item < hi_item; ++item) {
      const int64_t b = item / z.Hkv, kh = item % z.Hkv;
      const T* kbase = kp + b * k.stride(0) + kh * k.stride(1);
      const T* vbase = vp + b * v.stride(0) + kh * v.stride(1);
      to_blocks(kbase, k.stride(2), z.Lk, D, kb.data());
      to_blocks(vbase, v.stride(2), z.Lk, D, vb.data());
      to_rows(kbase, k.stride(2), z.Lk, D, kr.data());
      std::fill(gk.begin(), gk.end(), 0.0f);
      std::fill(gv.begin(), gv.end(), 0.0f);
      for (int64_t h = kh * z.rep; h < (kh + 1) * z.rep; ++h) {
        for (int64_t i0 = 0; i0 < z.Lq; i0 += QT) {
          int64_t qlo[QT], qhi[QT], lo = z.Lk, hi = 0;
          const bool* rows[QT];
          float* dqs[QT];  // rows of gq, then stored to dq
          T* dq_rows[QT];
          float lses[QT], delta[QT];
          for (int64_t i = i0 + QT; i < std::min(z.Lq, i0 + 2 * QT); ++i)  // the next tile's rows: strided
            for (int64_t d = 0; d < D; d += 16) {
              __builtin_prefetch(qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2) + d);
              __builtin_prefetch(gp + b * dout.stride(0) + i * dout.stride(1) + h * dout.stride(2) + d);
              __builtin_prefetch(op + ((b * z.Lq + i) * z.H + h) * D + d);
            }
          for (int t = 0; t < QT; ++t) {
            const int64_t i = i0 + t;
            qlo[t] = qhi[t] = 0, rows[t] = nullptr, dqs[t] = nullptr, dq_rows[t] = nullptr, lses[t] = NEG_INF, delta[t] = 0.0f;
            std::fill_n(qs.data() + t * D, D, 0.0f);
            std::fill_n(qraw.data() + t * D, D, 0.0f);
            std::fill_n(g.data() + t * D, D, 0.0f);
            if (i >= z.Lq) continue;
            dq_rows[t] = dqp + b * dq.stride(0) + h * dq.stride(1) + i * dq.stride(2);
            lses[t] = lp[(b * z.H + h) * z.Lq + i];
            rows[t] = mask.span(b, h, i, z.Lk, qlo[t], qhi[t]);
            if (lses[t] == NEG_INF || qlo[t] >= qhi[t]) {  // attended nothing: no gradient
              store(zeros.data(), D, dq_rows[t]);
              dq_rows[t] = nullptr, qlo[t] = qhi[t] = 0, lses[t] = NEG_INF;
              continue;
            }
            dqs[t] = gq.data() + t * D;
            const T* qi = qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
            const T* gi = gp + b * dout.stride(0) + i * dout.stride(1) + h * dout.stride(2);  // dout (B, Lq, H, D)
            const T* oi = op + ((b * z.Lq + i) * z.H + h) * D;
            for (int64_t d = 0; d < D; ++d) {
              const float qd = to_float(qi[d]), gd = to_float(gi[d]);
              qraw[t * D + d] = qd;
              qs[t * D + d] = qd * scale;
              g[t * D + d] = gd;
              delta[t] += gd * to_float(oi[d]);
            }
            lo = std::min(lo, qlo[t]), hi = std::max(hi, qhi[t]);
          }
          if (lo >= hi) continue;
          dots<DD, QT>(qs.data(), kb.data(), lo, hi, D, p.data(), ls);
          dots<DD, QT>(g.data(), vb.data(), lo, hi, D, ds.data(), ls);  // dO . v_j
          for (int t = 0; t < QT; ++t) {
            float* pt = p.data() + t * ls;
            float* dt = ds.data() + t * ls;
            if (lses[t] == NEG_INF) {
              std::fill(pt + lo, pt + hi, 0.0f);
              std::fill(dt + lo, dt + hi, 0.0f);
              continue;
            }
            probabilities(pt, rows[t], lo, hi, qlo[t], qhi[t], lses[t], true, nullptr);  // p = exp(s - lse)
            const float dl = delta[t];
#pragma omp simd
            for (int64_t j = lo; j < hi; ++j) dt[j] = pt[j] * (dt[j] - dl) * scale;  // d score, scale folded in
          }
          float ones[QT];
          std::fill_n(ones, QT, 1.0f);
          combine<DD, QT>(ds.data(), ls, kr.data(), lo, hi, D, ones, dqs);
          for (int t = 0; t < QT; ++t)
            if (dq_rows[t] != nullptr) store(gq.data() + t * D, D, dq_rows[t]);
          spread<DD, QT>(ds.data(), ls, qraw.data(), lo, hi, D, gk.data());
          spread<DD, QT>(p.data(), ls, g.data(), lo, hi, D, gv.data());
        }
      }
      for (int64_t j = 0; j < z.Lk; ++j) {
        store(gk.data() + j * D, D, dkp + b * dk.stride(0) + kh * dk.stride(1) + j * dk.stride(2));
        store(gv.data() + j * D, D, dvp + b * dv.stride(0) + kh * dv.stride(1) + j * dv.stride(2));
      }
    }
  });
}

#define RLVR_BY_HEAD_SIZE(fn, T, D, ...)     \
  switch (D) {                                \
    case 32: fn<32, T>(__VA_ARGS__); break;   \
    case 48: fn<48, T>(__VA_ARGS__); break;   \
    case 64: fn<64, T>(__VA_ARGS__); break;   \
    case 128: fn<128, T>(__VA_ARGS__); break; \
    default: fn<0, T>(__VA_ARGS__);           \
  }

// fp32 or bf16 tensors (fp32 arithmetic either way)
#define RLVR_DISPATCH(dtype, fn, D, ...)                    \
  if ((dtype) == at::kFloat) {                              \
    RLVR_BY_HEAD_SIZE(fn, float, D, __VA_ARGS__)            \
  } else {                                                  \
    RLVR_BY_HEAD_SIZE(fn, at::BFloat16, D, __VA_ARGS__)     \
  }

}  // namespace

// -> (out (B, Lq, H, D), lse (B, H, Lq)): out is laid out as transformers' attention functions return it.
std::vector<at::Tensor> attention_forward(at::Tensor q, at::Tensor k, at::Tensor v, at::Tensor mask, bool causal,
                                          double scale) {
  q = last_contiguous(q), k = last_contiguous(k), v = last_contiguous(v);
  const Dims z = dims(q, k, v);
  const Mask m = make_mask(mask, causal, z.B, z.H, z.Lq, z.Lk);
  auto out = at::empty({z.B, z.Lq, z.H, z.D}, q.options());
  auto lse = at::empty({z.B, z.H, z.Lq}, q.options().dtype(at::kFloat));
  RLVR_DISPATCH(q.scalar_type(), forward_impl, z.D, z, q, k, v, m, static_cast<float>(scale), out, lse);
  return {out, lse};
}

// dout (B, Lq, H, D), out and lse from attention_forward -> (dq, dk, dv) shaped as q, k, v.
std::vector<at::Tensor> attention_backward(at::Tensor dout, at::Tensor q, at::Tensor k, at::Tensor v, at::Tensor out,
                                           at::Tensor lse, at::Tensor mask, bool causal, double scale) {
  q = last_contiguous(q), k = last_contiguous(k), v = last_contiguous(v), dout = last_contiguous(dout);
  const Dims z = dims(q, k, v);
  TORCH_CHECK(dout.dim() == 4 && dout.size(0) == z.B && dout.size(1) == z.Lq && dout.size(2) == z.H &&
              dout.size(3) == z.D && dout.scalar_type() == q.scalar_type(), "attention_backward: dout must be (B, Lq, H, D) "
              "in q's dtype");
  TORCH_CHECK(out.is_contiguous() && lse.is_contiguous() && out.sizes() == dout.sizes() && out.scalar_type() == q.scalar_type() &&
              lse.scalar_type() == at::kFloat && lse.size(0) == z.B &&
              lse.size(1) == z.H && lse.size(2) == z.Lq, "attention_backward: out and lse as attention_forward returned them");
  const Mask m = make_mask(mask, causal, z.B, z.H, z.Lq, z.Lk);
  auto dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  RLVR_DISPATCH(q.scalar_type(), backward_impl, z.D, z, dout, q, k, v, out, lse, m, static_cast<float>(scale), dq, dk, dv);
  return {dq, dk, dv};
}
