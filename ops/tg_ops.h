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

#endif /* TG_OPS_H */
