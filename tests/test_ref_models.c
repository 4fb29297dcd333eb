/*
 * test_ref_models.c — checks the double-precision reference models (ref_models.c) by
 * themselves, with no library: the gradient of every parameter tensor against central finite
 * differences of the loss (fourth order) at random parameters, for tiny GPT-2 and LSTM
 * configurations of odd sizes; the causal structure of both models (a token changed at
 * position t leaves the logits and losses of the positions before t, and of the other
 * sequences, bit-identical); the loss at all-zero parameters (log V); gradients that overwrite
 * their buffers; the parameter names and shapes; and the refusal of bad input. Prints a PASS
 * or FAIL line per check and a closing count; exits 0 when all pass, 1 otherwise.
 */
#include "ref_models.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, passes;

static void report(int ok, const char *what, const char *detail)
{
	printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what, detail && *detail ? " — " : "", detail ? detail : "");
	if (ok)
		passes++;
	else
		failures++;
}

/* ------------------------------------------------------------------ random numbers (splitmix64) */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double rng_uniform(void)
{
	return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static int rng_int(int n)
{
	return (int)(rng_next() % (uint64_t)n);
}

/* ------------------------------------------------------------------ the two models behind one interface */

typedef struct model {
	const char *name;
	int kind; /* 0 GPT-2, 1 LSTM */
	ref_gpt_cfg gpt;
	ref_lstm_cfg lstm;
	int B, T;
	int n;          /* number of parameter tensors */
	size_t *size;   /* (n) elements of each */
	double **p;     /* (n) the parameters */
	double **g;     /* (n) their gradients */
	int32_t *in;    /* (B, T) */
	int32_t *tg;    /* (B, T) */
} model;

static int model_V(const model *m)
{
	return m->kind == 0 ? m->gpt.V : m->lstm.V;
}

static void model_shape(const model *m, int i, int *rank, int64_t shape[2])
{
	if (m->kind == 0)
		ref_gpt_param_shape(&m->gpt, i, rank, shape);
	else
		ref_lstm_param_shape(&m->lstm, i, rank, shape);
}

static const char *model_param_name(const model *m, int i, char *buf, size_t size)
{
	return m->kind == 0 ? ref_gpt_param_name(&m->gpt, i, buf, size) : ref_lstm_param_name(&m->lstm, i, buf, size);
}

/* the loss, and the gradients into m->g when grads */
static double model_step(const model *m, int grads)
{
	const double *const *p = (const double *const *)m->p;
	double *const *g = grads ? m->g : NULL;
	if (m->kind == 0)
		return ref_gpt_step(&m->gpt, p, g, m->in, m->tg, m->B, m->T);
	return ref_lstm_step(&m->lstm, p, g, m->in, m->tg, m->B, m->T);
}

static double model_forward(const model *m, const int32_t *in, double *logits, double *losses)
{
	const double *const *p = (const double *const *)m->p;
	if (m->kind == 0)
		return ref_gpt_forward(&m->gpt, p, in, m->tg, m->B, m->T, logits, losses);
	return ref_lstm_forward(&m->lstm, p, in, m->tg, m->B, m->T, logits, losses);
}

/* 1 for a layer norm's weight: initialised around 1 */
static int is_ln_weight(const model *m, int i)
{
	char name[96];
	model_param_name(m, i, name, sizeof name);
	return strstr(name, "ln_") && strstr(name, ".weight");
}

/* allocates the parameters and random tokens; parameters uniform in [-0.5, 0.5), layer norm
 * weights in [0.7, 1.3), or all zero when zero_params */
static void model_init(model *m, int zero_params)
{
	m->n = m->kind == 0 ? ref_gpt_num_params(&m->gpt) : ref_lstm_num_params(&m->lstm);
	m->size = calloc((size_t)m->n, sizeof *m->size);
	m->p = calloc((size_t)m->n, sizeof *m->p);
	m->g = calloc((size_t)m->n, sizeof *m->g);
	if (!m->size || !m->p || !m->g)
		abort();
	for (int i = 0; i < m->n; i++) {
		int rank;
		int64_t shape[2];
		model_shape(m, i, &rank, shape);
		m->size[i] = (size_t)shape[0] * (size_t)(rank == 2 ? shape[1] : 1);
		m->p[i] = calloc(m->size[i], sizeof(double));
		m->g[i] = calloc(m->size[i], sizeof(double));
		if (!m->p[i] || !m->g[i])
			abort();
		for (size_t j = 0; j < m->size[i] && !zero_params; j++)
			m->p[i][j] = is_ln_weight(m, i) ? 0.7 + 0.6 * rng_uniform() : rng_uniform() - 0.5;
	}
	size_t N = (size_t)m->B * m->T;
	m->in = calloc(N, sizeof *m->in);
	m->tg = calloc(N, sizeof *m->tg);
	if (!m->in || !m->tg)
		abort();
	for (size_t j = 0; j < N; j++) {
		m->in[j] = rng_int(model_V(m));
		m->tg[j] = rng_int(model_V(m));
	}
}

static void model_free(model *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->p[i]);
		free(m->g[i]);
	}
	free(m->size);
	free(m->p);
	free(m->g);
	free(m->in);
	free(m->tg);
}

static model gpt_model(int V, int C, int L, int H, int P, int T, int B)
{
	model m = {0};
	m.name = "GPT-2";
	m.kind = 0;
	m.gpt = (ref_gpt_cfg){.V = V, .C = C, .L = L, .H = H, .P = P};
	m.B = B, m.T = T;
	return m;
}

static model lstm_model(int V, int C, int L, int T, int B)
{
	model m = {0};
	m.name = "LSTM";
	m.kind = 1;
	m.lstm = (ref_lstm_cfg){.V = V, .C = C, .L = L};
	m.B = B, m.T = T;
	return m;
}

/* ------------------------------------------------------------------ the checks */

enum { SAMPLES = 20 };
#define MAX_REL_ERR 1e-6
#define ERR_FLOOR 1e-5 /* below it, the error is measured against it: absolute 1e-11 */

/*
 * The derivative of the loss in one parameter element by the fourth-order central difference
 * (8 (L(p+h) - L(p-h)) - (L(p+2h) - L(p-2h))) / 12h, h = step max(1, |p|). Its rounding error
 * is near eps |L| / h, its truncation error grows as h^4 times the fifth derivative.
 */
static double finite_difference(model *m, int i, size_t j, double step)
{
	const double orig = m->p[i][j], h = step * fmax(1.0, fabs(orig));
	double l[4];
	const double offsets[4] = {2.0, 1.0, -1.0, -2.0};
	for (int k = 0; k < 4; k++) {
		m->p[i][j] = orig + offsets[k] * h;
		l[k] = model_step(m, 0);
	}
	m->p[i][j] = orig;
	return (8.0 * (l[1] - l[2]) - (l[0] - l[3])) / (12.0 * h);
}

static double rel_err(double a, double f)
{
	return fabs(a - f) / fmax(fmax(fabs(a), fabs(f)), ERR_FLOOR);
}

/*
 * Every parameter tensor: SAMPLES distinct random elements (all of them in a smaller tensor),
 * the analytic gradient a against the finite difference f; the relative error
 * |a - f| / max(|a|, |f|, ERR_FLOOR) below MAX_REL_ERR. (Some gradients are exactly zero, such
 * as those of the key biases: softmax ignores a shift common to all scores; the differences'
 * rounding noise near 1e-12 needs the floor.) f is taken at two steps, h = 1e-3 (rounding error
 * near 1e-13) and h = 1e-4 (for the points where the loss curves sharply, a layer norm of a
 * row of small variance), and the closer one counts: a wrong gradient is far from both. The
 * NMSE sum (a - f)^2 / sum f^2 over the samples is printed too.
 */
static void check_gradients(model *m)
{
	char what[160], detail[160], name[96];
	double loss = model_step(m, 1);
	printf("%s: loss %.12f at random parameters, %d tensors\n", m->name, loss, m->n);
	double worst_all = 0.0;
	for (int i = 0; i < m->n; i++) {
		model_param_name(m, i, name, sizeof name);
		/* the first count elements of a random permutation of the indices */
		size_t *idx = malloc(m->size[i] * sizeof *idx);
		if (!idx)
			abort();
		for (size_t j = 0; j < m->size[i]; j++)
			idx[j] = j;
		size_t count = m->size[i] < SAMPLES ? m->size[i] : SAMPLES;
		for (size_t s = 0; s < count; s++) {
			size_t r = s + (size_t)(rng_next() % (m->size[i] - s));
			size_t tmp = idx[s];
			idx[s] = idx[r];
			idx[r] = tmp;
		}
		double worst = 0.0, num = 0.0, den = 0.0;
		for (size_t s = 0; s < count; s++) {
			size_t j = idx[s];
			double a = m->g[i][j];
			double fd = finite_difference(m, i, j, 1e-3), fd_small = finite_difference(m, i, j, 1e-4);
			if (rel_err(a, fd_small) < rel_err(a, fd))
				fd = fd_small;
			double err = rel_err(a, fd);
			if (!(err <= worst)) /* NaN counts as the worst */
				worst = err;
			num += (a - fd) * (a - fd);
			den += fd * fd;
		}
		free(idx);
		snprintf(what, sizeof what, "%s gradient of %s (%zu elements)", m->name, name, m->size[i]);
		snprintf(detail, sizeof detail, "max relative error %.2e over %zu samples, NMSE %.2e", worst, count,
		         den > 0 ? num / den : num);
		report(worst < MAX_REL_ERR, what, detail);
		if (!(worst <= worst_all))
			worst_all = worst;
	}
	printf("%s: worst relative error over all tensors %.2e\n", m->name, worst_all);
}

/* the gradients overwrite whatever the buffers held, and the step's loss is the forward's mean */
static void check_overwrite_and_mean(model *m)
{
	char what[160], detail[160];
	double l1 = model_step(m, 1);
	double **saved = calloc((size_t)m->n, sizeof *saved);
	if (!saved)
		abort();
	for (int i = 0; i < m->n; i++) {
		saved[i] = malloc(m->size[i] * sizeof(double));
		if (!saved[i])
			abort();
		memcpy(saved[i], m->g[i], m->size[i] * sizeof(double));
		for (size_t j = 0; j < m->size[i]; j++)
			m->g[i][j] = 1e3 + (double)j;
	}
	double l2 = model_step(m, 1);
	int same = l1 == l2;
	for (int i = 0; i < m->n; i++) {
		same = same && memcmp(saved[i], m->g[i], m->size[i] * sizeof(double)) == 0;
		free(saved[i]);
	}
	free(saved);
	snprintf(what, sizeof what, "%s gradients overwrite the buffers (bit-identical over garbage)", m->name);
	report(same, what, NULL);

	size_t N = (size_t)m->B * m->T;
	double *losses = calloc(N, sizeof *losses);
	if (!losses)
		abort();
	double lf = model_forward(m, m->in, NULL, losses);
	double mean = 0.0;
	for (size_t n = 0; n < N; n++)
		mean += losses[n];
	mean /= (double)N;
	snprintf(what, sizeof what, "%s step loss = forward loss = mean of the per-position losses", m->name);
	snprintf(detail, sizeof detail, "%.15f %.15f %.15f", l1, lf, mean);
	report(l1 == lf && fabs(mean - l1) <= 1e-14 * fabs(l1), what, detail);
	free(losses);
}

/*
 * Causality: a token changed at position t0 of sequence 1 leaves the logits and losses of its
 * positions < t0 and the whole of sequence 0 bit-identical, and changes the logits at t0 and
 * at the last position (so attention / the recurrence does carry information forward).
 */
static void check_causal(model *m, int t0)
{
	char what[160], detail[200];
	const int B = m->B, T = m->T, V = model_V(m);
	const size_t N = (size_t)B * T;
	double *la = calloc(N * V, sizeof *la), *lb = calloc(N * V, sizeof *lb);
	double *xa = calloc(N, sizeof *xa), *xb = calloc(N, sizeof *xb);
	int32_t *in2 = malloc(N * sizeof *in2);
	if (!la || !lb || !xa || !xb || !in2)
		abort();
	memcpy(in2, m->in, N * sizeof *in2);
	const int b = 1;
	in2[b * T + t0] = (m->in[b * T + t0] + 1) % V;
	model_forward(m, m->in, la, xa);
	model_forward(m, in2, lb, xb);
	int before_same = 1, other_same = 1;
	for (int bb = 0; bb < B; bb++)
		for (int t = 0; t < T; t++) {
			size_t n = (size_t)bb * T + t;
			int same = memcmp(la + n * V, lb + n * V, (size_t)V * sizeof *la) == 0 && xa[n] == xb[n];
			if (bb != b)
				other_same = other_same && same;
			else if (t < t0)
				before_same = before_same && same;
		}
	size_t at = (size_t)b * T + t0, last = (size_t)b * T + T - 1;
	int at_changed = memcmp(la + at * V, lb + at * V, (size_t)V * sizeof *la) != 0;
	int last_changed = memcmp(la + last * V, lb + last * V, (size_t)V * sizeof *la) != 0;
	snprintf(what, sizeof what, "%s causal: token changed at t = %d of sequence %d", m->name, t0, b);
	snprintf(detail, sizeof detail, "positions < t unchanged: %s, other sequences unchanged: %s, t changed: %s, "
	         "t = %d changed: %s", before_same ? "yes" : "NO", other_same ? "yes" : "NO",
	         at_changed ? "yes" : "NO", T - 1, last_changed ? "yes" : "NO");
	report(before_same && other_same && at_changed && last_changed, what, detail);
	free(la);
	free(lb);
	free(xa);
	free(xb);
	free(in2);
}

/* all-zero parameters give uniform logits: loss log V */
static void check_zero_params(model *m)
{
	char what[160], detail[160];
	double loss = model_step(m, 1);
	snprintf(what, sizeof what, "%s loss at zero parameters is log V", m->name);
	snprintf(detail, sizeof detail, "%.15f vs %.15f", loss, log((double)model_V(m)));
	report(fabs(loss - log((double)model_V(m))) < 1e-12, what, detail);
}

static void check_names_and_shapes(void)
{
	char buf[96], detail[200];
	const ref_gpt_cfg g = {.V = 11, .C = 8, .L = 2, .H = 2, .P = 7};
	const ref_lstm_cfg l = {.V = 9, .C = 6, .L = 2};
	int rank, ok;
	int64_t shape[2];

	/* GPT-2: the count, a few names, and the total size against the formula */
	ok = ref_gpt_num_params(&g) == 28;
	ok = ok && strcmp(ref_gpt_param_name(&g, 0, buf, sizeof buf), "transformer.wte.weight") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g, 1, buf, sizeof buf), "transformer.wpe.weight") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g, 2, buf, sizeof buf), "transformer.h.0.ln_1.weight") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g, 2 + 12 + 8, buf, sizeof buf), "transformer.h.1.mlp.c_fc.weight") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g, 2 + 4, buf, sizeof buf), "transformer.h.0.attn.c_proj.weight") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g, 26, buf, sizeof buf), "transformer.ln_f.weight") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g, 27, buf, sizeof buf), "transformer.ln_f.bias") == 0;
	ok = ok && ref_gpt_param_name(&g, 28, buf, sizeof buf) == NULL && ref_gpt_param_name(&g, -1, buf, sizeof buf) == NULL;
	ref_gpt_param_name(&g, 0, buf, 6);
	ok = ok && strcmp(buf, "trans") == 0;
	const ref_gpt_cfg g12 = {.V = 11, .C = 8, .L = 12, .H = 2, .P = 7};
	ok = ok && strcmp(ref_gpt_param_name(&g12, 2 + 12 * 11 + 11, buf, sizeof buf), "transformer.h.11.mlp.c_proj.bias") == 0;
	ok = ok && strcmp(ref_gpt_param_name(&g12, 2 + 12 * 12, buf, sizeof buf), "transformer.ln_f.weight") == 0;
	ref_gpt_param_shape(&g, 2 + 2, &rank, shape);
	ok = ok && rank == 2 && shape[0] == 8 && shape[1] == 24;
	ref_gpt_param_shape(&g, 2 + 10, &rank, shape);
	ok = ok && rank == 2 && shape[0] == 32 && shape[1] == 8;
	ref_gpt_param_shape(&g, 2 + 9, &rank, shape);
	ok = ok && rank == 1 && shape[0] == 32 && shape[1] == 0;
	ref_gpt_param_shape(&g, 28, &rank, shape);
	ok = ok && rank == 0;
	int64_t total = 0;
	for (int i = 0; i < ref_gpt_num_params(&g); i++) {
		ref_gpt_param_shape(&g, i, &rank, shape);
		total += shape[0] * (rank == 2 ? shape[1] : 1);
	}
	const int64_t C = 8;
	int64_t expect = 11 * C + 7 * C + 2 * (12 * C * C + 13 * C) + 2 * C;
	snprintf(detail, sizeof detail, "%lld parameters, expected %lld", (long long)total, (long long)expect);
	report(ok && total == expect, "GPT-2 parameter names and shapes", detail);

	ok = ref_lstm_num_params(&l) == 11;
	ok = ok && strcmp(ref_lstm_param_name(&l, 0, buf, sizeof buf), "embedding.weight") == 0;
	ok = ok && strcmp(ref_lstm_param_name(&l, 1, buf, sizeof buf), "lstm.weight_ih_l0") == 0;
	ok = ok && strcmp(ref_lstm_param_name(&l, 6, buf, sizeof buf), "lstm.weight_hh_l1") == 0;
	ok = ok && strcmp(ref_lstm_param_name(&l, 8, buf, sizeof buf), "lstm.bias_hh_l1") == 0;
	ok = ok && strcmp(ref_lstm_param_name(&l, 9, buf, sizeof buf), "head.weight") == 0;
	ok = ok && strcmp(ref_lstm_param_name(&l, 10, buf, sizeof buf), "head.bias") == 0;
	ok = ok && ref_lstm_param_name(&l, 11, buf, sizeof buf) == NULL;
	ref_lstm_param_shape(&l, 2, &rank, shape);
	ok = ok && rank == 2 && shape[0] == 24 && shape[1] == 6;
	ref_lstm_param_shape(&l, 3, &rank, shape);
	ok = ok && rank == 1 && shape[0] == 24;
	ref_lstm_param_shape(&l, 9, &rank, shape);
	ok = ok && rank == 2 && shape[0] == 9 && shape[1] == 6;
	ref_lstm_param_shape(&l, 10, &rank, shape);
	ok = ok && rank == 1 && shape[0] == 9;
	report(ok, "LSTM parameter names and shapes", NULL);
}

static void check_bad_input(void)
{
	model g = gpt_model(11, 8, 1, 2, 7, 5, 2);
	model_init(&g, 0);
	int ok = !isnan(model_step(&g, 1));
	g.T = 8; /* T > P */
	ok = ok && isnan(model_step(&g, 1));
	g.T = 5;
	g.in[3] = 11;
	ok = ok && isnan(model_step(&g, 1));
	g.in[3] = 0, g.tg[4] = -1;
	ok = ok && isnan(model_step(&g, 1));
	g.gpt.H = 3; /* C % H != 0 */
	g.tg[4] = 0;
	ok = ok && isnan(model_step(&g, 0));
	model_free(&g);

	model l = lstm_model(9, 6, 1, 5, 3);
	model_init(&l, 0);
	l.in[0] = 9;
	ok = ok && isnan(model_step(&l, 1));
	model_free(&l);
	report(ok, "bad input (T > P, tokens or targets out of range, C % H != 0) gives NaN", NULL);
}

int main(void)
{
	check_names_and_shapes();
	check_bad_input();

	model g = gpt_model(11, 8, 2, 2, 7, 5, 2);
	model_init(&g, 0);
	check_gradients(&g);
	check_overwrite_and_mean(&g);
	for (int t0 = 0; t0 < g.T; t0++)
		check_causal(&g, t0);
	model_free(&g);

	/* T = P: every row of wpe in use */
	model g2 = gpt_model(7, 6, 1, 3, 4, 4, 3);
	model_init(&g2, 0);
	check_gradients(&g2);
	model_free(&g2);

	model gz = gpt_model(11, 8, 2, 2, 7, 5, 2);
	model_init(&gz, 1);
	check_zero_params(&gz);
	model_free(&gz);

	model l = lstm_model(9, 6, 2, 5, 3);
	model_init(&l, 0);
	check_gradients(&l);
	check_overwrite_and_mean(&l);
	for (int t0 = 0; t0 < l.T; t0++)
		check_causal(&l, t0);
	model_free(&l);

	model lz = lstm_model(9, 6, 2, 5, 3);
	model_init(&lz, 1);
	check_zero_params(&lz);
	model_free(&lz);

	printf("%d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
