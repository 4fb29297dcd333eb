/* init.c — starting and stopping StarPU, the configuration and what really runs. */
#include "tg_internal.h"

#include <cblas.h>
#include <errno.h>
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

static int unknown_policy(const char *name, const char *where)
{
	char names[2048];
	if (tg_sched_policy_names(names, sizeof names) < 0)
		snprintf(names, sizeof names, "(list too long)");
	return tg_error(TG_EINVAL, "unknown scheduling policy '%s'%s; StarPU's policies are: %s", name, where, names);
}

/* A worker count in the environment that StarPU would use over the configured one. */
static int env_count(const char *var, int configured, const char *what)
{
	const char *env = getenv(var);
	if (!env || !*env || configured < 0)
		return 0;
	char *end;
	long v = strtol(env, &end, 10);
	TG_CHECK(*end == '\0' && v == configured, TG_EINVAL,
	         "%s=%s in the environment conflicts with the configured %d %s workers "
	         "(StarPU would silently use the environment); unset %s or configure %s",
	         var, env, configured, what, var, env);
	return 0;
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
	const char *policy = cfg.sched ? cfg.sched : env ? env : "lws";
	TG_TRY(env_count("STARPU_NCPU", cfg.ncpu, "CPU"));
	TG_TRY(env_count("STARPU_NCPUS", cfg.ncpu, "CPU"));
	TG_TRY(env_count("STARPU_NCUDA", cfg.ncuda, "CUDA"));

	/* OpenBLAS runs single-threaded inside tasks: parallelism comes from the workers. */
	openblas_set_num_threads(1);

	struct starpu_conf conf;
	starpu_conf_init(&conf);
	conf.sched_policy_name = policy;
	conf.ncpus = cfg.ncpu;
	conf.ncuda = cfg.ncuda;
	conf.nopencl = 0;
	int rc = starpu_init(&conf);
	if (rc == -ENODEV)
		return tg_error(TG_ENODEV, "StarPU found no worker to start (ncpu=%d, ncuda=%d)", cfg.ncpu, cfg.ncuda);
	TG_CHECK(rc == 0, TG_ESTARPU, "starpu_init failed: %s", strerror(-rc));

	/* StarPU clamps worker counts it cannot honour (cores, STARPU_MAXCPUS, GPUs): say so. */
	int got_cpu = (int)starpu_worker_get_count_by_type(STARPU_CPU_WORKER), got_cuda = 0;
#ifdef STARPU_USE_CUDA
	got_cuda = (int)starpu_worker_get_count_by_type(STARPU_CUDA_WORKER);
#endif
	if ((cfg.ncpu >= 0 && got_cpu != cfg.ncpu) || (cfg.ncuda >= 0 && got_cuda != cfg.ncuda)) {
		int want = cfg.ncpu >= 0 && got_cpu != cfg.ncpu ? cfg.ncpu : cfg.ncuda;
		int got = cfg.ncpu >= 0 && got_cpu != cfg.ncpu ? got_cpu : got_cuda;
		const char *kind = cfg.ncpu >= 0 && got_cpu != cfg.ncpu ? "CPU" : "CUDA";
		starpu_shutdown();
		return tg_error(TG_EINVAL, "asked for %d %s workers but StarPU can start only %d on this machine", want, kind,
		                got);
	}

	struct starpu_sched_policy *running = starpu_sched_ctx_get_sched_policy(0);
	const char *running_name = running && running->policy_name ? running->policy_name : "?";
	/* heft is dmda under another name in StarPU; anything else must be what we asked for. */
	if (strcmp(running_name, policy) != 0 && !(strcmp(policy, "heft") == 0 && strcmp(running_name, "dmda") == 0)) {
		starpu_shutdown();
		return tg_error(TG_ESTARPU, "asked StarPU for policy '%s' but it runs '%s'", policy, running_name);
	}

	memset(&tg_rt.info, 0, sizeof tg_rt.info);
	snprintf(tg_rt.info.sched, sizeof tg_rt.info.sched, "%s", policy);
	tg_rt.info.ncpu = got_cpu;
	tg_rt.info.ncuda = got_cuda;
	tg_rt.info.deterministic = cfg.deterministic ? 1 : 0;
	snprintf(tg_rt.info.starpu_version, sizeof tg_rt.info.starpu_version, "%d.%d.%d",
	         STARPU_MAJOR_VERSION, STARPU_MINOR_VERSION, STARPU_RELEASE_VERSION);
#ifdef TG_USE_CUDA
	tg_rt.info.cuda_compiled = 1;
	if (tg_rt.info.ncuda > 0)
		starpu_cublas_init();
#endif
	if (cfg.profiling)
		starpu_profiling_status_set(STARPU_PROFILING_ENABLE);

	cfg.sched = NULL; /* the caller's string is not kept; info.sched holds the name */
	tg_rt.cfg = cfg;
	tg_rt.backends = TG_BACKEND_ANY;
	tg_rt.microbatch = -1;
	tg_rt.fwd_node = -1;
	free(tg_rt.layer); /* a tag set before tg_init does not carry over */
	tg_rt.layer = NULL;
	tg_rt.graph = tg_graph_new_internal(++tg_rt.graph_serial);
	if (!tg_rt.graph) {
		starpu_shutdown();
		return tg_error(TG_ENOMEM, "out of memory");
	}
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
	starpu_shutdown();
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
