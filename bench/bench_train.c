/*
 * bench_train.c — training throughput of the models: tokens per second of whole AdamW steps
 * (forward, loss, backward, clipping, updates) for the configurations of the issue, and the
 * fraction of the machine's sgemm rate they reach:
 *
 *   GEMM flops of a step (the matmul and attention tasks of its graph) / step time
 *   / the multi-threaded OpenBLAS sgemm rate measured at the start of the same run.
 *
 * Batches are random byte tokens (the speed does not depend on them). Usage:
 *   bench_train [--steps N] [--warmup N] [--clip X] [--tile-rows N] [--max-tiles N] [--json] [--sched POLICY] [CONFIG...]
 * CONFIG: gpt-small, gpt-medium, lstm (default: all). --json prints one JSON line per
 * configuration (bench/compare-torch reads them).
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	fprintf(f, "Usage: bench_train [--steps N] [--warmup N] [--clip X] [--tile-rows N] [--max-tiles N] [--json] [--sched POLICY] [CONFIG...]\n"
	           "CONFIG: gpt-small, gpt-medium, lstm (default: all)\n");
}

int main(int argc, char **argv)
{
	int steps = 20, warmup = 5, json = 0;
	float clip = 1.0f;
	int tile_rows = 0, max_tiles = 0;
	const char *sched = NULL;
	const bconfig *chosen[NCONFIGS];
	int nchosen = 0;
	for (int i = 1; i < argc; i++) {
		char *end;
		if ((!strcmp(argv[i], "--steps") || !strcmp(argv[i], "--warmup")) && i + 1 < argc) {
			long v = strtol(argv[i + 1], &end, 10);
			if (*end || v < 1 || v > 4000) {
				fprintf(stderr, "bench_train: %s: '%s' is not a whole number in [1, 4000]\n", argv[i], argv[i + 1]);
				return 2;
			}
			*(strcmp(argv[i], "--steps") ? &warmup : &steps) = (int)v;
			i++;
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
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	double peak = sgemm_rate(cores);
	if (!json)
		printf("OpenBLAS %s kernels; multi-threaded sgemm (1024^3, %d threads): %.1f GFLOP/s\n"
		       "%-11s %9s %9s %10s %7s %11s\n", openblas_get_corename(), cores, peak, "config", "tokens/s", "ms/step", "GEMM GF", "tasks",
		       "of sgemm");
	for (int c = 0; c < nchosen; c++) {
		const bconfig *b = chosen[c];
		tg_config cfg;
		tg_config_default(&cfg);
		cfg.sched = sched;
		cfg.tile_rows = tile_rows;
		cfg.max_tiles = max_tiles;
		if (tg_init(&cfg) < 0) {
			fprintf(stderr, "bench_train: %s\n", tg_last_error());
			return 1;
		}
		tg_model_config mc;
		tg_model *m = NULL;
		tg_trainer *tr = NULL;
		rnd r = {1, b->ctx};
		tg_dataset d = {"random", TG_I32, b->ctx, b->ctx, 256, {0, 0}, rnd_batch, NULL, &r};
		tg_train_config tc;
		tg_train_config_default(&tc);
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
		if (tg_model_new(&m, &mc) < 0 || tg_trainer_new(&tr, m, &d, &tc) < 0 || tg_trainer_run(tr, on_step, &t) < 0) {
			fprintf(stderr, "bench_train: %s: %s\n", b->name, tg_last_error());
			return 1;
		}
		tg_runtime_info info;
		tg_runtime_get_info(&info);
		tg_trainer_free(tr);
		tg_model_free(m);
		tg_shutdown();
		qsort(t.ms, (size_t)t.n, sizeof *t.ms, cmp_double);
		double ms = t.ms[t.n / 2], tps = b->batch * b->ctx / (ms * 1e-3);
		double frac = t.gemm_flops / (ms * 1e-3) / (peak * 1e9);
		if (json)
			printf("{\"config\": \"%s\", \"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, \"gemm_gflop\": %.4f, "
			       "\"tasks\": %d, \"sgemm_gflops\": %.1f, \"of_sgemm\": %.3f, \"sched\": \"%s\", \"workers\": %d, "
			       "\"blas_core\": \"%s\"}\n",
			       b->name, tps, ms, t.gemm_flops / 1e9, t.tasks, peak, frac, info.sched, info.ncpu + info.ncuda,
			       info.blas_core);
		else
			printf("%-11s %9.0f %9.2f %10.3f %7d %10.0f%%\n", b->name, tps, ms, t.gemm_flops / 1e9, t.tasks,
			       100 * frac);
		fflush(stdout);
	}
	return 0;
}
