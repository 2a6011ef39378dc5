// RMSNorm and the SiLU-gated MLP's activation for the training and scoring passes on CPU, forward and
// backward, each one pass over memory: fp32 or bf16 tensors, fp32 arithmetic.
//
// In eager torch an RMSNorm is about six elementwise operations forward and a dozen backward, and
// silu(gate) * up three forward and three backward, each reading and writing whole activations (at
// hidden size 128 and intermediate 512 one MLP activation of a 64 x 129-token pass is 17 MB): at the
// small hidden sizes of RL on a CPU that memory traffic, not the matrix products, is much of a pass.
//
// rms_norm_forward(x (..., N), w (N), eps) -> (y, rstd (rows,) fp32): y = w * x / sqrt(mean(x^2) + eps).
// rms_norm_backward(dy, x, w, rstd) -> (dx, dw).
// swiglu_forward(g, u) -> silu(g) * u; swiglu_backward(dh, g, u) -> (dg, du). Same shapes, any dims.
// Inputs are made contiguous; outputs have the inputs' dtype; every value is rounded once.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"

namespace {

using rlvr::sigmoid;
using rlvr::to_float;

template <typename T>
inline void put(T* p, float v) { *p = rlvr::from_float<T>(v); }

void check(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, what, " must be float32 or bfloat16");
}

template <typename T>
void rms_fwd(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t N, float eps) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / N), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * N;
      T* yr = y + r * N;
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < N; ++i) ss += to_float(xr[i]) * to_float(xr[i]);
      const float s = 1.0f / std::sqrt(ss / static_cast<float>(N) + eps);
      rstd[r] = s;
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) put(yr + i, to_float(w[i]) * (to_float(xr[i]) * s));
    }
  });
}

// dx = s (g - n mean(g n)) with n = x s, g = dy w; dw = sum over rows of dy n: each chunk of CHUNK rows sums its
// own partial row, and the partials are added in chunk order, so dw does not depend on the thread count.
constexpr int64_t CHUNK = 64;

template <typename T>
void rms_bwd(const T* dy, const T* x, const T* w, const float* rstd, T* dx, float* dw_parts, int64_t rows, int64_t N) {
  const int64_t chunks = (rows + CHUNK - 1) / CHUNK;
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* dw = dw_parts + c * N;
      for (int64_t r = c * CHUNK; r < std::min(rows, (c + 1) * CHUNK); ++r) {
        const T* dyr = dy + r * N;
        const T* xr = x + r * N;
        T* dxr = dx + r * N;
        const float s = rstd[r];
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < N; ++i) {
          const float d = to_float(dyr[i]), n = to_float(xr[i]) * s;
          dot += d * to_float(w[i]) * n;
          dw[i] += d * n;
        }
        const float m = dot / static_cast<float>(N);
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float n = to_float(xr[i]) * s;
          put(dxr + i, s * (to_float(dyr[i]) * to_float(w[i]) - n * m));
        }
      }
    }
  });
}

template <typename T>
void swiglu_fwd(const T* g, const T* u, T* h, int64_t n) {
  at::parallel_for(0, n, 32768, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const float x = to_float(g[i]);
      put(h + i, x * sigmoid(x) * to_float(u[i]));
    }
  });
}

// h = silu(g) u: dg = dh u sig (1 + g (1 - sig)), du = dh g sig.
template <typename T>
void swiglu_bwd(const T* dh, const T* g, const T* u, T* dg, T* du, int64_t n) {
  at::parallel_for(0, n, 32768, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const float x = to_float(g[i]), d = to_float(dh[i]), sg = sigmoid(x);
      put(dg + i, d * to_float(u[i]) * sg * (1.0f + x * (1.0f - sg)));
      put(du + i, d * x * sg);
    }
  });
}

}  // namespace

std::vector<at::Tensor> rms_norm_forward(at::Tensor x, at::Tensor w, double eps) {
  check(x, "x");
  TORCH_CHECK(w.scalar_type() == x.scalar_type() && w.dim() == 1 && x.size(-1) == w.numel(),
              "w must be 1-D, of x's last size and dtype");
  x = x.contiguous();
  w = w.contiguous();
  const int64_t N = w.numel(), rows = x.numel() / N;
  auto y = at::empty_like(x);
  auto rstd = at::empty({rows}, x.options().dtype(at::kFloat));
  if (x.scalar_type() == at::kFloat)
    rms_fwd(x.data_ptr<float>(), w.data_ptr<float>(), y.data_ptr<float>(), rstd.data_ptr<float>(), rows, N, eps);
  else
    rms_fwd(x.data_ptr<at::BFloat16>(), w.data_ptr<at::BFloat16>(), y.data_ptr<at::BFloat16>(), rstd.data_ptr<float>(),
            rows, N, eps);
  return {y, rstd};
}

std::vector<at::Tensor> rms_norm_backward(at::Tensor dy, at::Tensor x, at::Tensor w, at::Tensor rstd) {
  check(x, "x");
  dy = dy.to(x.scalar_type()).contiguous();
  x = x.contiguous();
  w = w.contiguous();
  const int64_t N = w.numel(), rows = x.numel() / N;
  auto dx = at::empty_like(x);
  const int64_t chunks = (rows + CHUNK - 1) / CHUNK;
  auto parts = at::zeros({chunks, N}, x.options().dtype(at::kFloat));
  if (x.scalar_type() == at::kFloat)
    rms_bwd(dy.data_ptr<float>(), x.data_ptr<float>(), w.data_ptr<float>(), rstd.data_ptr<float>(), dx.data_ptr<float>(),
            parts.data_ptr<float>(), rows, N);
  else
    rms_bwd(dy.data_ptr<at::BFloat16>(), x.data_ptr<at::BFloat16>(), w.data_ptr<at::BFloat16>(), rstd.data_ptr<float>(),
            dx.data_ptr<at::BFloat16>(), parts.data_ptr<float>(), rows, N);
  auto dw = at::zeros({N}, x.options().dtype(at::kFloat));
  float* dwp = dw.data_ptr<float>();
  const float* pp = parts.data_ptr<float>();
  for (int64_t c = 0; c < chunks; ++c)  // in order: the same sum whatever the thread count
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) dwp[i] += pp[c * N + i];
  return {dx, dw.to(w.scalar_type()).view(w.sizes())};
}

at::Tensor swiglu_forward(at::Tensor g, at::Tensor u) {
  check(g, "gate");
  TORCH_CHECK(u.scalar_type() == g.scalar_type() && u.sizes() == g.sizes(), "up must match gate's shape and dtype");
  g = g.contiguous();
  u = u.contiguous();
  auto h = at::empty_like(g);
  if (g.scalar_type() == at::kFloat)
    swiglu_fwd(g.data_ptr<float>(), u.data_ptr<float>(), h.data_ptr<float>(), g.numel());
  else
    swiglu_fwd(g.data_ptr<at::BFloat16>(), u.data_ptr<at::BFloat16>(), h.data_ptr<at::BFloat16>(), g.numel());
  return h;
}

std::vector<at::Tensor> swiglu_backward(at::Tensor dh, at::Tensor g, at::Tensor u) {
  check(g, "gate");
  dh = dh.to(g.scalar_type()).contiguous();
  g = g.contiguous();
  u = u.contiguous();
  auto dg = at::empty_like(g), du = at::empty_like(u);
  if (g.scalar_type() == at::kFloat)
    swiglu_bwd(dh.data_ptr<float>(), g.data_ptr<float>(), u.data_ptr<float>(), dg.data_ptr<float>(), du.data_ptr<float>(),
               g.numel());
  else
    swiglu_bwd(dh.data_ptr<at::BFloat16>(), g.data_ptr<at::BFloat16>(), u.data_ptr<at::BFloat16>(),
               dg.data_ptr<at::BFloat16>(), du.data_ptr<at::BFloat16>(), g.numel());
  return {dg, du};
}
