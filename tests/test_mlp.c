/*
 * test_mlp.c — the generic trainer on the MLP and the two-spirals set: it learns (validation
 * accuracy >= 95%) under eager, lws and dmda, and in deterministic mode the loss of every
 * step is bit-identical across those policies and across worker counts. A diverging run
 * stops with an error naming the step; bad settings are refused.
 */
#include "tg_test.h"

#include <math.h>

static const char *policies[] = {"eager", "lws", "dmda"};
#define NPOL 3
#define STEPS 600

typedef struct result {
	float losses[STEPS], lr[STEPS];
	int n;
	float val_loss, accuracy;
} result;

static int record(tg_trainer *tr, const tg_step_info *info, void *user)
{
	(void)tr;
	result *r = user;
	assert_int_equal(info->step, r->n);
	r->lr[r->n] = info->lr;
	r->losses[r->n++] = info->loss;
	if (!isnan(info->val_loss))
		r->val_loss = info->val_loss;
	return 0;
}

/* Accuracy on the validation split: argmax of the logits against the labels. */
static float accuracy(tg_model *m, tg_dataset *d)
{
	int n = (int)d->size[TG_SPLIT_VAL];
	float *xy = malloc((size_t)n * 2 * sizeof *xy), *lg = malloc((size_t)n * 2 * sizeof *lg);
	int32_t *lab = malloc((size_t)n * sizeof *lab);
	assert_true(xy && lg && lab);
	TG_OK_OR_FAIL(d->batch(d, TG_SPLIT_VAL, 0, n, xy, lab));
	tg_tensor *x, *logits;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&x, "x", TG_F32, TG_SHAPE(n, 2), xy, (size_t)n * 2 * sizeof *xy));
	TG_OK_OR_FAIL(tg_tensor_new(&logits, "logits", TG_F32, TG_SHAPE(n, 2)));
	TG_OK_OR_FAIL(tg_model_forward(m, logits, x));
	TG_OK_OR_FAIL(tg_tensor_to_host(logits, lg, (size_t)n * 2 * sizeof *lg));
	int ok = 0;
	for (int i = 0; i < n; i++)
		ok += (lg[2 * i + 1] > lg[2 * i]) == (lab[i] == 1);
	tg_tensor_free(x);
	tg_tensor_free(logits);
	free(xy);
	free(lg);
	free(lab);
	TG_OK_OR_FAIL(tg_graph_reset());
	return (float)ok / (float)n;
}

static void train_with(const char *sched, int ncpu, uint64_t seed, result *r)
{
	TG_TEST_INIT(sched, ncpu, 0);
	TG_OK_OR_FAIL(tg_set_tiling(64, 0)); /* a fixed tiling: the same bits with any number of workers */
	tg_model_config mc;
	TG_OK_OR_FAIL(tg_model_config_default(&mc, "mlp"));
	mc.seed = seed;
	tg_model *m;
	tg_dataset *d;
	tg_trainer *tr;
	TG_OK_OR_FAIL(tg_model_new(&m, &mc));
	TG_OK_OR_FAIL(tg_dataset_spirals(&d, 1024, 0.04f, seed));
	tg_train_config tc;
	tg_train_config_default(&tc);
	tc.steps = STEPS;
	tc.batch = 128;
	tc.lr = 0.02f;
	tc.warmup = 10;
	tc.weight_decay = 0;
	tc.eval_every = 200;
	TG_OK_OR_FAIL(tg_trainer_new(&tr, m, d, &tc));
	memset(r, 0, sizeof *r);
	TG_OK_OR_FAIL(tg_trainer_run(tr, record, r));
	assert_int_equal(r->n, STEPS);
	r->accuracy = accuracy(m, d);
	tg_trainer_free(tr);
	tg_dataset_free(d);
	tg_model_free(m);
	TG_OK_OR_FAIL(tg_shutdown());
	print_message("%s, %d CPU workers, seed %llu: loss %.4f -> %.5f, validation loss %.4f, accuracy %.1f%%\n", sched,
	              ncpu, (unsigned long long)seed, (double)r->losses[0], (double)r->losses[STEPS - 1],
	              (double)r->val_loss, 100.0 * r->accuracy);
}

static void learns_and_is_bit_identical_across_policies(void **unused)
{
	(void)unused;
	static result r[NPOL];
	for (int p = 0; p < NPOL; p++) {
		train_with(policies[p], -1, 1, &r[p]);
		assert_true(r[p].accuracy >= 0.95f);
		assert_true(r[p].losses[STEPS - 1] < r[p].losses[0] / 4);
	}
	/* the schedule: a linear warm-up of 10 steps to lr 0.02, then cosine down to lr / 10 at the end */
	for (int i = 0; i < 10; i++)
		if (fabsf(r[0].lr[i] - 0.02f * (float)(i + 1) / 10.0f) > 1e-7f)
			fail_msg("warm-up step %d: lr %g, expected %g", i, (double)r[0].lr[i], 0.02 * (i + 1) / 10.0);
	assert_true(fabsf(r[0].lr[10] - 0.02f) < 1e-7f);
	assert_true(fabsf(r[0].lr[STEPS - 1] - 0.002f) < 1e-7f);
	assert_true(fabsf(r[0].lr[10 + (STEPS - 11) / 2] - 0.011f) < 1e-4f); /* halfway: the mean of the two */
	for (int i = 11; i < STEPS; i++)
		assert_true(r[0].lr[i] <= r[0].lr[i - 1]);
	for (int p = 1; p < NPOL; p++)
		for (int i = 0; i < STEPS; i++)
			if (memcmp(&r[p].losses[i], &r[0].losses[i], sizeof(float)) != 0)
				fail_msg("step %d: loss %.9g under %s but %.9g under %s", i, (double)r[p].losses[i], policies[p],
				         (double)r[0].losses[i], policies[0]);
}

static void bit_identical_across_worker_counts_and_seed_sensitive(void **unused)
{
	(void)unused;
	static result one, two, other;
	train_with("dmda", 1, 7, &one);
	train_with("dmda", 2, 7, &two);
	train_with("dmda", 2, 8, &other);
	assert_memory_equal(one.losses, two.losses, sizeof one.losses);
	/* another seed is another run: the comparison above is not between constants */
	assert_true(memcmp(one.losses, other.losses, sizeof one.losses) != 0);
	assert_true(other.accuracy >= 0.95f);
}

static void divergence_is_an_error(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_model_config mc;
	TG_OK_OR_FAIL(tg_model_config_default(&mc, "mlp"));
	tg_model *m;
	tg_dataset *d;
	tg_trainer *tr;
	TG_OK_OR_FAIL(tg_model_new(&m, &mc));
	TG_OK_OR_FAIL(tg_dataset_spirals(&d, 256, 0.04f, 1));
	tg_train_config tc;
	tg_train_config_default(&tc);
	tc.steps = 200;
	tc.batch = 64;
	tc.lr = 1e3f;
	tc.warmup = 0;
	tc.clip = 0;
	tc.beta1 = 0;
	tc.beta2 = 0;
	TG_OK_OR_FAIL(tg_trainer_new(&tr, m, d, &tc));
	static result r;
	memset(&r, 0, sizeof r);
	int rc = tg_trainer_run(tr, record, &r);
	assert_int_equal(rc, TG_ENUMERIC);
	assert_non_null(strstr(tg_last_error(), "diverged"));
	char want[32];
	snprintf(want, sizeof want, "at step %d", r.n);
	if (!strstr(tg_last_error(), want))
		fail_msg("'%s' does not name the step after the last good one (%s)", tg_last_error(), want);
	tg_trainer_free(tr);
	tg_dataset_free(d);
	tg_model_free(m);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void bad_settings(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	tg_model_config mc;
	TG_OK_OR_FAIL(tg_model_config_default(&mc, "mlp"));
	tg_model *m;
	tg_dataset *d;
	tg_trainer *tr = NULL;
	TG_OK_OR_FAIL(tg_model_new(&m, &mc));
	TG_OK_OR_FAIL(tg_dataset_spirals(&d, 100, 0.04f, 1));
	tg_train_config tc;
	tg_train_config_default(&tc);
	tc.batch = 5000; /* larger than the training split: refused before any step */
	assert_int_equal(tg_trainer_new(&tr, m, d, &tc), TG_EINVAL);
	assert_non_null(strstr(tg_last_error(), "a batch of 5000 is larger than the training split (200 points)"));
	assert_null(tr);
	tg_train_config_default(&tc);
	tc.lr = -1;
	assert_int_equal(tg_trainer_new(&tr, m, d, &tc), TG_EINVAL);
	assert_non_null(strstr(tg_last_error(), "learning rate"));
	tg_train_config_default(&tc);
	tc.beta2 = 1;
	assert_int_equal(tg_trainer_new(&tr, m, d, &tc), TG_EINVAL);
	tg_dataset_free(d);
	tg_model_free(m);
	TG_OK_OR_FAIL(tg_shutdown());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(learns_and_is_bit_identical_across_policies, tg_test_teardown),
		cmocka_unit_test_teardown(bit_identical_across_worker_counts_and_seed_sensitive, tg_test_teardown),
		cmocka_unit_test_teardown(divergence_is_an_error, tg_test_teardown),
		cmocka_unit_test_teardown(bad_settings, tg_test_teardown),
	};
	return cmocka_run_group_tests_name("mlp", tests, NULL, NULL);
}
