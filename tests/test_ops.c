/*
 * test_ops.c — the op harness: every row of tests/op_cases.c (every op of ops/ops.def, odd
 * shapes), run by the library's checker tg_check_op (runtime/check.c) on one backend (this
 * file is built twice, for CPU workers and for CUDA workers: TG_TEST_BACKEND), in one tile and
 * in several; plus softmax cross-entropy's edge cases and what tiling does to results.
 * A backend that has no worker, or an op without an implementation there, is reported SKIP /
 * NOT SUPPORTED, never PASS.
 */
#include "tg_test.h"

#include <math.h>

#include <taskgrad_op.h>

#include "op_cases.h"

#ifndef TG_TEST_BACKEND
#define TG_TEST_BACKEND TG_BACKEND_CPU
#endif
#define BACKEND_NAME (TG_TEST_BACKEND == TG_BACKEND_CPU ? "cpu" : "cuda")

static int unsupported_rows;

/* One row of the table, both tilings. */
static void run_case(void **statep)
{
	const tg_check_case *c = *statep;
	uint64_t seed = tg_test_seed("op harness") + (uint64_t)(c - tg_test_cases) * 104729u;
	tg_check_result res;
	int rc = tg_check_op(c, TG_TEST_BACKEND, 0, seed, stdout, &res);
	tg_check_verdict v = TG_TEST_BACKEND == TG_BACKEND_CPU ? res.cpu : res.cuda;
	if (rc < 0)
		fail_msg("%s", tg_last_error());
	if (v == TG_CHECK_NOT_SUPPORTED) {
		unsupported_rows++;
		skip();
	}
	assert_int_equal(v, TG_CHECK_PASS);
}

/* ------------------------------------------------------------------ softmax_xent edge cases */

/* softmax_xent(loss, logits (n, v), targets (n)) submitted on the backend under test. */
typedef struct xent_run {
	tg_tensor *logits, *targets, *loss;
} xent_run;

static void xent_submit(xent_run *x, const float *logits, const int32_t *targets, int64_t n, int64_t v)
{
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_set_backend(TG_TEST_BACKEND));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&x->logits, "logits", TG_F32, TG_SHAPE(n, v), logits,
	                                      (size_t)(n * v) * sizeof(float)));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&x->targets, "targets", TG_I32, TG_SHAPE(n), targets,
	                                      (size_t)n * sizeof(int32_t)));
	TG_OK_OR_FAIL(tg_tensor_new(&x->loss, "loss", TG_F32, TG_SHAPE(1)));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(x->logits, 1));
	TG_OK_OR_FAIL(tg_softmax_xent(x->loss, x->logits, x->targets));
}

static void xent_free(xent_run *x)
{
	tg_tensor_free(x->loss);
	tg_tensor_free(x->targets);
	tg_tensor_free(x->logits);
	TG_OK_OR_FAIL(tg_set_backend(TG_BACKEND_ANY));
	TG_OK_OR_FAIL(tg_graph_reset());
}

/* Logits far apart: the loss and its gradient stay finite and exact (the maximum of a row must
 * take in every element: the first, the last and one in the middle each hold it once). */
static void xent_extreme_logits(void **unused)
{
	(void)unused;
	enum { N = 8, V = 3 };
	static const float x[N][V] = {{1000, 0, 0}, {1000, 0, 0}, {0, 0, 1000},     {0, 1000, 0},
	                              {-1000, 0, 1000}, {5, 5, 5}, {0, 0, 1000}, {1000, -1000, 0}};
	static const int32_t t[N] = {0, 1, 2, 0, 1, 2, 1, 2};
	/* the reference, in double */
	double ref_loss = 0, ref_d[N][V];
	for (int r = 0; r < N; r++) {
		double m = x[r][0], s = 0;
		for (int j = 1; j < V; j++)
			m = fmax(m, x[r][j]);
		for (int j = 0; j < V; j++)
			s += exp(x[r][j] - m);
		ref_loss += (m + log(s) - x[r][t[r]]) / N;
		for (int j = 0; j < V; j++)
			ref_d[r][j] = (exp(x[r][j] - m) / s - (j == t[r])) / N;
	}
	xent_run xr;
	xent_submit(&xr, &x[0][0], t, N, V);
	TG_OK_OR_FAIL(tg_backward(xr.loss));
	float l, d[N][V];
	TG_OK_OR_FAIL(tg_tensor_to_host(xr.loss, &l, sizeof l));
	TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(xr.logits), d, sizeof d));
	print_message("  loss %.9g (reference %.9g)\n", (double)l, ref_loss);
	if (!isfinite(l) || fabs(l - ref_loss) > 1e-6 * ref_loss)
		fail_msg("softmax_xent of extreme logits: loss %.9g, reference %.9g", (double)l, ref_loss);
	for (int r = 0; r < N; r++)
		for (int j = 0; j < V; j++)
			if (!isfinite(d[r][j]) || fabs(d[r][j] - ref_d[r][j]) > 1e-7)
				fail_msg("gradient (%d, %d): %.9g, reference %.9g", r, j, (double)d[r][j], ref_d[r][j]);
	xent_free(&xr);
}

/* A target outside [0, V) is an error at the next wait, naming its row (of the whole op,
 * whatever the tile) and value, for the forward and for the backward task; the loss is NaN. */
static void targets_out_of_range(int tiled)
{
	enum { N = 9, V = 5, BAD_ROW = 7 };
	const int32_t bad[] = {V, -1, INT32_MAX, INT32_MIN};
	float x[N * V];
	tg_fill f = {TG_FILL_NORMAL, 0, 1, tg_test_seed("op harness"), 99};
	TG_OK_OR_FAIL(tg_fill_host(x, N * V, &f));
	TG_OK_OR_FAIL(tiled ? tg_set_tiling(2, 0) : tg_set_tiling(0, 1));
	for (int k = 0; k < 4; k++) {
		int32_t t[N] = {0, 4, 1, 2, 3, 0, 1, 2, 3};
		t[BAD_ROW] = bad[k];
		char needle[96];
		snprintf(needle, sizeof needle, "target %d of row %d is outside [0, %d)", (int)bad[k], BAD_ROW, V);
		xent_run xr;
		xent_submit(&xr, x, t, N, V);
		float l;
		int rc = tg_tensor_to_host(xr.loss, &l, sizeof l);
		if (rc != TG_EINVAL || !strstr(tg_last_error(), needle))
			fail_msg("forward with target %d: %d (%s)", (int)bad[k], rc, tg_last_error());
		assert_true(isnan(l));
		TG_OK_OR_FAIL(tg_backward(xr.loss));
		rc = tg_wait_all();
		if (rc != TG_EINVAL || !strstr(tg_last_error(), needle))
			fail_msg("backward with target %d: %d (%s)", (int)bad[k], rc, tg_last_error());
		TG_OK_OR_FAIL(tg_wait_all()); /* taken once */
		xent_free(&xr);
	}
	TG_OK_OR_FAIL(tg_set_tiling(0, 0));
}

static void xent_targets_out_of_range(void **unused)
{
	(void)unused;
	targets_out_of_range(0);
}

static void xent_targets_out_of_range_tiled(void **unused)
{
	(void)unused;
	targets_out_of_range(1);
}

/* Kernel reports across runtimes: after tg_shutdown and a tg_init in which StarPU calibrates
 * the bus again (on a GPU it resets the devices, freeing pinned memory), a bad target is still
 * reported, twice over. */
static void xent_reports_survive_reinit(void **unused)
{
	(void)unused;
	for (int cycle = 0; cycle < 2; cycle++) {
		TG_OK_OR_FAIL(tg_shutdown());
		setenv("STARPU_BUS_CALIBRATE", "1", 1);
		tg_config cfg;
		tg_config_default(&cfg);
		cfg.sched = "eager";
		cfg.ncuda = TG_TEST_BACKEND == TG_BACKEND_CUDA ? -1 : 0;
		int rc = tg_init(&cfg);
		unsetenv("STARPU_BUS_CALIBRATE");
		if (rc < 0)
			fail_msg("tg_init after tg_shutdown: %s", tg_last_error());
		targets_out_of_range(0);
	}
}

/* What each op says about tiles: the same bits whatever the tiling where the sums keep their
 * order (elementwise ops, bias gradients summed row after row), within rounding where a sum is
 * split (the loss, weight gradients summed over the token dimension). */
static void tilings_agree(void **unused)
{
	(void)unused;
	enum { N = 37, C = 19, H = 23, V = 7, NT = 3 };
	const int tilings[NT][2] = {{0, 1}, {5, 0}, {2, 7}};
	float *xh = malloc(N * C * sizeof(float)), *wh = malloc(H * C * sizeof(float));
	int32_t th[N];
	tg_fill fx = {TG_FILL_NORMAL, 0, 1, tg_test_seed("op harness"), 300}, fw = fx;
	fw.stream = 301;
	TG_OK_OR_FAIL(tg_fill_host(xh, N * C, &fx));
	TG_OK_OR_FAIL(tg_fill_host(wh, H * C, &fw));
	for (int i = 0; i < N; i++)
		th[i] = (i * 5) % V;
	static float h[NT][N * H], db[NT][H], dw[NT][H * C], dv[NT][V * H], loss[NT];
	for (int k = 0; k < NT; k++) {
		TG_OK_OR_FAIL(tg_set_tiling(tilings[k][0], tilings[k][1]));
		TG_OK_OR_FAIL(tg_graph_reset());
		TG_OK_OR_FAIL(tg_set_backend(TG_TEST_BACKEND));
		tg_tensor *x, *w, *b, *v, *z, *a, *g, *o, *t, *l;
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&x, "x", TG_F32, TG_SHAPE(N, C), xh, N * C * sizeof(float)));
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&w, "w", TG_F32, TG_SHAPE(H, C), wh, H * C * sizeof(float)));
		TG_OK_OR_FAIL(tg_tensor_new_filled(&b, "b", TG_F32, TG_SHAPE(H), &(tg_fill){TG_FILL_UNIFORM, -1, 1, 5, 6}));
		TG_OK_OR_FAIL(tg_tensor_new_filled(&v, "v", TG_F32, TG_SHAPE(V, H), &(tg_fill){TG_FILL_UNIFORM, -1, 1, 5, 7}));
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&t, "t", TG_I32, TG_SHAPE(N), th, sizeof th));
		TG_OK_OR_FAIL(tg_tensor_new(&z, "z", TG_F32, TG_SHAPE(N, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&a, "a", TG_F32, TG_SHAPE(N, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&g, "g", TG_F32, TG_SHAPE(N, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&o, "o", TG_F32, TG_SHAPE(N, V)));
		TG_OK_OR_FAIL(tg_tensor_new(&l, "l", TG_F32, TG_SHAPE(1)));
		tg_tensor *params[] = {w, b, v};
		for (int i = 0; i < 3; i++)
			TG_OK_OR_FAIL(tg_tensor_set_requires_grad(params[i], 1));
		TG_OK_OR_FAIL(tg_matmul(z, x, w, TG_TRANS_B));
		TG_OK_OR_FAIL(tg_add(a, z, b));
		TG_OK_OR_FAIL(tg_gelu(g, a));
		TG_OK_OR_FAIL(tg_matmul(o, g, v, TG_TRANS_B));
		TG_OK_OR_FAIL(tg_softmax_xent(l, o, t));
		TG_OK_OR_FAIL(tg_backward(l));
		TG_OK_OR_FAIL(tg_tensor_to_host(g, h[k], sizeof h[k]));
		TG_OK_OR_FAIL(tg_tensor_to_host(l, &loss[k], sizeof loss[k]));
		TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(b), db[k], sizeof db[k]));
		TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(w), dw[k], sizeof dw[k]));
		TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(v), dv[k], sizeof dv[k]));
		tg_graph *gr;
		TG_OK_OR_FAIL(tg_graph_take(&gr));
		print_message("  tiling (%d rows, %d tiles): %d tasks\n", tilings[k][0], tilings[k][1], tg_graph_num_nodes(gr));
		tg_graph_free(gr);
		tg_tensor *ts[] = {x, w, b, v, t, z, a, g, o, l};
		for (int i = 0; i < 10; i++)
			tg_tensor_free(ts[i]);
	}
	for (int k = 1; k < NT; k++) {
		/* the BLAS rounds a GEMM of fewer rows differently (its blocking changes): within
		 * rounding downstream of a tiled GEMM */
		double worst_h = 0, worst_b = 0, bscale = 1e-12;
		for (int i = 0; i < N * H; i++)
			worst_h = fmax(worst_h, fabs(h[k][i] - h[0][i]));
		for (int i = 0; i < H; i++) {
			bscale = fmax(bscale, fabs(db[0][i]));
			worst_b = fmax(worst_b, fabs(db[k][i] - db[0][i]));
		}
		worst_b /= bscale; /* relative to the gradient's size, as the weight gradient's below */
		assert_true(worst_h < 1e-5);
		assert_true(worst_b < 1e-5);
		assert_true(fabs(loss[k] - loss[0]) <= 1e-6 * fabs(loss[0]));
		double worst_w = 0, scale = 1e-12;
		for (int i = 0; i < H * C; i++) {
			scale = fmax(scale, fabs(dw[0][i]));
			worst_w = fmax(worst_w, fabs(dw[k][i] - dw[0][i]));
		}
		assert_true(worst_w <= 1e-5 * scale);
		print_message("  tiling %d vs one tile: activations %.3g, bias gradient %.3g, weight gradient %.3g (relative)\n",
		              k, worst_h, worst_b, worst_w / scale);
	}
	/* elementwise ops and bias gradients alone: the same bits whatever the tiling */
	static float ge[NT][N * H], gb[NT][H];
	float *ah = malloc(N * H * sizeof(float)), *rh = malloc(N * H * sizeof(float));
	tg_fill fa = fx;
	fa.stream = 302;
	TG_OK_OR_FAIL(tg_fill_host(ah, N * H, &fa));
	fa.stream = 303;
	TG_OK_OR_FAIL(tg_fill_host(rh, N * H, &fa));
	for (int k = 0; k < NT; k++) {
		TG_OK_OR_FAIL(tg_set_tiling(tilings[k][0], tilings[k][1]));
		TG_OK_OR_FAIL(tg_graph_reset());
		TG_OK_OR_FAIL(tg_set_backend(TG_TEST_BACKEND));
		tg_tensor *a, *b, *s, *e, *r;
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&a, "a", TG_F32, TG_SHAPE(N, H), ah, N * H * sizeof(float)));
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&r, "r", TG_F32, TG_SHAPE(N, H), rh, N * H * sizeof(float)));
		TG_OK_OR_FAIL(tg_tensor_new_filled(&b, "b", TG_F32, TG_SHAPE(H), &(tg_fill){TG_FILL_UNIFORM, -1, 1, 5, 6}));
		TG_OK_OR_FAIL(tg_tensor_set_requires_grad(b, 1));
		TG_OK_OR_FAIL(tg_tensor_new(&s, "s", TG_F32, TG_SHAPE(N, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&e, "e", TG_F32, TG_SHAPE(N, H)));
		TG_OK_OR_FAIL(tg_add(s, a, b));
		TG_OK_OR_FAIL(tg_gelu(e, s));
		TG_OK_OR_FAIL(tg_backward_from(e, r));
		TG_OK_OR_FAIL(tg_tensor_to_host(e, ge[k], sizeof ge[k]));
		TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(b), gb[k], sizeof gb[k]));
		tg_tensor *ts[] = {a, b, s, e, r};
		for (int i = 0; i < 5; i++)
			tg_tensor_free(ts[i]);
		if (k > 0) {
			assert_memory_equal(ge[k], ge[0], sizeof ge[k]);
			assert_memory_equal(gb[k], gb[0], sizeof gb[k]);
		}
	}
	free(ah);
	free(rh);
	TG_OK_OR_FAIL(tg_set_tiling(0, 0));
	TG_OK_OR_FAIL(tg_set_backend(TG_BACKEND_ANY));
	TG_OK_OR_FAIL(tg_graph_reset());
	free(xh);
	free(wh);
}

/* The checker itself: a wrong reference, a wrong mode, a broken kernel are caught; a case it
 * cannot take is refused. (A checker that always passes would pass every op.) */
static int run_relu_as_scale(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_scale(out[0], in[0], 2.0f); /* not relu */
}

static void ref_relu(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < c->in[0].shape[0] * c->in[0].shape[1]; i++)
		res[0][i] = in[0][i] > 0 ? in[0][i] : 0;
}

static void ref_relu_bwd(double **din, double *const *dout, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < c->in[0].shape[0] * c->in[0].shape[1]; i++)
		din[0][i] = in[0][i] > 0 ? dout[0][i] : 0;
}

static void checker_catches_wrong_ops(void **unused)
{
	(void)unused;
	tg_check_case c = {"relu", "(5, 4), the op of another name", 1, {{2, {5, 4}, TG_F32, TG_GEN_AWAY_FROM_ZERO, 0, 1}},
	                   1, {{2, {5, 4}, TG_F32, 0, 0, 0}}, 0, {0}, run_relu_as_scale, ref_relu, ref_relu_bwd, 0, {0},
	                   NULL, 0, 0};
	tg_check_result res;
	int rc = tg_check_op(&c, TG_TEST_BACKEND, 0, 1, NULL, &res);
	assert_int_equal(rc, TG_EINVAL);
	assert_true(res.failures > 0);
	assert_non_null(strstr(tg_last_error(), "check(s) failed"));
	c.run = NULL;
	assert_int_equal(tg_check_op(&c, TG_TEST_BACKEND, 0, 1, NULL, &res), TG_EINVAL);
	c.run = run_relu_as_scale;
	c.nin = 9;
	assert_int_equal(tg_check_op(&c, TG_TEST_BACKEND, 0, 1, NULL, &res), TG_EINVAL);
	c.nin = 1;
	assert_int_equal(tg_check_op(&c, TG_TEST_BACKEND, 5, 1, NULL, &res), TG_EINVAL);
}

/* Every op of ops.def must have rows. */
static void every_op_has_rows(void **unused)
{
	(void)unused;
	int missing = 0;
	for (int i = 0; i < tg_ops_builtin_count(); i++) {
		const tg_op_desc *op = tg_ops_builtin(i);
		assert_non_null(op);
		int rows_for_op = 0;
		for (int k = 0; k < tg_test_ncases; k++)
			rows_for_op += strcmp(tg_test_cases[k].op, op->name) == 0;
		if (!rows_for_op) {
			print_message("op '%s' has no row in the op harness\n", op->name);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
}

/* An embedding id outside [0, V) is an error at the next wait naming the op, the row (of the
 * whole op, whatever the tile) and the value, for the forward and for the backward; the row
 * is NaN and the table is never read or written out of its rows. */
static void embedding_ids_out_of_range(void **unused)
{
	(void)unused;
	enum { N = 9, V = 5, C = 3, BAD_ROW = 6 };
	const int32_t bad[] = {V, -1, INT32_MAX, INT32_MIN};
	for (int tiled = 0; tiled < 2; tiled++) {
		TG_OK_OR_FAIL(tiled ? tg_set_tiling(2, 0) : tg_set_tiling(0, 1));
		for (int k = 0; k < 4; k++) {
			int32_t ids[N] = {0, 4, 1, 2, 3, 0, 1, 2, 3};
			ids[BAD_ROW] = bad[k];
			char needle[128];
			snprintf(needle, sizeof needle, "embedding: id %d of row %d is outside [0, %d)", (int)bad[k], BAD_ROW, V);
			TG_OK_OR_FAIL(tg_graph_reset());
			tg_tensor *table, *out, *it;
			TG_OK_OR_FAIL(tg_tensor_new_filled(&table, "table", TG_F32, TG_SHAPE(V, C),
			                                   &(tg_fill){TG_FILL_NORMAL, 0, 1, 3, 4}));
			TG_OK_OR_FAIL(tg_tensor_set_requires_grad(table, 1));
			TG_OK_OR_FAIL(tg_tensor_new_from_host(&it, "ids", TG_I32, TG_SHAPE(N), ids, sizeof ids));
			TG_OK_OR_FAIL(tg_tensor_new(&out, "out", TG_F32, TG_SHAPE(N, C)));
			TG_OK_OR_FAIL(tg_embedding(out, table, it));
			float o[N][C];
			int rc = tg_tensor_to_host(out, o, sizeof o);
			if (rc != TG_EINVAL || !strstr(tg_last_error(), needle))
				fail_msg("forward with id %d (tiled %d): %d (%s)", (int)bad[k], tiled, rc, tg_last_error());
			for (int c = 0; c < C; c++)
				assert_true(isnan(o[BAD_ROW][c]));
			assert_true(isfinite(o[BAD_ROW - 1][0]) && isfinite(o[BAD_ROW + 1][0]));
			TG_OK_OR_FAIL(tg_backward(out));
			rc = tg_wait_all();
			if (rc != TG_EINVAL || !strstr(tg_last_error(), needle))
				fail_msg("backward with id %d (tiled %d): %d (%s)", (int)bad[k], tiled, rc, tg_last_error());
			TG_OK_OR_FAIL(tg_wait_all()); /* taken once */
			/* the good rows still reached the table's gradient: the id 0 rows (0 and 5), and
			 * nothing else went to row 0 */
			float g[V][C];
			TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(table), g, sizeof g));
			for (int c = 0; c < C; c++)
				assert_true(isfinite(g[0][c]));
			tg_tensor_free(out);
			tg_tensor_free(it);
			tg_tensor_free(table);
		}
	}
	TG_OK_OR_FAIL(tg_set_tiling(0, 0));
}

/* tg_sum: the tree adds in one fixed order (the same bits as that order computed here, in one
 * tile and tiled, with and without accumulate); the reductions add within rounding and leave
 * their inputs alone. */
static void sum_tree_and_redux(void **unused)
{
	(void)unused;
	enum { R = 7, C = 5, NMAX = 9 };
	const int ns[] = {1, 2, 3, 5, 8, 9};
	static float xh[NMAX][R * C], want[R * C], got[R * C], out0[R * C], x0[R * C];
	for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
		for (int mode = 0; mode < 6; mode++) {
			int n = ns[t], acc = mode & 1, tiled = (mode >> 1) & 1, redux = mode >= 4;
			TG_OK_OR_FAIL(tiled ? tg_set_tiling(2, 0) : tg_set_tiling(0, 1));
			TG_OK_OR_FAIL(tg_graph_reset());
			tg_tensor *xs[NMAX], *out;
			for (int i = 0; i < n; i++) {
				tg_fill f = {TG_FILL_NORMAL, 0, 1, tg_test_seed("op harness"), 400 + (uint64_t)(i + 16 * mode)};
				TG_OK_OR_FAIL(tg_fill_host(xh[i], R * C, &f));
				TG_OK_OR_FAIL(tg_tensor_new_from_host(&xs[i], "x", TG_F32, TG_SHAPE(R, C), xh[i], sizeof xh[i]));
			}
			tg_fill fo = {TG_FILL_NORMAL, 0, 1, tg_test_seed("op harness"), 399};
			TG_OK_OR_FAIL(tg_fill_host(out0, R * C, &fo));
			TG_OK_OR_FAIL(tg_tensor_new_from_host(&out, "out", TG_F32, TG_SHAPE(R, C), out0, sizeof out0));
			TG_OK_OR_FAIL(tg_sum(out, n, xs, redux ? TG_SUM_REDUX : TG_SUM_TREE, acc));
			TG_OK_OR_FAIL(tg_tensor_to_host(out, got, sizeof got));
			if (!redux) {
				/* the tree, in float, as documented */
				for (int step = 1; step < n; step *= 2)
					for (int i = 0; i + step < n; i += 2 * step)
						for (int e = 0; e < R * C; e++)
							xh[i][e] += xh[i + step][e];
				for (int e = 0; e < R * C; e++)
					want[e] = acc ? out0[e] + xh[0][e] : xh[0][e];
				if (memcmp(got, want, sizeof got))
					fail_msg("tree sum of %d inputs (accumulate %d, tiled %d) differs from its order", n, acc, tiled);
			} else {
				for (int e = 0; e < R * C; e++) {
					double w = acc ? out0[e] : 0, mag = acc ? fabs(out0[e]) : 0;
					for (int i = 0; i < n; i++) {
						w += xh[i][e];
						mag += fabs(xh[i][e]);
					}
					if (fabs(got[e] - w) > 1e-6 * mag + 1e-30)
						fail_msg("redux sum of %d inputs, element %d: %.9g, expected %.9g", n, e, (double)got[e], w);
				}
				TG_OK_OR_FAIL(tg_tensor_to_host(xs[0], x0, sizeof x0));
				assert_memory_equal(x0, xh[0], sizeof x0);
			}
			for (int i = 0; i < n; i++)
				tg_tensor_free(xs[i]);
			tg_tensor_free(out);
		}
	TG_OK_OR_FAIL(tg_set_tiling(0, 0));
}

/* Bad input to the ops: an error naming the op and the values, and nothing recorded or
 * submitted. */
static int tasks_now(void)
{
	tg_graph *g;
	if (tg_graph_take(&g) < 0)
		return -1;
	int n = tg_graph_num_nodes(g);
	tg_graph_free(g);
	return n;
}

#define REFUSED(call, code, needle)                                                                          \
	do {                                                                                                 \
		TG_OK_OR_FAIL(tg_graph_reset());                                                             \
		int rc_ = (call);                                                                            \
		if (rc_ != (code) || !strstr(tg_last_error(), (needle)))                                     \
			fail_msg("%s: %d (%s), expected %d with \"%s\"", #call, rc_, tg_last_error(), (code), \
			         (needle));                                                                  \
		if (tasks_now() != 0)                                                                        \
			fail_msg("%s: refused, but %d tasks were recorded", #call, tasks_now());              \
	} while (0)

static void bad_input_is_refused(void **unused)
{
	(void)unused;
	tg_tensor *x, *y, *w, *b, *v, *m, *ids, *ids2, *big, *mean, *rstd, *att, *qkv, *h, *c, *g, *pre, *n2, *n3, *ao;
	TG_OK_OR_FAIL(tg_tensor_new_filled(&x, "x", TG_F32, TG_SHAPE(6, 4), &(tg_fill){TG_FILL_NORMAL, 0, 1, 1, 1}));
	TG_OK_OR_FAIL(tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&w, "w", TG_F32, TG_SHAPE(4)));
	TG_OK_OR_FAIL(tg_tensor_new(&b, "b", TG_F32, TG_SHAPE(5)));
	TG_OK_OR_FAIL(tg_tensor_new(&v, "v", TG_F32, TG_SHAPE(6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&m, "m", TG_F32, TG_SHAPE(6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&ids, "ids", TG_I32, TG_SHAPE(6)));
	TG_OK_OR_FAIL(tg_tensor_new(&ids2, "ids2", TG_I32, TG_SHAPE(5)));
	TG_OK_OR_FAIL(tg_tensor_new(&big, "big", TG_F32, TG_SHAPE(6, 8)));
	TG_OK_OR_FAIL(tg_tensor_new(&mean, "mean", TG_F32, TG_SHAPE(6)));
	TG_OK_OR_FAIL(tg_tensor_new(&rstd, "rstd", TG_F32, TG_SHAPE(5)));
	TG_OK_OR_FAIL(tg_tensor_new(&att, "att", TG_F32, TG_SHAPE(1, 2, 6, 6)));
	TG_OK_OR_FAIL(tg_tensor_new(&qkv, "qkv", TG_F32, TG_SHAPE(1, 6, 12)));
	TG_OK_OR_FAIL(tg_tensor_new(&ao, "ao", TG_F32, TG_SHAPE(1, 6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&h, "h", TG_F32, TG_SHAPE(6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&c, "c", TG_F32, TG_SHAPE(6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&g, "gates", TG_F32, TG_SHAPE(6, 16)));
	TG_OK_OR_FAIL(tg_tensor_new(&pre, "pre", TG_F32, TG_SHAPE(6, 12)));
	TG_OK_OR_FAIL(tg_tensor_new(&n2, "norm", TG_F32, TG_SHAPE(2)));
	TG_OK_OR_FAIL(tg_tensor_new(&n3, "norm3", TG_F32, TG_SHAPE(3)));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(x, 1));

	/* shapes and types */
	REFUSED(tg_embedding(y, x, ids2), TG_ESHAPE, "embedding: output 'y' (6, 4) has 6 rows but ids 'ids2' (5) hold 5");
	REFUSED(tg_embedding(y, x, x), TG_EINVAL, "embedding");
	REFUSED(tg_pos_add(y, x, v, 4), TG_ESHAPE, "pos_add: x 'x' (6, 4) has 6 rows: not sequences of T = 4 rows");
	REFUSED(tg_pos_add(y, x, v, 7), TG_ESHAPE, "pos_add");
	REFUSED(tg_pos_add(y, x, v, 0), TG_EINVAL, "pos_add: the sequence length T must be >= 1, got 0");
	REFUSED(tg_layernorm(y, mean, rstd, x, w, w, 1e-5f), TG_ESHAPE, "layernorm: mean 'mean' and rstd 'rstd'");
	REFUSED(tg_layernorm(y, mean, mean, x, b, w, 1e-5f), TG_ESHAPE, "layernorm: w 'b' and b 'w' must hold 4 values");
	REFUSED(tg_layernorm(y, mean, m, x, w, w, -1.0f), TG_EINVAL, "layernorm: eps must be finite and > 0, got -1");
	REFUSED(tg_softmax(y, x, NAN, 0), TG_EINVAL, "softmax: the scale must be finite");
	REFUSED(tg_softmax(y, x, 1.0f, 3), TG_ESHAPE, "softmax: with a causal mask of T = 3");
	REFUSED(tg_softmax(y, x, 1.0f, -2), TG_EINVAL, "softmax: causal_T must be >= 0");
	REFUSED(tg_attention(big, att, qkv, 2), TG_ESHAPE, "attention");
	REFUSED(tg_attention(ao, att, qkv, 3), TG_ESHAPE, "attention");
	REFUSED(tg_attention(ao, att, qkv, 0), TG_EINVAL, "attention");
	REFUSED(tg_lstm_cell(h, c, g, pre, NULL), TG_ESHAPE, "lstm_cell: pre");
	REFUSED(tg_slice_cols(y, big, 5), TG_ESHAPE, "slice_cols: columns 5 .. 5 + 4 are outside x 'big' (6, 8)");
	REFUSED(tg_slice_cols(y, big, -1), TG_ESHAPE, "slice_cols: columns -1");
	REFUSED(tg_concat_cols(big, 2, (tg_tensor *[]){x, b}), TG_ESHAPE, "concat_cols: input 1 'b'");
	REFUSED(tg_concat_cols(big, 9, (tg_tensor *[]){x, x, x, x, x, x, x, x, x}), TG_EINVAL,
	        "concat_cols: 9 inputs (1 to 8)");
	REFUSED(tg_transpose(big, x), TG_ESHAPE, "transpose: output 'big' (6, 8) must be x 'x' (6, 4) with");
	REFUSED(tg_bias_gelu(y, x, b), TG_ESHAPE, "bias_gelu: b 'b' must hold 4 values");
	/* hyper-parameters */
	REFUSED(tg_dropout(y, x, 1.0f, 1, 1), TG_EINVAL, "dropout: p must be in [0, 1), got 1");
	REFUSED(tg_dropout(y, x, -0.5f, 1, 1), TG_EINVAL, "dropout: p must be in [0, 1), got -0.5");
	REFUSED(tg_dropout(y, x, NAN, 1, 1), TG_EINVAL, "dropout: p must be in [0, 1), got nan");
	tg_adamw_params ap = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1};
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(v, 1));
	ap.lr = -1e-3f;
	REFUSED(tg_adamw(v, m, y, &ap), TG_EINVAL, "adamw: learning rate must be finite and >= 0, got -0.001");
	ap.lr = 1e-3f;
	ap.beta1 = 1.0f;
	REFUSED(tg_adamw(v, m, y, &ap), TG_EINVAL, "adamw: beta1 must be in [0, 1), got 1");
	ap.beta1 = 0.9f;
	ap.beta2 = -0.1f;
	REFUSED(tg_adamw(v, m, y, &ap), TG_EINVAL, "adamw: beta2 must be in [0, 1), got -0.1");
	ap.beta2 = 0.999f;
	ap.eps = 0.0f;
	REFUSED(tg_adamw(v, m, y, &ap), TG_EINVAL, "adamw: eps must be finite and > 0, got 0");
	ap.eps = 1e-8f;
	ap.step = 0;
	REFUSED(tg_adamw(v, m, y, &ap), TG_EINVAL, "adamw: step must be >= 1 (the first step is 1), got 0");
	ap.step = 1;
	REFUSED(tg_adamw(v, m, mean, &ap), TG_ESHAPE, "adamw");
	REFUSED(tg_adamw(v, m, m, &ap), TG_EINVAL, "adamw: parameter, m and v must be three tensors");
	REFUSED(tg_clip_grad_norm(1, (tg_tensor *[]){x}, -1.0f, n2), TG_EINVAL, "clip_grad_norm: max_norm must be finite and > 0");
	REFUSED(tg_clip_grad_norm(1, (tg_tensor *[]){x}, 1.0f, n3), TG_ESHAPE, "clip_grad_norm: norm 'norm3' must be a vector of 2");
	REFUSED(tg_sum(y, 0, (tg_tensor *[]){x}, TG_SUM_TREE, 0), TG_EINVAL, "sum: 0 inputs (1 to 64)");
	REFUSED(tg_sum(y, 2, (tg_tensor *[]){x, big}, TG_SUM_TREE, 0), TG_ESHAPE, "sum");
	REFUSED(tg_sum(y, 1, (tg_tensor *[]){x}, 7, 0), TG_EINVAL, "sum: unknown way 7");
	REFUSED(tg_sum(y, 2, (tg_tensor *[]){x, y}, TG_SUM_REDUX, 0), TG_EINVAL, "sum: the output 'y' is also input 1");

	/* a spec that tiles on the rows of an operand it sends whole to every tile */
	tg_task_spec sp = tg_spec(tg_ops_builtin(0), NULL, "bad_tiles", TG_PHASE_BWD, NULL, 0, 0);
	tg_spec_add(&sp, w, TG_W);
	tg_spec_add(&sp, x, TG_R);
	sp.tile = TG_TILE_ROWS;
	sp.whole = 1u << 0;
	REFUSED(tg_submit(&sp), TG_EINVAL, "bad_tiles: tiles follow the rows of operand 0 (tile_on), which is marked whole");
	sp.tile_on = 2;
	REFUSED(tg_submit(&sp), TG_EINVAL, "bad_tiles: tile_on 2 is not an operand (0 to 1)");

	tg_tensor *all[] = {x, y, w, b, v, m, ids, ids2, big, mean, rstd, att, qkv, h, c, g, pre, n2, n3, ao};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		tg_tensor_free(all[i]);
}

int main(void)
{
	tg_test_seed("op harness");
	TG_TEST_INIT("eager", -1, TG_TEST_BACKEND == TG_BACKEND_CUDA ? -1 : 0);
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	if (TG_TEST_BACKEND == TG_BACKEND_CUDA && info.ncuda == 0) {
		printf("SKIP: no CUDA worker on this machine (CUDA kernels %s in this build); %d op rows not run\n",
		       info.cuda_compiled ? "compiled" : "not compiled", tg_test_ncases);
		tg_shutdown();
		return TG_TEST_SKIP;
	}
	enum { NEXTRA = 10 };
	int ntests = tg_test_ncases + NEXTRA;
	struct CMUnitTest *tests = calloc((size_t)ntests, sizeof *tests);
	char (*names)[160] = calloc((size_t)tg_test_ncases, sizeof *names);
	tests[0] = (struct CMUnitTest)cmocka_unit_test(every_op_has_rows);
	tests[tg_test_ncases + 1] = (struct CMUnitTest)cmocka_unit_test(xent_extreme_logits);
	tests[tg_test_ncases + 2] = (struct CMUnitTest)cmocka_unit_test(xent_targets_out_of_range);
	tests[tg_test_ncases + 3] = (struct CMUnitTest)cmocka_unit_test(xent_targets_out_of_range_tiled);
	tests[tg_test_ncases + 4] = (struct CMUnitTest)cmocka_unit_test(tilings_agree);
	tests[tg_test_ncases + 5] = (struct CMUnitTest)cmocka_unit_test(checker_catches_wrong_ops);
	tests[tg_test_ncases + 6] = (struct CMUnitTest)cmocka_unit_test(embedding_ids_out_of_range);
	tests[tg_test_ncases + 7] = (struct CMUnitTest)cmocka_unit_test(bad_input_is_refused);
	tests[tg_test_ncases + 8] = (struct CMUnitTest)cmocka_unit_test(xent_reports_survive_reinit);
	tests[tg_test_ncases + 9] = (struct CMUnitTest)cmocka_unit_test(sum_tree_and_redux);
	for (int i = 0; i < tg_test_ncases; i++) {
		snprintf(names[i], sizeof names[i], "%s %s [%s]", tg_test_cases[i].op, tg_test_cases[i].label, BACKEND_NAME);
		tests[i + 1] = (struct CMUnitTest){names[i], run_case, NULL, NULL, (void *)&tg_test_cases[i]};
	}
	int failed = _cmocka_run_group_tests(TG_TEST_BACKEND == TG_BACKEND_CPU ? "ops-cpu" : "ops-cuda", tests,
	                                     (size_t)ntests, NULL, NULL);
	free(tests);
	free(names);
	if (tg_shutdown() < 0) {
		printf("tg_shutdown: %s\n", tg_last_error());
		failed++;
	}
	if (!failed && unsupported_rows) {
		/* never PASS when some rows could not run here */
		printf("SKIP: %d op rows are NOT SUPPORTED on %s (the others passed)\n", unsupported_rows, BACKEND_NAME);
		return TG_TEST_SKIP;
	}
	return failed ? 1 : 0;
}
