/* sum.c — out (=|+=) the sum of n tensors of out's shape, two ways:
 *   TG_SUM_TREE: a fixed binary tree of pairwise adds, as tasks (level 1: xs[0] += xs[1],
 *     xs[2] += xs[3], ...; level 2: xs[0] += xs[2], ...; then out (=|+=) xs[0]): the same
 *     bits under every policy and worker count, and independent adds run at once;
 *   TG_SUM_REDUX: every xs[i] added to out in a task with StarPU's reduction mode
 *     (TG_REDUX): per-worker partial sums, merged in an order that varies.
 * Also the small kernels other ops share: dst (=|+=) src (tg_copy) and dst = 0 (tg_zero).
 * Not differentiable: a reduction of gradients (micro-batches). Tiled by rows. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ kernels */

static TG_VEC void copy_vec(tg_mat dst, tg_mat src, int accumulate)
{
	for (int r = 0; r < dst.rows; r++) {
		float *restrict d = TG_ROW(dst, r);
		const float *restrict s = TG_ROW(src, r);
		if (accumulate)
			for (int c = 0; c < dst.cols; c++)
				d[c] += s[c];
		else
			for (int c = 0; c < dst.cols; c++)
				d[c] = s[c];
	}
}

void tg_copy_cpu(tg_mat dst, tg_mat src, const struct tg_pos_add_args *a)
{
	copy_vec(dst, src, a->accumulate);
}

void tg_zero_cpu(tg_mat dst, const struct tg_pos_add_args *a)
{
	(void)a;
	for (int r = 0; r < dst.rows; r++)
		memset(TG_ROW(dst, r), 0, (size_t)dst.cols * sizeof(float));
}

TG_OP_WRAPPERS(tg_copy, 2, struct tg_pos_add_args)
TG_OP_WRAPPERS(tg_zero, 1, struct tg_pos_add_args)
TG_OP_CODELET(sum_add_cl, "sum_add", tg_copy);
TG_OP_CODELET(sum_zero_cl, "sum_zero", tg_zero);

/* ------------------------------------------------------------------ submission */

static int sum_check(const tg_task_spec *s);
TG_OP_DESC(sum, TG_KIND_REDUCTION, sum_check, NULL,
           "out (=|+=) the sum of n tensors: a fixed tree of adds, or StarPU's reductions");

static int sum_check(const tg_task_spec *s)
{
	for (int i = 0; i < s->n; i++) {
		TG_TRY(tg_check_f32("sum", i ? "input" : "output", s->t[i]));
		if (i)
			TG_TRY(tg_check_same_shape("sum", "output", s->t[0], "input", s->t[i]));
	}
	return 0;
}

/* dst (=|+=) src, one task per row tile. */
static int add_into(tg_tensor *dst, unsigned mode, tg_tensor *src, const char *name)
{
	struct tg_pos_add_args args = {0, 0, mode != TG_W};
	tg_task_spec s = tg_spec(&tg_op_sum, &sum_add_cl, name, TG_PHASE_OPT, &args, sizeof args,
	                         (double)tg_tensor_numel(dst));
	tg_spec_add(&s, dst, mode);
	tg_spec_add(&s, src, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

int tg_sum(tg_tensor *out, int n, tg_tensor *const *xs, int how, int accumulate)
{
	TG_CHECK(out && xs, TG_EINVAL, "sum: NULL argument");
	TG_CHECK(n >= 1 && n <= 64, TG_EINVAL, "sum: %d inputs (1 to 64)", n);
	TG_CHECK(how == TG_SUM_TREE || how == TG_SUM_REDUX, TG_EINVAL, "sum: unknown way %d (TG_SUM_TREE or TG_SUM_REDUX)",
	         how);
	/* the whole op, checked and recorded (its operands as given) */
	tg_task_spec op = tg_spec(&tg_op_sum, NULL, "sum", TG_PHASE_OPT, NULL, 0, 0);
	tg_spec_add(&op, out, accumulate ? TG_ACC : TG_W);
	for (int i = 0; i < n && i < TG_MAX_OPERANDS - 1; i++)
		tg_spec_add(&op, xs[i], how == TG_SUM_TREE && i % 2 == 0 && i + 1 < n ? TG_RW : TG_R); /* a left operand of the tree */
	for (int i = 0; i < n; i++) {
		TG_CHECK(xs[i], TG_EINVAL, "sum: input %d is NULL", i);
		TG_TRY(tg_check_f32("sum", "input", xs[i]));
		TG_TRY(tg_check_same_shape("sum", "output", out, "input", xs[i]));
		TG_CHECK(xs[i] != out, TG_EINVAL, "sum: the output '%s' is also input %d", tg_tensor_name(out), i);
	}
	TG_TRY(sum_check(&op));
	TG_TRY(tg_op_begin(&op));
	int rc = 0;
	if (how == TG_SUM_TREE) {
		for (int step = 1; step < n && rc == 0; step *= 2)
			for (int i = 0; i + step < n && rc == 0; i += 2 * step)
				rc = add_into(xs[i], TG_ACC, xs[i + step], "sum_tree");
		if (rc == 0)
			rc = add_into(out, accumulate ? TG_ACC : TG_W, xs[0], "sum_tree");
	} else {
		if (!accumulate) { /* StarPU's reductions add to what out holds: start from zero */
			struct tg_pos_add_args args = {0, 0, 0};
			tg_task_spec z = tg_spec(&tg_op_sum, &sum_zero_cl, "sum_zero", TG_PHASE_OPT, &args, sizeof args, 0);
			tg_spec_add(&z, out, TG_W);
			rc = tg_submit(&z);
		}
		for (int i = 0; i < n && rc == 0; i++) {
			struct tg_pos_add_args args = {0, 0, 1};
			tg_task_spec s = tg_spec(&tg_op_sum, &sum_add_cl, "sum_redux", TG_PHASE_OPT, &args, sizeof args,
			                         (double)tg_tensor_numel(out));
			tg_spec_add(&s, out, TG_REDUX);
			tg_spec_add(&s, xs[i], TG_R);
			rc = tg_submit(&s);
		}
	}
	tg_op_end();
	return rc;
}
