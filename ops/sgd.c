/* sgd.c — one SGD step on one parameter (an optimizer task, phase TG_PHASE_OPT):
 *   g = grad + weight_decay * param;  v = momentum * v + g;  param -= lr * v
 * (without a velocity tensor: param -= lr * g). The gradient is then marked empty, so the
 * next backward overwrites it instead of accumulating (no zeroing task). Not differentiable. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

struct tg_sgd_args {
	float lr, momentum, weight_decay;
	int has_velocity;
};

/* buffers: param, grad, [velocity] */
static void sgd_fwd_cpu(void *buffers[], void *cl_arg)
{
	const struct tg_sgd_args *a = cl_arg;
	void *pb = buffers[0], *gb = buffers[1], *vb = a->has_velocity ? buffers[2] : NULL;
	uint32_t rows = tg_buf_rows(pb), cols = tg_buf_cols(pb);
	uint32_t ldp = tg_buf_ld(pb), ldg = tg_buf_ld(gb), ldv = vb ? tg_buf_ld(vb) : 0;
	float *p = TG_F32(pb), *v = vb ? TG_F32(vb) : NULL;
	const float *g = TG_F32(gb);
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++) {
			float *pi = &p[(size_t)r * ldp + c];
			float gi = g[(size_t)r * ldg + c] + a->weight_decay * *pi;
			if (v) {
				float *vi = &v[(size_t)r * ldv + c];
				*vi = a->momentum * *vi + gi;
				gi = *vi;
			}
			*pi -= a->lr * gi;
		}
}

#ifdef TG_USE_CUDA
static void sgd_fwd_cuda(void *buffers[], void *cl_arg)
{
	const struct tg_sgd_args *a = cl_arg;
	void *pb = buffers[0], *gb = buffers[1], *vb = a->has_velocity ? buffers[2] : NULL;
	tg_cuda_sgd(TG_F32(pb), (int)tg_buf_ld(pb), TG_F32(gb), (int)tg_buf_ld(gb), vb ? TG_F32(vb) : NULL,
	            vb ? (int)tg_buf_ld(vb) : 0, (int)tg_buf_rows(pb), (int)tg_buf_cols(pb), a->lr, a->momentum,
	            a->weight_decay);
}
#endif

/* ------------------------------------------------------------------ codelets */

TG_CODELET(sgd_fwd_cl, "sgd_fwd", sgd_fwd_cpu, sgd_fwd_cuda);

/* ------------------------------------------------------------------ submission */

extern const tg_op_desc tg_op_sgd;

int tg_sgd(tg_tensor *param, tg_tensor *velocity, const tg_sgd_params *p)
{
	TG_CHECK(param && p, TG_EINVAL, "sgd: parameter or settings are NULL");
	TG_TRY(tg_tensor_check_usable(param, "sgd"));
	if (velocity)
		TG_TRY(tg_tensor_check_usable(velocity, "sgd"));
	TG_TRY(tg_check_f32("sgd", "parameter", param));
	TG_CHECK(tg_tensor_requires_grad(param), TG_EINVAL, "sgd: '%s' does not require a gradient", tg_tensor_name(param));
	TG_CHECK(isfinite(p->lr) && p->lr >= 0, TG_EINVAL, "sgd: learning rate must be finite and >= 0, got %g", (double)p->lr);
	TG_CHECK(isfinite(p->momentum) && p->momentum >= 0 && p->momentum < 1, TG_EINVAL,
	         "sgd: momentum must be in [0, 1), got %g", (double)p->momentum);
	TG_CHECK(isfinite(p->weight_decay) && p->weight_decay >= 0, TG_EINVAL,
	         "sgd: weight decay must be finite and >= 0, got %g", (double)p->weight_decay);
	if (velocity) {
		TG_TRY(tg_check_f32("sgd", "velocity", velocity));
		TG_TRY(tg_check_same_shape("sgd", "velocity", velocity, "parameter", param));
	}
	if (!tg_tensor_grad_valid(param))
		return 0; /* no gradient reached it: nothing to do */
	struct tg_sgd_args args = {p->lr, p->momentum, p->weight_decay, velocity != NULL};
	tg_task_spec s = tg_spec(&tg_op_sgd, &sgd_fwd_cl, "sgd_update", TG_PHASE_OPT, &args, sizeof args,
	                         (velocity ? 5.0 : 3.0) * (double)tg_tensor_numel(param));
	s.layer = tg_tensor_layer(param);
	tg_spec_add(&s, param, TG_RW);
	tg_spec_add(&s, tg_tensor_grad(param), TG_R);
	if (velocity)
		tg_spec_add(&s, velocity, TG_RW);
	TG_TRY(tg_submit(&s));
	return tg_zero_grad(param);
}

const tg_op_desc tg_op_sgd = {
	.name = "sgd",
	.kind = TG_KIND_OPTIMIZER,
	.check = NULL,
	.backward = NULL,
	.doc = "SGD step with momentum and weight decay on one parameter",
};
