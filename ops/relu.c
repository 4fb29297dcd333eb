/* relu.c — out = max(x, 0);  backward: dx = dout * (x > 0).
 * Gradient rule: activation gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

struct tg_relu_args {
	int accumulate; /* backward: add into dx */
};

/* buffers: out, x */
static void relu_fwd_cpu(void *buffers[], void *cl_arg)
{
	(void)cl_arg;
	void *o = buffers[0], *x = buffers[1];
	uint32_t rows = tg_buf_rows(o), cols = tg_buf_cols(o), ldo = tg_buf_ld(o), ldx = tg_buf_ld(x);
	float *po = TG_F32(o);
	const float *px = TG_F32(x);
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++) {
			float v = px[(size_t)r * ldx + c];
			po[(size_t)r * ldo + c] = v > 0.0f ? v : 0.0f;
		}
}

/* buffers: dx, dout, x */
static void relu_bwd_cpu(void *buffers[], void *cl_arg)
{
	const struct tg_relu_args *args = cl_arg;
	void *dx = buffers[0], *dout = buffers[1], *x = buffers[2];
	uint32_t rows = tg_buf_rows(dx), cols = tg_buf_cols(dx);
	uint32_t ldd = tg_buf_ld(dx), ldo = tg_buf_ld(dout), ldx = tg_buf_ld(x);
	float *pd = TG_F32(dx);
	const float *po = TG_F32(dout), *px = TG_F32(x);
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++) {
			float g = px[(size_t)r * ldx + c] > 0.0f ? po[(size_t)r * ldo + c] : 0.0f;
			pd[(size_t)r * ldd + c] = args->accumulate ? pd[(size_t)r * ldd + c] + g : g;
		}
}

#ifdef TG_USE_CUDA
static void relu_fwd_cuda(void *buffers[], void *cl_arg)
{
	(void)cl_arg;
	void *o = buffers[0], *x = buffers[1];
	tg_cuda_relu_fwd(TG_F32(o), (int)tg_buf_ld(o), TG_F32(x), (int)tg_buf_ld(x), (int)tg_buf_rows(o),
	                 (int)tg_buf_cols(o));
}

static void relu_bwd_cuda(void *buffers[], void *cl_arg)
{
	const struct tg_relu_args *args = cl_arg;
	void *dx = buffers[0], *dout = buffers[1], *x = buffers[2];
	tg_cuda_relu_bwd(TG_F32(dx), (int)tg_buf_ld(dx), TG_F32(dout), (int)tg_buf_ld(dout), TG_F32(x),
	                 (int)tg_buf_ld(x), (int)tg_buf_rows(dx), (int)tg_buf_cols(dx), args->accumulate);
}
#endif

/* ------------------------------------------------------------------ codelets */

TG_CODELET(relu_fwd_cl, "relu_fwd", relu_fwd_cpu, relu_fwd_cuda);
TG_CODELET(relu_bwd_cl, "relu_bwd", relu_bwd_cpu, relu_bwd_cuda);

/* ------------------------------------------------------------------ submission */

extern const tg_op_desc tg_op_relu;

static int relu_check(const tg_task_spec *s)
{
	TG_TRY(tg_check_f32("relu", "output", s->t[0]));
	TG_TRY(tg_check_f32("relu", "x", s->t[1]));
	return tg_check_same_shape("relu", "output", s->t[0], "x", s->t[1]);
}

int tg_relu(tg_tensor *out, tg_tensor *x)
{
	TG_CHECK(out && x, TG_EINVAL, "relu: a tensor argument is NULL");
	struct tg_relu_args args = {0};
	tg_task_spec s = tg_spec(&tg_op_relu, &relu_fwd_cl, "relu_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(out));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	return tg_submit(&s);
}

static int relu_backward(const tg_node *fwd)
{
	tg_tensor *dout = tg_grad_of(fwd, 0), *x = tg_node_tensor(fwd, 1), *dx;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mode));
	if (!dx)
		return 0;
	struct tg_relu_args args = {mode == TG_ACC};
	tg_task_spec s = tg_spec(&tg_op_relu, &relu_bwd_cl, "relu_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         (double)tg_tensor_numel(dx));
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dout, TG_R);
	tg_spec_add(&s, x, TG_R);
	return tg_submit(&s);
}

const tg_op_desc tg_op_relu = {
	.name = "relu",
	.kind = TG_KIND_ELEMENTWISE,
	.check = relu_check,
	.backward = relu_backward,
	.doc = "out = max(x, 0)",
};
