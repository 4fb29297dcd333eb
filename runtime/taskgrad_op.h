/*
 * taskgrad_op.h — writing ops: the kit taskgrad's built-in ops are made with, installed for
 * yours (#include <taskgrad_op.h>; it includes <starpu.h> and <taskgrad.h>).
 *
 * An op is three things:
 *   1. kernels on plain descriptors (tg_mat: pointer, rows, columns, leading dimension), the
 *      same arguments on CPU and CUDA (a CUDA launcher adds the stream), callable without
 *      StarPU (tests, benchmarks):
 *          void square_fwd_cpu(tg_mat y, tg_mat x, const struct square_args *a);
 *   2. codelets: TG_CPU_WRAPPER / TG_CUDA_WRAPPER make the StarPU functions that unpack a
 *      task's buffers into tg_mat and call the kernel; TG_CODELET declares the codelet (per-task
 *      access modes, a history-based performance model);
 *   3. a descriptor (tg_op_desc: name, kind, shape check, backward rule) and a submit function
 *      that fills a tg_task_spec (tg_spec, tg_spec_add) and calls tg_submit; with
 *      spec.tile = TG_TILE_ROWS the op runs as one task per row tile, on every worker.
 * tg_check_op (below) checks an op against your double-precision reference and by finite
 * differences on every backend present. See examples/custom_op.c.
 */
#ifndef TASKGRAD_OP_H
#define TASKGRAD_OP_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <starpu.h>

#include "taskgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------ */
/* Kernel operands                                                                      */
/* ------------------------------------------------------------------------------------ */

/* A matrix operand of a kernel: rows x cols elements, rows ld elements apart. A rank-1
 * tensor is one row. p points to float or int32 elements (TG_MF, TG_MI). */
typedef struct tg_mat {
	void *p;
	int rows, cols, ld;
} tg_mat;
#define TG_MF(m) ((float *)(m).p)
#define TG_MI(m) ((int32_t *)(m).p)

/* The tg_mat of a task's buffer (a StarPU matrix, or a vector seen as one row). */
static inline tg_mat tg_mat_of(void *buf)
{
	tg_mat m;
	struct starpu_matrix_interface *x = (struct starpu_matrix_interface *)buf;
	if (x->id == STARPU_MATRIX_INTERFACE_ID) {
		m.p = (void *)x->ptr;
		m.rows = (int)x->ny;
		m.cols = (int)x->nx;
		m.ld = (int)x->ld;
	} else {
		struct starpu_vector_interface *v = (struct starpu_vector_interface *)buf;
		m.p = (void *)v->ptr;
		m.rows = 1;
		m.cols = (int)v->nx;
		m.ld = (int)v->nx;
	}
	return m;
}

/* Buffer i of the running task, or an empty tg_mat (p NULL) when the task has fewer: for
 * optional operands. */
static inline tg_mat tg_mat_opt(void *buffers[], int i)
{
	struct starpu_task *t = starpu_task_get_current();
	if (!t || i >= (int)STARPU_TASK_GET_NBUFFERS(t)) {
		tg_mat none = {NULL, 0, 0, 0};
		return none;
	}
	return tg_mat_of(buffers[i]);
}

/* ------------------------------------------------------------------------------------ */
/* Codelets                                                                             */
/* ------------------------------------------------------------------------------------ */

#define TG_MATS_1(b) tg_mat_opt(b, 0)
#define TG_MATS_2(b) TG_MATS_1(b), tg_mat_opt(b, 1)
#define TG_MATS_3(b) TG_MATS_2(b), tg_mat_opt(b, 2)
#define TG_MATS_4(b) TG_MATS_3(b), tg_mat_opt(b, 3)
#define TG_MATS_5(b) TG_MATS_4(b), tg_mat_opt(b, 4)
#define TG_MATS_6(b) TG_MATS_5(b), tg_mat_opt(b, 5)
#define TG_MATS_7(b) TG_MATS_6(b), tg_mat_opt(b, 6)
#define TG_MATS_8(b) TG_MATS_7(b), tg_mat_opt(b, 7)
#define TG_MATS_9(b) TG_MATS_8(b), tg_mat_opt(b, 8)
#define TG_MATS_10(b) TG_MATS_9(b), tg_mat_opt(b, 9)
#define TG_MATS_11(b) TG_MATS_10(b), tg_mat_opt(b, 10)
#define TG_MATS_12(b) TG_MATS_11(b), tg_mat_opt(b, 11)
#define TG_MATS_13(b) TG_MATS_12(b), tg_mat_opt(b, 12)

/* TG_CPU_WRAPPER(kernel, n, args_t) defines kernel##_starpu_cpu, the StarPU CPU function
 * that calls kernel(mat_0, ..., mat_{n-1}, (const args_t *)cl_arg) on the task's n buffers (a
 * buffer the task lacks is an empty tg_mat). TG_CUDA_WRAPPER(kernel, n, args_t) defines
 * kernel##_starpu_cuda, which adds StarPU's stream for the worker. */
#define TG_CPU_WRAPPER(kernel, n, args_t)                                  \
	static void kernel##_starpu_cpu(void *tg_b_[], void *tg_a_)        \
	{                                                                  \
		kernel(TG_MATS_##n(tg_b_), (const args_t *)tg_a_);         \
	}
#ifdef STARPU_USE_CUDA
#define TG_CUDA_WRAPPER(kernel, n, args_t)                                                 \
	static void kernel##_starpu_cuda(void *tg_b_[], void *tg_a_)                       \
	{                                                                                  \
		kernel(TG_MATS_##n(tg_b_), (const args_t *)tg_a_, starpu_cuda_get_local_stream()); \
	}
#define TG_CODELET_CUDA_(fn) .cuda_funcs = {fn}, .cuda_flags = {STARPU_CUDA_ASYNC},
#else
#define TG_CUDA_WRAPPER(kernel, n, args_t)
#define TG_CODELET_CUDA_(fn)
#endif

/* TG_CODELET(var, "name", cpu_fn, cuda_fn): a codelet with a history-based performance model
 * (symbol "tg_name"), per-task access modes (STARPU_VARIABLE_NBUFFERS) and, when StarPU has
 * CUDA and cuda_fn is not NULL, an asynchronous CUDA implementation. */
#define TG_CODELET(var, cname, cpu_fn, cuda_fn)                     \
	static struct starpu_perfmodel var##_model = {              \
		.type = STARPU_HISTORY_BASED,                       \
		.symbol = "tg_" cname,                              \
	};                                                          \
	static struct starpu_codelet var = {                        \
		.cpu_funcs = {cpu_fn},                              \
		TG_CODELET_CUDA_(cuda_fn)                           \
		.nbuffers = STARPU_VARIABLE_NBUFFERS,               \
		.model = &var##_model,                              \
		.name = cname,                                      \
	}

/* ------------------------------------------------------------------------------------ */
/* Specs and checks                                                                     */
/* ------------------------------------------------------------------------------------ */

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

/* Add an operand. Past TG_MAX_OPERANDS the spec is marked too long and tg_submit refuses it. */
static inline void tg_spec_add(tg_task_spec *s, tg_tensor *t, unsigned mode)
{
	if (s->n >= 0 && s->n < TG_MAX_OPERANDS) {
		s->t[s->n] = t;
		s->mode[s->n] = mode;
	}
	s->n++;
}

/* Checks for shape functions: 0, or an error naming op, what and the tensor. */
TG_API int tg_check_f32(const char *op, const char *what, const tg_tensor *t);
TG_API int tg_check_i32(const char *op, const char *what, const tg_tensor *t);
TG_API int tg_check_same_shape(const char *op, const char *wa, const tg_tensor *a, const char *wb, const tg_tensor *b);
/* t must have exactly rows x cols as a matrix (rows or cols < 0: any). */
TG_API int tg_check_matrix(const char *op, const char *what, const tg_tensor *t, int64_t rows, int64_t cols);

/* ------------------------------------------------------------------------------------ */
/* Checking an op                                                                       */
/* ------------------------------------------------------------------------------------ */
/*
 * tg_check_op runs an op on fresh random inputs, on every backend asked for, in one tile and in
 * several, and checks it against your double-precision reference:
 *   - every operand is a block inside a padded tensor: kernels must honour the leading
 *     dimension; pads of inputs hold random values, pads of outputs and gradients canaries,
 *     which must be intact afterwards, and inputs must be bit for bit as given;
 *   - forward vs ref_fwd: normalised mean squared error (NMSE) at most `tolerance`;
 *   - backward: the gradient of L = sum_k sum(out_k * R_k), R_k random, for each output k
 *     marked requires_grad (output 0 when none is), vs ref_bwd, once writing the gradients
 *     and once adding to them (a second backward must give twice as much);
 *   - ref_bwd against finite differences of ref_fwd (in double), and the backend's gradient
 *     against finite differences of L on the backend itself (float, at sampled elements);
 *   - the access modes each task was submitted with: inputs read, outputs and gradients
 *     written by their first contribution (TG_W, never read before) and never written blind
 *     after it (TG_ACC, TG_RW, TG_REDUX or a read), in-place results never written blind (a
 *     write-only update is right on a CPU, garbage on a GPU);
 *   - NaN and infinity never pass; a backend without a worker, or where the op has no
 *     implementation, is reported as such, never as passed.
 * It needs a running runtime (tg_init). Lines go to log (NULL: silent).
 */
#define TG_CHECK_MAX 4 /* inputs, and outputs, of a checked op */

typedef enum tg_check_gen {
	TG_GEN_NORMAL = 0,       /* normal(0, 1) */
	TG_GEN_AWAY_FROM_ZERO,   /* normal, moved 0.1 away from 0 (for kinks at 0) */
	TG_GEN_INDEX,            /* int32 indices in [0, index_range) */
	TG_GEN_POSITIVE          /* uniform in [0.5, 2) */
} tg_check_gen;

typedef struct tg_check_operand {
	int rank;
	int64_t shape[TG_MAX_RANK];
	tg_dtype dtype;
	tg_check_gen gen;
	int64_t index_range;     /* TG_GEN_INDEX */
	int requires_grad;       /* an input: its gradient is checked; an output: it carries one */
} tg_check_operand;

typedef struct tg_check_case tg_check_case;
struct tg_check_case {
	const char *op;          /* the op's name, for messages */
	const char *label;       /* this case ("(17, 3)") */
	int nin;
	tg_check_operand in[TG_CHECK_MAX];
	int nout;                /* fresh outputs; 0: the results are inputs updated in place */
	tg_check_operand out[TG_CHECK_MAX];
	int ninplace;
	int inplace[TG_CHECK_MAX]; /* the inputs updated in place (nout = 0) */
	/* Submit the op on tensors shaped as above. */
	int (*run)(tg_tensor **out, tg_tensor **in, const tg_check_case *c);
	/* res[k]: output (or in-place result) k from the inputs, packed, in double. */
	void (*ref_fwd)(double **res, double *const *in, const tg_check_case *c);
	/* din[i] (NULL when input i needs no gradient) from dout[k] (NULL when output k carries
	 * none). NULL: the op has no backward. */
	void (*ref_bwd)(double **din, double *const *dout, double *const *in, const tg_check_case *c);
	int iarg;                /* the case's own arguments, for run and the references */
	float farg[4];
	const void *user;
	double tolerance;        /* NMSE bound of results and gradients (0: 1e-9) */
	unsigned overwritten;    /* bit i: in-place input i is overwritten without being read (its
	                          * first access writes, TG_W); the others are read first */
};

typedef enum tg_check_verdict {
	TG_CHECK_NOT_RUN = 0,
	TG_CHECK_PASS,
	TG_CHECK_FAIL,
	TG_CHECK_NOT_SUPPORTED,  /* the op has no implementation on the backend */
	TG_CHECK_NO_WORKER       /* no worker of the backend runs here */
} tg_check_verdict;

typedef struct tg_check_result {
	tg_check_verdict cpu, cuda;
	int failures;            /* failed checks, over every backend and tiling */
} tg_check_result;

TG_API const char *tg_check_verdict_name(tg_check_verdict v);
/* Check c on the backends asked for (TG_BACKEND_ANY: CPU and CUDA), tilings 0: in one tile and
 * in several, 1: one tile only, 2: several only. seed: the random inputs' (print it to repeat
 * a run). 0 when every backend that could run it passed; TG_EINVAL with a message naming the
 * failed checks; res (may be NULL) says what each backend did. */
TG_API int tg_check_op(const tg_check_case *c, unsigned backends, int tilings, uint64_t seed, FILE *log,
                       tg_check_result *res);

#ifdef __cplusplus
}
#endif
#endif /* TASKGRAD_OP_H */
