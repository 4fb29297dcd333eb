/*
 * test_models.c — the GPT and the LSTM against an independent double-precision implementation
 * (tests/ref_models.c, written separately from the ops): one step on fresh random weights and
 * tokens, the loss and every parameter's gradient, with one tile per op and with many; and
 * the parameter table (names, shapes, one flat buffer per family).
 */
#include "tg_test.h"

#include <math.h>
#include <sys/stat.h>

#include "ref_models.h"

/* sqrt(sum (a - b)^2 / sum b^2) */
static double rel_l2(const float *a, const double *b, int64_t n)
{
	double num = 0, den = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];
		num += d * d;
		den += b[i] * b[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct lm_case {
	const char *arch;
	int V, C, L, H, T, B;
	int64_t tile_rows; /* 0: automatic */
} lm_case;

/* Our step and the reference's on the same weights and batch; returns the worst error. */
static void compare(const lm_case *k, uint64_t seed)
{
	TG_TEST_INIT("lws", -1, 0);
	if (k->tile_rows)
		TG_OK_OR_FAIL(tg_set_tiling(k->tile_rows, 64));
	tg_model_config mc;
	TG_OK_OR_FAIL(tg_model_config_default(&mc, k->arch));
	mc.vocab = k->V;
	mc.dmodel = k->C;
	mc.layers = k->L;
	mc.heads = k->H;
	mc.ctx = k->T;
	mc.seed = seed;
	tg_model *m;
	TG_OK_OR_FAIL(tg_model_new(&m, &mc));
	int gpt = !strcmp(k->arch, "gpt");
	ref_gpt_cfg gc = {k->V, k->C, k->L, k->H, k->T};
	ref_lstm_cfg lc = {k->V, k->C, k->L};
	int np = gpt ? ref_gpt_num_params(&gc) : ref_lstm_num_params(&lc);
	assert_int_equal(tg_model_num_params(m), np);
	double **p = calloc((size_t)np, sizeof *p), **g = calloc((size_t)np, sizeof *g);
	float **ours = calloc((size_t)np, sizeof *ours);
	assert_true(p && g && ours);
	/* random weights of a useful size (GPT-2's own are too small to exercise much) */
	for (int i = 0; i < np; i++) {
		int rank;
		int64_t shape[2];
		char name[128];
		if (gpt) {
			ref_gpt_param_shape(&gc, i, &rank, shape);
			ref_gpt_param_name(&gc, i, name, sizeof name);
		} else {
			ref_lstm_param_shape(&lc, i, &rank, shape);
			ref_lstm_param_name(&lc, i, name, sizeof name);
		}
		tg_tensor *t = tg_model_param(m, i);
		if (strcmp(tg_tensor_name(t), name) != 0)
			fail_msg("parameter %d is '%s', the reference's '%s'", i, tg_tensor_name(t), name);
		assert_int_equal(tg_tensor_rank(t), rank);
		int64_t n = 1;
		for (int d = 0; d < rank; d++) {
			assert_int_equal(tg_tensor_dim(t, d), shape[d]);
			n *= shape[d];
		}
		float *v = malloc((size_t)n * sizeof *v);
		ours[i] = malloc((size_t)n * sizeof *ours[i]);
		p[i] = malloc((size_t)n * sizeof *p[i]);
		g[i] = malloc((size_t)n * sizeof *g[i]);
		assert_true(v && ours[i] && p[i] && g[i]);
		TG_OK_OR_FAIL(tg_fill_host(v, n, &(tg_fill){TG_FILL_NORMAL, 0, 0.3f, seed, 1000 + (uint64_t)i}));
		if (strstr(name, "ln_") && strstr(name, ".weight"))
			for (int64_t j = 0; j < n; j++)
				v[j] += 1.0f; /* layer-norm gains around 1 */
		TG_OK_OR_FAIL(tg_tensor_from_host(t, v, (size_t)n * sizeof *v));
		for (int64_t j = 0; j < n; j++)
			p[i][j] = v[j];
		free(v);
	}
	/* the batch, (B, T) sample-major; the LSTM takes it time-major */
	int B = k->B, T = k->T;
	int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
	int32_t *in_m = malloc((size_t)B * T * sizeof *in), *tg_m = malloc((size_t)B * T * sizeof *tg);
	float *u = malloc((size_t)2 * B * T * sizeof *u);
	assert_true(in && tg && in_m && tg_m && u);
	TG_OK_OR_FAIL(tg_fill_host(u, 2 * B * T, &(tg_fill){TG_FILL_UNIFORM, 0, 1, seed, 7}));
	for (int i = 0; i < B * T; i++) {
		in[i] = (int32_t)(u[i] * k->V) % k->V;
		tg[i] = (int32_t)(u[B * T + i] * k->V) % k->V;
	}
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int src = b * T + t, dst = tg_model_time_major(m) ? t * B + b : src;
			in_m[dst] = in[src];
			tg_m[dst] = tg[src];
		}
	double ref = gpt ? ref_gpt_step(&gc, (const double *const *)p, g, in, tg, B, T)
	                 : ref_lstm_step(&lc, (const double *const *)p, g, in, tg, B, T);
	tg_tensor *x, *y, *logits, *loss;
	if (tg_model_time_major(m))
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&x, "x", TG_I32, TG_SHAPE(T, B), in_m, (size_t)B * T * 4));
	else
		TG_OK_OR_FAIL(tg_tensor_new_from_host(&x, "x", TG_I32, TG_SHAPE(B, T), in_m, (size_t)B * T * 4));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&y, "y", TG_I32, TG_SHAPE(B * T), tg_m, (size_t)B * T * 4));
	TG_OK_OR_FAIL(tg_tensor_new(&logits, "logits", TG_F32, TG_SHAPE(B * T, k->V)));
	TG_OK_OR_FAIL(tg_tensor_new(&loss, "loss", TG_F32, TG_SHAPE(1)));
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_model_forward(m, logits, x));
	TG_OK_OR_FAIL(tg_softmax_xent(loss, logits, y));
	TG_OK_OR_FAIL(tg_backward(loss));
	float l;
	TG_OK_OR_FAIL(tg_tensor_to_host(loss, &l, sizeof l));
	double el = fabs((double)l - ref) / fabs(ref);
	print_message("%s (V %d, C %d, L %d, T %d, B %d, tile rows %lld): loss %.7f, reference %.7f, error %.2e\n",
	              k->arch, k->V, k->C, k->L, k->T, k->B, (long long)k->tile_rows, (double)l, ref, el);
	if (el > 1e-6)
		fail_msg("loss %.9g, reference %.9g: normalised error %.3g > 1e-6", (double)l, ref, el);
	double worst = 0;
	const char *worst_name = "";
	for (int i = 0; i < np; i++) {
		tg_tensor *t = tg_model_param(m, i);
		assert_true(tg_tensor_grad_valid(t));
		TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(t), ours[i], tg_tensor_nbytes(t)));
		double e = rel_l2(ours[i], g[i], tg_tensor_numel(t));
		if (!(e <= 1e-5))
			fail_msg("gradient of '%s': normalised error %.3g > 1e-5", tg_tensor_name(t), e);
		if (e > worst) {
			worst = e;
			worst_name = tg_tensor_name(t);
		}
	}
	print_message("  worst gradient error %.2e (%s)\n", worst, worst_name);
	for (int i = 0; i < np; i++) {
		free(p[i]);
		free(g[i]);
		free(ours[i]);
	}
	free(p);
	free(g);
	free(ours);
	free(in);
	free(tg);
	free(in_m);
	free(tg_m);
	free(u);
	tg_tensor_free(x);
	tg_tensor_free(y);
	tg_tensor_free(logits);
	tg_tensor_free(loss);
	tg_model_free(m);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void gpt_matches_reference(void **unused)
{
	(void)unused;
	uint64_t seed = tg_test_seed("models");
	compare(&(lm_case){"gpt", 29, 16, 2, 2, 7, 3, 0}, seed);
	compare(&(lm_case){"gpt", 29, 16, 2, 2, 7, 3, 4}, seed + 1); /* many tiles per op */
	compare(&(lm_case){"gpt", 41, 24, 1, 3, 9, 2, 5}, seed + 2);
}

static void lstm_matches_reference(void **unused)
{
	(void)unused;
	uint64_t seed = tg_test_seed("models");
	compare(&(lm_case){"lstm", 23, 12, 2, 0, 6, 5, 0}, seed);
	compare(&(lm_case){"lstm", 23, 12, 2, 0, 6, 5, 2}, seed + 1); /* many tiles per op */
	compare(&(lm_case){"lstm", 17, 9, 1, 0, 4, 3, 0}, seed + 2);
}

/* The table: GPT-2's and nn.LSTM's names, one flat buffer per family, parts packed in order. */
static void parameter_tables(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_model_config c;
	TG_OK_OR_FAIL(tg_model_config_default(&c, "gpt"));
	c.layers = 3;
	c.dmodel = 8;
	c.heads = 2;
	c.ctx = 5;
	tg_model *m;
	TG_OK_OR_FAIL(tg_model_new(&m, &c));
	assert_int_equal(tg_model_num_params(m), 2 + 12 * 3 + 2);
	assert_string_equal(tg_tensor_name(tg_model_param(m, 0)), "transformer.wte.weight");
	int i = tg_model_find_param(m, "transformer.h.2.attn.c_attn.weight");
	assert_true(i > 0);
	assert_int_equal(tg_tensor_dim(tg_model_param(m, i), 0), 8);
	assert_int_equal(tg_tensor_dim(tg_model_param(m, i), 1), 24);
	assert_string_equal(tg_tensor_layer(tg_model_param(m, i)), "h.2");
	int64_t n = 0;
	for (int k = 0; k < tg_model_num_params(m); k++) {
		tg_tensor *p = tg_model_param(m, k);
		n += tg_tensor_numel(p);
		assert_non_null(tg_tensor_parent(p)); /* a part of the flat buffer */
		assert_ptr_equal(tg_tensor_parent(p), tg_tensor_parent(tg_model_param(m, 0)));
		assert_ptr_equal(tg_tensor_parent(tg_tensor_grad(p)), tg_tensor_parent(tg_tensor_grad(tg_model_param(m, 0))));
	}
	assert_int_equal(n, tg_model_num_weights(m));
	assert_int_equal(tg_model_find_param(m, "lm_head.weight"), -1);
	/* the same seed gives the same weights; another seed others */
	tg_model *m2, *m3;
	TG_OK_OR_FAIL(tg_model_new(&m2, &c));
	c.seed = 2;
	TG_OK_OR_FAIL(tg_model_new(&m3, &c));
	tg_tensor *w1 = tg_model_param(m, 2), *w2, *w3;
	assert_int_equal(tg_tensor_numel(w1), 8); /* ln_1.weight (C) */
	w1 = tg_model_param(m, 4); /* attn.c_attn.weight (8, 24), normal */
	w2 = tg_model_param(m2, 4);
	w3 = tg_model_param(m3, 4);
	float *fa = malloc(tg_tensor_nbytes(w1)), *fb = malloc(tg_tensor_nbytes(w1)), *fc = malloc(tg_tensor_nbytes(w1));
	TG_OK_OR_FAIL(tg_tensor_to_host(w1, fa, tg_tensor_nbytes(w1)));
	TG_OK_OR_FAIL(tg_tensor_to_host(w2, fb, tg_tensor_nbytes(w1)));
	TG_OK_OR_FAIL(tg_tensor_to_host(w3, fc, tg_tensor_nbytes(w1)));
	assert_memory_equal(fa, fb, tg_tensor_nbytes(w1));
	assert_memory_not_equal(fa, fc, tg_tensor_nbytes(w1));
	free(fa);
	free(fb);
	free(fc);
	tg_model_free(m);
	tg_model_free(m2);
	tg_model_free(m3);
	/* the LSTM: nn.LSTM's names */
	TG_OK_OR_FAIL(tg_model_config_default(&c, "lstm"));
	c.dmodel = 8;
	c.ctx = 4;
	TG_OK_OR_FAIL(tg_model_new(&m, &c));
	assert_string_equal(tg_tensor_name(tg_model_param(m, 1)), "lstm.weight_ih_l0");
	assert_string_equal(tg_tensor_name(tg_model_param(m, 6)), "lstm.weight_hh_l1");
	assert_string_equal(tg_tensor_name(tg_model_param(m, tg_model_num_params(m) - 1)), "head.bias");
	assert_true(tg_model_time_major(m));
	tg_model_free(m);
	/* bad configurations */
	TG_OK_OR_FAIL(tg_model_config_default(&c, "gpt"));
	c.heads = 3;
	assert_int_equal(tg_model_new(&m, &c), TG_EINVAL);
	assert_non_null(strstr(tg_last_error(), "heads (3) must divide dmodel (128)"));
	assert_int_equal(tg_model_config_default(&c, "rnn"), TG_EINVAL);
	assert_non_null(strstr(tg_last_error(), "unknown model 'rnn'"));
	TG_OK_OR_FAIL(tg_shutdown());
}

/* A dataset of our own (the interface users implement): random tokens from a seed. */
typedef struct rnd_data {
	int V, T;
	uint64_t seed;
} rnd_data;

static int rnd_batch(tg_dataset *d, int split, uint64_t index, int B, void *inputs, int32_t *targets)
{
	rnd_data *r = d->impl;
	float *u = malloc((size_t)2 * B * r->T * sizeof *u);
	assert_non_null(u);
	int rc = tg_fill_host(u, 2 * B * r->T, &(tg_fill){TG_FILL_UNIFORM, 0, 1, r->seed, index * 2 + (uint64_t)split});
	for (int i = 0; rc == 0 && i < B * r->T; i++) {
		((int32_t *)inputs)[i] = (int32_t)(u[i] * r->V) % r->V;
		targets[i] = (int32_t)(u[B * r->T + i] * r->V) % r->V;
	}
	free(u);
	return rc;
}

/* --dump-grads: the file holds every gradient, the batch (B, T) sample-major and the loss, and
 * they agree with the reference run on the same weights and batch. */
static void dumped_gradients_match_reference(void **unused)
{
	(void)unused;
	uint64_t seed = tg_test_seed("models");
	const char *archs[] = {"gpt", "lstm"};
	char path[4200];
	const char *build = getenv("TG_BUILDDIR");
	snprintf(path, sizeof path, "%s/tests/models-tmp", build ? build : ".");
	mkdir(path, 0777);
	snprintf(path + strlen(path), sizeof path - strlen(path), "/grads.safetensors");
	for (int a = 0; a < 2; a++) {
		TG_TEST_INIT("dmda", -1, 0);
		tg_model_config mc;
		TG_OK_OR_FAIL(tg_model_config_default(&mc, archs[a]));
		mc.vocab = 19;
		mc.dmodel = 8;
		mc.layers = 2;
		mc.heads = 2;
		mc.ctx = 6;
		mc.seed = seed;
		tg_model *m;
		TG_OK_OR_FAIL(tg_model_new(&m, &mc));
		rnd_data rd = {19, 6, seed};
		tg_dataset d = {"random", TG_I32, 6, 6, 19, {0, 0}, rnd_batch, NULL, &rd};
		tg_train_config tc;
		tg_train_config_default(&tc);
		tc.batch = 3;
		tc.eval_every = 0;
		tg_trainer *tr;
		TG_OK_OR_FAIL(tg_trainer_new(&tr, m, &d, &tc));
		float loss;
		TG_OK_OR_FAIL(tg_trainer_dump_grads(tr, path, &loss));
		tg_st_file *f;
		TG_OK_OR_FAIL(tg_st_open(&f, path));
		int np = tg_model_num_params(m);
		assert_int_equal(tg_st_num_tensors(f), np + 2);
		const char *ls = tg_st_metadata(f, "loss");
		assert_non_null(ls);
		assert_true(strtof(ls, NULL) == loss);
		int32_t in[18], tg[18];
		int64_t bt[2] = {3, 6};
		tg_st_info info;
		TG_OK_OR_FAIL(tg_st_tensor_info(f, tg_st_find(f, "batch.inputs"), &info));
		assert_string_equal(info.dtype, "I32");
		assert_int_equal(info.rank, 2);
		assert_memory_equal(info.shape, bt, sizeof bt);
		memcpy(in, tg_st_tensor_data(f, tg_st_find(f, "batch.inputs")), sizeof in);
		memcpy(tg, tg_st_tensor_data(f, tg_st_find(f, "batch.targets")), sizeof tg);
		int32_t want_in[18], want_tg[18];
		TG_OK_OR_FAIL(rnd_batch(&d, TG_SPLIT_TRAIN, 0, 3, want_in, want_tg));
		assert_memory_equal(in, want_in, sizeof in);
		assert_memory_equal(tg, want_tg, sizeof tg);
		/* the reference on the model's weights and the dumped batch */
		double **p = calloc((size_t)np, sizeof *p), **g = calloc((size_t)np, sizeof *g);
		assert_true(p && g);
		for (int i = 0; i < np; i++) {
			tg_tensor *t = tg_model_param(m, i);
			int64_t n = tg_tensor_numel(t);
			float *v = malloc((size_t)n * sizeof *v), *dv = malloc((size_t)n * sizeof *dv);
			p[i] = malloc((size_t)n * sizeof *p[i]);
			g[i] = malloc((size_t)n * sizeof *g[i]);
			assert_true(v && dv && p[i] && g[i]);
			TG_OK_OR_FAIL(tg_tensor_to_host(t, v, (size_t)n * sizeof *v));
			for (int64_t j = 0; j < n; j++)
				p[i][j] = v[j];
			free(v);
			free(dv);
		}
		ref_gpt_cfg gc = {19, 8, 2, 2, 6};
		ref_lstm_cfg lc = {19, 8, 2};
		double ref = a == 0 ? ref_gpt_step(&gc, (const double *const *)p, g, in, tg, 3, 6)
		                    : ref_lstm_step(&lc, (const double *const *)p, g, in, tg, 3, 6);
		if (fabs(loss - ref) / ref > 1e-6)
			fail_msg("%s: dumped loss %.9g, reference %.9g", archs[a], (double)loss, ref);
		for (int i = 0; i < np; i++) {
			tg_tensor *t = tg_model_param(m, i);
			int64_t n = tg_tensor_numel(t);
			float *dv = malloc((size_t)n * sizeof *dv);
			assert_non_null(dv);
			TG_OK_OR_FAIL(tg_st_read_f32(f, tg_tensor_name(t), tg_tensor_rank(t), tg_tensor_shape(t), dv));
			double e = rel_l2(dv, g[i], n);
			if (!(e <= 1e-5))
				fail_msg("%s: dumped gradient of '%s': normalised error %.3g", archs[a], tg_tensor_name(t), e);
			free(dv);
			free(p[i]);
			free(g[i]);
		}
		free(p);
		free(g);
		tg_st_close(f);
		tg_trainer_free(tr);
		tg_model_free(m);
		TG_OK_OR_FAIL(tg_shutdown());
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(parameter_tables, tg_test_teardown),
		cmocka_unit_test_teardown(gpt_matches_reference, tg_test_teardown),
		cmocka_unit_test_teardown(lstm_matches_reference, tg_test_teardown),
		cmocka_unit_test_teardown(dumped_gradients_match_reference, tg_test_teardown),
	};
	return cmocka_run_group_tests_name("models", tests, NULL, NULL);
}
