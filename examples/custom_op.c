/*
 * custom_op.c — an op of your own, first-class: y = x * x (elementwise, any rank), with its
 * backward rule dx (=|+=) 2 x dy. It is made exactly as taskgrad's own ops are (taskgrad_op.h):
 * a kernel on tg_mat descriptors, a codelet made by the kit's macros, a descriptor, and a
 * submit function; it runs in row tiles on every worker, honours leading dimensions, is
 * recorded on the tape and differentiated by tg_backward with the built-in ops. Then
 * tg_check_op checks it against a double-precision reference and by finite differences, on
 * every backend present, in one tile and in several.
 *
 *   cc custom_op.c $(pkg-config --cflags --libs taskgrad) -o custom_op
 */
#define _POSIX_C_SOURCE 200809L /* StarPU's headers use POSIX threads */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <taskgrad_op.h>

/* 1. The kernel: plain descriptors, outputs first. (A CUDA version would take the same
 *    arguments and a stream, and go in TG_CUDA_WRAPPER and the codelet's CUDA slot.) */
struct square_args {
	int accumulate; /* backward: add into dx */
};

static void square_fwd(tg_mat y, tg_mat x, const struct square_args *a)
{
	(void)a;
	for (int r = 0; r < y.rows; r++)
		for (int c = 0; c < y.cols; c++) {
			float v = TG_MF(x)[(size_t)r * x.ld + c];
			TG_MF(y)[(size_t)r * y.ld + c] = v * v;
		}
}

static void square_bwd(tg_mat dx, tg_mat dy, tg_mat x, const struct square_args *a)
{
	for (int r = 0; r < dx.rows; r++)
		for (int c = 0; c < dx.cols; c++) {
			float *d = &TG_MF(dx)[(size_t)r * dx.ld + c];
			float g = 2.0f * TG_MF(x)[(size_t)r * x.ld + c] * TG_MF(dy)[(size_t)r * dy.ld + c];
			*d = a->accumulate ? *d + g : g;
		}
}

/* 2. The codelets: the wrappers unpack a task's buffers into tg_mat. */
TG_CPU_WRAPPER(square_fwd, 2, struct square_args)
TG_CPU_WRAPPER(square_bwd, 3, struct square_args)
TG_CODELET(square_fwd_cl, "example_square_fwd", square_fwd_starpu_cpu, NULL);
TG_CODELET(square_bwd_cl, "example_square_bwd", square_bwd_starpu_cpu, NULL);

/* 3. The descriptor: shape check and backward rule. */
static int square_check(const tg_task_spec *s)
{
	int rc = tg_check_f32("square", "y", s->t[0]);
	if (rc == 0)
		rc = tg_check_f32("square", "x", s->t[1]);
	return rc ? rc : tg_check_same_shape("square", "y", s->t[0], "x", s->t[1]);
}

static int square_backward(const tg_node *fwd);

static const tg_op_desc square_op = {.name = "square", .kind = TG_KIND_ELEMENTWISE, .check = square_check,
                                     .backward = square_backward, .doc = "y = x * x"};

/* 4. Submission: one task per row tile (spec.tile), and the backward rule. */
static int square(tg_tensor *y, tg_tensor *x)
{
	struct square_args args = {0};
	tg_task_spec s = tg_spec(&square_op, &square_fwd_cl, "square_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(y));
	tg_spec_add(&s, y, TG_W);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

static int square_backward(const tg_node *fwd)
{
	tg_tensor *dy = tg_grad_of(fwd, 0), *x = tg_node_tensor(fwd, 1), *dx;
	unsigned mode;
	if (!dy)
		return 0;
	int rc = tg_grad_target(fwd, 1, &dx, &mode);
	if (rc < 0 || !dx)
		return rc;
	struct square_args args = {mode == TG_ACC};
	tg_task_spec s = tg_spec(&square_op, &square_bwd_cl, "square_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         3.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dy, TG_R);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

/* 5. The check: run, and references in double (packed operands). */
static int run_square(tg_tensor **out, tg_tensor **in, const tg_check_case *c)
{
	(void)c;
	return square(out[0], in[0]);
}

static int64_t count(const tg_check_operand *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->shape[i];
	return n;
}

static void ref_square(double **res, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < count(&c->in[0]); i++)
		res[0][i] = in[0][i] * in[0][i];
}

static void ref_square_bwd(double **din, double *const *dout, double *const *in, const tg_check_case *c)
{
	for (int64_t i = 0; i < count(&c->in[0]); i++)
		din[0][i] = 2.0 * in[0][i] * dout[0][i];
}

#define CHECK(call)                                                                     \
	do {                                                                            \
		if ((call) < 0) {                                                       \
			fprintf(stderr, "custom_op: %s: %s\n", #call, tg_last_error()); \
			return 1;                                                       \
		}                                                                       \
	} while (0)

int main(void)
{
	tg_config cfg;
	tg_config_default(&cfg);
	CHECK(tg_init(&cfg));

	/* Use it: z = relu(x^2) on a (6, 5) tensor in 3 row tiles; gradient of sum(z * r). */
	enum { R = 6, C = 5 };
	float xs[R * C], rs[R * C], z[R * C], dx[R * C];
	for (int i = 0; i < R * C; i++) {
		xs[i] = 0.25f * (float)(i % 9) - 1.0f;
		rs[i] = (float)(i % 4) - 1.5f;
	}
	tg_tensor *x, *yt, *zt, *r;
	CHECK(tg_tensor_new_from_host(&x, "x", TG_F32, TG_SHAPE(R, C), xs, sizeof xs));
	CHECK(tg_tensor_set_requires_grad(x, 1));
	CHECK(tg_tensor_new(&yt, "y", TG_F32, TG_SHAPE(R, C)));
	CHECK(tg_tensor_new(&zt, "z", TG_F32, TG_SHAPE(R, C)));
	CHECK(tg_tensor_new_from_host(&r, "r", TG_F32, TG_SHAPE(R, C), rs, sizeof rs));
	CHECK(tg_set_tiling(2, 0)); /* tiles of 2 rows: 3 tasks per op */
	CHECK(square(yt, x));
	CHECK(tg_relu(zt, yt));
	CHECK(tg_backward_from(zt, r));
	CHECK(tg_tensor_to_host(zt, z, sizeof z));
	CHECK(tg_tensor_to_host(tg_tensor_grad(x), dx, sizeof dx));
	int bad = 0;
	for (int i = 0; i < R * C; i++) {
		float want_z = xs[i] * xs[i], want_dx = xs[i] != 0.0f ? 2.0f * xs[i] * rs[i] : 0.0f;
		bad += fabsf(z[i] - want_z) > 1e-6f || fabsf(dx[i] - want_dx) > 1e-5f;
	}
	tg_graph *g;
	CHECK(tg_graph_take(&g));
	int square_tasks = 0;
	for (int i = 0; i < tg_graph_num_nodes(g); i++) {
		tg_graph_node_info info;
		CHECK(tg_graph_node(g, i, &info));
		square_tasks += strcmp(info.op, "square") == 0;
	}
	printf("z = relu(x^2) on (%d, %d): %d tasks (%d of them square's), %d dependencies, %s\n", R, C,
	       tg_graph_num_nodes(g), square_tasks, tg_graph_num_edges(g), bad ? "WRONG VALUES" : "values right");
	bad += square_tasks != 6; /* 3 tiles forward, 3 backward */
	tg_graph_free(g);
	CHECK(tg_set_tiling(0, 0));

	/* Check it: rank 3 with odd sizes, every backend, one tile and several. */
	tg_check_case c = {.op = "square", .label = "(3, 7, 5)", .nin = 1, .nout = 1, .run = run_square,
	                   .ref_fwd = ref_square, .ref_bwd = ref_square_bwd};
	c.in[0] = (tg_check_operand){.rank = 3, .shape = {3, 7, 5}, .dtype = TG_F32, .requires_grad = 1};
	c.out[0] = (tg_check_operand){.rank = 3, .shape = {3, 7, 5}, .dtype = TG_F32};
	tg_check_result res;
	int rc = tg_check_op(&c, TG_BACKEND_ANY, 0, 42, NULL, &res);
	printf("tg_check_op: cpu %s, cuda %s%s%s\n", tg_check_verdict_name(res.cpu), tg_check_verdict_name(res.cuda),
	       rc ? ": " : "", rc ? tg_last_error() : "");
	bad += rc != 0 || res.cpu != TG_CHECK_PASS;

	tg_tensor_free(x);
	tg_tensor_free(yt);
	tg_tensor_free(zt);
	tg_tensor_free(r);
	CHECK(tg_shutdown());
	if (bad)
		fprintf(stderr, "custom_op: %d problem(s)\n", bad);
	return bad ? 1 : 0;
}
