/*
 * test_graph.c — the tape: exact nodes and edges of a known step, tags, commuting
 * accumulations in fast mode, micro-batches reusing activations, and the DOT export
 * (parsed by Graphviz's dot, byte-identical for identical steps).
 */
#include "tg_test.h"

#include <math.h>
#include <sys/wait.h>

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
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&n->x, "x", TG_F32, TG_SHAPE(4, 3), x));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&n->t, "t", TG_I32, TG_SHAPE(4), t));
	TG_OK_OR_FAIL(tg_tag_layer("fc"));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&n->w, "w", TG_F32, TG_SHAPE(2, 3), w));
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

/* One SGD step of fc -> relu -> softmax_xent: 11 tasks, 13 dependencies, each one named. */
static void known_step_nodes_and_edges(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	net n;
	net_new(&n);
	TG_OK_OR_FAIL(tg_graph_reset());
	net_step(&n);
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
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

	/* an activation written through a view after the forward that read it */
	TG_OK_OR_FAIL(tg_graph_reset());
	net_forward(&n);
	tg_tensor *v;
	float minus[8] = {-5, -5, -5, -5, -5, -5, -5, -5};
	TG_OK_OR_FAIL(tg_tensor_view(&v, n.h, "h.view", TG_SHAPE(4, 2), 0, 0));
	TG_OK_OR_FAIL(tg_tensor_from_host(v, minus, sizeof minus));
	tg_tensor_free(v);
	rc = tg_backward(n.loss);
	assert_int_equal(rc, TG_ESTATE);
	assert_non_null(strstr(tg_last_error(), "'h' was overwritten"));
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
	};
	return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}
