/* matmul.c — out = op(a) op(b), op(x) = x or x^T (TG_TRANS_A / TG_TRANS_B).
 *
 * Every task is one GEMM, C = op(X) op(Y) + beta C, beta 0 when C is written (TG_W) and 1 when
 * it accumulates (TG_ACC). With C = op(A) op(B):
 *   dA = dC op(B)^T          (or op(B) dC^T  when A is transposed)
 *   dB = op(A)^T dC          (or dC^T op(A)  when B is transposed)
 * Tiles (gemm_tasks): C by row tiles when its rows are X's rows; else, when X and Y share
 * their rows (weight gradients, X^T dY), by tiles of that summed dimension: the first tile
 * writes C, the others add to it in submission order (deterministic; the sum is split in T
 * partial products, so it rounds differently from one task), in one chain per worker, each on
 * a row tile of C (see chains); else C by column tiles (op(Y)'s columns); else one task.
 * Gradient rule: activation gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ kernels */

void tg_matmul_cpu(tg_mat c, tg_mat x, tg_mat y, const struct tg_matmul_args *a)
{
	int k = a->trans_x ? x.rows : x.cols;
	cblas_sgemm(CblasRowMajor, a->trans_x ? CblasTrans : CblasNoTrans, a->trans_y ? CblasTrans : CblasNoTrans, c.rows,
	            c.cols, k, 1.0f, TG_MF(x), x.ld, TG_MF(y), y.ld, a->beta, TG_MF(c), c.ld);
}

TG_OP_WRAPPERS(tg_matmul, 3, struct tg_matmul_args)
TG_OP_CODELET(matmul_fwd_cl, "matmul_fwd", tg_matmul);
TG_OP_CODELET(matmul_bwd_cl, "matmul_bwd", tg_matmul);

/* ------------------------------------------------------------------ submission */

static int matmul_check(const tg_task_spec *s);
static int matmul_backward(const tg_node *fwd);
TG_OP_DESC(matmul, TG_KIND_GEMM, matmul_check, matmul_backward,
           "out = op(a) op(b), with transpose flags (cuBLAS / OpenBLAS GEMM), tiled by rows");

static int overlap(const tg_tensor *a, const tg_tensor *b)
{
	for (const tg_tensor *t = a; t; t = tg_tensor_parent(t))
		if (t == b)
			return 1;
	for (const tg_tensor *t = b; t; t = tg_tensor_parent(t))
		if (t == a)
			return 1;
	return 0;
}

/* One GEMM task: C (=|+=) op(X) op(Y). */
static int gemm_task(struct starpu_codelet *cl, const char *name, tg_phase phase, tg_tensor *c, unsigned mode,
                     tg_tensor *x, int tx, tg_tensor *y, int ty)
{
	struct tg_matmul_args args = {tx, ty, mode == TG_ACC ? 1.0f : 0.0f};
	double k = (double)(tx ? tg_tensor_rows(x) : tg_tensor_cols(x));
	tg_task_spec s = tg_spec(&tg_op_matmul, cl, name, phase, &args, sizeof args,
	                         2.0 * (double)tg_tensor_rows(c) * (double)tg_tensor_cols(c) * k);
	tg_spec_add(&s, c, mode);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, y, TG_R);
	return tg_submit(&s);
}

/* How many accumulation chains a product summed over T tiles runs in: one chain (T tasks in
 * a row, each adding to C) leaves all but one worker idle unless other work is ready, so C is
 * split by rows into R chains, R = min(T, rows of C / 128): at most one per tile (the tile
 * count already follows the workers) and chains of at least 128 rows. R depends on the
 * shapes and the tiling only, never on the workers or the policy, so a fixed tiling gives the
 * same bits with any number of workers. Every element is summed over the tiles in the same
 * order, but the BLAS may round the edge rows of a row tile in another kernel: within
 * rounding of one chain (tests/test_determinism). */
static int chains(const tg_tensor *c, int T)
{
	int64_t most = tg_tensor_rows(c) / 128;
	int R = T < most ? T : (int)most;
	return R > 1 ? R : 1;
}

/* The op C (=|+=) op(X) op(Y), in tiles (see the top of this file). */
static int gemm_tasks(struct starpu_codelet *cl, const char *name, tg_phase phase, tg_tensor *c, unsigned mode,
                      tg_tensor *x, int tx, tg_tensor *y, int ty)
{
	tg_tensor *ct[TG_MAX_TILES], *xt[TG_MAX_TILES], *yt[TG_MAX_TILES];
	int T;
	if (!tx && !overlap(x, y) && (T = tg_tile_count(tg_tensor_rows(c))) > 1) { /* rows of C and X */
		TG_TRY(tg_tensor_partition(c, TG_SPLIT_ROWS, T, ct));
		TG_TRY(tg_tensor_partition(x, TG_SPLIT_ROWS, T, xt));
		for (int i = 0; i < T; i++)
			TG_TRY(gemm_task(cl, name, phase, ct[i], mode, xt[i], tx, y, ty));
		return 0;
	}
	if (tx && !ty && (T = tg_tile_count(tg_tensor_rows(x))) > 1) { /* the summed rows of X and Y */
		TG_TRY(tg_tensor_partition(x, TG_SPLIT_ROWS, T, xt));
		TG_TRY(tg_tensor_partition(y, TG_SPLIT_ROWS, T, yt));
		int R = overlap(x, y) ? 1 : chains(c, T); /* X^T X: X cannot be in parts and whole in one task */
		if (R == 1) {
			for (int i = 0; i < T; i++)
				TG_TRY(gemm_task(cl, name, phase, c, i == 0 ? mode : TG_ACC, xt[i], tx, yt[i], ty));
			return 0;
		}
		/* R chains, one per row tile of C (X's columns): C_r (=|+=) X_0[:, r]^T Y_0, += X_1[:, r]^T Y_1, ... */
		tg_tensor *cr[TG_MAX_TILES], *xr[TG_MAX_TILES];
		TG_TRY(tg_tensor_partition(c, TG_SPLIT_ROWS, R, cr));
		for (int i = 0; i < T; i++) {
			TG_TRY(tg_tensor_partition(xt[i], TG_SPLIT_COLS, R, xr));
			for (int r = 0; r < R; r++)
				TG_TRY(gemm_task(cl, name, phase, cr[r], i == 0 ? mode : TG_ACC, xr[r], tx, yt[i], ty));
		}
		return 0;
	}
	if (!overlap(x, y) && (T = tg_tile_count(tg_tensor_cols(c))) > 1) { /* columns of C and of op(Y) */
		TG_TRY(tg_tensor_partition(c, TG_SPLIT_COLS, T, ct));
		TG_TRY(tg_tensor_partition(y, ty ? TG_SPLIT_ROWS : TG_SPLIT_COLS, T, yt));
		for (int i = 0; i < T; i++)
			TG_TRY(gemm_task(cl, name, phase, ct[i], mode, x, tx, yt[i], ty));
		return 0;
	}
	return gemm_task(cl, name, phase, c, mode, x, tx, y, ty);
}

/* Record the op (whole tensors), then its tiles. */
static int gemm_op(struct starpu_codelet *cl, const char *name, tg_phase phase, tg_tensor *c, unsigned mode,
                   tg_tensor *x, int tx, tg_tensor *y, int ty)
{
	struct tg_matmul_args args = {tx, ty, mode == TG_ACC ? 1.0f : 0.0f};
	tg_task_spec s = tg_spec(&tg_op_matmul, cl, name, phase, &args, sizeof args, 0);
	tg_spec_add(&s, c, mode);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, y, TG_R);
	TG_TRY(tg_op_begin(&s));
	int rc = gemm_tasks(cl, name, phase, c, mode, x, tx, y, ty);
	tg_op_end();
	return rc;
}

static int matmul_check(const tg_task_spec *s)
{
	const struct tg_matmul_args *a = s->args;
	TG_TRY(tg_check_f32("matmul", "output", s->t[0]));
	TG_TRY(tg_check_f32("matmul", "a", s->t[1]));
	TG_TRY(tg_check_f32("matmul", "b", s->t[2]));
	const tg_tensor *out = s->t[0], *x = s->t[1], *y = s->t[2];
	int64_t m = a->trans_x ? tg_tensor_cols(x) : tg_tensor_rows(x);
	int64_t kx = a->trans_x ? tg_tensor_rows(x) : tg_tensor_cols(x);
	int64_t ky = a->trans_y ? tg_tensor_cols(y) : tg_tensor_rows(y);
	int64_t n = a->trans_y ? tg_tensor_rows(y) : tg_tensor_cols(y);
	char sa[96], sb[96], so[96];
	TG_CHECK(kx == ky, TG_ESHAPE, "matmul: op(a) is (%lld, %lld) and op(b) is (%lld, %lld): inner sizes differ (a '%s' %s, b '%s' %s)",
	         (long long)m, (long long)kx, (long long)ky, (long long)n, tg_tensor_name(x), tg_tensor_shape_str(x, sa, sizeof sa),
	         tg_tensor_name(y), tg_tensor_shape_str(y, sb, sizeof sb));
	TG_CHECK(tg_tensor_rows(out) == m && tg_tensor_cols(out) == n, TG_ESHAPE,
	         "matmul: output '%s' %s must be (%lld, %lld) as a matrix", tg_tensor_name(out),
	         tg_tensor_shape_str(out, so, sizeof so), (long long)m, (long long)n);
	return 0;
}

int tg_matmul(tg_tensor *out, tg_tensor *a, tg_tensor *b, unsigned flags)
{
	TG_CHECK((flags & ~(unsigned)(TG_TRANS_A | TG_TRANS_B)) == 0, TG_EINVAL, "matmul: unknown flags 0x%x", flags);
	TG_CHECK(out && a && b, TG_EINVAL, "matmul: a tensor argument is NULL");
	return gemm_op(&matmul_fwd_cl, "matmul_fwd", TG_PHASE_FWD, out, TG_W, a, !!(flags & TG_TRANS_A), b,
	               !!(flags & TG_TRANS_B));
}

static int matmul_backward(const tg_node *fwd)
{
	const struct tg_matmul_args *fa = tg_node_args(fwd);
	tg_tensor *dc = tg_grad_of(fwd, 0);
	tg_tensor *a = tg_node_tensor(fwd, 1), *b = tg_node_tensor(fwd, 2);
	if (!dc)
		return 0;
	int ta = fa->trans_x, tb = fa->trans_y;
	tg_tensor *d;
	unsigned mode;
	TG_TRY(tg_grad_target(fwd, 1, &d, &mode));
	if (d) {
		if (!ta) /* dA = dC op(B)^T */
			TG_TRY(gemm_op(&matmul_bwd_cl, "matmul_bwd_da", TG_PHASE_BWD, d, mode, dc, 0, b, !tb));
		else /* dA = op(B) dC^T */
			TG_TRY(gemm_op(&matmul_bwd_cl, "matmul_bwd_da", TG_PHASE_BWD, d, mode, b, tb, dc, 1));
	}
	TG_TRY(tg_grad_target(fwd, 2, &d, &mode));
	if (d) {
		if (!tb) /* dB = op(A)^T dC */
			TG_TRY(gemm_op(&matmul_bwd_cl, "matmul_bwd_db", TG_PHASE_BWD, d, mode, a, !ta, dc, 0));
		else /* dB = dC^T op(A) */
			TG_TRY(gemm_op(&matmul_bwd_cl, "matmul_bwd_db", TG_PHASE_BWD, d, mode, dc, 1, a, ta));
	}
	return 0;
}
