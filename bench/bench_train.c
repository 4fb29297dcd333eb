/*
 * bench_train.c — training throughput of the models: tokens per second of whole AdamW steps
 * (forward, loss, backward, clipping, updates) for the configurations of the issue, and the
 * fraction of the machine's sgemm rate they reach:
 *
 *   GEMM flops of a step (the matmul and attention tasks of its graph) / step time
 *   / the multi-threaded OpenBLAS sgemm rate measured at the start of the same run.
 *
 * Batches are random byte tokens (the speed does not depend on them). Usage:
 *   bench_train [--steps N] [--warmup N] [--clip X] [--tile-rows N] [--max-tiles N] [--json]
 *               [--sched POLICY] [--ncpu N] [--micro-batches M] [--reduce deterministic|redux]
 *               [--pipeline K] [--schedule gpipe|1f1b] [--tensor-parallel N]
 *               [--batch N] [--layers N] [--dmodel N] [--heads N] [--ctx N] [CONFIG...]
 * CONFIG: gpt-small, gpt-medium, lstm (default: all); --batch ... --ctx replace that size in
 * every CONFIG. The parallel strategies are the trainer's (tg_train_config), --ncpu the CPU
 * workers (default: StarPU's, all cores). Each configuration reports the median step time
 * after the warm-up steps, tokens/s of that step, and the peak resident memory of the process
 * (getrusage's ru_maxrss: the peak so far, so with several CONFIGs in one run a later one
 * reports at least an earlier one's; one CONFIG per run gives its own). --json prints one JSON
 * line per configuration (bench/compare-torch and bench/parallel read them). A value that
 * cannot run (a micro-batch count that does not divide the batch, more stages than workers or
 * layers, ...) is refused before anything runs, with exit status 2.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "taskgrad.h"

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

typedef struct bconfig {
	const char *name, *arch;
	int layers, dmodel, heads, ctx, batch;
} bconfig;

static const bconfig configs[] = {
	{"gpt-small", "gpt", 4, 128, 4, 64, 8},
	{"gpt-medium", "gpt", 6, 384, 6, 256, 4},
	{"lstm", "lstm", 2, 256, 0, 64, 32},
};
#define NCONFIGS (int)(sizeof configs / sizeof configs[0])

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The best of a few 1024^3 sgemm calls on every core, in GFLOP/s. */
static double sgemm_rate(int threads)
{
	const int n = 1024;
	float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b),
	      *c = malloc((size_t)n * n * sizeof *c);
	if (!a || !b || !c) {
		fprintf(stderr, "bench_train: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < (size_t)n * n; i++) {
		a[i] = (float)(i % 7) * 0.1f;
		b[i] = (float)(i % 5) * 0.1f;
	}
	openblas_set_num_threads(threads);
	double best = 0;
	for (int r = 0; r < 6; r++) {
		double t0 = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
		double g = 2.0 * n * n * n / (now() - t0) / 1e9;
		best = g > best ? g : best;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

typedef struct rnd {
	uint64_t seed;
	int T;
} rnd;

static int rnd_batch(tg_dataset *d, int split, uint64_t index, int B, void *inputs, int32_t *targets)
{
	rnd *r = d->impl;
	size_t n = (size_t)B * r->T;
	uint64_t x = r->seed ^ (index * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)split;
	for (size_t i = 0; i < n; i++) { /* a xorshift: speed does not depend on the tokens */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((int32_t *)inputs)[i] = (int32_t)(x & 255);
		targets[i] = (int32_t)((x >> 8) & 255);
	}
	return 0;
}

typedef struct timing {
	double ms[4096];
	int n, skip;
	double gemm_flops;      /* of one step's graph */
	int tasks;
	int have_graph;
} timing;

static int on_step(tg_trainer *tr, const tg_step_info *info, void *user)
{
	(void)tr;
	timing *t = user;
	if (!t->have_graph) {
		tg_graph *g;
		if (tg_graph_take(&g) == 0) {
			for (int i = 0; i < tg_graph_num_nodes(g); i++) {
				tg_graph_node_info ni;
				if (tg_graph_node(g, i, &ni) == 0 && (!strcmp(ni.op, "matmul") || !strcmp(ni.op, "attention")))
					t->gemm_flops += ni.flops;
			}
			t->tasks = tg_graph_num_nodes(g);
			tg_graph_free(g);
			t->have_graph = 1;
		}
	}
	if (info->step >= t->skip && t->n < 4096)
		t->ms[t->n++] = info->ms;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: bench_train [--steps N] [--warmup N] [--clip X] [--tile-rows N] [--max-tiles N] [--json]\n"
	           "                   [--sched POLICY] [--ncpu N] [--micro-batches M] [--reduce deterministic|redux]\n"
	           "                   [--pipeline K] [--schedule gpipe|1f1b] [--tensor-parallel N]\n"
	           "                   [--batch N] [--layers N] [--dmodel N] [--heads N] [--ctx N] [CONFIG...]\n"
	           "CONFIG: gpt-small, gpt-medium, lstm (default: all); --batch ... --ctx replace that size in each\n");
}

/* The process's peak resident memory so far, in MiB. */
static double peak_mib(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* A configuration's sizes and strategies against each other, before anything runs: NULL if it
 * can run, else why not (in msg). ncpu: the CPU workers asked for, else the cores. */
static const char *check_config(const bconfig *b, const tg_train_config *tc, int ncpu, int ncpu_given, char *msg,
                                size_t n)
{
	int gpt = !strcmp(b->arch, "gpt");
	if (b->batch % tc->micro_batches)
		snprintf(msg, n, "--micro-batches %d: must divide the batch of %d", tc->micro_batches, b->batch);
	else if (tc->pipeline > b->layers)
		snprintf(msg, n, "--pipeline %d: more stages than the %d layers", tc->pipeline, b->layers);
	else if (tc->pipeline > ncpu)
		snprintf(msg, n, "--pipeline %d: more stages than the %d CPU workers (%s); a stage needs one",
		         tc->pipeline, ncpu, ncpu_given ? "--ncpu" : "this machine's cores");
	else if (gpt && b->heads % tc->tensor_parallel)
		snprintf(msg, n, "--tensor-parallel %d: must divide the %d heads", tc->tensor_parallel, b->heads);
	else if (!gpt && b->dmodel % tc->tensor_parallel)
		snprintf(msg, n, "--tensor-parallel %d: must divide the lstm's %d hidden units (--dmodel)",
		         tc->tensor_parallel, b->dmodel);
	else if (!gpt && tc->tensor_parallel > 8)
		snprintf(msg, n, "--tensor-parallel %d: the lstm gathers at most 8 groups", tc->tensor_parallel);
	else if (gpt && b->dmodel % b->heads)
		snprintf(msg, n, "--heads %d: must divide --dmodel %d", b->heads, b->dmodel);
	else
		return NULL;
	return msg;
}

/* --name N: a whole number in [min, max], else a message and exit status 2. */
static int whole(const char *name, const char *s, long min, long max, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < min || v > max) {
		fprintf(stderr, "bench_train: %s: '%s' is not a whole number in [%ld, %ld]\n", name, s, min, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	int steps = 20, warmup = 5, json = 0;
	float clip = 1.0f;
	int tile_rows = 0, max_tiles = 0;
	const char *sched = NULL;
	const bconfig *chosen[NCONFIGS];
	int nchosen = 0;
	int ncpu = -1, micro_batches = 1, pipeline = 1, tensor_parallel = 1, reduce = -1, schedule = -1;
	int sizes[5] = {0}; /* --batch, --layers, --dmodel, --heads, --ctx; 0: the CONFIG's */
	static const char *const size_flags[5] = {"--batch", "--layers", "--dmodel", "--heads", "--ctx"};
	static const long size_max[5] = {64, 64, 8192, 256, 4096};
	for (int i = 1; i < argc; i++) {
		char *end;
		int size = -1;
		for (int k = 0; k < 5; k++)
			if (!strcmp(argv[i], size_flags[k]))
				size = k;
		if ((!strcmp(argv[i], "--steps") || !strcmp(argv[i], "--warmup")) && i + 1 < argc) {
			if (whole(argv[i], argv[i + 1], 1, 4000, strcmp(argv[i], "--steps") ? &warmup : &steps) < 0)
				return 2;
			i++;
		} else if (size >= 0 && i + 1 < argc) {
			if (whole(argv[i], argv[i + 1], 1, size_max[size], &sizes[size]) < 0)
				return 2;
			i++;
		} else if (!strcmp(argv[i], "--ncpu") && i + 1 < argc) {
			if (whole("--ncpu", argv[++i], 1, 4096, &ncpu) < 0)
				return 2;
		} else if (!strcmp(argv[i], "--micro-batches") && i + 1 < argc) {
			if (whole("--micro-batches", argv[++i], 1, 64, &micro_batches) < 0)
				return 2;
		} else if (!strcmp(argv[i], "--pipeline") && i + 1 < argc) {
			if (whole("--pipeline", argv[++i], 1, TG_MAX_STAGES, &pipeline) < 0)
				return 2;
		} else if (!strcmp(argv[i], "--tensor-parallel") && i + 1 < argc) {
			if (whole("--tensor-parallel", argv[++i], 1, TG_MAX_TILES, &tensor_parallel) < 0)
				return 2;
		} else if (!strcmp(argv[i], "--reduce") && i + 1 < argc) {
			i++;
			reduce = !strcmp(argv[i], "deterministic") ? TG_REDUCE_DETERMINISTIC
			         : !strcmp(argv[i], "redux")       ? TG_REDUCE_REDUX
			                                           : -2;
			if (reduce == -2) {
				fprintf(stderr, "bench_train: --reduce: unknown mode '%s' (deterministic or redux)\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--schedule") && i + 1 < argc) {
			i++;
			schedule = !strcmp(argv[i], "gpipe") ? TG_SCHEDULE_GPIPE : !strcmp(argv[i], "1f1b") ? TG_SCHEDULE_1F1B : -2;
			if (schedule == -2) {
				fprintf(stderr, "bench_train: --schedule: unknown schedule '%s' (gpipe or 1f1b)\n", argv[i]);
				return 2;
			}
		} else if ((!strcmp(argv[i], "--tile-rows") || !strcmp(argv[i], "--max-tiles")) && i + 1 < argc) {
			long v = strtol(argv[i + 1], &end, 10);
			if (*end || v < 0 || v > 1 << 20) {
				fprintf(stderr, "bench_train: %s: '%s' is not a whole number >= 0\n", argv[i], argv[i + 1]);
				return 2;
			}
			*(strcmp(argv[i], "--tile-rows") ? &max_tiles : &tile_rows) = (int)v;
			i++;
		} else if (!strcmp(argv[i], "--clip") && i + 1 < argc) {
			clip = strtof(argv[i + 1], &end);
			if (*end || !(clip >= 0)) {
				fprintf(stderr, "bench_train: --clip: '%s' is not a number >= 0\n", argv[i + 1]);
				return 2;
			}
			i++;
		} else if (!strcmp(argv[i], "--sched") && i + 1 < argc) {
			sched = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			int found = 0;
			for (int k = 0; k < NCONFIGS; k++)
				if (!strcmp(argv[i], configs[k].name) && nchosen < NCONFIGS) {
					chosen[nchosen++] = &configs[k];
					found = 1;
				}
			if (!found) {
				fprintf(stderr, "bench_train: unknown argument '%s'\n", argv[i]);
				usage(stderr);
				return 2;
			}
		}
	}
	if (!nchosen)
		for (int k = 0; k < NCONFIGS; k++)
			chosen[nchosen++] = &configs[k];
	if (reduce >= 0 && micro_batches == 1) {
		fprintf(stderr, "bench_train: --reduce: there is nothing to reduce without --micro-batches M > 1\n");
		return 2;
	}
	if (schedule >= 0 && micro_batches == 1) {
		fprintf(stderr, "bench_train: --schedule: orders micro-batches: give --micro-batches M > 1\n");
		return 2;
	}
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	/* The chosen configurations with the sizes given, each checked against the strategies. */
	bconfig sized[NCONFIGS];
	tg_train_config tc0;
	tg_train_config_default(&tc0);
	tc0.micro_batches = micro_batches;
	tc0.reduce = reduce >= 0 ? reduce : TG_REDUCE_DETERMINISTIC;
	tc0.pipeline = pipeline;
	tc0.schedule = schedule >= 0 ? schedule : TG_SCHEDULE_GPIPE;
	tc0.tensor_parallel = tensor_parallel;
	for (int c = 0; c < nchosen; c++) {
		sized[c] = *chosen[c];
		int *f[5] = {&sized[c].batch, &sized[c].layers, &sized[c].dmodel, &sized[c].heads, &sized[c].ctx};
		for (int k = 0; k < 5; k++)
			if (sizes[k] && !(k == 3 && strcmp(sized[c].arch, "gpt")))
				*f[k] = sizes[k];
		char msg[256];
		if (check_config(&sized[c], &tc0, ncpu > 0 ? ncpu : cores, ncpu > 0, msg, sizeof msg)) {
			fprintf(stderr, "bench_train: %s: %s\n", sized[c].name, msg);
			return 2;
		}
		chosen[c] = &sized[c];
	}
	double peak = sgemm_rate(cores);
	for (int c = 0; c < nchosen; c++) {
		const bconfig *b = chosen[c];
		tg_config cfg;
		tg_config_default(&cfg);
		cfg.sched = sched;
		cfg.tile_rows = tile_rows;
		cfg.max_tiles = max_tiles;
		cfg.ncpu = ncpu;
		cfg.deterministic = reduce != TG_REDUCE_REDUX; /* StarPU's reductions: fast mode */
		if (tg_init(&cfg) < 0) { /* what tg_init refuses is the configuration (policy, workers) */
			fprintf(stderr, "bench_train: %s\n", tg_last_error());
			return 2;
		}
		tg_runtime_info info;
		tg_runtime_get_info(&info);
		if (pipeline > info.ncpu + info.ncuda) {
			fprintf(stderr, "bench_train: --pipeline %d: more stages than the %d workers; a stage needs one\n",
			        pipeline, info.ncpu + info.ncuda);
			tg_shutdown();
			return 2;
		}
		if (!json && c == 0) { /* once the runtime took the policy and the workers */
			printf("OpenBLAS %s kernels; multi-threaded sgemm (1024^3, %d threads): %.1f GFLOP/s\n",
			       openblas_get_corename(), cores, peak);
			printf("policy %s, %d CPU workers; micro-batches %d (%s), pipeline %d (%s), tensor-parallel %d; "
			       "median of %d steps after %d\n", info.sched, info.ncpu, micro_batches,
			       tc0.reduce == TG_REDUCE_REDUX ? "redux" : "deterministic", pipeline,
			       tc0.schedule == TG_SCHEDULE_1F1B ? "1f1b" : "gpipe", tensor_parallel, steps, warmup);
			printf("%-11s %9s %9s %9s %10s %7s %11s\n", "config", "tokens/s", "ms/step", "peak MiB", "GEMM GF",
			       "tasks", "of sgemm");
		}
		tg_model_config mc;
		tg_model *m = NULL;
		tg_trainer *tr = NULL;
		rnd r = {1, b->ctx};
		tg_dataset d = {"random", TG_I32, b->ctx, b->ctx, 256, {0, 0}, rnd_batch, NULL, &r};
		tg_train_config tc = tc0;
		tc.steps = warmup + steps;
		tc.batch = b->batch;
		tc.eval_every = 0;
		tc.clip = clip;
		static timing t;
		memset(&t, 0, sizeof t);
		t.skip = warmup;
		if (tg_model_config_default(&mc, b->arch) < 0) {
			fprintf(stderr, "bench_train: %s\n", tg_last_error());
			return 1;
		}
		mc.layers = b->layers;
		mc.dmodel = b->dmodel;
		mc.heads = b->heads;
		mc.ctx = b->ctx;
		int rc = tg_model_new(&m, &mc);
		if (rc == 0)
			rc = tg_trainer_new(&tr, m, &d, &tc);
		if (rc < 0) { /* the sizes or strategies (checked above) did not fit after all */
			fprintf(stderr, "bench_train: %s: %s\n", b->name, tg_last_error());
			return rc == TG_EINVAL ? 2 : 1;
		}
		if (tg_trainer_run(tr, on_step, &t) < 0) {
			fprintf(stderr, "bench_train: %s: %s\n", b->name, tg_last_error());
			return 1;
		}
		tg_trainer_free(tr);
		tg_model_free(m);
		tg_shutdown();
		double mib = peak_mib();
		qsort(t.ms, (size_t)t.n, sizeof *t.ms, cmp_double);
		double ms = t.ms[t.n / 2], tps = b->batch * b->ctx / (ms * 1e-3);
		double frac = t.gemm_flops / (ms * 1e-3) / (peak * 1e9);
		const char *red = tc.reduce == TG_REDUCE_REDUX ? "redux" : "deterministic";
		const char *sch = tc.schedule == TG_SCHEDULE_1F1B ? "1f1b" : "gpipe";
		if (json)
			printf("{\"config\": \"%s\", \"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, \"peak_mib\": %.1f, "
			       "\"gemm_gflop\": %.4f, \"tasks\": %d, \"sgemm_gflops\": %.1f, \"of_sgemm\": %.3f, \"sched\": \"%s\", "
			       "\"workers\": %d, \"ncpu\": %d, \"blas_core\": \"%s\", \"layers\": %d, \"dmodel\": %d, "
			       "\"heads\": %d, \"ctx\": %d, \"batch\": %d, \"micro_batches\": %d, \"reduce\": \"%s\", "
			       "\"pipeline\": %d, \"schedule\": \"%s\", \"tensor_parallel\": %d, \"steps\": %d, \"warmup\": %d}\n",
			       b->name, tps, ms, mib, t.gemm_flops / 1e9, t.tasks, peak, frac, info.sched, info.ncpu + info.ncuda,
			       info.ncpu, info.blas_core, b->layers, b->dmodel, b->heads, b->ctx, b->batch, tc.micro_batches,
			       red, tc.pipeline, sch, tc.tensor_parallel, t.n, warmup);
		else
			printf("%-11s %9.0f %9.2f %9.0f %10.3f %7d %10.0f%%\n", b->name, tps, ms, mib, t.gemm_flops / 1e9,
			       t.tasks, 100 * frac);
		fflush(stdout);
	}
	return 0;
}
