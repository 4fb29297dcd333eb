/* concat_cols.c — out = [x_0 | x_1 | ... | x_{n-1}] along the last dimension (1 to 8 inputs
 * with out's rows). Backward: dx_i (=|+=) dout[:, the columns of x_i] (slice_cols' forward
 * kernel, one task per input needing a gradient). Tiled by rows. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

static TG_VEC void copy_row(float *restrict d, const float *restrict s, int n)
{
	for (int c = 0; c < n; c++)
		d[c] = s[c];
}

void tg_concat_fwd_cpu(tg_mat out, tg_mat x0, tg_mat x1, tg_mat x2, tg_mat x3, tg_mat x4, tg_mat x5, tg_mat x6,
                       tg_mat x7, const struct tg_slice_args *a)
{
	tg_mat xs[8] = {x0, x1, x2, x3, x4, x5, x6, x7};
	int n = a->n < 0 ? 0 : a->n > 8 ? 8 : a->n;
	for (int r = 0; r < out.rows; r++) {
		float *o = TG_ROW(out, r);
		for (int i = 0; i < n; i++) {
			copy_row(o, TG_ROW(xs[i], r), xs[i].cols);
			o += xs[i].cols;
		}
	}
}

TG_OP_WRAPPERS(tg_concat_fwd, 9, struct tg_slice_args)
TG_OP_WRAPPERS(tg_slice_fwd, 2, struct tg_slice_args)
TG_OP_CODELET(concat_fwd_cl, "concat_cols_fwd", tg_concat_fwd);
TG_OP_CODELET(concat_bwd_cl, "concat_cols_bwd", tg_slice_fwd);

/* ------------------------------------------------------------------ submission */

static int concat_check(const tg_task_spec *s);
static int concat_backward(const tg_node *fwd);
TG_OP_DESC(concat_cols, TG_KIND_DATA, concat_check, concat_backward,
           "[x_0 | x_1 | ...] along the last dimension");

static int concat_check(const tg_task_spec *s)
{
	tg_tensor *out = s->t[0];
	char so[96], sx[96];
	TG_TRY(tg_check_f32("concat_cols", "output", out));
	int64_t cols = 0;
	for (int i = 1; i < s->n; i++) {
		tg_tensor *x = s->t[i];
		TG_TRY(tg_check_f32("concat_cols", "input", x));
		TG_CHECK(tg_tensor_rows(x) == tg_tensor_rows(out), TG_ESHAPE,
		         "concat_cols: input %d '%s' %s must have the rows of the output '%s' %s", i - 1, tg_tensor_name(x),
		         tg_tensor_shape_str(x, sx, sizeof sx), tg_tensor_name(out), tg_tensor_shape_str(out, so, sizeof so));
		cols += tg_tensor_cols(x);
	}
	TG_CHECK(cols == tg_tensor_cols(out), TG_ESHAPE,
	         "concat_cols: the inputs have %lld columns in all, the output '%s' %s has %lld", (long long)cols,
	         tg_tensor_name(out), tg_tensor_shape_str(out, so, sizeof so), (long long)tg_tensor_cols(out));
	return 0;
}

int tg_concat_cols(tg_tensor *out, int n, tg_tensor *const *xs)
{
	TG_CHECK(out && xs, TG_EINVAL, "concat_cols: NULL argument");
	TG_CHECK(n >= 1 && n <= 8, TG_EINVAL, "concat_cols: %d inputs (1 to 8)", n);
	for (int i = 0; i < n; i++)
		TG_CHECK(xs[i], TG_EINVAL, "concat_cols: input %d is NULL", i);
	struct tg_slice_args args = {0, 0, 0, n};
	tg_task_spec s = tg_spec(&tg_op_concat_cols, &concat_fwd_cl, "concat_cols_fwd", TG_PHASE_FWD, &args, sizeof args, 0);
	tg_spec_add(&s, out, TG_W);
	for (int i = 0; i < n; i++)
		tg_spec_add(&s, xs[i], TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

static int concat_backward(const tg_node *fwd)
{
	tg_tensor *dout = tg_grad_of(fwd, 0);
	if (!dout)
		return 0;
	int64_t col0 = 0;
	for (int i = 1; i < tg_node_num_operands(fwd); i++) {
		tg_tensor *x = tg_node_tensor(fwd, i), *dx;
		unsigned mode;
		TG_TRY(tg_grad_target(fwd, i, &dx, &mode));
		if (dx) {
			struct tg_slice_args args = {col0, mode == TG_ACC, 0, 1};
			tg_task_spec s = tg_spec(&tg_op_concat_cols, &concat_bwd_cl, "concat_cols_bwd", TG_PHASE_BWD, &args,
			                         sizeof args, 0);
			tg_spec_add(&s, dx, mode);
			tg_spec_add(&s, dout, TG_R);
			s.tile = TG_TILE_ROWS;
			TG_TRY(tg_submit(&s));
		}
		col0 += tg_tensor_cols(x);
	}
	return 0;
}
