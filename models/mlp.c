/* mlp.c — a multilayer perceptron with two hidden ReLU layers:
 *   logits = fc3(relu(fc2(relu(fc1(x)))))     fc(x) = x W^T + b,  W (out, in), b (out)
 * Activations are allocated once per batch size and reused by every step; StarPU orders the
 * reuse (a step's writes wait for the previous step's reads). */
#include "tg_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MLP_LAYERS 3
#define MLP_CACHES 4

/* The activations of one batch size:  z = x W^T, h = z + b, a = relu(h). */
typedef struct mlp_acts {
	int64_t rows;
	tg_tensor *z[MLP_LAYERS], *h[MLP_LAYERS - 1], *a[MLP_LAYERS - 1];
} mlp_acts;

typedef struct mlp {
	int in, hidden, classes;
	mlp_acts cache[MLP_CACHES];
	int ncache;
} mlp;

static const char *layer_name[MLP_LAYERS] = {"fc1", "fc2", "fc3"};

static void free_acts(mlp_acts *c)
{
	for (int l = 0; l < MLP_LAYERS; l++)
		tg_tensor_free(c->z[l]);
	for (int l = 0; l < MLP_LAYERS - 1; l++) {
		tg_tensor_free(c->h[l]);
		tg_tensor_free(c->a[l]);
	}
}

static void mlp_destroy(tg_model *m)
{
	mlp *p = m->impl;
	for (int i = 0; i < p->ncache; i++)
		free_acts(&p->cache[i]);
	free(p);
}

static int width(const mlp *p, int layer)
{
	return layer == MLP_LAYERS - 1 ? p->classes : p->hidden;
}

static int get_acts(mlp *p, int64_t rows, mlp_acts **out)
{
	for (int i = 0; i < p->ncache; i++)
		if (p->cache[i].rows == rows) {
			*out = &p->cache[i];
			return 0;
		}
	TG_CHECK(p->ncache < MLP_CACHES, TG_ENOTSUP, "mlp: more than %d different batch sizes", MLP_CACHES);
	mlp_acts *c = &p->cache[p->ncache];
	c->rows = rows;
	int rc = 0;
	char name[64];
	for (int l = 0; l < MLP_LAYERS && rc == 0; l++) {
		TG_TRY(tg_tag_layer(layer_name[l]));
		snprintf(name, sizeof name, "%s.z", layer_name[l]);
		rc = tg_tensor_new(&c->z[l], name, TG_F32, TG_SHAPE(rows, width(p, l)));
		if (rc == 0 && l < MLP_LAYERS - 1) {
			snprintf(name, sizeof name, "%s.h", layer_name[l]);
			rc = tg_tensor_new(&c->h[l], name, TG_F32, TG_SHAPE(rows, width(p, l)));
			snprintf(name, sizeof name, "%s.a", layer_name[l]);
			if (rc == 0)
				rc = tg_tensor_new(&c->a[l], name, TG_F32, TG_SHAPE(rows, width(p, l)));
		}
	}
	tg_tag_layer(NULL);
	if (rc < 0) {
		free_acts(c);
		return rc;
	}
	p->ncache++;
	*out = c;
	return 0;
}

static int mlp_forward(tg_model *m, tg_tensor *logits, tg_tensor *x)
{
	mlp *p = m->impl;
	char s[96];
	TG_CHECK(tg_tensor_cols(x) == p->in, TG_ESHAPE, "mlp: input %s has %lld features, the model takes %d",
	         tg_tensor_shape_str(x, s, sizeof s), (long long)tg_tensor_cols(x), p->in);
	TG_CHECK(tg_tensor_rows(logits) == tg_tensor_rows(x) && tg_tensor_cols(logits) == p->classes, TG_ESHAPE,
	         "mlp: logits %s must be (%lld, %d)", tg_tensor_shape_str(logits, s, sizeof s), (long long)tg_tensor_rows(x),
	         p->classes);
	mlp_acts *c = NULL;
	TG_TRY(get_acts(p, tg_tensor_rows(x), &c));
	tg_tensor *in = x;
	int rc = 0;
	for (int l = 0; l < MLP_LAYERS && rc == 0; l++) {
		tg_tensor *w = m->params[2 * l], *b = m->params[2 * l + 1];
		tg_tensor *h = l < MLP_LAYERS - 1 ? c->h[l] : logits;
		rc = tg_tag_layer(layer_name[l]);
		if (rc == 0)
			rc = tg_matmul(c->z[l], in, w, TG_TRANS_B);
		if (rc == 0)
			rc = tg_add(h, c->z[l], b);
		if (rc == 0 && l < MLP_LAYERS - 1) {
			rc = tg_relu(c->a[l], h);
			in = c->a[l];
		}
	}
	tg_tag_layer(NULL);
	return rc;
}

int tg_mlp_new(tg_model **out, int in, int hidden, int classes, uint64_t seed)
{
	TG_CHECK(out, TG_EINVAL, "tg_mlp_new: out is NULL");
	*out = NULL;
	TG_CHECK(in >= 1 && hidden >= 1 && classes >= 1, TG_EINVAL,
	         "mlp: sizes must be >= 1 (in %d, hidden %d, classes %d)", in, hidden, classes);
	tg_model *m = calloc(1, sizeof *m);
	mlp *p = calloc(1, sizeof *p);
	tg_tensor **params = calloc(2 * MLP_LAYERS, sizeof *params);
	if (!m || !p || !params) {
		free(m);
		free(p);
		free(params);
		return tg_set_error(TG_ENOMEM, "out of memory");
	}
	p->in = in;
	p->hidden = hidden;
	p->classes = classes;
	m->name = "mlp";
	m->impl = p;
	m->params = params;
	m->forward = mlp_forward;
	m->destroy = mlp_destroy;
	int rc = 0;
	for (int l = 0; l < MLP_LAYERS && rc == 0; l++) {
		int fan_in = l == 0 ? in : hidden, fan_out = width(p, l);
		float bound = 1.0f / sqrtf((float)fan_in);
		char name[64];
		rc = tg_tag_layer(layer_name[l]);
		snprintf(name, sizeof name, "%s.weight", layer_name[l]);
		if (rc == 0)
			rc = tg_tensor_new_filled(&params[2 * l], name, TG_F32, TG_SHAPE(fan_out, fan_in),
			                          &(tg_fill){TG_FILL_UNIFORM, -bound, bound, seed, (uint64_t)(2 * l)});
		if (rc == 0)
			m->nparams++;
		snprintf(name, sizeof name, "%s.bias", layer_name[l]);
		if (rc == 0)
			rc = tg_tensor_new_filled(&params[2 * l + 1], name, TG_F32, TG_SHAPE(fan_out),
			                          &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0});
		if (rc == 0)
			m->nparams++;
		if (rc == 0)
			rc = tg_tensor_set_requires_grad(params[2 * l], 1);
		if (rc == 0)
			rc = tg_tensor_set_requires_grad(params[2 * l + 1], 1);
	}
	tg_tag_layer(NULL);
	if (rc < 0) {
		char msg[1024];
		snprintf(msg, sizeof msg, "%s", tg_last_error());
		tg_model_free(m);
		return tg_set_error(rc, "%s", msg);
	}
	*out = m;
	return 0;
}
