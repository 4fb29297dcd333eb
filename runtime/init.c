/* init.c — starting and stopping StarPU, the configuration and what really runs. */
#include "tg_internal.h"

#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tg_runtime tg_rt;

void tg_config_default(tg_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->sched = NULL;
	cfg->ncpu = -1;
	cfg->ncuda = -1;
	cfg->seed = 1;
	cfg->deterministic = 1;
	cfg->profiling = 0;
	cfg->verbose = 0;
}

int tg_is_initialized(void)
{
	return tg_rt.initialized;
}

int tg_require_init(const char *what)
{
	TG_CHECK(tg_rt.initialized, TG_ESTATE, "%s: taskgrad is not initialised (call tg_init first)", what);
	return 0;
}

int tg_sched_policy_valid(const char *name)
{
	if (!name)
		return 0;
	struct starpu_sched_policy **p = starpu_sched_get_predefined_policies();
	for (; p && *p; p++)
		if ((*p)->policy_name && strcmp((*p)->policy_name, name) == 0)
			return 1;
	return 0;
}

int tg_sched_policy_names(char *buf, size_t size)
{
	TG_CHECK(buf && size > 0, TG_EINVAL, "tg_sched_policy_names: no buffer");
	size_t used = 0;
	buf[0] = '\0';
	struct starpu_sched_policy **p = starpu_sched_get_predefined_policies();
	for (; p && *p; p++) {
		int k = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", (*p)->policy_name);
		TG_CHECK(k >= 0 && (size_t)k < size - used, TG_EINVAL, "tg_sched_policy_names: buffer too small");
		used += (size_t)k;
	}
	return 0;
}

/* Policies that a StarPU version lists but cannot run. Each was reproduced with StarPU alone
 * (a chain of tasks with a history-based performance model), not only through taskgrad. */
static const struct {
	const char *name;
	int major, minor;
	const char *why;
} broken_policies[] = {
	{"modular-heteroprio-heft", 1, 3,
	 "never runs a task that has a history-based performance model when there are two or more "
	 "workers in StarPU 1.3 (the run hangs; fixed in StarPU 1.4)"},
};

static int broken_policy(const char *name)
{
	for (size_t i = 0; i < sizeof broken_policies / sizeof broken_policies[0]; i++)
		if (strcmp(name, broken_policies[i].name) == 0 && STARPU_MAJOR_VERSION == broken_policies[i].major &&
		    STARPU_MINOR_VERSION == broken_policies[i].minor)
			return tg_error(TG_ENOTSUP, "scheduling policy '%s' %s; choose another policy", name,
			                broken_policies[i].why);
	return 0;
}

static int unknown_policy(const char *name, const char *where)
{
	char names[2048];
	if (tg_sched_policy_names(names, sizeof names) < 0)
		snprintf(names, sizeof names, "(list too long)");
	return tg_error(TG_EINVAL, "unknown scheduling policy '%s'%s; StarPU's policies are: %s", name, where, names);
}

/* The worker count StarPU will be asked for, from the configuration (cfg >= 0) or from the
 * environment: *want is -1 when neither says, and *source names where it came from (empty
 * when neither says). A configured count that the environment contradicts is an error
 * (StarPU would silently take the environment's). */
static int worker_request(int configured, const char *var, const char *alt_var, const char *what, int *want,
                          char *source, size_t source_size)
{
	long env = -1, alt = -1;
	TG_TRY(tg_env_whole_number(var, &env));
	if (alt_var)
		TG_TRY(tg_env_whole_number(alt_var, &alt));
	TG_CHECK(env < 0 || alt < 0 || env == alt, TG_EINVAL,
	         "%s=%ld and %s=%ld in the environment disagree (StarPU would silently use %s); unset one", var, env,
	         alt_var, alt, var);
	const char *from = var; /* the variable the count comes from, when it comes from one */
	if (env < 0 && alt >= 0) {
		env = alt;
		from = alt_var;
	}
	TG_CHECK(configured < 0 || env < 0 || env == configured, TG_EINVAL,
	         "%s=%ld in the environment conflicts with the configured %d %s workers "
	         "(StarPU would silently use the environment); unset %s or configure %ld",
	         from, env, configured, what, from, env);
	*want = configured >= 0 ? configured : (int)env;
	if (configured >= 0)
		snprintf(source, source_size, "asked for %d %s workers", configured, what);
	else if (env >= 0)
		snprintf(source, source_size, "%s=%ld asks for %ld %s workers", from, env, env, what);
	else
		source[0] = '\0';
	return 0;
}

/* What in the environment keeps cores from StarPU's CPU workers (STARPU_RESERVE_NCPU, and
 * STARPU_MAIN_THREAD_BIND, which reserves one more for the main thread), as a clause for a
 * message; returns how many such variables are set (0: buf is ""). */
static int reserved_cores(char *buf, size_t size)
{
	long reserve = -1, bind = -1;
	buf[0] = '\0';
	if (tg_env_whole_number("STARPU_RESERVE_NCPU", &reserve) < 0)
		reserve = -1;
	if (tg_env_whole_number("STARPU_MAIN_THREAD_BIND", &bind) < 0)
		bind = -1;
	if (reserve > 0 && bind > 0) {
		snprintf(buf, size, "STARPU_RESERVE_NCPU=%ld and STARPU_MAIN_THREAD_BIND=%ld in the environment keep %ld cores "
		         "from the workers", reserve, bind, reserve + 1);
		return 2;
	}
	if (reserve > 0)
		snprintf(buf, size, "STARPU_RESERVE_NCPU=%ld in the environment keeps %ld %s from the workers", reserve, reserve,
		         reserve == 1 ? "core" : "cores");
	else if (bind > 0)
		snprintf(buf, size, "STARPU_MAIN_THREAD_BIND=%ld in the environment keeps a core from the workers (for the main "
		         "thread)", bind);
	return reserve > 0 || bind > 0;
}

/* ------------------------------------------------------------------ the runtime's life, for
 * the layers above (tg_hooks.h) */

static _Atomic uint64_t generation;
static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*shutdown_hooks[16])(void);
static int nshutdown_hooks;

uint64_t tg_runtime_generation(void)
{
	return atomic_load(&generation);
}

int tg_at_shutdown(void (*fn)(void))
{
	TG_CHECK(fn, TG_EINVAL, "tg_at_shutdown: no function");
	pthread_mutex_lock(&hooks_lock);
	int i = 0;
	while (i < nshutdown_hooks && shutdown_hooks[i] != fn)
		i++;
	int full = i == nshutdown_hooks && i == (int)(sizeof shutdown_hooks / sizeof shutdown_hooks[0]);
	if (i == nshutdown_hooks && !full)
		shutdown_hooks[nshutdown_hooks++] = fn;
	pthread_mutex_unlock(&hooks_lock);
	TG_CHECK(!full, TG_ENOMEM, "tg_at_shutdown: the table of %d functions is full", i);
	return 0;
}

static void run_shutdown_hooks(void)
{
	void (*hooks[sizeof shutdown_hooks / sizeof shutdown_hooks[0]])(void);
	pthread_mutex_lock(&hooks_lock);
	int n = nshutdown_hooks;
	memcpy(hooks, shutdown_hooks, sizeof hooks);
	pthread_mutex_unlock(&hooks_lock);
	for (int i = 0; i < n; i++)
		hooks[i]();
}

/* Stop StarPU and give back what tg_init changed around it. */
static void stop_starpu(void)
{
	run_shutdown_hooks();
	starpu_shutdown();
	tg_signals_restore();
	tg_env_restore();
}

int tg_init(const tg_config *user_cfg)
{
	TG_CHECK(!tg_rt.initialized, TG_ESTATE, "tg_init: taskgrad is already initialised");
	tg_config cfg;
	if (user_cfg)
		cfg = *user_cfg;
	else
		tg_config_default(&cfg);
	TG_CHECK(cfg.ncpu >= -1, TG_EINVAL, "number of CPU workers must be >= 0 (or -1 for StarPU's default), got %d", cfg.ncpu);
	TG_CHECK(cfg.ncuda >= -1, TG_EINVAL, "number of CUDA workers must be >= 0 (or -1 for StarPU's default), got %d", cfg.ncuda);

	/* StarPU aborts the process on a malformed number in its variables: refuse them first. */
	TG_TRY(tg_env_check_starpu_vars());

	/* The policy: the configuration, else STARPU_SCHED, else lws. StarPU lets STARPU_SCHED
	 * override the configured name and runs lws for an unknown one, so both are settled here. */
	const char *env = getenv("STARPU_SCHED");
	if (env && !*env)
		env = NULL;
	if (cfg.sched && !tg_sched_policy_valid(cfg.sched))
		return unknown_policy(cfg.sched, "");
	if (env && !tg_sched_policy_valid(env))
		return unknown_policy(env, " (from STARPU_SCHED in the environment)");
	TG_CHECK(!(cfg.sched && env && strcmp(cfg.sched, env) != 0), TG_EINVAL,
	         "scheduling policy '%s' conflicts with STARPU_SCHED=%s in the environment "
	         "(StarPU would silently run '%s'); unset STARPU_SCHED or ask for '%s'",
	         cfg.sched, env, env, env);
	/* A copy: env points into the environment, which changes before StarPU starts. */
	char policy[sizeof tg_rt.info.sched]; /* a valid name fits: StarPU's are short */
	snprintf(policy, sizeof policy, "%s", cfg.sched ? cfg.sched : env ? env : "lws");
	env = NULL;
	TG_TRY(broken_policy(policy));

	/* Worker counts: one rule for the configuration and the environment. A CPU worker is a
	 * thread bound to a core; StarPU would bind two workers to one core (and only warn), which
	 * makes every measurement a lie, so more CPU workers than cores is refused. */
	int want_cpu, want_cuda;
	char cpu_source[128], cuda_source[128];
	TG_TRY(worker_request(cfg.ncpu, "STARPU_NCPU", "STARPU_NCPUS", "CPU", &want_cpu, cpu_source, sizeof cpu_source));
	TG_TRY(worker_request(cfg.ncuda, "STARPU_NCUDA", NULL, "CUDA", &want_cuda, cuda_source, sizeof cuda_source));
	int max_cpu = tg_env_max_cpu_workers();
	if (want_cpu > max_cpu) {
		if (max_cpu < tg_machine_cores())
			return tg_error(TG_EINVAL, "%s, but this StarPU was built for at most %d CPU workers (STARPU_MAXCPUS)",
			                cpu_source, STARPU_MAXCPUS);
		return tg_error(TG_EINVAL, "%s, but this machine has only %d CPU cores (one worker per core: more would "
		                "share cores and distort every timing); ask for at most %d", cpu_source, tg_machine_cores(),
		                max_cpu);
	}

	/* Where the performance models go, and StarPU's messages. */
	tg_runtime_info info;
	memset(&info, 0, sizeof info);
	TG_TRY(tg_env_setup(&cfg, &info));

	/* OpenBLAS runs single-threaded inside tasks: parallelism comes from the workers. */
	openblas_set_num_threads(1);

	struct starpu_conf conf;
	starpu_conf_init(&conf);
	conf.sched_policy_name = policy;
	conf.ncpus = want_cpu;
	conf.ncuda = want_cuda;
	conf.nopencl = 0;
	/* StarPU's handlers only dump FxT traces (not in this build) and, never removed, call
	 * themselves forever after a second starpu_init: keep them out unless the user asks. */
	if (!getenv("STARPU_CATCH_SIGNALS"))
		conf.catch_signals = 0;
	/* Performance models record every run unless the user sets STARPU_CALIBRATE. StarPU 1.3
	 * otherwise switches a model to recording in the middle of a run, when a model-based
	 * policy meets a size it has no measurement for; a task of that model already running
	 * then ends with a negative measured time and StarPU aborts ("measured >= 0"). */
	if (!getenv("STARPU_CALIBRATE"))
		conf.calibrate = 1;
	tg_signals_save();
	int rc = starpu_init(&conf);
	if (rc != 0) {
		tg_signals_restore();
		tg_env_restore();
		if (rc == -ENODEV) {
			char reserved[256];
			int nres = reserved_cores(reserved, sizeof reserved);
			return tg_error(TG_ENODEV, "StarPU found no worker to start: %s, and %s%s%s; %s",
			                want_cpu >= 0 ? cpu_source : "as many CPU workers as it finds (none)",
			                want_cuda >= 0 ? cuda_source : "as many CUDA workers as it finds (none)",
			                nres ? ", but " : "", reserved,
			                nres > 1 ? "unset them" : nres ? "unset it" : "ask for at least one worker");
		}
		return tg_error(TG_ESTARPU, "starpu_init failed: %s", strerror(-rc));
	}
	tg_signals_started();
	atomic_fetch_add(&generation, 1);

	/* StarPU clamps worker counts it cannot honour (GPUs, its build limits): say so. */
	int got_cpu = (int)starpu_worker_get_count_by_type(STARPU_CPU_WORKER), got_cuda = 0;
#ifdef STARPU_USE_CUDA
	got_cuda = (int)starpu_worker_get_count_by_type(STARPU_CUDA_WORKER);
#endif
	if (want_cpu >= 0 && got_cpu != want_cpu) {
		char reserved[256];
		int nres = reserved_cores(reserved, sizeof reserved);
		stop_starpu();
		return tg_error(TG_EINVAL, "%s but StarPU can start only %d on this machine%s%s%s", cpu_source, got_cpu,
		                nres ? ": " : "", reserved,
		                nres > 1 ? "; unset them or ask for fewer workers" : nres ? "; unset it or ask for fewer workers" : "");
	}
	if (want_cuda >= 0 && got_cuda != want_cuda) {
		stop_starpu();
		return tg_error(TG_EINVAL, "%s but StarPU can start only %d on this machine", cuda_source, got_cuda);
	}

	struct starpu_sched_policy *running = starpu_sched_ctx_get_sched_policy(0);
	const char *running_name = running && running->policy_name ? running->policy_name : "?";
	if (strcmp(running_name, policy) != 0) {
		stop_starpu();
		return tg_error(TG_ESTARPU, "asked StarPU for policy '%s' but it runs '%s'", policy, running_name);
	}

	memcpy(info.sched, policy, sizeof info.sched);
	info.ncpu = got_cpu;
	info.ncuda = got_cuda;
	info.max_cpu_workers = max_cpu;
	info.deterministic = cfg.deterministic ? 1 : 0;
	snprintf(info.starpu_version, sizeof info.starpu_version, "%d.%d.%d", STARPU_MAJOR_VERSION,
	         STARPU_MINOR_VERSION, STARPU_RELEASE_VERSION);
#ifdef TG_USE_CUDA
	info.cuda_compiled = 1;
#endif
	tg_rt.graph = tg_graph_new_internal(++tg_rt.graph_serial);
	if (!tg_rt.graph) {
		stop_starpu();
		return tg_error(TG_ENOMEM, "out of memory");
	}
	tg_rt.info = info;
#ifdef TG_USE_CUDA
	if (tg_rt.info.ncuda > 0)
		starpu_cublas_init();
#endif
	if (cfg.profiling)
		starpu_profiling_status_set(STARPU_PROFILING_ENABLE);

	cfg.sched = NULL; /* the caller's string is not kept; info.sched holds the name */
	tg_rt.cfg = cfg;
	tg_rt.backends = TG_BACKEND_ANY;
	tg_rt.submitter = &tg_submitter_local;
	tg_rt.microbatch = -1;
	tg_rt.stage = -1;
	tg_rt.live_bytes = tg_rt.peak_bytes = 0;
	memset(tg_rt.stage_has_mask, 0, sizeof tg_rt.stage_has_mask);
	tg_rt.fwd_node = -1;
	free(tg_rt.layer); /* a tag set before tg_init does not carry over */
	tg_rt.layer = NULL;
	tg_rt.initialized = true;
	tg_async_error_take();
	tg_clear_error();
	return 0;
}

int tg_shutdown(void)
{
	TG_TRY(tg_require_init("tg_shutdown"));
	starpu_task_wait_for_all();
	int rc = tg_async_error_take();
	int64_t live = tg_tensor_release_all();
	tg_scratch_release_all();
	tg_graph_free(tg_rt.graph);
	tg_rt.graph = NULL;
	free(tg_rt.layer);
	tg_rt.layer = NULL;
#ifdef TG_USE_CUDA
	if (tg_rt.info.ncuda > 0)
		starpu_cublas_shutdown();
#endif
	stop_starpu();
	tg_rt.initialized = false;
	if (rc < 0)
		return rc;
	TG_CHECK(live == 0, TG_ESTATE, "tg_shutdown: %lld tensors were not freed (their memory is released now)",
	         (long long)live);
	return 0;
}

int tg_runtime_get_info(tg_runtime_info *info)
{
	TG_TRY(tg_require_init("tg_runtime_get_info"));
	TG_CHECK(info, TG_EINVAL, "tg_runtime_get_info: info is NULL");
	*info = tg_rt.info;
	const char *core = openblas_get_corename();
	snprintf(info->blas_core, sizeof info->blas_core, "%s", core ? core : "unknown");
	return 0;
}

int tg_wait_all(void)
{
	TG_TRY(tg_require_init("tg_wait_all"));
	starpu_task_wait_for_all();
	return tg_async_error_take();
}

int tg_set_backend(unsigned backends)
{
	TG_CHECK((backends & ~(unsigned)(TG_BACKEND_CPU | TG_BACKEND_CUDA)) == 0, TG_EINVAL,
	         "tg_set_backend: unknown backend bits 0x%x", backends);
	tg_rt.backends = backends;
	return 0;
}

unsigned tg_get_backend(void)
{
	return tg_rt.backends;
}

int tg_tag_layer(const char *layer)
{
	char *copy = NULL;
	if (layer) {
		copy = strdup(layer);
		TG_CHECK(copy, TG_ENOMEM, "out of memory");
	}
	free(tg_rt.layer);
	tg_rt.layer = copy;
	return 0;
}

const char *tg_current_layer(void)
{
	return tg_rt.layer;
}

int tg_tag_microbatch(int microbatch)
{
	TG_CHECK(microbatch >= -1, TG_EINVAL, "micro-batch tag must be >= -1, got %d", microbatch);
	tg_rt.microbatch = microbatch;
	return 0;
}

int tg_current_microbatch(void)
{
	return tg_rt.microbatch;
}

int tg_tag_stage(int stage)
{
	TG_CHECK(stage >= -1 && stage < TG_MAX_STAGES, TG_EINVAL, "stage tag must be in [-1, %d], got %d",
	         TG_MAX_STAGES - 1, stage);
	tg_rt.stage = stage;
	return 0;
}

int tg_current_stage(void)
{
	return tg_rt.stage;
}

int tg_stage_split(int nstages)
{
	TG_TRY(tg_require_init("tg_stage_split"));
	TG_CHECK(nstages >= 1 && nstages <= TG_MAX_STAGES, TG_EINVAL, "pipeline stages must be in [1, %d], got %d",
	         TG_MAX_STAGES, nstages);
	/* every stage gets workers of each kind present: an op may be bound to one kind (its only
	 * kernel, or deterministic mode keeping a kind per op) */
	const enum starpu_worker_archtype kinds[] = {STARPU_CPU_WORKER, STARPU_CUDA_WORKER};
	const char *kind_name[] = {"CPU", "CUDA"};
	int ids[2][STARPU_NMAXWORKERS], n[2];
	for (int k = 0; k < 2; k++) {
		n[k] = starpu_worker_get_ids_by_type(kinds[k], ids[k], STARPU_NMAXWORKERS);
		TG_CHECK(n[k] == 0 || n[k] >= nstages, TG_EINVAL,
		         "%d pipeline stages for %d %s worker%s: every stage needs one of each kind", nstages, n[k],
		         kind_name[k], n[k] == 1 ? "" : "s");
	}
	for (int s = 0; s < nstages; s++) {
		int mine[STARPU_NMAXWORKERS], m = 0;
		for (int k = 0; k < 2; k++)
			for (int i = s * n[k] / nstages; i < (s + 1) * n[k] / nstages; i++)
				mine[m++] = ids[k][i];
		TG_TRY(tg_stage_set_workers(s, m, mine));
	}
	return 0;
}

int tg_stage_workers(int stage, int *workers, int max)
{
	TG_CHECK(stage >= 0 && stage < TG_MAX_STAGES, TG_EINVAL, "stage %d not in [0, %d]", stage, TG_MAX_STAGES - 1);
	int n = 0;
	for (int w = 0; w < STARPU_NMAXWORKERS; w++)
		if (tg_rt.stage_has_mask[stage] && (tg_rt.stage_mask[stage][w / 32] >> (w % 32) & 1u)) {
			if (n < max && workers)
				workers[n] = w;
			n++;
		}
	return n;
}

int tg_stage_set_workers(int stage, int n, const int *workers)
{
	TG_TRY(tg_require_init("tg_stage_set_workers"));
	TG_CHECK(stage >= 0 && stage < TG_MAX_STAGES, TG_EINVAL, "tg_stage_set_workers: stage %d not in [0, %d]", stage,
	         TG_MAX_STAGES - 1);
	TG_CHECK(n >= 0 && (n == 0 || workers), TG_EINVAL, "tg_stage_set_workers: %d workers", n);
	uint32_t mask[TG_MASK_WORDS] = {0};
	int nw = (int)starpu_worker_get_count();
	for (int i = 0; i < n; i++) {
		TG_CHECK(workers[i] >= 0 && workers[i] < nw, TG_EINVAL,
		         "tg_stage_set_workers: worker %d does not exist (this run has %d workers)", workers[i], nw);
		mask[workers[i] / 32] |= 1u << (workers[i] % 32);
	}
	/* tasks in flight point at the old mask: let them end first */
	starpu_task_wait_for_all();
	memcpy(tg_rt.stage_mask[stage], mask, sizeof mask);
	tg_rt.stage_has_mask[stage] = n > 0;
	return 0;
}
