/*
 * bench_overhead.c — what taskgrad adds per task, and how fast the MLP steps go.
 *
 *   bench/bench_overhead [--tasks N] [--repeats R]
 *
 * 1. Submission cost: N independent tasks of an empty CPU codelet with two buffers (one
 *    read, one written), submitted with plain starpu_task_insert and through tg_submit
 *    (checks, tape node with its edges, task construction); wall time from the first
 *    submission to the end of starpu_task_wait_for_all, per task. Median of R runs.
 * 2. The MLP of `taskgrad train` (1500 steps of batch 128) under eager, lws and dmda:
 *    steps per second, median of R runs.
 * Figures go to stdout; docs/PERFORMANCE.md keeps the ones measured.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <starpu.h>
#include <taskgrad.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void empty_cpu(void *buffers[], void *arg)
{
	(void)buffers;
	(void)arg;
}

static struct starpu_codelet raw_cl = {.cpu_funcs = {empty_cpu}, .nbuffers = 2, .modes = {STARPU_R, STARPU_W},
                                       .name = "empty_raw"};
static struct starpu_codelet tg_cl = {.cpu_funcs = {empty_cpu}, .nbuffers = STARPU_VARIABLE_NBUFFERS,
                                      .name = "empty"};
static const tg_op_desc empty_op = {.name = "empty", .kind = TG_KIND_OTHER};

#define FAIL(...)                                     \
	do {                                          \
		fprintf(stderr, "bench_overhead: " __VA_ARGS__); \
		fprintf(stderr, ": %s\n", tg_last_error()); \
		exit(1);                              \
	} while (0)

/* N independent tasks: task i reads in[i % K] and writes out[i % K]... independent only if
 * each output is written once: use N distinct outputs, one shared input. */
static double run_submissions(int ntasks, int through_taskgrad)
{
	tg_tensor *in, **out = malloc((size_t)ntasks * sizeof *out);
	if (tg_tensor_new_filled(&in, "in", TG_F32, TG_SHAPE(1), &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0}) < 0)
		FAIL("tensor");
	starpu_data_handle_t hin = NULL, *hout = NULL;
	float *raw_out = NULL, raw_in = 0;
	if (through_taskgrad) {
		for (int i = 0; i < ntasks; i++)
			if (tg_tensor_new(&out[i], "out", TG_F32, TG_SHAPE(1)) < 0)
				FAIL("tensor");
	} else {
		hout = malloc((size_t)ntasks * sizeof *hout);
		raw_out = calloc((size_t)ntasks, sizeof *raw_out);
		starpu_vector_data_register(&hin, STARPU_MAIN_RAM, (uintptr_t)&raw_in, 1, sizeof(float));
		for (int i = 0; i < ntasks; i++)
			starpu_vector_data_register(&hout[i], STARPU_MAIN_RAM, (uintptr_t)&raw_out[i], 1, sizeof(float));
	}
	tg_graph_reset();
	double t0 = now();
	for (int i = 0; i < ntasks; i++) {
		if (through_taskgrad) {
			tg_task_spec s = {.op = &empty_op, .cl = &tg_cl, .name = "empty", .phase = TG_PHASE_FWD, .n = 2,
			                  .t = {out[i], in}, .mode = {TG_W, TG_R}};
			if (tg_submit(&s) < 0)
				FAIL("tg_submit");
		} else if (starpu_task_insert(&raw_cl, STARPU_R, hin, STARPU_W, hout[i], 0) != 0) {
			FAIL("starpu_task_insert");
		}
	}
	starpu_task_wait_for_all();
	double dt = now() - t0;
	tg_graph_reset();
	if (through_taskgrad) {
		for (int i = 0; i < ntasks; i++)
			tg_tensor_free(out[i]);
	} else {
		starpu_data_unregister(hin);
		for (int i = 0; i < ntasks; i++)
			starpu_data_unregister(hout[i]);
	}
	tg_tensor_free(in);
	free(out);
	free(hout);
	free(raw_out);
	return dt / ntasks * 1e6;
}

int main(int argc, char **argv)
{
	int ntasks = 20000, repeats = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tasks") && i + 1 < argc)
			ntasks = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
			repeats = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_overhead [--tasks N] [--repeats R]\n");
			return 2;
		}
	}
	if (ntasks < 1 || repeats < 1 || repeats > 99) {
		fprintf(stderr, "bench_overhead: --tasks and --repeats must be >= 1 (repeats <= 99)\n");
		return 2;
	}
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.sched = "eager";
	cfg.ncuda = 0;
	if (tg_init(&cfg) < 0)
		FAIL("tg_init");
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	printf("StarPU %s, %d CPU workers\n", info.starpu_version, info.ncpu);
	double raw[99], tg[99];
	run_submissions(ntasks / 10, 0); /* warm up */
	run_submissions(ntasks / 10, 1);
	for (int r = 0; r < repeats; r++) { /* interleaved, so that machine noise hits both */
		raw[r] = run_submissions(ntasks, 0);
		tg[r] = run_submissions(ntasks, 1);
	}
	double mraw = median(raw, repeats), mtg = median(tg, repeats);
	printf("independent empty tasks, %d per run, median of %d runs (eager):\n", ntasks, repeats);
	printf("  starpu_task_insert   %6.2f us/task\n", mraw);
	printf("  tg_submit            %6.2f us/task   (x%.2f; tape + checks %+.2f us/task)\n", mtg, mtg / mraw,
	       mtg - mraw);
	if (tg_shutdown() < 0)
		FAIL("tg_shutdown");

	const char *policies[] = {"eager", "lws", "dmda"};
	printf("MLP on two spirals, 1500 steps of batch 128 (AdamW), median of %d runs:\n", repeats);
	for (int p = 0; p < 3; p++) {
		double sps[99];
		for (int r = 0; r < repeats; r++) {
			cfg.sched = policies[p];
			if (tg_init(&cfg) < 0)
				FAIL("tg_init");
			tg_model_config mc;
			tg_model *model;
			tg_dataset *d;
			tg_trainer *tr;
			tg_train_config tc;
			tg_train_config_default(&tc);
			tc.steps = 1500;
			tc.batch = 128;
			tc.lr = 0.02f;
			tc.warmup = 10;
			tc.eval_every = 0;
			tc.clip = 0;
			if (tg_model_config_default(&mc, "mlp") < 0 || tg_model_new(&model, &mc) < 0 ||
			    tg_dataset_spirals(&d, 1024, 0.04f, 1) < 0 || tg_trainer_new(&tr, model, d, &tc) < 0)
				FAIL("setting up the MLP");
			double t0 = now();
			if (tg_trainer_run(tr, NULL, NULL) < 0)
				FAIL("training");
			sps[r] = tc.steps / (now() - t0);
			tg_trainer_free(tr);
			tg_dataset_free(d);
			tg_model_free(model);
			if (tg_shutdown() < 0)
				FAIL("tg_shutdown");
		}
		double m = median(sps, repeats);
		printf("  %-6s %7.0f steps/s\n", policies[p], m);
	}
	return 0;
}
