/* pos_add.c — out = x + pos[t], t = (row) mod T: positional embeddings added to sequences of T
 * rows. backward: dx (=|+=) dout; dpos[t] (+)= the rows of dout at position t, in row order
 * (deterministic, the same whatever the tiling). Tiled by rows; each tile knows where its
 * first row is. Gradient rule: dx is an activation gradient, dpos a parameter gradient. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

static TG_VEC void pos_add_vec(tg_mat out, tg_mat x, tg_mat pos, int64_t T, int64_t row0)
{
	for (int r = 0; r < out.rows; r++) {
		float *restrict o = TG_ROW(out, r);
		const float *restrict xr = TG_ROW(x, r), *restrict p = TG_ROW(pos, (row0 + r) % T);
		for (int c = 0; c < out.cols; c++)
			o[c] = xr[c] + p[c];
	}
}

void tg_pos_add_fwd_cpu(tg_mat out, tg_mat x, tg_mat pos, const struct tg_pos_add_args *a)
{
	pos_add_vec(out, x, pos, a->T, a->row0);
}

static TG_VEC void pos_add_bwd_vec(tg_mat dpos, tg_mat dout, const struct tg_pos_add_args *a)
{
	if (!a->accumulate) /* the positions this tile does not reach stay 0 */
		for (int t = 0; t < dpos.rows; t++)
			memset(TG_ROW(dpos, t), 0, (size_t)dpos.cols * sizeof(float));
	for (int r = 0; r < dout.rows; r++) {
		float *restrict d = TG_ROW(dpos, (a->row0 + r) % a->T);
		const float *restrict g = TG_ROW(dout, r);
		for (int c = 0; c < dout.cols; c++)
			d[c] += g[c];
	}
}

void tg_pos_add_bwd_cpu(tg_mat dpos, tg_mat dout, const struct tg_pos_add_args *a)
{
	pos_add_bwd_vec(dpos, dout, a);
}

TG_OP_WRAPPERS(tg_pos_add_fwd, 3, struct tg_pos_add_args)
TG_OP_WRAPPERS(tg_pos_add_bwd, 2, struct tg_pos_add_args)
TG_OP_WRAPPERS(tg_copy, 2, struct tg_pos_add_args)
TG_OP_CODELET(pos_add_fwd_cl, "pos_add_fwd", tg_pos_add_fwd);
TG_OP_CODELET(pos_add_bwd_cl, "pos_add_bwd", tg_pos_add_bwd);
TG_OP_CODELET(pos_add_copy_cl, "pos_add_bwd_dx", tg_copy);

/* ------------------------------------------------------------------ submission */

static int pos_add_check(const tg_task_spec *s);
static int pos_add_backward(const tg_node *fwd);
TG_OP_DESC(pos_add, TG_KIND_ELEMENTWISE, pos_add_check, pos_add_backward,
           "out = x + pos[row mod T] (positional embeddings of sequences of T rows)");

static int pos_add_check(const tg_task_spec *s)
{
	const struct tg_pos_add_args *a = s->args;
	const tg_tensor *out = s->t[0], *x = s->t[1], *pos = s->t[2];
	char sx[96], sp[96];
	TG_TRY(tg_check_f32("pos_add", "output", out));
	TG_TRY(tg_check_f32("pos_add", "x", x));
	TG_TRY(tg_check_f32("pos_add", "pos", pos));
	TG_TRY(tg_check_same_shape("pos_add", "output", out, "x", x));
	TG_CHECK(a->T >= 1 && tg_tensor_rows(x) % a->T == 0, TG_ESHAPE,
	         "pos_add: x '%s' %s has %lld rows: not sequences of T = %lld rows", tg_tensor_name(x),
	         tg_tensor_shape_str(x, sx, sizeof sx), (long long)tg_tensor_rows(x), (long long)a->T);
	TG_CHECK(tg_tensor_cols(pos) == tg_tensor_cols(x) && tg_tensor_rows(pos) >= a->T, TG_ESHAPE,
	         "pos_add: pos '%s' %s must have at least T = %lld rows of %lld columns", tg_tensor_name(pos),
	         tg_tensor_shape_str(pos, sp, sizeof sp), (long long)a->T, (long long)tg_tensor_cols(x));
	return 0;
}

static void set_row0(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	struct tg_pos_add_args *a = args;
	a->row0 = row0;
	if (tile > 0)
		a->accumulate = 1; /* dpos: the first tile writes it, the others add */
}

static void just_row0(void *args, int tile, int ntiles, int64_t row0)
{
	(void)tile;
	(void)ntiles;
	((struct tg_pos_add_args *)args)->row0 = row0;
}

int tg_pos_add(tg_tensor *out, tg_tensor *x, tg_tensor *pos, int64_t T)
{
	TG_CHECK(out && x && pos, TG_EINVAL, "pos_add: a tensor argument is NULL");
	TG_CHECK(T >= 1, TG_EINVAL, "pos_add: the sequence length T must be >= 1, got %lld", (long long)T);
	struct tg_pos_add_args args = {T, 0, 0};
	tg_task_spec s = tg_spec(&tg_op_pos_add, &pos_add_fwd_cl, "pos_add_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(out));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, pos, TG_R);
	s.tile = TG_TILE_ROWS;
	s.whole = 1u << 2;
	s.tile_args = just_row0;
	return tg_submit(&s);
}

static int pos_add_backward(const tg_node *fwd)
{
	const struct tg_pos_add_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0), *d;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &d, &mode));
	if (d) {
		struct tg_pos_add_args args = {fa->T, 0, mode == TG_ACC};
		tg_task_spec s = tg_spec(&tg_op_pos_add, &pos_add_copy_cl, "pos_add_bwd_dx", TG_PHASE_BWD, &args, sizeof args,
		                         (double)tg_tensor_numel(dout));
		tg_spec_add(&s, d, mode);
		tg_spec_add(&s, dout, TG_R);
		s.tile = TG_TILE_ROWS;
		TG_TRY(tg_submit(&s));
	}
	TG_TRY(tg_grad_target(fwd, 2, &d, &mode));
	if (d) {
		struct tg_pos_add_args args = {fa->T, 0, mode == TG_ACC};
		tg_task_spec s = tg_spec(&tg_op_pos_add, &pos_add_bwd_cl, "pos_add_bwd_dpos", TG_PHASE_BWD, &args, sizeof args,
		                         (double)tg_tensor_numel(dout));
		tg_spec_add(&s, d, mode);
		tg_spec_add(&s, dout, TG_R);
		s.tile = TG_TILE_ROWS;
		s.tile_on = 1; /* dout's rows; dpos goes whole to every tile */
		s.whole = 1u << 0;
		s.tile_args = set_row0;
		TG_TRY(tg_submit(&s));
	}
	return 0;
}
