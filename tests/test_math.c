/*
 * test_math.c — the scalar functions of the CPU kernels (ops/tg_math.h: exp, sigmoid, tanh,
 * GELU and its derivative) against double precision, over their whole range: a fine grid from
 * beyond the underflow of exp to beyond its overflow, random floats, and the special values.
 * Compiled with the kernels' flags (no FMA contraction under -std=c11: the same arithmetic
 * as in their vectorised loops).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tg_math.h"

/* the grid: [LO, HI] in steps of 1/STEPS_PER_UNIT, plus 2^16 random floats of every magnitude */
enum { STEPS_PER_UNIT = 1024, NRANDOM = 1 << 16 };
static const double LO = -112.0, HI = 92.0;

static float grid(int i)
{
	return (float)(LO + (double)i / STEPS_PER_UNIT);
}
static int grid_count(void)
{
	return (int)((HI - LO) * STEPS_PER_UNIT) + 1;
}
/* a float of random sign, exponent and mantissa (no NaN, no inf), from a fixed sequence */
static float random_float(uint64_t *s)
{
	for (;;) {
		*s = *s * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t bits = (uint32_t)(*s >> 32);
		float f;
		memcpy(&f, &bits, sizeof f);
		if (isfinite(f))
			return f;
	}
}

typedef struct worst {
	double err; /* the largest error, relative to the tolerance (<= 1 passes) */
	float x;
	double got, want;
} worst;

/* |got - want| <= rel |want| + abs, NaN for NaN, infinities equal */
static void check(worst *w, float x, float got, double want, double rel, double abs)
{
	want = (float)want; /* the reference rounded to float: beyond FLT_MAX it is inf */
	double e;
	if (isnan(want) || isnan(got))
		e = isnan(want) && isnan(got) ? 0 : INFINITY;
	else if (isinf(want) || isinf(got))
		e = (double)got == want ? 0 : INFINITY;
	else
		e = fabs((double)got - want) / (rel * fabs(want) + abs);
	if (!(e <= w->err)) {
		w->err = e;
		w->x = x;
		w->got = got;
		w->want = want;
	}
}

static void report(const char *what, const worst *w)
{
	print_message("%-10s worst at x = %.9g: %.9g, reference %.9g (%.3g of the tolerance)\n", what, (double)w->x,
	              w->got, w->want, w->err);
	if (!(w->err <= 1.0))
		fail_msg("%s(%.9g) = %.9g, reference %.9g: beyond the tolerance (%.3g of it)", what, (double)w->x, w->got,
		         w->want, w->err);
}

typedef float (*fn32)(float);
typedef double (*fn64)(double);

/* cond (may be NULL): how much the relative tolerance grows at x (1 + cond(x) times rel) */
static void sweep(const char *what, fn32 f, fn64 ref, fn64 cond, double rel, double abs)
{
	worst w = {0};
	int n = grid_count(), nspecial;
	uint64_t s = 12345;
	const float special[] = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, FLT_TRUE_MIN, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN};
	nspecial = (int)(sizeof special / sizeof special[0]);
	for (int i = 0; i < n + NRANDOM + nspecial; i++) {
		float x = i < n ? grid(i) : i < n + NRANDOM ? random_float(&s) : special[i - n - NRANDOM];
		double c = cond && isfinite(x) ? cond(x) : 0.0;
		check(&w, x, f(x), ref(x), rel * (1.0 + c), abs);
	}
	report(what, &w);
}

static float exp32(float x)
{
	return tg_expf(x);
}
static float sigmoid32(float x)
{
	return tg_sigmoidf(x);
}
static double sigmoid64(double x)
{
	return 1.0 / (1.0 + exp(-x));
}
static float tanh32(float x)
{
	return tg_tanhf(x);
}
static float gelu32(float x)
{
	return tg_geluf(x);
}
/* GELU, tanh form, in double: 0.5 (1 + tanh(u)) = sigmoid(2u) and 0.5 (1 - tanh(u)^2) =
 * 2 sigmoid(2u) sigmoid(-2u), written without cancellation; at +-inf, the limits. */
static double gelu64(double x)
{
	if (isinf(x))
		return x > 0 ? x : -0.0;
	double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
	return x / (1.0 + exp(-2.0 * u));
}
static float gelu_grad32(float x)
{
	return tg_gelu_gradf(x);
}
/* GELU in float rounds u (relative 6e-8) and sigmoid(2u) passes that error on multiplied by
 * |2u| (1 - sigmoid(2u)): large for very negative x (tiny values), 0 where GELU saturates */
static double gelu_cond(double x)
{
	double t = 2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x);
	return fabs(t) / (1.0 + exp(t)) / 8.0;
}
static double gelu_grad64(double x)
{
	if (isinf(x))
		return x > 0 ? 1.0 : 0.0;
	double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
	double sp = 1.0 / (1.0 + exp(-2.0 * u)), sm = 1.0 / (1.0 + exp(2.0 * u));
	double du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
	return sp + 2.0 * x * sp * sm * du;
}

/* exp: 3e-7 relative, 0 where the result would be below 2^-125.5 (no subnormals), inf where
 * the float reference is inf */
static void exp_whole_range(void **unused)
{
	(void)unused;
	sweep("exp", exp32, exp, NULL, 3e-7, 0x1p-125);
}

static void sigmoid_whole_range(void **unused)
{
	(void)unused;
	sweep("sigmoid", sigmoid32, sigmoid64, NULL, 5e-7, FLT_MIN); /* below FLT_MIN: 0 */
}

static void tanh_whole_range(void **unused)
{
	(void)unused;
	sweep("tanh", tanh32, tanh, NULL, 5e-7, FLT_TRUE_MIN);
}

/* GELU and its derivative: a float evaluation of the tanh form (x sigmoid(2u)): the absolute
 * term covers the cancellation in the derivative where its terms cancel */
static void gelu_whole_range(void **unused)
{
	(void)unused;
	sweep("gelu", gelu32, gelu64, gelu_cond, 2e-6, 1e-37);
	sweep("gelu'", gelu_grad32, gelu_grad64, gelu_cond, 2e-6, 1e-6);
	/* saturated: exactly x and exactly 1 beyond 10 (the float sigmoid is 1 there) */
	uint64_t s = 999;
	for (int i = 0; i < NRANDOM; i++) {
		float x = fabsf(random_float(&s));
		x = x > 10.0f ? x : 10.0f + x;
		if (!(tg_geluf(x) == x && tg_gelu_gradf(x) == 1.0f))
			fail_msg("gelu(%.9g) = %.9g, gelu' = %.9g: not x and 1", (double)x, (double)tg_geluf(x),
			         (double)tg_gelu_gradf(x));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exp_whole_range),
		cmocka_unit_test(sigmoid_whole_range),
		cmocka_unit_test(tanh_whole_range),
		cmocka_unit_test(gelu_whole_range),
	};
	return cmocka_run_group_tests_name("math", tests, NULL, NULL);
}
