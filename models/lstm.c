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

/* tensor parallelism: group j of a layer owns hidden units [j H/N, (j+1) H/N): the gate
 * rows of those units (W_ih and W_hh transposed at each forward, then gathered per group into
 * one (in, 4H/N) matrix [i | f | g | o]), its own cell, and its part of h; the groups' h of a
 * step are gathered (concatenated) for the next step and the next layer. */
enum { G_WIH, G_WHH, G_BIH, G_BHH, G_XP, G_XB, G_XQ, G_HH, G_PRE, G_GATES, G_H, G_C, NGROUP };
#define G_FIRST_STEP G_XQ /* XQ .. C have parts per time step */
#define NGSTEP (NGROUP - G_FIRST_STEP)

typedef struct lstm_acts {
	tg_tensor *emb, *head;      /* (T B, C), (T B, V) before the bias */
	tg_tensor **a;              /* L * NACTS */
	tg_tensor **step;           /* L * NSTEP * T: part t of a[A_XQ + j] */
	tg_tensor **wt;             /* tensor-parallel: L * 2, W_ih^T (C, 4H) and W_hh^T (H, 4H) */
	tg_tensor **wtb;            /* L * 2 * 4N: their column blocks (gate g, group j) */
	tg_tensor **g;              /* L * N * NGROUP */
	tg_tensor **gstep;          /* L * N * NGSTEP * T */
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
	for (int i = 0; c->g && i < m->cfg.layers * m->tp * NGROUP; i++)
		tg_tensor_free(c->g[i]);
	for (int i = 0; c->wt && i < m->cfg.layers * 2; i++)
		tg_tensor_free(c->wt[i]);
	free(c->g);
	free(c->gstep);
	free(c->wt);
	free(c->wtb);
}

static tg_tensor *gstep_of(const tg_model *m, const lstm_acts *c, int layer, int j, int which, int t)
{
	return c->gstep[(((int64_t)layer * m->tp + j) * NGSTEP + (which - G_FIRST_STEP)) * m->cfg.ctx + t];
}

static int make_group_acts(const tg_model *m, lstm_acts *c, int64_t B)
{
	const int64_t T = m->cfg.ctx, C = m->cfg.dmodel, L = m->cfg.layers, N = m->tp, U = C / N;
	c->wt = calloc((size_t)(L * 2), sizeof *c->wt);
	c->wtb = calloc((size_t)(L * 2 * 4 * N), sizeof *c->wtb);
	c->g = calloc((size_t)(L * N * NGROUP), sizeof *c->g);
	c->gstep = calloc((size_t)(L * N * NGSTEP * T), sizeof *c->gstep);
	TG_CHECK(c->wt && c->wtb && c->g && c->gstep, TG_ENOMEM, "out of memory");
	static const char *names[NGROUP] = {"w_ih", "w_hh", "b_ih", "b_hh", "xp", "xp_b", "xq", "hh", "pre", "gates", "h", "c"};
	tg_block b[4 * TG_MAX_TILES];
	for (int k = 0; k < L; k++) {
		char layer[32], name[64];
		snprintf(layer, sizeof layer, "lstm.l%d", k);
		TG_TRY(tg_act_new(&c->wt[2 * k], layer, "w_ih.T", TG_SHAPE(C, 4 * C)));
		TG_TRY(tg_act_new(&c->wt[2 * k + 1], layer, "w_hh.T", TG_SHAPE(C, 4 * C)));
		for (int s = 0; s < 4; s++)
			for (int j = 0; j < N; j++)
				b[j * 4 + s] = (tg_block){0, s * C + j * U, 2, {C, U}}; /* group j's gates together */
		for (int w = 0; w < 2; w++)
			TG_TRY(tg_tensor_partition_blocks(c->wt[2 * k + w], (int)(4 * N), b, c->wtb + (2 * k + w) * 4 * N));
		for (int j = 0; j < N; j++) {
			tg_tensor **g = c->g + (k * N + j) * NGROUP;
			for (int q = 0; q < NGROUP; q++) {
				snprintf(name, sizeof name, "%s.tp%d", names[q], j);
				int64_t rows = q == G_WIH || q == G_WHH ? C : q == G_BIH || q == G_BHH ? 1 : T * B;
				int64_t w = q == G_H || q == G_C ? U : 4 * U;
				TG_TRY(tg_act_new(&g[q], layer, name, TG_SHAPE(rows, w)));
				if (q >= G_FIRST_STEP)
					TG_TRY(tg_tensor_partition(g[q], TG_SPLIT_ROWS, (int)T,
					                           c->gstep + ((k * N + j) * NGSTEP + (q - G_FIRST_STEP)) * T));
			}
		}
	}
	return 0;
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
			if (m->tp > 1 && j != A_H)
				continue; /* held by the groups; h is their gathered output */
			int64_t w = j == A_H || j == A_C ? C : 4 * C;
			TG_TRY(tg_act_new(&a[j], layer, names[j], TG_SHAPE(T * B, w)));
			if (j >= A_XQ)
				TG_TRY(tg_tensor_partition(a[j], TG_SPLIT_ROWS, (int)T, c->step + (k * NSTEP + (j - A_XQ)) * T));
		}
	}
	return m->tp > 1 ? make_group_acts(m, c, B) : 0;
}

/* Layer k split into N groups of hidden units (see make_group_acts). */
static int layer_tp(tg_model *m, lstm_acts *c, int k, tg_tensor *in)
{
	const int64_t C = m->cfg.dmodel, N = m->tp, U = C / N;
	const int T = m->cfg.ctx;
	tg_tensor **p = m->part[TG_FAMILY_PARAM], **bih, **bhh;
	tg_block b[4 * TG_MAX_TILES];
	for (int s = 0; s < 4; s++)
		for (int j = 0; j < N; j++)
			b[j * 4 + s] = (tg_block){0, s * C + j * U, 2, {1, U}};
	TG_TRY(tg_model_param_blocks(m, P_LAYER(k, B_IH), (int)(4 * N), b, &bih));
	TG_TRY(tg_model_param_blocks(m, P_LAYER(k, B_HH), (int)(4 * N), b, &bhh));
	TG_TRY(tg_transpose(c->wt[2 * k], p[P_LAYER(k, W_IH)]));
	TG_TRY(tg_transpose(c->wt[2 * k + 1], p[P_LAYER(k, W_HH)]));
	for (int j = 0; j < N; j++) {
		tg_tensor **g = c->g + (k * N + j) * NGROUP;
		TG_TRY(tg_concat_cols(g[G_WIH], 4, c->wtb + (2 * k) * 4 * N + j * 4));
		TG_TRY(tg_concat_cols(g[G_WHH], 4, c->wtb + (2 * k + 1) * 4 * N + j * 4));
		TG_TRY(tg_concat_cols(g[G_BIH], 4, bih + j * 4));
		TG_TRY(tg_concat_cols(g[G_BHH], 4, bhh + j * 4));
		TG_TRY(tg_matmul(g[G_XP], in, g[G_WIH], 0));
		TG_TRY(tg_add(g[G_XB], g[G_XP], g[G_BIH]));
		TG_TRY(tg_add(g[G_XQ], g[G_XB], g[G_BHH]));
	}
	tg_tensor *h[TG_MAX_TILES];
	for (int t = 0; t < T; t++) {
		for (int j = 0; j < N; j++) {
			tg_tensor **g = c->g + (k * N + j) * NGROUP;
			tg_tensor *pre = gstep_of(m, c, k, j, G_XQ, t);
			if (t > 0) {
				tg_tensor *hh = gstep_of(m, c, k, j, G_HH, t);
				pre = gstep_of(m, c, k, j, G_PRE, t);
				TG_TRY(tg_matmul(hh, step_of(m, c, k, A_H, t - 1), g[G_WHH], 0));
				TG_TRY(tg_add(pre, gstep_of(m, c, k, j, G_XQ, t), hh));
			}
			h[j] = gstep_of(m, c, k, j, G_H, t);
			TG_TRY(tg_lstm_cell(h[j], gstep_of(m, c, k, j, G_C, t), gstep_of(m, c, k, j, G_GATES, t), pre,
			                    t > 0 ? gstep_of(m, c, k, j, G_C, t - 1) : NULL));
		}
		TG_TRY(tg_concat_cols(step_of(m, c, k, A_H, t), (int)N, h));
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
	TG_TRY(tg_model_enter_block(m, 0));
	TG_TRY(tg_embedding(c->emb, p[P_EMB], x));
	tg_tensor *in = c->emb;
	for (int k = 0; k < L; k++) {
		tg_tensor **a = c->a + k * NACTS;
		TG_TRY(tg_model_enter_block(m, k));
		if (m->tp > 1) {
			TG_TRY(layer_tp(m, c, k, in));
			in = a[A_H];
			continue;
		}
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
	/* the block of each parameter (its pipeline stage): the embedding goes with the first
	 * layer, the head with the last */
	for (int i = 0; i < n; i++)
		sp[i].block = i == 0 ? 0 : i >= P_HEAD_W(L) ? L - 1 : (i - 1) / NLAYER;
	return tg_model_build(m, out);
}
