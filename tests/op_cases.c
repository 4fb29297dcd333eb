/*
 * op_cases.c — the op harness's rows: for every op of ops/ops.def, cases (odd shapes, ranks 1
 * to 4, one element, ops that take a parameter) with their double-precision references. The
 * engine that runs them is the library's tg_check_op (runtime/check.c): every backend, one
 * tile and several. Adding an op: its reference forward and backward here, and rows.
 */
#include "op_cases.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tg_philox.h"


static int64_t numel(const tg_check_operand *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->shape[i];
	return n;
}
static int64_t cols(const tg_check_operand *t) { return t->shape[t->rank - 1]; }
static int64_t rows(const tg_check_operand *t) { return numel(t) / cols(t); }

enum { SAME_OPERAND = 4 }; /* matmul: b is a (x x^T) */

static void ref_matmul_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int ta = c->iarg & TG_TRANS_A, tb = c->iarg & TG_TRANS_B;
	const tg_check_operand *sa = &c->in[0], *sb = (c->iarg & SAME_OPERAND) ? &c->in[0] : &c->in[1];
	const double *a = in[0], *b = (c->iarg & SAME_OPERAND) ? in[0] : in[1];
	int64_t lda = cols(sa), ldb = cols(sb);
	int64_t m = ta ? cols(sa) : rows(sa), k = ta ? rows(sa) : cols(sa), n = tb ? rows(sb) : cols(sb);
	for (int64_t i = 0; i < m; i++)
		for (int64_t j = 0; j < n; j++) {
			double s = 0;
			for (int64_t p = 0; p < k; p++)
				s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
			res[0][i * n + j] = s;
		}
}

static void ref_matmul_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const double *dc = douts[0];
	int ta = c->iarg & TG_TRANS_A, tb = c->iarg & TG_TRANS_B, same = c->iarg & SAME_OPERAND;
	const tg_check_operand *sa = &c->in[0], *sb = same ? &c->in[0] : &c->in[1];
	const double *a = in[0], *b = same ? in[0] : in[1];
	int64_t lda = cols(sa), ldb = cols(sb);
	int64_t m = ta ? cols(sa) : rows(sa), k = ta ? rows(sa) : cols(sa), n = tb ? rows(sb) : cols(sb);
	double *da = din[0], *db = same ? din[0] : din[1];
	if (da)
		memset(da, 0, (size_t)numel(sa) * sizeof *da);
	if (db && !same)
		memset(db, 0, (size_t)numel(sb) * sizeof *db);
	for (int64_t i = 0; i < m; i++)
		for (int64_t p = 0; p < k; p++)
			for (int64_t j = 0; j < n; j++) {
				double g = dc[i * n + j];
				/* d op(A)[i][p] += g op(B)[p][j];  d op(B)[p][j] += op(A)[i][p] g */
				if (da)
					da[ta ? p * lda + i : i * lda + p] += g * (tb ? b[j * ldb + p] : b[p * ldb + j]);
				if (db)
					db[tb ? j * ldb + p : p * ldb + j] += g * (ta ? a[p * lda + i] : a[i * lda + p]);
			}
}

static int run_matmul(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_matmul(out[0], in[0], (c->iarg & SAME_OPERAND) ? in[0] : in[1], (unsigned)c->iarg & 3u);
}

static int add_broadcast(const tg_check_case *c) { return rows(&c->in[1]) == 1; }

static void ref_add_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t r = rows(&c->in[0]), k = cols(&c->in[0]);
	int bc = add_broadcast(c);
	for (int64_t i = 0; i < r; i++)
		for (int64_t j = 0; j < k; j++)
			res[0][i * k + j] = in[0][i * k + j] + in[1][bc ? j : i * k + j];
}

static void ref_add_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const double *dout = douts[0];
	(void)in;
	int64_t r = rows(&c->in[0]), k = cols(&c->in[0]);
	int bc = add_broadcast(c);
	if (din[1])
		memset(din[1], 0, (size_t)numel(&c->in[1]) * sizeof(double));
	for (int64_t i = 0; i < r; i++)
		for (int64_t j = 0; j < k; j++) {
			if (din[0])
				din[0][i * k + j] = dout[i * k + j];
			if (din[1])
				din[1][bc ? j : i * k + j] += dout[i * k + j];
		}
}

static int run_add(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_add(out[0], in[0], in[1]);
}

static void ref_relu_fwd(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = in[0][i] > 0 ? in[0][i] : 0;
}

static void ref_relu_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const double *dout = douts[0];
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		din[0][i] = in[0][i] > 0 ? dout[i] : 0;
}

static int run_relu(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_relu(out[0], in[0]);
}

/* The rest of the elementwise family: f and f' in double. */
static double gelu_d(double x)
{
	return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
static double gelu_grad_d(double x)
{
	double u = 0.7978845608028654 * (x + 0.044715 * x * x * x), t = tanh(u);
	return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
static double sigmoid_d(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

enum { FN_GELU, FN_TANH, FN_SIGMOID, FN_SCALE };
static double unary_f(int fn, double x, double p)
{
	switch (fn) {
	case FN_GELU: return gelu_d(x);
	case FN_TANH: return tanh(x);
	case FN_SIGMOID: return sigmoid_d(x);
	default: return p * x;
	}
}
static double unary_df(int fn, double x, double p)
{
	switch (fn) {
	case FN_GELU: return gelu_grad_d(x);
	case FN_TANH: return 1.0 - tanh(x) * tanh(x);
	case FN_SIGMOID: return sigmoid_d(x) * (1.0 - sigmoid_d(x));
	default: return p;
	}
}

static void ref_unary_fwd(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = unary_f(c->iarg, in[0][i], c->farg[0]);
}

static void ref_unary_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const double *dout = douts[0];
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		din[0][i] = dout[i] * unary_df(c->iarg, in[0][i], c->farg[0]);
}

static int run_unary(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	switch (c->iarg) {
	case FN_GELU: return tg_gelu(out[0], in[0]);
	case FN_TANH: return tg_tanh(out[0], in[0]);
	case FN_SIGMOID: return tg_sigmoid(out[0], in[0]);
	default: return tg_scale(out[0], in[0], c->farg[0]);
	}
}

static void ref_mul_fwd(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = in[0][i] * in[1][i];
}

static void ref_mul_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const double *dout = douts[0];
	for (int64_t i = 0; i < numel(&c->in[0]); i++) {
		if (din[0])
			din[0][i] = dout[i] * in[1][i];
		if (din[1])
			din[1][i] = dout[i] * in[0][i];
	}
}

static int run_mul(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_mul(out[0], in[0], in[1]);
}

/* logits (N, V), targets (N) */
static void softmax_row(const double *x, int64_t v, double *p)
{
	double m = x[0], s = 0;
	for (int64_t j = 1; j < v; j++)
		m = x[j] > m ? x[j] : m;
	for (int64_t j = 0; j < v; j++)
		s += exp(x[j] - m);
	for (int64_t j = 0; j < v; j++)
		p[j] = exp(x[j] - m) / s;
}

static void ref_xent_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), v = cols(&c->in[0]);
	double *p = malloc((size_t)v * sizeof *p), total = 0;
	for (int64_t r = 0; r < n; r++) {
		softmax_row(in[0] + r * v, v, p);
		total -= log(p[(int64_t)in[1][r]]);
	}
	res[0][0] = total / (double)n;
	free(p);
}

static void ref_xent_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const double *dout = douts[0];
	int64_t n = rows(&c->in[0]), v = cols(&c->in[0]);
	for (int64_t r = 0; r < n; r++) {
		softmax_row(in[0] + r * v, v, din[0] + r * v);
		din[0][r * v + (int64_t)in[1][r]] -= 1.0;
		for (int64_t j = 0; j < v; j++)
			din[0][r * v + j] *= dout[0] / (double)n;
	}
}

static int run_xent(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_softmax_xent(out[0], in[0], in[1]);
}

/* in: param, grad, [velocity]; results: param, [velocity] */
static void ref_sgd_fwd(double **res, double *const *in, const tg_check_case *c)
{
	double lr = c->farg[0], mom = c->farg[1], wd = c->farg[2];
	for (int64_t i = 0; i < numel(&c->in[0]); i++) {
		double g = in[1][i] + wd * in[0][i];
		if (c->nin > 2) {
			res[1][i] = mom * in[2][i] + g;
			g = res[1][i];
		}
		res[0][i] = in[0][i] - lr * g;
	}
}

static int run_sgd(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)out;
	tg_sgd_params p = {c->farg[0], c->farg[1], c->farg[2]};
	int rc = tg_tensor_set_grad(in[0], in[1]);
	return rc < 0 ? rc : tg_sgd(in[0], c->nin > 2 ? in[2] : NULL, &p);
}


/* ------------------------------------------------------------------ embeddings */

/* in: table (V, C), ids int32 (N elements); out (.., C) with N rows */
static void ref_embedding_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = numel(&c->in[1]), k = cols(&c->in[0]);
	for (int64_t r = 0; r < n; r++) {
		int64_t id = (int64_t)in[1][r];
		for (int64_t j = 0; j < k; j++)
			res[0][r * k + j] = in[0][id * k + j];
	}
}

static void ref_embedding_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = numel(&c->in[1]), k = cols(&c->in[0]);
	if (!din[0])
		return;
	memset(din[0], 0, (size_t)numel(&c->in[0]) * sizeof(double));
	for (int64_t r = 0; r < n; r++) {
		int64_t id = (int64_t)in[1][r];
		for (int64_t j = 0; j < k; j++)
			din[0][id * k + j] += douts[0][r * k + j];
	}
}

static int run_embedding(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_embedding(out[0], in[0], in[1]);
}

/* in: x (.., C), pos (P, C), T = iarg: row r gets pos row r mod T */
static void ref_pos_add_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]), T = c->iarg;
	for (int64_t r = 0; r < n; r++)
		for (int64_t j = 0; j < k; j++)
			res[0][r * k + j] = in[0][r * k + j] + in[1][(r % T) * k + j];
}

static void ref_pos_add_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]), T = c->iarg;
	(void)in;
	if (din[1]) /* rows of pos at T and after get no gradient: zeros */
		memset(din[1], 0, (size_t)numel(&c->in[1]) * sizeof(double));
	for (int64_t r = 0; r < n; r++)
		for (int64_t j = 0; j < k; j++) {
			if (din[0])
				din[0][r * k + j] = douts[0][r * k + j];
			if (din[1])
				din[1][(r % T) * k + j] += douts[0][r * k + j];
		}
}

static int run_pos_add(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_pos_add(out[0], in[0], in[1], c->iarg);
}

/* ------------------------------------------------------------------ layer normalisation */

/* n rows of k: out = (x - mean) rstd w + b, biased variance, rstd = 1 / sqrt(var + eps) */
static void ln_rows_fwd(const double *x, const double *w, const double *b, int64_t n, int64_t k, double eps, double *out,
                        double *mean, double *rstd)
{
	for (int64_t r = 0; r < n; r++) {
		const double *xr = x + r * k;
		double m = 0, v = 0;
		for (int64_t j = 0; j < k; j++)
			m += xr[j];
		m /= (double)k;
		for (int64_t j = 0; j < k; j++)
			v += (xr[j] - m) * (xr[j] - m);
		v /= (double)k;
		double s = 1.0 / sqrt(v + eps);
		for (int64_t j = 0; j < k; j++)
			out[r * k + j] = (xr[j] - m) * s * w[j] + b[j];
		mean[r] = m;
		rstd[r] = s;
	}
}

/* dx (overwritten; NULL: not wanted) and dw, db (overwritten; NULL: not wanted) from dout */
static void ln_rows_bwd(const double *x, const double *w, const double *dout, int64_t n, int64_t k, double eps, double *dx,
                        double *dw, double *db)
{
	if (dw)
		memset(dw, 0, (size_t)k * sizeof *dw);
	if (db)
		memset(db, 0, (size_t)k * sizeof *db);
	for (int64_t r = 0; r < n; r++) {
		const double *xr = x + r * k, *g = dout + r * k;
		double m = 0, v = 0;
		for (int64_t j = 0; j < k; j++)
			m += xr[j];
		m /= (double)k;
		for (int64_t j = 0; j < k; j++)
			v += (xr[j] - m) * (xr[j] - m);
		v /= (double)k;
		double s = 1.0 / sqrt(v + eps), mg = 0, mgx = 0;
		for (int64_t j = 0; j < k; j++) {
			double xhat = (xr[j] - m) * s, gh = g[j] * w[j];
			mg += gh;
			mgx += gh * xhat;
			if (dw)
				dw[j] += g[j] * xhat;
			if (db)
				db[j] += g[j];
		}
		mg /= (double)k;
		mgx /= (double)k;
		for (int64_t j = 0; dx && j < k; j++) {
			double xhat = (xr[j] - m) * s;
			dx[r * k + j] = s * (g[j] * w[j] - mg - xhat * mgx);
		}
	}
}

/* in: x (.., C), w (C), b (C); out: out, mean (N), rstd (N); eps = farg[0] */
static void ref_layernorm_fwd(double **res, double *const *in, const tg_check_case *c)
{
	ln_rows_fwd(in[0], in[1], in[2], rows(&c->in[0]), cols(&c->in[0]), c->farg[0], res[0], res[1], res[2]);
}

static void ref_layernorm_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	ln_rows_bwd(in[0], in[1], douts[0], rows(&c->in[0]), cols(&c->in[0]), c->farg[0], din[0], din[1], din[2]);
}

static int run_layernorm(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_layernorm(out[0], out[1], out[2], in[0], in[1], in[2], c->farg[0]);
}

/* in: a, r (.., C), w, b (C); out: sum = a + r, out = layernorm(sum), mean, rstd */
static void ref_add_layernorm_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]);
	for (int64_t i = 0; i < n * k; i++)
		res[0][i] = in[0][i] + in[1][i];
	ln_rows_fwd(res[0], in[2], in[3], n, k, c->farg[0], res[1], res[2], res[3]);
}

/* da = dr = dsum + layernorm's dx (each term only when its output carries a gradient) */
static void ref_add_layernorm_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]);
	double *sum = malloc((size_t)(n * k) * sizeof *sum), *dx = calloc((size_t)(n * k), sizeof *dx);
	for (int64_t i = 0; i < n * k; i++)
		sum[i] = in[0][i] + in[1][i];
	if (douts[1]) {
		ln_rows_bwd(sum, in[2], douts[1], n, k, c->farg[0], dx, din[2], din[3]);
	} else { /* no gradient reaches out: none reaches w and b either */
		if (din[2])
			memset(din[2], 0, (size_t)k * sizeof(double));
		if (din[3])
			memset(din[3], 0, (size_t)k * sizeof(double));
	}
	for (int64_t i = 0; i < n * k; i++) {
		double g = dx[i] + (douts[0] ? douts[0][i] : 0.0);
		if (din[0])
			din[0][i] = g;
		if (din[1])
			din[1][i] = g;
	}
	free(sum);
	free(dx);
}

static int run_add_layernorm(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_add_layernorm(out[0], out[1], out[2], out[3], in[0], in[1], in[2], in[3], c->farg[0]);
}

/* ------------------------------------------------------------------ softmax, attention */

/* x (.., V), scale = farg[0], causal_T = iarg: row r keeps columns 0 .. r mod T */
static int64_t softmax_unmasked(const tg_check_case *c, int64_t r, int64_t v)
{
	return c->iarg > 0 ? r % c->iarg + 1 : v;
}

static void ref_softmax_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), v = cols(&c->in[0]);
	double *z = malloc((size_t)v * sizeof *z);
	for (int64_t r = 0; r < n; r++) {
		int64_t m = softmax_unmasked(c, r, v);
		for (int64_t j = 0; j < m; j++)
			z[j] = (double)c->farg[0] * in[0][r * v + j];
		softmax_row(z, m, res[0] + r * v);
		for (int64_t j = m; j < v; j++)
			res[0][r * v + j] = 0.0;
	}
	free(z);
}

/* dx = scale y (dy - sum_j y_j dy_j) */
static void ref_softmax_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), v = cols(&c->in[0]);
	double *y = malloc((size_t)(n * v) * sizeof *y);
	double *res[1] = {y};
	ref_softmax_fwd(res, in, c);
	for (int64_t r = 0; r < n; r++) {
		const double *yr = y + r * v, *g = douts[0] + r * v;
		double dot = 0;
		for (int64_t j = 0; j < v; j++)
			dot += yr[j] * g[j];
		for (int64_t j = 0; j < v; j++)
			din[0][r * v + j] = (double)c->farg[0] * yr[j] * (g[j] - dot);
	}
	free(y);
}

static int run_softmax(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_softmax(out[0], in[0], c->farg[0], c->iarg);
}

/* qkv (B, T, 3C) = [Q | K | V], heads = iarg, d = C / heads. The attention probabilities of
 * batch b, head h: p (T x T), p[t][j] = softmax_j<=t(Q_t . K_j / sqrt(d)), 0 for j > t. */
static void attention_probs(const double *qkv, int64_t T, int64_t C, int64_t H, int64_t b, int64_t h, double *p)
{
	int64_t d = C / H, ld = 3 * C;
	const double *q = qkv + b * T * ld + h * d, *k = q + C;
	double scale = 1.0 / sqrt((double)d);
	for (int64_t t = 0; t < T; t++) {
		double *pr = p + t * T;
		for (int64_t j = 0; j <= t; j++) {
			double s = 0;
			for (int64_t e = 0; e < d; e++)
				s += q[t * ld + e] * k[j * ld + e];
			pr[j] = scale * s;
		}
		softmax_row(pr, t + 1, pr);
		for (int64_t j = t + 1; j < T; j++)
			pr[j] = 0.0;
	}
}

/* out: out (B, T, C), att (B, H, T, T) */
static void ref_attention_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t B = c->in[0].shape[0], T = c->in[0].shape[1], C = c->in[0].shape[2] / 3, H = c->iarg, d = C / H;
	for (int64_t b = 0; b < B; b++)
		for (int64_t h = 0; h < H; h++) {
			double *p = res[1] + (b * H + h) * T * T;
			const double *v = in[0] + b * T * 3 * C + 2 * C + h * d;
			attention_probs(in[0], T, C, H, b, h, p);
			for (int64_t t = 0; t < T; t++)
				for (int64_t e = 0; e < d; e++) {
					double s = 0;
					for (int64_t j = 0; j < T; j++)
						s += p[t * T + j] * v[j * 3 * C + e];
					res[0][(b * T + t) * C + h * d + e] = s;
				}
		}
}

/* only out carries a gradient: dV = P^T dout; dP = dout V^T; dS = P (dP - rowsum(P dP));
 * dQ = dS K / sqrt(d); dK = dS^T Q / sqrt(d) */
static void ref_attention_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t B = c->in[0].shape[0], T = c->in[0].shape[1], C = c->in[0].shape[2] / 3, H = c->iarg, d = C / H;
	int64_t ld = 3 * C;
	double scale = 1.0 / sqrt((double)d);
	double *p = malloc((size_t)(T * T) * sizeof *p), *dp = malloc((size_t)T * sizeof *dp);
	memset(din[0], 0, (size_t)numel(&c->in[0]) * sizeof(double));
	for (int64_t b = 0; b < B; b++)
		for (int64_t h = 0; h < H; h++) {
			const double *q = in[0] + b * T * ld + h * d, *k = q + C, *v = q + 2 * C;
			double *dq = din[0] + b * T * ld + h * d, *dk = dq + C, *dv = dq + 2 * C;
			const double *g = douts[0] + b * T * C + h * d;
			attention_probs(in[0], T, C, H, b, h, p);
			for (int64_t t = 0; t < T; t++) {
				double dot = 0;
				for (int64_t j = 0; j <= t; j++) {
					double s = 0;
					for (int64_t e = 0; e < d; e++)
						s += g[t * C + e] * v[j * ld + e];
					dp[j] = s;
					dot += p[t * T + j] * s;
				}
				for (int64_t j = 0; j <= t; j++) {
					double ds = p[t * T + j] * (dp[j] - dot) * scale;
					for (int64_t e = 0; e < d; e++) {
						dq[t * ld + e] += ds * k[j * ld + e];
						dk[j * ld + e] += ds * q[t * ld + e];
						dv[j * ld + e] += p[t * T + j] * g[t * C + e];
					}
				}
			}
		}
	free(p);
	free(dp);
}

static int run_attention(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_attention(out[0], out[1], in[0], c->iarg);
}

/* ------------------------------------------------------------------ LSTM cell */

/* in: pre (B, 4H) [i | f | g | o], c_prev (B, H) when nin = 2 (else zeros);
 * out: h, c (B, H), gates (B, 4H) = [sigmoid(i) | sigmoid(f) | tanh(g) | sigmoid(o)] */
static void ref_lstm_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t B = rows(&c->in[0]), H = cols(&c->in[0]) / 4;
	for (int64_t b = 0; b < B; b++)
		for (int64_t j = 0; j < H; j++) {
			const double *pre = in[0] + b * 4 * H;
			double i = sigmoid_d(pre[j]), f = sigmoid_d(pre[H + j]), g = tanh(pre[2 * H + j]);
			double o = sigmoid_d(pre[3 * H + j]), cp = c->nin > 1 ? in[1][b * H + j] : 0.0;
			double cc = f * cp + i * g;
			res[0][b * H + j] = o * tanh(cc);
			res[1][b * H + j] = cc;
			double *gates = res[2] + b * 4 * H;
			gates[j] = i;
			gates[H + j] = f;
			gates[2 * H + j] = g;
			gates[3 * H + j] = o;
		}
}

/* dh = douts[0], dc = douts[1] (either may be NULL); dc_total = dc + dh o (1 - tanh(c)^2) */
static void ref_lstm_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t B = rows(&c->in[0]), H = cols(&c->in[0]) / 4;
	for (int64_t b = 0; b < B; b++)
		for (int64_t j = 0; j < H; j++) {
			const double *pre = in[0] + b * 4 * H;
			double i = sigmoid_d(pre[j]), f = sigmoid_d(pre[H + j]), g = tanh(pre[2 * H + j]);
			double o = sigmoid_d(pre[3 * H + j]), cp = c->nin > 1 ? in[1][b * H + j] : 0.0;
			double tc = tanh(f * cp + i * g);
			double dh = douts[0] ? douts[0][b * H + j] : 0.0, dc = douts[1] ? douts[1][b * H + j] : 0.0;
			double dct = dc + dh * o * (1.0 - tc * tc);
			if (din[0]) {
				double *dpre = din[0] + b * 4 * H;
				dpre[j] = dct * g * i * (1.0 - i);
				dpre[H + j] = dct * cp * f * (1.0 - f);
				dpre[2 * H + j] = dct * i * (1.0 - g * g);
				dpre[3 * H + j] = dh * tc * o * (1.0 - o);
			}
			if (c->nin > 1 && din[1])
				din[1][b * H + j] = dct * f;
		}
}

static int run_lstm(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_lstm_cell(out[0], out[1], out[2], in[0], c->nin > 1 ? in[1] : NULL);
}

/* ------------------------------------------------------------------ shapes */

/* out = x[..., col0 : col0 + w], col0 = iarg */
static void ref_slice_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]), w = cols(&c->out[0]);
	for (int64_t r = 0; r < n; r++)
		for (int64_t j = 0; j < w; j++)
			res[0][r * w + j] = in[0][r * k + c->iarg + j];
}

static void ref_slice_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]), w = cols(&c->out[0]);
	(void)in;
	memset(din[0], 0, (size_t)numel(&c->in[0]) * sizeof(double)); /* the other columns: 0 */
	for (int64_t r = 0; r < n; r++)
		for (int64_t j = 0; j < w; j++)
			din[0][r * k + c->iarg + j] = douts[0][r * w + j];
}

static int run_slice(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_slice_cols(out[0], in[0], c->iarg);
}

/* out = [x_0 | x_1 | ...], nin inputs */
static void ref_concat_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->out[0]), w = cols(&c->out[0]), off = 0;
	for (int i = 0; i < c->nin; i++) {
		int64_t k = cols(&c->in[i]);
		for (int64_t r = 0; r < n; r++)
			for (int64_t j = 0; j < k; j++)
				res[0][r * w + off + j] = in[i][r * k + j];
		off += k;
	}
}

static void ref_concat_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->out[0]), w = cols(&c->out[0]), off = 0;
	(void)in;
	for (int i = 0; i < c->nin; i++) {
		int64_t k = cols(&c->in[i]);
		for (int64_t r = 0; din[i] && r < n; r++)
			for (int64_t j = 0; j < k; j++)
				din[i][r * k + j] = douts[0][r * w + off + j];
		off += k;
	}
}

static int run_concat(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_concat_cols(out[0], c->nin, in);
}

/* x (.., N, M) -> out (.., M, N); a rank-2 x is one matrix; transpose_into also serves the
 * backward (the gradient of a transpose is the transpose of dout, dims swapped) */
static void transpose_into(double *dst, const double *src, int64_t batch, int64_t n, int64_t m)
{
	for (int64_t b = 0; b < batch; b++)
		for (int64_t i = 0; i < n; i++)
			for (int64_t j = 0; j < m; j++)
				dst[b * n * m + j * n + i] = src[b * n * m + i * m + j];
}

static void ref_transpose_fwd(double **res, double *const *in, const tg_check_case *c)
{
	const tg_check_operand *x = &c->in[0];
	int64_t n = x->shape[x->rank - 2], m = x->shape[x->rank - 1];
	transpose_into(res[0], in[0], numel(x) / (n * m), n, m);
}

static void ref_transpose_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	const tg_check_operand *x = &c->in[0];
	int64_t n = x->shape[x->rank - 2], m = x->shape[x->rank - 1];
	(void)in;
	transpose_into(din[0], douts[0], numel(x) / (n * m), m, n); /* dout is (.., M, N) */
}

static int run_transpose(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_transpose(out[0], in[0]);
}

/* ------------------------------------------------------------------ bias + GELU, dropout */

/* in: x (.., C), b (C); out = gelu(x + b) */
static void ref_bias_gelu_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]);
	for (int64_t r = 0; r < n; r++)
		for (int64_t j = 0; j < k; j++)
			res[0][r * k + j] = gelu_d(in[0][r * k + j] + in[1][j]);
}

static void ref_bias_gelu_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	int64_t n = rows(&c->in[0]), k = cols(&c->in[0]);
	if (din[1])
		memset(din[1], 0, (size_t)k * sizeof(double));
	for (int64_t r = 0; r < n; r++)
		for (int64_t j = 0; j < k; j++) {
			double g = douts[0][r * k + j] * gelu_grad_d(in[0][r * k + j] + in[1][j]);
			if (din[0])
				din[0][r * k + j] = g;
			if (din[1])
				din[1][j] += g;
		}
}

static int run_bias_gelu(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return tg_bias_gelu(out[0], in[0], in[1]);
}

/* dropout: p = farg[0], (seed, step) from user. Element i (row-major over the whole tensor)
 * is kept when tg_philox_uniform(seed, step, i) >= p, compared in float as the op does, and
 * scaled by 1 / (1 - p). The factor does not depend on x: the gradient is dout times it. */
typedef struct dropout_rng {
	uint64_t seed, step;
} dropout_rng;
static const dropout_rng DROPOUT_A = {42, 0};
static const dropout_rng DROPOUT_B = {0x0123456789abcdefULL, ((uint64_t)1 << 32) + 5}; /* high halves in use */

static double dropout_factor(const tg_check_case *c, int64_t i)
{
	const dropout_rng *g = c->user;
	float p = c->farg[0];
	return tg_philox_uniform(g->seed, g->step, (uint64_t)i) >= p ? 1.0 / (1.0 - (double)p) : 0.0;
}

static void ref_dropout_fwd(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = in[0][i] * dropout_factor(c, i);
}

static void ref_dropout_bwd(double **din, double *const *douts, double *const *in, const tg_check_case *c)
{
	(void)in;
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		din[0][i] = douts[0][i] * dropout_factor(c, i);
}

static int run_dropout(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	const dropout_rng *g = c->user;
	return tg_dropout(out[0], in[0], c->farg[0], g->seed, g->step);
}

/* ------------------------------------------------------------------ sum */

/* out = the sum of the nin inputs; how = iarg, accumulate 0. Not differentiable.
 * TG_SUM_TREE overwrites xs[0], xs[2], ... with partial sums when there are two inputs or
 * more: the harness requires inputs it is not told about to stay bit for bit as given, and an
 * in-place declaration does not fit either (in-place results need nout = 0, are expected to
 * be read-written (the tree accumulates into them), and the partial sums they end with are
 * not part of the documented contract). So TG_SUM_TREE rows have one input (out = xs[0],
 * nothing is overwritten) and the several-input rows use TG_SUM_REDUX, which leaves the xs
 * alone. accumulate = 1 is not checked here: a fresh output holds canaries, not a value to
 * add to. (The redux tasks write out with TG_REDUX: the engine's access-mode check has to
 * take that as an accumulation.) */
static void ref_sum_fwd(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < numel(&c->out[0]); i++) {
		double s = 0;
		for (int k = 0; k < c->nin; k++)
			s += in[k][i];
		res[0][i] = s;
	}
}

static int run_sum(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	return tg_sum(out[0], c->nin, in, c->iarg, 0);
}

/* ------------------------------------------------------------------ optimizers */

/* in: param, grad, m, v; results: param, m, v; the parameters in user (tg_adamw_params) */
static void ref_adamw_fwd(double **res, double *const *in, const tg_check_case *c)
{
	const tg_adamw_params *p = c->user;
	double b1 = p->beta1, b2 = p->beta2, lr = p->lr, eps = p->eps, wd = p->weight_decay;
	double c1 = 1.0 - pow(b1, (double)p->step), c2 = 1.0 - pow(b2, (double)p->step);
	for (int64_t i = 0; i < numel(&c->in[0]); i++) {
		double g = in[1][i], m = b1 * in[2][i] + (1.0 - b1) * g, v = b2 * in[3][i] + (1.0 - b2) * g * g;
		res[1][i] = m;
		res[2][i] = v;
		res[0][i] = in[0][i] - lr * (m / c1 / (sqrt(v / c2) + eps) + wd * in[0][i]);
	}
}

static int run_adamw(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)out;
	int rc = tg_tensor_set_grad(in[0], in[1]);
	return rc < 0 ? rc : tg_adamw(in[0], in[2], in[3], c->user);
}

static const tg_adamw_params ADAMW_STEP1 = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1};
static const tg_adamw_params ADAMW_STEP10_NO_WD = {0.05f, 0.9f, 0.999f, 1e-8f, 0.0f, 10};
static const tg_adamw_params ADAMW_STEP1000 = {0.1f, 0.8f, 0.99f, 1e-6f, 0.1f, 1000};
static const tg_adamw_params ADAMW_BIG_EPS = {0.1f, 0.5f, 0.75f, 0.25f, 0.05f, 3}; /* eps outside the sqrt */

/* clip_grad_norm: in: the gradients g_0 .. g_{n-1} of n = nin - 1 parameters, then norm (2);
 * results (in place): the gradients, then norm = [the norm before clipping, the factor].
 * max_norm = farg[0]. The harness has at most 4 inputs, which would not hold two parameters
 * and their gradients and norm: the parameters are made inside run_clip (they are never
 * read or written, only their gradients are) and freed there (a parameter does not own a
 * gradient set with tg_tensor_set_grad: freeing it only detaches the harness's tensor).
 * The op runs in several tasks (sums of squares reading the gradients, the norm, the
 * scaling reading norm): the engine's access-mode check, which wants every access to an
 * in-place result read-written, has to allow reads of them between the op's tasks. */
static void ref_clip_fwd(double **res, double *const *in, const tg_check_case *c)
{
	int n = c->nin - 1;
	double ss = 0;
	for (int k = 0; k < n; k++)
		for (int64_t i = 0; i < numel(&c->in[k]); i++)
			ss += in[k][i] * in[k][i];
	double norm = sqrt(ss), f = (double)c->farg[0] / (norm + 1e-6);
	f = f < 1.0 ? f : 1.0;
	for (int k = 0; k < n; k++)
		for (int64_t i = 0; i < numel(&c->in[k]); i++)
			res[k][i] = in[k][i] * f;
	res[n][0] = norm;
	res[n][1] = f;
}

static int run_clip(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)out;
	int n = c->nin - 1, rc = 0;
	tg_tensor *params[TG_CHECK_MAX] = {NULL};
	for (int k = 0; k < n && rc == 0; k++) {
		rc = tg_tensor_new(&params[k], "clip.param", TG_F32, tg_tensor_rank(in[k]), tg_tensor_shape(in[k]));
		if (rc == 0)
			rc = tg_tensor_set_requires_grad(params[k], 1);
		if (rc == 0)
			rc = tg_tensor_set_grad(params[k], in[k]);
	}
	if (rc == 0)
		rc = tg_clip_grad_norm(n, params, c->farg[0], in[n]);
	for (int k = 0; k < n; k++) {
		int frc = tg_tensor_free(params[k]);
		rc = rc < 0 ? rc : frc;
	}
	return rc;
}


#define F32(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32}
#define F32G(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .requires_grad = 1}
#define RELU_IN(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .gen = TG_GEN_AWAY_FROM_ZERO, .requires_grad = 1}
#define TARGETS(range_, ...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_I32, .gen = TG_GEN_INDEX, .index_range = range_}

#define MATMUL(label_, flags_, a_, b_, out_) \
	{"matmul", label_, 2, {a_, b_}, 1, {out_}, 0, {0}, run_matmul, ref_matmul_fwd, ref_matmul_bwd, flags_, {0}, NULL, 0, 0}
#define ADD(label_, a_, b_) \
	{"add", label_, 2, {a_, b_}, 1, {a_}, 0, {0}, run_add, ref_add_fwd, ref_add_bwd, 0, {0}, NULL, 0, 0}
#define RELU(label_, x_) \
	{"relu", label_, 1, {RELU_IN x_}, 1, {F32 x_}, 0, {0}, run_relu, ref_relu_fwd, ref_relu_bwd, 0, {0}, NULL, 0, 0}
#define UNARY(op_, fn_, p_, label_, x_) \
	{op_, label_, 1, {F32G x_}, 1, {F32 x_}, 0, {0}, run_unary, ref_unary_fwd, ref_unary_bwd, fn_, {p_}, NULL, 0, 0}
#define MUL(label_, a_, b_) \
	{"mul", label_, 2, {a_, b_}, 1, {a_}, 0, {0}, run_mul, ref_mul_fwd, ref_mul_bwd, 0, {0}, NULL, 0, 0}
#define XENT(label_, n_, v_) \
	{"softmax_xent", label_, 2, {F32G(n_, v_), TARGETS(v_, n_)}, 1, {F32(1)}, 0, {0}, run_xent, ref_xent_fwd, ref_xent_bwd, 0, {0}, NULL, 0, 0}

/* an operand whose gradient is checked when g_ is 1 */
#define F32X(g_, ...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .requires_grad = g_}
#define POSITIVE(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .gen = TG_GEN_POSITIVE}
#define NO_OUT {{0, {0}, 0, 0, 0, 0}}

#define EMBEDDING(label_, table_, ids_, out_) \
	{"embedding", label_, 2, {table_, ids_}, 1, {out_}, 0, {0}, run_embedding, ref_embedding_fwd, ref_embedding_bwd, 0, {0}, NULL, 0, 0}
#define POS_ADD(label_, T_, x_, pos_, out_) \
	{"pos_add", label_, 2, {x_, pos_}, 1, {out_}, 0, {0}, run_pos_add, ref_pos_add_fwd, ref_pos_add_bwd, T_, {0}, NULL, 0, 0}
/* x's shape is the variadic part; N its rows, C its columns; gx_, gwb_: x, and w and b, need gradients.
 * mean and rstd are checked in the forward only. */
#define LAYERNORM(label_, eps_, gx_, gwb_, N_, C_, ...)                                                         \
	{"layernorm", label_, 3, {F32X(gx_, __VA_ARGS__), F32X(gwb_, C_), F32X(gwb_, C_)}, 3,                  \
	 {F32G(__VA_ARGS__), F32(N_), F32(N_)}, 0, {0}, run_layernorm, ref_layernorm_fwd, ref_layernorm_bwd, 0, \
	 {eps_}, NULL, 0, 0}
/* ga_, gr_, gwb_: a, r, and w and b, need gradients; gsum_, gout_: sum and out carry one */
#define ADD_LAYERNORM(label_, eps_, ga_, gr_, gwb_, gsum_, gout_, N_, C_, ...)                                \
	{"add_layernorm", label_, 4, {F32X(ga_, __VA_ARGS__), F32X(gr_, __VA_ARGS__), F32X(gwb_, C_), F32X(gwb_, C_)}, 4, \
	 {F32X(gsum_, __VA_ARGS__), F32X(gout_, __VA_ARGS__), F32(N_), F32(N_)}, 0, {0}, run_add_layernorm,         \
	 ref_add_layernorm_fwd, ref_add_layernorm_bwd, 0, {eps_}, NULL, 0, 0}
#define SOFTMAX(label_, scale_, causal_T_, x_) \
	{"softmax", label_, 1, {F32G x_}, 1, {F32 x_}, 0, {0}, run_softmax, ref_softmax_fwd, ref_softmax_bwd, causal_T_, {scale_}, NULL, 0, 0}
/* qkv (B, T, 3C); out (B, T, C) carries the gradient, att (B, H, T, T) is checked in the forward */
#define ATTENTION(label_, H_, B_, T_, C_)                                                                    \
	{"attention", label_, 1, {F32G(B_, T_, 3 * (C_))}, 2, {F32G(B_, T_, C_), F32(B_, H_, T_, T_)}, 0, {0}, \
	 run_attention, ref_attention_fwd, ref_attention_bwd, H_, {0}, NULL, 0, 0}
/* pre (B, 4H), c_prev (B, H) when nin_ = 2; gh_, gc_: h and c carry gradients (gates: forward only) */
#define LSTM(label_, nin_, gpre_, gcp_, gh_, gc_, B_, H_)                                                        \
	{"lstm_cell", label_, nin_, {F32X(gpre_, B_, 4 * (H_)), F32X(gcp_, B_, H_)}, 3,                          \
	 {F32X(gh_, B_, H_), F32X(gc_, B_, H_), F32(B_, 4 * (H_))}, 0, {0}, run_lstm, ref_lstm_fwd, ref_lstm_bwd, 0, \
	 {0}, NULL, 0, 0}
#define SLICE(label_, col0_, x_, out_) \
	{"slice_cols", label_, 1, {x_}, 1, {out_}, 0, {0}, run_slice, ref_slice_fwd, ref_slice_bwd, col0_, {0}, NULL, 0, 0}
#define CONCAT(label_, n_, out_, ...) \
	{"concat_cols", label_, n_, {__VA_ARGS__}, 1, {out_}, 0, {0}, run_concat, ref_concat_fwd, ref_concat_bwd, 0, {0}, NULL, 0, 0}
#define TRANSPOSE(label_, x_, out_) \
	{"transpose", label_, 1, {F32G x_}, 1, {F32 out_}, 0, {0}, run_transpose, ref_transpose_fwd, ref_transpose_bwd, 0, {0}, NULL, 0, 0}
#define BIAS_GELU(label_, x_, b_, out_) \
	{"bias_gelu", label_, 2, {x_, b_}, 1, {out_}, 0, {0}, run_bias_gelu, ref_bias_gelu_fwd, ref_bias_gelu_bwd, 0, {0}, NULL, 0, 0}
#define DROPOUT(label_, p_, rng_, x_) \
	{"dropout", label_, 1, {F32G x_}, 1, {F32 x_}, 0, {0}, run_dropout, ref_dropout_fwd, ref_dropout_bwd, 0, {p_}, &(rng_), 0, 0}
#define SUM(label_, how_, n_, out_, ...) \
	{"sum", label_, n_, {__VA_ARGS__}, 1, {out_}, 0, {0}, run_sum, ref_sum_fwd, NULL, how_, {0}, NULL, 0, 0}
/* param (requires a gradient, as for sgd), grad, m, v (v >= 0); param, m and v updated in place */
#define ADAMW(label_, params_, ...)                                                                              \
	{"adamw", label_, 4, {F32G(__VA_ARGS__), F32(__VA_ARGS__), F32(__VA_ARGS__), POSITIVE(__VA_ARGS__)}, 0, NO_OUT, \
	 3, {0, 2, 3}, run_adamw, ref_adamw_fwd, NULL, 0, {0}, &(params_), 0, 0}
/* the gradients of 1 to 3 parameters, then norm (2); all updated in place */
#define CLIP1(label_, max_, g0_) \
	{"clip_grad_norm", label_, 2, {g0_, F32(2)}, 0, NO_OUT, 2, {0, 1}, run_clip, ref_clip_fwd, NULL, 0, {max_}, NULL, 0, \
	 1u << 1}
#define CLIP2(label_, max_, g0_, g1_)                                                                             \
	{"clip_grad_norm", label_, 3, {g0_, g1_, F32(2)}, 0, NO_OUT, 3, {0, 1, 2}, run_clip, ref_clip_fwd, NULL, 0, \
	 {max_}, NULL, 0, 1u << 2}
#define CLIP3(label_, max_, g0_, g1_, g2_)                                                                                \
	{"clip_grad_norm", label_, 4, {g0_, g1_, g2_, F32(2)}, 0, NO_OUT, 4, {0, 1, 2, 3}, run_clip, ref_clip_fwd, NULL, 0, \
	 {max_}, NULL, 0, 1u << 3}

const tg_check_case tg_test_cases[] = {
	MATMUL("NN (17,3)x(3,129)", 0, F32G(17, 3), F32G(3, 129), F32(17, 129)),
	MATMUL("NT (1,17)x(3,17)^T", TG_TRANS_B, F32G(1, 17), F32G(3, 17), F32(1, 3)),
	MATMUL("TN (129,3)^Tx(129,17)", TG_TRANS_A, F32G(129, 3), F32G(129, 17), F32(3, 17)),
	MATMUL("TT (17,1)^Tx(3,17)^T", TG_TRANS_A | TG_TRANS_B, F32G(17, 1), F32G(3, 17), F32(1, 3)),
	MATMUL("NT rank 3 (2,3,17)x(5,17)^T", TG_TRANS_B, F32G(2, 3, 17), F32G(5, 17), F32(2, 3, 5)),
	MATMUL("NN only b needs a gradient (3,17)x(17,129)", 0, F32(3, 17), F32G(17, 129), F32(3, 129)),
	/* 260 output rows of a product summed over tiled rows (forward TN, backward dB of NN): two
	 * accumulation chains, each on a row tile of the output (matmul.c, chains) */
	MATMUL("TN chains (9,260)^Tx(9,5)", TG_TRANS_A, F32G(9, 260), F32G(9, 5), F32(260, 5)),
	MATMUL("NN chains in dB (9,260)x(260,3)", 0, F32G(9, 260), F32G(260, 3), F32(9, 3)),
	{"matmul", "NT same operand x x^T (17,3)", 1, {F32G(17, 3)}, 1, {F32(17, 17)}, 0, {0}, run_matmul,
	 ref_matmul_fwd, ref_matmul_bwd, TG_TRANS_B | SAME_OPERAND, {0}, NULL, 0, 0},
	/* x^T x summed over tiled rows, with 260 output rows: one accumulation chain (x cannot be
	 * split into column parts while the same task reads it whole) */
	{"matmul", "TN same operand x^T x (9,260)", 1, {F32G(9, 260)}, 1, {F32(260, 260)}, 0, {0}, run_matmul,
	 ref_matmul_fwd, ref_matmul_bwd, TG_TRANS_A | SAME_OPERAND, {0}, NULL, 0, 0},
	ADD("same shape (3,17)", F32G(3, 17), F32G(3, 17)),
	ADD("bias (129,17)+(17)", F32G(129, 17), F32G(17)),
	ADD("bias rank 3 (2,3,17)+(17)", F32G(2, 3, 17), F32G(17)),
	ADD("one element (1)+(1)", F32G(1), F32G(1)),
	ADD("only b needs a gradient (17,3)+(3)", F32(17, 3), F32G(3)),
	RELU("(1)", (1)),
	RELU("(3,17)", (3, 17)),
	RELU("(129,3)", (129, 3)),
	RELU("rank 4 (2,1,3,17)", (2, 1, 3, 17)),
	UNARY("gelu", FN_GELU, 0, "(1)", (1)),
	UNARY("gelu", FN_GELU, 0, "(17,129)", (17, 129)),
	UNARY("gelu", FN_GELU, 0, "rank 3 (2,3,17)", (2, 3, 17)),
	UNARY("tanh", FN_TANH, 0, "(3,17)", (3, 17)),
	UNARY("tanh", FN_TANH, 0, "(129,3)", (129, 3)),
	UNARY("sigmoid", FN_SIGMOID, 0, "(3,17)", (3, 17)),
	UNARY("sigmoid", FN_SIGMOID, 0, "(129,3)", (129, 3)),
	UNARY("scale", FN_SCALE, -1.75f, "by -1.75 (17,3)", (17, 3)),
	UNARY("scale", FN_SCALE, 0.0f, "by 0 (5)", (5)),
	MUL("(17,3)*(17,3)", F32G(17, 3), F32G(17, 3)),
	MUL("only a needs a gradient (3,129)", F32G(3, 129), F32(3, 129)),
	MUL("rank 3 (2,3,17)", F32G(2, 3, 17), F32G(2, 3, 17)),
	XENT("(1,3)", 1, 3),
	XENT("(17,129)", 17, 129),
	XENT("(129,17)", 129, 17),
	XENT("one class (3,1)", 3, 1),
	XENT("wide rows (3,1031)", 3, 1031),
	{"softmax_xent", "rank 3 logits (2,3,17), targets (2,3)", 2, {F32G(2, 3, 17), TARGETS(17, 2, 3)}, 1, {F32(1)}, 0, {0},
	 run_xent, ref_xent_fwd, ref_xent_bwd, 0, {0}, NULL, 0, 0},
	{"sgd", "momentum + weight decay (17,3)", 3, {F32G(17, 3), F32(17, 3), F32(17, 3)}, 0, {{0, {0}, 0, 0, 0, 0}}, 2, {0, 2},
	 run_sgd, ref_sgd_fwd, NULL, 0, {0.05f, 0.9f, 0.01f}, NULL, 0, 0},
	{"sgd", "plain (129)", 2, {F32G(129), F32(129)}, 0, {{0, {0}, 0, 0, 0, 0}}, 1, {0}, run_sgd, ref_sgd_fwd, NULL, 0,
	 {0.1f, 0.0f, 0.0f}, NULL, 0, 0},
	/* ---- embeddings */
	EMBEDDING("table (17,3), ids (129)", F32G(17, 3), TARGETS(17, 129), F32(129, 3)),
	EMBEDDING("rank 3 out (2,3,17), table (129,17), ids (2,3)", F32G(129, 17), TARGETS(129, 2, 3), F32(2, 3, 17)),
	EMBEDDING("one row (1,17), table (5,17)", F32G(5, 17), TARGETS(5, 1), F32(1, 17)),
	EMBEDDING("rank 1 out (17), table (3,17)", F32G(3, 17), TARGETS(3, 1), F32(17)),
	EMBEDDING("rank 4 out (1,3,5,7), ids (3,5)", F32G(17, 7), TARGETS(17, 3, 5), F32(1, 3, 5, 7)),
	EMBEDDING("one-row table (1,17): every row adds into it", F32G(1, 17), TARGETS(1, 17), F32(17, 17)),
	POS_ADD("(2,17,3), T 17, pos (17,3)", 17, F32G(2, 17, 3), F32G(17, 3), F32(2, 17, 3)),
	POS_ADD("(129,5), T 3, pos (5,5) longer than T", 3, F32G(129, 5), F32G(5, 5), F32(129, 5)),
	POS_ADD("one row (1,17), T 1", 1, F32G(1, 17), F32G(1, 17), F32(1, 17)),
	POS_ADD("rank 1 (17), T 1, pos (2,17)", 1, F32G(17), F32G(2, 17), F32(17)),
	POS_ADD("rank 4 (2,2,3,5), T 3", 3, F32G(2, 2, 3, 5), F32G(3, 5), F32(2, 2, 3, 5)),
	POS_ADD("only pos needs a gradient (6,17), T 3", 3, F32(6, 17), F32G(3, 17), F32(6, 17)),
	POS_ADD("only x needs a gradient (2,3,17), T 3, pos (4,17)", 3, F32G(2, 3, 17), F32(4, 17), F32(2, 3, 17)),
	/* ---- layer normalisation (rows of at least 5 columns unless eps is large: a row of 3
	 * normal numbers can have a tiny variance, which the float finite differences of a step
	 * of 1e-2 would not follow) */
	LAYERNORM("(17,129)", 1e-5f, 1, 1, 17, 129, 17, 129),
	LAYERNORM("(129,17)", 1e-5f, 1, 1, 129, 17, 129, 17),
	LAYERNORM("one row (1,17)", 1e-5f, 1, 1, 1, 17, 1, 17),
	LAYERNORM("rank 1 (17)", 1e-5f, 1, 1, 1, 17, 17),
	LAYERNORM("rank 3 (2,3,17)", 1e-5f, 1, 1, 6, 17, 2, 3, 17),
	LAYERNORM("rank 4 (2,1,3,5)", 1e-5f, 1, 1, 6, 5, 2, 1, 3, 5),
	LAYERNORM("eps 0.5 inside the square root (17,3)", 0.5f, 1, 1, 17, 3, 17, 3),
	LAYERNORM("only x needs a gradient (17,5)", 1e-5f, 1, 0, 17, 5, 17, 5),
	LAYERNORM("only w and b need gradients (3,17)", 1e-5f, 0, 1, 3, 17, 3, 17),
	ADD_LAYERNORM("(17,129)", 1e-5f, 1, 1, 1, 1, 1, 17, 129, 17, 129),
	ADD_LAYERNORM("(129,17)", 1e-5f, 1, 1, 1, 1, 1, 129, 17, 129, 17),
	ADD_LAYERNORM("one row (1,17)", 1e-5f, 1, 1, 1, 1, 1, 1, 17, 1, 17),
	ADD_LAYERNORM("rank 3 (2,3,17)", 1e-5f, 1, 1, 1, 1, 1, 6, 17, 2, 3, 17),
	ADD_LAYERNORM("rank 4 (2,1,3,5), eps 0.5", 0.5f, 1, 1, 1, 1, 1, 6, 5, 2, 1, 3, 5),
	ADD_LAYERNORM("only a needs a gradient (17,17)", 1e-5f, 1, 0, 0, 1, 1, 17, 17, 17, 17),
	ADD_LAYERNORM("only w and b need gradients (5,17)", 1e-5f, 0, 0, 1, 1, 1, 5, 17, 5, 17),
	ADD_LAYERNORM("only out carries a gradient (3,17)", 1e-5f, 1, 1, 1, 0, 1, 3, 17, 3, 17),
	ADD_LAYERNORM("only sum carries a gradient (3,17)", 1e-5f, 1, 1, 0, 1, 0, 3, 17, 3, 17),
	/* ---- softmax, attention */
	SOFTMAX("(17,129)", 1.0f, 0, (17, 129)),
	SOFTMAX("scale 0.5 (129,3)", 0.5f, 0, (129, 3)),
	SOFTMAX("one row, scale -2 (1,17)", -2.0f, 0, (1, 17)),
	SOFTMAX("rank 1 (17)", 1.0f, 0, (17)),
	SOFTMAX("one column: probability 1, gradient 0 (3,1)", 1.0f, 0, (3, 1)),
	SOFTMAX("rank 3 (2,3,17)", 1.0f, 0, (2, 3, 17)),
	SOFTMAX("causal T 17, scale 0.25 (2,17,17)", 0.25f, 17, (2, 17, 17)),
	SOFTMAX("causal rank 4 T 5 (2,3,5,5)", 1.0f, 5, (2, 3, 5, 5)),
	SOFTMAX("causal T 3, rows not a multiple of T (7,3)", 1.5f, 3, (7, 3)),
	ATTENTION("one position, one head (1,1,3)", 1, 1, 1, 3),
	ATTENTION("3 heads of 4 (2,17,12)", 3, 2, 17, 12),
	ATTENTION("6 heads of 1 (3,5,6)", 6, 3, 5, 6),
	ATTENTION("one head of 17 (2,3,17)", 1, 2, 3, 17),
	ATTENTION("2 heads of 4, T 129 (1,129,8)", 2, 1, 129, 8),
	/* ---- LSTM cell (h and c carry gradients; gates are checked in the forward) */
	LSTM("(17,3) with c_prev", 2, 1, 1, 1, 1, 17, 3),
	LSTM("one row (1,17)", 2, 1, 1, 1, 1, 1, 17),
	LSTM("one unit (129,1)", 2, 1, 1, 1, 1, 129, 1),
	LSTM("first step: no c_prev (3,5)", 1, 1, 0, 1, 1, 3, 5),
	LSTM("only pre needs a gradient (5,3)", 2, 1, 0, 1, 1, 5, 3),
	LSTM("only c_prev needs a gradient (5,3)", 2, 0, 1, 1, 1, 5, 3),
	LSTM("only h carries a gradient (5,3)", 2, 1, 1, 1, 0, 5, 3),
	LSTM("only c carries a gradient (5,3)", 2, 1, 1, 0, 1, 5, 3),
	/* ---- shapes */
	SLICE("columns 5..21 of (17,129)", 5, F32G(17, 129), F32(17, 17)),
	SLICE("every column (3,17)", 0, F32G(3, 17), F32(3, 17)),
	SLICE("last column of (1,17)", 16, F32G(1, 17), F32(1, 1)),
	SLICE("first column of (129,3)", 0, F32G(129, 3), F32(129, 1)),
	SLICE("rank 1: columns 4..6 of (17)", 4, F32G(17), F32(3)),
	SLICE("rank 3: columns 3..7 of (2,3,17)", 3, F32G(2, 3, 17), F32(2, 3, 5)),
	SLICE("rank 4: columns 1..3 of (2,1,3,5)", 1, F32G(2, 1, 3, 5), F32(2, 1, 3, 3)),
	CONCAT("(17,3)|(17,5)", 2, F32(17, 8), F32G(17, 3), F32G(17, 5)),
	CONCAT("one row (1,1)|(1,17)|(1,3)", 3, F32(1, 21), F32G(1, 1), F32G(1, 17), F32G(1, 3)),
	CONCAT("four inputs, rank 3 (2,3,1)|(2,3,17)|(2,3,2)|(2,3,3)", 4, F32(2, 3, 23), F32G(2, 3, 1), F32G(2, 3, 17),
	       F32G(2, 3, 2), F32G(2, 3, 3)),
	CONCAT("one input (129,3)", 1, F32(129, 3), F32G(129, 3)),
	CONCAT("rank 1 (3)|(17)", 2, F32(20), F32G(3), F32G(17)),
	CONCAT("rank 4 (2,1,3,5)|(2,1,3,1)", 2, F32(2, 1, 3, 6), F32G(2, 1, 3, 5), F32G(2, 1, 3, 1)),
	CONCAT("only the second needs a gradient (17,3)|(17,5)|(17,1)", 3, F32(17, 9), F32(17, 3), F32G(17, 5), F32(17, 1)),
	TRANSPOSE("(17,3)", (17, 3), (3, 17)),
	TRANSPOSE("one row (1,129)", (1, 129), (129, 1)),
	TRANSPOSE("one column (129,1)", (129, 1), (1, 129)),
	TRANSPOSE("one element (1,1)", (1, 1), (1, 1)),
	TRANSPOSE("square (17,17)", (17, 17), (17, 17)),
	TRANSPOSE("rank 3 (2,3,17)", (2, 3, 17), (2, 17, 3)),
	TRANSPOSE("rank 4 (2,1,3,5)", (2, 1, 3, 5), (2, 1, 5, 3)),
	/* ---- bias + GELU, dropout */
	BIAS_GELU("(17,129)+(129)", F32G(17, 129), F32G(129), F32(17, 129)),
	BIAS_GELU("(129,3)+(3)", F32G(129, 3), F32G(3), F32(129, 3)),
	BIAS_GELU("one row (1,17)+(17)", F32G(1, 17), F32G(17), F32(1, 17)),
	BIAS_GELU("rank 1 (17)+(17)", F32G(17), F32G(17), F32(17)),
	BIAS_GELU("rank 3 (2,3,17)+(17)", F32G(2, 3, 17), F32G(17), F32(2, 3, 17)),
	BIAS_GELU("rank 4 (2,1,3,5)+(5)", F32G(2, 1, 3, 5), F32G(5), F32(2, 1, 3, 5)),
	BIAS_GELU("only b needs a gradient (17,3)+(3)", F32(17, 3), F32G(3), F32(17, 3)),
	BIAS_GELU("only x needs a gradient (3,17)+(17)", F32G(3, 17), F32(17), F32(3, 17)),
	DROPOUT("p 0.3 (17,129)", 0.3f, DROPOUT_A, (17, 129)),
	DROPOUT("p 0.3, seed and step past 32 bits (129,17)", 0.3f, DROPOUT_B, (129, 17)),
	DROPOUT("p 0.3, one row (1,17)", 0.3f, DROPOUT_A, (1, 17)),
	DROPOUT("p 0.3 rank 1 (129)", 0.3f, DROPOUT_B, (129)),
	DROPOUT("p 0.3 rank 3 (2,3,17)", 0.3f, DROPOUT_B, (2, 3, 17)),
	DROPOUT("p 0: every element kept, rank 4 (2,1,3,5)", 0.0f, DROPOUT_A, (2, 1, 3, 5)),
	DROPOUT("p 0 (3,1)", 0.0f, DROPOUT_B, (3, 1)),
	/* ---- sums (see ref_sum_fwd for why TG_SUM_TREE has one input) */
	SUM("redux, four inputs (17,3)", TG_SUM_REDUX, 4, F32(17, 3), F32(17, 3), F32(17, 3), F32(17, 3), F32(17, 3)),
	SUM("redux, two inputs (129,17)", TG_SUM_REDUX, 2, F32(129, 17), F32(129, 17), F32(129, 17)),
	SUM("redux, three inputs rank 3 (2,3,17)", TG_SUM_REDUX, 3, F32(2, 3, 17), F32(2, 3, 17), F32(2, 3, 17),
	    F32(2, 3, 17)),
	SUM("redux, two inputs rank 4 (2,1,3,5)", TG_SUM_REDUX, 2, F32(2, 1, 3, 5), F32(2, 1, 3, 5), F32(2, 1, 3, 5)),
	SUM("redux, one input (1)", TG_SUM_REDUX, 1, F32(1), F32(1)),
	SUM("tree, one input (17,3)", TG_SUM_TREE, 1, F32(17, 3), F32(17, 3)),
	SUM("tree, one input rank 3 (2,3,17)", TG_SUM_TREE, 1, F32(2, 3, 17), F32(2, 3, 17)),
	SUM("tree, one input (1)", TG_SUM_TREE, 1, F32(1), F32(1)),
	/* ---- optimizers */
	ADAMW("step 1, weight decay (17,3)", ADAMW_STEP1, 17, 3),
	ADAMW("step 10, no weight decay (129)", ADAMW_STEP10_NO_WD, 129),
	ADAMW("step 1000 (1)", ADAMW_STEP1000, 1),
	ADAMW("eps 0.25 added after the square root, rank 3 (2,3,17)", ADAMW_BIG_EPS, 2, 3, 17),
	/* gradients of normal numbers: the norm of (17,3) is about 7, of (129,17)+(17) about 47 */
	CLIP1("one parameter (17,3), clipped to 1", 1.0f, F32(17, 3)),
	CLIP1("one parameter (17,3), below max_norm 1000", 1000.0f, F32(17, 3)),
	CLIP1("one parameter (1), below max_norm 100", 100.0f, F32(1)),
	CLIP2("two parameters (129,17)+(17), clipped to 2", 2.0f, F32(129, 17), F32(17)),
	CLIP2("two parameters (1)+(3,17), below max_norm 100", 100.0f, F32(1), F32(3, 17)),
	CLIP3("three parameters (2,3,17)+(1)+(5), clipped to 0.5", 0.5f, F32(2, 3, 17), F32(1), F32(5)),
};
const int tg_test_ncases = (int)(sizeof tg_test_cases / sizeof tg_test_cases[0]);

