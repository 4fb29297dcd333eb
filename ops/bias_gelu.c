/* bias_gelu.c — out = gelu(x + b), b one row broadcast over x's rows (the bias and activation
 * of a transformer's first MLP projection, fused: one pass instead of two).
 *   backward: dx (=|+=) dout gelu'(x + b);  db (+)= the column sums of the same (row order:
 *   the same whatever the tiling). Tiled by rows; b and db go whole to every tile. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

static TG_VEC void bias_gelu_fwd_vec(tg_mat out, tg_mat x, tg_mat b)
{
	const float *restrict bp = TG_MF(b);
	for (int r = 0; r < out.rows; r++) {
		float *restrict o = TG_ROW(out, r);
		const float *restrict xr = TG_ROW(x, r);
		for (int c = 0; c < out.cols; c++)
			o[c] = tg_geluf(xr[c] + bp[c]);
	}
}

static TG_VEC void bias_gelu_dx_vec(tg_mat dx, tg_mat dout, tg_mat x, tg_mat b, int accumulate)
{
	const float *restrict bp = TG_MF(b);
	for (int r = 0; r < dx.rows; r++) {
		float *restrict d = TG_ROW(dx, r);
		const float *restrict g = TG_ROW(dout, r), *restrict xr = TG_ROW(x, r);
		if (accumulate)
			for (int c = 0; c < dx.cols; c++)
				d[c] += g[c] * tg_gelu_gradf(xr[c] + bp[c]);
		else
			for (int c = 0; c < dx.cols; c++)
				d[c] = g[c] * tg_gelu_gradf(xr[c] + bp[c]);
	}
}

static TG_VEC void bias_gelu_db_vec(tg_mat db, tg_mat dout, tg_mat x, tg_mat b, int accumulate)
{
	const float *restrict bp = TG_MF(b);
	float *restrict d = TG_MF(db);
	if (!accumulate)
		for (int c = 0; c < x.cols; c++)
			d[c] = 0.0f;
	for (int r = 0; r < x.rows; r++) {
		const float *restrict g = TG_ROW(dout, r), *restrict xr = TG_ROW(x, r);
		for (int c = 0; c < x.cols; c++)
			d[c] += g[c] * tg_gelu_gradf(xr[c] + bp[c]);
	}
}

void tg_bias_gelu_fwd_cpu(tg_mat out, tg_mat x, tg_mat b, const struct tg_bias_gelu_args *a)
{
	(void)a;
	bias_gelu_fwd_vec(out, x, b);
}

void tg_bias_gelu_bwd_dx_cpu(tg_mat dx, tg_mat dout, tg_mat x, tg_mat b, const struct tg_bias_gelu_args *a)
{
	bias_gelu_dx_vec(dx, dout, x, b, a->accumulate);
}

void tg_bias_gelu_bwd_db_cpu(tg_mat db, tg_mat dout, tg_mat x, tg_mat b, const struct tg_bias_gelu_args *a)
{
	bias_gelu_db_vec(db, dout, x, b, a->accumulate);
}

TG_OP_WRAPPERS(tg_bias_gelu_fwd, 3, struct tg_bias_gelu_args)
TG_OP_WRAPPERS(tg_bias_gelu_bwd_dx, 4, struct tg_bias_gelu_args)
TG_OP_WRAPPERS(tg_bias_gelu_bwd_db, 4, struct tg_bias_gelu_args)
TG_OP_CODELET(bias_gelu_fwd_cl, "bias_gelu_fwd", tg_bias_gelu_fwd);
TG_OP_CODELET(bias_gelu_dx_cl, "bias_gelu_bwd_dx", tg_bias_gelu_bwd_dx);
TG_OP_CODELET(bias_gelu_db_cl, "bias_gelu_bwd_db", tg_bias_gelu_bwd_db);

/* ------------------------------------------------------------------ submission */

static int bias_gelu_check(const tg_task_spec *s);
static int bias_gelu_backward(const tg_node *fwd);
TG_OP_DESC(bias_gelu, TG_KIND_ELEMENTWISE, bias_gelu_check, bias_gelu_backward, "out = GELU(x + b), b a bias row");

static int bias_gelu_check(const tg_task_spec *s)
{
	char sx[96];
	TG_TRY(tg_check_f32("bias_gelu", "output", s->t[0]));
	TG_TRY(tg_check_f32("bias_gelu", "x", s->t[1]));
	TG_TRY(tg_check_f32("bias_gelu", "b", s->t[2]));
	TG_TRY(tg_check_same_shape("bias_gelu", "output", s->t[0], "x", s->t[1]));
	TG_CHECK(tg_tensor_numel(s->t[2]) == tg_tensor_cols(s->t[1]), TG_ESHAPE,
	         "bias_gelu: b '%s' must hold %lld values (the last dimension of x '%s' %s)", tg_tensor_name(s->t[2]),
	         (long long)tg_tensor_cols(s->t[1]), tg_tensor_name(s->t[1]), tg_tensor_shape_str(s->t[1], sx, sizeof sx));
	return 0;
}

int tg_bias_gelu(tg_tensor *out, tg_tensor *x, tg_tensor *b)
{
	TG_CHECK(out && x && b, TG_EINVAL, "bias_gelu: a tensor argument is NULL");
	struct tg_bias_gelu_args args = {0};
	tg_task_spec s = tg_spec(&tg_op_bias_gelu, &bias_gelu_fwd_cl, "bias_gelu_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         12.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, b, TG_R);
	s.tile = TG_TILE_ROWS;
	s.whole = 1u << 2;
	return tg_submit(&s);
}

static void accumulate_after_first(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	(void)row0;
	if (tile > 0)
		((struct tg_bias_gelu_args *)args)->accumulate = 1;
}

static int bias_gelu_backward(const tg_node *fwd)
{
	tg_tensor *dout = tg_grad_of(fwd, 0), *x = tg_node_tensor(fwd, 1), *b = tg_node_tensor(fwd, 2), *dx, *db;
	unsigned mx, mb;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mx));
	TG_TRY(tg_grad_target(fwd, 2, &db, &mb));
	if (dx) {
		struct tg_bias_gelu_args args = {mx == TG_ACC};
		tg_task_spec s = tg_spec(&tg_op_bias_gelu, &bias_gelu_dx_cl, "bias_gelu_bwd_dx", TG_PHASE_BWD, &args,
		                         sizeof args, 14.0 * (double)tg_tensor_numel(x));
		tg_spec_add(&s, dx, mx);
		tg_spec_add(&s, dout, TG_R);
		tg_spec_add(&s, x, TG_R);
		tg_spec_add(&s, b, TG_R);
		s.tile = TG_TILE_ROWS;
		s.whole = 1u << 3;
		TG_TRY(tg_submit(&s));
	}
	if (db) {
		struct tg_bias_gelu_args args = {mb == TG_ACC};
		tg_task_spec s = tg_spec(&tg_op_bias_gelu, &bias_gelu_db_cl, "bias_gelu_bwd_db", TG_PHASE_BWD, &args,
		                         sizeof args, 14.0 * (double)tg_tensor_numel(x));
		tg_spec_add(&s, db, mb);
		tg_spec_add(&s, dout, TG_R);
		tg_spec_add(&s, x, TG_R);
		tg_spec_add(&s, b, TG_R);
		s.tile = TG_TILE_ROWS;
		s.tile_on = 1; /* dout's rows; db goes whole to every tile */
		s.whole = (1u << 0) | (1u << 3);
		s.tile_args = accumulate_after_first;
		TG_TRY(tg_submit(&s));
	}
	return 0;
}
