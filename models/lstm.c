/* lstm.c — a character LSTM language model (PyTorch nn.LSTM names and layouts, gate order
 * i, f, g, o):
 *
 *   x_t = embedding[token_t]
 *   per layer k:  pre_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh     (4H)
 *                 c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)           (h_{-1} = c_{-1} = 0)
 *   logits_t = h_t^{top} head.weight^T + head.bias
 *
 * The model is time-major: its inputs and targets are (T, B), so that the B rows of a time
 * step are contiguous. Per layer, the input projection of all T steps is one GEMM over (T B)
 * rows; the recurrence then works on the row parts of time step t (partitions: no copies).
 * Initialisation as PyTorch: LSTM weights and biases uniform in +-1/sqrt(H), the embedding
 * normal(0, 1), the head uniform in +-1/sqrt(H). */
#include "tg_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>


/* per layer, in table order */
enum { W_IH, W_HH, B_IH, B_HH, NLAYER };
#define P_EMB 0
#define P_LAYER(k, j) (1 + (k) * NLAYER + (j))
#define P_HEAD_W(L) (1 + (L) * NLAYER)
#define P_HEAD_B(L) (2 + (L) * NLAYER)

/* activations of one layer, (T B, .) each; the per-step ones split into T row parts */
enum { A_XP, A_XB, A_XQ, A_HH, A_PRE, A_GATES, A_H, A_C, NACTS };
#define NSTEP (NACTS - A_XQ) /* XQ, HH, PRE, GATES, H, C have parts per time step */

typedef struct lstm_acts {
	tg_tensor *emb, *head;      /* (T B, C), (T B, V) before the bias */
	tg_tensor **a;              /* L * NACTS */
	tg_tensor **step;           /* L * NSTEP * T: part t of a[A_XQ + j] */
} lstm_acts;

static void free_acts(const tg_model *m, void *set)
{
	lstm_acts *c = set;
	tg_tensor_free(c->emb);
	tg_tensor_free(c->head);
	for (int i = 0; c->a && i < m->cfg.layers * NACTS; i++)
		tg_tensor_free(c->a[i]);
	free(c->a);
	free(c->step);
}

static tg_tensor *step_of(const tg_model *m, const lstm_acts *c, int layer, int which, int t)
{
	return c->step[((int64_t)layer * NSTEP + (which - A_XQ)) * m->cfg.ctx + t];
}

static int make_acts(const tg_model *m, void *set, int64_t B)
{
	lstm_acts *c = set;
	const int64_t T = m->cfg.ctx, C = m->cfg.dmodel, L = m->cfg.layers, V = m->cfg.vocab;
	c->a = calloc((size_t)(L * NACTS), sizeof *c->a);
	c->step = calloc((size_t)(L * NSTEP * T), sizeof *c->step);
	TG_CHECK(c->a && c->step, TG_ENOMEM, "out of memory");
	TG_TRY(tg_act_new(&c->emb, "embedding", "emb", TG_SHAPE(T * B, C)));
	TG_TRY(tg_act_new(&c->head, "head", "head_out", TG_SHAPE(T * B, V)));
	static const char *names[NACTS] = {"xp", "xp_b", "xq", "hh", "pre", "gates", "h", "c"};
	for (int k = 0; k < L; k++) {
		char layer[32];
		snprintf(layer, sizeof layer, "lstm.l%d", k);
		tg_tensor **a = c->a + k * NACTS;
		for (int j = 0; j < NACTS; j++) {
			int64_t w = j == A_H || j == A_C ? C : 4 * C;
			TG_TRY(tg_act_new(&a[j], layer, names[j], TG_SHAPE(T * B, w)));
			if (j >= A_XQ)
				TG_TRY(tg_tensor_partition(a[j], TG_SPLIT_ROWS, (int)T, c->step + (k * NSTEP + (j - A_XQ)) * T));
		}
	}
	return 0;
}

static int lstm_forward(tg_model *m, tg_tensor *logits, tg_tensor *x)
{
	const tg_model_config *cf = &m->cfg;
	const int L = cf->layers, T = cf->ctx;
	char s[96];
	TG_CHECK(tg_tensor_dtype(x) == TG_I32 && tg_tensor_rank(x) == 2 && tg_tensor_dim(x, 0) == T, TG_ESHAPE,
	         "lstm: tokens %s must be int32 (%d, B), time-major", tg_tensor_shape_str(x, s, sizeof s), T);
	int64_t B = tg_tensor_dim(x, 1);
	TG_CHECK(tg_tensor_rows(logits) == B * T && tg_tensor_cols(logits) == cf->vocab, TG_ESHAPE,
	         "lstm: logits %s must have %lld rows of %d", tg_tensor_shape_str(logits, s, sizeof s),
	         (long long)(B * T), cf->vocab);
	lstm_acts *c = NULL;
	TG_TRY(tg_model_acts(m, B, (void **)&c));
	tg_tensor **p = m->part[TG_FAMILY_PARAM];
	TG_TRY(tg_embedding(c->emb, p[P_EMB], x));
	tg_tensor *in = c->emb;
	for (int k = 0; k < L; k++) {
		tg_tensor **a = c->a + k * NACTS;
		/* the input projection of every time step at once */
		TG_TRY(tg_matmul(a[A_XP], in, p[P_LAYER(k, W_IH)], TG_TRANS_B));
		TG_TRY(tg_add(a[A_XB], a[A_XP], p[P_LAYER(k, B_IH)]));
		TG_TRY(tg_add(a[A_XQ], a[A_XB], p[P_LAYER(k, B_HH)]));
		for (int t = 0; t < T; t++) {
			tg_tensor *pre = step_of(m, c, k, A_XQ, t);
			if (t > 0) {
				tg_tensor *hh = step_of(m, c, k, A_HH, t);
				pre = step_of(m, c, k, A_PRE, t);
				TG_TRY(tg_matmul(hh, step_of(m, c, k, A_H, t - 1), p[P_LAYER(k, W_HH)], TG_TRANS_B));
				TG_TRY(tg_add(pre, step_of(m, c, k, A_XQ, t), hh));
			}
			TG_TRY(tg_lstm_cell(step_of(m, c, k, A_H, t), step_of(m, c, k, A_C, t), step_of(m, c, k, A_GATES, t), pre,
			                    t > 0 ? step_of(m, c, k, A_C, t - 1) : NULL));
		}
		in = a[A_H];
	}
	TG_TRY(tg_matmul(c->head, in, p[P_HEAD_W(L)], TG_TRANS_B));
	return tg_add(logits, c->head, p[P_HEAD_B(L)]);
}

int tg_lstm_create(tg_model **out, const tg_model_config *c)
{
	TG_CHECK(c->ctx >= 1 && c->ctx <= 4096, TG_EINVAL, "lstm: ctx must be in [1, 4096], got %d", c->ctx);
	const int L = c->layers;
	const int64_t C = c->dmodel, V = c->vocab;
	tg_model *m;
	TG_TRY(tg_model_alloc(&m, "lstm", c, 3 + L * NLAYER));
	m->forward = lstm_forward;
	m->act_size = sizeof(lstm_acts);
	m->make_acts = make_acts;
	m->free_acts = free_acts;
	m->time_major = 1;
	const float k = 1.0f / sqrtf((float)C);
	tg_param_spec *sp = m->spec;
	int n = 0;
	tg_param_add(sp, &n, "embedding", "embedding.weight", 2, V, C, TG_INIT_NORMAL, 1.0f); /* (V, C) */
	for (int l = 0; l < L; l++) {
		char layer[32], name[TG_PARAM_NAME];
		snprintf(layer, sizeof layer, "lstm.l%d", l);
		snprintf(name, sizeof name, "lstm.weight_ih_l%d", l);
		tg_param_add(sp, &n, layer, name, 2, 4 * C, C, TG_INIT_UNIFORM, k); /* (4H, C) */
		snprintf(name, sizeof name, "lstm.weight_hh_l%d", l);
		tg_param_add(sp, &n, layer, name, 2, 4 * C, C, TG_INIT_UNIFORM, k); /* (4H, H) */
		snprintf(name, sizeof name, "lstm.bias_ih_l%d", l);
		tg_param_add(sp, &n, layer, name, 1, 4 * C, 0, TG_INIT_UNIFORM, k); /* (4H) */
		snprintf(name, sizeof name, "lstm.bias_hh_l%d", l);
		tg_param_add(sp, &n, layer, name, 1, 4 * C, 0, TG_INIT_UNIFORM, k); /* (4H) */
	}
	tg_param_add(sp, &n, "head", "head.weight", 2, V, C, TG_INIT_UNIFORM, k); /* (V, H) */
	tg_param_add(sp, &n, "head", "head.bias", 1, V, 0, TG_INIT_UNIFORM, k);   /* (V) */
	m->nparams = n;
	int rc = tg_model_build(m);
	if (rc < 0) {
		char msg[1024];
		snprintf(msg, sizeof msg, "%s", tg_last_error());
		tg_model_free(m);
		return tg_set_error(rc, "%s", msg);
	}
	*out = m;
	return 0;
}
