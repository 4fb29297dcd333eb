/*
 * test_determinism.c — accumulation order. The MLP's parameters get one gradient
 * contribution each per step, so it cannot tell an ordered accumulation from a reordered one.
 * Here every parameter gets K contributions per step, from K branches that share it and run
 * independently (all ready at once, so any scheduler is free to reorder them):
 *
 *   for k < K:  z_k = x_k W^T,  h_k = z_k + b,  a_k = relu(h_k),  o_k = a_k V^T,
 *               l_k = softmax_xent(o_k, t_k)
 *   L = l_0 + l_1 + ... + l_{K-1};   SGD on W (H, C), b (H), V (O, H)
 *
 *   - deterministic mode: the losses of every step and the final weights are bit-identical
 *     under many policies and worker counts;
 *   - the check is sensitive: the same run with the branches submitted in the reverse order
 *     (so the contributions are summed in the reverse order) gives different bits, so these
 *     values do depend on the order;
 *   - fast mode (accumulations commute): the runs agree within rounding, whatever order
 *     StarPU chose, and their accumulations are recorded (and submitted) as commuting;
 *   - a weight gradient accumulated in several chains gives the same bits with 1 worker and all
 *     of them, under every policy.
 */
#include "tg_test.h"

#include <math.h>

enum { K = 8, B = 16, C = 12, H = 24, O = 3, STEPS = 6 };

typedef struct result {
	float loss[STEPS];
	float w[H * C], b[H], v[O * H];
	int commuting; /* accumulations recorded as commuting in the last step */
	int accumulations;
} result;

static uint64_t seed;

static void run(result *r, const char *sched, int ncpu, int deterministic, int reverse)
{
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.sched = sched;
	cfg.ncpu = ncpu;
	cfg.ncuda = 0;
	cfg.deterministic = deterministic;
	if (tg_init(&cfg) < 0)
		fail_msg("tg_init(%s, %d CPU): %s", sched, ncpu, tg_last_error());
	memset(r, 0, sizeof *r);
	tg_tensor *w, *b, *v, *x[K], *t[K], *z[K], *h[K], *a[K], *o[K], *l[K], *s[K];
	tg_fill wf = {TG_FILL_UNIFORM, -0.3f, 0.3f, seed, 1}, vf = {TG_FILL_UNIFORM, -0.3f, 0.3f, seed, 2};
	TG_OK_OR_FAIL(tg_tensor_new_filled(&w, "W", TG_F32, TG_SHAPE(H, C), &wf));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&b, "b", TG_F32, TG_SHAPE(H), &(tg_fill){TG_FILL_CONSTANT, 0.01f, 0, 0, 0}));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&v, "V", TG_F32, TG_SHAPE(O, H), &vf));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(w, 1));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(b, 1));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(v, 1));
	for (int k = 0; k < K; k++) {
		int32_t tk[B];
		float u[B];
		TG_OK_OR_FAIL(tg_tensor_new_filled(&x[k], "x", TG_F32, TG_SHAPE(B, C),
		                                   &(tg_fill){TG_FILL_NORMAL, 0, 1, seed, 100 + (uint64_t)k}));
		TG_OK_OR_FAIL(tg_fill_host(u, B, &(tg_fill){TG_FILL_UNIFORM, 0, 1, seed, 200 + (uint64_t)k}));
		for (int i = 0; i < B; i++)
			tk[i] = (int32_t)(u[i] * O) % O;
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&t[k], "t", TG_I32, TG_SHAPE(B), tk, sizeof tk));
		TG_OK_OR_FAIL(tg_tensor_new(&z[k], "z", TG_F32, TG_SHAPE(B, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&h[k], "h", TG_F32, TG_SHAPE(B, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&a[k], "a", TG_F32, TG_SHAPE(B, H)));
		TG_OK_OR_FAIL(tg_tensor_new(&o[k], "o", TG_F32, TG_SHAPE(B, O)));
		TG_OK_OR_FAIL(tg_tensor_new(&l[k], "l", TG_F32, TG_SHAPE(1)));
		TG_OK_OR_FAIL(tg_tensor_new(&s[k], "sum", TG_F32, TG_SHAPE(1)));
	}
	for (int step = 0; step < STEPS; step++) {
		TG_OK_OR_FAIL(tg_graph_reset());
		for (int i = 0; i < K; i++) {
			int k = reverse ? K - 1 - i : i;
			TG_OK_OR_FAIL(tg_matmul(z[k], x[k], w, TG_TRANS_B));
			TG_OK_OR_FAIL(tg_add(h[k], z[k], b));
			TG_OK_OR_FAIL(tg_relu(a[k], h[k]));
			TG_OK_OR_FAIL(tg_matmul(o[k], a[k], v, TG_TRANS_B));
			TG_OK_OR_FAIL(tg_softmax_xent(l[k], o[k], t[k]));
		}
		/* L = l_0 + ... + l_{K-1}, in the order the branches were submitted */
		tg_tensor *total = l[reverse ? K - 1 : 0];
		for (int i = 1; i < K; i++) {
			TG_OK_OR_FAIL(tg_add(s[i], total, l[reverse ? K - 1 - i : i]));
			total = s[i];
		}
		TG_OK_OR_FAIL(tg_backward(total));
		tg_sgd_params p = {0.05f, 0, 0};
		TG_OK_OR_FAIL(tg_sgd(w, NULL, &p));
		TG_OK_OR_FAIL(tg_sgd(b, NULL, &p));
		TG_OK_OR_FAIL(tg_sgd(v, NULL, &p));
		TG_OK_OR_FAIL(tg_tensor_to_host(total, &r->loss[step], sizeof r->loss[step]));
	}
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	for (int i = 0; i < tg_graph_num_nodes(g); i++)
		for (int j = 0; j < tg_graph_num_operands(g, i); j++) {
			tg_graph_operand_info oi;
			TG_OK_OR_FAIL(tg_graph_operand(g, i, j, &oi));
			r->accumulations += oi.mode == TG_ACC;
			r->commuting += oi.commute;
		}
	tg_graph_free(g);
	TG_OK_OR_FAIL(tg_tensor_to_host(w, r->w, sizeof r->w));
	TG_OK_OR_FAIL(tg_tensor_to_host(b, r->b, sizeof r->b));
	TG_OK_OR_FAIL(tg_tensor_to_host(v, r->v, sizeof r->v));
	for (int k = 0; k < K; k++) {
		tg_tensor *ts[] = {x[k], t[k], z[k], h[k], a[k], o[k], l[k], s[k]};
		for (int i = 0; i < 8; i++)
			tg_tensor_free(ts[i]);
	}
	tg_tensor_free(w);
	tg_tensor_free(b);
	tg_tensor_free(v);
	TG_OK_OR_FAIL(tg_shutdown());
	assert_true(isfinite(r->loss[STEPS - 1]) && r->loss[STEPS - 1] < r->loss[0]); /* it learns */
}

static int same_bits(const result *x, const result *y)
{
	return memcmp(x->w, y->w, sizeof x->w) == 0 && memcmp(x->b, y->b, sizeof x->b) == 0 &&
	       memcmp(x->v, y->v, sizeof x->v) == 0;
}

/* The largest difference between two runs' weights, relative to the weights' scale. */
static double weight_distance(const result *x, const result *y)
{
	double worst = 0, scale = 1e-30;
	const float *px[] = {x->w, x->b, x->v}, *py[] = {y->w, y->b, y->v};
	const int n[] = {H * C, H, O * H};
	for (int p = 0; p < 3; p++)
		for (int i = 0; i < n[p]; i++) {
			scale = fmax(scale, fabs(py[p][i]));
			worst = fmax(worst, fabs((double)px[p][i] - py[p][i]));
		}
	return worst / scale;
}

static int max_workers(void)
{
	TG_TEST_INIT("eager", -1, 0);
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	TG_OK_OR_FAIL(tg_shutdown());
	return info.ncpu;
}

static void deterministic_mode_is_bit_identical_and_order_sensitive(void **unused)
{
	(void)unused;
	seed = tg_test_seed("determinism");
	int most = max_workers();
	static const char *const policies[] = {"eager", "lws", "ws", "random", "prio", "dmda", "dmdas", "modular-heft",
	                                       "peager"};
	const int npol = (int)(sizeof policies / sizeof policies[0]);
	result base, r;
	run(&base, "eager", 1, 1, 0);
	assert_true(base.accumulations > 0);
	assert_int_equal(base.commuting, 0);
	for (int p = 0; p < npol; p++)
		for (int ncpu = 1; ncpu <= most; ncpu += most > 1 ? most - 1 : 1) {
			run(&r, policies[p], ncpu, 1, 0);
			for (int s = 0; s < STEPS; s++)
				if (memcmp(&r.loss[s], &base.loss[s], sizeof(float)) != 0)
					fail_msg("%s with %d CPU workers: the loss of step %d is %.9g, %.9g under eager with 1", policies[p],
					         ncpu, s, (double)r.loss[s], (double)base.loss[s]);
			if (!same_bits(&r, &base))
				fail_msg("%s with %d CPU workers: the weights differ from eager with 1 (by %.3g relative)", policies[p],
				         ncpu, weight_distance(&r, &base));
			assert_int_equal(r.commuting, 0);
		}
	/* the comparison above can fail: summed in another order, these gradients differ */
	run(&r, "eager", most, 1, 1);
	double d = weight_distance(&r, &base);
	print_message("reverse order: weights differ by %.3g relative (bits %s)\n", d, same_bits(&r, &base) ? "equal" : "differ");
	if (same_bits(&r, &base))
		fail_msg("summing the contributions in the reverse order gave the same bits: the test cannot see an order "
		         "change (seed %llu)", (unsigned long long)seed);
	assert_true(d < 1e-5);
}

static void fast_mode_commutes_within_rounding(void **unused)
{
	(void)unused;
	seed = tg_test_seed("determinism");
	int most = max_workers();
	result base, r;
	run(&base, "eager", 1, 1, 0);
	static const char *const policies[] = {"eager", "lws", "ws", "random"};
	int differing = 0, runs = 0;
	for (int rep = 0; rep < 3; rep++)
		for (int p = 0; p < 4; p++, runs++) {
			run(&r, policies[p], most, 0, 0);
			/* the accumulations are submitted as commuting: StarPU may reorder them */
			assert_true(r.accumulations > 0);
			assert_int_equal(r.commuting, r.accumulations);
			double d = weight_distance(&r, &base);
			if (!(d < 1e-5))
				fail_msg("fast mode under %s: weights differ by %.3g relative from the deterministic run", policies[p], d);
			differing += !same_bits(&r, &base);
		}
	print_message("fast mode: %d of %d runs differ in some bit from the deterministic run (all within rounding)\n",
	              differing, runs);
}

/* A weight gradient dW = X^T dY summed over T token tiles runs in R accumulation chains, each
 * on a row tile of dW (ops/matmul.c): R follows the shapes and the tiling, never the workers
 * or the policy, so with a fixed tiling 1 worker and all of them give the same bits. */
static void chained_weight_gradient(const char *sched, int ncpu, float *dw, int *tasks)
{
	enum { ROWS = 64, IN = 260, OUT = 40 };
	TG_TEST_INIT(sched, ncpu, 0);
	TG_OK_OR_FAIL(tg_set_tiling(8, 0)); /* 8 token tiles */
	tg_tensor *x, *dy, *w;
	TG_OK_OR_FAIL(tg_tensor_new_filled(&x, "x", TG_F32, TG_SHAPE(ROWS, IN), &(tg_fill){TG_FILL_NORMAL, 0, 1, seed, 1}));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&dy, "dy", TG_F32, TG_SHAPE(ROWS, OUT), &(tg_fill){TG_FILL_NORMAL, 0, 1, seed, 2}));
	TG_OK_OR_FAIL(tg_tensor_new(&w, "dw", TG_F32, TG_SHAPE(IN, OUT)));
	TG_OK_OR_FAIL(tg_matmul(w, x, dy, TG_TRANS_A));
	TG_OK_OR_FAIL(tg_tensor_to_host(w, dw, sizeof(float) * IN * OUT));
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	*tasks = 0;
	for (int i = 0; i < tg_graph_num_nodes(g); i++) {
		tg_graph_node_info info;
		TG_OK_OR_FAIL(tg_graph_node(g, i, &info));
		*tasks += !strcmp(info.op, "matmul") && info.op_id >= 0;
	}
	tg_graph_free(g);
	tg_tensor_free(x);
	tg_tensor_free(dy);
	tg_tensor_free(w);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void weight_gradient_chains(void **unused)
{
	(void)unused;
	seed = tg_test_seed("determinism");
	int most = max_workers();
	if (most < 2) {
		print_message("one CPU worker: nothing to compare it with\n");
		skip();
	}
	enum { N = 260 * 40 };
	static float one[N], r[N];
	int tasks;
	chained_weight_gradient("eager", 1, one, &tasks);
	assert_int_equal(tasks, 16); /* 2 chains (260 rows of dW, at least 128 each) of 8 tiles */
	static const char *const policies[] = {"eager", "lws", "dmda"};
	for (int p = 0; p < 3; p++) {
		chained_weight_gradient(policies[p], most, r, &tasks);
		assert_int_equal(tasks, 16);
		if (memcmp(one, r, sizeof one) != 0)
			fail_msg("%s with %d CPU workers: dW differs in bits from eager with 1", policies[p], most);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deterministic_mode_is_bit_identical_and_order_sensitive),
		cmocka_unit_test(fast_mode_commutes_within_rounding),
		cmocka_unit_test(weight_gradient_chains),
	};
	return cmocka_run_group_tests_name("determinism", tests, NULL, NULL);
}
