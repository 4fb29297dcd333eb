/*
 * test_partition.c — partitions: children's shapes and places, values written through
 * children seen in the parent and the other way round, several plans of one tensor and
 * nested plans with the switches between them (recorded on the tape with StarPU's accesses,
 * so the edges are exact), plans kept across steps (no switch when nothing changes), and bad
 * use refused before anything is submitted.
 */
#include "tg_test.h"

static void expect_error(int rc, int code, const char *needle)
{
	if (rc != code)
		fail_msg("expected error %d (%s), got %d; message: %s", code, tg_strerror(code), rc, tg_last_error());
	if (needle && !strstr(tg_last_error(), needle))
		fail_msg("the message \"%s\" does not mention \"%s\"", tg_last_error(), needle);
}

static void expect_shape(const tg_tensor *t, int rank, const int64_t *shape)
{
	char a[64], b[64] = "(";
	for (int i = 0; i < rank; i++)
		snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? ", " : "", (long long)shape[i]);
	strcat(b, ")");
	tg_tensor_shape_str(t, a, sizeof a);
	if (strcmp(a, b) != 0)
		fail_msg("'%s' is %s, expected %s", tg_tensor_name(t), a, b);
}

static tg_tensor *iota(const char *name, int rank, const int64_t *shape)
{
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= shape[i];
	float *v = malloc((size_t)n * sizeof *v);
	assert_non_null(v);
	for (int64_t i = 0; i < n; i++)
		v[i] = (float)i;
	tg_tensor *t;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&t, name, TG_F32, rank, shape, v, (size_t)n * sizeof *v));
	free(v);
	return t;
}

/* Shapes: near-even splits, rank kept when whole indices of dimension 0 go to each child. */
static void shapes_of_children(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *t = iota("t", TG_SHAPE(4, 3, 5)), *c[8];
	TG_OK_OR_FAIL(tg_tensor_partition(t, TG_SPLIT_ROWS, 2, c)); /* 12 rows: 6 + 6 = 2 of dimension 0 each */
	expect_shape(c[0], TG_SHAPE(2, 3, 5));
	expect_shape(c[1], TG_SHAPE(2, 3, 5));
	tg_tensor *again[2];
	TG_OK_OR_FAIL(tg_tensor_partition(t, TG_SPLIT_ROWS, 2, again)); /* the same plan */
	assert_ptr_equal(again[0], c[0]);
	TG_OK_OR_FAIL(tg_tensor_partition(t, TG_SPLIT_ROWS, 5, c)); /* 12 rows: 3, 3, 2, 2, 2 */
	expect_shape(c[0], TG_SHAPE(1, 3, 5));                     /* whole indices of dimension 0 */
	expect_shape(c[2], TG_SHAPE(2, 5));
	expect_shape(c[4], TG_SHAPE(2, 5));
	TG_OK_OR_FAIL(tg_tensor_partition(t, TG_SPLIT_COLS, 2, c)); /* 5 columns: 3, 2 */
	expect_shape(c[0], TG_SHAPE(4, 3, 3));
	expect_shape(c[1], TG_SHAPE(4, 3, 2));
	TG_OK_OR_FAIL(tg_tensor_partition_grid(t, 3, 2, c)); /* 12 x 5: rows 4, 4, 4; columns 3, 2 */
	expect_shape(c[0], TG_SHAPE(4, 3));
	expect_shape(c[5], TG_SHAPE(4, 2));
	tg_tensor *v = iota("v", TG_SHAPE(7)); /* a vector splits along its length */
	TG_OK_OR_FAIL(tg_tensor_partition(v, TG_SPLIT_COLS, 3, c));
	expect_shape(c[0], TG_SHAPE(3));
	expect_shape(c[2], TG_SHAPE(2));
	float got[3];
	TG_OK_OR_FAIL(tg_tensor_to_host(c[1], got, 2 * sizeof(float)));
	assert_true(got[0] == 3.0f && got[1] == 4.0f);
	TG_OK_OR_FAIL(tg_tensor_to_host(c[2], got, 2 * sizeof(float)));
	assert_true(got[0] == 5.0f && got[1] == 6.0f);
	tg_tensor_free(v);
	tg_tensor_free(t);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* Values: written through the children of one plan, read through another plan's, and the
 * parent's; a nested plan inside a child. */
static void values_through_plans(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *t = iota("t", TG_SHAPE(6, 4)), *rows[3], *cols[2], *sub[2];
	TG_OK_OR_FAIL(tg_tensor_partition(t, TG_SPLIT_ROWS, 3, rows));   /* (2, 4) each */
	TG_OK_OR_FAIL(tg_tensor_partition(t, TG_SPLIT_COLS, 2, cols));   /* (6, 2) each */
	TG_OK_OR_FAIL(tg_tensor_partition(rows[1], TG_SPLIT_COLS, 2, sub)); /* rows 2-3, columns 0-1 / 2-3 */
	float m[8] = {-1, -2, -3, -4, -5, -6, -7, -8}, c[12], all[24], s[4];
	TG_OK_OR_FAIL(tg_tensor_from_host(rows[2], m, sizeof m));        /* rows 4-5 := -1 .. -8 */
	TG_OK_OR_FAIL(tg_tensor_from_host(sub[1], m, 4 * sizeof(float))); /* rows 2-3, columns 2-3 := -1 .. -4 */
	TG_OK_OR_FAIL(tg_tensor_to_host(cols[1], c, sizeof c));           /* columns 2-3 */
	float want_c[12] = {2, 3, 6, 7, -1, -2, -3, -4, -3, -4, -7, -8};
	assert_memory_equal(c, want_c, sizeof c);
	TG_OK_OR_FAIL(tg_tensor_to_host(sub[0], s, sizeof s));
	float want_s[4] = {8, 9, 12, 13};
	assert_memory_equal(s, want_s, sizeof s);
	TG_OK_OR_FAIL(tg_tensor_fill(t, &(tg_fill){TG_FILL_CONSTANT, 7, 0, 0, 0}));
	TG_OK_OR_FAIL(tg_tensor_to_host(sub[1], s, sizeof s)); /* a write of the parent reaches every part */
	for (int i = 0; i < 4; i++)
		assert_true(s[i] == 7.0f);
	TG_OK_OR_FAIL(tg_tensor_to_host(t, all, sizeof all));
	for (int i = 0; i < 24; i++)
		assert_true(all[i] == 7.0f);
	tg_tensor_free(t);
	TG_OK_OR_FAIL(tg_shutdown());
}

static int count_task(const tg_graph *g, const char *task)
{
	int n = 0;
	for (int i = 0; i < tg_graph_num_nodes(g); i++) {
		tg_graph_node_info info;
		TG_OK_OR_FAIL(tg_graph_node(g, i, &info));
		n += strcmp(info.task, task) == 0;
	}
	return n;
}

static void expect_node(const tg_graph *g, int i, const char *task, int npred, const int *preds)
{
	tg_graph_node_info info;
	TG_OK_OR_FAIL(tg_graph_node(g, i, &info));
	if (strcmp(info.task, task) != 0)
		fail_msg("node %d is %s, expected %s", i, info.task, task);
	if (info.npred != npred)
		fail_msg("node %d (%s) has %d predecessors, expected %d", i, task, info.npred, npred);
	for (int k = 0; k < npred; k++) {
		int found = 0;
		for (int j = 0; j < npred; j++)
			found |= tg_graph_pred(g, i, j) == preds[k];
		if (!found)
			fail_msg("node %d (%s) should depend on node %d", i, task, preds[k]);
	}
}

/* The switches on the tape, with StarPU's accesses: ops on the parts, then on the parent,
 * then on the parts again. Plans are kept: using the parts twice in a row switches once. */
static void switches_on_the_tape(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *x = iota("x", TG_SHAPE(4, 3)), *y, *z, *xs[2], *ys[2];
	TG_OK_OR_FAIL(tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(4, 3)));
	TG_OK_OR_FAIL(tg_tensor_new(&z, "z", TG_F32, TG_SHAPE(4, 3)));
	TG_OK_OR_FAIL(tg_tensor_partition(x, TG_SPLIT_ROWS, 2, xs));
	TG_OK_OR_FAIL(tg_tensor_partition(y, TG_SPLIT_ROWS, 2, ys));
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_relu(ys[0], xs[0])); /* 0 partition y, 1 partition x, 2 relu */
	TG_OK_OR_FAIL(tg_relu(ys[1], xs[1])); /* 3 relu (no switch: the plans stay) */
	TG_OK_OR_FAIL(tg_relu(z, y));         /* 4 unpartition y, 5 relu */
	TG_OK_OR_FAIL(tg_relu(ys[0], xs[1])); /* 6 partition y, 7 relu */
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	assert_int_equal(tg_graph_num_nodes(g), 8);
	expect_node(g, 0, "partition", 0, NULL);
	expect_node(g, 1, "partition", 0, NULL);
	expect_node(g, 2, "relu_fwd", 2, (int[]){0, 1});
	expect_node(g, 3, "relu_fwd", 2, (int[]){0, 1});
	expect_node(g, 4, "unpartition", 3, (int[]){0, 2, 3}); /* after the writes of both parts */
	expect_node(g, 5, "relu_fwd", 1, (int[]){4});
	expect_node(g, 6, "partition", 2, (int[]){4, 5});      /* after the read of the whole */
	expect_node(g, 7, "relu_fwd", 2, (int[]){1, 6});
	tg_graph_node_info info;
	TG_OK_OR_FAIL(tg_graph_node(g, 0, &info));
	assert_int_equal(info.phase, TG_PHASE_DATA);
	assert_int_equal(info.op_id, -1);
	tg_graph_operand_info oi;
	TG_OK_OR_FAIL(tg_graph_operand(g, 4, 0, &oi)); /* unpartition: the parent is written, the parts read */
	assert_int_equal(oi.mode, TG_W);
	assert_int_equal(oi.tensor_id, tg_tensor_id(y));
	TG_OK_OR_FAIL(tg_graph_operand(g, 4, 1, &oi));
	assert_int_equal(oi.mode, TG_RW);
	assert_int_equal(oi.parent_id, tg_tensor_id(y));
	tg_graph_free(g);
	float want[12], got[12];
	for (int i = 0; i < 12; i++)
		want[i] = (float)i;
	TG_OK_OR_FAIL(tg_tensor_to_host(z, got, sizeof got));
	assert_memory_equal(got, want, sizeof got);
	/* the same again in a new graph: the plans are still there, x is still partitioned */
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_relu(ys[1], xs[0]));
	TG_OK_OR_FAIL(tg_graph_take(&g));
	assert_int_equal(count_task(g, "partition") + count_task(g, "unpartition"), 0); /* nothing to switch */
	tg_graph_free(g);
	tg_tensor_free(x);
	tg_tensor_free(y);
	tg_tensor_free(z);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* Bad use: refused with a message, before anything is recorded or submitted. */
static void bad_use(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *x = iota("x", TG_SHAPE(6, 4)), *y, *sq, *r[3], *c[2], *xb[1];
	TG_OK_OR_FAIL(tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(6, 4)));
	TG_OK_OR_FAIL(tg_tensor_new(&sq, "sq", TG_F32, TG_SHAPE(2, 4)));
	TG_OK_OR_FAIL(tg_tensor_partition(x, TG_SPLIT_ROWS, 3, r)); /* (2, 4) each */
	TG_OK_OR_FAIL(tg_tensor_partition(x, TG_SPLIT_COLS, 2, c)); /* (6, 2) each */
	tg_block blk = {0, 0, 2, {2, 4}};
	TG_OK_OR_FAIL(tg_tensor_partition_blocks(x, 1, &blk, xb)); /* the same place as r[0] */
	TG_OK_OR_FAIL(tg_graph_reset());
	/* parts of two plans of one tensor in one task */
	expect_error(tg_add(sq, r[0], xb[0]), TG_EINVAL, "two partitions of 'x'");
	/* a tensor and a part of it in one task */
	tg_tensor *all[1];
	tg_block whole_block = {0, 0, 2, {6, 4}};
	TG_OK_OR_FAIL(tg_tensor_partition_blocks(x, 1, &whole_block, all));
	expect_error(tg_relu(all[0], x), TG_EINVAL, "part of one");
	expect_error(tg_relu(y, all[0]), 0, NULL);
	expect_error(tg_add(y, x, x), 0, NULL); /* the same tensor twice is fine */
	expect_error(tg_add(sq, r[0], r[0]), 0, NULL);
	expect_error(tg_relu(r[1], r[2]), 0, NULL);
	expect_error(tg_relu(r[1], r[1]), TG_EINVAL, "in-place");
	/* partition x (blocks), relu, unpartition, add, partition x (rows), add, relu; nothing for
	 * the refused ones */
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	assert_int_equal(tg_graph_num_nodes(g), 7);
	assert_int_equal(count_task(g, "partition"), 2);
	assert_int_equal(count_task(g, "unpartition"), 1);
	tg_graph_free(g);
	/* splits that cannot be */
	tg_tensor *k[8];
	expect_error(tg_tensor_partition(x, TG_SPLIT_ROWS, 7, k), TG_EINVAL, "cannot be split into 7");
	expect_error(tg_tensor_partition(x, TG_SPLIT_ROWS, 0, k), TG_EINVAL, "cannot be split");
	expect_error(tg_tensor_partition(x, TG_SPLIT_COLS, -1, k), TG_EINVAL, "cannot be split");
	expect_error(tg_tensor_partition(x, (tg_split)9, 2, k), TG_EINVAL, "unknown split");
	expect_error(tg_tensor_partition_grid(x, 7, 1, k), TG_EINVAL, "cannot be split");
	tg_block two[2] = {{0, 0, 2, {3, 4}}, {2, 1, 2, {2, 2}}};
	expect_error(tg_tensor_partition_blocks(x, 2, two, k), TG_ESHAPE, "overlap");
	tg_block out_of[1] = {{INT64_MAX, 0, 2, {1, 1}}};
	expect_error(tg_tensor_partition_blocks(x, 1, out_of, k), TG_ESHAPE, "does not fit");
	expect_error(tg_tensor_partition(NULL, TG_SPLIT_ROWS, 2, k), TG_EINVAL, "NULL");
	/* a child is freed with its parent; a dropped plan's children are no use */
	expect_error(tg_tensor_free(r[0]), TG_ESTATE, "goes with its parent");
	TG_OK_OR_FAIL(tg_tensor_drop_partition(r[1]));
	float buf[8];
	expect_error(tg_tensor_to_host(r[0], buf, sizeof buf), TG_ESTATE, "dropped");
	expect_error(tg_relu(sq, r[2]), TG_ESTATE, "dropped");
	expect_error(tg_tensor_drop_partition(r[0]), TG_ESTATE, "dropped");
	expect_error(tg_tensor_partition(r[0], TG_SPLIT_ROWS, 2, k), TG_ESTATE, "dropped");
	expect_error(tg_tensor_drop_partition(x), TG_EINVAL, "not part of a partition");
	/* what was written through the dropped plan is in the parent; a new plan works */
	TG_OK_OR_FAIL(tg_tensor_partition(x, TG_SPLIT_ROWS, 3, r));
	TG_OK_OR_FAIL(tg_tensor_to_host(r[1], buf, sizeof buf));
	for (int i = 0; i < 8; i++) /* relu(r[1], r[2]) wrote rows 2-3 with rows 4-5 */
		assert_true(buf[i] == (float)(16 + i));
	TG_OK_OR_FAIL(tg_tensor_to_host(r[0], buf, sizeof buf));
	for (int i = 0; i < 8; i++)
		assert_true(buf[i] == (float)i);
	TG_OK_OR_FAIL(tg_tensor_free(x));
	TG_OK_OR_FAIL(tg_tensor_free(y));
	TG_OK_OR_FAIL(tg_tensor_free(sq));
	TG_OK_OR_FAIL(tg_shutdown());
}

static void expect_values(tg_tensor *t, const float *want, int n)
{
	float got[64];
	assert_true(n <= 64);
	TG_OK_OR_FAIL(tg_tensor_to_host(t, got, (size_t)n * sizeof *got));
	for (int i = 0; i < n; i++)
		if (got[i] != want[i])
			fail_msg("'%s'[%d] is %g, expected %g", tg_tensor_name(t), i, (double)got[i], (double)want[i]);
}

/* A flat buffer packs tensors of any shape (a parameter table): each part is contiguous, ops
 * see its own rows, and gradients can live in the same parts of another flat buffer. */
static void packed_parts_of_a_flat_buffer(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *flat = iota("flat", TG_SHAPE(16)), *p[3];
	tg_block b[3] = {{0, 0, 2, {2, 3}}, {0, 6, 1, {4}}, {0, 10, 2, {3, 2}}};
	TG_OK_OR_FAIL(tg_tensor_partition_blocks(flat, 3, b, p));
	expect_shape(p[0], TG_SHAPE(2, 3));
	expect_shape(p[1], TG_SHAPE(4));
	expect_shape(p[2], TG_SHAPE(3, 2));
	expect_values(p[0], (float[]){0, 1, 2, 3, 4, 5}, 6);
	expect_values(p[1], (float[]){6, 7, 8, 9}, 4);
	expect_values(p[2], (float[]){10, 11, 12, 13, 14, 15}, 6);
	/* a GEMM on two packed parts: (2, 3) x (3, 2) */
	tg_tensor *y, *gflat, *g[3];
	TG_OK_OR_FAIL(tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(2, 2)));
	TG_OK_OR_FAIL(tg_matmul(y, p[0], p[2], 0));
	expect_values(y, (float[]){0 * 10 + 1 * 12 + 2 * 14, 0 * 11 + 1 * 13 + 2 * 15, 3 * 10 + 4 * 12 + 5 * 14,
	                           3 * 11 + 4 * 13 + 5 * 15}, 4);
	/* gradients in the same parts of another flat buffer */
	TG_OK_OR_FAIL(tg_tensor_new_filled(&gflat, "gflat", TG_F32, TG_SHAPE(16), &(tg_fill){TG_FILL_CONSTANT, -9, 0, 0, 0}));
	TG_OK_OR_FAIL(tg_tensor_partition_blocks(gflat, 3, b, g));
	for (int i = 0; i < 3; i += 2) {
		TG_OK_OR_FAIL(tg_tensor_set_requires_grad(p[i], 1));
		TG_OK_OR_FAIL(tg_tensor_set_grad(p[i], g[i]));
		TG_OK_OR_FAIL(tg_zero_grad(p[i]));
	}
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_matmul(y, p[0], p[2], 0));
	TG_OK_OR_FAIL(tg_backward_from(y, NULL)); /* dy = ones: dA = 1 B^T, dB = A^T 1 */
	float all[16];
	TG_OK_OR_FAIL(tg_tensor_to_host(gflat, all, sizeof all));
	float want[16] = {21, 25, 29, 21, 25, 29, -9, -9, -9, -9, 3, 3, 5, 5, 7, 7};
	assert_memory_equal(all, want, sizeof all);
	/* bad blocks of a flat buffer */
	tg_tensor *q[2];
	expect_error(tg_tensor_partition_blocks(flat, 2, (tg_block[]){{0, 0, 2, {2, 3}}, {0, 5, 1, {2}}}, q), TG_ESHAPE,
	             "overlap");
	expect_error(tg_tensor_partition_blocks(flat, 1, (tg_block[]){{0, 12, 2, {2, 3}}}, q), TG_ESHAPE, "does not fit");
	expect_error(tg_tensor_partition_blocks(flat, 1, (tg_block[]){{1, 0, 1, {2}}}, q), TG_ESHAPE, "row 1");
	expect_error(tg_tensor_partition_blocks(flat, 1, (tg_block[]){{0, INT64_MAX, 1, {2}}}, q), TG_ESHAPE, "does not fit");
	tg_tensor_free(y);
	tg_tensor_free(flat);
	tg_tensor_free(gflat);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* Gradients where an op writes the parts of a tensor and another reads the whole, and the
 * other way round: a part's gradient is the same part of the whole's, so the first
 * contribution writes and the next ones add, whichever of the two they reach. */
static void gradients_through_parts(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *w = iota("w", TG_SHAPE(4, 2)), *ws[2], *y, *ys[2], *z, *r, *u, *us[2], *v[2];
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(w, 1));
	TG_OK_OR_FAIL(tg_tensor_partition(w, TG_SPLIT_ROWS, 2, ws));
	r = iota("r", TG_SHAPE(4, 2));
	TG_OK_OR_FAIL(tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&z, "z", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&u, "u", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&v[0], "v0", TG_F32, TG_SHAPE(2, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&v[1], "v1", TG_F32, TG_SHAPE(2, 2)));
	TG_OK_OR_FAIL(tg_tensor_partition(y, TG_SPLIT_ROWS, 2, ys));
	TG_OK_OR_FAIL(tg_tensor_partition(u, TG_SPLIT_ROWS, 2, us));
	float want[8];

	/* parts written, the whole read: z = y * r, y = [2 w0; 3 w1]  ->  dw = [2 r0; 3 r1] */
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_scale(ys[0], ws[0], 2));
	TG_OK_OR_FAIL(tg_scale(ys[1], ws[1], 3));
	TG_OK_OR_FAIL(tg_mul(z, y, r));
	assert_true(tg_tensor_requires_grad(y));
	TG_OK_OR_FAIL(tg_backward_from(z, NULL));
	for (int i = 0; i < 8; i++)
		want[i] = (i < 4 ? 2.0f : 3.0f) * (float)i;
	expect_values(tg_tensor_grad(w), want, 8);

	/* the whole written, its parts read (and the whole again): u = 2 w, v_i = u_i * r_i, z = u
	 * -> dw = 2 (r + 1) */
	TG_OK_OR_FAIL(tg_zero_grad(w));
	TG_OK_OR_FAIL(tg_graph_reset());
	tg_tensor *rs[2];
	TG_OK_OR_FAIL(tg_tensor_partition(r, TG_SPLIT_ROWS, 2, rs));
	TG_OK_OR_FAIL(tg_scale(u, w, 2));
	TG_OK_OR_FAIL(tg_scale(z, u, 1));
	TG_OK_OR_FAIL(tg_mul(v[0], us[0], rs[0]));
	TG_OK_OR_FAIL(tg_mul(v[1], us[1], rs[1]));
	TG_OK_OR_FAIL(tg_backward_many(3, (tg_tensor *[]){z, v[0], v[1]}, NULL));
	for (int i = 0; i < 8; i++)
		want[i] = 2.0f * ((float)i + 1.0f);
	expect_values(tg_tensor_grad(w), want, 8);

	/* only one part reached before the whole: refused, nothing silently overwritten */
	TG_OK_OR_FAIL(tg_zero_grad(w));
	TG_OK_OR_FAIL(tg_graph_reset());
	TG_OK_OR_FAIL(tg_scale(u, w, 2));
	TG_OK_OR_FAIL(tg_scale(z, u, 1));
	TG_OK_OR_FAIL(tg_mul(v[0], us[0], rs[0]));
	expect_error(tg_backward_many(2, (tg_tensor *[]){z, v[0]}, NULL), TG_ENOTSUP, "parts of 'u' have gradients");
	TG_OK_OR_FAIL(tg_wait_all());
	tg_tensor_free(v[0]);
	tg_tensor_free(v[1]);
	tg_tensor_free(u);
	tg_tensor_free(z);
	tg_tensor_free(y);
	tg_tensor_free(r);
	tg_tensor_free(w);
	TG_OK_OR_FAIL(tg_shutdown());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(shapes_of_children, tg_test_teardown),
		cmocka_unit_test_teardown(values_through_plans, tg_test_teardown),
		cmocka_unit_test_teardown(switches_on_the_tape, tg_test_teardown),
		cmocka_unit_test_teardown(bad_use, tg_test_teardown),
		cmocka_unit_test_teardown(packed_parts_of_a_flat_buffer, tg_test_teardown),
		cmocka_unit_test_teardown(gradients_through_parts, tg_test_teardown),
	};
	return cmocka_run_group_tests_name("partition", tests, NULL, NULL);
}
