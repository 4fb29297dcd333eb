/*
 * test_train.c — language models trained end to end by the generic trainer on real text
 * (../shared/data/tinyshakespeare.txt; SKIP without it): the loss falls well below ln 256;
 * losses are bit-identical under eager, lws, dmda and dmdas and with 1 and 2 workers; a
 * resumed run equals the uninterrupted one bit for bit; a checkpoint round-trips to the same
 * bytes; broken checkpoints are refused, each with its own message; sampling is reproducible.
 */
#include "tg_test.h"

#include <math.h>
#include <sys/stat.h>

static char text_path[4096];
static char tmp[4096];

#define MAXSTEPS 400

typedef struct losses {
	float v[MAXSTEPS];
	float val[MAXSTEPS];
	int n, first;
	int save_at;           /* save a checkpoint after this step (synced), or -1 */
	const char *save_path;
} losses;

static int record(tg_trainer *tr, const tg_step_info *info, void *user)
{
	losses *l = user;
	if (l->n == 0)
		l->first = info->step;
	assert_int_equal(info->step, l->first + l->n);
	l->val[l->n] = info->val_loss;
	l->v[l->n++] = info->loss;
	if (info->step == l->save_at) {
		assert_true(info->synced);
		TG_OK_OR_FAIL(tg_trainer_save(tr, l->save_path));
	}
	return 0;
}

typedef struct setup {
	tg_model *m;
	tg_dataset *d;
	tg_trainer *tr;
} setup;

static void make(setup *s, const char *arch, int steps, int sync_every)
{
	tg_model_config mc;
	TG_OK_OR_FAIL(tg_model_config_default(&mc, arch));
	mc.layers = 2;
	mc.dmodel = 32;
	mc.heads = 2;
	mc.ctx = 32;
	mc.seed = 5;
	TG_OK_OR_FAIL(tg_model_new(&s->m, &mc));
	TG_OK_OR_FAIL(tg_dataset_text(&s->d, text_path, mc.ctx, 5));
	tg_train_config tc;
	tg_train_config_default(&tc);
	tc.steps = steps;
	tc.batch = 8;
	tc.lr = 3e-3f;
	tc.warmup = 10;
	tc.eval_every = 50;
	tc.eval_batches = 2;
	tc.sync_every = sync_every;
	TG_OK_OR_FAIL(tg_trainer_new(&s->tr, s->m, s->d, &tc));
}

static void unmake(setup *s)
{
	tg_trainer_free(s->tr);
	tg_dataset_free(s->d);
	tg_model_free(s->m);
}

static void start(const char *sched, int ncpu)
{
	TG_TEST_INIT(sched, ncpu, 0);
	TG_OK_OR_FAIL(tg_set_tiling(64, 0)); /* a fixed tiling: the same bits with 1 or 2 workers */
}

/* The loss falls well below its start (ln 256 = 5.55) on real text, for both models. */
static void loss_falls(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"};
	for (int a = 0; a < 2; a++) {
		start("lws", -1);
		setup s;
		make(&s, archs[a], 300, 0);
		static losses l;
		memset(&l, 0, sizeof l);
		l.save_at = -1;
		TG_OK_OR_FAIL(tg_trainer_run(s.tr, record, &l));
		assert_int_equal(l.n, 300);
		float val = l.val[299];
		print_message("%s: loss %.3f -> %.3f, validation loss %.3f -> %.3f\n", archs[a], (double)l.v[0],
		              (double)l.v[299], (double)l.val[0], (double)val);
		assert_true(fabsf(l.v[0] - logf(256.0f)) < 0.3f);
		float bound = a == 0 ? 3.0f : 3.45f; /* ln 256 = 5.55; a unigram model of the text: 3.3 */
		assert_true(val < bound);
		assert_true(l.v[299] < bound);
		unmake(&s);
		TG_OK_OR_FAIL(tg_shutdown());
	}
}

static void run_losses(const char *arch, const char *sched, int ncpu, int steps, losses *l)
{
	start(sched, ncpu);
	setup s;
	make(&s, arch, steps, 0);
	memset(l, 0, sizeof *l);
	l->save_at = -1;
	TG_OK_OR_FAIL(tg_trainer_run(s.tr, record, l));
	unmake(&s);
	TG_OK_OR_FAIL(tg_shutdown());
}

/* Deterministic mode: the same bits under every policy and worker count. */
static void bit_identical_across_policies_and_workers(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"};
	const char *pol[] = {"eager", "lws", "dmda", "dmdas"};
	for (int a = 0; a < 2; a++) {
		static losses ref, other;
		run_losses(archs[a], "eager", 2, 12, &ref);
		for (int p = 0; p < 5; p++) {
			run_losses(archs[a], p < 4 ? pol[p] : "lws", p < 4 ? 2 : 1, 12, &other);
			for (int i = 0; i < 12; i++)
				if (memcmp(&ref.v[i], &other.v[i], sizeof(float)) != 0)
					fail_msg("%s step %d: loss %.9g under eager with 2 workers, %.9g under %s with %d", archs[a], i,
					         (double)ref.v[i], (double)other.v[i], p < 4 ? pol[p] : "lws", p < 4 ? 2 : 1);
		}
		assert_true(ref.v[11] < ref.v[0]); /* they trained */
	}
}

/* A run stopped at a checkpoint and resumed gives the uninterrupted run's losses, bit for bit;
 * a checkpoint saved, loaded and saved again is the same bytes. */
static void resume_equals_uninterrupted(void **unused)
{
	(void)unused;
	const char *archs[] = {"gpt", "lstm"};
	for (int a = 0; a < 2; a++) {
		char ck[4200], ck2[4200];
		snprintf(ck, sizeof ck, "%s/%s-10.safetensors", tmp, archs[a]);
		snprintf(ck2, sizeof ck2, "%s/%s-10-again.safetensors", tmp, archs[a]);
		static losses whole, tail;
		start("lws", -1);
		setup s;
		make(&s, archs[a], 24, 10);
		memset(&whole, 0, sizeof whole);
		whole.save_at = 9; /* after 10 steps */
		whole.save_path = ck;
		TG_OK_OR_FAIL(tg_trainer_run(s.tr, record, &whole));
		unmake(&s);
		TG_OK_OR_FAIL(tg_shutdown());

		start("dmda", -1);
		make(&s, archs[a], 24, 0);
		TG_OK_OR_FAIL(tg_trainer_load(s.tr, ck, 1));
		assert_int_equal(tg_trainer_step(s.tr), 10);
		TG_OK_OR_FAIL(tg_trainer_save(s.tr, ck2));
		memset(&tail, 0, sizeof tail);
		tail.save_at = -1;
		TG_OK_OR_FAIL(tg_trainer_run(s.tr, record, &tail));
		unmake(&s);
		TG_OK_OR_FAIL(tg_shutdown());
		assert_int_equal(tail.first, 10);
		assert_int_equal(tail.n, 14);
		assert_memory_equal(tail.v, whole.v + 10, 14 * sizeof(float));
		/* the round trip: the same bytes */
		FILE *f1 = fopen(ck, "rb"), *f2 = fopen(ck2, "rb");
		assert_true(f1 && f2);
		int c1, c2;
		long at = 0;
		do {
			c1 = fgetc(f1);
			c2 = fgetc(f2);
			if (c1 != c2)
				fail_msg("%s and %s differ at byte %ld", ck, ck2, at);
			at++;
		} while (c1 != EOF);
		fclose(f1);
		fclose(f2);
	}
}

/* Write a copy of checkpoint src with tensor `drop` left out, `add` added (F32 (2)), and
 * tensor `change` given dtype/shape (rank 1, n). */
static void variant(const char *src, const char *dst, const char *drop, const char *add, const char *change,
                    const char *dtype, int64_t n)
{
	tg_st_file *f;
	TG_OK_OR_FAIL(tg_st_open(&f, src));
	tg_st_writer *w;
	TG_OK_OR_FAIL(tg_st_writer_new(&w));
	for (int i = 0; i < tg_st_num_metadata(f); i++) {
		const char *k, *v;
		TG_OK_OR_FAIL(tg_st_metadata_at(f, i, &k, &v));
		TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, k, v));
	}
	for (int i = 0; i < tg_st_num_tensors(f); i++) {
		tg_st_info info;
		TG_OK_OR_FAIL(tg_st_tensor_info(f, i, &info));
		if (drop && !strcmp(info.name, drop))
			continue;
		if (change && !strcmp(info.name, change)) {
			size_t es = !strcmp(dtype, "F16") ? 2 : 4;
			void *z = calloc((size_t)n, es);
			TG_OK_OR_FAIL(tg_st_writer_add(w, info.name, dtype, 1, &n, z, (size_t)n * es));
			free(z);
			continue;
		}
		TG_OK_OR_FAIL(tg_st_writer_add(w, info.name, info.dtype, info.rank, info.shape, tg_st_tensor_data(f, i),
		                               info.nbytes));
	}
	if (add) {
		float two[2] = {1, 2};
		TG_OK_OR_FAIL(tg_st_writer_add(w, add, "F32", 1, (int64_t[]){2}, two, sizeof two));
	}
	TG_OK_OR_FAIL(tg_st_writer_write(w, dst));
	tg_st_writer_free(w);
	tg_st_close(f);
}

static void expect_refused(tg_trainer *tr, const char *path, int resume, const char *needle)
{
	int rc = tg_trainer_load(tr, path, resume);
	if (rc >= 0)
		fail_msg("%s was accepted", path);
	if (!strstr(tg_last_error(), needle))
		fail_msg("loading %s: \"%s\" does not say \"%s\"", path, tg_last_error(), needle);
}

static void broken_checkpoints_are_refused(void **unused)
{
	(void)unused;
	start("lws", -1);
	setup s;
	make(&s, "gpt", 4, 0);
	char ok[4200], bad[4200];
	snprintf(ok, sizeof ok, "%s/ok.safetensors", tmp);
	snprintf(bad, sizeof bad, "%s/bad.safetensors", tmp);
	TG_OK_OR_FAIL(tg_trainer_save(s.tr, ok));
	float before[64];
	tg_tensor *wte = tg_model_param(s.m, 0);
	TG_OK_OR_FAIL(tg_tensor_to_host(tg_model_param(s.m, 2), before, 32 * sizeof(float)));
	variant(ok, bad, "transformer.h.1.mlp.c_fc.bias", NULL, NULL, NULL, 0);
	expect_refused(s.tr, bad, 0, "has no tensor 'transformer.h.1.mlp.c_fc.bias'");
	variant(ok, bad, "opt.v.transformer.ln_f.bias", NULL, NULL, NULL, 0);
	TG_OK_OR_FAIL(tg_trainer_load(s.tr, bad, 0)); /* weights only: the moments are not needed */
	expect_refused(s.tr, bad, 1, "has no tensor 'opt.v.transformer.ln_f.bias'");
	variant(ok, bad, NULL, "transformer.h.9.ln_1.weight", NULL, NULL, 0);
	expect_refused(s.tr, bad, 0, "'transformer.h.9.ln_1.weight' is not a parameter");
	variant(ok, bad, NULL, NULL, "transformer.h.0.ln_1.weight", "F32", 31);
	expect_refused(s.tr, bad, 0, "transformer.h.0.ln_1.weight");
	variant(ok, bad, NULL, NULL, "transformer.h.0.ln_1.weight", "F16", 32);
	expect_refused(s.tr, bad, 0, "F16");
	/* truncated: the safetensors reader names it */
	FILE *in = fopen(ok, "rb"), *out = fopen(bad, "wb");
	assert_true(in && out);
	for (int i = 0; i < 1000; i++)
		fputc(fgetc(in), out);
	fclose(in);
	fclose(out);
	int rc = tg_trainer_load(s.tr, bad, 0);
	assert_true(rc < 0);
	/* another model's checkpoint cannot be resumed */
	setup s2;
	make(&s2, "lstm", 4, 0);
	expect_refused(s2.tr, ok, 1, "holds a 'gpt' model, not 'lstm'");
	expect_refused(s2.tr, ok, 0, "is not a parameter of this lstm model");
	unmake(&s2);
	/* a configuration that does not fit the tensors: refused before a model is built from it */
	{
		tg_st_file *f;
		TG_OK_OR_FAIL(tg_st_open(&f, ok));
		tg_st_writer *w;
		TG_OK_OR_FAIL(tg_st_writer_new(&w));
		for (int i = 0; i < tg_st_num_metadata(f); i++) {
			const char *k, *v;
			TG_OK_OR_FAIL(tg_st_metadata_at(f, i, &k, &v));
			TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, k, !strcmp(k, "model.vocab") ? "1048576" : v));
		}
		TG_OK_OR_FAIL(tg_st_writer_write(w, bad));
		tg_st_writer_free(w);
		tg_st_close(f);
		tg_model_config mc;
		assert_int_equal(tg_model_config_read(&mc, bad), TG_EINVAL);
		assert_non_null(strstr(tg_last_error(), "has no tensor 'transformer.wte.weight'"));
		variant(ok, bad, NULL, NULL, "transformer.wte.weight", "F32", 7);
		assert_int_equal(tg_model_config_read(&mc, bad), TG_EINVAL);
		assert_non_null(strstr(tg_last_error(), "'transformer.wte.weight' does not have the shape"));
	}
	/* nothing changed through all of that */
	float after[64];
	TG_OK_OR_FAIL(tg_tensor_to_host(tg_model_param(s.m, 2), after, 32 * sizeof(float)));
	assert_memory_equal(before, after, 32 * sizeof(float));
	(void)wte;
	unmake(&s);
	TG_OK_OR_FAIL(tg_shutdown());
}

static void sampling_is_reproducible(void **unused)
{
	(void)unused;
	start("lws", -1);
	setup s;
	make(&s, "gpt", 40, 0);
	TG_OK_OR_FAIL(tg_trainer_run(s.tr, NULL, NULL));
	int32_t prompt[3] = {'T', 'h', 'e'}, a[50], b[50], c[50], g[50];
	tg_sample_config sc = {50, 0.8f, 20, 3};
	TG_OK_OR_FAIL(tg_sample(s.m, prompt, 3, &sc, a));
	TG_OK_OR_FAIL(tg_sample(s.m, prompt, 3, &sc, b));
	assert_memory_equal(a, b, sizeof a);
	sc.seed = 4;
	TG_OK_OR_FAIL(tg_sample(s.m, prompt, 3, &sc, c));
	assert_memory_not_equal(a, c, sizeof a);
	sc.temperature = 0; /* greedy: the seed does not matter */
	TG_OK_OR_FAIL(tg_sample(s.m, prompt, 3, &sc, g));
	sc.seed = 99;
	TG_OK_OR_FAIL(tg_sample(s.m, prompt, 3, &sc, c));
	assert_memory_equal(g, c, sizeof g);
	for (int i = 0; i < 50; i++)
		assert_true(a[i] >= 0 && a[i] < 256);
	prompt[1] = 300;
	assert_int_equal(tg_sample(s.m, prompt, 3, &sc, c), TG_EINVAL);
	assert_non_null(strstr(tg_last_error(), "prompt token 1 is 300"));
	unmake(&s);
	TG_OK_OR_FAIL(tg_shutdown());
}

int main(void)
{
	const char *src = getenv("TG_SRCDIR"), *build = getenv("TG_BUILDDIR");
	snprintf(text_path, sizeof text_path, "%s/../shared/data/tinyshakespeare.txt", src ? src : ".");
	struct stat st;
	if (stat(text_path, &st) != 0) {
		printf("# SKIP: no %s\n", text_path);
		return TG_TEST_SKIP;
	}
	snprintf(tmp, sizeof tmp, "%s/tests/train-tmp", build ? build : ".");
	mkdir(tmp, 0777);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(loss_falls, tg_test_teardown),
		cmocka_unit_test_teardown(bit_identical_across_policies_and_workers, tg_test_teardown),
		cmocka_unit_test_teardown(resume_equals_uninterrupted, tg_test_teardown),
		cmocka_unit_test_teardown(broken_checkpoints_are_refused, tg_test_teardown),
		cmocka_unit_test_teardown(sampling_is_reproducible, tg_test_teardown),
	};
	return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
