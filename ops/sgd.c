/* sgd.c — one SGD step on one parameter (an optimizer task, phase TG_PHASE_OPT):
 *   g = grad + weight_decay * param;  v = momentum * v + g;  param -= lr * v
 * (without a velocity tensor: param -= lr * g), tiled by rows for large parameters. The
 * gradient is then marked empty, so the next backward overwrites it instead of accumulating
 * (no zeroing task). Not differentiable. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ kernels */

static TG_VEC void sgd_vec(tg_mat param, tg_mat grad, tg_mat velocity, const struct tg_sgd_args *a)
{
	for (int r = 0; r < param.rows; r++) {
		float *restrict p = TG_ROW(param, r);
		const float *restrict g = TG_ROW(grad, r);
		if (velocity.p) {
			float *restrict v = TG_ROW(velocity, r);
			for (int c = 0; c < param.cols; c++) {
				v[c] = a->momentum * v[c] + (g[c] + a->weight_decay * p[c]);
				p[c] -= a->lr * v[c];
			}
		} else {
			for (int c = 0; c < param.cols; c++)
				p[c] -= a->lr * (g[c] + a->weight_decay * p[c]);
		}
	}
}

void tg_sgd_cpu(tg_mat param, tg_mat grad, tg_mat velocity, const struct tg_sgd_args *a)
{
	sgd_vec(param, grad, velocity, a);
}

TG_OP_WRAPPERS(tg_sgd, 3, struct tg_sgd_args)
TG_OP_CODELET(sgd_cl, "sgd_fwd", tg_sgd);

/* ------------------------------------------------------------------ submission */

TG_OP_DESC(sgd, TG_KIND_OPTIMIZER, NULL, NULL, "SGD step with momentum and weight decay on one parameter");

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
	struct tg_sgd_args args = {p->lr, p->momentum, p->weight_decay};
	tg_task_spec s = tg_spec(&tg_op_sgd, &sgd_cl, "sgd_update", TG_PHASE_OPT, &args, sizeof args,
	                         (velocity ? 5.0 : 3.0) * (double)tg_tensor_numel(param));
	s.layer = tg_tensor_layer(param);
	tg_spec_add(&s, param, TG_RW);
	tg_spec_add(&s, tg_tensor_grad(param), TG_R);
	if (velocity)
		tg_spec_add(&s, velocity, TG_RW);
	s.tile = TG_TILE_ROWS;
	TG_TRY(tg_submit(&s));
	return tg_zero_grad(param);
}
