/* data.c — datasets the trainer pulls batches from.
 *
 * A dataset is stateless: batch `index` of a split is a function of (seed, split, index), so
 * a run resumes at any step by asking for the same index again, and every policy and worker
 * count sees the same batches.
 *
 * text: the bytes of a file are the tokens (vocabulary 256). The first 90% is the training
 * split, the rest the validation split; a sample is a window of T + 1 bytes at a position
 * drawn from Philox (seed, split, index, row): inputs are its first T bytes, targets its last T.
 * spirals: the two-spirals set (tg_data_spirals) cut into batches in a fixed order. */
#include "tg_model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tg_dataset_free(tg_dataset *d)
{
	if (d && d->free)
		d->free(d);
}

/* ------------------------------------------------------------------ text */

typedef struct text_data {
	uint8_t *bytes;
	int64_t n, ntrain;
	int T;
	uint64_t seed;
} text_data;

static void text_free(tg_dataset *d)
{
	text_data *t = d->impl;
	if (t)
		free(t->bytes);
	free(t);
	free(d);
}

static int text_batch(tg_dataset *d, int split, uint64_t index, int B, void *inputs, int32_t *targets)
{
	text_data *t = d->impl;
	TG_CHECK(split == TG_SPLIT_TRAIN || split == TG_SPLIT_VAL, TG_EINVAL, "text data: split %d (0 or 1)", split);
	int64_t first = split == TG_SPLIT_TRAIN ? 0 : t->ntrain;
	int64_t len = split == TG_SPLIT_TRAIN ? t->ntrain : t->n - t->ntrain;
	int64_t starts = len - t->T; /* windows of T + 1 bytes */
	float *u = malloc((size_t)2 * B * sizeof *u);
	TG_CHECK(u, TG_ENOMEM, "out of memory");
	/* stream: split and index; elements 2 row, 2 row + 1: a float has 24 random bits, two of
	 * them 48, so that every start of a large text can be drawn */
	int rc = tg_fill_host(u, 2 * (int64_t)B, &(tg_fill){TG_FILL_UNIFORM, 0, 1, t->seed, ((uint64_t)split << 62) ^ index});
	for (int b = 0; rc == 0 && b < B; b++) {
		double x = (double)u[2 * b] + (double)u[2 * b + 1] / 16777216.0;
		int64_t s = (int64_t)(x * (double)starts);
		s = s >= starts ? starts - 1 : s < 0 ? 0 : s;
		const uint8_t *w = t->bytes + first + s;
		int32_t *in = (int32_t *)inputs + (int64_t)b * t->T, *tg = targets + (int64_t)b * t->T;
		for (int i = 0; i < t->T; i++) {
			in[i] = w[i];
			tg[i] = w[i + 1];
		}
	}
	free(u);
	return rc;
}

int tg_dataset_text(tg_dataset **out, const char *path, int ctx, uint64_t seed)
{
	TG_CHECK(out && path, TG_EINVAL, "tg_dataset_text: NULL argument");
	*out = NULL;
	TG_CHECK(ctx >= 1 && ctx <= (1 << 24), TG_EINVAL, "text data: ctx must be in [1, %d], got %d", 1 << 24, ctx);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	TG_CHECK(fd >= 0, TG_EIO, "cannot read the text '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return tg_set_error(TG_EIO, "cannot read the text '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return tg_set_error(TG_EIO, "cannot read the text '%s': %s", path,
		                    S_ISDIR(st.st_mode) ? "it is a folder" : "it is not a regular file");
	}
	int64_t n = st.st_size;
	/* each split needs one window of ctx + 1 bytes: the validation split is the last 10% */
	int64_t need = 10 * ((int64_t)ctx + 1);
	if (n < need) {
		close(fd);
		return tg_set_error(TG_EINVAL, "the text '%s' has %lld bytes: with ctx %d it needs at least %lld (a window "
		                    "of %d bytes in its last 10%%, the validation split)", path, (long long)n, ctx,
		                    (long long)need, ctx + 1);
	}
	tg_dataset *d = calloc(1, sizeof *d);
	text_data *t = calloc(1, sizeof *t);
	uint8_t *bytes = malloc((size_t)n);
	if (!d || !t || !bytes) {
		close(fd);
		free(d);
		free(t);
		free(bytes);
		return tg_set_error(TG_ENOMEM, "out of memory (%lld bytes of text)", (long long)n);
	}
	int64_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, bytes + got, (size_t)(n - got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : 0;
			close(fd);
			free(d);
			free(t);
			free(bytes);
			return tg_set_error(TG_EIO, "cannot read the text '%s': %s", path, e ? strerror(e) : "it got shorter");
		}
		got += r;
	}
	close(fd);
	t->bytes = bytes;
	t->n = n;
	t->ntrain = n - n / 10;
	t->T = ctx;
	t->seed = seed;
	d->name = "text";
	d->input_dtype = TG_I32;
	d->input_width = ctx;
	d->target_width = ctx;
	d->vocab = 256;
	d->size[TG_SPLIT_TRAIN] = t->ntrain;
	d->size[TG_SPLIT_VAL] = n - t->ntrain;
	d->batch = text_batch;
	d->free = text_free;
	d->impl = t;
	*out = d;
	return 0;
}

/* ------------------------------------------------------------------ spirals */

typedef struct spiral_data {
	float *xy[2];
	int32_t *labels[2];
	int n[2];
} spiral_data;

static void spirals_free(tg_dataset *d)
{
	spiral_data *s = d->impl;
	for (int k = 0; s && k < 2; k++) {
		free(s->xy[k]);
		free(s->labels[k]);
	}
	free(s);
	free(d);
}

static int spirals_batch(tg_dataset *d, int split, uint64_t index, int B, void *inputs, int32_t *targets)
{
	spiral_data *s = d->impl;
	TG_CHECK(split == TG_SPLIT_TRAIN || split == TG_SPLIT_VAL, TG_EINVAL, "spirals: split %d (0 or 1)", split);
	TG_CHECK(B <= s->n[split], TG_EINVAL, "spirals: a batch of %d is larger than the %s split (%d points)", B,
	         split ? "validation" : "training", s->n[split]);
	/* batches in order, wrapping around the set */
	int64_t nb = s->n[split] / B, first = (int64_t)(index % (uint64_t)nb) * B;
	memcpy(inputs, s->xy[split] + 2 * first, (size_t)B * 2 * sizeof(float));
	memcpy(targets, s->labels[split] + first, (size_t)B * sizeof(int32_t));
	return 0;
}

int tg_dataset_spirals(tg_dataset **out, int points_per_class, float noise, uint64_t seed)
{
	TG_CHECK(out, TG_EINVAL, "tg_dataset_spirals: NULL argument");
	*out = NULL;
	TG_CHECK(points_per_class >= 1 && points_per_class <= (1 << 24), TG_EINVAL,
	         "spirals: points per class must be in [1, %d], got %d", 1 << 24, points_per_class);
	tg_dataset *d = calloc(1, sizeof *d);
	spiral_data *s = calloc(1, sizeof *s);
	if (!d || !s) {
		free(d);
		free(s);
		return tg_set_error(TG_ENOMEM, "out of memory");
	}
	d->impl = s;
	d->free = spirals_free;
	int rc = 0;
	for (int k = 0; k < 2 && rc == 0; k++) {
		/* the validation split: other points of the same spirals (another seed) */
		int per = k == TG_SPLIT_TRAIN ? points_per_class : (points_per_class + 3) / 4;
		s->n[k] = 2 * per;
		s->xy[k] = malloc((size_t)s->n[k] * 2 * sizeof(float));
		s->labels[k] = malloc((size_t)s->n[k] * sizeof(int32_t));
		rc = s->xy[k] && s->labels[k] ? 0 : tg_set_error(TG_ENOMEM, "out of memory");
		if (rc == 0)
			rc = tg_data_spirals(s->xy[k], s->labels[k], per, noise, 1.5, k ? seed ^ 0x5eed5eedULL : seed);
	}
	if (rc < 0) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", tg_last_error());
		spirals_free(d);
		return tg_set_error(rc, "%s", msg);
	}
	d->name = "spirals";
	d->input_dtype = TG_F32;
	d->input_width = 2;
	d->target_width = 1;
	d->vocab = 2;
	d->size[TG_SPLIT_TRAIN] = s->n[0];
	d->size[TG_SPLIT_VAL] = s->n[1];
	d->batch = spirals_batch;
	*out = d;
	return 0;
}
