/* layernorm.c — layer normalisation over the last dimension, and the fused residual add +
 * layer normalisation.
 *   out = (x - mean) * rstd * w + b,  mean = sum_c x / C,  rstd = 1 / sqrt(var + eps) (biased
 *   variance); mean and rstd (one per row) are written for the backward.
 *   backward, with xhat = (x - mean) rstd and dxhat = dout w:
 *     dx = rstd (dxhat - mean_c(dxhat) - xhat mean_c(dxhat xhat))
 *     dw (+)= sum_r dout xhat,  db (+)= sum_r dout     (row order: the same whatever the tiling)
 * add_layernorm: sum = a + r, out = layernorm(sum); da = dr = dsum + the layernorm's dx (dsum:
 * the gradient sum gets from the ops that read it; the residual stream).
 * Row statistics are summed in double, in vector lanes of a fixed order (tg_sum_row). Tiled by rows; w and b (and their gradients, written
 * by the first tile, added to by the others) go whole to every tile. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

static TG_VEC void row_moments(const float *x, int n, float eps, float *mean, float *rstd)
{
	double m = tg_sum_row(x, n) / n;
	*mean = (float)m;
	*rstd = (float)(1.0 / sqrt(tg_sqdev_row(x, m, n) / n + (double)eps));
}

static TG_VEC void normalise_row(float *restrict o, const float *restrict x, const float *restrict w,
                                 const float *restrict b, float mean, float rstd, int n)
{
	for (int c = 0; c < n; c++)
		o[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

void tg_layernorm_fwd_cpu(tg_mat out, tg_mat mean, tg_mat rstd, tg_mat x, tg_mat w, tg_mat b,
                          const struct tg_layernorm_args *a)
{
	for (int r = 0; r < x.rows; r++) {
		float m, s;
		row_moments(TG_ROW(x, r), x.cols, a->eps, &m, &s);
		TG_MF(mean)[r] = m;
		TG_MF(rstd)[r] = s;
		normalise_row(TG_ROW(out, r), TG_ROW(x, r), TG_MF(w), TG_MF(b), m, s, x.cols);
	}
}

void tg_add_layernorm_fwd_cpu(tg_mat sum, tg_mat out, tg_mat mean, tg_mat rstd, tg_mat a, tg_mat res, tg_mat w, tg_mat b,
                              const struct tg_layernorm_args *args)
{
	for (int r = 0; r < a.rows; r++) {
		float *restrict s = TG_ROW(sum, r);
		const float *restrict ar = TG_ROW(a, r), *restrict rr = TG_ROW(res, r);
		for (int c = 0; c < a.cols; c++)
			s[c] = ar[c] + rr[c];
		float m, sd;
		row_moments(s, a.cols, args->eps, &m, &sd);
		TG_MF(mean)[r] = m;
		TG_MF(rstd)[r] = sd;
		normalise_row(TG_ROW(out, r), s, TG_MF(w), TG_MF(b), m, sd, a.cols);
	}
}

/* one row of dx: rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) (+ e) */
static TG_VEC void ln_dx_row(float *restrict d, const float *restrict g, const float *restrict x,
                             const float *restrict w, const float *restrict e, float m, float s, int n, int accumulate)
{
	double a1[TG_LANES] = {0}, a2[TG_LANES] = {0};
	int j = 0;
	for (; j + TG_LANES <= n; j += TG_LANES)
		for (int k = 0; k < TG_LANES; k++) {
			double dxhat = (double)g[j + k] * w[j + k], xhat = ((double)x[j + k] - m) * s;
			a1[k] += dxhat;
			a2[k] += dxhat * xhat;
		}
	for (int k = 0; j < n; j++, k++) {
		double dxhat = (double)g[j] * w[j], xhat = ((double)x[j] - m) * s;
		a1[k] += dxhat;
		a2[k] += dxhat * xhat;
	}
	float mean_d = (float)(tg_lanes_total(a1) / n), mean_dx = (float)(tg_lanes_total(a2) / n);
#define LN_DX(c) (s * (g[c] * w[c] - mean_d - ((x[c] - m) * s) * mean_dx))
	if (e && accumulate)
		for (int c = 0; c < n; c++)
			d[c] += LN_DX(c) + e[c];
	else if (e)
		for (int c = 0; c < n; c++)
			d[c] = LN_DX(c) + e[c];
	else if (accumulate)
		for (int c = 0; c < n; c++)
			d[c] += LN_DX(c);
	else
		for (int c = 0; c < n; c++)
			d[c] = LN_DX(c);
#undef LN_DX
}

void tg_layernorm_bwd_dx_cpu(tg_mat dx, tg_mat dout, tg_mat x, tg_mat mean, tg_mat rstd, tg_mat w, tg_mat extra,
                             const struct tg_layernorm_args *a)
{
	for (int r = 0; r < x.rows; r++)
		ln_dx_row(TG_ROW(dx, r), TG_ROW(dout, r), TG_ROW(x, r), TG_MF(w), a->has_extra ? TG_ROW(extra, r) : NULL,
		          TG_MF(mean)[r], TG_MF(rstd)[r], x.cols, a->accumulate);
}

static TG_VEC void ln_dwb(float *restrict wd, float *restrict bd, tg_mat dout, tg_mat x, const float *restrict mean,
                          const float *restrict rstd, int accumulate)
{
	int n = x.cols;
	if (!accumulate)
		for (int c = 0; c < n; c++)
			wd[c] = bd[c] = 0.0f;
	for (int r = 0; r < x.rows; r++) {
		const float *restrict xr = TG_ROW(x, r), *restrict g = TG_ROW(dout, r);
		float m = mean[r], s = rstd[r];
		for (int c = 0; c < n; c++) {
			wd[c] += g[c] * ((xr[c] - m) * s);
			bd[c] += g[c];
		}
	}
}

void tg_layernorm_bwd_dwb_cpu(tg_mat dw, tg_mat db, tg_mat dout, tg_mat x, tg_mat mean, tg_mat rstd,
                              const struct tg_layernorm_args *a)
{
	ln_dwb(TG_MF(dw), TG_MF(db), dout, x, TG_MF(mean), TG_MF(rstd), a->accumulate);
}

TG_OP_WRAPPERS(tg_layernorm_fwd, 6, struct tg_layernorm_args)
TG_OP_WRAPPERS(tg_add_layernorm_fwd, 8, struct tg_layernorm_args)
TG_OP_WRAPPERS(tg_layernorm_bwd_dx, 7, struct tg_layernorm_args)
TG_OP_WRAPPERS(tg_layernorm_bwd_dwb, 6, struct tg_layernorm_args)
TG_OP_CODELET(layernorm_fwd_cl, "layernorm_fwd", tg_layernorm_fwd);
TG_OP_CODELET(add_layernorm_fwd_cl, "add_layernorm_fwd", tg_add_layernorm_fwd);
TG_OP_CODELET(layernorm_bwd_dx_cl, "layernorm_bwd_dx", tg_layernorm_bwd_dx);
TG_OP_CODELET(layernorm_bwd_dwb_cl, "layernorm_bwd_dwb", tg_layernorm_bwd_dwb);
TG_OP_WRAPPERS(tg_copy, 2, struct tg_pos_add_args)
TG_OP_CODELET(add_layernorm_copy_cl, "add_layernorm_bwd_copy", tg_copy);

/* ------------------------------------------------------------------ submission */

static int layernorm_check(const tg_task_spec *s);
static int layernorm_backward(const tg_node *fwd);
static int add_layernorm_check(const tg_task_spec *s);
static int add_layernorm_backward(const tg_node *fwd);
TG_OP_DESC(layernorm, TG_KIND_REDUCTION, layernorm_check, layernorm_backward,
           "layer normalisation over the last dimension (keeps mean and rstd)");
TG_OP_DESC(add_layernorm, TG_KIND_REDUCTION, add_layernorm_check, add_layernorm_backward,
           "sum = a + r (residual), out = layernorm(sum): one pass");

/* out, mean, rstd, x, w, b at positions o, o+1, o+2, x, w, b */
static int check_ln(const char *op, const tg_tensor *out, const tg_tensor *mean, const tg_tensor *rstd, const tg_tensor *x,
                    const tg_tensor *w, const tg_tensor *b, float eps)
{
	char sx[96];
	TG_TRY(tg_check_f32(op, "output", out));
	TG_TRY(tg_check_f32(op, "x", x));
	TG_TRY(tg_check_same_shape(op, "output", out, "x", x));
	TG_CHECK(isfinite(eps) && eps > 0, TG_EINVAL, "%s: eps must be finite and > 0, got %g", op, (double)eps);
	TG_TRY(tg_check_f32(op, "w", w));
	TG_TRY(tg_check_f32(op, "b", b));
	TG_TRY(tg_check_f32(op, "mean", mean));
	TG_TRY(tg_check_f32(op, "rstd", rstd));
	TG_CHECK(tg_tensor_numel(w) == tg_tensor_cols(x) && tg_tensor_numel(b) == tg_tensor_cols(x), TG_ESHAPE,
	         "%s: w '%s' and b '%s' must hold %lld values (the last dimension of x '%s' %s)", op, tg_tensor_name(w),
	         tg_tensor_name(b), (long long)tg_tensor_cols(x), tg_tensor_name(x), tg_tensor_shape_str(x, sx, sizeof sx));
	TG_CHECK(tg_tensor_rank(mean) == 1 && tg_tensor_numel(mean) == tg_tensor_rows(x) && tg_tensor_rank(rstd) == 1 &&
	                 tg_tensor_numel(rstd) == tg_tensor_rows(x),
	         TG_ESHAPE, "%s: mean '%s' and rstd '%s' must be vectors of %lld values (the rows of x '%s' %s)", op,
	         tg_tensor_name(mean), tg_tensor_name(rstd), (long long)tg_tensor_rows(x), tg_tensor_name(x),
	         tg_tensor_shape_str(x, sx, sizeof sx));
	return 0;
}

static int layernorm_check(const tg_task_spec *s)
{
	const struct tg_layernorm_args *a = s->args;
	return check_ln("layernorm", s->t[0], s->t[1], s->t[2], s->t[3], s->t[4], s->t[5], a->eps);
}

static int add_layernorm_check(const tg_task_spec *s)
{
	const struct tg_layernorm_args *a = s->args;
	TG_TRY(tg_check_f32("add_layernorm", "sum", s->t[0]));
	TG_TRY(tg_check_f32("add_layernorm", "a", s->t[4]));
	TG_TRY(tg_check_f32("add_layernorm", "r", s->t[5]));
	TG_TRY(tg_check_same_shape("add_layernorm", "sum", s->t[0], "a", s->t[4]));
	TG_TRY(tg_check_same_shape("add_layernorm", "r", s->t[5], "a", s->t[4]));
	return check_ln("add_layernorm", s->t[1], s->t[2], s->t[3], s->t[0], s->t[6], s->t[7], a->eps);
}

/* w and b (and in the backward dw, db) go whole to every tile */
int tg_layernorm(tg_tensor *out, tg_tensor *mean, tg_tensor *rstd, tg_tensor *x, tg_tensor *w, tg_tensor *b, float eps)
{
	TG_CHECK(out && mean && rstd && x && w && b, TG_EINVAL, "layernorm: a tensor argument is NULL");
	struct tg_layernorm_args args = {eps, 0, 0};
	tg_task_spec s = tg_spec(&tg_op_layernorm, &layernorm_fwd_cl, "layernorm_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         8.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, mean, TG_W);
	tg_spec_add(&s, rstd, TG_W);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, w, TG_R);
	tg_spec_add(&s, b, TG_R);
	s.tile = TG_TILE_ROWS;
	s.whole = (1u << 4) | (1u << 5);
	return tg_submit(&s);
}

int tg_add_layernorm(tg_tensor *sum, tg_tensor *out, tg_tensor *mean, tg_tensor *rstd, tg_tensor *a, tg_tensor *r,
                     tg_tensor *w, tg_tensor *b, float eps)
{
	TG_CHECK(sum && out && mean && rstd && a && r && w && b, TG_EINVAL, "add_layernorm: a tensor argument is NULL");
	struct tg_layernorm_args args = {eps, 0, 0};
	tg_task_spec s = tg_spec(&tg_op_add_layernorm, &add_layernorm_fwd_cl, "add_layernorm_fwd", TG_PHASE_FWD, &args,
	                         sizeof args, 9.0 * (double)tg_tensor_numel(a));
	tg_spec_add(&s, sum, TG_W);
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, mean, TG_W);
	tg_spec_add(&s, rstd, TG_W);
	tg_spec_add(&s, a, TG_R);
	tg_spec_add(&s, r, TG_R);
	tg_spec_add(&s, w, TG_R);
	tg_spec_add(&s, b, TG_R);
	s.tile = TG_TILE_ROWS;
	s.whole = (1u << 6) | (1u << 7);
	return tg_submit(&s);
}

static void accumulate_after_first(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	(void)row0;
	if (tile > 0)
		((struct tg_layernorm_args *)args)->accumulate = 1;
}

/* dx (mode) = layernorm's dx (+ extra) */
static int submit_dx(const tg_op_desc *op, tg_tensor *dx, unsigned mode, tg_tensor *dout, tg_tensor *x, tg_tensor *mean,
                     tg_tensor *rstd, tg_tensor *w, tg_tensor *extra, float eps)
{
	struct tg_layernorm_args args = {eps, mode == TG_ACC, extra != NULL};
	tg_task_spec s = tg_spec(op, &layernorm_bwd_dx_cl, "layernorm_bwd_dx", TG_PHASE_BWD, &args, sizeof args,
	                         10.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dout, TG_R);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, mean, TG_R);
	tg_spec_add(&s, rstd, TG_R);
	tg_spec_add(&s, w, TG_R);
	if (extra)
		tg_spec_add(&s, extra, TG_R);
	s.tile = TG_TILE_ROWS;
	s.whole = 1u << 5;
	return tg_submit(&s);
}

/* dw, db (their modes must agree: both parameters of the same op) */
static int submit_dwb(const tg_op_desc *op, const tg_node *fwd, int iw, int ib, tg_tensor *dout, tg_tensor *x,
                      tg_tensor *mean, tg_tensor *rstd, float eps)
{
	tg_tensor *dw, *db;
	unsigned mw, mb;
	TG_TRY(tg_grad_target(fwd, iw, &dw, &mw));
	TG_TRY(tg_grad_target(fwd, ib, &db, &mb));
	if (!dw && !db)
		return 0;
	TG_CHECK(dw && db && mw == mb, TG_ENOTSUP,
	         "%s: w and b must both need a gradient, in the same state (both fresh or both accumulating)",
	         op->name);
	struct tg_layernorm_args args = {eps, mw == TG_ACC, 0};
	tg_task_spec s = tg_spec(op, &layernorm_bwd_dwb_cl, "layernorm_bwd_dwb", TG_PHASE_BWD, &args, sizeof args,
	                         4.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, dw, mw);
	tg_spec_add(&s, db, mb);
	tg_spec_add(&s, dout, TG_R);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, mean, TG_R);
	tg_spec_add(&s, rstd, TG_R);
	s.tile = TG_TILE_ROWS;
	s.tile_on = 2; /* dout's rows; dw and db go whole to every tile */
	s.whole = (1u << 0) | (1u << 1);
	s.tile_args = accumulate_after_first;
	return tg_submit(&s);
}

static int layernorm_backward(const tg_node *fwd)
{
	const struct tg_layernorm_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0), *mean = tg_node_tensor(fwd, 1), *rstd = tg_node_tensor(fwd, 2);
	tg_tensor *x = tg_node_tensor(fwd, 3), *w = tg_node_tensor(fwd, 4), *dx;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 3, &dx, &mode));
	if (dx)
		TG_TRY(submit_dx(&tg_op_layernorm, dx, mode, dout, x, mean, rstd, w, NULL, fa->eps));
	return submit_dwb(&tg_op_layernorm, fwd, 4, 5, dout, x, mean, rstd, fa->eps);
}

static int add_layernorm_backward(const tg_node *fwd)
{
	const struct tg_layernorm_args *fa = tg_node_args(fwd);
	tg_tensor *dsum = tg_grad_of(fwd, 0), *dout = tg_grad_of(fwd, 1);
	tg_tensor *sum = tg_node_tensor(fwd, 0), *mean = tg_node_tensor(fwd, 2), *rstd = tg_node_tensor(fwd, 3);
	tg_tensor *w = tg_node_tensor(fwd, 6);
	for (int i = 4; i <= 5; i++) { /* a and r get the same gradient */
		tg_tensor *d;
		unsigned mode;
		TG_TRY(tg_grad_target(fwd, i, &d, &mode));
		if (!d)
			continue;
		if (dout) {
			TG_TRY(submit_dx(&tg_op_add_layernorm, d, mode, dout, sum, mean, rstd, w, dsum, fa->eps));
		} else { /* only the sum carries a gradient: it goes to a and r as it is */
			struct tg_pos_add_args args = {1, 0, mode == TG_ACC};
			tg_task_spec s = tg_spec(&tg_op_add_layernorm, &add_layernorm_copy_cl, "add_layernorm_bwd_copy",
			                         TG_PHASE_BWD, &args, sizeof args, (double)tg_tensor_numel(dsum));
			tg_spec_add(&s, d, mode);
			tg_spec_add(&s, dsum, TG_R);
			s.tile = TG_TILE_ROWS;
			TG_TRY(tg_submit(&s));
		}
	}
	if (!dout)
		return 0;
	return submit_dwb(&tg_op_add_layernorm, fwd, 6, 7, dout, sum, mean, rstd, fa->eps);
}
