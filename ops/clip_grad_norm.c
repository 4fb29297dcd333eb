/* clip_grad_norm.c — clip the global norm of several parameters' gradients without waiting on
 * the host (tasks all the way):
 *   1. norm[0] (+)= the sum of squares of each gradient (by row tiles, in double inside a
 *      task; the gradients in the order given, the tiles in row order: deterministic);
 *   2. one task: norm[0] = sqrt(norm[0]), norm[1] = min(1, max_norm / (norm[0] + 1e-6))
 *      (a NaN norm gives a NaN factor, so a broken step shows);
 *   3. every gradient *= norm[1], by row tiles.
 * Parameters without a gradient are skipped. Not differentiable. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ kernels */

void tg_sumsq_cpu(tg_mat acc, tg_mat g, const struct tg_clip_args *a)
{
	double s = 0;
	for (int r = 0; r < g.rows; r++) {
		const float *x = TG_ROW(g, r);
		for (int c = 0; c < g.cols; c++)
			s += (double)x[c] * x[c];
	}
	TG_MF(acc)[0] = (float)(a->accumulate ? (double)TG_MF(acc)[0] + s : s);
}

void tg_clip_norm_cpu(tg_mat acc, const struct tg_clip_args *a)
{
	float *n = TG_MF(acc);
	float norm = sqrtf(n[0]), factor = a->max_norm / (norm + 1e-6f);
	n[0] = norm;
	n[1] = factor > 1.0f ? 1.0f : factor;
}

static TG_VEC void scale_vec(tg_mat g, float f)
{
	for (int r = 0; r < g.rows; r++) {
		float *restrict x = TG_ROW(g, r);
		for (int c = 0; c < g.cols; c++)
			x[c] *= f;
	}
}

void tg_clip_scale_cpu(tg_mat g, tg_mat acc, const struct tg_clip_args *a)
{
	(void)a;
	scale_vec(g, TG_MF(acc)[1]);
}

TG_OP_WRAPPERS(tg_sumsq, 2, struct tg_clip_args)
TG_OP_WRAPPERS(tg_clip_norm, 1, struct tg_clip_args)
TG_OP_WRAPPERS(tg_clip_scale, 2, struct tg_clip_args)
TG_OP_WRAPPERS(tg_zero, 1, struct tg_pos_add_args)
TG_OP_CODELET(sumsq_cl, "clip_sumsq", tg_sumsq);
TG_OP_CODELET(clip_norm_cl, "clip_norm", tg_clip_norm);
TG_OP_CODELET(clip_scale_cl, "clip_scale", tg_clip_scale);
TG_OP_CODELET(clip_zero_cl, "clip_zero", tg_zero);

/* ------------------------------------------------------------------ submission */

TG_OP_DESC(clip_grad_norm, TG_KIND_OPTIMIZER, NULL, NULL, "clip the global norm of gradients (no host wait)");

static void accumulate_after_first(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	(void)row0;
	if (tile > 0)
		((struct tg_clip_args *)args)->accumulate = 1;
}

int tg_clip_grad_norm(int n, tg_tensor *const *params, float max_norm, tg_tensor *norm)
{
	TG_CHECK(params && norm, TG_EINVAL, "clip_grad_norm: NULL argument");
	TG_CHECK(n >= 0, TG_EINVAL, "clip_grad_norm: %d parameters", n);
	TG_CHECK(isfinite(max_norm) && max_norm > 0, TG_EINVAL, "clip_grad_norm: max_norm must be finite and > 0, got %g",
	         (double)max_norm);
	TG_TRY(tg_tensor_check_usable(norm, "clip_grad_norm"));
	TG_TRY(tg_check_f32("clip_grad_norm", "norm", norm));
	TG_CHECK(tg_tensor_rank(norm) == 1 && tg_tensor_numel(norm) == 2, TG_ESHAPE,
	         "clip_grad_norm: norm '%s' must be a vector of 2 values (the norm, the factor)", tg_tensor_name(norm));
	for (int i = 0; i < n; i++) {
		TG_CHECK(params[i], TG_EINVAL, "clip_grad_norm: parameter %d is NULL", i);
		TG_TRY(tg_tensor_check_usable(params[i], "clip_grad_norm"));
		TG_CHECK(params[i] != norm, TG_EINVAL, "clip_grad_norm: norm '%s' is also parameter %d", tg_tensor_name(norm), i);
	}
	/* the whole op, recorded with the gradients it scales (as many as the record holds) */
	tg_task_spec op = tg_spec(&tg_op_clip_grad_norm, NULL, "clip_grad_norm", TG_PHASE_OPT, NULL, 0, 0);
	tg_spec_add(&op, norm, TG_W);
	for (int i = 0; i < n && op.n < TG_MAX_OPERANDS; i++)
		if (tg_tensor_grad_valid(params[i]))
			tg_spec_add(&op, tg_tensor_grad(params[i]), TG_RW);
	TG_TRY(tg_op_begin(&op));
	int rc = 0, first = 1;
	struct tg_clip_args args = {max_norm, 0};
	for (int i = 0; i < n && rc == 0; i++) {
		if (!tg_tensor_grad_valid(params[i]))
			continue;
		tg_tensor *g = tg_tensor_grad(params[i]);
		args.accumulate = !first;
		tg_task_spec s = tg_spec(&tg_op_clip_grad_norm, &sumsq_cl, "clip_sumsq", TG_PHASE_OPT, &args, sizeof args,
		                         2.0 * (double)tg_tensor_numel(g));
		s.layer = tg_tensor_layer(params[i]);
		tg_spec_add(&s, norm, first ? TG_W : TG_ACC);
		tg_spec_add(&s, g, TG_R);
		s.tile = TG_TILE_ROWS; /* by the gradient's rows, the norm whole to every tile */
		s.tile_on = 1;
		s.whole = 1u << 0;
		if (first)
			s.tile_args = accumulate_after_first;
		rc = tg_submit(&s);
		first = 0;
	}
	if (rc == 0 && first) { /* no gradient: the norm is 0 */
		struct tg_pos_add_args z = {0, 0, 0};
		tg_task_spec s = tg_spec(&tg_op_clip_grad_norm, &clip_zero_cl, "clip_zero", TG_PHASE_OPT, &z, sizeof z, 0);
		tg_spec_add(&s, norm, TG_W);
		rc = tg_submit(&s);
	}
	if (rc == 0) {
		args.accumulate = 0;
		tg_task_spec s = tg_spec(&tg_op_clip_grad_norm, &clip_norm_cl, "clip_norm", TG_PHASE_OPT, &args, sizeof args, 2);
		tg_spec_add(&s, norm, TG_RW);
		rc = tg_submit(&s);
	}
	for (int i = 0; i < n && rc == 0; i++) {
		if (!tg_tensor_grad_valid(params[i]))
			continue;
		tg_tensor *g = tg_tensor_grad(params[i]);
		tg_task_spec s = tg_spec(&tg_op_clip_grad_norm, &clip_scale_cl, "clip_scale", TG_PHASE_OPT, &args, sizeof args,
		                         (double)tg_tensor_numel(g));
		s.layer = tg_tensor_layer(params[i]);
		tg_spec_add(&s, g, TG_RW);
		tg_spec_add(&s, norm, TG_R);
		s.tile = TG_TILE_ROWS;
		s.whole = 1u << 1;
		rc = tg_submit(&s);
	}
	tg_op_end();
	return rc;
}
