/* mlp.c — a multilayer perceptron with `layers` hidden ReLU layers of width dmodel:
 *   logits = fc_{L+1}(relu(... relu(fc1(x))))      fc(x) = x W^T + b,  W (out, in), b (out)
 * Weights uniform in +-1/sqrt(in) ("Kaiming uniform"), biases zero. Activations are kept per
 * batch size and reused by every step; StarPU orders the reuse (a step's writes wait for the
 * previous step's reads). */
#include "tg_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>


/* The activations of one batch size, per layer: z = x W^T, h = z + b, a = relu(h). */
typedef struct mlp_acts {
	tg_tensor **z, **h, **a;
} mlp_acts;

static int nfc(const tg_model *m)
{
	return m->cfg.layers + 1;
}

static void free_acts(const tg_model *m, void *set)
{
	mlp_acts *c = set;
	for (int l = 0; l < nfc(m); l++) {
		if (c->z)
			tg_tensor_free(c->z[l]);
		if (c->h)
			tg_tensor_free(c->h[l]);
		if (c->a)
			tg_tensor_free(c->a[l]);
	}
	free(c->z);
	free(c->h);
	free(c->a);
}

static int width(const tg_model *m, int layer)
{
	return layer == nfc(m) - 1 ? m->cfg.vocab : m->cfg.dmodel;
}

static int make_acts(const tg_model *m, void *set, int64_t rows)
{
	mlp_acts *c = set;
	int n = nfc(m);
	c->z = calloc((size_t)n, sizeof *c->z);
	c->h = calloc((size_t)n, sizeof *c->h);
	c->a = calloc((size_t)n, sizeof *c->a);
	TG_CHECK(c->z && c->h && c->a, TG_ENOMEM, "out of memory");
	for (int l = 0; l < n; l++) {
		char layer[16];
		snprintf(layer, sizeof layer, "fc%d", l + 1);
		TG_TRY(tg_act_new(&c->z[l], layer, "z", TG_SHAPE(rows, width(m, l))));
		if (l < n - 1) {
			TG_TRY(tg_act_new(&c->h[l], layer, "h", TG_SHAPE(rows, width(m, l))));
			TG_TRY(tg_act_new(&c->a[l], layer, "a", TG_SHAPE(rows, width(m, l))));
		}
	}
	return 0;
}

static int mlp_forward(tg_model *m, tg_tensor *logits, tg_tensor *x)
{
	char s[96];
	TG_CHECK(tg_tensor_dtype(x) == TG_F32 && tg_tensor_cols(x) == m->cfg.inputs, TG_ESHAPE,
	         "mlp: input %s must be float32 with %d features", tg_tensor_shape_str(x, s, sizeof s), m->cfg.inputs);
	TG_CHECK(tg_tensor_rows(logits) == tg_tensor_rows(x) && tg_tensor_cols(logits) == m->cfg.vocab, TG_ESHAPE,
	         "mlp: logits %s must be (%lld, %d)", tg_tensor_shape_str(logits, s, sizeof s), (long long)tg_tensor_rows(x),
	         m->cfg.vocab);
	mlp_acts *c = NULL;
	TG_TRY(tg_model_acts(m, tg_tensor_rows(x), (void **)&c));
	tg_tensor *in = x, **p = m->part[TG_FAMILY_PARAM];
	for (int l = 0; l < nfc(m); l++) {
		tg_tensor *h = l < nfc(m) - 1 ? c->h[l] : logits;
		TG_TRY(tg_matmul(c->z[l], in, p[2 * l], TG_TRANS_B));
		TG_TRY(tg_add(h, c->z[l], p[2 * l + 1]));
		if (l < nfc(m) - 1) {
			TG_TRY(tg_relu(c->a[l], h));
			in = c->a[l];
		}
	}
	return 0;
}

int tg_mlp_create(tg_model **out, const tg_model_config *c)
{
	TG_CHECK(c->inputs >= 1 && c->inputs <= (1 << 20), TG_EINVAL, "mlp: inputs must be in [1, %d], got %d", 1 << 20,
	         c->inputs);
	tg_model *m;
	TG_TRY(tg_model_alloc(&m, "mlp", c, 2 * (c->layers + 1)));
	m->forward = mlp_forward;
	m->act_size = sizeof(mlp_acts);
	m->make_acts = make_acts;
	m->free_acts = free_acts;
	int n = 0;
	for (int l = 0; l < nfc(m); l++) {
		int fan_in = l == 0 ? c->inputs : c->dmodel;
		char layer[16], name[TG_PARAM_NAME];
		snprintf(layer, sizeof layer, "fc%d", l + 1);
		snprintf(name, sizeof name, "%s.weight", layer);
		tg_param_add(m->spec, &n, layer, name, 2, width(m, l), fan_in, TG_INIT_UNIFORM,
		             1.0f / sqrtf((float)fan_in)); /* (out, in) */
		snprintf(name, sizeof name, "%s.bias", layer);
		tg_param_add(m->spec, &n, layer, name, 1, width(m, l), 0, TG_INIT_ZEROS, 0); /* (out) */
	}
	m->nparams = n;
	return tg_model_build(m, out);
}
