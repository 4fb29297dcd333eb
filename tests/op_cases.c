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



#define F32(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32}
#define F32G(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .requires_grad = 1}
#define RELU_IN(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .gen = TG_GEN_AWAY_FROM_ZERO, .requires_grad = 1}
#define TARGETS(range_, ...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_I32, .gen = TG_GEN_INDEX, .index_range = range_}

#define MATMUL(label_, flags_, a_, b_, out_) \
	{"matmul", label_, 2, {a_, b_}, 1, {out_}, 0, {0}, run_matmul, ref_matmul_fwd, ref_matmul_bwd, flags_, {0}, NULL, 0}
#define ADD(label_, a_, b_) \
	{"add", label_, 2, {a_, b_}, 1, {a_}, 0, {0}, run_add, ref_add_fwd, ref_add_bwd, 0, {0}, NULL, 0}
#define RELU(label_, x_) \
	{"relu", label_, 1, {RELU_IN x_}, 1, {F32 x_}, 0, {0}, run_relu, ref_relu_fwd, ref_relu_bwd, 0, {0}, NULL, 0}
#define UNARY(op_, fn_, p_, label_, x_) \
	{op_, label_, 1, {F32G x_}, 1, {F32 x_}, 0, {0}, run_unary, ref_unary_fwd, ref_unary_bwd, fn_, {p_}, NULL, 0}
#define MUL(label_, a_, b_) \
	{"mul", label_, 2, {a_, b_}, 1, {a_}, 0, {0}, run_mul, ref_mul_fwd, ref_mul_bwd, 0, {0}, NULL, 0}
#define XENT(label_, n_, v_) \
	{"softmax_xent", label_, 2, {F32G(n_, v_), TARGETS(v_, n_)}, 1, {F32(1)}, 0, {0}, run_xent, ref_xent_fwd, ref_xent_bwd, 0, {0}, NULL, 0}

const tg_check_case tg_test_cases[] = {
	MATMUL("NN (17,3)x(3,129)", 0, F32G(17, 3), F32G(3, 129), F32(17, 129)),
	MATMUL("NT (1,17)x(3,17)^T", TG_TRANS_B, F32G(1, 17), F32G(3, 17), F32(1, 3)),
	MATMUL("TN (129,3)^Tx(129,17)", TG_TRANS_A, F32G(129, 3), F32G(129, 17), F32(3, 17)),
	MATMUL("TT (17,1)^Tx(3,17)^T", TG_TRANS_A | TG_TRANS_B, F32G(17, 1), F32G(3, 17), F32(1, 3)),
	MATMUL("NT rank 3 (2,3,17)x(5,17)^T", TG_TRANS_B, F32G(2, 3, 17), F32G(5, 17), F32(2, 3, 5)),
	MATMUL("NN only b needs a gradient (3,17)x(17,129)", 0, F32(3, 17), F32G(17, 129), F32(3, 129)),
	{"matmul", "NT same operand x x^T (17,3)", 1, {F32G(17, 3)}, 1, {F32(17, 17)}, 0, {0}, run_matmul,
	 ref_matmul_fwd, ref_matmul_bwd, TG_TRANS_B | SAME_OPERAND, {0}, NULL, 0},
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
	 run_xent, ref_xent_fwd, ref_xent_bwd, 0, {0}, NULL, 0},
	{"sgd", "momentum + weight decay (17,3)", 3, {F32G(17, 3), F32(17, 3), F32(17, 3)}, 0, {{0, {0}, 0, 0, 0, 0}}, 2, {0, 2},
	 run_sgd, ref_sgd_fwd, NULL, 0, {0.05f, 0.9f, 0.01f}, NULL, 0},
	{"sgd", "plain (129)", 2, {F32G(129), F32(129)}, 0, {{0, {0}, 0, 0, 0, 0}}, 1, {0}, run_sgd, ref_sgd_fwd, NULL, 0,
	 {0.1f, 0.0f, 0.0f}, NULL, 0},
};
const int tg_test_ncases = (int)(sizeof tg_test_cases / sizeof tg_test_cases[0]);

