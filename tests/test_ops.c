/*
 * test_ops.c — the op harness: every op of ops/ops.def x every backend x several shapes.
 *
 * For each row of the table below, on one backend (this file is built twice: for CPU
 * workers and for CUDA workers; TG_TEST_BACKEND says which):
 *   - fresh random inputs (float32), placed as views inside padded parents, so that kernels
 *     must honour the leading dimension and cannot read or write past their operands;
 *   - forward vs a double-precision reference (normalised mean squared error, NMSE);
 *   - backward with a random output gradient R, i.e. the gradient of L = sum(out * R),
 *     vs the double-precision reference, once writing the gradients and once accumulating
 *     into them (a second backward must give exactly twice as much);
 *   - finite differences of L on the backend itself at sampled elements, and of the
 *     double-precision reference at every element (so the reference backward is checked
 *     against the reference forward);
 *   - canary bands around every output and gradient, and inputs left untouched;
 *   - the access modes each task was submitted with (from the tape, which is what StarPU got):
 *     inputs read, fresh outputs written, in-place results read-modify-write, and in each
 *     backward pass the first contribution to a gradient written in the first pass and every
 *     other one accumulated (a write-only accumulation computes the right numbers on a CPU
 *     and garbage on a GPU, so it is checked on every backend);
 *   - NaN and infinity never pass.
 * A backend that has no worker, or an op without an implementation there, is reported
 * SKIP / NOT SUPPORTED, never PASS. Later ops only add rows (and a reference).
 */
#include "tg_test.h"

#include <math.h>

#ifndef TG_TEST_BACKEND
#define TG_TEST_BACKEND TG_BACKEND_CPU
#endif
#define BACKEND_NAME (TG_TEST_BACKEND == TG_BACKEND_CPU ? "cpu" : "cuda")

#define MAXIN 4
#define MAXOUT 2
#define GUARD 2              /* rows and columns of canaries around each operand */
#define NMSE_TOL 1e-9        /* float32 result vs double reference */
#define FD_SAMPLES 6         /* backend finite differences per input */
#define FD_STEP 1e-2
#define REF_FD_STEP 1e-6
#define REF_FD_MAX 200       /* reference finite differences per input (all when fewer) */

static const float CANARY = -1234.5678f;

typedef enum { GEN_NORMAL, GEN_AWAY_FROM_ZERO, GEN_TARGETS } gen_kind;

typedef struct tspec {
	int rank;
	int64_t shape[4];
	tg_dtype dtype;
	gen_kind gen;
	int requires_grad;
} tspec;

typedef struct op_case op_case;
struct op_case {
	const char *op;     /* name in ops.def */
	const char *label;
	int nin;
	tspec in[MAXIN];
	int nout;           /* fresh outputs; 0: the results are inputs updated in place */
	tspec out[MAXOUT];
	int ninplace;
	int inplace[MAXOUT];
	int (*run)(tg_tensor **out, tg_tensor **in, const op_case *c);
	/* res[k]: output k (or in-place result k) from the inputs */
	void (*ref_fwd)(double **res, double *const *in, const op_case *c);
	/* din[i] (NULL when input i needs no gradient) from dout, the gradient of output 0 */
	void (*ref_bwd)(double **din, const double *dout, double *const *in, const op_case *c);
	int iarg;
	float farg[3];
};

/* ------------------------------------------------------------------ shapes */

static int64_t numel(const tspec *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->shape[i];
	return n;
}
static int64_t cols(const tspec *t) { return t->shape[t->rank - 1]; }
static int64_t rows(const tspec *t) { return numel(t) / cols(t); }

static const tspec *result_spec(const op_case *c, int k)
{
	return c->nout ? &c->out[k] : &c->in[c->inplace[k]];
}
static int nresults(const op_case *c) { return c->nout ? c->nout : c->ninplace; }

/* ------------------------------------------------------------------ references (double) */

enum { SAME_OPERAND = 4 }; /* matmul: b is a (x x^T) */

static void ref_matmul_fwd(double **res, double *const *in, const op_case *c)
{
	int ta = c->iarg & TG_TRANS_A, tb = c->iarg & TG_TRANS_B;
	const tspec *sa = &c->in[0], *sb = (c->iarg & SAME_OPERAND) ? &c->in[0] : &c->in[1];
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

static void ref_matmul_bwd(double **din, const double *dc, double *const *in, const op_case *c)
{
	int ta = c->iarg & TG_TRANS_A, tb = c->iarg & TG_TRANS_B, same = c->iarg & SAME_OPERAND;
	const tspec *sa = &c->in[0], *sb = same ? &c->in[0] : &c->in[1];
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

static int run_matmul(tg_tensor **out, tg_tensor **in, const op_case *c)
{
	return tg_matmul(out[0], in[0], (c->iarg & SAME_OPERAND) ? in[0] : in[1], (unsigned)c->iarg & 3u);
}

static int add_broadcast(const op_case *c) { return rows(&c->in[1]) == 1; }

static void ref_add_fwd(double **res, double *const *in, const op_case *c)
{
	int64_t r = rows(&c->in[0]), k = cols(&c->in[0]);
	int bc = add_broadcast(c);
	for (int64_t i = 0; i < r; i++)
		for (int64_t j = 0; j < k; j++)
			res[0][i * k + j] = in[0][i * k + j] + in[1][bc ? j : i * k + j];
}

static void ref_add_bwd(double **din, const double *dout, double *const *in, const op_case *c)
{
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

static int run_add(tg_tensor **out, tg_tensor **in, const op_case *c)
{
	(void)c;
	return tg_add(out[0], in[0], in[1]);
}

static void ref_relu_fwd(double **res, double *const *in, const op_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = in[0][i] > 0 ? in[0][i] : 0;
}

static void ref_relu_bwd(double **din, const double *dout, double *const *in, const op_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		din[0][i] = in[0][i] > 0 ? dout[i] : 0;
}

static int run_relu(tg_tensor **out, tg_tensor **in, const op_case *c)
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

static void ref_unary_fwd(double **res, double *const *in, const op_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = unary_f(c->iarg, in[0][i], c->farg[0]);
}

static void ref_unary_bwd(double **din, const double *dout, double *const *in, const op_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		din[0][i] = dout[i] * unary_df(c->iarg, in[0][i], c->farg[0]);
}

static int run_unary(tg_tensor **out, tg_tensor **in, const op_case *c)
{
	switch (c->iarg) {
	case FN_GELU: return tg_gelu(out[0], in[0]);
	case FN_TANH: return tg_tanh(out[0], in[0]);
	case FN_SIGMOID: return tg_sigmoid(out[0], in[0]);
	default: return tg_scale(out[0], in[0], c->farg[0]);
	}
}

static void ref_mul_fwd(double **res, double *const *in, const op_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++)
		res[0][i] = in[0][i] * in[1][i];
}

static void ref_mul_bwd(double **din, const double *dout, double *const *in, const op_case *c)
{
	for (int64_t i = 0; i < numel(&c->in[0]); i++) {
		if (din[0])
			din[0][i] = dout[i] * in[1][i];
		if (din[1])
			din[1][i] = dout[i] * in[0][i];
	}
}

static int run_mul(tg_tensor **out, tg_tensor **in, const op_case *c)
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

static void ref_xent_fwd(double **res, double *const *in, const op_case *c)
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

static void ref_xent_bwd(double **din, const double *dout, double *const *in, const op_case *c)
{
	int64_t n = rows(&c->in[0]), v = cols(&c->in[0]);
	for (int64_t r = 0; r < n; r++) {
		softmax_row(in[0] + r * v, v, din[0] + r * v);
		din[0][r * v + (int64_t)in[1][r]] -= 1.0;
		for (int64_t j = 0; j < v; j++)
			din[0][r * v + j] *= dout[0] / (double)n;
	}
}

static int run_xent(tg_tensor **out, tg_tensor **in, const op_case *c)
{
	(void)c;
	return tg_softmax_xent(out[0], in[0], in[1]);
}

/* in: param, grad, [velocity]; results: param, [velocity] */
static void ref_sgd_fwd(double **res, double *const *in, const op_case *c)
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

static int run_sgd(tg_tensor **out, tg_tensor **in, const op_case *c)
{
	(void)out;
	tg_sgd_params p = {c->farg[0], c->farg[1], c->farg[2]};
	int rc = tg_tensor_set_grad(in[0], in[1]);
	return rc < 0 ? rc : tg_sgd(in[0], c->nin > 2 ? in[2] : NULL, &p);
}

/* ------------------------------------------------------------------ the table */

#define F32(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32}
#define F32G(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .requires_grad = 1}
#define RELU_IN(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_F32, .gen = GEN_AWAY_FROM_ZERO, .requires_grad = 1}
#define TARGETS(...) {.rank = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}, .dtype = TG_I32, .gen = GEN_TARGETS}

#define MATMUL(label_, flags_, a_, b_, out_) \
	{"matmul", label_, 2, {a_, b_}, 1, {out_}, 0, {0}, run_matmul, ref_matmul_fwd, ref_matmul_bwd, flags_, {0}}
#define ADD(label_, a_, b_) \
	{"add", label_, 2, {a_, b_}, 1, {a_}, 0, {0}, run_add, ref_add_fwd, ref_add_bwd, 0, {0}}
#define RELU(label_, x_) \
	{"relu", label_, 1, {RELU_IN x_}, 1, {F32 x_}, 0, {0}, run_relu, ref_relu_fwd, ref_relu_bwd, 0, {0}}
#define UNARY(op_, fn_, p_, label_, x_) \
	{op_, label_, 1, {F32G x_}, 1, {F32 x_}, 0, {0}, run_unary, ref_unary_fwd, ref_unary_bwd, fn_, {p_}}
#define MUL(label_, a_, b_) \
	{"mul", label_, 2, {a_, b_}, 1, {a_}, 0, {0}, run_mul, ref_mul_fwd, ref_mul_bwd, 0, {0}}
#define XENT(label_, n_, v_) \
	{"softmax_xent", label_, 2, {F32G(n_, v_), TARGETS(n_)}, 1, {F32(1)}, 0, {0}, run_xent, ref_xent_fwd, ref_xent_bwd, 0, {0}}

static op_case cases[] = {
	MATMUL("NN (17,3)x(3,129)", 0, F32G(17, 3), F32G(3, 129), F32(17, 129)),
	MATMUL("NT (1,17)x(3,17)^T", TG_TRANS_B, F32G(1, 17), F32G(3, 17), F32(1, 3)),
	MATMUL("TN (129,3)^Tx(129,17)", TG_TRANS_A, F32G(129, 3), F32G(129, 17), F32(3, 17)),
	MATMUL("TT (17,1)^Tx(3,17)^T", TG_TRANS_A | TG_TRANS_B, F32G(17, 1), F32G(3, 17), F32(1, 3)),
	MATMUL("NT rank 3 (2,3,17)x(5,17)^T", TG_TRANS_B, F32G(2, 3, 17), F32G(5, 17), F32(2, 3, 5)),
	MATMUL("NN only b needs a gradient (3,17)x(17,129)", 0, F32(3, 17), F32G(17, 129), F32(3, 129)),
	{"matmul", "NT same operand x x^T (17,3)", 1, {F32G(17, 3)}, 1, {F32(17, 17)}, 0, {0}, run_matmul,
	 ref_matmul_fwd, ref_matmul_bwd, TG_TRANS_B | SAME_OPERAND, {0}},
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
	{"softmax_xent", "rank 3 logits (2,3,17), targets (2,3)", 2, {F32G(2, 3, 17), TARGETS(2, 3)}, 1, {F32(1)}, 0, {0},
	 run_xent, ref_xent_fwd, ref_xent_bwd, 0, {0}},
	{"sgd", "momentum + weight decay (17,3)", 3, {F32G(17, 3), F32(17, 3), F32(17, 3)}, 0, {{0}}, 2, {0, 2},
	 run_sgd, ref_sgd_fwd, NULL, 0, {0.05f, 0.9f, 0.01f}},
	{"sgd", "plain (129)", 2, {F32G(129), F32(129)}, 0, {{0}}, 1, {0}, run_sgd, ref_sgd_fwd, NULL, 0,
	 {0.1f, 0.0f, 0.0f}},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* ------------------------------------------------------------------ guarded operands */

/* An operand: a view at (GUARD, GUARD) inside a parent padded by GUARD rows and columns.
 * On the CUDA backend the parent is first fetched to the GPU, so that the view's device copy
 * is a block inside the parent's (rows ld apart), not a packed copy of its own. */
typedef struct guarded {
	tg_tensor *parent, *view;
	uint32_t *parent_init; /* the parent's contents when made (4-byte elements) */
	int64_t prows, pcols;
} guarded;

static uint64_t case_seed;
static uint64_t stream_counter;
static int unsupported_rows;

static void random_floats(float *dst, int64_t n, gen_kind gen)
{
	tg_fill f = {TG_FILL_NORMAL, 0.0f, 1.0f, case_seed, ++stream_counter};
	assert_int_equal(tg_fill_host(dst, n, &f), 0);
	if (gen == GEN_AWAY_FROM_ZERO) /* keep finite differences away from the kink at 0 */
		for (int64_t i = 0; i < n; i++)
			dst[i] = dst[i] >= 0 ? dst[i] + 0.1f : dst[i] - 0.1f;
}

/* values: the view's contents (packed, 4-byte elements of s->dtype; NULL: canaries);
 * canary_pads: pads hold CANARY, else random floats (int32: an invalid index, -7) */
static void guarded_new(guarded *g, const char *name, const tspec *s, const void *values, int canary_pads)
{
	g->prows = rows(s) + 2 * GUARD;
	g->pcols = cols(s) + 2 * GUARD;
	int64_t pn = g->prows * g->pcols;
	g->parent_init = malloc((size_t)pn * sizeof(uint32_t));
	assert_non_null(g->parent_init);
	float *pf = (float *)g->parent_init;
	if (s->dtype == TG_I32)
		for (int64_t i = 0; i < pn; i++)
			((int32_t *)g->parent_init)[i] = -7;
	else if (canary_pads)
		for (int64_t i = 0; i < pn; i++)
			pf[i] = CANARY;
	else
		random_floats(pf, pn, GEN_NORMAL);
	for (int64_t r = 0; r < rows(s); r++)
		for (int64_t c = 0; c < cols(s); c++) {
			uint32_t *dst = &g->parent_init[(r + GUARD) * g->pcols + c + GUARD];
			if (values)
				memcpy(dst, (const uint32_t *)values + r * cols(s) + c, sizeof *dst);
			else
				memcpy(dst, &CANARY, sizeof *dst);
		}
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&g->parent, "guard", s->dtype, TG_SHAPE(g->prows, g->pcols), g->parent_init,
	                                      (size_t)pn * sizeof(uint32_t)));
	if (TG_TEST_BACKEND == TG_BACKEND_CUDA)
		TG_OK_OR_FAIL(tg_tensor_prefetch(g->parent, TG_BACKEND_CUDA));
	TG_OK_OR_FAIL(tg_test_block(g->parent, s->rank, s->shape, GUARD, GUARD, &g->view));
	(void)name;
}

/* Free the view, then check the parent: pads untouched, and (check_inside) the inside too.
 * Returns the number of bad elements. */
static int guarded_free(guarded *g, int check_inside, const char *what)
{
	if (!g->parent)
		return 0;
	int64_t pn = g->prows * g->pcols;
	uint32_t *now = malloc((size_t)pn * sizeof *now);
	assert_non_null(now);
	TG_OK_OR_FAIL(tg_tensor_to_host(g->parent, now, (size_t)pn * sizeof *now));
	int bad = 0;
	for (int64_t r = 0; r < g->prows; r++)
		for (int64_t c = 0; c < g->pcols; c++) {
			int inside = r >= GUARD && r < g->prows - GUARD && c >= GUARD && c < g->pcols - GUARD;
			int64_t i = r * g->pcols + c;
			if ((!inside || check_inside) && now[i] != g->parent_init[i]) {
				if (bad < 3)
					print_message("  %s: element (%lld, %lld) of the padded block changed: 0x%08x -> 0x%08x (%s)\n",
					              what, (long long)(r - GUARD), (long long)(c - GUARD), g->parent_init[i], now[i],
					              inside ? "an input was written" : "canary overwritten");
				bad++;
			}
		}
	tg_tensor_free(g->parent);
	free(now);
	free(g->parent_init);
	memset(g, 0, sizeof *g);
	return bad;
}

static double *read_f64(tg_tensor *t, int64_t n)
{
	float *f = malloc((size_t)n * sizeof *f);
	double *d = malloc((size_t)n * sizeof *d);
	assert_true(f && d);
	TG_OK_OR_FAIL(tg_tensor_to_host(t, f, (size_t)n * sizeof *f));
	for (int64_t i = 0; i < n; i++)
		d[i] = f[i];
	free(f);
	return d;
}

/* NMSE of got vs ref; infinite when got has a NaN or infinity. */
static double nmse(const double *got, const double *ref, int64_t n, double scale)
{
	double err = 0, norm = 0;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(got[i]))
			return INFINITY;
		err += (got[i] - scale * ref[i]) * (got[i] - scale * ref[i]);
		norm += scale * ref[i] * scale * ref[i];
	}
	return err / (norm + 1e-30 * (double)n);
}

/* ------------------------------------------------------------------ one case */

typedef struct state {
	const op_case *c;
	int nfwd, npass[2]; /* tape nodes: after the forward, after each backward pass */
	guarded in[MAXIN], out[MAXOUT], din[MAXIN], dout;
	tg_tensor *in_t[MAXIN], *out_t[MAXOUT];
	float *fin[MAXIN];   /* inputs as given (float) */
	double *din_ref[MAXIN];
	double *hin[MAXIN];  /* the same, double */
	double *dout_h;
	int failures;
} state;

#define CHECK(cond, ...)                                  \
	do {                                              \
		if (!(cond)) {                            \
			print_message("  FAIL: " __VA_ARGS__); \
			print_message("\n");             \
			st->failures++;                   \
		}                                         \
	} while (0)

static void make_inputs(state *st)
{
	const op_case *c = st->c;
	for (int i = 0; i < c->nin; i++) {
		const tspec *s = &c->in[i];
		int64_t n = numel(s);
		st->fin[i] = malloc((size_t)n * sizeof(float));
		st->hin[i] = malloc((size_t)n * sizeof(double));
		assert_true(st->fin[i] && st->hin[i]);
		if (s->dtype == TG_I32) {
			/* targets: uniform in [0, V) with V the columns of input 0 */
			int32_t *t = (int32_t *)st->fin[i];
			float *u = malloc((size_t)n * sizeof *u);
			assert_non_null(u);
			tg_fill f = {TG_FILL_UNIFORM, 0.0f, 1.0f, case_seed, ++stream_counter};
			assert_int_equal(tg_fill_host(u, n, &f), 0);
			int64_t v = cols(&c->in[0]);
			for (int64_t k = 0; k < n; k++) {
				t[k] = (int32_t)(u[k] * (float)v);
				t[k] = t[k] >= v ? (int32_t)v - 1 : t[k];
				st->hin[i][k] = t[k];
			}
			free(u);
			/* a view too: its pads hold an invalid index, so reading past a row is seen */
			guarded_new(&st->in[i], "targets", s, t, 0);
			st->in_t[i] = st->in[i].view;
			continue;
		}
		random_floats(st->fin[i], n, s->gen);
		for (int64_t k = 0; k < n; k++)
			st->hin[i][k] = st->fin[i][k];
		char name[16];
		snprintf(name, sizeof name, "in%d", i);
		guarded_new(&st->in[i], name, s, st->fin[i], 0);
		st->in_t[i] = st->in[i].view;
		if (s->requires_grad)
			TG_OK_OR_FAIL(tg_tensor_set_requires_grad(st->in_t[i], 1));
	}
	for (int k = 0; k < c->nout; k++) {
		guarded_new(&st->out[k], "out", &c->out[k], NULL, 1);
		st->out_t[k] = st->out[k].view;
	}
}

static double *result_tensor_read(state *st, int k)
{
	const op_case *c = st->c;
	tg_tensor *t = c->nout ? st->out_t[k] : st->in_t[c->inplace[k]];
	return read_f64(t, numel(result_spec(c, k)));
}

/* L = sum(out0 * R) from the backend's output */
static double backend_L(state *st)
{
	int64_t n = numel(&st->c->out[0]);
	double *o = result_tensor_read(st, 0), l = 0;
	for (int64_t i = 0; i < n; i++)
		l += o[i] * st->dout_h[i];
	free(o);
	return l;
}

static double ref_L(const op_case *c, double *const *in, const double *r)
{
	int64_t n = numel(&c->out[0]);
	double *o = malloc((size_t)n * sizeof *o), l = 0;
	double *res[MAXOUT] = {o};
	c->ref_fwd(res, in, c);
	for (int64_t i = 0; i < n; i++)
		l += o[i] * r[i];
	free(o);
	return l;
}

static void check_forward(state *st)
{
	const op_case *c = st->c;
	double *ref[MAXOUT];
	for (int k = 0; k < nresults(c); k++)
		ref[k] = malloc((size_t)numel(result_spec(c, k)) * sizeof(double));
	c->ref_fwd(ref, st->hin, c);
	for (int k = 0; k < nresults(c); k++) {
		double *got = result_tensor_read(st, k);
		double e = nmse(got, ref[k], numel(result_spec(c, k)), 1.0);
		CHECK(e <= NMSE_TOL, "forward result %d: NMSE %.3g > %.1g", k, e, NMSE_TOL);
		print_message("  forward result %d: NMSE %.2g\n", k, e);
		free(got);
		free(ref[k]);
	}
}

/* The reference backward against finite differences of the reference forward. */
static void check_reference_fd(state *st)
{
	const op_case *c = st->c;
	for (int i = 0; i < c->nin; i++) {
		if (!st->din_ref[i])
			continue;
		int64_t n = numel(&c->in[i]);
		int64_t stride = n > REF_FD_MAX ? n / REF_FD_MAX : 1;
		double worst = 0, gmax = 1e-12;
		for (int64_t k = 0; k < n; k++)
			gmax = fmax(gmax, fabs(st->din_ref[i][k]));
		for (int64_t k = 0; k < n; k += stride) {
			double x = st->hin[i][k], h = REF_FD_STEP * fmax(1.0, fabs(x));
			st->hin[i][k] = x + h;
			double lp = ref_L(c, st->hin, st->dout_h);
			st->hin[i][k] = x - h;
			double lm = ref_L(c, st->hin, st->dout_h);
			st->hin[i][k] = x;
			worst = fmax(worst, fabs((lp - lm) / (2 * h) - st->din_ref[i][k]) / gmax);
		}
		CHECK(worst < 1e-6, "reference gradient of input %d disagrees with finite differences (%.3g)", i, worst);
	}
}

/* The access modes of the recorded tasks (see the top of this file). A task may work on a
 * tile of one of the case's tensors: its operand is then a part of that tensor. */
enum { ROLE_OTHER, ROLE_INPUT, ROLE_OUTPUT, ROLE_INPLACE, ROLE_GRAD };
static int role_of(const state *st, const tg_graph_operand_info *oi, int *which)
{
	const op_case *c = st->c;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t id = pass ? oi->parent_id : oi->tensor_id;
		if (!id)
			continue;
		for (int k = 0; k < c->nin; k++) {
			*which = k;
			if (st->din[k].view && id == tg_tensor_id(st->din[k].view))
				return ROLE_GRAD;
			if (st->in_t[k] && id == tg_tensor_id(st->in_t[k])) {
				for (int j = 0; j < c->ninplace; j++)
					if (c->inplace[j] == k)
						return ROLE_INPLACE;
				return ROLE_INPUT;
			}
		}
		for (int k = 0; k < c->nout; k++) {
			*which = k;
			if (id == tg_tensor_id(st->out_t[k]))
				return ROLE_OUTPUT;
		}
		if (st->dout.view && id == tg_tensor_id(st->dout.view))
			return ROLE_INPUT;
	}
	return ROLE_OTHER;
}

static void check_modes(state *st)
{
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	int bad = 0, ngrad[2][MAXIN] = {{0}};
	/* per pass, the tensors (tiles or whole) written so far: the first write of a region
	 * writes (TG_W), the others accumulate (a tensor overlaps its tiles); in the second
	 * backward pass every contribution adds */
	uint64_t *seen = calloc((size_t)tg_graph_num_nodes(g) * 16 + 16, sizeof *seen);
	int nseen = 0, last_pass = -1;
	assert_non_null(seen);
	for (int i = 0; i < tg_graph_num_nodes(g); i++) {
		int pass = i < st->nfwd ? 0 : i < st->npass[0] ? 1 : i < st->npass[1] ? 2 : -1;
		if (pass < 0)
			break;
		if (pass != last_pass)
			nseen = 0;
		last_pass = pass;
		tg_graph_node_info ni;
		TG_OK_OR_FAIL(tg_graph_node(g, i, &ni));
		if (ni.phase == TG_PHASE_DATA)
			continue; /* a partition switch: StarPU's own modes */
		for (int j = 0; j < tg_graph_num_operands(g, i); j++) {
			tg_graph_operand_info oi;
			TG_OK_OR_FAIL(tg_graph_operand(g, i, j, &oi));
			int which = 0, role = role_of(st, &oi, &which);
			unsigned want = TG_R;
			if (role == ROLE_INPLACE && pass == 0)
				want = TG_RW;
			else if ((role == ROLE_OUTPUT && pass == 0) || (role == ROLE_GRAD && pass > 0)) {
				int first = 1;
				for (int k = 0; k < nseen; k += 2)
					first &= seen[k] != oi.tensor_id && seen[k + 1] != oi.tensor_id &&
					         (!oi.parent_id || seen[k] != oi.parent_id);
				seen[nseen++] = oi.tensor_id;
				seen[nseen++] = oi.parent_id;
				want = pass == 2 || !first ? TG_ACC : TG_W;
				if (role == ROLE_GRAD)
					ngrad[pass - 1][which]++;
			} else if (role == ROLE_OTHER) {
				print_message("  %s operand %d ('%s') is none of the case's tensors\n", ni.task, j, oi.tensor);
				bad++;
				continue;
			}
			if (oi.mode != want) {
				print_message("  %s operand %d ('%s'): mode %u, expected %u\n", ni.task, j, oi.tensor, oi.mode, want);
				bad++;
			}
		}
	}
	free(seen);
	/* every gradient got contributions in both passes */
	for (int k = 0; k < st->c->nin; k++)
		for (int pass = 0; st->din[k].view && pass < 2; pass++)
			CHECK(ngrad[pass][k] > 0, "backward pass %d wrote no gradient of input %d", pass + 1, k);
	tg_graph_free(g);
	CHECK(bad == 0, "%d operands were submitted with the wrong access mode", bad);
}

static void check_backward(state *st)
{
	const op_case *c = st->c;
	const tspec *so = &c->out[0];
	int64_t no = numel(so);
	/* R, the gradient of output 0, lives in a guarded view too */
	float *r = malloc((size_t)no * sizeof *r);
	st->dout_h = malloc((size_t)no * sizeof(double));
	random_floats(r, no, GEN_NORMAL);
	for (int64_t k = 0; k < no; k++)
		st->dout_h[k] = r[k];
	guarded_new(&st->dout, "R", so, r, 0);
	free(r);
	for (int i = 0; i < c->nin; i++) {
		if (!c->in[i].requires_grad)
			continue;
		guarded_new(&st->din[i], "din", &c->in[i], NULL, 1);
		TG_OK_OR_FAIL(tg_tensor_set_grad(st->in_t[i], st->din[i].view));
		TG_OK_OR_FAIL(tg_zero_grad(st->in_t[i])); /* the first backward must overwrite */
		st->din_ref[i] = malloc((size_t)numel(&c->in[i]) * sizeof(double));
	}
	c->ref_bwd(st->din_ref, st->dout_h, st->hin, c);
	check_reference_fd(st);

	/* twice: the first backward writes the gradients, the second accumulates into them */
	for (int pass = 1; pass <= 2; pass++) {
		TG_OK_OR_FAIL(tg_backward_from(st->out_t[0], st->dout.view));
		st->npass[pass - 1] = tg_tape_num_nodes();
		for (int i = 0; i < c->nin; i++) {
			if (!st->din_ref[i])
				continue;
			double *got = read_f64(st->din[i].view, numel(&c->in[i]));
			double e = nmse(got, st->din_ref[i], numel(&c->in[i]), (double)pass);
			CHECK(e <= NMSE_TOL, "backward (%s) gradient of input %d: NMSE %.3g > %.1g",
			      pass == 1 ? "write" : "accumulate", i, e, NMSE_TOL);
			print_message("  backward (%s) input %d: NMSE %.2g\n", pass == 1 ? "write" : "accumulate", i, e);
			free(got);
		}
	}

	check_modes(st);

	/* finite differences of L = sum(out * R) on the backend, at sampled elements */
	for (int i = 0; i < c->nin; i++) {
		if (!st->din_ref[i])
			continue;
		int64_t n = numel(&c->in[i]);
		double *g = read_f64(st->din[i].view, n); /* = 2 * gradient after the two passes */
		double gmax = 1e-12, worst = 0;
		for (int64_t k = 0; k < n; k++)
			gmax = fmax(gmax, fabs(g[k] / 2));
		float u[FD_SAMPLES];
		tg_fill f = {TG_FILL_UNIFORM, 0.0f, 1.0f, case_seed, ++stream_counter};
		assert_int_equal(tg_fill_host(u, FD_SAMPLES, &f), 0);
		for (int s = 0; s < FD_SAMPLES && s < n; s++) {
			int64_t k = (int64_t)(u[s] * (float)n);
			k = k >= n ? n - 1 : k;
			float x = st->fin[i][k];
			double l[2];
			for (int side = 0; side < 2; side++) {
				TG_OK_OR_FAIL(tg_graph_reset());
				st->fin[i][k] = side ? x - (float)FD_STEP : x + (float)FD_STEP;
				TG_OK_OR_FAIL(tg_tensor_from_host(st->in_t[i], st->fin[i], (size_t)n * sizeof(float)));
				TG_OK_OR_FAIL(c->run(st->out_t, st->in_t, c));
				l[side] = backend_L(st);
			}
			double dx = (double)(x + (float)FD_STEP) - (double)(x - (float)FD_STEP);
			st->fin[i][k] = x;
			TG_OK_OR_FAIL(tg_tensor_from_host(st->in_t[i], st->fin[i], (size_t)n * sizeof(float)));
			double fd = (l[0] - l[1]) / dx, an = g[k] / 2;
			double rel = fabs(fd - an) / (fabs(an) + 0.1 * gmax);
			worst = fmax(worst, rel);
			if (!(rel < 2e-2))
				print_message("  finite difference of input %d at %lld: %.6g, gradient %.6g\n", i, (long long)k, fd, an);
		}
		CHECK(worst < 2e-2, "finite differences of input %d disagree with the gradient (relative %.3g)", i, worst);
		print_message("  finite differences input %d: worst relative error %.2g\n", i, worst);
		free(g);
	}
}

/* One row under one tiling: its tasks in one tile, or in several uneven ones (tiles of two
 * rows, seven at most: a 17-row op runs as tiles of 3, 3, 3, 2, 2, 2, 2 rows). */
typedef struct run_spec {
	const op_case *c;
	int tiled;
} run_spec;
static run_spec *runs;

static void run_case(void **statep)
{
	const run_spec *run = *statep;
	const op_case *c = run->c;
	state s, *st = &s;
	memset(st, 0, sizeof s);
	st->c = c;
	case_seed = tg_test_seed("op harness") + (uint64_t)(c - cases) * 7919u;
	stream_counter = 0;
	print_message("%s %s on %s, %s\n", c->op, c->label, BACKEND_NAME, run->tiled ? "tiled" : "one tile");

	TG_OK_OR_FAIL(run->tiled ? tg_set_tiling(2, 7) : tg_set_tiling(0, 1));
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_set_backend(TG_TEST_BACKEND));
	make_inputs(st);
	int rc = c->run(st->out_t, st->in_t, c);
	int unsupported = rc == TG_ENODEV;
	if (rc < 0 && !unsupported)
		fail_msg("%s %s: %s", c->op, c->label, tg_last_error());
	if (!unsupported) {
		st->nfwd = tg_tape_num_nodes();
		check_forward(st);
		if (c->ref_bwd) {
			check_backward(st);
		} else {
			print_message("  backward: not applicable (%s has no backward)\n", c->op);
			st->npass[0] = st->npass[1] = st->nfwd;
			check_modes(st);
		}
	}
	TG_OK_OR_FAIL(tg_wait_all());
	TG_OK_OR_FAIL(tg_graph_reset());
	int bad = 0;
	for (int i = 0; i < c->nin; i++) {
		int updated = 0;
		for (int k = 0; k < c->ninplace; k++)
			updated |= c->inplace[k] == i;
		/* inputs not updated in place must be exactly as given; every pad must be intact */
		bad += guarded_free(&st->in[i], !updated, "input");
		bad += guarded_free(&st->din[i], 0, "gradient");
		free(st->fin[i]);
		free(st->hin[i]);
		free(st->din_ref[i]);
	}
	for (int k = 0; k < c->nout; k++)
		bad += guarded_free(&st->out[k], 0, "output");
	bad += guarded_free(&st->dout, 1, "output gradient R");
	free(st->dout_h);
	TG_OK_OR_FAIL(tg_set_backend(TG_BACKEND_ANY));
	TG_OK_OR_FAIL(tg_set_tiling(0, 0));
	if (unsupported) {
		print_message("  NOT SUPPORTED on %s: %s\n", BACKEND_NAME, tg_last_error());
		unsupported_rows++;
		skip();
	}
	CHECK(bad == 0, "%d guard elements changed", bad);
	if (st->failures)
		fail_msg("%s %s on %s: %d check(s) failed", c->op, c->label, BACKEND_NAME, st->failures);
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
		double worst_h = 0, worst_b = 0;
		for (int i = 0; i < N * H; i++)
			worst_h = fmax(worst_h, fabs(h[k][i] - h[0][i]));
		for (int i = 0; i < H; i++)
			worst_b = fmax(worst_b, fabs(db[k][i] - db[0][i]) / (fabs(db[0][i]) + 1e-3));
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

/* Every op of ops.def must have rows. */
static void every_op_has_rows(void **unused)
{
	(void)unused;
	int missing = 0;
	for (int i = 0; i < tg_ops_builtin_count(); i++) {
		const tg_op_desc *op = tg_ops_builtin(i);
		assert_non_null(op);
		int rows_for_op = 0;
		for (int k = 0; k < NCASES; k++)
			rows_for_op += strcmp(cases[k].op, op->name) == 0;
		if (!rows_for_op) {
			print_message("op '%s' has no row in the op harness\n", op->name);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
}

int main(void)
{
	tg_test_seed("op harness");
	TG_TEST_INIT("eager", -1, TG_TEST_BACKEND == TG_BACKEND_CUDA ? -1 : 0);
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	if (TG_TEST_BACKEND == TG_BACKEND_CUDA && info.ncuda == 0) {
		printf("SKIP: no CUDA worker on this machine (CUDA kernels %s in this build); %d op rows not run\n",
		       info.cuda_compiled ? "compiled" : "not compiled", NCASES);
		tg_shutdown();
		return TG_TEST_SKIP;
	}
	enum { NEXTRA = 5 };
	int nruns = 2 * NCASES, ntests = nruns + NEXTRA;
	struct CMUnitTest *tests = calloc((size_t)ntests, sizeof *tests);
	char (*names)[160] = calloc((size_t)nruns, sizeof *names);
	runs = calloc((size_t)nruns, sizeof *runs);
	tests[0] = (struct CMUnitTest)cmocka_unit_test(every_op_has_rows);
	tests[nruns + 1] = (struct CMUnitTest)cmocka_unit_test(xent_extreme_logits);
	tests[nruns + 2] = (struct CMUnitTest)cmocka_unit_test(xent_targets_out_of_range);
	tests[nruns + 3] = (struct CMUnitTest)cmocka_unit_test(xent_targets_out_of_range_tiled);
	tests[nruns + 4] = (struct CMUnitTest)cmocka_unit_test(tilings_agree);
	for (int i = 0; i < nruns; i++) {
		runs[i].c = &cases[i / 2];
		runs[i].tiled = i % 2;
		snprintf(names[i], sizeof names[i], "%s %s [%s, %s]", runs[i].c->op, runs[i].c->label, BACKEND_NAME,
		         runs[i].tiled ? "tiled" : "one tile");
		tests[i + 1] = (struct CMUnitTest){names[i], run_case, NULL, NULL, &runs[i]};
	}
	int failed = _cmocka_run_group_tests(TG_TEST_BACKEND == TG_BACKEND_CPU ? "ops-cpu" : "ops-cuda", tests,
	                                     (size_t)ntests, NULL, NULL);
	free(tests);
	free(names);
	free(runs);
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
