// The matrix products of a CPU decode step: a thread's block of rows (tens) times weights that stay fixed
// for a whole generation.
//
// At these shapes a BLAS call spends much of its time copying the weight into its own blocked layout,
// again at every call. Here the weight is copied once per generation into panels of 32 output columns,
// (ceil(N / 32), K, 32): for each k the panel's 32 weights are one 128-byte line, so a tile of 8 rows x 32
// columns keeps its 16 running sums in AVX-512 registers and reads each weight once per tile. Each output
// sums its K products in order, in blocks of 256 added into the output: the result of a row does not depend
// on the other rows, the block sizes or the thread count. Without AVX-512 (another CPU), `pack_panels`
// returns the weight as it is and `linear_rows` runs ATen's matrix product.
#pragma once

#include <ATen/ATen.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>

namespace rlvr {

constexpr int64_t PANEL = 32;     // output columns per panel: two 16-float vectors
constexpr int64_t PANEL_K = 256;  // products summed in registers before they are added to the output

// (N, K) fp32 weight -> (ceil(N / 32), K, 32) panels, zero-padded columns; the weight itself without AVX-512.
inline at::Tensor pack_panels(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat, "pack_panels: need a (N, K) float32 weight");
#ifdef __AVX512F__
  const int64_t N = w.size(0), K = w.size(1), np = (N + PANEL - 1) / PANEL;
  auto padded = at::zeros({np * PANEL, K}, w.options());
  padded.narrow(0, 0, N).copy_(w);
  return padded.view({np, PANEL, K}).transpose(1, 2).contiguous();
#else
  return w;
#endif
}

#ifdef __AVX512F__
// out[r, 0:32] (masked to the panel's valid columns) = x[r, 0:K] . panel (+ out[r] when accumulate), MR rows.
template <int MR>
inline void panel_tile(const float* __restrict x, int64_t ldx, const float* __restrict panel, int64_t K,
                       float* __restrict out, int64_t ldo, __mmask16 m0, __mmask16 m1, bool accumulate) {
  __m512 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_loadu_ps(panel + k * PANEL), b1 = _mm512_loadu_ps(panel + k * PANEL + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * ldx + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    float* o = out + r * ldo;
    if (accumulate) {
      acc[r][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), acc[r][0]);
      acc[r][1] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), acc[r][1]);
    }
    _mm512_mask_storeu_ps(o, m0, acc[r][0]);
    _mm512_mask_storeu_ps(o + 16, m1, acc[r][1]);
  }
}
#endif

// out (n, N) = x (n, K) @ w.T, plus bias (N,) when it is not empty, plus out's own values when accumulate;
// w as `pack_panels` returned it. x and out: rows with unit column stride (a block of a larger matrix is fine).
inline void linear_rows(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, at::Tensor& out,
                        bool accumulate) {
  if (w.dim() == 2) {  // ATen's product
    if (accumulate) {
      if (bias.numel()) out.add_(bias);
      out.addmm_(x, w.t());
    } else if (bias.numel()) {
      at::addmm_out(out, bias, x, w.t());
    } else {
      at::mm_out(out, x, w.t());
    }
    return;
  }
#ifdef __AVX512F__
  const int64_t n = x.size(0), K = x.size(1), N = out.size(1), ldx = x.stride(0), ldo = out.stride(0);
  TORCH_CHECK(x.stride(1) == 1 && out.stride(1) == 1 && w.size(1) == K && w.size(2) == PANEL &&
              w.size(0) * PANEL >= N && out.size(0) == n, "linear_rows: shapes of x, packed w and out disagree");
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* op = out.data_ptr<float>();
  if (bias.numel()) {  // out = bias (+ out), then the products are added
    const float* bp = bias.data_ptr<float>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < N; ++c) op[r * ldo + c] = accumulate ? op[r * ldo + c] + bp[c] : bp[c];
    accumulate = true;
  }
  for (int64_t p = 0; p * PANEL < N; ++p) {
    const int64_t c0 = p * PANEL, cols = std::min(PANEL, N - c0);
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xFFFF : (cols > 16 ? static_cast<__mmask16>((1u << (cols - 16)) - 1) : 0);
    for (int64_t k0 = 0; k0 < K; k0 += PANEL_K) {
      const int64_t kk = std::min(PANEL_K, K - k0);
      const bool add = accumulate || k0 > 0;
      const float* panel = wp + (p * K + k0) * PANEL;
      const float* xr = xp + k0;
      float* orow = op + c0;
      int64_t r = 0;
      for (; r + 8 <= n; r += 8) panel_tile<8>(xr + r * ldx, ldx, panel, kk, orow + r * ldo, ldo, m0, m1, add);
      const float* xt = xr + r * ldx;
      float* ot = orow + r * ldo;
      switch (n - r) {
        case 7: panel_tile<7>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        case 6: panel_tile<6>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        case 5: panel_tile<5>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        case 4: panel_tile<4>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        case 3: panel_tile<3>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        case 2: panel_tile<2>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        case 1: panel_tile<1>(xt, ldx, panel, kk, ot, ldo, m0, m1, add); break;
        default: break;
      }
    }
  }
#else
  TORCH_CHECK(false, "linear_rows: a packed weight needs a build with AVX-512");
#endif
}

}  // namespace rlvr
