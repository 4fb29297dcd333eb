/*
 * test_parallel.c — every parallel strategy computes the same training step.
 *
 * Micro-batches (deterministic tree and StarPU reductions), pipeline stages (GPipe, 1F1B),
 * tensor-parallel groups and their combinations, for the gpt and the lstm on real text
 * (../shared/data/tinyshakespeare.txt; SKIP without it), under two policies: the losses of
 * every step and the weights after the last equal the plain run's within 1e-5 (relative);
 * a pipeline alone sums in the plain order and gives the same bits; a deterministic mode
 * gives the same bits under every policy and worker count. Stage tasks run on their stage's
 * workers only; the recorded graph carries micro-batch and stage tags and the reduction is one
 * tree per parameter on the parameter's stage. Misfit strategies are refused, each with its
 * message.
 */
#include "tg_test.h"

#include <math.h>
#include <starpu.h>
#include <sys/stat.h>

static char text_path[4096];
static char tmp_dir[4096];

#define STEPS 3

typedef struct strategy {
	const char *name;
	int micro_batches, reduce, pipeline, schedule, tensor_parallel;
} strategy;

static const strategy plain = {"plain", 1, TG_REDUCE_DETERMINISTIC, 1, TG_SCHEDULE_GPIPE, 1};
static const strategy modes[] = {
	{"micro-batches 4", 4, TG_REDUCE_DETERMINISTIC, 1, TG_SCHEDULE_GPIPE, 1},
	{"micro-batches 4, redux", 4, TG_REDUCE_REDUX, 1, TG_SCHEDULE_GPIPE, 1},
	{"pipeline 2", 1, TG_REDUCE_DETERMINISTIC, 2, TG_SCHEDULE_GPIPE, 1},
	{"micro-batches 4, pipeline 2", 4, TG_REDUCE_DETERMINISTIC, 2, TG_SCHEDULE_GPIPE, 1},
	{"micro-batches 4, pipeline 2, 1f1b", 4, TG_REDUCE_DETERMINISTIC, 2, TG_SCHEDULE_1F1B, 1},
	{"micro-batches 2, 1f1b", 2, TG_REDUCE_DETERMINISTIC, 1, TG_SCHEDULE_1F1B, 1},
	{"tensor-parallel 2", 1, TG_REDUCE_DETERMINISTIC, 1, TG_SCHEDULE_GPIPE, 2},
	{"micro-batches 2, tensor-parallel 2", 2, TG_REDUCE_DETERMINISTIC, 1, TG_SCHEDULE_GPIPE, 2},
	{"micro-batches 4, pipeline 2, tensor-parallel 2", 4, TG_REDUCE_DETERMINISTIC, 2, TG_SCHEDULE_1F1B, 2},
};
#define NMODES (int)(sizeof modes / sizeof modes[0])

typedef struct result {
	float loss[STEPS], val[STEPS], norm[STEPS]; /* norm: of the gradients, before clipping */
	float *w;       /* every weight after the last step */
	int64_t nw;
	int n;
} result;

static int record(tg_trainer *tr, const tg_step_info *info, void *user)
{
	(void)tr;
	result *r = user;
	assert_int_equal(info->step, r->n);
	r->val[r->n] = info->val_loss;
	r->norm[r->n] = info->grad_norm;
	r->loss[r->n++] = info->loss;
	return 0;
}

static void model_config(tg_model_config *mc, const char *arch)
{
	TG_OK_OR_FAIL(tg_model_config_default(mc, arch));
	mc->layers = 2;
	mc->dmodel = 32;
	mc->heads = 4;
	mc->ctx = 24;
	mc->seed = 11;
}

static void train_config(tg_train_config *tc, const strategy *s)
{
	tg_train_config_default(tc);
	tc->steps = STEPS;
	tc->batch = 8;
	tc->lr = 3e-3f;
	tc->warmup = 1;
	tc->eval_every = 2; /* steps 0, 1 and 2 (the last) are evaluated: through the micro-batches too */
	tc->eval_batches = 2;
	tc->micro_batches = s->micro_batches;
	tc->reduce = s->reduce;
	tc->pipeline = s->pipeline;
	tc->schedule = s->schedule;
	tc->tensor_parallel = s->tensor_parallel;
}

/* A runtime, a model, the text and a trainer with strategy s (steps: the run's length). */
typedef struct session {
	tg_model *m;
	tg_dataset *d;
	tg_trainer *tr;
} session;

static void open_session(session *x, const char *arch, const strategy *s, const char *sched, int ncpu, int steps)
{
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.sched = sched;
	cfg.ncpu = ncpu;
	cfg.deterministic = s->reduce != TG_REDUCE_REDUX; /* StarPU's reductions: fast mode only */
	if (tg_init(&cfg) < 0)
		fail_msg("tg_init(%s): %s", sched, tg_last_error());
	TG_OK_OR_FAIL(tg_set_tiling(32, 0)); /* a fixed tiling: the same bits with 1 or 2 workers */
	tg_model_config mc;
	model_config(&mc, arch);
	TG_OK_OR_FAIL(tg_model_new(&x->m, &mc));
	TG_OK_OR_FAIL(tg_dataset_text(&x->d, text_path, mc.ctx, 3));
	tg_train_config tc;
	train_config(&tc, s);
	tc.steps = steps;
	if (steps < STEPS)
		tc.eval_every = 0;
	if (tg_trainer_new(&x->tr, x->m, x->d, &tc) < 0)
		fail_msg("%s, %s: %s", arch, s->name, tg_last_error());
}

static void close_session(session *x)
{
	tg_trainer_free(x->tr);
	tg_dataset_free(x->d);
	tg_model_free(x->m);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* The graph of one step of strategy s (lws, 2 workers); the session stays open. */
static tg_graph *one_step_graph(session *x, const char *arch, const strategy *s)
{
	open_session(x, arch, s, "lws", 2, 1);
	TG_OK_OR_FAIL(tg_trainer_run(x->tr, NULL, NULL));
	tg_graph *g;
	TG_OK_OR_FAIL(tg_graph_take(&g));
	return g;
}

/* Train STEPS steps with strategy s; the losses and final weights into r (r->w malloc'd). */
static void run(const char *arch, const strategy *s, const char *sched, int ncpu, result *r)
{
	session x;
	open_session(&x, arch, s, sched, ncpu, STEPS);
	tg_model *m = x.m;
	memset(r, 0, sizeof *r);
	TG_OK_OR_FAIL(tg_trainer_run(x.tr, record, r));
	assert_int_equal(r->n, STEPS);
	r->nw = tg_model_num_weights(m);
	r->w = malloc((size_t)r->nw * sizeof *r->w);
	assert_non_null(r->w);
	int64_t off = 0;
	for (int i = 0; i < tg_model_num_params(m); i++) {
		tg_tensor *p = tg_model_param(m, i);
		TG_OK_OR_FAIL(tg_tensor_to_host(p, r->w + off, tg_tensor_nbytes(p)));
		off += tg_tensor_numel(p);
	}
	assert_int_equal(off, r->nw);
	close_session(&x);
}

/* ||a - b|| / ||a|| over every weight, in double. */
static double rel_diff(const result *a, const result *b)
{
	double num = 0, den = 0;
	for (int64_t i = 0; i < a->nw; i++) {
		double d = (double)a->w[i] - (double)b->w[i];
		num += d * d;
		den += (double)a->w[i] * (double)a->w[i];
	}
	return sqrt(num / den);
}

static void same_step(const char *arch, const char *what, const result *ref, const result *r)
{
	assert_int_equal(ref->nw, r->nw);
	for (int i = 0; i < STEPS; i++) {
		if (!(fabs((double)r->loss[i] - ref->loss[i]) <= 1e-5 * fabs(ref->loss[i])))
			fail_msg("%s, %s: loss %.9g at step %d, plain %.9g", arch, what, (double)r->loss[i], i,
			         (double)ref->loss[i]);
		if (!(fabs((double)r->val[i] - ref->val[i]) <= 1e-5 * fabs(ref->val[i])))
			fail_msg("%s, %s: validation loss %.9g at step %d, plain %.9g", arch, what, (double)r->val[i], i,
			         (double)ref->val[i]);
		/* the gradient itself (clipping and AdamW would hide a wrong scale in the weights) */
		if (!(fabs((double)r->norm[i] - ref->norm[i]) <= 1e-5 * fabs(ref->norm[i])))
			fail_msg("%s, %s: gradient norm %.9g at step %d, plain %.9g", arch, what, (double)r->norm[i], i,
			         (double)ref->norm[i]);
	}
	double d = rel_diff(ref, r);
	print_message("%-4s %-48s weights within %.2e of plain\n", arch, what, d);
	if (!(d <= 1e-5))
		fail_msg("%s, %s: the weights differ from plain by %.3g (relative)", arch, what, d);
}

static void same_bits(const char *arch, const char *what, const result *a, const result *b)
{
	if (memcmp(a->loss, b->loss, sizeof a->loss) != 0 || memcmp(a->val, b->val, sizeof a->val) != 0 ||
	    memcmp(a->norm, b->norm, sizeof a->norm) != 0)
		fail_msg("%s, %s: losses are not bit-identical (%.9g vs %.9g at the last step)", arch, what,
		         (double)a->loss[STEPS - 1], (double)b->loss[STEPS - 1]);
	assert_int_equal(a->nw, b->nw);
	for (int64_t i = 0; i < a->nw; i++)
		if (memcmp(&a->w[i], &b->w[i], sizeof(float)) != 0)
			fail_msg("%s, %s: weight %lld is %.9g vs %.9g", arch, what, (long long)i, (double)a->w[i],
			         (double)b->w[i]);
}

/* Each strategy (and the combinations) under lws and dmdas: the plain run's losses and
 * weights within 1e-5; the pipeline alone bit for bit (it sums in the plain order). */
static void every_strategy_computes_the_plain_step(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"}, *pols[] = {"lws", "dmdas"};
	for (int a = 0; a < 2; a++) {
		static result ref, r;
		run(archs[a], &plain, "eager", 2, &ref);
		assert_true(ref.loss[STEPS - 1] < ref.loss[0]); /* it trains */
		for (int k = 0; k < NMODES; k++)
			for (int p = 0; p < 2; p++) {
				char what[160];
				snprintf(what, sizeof what, "%s, %s", modes[k].name, pols[p]);
				run(archs[a], &modes[k], pols[p], 2, &r);
				same_step(archs[a], what, &ref, &r);
				if (modes[k].micro_batches == 1 && modes[k].tensor_parallel == 1)
					same_bits(archs[a], what, &ref, &r);
				free(r.w);
			}
		free(ref.w);
	}
}

/* The deterministic reduction: the same bits under eager, dmda, dmdas (2 workers) and lws with
 * one worker (where the strategy needs no more). */
static void deterministic_strategies_are_bit_identical(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"}, *pols[] = {"dmda", "dmdas", "lws"};
	const int picks[] = {0, 4, 7};
	for (int a = 0; a < 2; a++)
		for (int k = 0; k < 3; k++) {
			const strategy *s = &modes[picks[k]];
			static result ref, r;
			run(archs[a], s, "eager", 2, &ref);
			for (int p = 0; p < 3; p++) {
				int ncpu = p == 2 && s->pipeline == 1 ? 1 : 2;
				char what[160];
				snprintf(what, sizeof what, "%s, %s with %d workers vs eager with 2", s->name, pols[p], ncpu);
				run(archs[a], s, pols[p], ncpu, &r);
				same_bits(archs[a], what, &ref, &r);
				free(r.w);
			}
			free(ref.w);
		}
}

/* The gradients of one step, element by element (tg_trainer_dump_grads writes every
 * parameter's): with micro-batches, a pipeline and tensor-parallel groups, each gradient equals
 * the plain one within 1e-5 of its largest element. */
static void dump_grads(const char *arch, const strategy *s, const char *path, float *loss)
{
	session x;
	open_session(&x, arch, s, "lws", 2, STEPS);
	TG_OK_OR_FAIL(tg_trainer_dump_grads(x.tr, path, loss));
	close_session(&x);
}

static void gradients_equal_the_plain_ones(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"};
	const strategy *s = &modes[NMODES - 1]; /* micro-batches 4, pipeline 2, 1f1b, tensor-parallel 2 */
	for (int a = 0; a < 2; a++) {
		char p0[4300], p1[4300];
		snprintf(p0, sizeof p0, "%s/grads-plain-%s.safetensors", tmp_dir, archs[a]);
		snprintf(p1, sizeof p1, "%s/grads-split-%s.safetensors", tmp_dir, archs[a]);
		float l0, l1;
		dump_grads(archs[a], &plain, p0, &l0);
		dump_grads(archs[a], s, p1, &l1);
		assert_true(fabsf(l0 - l1) <= 1e-5f * fabsf(l0));
		tg_st_file *f0, *f1;
		TG_OK_OR_FAIL(tg_st_open(&f0, p0));
		TG_OK_OR_FAIL(tg_st_open(&f1, p1));
		assert_int_equal(tg_st_num_tensors(f0), tg_st_num_tensors(f1));
		int compared = 0;
		for (int i = 0; i < tg_st_num_tensors(f0); i++) {
			tg_st_info in;
			TG_OK_OR_FAIL(tg_st_tensor_info(f0, i, &in));
			if (strcmp(in.dtype, "F32") != 0)
				continue; /* the batch */
			int64_t n = (int64_t)(in.nbytes / 4);
			float *x = malloc(in.nbytes), *y = malloc(in.nbytes);
			assert_true(x && y);
			TG_OK_OR_FAIL(tg_st_read_f32(f0, in.name, in.rank, in.shape, x));
			TG_OK_OR_FAIL(tg_st_read_f32(f1, in.name, in.rank, in.shape, y));
			double big = 0, worst = 0;
			for (int64_t k = 0; k < n; k++) {
				big = fmax(big, fabs((double)x[k]));
				worst = fmax(worst, fabs((double)x[k] - (double)y[k]));
			}
			if (!(worst <= 1e-5 * big + 1e-12))
				fail_msg("%s, %s: gradient '%s' differs by %.3g (its largest element %.3g)", archs[a], s->name, in.name,
				         worst, big);
			assert_true(big > 0); /* every parameter has a gradient */
			compared++;
			free(x);
			free(y);
		}
		print_message("%s: %d gradients of '%s' equal the plain ones\n", archs[a], compared, s->name);
		assert_true(compared >= 10);
		tg_st_close(f0);
		tg_st_close(f1);
	}
}

/* ------------------------------------------------------------------ stages on their workers */

static int wrong_worker;

static void where_cpu(void *buffers[], void *arg)
{
	(void)buffers;
	int want = *(const int *)arg;
	volatile double x = 0;
	for (int i = 0; i < 20000; i++)
		x += i;
	if ((int)starpu_worker_get_id() != want)
		__atomic_fetch_add(&wrong_worker, 1, __ATOMIC_RELAXED);
}

static struct starpu_codelet where_cl = {
	.cpu_funcs = {where_cpu},
	.nbuffers = STARPU_VARIABLE_NBUFFERS,
	.name = "where",
};
static const tg_op_desc where_op = {"where", TG_KIND_OTHER, NULL, NULL, "a task that checks its worker"};

/* A task tagged with stage s runs on a worker given to s, under every policy. */
static void stage_tasks_run_on_their_workers(void **unused)
{
	(void)unused;
	const char *pols[] = {"eager", "lws", "ws", "dmda", "dmdas", "prio", "random"};
	for (int p = 0; p < 7; p++) {
		TG_TEST_INIT(pols[p], 2, 0);
		tg_tensor *t[2];
		TG_OK_OR_FAIL(tg_tensor_new(&t[0], "a", TG_F32, TG_SHAPE(4)));
		TG_OK_OR_FAIL(tg_tensor_new(&t[1], "b", TG_F32, TG_SHAPE(4)));
		if (p == 0) { /* the split of the trainer: one CPU worker each; three stages do not fit */
			int w[4];
			TG_OK_OR_FAIL(tg_stage_split(2));
			assert_int_equal(tg_stage_workers(0, w, 4), 1);
			assert_int_equal(w[0], 0);
			assert_int_equal(tg_stage_workers(1, w, 4), 1);
			assert_int_equal(w[0], 1);
			assert_int_equal(tg_stage_split(3), TG_EINVAL);
			assert_non_null(strstr(tg_last_error(), "3 pipeline stages for 2 CPU workers"));
		}
		for (int s = 0; s < 2; s++)
			TG_OK_OR_FAIL(tg_stage_set_workers(s, 1, &s));
		wrong_worker = 0;
		for (int i = 0; i < 200; i++) {
			int s = i % 2;
			TG_OK_OR_FAIL(tg_tag_stage(s));
			tg_task_spec spec = {0};
			spec.op = &where_op;
			spec.cl = &where_cl;
			spec.phase = TG_PHASE_FWD;
			spec.n = 1;
			spec.t[0] = t[s];
			spec.mode[0] = TG_W;
			spec.args = &s;
			spec.args_size = sizeof s;
			TG_OK_OR_FAIL(tg_submit(&spec));
		}
		TG_OK_OR_FAIL(tg_tag_stage(-1));
		TG_OK_OR_FAIL(tg_wait_all());
		if (wrong_worker)
			fail_msg("%s: %d stage tasks ran off their stage's worker", pols[p], wrong_worker);
		tg_graph *g;
		TG_OK_OR_FAIL(tg_graph_take(&g));
		tg_graph_node_info info;
		TG_OK_OR_FAIL(tg_graph_node(g, 3, &info));
		assert_int_equal(info.stage, 1);
		tg_graph_free(g);
		/* bad stages */
		assert_int_equal(tg_tag_stage(TG_MAX_STAGES), TG_EINVAL);
		assert_int_equal(tg_tag_stage(-2), TG_EINVAL);
		int w = 2;
		assert_int_equal(tg_stage_set_workers(0, 1, &w), TG_EINVAL);
		assert_non_null(strstr(tg_last_error(), "worker 2 does not exist"));
		for (int s = 0; s < 2; s++)
			TG_OK_OR_FAIL(tg_stage_set_workers(s, 0, NULL));
		assert_int_equal(tg_stage_workers(0, NULL, 0), 0); /* any worker again */
		tg_tensor_free(t[0]);
		tg_tensor_free(t[1]);
		TG_OK_OR_FAIL(tg_shutdown());
	}
}

/* ------------------------------------------------------------------ the recorded graph */

/* One step of micro-batches 4 and pipeline 2: every forward and backward task carries its
 * micro-batch; the blocks' tasks their stage (block 0: stage 0, block 1: stage 1); the
 * reduction is (M - 1) sum tasks per parameter, on the parameter's stage, with no micro-batch. */
static void graph_shows_the_strategy(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"};
	for (int a = 0; a < 2; a++) {
		session x;
		tg_graph *g = one_step_graph(&x, archs[a], &modes[4]);
		tg_model *m = x.m;
		int per_mb[4] = {0}, sums = 0, stage_seen[2] = {0}, adamw = 0;
		const char *first = a == 0 ? "h.0" : "lstm.l0", *second = a == 0 ? "h.1" : "lstm.l1";
		for (int i = 0; i < tg_graph_num_nodes(g); i++) {
			tg_graph_node_info n;
			TG_OK_OR_FAIL(tg_graph_node(g, i, &n));
			if (strcmp(n.op, "sum") == 0) { /* on the stage of its parameter */
				sums++;
				assert_int_equal(n.microbatch, -1);
				assert_true(n.stage == 0 || n.stage == 1);
				if (n.layer && strcmp(n.layer, first) == 0)
					assert_int_equal(n.stage, 0);
				if (n.layer && strcmp(n.layer, second) == 0)
					assert_int_equal(n.stage, 1);
				continue;
			}
			if (n.phase == TG_PHASE_FWD || n.phase == TG_PHASE_BWD) {
				if (n.microbatch < 0 || n.microbatch > 3)
					fail_msg("%s: task %s (%s) has micro-batch %d", archs[a], n.task, n.op, n.microbatch);
				per_mb[n.microbatch]++;
				if (n.layer && strcmp(n.layer, first) == 0)
					assert_int_equal(n.stage, 0);
				if (n.layer && strcmp(n.layer, second) == 0)
					assert_int_equal(n.stage, 1);
				if (n.stage >= 0)
					stage_seen[n.stage] = 1;
			}
			if (n.phase == TG_PHASE_OPT && strcmp(n.op, "adamw") == 0) {
				adamw++;
				assert_true(n.stage == 0 || n.stage == 1);
			}
		}
		print_message("%s: %d, %d, %d, %d tasks per micro-batch, %d sums, %d adamw\n", archs[a], per_mb[0], per_mb[1],
		              per_mb[2], per_mb[3], sums, adamw);
		for (int j = 1; j < 4; j++)
			assert_int_equal(per_mb[j], per_mb[0]); /* the same sub-graph for each */
		assert_true(per_mb[0] > 0);
		assert_true(stage_seen[0] && stage_seen[1]);
		/* one sum op per parameter, each a binary tree of 4: 3 adds and the copy into the
		 * gradient, each of one task per tile (a parameter of r rows: ceil(r / 32) tiles) */
		int nn = tg_graph_num_nodes(g), *tasks = calloc((size_t)nn, sizeof *tasks), sum_ops = 0;
		assert_non_null(tasks);
		for (int i = 0; i < nn; i++) {
			tg_graph_node_info n;
			TG_OK_OR_FAIL(tg_graph_node(g, i, &n));
			if (strcmp(n.op, "sum") == 0) {
				assert_string_equal(n.task, "sum_tree");
				assert_true(n.op_id >= 0 && n.op_id < nn);
				sum_ops += tasks[n.op_id]++ == 0;
			}
		}
		assert_int_equal(sum_ops, tg_model_num_params(m));
		for (int i = 0; i < nn; i++)
			if (tasks[i])
				assert_int_equal(tasks[i] % 4, 0);
		free(tasks);
		tg_graph_free(g);
		close_session(&x);
	}
}

/* --reduce redux hands the sum to StarPU: M tasks accumulate into one buffer in REDUX mode
 * (no tree of adds), and the sum is copied into the gradients. */
static void redux_uses_starpu_reductions(void **unused)
{
	(void)unused;
	session x;
	tg_graph *g = one_step_graph(&x, "gpt", &modes[1]);
	int redux = 0, tree = 0;
	for (int i = 0; i < tg_graph_num_nodes(g); i++) {
		tg_graph_node_info n;
		TG_OK_OR_FAIL(tg_graph_node(g, i, &n));
		if (strcmp(n.task, "sum_redux") == 0) {
			tg_graph_operand_info o;
			TG_OK_OR_FAIL(tg_graph_operand(g, i, 0, &o));
			assert_int_equal(o.mode, TG_REDUX);
			redux++;
		}
		tree += strcmp(n.task, "sum_tree") == 0;
	}
	assert_int_equal(redux, 4);
	assert_true(tree >= 1); /* the copy into the gradients, by tiles */
	tg_graph_free(g);
	close_session(&x);
}

/* ------------------------------------------------------------------ bad input */

static void misfits_are_refused(void **unused)
{
	(void)unused;
	TG_TEST_INIT("lws", 1, 0);
	struct {
		const char *arch;
		strategy s;
		const char *msg;
	} bad[] = {
		{"gpt", {"", 3, 0, 1, 0, 1}, "3 micro-batches do not divide the batch of 8"},
		{"gpt", {"", 0, 0, 1, 0, 1}, "micro-batches must be in [1, 64], got 0"},
		{"gpt", {"", 2, 7, 1, 0, 1}, "unknown gradient reduction 7"},
		{"gpt", {"", 2, 0, 1, 9, 1}, "unknown pipeline schedule 9"},
		{"gpt", {"", 1, 0, 3, 0, 1}, "3 pipeline stages for 2 layers"},
		{"gpt", {"", 1, 0, 2, 0, 1}, "2 pipeline stages for 1 CPU worker"},
		{"gpt", {"", 2, 1, 1, 0, 1}, "deterministic mode refuses them"},
		{"gpt", {"", 1, 0, 0, 0, 1}, "pipeline stages must be in [1, 64], got 0"},
		{"gpt", {"", 1, 0, 1, 0, 3}, "tensor-parallel 3 must divide the gpt's 4 heads"},
		{"gpt", {"", 1, 0, 1, 0, 0}, "tensor-parallel groups must be >= 1, got 0"},
		{"lstm", {"", 1, 0, 1, 0, 5}, "tensor-parallel 5 must divide the lstm's 32 hidden units"},
		{"lstm", {"", 1, 0, 1, 0, 16}, "tensor-parallel 16: the lstm gathers at most 8 groups"},
		{"mlp", {"", 1, 0, 1, 0, 2}, "the mlp model has no tensor-parallel split"},
		{"mlp", {"", 1, 0, 2, 0, 1}, "the mlp model has no pipeline stages"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tg_model_config mc;
		model_config(&mc, bad[i].arch);
		tg_model *m;
		tg_dataset *d;
		tg_trainer *tr = (tg_trainer *)&tr;
		TG_OK_OR_FAIL(tg_model_new(&m, &mc));
		if (strcmp(bad[i].arch, "mlp") == 0)
			TG_OK_OR_FAIL(tg_dataset_spirals(&d, 64, 0.1f, 3));
		else
			TG_OK_OR_FAIL(tg_dataset_text(&d, text_path, mc.ctx, 3));
		tg_train_config tc;
		train_config(&tc, &bad[i].s);
		int rc = tg_trainer_new(&tr, m, d, &tc);
		if (rc != TG_EINVAL || !strstr(tg_last_error(), bad[i].msg))
			fail_msg("case %zu: got %d '%s', expected TG_EINVAL '%s'", i, rc, tg_last_error(), bad[i].msg);
		assert_null(tr);
		tg_dataset_free(d);
		tg_model_free(m);
	}
	TG_OK_OR_FAIL(tg_shutdown());
}

int main(void)
{
	const char *src = getenv("TG_SRCDIR");
	snprintf(text_path, sizeof text_path, "%s/../shared/data/tinyshakespeare.txt", src ? src : ".");
	FILE *f = fopen(text_path, "rb");
	if (!f) {
		printf("SKIP: %s is not here (the shared data folder beside the project)\n", text_path);
		return TG_TEST_SKIP;
	}
	fclose(f);
	const char *build = getenv("TG_BUILDDIR");
	snprintf(tmp_dir, sizeof tmp_dir, "%s/tests/parallel-tmp", build ? build : ".");
	mkdir(tmp_dir, 0777);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(misfits_are_refused, tg_test_teardown),
		cmocka_unit_test_teardown(stage_tasks_run_on_their_workers, tg_test_teardown),
		cmocka_unit_test_teardown(graph_shows_the_strategy, tg_test_teardown),
		cmocka_unit_test_teardown(redux_uses_starpu_reductions, tg_test_teardown),
		cmocka_unit_test_teardown(gradients_equal_the_plain_ones, tg_test_teardown),
		cmocka_unit_test_teardown(every_strategy_computes_the_plain_step, tg_test_teardown),
		cmocka_unit_test_teardown(deterministic_strategies_are_bit_identical, tg_test_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
