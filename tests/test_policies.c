/*
 * test_policies.c — a short training under every scheduling policy the linked StarPU predefines.
 *
 * Each policy runs in a child process of its own, with a time limit, so that one that crashes,
 * hangs or (in the sanitizer build) leaks is reported by name while the others still run. A
 * policy that tg_init refuses as broken in the linked StarPU (TG_ENOTSUP, with the reason) is
 * reported as skipped, with that reason. In
 * deterministic mode every policy must give bit-identical losses, and the policy that runs
 * must be the one asked for. A last child sweeps all the policies in one process (init and
 * shutdown again and again, as a policy comparison does) and must give the same losses. A
 * child killed by StarPU 1.3's own timing assertion is run again (see MAX_ATTEMPTS), and that
 * rule is checked first, with simulated assertions.
 */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "taskgrad.h"

#define STEPS 40
#define LIMIT_S 120

typedef struct loss_log {
	float *losses;
	int n;
} loss_log;

static int record_loss(tg_trainer *tr, const tg_step_info *info, void *user)
{
	(void)tr;
	loss_log *l = user;
	if (l->n < STEPS)
		l->losses[l->n++] = info->loss;
	return 0;
}

/* Train the MLP for STEPS steps under sched; 0 and the losses, or -1 with a message. */
static int train(const char *sched, float *losses, char *why, size_t whysize)
{
	tg_config cfg;
	tg_config_default(&cfg);
	cfg.sched = sched;
	cfg.ncuda = 0;
	int rc = tg_init(&cfg);
	if (rc < 0) {
		snprintf(why, whysize, "tg_init: %s", tg_last_error());
		return rc == TG_ENOTSUP ? 1 : -1;
	}
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	if (strcmp(info.sched, sched) != 0) {
		snprintf(why, whysize, "asked for %s, runs %s", sched, info.sched);
		rc = -1;
	}
	tg_model_config mc;
	tg_model *m = NULL;
	tg_dataset *d = NULL;
	tg_trainer *tr = NULL;
	tg_train_config tc;
	tg_train_config_default(&tc);
	tc.steps = STEPS;
	tc.batch = 128;
	tc.lr = 0.02f;
	tc.warmup = 10;
	tc.eval_every = 0;
	loss_log log = {losses, 0};
	if (rc == 0 && (tg_model_config_default(&mc, "mlp") < 0 || tg_model_new(&m, &mc) < 0 ||
	                tg_dataset_spirals(&d, 1024, 0.04f, 1) < 0 || tg_trainer_new(&tr, m, d, &tc) < 0 ||
	                tg_trainer_run(tr, record_loss, &log) < 0)) {
		snprintf(why, whysize, "training: %s", tg_last_error());
		rc = -1;
	}
	tg_trainer_free(tr);
	tg_dataset_free(d);
	tg_model_free(m);
	if (tg_shutdown() < 0 && rc == 0) {
		snprintf(why, whysize, "tg_shutdown: %s", tg_last_error());
		rc = -1;
	}
	return rc;
}

/* The retry logic's own check (see main): the first fake_race attempts of a child abort at
 * once as StarPU's assertion does (or, with fake_other, as another assertion does). */
static int fake_race, fake_other, attempt_now;

/* Run in a child: the losses of each policy in names (one, or all for the sweep) through the
 * pipe, NaN for a policy refused as broken (exit 77 when it is the only one). Ends with exit(),
 * so that the leak checker of the sanitizer build runs. */
static void child(int fd, char **names, int n)
{
	if (attempt_now <= fake_race) {
		fprintf(stderr, "[starpu][_starpu_driver_update_job_feedback][assert failure] %s (simulated)\n",
		        fake_other ? "nimpl < STARPU_MAXIMPLEMENTATIONS" : "measured >= 0");
		fflush(stderr);
		abort();
	}
	for (int i = 0; i < n; i++) {
		float losses[STEPS];
		char why[1200];
		int rc = train(names[i], losses, why, sizeof why);
		if (rc < 0) {
			fprintf(stderr, "%s: %s\n", names[i], why);
			exit(3);
		}
		if (rc > 0) {
			if (n == 1) {
				printf("ok - %s # SKIP %s\n", names[i], why);
				exit(77);
			}
			for (int s = 0; s < STEPS; s++)
				losses[s] = NAN;
		}
		if (write(fd, losses, sizeof losses) != (ssize_t)sizeof losses)
			exit(4);
	}
	exit(0);
}

/* StarPU 1.3.10 now and then fails an assertion of its own under load: a task's measured
 * time comes out negative (_starpu_driver_update_job_feedback, "measured >= 0"; a race in
 * its calibration, seen more often with a fresh STARPU_HOME, i.e. while it calibrates, and
 * when other tests run beside this one: a model switched to recording while one of its tasks
 * runs. tg_init now starts StarPU recording from the start (runtime/init.c), which removed
 * every case seen; the retry stays for what is left). A child killed by exactly that is run
 * again, up to MAX_ATTEMPTS times in all, and the retries are said; that many in a row, or
 * any other crash, is a failure. */
#define MAX_ATTEMPTS 6

static int starpu_timing_assertion(const char *errfile)
{
	FILE *f = fopen(errfile, "r");
	char line[1024];
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		found |= strstr(line, "_starpu_driver_update_job_feedback") && strstr(line, "measured >= 0");
	if (f)
		fclose(f);
	return found;
}

static int run_child_once(const char *label, char **names, int n, float (*out)[STEPS], const char *errfile,
                          int *timing_assertion);

/* Fork a child for names; read n rows of losses; report how it ended. 0 when all went well,
 * 1 when the policy was refused as broken. */
static int run_child(const char *label, char **names, int n, float (*out)[STEPS])
{
	char errfile[64];
	snprintf(errfile, sizeof errfile, "tests/policies-stderr.%d", (int)getpid());
	int timing = 0, rc = -1, attempt;
	for (attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
		attempt_now = attempt;
		rc = run_child_once(label, names, n, out, errfile, &timing);
		if (rc >= 0 || !timing)
			break;
		printf("# %s: StarPU's own assertion on a negative measured time (a StarPU 1.3 race), attempt %d of %d%s\n",
		       label, attempt, MAX_ATTEMPTS, attempt < MAX_ATTEMPTS ? "; run again" : "");
	}
	if (rc >= 0 && attempt > 1)
		printf("# %s: passed after %d retr%s (StarPU's assertion on a negative measured time)\n", label, attempt - 1,
		       attempt - 1 == 1 ? "y" : "ies");
	if (rc < 0 && timing)
		printf("not ok - %s: StarPU's assertion on a negative measured time %d times in a row\n", label, MAX_ATTEMPTS);
	unlink(errfile);
	return rc;
}

static int run_child_once(const char *label, char **names, int n, float (*out)[STEPS], const char *errfile,
                          int *timing_assertion)
{
	int fds[2];
	*timing_assertion = 0;
	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		/* the child's stderr goes to errfile too, to tell StarPU's assertion from other crashes */
		FILE *e = freopen(errfile, "w", stderr);
		(void)e;
		alarm(LIMIT_S); /* a hang ends the child with SIGALRM */
		child(fds[1], names, n);
	}
	close(fds[1]);
	size_t want = (size_t)n * sizeof *out, got = 0;
	ssize_t k;
	while (got < want && (k = read(fds[0], (char *)out + got, want - got)) > 0)
		got += (size_t)k;
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	/* what the child said on stderr, for the log */
	FILE *e = fopen(errfile, "r");
	char line[1024];
	while (e && fgets(line, sizeof line, e))
		fprintf(stderr, "%s", line);
	if (e)
		fclose(e);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && starpu_timing_assertion(errfile)) {
		*timing_assertion = 1; /* the caller says it, and runs the child again */
		return -1;
	}
	if (WIFSIGNALED(st)) {
		printf("not ok - %s: killed by signal %d%s\n", label, WTERMSIG(st),
		       WTERMSIG(st) == SIGALRM ? " (it ran past the time limit: a hang)" : "");
		return -1;
	}
	if (WEXITSTATUS(st) == 77)
		return 1; /* refused as broken in this StarPU: the child said why */
	if (WEXITSTATUS(st) != 0 || got != want) {
		printf("not ok - %s: exit status %d%s\n", label, WEXITSTATUS(st),
		       WEXITSTATUS(st) == 3 ? "" : " (a sanitizer report, or the losses did not arrive)");
		return -1;
	}
	return 0;
}

int main(void)
{
	char buf[4096];
	if (tg_sched_policy_names(buf, sizeof buf) < 0) {
		printf("not ok - %s\n", tg_last_error());
		return 1;
	}
	char *names[128];
	int n = 0;
	for (char *p = strtok(buf, ", "); p && n < 128; p = strtok(NULL, ", "))
		names[n++] = p;
	printf("1..%d\n", n + 4);
	float(*losses)[STEPS] = calloc((size_t)n, sizeof *losses);
	float(*sweep)[STEPS] = calloc((size_t)n, sizeof *sweep);
	int *ran = calloc((size_t)n, sizeof *ran);
	if (!losses || !sweep || !ran)
		return 99;
	int failures = 0, reference = -1;
	/* the retries themselves: StarPU's assertion up to MAX_ATTEMPTS - 1 times passes, one more
	 * time fails, and another assertion is never retried */
	char *only[] = {names[0]};
	static float scratch[1][STEPS];
	struct {
		int race, other, want;
	} selftest[] = {{MAX_ATTEMPTS - 1, 0, 0}, {MAX_ATTEMPTS, 0, -1}, {1, 1, -1}};
	for (int k = 0; k < 3; k++) {
		fake_race = selftest[k].race;
		fake_other = selftest[k].other;
		printf("# retry check %d: %d simulated %s assertion(s)%s\n", k, fake_race, fake_other ? "other" : "timing",
		       selftest[k].want < 0 ? ", the child must fail (the next line says so)" : "");
		int rc = run_child("retry check", only, 1, scratch);
		if ((rc < 0 ? -1 : 0) != selftest[k].want) {
			printf("not ok - retry check %d: %d simulated %s assertion(s) gave %d, expected %d\n", k, fake_race,
			       fake_other ? "other" : "timing", rc, selftest[k].want);
			failures++;
		} else {
			printf("ok - retry check %d\n", k);
		}
	}
	fake_race = fake_other = 0;
	for (int i = 0; i < n; i++) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = run_child(names[i], &names[i], 1, &losses[i]);
		if (rc != 0) {
			failures += rc < 0;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ran[i] = 1;
		if (reference < 0)
			reference = i;
		int first = -1;
		for (int s = 0; s < STEPS && first < 0; s++)
			if (memcmp(&losses[i][s], &losses[reference][s], sizeof(float)) != 0)
				first = s;
		if (first >= 0) {
			printf("not ok - %s: the loss of step %d is %.9g, %.9g under %s (deterministic mode must not depend "
			       "on the policy)\n", names[i], first, (double)losses[i][first], (double)losses[reference][first],
			       names[reference]);
			failures++;
			continue;
		}
		printf("ok - %s: %d steps, final loss %.6f, %.2f s\n", names[i], STEPS, (double)losses[i][STEPS - 1],
		       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
	}
	/* every policy again, one after the other in one process */
	if (run_child("all policies in one process", names, n, sweep) == 0) {
		int bad = 0;
		for (int i = 0; i < n; i++)
			if (ran[i] && memcmp(sweep[i], losses[i], sizeof sweep[i]) != 0) {
				printf("# %s: other losses when run after the others in one process\n", names[i]);
				bad++;
			}
		printf("%s - all %d policies in one process%s\n", bad ? "not ok" : "ok", n, bad ? ": losses differ" : "");
		failures += bad != 0;
	} else {
		failures++;
	}
	free(losses);
	free(sweep);
	free(ran);
	printf("# %d policies, %d failure(s)\n", n, failures);
	return failures ? 1 : 0;
}
