/*
 * test_runtime.c — the runtime core: init/shutdown and the configured policy, STARPU_SCHED,
 * worker counts, tensors (round trips, fills, views, invalid shapes), errors before any task
 * is submitted, and the random generator against its published answers.
 */
#include "tg_test.h"

#include <math.h>

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
	cfg.ncpu = 4096; /* more than StarPU can start: an error, not a silent clamp */
	expect_error(tg_init(&cfg), TG_EINVAL, "can start only");
	assert_false(tg_is_initialized());
	cfg.ncpu = -1;
	cfg.ncuda = 1;
	int rc = tg_init(&cfg);
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
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&t, "t", TG_F32, TG_SHAPE(3, 5, 7), src));
	assert_int_equal(tg_tensor_rank(t), 3);
	assert_int_equal(tg_tensor_numel(t), 105);
	assert_int_equal(tg_tensor_rows(t), 15);
	assert_int_equal(tg_tensor_cols(t), 7);
	assert_int_equal(tg_tensor_dim(t, -1), 7);
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
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&ti, "i", TG_I32, TG_SHAPE(4), isrc));
	TG_OK_OR_FAIL(tg_tensor_to_host(ti, idst, sizeof idst));
	assert_memory_equal(isrc, idst, sizeof idst);
	expect_error(tg_tensor_set_requires_grad(ti, 1), TG_EINVAL, "float32");
	expect_error(tg_tensor_fill(ti, &(tg_fill){TG_FILL_NORMAL, 0, 1, 1, 0}), TG_EINVAL, "int32");

	/* a view: written through, seen in its parent at the right place */
	float zeros[5 * 6] = {0}, pv[5 * 6], vals[2 * 3] = {1, 2, 3, 4, 5, 6}, got[6];
	tg_tensor *p, *v;
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&p, "p", TG_F32, TG_SHAPE(5, 6), zeros));
	TG_OK_OR_FAIL(tg_tensor_view(&v, p, "v", TG_SHAPE(2, 3), 1, 2));
	expect_error(tg_tensor_to_host(p, pv, sizeof pv), TG_ESTATE, "view");
	tg_tensor *v2;
	expect_error(tg_tensor_view(&v2, p, "v2", TG_SHAPE(1, 1), 0, 0), TG_ESTATE, "already");
	TG_OK_OR_FAIL(tg_tensor_from_host(v, vals, sizeof vals));
	TG_OK_OR_FAIL(tg_tensor_to_host(v, got, sizeof got));
	assert_memory_equal(vals, got, sizeof got);
	tg_tensor_free(v);
	TG_OK_OR_FAIL(tg_tensor_to_host(p, pv, sizeof pv));
	for (int r = 0; r < 5; r++)
		for (int c = 0; c < 6; c++) {
			int inside = r >= 1 && r < 3 && c >= 2 && c < 5;
			assert_true(pv[r * 6 + c] == (inside ? vals[(r - 1) * 3 + c - 2] : 0.0f));
		}
	expect_error(tg_tensor_view(&v, p, "v", TG_SHAPE(2, 3), 4, 0), TG_ESHAPE, "does not fit");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_shutdown_twice_with_policies),
		cmocka_unit_test(default_policy_is_lws),
		cmocka_unit_test(invalid_policy_lists_the_valid_ones),
		cmocka_unit_test(starpu_sched_in_the_environment),
		cmocka_unit_test(worker_counts),
		cmocka_unit_test(tensor_round_trips),
		cmocka_unit_test(fills_are_seeded_and_counter_based),
		cmocka_unit_test(philox_known_answers),
		cmocka_unit_test(invalid_shapes),
		cmocka_unit_test(op_errors_before_submission),
		cmocka_unit_test(shutdown_reports_tensors_not_freed),
	};
	return cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
}
