/* add.c — out = a + b, with b of a's shape or one row broadcast over a's rows (a bias, a
 * residual). backward: da = dout; db = dout, or the column sums of dout when b was broadcast.
 * Tiled by rows; a broadcast b goes whole to every tile, and its gradient is written by the
 * first tile and added to by the others, in row order: the same sums whatever the tiling.
 * Gradient rule: activation gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ kernels */

static TG_VEC void add_fwd_vec(tg_mat out, tg_mat a, tg_mat b, const struct tg_add_args *args)
{
	for (int r = 0; r < out.rows; r++) {
		float *restrict o = TG_ROW(out, r);
		const float *restrict ar = TG_ROW(a, r), *restrict br = args->broadcast ? TG_MF(b) : TG_ROW(b, r);
		for (int c = 0; c < out.cols; c++)
			o[c] = ar[c] + br[c];
	}
}

static TG_VEC void add_bwd_vec(tg_mat dst, tg_mat src, const struct tg_add_args *args)
{
	if (dst.rows == src.rows) {
		for (int r = 0; r < src.rows; r++) {
			float *restrict d = TG_ROW(dst, r);
			const float *restrict s = TG_ROW(src, r);
			for (int c = 0; c < src.cols; c++)
				d[c] = (args->accumulate ? d[c] : 0.0f) + s[c];
		}
		return;
	}
	float *restrict d = TG_MF(dst);
	if (!args->accumulate)
		for (int c = 0; c < src.cols; c++)
			d[c] = 0.0f;
	for (int r = 0; r < src.rows; r++) {
		const float *restrict s = TG_ROW(src, r);
		for (int c = 0; c < src.cols; c++)
			d[c] += s[c];
	}
}

void tg_add_fwd_cpu(tg_mat out, tg_mat a, tg_mat b, const struct tg_add_args *args)
{
	add_fwd_vec(out, a, b, args);
}

void tg_add_bwd_cpu(tg_mat dst, tg_mat src, const struct tg_add_args *args)
{
	add_bwd_vec(dst, src, args);
}

TG_OP_WRAPPERS(tg_add_fwd, 3, struct tg_add_args)
TG_OP_WRAPPERS(tg_add_bwd, 2, struct tg_add_args)
TG_OP_CODELET(add_fwd_cl, "add_fwd", tg_add_fwd);
TG_OP_CODELET(add_bwd_cl, "add_bwd", tg_add_bwd);

/* ------------------------------------------------------------------ submission */

static int add_check(const tg_task_spec *s);
static int add_backward(const tg_node *fwd);
TG_OP_DESC(add, TG_KIND_ELEMENTWISE, add_check, add_backward,
           "out = a + b; b of a's shape or one row broadcast over a's rows (bias, residual)");

static int is_row_of(const tg_tensor *b, const tg_tensor *a)
{
	return tg_tensor_rows(b) == 1 && tg_tensor_cols(b) == tg_tensor_cols(a);
}

static int add_check(const tg_task_spec *s)
{
	TG_TRY(tg_check_f32("add", "output", s->t[0]));
	TG_TRY(tg_check_f32("add", "a", s->t[1]));
	TG_TRY(tg_check_f32("add", "b", s->t[2]));
	TG_TRY(tg_check_same_shape("add", "output", s->t[0], "a", s->t[1]));
	const struct tg_add_args *args = s->args;
	if (args->broadcast)
		return 0;
	return tg_check_same_shape("add", "b", s->t[2], "a", s->t[1]);
}

int tg_add(tg_tensor *out, tg_tensor *a, tg_tensor *b)
{
	TG_CHECK(out && a && b, TG_EINVAL, "add: a tensor argument is NULL");
	/* b broadcasts when it is a single row of a's width */
	struct tg_add_args args = {is_row_of(b, a), 0};
	tg_task_spec s = tg_spec(&tg_op_add, &add_fwd_cl, "add_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(out));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, a, TG_R);
	tg_spec_add(&s, b, TG_R);
	s.tile = TG_TILE_ROWS;
	s.whole = args.broadcast ? 1u << 2 : 0;
	return tg_submit(&s);
}

/* The tiles after the first add to a whole gradient. */
static void accumulate_after_first(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	(void)row0;
	if (tile > 0)
		((struct tg_add_args *)args)->accumulate = 1;
}

static int submit_bwd(const tg_node *fwd, int operand, const char *name, tg_tensor *dout, int reduce)
{
	tg_tensor *d;
	unsigned mode;
	TG_TRY(tg_grad_target(fwd, operand, &d, &mode));
	if (!d)
		return 0;
	struct tg_add_args args = {0, mode == TG_ACC};
	tg_task_spec s = tg_spec(&tg_op_add, &add_bwd_cl, name, TG_PHASE_BWD, &args, sizeof args,
	                         (double)tg_tensor_numel(dout));
	tg_spec_add(&s, d, mode);
	tg_spec_add(&s, dout, TG_R);
	s.tile = TG_TILE_ROWS;
	if (reduce) {
		s.tile_on = 1;     /* dout's rows */
		s.whole = 1u << 0; /* the column sums of every tile go to one row */
		s.tile_args = accumulate_after_first;
	}
	return tg_submit(&s);
}

static int add_backward(const tg_node *fwd)
{
	const struct tg_add_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0);
	if (!dout)
		return 0;
	TG_TRY(submit_bwd(fwd, 1, "add_bwd_da", dout, 0));
	return submit_bwd(fwd, 2, "add_bwd_db", dout, fa->broadcast);
}
