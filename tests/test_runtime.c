/*
 * test_runtime.c — the runtime core: init/shutdown and the configured policy, STARPU_SCHED,
 * worker counts, tensors (round trips, fills, views, invalid shapes), errors before any task
 * is submitted, and the random generator against its published answers.
 */
#include "tg_test.h"

#include <strings.h>

#include <taskgrad_op.h>

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* internal, checked against the Random123 known answers */
void tg_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

static void expect_error(int rc, int code, const char *needle)
{
	if (rc != code)
		fail_msg("expected error %d (%s), got %d; message: %s", code, tg_strerror(code), rc, tg_last_error());
	if (needle && !strstr(tg_last_error(), needle))
		fail_msg("the message \"%s\" does not mention \"%s\"", tg_last_error(), needle);
}

static void init_shutdown_twice_with_policies(void **unused)
{
	(void)unused;
	const char *policies[] = {"eager", "dmda", "lws"};
	for (int i = 0; i < 3; i++) {
		TG_TEST_INIT(policies[i], -1, 0);
		assert_true(tg_is_initialized());
		tg_runtime_info info;
		TG_OK_OR_FAIL(tg_runtime_get_info(&info));
		assert_string_equal(info.sched, policies[i]);
		assert_true(info.ncpu >= 1);
		assert_int_equal(info.ncuda, 0);
		assert_int_equal(info.deterministic, 1);
		expect_error(tg_init(NULL), TG_ESTATE, "already");
		TG_OK_OR_FAIL(tg_shutdown());
		assert_false(tg_is_initialized());
	}
	expect_error(tg_shutdown(), TG_ESTATE, "not initialised");
}

static void default_policy_is_lws(void **unused)
{
	(void)unused;
	TG_TEST_INIT(NULL, -1, 0);
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_string_equal(info.sched, "lws");
	TG_OK_OR_FAIL(tg_shutdown());
}

static void invalid_policy_lists_the_valid_ones(void **unused)
{
	(void)unused;
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.sched = "no-such-policy";
	expect_error(tg_init(&cfg), TG_EINVAL, "no-such-policy");
	assert_non_null(strstr(tg_last_error(), "dmda"));
	assert_non_null(strstr(tg_last_error(), "eager"));
	assert_false(tg_is_initialized());
	assert_false(tg_sched_policy_valid("no-such-policy"));
	assert_true(tg_sched_policy_valid("dmdas"));
	char names[4096];
	TG_OK_OR_FAIL(tg_sched_policy_names(names, sizeof names));
	assert_non_null(strstr(names, "lws"));
	expect_error(tg_sched_policy_names(names, 8), TG_EINVAL, "too small");
}

/* A policy the linked StarPU lists but cannot run is refused with the reason, not hung on. */
static void broken_policies_are_refused(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	TG_OK_OR_FAIL(tg_shutdown());
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	cfg.sched = "modular-heteroprio-heft";
	int rc = tg_init(&cfg);
	if (strncmp(info.starpu_version, "1.3.", 4) == 0) {
		expect_error(rc, TG_ENOTSUP, "modular-heteroprio-heft");
		assert_non_null(strstr(tg_last_error(), "hangs"));
		assert_false(tg_is_initialized());
	} else {
		TG_OK_OR_FAIL(rc);
		TG_OK_OR_FAIL(tg_shutdown());
	}
}

/* STARPU_SCHED never silently overrides the configuration (see tg_config.sched). */
static void starpu_sched_in_the_environment(void **unused)
{
	(void)unused;
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	setenv("STARPU_SCHED", "eager", 1);

	cfg.sched = "dmda"; /* conflict: an error naming both */
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_SCHED=eager");
	assert_non_null(strstr(tg_last_error(), "dmda"));
	assert_false(tg_is_initialized());

	cfg.sched = "eager"; /* agreement */
	TG_OK_OR_FAIL(tg_init(&cfg));
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_string_equal(info.sched, "eager");
	TG_OK_OR_FAIL(tg_shutdown());

	cfg.sched = NULL; /* nothing configured: the environment is taken, and reported */
	TG_OK_OR_FAIL(tg_init(&cfg));
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_string_equal(info.sched, "eager");
	TG_OK_OR_FAIL(tg_shutdown());

	setenv("STARPU_SCHED", "bogus", 1); /* StarPU would warn and run lws */
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_SCHED");
	unsetenv("STARPU_SCHED");
}

static void worker_counts(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", 1, 0);
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_int_equal(info.ncpu, 1);
	TG_OK_OR_FAIL(tg_shutdown());

	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncpu = 2;
	setenv("STARPU_NCPU", "1", 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_NCPU=1");
	unsetenv("STARPU_NCPU");
	cfg.ncpu = -2;
	expect_error(tg_init(&cfg), TG_EINVAL, "CPU workers");

	/* One rule for the configuration and the environment: at most one CPU worker per core
	 * (and no more than StarPU was built for), the real limit named in the message. */
	cfg.ncpu = -1;
	TG_OK_OR_FAIL(tg_init(&cfg));
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	int max = info.max_cpu_workers;
	assert_true(max >= 1);
	assert_true(info.ncpu <= max);
	TG_OK_OR_FAIL(tg_shutdown());
	char limit[64], count[32];
	snprintf(limit, sizeof limit, "at most %d", max);
	cfg.ncpu = max; /* the limit itself is fine */
	TG_OK_OR_FAIL(tg_init(&cfg));
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_int_equal(info.ncpu, max);
	TG_OK_OR_FAIL(tg_shutdown());
	const int over[] = {max + 1, 4096};
	for (int i = 0; i < 2; i++) {
		cfg.ncpu = over[i];
		expect_error(tg_init(&cfg), TG_EINVAL, limit);
		snprintf(count, sizeof count, "asked for %d CPU workers", over[i]);
		assert_non_null(strstr(tg_last_error(), count));
		cfg.ncpu = -1;
		snprintf(count, sizeof count, "%d", over[i]);
		setenv("STARPU_NCPU", count, 1);
		expect_error(tg_init(&cfg), TG_EINVAL, limit);
		assert_non_null(strstr(tg_last_error(), "STARPU_NCPU="));
		unsetenv("STARPU_NCPU");
		setenv("STARPU_NCPUS", count, 1); /* the old name is held to the same rule */
		expect_error(tg_init(&cfg), TG_EINVAL, limit);
		assert_non_null(strstr(tg_last_error(), "STARPU_NCPUS="));
		unsetenv("STARPU_NCPUS");
	}
	/* cores kept from the workers by the environment are named when they are why StarPU
	 * starts fewer workers than asked for */
	cfg.ncpu = max;
	setenv("STARPU_RESERVE_NCPU", "1", 1);
	int rc = tg_init(&cfg);
	unsetenv("STARPU_RESERVE_NCPU");
	if (rc == 0)
		fail_msg("%d CPU workers with STARPU_RESERVE_NCPU=1 on a machine that has %d were accepted", max, max);
	if (!strstr(tg_last_error(), "STARPU_RESERVE_NCPU=1"))
		fail_msg("the message does not name STARPU_RESERVE_NCPU: %s", tg_last_error());
	cfg.ncpu = -1;
	/* no worker at all: what was asked for, without a made-up count */
	cfg.ncpu = 0;
	rc = tg_init(&cfg);
	if (rc == 0) { /* CUDA workers only: a GPU and a CUDA-enabled StarPU */
		TG_OK_OR_FAIL(tg_shutdown());
	} else {
		expect_error(rc, TG_ENODEV, "no worker to start: asked for 0 CPU workers");
		if (strstr(tg_last_error(), "-1") || strstr(tg_last_error(), "(null)"))
			fail_msg("the message names a count nobody asked for: %s", tg_last_error());
	}
	cfg.ncpu = -1;
	setenv("STARPU_NCPU", "1", 1);
	setenv("STARPU_NCPUS", "2", 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "disagree");
	unsetenv("STARPU_NCPUS");
	TG_OK_OR_FAIL(tg_init(&cfg)); /* the environment's count is used and reported */
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_int_equal(info.ncpu, 1);
	TG_OK_OR_FAIL(tg_shutdown());
	unsetenv("STARPU_NCPU");
	assert_false(tg_is_initialized());
	cfg.ncpu = -1;
	cfg.ncuda = 1;
	rc = tg_init(&cfg);
	if (rc == 0) { /* a machine with a GPU and a CUDA-enabled StarPU */
		TG_OK_OR_FAIL(tg_runtime_get_info(&info));
		assert_int_equal(info.ncuda, 1);
		TG_OK_OR_FAIL(tg_shutdown());
	} else {
		expect_error(rc, TG_EINVAL, "1 CUDA workers but StarPU can start only 0");
	}
}

static void tensor_round_trips(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	float src[3 * 5 * 7], dst[3 * 5 * 7];
	for (int i = 0; i < 105; i++)
		src[i] = (float)i * 0.25f - 3.0f;
	tg_tensor *t;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&t, "t", TG_F32, TG_SHAPE(3, 5, 7), src, sizeof src));
	assert_int_equal(tg_tensor_rank(t), 3);
	assert_int_equal(tg_tensor_numel(t), 105);
	assert_int_equal(tg_tensor_rows(t), 15);
	assert_int_equal(tg_tensor_cols(t), 7);
	assert_int_equal(tg_tensor_dim(t, -1), 7);
	assert_int_equal(tg_tensor_dim(t, -3), 3);
	const int wild[] = {3, -4, INT_MAX, INT_MIN};
	for (int k = 0; k < 4; k++)
		assert_int_equal(tg_tensor_dim(t, wild[k]), 0);
	assert_string_equal(tg_tensor_name(t), "t");
	TG_OK_OR_FAIL(tg_tensor_to_host(t, dst, sizeof dst));
	assert_memory_equal(src, dst, sizeof dst);
	expect_error(tg_tensor_to_host(t, dst, sizeof dst - 4), TG_EINVAL, "bytes");
	for (int i = 0; i < 105; i++)
		src[i] = -src[i];
	TG_OK_OR_FAIL(tg_tensor_from_host(t, src, sizeof src));
	TG_OK_OR_FAIL(tg_tensor_to_host(t, dst, sizeof dst));
	assert_memory_equal(src, dst, sizeof dst);

	int32_t isrc[4] = {1, -2, 3, 2147483647}, idst[4];
	tg_tensor *ti;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&ti, "i", TG_I32, TG_SHAPE(4), isrc, sizeof isrc));
	TG_OK_OR_FAIL(tg_tensor_to_host(ti, idst, sizeof idst));
	assert_memory_equal(isrc, idst, sizeof idst);
	expect_error(tg_tensor_set_requires_grad(ti, 1), TG_EINVAL, "float32");
	expect_error(tg_tensor_fill(ti, &(tg_fill){TG_FILL_NORMAL, 0, 1, 1, 0}), TG_EINVAL, "int32");

	/* a part: written through, seen in its parent at the right place */
	float zeros[5 * 6] = {0}, pv[5 * 6], vals[2 * 3] = {1, 2, 3, 4, 5, 6}, got[6];
	tg_tensor *p, *v;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&p, "p", TG_F32, TG_SHAPE(5, 6), zeros, sizeof zeros));
	TG_OK_OR_FAIL(tg_test_block(p, TG_SHAPE(2, 3), 1, 2, &v));
	assert_true(tg_tensor_parent(v) == p);
	TG_OK_OR_FAIL(tg_tensor_from_host(v, vals, sizeof vals));
	TG_OK_OR_FAIL(tg_tensor_to_host(v, got, sizeof got));
	assert_memory_equal(vals, got, sizeof got);
	expect_error(tg_tensor_free(v), TG_ESTATE, "goes with its parent");
	TG_OK_OR_FAIL(tg_tensor_to_host(p, pv, sizeof pv));
	for (int r = 0; r < 5; r++)
		for (int c = 0; c < 6; c++) {
			int inside = r >= 1 && r < 3 && c >= 2 && c < 5;
			assert_true(pv[r * 6 + c] == (inside ? vals[(r - 1) * 3 + c - 2] : 0.0f));
		}
	expect_error(tg_test_block(p, TG_SHAPE(2, 3), 4, 0, &v), TG_ESHAPE, "does not fit");
	tg_tensor_free(p);
	tg_tensor_free(ti);
	tg_tensor_free(t);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void fills_are_seeded_and_counter_based(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	enum { N = 4099 };
	static float a[N], b[N], c[N];
	tg_tensor *t;
	tg_fill normal = {TG_FILL_NORMAL, 2.0f, 3.0f, 42, 7};
	TG_OK_OR_FAIL(tg_tensor_new_filled(&t, "n", TG_F32, TG_SHAPE(N), &normal));
	TG_OK_OR_FAIL(tg_tensor_to_host(t, a, sizeof a));
	/* the same (seed, stream) gives the same values whatever the shape; another stream differs */
	TG_OK_OR_FAIL(tg_fill_host(b, N, &normal));
	assert_memory_equal(a, b, sizeof a);
	tg_fill other = normal;
	other.stream = 8;
	TG_OK_OR_FAIL(tg_fill_host(c, N, &other));
	assert_true(memcmp(a, c, sizeof a) != 0);
	double mean = 0, var = 0;
	for (int i = 0; i < N; i++)
		mean += a[i] / N;
	for (int i = 0; i < N; i++)
		var += (a[i] - mean) * (a[i] - mean) / (N - 1);
	assert_true(fabs(mean - 2.0) < 0.15 && fabs(sqrt(var) - 3.0) < 0.15);
	tg_tensor_free(t);

	tg_fill uni = {TG_FILL_UNIFORM, -0.5f, 0.25f, 3, 1};
	TG_OK_OR_FAIL(tg_tensor_new_filled(&t, "u", TG_F32, TG_SHAPE(N / 2, 2), &uni));
	TG_OK_OR_FAIL(tg_tensor_to_host(t, a, (N / 2) * 2 * sizeof(float)));
	for (int i = 0; i < (N / 2) * 2; i++)
		assert_true(a[i] >= -0.5f && a[i] < 0.25f);
	TG_OK_OR_FAIL(tg_tensor_fill(t, &(tg_fill){TG_FILL_CONSTANT, 1.5f, 0, 0, 0}));
	TG_OK_OR_FAIL(tg_tensor_to_host(t, a, (N / 2) * 2 * sizeof(float)));
	for (int i = 0; i < (N / 2) * 2; i++)
		assert_true(a[i] == 1.5f);
	expect_error(tg_tensor_fill(t, &(tg_fill){TG_FILL_UNIFORM, 1, 1, 0, 0}), TG_EINVAL, "a < b");
	expect_error(tg_fill_host(a, -1, &uni), TG_EINVAL, "negative");
	expect_error(tg_fill_host(a, INT64_MIN, &uni), TG_EINVAL, "negative");
	expect_error(tg_fill_host(NULL, 4, &uni), TG_EINVAL, "NULL");
	expect_error(tg_tensor_fill(t, &(tg_fill){TG_FILL_NORMAL, 0, -1, 0, 0}), TG_EINVAL, "deviation");
	tg_tensor_free(t);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void philox_known_answers(void **unused)
{
	(void)unused;
	static const uint32_t kat[3][10] = {
		{0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
		{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
		 0x6d5451fd},
		{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
		 0x24126ea1},
	};
	for (int i = 0; i < 3; i++) {
		uint32_t out[4];
		tg_philox4x32(kat[i], kat[i] + 4, out);
		assert_memory_equal(out, kat[i] + 6, sizeof out);
	}
}

static void invalid_shapes(void **unused)
{
	(void)unused;
	tg_tensor *t = (tg_tensor *)1;
	expect_error(tg_tensor_new(&t, "early", TG_F32, TG_SHAPE(2)), TG_ESTATE, "not initialised");
	TG_TEST_INIT("eager", -1, 0);
	expect_error(tg_tensor_new(&t, "r0", TG_F32, 0, (const int64_t[]){1}), TG_ESHAPE, "rank");
	expect_error(tg_tensor_new(&t, "r5", TG_F32, TG_SHAPE(1, 1, 1, 1, 1)), TG_ESHAPE, "rank");
	expect_error(tg_tensor_new(&t, "zero", TG_F32, TG_SHAPE(3, 0)), TG_ESHAPE, "dimension 1 is 0");
	expect_error(tg_tensor_new(&t, "neg", TG_F32, TG_SHAPE(-4)), TG_ESHAPE, "dimension 0 is -4");
	expect_error(tg_tensor_new(&t, "ovf", TG_F32, TG_SHAPE(INT64_MAX / 2, 4)), TG_ESHAPE, "overflow");
	expect_error(tg_tensor_new(&t, "rows", TG_F32, TG_SHAPE((int64_t)1 << 33, 1)), TG_ESHAPE, "32-bit");
	expect_error(tg_tensor_new(&t, "cols", TG_F32, TG_SHAPE((int64_t)1 << 32)), TG_ESHAPE, "32-bit");
	expect_error(tg_tensor_new(&t, "dtype", (tg_dtype)9, TG_SHAPE(2)), TG_EINVAL, "dtype");
	assert_null(t);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* ------------------------------------------------------------------ child processes */

/* Run fn in a child process (with the default signal dispositions); its wait status, or -1 when it did not end within
 * limit seconds (then it is killed). ready: when not NULL, the parent waits until the child
 * writes a byte to the pipe fd it gets, then sends it signal sig. */
static int run_child(void (*fn)(int ready_fd), int limit, int sig)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		/* a plain process's dispositions, not the test framework's (it catches crashes) */
		const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGINT};
		for (int i = 0; i < 6; i++)
			signal(sigs[i], SIG_DFL);
		fn(fds[1]);
		_exit(0);
	}
	close(fds[1]);
	if (sig) {
		char c;
		if (read(fds[0], &c, 1) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fail_msg("the child ended before it was ready");
		}
		kill(pid, sig);
	}
	close(fds[0]);
	for (int waited = 0; waited < limit * 100; waited++) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* In a child: init/shutdown cycles before the final init (tg_init failing exits 3). */
static int child_cycles;
static void child_cycle_then_init(void)
{
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	for (int i = 0; i < child_cycles; i++) {
		if (tg_init(&cfg) < 0 || tg_shutdown() < 0)
			_exit(3);
	}
	if (tg_init(&cfg) < 0)
		_exit(3);
}

static void child_segfault(int fd)
{
	(void)fd;
	child_cycle_then_init();
	volatile int *nowhere = NULL;
	*nowhere = 1;
	_exit(4); /* not reached */
}

static void child_wait_for_sigint(int fd)
{
	child_cycle_then_init();
	if (write(fd, "r", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

#if defined(__SANITIZE_ADDRESS__)
#define TG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_ASAN 1
#endif
#endif

/* After any number of init/shutdown cycles, a crash ends the process with its signal and
 * Ctrl-C stops it at once (StarPU's handlers, kept across inits, used to call themselves
 * forever). */
static void crash_and_ctrl_c_end_the_process_after_reinit(void **unused)
{
	(void)unused;
	const int cycles[] = {0, 1, 3};
	for (int i = 0; i < 3; i++) {
		child_cycles = cycles[i];
		int st = run_child(child_segfault, 30, 0);
		if (st == -1)
			fail_msg("after %d init/shutdown cycles, a segfault hung the process (killed after 30 s)", cycles[i]);
#ifdef TG_ASAN
		/* the address sanitizer reports the fault and exits */
		if (!(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 3) && !WIFSIGNALED(st))
			fail_msg("after %d cycles, a segfault: wait status 0x%x", cycles[i], st);
#else
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV)
			fail_msg("after %d cycles, a segfault did not end the process by SIGSEGV (wait status 0x%x)", cycles[i],
			         st);
#endif
		st = run_child(child_wait_for_sigint, 10, SIGINT);
		if (st == -1)
			fail_msg("after %d init/shutdown cycles, SIGINT did not stop the process (killed after 10 s)", cycles[i]);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGINT)
			fail_msg("after %d cycles, SIGINT: wait status 0x%x", cycles[i], st);
	}
}

static void on_signal(int sig) { (void)sig; }

/* What the process had installed is what it has again after every tg_shutdown; StarPU's own
 * handlers are in only when STARPU_CATCH_SIGNALS asks for them. */
static void signal_dispositions_survive_cycles(void **unused)
{
	(void)unused;
	struct sigaction mine, old_int, old_segv, now;
	memset(&mine, 0, sizeof mine);
	mine.sa_handler = on_signal;
	sigemptyset(&mine.sa_mask);
	sigaction(SIGINT, &mine, &old_int);
	sigaction(SIGSEGV, &mine, &old_segv);
	for (int i = 0; i < 4; i++) {
		int starpu_catches = i % 2;
		if (starpu_catches)
			setenv("STARPU_CATCH_SIGNALS", "1", 1);
		TG_TEST_INIT("eager", -1, 0);
		sigaction(SIGINT, NULL, &now);
		if (starpu_catches)
			assert_true(now.sa_handler != on_signal); /* StarPU's, as asked */
		else
			assert_true(now.sa_handler == on_signal);
		TG_OK_OR_FAIL(tg_shutdown());
		unsetenv("STARPU_CATCH_SIGNALS");
		sigaction(SIGINT, NULL, &now);
		assert_true(now.sa_handler == on_signal);
		sigaction(SIGSEGV, NULL, &now);
		assert_true(now.sa_handler == on_signal);
	}
	/* a handler the application installs while the runtime runs is the application's */
	TG_TEST_INIT("eager", -1, 0);
	struct sigaction later = mine;
	later.sa_handler = SIG_IGN;
	sigaction(SIGINT, &later, NULL);
	TG_OK_OR_FAIL(tg_shutdown());
	sigaction(SIGINT, NULL, &now);
	assert_true(now.sa_handler == SIG_IGN);
	sigaction(SIGSEGV, NULL, &now);
	assert_true(now.sa_handler == on_signal);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
}

/* ------------------------------------------------------------------ the environment */

/* Every number-valued StarPU variable that StarPU would abort on, or read otherwise than it
 * is written, is an error naming it, and the message says truthfully what StarPU would do. */
static void starpu_variables_starpu_would_abort_on(void **unused)
{
	(void)unused;
	static const struct {
		const char *var, *value, *why;
	} bad[] = {
		{"STARPU_NCPU", "abc", "would abort"},
		{"STARPU_NCPU", "-1", "aborts on a negative value"},
		{"STARPU_NCPU", "", "would read it as 0"},
		{"STARPU_NCPU", "1x", "would abort"},
		{"STARPU_NCPU", " 2", "would read it as 2"},
		{"STARPU_NCPU", " -2", "aborts on a negative value"},
		{"STARPU_NCPU", "99999999999999999999", "misread"},
		{"STARPU_NCPU", "2147483648", "misread"},
		{"STARPU_NCPUS", "two", "would abort"},
		{"STARPU_NCUDA", "-3", "negative"},
		{"STARPU_NCUDA", "x", "would abort"},
		{"STARPU_CALIBRATE", "yes", "would abort"},
		{"STARPU_SILENT", "-1", "negative"},
		{"STARPU_WATCHDOG_DELAY", "-5", "negative"},
		{"STARPU_LIMIT_CPU_MEM", "1e9", "would abort"},
		{"STARPU_SCHED_ALPHA", "fast", "would abort"},
		{"STARPU_SCHED_ALPHA", "", "would read it as 0"},
		{"STARPU_SCHED_ALPHA", " 1.5", "would read it as 1.5"},
		{"STARPU_SCHED_BETA", "nan", "not a finite number"},
		{"STARPU_SCHED_GAMMA", "1e99", "not a finite number"},
		{"STARPU_NTHREADS_PER_CORE", "0", "hardware thread"},
		{"STARPU_NTHREADS_PER_CORE", "1024", "hardware thread"},
		{"STARPU_MAIN_THREAD_CPUID", "2147483647", "does not have"},
		{"STARPU_MAIN_THREAD_CPUID", "-1", "negative"},
		{"STARPU_MAIN_THREAD_COREID", "2147483647", "does not have"},
		{"STARPU_WORKERS_CPUID", "abc", "would abort"},
		{"STARPU_WORKERS_CPUID", "-1", "would crash on a negative number"},
		{"STARPU_WORKERS_CPUID", "0x", "would ignore the rest"},
		{"STARPU_WORKERS_CPUID", "0,,1", "would ignore the rest"},
		{"STARPU_WORKERS_CPUID", "0 -1", "would crash on a negative number"},
		{"STARPU_WORKERS_CPUID", "0-0-1", "would crash on a negative number"},
		{"STARPU_WORKERS_CPUID", "", "lists no CPU"},
		{"STARPU_WORKERS_CPUID", " ", "lists no CPU"},
		{"STARPU_WORKERS_CPUID", "0 2147483647", "does not have"},
		{"STARPU_WORKERS_CPUID", "99999999999999999999", "does not have"},
		{"STARPU_WORKERS_CPUID", "1-0", "ends before it starts"},
		{"STARPU_WORKERS_COREID", "x", "would abort"},
		{"STARPU_WATCHDOG_TIMEOUT", "abc", "microseconds"},
		{"STARPU_WATCHDOG_TIMEOUT", "0", "microseconds"},
		{"STARPU_WATCHDOG_TIMEOUT", "-5", "microseconds"},
		{"STARPU_HETEROPRIO_URT_URT_MULTIPLIER", "x", "would abort"},
		{"STARPU_HETEROPRIO_NOD_TIME_COMBINATION_NOD_MULTIPLIER", "nan", "not a finite number"},
		{"STARPU_HETEROPRIO_AURT_DOT_DIFF_10_NOD_OFFSET", "1.3.1", "would abort"},
	};
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv(bad[i].var, bad[i].value, 1);
		int rc = tg_init(&cfg);
		unsetenv(bad[i].var);
		if (rc == 0) {
			tg_shutdown();
			fail_msg("%s='%s' was accepted", bad[i].var, bad[i].value);
		}
		char needle[64];
		snprintf(needle, sizeof needle, "%s=", bad[i].var);
		expect_error(rc, TG_EINVAL, needle);
		if (!strstr(tg_last_error(), bad[i].why))
			fail_msg("%s='%s': the message does not say \"%s\": %s", bad[i].var, bad[i].value, bad[i].why,
			         tg_last_error());
		if (strstr(bad[i].why, "read it as") && strstr(tg_last_error(), "abort"))
			fail_msg("%s='%s': StarPU does not abort on it, the message says it would: %s", bad[i].var,
			         bad[i].value, tg_last_error());
		assert_false(tg_is_initialized());
	}
	static char verylong[2100]; /* a value far longer than a message: the reason is still in it */
	memset(verylong, '7', 2000);
	verylong[1999] = 'x';
	verylong[2000] = '\0';
	setenv("STARPU_NCPU", verylong, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "StarPU would abort on it");
	unsetenv("STARPU_NCPU");
	setenv("STARPU_NCPU", "+1", 1); /* what StarPU reads as 1 is fine */
	TG_TEST_INIT("eager", -1, 0);
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_int_equal(info.ncpu, 1);
	TG_OK_OR_FAIL(tg_shutdown());
	unsetenv("STARPU_NCPU");
	/* and so are values this machine has */
	static const struct {
		const char *var, *value;
	} good[] = {
		{"STARPU_WORKERS_CPUID", "0"},    {"STARPU_WORKERS_CPUID", "0-"},      {"STARPU_WORKERS_CPUID", " 0, 0 "},
		{"STARPU_WORKERS_CPUID", "+0"},
		{"STARPU_WORKERS_COREID", "0-0"}, {"STARPU_MAIN_THREAD_CPUID", "0"}, {"STARPU_MAIN_THREAD_COREID", "0"},
		{"STARPU_NTHREADS_PER_CORE", "1"}, {"STARPU_WATCHDOG_TIMEOUT", "100000000"},
	};
	cpu_set_t affinity; /* StarPU binds the main thread to STARPU_MAIN_THREAD_CPUID for good */
	assert_int_equal(sched_getaffinity(0, sizeof affinity, &affinity), 0);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		setenv(good[i].var, good[i].value, 1);
		int rc = tg_init(&cfg);
		unsetenv(good[i].var);
		if (rc < 0)
			fail_msg("%s='%s' was refused: %s", good[i].var, good[i].value, tg_last_error());
		TG_OK_OR_FAIL(tg_shutdown());
	}
	assert_int_equal(sched_setaffinity(0, sizeof affinity, &affinity), 0);
}

/* The environment variables this test changes, saved and given back. */
static const char *const saved_vars[] = {"HOME",          "XDG_CACHE_HOME", "STARPU_HOME", "STARPU_PERF_MODEL_DIR",
                                         "STARPU_SILENT", "TMPDIR",         "STARPU_HOSTNAME"};
#define NSAVED (sizeof saved_vars / sizeof saved_vars[0])
static char *saved_values[NSAVED];

static void env_save(void)
{
	for (size_t i = 0; i < NSAVED; i++) {
		const char *v = getenv(saved_vars[i]);
		saved_values[i] = v ? strdup(v) : NULL;
		unsetenv(saved_vars[i]);
	}
}

static void env_give_back(void)
{
	for (size_t i = 0; i < NSAVED; i++) {
		if (saved_values[i])
			setenv(saved_vars[i], saved_values[i], 1);
		else
			unsetenv(saved_vars[i]);
		free(saved_values[i]);
		saved_values[i] = NULL;
	}
}

/* A scratch folder for this test, emptied. */
static void scratch_dir(char *out, size_t size, const char *name)
{
	const char *b = getenv("TG_BUILDDIR");
	snprintf(out, size, "%s/tests/runtime-tmp/%s", b ? b : ".", name);
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
	assert_int_equal(system(cmd), 0);
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* init, check where the performance models go, shut down; returns the directory. */
static void init_expect_perfmodel_dir(const char *want, int temporary)
{
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	cfg.sched = "dmda";
	TG_OK_OR_FAIL(tg_init(&cfg));
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	if (want && strcmp(info.perfmodel_dir, want) != 0)
		fail_msg("performance models in '%s', expected '%s'", info.perfmodel_dir, want);
	assert_int_equal(info.perfmodel_dir_temporary, temporary);
	/* StarPU is told exactly where, for as long as it runs */
	assert_non_null(getenv("STARPU_PERF_MODEL_DIR"));
	assert_string_equal(getenv("STARPU_PERF_MODEL_DIR"), info.perfmodel_dir);
	/* and StarPU uses it: its bus calibration is there */
	char bus[PATH_MAX + 8];
	snprintf(bus, sizeof bus, "%s/bus", info.perfmodel_dir);
	if (!is_dir(bus))
		fail_msg("StarPU wrote no bus calibration in '%s'", info.perfmodel_dir);
	TG_OK_OR_FAIL(tg_shutdown());
	/* a temporary folder goes with the runtime, a cache stays */
	if (temporary && is_dir(info.perfmodel_dir))
		fail_msg("the temporary folder '%s' is still there after tg_shutdown", info.perfmodel_dir);
	if (!temporary && !is_dir(bus))
		fail_msg("'%s' is gone after tg_shutdown", bus);
}

/* Entries of dir whose name starts with prefix. */
static int entries_named(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static void perfmodels_go_where_they_can_be_written(void **unused)
{
	(void)unused;
	env_save();
	char base[PATH_MAX], home[PATH_MAX + 16], want[PATH_MAX + 64], file[PATH_MAX + 16], xdg[PATH_MAX + 16];
	scratch_dir(base, sizeof base, "perfmodels");
	/* one folder per StarPU version: "starpu-1.3" */
	char version[32];
	TG_TEST_INIT("eager", -1, 0);
	tg_runtime_info info;
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	TG_OK_OR_FAIL(tg_shutdown());
	int major = 0, minor = 0;
	assert_int_equal(sscanf(info.starpu_version, "%d.%d", &major, &minor), 2);
	/* the kernels OpenBLAS runs: its name for them, as OPENBLAS_CORETYPE takes it */
	assert_true(info.blas_core[0] != '\0' && strcmp(info.blas_core, "unknown") != 0);
	const char *forced = getenv("OPENBLAS_CORETYPE");
	if (forced && *forced && strcasecmp(forced, info.blas_core) != 0)
		fail_msg("OPENBLAS_CORETYPE=%s, but OpenBLAS runs its %s kernels", forced, info.blas_core);
	snprintf(version, sizeof version, "starpu-%d.%d", major, minor);

	/* a fresh HOME: taskgrad's cache there, made as needed */
	snprintf(home, sizeof home, "%s/home", base);
	setenv("HOME", home, 1);
	snprintf(want, sizeof want, "%s/.cache/taskgrad/%s", home, version);
	init_expect_perfmodel_dir(want, 0);
	assert_null(getenv("STARPU_PERF_MODEL_DIR")); /* given back at shutdown */
	init_expect_perfmodel_dir(want, 0);           /* and the same again */

	/* XDG_CACHE_HOME wins over HOME */
	snprintf(xdg, sizeof xdg, "%s/xdg", base);
	setenv("XDG_CACHE_HOME", xdg, 1);
	snprintf(want, sizeof want, "%s/taskgrad/%s", xdg, version);
	init_expect_perfmodel_dir(want, 0);
	unsetenv("XDG_CACHE_HOME");

	/* HOME that cannot hold a folder (a regular file: refused even to root), or no HOME: a
	 * temporary folder, said so */
	snprintf(file, sizeof file, "%s/a-file", base);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	setenv("HOME", file, 1);
	setenv("TMPDIR", base, 1);
	init_expect_perfmodel_dir(NULL, 1);
	unsetenv("HOME");
	init_expect_perfmodel_dir(NULL, 1);
	setenv("HOME", home, 1);
	assert_int_equal(entries_named(base, "taskgrad-starpu-"), 0); /* removed at each shutdown */
	/* only what the folder holds goes with it: not what a link in it names */
	setenv("HOME", file, 1);
	TG_TEST_INIT("eager", -1, 0);
	TG_OK_OR_FAIL(tg_runtime_get_info(&info));
	assert_int_equal(info.perfmodel_dir_temporary, 1);
	char link[PATH_MAX + 16], keep[PATH_MAX + 16];
	snprintf(keep, sizeof keep, "%s/keep", base);
	assert_int_equal(mkdir(keep, 0700), 0);
	snprintf(link, sizeof link, "%s/keep", info.perfmodel_dir);
	assert_int_equal(symlink(keep, link), 0);
	snprintf(link, sizeof link, "%s/bus/keep", info.perfmodel_dir);
	assert_int_equal(symlink(keep, link), 0);
	TG_OK_OR_FAIL(tg_shutdown());
	assert_false(is_dir(info.perfmodel_dir));
	assert_true(is_dir(keep));
	setenv("HOME", home, 1);
	assert_int_equal(entries_named(base, "taskgrad-starpu-"), 0);

	/* STARPU_HOME, the user's choice, and an error when it cannot be written */
	snprintf(want, sizeof want, "%s/starpu-home/.starpu/sampling", base);
	char sh[PATH_MAX + 16];
	snprintf(sh, sizeof sh, "%s/starpu-home", base);
	setenv("STARPU_HOME", sh, 1);
	init_expect_perfmodel_dir(want, 0);
	setenv("STARPU_HOME", file, 1);
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_HOME=");
	assert_false(tg_is_initialized());
	assert_null(getenv("STARPU_PERF_MODEL_DIR"));
	char longname[400];
	memset(longname, 'x', sizeof longname - 1);
	longname[0] = '/';
	longname[sizeof longname - 1] = '\0';
	setenv("STARPU_HOME", longname, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "longer than");
	unsetenv("STARPU_HOME");

	/* STARPU_PERF_MODEL_DIR set by the user: used as it is, and left as it was */
	snprintf(want, sizeof want, "%s/models", base);
	setenv("STARPU_PERF_MODEL_DIR", want, 1);
	init_expect_perfmodel_dir(want, 0);
	assert_non_null(getenv("STARPU_PERF_MODEL_DIR"));
	assert_string_equal(getenv("STARPU_PERF_MODEL_DIR"), want);
	setenv("STARPU_PERF_MODEL_DIR", file, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_PERF_MODEL_DIR=");
	unsetenv("STARPU_PERF_MODEL_DIR");

	/* StarPU makes codelets/NN, bus and debug in the folder and aborts when one is a file:
	 * refused for the user's folders, a temporary folder instead of taskgrad's cache */
	static const char *const subs[] = {"codelets", "bus", "debug"};
	for (int i = 0; i < 3; i++) {
		char dir[PATH_MAX + 32], sub[PATH_MAX + 128], cmd[4 * PATH_MAX];
		snprintf(dir, sizeof dir, "%s/pm-%s", base, subs[i]);
		snprintf(cmd, sizeof cmd, "mkdir -p '%s' && touch '%s/%s'", dir, dir, subs[i]);
		assert_int_equal(system(cmd), 0);
		setenv("STARPU_PERF_MODEL_DIR", dir, 1);
		expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_PERF_MODEL_DIR=");
		snprintf(sub, sizeof sub, "'%s/%s' is not a directory", dir, subs[i]);
		if (!strstr(tg_last_error(), sub))
			fail_msg("the message does not say %s: %s", sub, tg_last_error());
		unsetenv("STARPU_PERF_MODEL_DIR");

		snprintf(dir, sizeof dir, "%s/sh-%s", base, subs[i]);
		snprintf(cmd, sizeof cmd, "mkdir -p '%s/.starpu/sampling' && touch '%s/.starpu/sampling/%s'", dir, dir, subs[i]);
		assert_int_equal(system(cmd), 0);
		setenv("STARPU_HOME", dir, 1);
		expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_HOME=");
		if (!strstr(tg_last_error(), subs[i]))
			fail_msg("the message does not name %s: %s", subs[i], tg_last_error());
		unsetenv("STARPU_HOME");

		snprintf(dir, sizeof dir, "%s/h-%s", base, subs[i]);
		snprintf(cmd, sizeof cmd, "mkdir -p '%s/.cache/taskgrad/%s' && touch '%s/.cache/taskgrad/%s/%s'", dir, version,
		         dir, version, subs[i]);
		assert_int_equal(system(cmd), 0);
		setenv("HOME", dir, 1);
		init_expect_perfmodel_dir(NULL, 1);
	}
	/* StarPU's file names hold the host name (STARPU_HOSTNAME when set) and must fit in 255
	 * characters: a folder name too long for them is refused (the user's) or replaced by a
	 * temporary folder (taskgrad's cache); one just short enough works, again and again */
	char host[64], longdir[PATH_MAX];
	memset(host, 'h', 63);
	host[63] = '\0';
	setenv("STARPU_HOSTNAME", host, 1);
	size_t baselen = strlen(base) + 1;
	assert_true(baselen < 150);
	memset(longdir, 'p', 180);
	memcpy(longdir, base, baselen - 1);
	longdir[baselen - 1] = '/';
	longdir[180] = '\0';
	setenv("STARPU_PERF_MODEL_DIR", longdir, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_HOSTNAME, 63 characters");
	int max = 0;
	const char *at = strstr(tg_last_error(), "longer than the ");
	assert_non_null(at);
	assert_int_equal(sscanf(at, "longer than the %d", &max), 1);
	assert_true(max > (int)baselen && max < 180);
	longdir[max] = '\0'; /* the longest that works */
	setenv("STARPU_PERF_MODEL_DIR", longdir, 1);
	init_expect_perfmodel_dir(longdir, 0);
	init_expect_perfmodel_dir(longdir, 0); /* StarPU reads its bus calibration back */
	unsetenv("STARPU_PERF_MODEL_DIR");
	longdir[max] = 'p';
	longdir[180] = '\0';
	setenv("HOME", longdir, 1);
	init_expect_perfmodel_dir(NULL, 1);
	char huge[256];
	memset(huge, 'h', 250);
	huge[250] = '\0';
	setenv("STARPU_HOSTNAME", huge, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "STARPU_HOSTNAME is 250 characters long");
	unsetenv("STARPU_HOSTNAME");
	setenv("HOME", home, 1);

	/* a name far longer than a message: the reason is still in it */
	static char verylong[2100];
	memset(verylong, 'v', 2000);
	verylong[0] = '/';
	verylong[2000] = '\0';
	setenv("STARPU_PERF_MODEL_DIR", verylong, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "longer than");
	assert_non_null(strstr(tg_last_error(), "..."));
	unsetenv("STARPU_PERF_MODEL_DIR");

	/* the codelets' own folder, codelets/NN, as a file */
	char cmd[4 * PATH_MAX];
	snprintf(cmd, sizeof cmd, "cd '%s/pm-codelets' && rm codelets && mkdir codelets && touch codelets/"
	         "$(ls '%s/.cache/taskgrad/%s/codelets')", base, home, version);
	assert_int_equal(system(cmd), 0);
	snprintf(want, sizeof want, "%s/pm-codelets", base);
	setenv("STARPU_PERF_MODEL_DIR", want, 1);
	expect_error(tg_init(&cfg), TG_EINVAL, "is not a directory");
	env_give_back();
}

/* A first run under dmda in a fresh performance-model folder (StarPU calibrates the bus and
 * warns about uncalibrated models), with stderr in a file; returns what was printed there. */
static char *stderr_of_a_run(int verbose, const char *perfmodel_dir)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s.stderr", perfmodel_dir);
	fflush(stderr);
	int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	setenv("STARPU_PERF_MODEL_DIR", perfmodel_dir, 1); /* fresh: StarPU calibrates the bus */
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	cfg.sched = "dmda";
	cfg.verbose = verbose;
	int rc = tg_init(&cfg);
	if (rc == 0) {
		tg_tensor *a, *c;
		float out[16];
		tg_fill one = {TG_FILL_CONSTANT, 1, 0, 0, 0};
		if ((rc = tg_tensor_new_filled(&a, "a", TG_F32, TG_SHAPE(4, 4), &one)) == 0 &&
		    (rc = tg_tensor_new(&c, "c", TG_F32, TG_SHAPE(4, 4))) == 0) {
			for (int i = 0; i < 4 && rc == 0; i++)
				rc = tg_matmul(c, a, a, 0);
			if (rc == 0)
				rc = tg_tensor_to_host(c, out, sizeof out);
			tg_tensor_free(a);
			tg_tensor_free(c);
		}
		int rc2 = tg_shutdown();
		rc = rc ? rc : rc2;
	}
	unsetenv("STARPU_PERF_MODEL_DIR");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	TG_OK_OR_FAIL(rc);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char text[8192];
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* StarPU is silent unless the configuration or the user's STARPU_SILENT says otherwise. */
static void quiet_unless_verbose(void **unused)
{
	(void)unused;
	env_save();
	char base[PATH_MAX], dir[PATH_MAX + 32];
	scratch_dir(base, sizeof base, "quiet");
	snprintf(dir, sizeof dir, "%s/home", base);
	setenv("HOME", dir, 1); /* a cache for the runs below that do not name their own folder */
	snprintf(dir, sizeof dir, "%s/silent", base);
	char *text = stderr_of_a_run(0, dir);
	if (text[0])
		fail_msg("a quiet run printed on stderr: %s", text);
	snprintf(dir, sizeof dir, "%s/verbose", base);
	text = stderr_of_a_run(1, dir);
	if (!strstr(text, "[starpu]"))
		fail_msg("a verbose first run printed nothing of StarPU's (its bus calibration): '%s'", text);

	/* the variable while the runtime runs, and after */
	TG_TEST_INIT("eager", -1, 0);
	assert_non_null(getenv("STARPU_SILENT"));
	assert_string_equal(getenv("STARPU_SILENT"), "1");
	TG_OK_OR_FAIL(tg_shutdown());
	assert_null(getenv("STARPU_SILENT"));
	setenv("STARPU_SILENT", "0", 1); /* the user's own choice stands */
	TG_TEST_INIT("eager", -1, 0);
	assert_string_equal(getenv("STARPU_SILENT"), "0");
	TG_OK_OR_FAIL(tg_shutdown());
	assert_string_equal(getenv("STARPU_SILENT"), "0");
	/* but asking for StarPU's messages wins over the user's STARPU_SILENT=1, for the run */
	setenv("STARPU_SILENT", "1", 1);
	snprintf(dir, sizeof dir, "%s/verbose-over-silent", base);
	text = stderr_of_a_run(1, dir);
	if (!strstr(text, "[starpu]"))
		fail_msg("a verbose first run under STARPU_SILENT=1 printed nothing of StarPU's: '%s'", text);
	assert_string_equal(getenv("STARPU_SILENT"), "1");
	snprintf(dir, sizeof dir, "%s/silent-by-user", base);
	text = stderr_of_a_run(0, dir);
	if (text[0])
		fail_msg("a quiet run under STARPU_SILENT=1 printed on stderr: %s", text);
	env_give_back();
}

/* ------------------------------------------------------------------ bad tensors, offsets, sizes */

static void child_view_of_an_orphan(int fd)
{
	(void)fd;
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.ncuda = 0;
	tg_tensor *t, *v;
	if (tg_init(&cfg) < 0 || tg_tensor_new(&t, "old", TG_F32, TG_SHAPE(4, 4)) < 0)
		_exit(3);
	tg_shutdown(); /* t is left over: an orphan */
	if (tg_init(&cfg) < 0)
		_exit(3);
	int rc = tg_test_block(t, TG_SHAPE(2, 2), 0, 0, &v);
	_exit(rc == TG_ESTATE && strstr(tg_last_error(), "shut down") ? 0 : 6);
}

/* Parts: every offset check is overflow-safe, and a part of a tensor from before a re-init
 * is an error, not a hang. */
static void parts_never_overflow(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	float zeros[5 * 6] = {0};
	tg_tensor *p, *v;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&p, "p", TG_F32, TG_SHAPE(5, 6), zeros, sizeof zeros));
	static const struct {
		int64_t rows, cols, row0, col0;
	} bad[] = {
		{2, 3, INT64_MAX, 0},    {2, 3, 0, INT64_MAX},     {1, 1, INT64_MAX, INT64_MAX},
		{2, 3, -1, 0},           {2, 3, 0, -1},            {2, 3, INT64_MIN, 0},
		{2, 3, 0, INT64_MIN},    {2, 3, 4, 0},             {2, 3, 0, 4},
		{1, 1, 5, 0},            {1, 1, 0, 6},             {6, 6, 0, 0},
		{5, 7, 0, 0},            {2, 3, (int64_t)1 << 32, 0}, {2, 3, 0, (int64_t)1 << 32},
		{2, 3, (int64_t)UINT32_MAX, 0}, {2, 3, INT64_MAX - 1, 0},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = NULL;
		int rc = tg_test_block(p, TG_SHAPE(bad[i].rows, bad[i].cols), bad[i].row0, bad[i].col0, &v);
		if (rc != TG_ESHAPE)
			fail_msg("block (%lld, %lld) at (%lld, %lld) of a (5, 6) tensor: %d (%s)", (long long)bad[i].rows,
			         (long long)bad[i].cols, (long long)bad[i].row0, (long long)bad[i].col0, rc, tg_last_error());
		assert_null(v);
	}
	/* the corner itself fits */
	TG_OK_OR_FAIL(tg_test_block(p, TG_SHAPE(2, 3), 3, 3, &v));
	TG_OK_OR_FAIL(tg_test_block(p, TG_SHAPE(5, 6), 0, 0, &v));

	/* tg_tensor_shape_str: no buffer, no room, truncation */
	char buf[16];
	memset(buf, 'Z', sizeof buf);
	assert_null(tg_tensor_shape_str(p, NULL, 8));
	assert_null(tg_tensor_shape_str(p, buf, 0));
	assert_true(buf[0] == 'Z');
	assert_string_equal(tg_tensor_shape_str(p, buf, 4), "(5,");
	assert_true(buf[4] == 'Z');
	assert_string_equal(tg_tensor_shape_str(p, buf, sizeof buf), "(5, 6)");
	assert_string_equal(tg_tensor_shape_str(NULL, buf, sizeof buf), "");
	tg_tensor_free(p);
	TG_OK_OR_FAIL(tg_shutdown());

	int st = run_child(child_view_of_an_orphan, 30, 0);
	if (st == -1)
		fail_msg("a part of a tensor from before a re-init hung (killed after 30 s)");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("a part of a tensor from before a re-init: wait status 0x%x (expected an error naming the shutdown)",
		         st);
}

/* Every entry point refuses a NULL tensor and a tensor of a runtime that was shut down. */
static void every_entry_point_checks_its_tensors(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *old;
	TG_OK_OR_FAIL(tg_tensor_new(&old, "old", TG_F32, TG_SHAPE(2, 2)));
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(old, 1));
	expect_error(tg_shutdown(), TG_ESTATE, "not freed");
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *t, *v;
	TG_OK_OR_FAIL(tg_tensor_new(&t, "t", TG_F32, TG_SHAPE(2, 2)));
	float x[4] = {0};
	tg_tensor *bad[2] = {NULL, old};
	for (int k = 0; k < 2; k++) {
		int code = k ? TG_ESTATE : TG_EINVAL;
		const char *why = k ? "shut down" : "NULL";
		tg_tensor *b = bad[k];
		expect_error(tg_tensor_to_host(b, x, sizeof x), code, why);
		expect_error(tg_tensor_from_host(b, x, sizeof x), code, why);
		expect_error(tg_tensor_fill(b, &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0}), code, why);
		expect_error(tg_tensor_prefetch(b, TG_BACKEND_CPU), code, why);
		expect_error(tg_test_block(b, TG_SHAPE(1, 1), 0, 0, &v), code, why);
		expect_error(tg_tensor_set_grad(b, t), code, why);
		expect_error(tg_tensor_set_grad(t, b), code, why);
		expect_error(tg_backward(b), code, why);
		expect_error(tg_backward_from(t, b), k ? code : TG_ESTATE, k ? why : "no forward op");
		expect_error(tg_relu(t, b), code, why);
		expect_error(tg_relu(b, t), code, why);
		expect_error(tg_matmul(t, b, t, 0), code, why);
		expect_error(tg_add(t, t, b), code, why);
		expect_error(tg_sgd(b, NULL, &(tg_sgd_params){0.1f, 0, 0}), code, why);
		expect_error(tg_tensor_check_usable(b, "mine"), code, why);
		expect_error(tg_tensor_set_requires_grad(b, 1), code, why);
		expect_error(tg_tensor_set_requires_grad(b, 0), code, why);
		expect_error(tg_zero_grad(b), code, why);
	}
	assert_int_equal(tg_tape_num_nodes(), 0);
	tg_tensor_free(t);
	TG_OK_OR_FAIL(tg_shutdown());
	tg_tensor_free(old);
}

/* Host buffers must be exactly the tensor's size, both ways. */
static void host_buffers_of_the_wrong_size(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	float buf[7] = {0};
	tg_tensor *t = (tg_tensor *)1;
	const size_t wrong[] = {0, 4, 5 * sizeof(float), 7 * sizeof(float), SIZE_MAX};
	for (int i = 0; i < 5; i++) {
		expect_error(tg_tensor_new_from_host(&t, "t", TG_F32, TG_SHAPE(2, 3), buf, wrong[i]), TG_EINVAL, "24 bytes");
		assert_null(t);
	}
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&t, "t", TG_F32, TG_SHAPE(2, 3), buf, 6 * sizeof(float)));
	for (int i = 0; i < 5; i++) {
		expect_error(tg_tensor_to_host(t, buf, wrong[i]), TG_EINVAL, "24 bytes");
		expect_error(tg_tensor_from_host(t, buf, wrong[i]), TG_EINVAL, "24 bytes");
	}
	tg_tensor_free(t);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* A wrong op call is refused before anything is recorded or submitted. */
static void op_errors_before_submission(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *a, *b, *out, *loss, *logits, *ft, *it, *bias;
	tg_fill z = {TG_FILL_ZEROS, 0, 0, 0, 0};
	TG_OK_OR_FAIL(tg_tensor_new_filled(&a, "a", TG_F32, TG_SHAPE(4, 3), &z));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&b, "b", TG_F32, TG_SHAPE(5, 2), &z));
	TG_OK_OR_FAIL(tg_tensor_new(&out, "out", TG_F32, TG_SHAPE(4, 2)));
	TG_OK_OR_FAIL(tg_tensor_new(&loss, "loss", TG_F32, TG_SHAPE(1)));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&logits, "logits", TG_F32, TG_SHAPE(4, 3), &z));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&ft, "ftargets", TG_F32, TG_SHAPE(4), &z));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&it, "targets", TG_I32, TG_SHAPE(3), &z));
	TG_OK_OR_FAIL(tg_tensor_new_filled(&bias, "bias", TG_F32, TG_SHAPE(4), &z));
	TG_OK_OR_FAIL(tg_graph_reset());

	expect_error(tg_matmul(out, a, b, 0), TG_ESHAPE, "inner sizes differ");
	expect_error(tg_matmul(out, a, b, 8), TG_EINVAL, "flags");
	expect_error(tg_matmul(b, a, a, TG_TRANS_B), TG_ESHAPE, "must be (4, 4)");
	expect_error(tg_add(out, a, a), TG_ESHAPE, "same shape");
	expect_error(tg_add(a, a, bias), TG_ESHAPE, "same shape");
	expect_error(tg_relu(out, a), TG_ESHAPE, "same shape");
	expect_error(tg_relu(a, a), TG_EINVAL, "in-place");
	expect_error(tg_softmax_xent(loss, logits, ft), TG_EINVAL, "int32");
	expect_error(tg_softmax_xent(loss, logits, it), TG_ESHAPE, "4 rows");
	expect_error(tg_softmax_xent(out, logits, it), TG_ESHAPE, "one element");
	expect_error(tg_matmul(NULL, a, b, 0), TG_EINVAL, "NULL");
	expect_error(tg_sgd(a, NULL, &(tg_sgd_params){0.1f, 0, 0}), TG_EINVAL, "does not require a gradient");
	TG_OK_OR_FAIL(tg_tensor_set_requires_grad(a, 1));
	expect_error(tg_sgd(a, NULL, &(tg_sgd_params){NAN, 0, 0}), TG_EINVAL, "learning rate");
	expect_error(tg_sgd(a, NULL, &(tg_sgd_params){0.1f, 1.0f, 0}), TG_EINVAL, "momentum");
	expect_error(tg_sgd(a, b, &(tg_sgd_params){0.1f, 0.5f, 0}), TG_ESHAPE, "same shape");
	expect_error(tg_backward(out), TG_ESTATE, "no forward op");
	/* nothing was recorded, so nothing was submitted */
	assert_int_equal(tg_tape_num_nodes(), 0);

	/* a parameter without a gradient: the SGD step has nothing to do and submits nothing */
	TG_OK_OR_FAIL(tg_sgd(a, NULL, &(tg_sgd_params){0.1f, 0, 0}));
	assert_int_equal(tg_tape_num_nodes(), 0);

	/* a codelet whose performance model's name would not fit in StarPU's file names */
	static struct starpu_perfmodel long_model = {
		.type = STARPU_HISTORY_BASED, .symbol = "a_performance_model_symbol_of_43_characters"};
	assert_int_equal(strlen(long_model.symbol), 43);
	static struct starpu_codelet long_cl = {.cpu_funcs = {NULL}, .nbuffers = STARPU_VARIABLE_NBUFFERS,
	                                        .model = &long_model, .name = "long"};
	static const tg_op_desc long_op = {.name = "long", .kind = TG_KIND_ELEMENTWISE};
	tg_task_spec spec = {.op = &long_op, .cl = &long_cl, .phase = TG_PHASE_FWD, .n = 2, .t = {out, a},
	                     .mode = {TG_W, TG_R}};
	expect_error(tg_submit(&spec), TG_EINVAL, "a_performance_model_symbol_of_43_characters");
	assert_int_equal(tg_tape_num_nodes(), 0);

	tg_tensor *ts[] = {a, b, out, loss, logits, ft, it, bias};
	for (int i = 0; i < 8; i++)
		tg_tensor_free(ts[i]);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void shutdown_reports_tensors_not_freed(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_tensor *t;
	TG_OK_OR_FAIL(tg_tensor_new(&t, "leaked", TG_F32, TG_SHAPE(2)));
	expect_error(tg_shutdown(), TG_ESTATE, "1 tensors were not freed");
	assert_false(tg_is_initialized());
	/* a tensor of a runtime that was shut down cannot be used by the next one */
	TG_TEST_INIT("eager", -1, 0);
	float x[2];
	expect_error(tg_tensor_to_host(t, x, sizeof x), TG_ESTATE, "shut down");
	TG_OK_OR_FAIL(tg_shutdown());
	tg_tensor_free(t); /* only the host structure is left */
}

/* A failed test must not leave the runtime running for the next one. */
static int stop_runtime(void **unused)
{
	(void)unused;
	if (tg_is_initialized())
		tg_shutdown();
	unsetenv("STARPU_NCPU");
	unsetenv("STARPU_NCPUS");
	unsetenv("STARPU_CATCH_SIGNALS");
	unsetenv("STARPU_RESERVE_NCPU");
	unsetenv("STARPU_HOSTNAME");
	unsetenv("STARPU_PERF_MODEL_DIR");
	return 0;
}
#undef cmocka_unit_test
#define cmocka_unit_test(f) cmocka_unit_test_teardown(f, stop_runtime)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_shutdown_twice_with_policies),
		cmocka_unit_test(default_policy_is_lws),
		cmocka_unit_test(invalid_policy_lists_the_valid_ones),
		cmocka_unit_test(starpu_sched_in_the_environment),
		cmocka_unit_test(broken_policies_are_refused),
		cmocka_unit_test(worker_counts),
		cmocka_unit_test(tensor_round_trips),
		cmocka_unit_test(fills_are_seeded_and_counter_based),
		cmocka_unit_test(philox_known_answers),
		cmocka_unit_test(invalid_shapes),
		cmocka_unit_test(op_errors_before_submission),
		cmocka_unit_test(shutdown_reports_tensors_not_freed),
		cmocka_unit_test(crash_and_ctrl_c_end_the_process_after_reinit),
		cmocka_unit_test(signal_dispositions_survive_cycles),
		cmocka_unit_test(starpu_variables_starpu_would_abort_on),
		cmocka_unit_test(perfmodels_go_where_they_can_be_written),
		cmocka_unit_test(quiet_unless_verbose),
		cmocka_unit_test(parts_never_overflow),
		cmocka_unit_test(every_entry_point_checks_its_tensors),
		cmocka_unit_test(host_buffers_of_the_wrong_size),
	};
	return cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
}
