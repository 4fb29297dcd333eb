/* trainer.c — the generic training loop: any model, any dataset, AdamW with warm-up and
 * cosine decay, clipping, validation, step callbacks.
 *
 * A step is submitted whole — batch upload, forward, loss, backward, clipping, one AdamW task
 * per parameter (each can start as soon as its gradient is done), and on evaluation steps the
 * validation forwards — before the host reads anything. Then the host reads the loss of the
 * previous step, which is done or nearly so, while this one runs: two loss tensors (and two
 * batch tensors) alternate. */
#include "tg_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVAL_BATCHES 64
#define MAX_MB 64

/* A batch on the device: the whole, and its micro-batches (row parts; the whole when M = 1),
 * each with its loss and the gradient its backward starts from (1/M: the step's loss is the
 * mean over the batch). */
typedef struct batch_set {
	tg_tensor *in, *tgt;
	tg_tensor *in_mb[MAX_MB], *tgt_mb[MAX_MB];
	tg_tensor *loss[MAX_MB], *dout[MAX_MB];
} batch_set;

struct tg_trainer {
	tg_model *model;
	tg_dataset *data;
	tg_train_config cfg;
	int step;                 /* steps done (updates applied) */
	int64_t B, T;             /* samples per batch, targets per sample */
	int M;                    /* micro-batches */
	batch_set train[2];       /* batch ring */
	batch_set val[MAX_EVAL_BATCHES];
	tg_tensor *logits, *logits_mb[MAX_MB], *norm[2];
	/* M > 1: one gradient buffer per micro-batch, summed into the model's gradients */
	tg_tensor *gflat[MAX_MB], **gpart[MAX_MB];
	unsigned char *gvalid;            /* M x nparams: micro-batch m reached parameter i */
	tg_tensor *rflat;                 /* redux: the sum, whole (see reduce_grads) */
	void *host_in, *host_in_t;        /* a batch as the dataset gives it, and in the model's layout */
	int32_t *host_tgt, *host_tgt_t;
	tg_tensor **clip_order;           /* the parameters, last first: the clipping order (setup) */
	int nstages_set;                  /* pipeline stages given workers (reset at the end) */
	int model_set;                    /* the model's stages were set (reset at the end) */
	tg_tensor **grad0;                /* each parameter's gradient buffer before the trainer */
};

void tg_train_config_default(tg_train_config *c)
{
	memset(c, 0, sizeof *c);
	c->steps = 1000;
	c->batch = 8;
	c->lr = 1e-3f;
	c->warmup = 100;
	c->weight_decay = 0.1f;
	c->clip = 1.0f;
	c->beta1 = 0.9f;
	c->beta2 = 0.95f;
	c->eps = 1e-8f;
	c->eval_every = 100;
	c->eval_batches = 4;
	c->sync_every = 0;
	c->micro_batches = 1;
	c->reduce = TG_REDUCE_DETERMINISTIC;
	c->pipeline = 1;
	c->schedule = TG_SCHEDULE_GPIPE;
	c->tensor_parallel = 1;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int check_config(const tg_train_config *c)
{
	TG_CHECK(c->steps >= 0, TG_EINVAL, "steps must be >= 0, got %d", c->steps);
	TG_CHECK(c->batch >= 1 && c->batch <= (1 << 20), TG_EINVAL, "batch must be in [1, %d], got %d", 1 << 20, c->batch);
	TG_CHECK(isfinite(c->lr) && c->lr > 0, TG_EINVAL, "learning rate must be finite and > 0, got %g", (double)c->lr);
	TG_CHECK(c->warmup >= 0, TG_EINVAL, "warm-up must be >= 0 steps, got %d", c->warmup);
	TG_CHECK(isfinite(c->weight_decay) && c->weight_decay >= 0, TG_EINVAL, "weight decay must be >= 0, got %g",
	         (double)c->weight_decay);
	TG_CHECK(isfinite(c->clip) && c->clip >= 0, TG_EINVAL, "clip must be >= 0 (0: off), got %g", (double)c->clip);
	TG_CHECK(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1, TG_EINVAL,
	         "AdamW betas must be in [0, 1), got %g and %g", (double)c->beta1, (double)c->beta2);
	TG_CHECK(isfinite(c->eps) && c->eps > 0, TG_EINVAL, "AdamW eps must be > 0, got %g", (double)c->eps);
	TG_CHECK(c->eval_every >= 0, TG_EINVAL, "eval_every must be >= 0, got %d", c->eval_every);
	TG_CHECK(c->eval_batches >= 1 && c->eval_batches <= MAX_EVAL_BATCHES, TG_EINVAL,
	         "eval_batches must be in [1, %d], got %d", MAX_EVAL_BATCHES, c->eval_batches);
	TG_CHECK(c->sync_every >= 0, TG_EINVAL, "sync_every must be >= 0, got %d", c->sync_every);
	TG_CHECK(c->micro_batches >= 1 && c->micro_batches <= MAX_MB, TG_EINVAL, "micro-batches must be in [1, %d], got %d",
	         MAX_MB, c->micro_batches);
	TG_CHECK(c->batch % c->micro_batches == 0, TG_EINVAL,
	         "%d micro-batches do not divide the batch of %d samples", c->micro_batches, c->batch);
	TG_CHECK(c->reduce == TG_REDUCE_DETERMINISTIC || c->reduce == TG_REDUCE_REDUX, TG_EINVAL,
	         "unknown gradient reduction %d (TG_REDUCE_DETERMINISTIC or TG_REDUCE_REDUX)", c->reduce);
	TG_CHECK(c->schedule == TG_SCHEDULE_GPIPE || c->schedule == TG_SCHEDULE_1F1B, TG_EINVAL,
	         "unknown pipeline schedule %d (TG_SCHEDULE_GPIPE or TG_SCHEDULE_1F1B)", c->schedule);
	TG_CHECK(c->pipeline >= 1 && c->pipeline <= TG_MAX_STAGES, TG_EINVAL, "pipeline stages must be in [1, %d], got %d",
	         TG_MAX_STAGES, c->pipeline);
	TG_CHECK(c->tensor_parallel >= 1, TG_EINVAL, "tensor-parallel groups must be >= 1, got %d", c->tensor_parallel);
	return 0;
}

void tg_trainer_free(tg_trainer *tr)
{
	if (!tr)
		return;
	for (int s = 0; s < tr->nstages_set; s++)
		tg_stage_set_workers(s, 0, NULL);
	if (tr->model_set)
		tr->model->stages = 1; /* the split stays: the activations are made for it */
	if (tr->M > 1 && tr->grad0) {
		/* the parameters' gradients go back to their own buffers before ours go */
		for (int i = 0; i < tg_model_num_params(tr->model); i++) {
			tg_tensor *p = tg_model_param(tr->model, i);
			if (tr->grad0[i] && tg_tensor_set_grad(p, tr->grad0[i]) == 0)
				tg_zero_grad(p);
		}
	}
	free(tr->grad0);
	for (int k = 0; k < 2 + MAX_EVAL_BATCHES; k++) {
		batch_set *b = k < 2 ? &tr->train[k] : &tr->val[k - 2];
		tg_tensor_free(b->in);
		tg_tensor_free(b->tgt);
		for (int j = 0; j < MAX_MB; j++) {
			tg_tensor_free(b->loss[j]);
			tg_tensor_free(b->dout[j]);
		}
	}
	for (int k = 0; k < 2; k++)
		tg_tensor_free(tr->norm[k]);
	for (int j = 0; j < MAX_MB; j++) {
		tg_tensor_free(tr->gflat[j]);
		free(tr->gpart[j]);
	}
	free(tr->gvalid);
	tg_tensor_free(tr->rflat);
	tg_tensor_free(tr->logits);
	free(tr->host_in);
	free(tr->host_in_t);
	free(tr->host_tgt);
	free(tr->host_tgt_t);
	free(tr->clip_order);
	free(tr);
}

/* The batch as the model takes it: (B, W) as given, or for a time-major model each
 * micro-batch of Bm = B / M samples as (W, Bm), one after the other. */
static void to_layout(const tg_trainer *tr, const void *src, void *dst, int64_t W, size_t esize)
{
	if (!tg_model_time_major(tr->model)) {
		memcpy(dst, src, (size_t)(tr->B * W) * esize);
		return;
	}
	const int64_t Bm = tr->B / tr->M;
	for (int64_t b = 0; b < tr->B; b++)
		for (int64_t t = 0; t < W; t++)
			memcpy((char *)dst + (size_t)(((b / Bm) * W + t) * Bm + b % Bm) * esize,
			       (const char *)src + (size_t)(b * W + t) * esize, esize);
}

/* Batch `index` of split into host buffers (sample-major) and the model's layout. */
static int fetch_batch(tg_trainer *tr, int split, uint64_t index)
{
	tg_dataset *d = tr->data;
	TG_TRY(d->batch(d, split, index, (int)tr->B, tr->host_in, tr->host_tgt));
	for (int64_t i = 0; i < tr->B * tr->T; i++)
		TG_CHECK(tr->host_tgt[i] >= 0 && tr->host_tgt[i] < d->vocab, TG_EINVAL,
		         "dataset '%s': target %d of batch %llu is %d, not in [0, %d)", d->name, (int)i,
		         (unsigned long long)index, tr->host_tgt[i], d->vocab);
	to_layout(tr, tr->host_in, tr->host_in_t, d->input_width, 4);
	to_layout(tr, tr->host_tgt, tr->host_tgt_t, tr->T, 4);
	return 0;
}

static int batch_tensors(tg_trainer *tr, batch_set *bs, const char *name)
{
	const tg_dataset *d = tr->data;
	const int M = tr->M;
	int64_t W = d->input_width, B = tr->B, Bm = B / M;
	int tm = tg_model_time_major(tr->model);
	char n1[64], n2[64];
	snprintf(n1, sizeof n1, "%s.inputs", name);
	snprintf(n2, sizeof n2, "%s.targets", name);
	if (W == 1 || d->input_dtype == TG_F32)
		TG_TRY(tg_tensor_new(&bs->in, n1, d->input_dtype, TG_SHAPE(B, W)));
	else
		TG_TRY(tm ? tg_tensor_new(&bs->in, n1, d->input_dtype, TG_SHAPE(M * W, Bm))
		          : tg_tensor_new(&bs->in, n1, d->input_dtype, TG_SHAPE(B, W)));
	TG_TRY(tg_tensor_new(&bs->tgt, n2, TG_I32, TG_SHAPE(B * tr->T)));
	TG_TRY(tg_tensor_set_layer(bs->in, "data"));
	TG_TRY(tg_tensor_set_layer(bs->tgt, "data"));
	if (M == 1) {
		bs->in_mb[0] = bs->in;
		bs->tgt_mb[0] = bs->tgt;
	} else {
		tg_block b[MAX_MB];
		for (int j = 0; j < M; j++)
			b[j] = (tg_block){0, j * Bm * tr->T, 1, {Bm * tr->T, 1}};
		TG_TRY(tg_tensor_partition(bs->in, TG_SPLIT_ROWS, M, bs->in_mb));
		TG_TRY(tg_tensor_partition_blocks(bs->tgt, M, b, bs->tgt_mb));
	}
	for (int j = 0; j < M; j++) {
		TG_TRY(tg_tensor_new(&bs->loss[j], "loss", TG_F32, TG_SHAPE(1)));
		TG_TRY(tg_tensor_set_layer(bs->loss[j], "loss"));
		if (M > 1)
			TG_TRY(tg_tensor_new_filled(&bs->dout[j], "dloss", TG_F32, TG_SHAPE(1),
			                            &(tg_fill){TG_FILL_CONSTANT, 1.0f / (float)M, 0, 0, 0}));
	}
	return 0;
}

/* The strategies: the model's split and stages, the stages' workers, the micro-batches'
 * gradient buffers. */
static int setup_parallel(tg_trainer *tr)
{
	const tg_train_config *c = &tr->cfg;
	tg_model *m = tr->model;
	tg_runtime_info info;
	TG_TRY(tg_runtime_get_info(&info));
	TG_CHECK(c->reduce != TG_REDUCE_REDUX || !info.deterministic || tr->M == 1, TG_EINVAL,
	         "StarPU's reductions sum in an order that varies from run to run: deterministic mode refuses them "
	         "(use the fast mode, or the deterministic reduction)");
	TG_TRY(tg_model_check_parallel(m, c->tensor_parallel, c->pipeline));
	if (c->pipeline > 1) {
		tr->nstages_set = c->pipeline;
		TG_TRY(tg_stage_split(c->pipeline));
	}
	/* the model changes last, once the rest has passed */
	TG_TRY(tg_model_set_parallel(m, c->tensor_parallel, c->pipeline));
	tr->model_set = 1;
	int np = tg_model_num_params(m);
	tr->grad0 = calloc((size_t)np, sizeof *tr->grad0);
	TG_CHECK(tr->grad0, TG_ENOMEM, "out of memory");
	for (int i = 0; i < np; i++) /* the gradients the micro-batches are summed into */
		tr->grad0[i] = tg_tensor_grad(tg_model_param(m, i));
	if (tr->M > 1) {
		tr->gvalid = calloc((size_t)(tr->M * np), 1);
		TG_CHECK(tr->gvalid, TG_ENOMEM, "out of memory");
		for (int j = 0; j < tr->M; j++) {
			char name[32];
			snprintf(name, sizeof name, "grads.mb%d", j);
			tr->gpart[j] = calloc((size_t)np, sizeof *tr->gpart[j]);
			TG_CHECK(tr->gpart[j], TG_ENOMEM, "out of memory");
			TG_TRY(tg_model_grad_buffer(m, name, &tr->gflat[j], tr->gpart[j]));
		}
		for (int i = 0; i < np && c->reduce == TG_REDUCE_REDUX; i++)
			TG_CHECK(tr->grad0[i] == m->part[TG_FAMILY_GRAD][i], TG_ENOTSUP,
			         "StarPU's reductions sum into the model's own gradient buffer: '%s' has another",
			         tg_tensor_name(tg_model_param(m, i)));
		if (c->reduce == TG_REDUCE_REDUX)
			TG_TRY(tg_tensor_new(&tr->rflat, "grads.redux", TG_F32, TG_SHAPE(tg_model_num_weights(m))));
	}
	return 0;
}

static int setup(tg_trainer *tr)
{
	tg_model *m = tr->model;
	tg_dataset *d = tr->data;
	const tg_model_config *mc = tg_model_get_config(m);
	tr->B = tr->cfg.batch;
	tr->M = tr->cfg.micro_batches;
	tr->T = d->target_width;
	TG_CHECK(d->vocab <= mc->vocab, TG_EINVAL, "dataset '%s' has %d classes or tokens, the model's vocabulary %d",
	         d->name, d->vocab, mc->vocab);
	if (d->input_dtype == TG_I32)
		TG_CHECK(d->input_width == mc->ctx && d->target_width == mc->ctx, TG_EINVAL,
		         "dataset '%s' gives sequences of %lld tokens, the model's context is %d", d->name,
		         (long long)d->input_width, mc->ctx);
	size_t nin = (size_t)(tr->B * d->input_width), ntg = (size_t)(tr->B * tr->T);
	tr->host_in = malloc(nin * 4);
	tr->host_in_t = malloc(nin * 4);
	tr->host_tgt = malloc(ntg * 4);
	tr->host_tgt_t = malloc(ntg * 4);
	int np = tg_model_num_params(m);
	tr->clip_order = calloc((size_t)np, sizeof *tr->clip_order);
	TG_CHECK(tr->host_in && tr->host_in_t && tr->host_tgt && tr->host_tgt_t && tr->clip_order, TG_ENOMEM,
	         "out of memory");
	/* in the reverse of the table's order, which is about the order in which the backward
	 * finishes the gradients: the norm's sums (one chain, in this order) then run as the
	 * gradients come, not all after the last one */
	for (int i = 0; i < np; i++)
		tr->clip_order[i] = tg_model_param(m, np - 1 - i);
	TG_TRY(setup_parallel(tr));
	for (int k = 0; k < 2; k++) {
		TG_TRY(batch_tensors(tr, &tr->train[k], "batch"));
		TG_TRY(tg_tensor_new_filled(&tr->norm[k], "grad_norm", TG_F32, TG_SHAPE(2),
		                            &(tg_fill){TG_FILL_CONSTANT, NAN, 0, 0, 0}));
		TG_TRY(tg_tensor_set_layer(tr->norm[k], "optimizer"));
	}
	/* a batch the dataset cannot give is refused now, not at the first step */
	TG_TRY(fetch_batch(tr, TG_SPLIT_TRAIN, 0));
	TG_TRY(tg_tensor_new(&tr->logits, "logits", TG_F32, TG_SHAPE(tr->B * tr->T, mc->vocab)));
	TG_TRY(tg_tensor_set_layer(tr->logits, "loss"));
	if (tr->M == 1)
		tr->logits_mb[0] = tr->logits;
	else
		TG_TRY(tg_tensor_partition(tr->logits, TG_SPLIT_ROWS, tr->M, tr->logits_mb));
	/* the validation batches: always the same ones, uploaded once */
	if (tr->cfg.eval_every > 0)
		for (int k = 0; k < tr->cfg.eval_batches; k++) {
			batch_set *v = &tr->val[k];
			TG_TRY(batch_tensors(tr, v, "val"));
			TG_TRY(fetch_batch(tr, TG_SPLIT_VAL, (uint64_t)k));
			TG_TRY(tg_tensor_from_host(v->in, tr->host_in_t, tg_tensor_nbytes(v->in)));
			TG_TRY(tg_tensor_from_host(v->tgt, tr->host_tgt_t, tg_tensor_nbytes(v->tgt)));
		}
	return 0;
}

int tg_trainer_new(tg_trainer **out, tg_model *m, tg_dataset *d, const tg_train_config *c)
{
	TG_CHECK(out && m && d && c, TG_EINVAL, "tg_trainer_new: NULL argument");
	*out = NULL;
	TG_CHECK(d->batch && d->input_width >= 1 && d->target_width >= 1 && d->vocab >= 1, TG_EINVAL,
	         "tg_trainer_new: dataset '%s' is incomplete (batch function, widths, vocab)", d->name ? d->name : "?");
	TG_TRY(check_config(c));
	tg_trainer *tr = calloc(1, sizeof *tr);
	TG_CHECK(tr, TG_ENOMEM, "out of memory");
	tr->model = m;
	tr->data = d;
	tr->cfg = *c;
	int rc = setup(tr);
	if (rc < 0) {
		char msg[1024];
		snprintf(msg, sizeof msg, "%s", tg_last_error());
		tg_trainer_free(tr);
		return tg_set_error(rc, "%s", msg);
	}
	*out = tr;
	return 0;
}

int tg_trainer_step(const tg_trainer *tr)
{
	return tr ? tr->step : 0;
}

const tg_train_config *tg_trainer_config(const tg_trainer *tr)
{
	return tr ? &tr->cfg : NULL;
}

/* Warm-up from lr / warmup to lr, then cosine to lr / 10 at the last step. */
static float lr_at(const tg_train_config *c, int step)
{
	if (step < c->warmup)
		return c->lr * (float)(step + 1) / (float)c->warmup;
	int span = c->steps - c->warmup;
	if (span <= 1)
		return c->lr;
	double x = (double)(step - c->warmup) / (double)(span - 1);
	double min = c->lr * 0.1;
	return (float)(min + 0.5 * (c->lr - min) * (1.0 + cos(M_PI * (x > 1 ? 1 : x))));
}

/* Micro-batches in flight with their own activations: all of them under GPipe, at most one
 * per stage under 1F1B (micro-batch j then reuses the set of j - K, after its backward). */
static int act_slots(const tg_trainer *tr)
{
	int k = tr->cfg.schedule == TG_SCHEDULE_1F1B ? tr->cfg.pipeline : tr->M;
	return k < tr->M ? k : tr->M;
}

/* Forward and loss of micro-batch j of bs. */
static int submit_forward(tg_trainer *tr, batch_set *bs, int j)
{
	TG_TRY(tg_tag_microbatch(tr->M > 1 ? j : -1));
	tr->model->act_slot = j % act_slots(tr);
	int rc = tg_model_forward(tr->model, tr->logits_mb[j], bs->in_mb[j]);
	tr->model->act_slot = 0; /* a forward of the user's (sampling) takes the first set */
	TG_TRY(rc);
	tg_model *m = tr->model; /* the loss on the last stage, with the head */
	TG_TRY(tg_tag_stage(m->stages > 1 ? tg_model_block_stage(m, m->cfg.layers - 1) : -1));
	TG_TRY(tg_softmax_xent(bs->loss[j], tr->logits_mb[j], bs->tgt_mb[j]));
	return tg_tag_stage(-1);
}

/* Backward of micro-batch j of bs, into its own gradient buffer when there are several. */
static int submit_backward(tg_trainer *tr, batch_set *bs, int j)
{
	tg_model *m = tr->model;
	int np = tg_model_num_params(m);
	TG_TRY(tg_tag_microbatch(tr->M > 1 ? j : -1));
	if (tr->M > 1)
		for (int i = 0; i < np; i++) {
			tg_tensor *p = tg_model_param(m, i);
			TG_TRY(tg_tensor_set_grad(p, tr->gpart[j][i]));
			TG_TRY(tg_zero_grad(p));
		}
	TG_TRY(tg_backward_from(bs->loss[j], bs->dout[j]));
	if (tr->M > 1)
		for (int i = 0; i < np; i++)
			tr->gvalid[j * np + i] = (unsigned char)tg_tensor_grad_valid(tg_model_param(m, i));
	return 0;
}

/* redux: StarPU's reductions of the micro-batches' whole buffers into one that is never split
 * (StarPU 1.3 loses count of a handle that takes reductions and is split into tiles, as every
 * gradient is by clipping and the update: an assertion), copied into the gradients. */
static int reduce_grads_redux(tg_trainer *tr)
{
	tg_model *m = tr->model;
	int np = tg_model_num_params(m);
	for (int j = 0; j < tr->M; j++)
		for (int i = 0; i < np; i++)
			if (!tr->gvalid[j * np + i]) /* not reached by micro-batch j: adds nothing */
				TG_TRY(tg_tensor_fill(tr->gpart[j][i], &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0}));
	TG_TRY(tg_sum(tr->rflat, tr->M, tr->gflat, TG_SUM_REDUX, 0));
	TG_TRY(tg_sum(m->flat[TG_FAMILY_GRAD], 1, &tr->rflat, TG_SUM_TREE, 0));
	for (int i = 0; i < np; i++) {
		tg_tensor *p = tg_model_param(m, i);
		int any = 0;
		for (int j = 0; j < tr->M; j++)
			any |= tr->gvalid[j * np + i];
		TG_TRY(tg_tensor_set_grad(p, m->part[TG_FAMILY_GRAD][i])); /* (grad0 checked: these) */
		if (!any)
			TG_TRY(tg_zero_grad(p));
	}
	return 0;
}

/* The micro-batches' gradients summed into the model's (last parameter first: the backward
 * finishes them first), each sum on the stage of its parameter. */
static int reduce_grads(tg_trainer *tr)
{
	tg_model *m = tr->model;
	int np = tg_model_num_params(m);
	TG_TRY(tg_tag_microbatch(-1));
	if (tr->cfg.reduce == TG_REDUCE_REDUX)
		return reduce_grads_redux(tr);
	for (int i = np - 1; i >= 0; i--) {
		tg_tensor *p = tg_model_param(m, i), *g = tr->grad0[i], *xs[MAX_MB];
		int n = 0;
		for (int j = 0; j < tr->M; j++)
			if (tr->gvalid[j * np + i])
				xs[n++] = tr->gpart[j][i];
		TG_TRY(tg_tag_stage(m->stages > 1 ? tg_model_param_stage(m, i) : -1));
		if (n > 0)
			TG_TRY(tg_sum(g, n, xs, TG_SUM_TREE, 0));
		TG_TRY(tg_tensor_set_grad(p, g)); /* valid: the sum */
		if (n == 0)
			TG_TRY(tg_zero_grad(p));
	}
	return tg_tag_stage(-1);
}

/* Forwards and backwards of every micro-batch of bs in the schedule's order, then the sum of
 * their gradients. */
static int submit_forward_backward(tg_trainer *tr, batch_set *bs)
{
	TG_TRY(tg_graph_reset());
	const int M = tr->M;
	if (tr->cfg.schedule == TG_SCHEDULE_1F1B) {
		/* F0 .. F(w-1), then B0 Fw B1 F(w+1) ...: a backward as soon as the pipe is full */
		int w = act_slots(tr);
		for (int j = 0; j < w; j++)
			TG_TRY(submit_forward(tr, bs, j));
		for (int j = 0; j < M; j++) {
			TG_TRY(submit_backward(tr, bs, j));
			if (j + w < M)
				TG_TRY(submit_forward(tr, bs, j + w));
		}
	} else {
		for (int j = 0; j < M; j++)
			TG_TRY(submit_forward(tr, bs, j));
		for (int j = 0; j < M; j++)
			TG_TRY(submit_backward(tr, bs, j));
	}
	if (M > 1)
		TG_TRY(reduce_grads(tr));
	return tg_tag_microbatch(-1);
}

static int upload_batch(tg_trainer *tr, batch_set *bs, uint64_t index)
{
	TG_TRY(fetch_batch(tr, TG_SPLIT_TRAIN, index));
	TG_TRY(tg_tensor_from_host(bs->in, tr->host_in_t, tg_tensor_nbytes(bs->in)));
	return tg_tensor_from_host(bs->tgt, tr->host_tgt_t, tg_tensor_nbytes(bs->tgt));
}

/* The mean loss of a batch: the mean of its micro-batches' (equal sizes). */
static int read_loss(const tg_trainer *tr, const batch_set *bs, float *out)
{
	double sum = 0;
	for (int j = 0; j < tr->M; j++) {
		float l;
		TG_TRY(tg_tensor_to_host(bs->loss[j], &l, sizeof l));
		sum += l;
	}
	*out = tr->M == 1 ? (float)sum : (float)(sum / tr->M);
	return 0;
}

static int evaluates(const tg_trainer *tr, int step)
{
	const tg_train_config *c = &tr->cfg;
	return c->eval_every > 0 && ((step + 1) % c->eval_every == 0 || step + 1 == c->steps || step == 0);
}

static int submit_step(tg_trainer *tr, int step)
{
	int k = step % 2;
	const tg_train_config *c = &tr->cfg;
	tg_model *m = tr->model;
	TG_TRY(upload_batch(tr, &tr->train[k], (uint64_t)step));
	TG_TRY(submit_forward_backward(tr, &tr->train[k]));
	int np = tg_model_num_params(m);
	if (c->clip > 0)
		TG_TRY(tg_clip_grad_norm(np, tr->clip_order, c->clip, tr->norm[k]));
	tg_adamw_params ap = {lr_at(c, step), c->beta1, c->beta2, c->eps, 0, (int64_t)step + 1};
	for (int i = 0; i < np; i++) {
		tg_tensor *p = tg_model_param(m, i);
		ap.weight_decay = tg_tensor_rank(p) >= 2 ? c->weight_decay : 0.0f;
		TG_TRY(tg_tag_stage(m->stages > 1 ? tg_model_param_stage(m, i) : -1));
		TG_TRY(tg_adamw(p, tg_model_adam_state(m, i, 0), tg_model_adam_state(m, i, 1), &ap));
	}
	TG_TRY(tg_tag_stage(-1));
	if (evaluates(tr, step))
		for (int v = 0; v < c->eval_batches; v++)
			for (int j = 0; j < tr->M; j++)
				TG_TRY(submit_forward(tr, &tr->val[v], j));
	return tg_tag_microbatch(-1);
}

/* Read what step `step` produced: its loss (a NaN stops the run), norm and validation loss. */
static int read_step(tg_trainer *tr, int step, tg_step_info *info)
{
	int k = step % 2;
	float l, nrm[2] = {NAN, NAN};
	TG_TRY(read_loss(tr, &tr->train[k], &l));
	TG_CHECK(isfinite(l), TG_ENUMERIC, "training diverged: the loss is %s at step %d (try a lower --lr)",
	         isnan(l) ? "NaN" : "infinite", step);
	if (tr->cfg.clip > 0)
		TG_TRY(tg_tensor_to_host(tr->norm[k], nrm, sizeof nrm));
	memset(info, 0, sizeof *info);
	info->step = step;
	info->steps = tr->cfg.steps;
	info->loss = l;
	info->grad_norm = nrm[0];
	info->lr = lr_at(&tr->cfg, step);
	info->val_loss = NAN;
	if (evaluates(tr, step)) {
		double sum = 0;
		for (int v = 0; v < tr->cfg.eval_batches; v++) {
			float vl;
			TG_TRY(read_loss(tr, &tr->val[v], &vl));
			sum += vl;
		}
		info->val_loss = (float)(sum / tr->cfg.eval_batches);
		TG_CHECK(isfinite(info->val_loss), TG_ENUMERIC, "training diverged: the validation loss is not finite at step %d",
		         step);
	}
	return 0;
}

int tg_trainer_run(tg_trainer *tr, tg_step_fn fn, void *user)
{
	TG_CHECK(tr, TG_EINVAL, "tg_trainer_run: trainer is NULL");
	const tg_train_config *c = &tr->cfg;
	double t_prev = now_seconds();
	int pending = -1; /* a step submitted and not yet read */
	int stop = 0;
	while (!stop && (tr->step < c->steps || pending >= 0)) {
		int submitted = -1;
		if (tr->step < c->steps && !(pending >= 0 && c->sync_every > 0 && (pending + 1) % c->sync_every == 0)) {
			TG_TRY(submit_step(tr, tr->step));
			submitted = tr->step++;
		}
		if (pending >= 0) {
			tg_step_info info;
			TG_TRY(read_step(tr, pending, &info));
			double t = now_seconds();
			info.ms = (t - t_prev) * 1e3;
			info.tokens_per_s = (double)(tr->B * tr->T) / (t - t_prev);
			t_prev = t;
			info.synced = submitted < 0;
			int cb = fn ? fn(tr, &info, user) : 0;
			if (cb < 0) {
				char msg[1024];
				snprintf(msg, sizeof msg, "%s", tg_last_error());
				tg_wait_all();
				return tg_set_error(cb, "%s", msg);
			}
			if (cb > 0)
				stop = 1;
		}
		pending = submitted;
		if (stop && pending >= 0) {
			/* the step in flight is done but not reported: wait for it so the state is whole */
			TG_TRY(tg_wait_all());
		}
	}
	return tg_wait_all();
}

/* ------------------------------------------------------------------ checkpoints */

int tg_trainer_save(tg_trainer *tr, const char *path)
{
	TG_CHECK(tr && path, TG_EINVAL, "tg_trainer_save: NULL argument");
	TG_TRY(tg_wait_all());
	return tg_checkpoint_write(tr->model, tr->step, &tr->cfg, path);
}

int tg_trainer_load(tg_trainer *tr, const char *path, int resume)
{
	TG_CHECK(tr && path, TG_EINVAL, "tg_trainer_load: NULL argument");
	TG_TRY(tg_wait_all());
	long long step = 0, steps = 0;
	TG_TRY(tg_checkpoint_read(tr->model, path, resume, &step, &steps));
	if (resume) {
		TG_CHECK(step <= tr->cfg.steps, TG_EINVAL, "checkpoint '%s' is at step %lld, past this run's %d steps", path,
		         step, tr->cfg.steps);
		tr->step = (int)step;
	}
	return 0;
}

int tg_trainer_dump_grads(tg_trainer *tr, const char *path, float *loss)
{
	TG_CHECK(tr && path, TG_EINVAL, "tg_trainer_dump_grads: NULL argument");
	TG_TRY(tg_wait_all());
	batch_set *bs = &tr->train[tr->step % 2];
	TG_TRY(upload_batch(tr, bs, (uint64_t)tr->step));
	TG_TRY(submit_forward_backward(tr, bs));
	float l;
	TG_TRY(read_loss(tr, bs, &l));
	/* every gradient is written: one that no backward reached is zero */
	tg_model *m = tr->model;
	for (int i = 0; i < tg_model_num_params(m); i++)
		if (!tg_tensor_grad_valid(tg_model_param(m, i)))
			TG_TRY(tg_tensor_fill(m->part[TG_FAMILY_GRAD][i], &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0}));
	int tokens = tr->data->input_dtype == TG_I32;
	int rc = tg_grads_write(m, tr->host_in, tokens ? "I32" : "F32", tr->host_tgt, tr->B, tr->T, tr->data->input_width, l,
	                        path);
	for (int i = 0; i < tg_model_num_params(m); i++)
		tg_zero_grad(tg_model_param(m, i));
	if (loss)
		*loss = l;
	return rc;
}
