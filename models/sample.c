/* sample.c — text from a language model, one token at a time.
 *
 * Each new token runs the model on the last ctx tokens (a batch of one sequence, padded after
 * its end: the models are causal, so the padding does not reach the position read) and draws
 * from the logits of the last position. No cache of keys and values: a forward per token. */
#include "tg_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The token drawn from logits (V) with temperature and top_k, by the uniform number u. */
static int32_t draw(const float *logits, int V, float temperature, int top_k, float u, double *p, int *order)
{
	int best = 0;
	for (int i = 1; i < V; i++)
		if (logits[i] > logits[best])
			best = i;
	if (temperature <= 0)
		return best;
	int k = top_k > 0 && top_k < V ? top_k : V;
	for (int i = 0; i < V; i++)
		order[i] = i;
	/* the k largest first (partial selection sort; V is small) */
	for (int i = 0; i < k; i++) {
		int m = i;
		for (int j = i + 1; j < V; j++)
			if (logits[order[j]] > logits[order[m]] || (logits[order[j]] == logits[order[m]] && order[j] < order[m]))
				m = j;
		int t = order[i];
		order[i] = order[m];
		order[m] = t;
	}
	double sum = 0, top = logits[order[0]];
	for (int i = 0; i < k; i++) {
		p[i] = exp(((double)logits[order[i]] - top) / temperature);
		sum += p[i];
	}
	double x = (double)u * sum, acc = 0;
	for (int i = 0; i < k; i++) {
		acc += p[i];
		if (x < acc)
			return order[i];
	}
	return order[k - 1];
}

int tg_sample(tg_model *m, const int32_t *prompt, int nprompt, const tg_sample_config *c, int32_t *out)
{
	TG_CHECK(m && prompt && c && out, TG_EINVAL, "tg_sample: NULL argument");
	const tg_model_config *mc = tg_model_get_config(m);
	TG_CHECK(strcmp(mc->arch, "mlp") != 0, TG_EINVAL, "tg_sample: the %s model is not a language model", mc->arch);
	TG_CHECK(nprompt >= 1, TG_EINVAL, "tg_sample: the prompt is empty (give at least one token)");
	TG_CHECK(c->tokens >= 0, TG_EINVAL, "tg_sample: %d tokens", c->tokens);
	TG_CHECK(isfinite(c->temperature) && c->temperature >= 0, TG_EINVAL, "tg_sample: temperature must be >= 0, got %g",
	         (double)c->temperature);
	TG_CHECK(c->top_k >= 0, TG_EINVAL, "tg_sample: top_k must be >= 0, got %d", c->top_k);
	for (int i = 0; i < nprompt; i++)
		TG_CHECK(prompt[i] >= 0 && prompt[i] < mc->vocab, TG_EINVAL,
		         "tg_sample: prompt token %d is %d, not in [0, %d)", i, prompt[i], mc->vocab);
	const int T = mc->ctx, V = mc->vocab;
	int64_t total = (int64_t)nprompt + c->tokens;
	int32_t *seq = malloc((size_t)total * sizeof *seq), *ids = calloc((size_t)T, sizeof *ids);
	float *logits = malloc((size_t)T * V * sizeof *logits), *u = malloc(sizeof *u);
	double *p = malloc((size_t)V * sizeof *p);
	int *order = malloc((size_t)V * sizeof *order);
	tg_tensor *x = NULL, *lt = NULL;
	int rc = seq && ids && logits && u && p && order ? 0 : tg_set_error(TG_ENOMEM, "out of memory");
	if (rc == 0)
		rc = tg_model_time_major(m) ? tg_tensor_new(&x, "prompt", TG_I32, TG_SHAPE(T, 1))
		                            : tg_tensor_new(&x, "prompt", TG_I32, TG_SHAPE(1, T));
	if (rc == 0)
		rc = tg_tensor_new(&lt, "logits", TG_F32, TG_SHAPE(T, V));
	if (rc == 0)
		memcpy(seq, prompt, (size_t)nprompt * sizeof *seq);
	for (int64_t n = nprompt; rc == 0 && n < total; n++) {
		int64_t w = n < T ? n : T; /* the window: the last w tokens */
		memset(ids, 0, (size_t)T * sizeof *ids);
		memcpy(ids, seq + n - w, (size_t)w * sizeof *ids);
		rc = tg_graph_reset();
		if (rc == 0)
			rc = tg_tensor_from_host(x, ids, (size_t)T * sizeof *ids);
		if (rc == 0)
			rc = tg_model_forward(m, lt, x);
		if (rc == 0)
			rc = tg_tensor_to_host(lt, logits, (size_t)T * V * sizeof *logits);
		if (rc == 0)
			rc = tg_fill_host(u, 1, &(tg_fill){TG_FILL_UNIFORM, 0, 1, c->seed, (uint64_t)n});
		if (rc == 0)
			seq[n] = draw(logits + (w - 1) * V, V, c->temperature, c->top_k, *u, p, order);
	}
	if (rc == 0)
		memcpy(out, seq + nprompt, (size_t)c->tokens * sizeof *out);
	tg_graph_reset();
	tg_tensor_free(x);
	tg_tensor_free(lt);
	free(seq);
	free(ids);
	free(logits);
	free(u);
	free(p);
	free(order);
	return rc;
}
