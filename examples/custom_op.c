/*
 * custom_op.c — an op of your own, first-class: y = x * x (elementwise), with its backward
 * rule dx = 2 x dy, recorded on the tape and differentiated by tg_backward like the built-in
 * ops. Only the public header and StarPU are used.
 *
 *   cc custom_op.c $(pkg-config --cflags --libs taskgrad) -o custom_op
 */
#define _POSIX_C_SOURCE 200809L /* StarPU's headers use POSIX threads */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <starpu.h>
#include <taskgrad.h>

/* 1. CPU kernels (rank-1 tensors are StarPU vectors). */
struct square_args {
	int accumulate; /* backward: add into dx */
};

static void square_fwd_cpu(void *buffers[], void *cl_arg)
{
	(void)cl_arg;
	float *y = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
	const float *x = (const float *)STARPU_VECTOR_GET_PTR(buffers[1]);
	for (unsigned i = 0; i < STARPU_VECTOR_GET_NX(buffers[0]); i++)
		y[i] = x[i] * x[i];
}

static void square_bwd_cpu(void *buffers[], void *cl_arg)
{
	const struct square_args *a = cl_arg;
	float *dx = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
	const float *dy = (const float *)STARPU_VECTOR_GET_PTR(buffers[1]);
	const float *x = (const float *)STARPU_VECTOR_GET_PTR(buffers[2]);
	for (unsigned i = 0; i < STARPU_VECTOR_GET_NX(buffers[0]); i++)
		dx[i] = (a->accumulate ? dx[i] : 0.0f) + 2.0f * x[i] * dy[i];
}

/* 2. Codelets: access modes are chosen per task, so nbuffers is variable. */
static struct starpu_perfmodel square_fwd_model = {.type = STARPU_HISTORY_BASED, .symbol = "example_square_fwd"};
static struct starpu_perfmodel square_bwd_model = {.type = STARPU_HISTORY_BASED, .symbol = "example_square_bwd"};
static struct starpu_codelet square_fwd_cl = {
	.cpu_funcs = {square_fwd_cpu}, .nbuffers = STARPU_VARIABLE_NBUFFERS, .model = &square_fwd_model, .name = "square_fwd"};
static struct starpu_codelet square_bwd_cl = {
	.cpu_funcs = {square_bwd_cpu}, .nbuffers = STARPU_VARIABLE_NBUFFERS, .model = &square_bwd_model, .name = "square_bwd"};

/* 3. The descriptor: shape check and backward rule. */
static int square_check(const tg_task_spec *s)
{
	if (tg_tensor_rank(s->t[0]) != 1 || tg_tensor_numel(s->t[0]) != tg_tensor_numel(s->t[1]))
		return tg_set_error(TG_ESHAPE, "square: y and x must be vectors of the same length");
	return 0;
}

static int square_backward(const tg_node *fwd);

static const tg_op_desc square_op = {
	.name = "square", .kind = TG_KIND_ELEMENTWISE, .check = square_check, .backward = square_backward,
	.doc = "y = x * x"};

/* 4. Submission: y = x * x, and the backward rule. */
static int square(tg_tensor *y, tg_tensor *x)
{
	struct square_args args = {0};
	tg_task_spec s = {.op = &square_op, .cl = &square_fwd_cl, .name = "square_fwd", .phase = TG_PHASE_FWD,
	                  .n = 2, .t = {y, x}, .mode = {TG_W, TG_R}, .args = &args, .args_size = sizeof args,
	                  .flops = (double)tg_tensor_numel(y)};
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
	tg_task_spec s = {.op = &square_op, .cl = &square_bwd_cl, .name = "square_bwd", .phase = TG_PHASE_BWD,
	                  .n = 3, .t = {dx, dy, x}, .mode = {mode, TG_R, TG_R}, .args = &args, .args_size = sizeof args,
	                  .flops = 3.0 * (double)tg_tensor_numel(x)};
	return tg_submit(&s);
}

#define N 5
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
	cfg.ncuda = 0;
	CHECK(tg_init(&cfg));
	float xs[N] = {1, -2, 3, 0.5f, -0.25f}, rs[N] = {1, 1, 2, -1, 4}, y[N], dx[N];
	tg_tensor *x, *yt, *z, *r;
	CHECK(tg_tensor_new_from_host(&x, "x", TG_F32, TG_SHAPE(N), xs, sizeof xs));
	CHECK(tg_tensor_set_requires_grad(x, 1));
	CHECK(tg_tensor_new(&yt, "y", TG_F32, TG_SHAPE(N)));
	CHECK(tg_tensor_new(&z, "z", TG_F32, TG_SHAPE(N)));
	CHECK(tg_tensor_new_from_host(&r, "r", TG_F32, TG_SHAPE(N), rs, sizeof rs));

	/* z = relu(x^2): a user op and a built-in op in one graph */
	CHECK(square(yt, x));
	CHECK(tg_relu(z, yt));
	CHECK(tg_backward_from(z, r)); /* the gradient of sum(z * r) */
	CHECK(tg_tensor_to_host(z, y, sizeof y));
	CHECK(tg_tensor_to_host(tg_tensor_grad(x), dx, sizeof dx));
	int bad = 0;
	for (int i = 0; i < N; i++) {
		float want_y = xs[i] * xs[i], want_dx = 2.0f * xs[i] * rs[i];
		printf("x %6.2f   z = relu(x^2) %6.3f   dL/dx %7.3f\n", xs[i], y[i], dx[i]);
		bad += fabsf(y[i] - want_y) > 1e-6f || fabsf(dx[i] - want_dx) > 1e-5f;
	}
	tg_graph *g;
	CHECK(tg_graph_take(&g));
	printf("%d tasks, %d dependencies (square_fwd, relu_fwd, relu_bwd, square_bwd)\n", tg_graph_num_nodes(g),
	       tg_graph_num_edges(g));
	bad += tg_graph_num_nodes(g) != 4;
	tg_graph_free(g);
	tg_tensor_free(x);
	tg_tensor_free(yt);
	tg_tensor_free(z);
	tg_tensor_free(r);
	CHECK(tg_shutdown());
	if (bad)
		fprintf(stderr, "custom_op: %d wrong values\n", bad);
	return bad ? 1 : 0;
}
