/*
 * test_mlp.c — the MLP on the two-spirals set: it learns (>= 95% test accuracy) under eager,
 * lws and dmda, and in deterministic mode the loss of every step is bit-identical across
 * those policies and across worker counts. A diverging run stops with an error.
 */
#include "tg_test.h"

#include <math.h>

static const char *policies[] = {"eager", "lws", "dmda"};
#define NPOL 3

static tg_train_result train_with(const char *sched, int ncpu, uint64_t seed)
{
	TG_TEST_INIT(sched, ncpu, 0);
	tg_train_opts o;
	tg_train_opts_default(&o);
	o.seed = seed;
	tg_train_result r;
	if (tg_train_mlp_spirals(&o, &r) < 0)
		fail_msg("training under %s: %s", sched, tg_last_error());
	TG_OK_OR_FAIL(tg_shutdown());
	print_message("%s, %d CPU workers, seed %llu: final loss %.5f, test accuracy %.1f%%, %.2f s\n", sched, ncpu,
	              (unsigned long long)seed, (double)r.final_loss, 100.0 * r.accuracy, r.seconds);
	return r;
}

static void learns_and_is_bit_identical_across_policies(void **unused)
{
	(void)unused;
	tg_train_result r[NPOL];
	for (int p = 0; p < NPOL; p++) {
		r[p] = train_with(policies[p], -1, 1);
		assert_true(r[p].accuracy >= 0.95f);
		assert_true(r[p].final_loss < r[p].losses[0] / 4);
	}
	for (int p = 1; p < NPOL; p++) {
		assert_int_equal(r[p].nlosses, r[0].nlosses);
		for (int i = 0; i < r[0].nlosses; i++)
			if (memcmp(&r[p].losses[i], &r[0].losses[i], sizeof(float)) != 0)
				fail_msg("step %d: loss %.9g under %s but %.9g under %s", i, (double)r[p].losses[i], policies[p],
				         (double)r[0].losses[i], policies[0]);
	}
	for (int p = 0; p < NPOL; p++)
		free(r[p].losses);
}

static void bit_identical_across_worker_counts_and_seed_sensitive(void **unused)
{
	(void)unused;
	tg_train_result one = train_with("dmda", 1, 7), two = train_with("dmda", 2, 7), other = train_with("dmda", 2, 8);
	assert_memory_equal(one.losses, two.losses, (size_t)one.nlosses * sizeof(float));
	/* another seed is another run: the comparison above is not between constants */
	assert_true(memcmp(one.losses, other.losses, (size_t)one.nlosses * sizeof(float)) != 0);
	assert_true(other.accuracy >= 0.95f);
	free(one.losses);
	free(two.losses);
	free(other.losses);
}

static void divergence_is_an_error(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_train_opts o;
	tg_train_opts_default(&o);
	o.lr = 1e4f;
	o.steps = 200;
	tg_train_result r;
	int rc = tg_train_mlp_spirals(&o, &r);
	assert_int_equal(rc, TG_ENUMERIC);
	assert_non_null(strstr(tg_last_error(), "diverged"));
	assert_null(r.losses);
	/* the trainer freed what it made */
	TG_OK_OR_FAIL(tg_shutdown());
}

static void bad_options(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_train_opts o;
	tg_train_result r;
	tg_train_opts_default(&o);
	o.batch = 5000;
	assert_int_equal(tg_train_mlp_spirals(&o, &r), TG_EINVAL);
	assert_non_null(strstr(tg_last_error(), "larger than the training set"));
	tg_train_opts_default(&o);
	o.lr = -1;
	assert_int_equal(tg_train_mlp_spirals(&o, &r), TG_EINVAL);
	tg_train_opts_default(&o);
	o.graph_step = o.steps;
	assert_int_equal(tg_train_mlp_spirals(&o, &r), TG_EINVAL);
	TG_OK_OR_FAIL(tg_shutdown());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(learns_and_is_bit_identical_across_policies),
		cmocka_unit_test(bit_identical_across_worker_counts_and_seed_sensitive),
		cmocka_unit_test(divergence_is_an_error),
		cmocka_unit_test(bad_options),
	};
	return cmocka_run_group_tests_name("mlp", tests, NULL, NULL);
}
