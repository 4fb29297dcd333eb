/* checkpoint.c — a trainer's state in a safetensors file, and one step's gradients.
 *
 * A checkpoint holds every parameter under its name, the AdamW moments as opt.m.<name> and
 * opt.v.<name>, and in __metadata__ the model configuration (model.*), the step and the
 * run's length (train.*) and the data position (data.position: the next batch). Loading
 * checks the whole file before it changes anything. */
#include "tg_model.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define FORMAT "taskgrad-checkpoint-1"

/* The whole numbers of a model configuration, as __metadata__ keys. */
static const struct {
	const char *key;
	size_t off;
} config_keys[] = {
	{"model.vocab", offsetof(tg_model_config, vocab)},   {"model.layers", offsetof(tg_model_config, layers)},
	{"model.dmodel", offsetof(tg_model_config, dmodel)}, {"model.heads", offsetof(tg_model_config, heads)},
	{"model.ctx", offsetof(tg_model_config, ctx)},       {"model.inputs", offsetof(tg_model_config, inputs)},
	{"model.untied", offsetof(tg_model_config, untied)},
};
#define NCONFIG_KEYS (int)(sizeof config_keys / sizeof config_keys[0])

static int *config_field(tg_model_config *c, int i)
{
	return (int *)((char *)c + config_keys[i].off);
}

static int set_int(tg_st_writer *w, const char *key, long long v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", v);
	return tg_st_writer_set_metadata(w, key, buf);
}

/* The parameters (and with moments, opt.m.* and opt.v.*) of m into w. */
static int add_model(tg_st_writer *w, const tg_model *m, int moments)
{
	for (int i = 0; i < tg_model_num_params(m); i++)
		TG_TRY(tg_st_writer_add_tensor(w, m->spec[i].name, tg_model_param(m, i)));
	for (int k = 0; moments && k < 2; k++)
		for (int i = 0; i < tg_model_num_params(m); i++) {
			char name[TG_PARAM_NAME + 8];
			snprintf(name, sizeof name, "opt.%c.%s", k ? 'v' : 'm', m->spec[i].name);
			TG_TRY(tg_st_writer_add_tensor(w, name, tg_model_adam_state(m, i, k)));
		}
	return 0;
}

static int add_config(tg_st_writer *w, const tg_model *m)
{
	const tg_model_config *c = tg_model_get_config(m);
	TG_TRY(tg_st_writer_set_metadata(w, "format", FORMAT));
	TG_TRY(tg_st_writer_set_metadata(w, "model.arch", c->arch));
	tg_model_config copy = *c;
	for (int i = 0; i < NCONFIG_KEYS; i++)
		TG_TRY(set_int(w, config_keys[i].key, *config_field(&copy, i)));
	char seed[32];
	snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
	return tg_st_writer_set_metadata(w, "model.seed", seed);
}

static int set_float(tg_st_writer *w, const char *key, float v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%.9g", (double)v);
	return tg_st_writer_set_metadata(w, key, buf);
}

int tg_checkpoint_write(const tg_model *m, int step, const tg_train_config *tc, const char *path)
{
	tg_st_writer *w;
	TG_TRY(tg_st_writer_new(&w));
	int rc = add_config(w, m);
	if (rc == 0)
		rc = set_int(w, "train.step", step);
	if (rc == 0)
		rc = set_int(w, "train.steps", tc->steps);
	/* what decides the batches and the updates: a resumed run must use the same */
	if (rc == 0)
		rc = set_int(w, "train.batch", tc->batch);
	if (rc == 0)
		rc = set_int(w, "train.warmup", tc->warmup);
	if (rc == 0)
		rc = set_float(w, "train.lr", tc->lr);
	if (rc == 0)
		rc = set_float(w, "train.weight_decay", tc->weight_decay);
	if (rc == 0)
		rc = set_float(w, "train.clip", tc->clip);
	if (rc == 0)
		rc = set_float(w, "train.beta1", tc->beta1);
	if (rc == 0)
		rc = set_float(w, "train.beta2", tc->beta2);
	if (rc == 0)
		rc = set_float(w, "train.eps", tc->eps);
	if (rc == 0)
		rc = set_int(w, "data.position", step);
	if (rc == 0)
		rc = add_model(w, m, 1);
	if (rc == 0)
		rc = tg_st_writer_write(w, path);
	tg_st_writer_free(w);
	return rc;
}

/* A whole number of metadata key in [min, max]. */
static int meta_ll(const tg_st_file *f, const char *path, const char *key, long long min, long long max, long long *out)
{
	const char *v = tg_st_metadata(f, key);
	TG_CHECK(v, TG_EINVAL, "checkpoint '%s': __metadata__ has no '%s'", path, key);
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	TG_CHECK(((*v >= '0' && *v <= '9') || (*v == '-' && v[1] >= '0' && v[1] <= '9')) && !*end && !errno &&
	                 x >= min && x <= max,
	         TG_EINVAL,
	         "checkpoint '%s': __metadata__ '%s' is '%.40s', not a whole number in [%lld, %lld]", path, key, v, min, max);
	*out = x;
	return 0;
}

static int check_config_meta(const tg_st_file *f, const char *path, const tg_model *m)
{
	const tg_model_config *c = tg_model_get_config(m);
	const char *fmt = tg_st_metadata(f, "format"), *arch = tg_st_metadata(f, "model.arch");
	TG_CHECK(fmt && strcmp(fmt, FORMAT) == 0, TG_EINVAL,
	         "checkpoint '%s' was not written by taskgrad's trainer (__metadata__ format is %s%.40s%s, expected '%s'); "
	         "use it to initialise weights instead of resuming", path, fmt ? "'" : "", fmt ? fmt : "missing",
	         fmt ? "'" : "", FORMAT);
	TG_CHECK(arch && strcmp(arch, c->arch) == 0, TG_EINVAL, "checkpoint '%s' holds a '%.40s' model, not '%s'", path,
	         arch ? arch : "?", c->arch);
	tg_model_config copy = *c;
	for (int i = 0; i < NCONFIG_KEYS; i++) {
		long long v;
		TG_TRY(meta_ll(f, path, config_keys[i].key, 0, INT32_MAX, &v));
		TG_CHECK(v == *config_field(&copy, i), TG_EINVAL, "checkpoint '%s' has %s = %lld, this model %d", path,
		         config_keys[i].key, v, *config_field(&copy, i));
	}
	return 0;
}

/* Every tensor of f is one m expects: a parameter, or (allow_moments) opt.m./opt.v. of one. */
static int check_names(const tg_st_file *f, const char *path, const tg_model *m, int allow_moments)
{
	for (int i = 0; i < tg_st_num_tensors(f); i++) {
		tg_st_info info;
		TG_TRY(tg_st_tensor_info(f, i, &info));
		const char *name = info.name;
		if (allow_moments && (strncmp(name, "opt.m.", 6) == 0 || strncmp(name, "opt.v.", 6) == 0))
			name += 6;
		TG_CHECK(tg_model_find_param(m, name) >= 0, TG_EINVAL,
		         "checkpoint '%s': tensor '%.100s' is not a parameter of this %s model", path, info.name, m->name);
	}
	return 0;
}

int tg_checkpoint_read(tg_model *m, const char *path, int resume, long long *step, long long *steps)
{
	tg_st_file *f;
	TG_TRY(tg_st_open(&f, path));
	int np = tg_model_num_params(m), rc = 0;
	float *host = malloc((size_t)m->nweights * (resume ? 3 : 1) * sizeof *host);
	if (!host)
		rc = tg_set_error(TG_ENOMEM, "out of memory");
	if (rc == 0 && resume)
		rc = check_config_meta(f, path, m);
	if (rc == 0 && resume)
		rc = meta_ll(f, path, "train.step", 0, INT32_MAX, step);
	if (rc == 0 && resume)
		rc = meta_ll(f, path, "train.steps", 0, INT32_MAX, steps);
	if (rc == 0)
		rc = check_names(f, path, m, 1);
	/* everything is read and checked before anything changes */
	for (int k = 0; rc == 0 && k < (resume ? 3 : 1); k++) {
		float *dst = host + (size_t)k * (size_t)m->nweights;
		for (int i = 0; rc == 0 && i < np; i++) {
			const tg_param_spec *s = &m->spec[i];
			char name[TG_PARAM_NAME + 8];
			snprintf(name, sizeof name, "%s%s", k == 0 ? "" : k == 1 ? "opt.m." : "opt.v.", s->name);
			if (tg_st_find(f, name) < 0) {
				rc = tg_set_error(TG_EINVAL, "checkpoint '%s' has no tensor '%s'%s", path, name,
				                  k ? " (the AdamW state needed to resume)" : "");
				break;
			}
			rc = tg_st_read_f32(f, name, s->rank, s->shape, dst);
			dst += s->rank > 1 ? s->shape[0] * s->shape[1] : s->shape[0];
		}
	}
	for (int k = 0; rc == 0 && k < (resume ? 3 : 1); k++) {
		tg_tensor *flat = m->flat[k == 0 ? TG_FAMILY_PARAM : k == 1 ? TG_FAMILY_M : TG_FAMILY_V];
		rc = tg_tensor_from_host(flat, host + (size_t)k * (size_t)m->nweights, (size_t)m->nweights * sizeof *host);
	}
	free(host);
	tg_st_close(f);
	return rc;
}

int tg_grads_write(const tg_model *m, const void *inputs, const char *input_dtype, const int32_t *targets, int64_t B,
                   int64_t T, int64_t W, float loss, const char *path)
{
	tg_st_writer *w;
	TG_TRY(tg_st_writer_new(&w));
	int rc = add_config(w, m);
	if (rc == 0) /* not a checkpoint: gradients */
		rc = tg_st_writer_set_metadata(w, "format", "taskgrad-gradients-1");
	char buf[32];
	snprintf(buf, sizeof buf, "%.9g", (double)loss);
	if (rc == 0)
		rc = tg_st_writer_set_metadata(w, "loss", buf);
	for (int i = 0; rc == 0 && i < tg_model_num_params(m); i++)
		rc = tg_st_writer_add_tensor(w, m->spec[i].name, m->part[TG_FAMILY_GRAD][i]);
	if (rc == 0)
		rc = tg_st_writer_add(w, "batch.inputs", input_dtype, 2, (const int64_t[]){B, W}, inputs, (size_t)(B * W) * 4);
	if (rc == 0)
		rc = tg_st_writer_add(w, "batch.targets", "I32", 2, (const int64_t[]){B, T}, targets, (size_t)(B * T) * 4);
	if (rc == 0)
		rc = tg_st_writer_write(w, path);
	tg_st_writer_free(w);
	return rc;
}

/* Tensor name of f has shape (d0, d1) (d1 < 0: rank 1). */
static int expect_tensor(const tg_st_file *f, const char *path, const char *name, int64_t d0, int64_t d1)
{
	int i = tg_st_find(f, name);
	TG_CHECK(i >= 0, TG_EINVAL, "checkpoint '%s' has no tensor '%s', which its model configuration needs", path, name);
	tg_st_info info;
	TG_TRY(tg_st_tensor_info(f, i, &info));
	int rank = d1 < 0 ? 1 : 2;
	TG_CHECK(info.rank == rank && info.shape[0] == d0 && (rank == 1 || info.shape[1] == d1), TG_EINVAL,
	         "checkpoint '%s': tensor '%s' does not have the shape its model configuration says (%lld%s%lld)", path,
	         name, (long long)d0, rank == 2 ? ", " : "", (long long)(rank == 2 ? d1 : 0));
	return 0;
}

static int check_config_tensors(const tg_st_file *f, const char *path, const tg_model_config *c)
{
	char name[TG_PARAM_NAME];
	int64_t V = c->vocab, C = c->dmodel, L = c->layers;
	if (!strcmp(c->arch, "gpt")) {
		TG_TRY(expect_tensor(f, path, "transformer.wte.weight", V, C));
		TG_TRY(expect_tensor(f, path, "transformer.wpe.weight", c->ctx, C));
		snprintf(name, sizeof name, "transformer.h.%lld.mlp.c_fc.weight", (long long)(L - 1));
		return expect_tensor(f, path, name, C, 4 * C);
	}
	if (!strcmp(c->arch, "lstm")) {
		TG_TRY(expect_tensor(f, path, "embedding.weight", V, C));
		snprintf(name, sizeof name, "lstm.weight_hh_l%lld", (long long)(L - 1));
		return expect_tensor(f, path, name, 4 * C, C);
	}
	TG_TRY(expect_tensor(f, path, "fc1.weight", C, c->inputs));
	snprintf(name, sizeof name, "fc%lld.weight", (long long)(L + 1));
	return expect_tensor(f, path, name, V, C);
}

int tg_model_load(tg_model *m, const char *path)
{
	TG_CHECK(m && path, TG_EINVAL, "tg_model_load: NULL argument");
	TG_TRY(tg_wait_all());
	return tg_checkpoint_read(m, path, 0, NULL, NULL);
}

int tg_model_config_read(tg_model_config *c, const char *path)
{
	TG_CHECK(c && path, TG_EINVAL, "tg_model_config_read: NULL argument");
	tg_st_file *f;
	TG_TRY(tg_st_open(&f, path));
	int rc = 0;
	const char *arch = tg_st_metadata(f, "model.arch");
	if (!arch)
		rc = tg_set_error(TG_EINVAL, "checkpoint '%s' does not say which model it holds (no model.arch in "
		                  "__metadata__): give the model's flags and use it to initialise weights", path);
	if (rc == 0)
		rc = tg_model_config_default(c, arch);
	for (int i = 0; i < NCONFIG_KEYS && rc == 0; i++) {
		long long v;
		rc = meta_ll(f, path, config_keys[i].key, 0, INT32_MAX, &v);
		if (rc == 0)
			*config_field(c, i) = (int)v;
	}
	const char *seed = tg_st_metadata(f, "model.seed");
	if (rc == 0 && seed) {
		char *end;
		errno = 0;
		c->seed = strtoull(seed, &end, 10);
		if (!(*seed >= '0' && *seed <= '9') || *end || errno)
			rc = tg_set_error(TG_EINVAL, "checkpoint '%s': __metadata__ 'model.seed' is '%.40s', not a whole number",
			                  path, seed);
	}
	if (rc == 0 && c->untied != 0 && c->untied != 1)
		rc = tg_set_error(TG_EINVAL, "checkpoint '%s': __metadata__ 'model.untied' is %d, not 0 or 1", path, c->untied);
	/* the configuration must be the one of the tensors the file holds: a model is built from it
	 * before its weights are read, and its size must be the file's, not whatever it says */
	if (rc == 0)
		rc = check_config_tensors(f, path, c);
	tg_st_close(f);
	return rc;
}
