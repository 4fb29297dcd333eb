/*
 * tg_ops.h — what every op file shares: the TG_CODELET macro, BLAS, shape helpers.
 * Ops use the public API (taskgrad.h) like users' own ops do; tg_starpu.h hides the
 * StarPU 1.3/1.4 differences.
 */
#ifndef TG_OPS_H
#define TG_OPS_H

#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "taskgrad.h"
#include "tg_check.h"
#include "tg_starpu.h"
#ifdef TG_USE_CUDA
#include "tg_cuda.h"
#endif

/* TG_CODELET(var, "name", cpu_fn, cuda_fn): a codelet with a history-based perfmodel whose
 * symbol is "tg_name", per-task access modes (STARPU_VARIABLE_NBUFFERS), and the CUDA
 * implementation (asynchronous, on StarPU's stream) only when CUDA is compiled in. */
#ifdef TG_USE_CUDA
#define TG_CUDA_IMPL(fn) .cuda_funcs = {fn}, .cuda_flags = {STARPU_CUDA_ASYNC},
#else
#define TG_CUDA_IMPL(fn)
#endif
#define TG_CODELET(var, cname, cpu_fn, cuda_fn)                                       \
	static struct starpu_perfmodel var##_model = {                                \
		.type = STARPU_HISTORY_BASED,                                         \
		.symbol = "tg_" cname,                                                \
	};                                                                            \
	static struct starpu_codelet var = {                                          \
		.cpu_funcs = {cpu_fn},                                                \
		.cpu_funcs_name = {#cpu_fn},                                          \
		TG_CUDA_IMPL(cuda_fn)                                                 \
		.nbuffers = STARPU_VARIABLE_NBUFFERS,                                 \
		.model = &var##_model,                                                \
		.name = cname,                                                        \
	}

/* A task spec with its common fields set. */
static inline tg_task_spec tg_spec(const tg_op_desc *op, struct starpu_codelet *cl, const char *name,
                                   tg_phase phase, const void *args, size_t args_size, double flops)
{
	tg_task_spec s;
	memset(&s, 0, sizeof s);
	s.op = op;
	s.cl = cl;
	s.name = name;
	s.phase = phase;
	s.args = args;
	s.args_size = args_size;
	s.flops = flops;
	return s;
}

static inline void tg_spec_add(tg_task_spec *s, tg_tensor *t, unsigned mode)
{
	s->t[s->n] = t;
	s->mode[s->n] = mode;
	s->n++;
}

/* Shape checks shared by ops. */
int tg_check_f32(const char *op, const char *what, const tg_tensor *t);
int tg_check_same_shape(const char *op, const char *wa, const tg_tensor *a, const char *wb, const tg_tensor *b);

/* Float buffer of a codelet argument. */
#define TG_F32(buf) ((float *)tg_buf_ptr(buf))

#endif /* TG_OPS_H */
