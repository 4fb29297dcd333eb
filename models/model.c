/* model.c — the generic side of models: configurations, the parameter table and its flat
 * buffers, forward dispatch, freeing. */
#include "tg_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arch {
	const char *name;
	int (*create)(tg_model **out, const tg_model_config *c);
	tg_model_config defaults;
} arch;

/*                                     vocab layers dmodel heads ctx inputs untied seed */
static const arch archs[] = {
	{"mlp", tg_mlp_create, {"mlp", 2, 2, 64, 0, 0, 2, 0, 1}},
	{"lstm", tg_lstm_create, {"lstm", 256, 2, 256, 0, 64, 0, 0, 1}},
	{"gpt", tg_gpt_create, {"gpt", 256, 4, 128, 4, 64, 0, 0, 1}},
};
#define NARCHS (int)(sizeof archs / sizeof archs[0])

const char *tg_model_arch_names(void)
{
	return "mlp, lstm, gpt";
}

static const arch *find_arch(const char *name)
{
	for (int i = 0; name && i < NARCHS; i++)
		if (strcmp(archs[i].name, name) == 0)
			return &archs[i];
	return NULL;
}

int tg_model_config_default(tg_model_config *c, const char *name)
{
	TG_CHECK(c, TG_EINVAL, "tg_model_config_default: config is NULL");
	const arch *a = find_arch(name);
	TG_CHECK(a, TG_EINVAL, "unknown model '%.64s' (available: %s)", name ? name : "(null)", tg_model_arch_names());
	*c = a->defaults;
	return 0;
}

/* Sizes: every count fits an int, every tensor StarPU's 32-bit sizes, with room to spare. */
static int check_config(const tg_model_config *c)
{
	TG_CHECK(c->vocab >= 2 && c->vocab <= (1 << 20), TG_EINVAL, "%s: vocab must be in [2, %d], got %d", c->arch,
	         1 << 20, c->vocab);
	TG_CHECK(c->layers >= 1 && c->layers <= 1024, TG_EINVAL, "%s: layers must be in [1, 1024], got %d", c->arch,
	         c->layers);
	TG_CHECK(c->dmodel >= 1 && c->dmodel <= 16384, TG_EINVAL, "%s: dmodel must be in [1, 16384], got %d", c->arch,
	         c->dmodel);
	return 0;
}

int tg_model_new(tg_model **out, const tg_model_config *c)
{
	TG_CHECK(out && c, TG_EINVAL, "tg_model_new: NULL argument");
	*out = NULL;
	const arch *a = find_arch(c->arch);
	TG_CHECK(a, TG_EINVAL, "unknown model '%.64s' (available: %s)", c->arch ? c->arch : "(null)",
	         tg_model_arch_names());
	TG_TRY(check_config(c));
	TG_CHECK(tg_is_initialized(), TG_ESTATE, "tg_model_new: the runtime is not started (tg_init)");
	tg_model_config cc = *c;
	cc.arch = a->name;
	return a->create(out, &cc);
}

int tg_model_alloc(tg_model **out, const char *name, const tg_model_config *c, int cap)
{
	tg_model *m = calloc(1, sizeof *m);
	tg_param_spec *spec = calloc((size_t)cap, sizeof *spec);
	if (!m || !spec) {
		free(m);
		free(spec);
		return tg_set_error(TG_ENOMEM, "out of memory");
	}
	m->name = name;
	m->cfg = *c;
	m->cfg.arch = name;
	m->spec = spec;
	m->tp = 1;
	m->stages = 1;
	*out = m;
	return 0;
}

void tg_param_add(tg_param_spec *spec, int *n, const char *layer, const char *name, int rank, int64_t d0, int64_t d1,
                  tg_param_init init, float a)
{
	tg_param_spec *s = &spec[(*n)++];
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->layer, sizeof s->layer, "%s", layer ? layer : "");
	s->rank = rank;
	s->shape[0] = d0;
	s->shape[1] = rank > 1 ? d1 : 1;
	s->init = init;
	s->a = a;
}

static int64_t spec_numel(const tg_param_spec *s)
{
	return s->rank > 1 ? s->shape[0] * s->shape[1] : s->shape[0];
}

/* Where each parameter sits in a family's buffer: packed in table order. */
static void family_blocks(const tg_model *m, tg_block *b)
{
	int64_t off = 0;
	for (int i = 0; i < m->nparams; i++) {
		const tg_param_spec *s = &m->spec[i];
		b[i] = (tg_block){0, off, s->rank, {s->shape[0], s->shape[1]}};
		off += spec_numel(s);
	}
}

int tg_model_grad_buffer(tg_model *m, const char *name, tg_tensor **flat, tg_tensor **parts)
{
	tg_block *b = calloc((size_t)m->nparams, sizeof *b);
	TG_CHECK(b, TG_ENOMEM, "out of memory");
	family_blocks(m, b);
	int rc = tg_tensor_new(flat, name, TG_F32, TG_SHAPE(m->nweights));
	if (rc == 0)
		rc = tg_tensor_partition_blocks(*flat, m->nparams, b, parts);
	for (int i = 0; i < m->nparams && rc == 0; i++) {
		char n[TG_PARAM_NAME + 32];
		snprintf(n, sizeof n, "%s.%s", name, m->spec[i].name);
		rc = tg_tensor_set_name(parts[i], n);
		if (rc == 0)
			rc = tg_tensor_set_layer(parts[i], m->spec[i].layer[0] ? m->spec[i].layer : NULL);
	}
	free(b);
	return rc;
}

int tg_model_check_parallel(const tg_model *m, int tp, int stages)
{
	const tg_model_config *c = &m->cfg;
	TG_CHECK(tp >= 1 && tp <= TG_MAX_TILES, TG_EINVAL, "tensor-parallel groups must be in [1, %d], got %d",
	         TG_MAX_TILES, tp);
	TG_CHECK(stages >= 1 && stages <= TG_MAX_STAGES, TG_EINVAL, "pipeline stages must be in [1, %d], got %d",
	         TG_MAX_STAGES, stages);
	int is_gpt = strcmp(m->name, "gpt") == 0, is_lstm = strcmp(m->name, "lstm") == 0;
	TG_CHECK(tp == 1 || is_gpt || is_lstm, TG_EINVAL, "the %s model has no tensor-parallel split (gpt and lstm have)",
	         m->name);
	TG_CHECK(stages == 1 || is_gpt || is_lstm, TG_EINVAL, "the %s model has no pipeline stages (gpt and lstm have)",
	         m->name);
	if (is_gpt)
		TG_CHECK(c->heads % tp == 0, TG_EINVAL,
		         "tensor-parallel %d must divide the gpt's %d heads (each group takes whole heads)", tp, c->heads);
	if (is_lstm) {
		TG_CHECK(c->dmodel % tp == 0, TG_EINVAL,
		         "tensor-parallel %d must divide the lstm's %d hidden units (each group takes as many)", tp, c->dmodel);
		TG_CHECK(tp <= 8, TG_EINVAL, "tensor-parallel %d: the lstm gathers at most 8 groups", tp);
	}
	TG_CHECK(stages <= c->layers, TG_EINVAL, "%d pipeline stages for %d layers: a stage needs at least one layer",
	         stages, c->layers);
	TG_CHECK(m->nacts == 0 || tp == m->tp, TG_ESTATE,
	         "tensor-parallel %d: this model already ran with %d (the split is set before its first forward)", tp,
	         m->tp);
	return 0;
}

int tg_model_set_parallel(tg_model *m, int tp, int stages)
{
	TG_TRY(tg_model_check_parallel(m, tp, stages));
	m->tp = tp;
	m->stages = stages;
	return 0;
}

int tg_model_param_stage(const tg_model *m, int i)
{
	return tg_model_block_stage(m, m->spec[i].block);
}

static const char *family_name[TG_NFAMILIES] = {"params", "grads", "adam.m", "adam.v"};
static const char *family_prefix[TG_NFAMILIES] = {"", "grad.", "opt.m.", "opt.v."};

static int build(tg_model *m)
{
	int64_t total = 0;
	for (int i = 0; i < m->nparams; i++) {
		int64_t n = spec_numel(&m->spec[i]);
		TG_CHECK(n >= 1 && total <= ((int64_t)1 << 31) - 1 - n, TG_EINVAL,
		         "%s: %lld weights and more: a model must have fewer than 2^31", m->name, (long long)(total + n));
		total += n;
	}
	TG_CHECK(m->nparams >= 1, TG_EINVAL, "%s: no parameters", m->name);
	TG_CHECK(m->nparams <= 4096, TG_EINVAL, "%s: %d layers make %d parameter tensors, more than the 4096 parts a buffer "
	         "can have: use fewer layers", m->name, m->cfg.layers, m->nparams);
	m->nweights = total;
	tg_block *b = calloc((size_t)m->nparams, sizeof *b);
	float *host = malloc((size_t)total * sizeof *host);
	int rc = b && host ? 0 : tg_set_error(TG_ENOMEM, "out of memory (%lld weights)", (long long)total);
	if (rc == 0)
		family_blocks(m, b);
	int64_t off = 0;
	for (int i = 0; i < m->nparams && rc == 0; i++) {
		const tg_param_spec *s = &m->spec[i];
		int64_t n = spec_numel(s);
		tg_fill f = {TG_FILL_ZEROS, 0, 0, m->cfg.seed, (uint64_t)i};
		switch (s->init) {
		case TG_INIT_ZEROS: break;
		case TG_INIT_ONES: f.kind = TG_FILL_CONSTANT; f.a = 1; break;
		case TG_INIT_NORMAL: f.kind = TG_FILL_NORMAL; f.a = 0; f.b = s->a; break;
		case TG_INIT_UNIFORM: f.kind = TG_FILL_UNIFORM; f.a = -s->a; f.b = s->a; break;
		}
		rc = tg_fill_host(host + off, n, &f);
		off += n;
	}
	for (int k = 0; k < TG_NFAMILIES && rc == 0; k++) {
		m->part[k] = calloc((size_t)m->nparams, sizeof *m->part[k]);
		if (!m->part[k]) {
			rc = tg_set_error(TG_ENOMEM, "out of memory");
			break;
		}
		if (k == TG_FAMILY_PARAM)
			rc = tg_tensor_new_from_host(&m->flat[k], family_name[k], TG_F32, TG_SHAPE(total), host,
			                             (size_t)total * sizeof *host);
		else
			rc = tg_tensor_new_filled(&m->flat[k], family_name[k], TG_F32, TG_SHAPE(total),
			                          &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0});
		if (rc == 0)
			rc = tg_tensor_partition_blocks(m->flat[k], m->nparams, b, m->part[k]);
		for (int i = 0; i < m->nparams && rc == 0; i++) {
			char name[TG_PARAM_NAME + 16];
			snprintf(name, sizeof name, "%s%s", family_prefix[k], m->spec[i].name);
			rc = tg_tensor_set_name(m->part[k][i], name);
			if (rc == 0)
				rc = tg_tensor_set_layer(m->part[k][i], m->spec[i].layer[0] ? m->spec[i].layer : NULL);
		}
	}
	for (int i = 0; i < m->nparams && rc == 0; i++) {
		tg_tensor *p = m->part[TG_FAMILY_PARAM][i];
		rc = tg_tensor_set_requires_grad(p, 1);
		if (rc == 0)
			rc = tg_tensor_set_grad(p, m->part[TG_FAMILY_GRAD][i]);
		if (rc == 0)
			rc = tg_zero_grad(p);
	}
	free(b);
	free(host);
	return rc;
}

int tg_model_forward(tg_model *m, tg_tensor *logits, tg_tensor *x)
{
	TG_CHECK(m && logits && x, TG_EINVAL, "tg_model_forward: NULL argument");
	int stage = tg_current_stage(); /* the model tags its blocks' stages; the caller's tag comes back */
	int rc = m->forward(m, logits, x);
	tg_tag_stage(stage);
	return rc;
}

int tg_model_num_params(const tg_model *m)
{
	return m ? m->nparams : 0;
}

tg_tensor *tg_model_param(const tg_model *m, int i)
{
	return m && i >= 0 && i < m->nparams ? m->part[TG_FAMILY_PARAM][i] : NULL;
}

tg_tensor *tg_model_adam_state(const tg_model *m, int i, int which)
{
	if (!m || i < 0 || i >= m->nparams || (which != 0 && which != 1))
		return NULL;
	return m->part[which ? TG_FAMILY_V : TG_FAMILY_M][i];
}

int tg_model_find_param(const tg_model *m, const char *name)
{
	for (int i = 0; m && name && i < m->nparams; i++)
		if (strcmp(m->spec[i].name, name) == 0)
			return i;
	return -1;
}

int64_t tg_model_num_weights(const tg_model *m)
{
	return m ? m->nweights : 0;
}

int tg_model_time_major(const tg_model *m)
{
	return m ? m->time_major : 0;
}

const tg_model_config *tg_model_get_config(const tg_model *m)
{
	return m ? &m->cfg : NULL;
}

const char *tg_model_name(const tg_model *m)
{
	return m ? m->name : "";
}

int tg_model_acts(tg_model *m, int64_t rows, void **set)
{
	int mb = m->act_slot;
	for (int i = 0; i < m->nacts; i++)
		if (m->acts[i].rows == rows && m->acts[i].microbatch == mb) {
			*set = m->acts[i].set;
			return 0;
		}
	TG_CHECK(m->nacts < 256, TG_ENOTSUP, "%s: more than 256 activation sets (batch sizes x micro-batches)", m->name);
	if (m->nacts == m->capacts) {
		int cap = m->capacts ? 2 * m->capacts : 4;
		struct tg_act_set *a = realloc(m->acts, (size_t)cap * sizeof *a);
		TG_CHECK(a, TG_ENOMEM, "out of memory");
		m->acts = a;
		m->capacts = cap;
	}
	void *s = calloc(1, m->act_size);
	TG_CHECK(s, TG_ENOMEM, "out of memory");
	int rc = m->make_acts(m, s, rows);
	if (rc < 0) {
		m->free_acts(m, s); /* what was made before the failure */
		free(s);
		return rc;
	}
	m->acts[m->nacts].rows = rows;
	m->acts[m->nacts].microbatch = mb;
	m->acts[m->nacts++].set = s;
	*set = s;
	return 0;
}

void tg_model_free(tg_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nacts; i++) {
		m->free_acts(m, m->acts[i].set);
		free(m->acts[i].set);
	}
	free(m->acts);
	for (int i = 0; m->pparts && i < m->nparams; i++)
		free(m->pparts[i]); /* the tensors go with their parameter */
	free(m->pparts);
	/* the gradients are parts of the gradient family: detach them before it goes */
	for (int k = 0; k < TG_NFAMILIES; k++)
		tg_tensor_free(m->flat[k]);
	for (int k = 0; k < TG_NFAMILIES; k++)
		free(m->part[k]);
	free(m->spec);
	free(m);
}

int tg_act_new(tg_tensor **out, const char *layer, const char *name, int rank, const int64_t *shape)
{
	TG_TRY(tg_tensor_new(out, name, TG_F32, rank, shape));
	return tg_tensor_set_layer(*out, layer);
}

int tg_model_block_stage(const tg_model *m, int block)
{
	int L = m->cfg.layers;
	block = block < 0 ? 0 : block >= L ? L - 1 : block;
	return m->stages > 1 ? (int)((int64_t)block * m->stages / L) : 0;
}

int tg_model_enter_block(const tg_model *m, int block)
{
	return m->stages > 1 ? tg_tag_stage(tg_model_block_stage(m, block)) : 0;
}

int tg_add_tree(tg_tensor *out, int n, tg_tensor *const *xs, tg_tensor *const *tmp)
{
	tg_tensor *cur[64];
	TG_CHECK(n >= 2 && n <= 64, TG_EINVAL, "tg_add_tree: %d terms (2 to 64)", n);
	for (int i = 0; i < n; i++)
		cur[i] = xs[i];
	int used = 0;
	while (n > 2) {
		int k = 0;
		for (int i = 0; i + 1 < n; i += 2) {
			tg_tensor *dst = tmp[used++];
			TG_TRY(tg_add(dst, cur[i], cur[i + 1]));
			cur[k++] = dst;
		}
		if (n % 2)
			cur[k++] = cur[n - 1];
		n = k;
	}
	return tg_add(out, cur[0], cur[1]);
}

int tg_model_param_blocks(tg_model *m, int i, int n, const tg_block *b, tg_tensor ***parts)
{
	if (!m->pparts) {
		m->pparts = calloc((size_t)m->nparams, sizeof *m->pparts);
		TG_CHECK(m->pparts, TG_ENOMEM, "out of memory");
	}
	if (!m->pparts[i]) {
		tg_tensor **c = calloc((size_t)n, sizeof *c);
		TG_CHECK(c, TG_ENOMEM, "out of memory");
		int rc = tg_tensor_partition_blocks(m->part[TG_FAMILY_PARAM][i], n, b, c);
		if (rc < 0) {
			free(c);
			return rc;
		}
		m->pparts[i] = c;
	}
	*parts = m->pparts[i];
	return 0;
}

int tg_model_build(tg_model *m, tg_model **out)
{
	int rc = build(m);
	if (rc < 0) {
		char msg[1024]; /* freeing may overwrite the message */
		snprintf(msg, sizeof msg, "%s", tg_last_error());
		tg_model_free(m);
		return tg_set_error(rc, "%s", msg);
	}
	*out = m;
	return 0;
}
