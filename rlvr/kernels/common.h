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

// float -> T; bf16 rounds to nearest even like at::BFloat16(float), but written so loops over it vectorise
// (NaN stays NaN).
template <typename T>
inline T from_float(float x) {
  return static_cast<T>(x);
}
template <>
inline at::BFloat16 from_float<at::BFloat16>(float x) {
  const uint32_t u = __builtin_bit_cast(uint32_t, x);
  const uint32_t r = (u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return at::BFloat16(static_cast<uint16_t>(r), at::BFloat16::from_bits());
}

}  // namespace rlvr
