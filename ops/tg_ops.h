/*
 * tg_ops.h — what every op file shares: the public op kit (taskgrad_op.h: tg_mat, codelet
 * wrappers, specs, checks), the kernels' declarations (tg_kernels.h), BLAS, and the macros
 * that make a built-in op's codelets and descriptor. Ops use the public API like users' own
 * ops do; there is no #ifdef in an op file.
 */
#ifndef TG_OPS_H
#define TG_OPS_H

#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "taskgrad.h"
#include "taskgrad_op.h"
#include "tg_check.h"
#include "tg_kernels.h"
#include "tg_math.h"
#ifdef TG_USE_CUDA
#include "tg_cuda.h"
#endif

/* TG_OP_WRAPPERS(k, n, args_t): the StarPU functions of kernel k (k##_cpu, and k##_cuda when
 * CUDA is compiled in) for tasks with n buffers. TG_OP_CODELET(var, "name", k): a codelet
 * running them (task and performance-model name "name"). */
#ifdef TG_USE_CUDA
#define TG_OP_WRAPPERS(k, n, args_t) TG_CPU_WRAPPER(k##_cpu, n, args_t) TG_CUDA_WRAPPER(k##_cuda, n, args_t)
#define TG_OP_CODELET(var, cname, k) TG_CODELET(var, cname, k##_cpu_starpu_cpu, k##_cuda_starpu_cuda)
#else
#define TG_OP_WRAPPERS(k, n, args_t) TG_CPU_WRAPPER(k##_cpu, n, args_t)
#define TG_OP_CODELET(var, cname, k) TG_CODELET(var, cname, k##_cpu_starpu_cpu, NULL)
#endif

/* TG_OP_DESC(name, kind, check, backward, doc): the descriptor tg_op_<name>, named "name". */
#define TG_OP_DESC(nm, knd, chk, bwd, dc)                                                          \
	extern const tg_op_desc tg_op_##nm;                                                        \
	const tg_op_desc tg_op_##nm = {.name = #nm, .kind = knd, .check = chk, .backward = bwd, .doc = dc}

/* Kernels of memory-bound work are compiled for several instruction sets (the best one is
 * picked when the library loads), so an installed library uses AVX2/AVX-512 where present.
 * TG_VEC goes on a static function (GCC exports cloned functions whatever their visibility,
 * so the kernel itself is a plain function that calls it). */
#ifdef TG_HAVE_TARGET_CLONES
#define TG_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TG_VEC
#endif

/* A row of a tg_mat. */
#define TG_ROW(m, r) (TG_MF(m) + (size_t)(r) * (size_t)(m).ld)

/* Row reductions that vectorise without -ffast-math and keep one summation order on every
 * instruction set (the same bits from each clone): TG_LANES partial results, lane k taking
 * the elements k, k + TG_LANES, ... (sums in double), then the lanes combined in order. GCC
 * keeps a plain `s += x[j]` loop scalar (it may not reorder it); these lanes are independent,
 * so they become vector registers. Use them inside TG_VEC functions. */
#define TG_LANES 8
/* inlined into the caller, so each of its clones gets its own instruction set */
#define TG_INLINE static inline __attribute__((always_inline))
TG_INLINE double tg_lanes_total(const double *acc)
{
	double s = 0;
	for (int k = 0; k < TG_LANES; k++)
		s += acc[k];
	return s;
}

/* sum_j x[j] */
TG_INLINE double tg_sum_row(const float *restrict x, int n)
{
	double acc[TG_LANES] = {0};
	int j = 0;
	for (; j + TG_LANES <= n; j += TG_LANES)
		for (int k = 0; k < TG_LANES; k++)
			acc[k] += x[j + k];
	for (int k = 0; j < n; j++, k++)
		acc[k] += x[j];
	return tg_lanes_total(acc);
}

/* sum_j x[j] y[j] */
TG_INLINE double tg_dot_row(const float *restrict x, const float *restrict y, int n)
{
	double acc[TG_LANES] = {0};
	int j = 0;
	for (; j + TG_LANES <= n; j += TG_LANES)
		for (int k = 0; k < TG_LANES; k++)
			acc[k] += (double)x[j + k] * y[j + k];
	for (int k = 0; j < n; j++, k++)
		acc[k] += (double)x[j] * y[j];
	return tg_lanes_total(acc);
}

/* sum_j (x[j] - m)^2 */
TG_INLINE double tg_sqdev_row(const float *restrict x, double m, int n)
{
	double acc[TG_LANES] = {0};
	int j = 0;
	for (; j + TG_LANES <= n; j += TG_LANES)
		for (int k = 0; k < TG_LANES; k++)
			acc[k] += ((double)x[j + k] - m) * ((double)x[j + k] - m);
	for (int k = 0; j < n; j++, k++)
		acc[k] += ((double)x[j] - m) * ((double)x[j] - m);
	return tg_lanes_total(acc);
}

/* max_j x[j], n >= 1 (a NaN element is not taken: callers see it through the values
 * themselves, e.g. exp(NaN - max) is NaN) */
TG_INLINE float tg_max_row(const float *restrict x, int n)
{
	float acc[2 * TG_LANES];
	for (int k = 0; k < 2 * TG_LANES; k++)
		acc[k] = x[0];
	int j = 0;
	for (; j + 2 * TG_LANES <= n; j += 2 * TG_LANES)
		for (int k = 0; k < 2 * TG_LANES; k++)
			acc[k] = x[j + k] > acc[k] ? x[j + k] : acc[k];
	for (int k = 0; j < n; j++, k++)
		acc[k] = x[j] > acc[k] ? x[j] : acc[k];
	float m = acc[0];
	for (int k = 1; k < 2 * TG_LANES; k++)
		m = acc[k] > m ? acc[k] : m;
	return m;
}

/* sum_j exp(x[j] - m), the exponentials in float (tg_expf), the sum in double lanes */
TG_INLINE double tg_sumexp_row(const float *restrict x, float m, int n)
{
	double acc[TG_LANES] = {0};
	int j = 0;
	for (; j + TG_LANES <= n; j += TG_LANES)
		for (int k = 0; k < TG_LANES; k++)
			acc[k] += tg_expf(x[j + k] - m);
	for (int k = 0; j < n; j++, k++)
		acc[k] += tg_expf(x[j] - m);
	return tg_lanes_total(acc);
}

/* softmax in place over the first n of cols columns, the rest set to 0 (a causal row) */
TG_INLINE void tg_softmax_row(float *restrict o, int n, int cols)
{
	float m = tg_max_row(o, n);
	for (int j = 0; j < n; j++)
		o[j] = tg_expf(o[j] - m);
	float inv = (float)(1.0 / tg_sum_row(o, n));
	for (int j = 0; j < n; j++)
		o[j] *= inv;
	for (int j = n; j < cols; j++)
		o[j] = 0.0f;
}

#endif /* TG_OPS_H */
