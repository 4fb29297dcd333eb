/* transpose.c — out (=|+=) x with its last two dimensions swapped: x (.., N, M) holds `batch`
 * (N, M) matrices stacked by rows, out (.., M, N) their transposes. Backward: dx (=|+=)
 * dout transposed back. One task (a tile of out's rows needs columns of x from every row). */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

#define TR_BLOCK 32 /* blocks of 32 x 32: both sides stay in cache */

void tg_transpose_cpu(tg_mat out, tg_mat x, const struct tg_transpose_args *a)
{
	for (int b = 0; b < a->batch; b++) {
		const float *xb = TG_MF(x) + (size_t)b * (size_t)a->n * (size_t)x.ld;
		float *ob = TG_MF(out) + (size_t)b * (size_t)a->m * (size_t)out.ld;
		for (int i0 = 0; i0 < a->n; i0 += TR_BLOCK)
			for (int j0 = 0; j0 < a->m; j0 += TR_BLOCK) {
				int i1 = i0 + TR_BLOCK < a->n ? i0 + TR_BLOCK : a->n;
				int j1 = j0 + TR_BLOCK < a->m ? j0 + TR_BLOCK : a->m;
				for (int j = j0; j < j1; j++) {
					float *o = ob + (size_t)j * (size_t)out.ld;
					for (int i = i0; i < i1; i++) {
						float v = xb[(size_t)i * (size_t)x.ld + (size_t)j];
						o[i] = a->accumulate ? o[i] + v : v;
					}
				}
			}
	}
}

TG_OP_WRAPPERS(tg_transpose, 2, struct tg_transpose_args)
TG_OP_CODELET(transpose_cl, "transpose", tg_transpose);

/* ------------------------------------------------------------------ submission */

static int transpose_check(const tg_task_spec *s);
static int transpose_backward(const tg_node *fwd);
TG_OP_DESC(transpose, TG_KIND_DATA, transpose_check, transpose_backward,
           "x with its last two dimensions swapped");

static int transpose_check(const tg_task_spec *s)
{
	tg_tensor *out = s->t[0], *x = s->t[1];
	char so[96], sx[96];
	TG_TRY(tg_check_f32("transpose", "output", out));
	TG_TRY(tg_check_f32("transpose", "x", x));
	int rank = tg_tensor_rank(x);
	TG_CHECK(rank >= 2 && tg_tensor_rank(out) == rank, TG_ESHAPE,
	         "transpose: x '%s' %s and output '%s' %s must have the same rank, at least 2", tg_tensor_name(x),
	         tg_tensor_shape_str(x, sx, sizeof sx), tg_tensor_name(out), tg_tensor_shape_str(out, so, sizeof so));
	int ok = tg_tensor_dim(out, rank - 1) == tg_tensor_dim(x, rank - 2) &&
	         tg_tensor_dim(out, rank - 2) == tg_tensor_dim(x, rank - 1);
	for (int d = 0; d < rank - 2; d++)
		ok = ok && tg_tensor_dim(out, d) == tg_tensor_dim(x, d);
	TG_CHECK(ok, TG_ESHAPE, "transpose: output '%s' %s must be x '%s' %s with its last two dimensions swapped",
	         tg_tensor_name(out), tg_tensor_shape_str(out, so, sizeof so), tg_tensor_name(x),
	         tg_tensor_shape_str(x, sx, sizeof sx));
	return 0;
}

static struct tg_transpose_args args_of(const tg_tensor *x, int accumulate)
{
	int rank = tg_tensor_rank(x);
	int64_t n = tg_tensor_dim(x, rank - 2), m = tg_tensor_dim(x, rank - 1);
	struct tg_transpose_args a = {(int)(n > 0 && m > 0 ? tg_tensor_numel(x) / (n * m) : 0), (int)n, (int)m, accumulate};
	return a;
}

int tg_transpose(tg_tensor *out, tg_tensor *x)
{
	TG_CHECK(out && x, TG_EINVAL, "transpose: a tensor argument is NULL");
	TG_TRY(tg_tensor_check_usable(x, "transpose"));
	TG_CHECK(tg_tensor_rank(x) >= 2, TG_ESHAPE, "transpose: x '%s' must have at least 2 dimensions",
	         tg_tensor_name(x));
	struct tg_transpose_args args = args_of(x, 0);
	tg_task_spec s = tg_spec(&tg_op_transpose, &transpose_cl, "transpose_fwd", TG_PHASE_FWD, &args, sizeof args, 0);
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	return tg_submit(&s);
}

static int transpose_backward(const tg_node *fwd)
{
	tg_tensor *dout = tg_grad_of(fwd, 0), *dx;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mode));
	if (!dx)
		return 0;
	struct tg_transpose_args args = args_of(tg_node_tensor(fwd, 0), mode == TG_ACC);
	tg_task_spec s = tg_spec(&tg_op_transpose, &transpose_cl, "transpose_bwd", TG_PHASE_BWD, &args, sizeof args, 0);
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dout, TG_R);
	return tg_submit(&s);
}
