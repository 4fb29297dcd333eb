/* softmax.c — row softmax of scale * x, with an optional causal mask (a fused scaled masked
 * softmax): row r is query position t = r mod causal_T, and its columns j > t get probability
 * exactly 0 (causal_T > 0; the rows then have causal_T columns).
 *   backward: dx = scale * y * (dy - sum_j y_j dy_j)   (masked entries have y = 0, so dx = 0)
 * The row's maximum takes in every unmasked element; sums in double, in vector lanes of a fixed
 * order (tg_sum_row), exp from tg_expf (relative error ~2e-7). Tiled by rows; each tile
 * knows where its first row is (for the mask). Gradient rule: activation gradients are
 * written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

/* one row of n unmasked columns (then `cols` in all): o = softmax(scale x), the rest 0 */
static TG_VEC void softmax_row(float *restrict o, const float *restrict x, float scale, int n, int cols)
{
	for (int j = 0; j < n; j++)
		o[j] = scale * x[j];
	tg_softmax_row(o, n, cols);
}

void tg_softmax_fwd_cpu(tg_mat out, tg_mat x, const struct tg_softmax_args *a)
{
	for (int r = 0; r < x.rows; r++) {
		int n = a->causal_T > 0 ? (int)((a->row0 + r) % a->causal_T) + 1 : x.cols; /* the unmasked columns */
		softmax_row(TG_ROW(out, r), TG_ROW(x, r), a->scale, n, x.cols);
	}
}

static TG_VEC void softmax_bwd_row(float *restrict d, const float *restrict g, const float *restrict y, float scale,
                                   int n, int accumulate)
{
	float dot = (float)tg_dot_row(y, g, n);
	if (accumulate)
		for (int j = 0; j < n; j++)
			d[j] += scale * y[j] * (g[j] - dot);
	else
		for (int j = 0; j < n; j++)
			d[j] = scale * y[j] * (g[j] - dot);
}

void tg_softmax_bwd_cpu(tg_mat dx, tg_mat dy, tg_mat y, const struct tg_softmax_args *a)
{
	for (int r = 0; r < y.rows; r++)
		softmax_bwd_row(TG_ROW(dx, r), TG_ROW(dy, r), TG_ROW(y, r), a->scale, y.cols, a->accumulate);
}

TG_OP_WRAPPERS(tg_softmax_fwd, 2, struct tg_softmax_args)
TG_OP_WRAPPERS(tg_softmax_bwd, 3, struct tg_softmax_args)
TG_OP_CODELET(softmax_fwd_cl, "softmax_fwd", tg_softmax_fwd);
TG_OP_CODELET(softmax_bwd_cl, "softmax_bwd", tg_softmax_bwd);

/* ------------------------------------------------------------------ submission */

static int softmax_check(const tg_task_spec *s);
static int softmax_backward(const tg_node *fwd);
TG_OP_DESC(softmax, TG_KIND_REDUCTION, softmax_check, softmax_backward,
           "row softmax of scale * x, with an optional causal mask");

static int softmax_check(const tg_task_spec *s)
{
	const struct tg_softmax_args *a = s->args;
	char sx[96];
	TG_TRY(tg_check_f32("softmax", "output", s->t[0]));
	TG_TRY(tg_check_f32("softmax", "x", s->t[1]));
	TG_TRY(tg_check_same_shape("softmax", "output", s->t[0], "x", s->t[1]));
	TG_CHECK(isfinite(a->scale), TG_EINVAL, "softmax: the scale must be finite, got %g", (double)a->scale);
	TG_CHECK(a->causal_T == 0 || tg_tensor_cols(s->t[1]) == a->causal_T, TG_ESHAPE,
	         "softmax: with a causal mask of T = %lld, x '%s' %s must have T columns", (long long)a->causal_T,
	         tg_tensor_name(s->t[1]), tg_tensor_shape_str(s->t[1], sx, sizeof sx));
	return 0;
}

static void set_row0(void *args, int tile, int ntiles, int64_t row0)
{
	(void)tile;
	(void)ntiles;
	((struct tg_softmax_args *)args)->row0 = row0;
}

int tg_softmax(tg_tensor *out, tg_tensor *x, float scale, int64_t causal_T)
{
	TG_CHECK(out && x, TG_EINVAL, "softmax: a tensor argument is NULL");
	TG_CHECK(causal_T >= 0, TG_EINVAL, "softmax: causal_T must be >= 0 (0: no mask), got %lld", (long long)causal_T);
	struct tg_softmax_args args = {scale, causal_T, 0, 0};
	tg_task_spec s = tg_spec(&tg_op_softmax, &softmax_fwd_cl, "softmax_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         5.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	s.tile_args = set_row0;
	return tg_submit(&s);
}

static int softmax_backward(const tg_node *fwd)
{
	const struct tg_softmax_args *fa = tg_node_args(fwd);
	tg_tensor *dy = tg_grad_of(fwd, 0), *y = tg_node_tensor(fwd, 0), *dx;
	unsigned mode;
	if (!dy)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mode));
	if (!dx)
		return 0;
	struct tg_softmax_args args = {fa->scale, fa->causal_T, 0, mode == TG_ACC};
	tg_task_spec s = tg_spec(&tg_op_softmax, &softmax_bwd_cl, "softmax_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         4.0 * (double)tg_tensor_numel(y));
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dy, TG_R);
	tg_spec_add(&s, y, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}
