/*
 * tg_math.h — the scalar functions of elementwise ops, for CPU kernels and CUDA kernels
 * alike (TG_HD). On CPUs they are written so that GCC vectorises the loops that call them:
 * no calls, no branches (selects), exp from a polynomial with ~1e-7 relative error, NaN kept
 * as NaN (tests/test_math.c checks them over the whole float range); on GPUs they use CUDA's
 * own expf and tanhf.
 */
#ifndef TG_MATH_H
#define TG_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tg_philox.h"

#ifdef __CUDACC__
#define TG_HD static __host__ __device__ inline
#else
#define TG_HD static inline
#endif

/* exp(x): x = k ln2 + r, |r| <= ln2/2, exp(r) by a degree-7 polynomial (Cephes' expf
 * coefficients) doubled, times 2^(k-1) from the exponent bits (k runs to 128: right up to
 * FLT_MAX). Relative error about 1e-7 (tests/test_math.c). Results below 2^-125.5 (about
 * 1.7e-38, x < -86.99) are 0: no subnormals; inf beyond ln(FLT_MAX); NaN stays NaN. k is read
 * from the bits of the rounding sum (no float-to-int conversion, so a NaN going through is
 * harmless: it is selected at the end). */
TG_HD float tg_expf(float x)
{
#ifdef __CUDA_ARCH__
	return expf(x);
#else
	const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
	const float round = 12582912.0f; /* 1.5 2^23: x + round has round(x) in its low bits */
	const float hi = 88.7228394f, lo = -86.9902f; /* ln(FLT_MAX), (-125.5) ln 2 */
	float xc = x > hi ? hi : (x < lo ? lo : x);
	float kr = xc * log2e + round;
	float k = kr - round;
	float r = xc - k * ln2_hi - k * ln2_lo;
	float p = 1.9875691500E-4f;
	p = p * r + 1.3981999507E-3f;
	p = p * r + 8.3334519073E-3f;
	p = p * r + 4.1665795894E-2f;
	p = p * r + 1.6666665459E-1f;
	p = p * r + 5.0000001201E-1f;
	p = p * r * r + r + 1.0f;
	uint32_t kbits;
	memcpy(&kbits, &kr, sizeof kbits);
	uint32_t bits = (kbits - 0x4B400000u + 126u) << 23; /* 0x4B400000: the bits of round */
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	float y = (p + p) * scale;
	y = x > hi ? INFINITY : y;
	y = x < lo ? 0.0f : y;
	return x != x ? x : y;
#endif
}

/* 1 / (1 + exp(-x)): 0 and 1 at the far ends, no cancellation. */
TG_HD float tg_sigmoidf(float x)
{
	return 1.0f / (1.0f + tg_expf(-x));
}

/* tanh(x): an odd polynomial near 0 (Cephes' tanhf), 1 - 2 / (exp(2|x|) + 1) beyond. */
TG_HD float tg_tanhf(float x)
{
#ifdef __CUDA_ARCH__
	return tanhf(x);
#else
	float a = x < 0.0f ? -x : x;
	float z = x * x;
	float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z + 1.33314422036E-1f) * z -
	               3.33332819422E-1f) * z * x + x;
	float big = 1.0f - 2.0f / (tg_expf(2.0f * a) + 1.0f);
	big = x < 0.0f ? -big : big;
	float y = a < 0.625f ? small : big;
	return x != x ? x : y;
#endif
}

/* GELU, tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as
 * x sigmoid(2u) (the same function, no cancellation). Its derivative, with s = sigmoid(2u):
 * s + 2 x s (1 - s) du/dx. */
#define TG_GELU_K 0.7978845608028654f /* sqrt(2/pi) */
TG_HD float tg_geluf(float x)
{
	float u = TG_GELU_K * (x + 0.044715f * x * x * x);
	float y = x * tg_sigmoidf(2.0f * u);
	return x < -20.0f ? -0.0f : y; /* already -0 there in float, and -inf would give inf times 0 */
}

/* beyond |x| = 20 (x^2 > 400) the derivative is exactly 0 or 1 in float (s itself); the
 * formula would make inf times 0 there once x^2 overflows */
TG_HD float tg_gelu_gradf(float x)
{
	float x2 = x * x;
	float u = TG_GELU_K * (x + 0.044715f * x2 * x);
	float s = tg_sigmoidf(2.0f * u);
	float du = TG_GELU_K * (1.0f + 3.0f * 0.044715f * x2);
	float g = s + 2.0f * x * s * (1.0f - s) * du;
	return x2 > 400.0f ? s : g;
}

#endif /* TG_MATH_H */
