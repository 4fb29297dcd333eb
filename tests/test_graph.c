/*
 * test_graph.c — the tape: exact nodes and edges of a known step, tags, commuting
 * accumulations in fast mode, micro-batches reusing activations, and the DOT export
 * (parsed by Graphviz's dot, byte-identical for identical steps).
 */
#include "tg_test.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

/* fsync, as the library sees it: this definition interposes on the C library's, so that a
 * test can make it fail (the library must then report the error and remove its temporary). */
static int fail_fsync;
int fsync(int fd)
{
	if (fail_fsync) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

/* umask, as the library sees it: counted, since the library must never call it (setting the
 * umask to read it opens a window in which other threads create files world-writable). */
static int umask_calls;
mode_t umask(mode_t mask)
{
	umask_calls++;
	return (mode_t)syscall(SYS_umask, mask);
}

typedef struct net {
	tg_tensor *x, *w, *b, *z, *h, *a, *t, *loss;
} net;

static void net_new(net *n)
{
	float x[4 * 3], w[2 * 3];
	int32_t t[4] = {0, 1, 1, 0};
	for (int i = 0; i < 12; i++)
		x[i] = (float)(i % 5) - 2.0f;
	for (int i = 0; i < 6; i++)
		w[i] = 0.1f * (float)(i - 3);
	TG_OK_OR_FAIL(tg_tag_layer("data"));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&n->x, "x", TG_F32, TG_SHAPE(4, 3), x, sizeof x));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&n->t, "t", TG_I32, TG_SHAPE(4), t, sizeof t));
	TG_OK_OR_FAIL(tg_tag_layer("fc"));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&n->w, "w", TG_F32, TG_SHAPE(2, 3), w, sizeof w));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&n->b, "b", TG_F32, TG_SHAPE(2), &(tg_fill){TG_FILL_CONSTANT, 0.5f, 0, 0, 0}));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(n->w, 1));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(n->b, 1));
	TG_OK_OR_FAIL(tg_tensor_new(&n->z, "z", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&n->h, "h", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&n->a, "a", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tag_layer("loss"));
	TG_OK_OR_FAIL(tg_tensor_new(&n->loss, "loss", TG_F32, TG_SHAPE(1)));
	TG_OK_OR_FAIL(tg_tag_layer(NULL));
}

static void net_forward(net *n)
{
	TG_OK_OR_FAIL(tg_tag_layer("fc"));
	TG_OK_OR_FAIL(tg_matmul(n->z, n->x, n->w, TG_TRANS_B));
	TG_OK_OR_FAIL(tg_add(n->h, n->z, n->b));
	TG_OK_OR_FAIL(tg_relu(n->a, n->h));
	TG_OK_OR_FAIL(tg_tag_layer("loss"));
	TG_OK_OR_FAIL(tg_softmax_xent(n->loss, n->a, n->t));
	TG_OK_OR_FAIL(tg_tag_layer(NULL));
}

static void net_step(net *n)
{
	net_forward(n);
	TG_OK_OR_FAIL(tg_backward(n->loss));
	tg_sgd_params p = {0.1f, 0, 0};
	TG_OK_OR_FAIL(tg_sgd(n->w, NULL, &p));
	TG_OK_OR_FAIL(tg_sgd(n->b, NULL, &p));
}

static void net_free(net *n)
{
	tg_tensor *ts[] = {n->x, n->w, n->b, n->z, n->h, n->a, n->t, n->loss};
	for (int i = 0; i < 8; i++)
		tg_tensor_free(ts[i]);
}

static void expect_error_code(int rc, int code, const char *needle)
{
	if (rc != code)
		fail_msg("expected error %d (%s), got %d: %s", code, tg_strerror(code), rc, tg_last_error());
	if (!strstr(tg_last_error(), needle))
		fail_msg("the message \"%s\" does not mention \"%s\"", tg_last_error(), needle);
}

static void expect_preds(const tg_graph *g, int node, const char *task, int npred, const int *preds)
{
	tg_graph_node_info info;
	TG_OK_OR_FAIL(tg_graph_node(g, node, &info));
	if (strcmp(info.task, task) != 0)
		fail_msg("node %d is %s, expected %s", node, info.task, task);
	if (info.npred != npred)
		fail_msg("node %d (%s) has %d predecessors, expected %d", node, task, info.npred, npred);
	for (int i = 0; i < npred; i++) {
		int found = 0;
		for (int j = 0; j < npred; j++)
			found |= tg_graph_pred(g, node, j) == preds[i];
		if (!found)
			fail_msg("node %d (%s) should depend on node %d", node, task, preds[i]);
	}
}

/* Operand j of node: mode, commute flag and (id != 0) tensor. */
static void expect_operand(const tg_graph *g, int node, int j, uint64_t id, unsigned mode, int commute)
{
	tg_graph_operand_info oi;
	TG_OK_OR_FAIL(tg_graph_operand(g, node, j, &oi));
	if (oi.mode != mode || oi.commute != commute)
		fail_msg("node %d operand %d ('%s'): mode %u commute %d, expected mode %u commute %d", node, j, oi.tensor,
		         oi.mode, oi.commute, mode, commute);
	if (id && oi.tensor_id != id)
		fail_msg("node %d operand %d is '%s', not the expected tensor", node, j, oi.tensor);
}

/* Start the runtime, make the net and take the graph of one step. */
static tg_graph *first_step(net *n)
{
	TG_TEST_INIT("eager", -1, 0);
	net_new(n);
	TG_OK_OR_FAIL(tg_graph_reset());
	net_step(n);
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	return g;
}

/* One SGD step of fc -> relu -> softmax_xent: 11 tasks, 13 dependencies, each one named. */
static void known_step_nodes_and_edges(void **unused)
{
	(void)unused;
	net n;
	tg_graph *g = first_step(&n);
	assert_int_equal(tg_tape_num_nodes(), 0);
	assert_int_equal(tg_graph_num_nodes(g), 11);
	assert_int_equal(tg_graph_num_edges(g), 13);
	expect_preds(g, 0, "matmul_fwd", 0, NULL);
	expect_preds(g, 1, "add_fwd", 1, (int[]){0});
	expect_preds(g, 2, "relu_fwd", 1, (int[]){1});
	expect_preds(g, 3, "softmax_xent_fwd", 1, (int[]){2});
	expect_preds(g, 4, "softmax_xent_bwd", 1, (int[]){2});     /* reads a; the seed has no writer */
	expect_preds(g, 5, "relu_bwd", 2, (int[]){4, 1});          /* da, h */
	expect_preds(g, 6, "add_bwd_da", 1, (int[]){5});
	expect_preds(g, 7, "add_bwd_db", 1, (int[]){5});
	expect_preds(g, 8, "matmul_bwd_db", 1, (int[]){6});        /* x needs no gradient: no dx task */
	expect_preds(g, 9, "sgd_update", 2, (int[]){0, 8});        /* after the read of w, and dw */
	expect_preds(g, 10, "sgd_update", 2, (int[]){1, 7});

	tg_graph_node_info info;
	TG_OK_OR_FAIL(tg_graph_node(g, 0, &info));
	assert_string_equal(info.op, "matmul");
	assert_string_equal(info.layer, "fc");
	assert_int_equal(info.phase, TG_PHASE_FWD);
	assert_true(info.flops == 2.0 * 4 * 2 * 3);
	TG_OK_OR_FAIL(tg_graph_node(g, 4, &info));
	assert_string_equal(info.layer, "loss"); /* backward nodes carry their forward node's tags */
	assert_int_equal(info.fwd, 3); /* softmax_xent_bwd differentiates softmax_xent_fwd */
	assert_int_equal(info.phase, TG_PHASE_BWD);
	TG_OK_OR_FAIL(tg_graph_node(g, 8, &info));
	assert_string_equal(info.layer, "fc");
	assert_int_equal(info.fwd, 0);
	TG_OK_OR_FAIL(tg_graph_node(g, 10, &info));
	assert_string_equal(info.layer, "fc"); /* the parameter's layer */
	assert_int_equal(info.fwd, -1);
	assert_int_equal(info.phase, TG_PHASE_OPT);
	assert_int_equal(tg_graph_node(g, 11, &info), TG_EINVAL);
	/* indices out of range, however far: an error, never a read */
	const int wild[] = {-1, INT_MIN, INT_MAX, 11};
	tg_graph_operand_info oi;
	for (int k = 0; k < 4; k++) {
		assert_int_equal(tg_graph_node(g, wild[k], &info), TG_EINVAL);
		assert_int_equal(tg_graph_pred(g, wild[k], 0), TG_EINVAL);
		assert_int_equal(tg_graph_pred(g, 1, wild[k] == 11 ? 1 : wild[k]), TG_EINVAL);
		assert_int_equal(tg_graph_num_operands(g, wild[k]), TG_EINVAL);
		assert_int_equal(tg_graph_operand(g, wild[k], 0, &oi), TG_EINVAL);
		assert_int_equal(tg_graph_operand(g, 0, wild[k] == 11 ? 3 : wild[k], &oi), TG_EINVAL);
	}
	assert_int_equal(tg_graph_node(g, 0, NULL), TG_EINVAL);
	assert_int_equal(tg_graph_num_nodes(NULL), 0);
	tg_graph_free(g);
	net_free(&n);
	TG_OK_OR_FAIL(tg_shutdown());
}

static int run_dot(const char *in, const char *out)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s' 2>&1", in, out);
	int st = system(cmd);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	rewind(f);
	char *buf = malloc((size_t)*len + 1);
	assert_int_equal(fread(buf, 1, (size_t)*len, f), (size_t)*len);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* The DOT parses with Graphviz, has its clusters and edges, and is the same for the same step. */
static void dot_export(void **unused)
{
	(void)unused;
	if (system("dot -V > /dev/null 2>&1") != 0)
		fail_msg("Graphviz's dot is not installed (apt-get install graphviz); the DOT export cannot be checked");
	TG_TEST_INIT("lws", -1, 0);
	net n;
	net_new(&n);
	char *text[2];
	long len[2];
	for (int step = 0; step < 2; step++) {
		TG_OK_OR_FAIL(tg_graph_reset());
		net_step(&n);
		tg_graph *g;
		TG_OK_OR_FAIL(tg_graph_take(&g));
		char path[64];
		snprintf(path, sizeof path, "tests/graph-step%d.dot", step);
		TG_OK_OR_FAIL(tg_graph_dump_dot(g, path));
		tg_graph_free(g);
		assert_int_equal(run_dot(path, "tests/graph-step.svg"), 0);
		text[step] = slurp(path, &len[step]);
	}
	assert_int_equal(len[0], len[1]);
	assert_memory_equal(text[0], text[1], (size_t)len[0]); /* stable ids: diffable */
	assert_non_null(strstr(text[0], "subgraph cluster_0"));
	assert_non_null(strstr(text[0], "label=\"fc\""));
	assert_non_null(strstr(text[0], "n0 -> n1"));
	assert_non_null(strstr(text[0], "n8 -> n9"));
	assert_non_null(strstr(text[0], "style=\"filled,dashed\"")); /* backward */
	assert_non_null(strstr(text[0], "shape=hexagon"));           /* optimizer */
	assert_non_null(strstr(text[0], "#d62828"));                 /* the longest path */
	assert_non_null(strstr(text[0], "differentiates n3"));
	assert_null(strstr(text[0], "cluster_s")); /* no tags: no stage or micro-batch clusters */
	assert_null(strstr(text[0], "cluster_mb"));
	free(text[0]);
	free(text[1]);

	/* an unwritable path: an error, and nothing written */
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	assert_int_equal(tg_graph_dump_dot(g, "no-such-dir/step.dot"), TG_EIO);
	assert_non_null(strstr(tg_last_error(), "no-such-dir/step.dot"));
	tg_graph_free(g);
	net_free(&n);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* Three contributions to one parameter gradient: in deterministic mode each accumulation
 * follows the previous one; in fast mode the accumulations commute (both follow the write)
 * and the optimizer waits for all of them. */
static void accumulations_in_fast_and_deterministic_mode(void **unused)
{
	(void)unused;
	for (int det = 1; det >= 0; det--) {
		tg_config cfg;
		tg_config_default(&cfg);
		cfg.sched = "eager";
		cfg.ncuda = 0;
		cfg.deterministic = det;
		TG_OK_OR_FAIL(tg_init(&cfg));
		net n;
		net_new(&n);
		tg_tensor *z2, *z3, *s1, *s2;
		TG_OK_OR_FAIL(tg_tensor_new(&z2, "z2", TG_F32, TG_SHAPE(4, 2)));
		TG_OK_OR_FAIL(tg_tensor_new(&z3, "z3", TG_F32, TG_SHAPE(4, 2)));
		TG_OK_OR_FAIL(tg_tensor_new(&s1, "s1", TG_F32, TG_SHAPE(4, 2)));
		TG_OK_OR_FAIL(tg_tensor_new(&s2, "s2", TG_F32, TG_SHAPE(4, 2)));
		TG_OK_OR_FAIL(tg_graph_reset());
		TG_OK_OR_FAIL(tg_matmul(n.z, n.x, n.w, TG_TRANS_B));   /* 0 */
		TG_OK_OR_FAIL(tg_matmul(z2, n.x, n.w, TG_TRANS_B));    /* 1 */
		TG_OK_OR_FAIL(tg_matmul(z3, n.x, n.w, TG_TRANS_B));    /* 2 */
		TG_OK_OR_FAIL(tg_add(s1, n.z, z2));                    /* 3 */
		TG_OK_OR_FAIL(tg_add(s2, s1, z3));                     /* 4 */
		TG_OK_OR_FAIL(tg_softmax_xent(n.loss, s2, n.t));       /* 5 */
		TG_OK_OR_FAIL(tg_backward(n.loss));
		TG_OK_OR_FAIL(tg_sgd(n.w, NULL, &(tg_sgd_params){0.1f, 0, 0}));
		tg_graph *g;
		TG_OK_OR_FAIL(tg_graph_take(&g));
		/* backward: 6 xent, 7 add_da (ds1), 8 add_db (dz3), 9 add_da (dz), 10 add_db (dz2),
		 * 11 matmul_db (dw, written) [z3], 12 matmul_db (dw, +=) [z2], 13 matmul_db (dw, +=) [z],
		 * 14 sgd */
		expect_preds(g, 11, "matmul_bwd_db", 1, (int[]){8});
		expect_preds(g, 12, "matmul_bwd_db", 2, (int[]){10, 11});
		if (det) {
			expect_preds(g, 13, "matmul_bwd_db", 2, (int[]){9, 12});
			expect_preds(g, 14, "sgd_update", 4, (int[]){0, 1, 2, 13});
		} else {
			expect_preds(g, 13, "matmul_bwd_db", 2, (int[]){9, 11});
			expect_preds(g, 14, "sgd_update", 5, (int[]){0, 1, 2, 12, 13});
		}
		/* what StarPU was given: the first contribution writes dw, the others accumulate
		 * into it (read-modify-write: a write-only mode would let StarPU hand the task an
		 * uninitialised buffer), commuting only in fast mode */
		uint64_t dw_id = tg_tensor_id(tg_tensor_grad(n.w));
		expect_operand(g, 11, 0, dw_id, TG_W, 0);
		expect_operand(g, 12, 0, dw_id, TG_ACC, !det);
		expect_operand(g, 13, 0, dw_id, TG_ACC, !det);
		for (int node = 11; node <= 13; node++) {
			expect_operand(g, node, 1, 0, TG_R, 0);
			expect_operand(g, node, 2, 0, TG_R, 0);
		}
		expect_operand(g, 14, 0, tg_tensor_id(n.w), TG_RW, 0); /* the update reads and writes w */
		expect_operand(g, 14, 1, dw_id, TG_R, 0);
		assert_int_equal(tg_graph_num_operands(g, 14), 2);
		tg_graph_operand_info oi;
		assert_int_equal(tg_graph_operand(g, 14, 2, &oi), TG_EINVAL);
		assert_int_equal(tg_graph_operand(g, tg_graph_num_nodes(g), 0, &oi), TG_EINVAL);
		/* the same gradient either way (up to rounding when commuting), and not zero */
		static float dw[2][6];
		TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(n.w), dw[det], sizeof dw[det]));
		if (!det) {
			double norm = 0;
			for (int i = 0; i < 6; i++) {
				assert_true(fabsf(dw[0][i] - dw[1][i]) <= 1e-6f * (1.0f + fabsf(dw[1][i])));
				norm += fabs(dw[1][i]);
			}
			assert_true(norm > 1e-3);
		}
		tg_graph_free(g);
		tg_tensor *ts[] = {z2, z3, s1, s2};
		for (int i = 0; i < 4; i++)
			tg_tensor_free(ts[i]);
		net_free(&n);
		TG_OK_OR_FAIL(tg_shutdown());
	}
}

/* Two micro-batches through the same activation tensors: parameter gradients accumulate
 * over the two backward passes; differentiating a forward whose activations were since
 * overwritten is an error, not a silent wrong gradient. */
static void micro_batches_reuse_activations(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	net n;
	net_new(&n);
	float g1[6], g2[6];
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_tag_microbatch(0));
	net_forward(&n);
	TG_OK_OR_FAIL(tg_backward(n.loss));
	TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(n.w), g1, sizeof g1));
	TG_OK_OR_FAIL(tg_tag_microbatch(1));
	net_forward(&n);
	TG_OK_OR_FAIL(tg_backward(n.loss));
	TG_OK_OR_FAIL(tg_tag_microbatch(-1));
	TG_OK_OR_FAIL(tg_tensor_to_host(tg_tensor_grad(n.w), g2, sizeof g2));
	for (int i = 0; i < 6; i++)
		assert_true(g2[i] == 2.0f * g1[i]); /* the same data twice: exactly twice the gradient */
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	tg_graph_node_info info;
	TG_OK_OR_FAIL(tg_graph_node(g, 0, &info));
	assert_int_equal(info.microbatch, 0);
	TG_OK_OR_FAIL(tg_graph_node(g, tg_graph_num_nodes(g) - 1, &info));
	assert_int_equal(info.microbatch, 1);
	assert_int_equal(info.phase, TG_PHASE_BWD);
	tg_graph_free(g);

	/* forward, forward again into the same tensors, then the first loss's backward */
	tg_tensor *loss0;
	TG_OK_OR_FAIL(tg_tensor_new(&loss0, "loss0", TG_F32, TG_SHAPE(1)));
	TG_OK_OR_FAIL(tg_matmul(n.z, n.x, n.w, TG_TRANS_B));
	TG_OK_OR_FAIL(tg_add(n.h, n.z, n.b));
	TG_OK_OR_FAIL(tg_relu(n.a, n.h));
	TG_OK_OR_FAIL(tg_softmax_xent(loss0, n.a, n.t));
	net_forward(&n);
	int rc = tg_backward(loss0);
	assert_int_equal(rc, TG_ESTATE);
	assert_non_null(strstr(tg_last_error(), "overwritten"));
	tg_tensor_free(loss0);

	/* an activation written through a part of it after the forward that read it */
	TG_OK_OR_FAIL(tg_graph_reset());
	net_forward(&n);
	tg_tensor *v;
	float minus[4] = {-5, -5, -5, -5};
	TG_OK_OR_FAIL(tg_test_block(n.h, TG_SHAPE(2, 2), 2, 0, &v));
	TG_OK_OR_FAIL(tg_tensor_from_host(v, minus, sizeof minus));
	rc = tg_backward(n.loss);
	assert_int_equal(rc, TG_ESTATE);
	assert_non_null(strstr(tg_last_error(), "'h' was overwritten"));
	net_free(&n);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* Names come from users: quotes, backslashes and newlines are escaped, and a name cannot
 * inject nodes or attributes into the DOT. */
static void dot_escapes_names(void **unused)
{
	(void)unused;
	if (system("dot -V > /dev/null 2>&1") != 0)
		fail_msg("Graphviz's dot is not installed (apt-get install graphviz); the DOT export cannot be checked");
	TG_TEST_INIT("eager", -1, 0);
	static const char *const names[] = {"q\"uote\\back", "line\nbreak", "x\"]; evil [label=\"pwned", "ends\\",
	                                    "tab\there"};
	tg_tensor *a, *b[5];
	TG_OK_OR_FAIL(tg_tensor_new_filled(&a, "a", TG_F32, TG_SHAPE(2, 2), &(tg_fill){TG_FILL_CONSTANT, 1, 0, 0, 0}));
	TG_OK_OR_FAIL(tg_graph_reset());
	for (int i = 0; i < 5; i++) {
		TG_OK_OR_FAIL(tg_tag_layer(names[i]));
		TG_OK_OR_FAIL(tg_tensor_new(&b[i], names[i], TG_F32, TG_SHAPE(2, 2)));
		TG_OK_OR_FAIL(tg_relu(b[i], a));
	}
	TG_OK_OR_FAIL(tg_tag_layer(NULL));
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, "tests/graph-names.dot"));
	tg_graph_free(g);
	long len;
	char *text = slurp("tests/graph-names.dot", &len);
	assert_non_null(strstr(text, "q\\\"uote\\\\back"));   /* q\"uote\\back */
	assert_non_null(strstr(text, "line\\nbreak"));         /* line\nbreak */
	assert_non_null(strstr(text, "x\\\"]; evil [label=\\\"pwned"));
	assert_non_null(strstr(text, "ends\\\\\""));        /* ends\\" closes the string */
	assert_non_null(strstr(text, "tab?here"));
	free(text);
	/* Graphviz reads it: 5 task nodes in 5 clusters, and nothing else */
	FILE *p = popen("dot -Tplain tests/graph-names.dot", "r");
	assert_non_null(p);
	char line[1024];
	int nodes = 0;
	while (fgets(line, sizeof line, p))
		nodes += strncmp(line, "node ", 5) == 0;
	assert_int_equal(pclose(p), 0);
	assert_int_equal(nodes, 5);
	for (int i = 0; i < 5; i++)
		tg_tensor_free(b[i]);
	tg_tensor_free(a);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* The tensors of a step cut by hand into 2 pipeline stages of 2 micro-batches (layers "lin"
 * and "bias" in each), the sum of stage 1's outputs over the micro-batches, and a few tasks
 * outside the micro-batches. */
typedef struct strat {
	tg_tensor *x[2], *w[2], *b[2], *y[2][2], *z[2][2], *sum, *q, *p, *r;
} strat;

static void strat_new(strat *s)
{
	const tg_fill half = {TG_FILL_CONSTANT, 0.5f, 0, 0, 0};
	for (int i = 0; i < 2; i++) {
		TG_OK_OR_FAIL(tg_tensor_new_filled(&s->x[i], "x", TG_F32, TG_SHAPE(4, 3), &half));
		TG_OK_OR_FAIL(tg_tensor_new_filled(&s->w[i], "w", TG_F32, TG_SHAPE(3, 3), &half));
		TG_OK_OR_FAIL(tg_tensor_new_filled(&s->b[i], "b", TG_F32, TG_SHAPE(3), &half));
		for (int j = 0; j < 2; j++) {
			TG_OK_OR_FAIL(tg_tensor_new(&s->y[i][j], "y", TG_F32, TG_SHAPE(4, 3)));
			TG_OK_OR_FAIL(tg_tensor_new(&s->z[i][j], "z", TG_F32, TG_SHAPE(4, 3)));
		}
	}
	TG_OK_OR_FAIL(tg_tensor_new(&s->sum, "sum", TG_F32, TG_SHAPE(4, 3)));
	TG_OK_OR_FAIL(tg_tensor_new(&s->q, "q", TG_F32, TG_SHAPE(3, 3)));
	TG_OK_OR_FAIL(tg_tensor_new(&s->p, "p", TG_F32, TG_SHAPE(4, 3)));
	TG_OK_OR_FAIL(tg_tensor_new(&s->r, "r", TG_F32, TG_SHAPE(4, 3)));
}

static void strat_free(strat *s)
{
	for (int i = 0; i < 2; i++) {
		tg_tensor_free(s->x[i]);
		tg_tensor_free(s->w[i]);
		tg_tensor_free(s->b[i]);
		for (int j = 0; j < 2; j++) {
			tg_tensor_free(s->y[i][j]);
			tg_tensor_free(s->z[i][j]);
		}
	}
	tg_tensor *ts[] = {s->sum, s->q, s->p, s->r};
	for (int i = 0; i < 4; i++)
		tg_tensor_free(ts[i]);
}

/* Record the step: tagged, or the same tasks with no stage or micro-batch. */
static tg_graph *strat_record(strat *s, int tagged)
{
	TG_OK_OR_FAIL(tg_graph_reset());
	for (int st = 0; st < 2; st++)
		for (int mb = 0; mb < 2; mb++) {
			TG_OK_OR_FAIL(tg_tag_stage(tagged ? st : -1));
			TG_OK_OR_FAIL(tg_tag_microbatch(tagged ? mb : -1));
			TG_OK_OR_FAIL(tg_tag_layer("lin"));
			TG_OK_OR_FAIL(tg_matmul(s->y[st][mb], st == 0 ? s->x[mb] : s->z[0][mb], s->w[st], 0));
			TG_OK_OR_FAIL(tg_tag_layer("bias"));
			TG_OK_OR_FAIL(tg_add(s->z[st][mb], s->y[st][mb], s->b[st]));
		}
	/* stage 1's reduction over the micro-batches (as the trainer sums gradients): micro-batch
	 * -1, no layer */
	TG_OK_OR_FAIL(tg_tag_stage(tagged ? 1 : -1));
	TG_OK_OR_FAIL(tg_tag_microbatch(-1));
	TG_OK_OR_FAIL(tg_tag_layer(NULL));
	TG_OK_OR_FAIL(tg_sum(s->sum, 2, (tg_tensor *[]){s->z[1][0], s->z[1][1]}, TG_SUM_TREE, 0));
	/* stage 0 outside the micro-batches (as its optimizer is), in layer "lin" */
	TG_OK_OR_FAIL(tg_tag_stage(tagged ? 0 : -1));
	TG_OK_OR_FAIL(tg_tag_layer("lin"));
	TG_OK_OR_FAIL(tg_relu(s->q, s->w[0]));
	/* micro-batch 1 outside every stage, then a task with no tag at all */
	TG_OK_OR_FAIL(tg_tag_layer(NULL));
	TG_OK_OR_FAIL(tg_tag_stage(-1));
	TG_OK_OR_FAIL(tg_tag_microbatch(tagged ? 1 : -1));
	TG_OK_OR_FAIL(tg_relu(s->p, s->x[1]));
	TG_OK_OR_FAIL(tg_tag_microbatch(-1));
	TG_OK_OR_FAIL(tg_relu(s->r, s->sum));
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	return g;
}

/* The clusters of a DOT file as the writer lays them out (one "subgraph cluster_NAME {" a
 * line, its label on the next line, "}" alone on a line to close it): for every node nI the
 * labels of the clusters around it, outermost first, joined by '/'; and every cluster's
 * name, which Graphviz needs unique (subgraphs of the same name are one subgraph). */
#define STRAT_MAX_NODES 64
#define STRAT_MAX_CLUSTERS 64
typedef struct dot_layout {
	char where[STRAT_MAX_NODES][160];
	int placed[STRAT_MAX_NODES];
	char names[STRAT_MAX_CLUSTERS][64];
	int nclusters;
} dot_layout;

static void copy_until(char *dst, size_t size, const char *src, char end)
{
	size_t n = 0;
	while (src[n] && src[n] != end && n + 1 < size)
		n++;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void dot_parse(const char *text, dot_layout *d)
{
	memset(d, 0, sizeof *d);
	char stack[8][64];
	int depth = 0;
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		const char *t = line + strspn(line, " \t");
		int node, used = 0;
		if (strncmp(t, "subgraph cluster_", 17) == 0) {
			assert_true(depth < 8 && d->nclusters < STRAT_MAX_CLUSTERS);
			copy_until(d->names[d->nclusters++], sizeof d->names[0], t + 17, ' ');
			const char *label = strstr(end, "label=\"");
			assert_non_null(label);
			copy_until(stack[depth++], sizeof stack[0], label + 7, '"');
		} else if (t[0] == '}' && t + 1 == end && depth > 0) {
			depth--;
		} else if (t[0] == 'n' && sscanf(t, "n%d [label=%n", &node, &used) == 1 && used > 0) { /* a node, no edge */
			assert_true(node >= 0 && node < STRAT_MAX_NODES);
			assert_false(d->placed[node]); /* a node is written once */
			d->placed[node] = 1;
			for (int k = 0; k < depth; k++) {
				if (k)
					strcat(d->where[node], "/");
				strcat(d->where[node], stack[k]);
			}
		}
		line = *end ? end + 1 : end;
	}
	assert_int_equal(depth, 0);
}

/* The clusters a node belongs in, from what the graph says of it. */
static void expected_place(const tg_graph_node_info *info, int tagged_graph, char *out, size_t size)
{
	out[0] = '\0';
	char part[64];
	if (info->stage >= 0) {
		snprintf(part, sizeof part, "stage %d", info->stage);
		strncat(out, part, size - strlen(out) - 1);
	}
	part[0] = '\0';
	if (info->microbatch >= 0)
		snprintf(part, sizeof part, "micro-batch %d", info->microbatch);
	else if (tagged_graph && strcmp(info->op, "sum") == 0)
		snprintf(part, sizeof part, "gradient reduction");
	if (part[0]) {
		if (out[0])
			strncat(out, "/", size - strlen(out) - 1);
		strncat(out, part, size - strlen(out) - 1);
	}
	if (info->layer) {
		if (out[0])
			strncat(out, "/", size - strlen(out) - 1);
		strncat(out, info->layer, size - strlen(out) - 1);
	}
}

static int count_in(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Every node of g where its tags put it (the nesting read from text), every cluster named
 * once; returns the number of clusters. */
static int expect_layout(const tg_graph *g, const char *text, int tagged)
{
	static dot_layout d;
	dot_parse(text, &d);
	int n = tg_graph_num_nodes(g);
	assert_true(n > 0 && n <= STRAT_MAX_NODES);
	for (int i = 0; i < n; i++) {
		tg_graph_node_info info;
		TG_OK_OR_FAIL(tg_graph_node(g, i, &info));
		char want[160];
		expected_place(&info, tagged, want, sizeof want);
		if (!d.placed[i])
			fail_msg("node n%d (%s) is not in the DOT", i, info.task);
		if (strcmp(d.where[i], want) != 0)
			fail_msg("node n%d (%s) is in '%s', expected '%s'", i, info.task, d.where[i], want);
	}
	for (int a = 0; a < d.nclusters; a++)
		for (int b = a + 1; b < d.nclusters; b++)
			if (strcmp(d.names[a], d.names[b]) == 0)
				fail_msg("two clusters named cluster_%s (Graphviz would merge them)", d.names[a]);
	return d.nclusters;
}

/* A step's strategy in its DOT: clusters nest stage > micro-batch > layer, the sums over the
 * micro-batches sit in their stage's "gradient reduction" cluster, the node labels and the
 * graph's label say the tags, Graphviz reads every cluster, and the same step gives the same
 * bytes. The same tasks untagged: only the layer clusters, as before. */
static void dot_shows_stages_and_micro_batches(void **unused)
{
	(void)unused;
	if (system("dot -V > /dev/null 2>&1") != 0)
		fail_msg("Graphviz's dot is not installed (apt-get install graphviz); the DOT export cannot be checked");
	TG_TEST_INIT("eager", -1, 0);
	strat s;
	strat_new(&s);
	const char *paths[3] = {"tests/graph-strategy0.dot", "tests/graph-strategy1.dot", "tests/graph-untagged.dot"};
	tg_graph *g[3];
	long len[3];
	char *text[3];
	for (int k = 0; k < 3; k++) {
		g[k] = strat_record(&s, k < 2);
		TG_OK_OR_FAIL(tg_graph_dump_dot(g[k], paths[k]));
		text[k] = slurp(paths[k], &len[k]);
	}
	assert_int_equal(len[0], len[1]);
	assert_memory_equal(text[0], text[1], (size_t)len[0]); /* the same step, the same bytes */

	/* tagged: the top holds the untagged task and micro-batch 1's stageless one; each stage
	 * its micro-batches with their two layers; stage 0 also its "lin" task outside them;
	 * stage 1 its reduction (2 tasks: one add, one copy to the output) */
	assert_int_equal(expect_layout(g[0], text[0], 1), 17);
	int in_reduction = 0, in_s1_mb0_lin = 0;
	for (int i = 0; i < tg_graph_num_nodes(g[0]); i++) {
		tg_graph_node_info info;
		TG_OK_OR_FAIL(tg_graph_node(g[0], i, &info));
		in_reduction += info.stage == 1 && info.microbatch < 0 && strcmp(info.op, "sum") == 0;
		in_s1_mb0_lin += info.stage == 1 && info.microbatch == 0 && info.layer && strcmp(info.layer, "lin") == 0;
	}
	assert_int_equal(in_reduction, 2); /* the layout check above was not vacuous */
	assert_int_equal(in_s1_mb0_lin, 1);
	assert_int_equal(count_in(text[0], "subgraph cluster_"), 17);
	assert_int_equal(count_in(text[0], "label=\"gradient reduction\""), 1);
	assert_non_null(strstr(text[0], "    subgraph cluster_s1_reduction {\n"));
	assert_non_null(strstr(text[0], "      subgraph cluster_s1_mb0_l0 {\n"));
	assert_non_null(strstr(text[0], "\\nmb 0 \xc2\xb7 st 1\\n")); /* "mb 0 · st 1" in a label */
	assert_non_null(strstr(text[0], "relu_fwd\\nst 0\\n"));        /* stage only */
	assert_non_null(strstr(text[0], "relu_fwd\\nmb 1\\n"));        /* micro-batch only */
	assert_non_null(strstr(text[0], "\\n2 pipeline stages, 2 micro-batches (clusters: stage > micro-batch > "
	                                "layer; gradient reduction: 2 tasks)\"];\n"));
	/* Graphviz draws every cluster: distinct names, none empty */
	assert_int_equal(run_dot(paths[0], "tests/graph-strategy.svg"), 0);
	long svg_len;
	char *svg = slurp("tests/graph-strategy.svg", &svg_len);
	assert_int_equal(count_in(svg, "class=\"cluster\""), 17);
	assert_non_null(strstr(svg, "<title>cluster_s1_reduction</title>"));
	free(svg);

	/* untagged: the layer clusters only, the sum among the other tasks, no strategy line */
	assert_int_equal(expect_layout(g[2], text[2], 0), 2);
	assert_null(strstr(text[2], "cluster_s"));
	assert_null(strstr(text[2], "cluster_mb"));
	assert_null(strstr(text[2], "gradient reduction"));
	assert_null(strstr(text[2], "micro-batch"));
	assert_null(strstr(text[2], "pipeline"));
	assert_null(strstr(text[2], "st 0"));
	assert_int_equal(run_dot(paths[2], "tests/graph-untagged.svg"), 0);

	for (int k = 0; k < 3; k++) {
		tg_graph_free(g[k]);
		free(text[k]);
	}
	strat_free(&s);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Temporary files the writer left in dir. */
static int leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, ".taskgrad-", 10) == 0;
	closedir(d);
	return n;
}

static void expect_unchanged(const char *path, const char *text)
{
	long len;
	char *now = slurp(path, &len);
	if (strcmp(now, text) != 0)
		fail_msg("'%s' changed: '%s'", path, now);
	free(now);
}

/* Output files: replaced whole or not at all, only when they are regular files; every
 * failure of the write (the data, fsync) is an error and leaves no temporary file. */
static void output_files_are_replaced_whole_or_not_at_all(void **unused)
{
	(void)unused;
	net n;
	tg_graph *g = first_step(&n);
	const char *dir = "tests/out-tmp";
	assert_int_equal(system("rm -rf tests/out-tmp && mkdir -p tests/out-tmp"), 0);
	const char *file = "tests/out-tmp/step.dot";
	write_text(file, "previous");
	chmod(file, 0640);

	/* a write that fails: the file may not grow past 100 bytes (EFBIG, as ENOSPC would) */
	struct rlimit old, small;
	getrlimit(RLIMIT_FSIZE, &old);
	small = old;
	small.rlim_cur = 100;
	void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &small);
	int rc = tg_graph_dump_dot(g, file);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_xfsz);
	expect_error_code(rc, TG_EIO, file);
	expect_unchanged(file, "previous");
	assert_int_equal(leftovers(dir), 0);

	/* fsync fails */
	fail_fsync = 1;
	rc = tg_graph_dump_dot(g, file);
	fail_fsync = 0;
	expect_error_code(rc, TG_EIO, "fsync");
	expect_unchanged(file, "previous");
	assert_int_equal(leftovers(dir), 0);

	/* success: replaced whole, with the old file's permissions, whatever the umask; a new
	 * file gets 0666 less the umask; and the umask is never touched */
	mode_t old_mask = (mode_t)syscall(SYS_umask, 077);
	umask_calls = 0;
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, file));
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(leftovers(dir), 0);
	chmod(file, 02755); /* set-id bits are never given to the new file */
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, file));
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, "tests/out-tmp/new-077.dot"));
	assert_int_equal(stat("tests/out-tmp/new-077.dot", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	syscall(SYS_umask, 022);
	TG_OK_OR_FAIL(tg_file_check_writable("tests/out-tmp/new-022.dot"));
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, "tests/out-tmp/new-022.dot"));
	assert_int_equal(stat("tests/out-tmp/new-022.dot", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	syscall(SYS_umask, old_mask);
	assert_int_equal(umask_calls, 0);
	assert_int_equal(leftovers(dir), 0);
	chmod(file, 0640);

	/* not regular files: never replaced. A device: only a device node of our own (were the
	 * check broken, a real one, /dev/null, could be replaced as root); where none can be made
	 * (not root, or no right to make device nodes) that case is skipped */
	const char *device = "tests/out-tmp/null";
	if (mknod(device, S_IFCHR | 0666, makedev(1, 3)) == 0 && lstat(device, &st) == 0 && S_ISCHR(st.st_mode)) {
		expect_error_code(tg_graph_dump_dot(g, device), TG_EIO, "character device");
		assert_int_equal(lstat(device, &st), 0);
		assert_true(S_ISCHR(st.st_mode));
	} else {
		printf("# SKIP: a device as the output file (no device node can be made here)\n");
	}
	assert_int_equal(mkfifo("tests/out-tmp/fifo", 0600), 0);
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp/fifo"), TG_EIO, "FIFO");
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp"), TG_EIO, "folder");
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp/new.dot/"), TG_EINVAL, "ends in '/'");
	expect_error_code(tg_graph_dump_dot(g, ""), TG_EINVAL, "no output file");
	expect_error_code(tg_graph_dump_dot(g, NULL), TG_EINVAL, "no output file");
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp/no-such-dir/x.dot"), TG_EIO, "does not exist");
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp/step.dot/x.dot"), TG_EIO, "step.dot");
	assert_int_equal(symlink("fifo", "tests/out-tmp/to-fifo"), 0);
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp/to-fifo"), TG_EIO, "FIFO");
	assert_int_equal(symlink("nothing-here", "tests/out-tmp/dangling"), 0);
	expect_error_code(tg_graph_dump_dot(g, "tests/out-tmp/dangling"), TG_EIO, "symbolic link");
	assert_int_equal(tg_file_check_writable("tests/out-tmp/fifo"), TG_EIO);
	assert_int_equal(tg_file_check_writable("tests/out-tmp/new.dot"), 0);
	assert_int_equal(leftovers(dir), 0);

	/* a link to a regular file: the file is replaced, the link stays a link */
	write_text("tests/out-tmp/target.dot", "old");
	assert_int_equal(symlink("target.dot", "tests/out-tmp/link.dot"), 0);
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, "tests/out-tmp/link.dot"));
	assert_int_equal(lstat("tests/out-tmp/link.dot", &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	long len;
	char *text = slurp("tests/out-tmp/target.dot", &len);
	assert_non_null(strstr(text, "digraph taskgrad"));
	free(text);

	/* names: the longest a folder takes works (the temporary name is short), one more
	 * character is an error */
	char name[PATH_MAX];
	int prefix = snprintf(name, sizeof name, "tests/out-tmp/");
	memset(name + prefix, 'n', NAME_MAX);
	name[prefix + NAME_MAX] = '\0';
	TG_OK_OR_FAIL(tg_graph_dump_dot(g, name));
	name[prefix + NAME_MAX] = 'n';
	name[prefix + NAME_MAX + 1] = '\0';
	expect_error_code(tg_graph_dump_dot(g, name), TG_EIO, "too long");
	assert_int_equal(leftovers(dir), 0);
	/* a name far longer than a message: the message shows its start and end, and the reason */
	static char longname[1400];
	prefix = snprintf(longname, sizeof longname, "tests/out-tmp/");
	memset(longname + prefix, 'x', 1300);
	memcpy(longname + prefix + 1300, ".dot", 5);
	expect_error_code(tg_graph_dump_dot(g, longname), TG_EIO, "File name too long");
	assert_non_null(strstr(tg_last_error(), "cannot write 'tests/out-tmp/xxx"));
	assert_non_null(strstr(tg_last_error(), "xxx...xxx"));
	assert_non_null(strstr(tg_last_error(), "xxx.dot'"));
	assert_int_equal(tg_file_check_writable(longname), TG_EIO);
	assert_non_null(strstr(tg_last_error(), "File name too long"));

	tg_graph_free(g);
	net_free(&n);
	TG_OK_OR_FAIL(tg_shutdown());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(known_step_nodes_and_edges),
		cmocka_unit_test(dot_export),
		cmocka_unit_test(accumulations_in_fast_and_deterministic_mode),
		cmocka_unit_test(micro_batches_reuse_activations),
		cmocka_unit_test(dot_escapes_names),
		cmocka_unit_test(dot_shows_stages_and_micro_batches),
		cmocka_unit_test(output_files_are_replaced_whole_or_not_at_all),
	};
	return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}
