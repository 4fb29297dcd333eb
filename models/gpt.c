/* gpt.c — a GPT-2 language model (Hugging Face GPT-2 names and layouts).
 *
 *   x = wte[tokens] + wpe[t]
 *   per block:  x = x + c_proj(attention(c_attn(ln_1(x))))       causal, H heads
 *               x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))       4C hidden
 *   logits = ln_f(x) wte^T          (the head is the token embedding unless untied)
 *
 * Weights are (in, out) as in GPT-2's Conv1D: y = x W + b. Initialisation as GPT-2: normal
 * weights of std 0.02, the projections into the residual stream (attn.c_proj, mlp.c_proj)
 * 0.02 / sqrt(2 L), zero biases, layer norms 1 and 0. Residual adds are fused with the next
 * layer norm (add_layernorm). Activations are kept per batch size. */
#include "tg_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define GPT_EPS 1e-5f

/* the parameters of a block, in table order */
enum { LN1_W, LN1_B, ATTN_W, ATTN_B, PROJ_W, PROJ_B, LN2_W, LN2_B, FC_W, FC_B, FCP_W, FCP_B, NBLOCK };
#define P_WTE 0
#define P_WPE 1
#define P_BLOCK(l, k) (2 + (l) * NBLOCK + (k))
#define P_LNF_W(L) (2 + (L) * NBLOCK)
#define P_LNF_B(L) (3 + (L) * NBLOCK)
#define P_HEAD(L) (4 + (L) * NBLOCK)

/* the activations of one block (B, T, .) */
enum {
	A_QKV, A_QKVB, A_ATT, A_AO, A_PROJ, A_PROJB, A_RES1, A_LN2, A_LN2M, A_LN2R, A_FC, A_GL, A_MO, A_MOB,
	A_RES2, A_LNN, A_LNNM, A_LNNR, NACTS /* RES2/LNN: the residual sum and the next layer norm (ln_1 of the next block, or ln_f) */
};

/* tensor parallelism: the activations of group j of a block (heads and MLP columns of the
 * group); the partial outputs of the two projections are summed in a tree (TMP: inner sums) */
enum { G_QKV, G_QKVB, G_ATT, G_AO, G_PROJ, G_FC, G_GL, G_MO, NGROUP };

typedef struct gpt_acts {
	tg_tensor *emb, *x0, *ln1, *ln1m, *ln1r; /* embeddings, + positions, ln_1 of block 0 */
	tg_tensor **a;                            /* L * NACTS */
	tg_tensor **g;                            /* tensor-parallel: L * N * NGROUP */
	tg_tensor **tmp;                          /* L * 2 * (N - 2) inner sums */
} gpt_acts;

static void free_acts(const tg_model *m, void *set)
{
	gpt_acts *c = set;
	tg_tensor_free(c->emb);
	tg_tensor_free(c->x0);
	tg_tensor_free(c->ln1);
	tg_tensor_free(c->ln1m);
	tg_tensor_free(c->ln1r);
	for (int i = 0; c->a && i < m->cfg.layers * NACTS; i++)
		tg_tensor_free(c->a[i]);
	free(c->a);
	for (int i = 0; c->g && i < m->cfg.layers * m->tp * NGROUP; i++)
		tg_tensor_free(c->g[i]);
	free(c->g);
	for (int i = 0; c->tmp && i < m->cfg.layers * 2 * (m->tp - 2); i++)
		tg_tensor_free(c->tmp[i]);
	free(c->tmp);
}

/* The per-group activations of a tensor-parallel block: what plain mode keeps in qkv, att,
 * fc and gelu is split by heads and columns into N groups. */
static int make_group_acts(const tg_model *m, gpt_acts *c, int64_t B)
{
	const int64_t T = m->cfg.ctx, C = m->cfg.dmodel, H = m->cfg.heads, L = m->cfg.layers, N = m->tp;
	c->g = calloc((size_t)(L * N * NGROUP), sizeof *c->g);
	c->tmp = N > 2 ? calloc((size_t)(L * 2 * (N - 2)), sizeof *c->tmp) : NULL;
	TG_CHECK(c->g && (N <= 2 || c->tmp), TG_ENOMEM, "out of memory");
	static const char *names[NGROUP] = {"qkv", "qkv_b", "att", "attn_out", "proj", "fc", "gelu", "mlp_out"};
	for (int l = 0; l < L; l++) {
		char layer[32], name[64];
		snprintf(layer, sizeof layer, "h.%d", l);
		for (int j = 0; j < N; j++) {
			tg_tensor **g = c->g + (l * N + j) * NGROUP;
			for (int k = 0; k < NGROUP; k++) {
				snprintf(name, sizeof name, "%s.tp%d", names[k], j);
				int64_t w = k == G_QKV || k == G_QKVB ? 3 * C / N : k == G_AO ? C / N
				          : k == G_FC || k == G_GL ? 4 * C / N : C;
				if (k == G_ATT)
					TG_TRY(tg_act_new(&g[k], layer, name, TG_SHAPE(B, H / N, T, T)));
				else
					TG_TRY(tg_act_new(&g[k], layer, name, TG_SHAPE(B, T, w)));
			}
		}
		for (int k = 0; k < 2 * (N - 2); k++)
			TG_TRY(tg_act_new(&c->tmp[l * 2 * (N - 2) + k], layer, k < N - 2 ? "proj.sum" : "mlp_out.sum",
			                  TG_SHAPE(B, T, C)));
	}
	return 0;
}

static int make_acts(const tg_model *m, void *set, int64_t B)
{
	gpt_acts *c = set;
	const int64_t T = m->cfg.ctx, C = m->cfg.dmodel, H = m->cfg.heads, L = m->cfg.layers;
	c->a = calloc((size_t)(L * NACTS), sizeof *c->a);
	TG_CHECK(c->a, TG_ENOMEM, "out of memory");
	TG_TRY(tg_act_new(&c->emb, "embed", "wte_out", TG_SHAPE(B, T, C)));
	TG_TRY(tg_act_new(&c->x0, "embed", "x0", TG_SHAPE(B, T, C)));
	TG_TRY(tg_act_new(&c->ln1, "h.0", "ln_1", TG_SHAPE(B, T, C)));
	TG_TRY(tg_act_new(&c->ln1m, "h.0", "ln_1.mean", TG_SHAPE(B * T)));
	TG_TRY(tg_act_new(&c->ln1r, "h.0", "ln_1.rstd", TG_SHAPE(B * T)));
	static const char *names[NACTS] = {"qkv", "qkv_b", "att", "attn_out", "proj", "proj_b", "res1", "ln_2",
	                                   "ln_2.mean", "ln_2.rstd", "fc", "gelu", "mlp_out", "mlp_out_b", "res2",
	                                   "ln_next", "ln_next.mean", "ln_next.rstd"};
	for (int l = 0; l < L; l++) {
		char layer[32];
		snprintf(layer, sizeof layer, "h.%d", l);
		tg_tensor **a = c->a + l * NACTS;
		for (int k = 0; k < NACTS; k++) {
			if (m->tp > 1 && (k == A_QKV || k == A_QKVB || k == A_ATT || k == A_AO || k == A_FC || k == A_GL))
				continue; /* held by the groups */
			int64_t w = k == A_QKV || k == A_QKVB ? 3 * C : k == A_FC || k == A_GL ? 4 * C : C;
			int rc;
			if (k == A_ATT)
				rc = tg_act_new(&a[k], layer, names[k], TG_SHAPE(B, H, T, T));
			else if (k == A_LN2M || k == A_LN2R || k == A_LNNM || k == A_LNNR)
				rc = tg_act_new(&a[k], l + 1 < L || k < A_LNNM ? layer : "ln_f", names[k], TG_SHAPE(B * T));
			else
				rc = tg_act_new(&a[k], l + 1 < L || k < A_LNN ? layer : "ln_f", names[k], TG_SHAPE(B, T, w));
			TG_TRY(rc);
		}
	}
	return m->tp > 1 ? make_group_acts(m, c, B) : 0;
}

/* Block l's attention and MLP split into N groups (Megatron): group j takes heads
 * [j H/N, (j+1) H/N) — columns j of q, k and v in c_attn — and rows j of attn.c_proj, and
 * columns j of mlp.c_fc and rows j of mlp.c_proj; each group is its own chain of tasks and
 * the partial outputs of the two projections are summed. The weights are used in place, as
 * blocks of the parameters, so their gradients land in the parameters' gradients. */
static int block_tp(tg_model *m, gpt_acts *c, int l, tg_tensor *ln)
{
	const int64_t C = m->cfg.dmodel, N = m->tp;
	const int base = P_BLOCK(l, 0);
	tg_tensor **a = c->a + l * NACTS, **attn_w, **attn_b, **proj_w, **fc_w, **fc_b, **fcp_w;
	tg_block b[3 * TG_MAX_TILES];
	for (int s = 0; s < 3; s++)
		for (int j = 0; j < N; j++)
			b[s * N + j] = (tg_block){0, s * C + j * (C / N), 2, {C, C / N}};
	TG_TRY(tg_model_param_blocks(m, base + ATTN_W, (int)(3 * N), b, &attn_w));
	for (int s = 0; s < 3 * N; s++)
		b[s] = (tg_block){0, b[s].col0, 1, {C / N, 1}};
	TG_TRY(tg_model_param_blocks(m, base + ATTN_B, (int)(3 * N), b, &attn_b));
	for (int j = 0; j < N; j++)
		b[j] = (tg_block){j * (C / N), 0, 2, {C / N, C}};
	TG_TRY(tg_model_param_blocks(m, base + PROJ_W, (int)N, b, &proj_w));
	for (int j = 0; j < N; j++)
		b[j] = (tg_block){0, j * (4 * C / N), 2, {C, 4 * C / N}};
	TG_TRY(tg_model_param_blocks(m, base + FC_W, (int)N, b, &fc_w));
	for (int j = 0; j < N; j++)
		b[j] = (tg_block){0, j * (4 * C / N), 1, {4 * C / N, 1}};
	TG_TRY(tg_model_param_blocks(m, base + FC_B, (int)N, b, &fc_b));
	for (int j = 0; j < N; j++)
		b[j] = (tg_block){j * (4 * C / N), 0, 2, {4 * C / N, C}};
	TG_TRY(tg_model_param_blocks(m, base + FCP_W, (int)N, b, &fcp_w));
	tg_tensor **w = m->part[TG_FAMILY_PARAM] + base;
	tg_tensor *partial[TG_MAX_TILES];
	for (int j = 0; j < N; j++) {
		tg_tensor **g = c->g + (l * N + j) * NGROUP, *qkv[3], *qkvb[3];
		TG_TRY(tg_tensor_partition(g[G_QKV], TG_SPLIT_COLS, 3, qkv));
		TG_TRY(tg_tensor_partition(g[G_QKVB], TG_SPLIT_COLS, 3, qkvb));
		for (int s = 0; s < 3; s++) {
			TG_TRY(tg_matmul(qkv[s], ln, attn_w[s * N + j], 0));
			TG_TRY(tg_add(qkvb[s], qkv[s], attn_b[s * N + j]));
		}
		TG_TRY(tg_attention(g[G_AO], g[G_ATT], g[G_QKVB], (int)(m->cfg.heads / N)));
		TG_TRY(tg_matmul(g[G_PROJ], g[G_AO], proj_w[j], 0));
		partial[j] = g[G_PROJ];
	}
	tg_tensor **tmp = c->tmp ? c->tmp + l * 2 * (N - 2) : NULL;
	TG_TRY(tg_add_tree(a[A_PROJ], (int)N, partial, tmp));
	TG_TRY(tg_add(a[A_PROJB], a[A_PROJ], w[PROJ_B]));
	return 0;
}

static int mlp_tp(tg_model *m, gpt_acts *c, int l)
{
	const int64_t N = m->tp;
	tg_tensor **a = c->a + l * NACTS, **fc_w = m->pparts[P_BLOCK(l, FC_W)], **fc_b = m->pparts[P_BLOCK(l, FC_B)],
	          **fcp_w = m->pparts[P_BLOCK(l, FCP_W)];
	tg_tensor *partial[TG_MAX_TILES];
	for (int j = 0; j < N; j++) {
		tg_tensor **g = c->g + (l * N + j) * NGROUP;
		TG_TRY(tg_matmul(g[G_FC], a[A_LN2], fc_w[j], 0));
		TG_TRY(tg_bias_gelu(g[G_GL], g[G_FC], fc_b[j]));
		TG_TRY(tg_matmul(g[G_MO], g[G_GL], fcp_w[j], 0));
		partial[j] = g[G_MO];
	}
	tg_tensor **tmp = c->tmp ? c->tmp + l * 2 * (N - 2) + (N - 2) : NULL;
	return tg_add_tree(a[A_MO], (int)N, partial, tmp);
}

static int gpt_forward(tg_model *m, tg_tensor *logits, tg_tensor *x)
{
	const tg_model_config *cf = &m->cfg;
	const int L = cf->layers;
	char s[96];
	TG_CHECK(tg_tensor_dtype(x) == TG_I32 && tg_tensor_rank(x) == 2 && tg_tensor_dim(x, 1) == cf->ctx, TG_ESHAPE,
	         "gpt: tokens %s must be int32 (B, %d)", tg_tensor_shape_str(x, s, sizeof s), cf->ctx);
	int64_t B = tg_tensor_dim(x, 0);
	TG_CHECK(B <= TG_MAX_TILES, TG_EINVAL, "gpt: a batch of %lld sequences; at most %d in one step", (long long)B,
	         TG_MAX_TILES);
	TG_CHECK(tg_tensor_rows(logits) == B * cf->ctx && tg_tensor_cols(logits) == cf->vocab, TG_ESHAPE,
	         "gpt: logits %s must have %lld rows of %d", tg_tensor_shape_str(logits, s, sizeof s),
	         (long long)(B * cf->ctx), cf->vocab);
	gpt_acts *c = NULL;
	TG_TRY(tg_model_acts(m, B, (void **)&c));
	tg_tensor **p = m->part[TG_FAMILY_PARAM];
	TG_TRY(tg_model_enter_block(m, 0));
	TG_TRY(tg_embedding(c->emb, p[P_WTE], x));
	TG_TRY(tg_pos_add(c->x0, c->emb, p[P_WPE], cf->ctx));
	TG_TRY(tg_layernorm(c->ln1, c->ln1m, c->ln1r, c->x0, p[P_BLOCK(0, LN1_W)], p[P_BLOCK(0, LN1_B)], GPT_EPS));
	tg_tensor *res = c->x0, *ln = c->ln1;
	for (int l = 0; l < L; l++) {
		tg_tensor **a = c->a + l * NACTS;
		tg_tensor **w = p + P_BLOCK(l, 0);
		TG_TRY(tg_model_enter_block(m, l));
		if (m->tp > 1) {
			TG_TRY(block_tp(m, c, l, ln));
		} else {
			TG_TRY(tg_matmul(a[A_QKV], ln, w[ATTN_W], 0));
			TG_TRY(tg_add(a[A_QKVB], a[A_QKV], w[ATTN_B]));
			TG_TRY(tg_attention(a[A_AO], a[A_ATT], a[A_QKVB], cf->heads));
			TG_TRY(tg_matmul(a[A_PROJ], a[A_AO], w[PROJ_W], 0));
			TG_TRY(tg_add(a[A_PROJB], a[A_PROJ], w[PROJ_B]));
		}
		TG_TRY(tg_add_layernorm(a[A_RES1], a[A_LN2], a[A_LN2M], a[A_LN2R], res, a[A_PROJB], w[LN2_W], w[LN2_B],
		                        GPT_EPS));
		if (m->tp > 1) {
			TG_TRY(mlp_tp(m, c, l));
		} else {
			TG_TRY(tg_matmul(a[A_FC], a[A_LN2], w[FC_W], 0));
			TG_TRY(tg_bias_gelu(a[A_GL], a[A_FC], w[FC_B]));
			TG_TRY(tg_matmul(a[A_MO], a[A_GL], w[FCP_W], 0));
		}
		TG_TRY(tg_add(a[A_MOB], a[A_MO], w[FCP_B]));
		tg_tensor *nw = l + 1 < L ? p[P_BLOCK(l + 1, LN1_W)] : p[P_LNF_W(L)];
		tg_tensor *nb = l + 1 < L ? p[P_BLOCK(l + 1, LN1_B)] : p[P_LNF_B(L)];
		TG_TRY(tg_add_layernorm(a[A_RES2], a[A_LNN], a[A_LNNM], a[A_LNNR], a[A_RES1], a[A_MOB], nw, nb, GPT_EPS));
		res = a[A_RES2];
		ln = a[A_LNN];
	}
	return tg_matmul(logits, ln, cf->untied ? p[P_HEAD(L)] : p[P_WTE], TG_TRANS_B);
}

int tg_gpt_create(tg_model **out, const tg_model_config *c)
{
	TG_CHECK(c->heads >= 1 && c->dmodel % c->heads == 0, TG_EINVAL,
	         "gpt: heads (%d) must divide dmodel (%d)", c->heads, c->dmodel);
	TG_CHECK(c->ctx >= 1 && c->ctx <= 65536, TG_EINVAL, "gpt: ctx must be in [1, 65536], got %d", c->ctx);
	const int L = c->layers;
	const int64_t C = c->dmodel, V = c->vocab;
	tg_model *m;
	TG_TRY(tg_model_alloc(&m, "gpt", c, 5 + L * NBLOCK));
	m->forward = gpt_forward;
	m->act_size = sizeof(gpt_acts);
	m->make_acts = make_acts;
	m->free_acts = free_acts;
	const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * (float)L);
	tg_param_spec *sp = m->spec;
	int n = 0;
	/* name                                               shape */
	tg_param_add(sp, &n, "embed", "transformer.wte.weight", 2, V, C, TG_INIT_NORMAL, std);       /* (V, C) */
	tg_param_add(sp, &n, "embed", "transformer.wpe.weight", 2, c->ctx, C, TG_INIT_NORMAL, std);  /* (T, C) */
	for (int l = 0; l < L; l++) {
		char layer[32], name[TG_PARAM_NAME];
#define BLOCK_PARAM(suffix, rank, d0, d1, init, a)                                   \
	do {                                                                          \
		snprintf(name, sizeof name, "transformer.h.%d.%s", l, suffix);            \
		tg_param_add(sp, &n, layer, name, rank, d0, d1, init, a);                 \
	} while (0)
		snprintf(layer, sizeof layer, "h.%d", l);
		BLOCK_PARAM("ln_1.weight", 1, C, 0, TG_INIT_ONES, 0);                  /* (C) */
		BLOCK_PARAM("ln_1.bias", 1, C, 0, TG_INIT_ZEROS, 0);                   /* (C) */
		BLOCK_PARAM("attn.c_attn.weight", 2, C, 3 * C, TG_INIT_NORMAL, std);   /* (C, 3C) */
		BLOCK_PARAM("attn.c_attn.bias", 1, 3 * C, 0, TG_INIT_ZEROS, 0);        /* (3C) */
		BLOCK_PARAM("attn.c_proj.weight", 2, C, C, TG_INIT_NORMAL, proj_std);  /* (C, C) */
		BLOCK_PARAM("attn.c_proj.bias", 1, C, 0, TG_INIT_ZEROS, 0);            /* (C) */
		BLOCK_PARAM("ln_2.weight", 1, C, 0, TG_INIT_ONES, 0);                  /* (C) */
		BLOCK_PARAM("ln_2.bias", 1, C, 0, TG_INIT_ZEROS, 0);                   /* (C) */
		BLOCK_PARAM("mlp.c_fc.weight", 2, C, 4 * C, TG_INIT_NORMAL, std);      /* (C, 4C) */
		BLOCK_PARAM("mlp.c_fc.bias", 1, 4 * C, 0, TG_INIT_ZEROS, 0);           /* (4C) */
		BLOCK_PARAM("mlp.c_proj.weight", 2, 4 * C, C, TG_INIT_NORMAL, proj_std); /* (4C, C) */
		BLOCK_PARAM("mlp.c_proj.bias", 1, C, 0, TG_INIT_ZEROS, 0);             /* (C) */
#undef BLOCK_PARAM
	}
	tg_param_add(sp, &n, "ln_f", "transformer.ln_f.weight", 1, C, 0, TG_INIT_ONES, 0);  /* (C) */
	tg_param_add(sp, &n, "ln_f", "transformer.ln_f.bias", 1, C, 0, TG_INIT_ZEROS, 0);   /* (C) */
	if (c->untied)
		tg_param_add(sp, &n, "lm_head", "lm_head.weight", 2, V, C, TG_INIT_NORMAL, std); /* (V, C) */
	m->nparams = n;
	/* the block of each parameter (its pipeline stage): the embeddings go with the first
	 * block, the final layer norm and the head with the last */
	for (int i = 0; i < n; i++)
		sp[i].block = i < 2 ? 0 : i >= P_LNF_W(L) ? L - 1 : (i - 2) / NBLOCK;
	return tg_model_build(m, out);
}
