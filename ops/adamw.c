/* adamw.c — one AdamW step on one parameter (an optimizer task, phase TG_PHASE_OPT), with
 * bias correction and decoupled weight decay (Loshchilov & Hutter; PyTorch's AdamW):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   param -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * param)
 * Tiled by rows; the gradient is then marked empty (as sgd). Not differentiable. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ kernels */

static TG_VEC void adamw_vec(tg_mat param, tg_mat grad, tg_mat m, tg_mat v, const struct tg_adamw_args *a)
{
	for (int r = 0; r < param.rows; r++) {
		float *restrict p = TG_ROW(param, r), *restrict mr = TG_ROW(m, r), *restrict vr = TG_ROW(v, r);
		const float *restrict g = TG_ROW(grad, r);
		for (int c = 0; c < param.cols; c++) {
			float mi = a->beta1 * mr[c] + (1.0f - a->beta1) * g[c];
			float vi = a->beta2 * vr[c] + (1.0f - a->beta2) * g[c] * g[c];
			mr[c] = mi;
			vr[c] = vi;
			p[c] -= a->lr * (mi / a->bias1 / (sqrtf(vi / a->bias2) + a->eps) + a->weight_decay * p[c]);
		}
	}
}

void tg_adamw_cpu(tg_mat param, tg_mat grad, tg_mat m, tg_mat v, const struct tg_adamw_args *a)
{
	adamw_vec(param, grad, m, v, a);
}

TG_OP_WRAPPERS(tg_adamw, 4, struct tg_adamw_args)
TG_OP_CODELET(adamw_cl, "adamw", tg_adamw);

/* ------------------------------------------------------------------ submission */

TG_OP_DESC(adamw, TG_KIND_OPTIMIZER, NULL, NULL, "AdamW step (bias-corrected, decoupled weight decay) on one parameter");

int tg_adamw(tg_tensor *param, tg_tensor *m, tg_tensor *v, const tg_adamw_params *p)
{
	TG_CHECK(param && m && v && p, TG_EINVAL, "adamw: parameter, moments or settings are NULL");
	TG_TRY(tg_tensor_check_usable(param, "adamw"));
	TG_TRY(tg_tensor_check_usable(m, "adamw"));
	TG_TRY(tg_tensor_check_usable(v, "adamw"));
	TG_TRY(tg_check_f32("adamw", "parameter", param));
	TG_CHECK(tg_tensor_requires_grad(param), TG_EINVAL, "adamw: '%s' does not require a gradient", tg_tensor_name(param));
	TG_CHECK(isfinite(p->lr) && p->lr >= 0, TG_EINVAL, "adamw: learning rate must be finite and >= 0, got %g",
	         (double)p->lr);
	TG_CHECK(p->beta1 >= 0 && p->beta1 < 1, TG_EINVAL, "adamw: beta1 must be in [0, 1), got %g", (double)p->beta1);
	TG_CHECK(p->beta2 >= 0 && p->beta2 < 1, TG_EINVAL, "adamw: beta2 must be in [0, 1), got %g", (double)p->beta2);
	TG_CHECK(isfinite(p->eps) && p->eps > 0, TG_EINVAL, "adamw: eps must be finite and > 0, got %g", (double)p->eps);
	TG_CHECK(isfinite(p->weight_decay) && p->weight_decay >= 0, TG_EINVAL,
	         "adamw: weight decay must be finite and >= 0, got %g", (double)p->weight_decay);
	TG_CHECK(p->step >= 1, TG_EINVAL, "adamw: step must be >= 1 (the first step is 1), got %lld", (long long)p->step);
	TG_TRY(tg_check_f32("adamw", "m", m));
	TG_TRY(tg_check_f32("adamw", "v", v));
	TG_TRY(tg_check_same_shape("adamw", "m", m, "parameter", param));
	TG_TRY(tg_check_same_shape("adamw", "v", v, "parameter", param));
	TG_CHECK(m != v && m != param && v != param, TG_EINVAL, "adamw: parameter, m and v must be three tensors");
	if (!tg_tensor_grad_valid(param))
		return 0; /* no gradient reached it: nothing to do */
	/* 1 - beta^t in double: t can be large, and beta^t must not round to 1 too early */
	double b1t = pow((double)p->beta1, (double)p->step), b2t = pow((double)p->beta2, (double)p->step);
	struct tg_adamw_args args = {p->lr, p->beta1, p->beta2, p->eps, p->weight_decay, (float)(1.0 - b1t),
	                             (float)(1.0 - b2t)};
	TG_CHECK(args.bias1 > 0 && args.bias2 > 0, TG_EINVAL,
	         "adamw: beta1 = %g or beta2 = %g gives no bias correction (1 - beta^t is 0)", (double)p->beta1,
	         (double)p->beta2);
	tg_task_spec s = tg_spec(&tg_op_adamw, &adamw_cl, "adamw_update", TG_PHASE_OPT, &args, sizeof args,
	                         12.0 * (double)tg_tensor_numel(param));
	s.layer = tg_tensor_layer(param);
	tg_spec_add(&s, param, TG_RW);
	tg_spec_add(&s, tg_tensor_grad(param), TG_R);
	tg_spec_add(&s, m, TG_RW);
	tg_spec_add(&s, v, TG_RW);
	s.tile = TG_TILE_ROWS;
	TG_TRY(tg_submit(&s));
	return tg_zero_grad(param);
}
