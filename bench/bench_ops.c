/*
 * bench_ops.c — the ops of a small GPT and of an LSTM, timed at the shapes they run at; every
 * figure is set against a peer measured in the same run on the same machine.
 *
 *   bench/bench_ops [--quick] [--sched NAME] [--ncpu N]
 *
 * Shapes: a GPT of 6 layers, d_model C = 384, 6 heads, context T = 256, batch B = 4 (N = B T =
 * 1024 token rows, 3C = 1152, 4C = 1536, a 65-character vocabulary, 10.77 M parameters), and a
 * 2-layer LSTM of hidden 256, batch 32 (gate preactivations (32, 1024), input 256).
 *
 * Sections, with the project's targets (a figure below its target is marked BELOW; that is a
 * result, not an error: the exit status is non-zero only when something fails to run):
 *   0. the machine: what StarPU's idle workers cost a thread of ours (they spin)
 *   1. one GEMM task vs cblas_sgemm on one thread, same tile shape            (>= 0.90)
 *   2. a GEMM op tiled over every worker vs OpenBLAS on as many threads         (>= 0.85)
 *   3. memory-bound ops, in GB/s (bytes read + written, as the kernels do it): the kernel
 *      called directly on one thread vs memcpy / a vector add of the same bytes on one
 *      thread, and the op submitted as tasks on every worker vs the same peer on as many
 *      threads                                                                  (>= 0.50);
 *      attention (GEMM-like) in GFLOP/s, against its own GEMM calls alone (no target)
 *   4. per-task overhead: tg_submit vs starpu_task_insert of the same empty codelet (<= 1.25x)
 *   5. a chain of tiled GEMMs (the GPT's MLP blocks): busy fraction of the workers from
 *      StarPU's per-worker profiling (tg_config.profiling), one tile per op vs automatic tiles
 *
 * Kernels are called directly on plain buffers (ops/tg_kernels.h; they are not exported by the
 * shared library, so this program links libtaskgrad statically); ops go through the public API.
 * Times: CLOCK_MONOTONIC, the median of several runs after warm-up; a figure and its peer run
 * interleaved (a, b, a, b, ...) so that a busy machine hits both, except multithreaded
 * OpenBLAS, whose threads keep spinning for a while after a call: it runs in a block of its
 * own, followed by a pause. Direct kernels and peers run with StarPU's workers paused
 * (starpu_pause: they would otherwise spin on every core); tasks run with the runtime as it
 * is. Multithreaded memory peers run on a pool of threads made once, spinning while measured.
 * The default policy is eager: nothing to calibrate, so every run times the same thing
 * (--sched dmda works; its models calibrate during the warm-ups).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <starpu.h>

#include "taskgrad.h"
#include "taskgrad_op.h"
#include "tg_kernels.h"

#ifdef TG_HAVE_TARGET_CLONES
#define BENCH_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BENCH_VEC
#endif

/* ------------------------------------------------------------------ shapes */

enum {
	GPT_L = 6,
	GPT_C = 384,
	GPT_H = 6,
	GPT_T = 256,
	GPT_B = 4,
	GPT_N = GPT_B * GPT_T,
	GPT_D = GPT_C / GPT_H,
	GPT_V = 65,
	LSTM_H = 256,
	LSTM_B = 32,
	LSTM_IN = 256
};
/* every GPT parameter in one flat (rows, C) buffer: wte 65 + wpe 256 + 6 layers x 4621 + ln_f 2
 * rows of 384 = 10 770 816 floats (the LM head is tied to wte) */
#define GPT_PARAM_ROWS ((int64_t)GPT_V + GPT_T + GPT_L * 4621 + 2)

/* ------------------------------------------------------------------ errors, options */

static void die(const char *what)
{
	const char *msg = tg_last_error();
	fprintf(stderr, "bench_ops: %s%s%s\n", what, msg && *msg ? ": " : "", msg ? msg : "");
	exit(1);
}
#define TRY(call)                   \
	do {                        \
		if ((call) < 0)     \
			die(#call); \
	} while (0)

static struct {
	int quick;
	const char *sched;
	int ncpu;
} opt = {0, NULL, -1};

/* how a figure is measured */
static struct {
	int warmup, min_reps, max_reps;
	double budget; /* seconds of timed runs per figure (a figure and its peer together) */
} plan;
#define MAX_REPS 64

static int nworkers; /* CPU workers running */

/* ------------------------------------------------------------------ timing */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_REPS * 2];
	memcpy(s, v, (size_t)n * sizeof *v);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void pause_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A timed run: prep (untimed, may be NULL), then run. Both return 0 or < 0. */
typedef int (*step_fn)(void *ctx);
typedef struct job {
	step_fn run, prep;
	void *ctx;
} job;

static double run_once(const job *j)
{
	if (j->prep && j->prep(j->ctx) < 0)
		die("preparing a run");
	double t0 = now();
	if (j->run(j->ctx) < 0)
		die("a timed run");
	return now() - t0;
}

/* the times of a's runs in the last measure() (after its warm-ups) */
static double last_runs[MAX_REPS];
static int last_nruns;

/* Median times of a and of b (b may be NULL), their runs interleaved, after warm-up; as many
 * runs as fit in the budget, within [min_reps, max_reps]. */
static void measure(const job *a, const job *b, double *ta, double *tb)
{
	double est = 0;
	for (int w = 0; w < plan.warmup; w++) {
		est = run_once(a);
		if (b)
			est += run_once(b);
	}
	int reps = est > 0 ? (int)(plan.budget / est) : plan.max_reps;
	if (reps < plan.min_reps)
		reps = plan.min_reps;
	if (reps > plan.max_reps)
		reps = plan.max_reps;
	double *va = last_runs, vb[MAX_REPS];
	last_nruns = reps;
	for (int r = 0; r < reps; r++) {
		va[r] = run_once(a);
		if (b)
			vb[r] = run_once(b);
	}
	*ta = median(va, reps);
	if (b)
		*tb = median(vb, reps);
}

/* ------------------------------------------------------------------ StarPU's per-worker profiling */

static void prof_reset(void)
{
	unsigned n = starpu_worker_get_count();
	for (unsigned w = 0; w < n; w++)
		starpu_profiling_worker_get_info((int)w, NULL);
}

/* Seconds the CPU workers spent in tasks since the last reset (which this resets again). */
static double prof_exec_seconds(void)
{
	double us = 0;
	unsigned n = starpu_worker_get_count();
	for (unsigned w = 0; w < n; w++) {
		if (starpu_worker_get_type((int)w) != STARPU_CPU_WORKER)
			continue;
		struct starpu_profiling_worker_info info;
		if (starpu_profiling_worker_get_info((int)w, &info) == 0)
			us += starpu_timing_timespec_to_us(&info.executing_time);
	}
	return us * 1e-6;
}

/* ------------------------------------------------------------------ a quiet machine for the peers */

/* StarPU's CPU workers spin while they wait for work (drivers built non-blocking, as Debian's
 * StarPU is): with a worker on every core, a thread of ours shares a core with a spinning
 * worker. Direct kernels and peers therefore run with the workers paused (starpu_pause: they
 * sleep on a condition variable) and tasks with the runtime as it is. */
static int workers_paused;
static void pool_set_hot(int on);

static void quiet(int on)
{
	pool_set_hot(0); /* the peer's own threads sleep unless a multithreaded peer runs */
	if (on && !workers_paused) {
		starpu_pause();
		workers_paused = 1;
		pause_s(0.002); /* every worker reaches its pause point */
	} else if (!on && workers_paused) {
		starpu_resume();
		workers_paused = 0;
		pause_s(0.001); /* every worker is spinning again */
	}
}

static int quiet_prep(void *ctx)
{
	(void)ctx;
	quiet(1);
	return 0;
}

/* ------------------------------------------------------------------ output */

static const char *fmt_time(double s, char *buf, size_t size)
{
	if (s < 1e-3)
		snprintf(buf, size, "%6.1f us", s * 1e6);
	else if (s < 1.0)
		snprintf(buf, size, "%6.2f ms", s * 1e3);
	else
		snprintf(buf, size, "%6.3f s ", s);
	return buf;
}

/* the ratios below their target, for the summary */
static char below[8192];
static int npass, nbelow;

static const char *mark(double ratio, double target, int higher_is_better, const char *what)
{
	int ok = higher_is_better ? ratio >= target : ratio <= target;
	if (ok) {
		npass++;
		return "PASS";
	}
	nbelow++;
	size_t used = strlen(below);
	snprintf(below + used, sizeof below - used, "  %-44s %5.2f (target %s %.2f)\n", what, ratio,
	         higher_is_better ? ">=" : "<=", target);
	return "BELOW";
}

static void load_average(char *buf, size_t size)
{
	snprintf(buf, size, "?");
	FILE *f = fopen("/proc/loadavg", "r");
	if (!f)
		return;
	double a, b, c;
	if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
	fclose(f);
}

static void cpu_model(char *buf, size_t size)
{
	snprintf(buf, size, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model name", 10) != 0)
			continue;
		char *p = strchr(line, ':');
		if (!p)
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		p[strcspn(p, "\n")] = 0;
		snprintf(buf, size, "%s", p);
		break;
	}
	fclose(f);
}

/* ------------------------------------------------------------------ host buffers */

static void *xalloc(size_t bytes)
{
	size_t n = (bytes + 63) / 64 * 64;
	void *p = aligned_alloc(64, n ? n : 64);
	if (!p) {
		fprintf(stderr, "bench_ops: out of memory (%zu bytes)\n", bytes);
		exit(1);
	}
	return p;
}

static float *host_normal(size_t n, uint64_t stream)
{
	float *p = xalloc(n * sizeof(float));
	tg_fill f = {.kind = TG_FILL_NORMAL, .a = 0, .b = 1, .seed = 42, .stream = stream};
	TRY(tg_fill_host(p, (int64_t)n, &f));
	return p;
}

/* cheap contents (the pages are touched, so no page faults later) */
static float *host_ramp(size_t n)
{
	float *p = xalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		p[i] = (float)(i & 1023) * (1.0f / 1024.0f);
	return p;
}

/* ------------------------------------------------------------------ peers of memory-bound ops */

/* memcpy (one array read, one written) or c = a + b (two read, one written) moving `bytes`
 * bytes in all, on `threads` threads (created for each run, as an op's tasks are). */
enum { PEER_COPY, PEER_ADD };
typedef struct peer {
	int kind, threads;
	size_t n;
	float *a, *b, *c;
} peer;

BENCH_VEC static void add_range(float *restrict c, const float *restrict a, const float *restrict b, size_t lo,
                                size_t hi)
{
	for (size_t i = lo; i < hi; i++)
		c[i] = a[i] + b[i];
}

static void peer_part(const peer *p, int part, int parts)
{
	size_t lo = p->n * (size_t)part / (size_t)parts, hi = p->n * (size_t)(part + 1) / (size_t)parts;
	if (p->kind == PEER_COPY)
		memcpy(p->c + lo, p->a + lo, (hi - lo) * sizeof(float));
	else
		add_range(p->c, p->a, p->b, lo, hi);
}

/* The peer's threads: a pool made once, its threads spinning while a multithreaded peer is being
 * measured ("hot": nothing to wake, as StarPU's own workers) and asleep otherwise. */
static struct {
	int n; /* threads besides the caller */
	pthread_t th[64];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int gen, done, hot, stop;
	const peer *job;
	int parts;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void *pool_main(void *arg)
{
	int idx = (int)(intptr_t)arg, seen = 0;
	for (;;) {
		while (atomic_load(&pool.gen) == seen) {
			if (atomic_load(&pool.stop))
				return NULL;
			if (atomic_load(&pool.hot)) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&pool.mu);
			while (atomic_load(&pool.gen) == seen && !atomic_load(&pool.hot) && !atomic_load(&pool.stop))
				pthread_cond_wait(&pool.cv, &pool.mu);
			pthread_mutex_unlock(&pool.mu);
		}
		seen = atomic_load(&pool.gen);
		peer_part(pool.job, idx, pool.parts);
		atomic_fetch_add(&pool.done, 1);
	}
}

static void pool_start(int threads)
{
	pool.n = threads - 1 < 63 ? threads - 1 : 63;
	for (int i = 0; i < pool.n; i++)
		if (pthread_create(&pool.th[i], NULL, pool_main, (void *)(intptr_t)(i + 1)) != 0) {
			fprintf(stderr, "bench_ops: pthread_create failed\n");
			exit(1);
		}
}

static void pool_set_hot(int on)
{
	if (atomic_load(&pool.hot) == on)
		return;
	pthread_mutex_lock(&pool.mu);
	atomic_store(&pool.hot, on);
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	if (on)
		pause_s(0.001); /* the threads are awake and spinning */
}

static void pool_stop(void)
{
	pthread_mutex_lock(&pool.mu);
	atomic_store(&pool.stop, 1);
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 0; i < pool.n; i++)
		pthread_join(pool.th[i], NULL);
}

static int peer_run(void *ctx)
{
	const peer *p = ctx;
	if (p->threads <= 1 || pool.n == 0) {
		peer_part(p, 0, 1);
		return 0;
	}
	pool.job = p;
	pool.parts = pool.n + 1;
	atomic_store(&pool.done, 0);
	pthread_mutex_lock(&pool.mu);
	atomic_fetch_add(&pool.gen, 1);
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	peer_part(p, 0, pool.parts);
	while (atomic_load(&pool.done) < pool.n)
		cpu_relax();
	return 0;
}

/* before a peer's run: the workers paused, the pool spinning if the peer uses it */
static int peer_prep(void *ctx)
{
	const peer *p = ctx;
	quiet(1);
	pool_set_hot(p->threads > 1);
	return 0;
}

static void peer_init(peer *p, int kind, double bytes, int threads)
{
	p->kind = kind;
	p->threads = threads;
	p->n = (size_t)(bytes / (kind == PEER_COPY ? 8.0 : 12.0));
	if (p->n < 16)
		p->n = 16;
	p->a = host_ramp(p->n);
	p->b = kind == PEER_ADD ? host_ramp(p->n) : NULL;
	p->c = host_ramp(p->n);
}

static void peer_free(peer *p)
{
	free(p->a);
	free(p->b);
	free(p->c);
}

static double peer_bytes(const peer *p)
{
	return (double)p->n * (p->kind == PEER_COPY ? 8.0 : 12.0);
}

/* ------------------------------------------------------------------ op cases */

#define MAXO 12
enum { G_NORMAL = 0, G_POSITIVE, G_IDS, G_ZERO };
typedef struct opnd {
	const char *name;
	int rank;
	int64_t shape[TG_MAX_RANK];
	int gen;       /* G_*: how it is filled */
	int64_t range; /* G_IDS: int32 in [0, range) */
	int grad;      /* the tensor requires a gradient (an input the backward reaches) */
	int host_only; /* a buffer of the direct kernels only (the op's gradients are the runtime's) */
} opnd;

typedef struct opc opc;
typedef struct opdef {
	const char *name, *shape;
	int n;
	opnd o[MAXO];
	int gemm;                            /* figures in GFLOP/s (against kpeer_*), else GB/s (against a peer) */
	double fwd_work, bwd_work;           /* bytes read + written, or flops; bwd_work 0: no backward */
	int fwd_peer, bwd_peer;              /* PEER_COPY or PEER_ADD */
	void (*kfwd)(opc *), (*kbwd)(opc *); /* the kernels, called directly */
	void (*kpeer_fwd)(opc *), (*kpeer_bwd)(opc *); /* gemm: the GEMM calls alone */
	int (*submit)(opc *);                          /* the forward op (no wait) */
	int (*prep_fwd)(opc *);                        /* before each forward (untimed), may be NULL */
	int nout, out[2], dout[2];                     /* backward: outputs and their gradients */
} opdef;

struct opc {
	const opdef *d;
	void *h[MAXO];
	tg_tensor *t[MAXO];
};

static int64_t opnd_numel(const opnd *o)
{
	int64_t n = 1;
	for (int i = 0; i < o->rank; i++)
		n *= o->shape[i];
	return n;
}

/* operand i as a kernel sees it: (rows, cols), contiguous */
static tg_mat M(const opc *c, int i)
{
	const opnd *o = &c->d->o[i];
	tg_mat m;
	m.p = c->h[i];
	m.cols = (int)o->shape[o->rank - 1];
	m.rows = (int)(opnd_numel(o) / m.cols);
	m.ld = m.cols;
	return m;
}
static const tg_mat NONE = {NULL, 0, 0, 0};

static void opc_init(opc *c, const opdef *d)
{
	memset(c, 0, sizeof *c);
	c->d = d;
	for (int i = 0; i < d->n; i++) {
		const opnd *o = &d->o[i];
		int64_t n = opnd_numel(o);
		size_t bytes = (size_t)n * 4;
		if (o->gen == G_IDS) {
			int32_t *ids = xalloc(bytes);
			for (int64_t k = 0; k < n; k++)
				ids[k] = (int32_t)((k * 7919 + 13) % o->range);
			c->h[i] = ids;
		} else {
			float *p = xalloc(bytes);
			tg_fill f = {.kind = TG_FILL_NORMAL, .a = 0, .b = 1, .seed = 7, .stream = (uint64_t)i};
			if (o->gen == G_POSITIVE)
				f = (tg_fill){.kind = TG_FILL_UNIFORM,
				              .a = 0.5f,
				              .b = 2.0f,
				              .seed = 7,
				              .stream = (uint64_t)i};
			if (o->gen == G_ZERO)
				memset(p, 0, bytes);
			else
				TRY(tg_fill_host(p, n, &f));
			c->h[i] = p;
		}
		if (o->host_only)
			continue;
		TRY(tg_tensor_new_from_host(&c->t[i], o->name, o->gen == G_IDS ? TG_I32 : TG_F32, o->rank, o->shape,
		                            c->h[i], bytes));
		if (o->grad)
			TRY(tg_tensor_set_requires_grad(c->t[i], 1));
	}
}

static void opc_free(opc *c)
{
	for (int i = 0; i < c->d->n; i++) /* outputs come before the gradients given to them */
		TRY(tg_tensor_free(c->t[i]));
	for (int i = 0; i < c->d->n; i++)
		free(c->h[i]);
}

/* jobs: the kernels, the op's tasks */
static int kfwd_run(void *ctx)
{
	opc *c = ctx;
	c->d->kfwd(c);
	return 0;
}
static int kbwd_run(void *ctx)
{
	opc *c = ctx;
	c->d->kbwd(c);
	return 0;
}
static int kpeer_fwd_run(void *ctx)
{
	opc *c = ctx;
	c->d->kpeer_fwd(c);
	return 0;
}
static int kpeer_bwd_run(void *ctx)
{
	opc *c = ctx;
	c->d->kpeer_bwd(c);
	return 0;
}

static int tasks_fwd_prep(void *ctx)
{
	opc *c = ctx;
	quiet(0);
	TRY(tg_graph_reset());
	return c->d->prep_fwd ? c->d->prep_fwd(c) : 0;
}
static int tasks_fwd_run(void *ctx)
{
	opc *c = ctx;
	TRY(c->d->submit(c));
	return tg_wait_all();
}
/* the forward op has run; its inputs' gradients are empty (the backward writes them) */
static int tasks_bwd_prep(void *ctx)
{
	opc *c = ctx;
	TRY(tasks_fwd_prep(c));
	TRY(tasks_fwd_run(c));
	for (int i = 0; i < c->d->n; i++)
		if (c->d->o[i].grad && c->t[i])
			TRY(tg_zero_grad(c->t[i]));
	return 0;
}
static int tasks_bwd_run(void *ctx)
{
	opc *c = ctx;
	tg_tensor *outs[2], *douts[2];
	for (int k = 0; k < c->d->nout; k++) {
		outs[k] = c->t[c->d->out[k]];
		douts[k] = c->t[c->d->dout[k]];
	}
	TRY(tg_backward_many(c->d->nout, outs, douts));
	return tg_wait_all();
}

/* ---- the ops' kernels and submissions (operand indices as in the tables below) */

static const struct tg_unary_args unary0 = {.p = 0, .accumulate = 0};

static void gelu_kfwd(opc *c)
{
	tg_gelu_fwd_cpu(M(c, 0), M(c, 1), &unary0);
}
static void gelu_kbwd(opc *c)
{
	tg_gelu_bwd_cpu(M(c, 3), M(c, 2), M(c, 1), &unary0);
}
static int gelu_submit(opc *c)
{
	return tg_gelu(c->t[0], c->t[1]);
}

static void add_kfwd(opc *c)
{
	struct tg_add_args a = {.broadcast = c->d->o[2].rank == 1, .accumulate = 0};
	tg_add_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), &a);
}
static void add_kbwd(opc *c)
{
	struct tg_add_args a = {.broadcast = 0, .accumulate = 0};
	tg_add_bwd_cpu(M(c, 4), M(c, 3), &a); /* da = dout */
	tg_add_bwd_cpu(M(c, 5), M(c, 3), &a); /* db = dout, or its column sums (a bias) */
}
static int add_submit(opc *c)
{
	return tg_add(c->t[0], c->t[1], c->t[2]);
}

static const float LN_EPS = 1e-5f;
static void layernorm_kfwd(opc *c)
{
	struct tg_layernorm_args a = {.eps = LN_EPS, .accumulate = 0, .has_extra = 0};
	tg_layernorm_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), M(c, 3), M(c, 4), M(c, 5), &a);
}
static void layernorm_kbwd(opc *c)
{
	struct tg_layernorm_args a = {.eps = LN_EPS, .accumulate = 0, .has_extra = 0};
	tg_layernorm_bwd_dx_cpu(M(c, 7), M(c, 6), M(c, 3), M(c, 1), M(c, 2), M(c, 4), NONE, &a);
	tg_layernorm_bwd_dwb_cpu(M(c, 8), M(c, 9), M(c, 6), M(c, 3), M(c, 1), M(c, 2), &a);
}
static int layernorm_submit(opc *c)
{
	return tg_layernorm(c->t[0], c->t[1], c->t[2], c->t[3], c->t[4], c->t[5], LN_EPS);
}

static void add_layernorm_kfwd(opc *c)
{
	struct tg_layernorm_args a = {.eps = LN_EPS, .accumulate = 0, .has_extra = 0};
	tg_add_layernorm_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), M(c, 3), M(c, 4), M(c, 5), M(c, 6), M(c, 7), &a);
}
static int add_layernorm_submit(opc *c)
{
	return tg_add_layernorm(c->t[0], c->t[1], c->t[2], c->t[3], c->t[4], c->t[5], c->t[6], c->t[7], LN_EPS);
}

static const float ATT_SCALE = 0.125f; /* 1 / sqrt(64) */
static void softmax_kfwd(opc *c)
{
	struct tg_softmax_args a = {.scale = ATT_SCALE, .causal_T = GPT_T, .row0 = 0, .accumulate = 0};
	tg_softmax_fwd_cpu(M(c, 0), M(c, 1), &a);
}
static void softmax_kbwd(opc *c)
{
	struct tg_softmax_args a = {.scale = ATT_SCALE, .causal_T = GPT_T, .row0 = 0, .accumulate = 0};
	tg_softmax_bwd_cpu(M(c, 3), M(c, 2), M(c, 0), &a);
}
static int softmax_submit(opc *c)
{
	return tg_softmax(c->t[0], c->t[1], ATT_SCALE, GPT_T);
}

static const char bad_fmt[] = "bench: value %d of row %d is outside [0, %d)";
static void xent_kfwd(opc *c)
{
	struct tg_softmax_xent_args a = {.total_rows = GPT_N, .row0 = 0, .accumulate = 0, .bad_target_fmt = bad_fmt};
	tg_softmax_xent_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), NONE, &a);
}
static void xent_kbwd(opc *c)
{
	struct tg_softmax_xent_args a = {.total_rows = GPT_N, .row0 = 0, .accumulate = 0, .bad_target_fmt = bad_fmt};
	tg_softmax_xent_bwd_cpu(M(c, 4), M(c, 3), M(c, 1), M(c, 2), NONE, &a);
}
static int xent_submit(opc *c)
{
	return tg_softmax_xent(c->t[0], c->t[1], c->t[2]);
}

static void embedding_kfwd(opc *c)
{
	struct tg_embedding_args a = {.row0 = 0, .accumulate = 0, .bad_fmt = bad_fmt};
	tg_embedding_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), NONE, &a);
}
static void embedding_kbwd(opc *c)
{
	struct tg_embedding_args a = {.row0 = 0, .accumulate = 0, .bad_fmt = bad_fmt};
	tg_embedding_bwd_cpu(M(c, 4), M(c, 3), M(c, 2), NONE, &a);
}
static int embedding_submit(opc *c)
{
	return tg_embedding(c->t[0], c->t[1], c->t[2]);
}

static void pos_add_kfwd(opc *c)
{
	struct tg_pos_add_args a = {.T = GPT_T, .row0 = 0, .accumulate = 0};
	tg_pos_add_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), &a);
}
static void pos_add_kbwd(opc *c)
{
	struct tg_pos_add_args a = {.T = GPT_T, .row0 = 0, .accumulate = 0};
	tg_copy_cpu(M(c, 4), M(c, 3), &a);        /* dx = dout */
	tg_pos_add_bwd_cpu(M(c, 5), M(c, 3), &a); /* dpos[t] = sum of dout's rows at position t */
}
static int pos_add_submit(opc *c)
{
	return tg_pos_add(c->t[0], c->t[1], c->t[2], GPT_T);
}

static const float DROP_P = 0.1f;
static void dropout_kfwd(opc *c)
{
	struct tg_dropout_args a = {.p = DROP_P, .seed = 1, .step = 1, .row0 = 0, .cols = GPT_C, .accumulate = 0};
	tg_dropout_fwd_cpu(M(c, 0), M(c, 1), &a);
}
static void dropout_kbwd(opc *c)
{
	struct tg_dropout_args a = {.p = DROP_P, .seed = 1, .step = 1, .row0 = 0, .cols = GPT_C, .accumulate = 0};
	tg_dropout_bwd_cpu(M(c, 3), M(c, 2), &a);
}
static int dropout_submit(opc *c)
{
	return tg_dropout(c->t[0], c->t[1], DROP_P, 1, 1);
}

static void bias_gelu_kfwd(opc *c)
{
	struct tg_bias_gelu_args a = {.accumulate = 0};
	tg_bias_gelu_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), &a);
}
static void bias_gelu_kbwd(opc *c)
{
	struct tg_bias_gelu_args a = {.accumulate = 0};
	tg_bias_gelu_bwd_dx_cpu(M(c, 4), M(c, 3), M(c, 1), M(c, 2), &a);
	tg_bias_gelu_bwd_db_cpu(M(c, 5), M(c, 3), M(c, 1), M(c, 2), &a);
}
static int bias_gelu_submit(opc *c)
{
	return tg_bias_gelu(c->t[0], c->t[1], c->t[2]);
}

static const tg_adamw_params adamw_p = {
        .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f, .step = 1};
static void adamw_kfwd(opc *c)
{
	struct tg_adamw_args a = {.lr = adamw_p.lr,
	                          .beta1 = adamw_p.beta1,
	                          .beta2 = adamw_p.beta2,
	                          .eps = adamw_p.eps,
	                          .weight_decay = adamw_p.weight_decay,
	                          .bias1 = 1.0f - adamw_p.beta1,
	                          .bias2 = 1.0f - adamw_p.beta2};
	tg_adamw_cpu(M(c, 0), M(c, 3), M(c, 1), M(c, 2), &a);
}
static int adamw_prep(opc *c)
{
	return tg_tensor_set_grad(c->t[0], c->t[3]);
} /* the step empties it */
static int adamw_submit(opc *c)
{
	return tg_adamw(c->t[0], c->t[1], c->t[2], &adamw_p);
}

static void lstm_kfwd(opc *c)
{
	struct tg_lstm_args a = {.has_c_prev = 1};
	tg_lstm_fwd_cpu(M(c, 0), M(c, 1), M(c, 2), M(c, 3), M(c, 4), &a);
}
static void lstm_kbwd(opc *c)
{
	struct tg_lstm_args a = {.has_c_prev = 1, .has_dh = 1, .has_dc = 1, .want_dc_prev = 1, .want_pre = 1};
	tg_lstm_bwd_cpu(M(c, 7), M(c, 8), M(c, 5), M(c, 6), M(c, 2), M(c, 1), M(c, 4), &a);
}
static int lstm_submit(opc *c)
{
	return tg_lstm_cell(c->t[0], c->t[1], c->t[2], c->t[3], c->t[4]);
}

/* attention: the kernels take one batch's (T, C) slices of Q, K, V (columns of qkv) */
static tg_mat sub(tg_mat m, int row0, int rows, int col0, int cols)
{
	tg_mat s = m;
	s.p = TG_MF(m) + (size_t)row0 * (size_t)m.ld + (size_t)col0;
	s.rows = rows;
	s.cols = cols;
	return s;
}
static const struct tg_attention_args att_args = {
        .heads = GPT_H, .head_dim = GPT_D, .T = GPT_T, .scale = ATT_SCALE, .accumulate = 0};
static void attention_kfwd(opc *c)
{
	tg_mat out = M(c, 0), att = M(c, 1), qkv = M(c, 2);
	for (int b = 0; b < GPT_B; b++)
		tg_attention_fwd_cpu(sub(out, b * GPT_T, GPT_T, 0, GPT_C),
		                     sub(att, b * GPT_H * GPT_T, GPT_H * GPT_T, 0, GPT_T),
		                     sub(qkv, b * GPT_T, GPT_T, 0, GPT_C), sub(qkv, b * GPT_T, GPT_T, GPT_C, GPT_C),
		                     sub(qkv, b * GPT_T, GPT_T, 2 * GPT_C, GPT_C), &att_args);
}
static void attention_kbwd(opc *c)
{
	tg_mat att = M(c, 1), qkv = M(c, 2), dout = M(c, 3), dqkv = M(c, 4), scratch = M(c, 5);
	for (int b = 0; b < GPT_B; b++) {
		int r = b * GPT_T;
		tg_mat a = sub(att, b * GPT_H * GPT_T, GPT_H * GPT_T, 0, GPT_T), d = sub(dout, r, GPT_T, 0, GPT_C);
		tg_attention_bwd_v_cpu(sub(dqkv, r, GPT_T, 2 * GPT_C, GPT_C), a, d, &att_args);
		tg_attention_bwd_qk_cpu(sub(dqkv, r, GPT_T, 0, GPT_C), sub(dqkv, r, GPT_T, GPT_C, GPT_C), d,
		                        sub(qkv, r, GPT_T, 2 * GPT_C, GPT_C), sub(qkv, r, GPT_T, 0, GPT_C),
		                        sub(qkv, r, GPT_T, GPT_C, GPT_C), a, scratch, &att_args);
	}
}
/* the same GEMM calls as the kernels, without the softmax and its backward */
static void attention_kpeer_fwd(opc *c)
{
	const float *qkv = c->h[2];
	float *att = c->h[1], *out = c->h[0];
	const int T = GPT_T, d = GPT_D, ld = 3 * GPT_C;
	for (int b = 0; b < GPT_B; b++)
		for (int h = 0; h < GPT_H; h++) {
			const float *q = qkv + (size_t)b * T * ld + h * d;
			float *A = att + ((size_t)b * GPT_H + h) * T * T;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, ATT_SCALE, q, ld, q + GPT_C, ld,
			            0.0f, A, T);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, 1.0f, A, T, q + 2 * GPT_C, ld,
			            0.0f, out + (size_t)b * T * GPT_C + h * d, GPT_C);
		}
}
static void attention_kpeer_bwd(opc *c)
{
	const float *qkv = c->h[2], *att = c->h[1], *dout = c->h[3];
	float *dqkv = c->h[4], *S = c->h[5];
	const int T = GPT_T, d = GPT_D, ld = 3 * GPT_C;
	for (int b = 0; b < GPT_B; b++)
		for (int h = 0; h < GPT_H; h++) {
			const float *q = qkv + (size_t)b * T * ld + h * d, *A = att + ((size_t)b * GPT_H + h) * T * T;
			const float *dO = dout + (size_t)b * T * GPT_C + h * d;
			float *dq = dqkv + (size_t)b * T * ld + h * d;
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, d, T, 1.0f, A, T, dO, GPT_C, 0.0f,
			            dq + 2 * GPT_C, ld);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, 1.0f, dO, GPT_C, q + 2 * GPT_C,
			            ld, 0.0f, S, T);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, ATT_SCALE, S, T, q + GPT_C, ld,
			            0.0f, dq, ld);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, d, T, ATT_SCALE, S, T, q, ld, 0.0f,
			            dq + GPT_C, ld);
		}
}
static int attention_submit(opc *c)
{
	return tg_attention(c->t[0], c->t[1], c->t[2], GPT_H);
}

/* ---- the table */

#define S1(a) .rank = 1, .shape = {a}
#define S2(a, b) .rank = 2, .shape = {a, b}
#define S3(a, b, c) .rank = 3, .shape = {a, b, c}
#define S4(a, b, c, d) .rank = 4, .shape = {a, b, c, d}
#define F 4.0 /* bytes per element */
static const double N_ = GPT_N, C_ = GPT_C, C3 = 3 * GPT_C, C4 = 4 * GPT_C, V_ = GPT_V, T_ = GPT_T;
#define SM_ROWS (GPT_B * GPT_H * GPT_T)

static opdef mem_ops[] = {
        {.name = "embedding",
         .shape = "(1024,384) V 65",
         .n = 5,
         .o = {{.name = "out", S2(GPT_N, GPT_C)},
               {.name = "wte", S2(GPT_V, GPT_C), .grad = 1},
               {.name = "ids", S1(GPT_N), .gen = G_IDS, .range = GPT_V},
               {.name = "dout", S2(GPT_N, GPT_C)},
               {.name = "dwte", S2(GPT_V, GPT_C), .host_only = 1}},
         .kfwd = embedding_kfwd,
         .kbwd = embedding_kbwd,
         .submit = embedding_submit,
         .nout = 1,
         .out = {0},
         .dout = {3},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_COPY},
        {.name = "pos_add",
         .shape = "(1024,384) T 256",
         .n = 6,
         .o = {{.name = "out", S2(GPT_N, GPT_C)},
               {.name = "x", S2(GPT_N, GPT_C), .grad = 1},
               {.name = "wpe", S2(GPT_T, GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, GPT_C)},
               {.name = "dx", S2(GPT_N, GPT_C), .host_only = 1},
               {.name = "dwpe", S2(GPT_T, GPT_C), .host_only = 1}},
         .kfwd = pos_add_kfwd,
         .kbwd = pos_add_kbwd,
         .submit = pos_add_submit,
         .nout = 1,
         .out = {0},
         .dout = {3},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "layernorm",
         .shape = "(1024,384)",
         .n = 10,
         .o = {{.name = "out", S2(GPT_N, GPT_C)},
               {.name = "mean", S1(GPT_N)},
               {.name = "rstd", S1(GPT_N)},
               {.name = "x", S2(GPT_N, GPT_C), .grad = 1},
               {.name = "w", S1(GPT_C), .gen = G_POSITIVE, .grad = 1},
               {.name = "b", S1(GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, GPT_C)},
               {.name = "dx", S2(GPT_N, GPT_C), .host_only = 1},
               {.name = "dw", S1(GPT_C), .host_only = 1},
               {.name = "db", S1(GPT_C), .host_only = 1}},
         .kfwd = layernorm_kfwd,
         .kbwd = layernorm_kbwd,
         .submit = layernorm_submit,
         .nout = 1,
         .out = {0},
         .dout = {6},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "add_layernorm",
         .shape = "(1024,384)",
         .n = 8,
         .o = {{.name = "sum", S2(GPT_N, GPT_C)},
               {.name = "out", S2(GPT_N, GPT_C)},
               {.name = "mean", S1(GPT_N)},
               {.name = "rstd", S1(GPT_N)},
               {.name = "a", S2(GPT_N, GPT_C)},
               {.name = "r", S2(GPT_N, GPT_C)},
               {.name = "w", S1(GPT_C), .gen = G_POSITIVE},
               {.name = "b", S1(GPT_C)}},
         .kfwd = add_layernorm_kfwd,
         .submit = add_layernorm_submit,
         .fwd_peer = PEER_COPY},
        {.name = "add (residual)",
         .shape = "(1024,384)",
         .n = 6,
         .o = {{.name = "out", S2(GPT_N, GPT_C)},
               {.name = "a", S2(GPT_N, GPT_C), .grad = 1},
               {.name = "b", S2(GPT_N, GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, GPT_C)},
               {.name = "da", S2(GPT_N, GPT_C), .host_only = 1},
               {.name = "db", S2(GPT_N, GPT_C), .host_only = 1}},
         .kfwd = add_kfwd,
         .kbwd = add_kbwd,
         .submit = add_submit,
         .nout = 1,
         .out = {0},
         .dout = {3},
         .fwd_peer = PEER_ADD,
         .bwd_peer = PEER_COPY},
        {.name = "add (bias)",
         .shape = "(1024,1152)+(1152)",
         .n = 6,
         .o = {{.name = "out", S2(GPT_N, 3 * GPT_C)},
               {.name = "a", S2(GPT_N, 3 * GPT_C), .grad = 1},
               {.name = "b", S1(3 * GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, 3 * GPT_C)},
               {.name = "da", S2(GPT_N, 3 * GPT_C), .host_only = 1},
               {.name = "db", S1(3 * GPT_C), .host_only = 1}},
         .kfwd = add_kfwd,
         .kbwd = add_kbwd,
         .submit = add_submit,
         .nout = 1,
         .out = {0},
         .dout = {3},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "gelu",
         .shape = "(1024,1536)",
         .n = 4,
         .o = {{.name = "out", S2(GPT_N, 4 * GPT_C)},
               {.name = "x", S2(GPT_N, 4 * GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, 4 * GPT_C)},
               {.name = "dx", S2(GPT_N, 4 * GPT_C), .host_only = 1}},
         .kfwd = gelu_kfwd,
         .kbwd = gelu_kbwd,
         .submit = gelu_submit,
         .nout = 1,
         .out = {0},
         .dout = {2},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "bias_gelu",
         .shape = "(1024,1536)",
         .n = 6,
         .o = {{.name = "out", S2(GPT_N, 4 * GPT_C)},
               {.name = "x", S2(GPT_N, 4 * GPT_C), .grad = 1},
               {.name = "b", S1(4 * GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, 4 * GPT_C)},
               {.name = "dx", S2(GPT_N, 4 * GPT_C), .host_only = 1},
               {.name = "db", S1(4 * GPT_C), .host_only = 1}},
         .kfwd = bias_gelu_kfwd,
         .kbwd = bias_gelu_kbwd,
         .submit = bias_gelu_submit,
         .nout = 1,
         .out = {0},
         .dout = {3},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "dropout p=0.1",
         .shape = "(1024,384)",
         .n = 4,
         .o = {{.name = "out", S2(GPT_N, GPT_C)},
               {.name = "x", S2(GPT_N, GPT_C), .grad = 1},
               {.name = "dout", S2(GPT_N, GPT_C)},
               {.name = "dx", S2(GPT_N, GPT_C), .host_only = 1}},
         .kfwd = dropout_kfwd,
         .kbwd = dropout_kbwd,
         .submit = dropout_submit,
         .nout = 1,
         .out = {0},
         .dout = {2},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_COPY},
        {.name = "softmax causal",
         .shape = "(6144,256)",
         .n = 4,
         .o = {{.name = "out", S2(SM_ROWS, GPT_T)},
               {.name = "x", S2(SM_ROWS, GPT_T), .grad = 1},
               {.name = "dout", S2(SM_ROWS, GPT_T)},
               {.name = "dx", S2(SM_ROWS, GPT_T), .host_only = 1}},
         .kfwd = softmax_kfwd,
         .kbwd = softmax_kbwd,
         .submit = softmax_submit,
         .nout = 1,
         .out = {0},
         .dout = {2},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "softmax_xent",
         .shape = "(1024,65)",
         .n = 5,
         .o = {{.name = "loss", S1(1)},
               {.name = "logits", S2(GPT_N, GPT_V), .grad = 1},
               {.name = "targets", S1(GPT_N), .gen = G_IDS, .range = GPT_V},
               {.name = "dloss", S1(1), .gen = G_POSITIVE},
               {.name = "dlogits", S2(GPT_N, GPT_V), .host_only = 1}},
         .kfwd = xent_kfwd,
         .kbwd = xent_kbwd,
         .submit = xent_submit,
         .nout = 1,
         .out = {0},
         .dout = {3},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_COPY},
        {.name = "adamw (all params)",
         .shape = "(28049,384)",
         .n = 4,
         .o = {{.name = "param", S2(GPT_PARAM_ROWS, GPT_C), .grad = 1},
               {.name = "m", S2(GPT_PARAM_ROWS, GPT_C), .gen = G_ZERO},
               {.name = "v", S2(GPT_PARAM_ROWS, GPT_C), .gen = G_ZERO},
               {.name = "g", S2(GPT_PARAM_ROWS, GPT_C)}},
         .kfwd = adamw_kfwd,
         .submit = adamw_submit,
         .prep_fwd = adamw_prep,
         .fwd_peer = PEER_ADD},
        {.name = "lstm_cell",
         .shape = "(32,1024) H 256",
         .n = 9,
         .o = {{.name = "h", S2(LSTM_B, LSTM_H)},
               {.name = "c", S2(LSTM_B, LSTM_H)},
               {.name = "gates", S2(LSTM_B, 4 * LSTM_H)},
               {.name = "pre", S2(LSTM_B, 4 * LSTM_H), .grad = 1},
               {.name = "c_prev", S2(LSTM_B, LSTM_H), .grad = 1},
               {.name = "dh", S2(LSTM_B, LSTM_H)},
               {.name = "dc", S2(LSTM_B, LSTM_H)},
               {.name = "dpre", S2(LSTM_B, 4 * LSTM_H), .host_only = 1},
               {.name = "dc_prev", S2(LSTM_B, LSTM_H), .host_only = 1}},
         .kfwd = lstm_kfwd,
         .kbwd = lstm_kbwd,
         .submit = lstm_submit,
         .nout = 2,
         .out = {0, 1},
         .dout = {5, 6},
         .fwd_peer = PEER_COPY,
         .bwd_peer = PEER_ADD},
        {.name = "attention",
         .shape = "(4,256,1152) 6 heads",
         .n = 6,
         .o = {{.name = "out", S3(GPT_B, GPT_T, GPT_C)},
               {.name = "att", S4(GPT_B, GPT_H, GPT_T, GPT_T)},
               {.name = "qkv", S3(GPT_B, GPT_T, 3 * GPT_C), .grad = 1},
               {.name = "dout", S3(GPT_B, GPT_T, GPT_C)},
               {.name = "dqkv", S3(GPT_B, GPT_T, 3 * GPT_C), .host_only = 1},
               {.name = "scratch", S2(GPT_T, GPT_T), .host_only = 1}},
         .gemm = 1,
         .kfwd = attention_kfwd,
         .kbwd = attention_kbwd,
         .kpeer_fwd = attention_kpeer_fwd,
         .kpeer_bwd = attention_kpeer_bwd,
         .submit = attention_submit,
         .nout = 1,
         .out = {0},
         .dout = {3}},
};
#define NMEM_OPS (int)(sizeof mem_ops / sizeof mem_ops[0])

/* bytes read + written by the kernels as they are written (flops for attention) */
static void mem_ops_work(void)
{
	const double NC = N_ * C_, H = LSTM_H, B = LSTM_B, P = (double)GPT_PARAM_ROWS * C_, R = SM_ROWS;
	for (int i = 0; i < NMEM_OPS; i++) {
		opdef *d = &mem_ops[i];
		const char *n = d->name;
		double f = 0, b = 0;
		if (!strcmp(n, "embedding")) {
			f = (2 * NC + N_) * F;           /* ids, a table row per id, out */
			b = (NC + N_ + 2 * V_ * C_) * F; /* dout, ids, dwte zeroed then added to (cached) */
		} else if (!strcmp(n, "pos_add")) {
			f = (2 * NC + T_ * C_) * F;
			b = (2 * NC + NC + T_ * C_) * F; /* dx = dout; dwpe = sums of dout's rows */
		} else if (!strcmp(n, "layernorm")) {
			f = (2 * NC + 2 * C_ + 2 * N_) * F;
			b = (3 * NC + 2 * N_ + C_ + 2 * NC + 2 * N_ + 2 * C_) * F; /* bwd_dx + bwd_dwb */
		} else if (!strcmp(n, "add_layernorm")) {
			f = (4 * NC + 2 * N_ + 2 * C_) * F;
		} else if (!strcmp(n, "add (residual)")) {
			f = 3 * NC * F;
			b = 4 * NC * F; /* da = dout, db = dout */
		} else if (!strcmp(n, "add (bias)")) {
			f = (2 * N_ * C3 + C3) * F;
			b = (3 * N_ * C3 + C3) * F; /* da = dout, db = column sums of dout */
		} else if (!strcmp(n, "gelu")) {
			f = 2 * N_ * C4 * F;
			b = 3 * N_ * C4 * F;
		} else if (!strcmp(n, "bias_gelu")) {
			f = (2 * N_ * C4 + C4) * F;
			b = (3 * N_ * C4 + 2 * N_ * C4 + 3 * C4) * F; /* bwd_dx + bwd_db */
		} else if (!strcmp(n, "dropout p=0.1")) {
			f = b = 2 * NC * F;
		} else if (!strcmp(n, "softmax causal")) {
			f = 2 * R * T_ * F;
			b = 3 * R * T_ * F;
		} else if (!strcmp(n, "softmax_xent")) {
			f = (N_ * V_ + N_ + 1) * F;
			b = (2 * N_ * V_ + N_ + 1) * F;
		} else if (!strcmp(n, "adamw (all params)")) {
			f = 7 * P * F; /* param, grad, m, v read; param, m, v written */
		} else if (!strcmp(n, "lstm_cell")) {
			f = 11 * H * B * F; /* pre, c_prev; h, c, gates */
			b = 13 * H * B * F; /* dh, dc, gates, c, c_prev; dpre, dc_prev */
		} else if (!strcmp(n, "attention")) {
			double hd = (double)GPT_B * GPT_H * T_ * T_ * GPT_D; /* the full T x T, mask included */
			f = 4 * hd;
			b = 8 * hd;
		}
		d->fwd_work = f;
		d->bwd_work = b;
	}
}

/* ------------------------------------------------------------------ 3. memory-bound ops */

static void print_rule(int n)
{
	for (int i = 0; i < n; i++)
		putchar('-');
	putchar('\n');
}

static void mem_row(opc *c, int bwd)
{
	const opdef *d = c->d;
	double work = bwd ? d->bwd_work : d->fwd_work;
	job kern = {bwd ? kbwd_run : kfwd_run, quiet_prep, c};
	job tasks = {bwd ? tasks_bwd_run : tasks_fwd_run, bwd ? tasks_bwd_prep : tasks_fwd_prep, c};
	if (bwd) {
		quiet(1);
		d->kfwd(c); /* what the backward kernels read */
	}
	char s1[32], s2[32], label[64];
	snprintf(label, sizeof label, "%s %s", d->name, bwd ? "bwd" : "fwd");
	double tk, tp, tt, tq;
	if (d->gemm) {
		job gp = {bwd ? kpeer_bwd_run : kpeer_fwd_run, quiet_prep, c};
		measure(&kern, &gp, &tk, &tp);
		measure(&tasks, NULL, &tt, &tq);
		printf("%-24s %-20s %7.0f | %s %7.1f GF/s  GEMMs alone %6.1f GF/s  %5.2f (info) | "
		       "%s %7.1f GF/s  %4.2fx of 1 thread (%.0f%% of %d workers)\n",
		       label, d->shape, work * 1e-6, fmt_time(tk, s1, sizeof s1), work / tk * 1e-9, work / tp * 1e-9,
		       tp / tk, fmt_time(tt, s2, sizeof s2), work / tt * 1e-9, tk / tt, 100.0 * tk / tt / nworkers,
		       nworkers);
		return;
	}
	int kind = bwd ? d->bwd_peer : d->fwd_peer;
	peer p1, pn;
	peer_init(&p1, kind, work, 1);
	peer_init(&pn, kind, work, nworkers);
	job j1 = {peer_run, peer_prep, &p1}, jn = {peer_run, peer_prep, &pn};
	measure(&kern, &j1, &tk, &tp);
	measure(&tasks, &jn, &tt, &tq);
	double gk = work / tk * 1e-9, gp = peer_bytes(&p1) / tp * 1e-9, gt = work / tt * 1e-9,
	       gq = peer_bytes(&pn) / tq * 1e-9;
	char w1[96], w2[96];
	snprintf(w1, sizeof w1, "3. %s, kernel 1 thread", label);
	snprintf(w2, sizeof w2, "3. %s, tasks on %d workers", label, nworkers);
	const char *m1 = mark(gk / gp, 0.5, 1, w1);
	const char *m2 = mark(gt / gq, 0.5, 1, w2);
	printf("%-24s %-20s %7.2f | %s %6.1f %6.1f %s %5.2f %-5s | %s %6.1f %6.1f %s %5.2f %-5s %5.2fx\n", label,
	       d->shape, work * 1e-6, fmt_time(tk, s1, sizeof s1), gk, gp, kind == PEER_COPY ? "cpy" : "add", gk / gp,
	       m1, fmt_time(tt, s2, sizeof s2), gt, gq, kind == PEER_COPY ? "cpy" : "add", gt / gq, m2, tk / tt);
	peer_free(&p1);
	peer_free(&pn);
	quiet(0);
}

static void section_mem_ops(void)
{
	mem_ops_work();
	printf("\n3. Memory-bound ops: GB/s = bytes read + written by the kernels / median time; peer = memcpy (cpy) or\n"
	       "   c = a + b (add) moving the same bytes. Left: the kernel called directly on one thread vs the peer on one\n"
	       "   thread. Right: the op submitted as tasks (tg_<op> + tg_wait_all; backward: tg_backward_from after the\n"
	       "   forward, + tg_wait_all) on %d workers vs the peer on %d threads. Target: ratio >= 0.50. x1T = kernel\n"
	       "   time / tasks time. Row ops run in %d tiles of the 1024 GPT rows.\n",
	       nworkers, nworkers, tg_tile_count(GPT_N));
	printf("%-24s %-20s %7s | %9s %6s %6s %3s %5s %-5s | %9s %6s %6s %3s %5s %-5s %6s\n", "op", "shape", "MB",
	       "time", "GB/s", "peer", "", "ratio", "", "time", "GB/s", "peer", "", "ratio", "", "x1T");
	print_rule(150);
	for (int i = 0; i < NMEM_OPS; i++) {
		if (mem_ops[i].gemm)
			continue;
		opc c;
		opc_init(&c, &mem_ops[i]);
		mem_row(&c, 0);
		if (mem_ops[i].bwd_work > 0)
			mem_row(&c, 1);
		quiet(0);
		opc_free(&c);
		TRY(tg_graph_reset());
	}
	printf("\n   GEMM-like: attention in GFLOP/s (4 B H T^2 d forward, 8 B H T^2 d backward, the masked half included);\n"
	       "   'GEMMs alone' runs the kernel's cblas_sgemm calls without the softmax; ratio = its time / the kernel's.\n");
	printf("%-24s %-20s %7s |\n", "op", "shape", "MFLOP");
	print_rule(150);
	for (int i = 0; i < NMEM_OPS; i++) {
		if (!mem_ops[i].gemm)
			continue;
		opc c;
		opc_init(&c, &mem_ops[i]);
		mem_row(&c, 0);
		mem_row(&c, 1);
		quiet(0);
		opc_free(&c);
		TRY(tg_graph_reset());
	}
}

/* ------------------------------------------------------------------ 1, 2. GEMMs */

typedef struct gemm_case {
	const char *name;
	int m, n, k;
	int trans_b; /* b is (n, k) and used transposed (x W^T, PyTorch's Linear) */
	int bwd;     /* time the backward (dA and dB) */
	/* host: a (m, k), b, c (m, n), dc (m, n), da (m, k), db (b's shape) */
	float *ha, *hb, *hc, *hdc, *hda, *hdb;
	tg_tensor *a, *b, *c, *dc;
	/* section 1: one tile of rows */
	int tm;
	float *hta, *htc;
	tg_tensor *ta, *tc;
	double exec[MAX_REPS * 2];
	int nexec, pending;
	int threads; /* OpenBLAS threads of the peer */
} gemm_case;

static gemm_case gemms[] = {
        {.name = "attn qkv  x W", .m = GPT_N, .n = 3 * GPT_C, .k = GPT_C},
        {.name = "attn proj x W", .m = GPT_N, .n = GPT_C, .k = GPT_C},
        {.name = "mlp fc    x W", .m = GPT_N, .n = 4 * GPT_C, .k = GPT_C},
        {.name = "mlp proj  h W", .m = GPT_N, .n = GPT_C, .k = 4 * GPT_C},
        {.name = "lm head   x wte^T", .m = GPT_N, .n = GPT_V, .k = GPT_C, .trans_b = 1},
        {.name = "lstm      x W_ih^T", .m = LSTM_B, .n = 4 * LSTM_H, .k = LSTM_IN, .trans_b = 1},
        {.name = "attn qkv  bwd dA+dB", .m = GPT_N, .n = 3 * GPT_C, .k = GPT_C, .bwd = 1},
        {.name = "mlp fc    bwd dA+dB", .m = GPT_N, .n = 4 * GPT_C, .k = GPT_C, .bwd = 1},
        {.name = "mlp proj  bwd dA+dB", .m = GPT_N, .n = GPT_C, .k = 4 * GPT_C, .bwd = 1},
        {.name = "lstm      bwd dA+dB", .m = LSTM_B, .n = 4 * LSTM_H, .k = LSTM_IN, .trans_b = 1, .bwd = 1},
};
#define NGEMMS (int)(sizeof gemms / sizeof gemms[0])

static double gemm_flops(const gemm_case *g, int m)
{
	return 2.0 * m * g->n * g->k * (g->bwd ? 2 : 1);
}

static tg_tensor *tensor_of(float *h, const char *name, int64_t r, int64_t cols, int grad)
{
	tg_tensor *t;
	TRY(tg_tensor_new_from_host(&t, name, TG_F32, TG_SHAPE(r, cols), h, (size_t)(r * cols) * sizeof(float)));
	if (grad)
		TRY(tg_tensor_set_requires_grad(t, 1));
	return t;
}

static void gemm_init(gemm_case *g)
{
	int brows = g->trans_b ? g->n : g->k, bcols = g->trans_b ? g->k : g->n;
	g->ha = host_normal((size_t)g->m * g->k, 1);
	g->hb = host_normal((size_t)g->k * g->n, 2);
	g->hc = host_normal((size_t)g->m * g->n, 3);
	g->hdc = host_normal((size_t)g->m * g->n, 4);
	g->hda = host_normal((size_t)g->m * g->k, 5);
	g->hdb = host_normal((size_t)g->k * g->n, 6);
	g->a = tensor_of(g->ha, "a", g->m, g->k, g->bwd);
	g->b = tensor_of(g->hb, "b", brows, bcols, g->bwd);
	g->c = tensor_of(g->hc, "c", g->m, g->n, 0);
	g->dc = tensor_of(g->hdc, "dc", g->m, g->n, 0);
	int T = tg_tile_count(g->m);
	g->tm = (g->m + T - 1) / T;
	g->hta = host_normal((size_t)g->tm * g->k, 7);
	g->htc = host_normal((size_t)g->tm * g->n, 8);
	g->ta = tensor_of(g->hta, "a_tile", g->tm, g->k, 0);
	g->tc = tensor_of(g->htc, "c_tile", g->tm, g->n, 0);
}

static void gemm_free(gemm_case *g)
{
	TRY(tg_tensor_free(g->c));
	TRY(tg_tensor_free(g->dc));
	TRY(tg_tensor_free(g->a));
	TRY(tg_tensor_free(g->b));
	TRY(tg_tensor_free(g->ta));
	TRY(tg_tensor_free(g->tc));
	free(g->ha);
	free(g->hb);
	free(g->hc);
	free(g->hdc);
	free(g->hda);
	free(g->hdb);
	free(g->hta);
	free(g->htc);
}

/* the GEMMs on host buffers: forward C = A op(B); backward dA = dC op(B)^T, dB = A^T dC (or dC^T A) */
static void gemm_host(const gemm_case *g, int m, const float *a, float *c)
{
	int ldb = g->trans_b ? g->k : g->n;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans, m, g->n, g->k, 1.0f, a, g->k,
	            g->hb, ldb, 0.0f, c, g->n);
}
static void gemm_host_bwd(const gemm_case *g)
{
	int ldb = g->trans_b ? g->k : g->n;
	/* dA (m, k) = dC (m, n) op(B)^T: op(B)^T is B^T (n, k) for B (k, n), or B itself (n, k) */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, g->trans_b ? CblasNoTrans : CblasTrans, g->m, g->k, g->n, 1.0f, g->hdc,
	            g->n, g->hb, ldb, 0.0f, g->hda, g->k);
	if (g->trans_b) /* dB (n, k) = dC^T A */
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->n, g->k, g->m, 1.0f, g->hdc, g->n, g->ha, g->k,
		            0.0f, g->hdb, g->k);
	else /* dB (k, n) = A^T dC */
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->k, g->n, g->m, 1.0f, g->ha, g->k, g->hdc, g->n,
		            0.0f, g->hdb, g->n);
}

/* the kernel as the op's tasks call it (tg_matmul_cpu), whole shape, one thread */
static int gemm_kernel_run(void *ctx)
{
	gemm_case *g = ctx;
	tg_mat a = {g->ha, g->m, g->k, g->k}, c = {g->hc, g->m, g->n, g->n};
	tg_mat b = {g->hb, g->trans_b ? g->n : g->k, g->trans_b ? g->k : g->n, g->trans_b ? g->k : g->n};
	if (!g->bwd) {
		struct tg_matmul_args args = {.trans_x = 0, .trans_y = g->trans_b, .beta = 0};
		tg_matmul_cpu(c, a, b, &args);
		return 0;
	}
	tg_mat dc = {g->hdc, g->m, g->n, g->n}, da = {g->hda, g->m, g->k, g->k};
	tg_mat db = {g->hdb, b.rows, b.cols, b.ld};
	struct tg_matmul_args ada = {.trans_x = 0, .trans_y = !g->trans_b, .beta = 0};
	tg_matmul_cpu(da, dc, b, &ada);
	if (g->trans_b) {
		struct tg_matmul_args adb = {.trans_x = 1, .trans_y = 0, .beta = 0};
		tg_matmul_cpu(db, dc, a, &adb);
	} else {
		struct tg_matmul_args adb = {.trans_x = 1, .trans_y = 0, .beta = 0};
		tg_matmul_cpu(db, a, dc, &adb);
	}
	return 0;
}

/* OpenBLAS on `threads` threads, whole shape */
static int gemm_blas_run(void *ctx)
{
	gemm_case *g = ctx;
	openblas_set_num_threads(g->threads);
	if (g->bwd)
		gemm_host_bwd(g);
	else
		gemm_host(g, g->m, g->ha, g->hc);
	openblas_set_num_threads(1);
	return 0;
}

/* cblas on one thread, one tile */
static int gemm_tile_blas_run(void *ctx)
{
	gemm_case *g = ctx;
	gemm_host(g, g->tm, g->hta, g->htc);
	return 0;
}

/* one task of the tile's shape (tiling: one tile per op) */
static int gemm_tile_task_prep(void *ctx)
{
	gemm_case *g = ctx;
	if (g->pending && g->nexec < MAX_REPS * 2)
		g->exec[g->nexec++] = prof_exec_seconds();
	g->pending = 1;
	quiet(0);
	TRY(tg_graph_reset());
	prof_reset();
	return 0;
}
static int gemm_tile_task_run(void *ctx)
{
	gemm_case *g = ctx;
	TRY(tg_matmul(g->tc, g->ta, g->b, g->trans_b ? TG_TRANS_B : 0));
	return tg_wait_all();
}

/* the op on the whole shape (forward), or its backward after a forward */
static int gemm_op_prep(void *ctx)
{
	gemm_case *g = ctx;
	quiet(0);
	TRY(tg_graph_reset());
	if (!g->bwd)
		return 0;
	TRY(tg_matmul(g->c, g->a, g->b, g->trans_b ? TG_TRANS_B : 0));
	TRY(tg_wait_all());
	TRY(tg_zero_grad(g->a));
	return tg_zero_grad(g->b);
}
static int gemm_op_run(void *ctx)
{
	gemm_case *g = ctx;
	if (g->bwd)
		TRY(tg_backward_from(g->c, g->dc));
	else
		TRY(tg_matmul(g->c, g->a, g->b, g->trans_b ? TG_TRANS_B : 0));
	return tg_wait_all();
}

static void section_gemms(void)
{
	char s1[32], s2[32], s3[32];
	printf("\n1. One GEMM task vs cblas_sgemm on one thread, same shape: the op as one task (tg_set_tiling(0, 1)) on\n"
	       "   a tensor of one row tile (the rows of the tiles the automatic tiling makes), submit to tg_wait_all;\n"
	       "   'exec' = the task's run time on its worker (StarPU profiling), 'over' = wall - exec.\n"
	       "   OpenBLAS threads: %d (tg_init sets 1: a task's BLAS call is single-threaded). Target: ratio >= 0.90.\n",
	       openblas_get_num_threads());
	printf("%-20s %-17s | %9s %7s | %9s %9s %7s %8s | %5s\n", "gemm", "tile M x N x K", "cblas", "GF/s", "task",
	       "exec", "GF/s", "over", "ratio");
	print_rule(104);
	for (int i = 0; i < NGEMMS; i++)
		gemm_init(&gemms[i]);
	TRY(tg_set_tiling(0, 1));
	for (int i = 0; i < NGEMMS; i++) {
		gemm_case *g = &gemms[i];
		if (g->bwd)
			continue;
		job blas = {gemm_tile_blas_run, quiet_prep, g}, task = {gemm_tile_task_run, gemm_tile_task_prep, g};
		double tb, tt;
		g->nexec = g->pending = 0;
		measure(&task, &blas, &tt, &tb);
		gemm_tile_task_prep(g); /* collects the last run's time */
		double over[MAX_REPS];
		for (int r = 0; r < last_nruns; r++) /* the timed runs come after the warm-ups */
			over[r] = last_runs[r] - g->exec[g->nexec - last_nruns + r];
		double te = median(g->exec + g->nexec - last_nruns, last_nruns), to = median(over, last_nruns);
		double fl = gemm_flops(g, g->tm);
		char shape[48], w[96];
		snprintf(shape, sizeof shape, "%d x %d x %d", g->tm, g->n, g->k);
		snprintf(w, sizeof w, "1. %s: task vs cblas 1 thread", g->name);
		double ratio = tb / tt;
		printf("%-20s %-17s | %s %7.1f | %s %s %7.1f %8.1f | %5.2f %s\n", g->name, shape,
		       fmt_time(tb, s1, sizeof s1), fl / tb * 1e-9, fmt_time(tt, s2, sizeof s2),
		       fmt_time(te, s3, sizeof s3), fl / tt * 1e-9, to * 1e6, ratio, mark(ratio, 0.9, 1, w));
	}
	TRY(tg_set_tiling(0, 0));

	printf("\n2. A GEMM op tiled over %d workers (tg_matmul, automatic tiling, + tg_wait_all; backward:\n"
	       "   tg_backward_from after the forward) vs OpenBLAS on %d threads (openblas_set_num_threads around the\n"
	       "   call), whole shape. '1 thread' = tg_matmul_cpu called directly. OpenBLAS runs in a block of its own,\n"
	       "   then a pause (its threads spin after a call). busy = the workers' time in tasks / (wall x %d workers),\n"
	       "   over 5 more runs of the op. Target: ratio >= 0.85.\n",
	       nworkers, nworkers, nworkers);
	printf("%-20s %-17s %5s | %9s %7s | %9s %7s | %9s %7s %5s | %5s\n", "gemm", "M x N x K", "tasks", "1 thread",
	       "GF/s", "OpenBLAS", "GF/s", "tiled op", "GF/s", "busy", "ratio");
	print_rule(116);
	for (int i = 0; i < NGEMMS; i++) {
		gemm_case *g = &gemms[i];
		g->threads = nworkers;
		job kern = {gemm_kernel_run, quiet_prep, g}, blas = {gemm_blas_run, quiet_prep, g},
		    op = {gemm_op_run, gemm_op_prep, g};
		double tk, tb, to, unused, busy_exec[5];
		measure(&blas, NULL, &tb, &unused);
		pause_s(0.3);
		measure(&op, &kern, &to, &tk);
		/* how busy the workers are during the op: 5 more runs, their task time / (wall x workers) */
		double wall = 0;
		for (int r = 0; r < 5; r++) {
			if (gemm_op_prep(g) < 0)
				die("gemm op");
			prof_reset();
			double t0 = now();
			if (gemm_op_run(g) < 0)
				die("gemm op");
			wall += now() - t0;
			busy_exec[r] = prof_exec_seconds();
		}
		double busy = 0;
		for (int r = 0; r < 5; r++)
			busy += busy_exec[r];
		busy /= wall * nworkers;
		/* how many tasks the op made */
		TRY(tg_graph_reset());
		if (gemm_op_prep(g) < 0 || gemm_op_run(g) < 0)
			die("gemm op");
		tg_graph *gr;
		TRY(tg_graph_take(&gr));
		int ntasks = 0;
		for (int k = 0; k < tg_graph_num_nodes(gr); k++) {
			tg_graph_node_info info;
			TRY(tg_graph_node(gr, k, &info));
			if (info.op_id >= 0 && !strcmp(info.op, "matmul") &&
			    info.phase == (g->bwd ? TG_PHASE_BWD : TG_PHASE_FWD))
				ntasks++;
		}
		tg_graph_free(gr);
		double fl = gemm_flops(g, g->m);
		char shape[48], w[96];
		snprintf(shape, sizeof shape, "%d x %d x %d", g->m, g->n, g->k);
		snprintf(w, sizeof w, "2. %s: tiled op vs OpenBLAS %d threads", g->name, nworkers);
		double ratio = tb / to;
		printf("%-20s %-17s %5d | %s %7.1f | %s %7.1f | %s %7.1f %4.0f%% | %5.2f %s\n", g->name, shape, ntasks,
		       fmt_time(tk, s1, sizeof s1), fl / tk * 1e-9, fmt_time(tb, s2, sizeof s2), fl / tb * 1e-9,
		       fmt_time(to, s3, sizeof s3), fl / to * 1e-9, busy * 100, ratio, mark(ratio, 0.85, 1, w));
	}
	quiet(0);
	for (int i = 0; i < NGEMMS; i++)
		gemm_free(&gemms[i]);
	TRY(tg_graph_reset());
}

/* ------------------------------------------------------------------ 4. per-task overhead */

static void empty_cpu(void *buffers[], void *arg)
{
	(void)buffers;
	(void)arg;
}
static struct starpu_codelet raw_cl = {
        .cpu_funcs = {empty_cpu}, .nbuffers = 2, .modes = {STARPU_R, STARPU_W}, .name = "bench_empty_raw"};
static struct starpu_codelet var_cl = {
        .cpu_funcs = {empty_cpu}, .nbuffers = STARPU_VARIABLE_NBUFFERS, .name = "bench_empty"};
static const tg_op_desc empty_op = {.name = "bench_empty", .kind = TG_KIND_OTHER};

enum { OV_INSERT, OV_CREATE, OV_TG_SUBMIT, OV_TG_SCALE, OV_COUNT };
static const char *const ov_names[OV_COUNT] = {
        "starpu_task_insert, empty codelet (R, W)",
        "starpu_task_create/submit as taskgrad builds it",
        "tg_submit, the same empty codelet",
        "tg_scale on 1-element tensors (a real op)",
};

typedef struct overhead {
	int ntasks, variant;
	int paused; /* the workers paused during the submission loop (resumed for the wait) */
	float raw_in, *raw_out;
	starpu_data_handle_t hin, *hout;
	tg_tensor *in, **out;
	double submit_s; /* the submission loop of the last run */
} overhead;

static int overhead_run(void *ctx)
{
	overhead *o = ctx;
	double t0 = now();
	for (int i = 0; i < o->ntasks; i++) {
		switch (o->variant) {
		case OV_INSERT:
			if (starpu_task_insert(&raw_cl, STARPU_R, o->hin, STARPU_W, o->hout[i], 0) != 0)
				return tg_set_error(TG_ESTARPU, "starpu_task_insert failed");
			break;
		case OV_CREATE: { /* what runtime/submit_local.c does: handles, modes, a copy of the arguments */
			struct starpu_task *t = starpu_task_create();
			t->cl = &var_cl;
			t->name = "bench_empty";
			STARPU_TASK_SET_HANDLE(t, o->hout[i], 0);
			STARPU_TASK_SET_MODE(t, STARPU_W, 0);
			STARPU_TASK_SET_HANDLE(t, o->hin, 1);
			STARPU_TASK_SET_MODE(t, STARPU_R, 1);
			t->nbuffers = 2;
			t->cl_arg = malloc(sizeof(float));
			t->cl_arg_size = sizeof(float);
			t->cl_arg_free = 1;
			if (starpu_task_submit(t) != 0)
				return tg_set_error(TG_ESTARPU, "starpu_task_submit failed");
			break;
		}
		case OV_TG_SUBMIT: {
			float arg = 1.0f;
			tg_task_spec s = tg_spec(&empty_op, &var_cl, "bench_empty", TG_PHASE_FWD, &arg, sizeof arg, 0);
			tg_spec_add(&s, o->out[i], TG_W);
			tg_spec_add(&s, o->in, TG_R);
			TRY(tg_submit(&s));
			break;
		}
		default:
			TRY(tg_scale(o->out[i], o->in, 2.0f));
		}
	}
	o->submit_s = now() - t0;
	if (o->paused)
		quiet(0);
	if (o->variant == OV_INSERT || o->variant == OV_CREATE)
		return starpu_task_wait_for_all() == 0 ? 0
		                                       : tg_set_error(TG_ESTARPU, "starpu_task_wait_for_all failed");
	return tg_wait_all();
}

static int overhead_prep(void *ctx)
{
	const overhead *o = ctx;
	quiet(o->paused);
	return tg_graph_reset();
}

static void section_overhead(void)
{
	int ntasks = opt.quick ? 2000 : 20000;
	overhead o = {.ntasks = ntasks};
	o.raw_out = calloc((size_t)ntasks, sizeof *o.raw_out);
	o.hout = malloc((size_t)ntasks * sizeof *o.hout);
	o.out = malloc((size_t)ntasks * sizeof *o.out);
	if (!o.raw_out || !o.hout || !o.out)
		die("out of memory");
	starpu_vector_data_register(&o.hin, STARPU_MAIN_RAM, (uintptr_t)&o.raw_in, 1, sizeof(float));
	for (int i = 0; i < ntasks; i++)
		starpu_vector_data_register(&o.hout[i], STARPU_MAIN_RAM, (uintptr_t)&o.raw_out[i], 1, sizeof(float));
	TRY(tg_tensor_new_filled(&o.in, "in", TG_F32, TG_SHAPE(1), &(tg_fill){.kind = TG_FILL_CONSTANT, .a = 1}));
	for (int i = 0; i < ntasks; i++)
		TRY(tg_tensor_new(&o.out[i], "out", TG_F32, TG_SHAPE(1)));

	/* every variant, interleaved, after a warm-up each; StarPU's profiling off (it costs per task) */
	starpu_profiling_status_set(STARPU_PROFILING_DISABLE);
	int reps = opt.quick ? 3 : 7;
	double total[OV_COUNT][MAX_REPS], sub[OV_COUNT][MAX_REPS], quiet_sub[OV_COUNT][MAX_REPS];
	job j = {overhead_run, overhead_prep, &o};
	for (int v = 0; v < OV_COUNT; v++) {
		o.variant = v;
		run_once(&j);
	}
	for (int r = 0; r < reps; r++)
		for (int v = 0; v < OV_COUNT; v++) {
			o.variant = v;
			o.paused = 0;
			total[v][r] = run_once(&j) / ntasks;
			sub[v][r] = o.submit_s / ntasks;
			o.paused = 1;
			run_once(&j);
			quiet_sub[v][r] = o.submit_s / ntasks;
		}
	o.paused = 0;
	starpu_profiling_status_set(STARPU_PROFILING_ENABLE);
	TRY(tg_graph_reset());

	double mt[OV_COUNT], ms[OV_COUNT], mq[OV_COUNT];
	for (int v = 0; v < OV_COUNT; v++) {
		mt[v] = median(total[v], reps);
		ms[v] = median(sub[v], reps);
		mq[v] = median(quiet_sub[v], reps);
	}
	printf("\n4. Per-task overhead: %d independent tasks (each writes its own 1-element vector, all read one), %d CPU\n"
	       "   workers, median of %d runs; 'submit' = the submission loop, 'total' = first submission to the end of the\n"
	       "   wait; 'paused' = the submission loop again with the workers paused (starpu_pause; resumed for the\n"
	       "   wait): the submitting thread's own cost, without spinning workers on its cores. Target: tg_submit\n"
	       "   total <= 1.25 x starpu_task_insert.\n",
	       ntasks, nworkers, reps);
	printf("%-50s | %12s %12s %8s | %7s\n", "variant", "submit us/task", "total us/task", "paused", "x insert");
	print_rule(105);
	for (int v = 0; v < OV_COUNT; v++) {
		double ratio = mt[v] / mt[OV_INSERT];
		const char *m = "";
		if (v == OV_TG_SUBMIT)
			m = mark(ratio, 1.25, 0, "4. tg_submit vs starpu_task_insert");
		else if (v == OV_TG_SCALE)
			m = mark(ratio, 1.25, 0, "4. tg_scale (1 element) vs starpu_task_insert");
		printf("%-50s | %14.2f %13.2f %8.2f | %7.2f %s\n", ov_names[v], ms[v] * 1e6, mt[v] * 1e6, mq[v] * 1e6, ratio, m);
	}
	printf("   Where tg_submit's time goes, from the submission loops with the workers paused: StarPU's task\n"
	       "   creation and submission as taskgrad does it %.2f us/task; taskgrad's checks, tape record and spec\n"
	       "   handling on top of it %+.2f us/task (x%.2f); tg_scale (op check, elementwise table, a codelet with a\n"
	       "   perfmodel) vs tg_submit %+.2f us/task. With the workers running, the submitting thread shares the %d\n"
	       "   cores with %d spinning workers and every loop is slower: create/submit %.2f, tg_submit %.2f us/task.\n",
	       mq[OV_CREATE] * 1e6, (mq[OV_TG_SUBMIT] - mq[OV_CREATE]) * 1e6, mq[OV_TG_SUBMIT] / mq[OV_CREATE],
	       (mq[OV_TG_SCALE] - mq[OV_TG_SUBMIT]) * 1e6, (int)sysconf(_SC_NPROCESSORS_ONLN), nworkers, ms[OV_CREATE] * 1e6,
	       ms[OV_TG_SUBMIT] * 1e6);

	for (int i = 0; i < ntasks; i++)
		TRY(tg_tensor_free(o.out[i]));
	TRY(tg_tensor_free(o.in));
	starpu_data_unregister(o.hin);
	for (int i = 0; i < ntasks; i++)
		starpu_data_unregister(o.hout[i]);
	free(o.raw_out);
	free(o.hout);
	free(o.out);
}

/* ------------------------------------------------------------------ 5. a chain of GEMMs */

typedef struct chain {
	int layers, bwd;
	tg_tensor *x[GPT_L + 1], *h[GPT_L], *w1[GPT_L], *w2[GPT_L], *dout;
	float *hx[GPT_L + 1], *hh[GPT_L], *hw1[GPT_L], *hw2[GPT_L], *hdx[GPT_L + 1], *hdh[GPT_L], *hdw1[GPT_L],
	        *hdw2[GPT_L];
	double busy_sum, wall_sum;
	double exec;
} chain;

static int chain_prep(void *ctx)
{
	chain *c = ctx;
	quiet(0);
	TRY(tg_graph_reset());
	for (int l = 0; l < c->layers; l++) {
		TRY(tg_zero_grad(c->w1[l]));
		TRY(tg_zero_grad(c->w2[l]));
	}
	prof_reset();
	return 0;
}

static int chain_run(void *ctx)
{
	chain *c = ctx;
	for (int l = 0; l < c->layers; l++) {
		TRY(tg_matmul(c->h[l], c->x[l], c->w1[l], 0));
		TRY(tg_matmul(c->x[l + 1], c->h[l], c->w2[l], 0));
	}
	if (c->bwd)
		TRY(tg_backward_from(c->x[c->layers], c->dout));
	return tg_wait_all();
}

/* the same GEMMs with OpenBLAS on every thread */
static int chain_blas_run(void *ctx)
{
	chain *c = ctx;
	const int N = GPT_N, C = GPT_C, C4_ = 4 * GPT_C;
	openblas_set_num_threads(nworkers);
	for (int l = 0; l < c->layers; l++) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C4_, C, 1.0f, c->hx[l], C, c->hw1[l], C4_,
		            0.0f, c->hh[l], C4_);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, C4_, 1.0f, c->hh[l], C4_, c->hw2[l], C,
		            0.0f, c->hx[l + 1], C);
	}
	if (c->bwd)
		for (int l = c->layers - 1; l >= 0; l--) {
			/* x[l+1] = h W2: dh = dx[l+1] W2^T, dW2 = h^T dx[l+1]; h = x W1: dx = dh W1^T, dW1 = x^T dh */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C4_, C, 1.0f, c->hdx[l + 1], C,
			            c->hw2[l], C, 0.0f, c->hdh[l], C4_);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C4_, C, N, 1.0f, c->hh[l], C4_,
			            c->hdx[l + 1], C, 0.0f, c->hdw2[l], C);
			if (l > 0) /* x[0] needs no gradient */
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, C4_, 1.0f, c->hdh[l], C4_,
				            c->hw1[l], C4_, 0.0f, c->hdx[l], C);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, C4_, N, 1.0f, c->hx[l], C, c->hdh[l],
			            C4_, 0.0f, c->hdw1[l], C4_);
		}
	openblas_set_num_threads(1);
	return 0;
}

static double chain_flops(const chain *c)
{
	double per = 2.0 * 2.0 * GPT_N * GPT_C * (4.0 * GPT_C); /* two GEMMs of 1024 x 1536 x 384 */
	double f = c->layers * per;
	if (c->bwd)
		f += c->layers * 2 * per - 0.5 * per; /* dA and dB of each, but no dx[0] */
	return f;
}

static void section_chain(void)
{
	chain c;
	memset(&c, 0, sizeof c);
	c.layers = GPT_L;
	const int N = GPT_N, C = GPT_C, C4_ = 4 * GPT_C;
	for (int l = 0; l <= c.layers; l++) {
		c.hx[l] = host_normal((size_t)N * C, 100 + l);
		c.hdx[l] = host_normal((size_t)N * C, 120 + l);
		c.x[l] = tensor_of(c.hx[l], "x", N, C, 0);
	}
	for (int l = 0; l < c.layers; l++) {
		c.hh[l] = host_normal((size_t)N * C4_, 140 + l);
		c.hdh[l] = host_normal((size_t)N * C4_, 160 + l);
		c.hw1[l] = host_normal((size_t)C * C4_, 180 + l);
		c.hw2[l] = host_normal((size_t)C4_ * C, 200 + l);
		c.hdw1[l] = host_normal((size_t)C * C4_, 220 + l);
		c.hdw2[l] = host_normal((size_t)C4_ * C, 240 + l);
		for (size_t k = 0; k < (size_t)C * C4_; k++) { /* keep the activations of the chain near 1 */
			c.hw1[l][k] *= 0.05f;
			c.hw2[l][k] *= 0.025f;
		}
		c.h[l] = tensor_of(c.hh[l], "h", N, C4_, 0);
		c.w1[l] = tensor_of(c.hw1[l], "w_fc", C, C4_, 1);
		c.w2[l] = tensor_of(c.hw2[l], "w_proj", C4_, C, 1);
	}
	c.dout = tensor_of(c.hdx[c.layers], "dout", N, C, 0);

	printf("\n5. A chain of tiled GEMMs: the GPT's %d MLP blocks, x (1024, 384) -> h = x W_fc (1024, 1536) -> x' = h W_proj,\n"
	       "   one after the other (forward, then forward + backward: dA and dB of each GEMM). busy = time the workers\n"
	       "   spent in tasks (StarPU per-worker profiling) / (wall x %d workers). Peer: the same GEMMs, one after the\n"
	       "   other, by OpenBLAS on %d threads (a block of its own, then a pause). Target (as 2.): ratio >= 0.85.\n",
	       c.layers, nworkers, nworkers);
	printf("%-26s %-22s | %9s %7s %6s | %9s %7s | %5s\n", "chain", "tg_set_tiling", "time", "GF/s", "busy",
	       "OpenBLAS", "GF/s", "ratio");
	print_rule(102);
	char s1[32], s2[32];
	for (int bwd = 0; bwd <= 1; bwd++) {
		c.bwd = bwd;
		double tb, unused;
		job blas = {chain_blas_run, quiet_prep, &c};
		measure(&blas, NULL, &tb, &unused);
		pause_s(0.3);
		for (int tiling = 0; tiling <= 1; tiling++) { /* 0: one tile per op, 1: automatic */
			TRY(tg_set_tiling(0, tiling ? 0 : 1));
			/* the median run, with its busy fraction */
			int reps = opt.quick ? 3 : 7;
			double wall[MAX_REPS], busy[MAX_REPS];
			job j = {chain_run, chain_prep, &c};
			run_once(&j);
			for (int r = 0; r < reps; r++) {
				wall[r] = run_once(&j);
				busy[r] = prof_exec_seconds() / (wall[r] * nworkers);
			}
			double tw = median(wall, reps), bz = median(busy, reps);
			double fl = chain_flops(&c);
			char w[96], label[64];
			snprintf(label, sizeof label, "%s", tiling ? "automatic (0, 0)" : "one tile per op (0, 1)");
			snprintf(w, sizeof w, "5. chain %s, %s", bwd ? "fwd+bwd" : "fwd",
			         tiling ? "automatic tiles" : "one tile per op");
			double ratio = tb / tw;
			printf("%-26s %-22s | %s %7.1f %5.0f%% | %s %7.1f | %5.2f %s\n",
			       bwd ? "6 MLP blocks fwd+bwd" : "6 MLP blocks fwd", label, fmt_time(tw, s1, sizeof s1),
			       fl / tw * 1e-9, 100 * bz, fmt_time(tb, s2, sizeof s2), fl / tb * 1e-9, ratio,
			       tiling ? mark(ratio, 0.85, 1, w) : "(info)");
		}
	}
	quiet(0);
	TRY(tg_set_tiling(0, 0));
	TRY(tg_graph_reset());
	for (int l = 0; l < c.layers; l++) {
		TRY(tg_tensor_free(c.h[l]));
		TRY(tg_tensor_free(c.w1[l]));
		TRY(tg_tensor_free(c.w2[l]));
	}
	for (int l = 0; l <= c.layers; l++)
		TRY(tg_tensor_free(c.x[l]));
	TRY(tg_tensor_free(c.dout));
	for (int l = 0; l <= c.layers; l++) {
		free(c.hx[l]);
		free(c.hdx[l]);
	}
	for (int l = 0; l < c.layers; l++) {
		free(c.hh[l]);
		free(c.hdh[l]);
		free(c.hw1[l]);
		free(c.hw2[l]);
		free(c.hdw1[l]);
		free(c.hdw2[l]);
	}
}

/* ------------------------------------------------------------------ 0. the machine */

static double cpu_seconds(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return (double)r.ru_utime.tv_sec + (double)r.ru_stime.tv_sec +
	       1e-6 * (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

/* CPU seconds used by the whole machine (every process) so far, from /proc/stat; < 0 if unknown */
static double machine_busy_seconds(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return -1;
	unsigned long long v[8] = {0};
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
	               &v[7]);
	fclose(f);
	if (n < 5)
		return -1;
	unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* all but idle and iowait */
	return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

/* cores the process keeps busy over `s` seconds of sleep */
static double idle_cores(double s)
{
	double c0 = cpu_seconds(), w0 = now();
	pause_s(s);
	return (cpu_seconds() - c0) / (now() - w0);
}

typedef struct sgemm_ctx {
	int m, n, k;
	float *a, *b, *c;
} sgemm_ctx;

static int sgemm_run(void *ctx)
{
	const sgemm_ctx *g = ctx;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f,
	            g->c, g->n);
	return 0;
}

static int spinning_prep(void *ctx)
{
	(void)ctx;
	quiet(0);
	return 0;
}

static void section_machine(void)
{
	quiet(0);
	double spin = idle_cores(0.3);
	quiet(1);
	double still = idle_cores(0.3);
	quiet(0);
	sgemm_ctx g = {GPT_N, 4 * GPT_C, GPT_C, NULL, NULL, NULL};
	g.a = host_normal((size_t)g.m * g.k, 11);
	g.b = host_normal((size_t)g.k * g.n, 12);
	g.c = host_normal((size_t)g.m * g.n, 13);
	job js = {sgemm_run, spinning_prep, &g}, jq = {sgemm_run, quiet_prep, &g};
	double ts, tq;
	measure(&js, &jq, &ts, &tq);
	quiet(0);
	char s1[32], s2[32];
	printf("\n0. The machine: with the runtime idle, the process keeps %.2f cores busy (%.2f with the workers paused by\n"
	       "   starpu_pause): %s\n"
	       "   A cblas_sgemm %d x %d x %d on the main thread (one OpenBLAS thread): %s with the workers spinning,\n"
	       "   %s with them paused (%.2fx). Below, kernels and peers run with the workers paused (a quiet\n"
	       "   machine); tasks run with the runtime as it is, the submitting thread sharing the cores with the workers.\n",
	       spin, still,
#ifdef STARPU_NON_BLOCKING_DRIVERS
	       "this StarPU is built with non-blocking drivers (STARPU_NON_BLOCKING_DRIVERS): idle workers spin",
#else
	       "this StarPU's drivers block when idle",
#endif
	       g.m, g.n, g.k, fmt_time(ts, s1, sizeof s1), fmt_time(tq, s2, sizeof s2), ts / tq);
	free(g.a);
	free(g.b);
	free(g.c);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_ops [--quick] [--sched NAME] [--ncpu N]\n"
	           "  --quick       fewer, shorter runs (a smoke test; figures are rough)\n"
	           "  --sched NAME  StarPU scheduling policy (default: STARPU_SCHED if set, else eager)\n"
	           "  --ncpu N      CPU workers (default: STARPU_NCPU if set, else every core)\n");
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			opt.quick = 1;
		} else if (!strcmp(argv[i], "--sched") && i + 1 < argc) {
			opt.sched = argv[++i];
		} else if (!strcmp(argv[i], "--ncpu") && i + 1 < argc) {
			char *end;
			errno = 0;
			long v = strtol(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || v < 1 || v > 1024) {
				fprintf(stderr, "bench_ops: --ncpu needs a number of workers >= 1, got '%s'\n",
				        argv[i]);
				return 2;
			}
			opt.ncpu = (int)v;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			if (!strcmp(argv[i], "--sched") || !strcmp(argv[i], "--ncpu"))
				fprintf(stderr, "bench_ops: %s needs a value\n", argv[i]);
			else
				fprintf(stderr, "bench_ops: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!opt.sched)
		opt.sched = getenv("STARPU_SCHED") && *getenv("STARPU_SCHED") ? getenv("STARPU_SCHED") : "eager";
	if (!tg_sched_policy_valid(opt.sched)) {
		char names[512];
		tg_sched_policy_names(names, sizeof names);
		fprintf(stderr, "bench_ops: unknown scheduling policy '%s' (one of: %s)\n", opt.sched, names);
		return 2;
	}
	plan.warmup = opt.quick ? 1 : 2;
	plan.min_reps = opt.quick ? 3 : 7;
	plan.max_reps = opt.quick ? 3 : 61;
	plan.budget = opt.quick ? 0 : 0.8;

	tg_config cfg;
	tg_config_default(&cfg);
	cfg.sched = opt.sched;
	cfg.ncpu = opt.ncpu;
	cfg.ncuda = 0;
	cfg.profiling = 1; /* StarPU's per-worker profiling: task run times, busy fractions */
	double t_start = now();
	TRY(tg_init(&cfg));
	tg_runtime_info info;
	TRY(tg_runtime_get_info(&info));
	nworkers = info.ncpu;
	pool_start(nworkers);

	char model[256];
	cpu_model(model, sizeof model);
	const char *blas_cfg = openblas_get_config();
	printf("taskgrad bench_ops: the ops of a GPT (6 layers, d_model 384, 6 heads, context 256, batch 4: N = 1024 rows,\n"
	       "vocabulary 65) and of a 2-layer LSTM (hidden 256, batch 32), each figure against a peer timed in this run.\n");
	printf("CPU: %s (%ld cores online) | workers: %d CPU | policy: %s | StarPU %s | tiles of 1024 rows: %d\n",
	       model, sysconf(_SC_NPROCESSORS_ONLN), nworkers, info.sched, info.starpu_version, tg_tile_count(GPT_N));
	char load[64];
	load_average(load, sizeof load);
	printf("OpenBLAS: %s | threads after tg_init: %d\n", blas_cfg ? blas_cfg : "?", openblas_get_num_threads());
	printf("load average at the start: %s (other processes on these cores make every figure noisier)\n", load);
	if (opt.quick)
		printf("mode: --quick (1 warm-up, median of 3 runs: a smoke test, the figures are rough)\n");
	else
		printf("mode: full (%d warm-ups, median of %d to %d runs, about %.1f s of runs per figure and its peer)\n",
		       plan.warmup, plan.min_reps, plan.max_reps, plan.budget);
	if (openblas_get_num_threads() != 1)
		printf("WARNING: OpenBLAS does not run single-threaded after tg_init: task figures are not comparable\n");

	/* other processes on the machine during each section: CPU time of every process (/proc/stat)
	 * minus ours (getrusage), per second of wall time */
	void (*const sections[])(void) = {section_machine, section_gemms, section_mem_ops, section_overhead,
	                                  section_chain};
	double worst_others = 0;
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		double t0 = now(), m0 = machine_busy_seconds(), c0 = cpu_seconds();
		sections[i]();
		double dt = now() - t0, m1 = machine_busy_seconds(), others = (m1 - m0 - (cpu_seconds() - c0)) / dt;
		if (m0 < 0 || m1 < 0) {
			printf("   (%.1f s)\n", dt);
			continue;
		}
		if (others < 0)
			others = 0;
		worst_others = others > worst_others ? others : worst_others;
		printf("   (%.1f s; other processes used %.2f cores meanwhile%s)\n", dt, others,
		       others > 0.1 ? ": this section's figures are disturbed" : "");
	}
	quiet(0);
	pool_stop();

	printf("\nSummary: %d ratios at or above target, %d below.\n", npass, nbelow);
	if (worst_others > 0.1)
		printf("Other processes used up to %.2f cores during a section: run again on a quiet machine before "
		       "trusting a verdict.\n",
		       worst_others);
	if (nbelow)
		printf("Below target:\n%s", below);
	TRY(tg_shutdown());
	load_average(load, sizeof load);
	printf("(%.0f s in all; load average at the end: %s)\n", now() - t_start, load);
	return 0;
}
