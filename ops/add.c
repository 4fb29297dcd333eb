/* add.c — out = a + b, with b of a's shape or one row broadcast over a's rows (a bias).
 *   backward: da = dout;  db = dout, or the column sums of dout when b was broadcast.
 * Gradient rule: activation gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

struct tg_add_args {
	int broadcast;   /* forward: b is one row */
	int accumulate;  /* backward: add into the destination */
};

/* buffers: out, a, b */
static void add_fwd_cpu(void *buffers[], void *cl_arg)
{
	const struct tg_add_args *args = cl_arg;
	void *o = buffers[0], *a = buffers[1], *b = buffers[2];
	uint32_t rows = tg_buf_rows(o), cols = tg_buf_cols(o);
	uint32_t ldo = tg_buf_ld(o), lda = tg_buf_ld(a), ldb = args->broadcast ? 0 : tg_buf_ld(b);
	float *po = TG_F32(o);
	const float *pa = TG_F32(a), *pb = TG_F32(b);
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++)
			po[(size_t)r * ldo + c] = pa[(size_t)r * lda + c] + pb[(size_t)r * ldb + c];
}

/* buffers: dst, src. dst (=|+=) src, or the column sums of src when dst is one row and src
 * has more (summed in row order: deterministic). */
static void add_bwd_cpu(void *buffers[], void *cl_arg)
{
	const struct tg_add_args *args = cl_arg;
	void *d = buffers[0], *s = buffers[1];
	uint32_t rows = tg_buf_rows(s), cols = tg_buf_cols(s);
	uint32_t ldd = tg_buf_ld(d), lds = tg_buf_ld(s);
	float *pd = TG_F32(d);
	const float *ps = TG_F32(s);
	if (tg_buf_rows(d) == rows) {
		for (uint32_t r = 0; r < rows; r++)
			for (uint32_t c = 0; c < cols; c++)
				pd[(size_t)r * ldd + c] = (args->accumulate ? pd[(size_t)r * ldd + c] : 0.0f) + ps[(size_t)r * lds + c];
		return;
	}
	if (!args->accumulate)
		for (uint32_t c = 0; c < cols; c++)
			pd[c] = 0.0f;
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++)
			pd[c] += ps[(size_t)r * lds + c];
}

#ifdef TG_USE_CUDA
static void add_fwd_cuda(void *buffers[], void *cl_arg)
{
	const struct tg_add_args *args = cl_arg;
	void *o = buffers[0], *a = buffers[1], *b = buffers[2];
	tg_cuda_add_fwd(TG_F32(o), (int)tg_buf_ld(o), TG_F32(a), (int)tg_buf_ld(a), TG_F32(b),
	                args->broadcast ? 0 : (int)tg_buf_ld(b), (int)tg_buf_rows(o), (int)tg_buf_cols(o), args->broadcast);
}

static void add_bwd_cuda(void *buffers[], void *cl_arg)
{
	const struct tg_add_args *args = cl_arg;
	void *d = buffers[0], *s = buffers[1];
	tg_cuda_add_bwd(TG_F32(d), (int)tg_buf_ld(d), TG_F32(s), (int)tg_buf_ld(s), (int)tg_buf_rows(s),
	                (int)tg_buf_cols(s), tg_buf_rows(d) != tg_buf_rows(s), args->accumulate);
}
#endif

/* ------------------------------------------------------------------ codelets */

TG_CODELET(add_fwd_cl, "add_fwd", add_fwd_cpu, add_fwd_cuda);
TG_CODELET(add_bwd_cl, "add_bwd", add_bwd_cpu, add_bwd_cuda);

/* ------------------------------------------------------------------ submission */

extern const tg_op_desc tg_op_add;

static int is_row_of(const tg_tensor *b, const tg_tensor *a)
{
	return tg_tensor_rows(b) == 1 && tg_tensor_cols(b) == tg_tensor_cols(a);
}

static int add_check(const tg_task_spec *s)
{
	TG_TRY(tg_check_f32("add", "output", s->t[0]));
	TG_TRY(tg_check_f32("add", "a", s->t[1]));
	TG_TRY(tg_check_f32("add", "b", s->t[2]));
	TG_TRY(tg_check_same_shape("add", "output", s->t[0], "a", s->t[1]));
	const struct tg_add_args *args = s->args;
	if (args->broadcast)
		return 0;
	return tg_check_same_shape("add", "b", s->t[2], "a", s->t[1]);
}

int tg_add(tg_tensor *out, tg_tensor *a, tg_tensor *b)
{
	TG_CHECK(out && a && b, TG_EINVAL, "add: a tensor argument is NULL");
	/* b broadcasts when it is a single row of a's width */
	struct tg_add_args args = {is_row_of(b, a), 0};
	tg_task_spec s = tg_spec(&tg_op_add, &add_fwd_cl, "add_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(out));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, a, TG_R);
	tg_spec_add(&s, b, TG_R);
	return tg_submit(&s);
}

static int submit_bwd(const tg_node *fwd, int operand, const char *name, tg_tensor *dout)
{
	tg_tensor *d;
	unsigned mode;
	TG_TRY(tg_grad_target(fwd, operand, &d, &mode));
	if (!d)
		return 0;
	struct tg_add_args args = {0, mode == TG_ACC};
	tg_task_spec s = tg_spec(&tg_op_add, &add_bwd_cl, name, TG_PHASE_BWD, &args, sizeof args,
	                         (double)tg_tensor_numel(dout));
	tg_spec_add(&s, d, mode);
	tg_spec_add(&s, dout, TG_R);
	return tg_submit(&s);
}

static int add_backward(const tg_node *fwd)
{
	tg_tensor *dout = tg_grad_of(fwd, 0);
	if (!dout)
		return 0;
	TG_TRY(submit_bwd(fwd, 1, "add_bwd_da", dout));
	return submit_bwd(fwd, 2, "add_bwd_db", dout);
}

const tg_op_desc tg_op_add = {
	.name = "add",
	.kind = TG_KIND_ELEMENTWISE,
	.check = add_check,
	.backward = add_backward,
	.doc = "out = a + b; b of a's shape or one row broadcast over a's rows (bias)",
};
