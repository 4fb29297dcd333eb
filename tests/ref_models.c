/*
 * ref_models.c — the double-precision reference of ref_models.h: GPT-2 and an LSTM language
 * model, forward and backward, kernel by kernel on plain row-major arrays.
 *
 * Conventions: N = B * T positions, position n = b * T + t. Every *_fwd writes its outputs;
 * every *_bwd ADDS into its gradient outputs (the caller zeroes them first), so that a tensor
 * used in two places (GPT's wte, an LSTM's hidden state) gathers both contributions.
 */
#include "ref_models.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== shared kernels */

static void zero(double *p, size_t n)
{
	memset(p, 0, n * sizeof *p);
}

static double *alloc(size_t n)
{
	return calloc(n ? n : 1, sizeof(double));
}

/* 1 when every token in tok (n) lies in [0, V) */
static int tokens_valid(const int32_t *tok, size_t n, int V)
{
	for (size_t i = 0; i < n; i++)
		if (tok[i] < 0 || tok[i] >= V)
			return 0;
	return 1;
}

/* out (N, C) = table[tok[n]] for tok (N), table (V, C) */
static void embedding_fwd(double *out, const int32_t *tok, const double *table, int N, int C)
{
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, table + (size_t)tok[n] * C, (size_t)C * sizeof *out);
}

/* dtable (V, C) += dout (N, C) scattered to the rows tok (N) */
static void embedding_bwd(double *dtable, const double *dout, const int32_t *tok, int N, int C)
{
	for (int n = 0; n < N; n++) {
		double *row = dtable + (size_t)tok[n] * C;
		for (int i = 0; i < C; i++)
			row[i] += dout[(size_t)n * C + i];
	}
}

/* Conv1D (Hugging Face): out (N, OC) = inp (N, IC) w (IC, OC) + bias (OC; NULL: none) */
static void conv1d_fwd(double *out, const double *inp, const double *w, const double *bias, int N, int IC,
                       int OC)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + (size_t)n * IC;
		double *y = out + (size_t)n * OC;
		for (int o = 0; o < OC; o++) {
			double s = bias ? bias[o] : 0.0;
			for (int i = 0; i < IC; i++)
				s += x[i] * w[(size_t)i * OC + o];
			y[o] = s;
		}
	}
}

/* the gradients of conv1d_fwd: dinp (N, IC), dw (IC, OC), dbias (OC; NULL: none), from
 * dout (N, OC), inp (N, IC), w (IC, OC) */
static void conv1d_bwd(double *dinp, double *dw, double *dbias, const double *dout, const double *inp,
                       const double *w, int N, int IC, int OC)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + (size_t)n * IC;
		const double *dy = dout + (size_t)n * OC;
		double *dx = dinp + (size_t)n * IC;
		for (int i = 0; i < IC; i++)
			for (int o = 0; o < OC; o++) {
				dx[i] += dy[o] * w[(size_t)i * OC + o];
				dw[(size_t)i * OC + o] += x[i] * dy[o];
			}
		if (dbias)
			for (int o = 0; o < OC; o++)
				dbias[o] += dy[o];
	}
}

/* Linear (PyTorch): out (N, OC) = inp (N, IC) w^T + bias (OC; NULL: none), w (OC, IC) */
static void linear_fwd(double *out, const double *inp, const double *w, const double *bias, int N, int IC,
                       int OC)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + (size_t)n * IC;
		double *y = out + (size_t)n * OC;
		for (int o = 0; o < OC; o++) {
			const double *wrow = w + (size_t)o * IC;
			double s = bias ? bias[o] : 0.0;
			for (int i = 0; i < IC; i++)
				s += x[i] * wrow[i];
			y[o] = s;
		}
	}
}

/* the gradients of linear_fwd: dinp (N, IC), dw (OC, IC), dbias (OC; NULL: none), from
 * dout (N, OC), inp (N, IC), w (OC, IC) */
static void linear_bwd(double *dinp, double *dw, double *dbias, const double *dout, const double *inp,
                       const double *w, int N, int IC, int OC)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + (size_t)n * IC;
		const double *dy = dout + (size_t)n * OC;
		double *dx = dinp + (size_t)n * IC;
		for (int o = 0; o < OC; o++) {
			const double *wrow = w + (size_t)o * IC;
			double *dwrow = dw + (size_t)o * IC;
			for (int i = 0; i < IC; i++) {
				dx[i] += dy[o] * wrow[i];
				dwrow[i] += dy[o] * x[i];
			}
			if (dbias)
				dbias[o] += dy[o];
		}
	}
}

/*
 * Softmax cross-entropy: losses (N) = logsumexp(logits[n]) - logits[n][targets[n]], and probs
 * (N, V) = softmax(logits (N, V)). Returns the mean loss.
 */
static double crossentropy_fwd(double *losses, double *probs, const double *logits, const int32_t *targets,
                               int N, int V)
{
	double total = 0.0;
	for (int n = 0; n < N; n++) {
		const double *l = logits + (size_t)n * V;
		double *p = probs + (size_t)n * V;
		double max = l[0];
		for (int v = 1; v < V; v++)
			if (l[v] > max)
				max = l[v];
		double sum = 0.0;
		for (int v = 0; v < V; v++) {
			p[v] = exp(l[v] - max);
			sum += p[v];
		}
		for (int v = 0; v < V; v++)
			p[v] /= sum;
		losses[n] = log(sum) + max - l[targets[n]];
		total += losses[n];
	}
	return total / N;
}

/* dlogits (N, V) += dloss (the same for every position) * (probs (N, V) - onehot(targets (N))) */
static void crossentropy_bwd(double *dlogits, const double *probs, const int32_t *targets, double dloss, int N,
                             int V)
{
	for (int n = 0; n < N; n++) {
		const double *p = probs + (size_t)n * V;
		double *dl = dlogits + (size_t)n * V;
		for (int v = 0; v < V; v++)
			dl[v] += dloss * (p[v] - (v == targets[n] ? 1.0 : 0.0));
	}
}

static double sigmoid(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

/* ================================================================== GPT-2 kernels */

/* out (B, T, C) = wte[tok[b, t]] + wpe[t], tok (B, T), wte (V, C), wpe (P, C) */
static void encoder_fwd(double *out, const int32_t *tok, const double *wte, const double *wpe, int B, int T,
                        int C)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			double *o = out + ((size_t)b * T + t) * C;
			const double *we = wte + (size_t)tok[b * T + t] * C;
			const double *pe = wpe + (size_t)t * C;
			for (int i = 0; i < C; i++)
				o[i] = we[i] + pe[i];
		}
}

/* dwte (V, C) and dwpe (P, C) += the scatter of dout (B, T, C) */
static void encoder_bwd(double *dwte, double *dwpe, const double *dout, const int32_t *tok, int B, int T, int C)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			const double *d = dout + ((size_t)b * T + t) * C;
			double *dwe = dwte + (size_t)tok[b * T + t] * C;
			double *dpe = dwpe + (size_t)t * C;
			for (int i = 0; i < C; i++) {
				dwe[i] += d[i];
				dpe[i] += d[i];
			}
		}
}

#define LN_EPS 1e-5

/* out (N, C) = (inp - mean) * rstd * w (C) + b (C) over each row of inp (N, C), with the biased
 * variance; keeps mean (N) and rstd (N) = 1 / sqrt(var + eps) for the backward */
static void layernorm_fwd(double *out, double *mean, double *rstd, const double *inp, const double *w,
                          const double *b, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + (size_t)n * C;
		double *y = out + (size_t)n * C;
		double m = 0.0;
		for (int i = 0; i < C; i++)
			m += x[i];
		m /= C;
		double var = 0.0;
		for (int i = 0; i < C; i++)
			var += (x[i] - m) * (x[i] - m);
		var /= C;
		double r = 1.0 / sqrt(var + LN_EPS);
		for (int i = 0; i < C; i++)
			y[i] = (x[i] - m) * r * w[i] + b[i];
		mean[n] = m;
		rstd[n] = r;
	}
}

/*
 * The gradients of layernorm_fwd: dinp (N, C), dw (C), db (C), from dout (N, C), inp (N, C),
 * w (C), mean (N), rstd (N). With xhat = (x - mean) rstd and g = dout * w:
 * dx = rstd (g - mean(g) - xhat mean(g xhat)).
 */
static void layernorm_bwd(double *dinp, double *dw, double *db, const double *dout, const double *inp,
                          const double *w, const double *mean, const double *rstd, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const double *x = inp + (size_t)n * C;
		const double *dy = dout + (size_t)n * C;
		double *dx = dinp + (size_t)n * C;
		double g_mean = 0.0, gx_mean = 0.0;
		for (int i = 0; i < C; i++) {
			double xhat = (x[i] - mean[n]) * rstd[n];
			double g = dy[i] * w[i];
			g_mean += g;
			gx_mean += g * xhat;
			dw[i] += dy[i] * xhat;
			db[i] += dy[i];
		}
		g_mean /= C;
		gx_mean /= C;
		for (int i = 0; i < C; i++) {
			double xhat = (x[i] - mean[n]) * rstd[n];
			double g = dy[i] * w[i];
			dx[i] += rstd[n] * (g - g_mean - xhat * gx_mean);
		}
	}
}

/*
 * Causal multi-head self-attention. qkv (B, T, 3C) holds [Q | K | V]; head h uses columns
 * h*d .. (h+1)*d - 1 of each part, d = C / H. att (B, H, T, T) keeps the softmax probabilities
 * (row t: entries 0..t, zeros after); out (B, T, C) holds head h in columns h*d ...
 */
static void attention_fwd(double *out, double *att, const double *qkv, int B, int T, int C, int H)
{
	const int d = C / H;
	const double scale = 1.0 / sqrt((double)d);
	const size_t C3 = 3 * (size_t)C;
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int t = 0; t < T; t++) {
				const double *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * d;
				double *p = att + (((size_t)b * H + h) * T + t) * T;
				/* scores of the keys 0..t, then their softmax */
				double max = -INFINITY;
				for (int s = 0; s <= t; s++) {
					const double *k = qkv + ((size_t)b * T + s) * C3 + C + (size_t)h * d;
					double dot = 0.0;
					for (int i = 0; i < d; i++)
						dot += q[i] * k[i];
					p[s] = dot * scale;
					if (p[s] > max)
						max = p[s];
				}
				double sum = 0.0;
				for (int s = 0; s <= t; s++) {
					p[s] = exp(p[s] - max);
					sum += p[s];
				}
				for (int s = 0; s <= t; s++)
					p[s] /= sum;
				for (int s = t + 1; s < T; s++)
					p[s] = 0.0;
				/* the weighted sum of the values 0..t */
				double *o = out + ((size_t)b * T + t) * C + (size_t)h * d;
				for (int i = 0; i < d; i++)
					o[i] = 0.0;
				for (int s = 0; s <= t; s++) {
					const double *v = qkv + ((size_t)b * T + s) * C3 + 2 * (size_t)C + (size_t)h * d;
					for (int i = 0; i < d; i++)
						o[i] += p[s] * v[i];
				}
			}
}

/*
 * The gradient of attention_fwd: dqkv (B, T, 3C) from dout (B, T, C), qkv (B, T, 3C) and
 * att (B, H, T, T); dp is scratch (T). For one query row with probabilities p:
 * dp_s = dout . v_s, dv_s += p_s dout, dscore_s = p_s (dp_s - sum_j p_j dp_j),
 * dq += scale dscore_s k_s, dk_s += scale dscore_s q.
 */
static void attention_bwd(double *dqkv, double *dp, const double *dout, const double *qkv, const double *att,
                          int B, int T, int C, int H)
{
	const int d = C / H;
	const double scale = 1.0 / sqrt((double)d);
	const size_t C3 = 3 * (size_t)C;
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int t = 0; t < T; t++) {
				const double *p = att + (((size_t)b * H + h) * T + t) * T;
				const double *dy = dout + ((size_t)b * T + t) * C + (size_t)h * d;
				const double *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * d;
				double *dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * d;
				double pdp = 0.0; /* sum_s p_s dp_s */
				for (int s = 0; s <= t; s++) {
					const double *v = qkv + ((size_t)b * T + s) * C3 + 2 * (size_t)C + (size_t)h * d;
					double *dv = dqkv + ((size_t)b * T + s) * C3 + 2 * (size_t)C + (size_t)h * d;
					dp[s] = 0.0;
					for (int i = 0; i < d; i++) {
						dp[s] += dy[i] * v[i];
						dv[i] += p[s] * dy[i];
					}
					pdp += p[s] * dp[s];
				}
				for (int s = 0; s <= t; s++) {
					const double *k = qkv + ((size_t)b * T + s) * C3 + C + (size_t)h * d;
					double *dk = dqkv + ((size_t)b * T + s) * C3 + C + (size_t)h * d;
					double dscore = p[s] * (dp[s] - pdp) * scale;
					for (int i = 0; i < d; i++) {
						dq[i] += dscore * k[i];
						dk[i] += dscore * q[i];
					}
				}
			}
}

#define GELU_K 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_A 0.044715

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) of inp (n) */
static void gelu_fwd(double *out, const double *inp, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		double x = inp[j];
		out[j] = 0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_A * x * x * x)));
	}
}

/* dinp (n) += gelu'(inp (n)) dout (n) */
static void gelu_bwd(double *dinp, const double *dout, const double *inp, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		double x = inp[j];
		double th = tanh(GELU_K * (x + GELU_A * x * x * x));
		double du = GELU_K * (1.0 + 3.0 * GELU_A * x * x);
		double grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
		dinp[j] += grad * dout[j];
	}
}

/* out (n) = a (n) + b (n); its backward is the identity on both inputs */
static void residual_fwd(double *out, const double *a, const double *b, size_t n)
{
	for (size_t j = 0; j < n; j++)
		out[j] = a[j] + b[j];
}

/* ================================================================== GPT-2 model */

/* the offsets of a layer's 12 tensors from 2 + 12 i */
enum {
	LN1_W, LN1_B, ATTN_W, ATTN_B, ATTPROJ_W, ATTPROJ_B,
	LN2_W, LN2_B, FC_W, FC_B, FCPROJ_W, FCPROJ_B,
	GPT_LAYER_PARAMS
};

static const char *const gpt_layer_names[GPT_LAYER_PARAMS] = {
	"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
	"ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
};

static int gpt_cfg_valid(const ref_gpt_cfg *c)
{
	return c && c->V > 0 && c->C > 0 && c->L >= 0 && c->H > 0 && c->C % c->H == 0 && c->P > 0;
}

int ref_gpt_num_params(const ref_gpt_cfg *c)
{
	return 2 + GPT_LAYER_PARAMS * c->L + 2;
}

void ref_gpt_param_shape(const ref_gpt_cfg *c, int i, int *rank, int64_t shape[2])
{
	const int64_t C = c->C;
	int64_t s0 = 0, s1 = 0;
	if (i == 0) {
		s0 = c->V, s1 = C;
	} else if (i == 1) {
		s0 = c->P, s1 = C;
	} else if (i >= 2 && i < 2 + GPT_LAYER_PARAMS * c->L) {
		switch ((i - 2) % GPT_LAYER_PARAMS) {
		case ATTN_W: s0 = C, s1 = 3 * C; break;
		case ATTN_B: s0 = 3 * C; break;
		case ATTPROJ_W: s0 = C, s1 = C; break;
		case FC_W: s0 = C, s1 = 4 * C; break;
		case FC_B: s0 = 4 * C; break;
		case FCPROJ_W: s0 = 4 * C, s1 = C; break;
		default: s0 = C; break; /* the layer norms' weights and biases, ATTPROJ_B, FCPROJ_B */
		}
	} else if (i >= 2 && i < ref_gpt_num_params(c)) {
		s0 = C; /* ln_f */
	}
	*rank = s0 == 0 ? 0 : s1 == 0 ? 1 : 2;
	shape[0] = s0;
	shape[1] = s1;
}

/* appends str to buf (size), at *pos, truncating; buf stays terminated */
static void append(char *buf, size_t size, size_t *pos, const char *str)
{
	for (; *str && *pos + 1 < size; str++)
		buf[(*pos)++] = *str;
	if (size)
		buf[*pos < size ? *pos : size - 1] = '\0';
}

/* appends the decimal digits of v >= 0 */
static void append_uint(char *buf, size_t size, size_t *pos, int v)
{
	char digits[12];
	int n = sizeof digits - 1;
	digits[n] = '\0';
	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && n > 0);
	append(buf, size, pos, digits + n);
}

const char *ref_gpt_param_name(const ref_gpt_cfg *c, int i, char *buf, size_t size)
{
	size_t pos = 0;
	if (i < 0 || i >= ref_gpt_num_params(c))
		return NULL;
	if (i == 0) {
		append(buf, size, &pos, "transformer.wte.weight");
	} else if (i == 1) {
		append(buf, size, &pos, "transformer.wpe.weight");
	} else if (i < 2 + GPT_LAYER_PARAMS * c->L) {
		append(buf, size, &pos, "transformer.h.");
		append_uint(buf, size, &pos, (i - 2) / GPT_LAYER_PARAMS);
		append(buf, size, &pos, ".");
		append(buf, size, &pos, gpt_layer_names[(i - 2) % GPT_LAYER_PARAMS]);
	} else {
		append(buf, size, &pos, i == ref_gpt_num_params(c) - 2 ? "transformer.ln_f.weight" : "transformer.ln_f.bias");
	}
	return buf;
}

/* the forward activations, kept for the backward; per-layer arrays are stacked over the L layers */
typedef struct gpt_acts {
	double *encoded;                   /* (N, C) wte[tok] + wpe[t] */
	double *ln1, *ln1_mean, *ln1_rstd; /* (L, N, C), (L, N), (L, N) */
	double *qkv;                       /* (L, N, 3C) */
	double *att;                       /* (L, B, H, T, T) attention probabilities */
	double *atty;                      /* (L, N, C) attention output, before c_proj */
	double *attproj;                   /* (L, N, C) after c_proj */
	double *res2;                      /* (L, N, C) layer input + attproj */
	double *ln2, *ln2_mean, *ln2_rstd; /* (L, N, C), (L, N), (L, N) */
	double *fch;                       /* (L, N, 4C) after c_fc */
	double *fch_gelu;                  /* (L, N, 4C) after the GELU */
	double *fcproj;                    /* (L, N, C) after mlp.c_proj */
	double *res3;                      /* (L, N, C) layer output: res2 + fcproj */
	double *lnf, *lnf_mean, *lnf_rstd; /* (N, C), (N), (N) */
	double *logits;                    /* (N, V) */
	double *probs;                     /* (N, V) softmax of the logits */
	double *losses;                    /* (N) */
	double *block;                     /* the one allocation that holds them all */
	size_t N, C, att_size;             /* B T, C, B H T T: the strides of the stacks */
} gpt_acts;

/* one layer's slices of the stacked activations, shapes as in gpt_acts without the L */
typedef struct gpt_layer_acts {
	double *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *attproj, *res2;
	double *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fcproj, *res3;
} gpt_layer_acts;

static gpt_layer_acts gpt_layer(const gpt_acts *a, int l)
{
	const size_t N = a->N, NC = a->N * a->C, k = (size_t)l;
	gpt_layer_acts la = {
		.ln1 = a->ln1 + k * NC, .ln1_mean = a->ln1_mean + k * N, .ln1_rstd = a->ln1_rstd + k * N,
		.qkv = a->qkv + k * 3 * NC, .att = a->att + k * a->att_size, .atty = a->atty + k * NC,
		.attproj = a->attproj + k * NC, .res2 = a->res2 + k * NC,
		.ln2 = a->ln2 + k * NC, .ln2_mean = a->ln2_mean + k * N, .ln2_rstd = a->ln2_rstd + k * N,
		.fch = a->fch + k * 4 * NC, .fch_gelu = a->fch_gelu + k * 4 * NC,
		.fcproj = a->fcproj + k * NC, .res3 = a->res3 + k * NC,
	};
	return la;
}

/* carves every array of a out of one zeroed allocation; -1 when it fails */
static int gpt_acts_alloc(gpt_acts *a, const ref_gpt_cfg *c, int B, int T)
{
	const size_t N = (size_t)B * T, C = (size_t)c->C, L = (size_t)c->L, V = (size_t)c->V;
	const size_t att = (size_t)B * c->H * T * T;
	a->N = N, a->C = C, a->att_size = att;
	double **field[] = {
		&a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->att, &a->atty, &a->attproj,
		&a->res2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->fcproj, &a->res3,
		&a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->probs, &a->losses,
	};
	const size_t size[] = {
		N * C, L * N * C, L * N, L * N, L * N * 3 * C, L * att, L * N * C, L * N * C,
		L * N * C, L * N * C, L * N, L * N, L * N * 4 * C, L * N * 4 * C, L * N * C, L * N * C,
		N * C, N, N, N * V, N * V, N,
	};
	const size_t nfields = sizeof size / sizeof size[0];
	size_t total = 0;
	for (size_t k = 0; k < nfields; k++)
		total += size[k];
	a->block = alloc(total);
	if (!a->block)
		return -1;
	double *p = a->block;
	for (size_t k = 0; k < nfields; k++) {
		*field[k] = p;
		p += size[k];
	}
	return 0;
}

/*
 * The forward pass (logits into logits_out when not NULL), the loss when targets != NULL
 * (per position into losses_out when not NULL), and the backward into grads when grads != NULL
 * (which needs targets). Returns the mean loss (0 without targets), NAN on bad input.
 */
static double gpt_run(const ref_gpt_cfg *c, const double *const *params, double *const *grads,
                      const int32_t *inputs, const int32_t *targets, int B, int T, double *logits_out,
                      double *losses_out)
{
	if (!gpt_cfg_valid(c) || B <= 0 || T <= 0 || T > c->P || !inputs || (grads && !targets))
		return NAN;
	const int V = c->V, C = c->C, L = c->L, H = c->H, N = B * T;
	if (!tokens_valid(inputs, (size_t)N, V) || (targets && !tokens_valid(targets, (size_t)N, V)))
		return NAN;
	const size_t NC = (size_t)N * C;
	const double *wte = params[0], *wpe = params[1];
	const double *lnf_w = params[2 + GPT_LAYER_PARAMS * L], *lnf_b = params[3 + GPT_LAYER_PARAMS * L];

	gpt_acts a;
	if (gpt_acts_alloc(&a, c, B, T) < 0)
		return NAN;

	/* ---- forward */
	encoder_fwd(a.encoded, inputs, wte, wpe, B, T, C);
	for (int l = 0; l < L; l++) {
		const double *const *lp = params + 2 + GPT_LAYER_PARAMS * l;
		const double *x = l == 0 ? a.encoded : a.res3 + (l - 1) * NC; /* (N, C) the layer's input */
		gpt_layer_acts la = gpt_layer(&a, l);

		layernorm_fwd(la.ln1, la.ln1_mean, la.ln1_rstd, x, lp[LN1_W], lp[LN1_B], N, C);
		conv1d_fwd(la.qkv, la.ln1, lp[ATTN_W], lp[ATTN_B], N, C, 3 * C);
		attention_fwd(la.atty, la.att, la.qkv, B, T, C, H);
		conv1d_fwd(la.attproj, la.atty, lp[ATTPROJ_W], lp[ATTPROJ_B], N, C, C);
		residual_fwd(la.res2, x, la.attproj, NC);
		layernorm_fwd(la.ln2, la.ln2_mean, la.ln2_rstd, la.res2, lp[LN2_W], lp[LN2_B], N, C);
		conv1d_fwd(la.fch, la.ln2, lp[FC_W], lp[FC_B], N, C, 4 * C);
		gelu_fwd(la.fch_gelu, la.fch, 4 * NC);
		conv1d_fwd(la.fcproj, la.fch_gelu, lp[FCPROJ_W], lp[FCPROJ_B], N, 4 * C, C);
		residual_fwd(la.res3, la.res2, la.fcproj, NC);
	}
	const double *top = L == 0 ? a.encoded : a.res3 + (L - 1) * NC; /* (N, C) */
	layernorm_fwd(a.lnf, a.lnf_mean, a.lnf_rstd, top, lnf_w, lnf_b, N, C);
	linear_fwd(a.logits, a.lnf, wte, NULL, N, C, V); /* the head tied to wte (V, C) */
	if (logits_out)
		memcpy(logits_out, a.logits, (size_t)N * V * sizeof *logits_out);
	double loss = 0.0;
	if (targets) {
		loss = crossentropy_fwd(a.losses, a.probs, a.logits, targets, N, V);
		if (losses_out)
			memcpy(losses_out, a.losses, (size_t)N * sizeof *losses_out);
	}
	if (!grads) {
		free(a.block);
		return loss;
	}

	/* ---- backward */
	for (int i = 0; i < ref_gpt_num_params(c); i++) {
		int rank;
		int64_t shape[2];
		ref_gpt_param_shape(c, i, &rank, shape);
		zero(grads[i], (size_t)shape[0] * (size_t)(rank == 2 ? shape[1] : 1));
	}
	double *dlogits = alloc((size_t)N * V);
	double *dres = alloc(NC);      /* (N, C) the gradient of the residual stream */
	double *dln = alloc(NC);       /* (N, C) the gradient of a layer norm's output */
	double *dqkv = alloc(3 * NC);  /* (N, 3C) */
	double *datty = alloc(NC);     /* (N, C) */
	double *dfch = alloc(4 * NC);  /* (N, 4C) */
	double *dfch_gelu = alloc(4 * NC); /* (N, 4C) */
	double *dp = alloc((size_t)T); /* (T) attention scratch */
	if (dlogits && dres && dln && dqkv && datty && dfch && dfch_gelu && dp) {
		double *dwte = grads[0], *dwpe = grads[1];
		crossentropy_bwd(dlogits, a.probs, targets, 1.0 / N, N, V);
		linear_bwd(dln, dwte, NULL, dlogits, a.lnf, wte, N, C, V);
		layernorm_bwd(dres, grads[2 + GPT_LAYER_PARAMS * L], grads[3 + GPT_LAYER_PARAMS * L], dln, top, lnf_w,
		              a.lnf_mean, a.lnf_rstd, N, C);
		/* dres now holds d loss / d (output of the last layer); each layer turns it into the
		 * gradient of its input: the residual paths pass it through unchanged, and the layer
		 * norms' backward adds the branches' contributions */
		for (int l = L - 1; l >= 0; l--) {
			const double *const *lp = params + 2 + GPT_LAYER_PARAMS * l;
			double *const *lg = grads + 2 + GPT_LAYER_PARAMS * l;
			const double *x = l == 0 ? a.encoded : a.res3 + (l - 1) * NC;
			gpt_layer_acts la = gpt_layer(&a, l);

			/* res3 = res2 + mlp(ln_2(res2)) */
			zero(dfch_gelu, 4 * NC);
			conv1d_bwd(dfch_gelu, lg[FCPROJ_W], lg[FCPROJ_B], dres, la.fch_gelu, lp[FCPROJ_W], N, 4 * C, C);
			zero(dfch, 4 * NC);
			gelu_bwd(dfch, dfch_gelu, la.fch, 4 * NC);
			zero(dln, NC);
			conv1d_bwd(dln, lg[FC_W], lg[FC_B], dfch, la.ln2, lp[FC_W], N, C, 4 * C);
			layernorm_bwd(dres, lg[LN2_W], lg[LN2_B], dln, la.res2, lp[LN2_W], la.ln2_mean, la.ln2_rstd, N, C);
			/* res2 = x + c_proj(attention(c_attn(ln_1(x)))) */
			zero(datty, NC);
			conv1d_bwd(datty, lg[ATTPROJ_W], lg[ATTPROJ_B], dres, la.atty, lp[ATTPROJ_W], N, C, C);
			zero(dqkv, 3 * NC);
			attention_bwd(dqkv, dp, datty, la.qkv, la.att, B, T, C, H);
			zero(dln, NC);
			conv1d_bwd(dln, lg[ATTN_W], lg[ATTN_B], dqkv, la.ln1, lp[ATTN_W], N, C, 3 * C);
			layernorm_bwd(dres, lg[LN1_W], lg[LN1_B], dln, x, lp[LN1_W], la.ln1_mean, la.ln1_rstd, N, C);
		}
		encoder_bwd(dwte, dwpe, dres, inputs, B, T, C);
	} else {
		loss = NAN;
	}
	free(dlogits);
	free(dres);
	free(dln);
	free(dqkv);
	free(datty);
	free(dfch);
	free(dfch_gelu);
	free(dp);
	free(a.block);
	return loss;
}

double ref_gpt_step(const ref_gpt_cfg *c, const double *const *params, double *const *grads,
                    const int32_t *inputs, const int32_t *targets, int B, int T)
{
	if (!targets)
		return NAN;
	return gpt_run(c, params, grads, inputs, targets, B, T, NULL, NULL);
}

double ref_gpt_forward(const ref_gpt_cfg *c, const double *const *params, const int32_t *inputs,
                       const int32_t *targets, int B, int T, double *logits_out, double *losses_out)
{
	return gpt_run(c, params, NULL, inputs, targets, B, T, logits_out, losses_out);
}

/* ================================================================== LSTM kernels */

/*
 * One LSTM cell: from pre (4C) = x W_ih^T + b_ih + h_prev W_hh^T + b_hh and c_prev (C; NULL:
 * zeros), gates (4C) = [i | f | g | o] = [sigmoid | sigmoid | tanh | sigmoid](pre),
 * c (C) = f c_prev + i g, h (C) = o tanh(c).
 */
static void lstm_cell_fwd(double *gates, double *c, double *h, const double *pre, const double *c_prev, int C)
{
	double *i = gates, *f = gates + C, *g = gates + 2 * C, *o = gates + 3 * C;
	for (int j = 0; j < C; j++) {
		i[j] = sigmoid(pre[j]);
		f[j] = sigmoid(pre[C + j]);
		g[j] = tanh(pre[2 * C + j]);
		o[j] = sigmoid(pre[3 * C + j]);
		c[j] = f[j] * (c_prev ? c_prev[j] : 0.0) + i[j] * g[j];
		h[j] = o[j] * tanh(c[j]);
	}
}

/*
 * The backward of lstm_cell_fwd: from dh (C) and dc (C), the gradients arriving at h and c
 * (from above and from step t + 1), writes dpre (4C) and dc_prev (C), the part of c's
 * gradient that flows to step t - 1. gates (4C), c (C), c_prev (C; NULL: zeros) are the
 * forward's.
 */
static void lstm_cell_bwd(double *dpre, double *dc_prev, const double *dh, const double *dc, const double *gates,
                          const double *c, const double *c_prev, int C)
{
	const double *i = gates, *f = gates + C, *g = gates + 2 * C, *o = gates + 3 * C;
	for (int j = 0; j < C; j++) {
		double tc = tanh(c[j]);
		double dcj = dc[j] + dh[j] * o[j] * (1.0 - tc * tc); /* total d loss / d c_t */
		double di = dcj * g[j];
		double df = dcj * (c_prev ? c_prev[j] : 0.0);
		double dg = dcj * i[j];
		double d_o = dh[j] * tc;
		dpre[j] = di * i[j] * (1.0 - i[j]);
		dpre[C + j] = df * f[j] * (1.0 - f[j]);
		dpre[2 * C + j] = dg * (1.0 - g[j] * g[j]);
		dpre[3 * C + j] = d_o * o[j] * (1.0 - o[j]);
		dc_prev[j] = dcj * f[j];
	}
}

/* ================================================================== LSTM model */

enum { W_IH, W_HH, B_IH, B_HH, LSTM_LAYER_PARAMS };

static const char *const lstm_layer_names[LSTM_LAYER_PARAMS] = {
	"lstm.weight_ih_l", "lstm.weight_hh_l", "lstm.bias_ih_l", "lstm.bias_hh_l",
};

static int lstm_cfg_valid(const ref_lstm_cfg *c)
{
	return c && c->V > 0 && c->C > 0 && c->L >= 0;
}

int ref_lstm_num_params(const ref_lstm_cfg *c)
{
	return 1 + LSTM_LAYER_PARAMS * c->L + 2;
}

void ref_lstm_param_shape(const ref_lstm_cfg *c, int i, int *rank, int64_t shape[2])
{
	const int64_t C = c->C;
	int64_t s0 = 0, s1 = 0;
	if (i == 0) {
		s0 = c->V, s1 = C;
	} else if (i >= 1 && i < 1 + LSTM_LAYER_PARAMS * c->L) {
		switch ((i - 1) % LSTM_LAYER_PARAMS) {
		case W_IH:
		case W_HH: s0 = 4 * C, s1 = C; break;
		default: s0 = 4 * C; break;
		}
	} else if (i == 1 + LSTM_LAYER_PARAMS * c->L) {
		s0 = c->V, s1 = C;
	} else if (i == 2 + LSTM_LAYER_PARAMS * c->L) {
		s0 = c->V;
	}
	*rank = s0 == 0 ? 0 : s1 == 0 ? 1 : 2;
	shape[0] = s0;
	shape[1] = s1;
}

const char *ref_lstm_param_name(const ref_lstm_cfg *c, int i, char *buf, size_t size)
{
	size_t pos = 0;
	if (i < 0 || i >= ref_lstm_num_params(c))
		return NULL;
	if (i == 0) {
		append(buf, size, &pos, "embedding.weight");
	} else if (i < 1 + LSTM_LAYER_PARAMS * c->L) {
		append(buf, size, &pos, lstm_layer_names[(i - 1) % LSTM_LAYER_PARAMS]);
		append_uint(buf, size, &pos, (i - 1) / LSTM_LAYER_PARAMS);
	} else {
		append(buf, size, &pos, i == 1 + LSTM_LAYER_PARAMS * c->L ? "head.weight" : "head.bias");
	}
	return buf;
}

/* as gpt_run */
static double lstm_run(const ref_lstm_cfg *c, const double *const *params, double *const *grads,
                       const int32_t *inputs, const int32_t *targets, int B, int T, double *logits_out,
                       double *losses_out)
{
	if (!lstm_cfg_valid(c) || B <= 0 || T <= 0 || !inputs || (grads && !targets))
		return NAN;
	const int V = c->V, C = c->C, L = c->L, N = B * T;
	if (!tokens_valid(inputs, (size_t)N, V) || (targets && !tokens_valid(targets, (size_t)N, V)))
		return NAN;
	const size_t NC = (size_t)N * C;
	const double *emb = params[0];
	const double *head_w = params[1 + LSTM_LAYER_PARAMS * L], *head_b = params[2 + LSTM_LAYER_PARAMS * L];

	/* the forward activations; per-layer arrays stacked over the L layers */
	double *x0 = alloc(NC);                   /* (N, C) the embeddings */
	double *gates = alloc((size_t)L * 4 * NC); /* (L, N, 4C) i, f, g, o after their activations */
	double *cs = alloc((size_t)L * NC);        /* (L, N, C) cell states */
	double *hs = alloc((size_t)L * NC);        /* (L, N, C) hidden states */
	double *pre = alloc(4 * NC);               /* (N, 4C) scratch: the gates before activation */
	double *rec = alloc(4 * (size_t)C);        /* (4C) scratch: h_prev W_hh^T + b_hh */
	double *zeros = alloc((size_t)C);          /* (C) the initial state h = 0 */
	double *logits = alloc((size_t)N * V);     /* (N, V) */
	double *probs = alloc((size_t)N * V);      /* (N, V) */
	double *losses = alloc((size_t)N);         /* (N) */
	/* the backward's */
	double *dlogits = NULL, *dh = NULL, *dx = NULL, *dpre = NULL, *dht = NULL, *dc = NULL, *dc_prev = NULL,
	       *dh_prev = NULL;
	double loss = NAN;
	if (!x0 || !gates || !cs || !hs || !pre || !rec || !zeros || !logits || !probs || !losses)
		goto out;

	/* ---- forward */
	embedding_fwd(x0, inputs, emb, N, C);
	for (int k = 0; k < L; k++) {
		const double *const *kp = params + 1 + LSTM_LAYER_PARAMS * k;
		const double *x = k == 0 ? x0 : hs + (k - 1) * NC; /* (N, C) the layer's input */
		double *gk = gates + k * 4 * NC, *ck = cs + k * NC, *hk = hs + k * NC;
		/* the input projections of all positions at once, then the recurrence in time */
		linear_fwd(pre, x, kp[W_IH], kp[B_IH], N, C, 4 * C);
		for (int b = 0; b < B; b++)
			for (int t = 0; t < T; t++) {
				size_t n = (size_t)b * T + t;
				const double *h_prev = t == 0 ? zeros : hk + (n - 1) * C;
				const double *c_prev = t == 0 ? NULL : ck + (n - 1) * C;
				linear_fwd(rec, h_prev, kp[W_HH], kp[B_HH], 1, C, 4 * C);
				for (int j = 0; j < 4 * C; j++)
					pre[n * 4 * C + j] += rec[j];
				lstm_cell_fwd(gk + n * 4 * C, ck + n * C, hk + n * C, pre + n * 4 * C, c_prev, C);
			}
	}
	const double *top = L == 0 ? x0 : hs + (L - 1) * NC; /* (N, C) */
	linear_fwd(logits, top, head_w, head_b, N, C, V);
	if (logits_out)
		memcpy(logits_out, logits, (size_t)N * V * sizeof *logits_out);
	loss = 0.0;
	if (targets) {
		loss = crossentropy_fwd(losses, probs, logits, targets, N, V);
		if (losses_out)
			memcpy(losses_out, losses, (size_t)N * sizeof *losses_out);
	}
	if (!grads)
		goto out;

	/* ---- backward */
	for (int i = 0; i < ref_lstm_num_params(c); i++) {
		int rank;
		int64_t shape[2];
		ref_lstm_param_shape(c, i, &rank, shape);
		zero(grads[i], (size_t)shape[0] * (size_t)(rank == 2 ? shape[1] : 1));
	}
	dlogits = alloc((size_t)N * V);
	dh = alloc(NC);      /* (N, C) d loss / d (the layer's outputs h), from above */
	dx = alloc(NC);      /* (N, C) d loss / d (the layer's inputs) */
	dpre = alloc(4 * NC); /* (N, 4C) */
	dht = alloc((size_t)C); /* (C) scratch */
	dc = alloc((size_t)C);  /* (C) d loss / d c_t from step t + 1 */
	dc_prev = alloc((size_t)C);
	dh_prev = alloc((size_t)C); /* (C) d loss / d h_t from step t + 1 */
	if (!dlogits || !dh || !dx || !dpre || !dht || !dc || !dc_prev || !dh_prev) {
		loss = NAN;
		goto out;
	}
	crossentropy_bwd(dlogits, probs, targets, 1.0 / N, N, V);
	linear_bwd(dh, grads[1 + LSTM_LAYER_PARAMS * L], grads[2 + LSTM_LAYER_PARAMS * L], dlogits, top, head_w, N,
	           C, V);
	for (int k = L - 1; k >= 0; k--) {
		const double *const *kp = params + 1 + LSTM_LAYER_PARAMS * k;
		double *const *kg = grads + 1 + LSTM_LAYER_PARAMS * k;
		const double *x = k == 0 ? x0 : hs + (k - 1) * NC;
		const double *gk = gates + k * 4 * NC, *ck = cs + k * NC, *hk = hs + k * NC;
		/* backpropagation through time, each sequence from its last step */
		for (int b = 0; b < B; b++) {
			zero(dh_prev, (size_t)C);
			zero(dc, (size_t)C);
			for (int t = T - 1; t >= 0; t--) {
				size_t n = (size_t)b * T + t;
				const double *h_prev = t == 0 ? zeros : hk + (n - 1) * C;
				const double *c_prev = t == 0 ? NULL : ck + (n - 1) * C;
				for (int j = 0; j < C; j++)
					dht[j] = dh[n * C + j] + dh_prev[j];
				lstm_cell_bwd(dpre + n * 4 * C, dc_prev, dht, dc, gk + n * 4 * C, ck + n * C, c_prev, C);
				zero(dh_prev, (size_t)C);
				linear_bwd(dh_prev, kg[W_HH], kg[B_HH], dpre + n * 4 * C, h_prev, kp[W_HH], 1, C, 4 * C);
				memcpy(dc, dc_prev, (size_t)C * sizeof *dc);
			}
		}
		/* the input projections of all positions at once */
		zero(dx, NC);
		linear_bwd(dx, kg[W_IH], kg[B_IH], dpre, x, kp[W_IH], N, C, 4 * C);
		double *swap = dh;
		dh = dx;
		dx = swap;
	}
	embedding_bwd(grads[0], dh, inputs, N, C);

out:
	free(x0);
	free(gates);
	free(cs);
	free(hs);
	free(pre);
	free(rec);
	free(zeros);
	free(logits);
	free(probs);
	free(losses);
	free(dlogits);
	free(dh);
	free(dx);
	free(dpre);
	free(dht);
	free(dc);
	free(dc_prev);
	free(dh_prev);
	return loss;
}

double ref_lstm_step(const ref_lstm_cfg *c, const double *const *params, double *const *grads,
                     const int32_t *inputs, const int32_t *targets, int B, int T)
{
	if (!targets)
		return NAN;
	return lstm_run(c, params, grads, inputs, targets, B, T, NULL, NULL);
}

double ref_lstm_forward(const ref_lstm_cfg *c, const double *const *params, const int32_t *inputs,
                        const int32_t *targets, int B, int T, double *logits_out, double *losses_out)
{
	return lstm_run(c, params, NULL, inputs, targets, B, T, logits_out, losses_out);
}
