// Helpers shared by rlvr's CPU kernels.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace rlvr {

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

// The logistic sigmoid from e^-|x| (never overflows), branch-free so loops over it vectorise.
inline float sigmoid(float x) {
  const float e = exp_nonpositive(x < 0.0f ? x : -x);
  return x < 0.0f ? e / (1.0f + e) : 1.0f / (1.0f + e);
}

inline float to_float(float x) { return x; }
inline float to_float(at::BFloat16 x) { return __builtin_bit_cast(float, static_cast<uint32_t>(x.x) << 16); }
inline float to_float(at::Half x) { return static_cast<float>(x); }

}  // namespace rlvr
