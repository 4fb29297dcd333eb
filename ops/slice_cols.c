/* slice_cols.c — out (=|+=) x[:, col0 .. col0 + w), w = out's last dimension: a copy of some
 * columns (e.g. the query, key and value blocks of a fused projection). Backward:
 * dx[:, col0 ..] (=|+=) dout; when dx is written (the first gradient x gets), its other
 * columns are zeroed in the same task, and the other slices of x then add to it.
 * Also the kernels concat_cols uses. Tiled by rows. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

static TG_VEC void copy_cols(float *restrict d, const float *restrict s, int n, int accumulate)
{
	if (accumulate)
		for (int c = 0; c < n; c++)
			d[c] += s[c];
	else
		for (int c = 0; c < n; c++)
			d[c] = s[c];
}

void tg_slice_fwd_cpu(tg_mat out, tg_mat x, const struct tg_slice_args *a)
{
	for (int r = 0; r < out.rows; r++)
		copy_cols(TG_ROW(out, r), TG_ROW(x, r) + a->col0, out.cols, a->accumulate);
}

void tg_slice_bwd_cpu(tg_mat dx, tg_mat dout, const struct tg_slice_args *a)
{
	int c0 = (int)a->col0, w = dout.cols;
	for (int r = 0; r < dx.rows; r++) {
		float *d = TG_ROW(dx, r);
		if (a->zero_rest) {
			memset(d, 0, (size_t)c0 * sizeof(float));
			memset(d + c0 + w, 0, (size_t)(dx.cols - c0 - w) * sizeof(float));
		}
		copy_cols(d + c0, TG_ROW(dout, r), w, a->accumulate);
	}
}

TG_OP_WRAPPERS(tg_slice_fwd, 2, struct tg_slice_args)
TG_OP_WRAPPERS(tg_slice_bwd, 2, struct tg_slice_args)
TG_OP_CODELET(slice_fwd_cl, "slice_cols_fwd", tg_slice_fwd);
TG_OP_CODELET(slice_bwd_cl, "slice_cols_bwd", tg_slice_bwd);

/* ------------------------------------------------------------------ submission */

static int slice_check(const tg_task_spec *s);
static int slice_backward(const tg_node *fwd);
TG_OP_DESC(slice_cols, TG_KIND_DATA, slice_check, slice_backward, "a copy of some columns of x");

static int slice_check(const tg_task_spec *s)
{
	const struct tg_slice_args *a = s->args;
	tg_tensor *out = s->t[0], *x = s->t[1];
	char so[96], sx[96];
	TG_TRY(tg_check_f32("slice_cols", "output", out));
	TG_TRY(tg_check_f32("slice_cols", "x", x));
	int64_t C = tg_tensor_cols(x), w = tg_tensor_cols(out);
	TG_CHECK(tg_tensor_rows(out) == tg_tensor_rows(x), TG_ESHAPE,
	         "slice_cols: output '%s' %s and x '%s' %s must have the same rows", tg_tensor_name(out),
	         tg_tensor_shape_str(out, so, sizeof so), tg_tensor_name(x), tg_tensor_shape_str(x, sx, sizeof sx));
	TG_CHECK(a->col0 >= 0 && a->col0 <= C && w <= C - a->col0, TG_ESHAPE,
	         "slice_cols: columns %lld .. %lld + %lld are outside x '%s' %s", (long long)a->col0, (long long)a->col0,
	         (long long)w, tg_tensor_name(x), tg_tensor_shape_str(x, sx, sizeof sx));
	return 0;
}

int tg_slice_cols(tg_tensor *out, tg_tensor *x, int64_t col0)
{
	TG_CHECK(out && x, TG_EINVAL, "slice_cols: a tensor argument is NULL");
	struct tg_slice_args args = {col0, 0, 0, 1};
	tg_task_spec s = tg_spec(&tg_op_slice_cols, &slice_fwd_cl, "slice_cols_fwd", TG_PHASE_FWD, &args, sizeof args, 0);
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

static int slice_backward(const tg_node *fwd)
{
	const struct tg_slice_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0), *dx;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mode));
	if (!dx)
		return 0;
	struct tg_slice_args args = {fa->col0, mode == TG_ACC, mode != TG_ACC, 1};
	tg_task_spec s = tg_spec(&tg_op_slice_cols, &slice_bwd_cl, "slice_cols_bwd", TG_PHASE_BWD, &args, sizeof args, 0);
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dout, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}
