/*
 * tg_math.h — the scalar functions of elementwise ops, for CPU kernels and CUDA kernels
 * alike (TG_HD). On CPUs they are written so that GCC vectorises the loops that call them:
 * no calls, no branches (selects), exp from a polynomial with ~2e-7 relative error, NaN kept
 * as NaN; on GPUs they use CUDA's own expf and tanhf.
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
 * coefficients), times 2^k as two powers of two built from the exponent bits (so that k runs
 * from -150 to 128: results near FLT_MAX and subnormal results are right); inf beyond
 * ln(FLT_MAX), 0 below ln of half the smallest subnormal, NaN stays NaN. */
TG_HD float tg_expf(float x)
{
#ifdef __CUDA_ARCH__
	return expf(x);
#else
	const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
	/* clamped, and NaN replaced (a NaN must not reach the conversion to int below) */
	float xc = x < 88.75f ? (x > -104.0f ? x : -104.0f) : 88.75f;
	float k = (xc * log2e + 12582912.0f) - 12582912.0f; /* round to nearest, without a call */
	float r = xc - k * ln2_hi - k * ln2_lo;
	float p = 1.9875691500E-4f;
	p = p * r + 1.3981999507E-3f;
	p = p * r + 8.3334519073E-3f;
	p = p * r + 4.1665795894E-2f;
	p = p * r + 1.6666665459E-1f;
	p = p * r + 5.0000001201E-1f;
	p = p * r * r + r + 1.0f;
	int32_t k1 = (int32_t)k / 2, k2 = (int32_t)k - k1; /* both in [-75, 64] */
	int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
	float s1, s2;
	memcpy(&s1, &b1, sizeof s1);
	memcpy(&s2, &b2, sizeof s2);
	float y = p * s1 * s2; /* p s1 is exact; the second product rounds once */
	y = x > 88.7228394f ? INFINITY : y;
	y = x < -103.972084f ? 0.0f : y;
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

/* du/dx uses x^2 capped at 400 (|x| = 20, where the derivative is already exactly 0 or 1 in
 * float): for a huge finite |x|, du/dx would overflow and make inf times 0 */
TG_HD float tg_gelu_gradf(float x)
{
	float x2 = x * x;
	x2 = x2 > 400.0f ? 400.0f : x2;
	float u = TG_GELU_K * (x + 0.044715f * x2 * x);
	float s = tg_sigmoidf(2.0f * u);
	float du = TG_GELU_K * (1.0f + 3.0f * 0.044715f * x2);
	float t = s * (1.0f - s); /* exactly 0 beyond |x| = 20: taken first, so a huge x cannot overflow */
	return s + t * x * du * 2.0f;
}

#endif /* TG_MATH_H */
