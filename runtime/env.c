/* env.c — what taskgrad settles before StarPU starts, and gives back once it stops.
 *
 * StarPU aborts the process on a StarPU variable it cannot parse, writes its performance
 * models under $HOME (aborting when that cannot be written), prints calibration chatter on
 * stderr, and installs signal handlers that it never removes (after a second starpu_init
 * they call themselves forever: a crash or a Ctrl-C then spins instead of ending the
 * process). So before starpu_init taskgrad
 *   - validates every number-valued StarPU variable (a clear error instead of an abort),
 *   - picks the directory of the performance models and checks that it can be written,
 *   - silences StarPU unless asked not to (cfg->verbose, or the user's own STARPU_SILENT),
 *   - keeps StarPU's hands off the signals and remembers their dispositions,
 *   - works out how many CPU workers this machine can really run;
 * and after starpu_shutdown it restores the environment and the signal dispositions. */
#include "tg_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ StarPU's variables */

/* The variables StarPU 1.3.10 and 1.4.10 read as whole numbers (starpu_get_env_number: strtol,
 * then an abort when text follows the number and an assertion failure on a negative value; an
 * empty value reads as 0, leading blanks are skipped) ... */
static const char *const int_vars[] = {
	"STARPU_AUTOHETEROPRIO_FREEZE_GATHERING", "STARPU_AUTOHETEROPRIO_ORDERING_INTERVAL",
	"STARPU_AUTOHETEROPRIO_PRINT_AFTER_ORDERING", "STARPU_AUTOHETEROPRIO_PRINT_DATA_ON_UPDATE",
	"STARPU_AUTOHETEROPRIO_PRIORITY_ORDERING_POLICY", "STARPU_AUTOHETEROPRIO_TIME_ESTIMATION_POLICY",
	"STARPU_BACKOFF_MAX", "STARPU_BACKOFF_MIN", "STARPU_BUS_CALIBRATE", "STARPU_BUS_STATS", "STARPU_CALIBRATE",
	"STARPU_CALIBRATE_MINIMUM", "STARPU_CATCH_SIGNALS", "STARPU_CHECK_ENTIRE_PLATFORM", "STARPU_CODELET_PROFILING",
	"STARPU_CUDA_ONLY_FAST_ALLOC_OTHER_MEMNODES", "STARPU_CUDA_PIPELINE", "STARPU_CUDA_THREAD_PER_DEV",
	"STARPU_CUDA_THREAD_PER_WORKER", "STARPU_DATA_LOCALITY_ENFORCE", "STARPU_DIDUSE_BARRIER",
	"STARPU_DISABLE_ASYNCHRONOUS_COPY", "STARPU_DISABLE_ASYNCHRONOUS_CUDA_COPY",
	"STARPU_DISABLE_ASYNCHRONOUS_HIP_COPY", "STARPU_DISABLE_ASYNCHRONOUS_MAX_FPGA_COPY",
	"STARPU_DISABLE_ASYNCHRONOUS_MIC_COPY", "STARPU_DISABLE_ASYNCHRONOUS_MPI_MS_COPY",
	"STARPU_DISABLE_ASYNCHRONOUS_OPENCL_COPY", "STARPU_DISABLE_ASYNCHRONOUS_TCPIP_MS_COPY",
	"STARPU_DISABLE_KERNELS", "STARPU_DISABLE_PINNING", "STARPU_DISK_SWAP_SIZE", "STARPU_DISPLAY_BINDINGS",
	"STARPU_ENABLE_CUDA_GPU_GPU_DIRECT", "STARPU_ENABLE_MAP", "STARPU_ENERGY_PROFILING",
	"STARPU_EXPECTED_TRANSFER_TIME_WRITEBACK", "STARPU_FXT_TRACE", "STARPU_GENERATE_TRACE", "STARPU_GLOBAL_ARBITER",
	"STARPU_HETEROPRIO_CODELET_GROUPING_STRATEGY", "STARPU_HETEROPRIO_USE_AUTO_CALIBRATION",
	"STARPU_HETEROPRIO_USE_LA", "STARPU_HIP_PIPELINE", "STARPU_HIP_THREAD_PER_DEV", "STARPU_HIP_THREAD_PER_WORKER",
	"STARPU_HISTORY_MAX_ERROR", "STARPU_LIMIT_BANDWIDTH", "STARPU_LIMIT_CPU_MEM", "STARPU_LIMIT_CPU_NUMA_MEM",
	"STARPU_LIMIT_CUDA_MEM", "STARPU_LIMIT_HIP_MEM", "STARPU_LIMIT_MAX_FPGA_MEM", "STARPU_LIMIT_MAX_SUBMITTED_TASKS",
	"STARPU_LIMIT_MIN_SUBMITTED_TASKS", "STARPU_LIMIT_OPENCL_MEM", "STARPU_MAIN_THREAD_BIND",
	"STARPU_MAIN_THREAD_COREID", "STARPU_MAIN_THREAD_CPUID", "STARPU_MALLOC_SIMULATION_FOLD",
	"STARPU_MAX_MEMORY_USE", "STARPU_MAX_PRIO", "STARPU_MAX_WORKERSIZE", "STARPU_MEMORY_STATS",
	"STARPU_MINIMUM_AVAILABLE_MEM", "STARPU_MINIMUM_CLEAN_BUFFERS", "STARPU_MIN_PRIO", "STARPU_MIN_WORKERSIZE",
	"STARPU_MPI_MASTER_NODE", "STARPU_MPI_MS_MULTIPLE_THREAD", "STARPU_MPI_THREAD_COREID",
	"STARPU_MPI_THREAD_CPUID", "STARPU_NCPU", "STARPU_NCPUS", "STARPU_NCUDA", "STARPU_NHIP", "STARPU_NMAX_FPGA",
	"STARPU_NMIC", "STARPU_NMICTHREADS", "STARPU_NMPIMSTHREADS", "STARPU_NMPI_MS", "STARPU_NOPENCL",
	"STARPU_NTASKS_THRESHOLD", "STARPU_NTCPIPMSTHREADS", "STARPU_NTCPIP_MS", "STARPU_NTHREADS_PER_CORE",
	"STARPU_NWORKER_PER_CUDA", "STARPU_NWORKER_PER_HIP", "STARPU_OPENCL_ONLY_ON_CPUS", "STARPU_OPENCL_ON_CPUS",
	"STARPU_OPENCL_PIPELINE", "STARPU_PCI_FLAT", "STARPU_PERF_MODEL_HOMOGENEOUS_CPU",
	"STARPU_PERF_MODEL_HOMOGENEOUS_CUDA", "STARPU_PERF_MODEL_HOMOGENEOUS_MIC",
	"STARPU_PERF_MODEL_HOMOGENEOUS_MPI_MS", "STARPU_PERF_MODEL_HOMOGENEOUS_OPENCL", "STARPU_PREFETCH",
	"STARPU_RESERVE_NCPU", "STARPU_SCHED_GRAPH_TEST_DESCENDANTS", "STARPU_SCHED_READY",
	"STARPU_SCHED_SORTED_ABOVE", "STARPU_SCHED_SORTED_BELOW", "STARPU_SILENT", "STARPU_SIMGRID",
	"STARPU_SIMGRID_CUDA_MALLOC_COST", "STARPU_SIMGRID_CUDA_QUEUE_COST", "STARPU_SIMGRID_FETCHING_INPUT_COST",
	"STARPU_SIMGRID_SCHED_COST", "STARPU_SIMGRID_TASK_PUSH_COST", "STARPU_SIMGRID_TASK_SUBMIT_COST",
	"STARPU_SIMGRID_TRANSFER_COST", "STARPU_SINGLE_COMBINED_WORKER", "STARPU_STATS", "STARPU_SUBALLOCATOR",
	"STARPU_SYNTHESIZE_ARITY_COMBINED_WORKER", "STARPU_TARGET_AVAILABLE_MEM", "STARPU_TARGET_CLEAN_BUFFERS",
	"STARPU_TASK_BREAK_ON_EXEC", "STARPU_TASK_BREAK_ON_POP", "STARPU_TASK_BREAK_ON_PUSH",
	"STARPU_TASK_BREAK_ON_SCHED", "STARPU_TASK_PROGRESS", "STARPU_TCPIP_MS_MULTIPLE_THREAD",
	"STARPU_TCPIP_MS_PORT", "STARPU_TCPIP_MS_SLAVES", "STARPU_TCPIP_USE_LOCAL_SOCKET", "STARPU_TRACE_BUFFER_SIZE",
	"STARPU_USE_NUMA", "STARPU_WATCHDOG_CRASH", "STARPU_WATCHDOG_DELAY", "STARPU_WORKERS_GETBIND",
	"STARPU_WORKERS_NOBIND", "STARPU_WORKER_TREE",
};

/* ... and as numbers (starpu_get_env_float_default: strtof, then an abort when text follows
 * the number; "" reads as 0, "nan" and "inf" are taken as they are). */
static const char *const float_vars[] = {
	"STARPU_EXP_LEN_THRESHOLD", "STARPU_IDLE_POWER", "STARPU_SCHED_ALPHA", "STARPU_SCHED_BETA",
	"STARPU_SCHED_GAMMA", "STARPU_WINDOW_TIME_SIZE",
	/* the heteroprio policy's weights (1.4) */
	"STARPU_HETEROPRIO_AURT_DOT_DIFF_10_NOD_OFFSET", "STARPU_HETEROPRIO_BEST_NODS_SCORE_EXP_SELECTIVITY",
	"STARPU_HETEROPRIO_NOD_TIME_COMBINATION_EXP_SELECTIVITY", "STARPU_HETEROPRIO_NOD_TIME_COMBINATION_NOD_MULTIPLIER",
	"STARPU_HETEROPRIO_URTS_TIME_COMBINATION_EXP_SELECTIVITY", "STARPU_HETEROPRIO_URTS_TIME_COMBINATION_NOD_MULTIPLIER",
	"STARPU_HETEROPRIO_URT_2_ARCH_NEED_MULTIPLIER", "STARPU_HETEROPRIO_URT_2_URT_MULTIPLIER",
	"STARPU_HETEROPRIO_URT_DOT_DIFF_10_ARCH_DIFF_OFFSET", "STARPU_HETEROPRIO_URT_DOT_DIFF_11_ARCH_DIFF_OFFSET",
	"STARPU_HETEROPRIO_URT_DOT_DIFF_11_NOD_OFFSET", "STARPU_HETEROPRIO_URT_DOT_DIFF_2_ARCH_NEED_MULTIPLIER",
	"STARPU_HETEROPRIO_URT_DOT_DIFF_3_ARCH_NEED_MULTIPLIER", "STARPU_HETEROPRIO_URT_DOT_DIFF_4_ARCH_NEED_MULTIPLIER",
	"STARPU_HETEROPRIO_URT_DOT_DIFF_5_ARCH_DIFF_OFFSET", "STARPU_HETEROPRIO_URT_DOT_DIFF_5_NOD_OFFSET",
	"STARPU_HETEROPRIO_URT_DOT_DIFF_9_ARCH_DIFF_OFFSET", "STARPU_HETEROPRIO_URT_DOT_DIFF_9_NOD_OFFSET",
	"STARPU_HETEROPRIO_URT_URT_MULTIPLIER",
};

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int check_machine_vars(void);

/* taskgrad takes a plain number only (an optional sign, then digits: what StarPU reads as
 * it is written), and says truthfully what StarPU would have made of anything else. */
int tg_env_whole_number(const char *var, long *value)
{
	*value = -1;
	const char *s = getenv(var);
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	const char *digits = *s == '+' || *s == '-' ? s + 1 : s;
	TG_CHECK(*end == '\0', TG_EINVAL,
	         "%s='%s' in the environment is not a whole number (StarPU would abort on it); fix or unset %s", var,
	         TG_SHOWN(s), var);
	TG_CHECK(v >= 0, TG_EINVAL,
	         "%s=%s in the environment must be between 0 and %d (StarPU aborts on a negative value); fix or unset %s",
	         var, TG_SHOWN(s), INT_MAX, var);
	TG_CHECK(*digits >= '0' && *digits <= '9', TG_EINVAL,
	         "%s='%s' in the environment is not a whole number (StarPU would read it as %ld); fix or unset %s", var,
	         TG_SHOWN(s), v, var);
	TG_CHECK(errno != ERANGE && v <= INT_MAX, TG_EINVAL,
	         "%s=%s in the environment must be between 0 and %d (StarPU would misread it); fix or unset %s", var,
	         TG_SHOWN(s), INT_MAX, var);
	*value = v;
	return 0;
}

/* A finite number, written plainly (see tg_env_whole_number); 0 when var is unset. */
static int env_finite_number(const char *var)
{
	const char *s = getenv(var);
	if (!s)
		return 0;
	char *end;
	float f = strtof(s, &end);
	TG_CHECK(*end == '\0', TG_EINVAL,
	         "%s='%s' in the environment is not a number (StarPU would abort on it); fix or unset %s", var, TG_SHOWN(s),
	         var);
	TG_CHECK(*s && !isspace((unsigned char)*s), TG_EINVAL,
	         "%s='%s' in the environment is not a number (StarPU would read it as %g); fix or unset %s", var,
	         TG_SHOWN(s), (double)f, var);
	TG_CHECK(isfinite(f), TG_EINVAL, "%s='%s' in the environment is not a finite number; fix or unset %s", var,
	         TG_SHOWN(s), var);
	return 0;
}

/* STARPU_WATCHDOG_TIMEOUT, in microseconds, read with atoll: anything but a positive number
 * is a timeout of 0 or less, and with STARPU_WATCHDOG_CRASH unset StarPU aborts the process
 * as soon as a task is still running when it looks. */
static int check_watchdog_timeout(void)
{
	const char *s = getenv("STARPU_WATCHDOG_TIMEOUT");
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	TG_CHECK(*s >= '0' && *s <= '9' && *end == '\0' && errno != ERANGE && v > 0, TG_EINVAL,
	         "STARPU_WATCHDOG_TIMEOUT='%s' in the environment is not a positive whole number of microseconds (StarPU "
	         "would read it as %lld and could abort the run); fix or unset STARPU_WATCHDOG_TIMEOUT",
	         TG_SHOWN(s), v);
	return 0;
}

int tg_env_check_starpu_vars(void)
{
	long v;
	for (size_t i = 0; i < NELEMS(int_vars); i++)
		TG_TRY(tg_env_whole_number(int_vars[i], &v));
	for (size_t i = 0; i < NELEMS(float_vars); i++)
		TG_TRY(env_finite_number(float_vars[i]));
	TG_TRY(check_watchdog_timeout());
	TG_TRY(check_machine_vars());
	return 0;
}

/* ------------------------------------------------------------------ the machine */

/* Cores and hardware threads (PUs) as StarPU counts them: hwloc's objects of this machine, or
 * of STARPU_HWLOC_INPUT when that names a topology file (StarPU loads it instead). */
typedef struct machine {
	int cores, pus;
} machine;

static machine machine_count(void)
{
	static machine cached;
	const char *input = getenv("STARPU_HWLOC_INPUT");
	int use_input = input && input[0];
	if (cached.cores > 0 && !use_input)
		return cached;
	machine m = {0, 0};
#ifdef STARPU_HAVE_HWLOC
	hwloc_topology_t topo;
	if (hwloc_topology_init(&topo) == 0) {
		if (use_input && hwloc_topology_set_xml(topo, input) < 0)
			use_input = 0;
#if HWLOC_API_VERSION >= 0x20000
		hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_NONE);
#endif
		if (hwloc_topology_load(topo) == 0) {
			m.pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
			m.cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
			if (m.cores <= 0) /* StarPU, too, takes each PU for a core then */
				m.cores = m.pus;
		}
		hwloc_topology_destroy(topo);
	}
#endif
	if (m.cores <= 0 || m.pus <= 0) {
		long k = sysconf(_SC_NPROCESSORS_ONLN);
		m.cores = m.pus = k > 0 && k < INT_MAX ? (int)k : 1;
	}
	if (m.pus < m.cores)
		m.pus = m.cores;
	if (!use_input)
		cached = m;
	return m;
}

int tg_machine_cores(void)
{
	return machine_count().cores;
}

int tg_env_max_cpu_workers(void)
{
	long per_core = 1;
	if (tg_env_whole_number("STARPU_NTHREADS_PER_CORE", &per_core) < 0 || per_core < 1)
		per_core = 1;
	long n = (long)tg_machine_cores() * per_core;
	return n < STARPU_MAXCPUS ? (int)n : STARPU_MAXCPUS;
}

/* STARPU_NTHREADS_PER_CORE: StarPU asserts 1 <= n <= hardware threads per core (when it places
 * the workers itself, i.e. without STARPU_WORKERS_CPUID/COREID). */
static int check_threads_per_core(const machine *m)
{
	long n;
	TG_TRY(tg_env_whole_number("STARPU_NTHREADS_PER_CORE", &n));
	if (n < 0)
		return 0;
	int max = m->pus / m->cores; /* as StarPU computes it */
	int placed = !getenv("STARPU_WORKERS_CPUID") && !getenv("STARPU_WORKERS_COREID");
	if (n >= 1 && n <= max)
		return 0;
	char range[48];
	snprintf(range, sizeof range, max == 1 ? "1" : "between 1 and %d", max);
	return tg_error(TG_EINVAL,
	                "STARPU_NTHREADS_PER_CORE=%ld in the environment must be %s (this machine has %d hardware thread%s per "
	                "core%s); fix or unset STARPU_NTHREADS_PER_CORE",
	                n, range, max, max == 1 ? "" : "s", placed ? "; StarPU would abort on it" : "");
}

/* 1 when StarPU binds threads to CPUs (STARPU_WORKERS_NOBIND unset or 0). */
static int starpu_binds(void)
{
	long nobind;
	return tg_env_whole_number("STARPU_WORKERS_NOBIND", &nobind) == 0 && nobind <= 0;
}

/* STARPU_MAIN_THREAD_CPUID / _COREID: StarPU binds its main thread to that CPU (core * threads
 * per core) and crashes when hwloc has no such CPU. */
static int check_main_thread_cpu(const machine *m)
{
	long cpu, core;
	TG_TRY(tg_env_whole_number("STARPU_MAIN_THREAD_CPUID", &cpu));
	TG_TRY(tg_env_whole_number("STARPU_MAIN_THREAD_COREID", &core));
	const char *crash = starpu_binds() ? "; StarPU would crash binding its main thread to it" : "";
	TG_CHECK(cpu < m->pus, TG_EINVAL,
	         "STARPU_MAIN_THREAD_CPUID=%ld in the environment names CPU %ld, which this machine does not have (its CPUs "
	         "are 0 to %d%s); fix or unset STARPU_MAIN_THREAD_CPUID", cpu, cpu, m->pus - 1, crash);
	TG_CHECK(core < 0 || (cpu < 0 && core * (m->pus / m->cores) < m->pus) || (cpu >= 0 && core < m->cores), TG_EINVAL,
	         "STARPU_MAIN_THREAD_COREID=%ld in the environment names core %ld, which this machine does not have (its "
	         "cores are 0 to %d%s); fix or unset STARPU_MAIN_THREAD_COREID", core, core, m->cores - 1,
	         cpu < 0 ? crash : "");
	return 0;
}

/* STARPU_WORKERS_CPUID / _COREID: CPU (core) numbers and ranges ("0 2 4-7", "1,3", "2-": to the
 * last), separated by blanks or a comma, as StarPU reads them with strtol. StarPU aborts on a
 * list whose first entry is not a number, crashes on a negative number, ignores whatever
 * follows something else that is not a number, and wraps numbers beyond the machine's
 * around. */
static int check_cpu_list(const char *var, const char *what, int count)
{
	const char *s = getenv(var);
	if (!s)
		return 0;
	const char *p = s;
	int first = 1;
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (*p == '+' && p[1] >= '0' && p[1] <= '9')
			p++; /* strtol takes a sign */
		if (!(*p >= '0' && *p <= '9')) {
			const char *starpu = *p == '-' && p[1] >= '0' && p[1] <= '9' ? "StarPU would crash on a negative number"
			                     : first                                 ? "StarPU would abort on it"
			                                                             : "StarPU would ignore the rest";
			return tg_error(TG_EINVAL,
			                "%s='%s' in the environment is not a list of %s numbers (numbers or ranges such as 0-3, "
			                "separated by blanks or commas) from '%s' on (%s); fix or unset %s",
			                var, TG_SHOWN(s), what, TG_SHOWN(p), starpu, var);
		}
		long lo = 0, hi;
		while (*p >= '0' && *p <= '9') {
			lo = lo * 10 + (*p++ - '0');
			if (lo > INT_MAX)
				lo = INT_MAX;
		}
		hi = lo;
		first = 0; /* StarPU has read an entry */
		if (*p == '-') {
			p++;
			if (*p == '+' && p[1] >= '0' && p[1] <= '9')
				p++;
			if (*p >= '0' && *p <= '9') {
				hi = 0;
				while (*p >= '0' && *p <= '9') {
					hi = hi * 10 + (*p++ - '0');
					if (hi > INT_MAX)
						hi = INT_MAX;
				}
				TG_CHECK(hi >= lo, TG_EINVAL,
				         "%s='%s' in the environment has a range that ends before it starts (%ld-%ld); fix or unset %s",
				         var, TG_SHOWN(s), lo, hi, var);
			} else if (*p && *p != ',' && !isspace((unsigned char)*p)) {
				continue; /* reported as text that is not a number */
			}
		}
		TG_CHECK(hi < count, TG_EINVAL,
		         "%s='%s' in the environment names %s %ld, which this machine does not have (its %ss are 0 to %d); "
		         "fix or unset %s", var, TG_SHOWN(s), what, hi, what, count - 1, var);
		if (*p == ',')
			p++;
	}
	TG_CHECK(!first, TG_EINVAL, "%s='%s' in the environment lists no %s (StarPU would abort on it); fix or unset %s",
	         var, TG_SHOWN(s), what, var);
	return 0;
}

/* The variables whose valid values depend on the machine. */
static int check_machine_vars(void)
{
	machine m = machine_count();
	TG_TRY(check_threads_per_core(&m));
	TG_TRY(check_main_thread_cpu(&m));
	TG_TRY(check_cpu_list("STARPU_WORKERS_CPUID", "CPU", m.pus));
	TG_TRY(check_cpu_list("STARPU_WORKERS_COREID", "core", m.cores));
	return 0;
}

/* ------------------------------------------------------------------ environment overrides */

/* Variables taskgrad sets for StarPU while it runs, with the value they had before. */
typedef struct env_override {
	const char *name;
	int active;   /* set by us; restore at shutdown */
	char *saved;  /* the previous value, or NULL if it was unset */
} env_override;

static env_override overrides[] = {{"STARPU_SILENT", 0, NULL}, {"STARPU_PERF_MODEL_DIR", 0, NULL}};

static int env_override_set(env_override *o, const char *value)
{
	const char *old = getenv(o->name);
	char *saved = NULL;
	if (!o->active && old) {
		saved = strdup(old);
		TG_CHECK(saved, TG_ENOMEM, "out of memory");
	}
	if (setenv(o->name, value, 1) != 0) {
		free(saved);
		return tg_error(TG_ENOMEM, "cannot set %s in the environment: %s", o->name, strerror(errno));
	}
	if (!o->active) {
		o->saved = saved;
		o->active = 1;
	}
	return 0;
}

static void remove_temp_dir(void);

void tg_env_restore(void)
{
	remove_temp_dir();
	for (size_t i = 0; i < NELEMS(overrides); i++) {
		env_override *o = &overrides[i];
		if (!o->active)
			continue;
		if (o->saved)
			setenv(o->name, o->saved, 1);
		else
			unsetenv(o->name);
		free(o->saved);
		o->saved = NULL;
		o->active = 0;
	}
}

/* ------------------------------------------------------------------ performance models */

/* How long the folder's name may be. StarPU builds its file names in 256-byte buffers and
 * silently cuts longer ones (two bus files then share one name, and StarPU aborts reading the
 * wrong one at the next start):
 *   DIR//bus/HOST.platform.v4.xml    HOST: at most 63 characters of STARPU_HOSTNAME (1.4: or
 *                                    of this process's entry of STARPU_MPI_HOSTNAMES), else the
 *                                    host name up to its first dot, at most 64
 *   DIR//codelets/45//SYMBOL.HOST    HOST: the same, but up to 254 characters of STARPU_HOSTNAME;
 *                                    SYMBOL: a codelet's performance model, at most
 *                                    TG_PERFMODEL_SYMBOL_MAX (tg_submit checks)
 * (1.3 writes the doubled slashes; 1.4 one character less each). */
#define STARPU_PATH_MAX 255
#define BUS_NAME_EXTRA 22      /* "//bus/" "." "platform.v4.xml" */
#define CODELET_NAME_EXTRA 16  /* "//codelets/45//" "." */

/* The longest folder name whose StarPU file names fit, and where the host name in them comes
 * from (a variable, or "the host name"), with its length. */
typedef struct perfmodel_room {
	int dir_max;
	const char *host_from;
	int host_len;
} perfmodel_room;

static perfmodel_room perfmodel_room_now(void)
{
	perfmodel_room r;
	const char *mpi = STARPU_MINOR_VERSION >= 4 ? getenv("STARPU_MPI_HOSTNAMES") : NULL;
	const char *forced = getenv("STARPU_HOSTNAME");
	int bus_host, codelet_host;
	if (mpi && mpi[0]) {
		/* without StarPU-MPI, the process is rank 0: the first name */
		mpi += strspn(mpi, " ");
		r.host_len = (int)strcspn(mpi, " ");
		r.host_from = "STARPU_MPI_HOSTNAMES";
		bus_host = r.host_len < 63 ? r.host_len : 63;
		codelet_host = r.host_len < 254 ? r.host_len : 254;
	} else if (forced && forced[0]) {
		size_t n = strlen(forced);
		r.host_len = n < 4096 ? (int)n : 4096;
		r.host_from = "STARPU_HOSTNAME";
		bus_host = r.host_len < 63 ? r.host_len : 63;
		codelet_host = r.host_len < 254 ? r.host_len : 254;
	} else {
		char host[256] = "";
		if (gethostname(host, sizeof host - 1) != 0)
			host[0] = '\0';
		host[sizeof host - 1] = '\0';
		r.host_len = (int)strcspn(host, ".");
		r.host_from = "the host name";
		bus_host = r.host_len < 64 ? r.host_len : 64;
		codelet_host = r.host_len;
	}
	int bus = STARPU_PATH_MAX - BUS_NAME_EXTRA - bus_host;
	int codelet = STARPU_PATH_MAX - CODELET_NAME_EXTRA - TG_PERFMODEL_SYMBOL_MAX - codelet_host;
	r.dir_max = bus < codelet ? bus : codelet;
	return r;
}

/* Why a folder name is too long for StarPU's file names (see perfmodel_room). */
static void too_long(const perfmodel_room *r, char *why, size_t whysize)
{
	if (r->dir_max < 2) {
		snprintf(why, whysize, "%s is %d characters long, too long for StarPU's file names, which hold it (they must fit "
		         "in %d characters whatever the folder); use a shorter %s", r->host_from, r->host_len, STARPU_PATH_MAX,
		         strcmp(r->host_from, "the host name") ? "one" : "STARPU_HOSTNAME");
		return;
	}
	snprintf(why, whysize,
	         "its name is longer than the %d characters that leave room for StarPU's file names in it (they hold %s, "
	         "%d characters, and must fit in %d); use a shorter folder name%s",
	         r->dir_max, r->host_from, r->host_len, STARPU_PATH_MAX,
	         strcmp(r->host_from, "the host name") ? " or a shorter host name" : "");
}

/* mkdir -p, mode 0700 for what it creates. */
static int make_dirs(const char *path, char *why, size_t whysize)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
		snprintf(why, whysize, "the name is too long");
		return -1;
	}
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		struct stat st;
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			snprintf(why, whysize, "cannot create '%s': %s", TG_SHOWN(buf), strerror(errno));
			return -1;
		}
		if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
			snprintf(why, whysize, "'%s' is not a directory", TG_SHOWN(buf));
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

/* A file can be created in dir; else why. */
static int probe_dir(const char *dir, char *why, size_t whysize)
{
	char probe[PATH_MAX];
	int n = snprintf(probe, sizeof probe, "%s/.taskgrad-probe.XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof probe) {
		snprintf(why, whysize, "the name is too long");
		return -1;
	}
	int fd = mkstemp(probe);
	if (fd < 0) {
		snprintf(why, whysize, "cannot write in '%s': %s", TG_SHOWN(dir), strerror(errno));
		return -1;
	}
	close(fd);
	unlink(probe);
	return 0;
}

/* StarPU makes these folders in the performance-model folder (mkdir -p) and aborts when it
 * cannot, or when one of them is not a folder; it writes files in the first two. */
static const char *const starpu_subdirs[] = {TG_STARPU_CODELETS_DIR, "bus", "debug"};

/* 0 if dir and StarPU's folders in it exist (made if needed) and files can be created where
 * StarPU writes them; else why. */
static int usable_dir(const char *dir, char *why, size_t whysize)
{
	perfmodel_room room = perfmodel_room_now();
	if (strlen(dir) > (size_t)(room.dir_max > 0 ? room.dir_max : 0)) {
		too_long(&room, why, whysize);
		return -1;
	}
	if (make_dirs(dir, why, whysize) < 0)
		return -1;
	for (size_t i = 0; i < NELEMS(starpu_subdirs); i++) {
		char sub[PATH_MAX];
		int n = snprintf(sub, sizeof sub, "%s/%s", dir, starpu_subdirs[i]);
		if (n < 0 || (size_t)n >= sizeof sub) {
			snprintf(why, whysize, "the name is too long");
			return -1;
		}
		if (make_dirs(sub, why, whysize) < 0 || (i < 2 && probe_dir(sub, why, whysize) < 0))
			return -1;
	}
	return 0;
}

/* The temporary folder of the running runtime, when nothing else can be written: made by
 * pick_perfmodel_dir, removed with what StarPU put in it by tg_env_restore (after
 * starpu_shutdown). Its device and inode tell it from anything put in its place since. */
static char temp_dir[PATH_MAX];
static dev_t temp_dev;
static ino_t temp_ino;

/* Remove what is in the folder open as fd: never following a link (a link is removed, not what
 * it names) and never leaving the folder's file system. */
static void empty_dir(int fd, dev_t dev, int depth)
{
	int fd2 = dup(fd);
	DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	if (!d) {
		if (fd2 >= 0)
			close(fd2);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (st.st_dev != dev || depth >= 16)
				continue;
			int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				empty_dir(sub, dev, depth + 1);
				close(sub);
			}
			unlinkat(fd, e->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(fd, e->d_name, 0);
		}
	}
	closedir(d);
}

static void remove_temp_dir(void)
{
	if (!temp_dir[0])
		return;
	int fd = open(temp_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == temp_dev && st.st_ino == temp_ino) {
		empty_dir(fd, st.st_dev, 0);
		rmdir(temp_dir);
	}
	if (fd >= 0)
		close(fd);
	temp_dir[0] = '\0';
}

/* A new temporary folder, named tmpl (mkdtemp's XXXXXX at its end), as temp_dir. */
static int make_temp_dir(char *tmpl)
{
	struct stat st;
	if (!mkdtemp(tmpl))
		return -1;
	if (stat(tmpl, &st) != 0) {
		rmdir(tmpl);
		return -1;
	}
	snprintf(temp_dir, sizeof temp_dir, "%s", tmpl);
	temp_dev = st.st_dev;
	temp_ino = st.st_ino;
	return 0;
}

static int pick_perfmodel_dir(tg_runtime_info *info)
{
	char why[PATH_MAX + 128], dir[PATH_MAX];
	const char *env;
	info->perfmodel_dir_temporary = 0;
	/* The user's choice first, and then it must work. */
	if ((env = getenv("STARPU_PERF_MODEL_DIR")) && *env) {
		TG_CHECK(usable_dir(env, why, sizeof why) == 0, TG_EINVAL,
		         "STARPU_PERF_MODEL_DIR=%s cannot hold StarPU's performance models: %s", TG_SHOWN(env), why);
		snprintf(info->perfmodel_dir, sizeof info->perfmodel_dir, "%s", env);
		return 0;
	}
	if ((env = getenv("STARPU_HOME")) && *env) {
		snprintf(dir, sizeof dir, "%s/.starpu/sampling", env);
		TG_CHECK(usable_dir(dir, why, sizeof why) == 0, TG_EINVAL,
		         "STARPU_HOME=%s cannot hold StarPU's performance models (%s): %s", TG_SHOWN(env), TG_SHOWN(dir), why);
	} else {
		/* taskgrad's cache, one directory per StarPU version (their files differ). */
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		dir[0] = '\0';
		if (xdg && xdg[0] == '/')
			snprintf(dir, sizeof dir, "%s/taskgrad/starpu-%d.%d", xdg, STARPU_MAJOR_VERSION, STARPU_MINOR_VERSION);
		else if (home && home[0] == '/')
			snprintf(dir, sizeof dir, "%s/.cache/taskgrad/starpu-%d.%d", home, STARPU_MAJOR_VERSION,
			         STARPU_MINOR_VERSION);
		if (!dir[0] || usable_dir(dir, why, sizeof why) < 0) {
			/* a temporary folder: $TMPDIR/taskgrad-starpu-XXXXXX, else /tmp/taskgrad-starpu-XXXXXX
			 * (its name short enough for StarPU's file names) */
			const char *tmp = getenv("TMPDIR"), *shortest = "/tmp/taskgrad-starpu-XXXXXX";
			perfmodel_room room = perfmodel_room_now();
			size_t fit = room.dir_max > 0 ? (size_t)room.dir_max : 0;
			if (strlen(shortest) > fit) {
				too_long(&room, why, sizeof why);
				return tg_error(TG_EINVAL, "no folder can hold StarPU's performance models (not even %s): %s",
				                shortest, why);
			}
			char tmpl[PATH_MAX];
			remove_temp_dir(); /* one of a runtime that did not start: never kept */
			snprintf(tmpl, sizeof tmpl, "%s/taskgrad-starpu-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
			int made = strlen(tmpl) <= fit && make_temp_dir(tmpl) == 0;
			if (!made) {
				snprintf(tmpl, sizeof tmpl, "%s", shortest);
				TG_CHECK(make_temp_dir(tmpl) == 0, TG_EIO,
				         "no directory can hold StarPU's performance models (not in $XDG_CACHE_HOME, $HOME or "
				         "$TMPDIR: %s); set STARPU_HOME to a writable directory", strerror(errno));
			}
			snprintf(dir, sizeof dir, "%s", temp_dir);
			if (usable_dir(dir, why, sizeof why) < 0) {
				remove_temp_dir();
				return tg_error(TG_EIO, "no directory can hold StarPU's performance models (%s: %s); set STARPU_HOME "
				                "to a writable directory", TG_SHOWN(dir), why);
			}
			info->perfmodel_dir_temporary = 1;
		}
	}
	snprintf(info->perfmodel_dir, sizeof info->perfmodel_dir, "%s", dir);
	/* Tell StarPU exactly (it would let XDG_CACHE_HOME win over STARPU_HOME). */
	return env_override_set(&overrides[1], dir);
}

int tg_env_setup(const tg_config *cfg, tg_runtime_info *info)
{
	int rc = pick_perfmodel_dir(info);
	/* StarPU's messages: shown when asked for (cfg->verbose wins over STARPU_SILENT=1), else
	 * as the user's STARPU_SILENT says, else silenced */
	const char *silent = getenv("STARPU_SILENT");
	if (rc == 0 && cfg->verbose && silent && strcmp(silent, "0") != 0)
		rc = env_override_set(&overrides[0], "0");
	else if (rc == 0 && !cfg->verbose && !silent)
		rc = env_override_set(&overrides[0], "1");
	if (rc < 0)
		tg_env_restore();
	return rc;
}

/* ------------------------------------------------------------------ signals */

/* The dispositions before starpu_init, and right after it. At shutdown a signal whose
 * disposition is still the one StarPU left gets the one from before back; one that the
 * application changed while the runtime ran keeps the application's. */
static const int saved_signals[] = {SIGINT, SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGTERM, SIGTRAP};
static struct sigaction before_init[NELEMS(saved_signals)], after_init[NELEMS(saved_signals)];

void tg_signals_save(void)
{
	for (size_t i = 0; i < NELEMS(saved_signals); i++) {
		sigaction(saved_signals[i], NULL, &before_init[i]);
		after_init[i] = before_init[i];
	}
}

void tg_signals_started(void)
{
	for (size_t i = 0; i < NELEMS(saved_signals); i++)
		sigaction(saved_signals[i], NULL, &after_init[i]);
}

void tg_signals_restore(void)
{
	for (size_t i = 0; i < NELEMS(saved_signals); i++) {
		struct sigaction now;
		sigaction(saved_signals[i], NULL, &now);
		if (now.sa_handler == after_init[i].sa_handler)
			sigaction(saved_signals[i], &before_init[i], NULL);
	}
}
