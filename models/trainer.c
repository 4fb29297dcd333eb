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

struct tg_trainer {
	tg_model *model;
	tg_dataset *data;
	tg_train_config cfg;
	int step;                 /* steps done (updates applied) */
	int64_t B, T;             /* samples per batch, targets per sample */
	tg_tensor *in[2], *tgt[2];        /* batch ring */
	tg_tensor *logits, *loss[2], *norm[2];
	tg_tensor *val_in[MAX_EVAL_BATCHES], *val_tgt[MAX_EVAL_BATCHES], *val_loss[MAX_EVAL_BATCHES];
	void *host_in, *host_in_t;        /* a batch as the dataset gives it, and in the model's layout */
	int32_t *host_tgt, *host_tgt_t;
	tg_tensor **clip_order;           /* the parameters, last first: the clipping order (setup) */
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
	return 0;
}

void tg_trainer_free(tg_trainer *tr)
{
	if (!tr)
		return;
	for (int k = 0; k < 2; k++) {
		tg_tensor_free(tr->in[k]);
		tg_tensor_free(tr->tgt[k]);
		tg_tensor_free(tr->loss[k]);
		tg_tensor_free(tr->norm[k]);
	}
	for (int k = 0; k < MAX_EVAL_BATCHES; k++) {
		tg_tensor_free(tr->val_in[k]);
		tg_tensor_free(tr->val_tgt[k]);
		tg_tensor_free(tr->val_loss[k]);
	}
	tg_tensor_free(tr->logits);
	free(tr->host_in);
	free(tr->host_in_t);
	free(tr->host_tgt);
	free(tr->host_tgt_t);
	free(tr->clip_order);
	free(tr);
}

/* The batch as the model takes it: (B, W) as given, or (W, B) for a time-major model. */
static void to_layout(const tg_trainer *tr, const void *src, void *dst, int64_t W, size_t esize)
{
	if (!tg_model_time_major(tr->model)) {
		memcpy(dst, src, (size_t)(tr->B * W) * esize);
		return;
	}
	for (int64_t b = 0; b < tr->B; b++)
		for (int64_t t = 0; t < W; t++)
			memcpy((char *)dst + (size_t)(t * tr->B + b) * esize, (const char *)src + (size_t)(b * W + t) * esize,
			       esize);
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

static int batch_tensors(tg_trainer *tr, tg_tensor **in, tg_tensor **tgt, const char *name)
{
	const tg_dataset *d = tr->data;
	int64_t W = d->input_width, B = tr->B;
	int tm = tg_model_time_major(tr->model);
	char n1[64], n2[64];
	snprintf(n1, sizeof n1, "%s.inputs", name);
	snprintf(n2, sizeof n2, "%s.targets", name);
	if (W == 1 || d->input_dtype == TG_F32)
		TG_TRY(tg_tensor_new(in, n1, d->input_dtype, TG_SHAPE(B, W)));
	else
		TG_TRY(tm ? tg_tensor_new(in, n1, d->input_dtype, TG_SHAPE(W, B))
		          : tg_tensor_new(in, n1, d->input_dtype, TG_SHAPE(B, W)));
	TG_TRY(tg_tensor_new(tgt, n2, TG_I32, TG_SHAPE(B * tr->T)));
	TG_TRY(tg_tensor_set_layer(*in, "data"));
	return tg_tensor_set_layer(*tgt, "data");
}

static int setup(tg_trainer *tr)
{
	tg_model *m = tr->model;
	tg_dataset *d = tr->data;
	const tg_model_config *mc = tg_model_get_config(m);
	tr->B = tr->cfg.batch;
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
	for (int k = 0; k < 2; k++) {
		TG_TRY(batch_tensors(tr, &tr->in[k], &tr->tgt[k], "batch"));
		TG_TRY(tg_tensor_new(&tr->loss[k], "loss", TG_F32, TG_SHAPE(1)));
		TG_TRY(tg_tensor_new_filled(&tr->norm[k], "grad_norm", TG_F32, TG_SHAPE(2),
		                            &(tg_fill){TG_FILL_CONSTANT, NAN, 0, 0, 0}));
		TG_TRY(tg_tensor_set_layer(tr->loss[k], "loss"));
		TG_TRY(tg_tensor_set_layer(tr->norm[k], "optimizer"));
	}
	/* a batch the dataset cannot give is refused now, not at the first step */
	TG_TRY(fetch_batch(tr, TG_SPLIT_TRAIN, 0));
	TG_TRY(tg_tensor_new(&tr->logits, "logits", TG_F32, TG_SHAPE(tr->B * tr->T, mc->vocab)));
	TG_TRY(tg_tensor_set_layer(tr->logits, "loss"));
	/* the validation batches: always the same ones, uploaded once */
	if (tr->cfg.eval_every > 0)
		for (int k = 0; k < tr->cfg.eval_batches; k++) {
			TG_TRY(batch_tensors(tr, &tr->val_in[k], &tr->val_tgt[k], "val"));
			TG_TRY(tg_tensor_new(&tr->val_loss[k], "val_loss", TG_F32, TG_SHAPE(1)));
			TG_TRY(tg_tensor_set_layer(tr->val_loss[k], "loss"));
			TG_TRY(fetch_batch(tr, TG_SPLIT_VAL, (uint64_t)k));
			TG_TRY(tg_tensor_from_host(tr->val_in[k], tr->host_in_t, tg_tensor_nbytes(tr->val_in[k])));
			TG_TRY(tg_tensor_from_host(tr->val_tgt[k], tr->host_tgt_t, tg_tensor_nbytes(tr->val_tgt[k])));
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

/* Forward and loss of the batch in slot k (the tensors in, tgt), and its backward. */
static int submit_forward_backward(tg_trainer *tr, int k)
{
	TG_TRY(tg_graph_reset());
	TG_TRY(tg_model_forward(tr->model, tr->logits, tr->in[k]));
	TG_TRY(tg_softmax_xent(tr->loss[k], tr->logits, tr->tgt[k]));
	return tg_backward(tr->loss[k]);
}

static int upload_batch(tg_trainer *tr, int k, uint64_t index)
{
	TG_TRY(fetch_batch(tr, TG_SPLIT_TRAIN, index));
	TG_TRY(tg_tensor_from_host(tr->in[k], tr->host_in_t, tg_tensor_nbytes(tr->in[k])));
	return tg_tensor_from_host(tr->tgt[k], tr->host_tgt_t, tg_tensor_nbytes(tr->tgt[k]));
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
	TG_TRY(upload_batch(tr, k, (uint64_t)step));
	TG_TRY(submit_forward_backward(tr, k));
	int np = tg_model_num_params(tr->model);
	if (c->clip > 0)
		TG_TRY(tg_clip_grad_norm(np, tr->clip_order, c->clip, tr->norm[k]));
	tg_adamw_params ap = {lr_at(c, step), c->beta1, c->beta2, c->eps, 0, (int64_t)step + 1};
	for (int i = 0; i < np; i++) {
		tg_tensor *p = tg_model_param(tr->model, i);
		ap.weight_decay = tg_tensor_rank(p) >= 2 ? c->weight_decay : 0.0f;
		TG_TRY(tg_adamw(p, tg_model_adam_state(tr->model, i, 0), tg_model_adam_state(tr->model, i, 1), &ap));
	}
	if (evaluates(tr, step))
		for (int v = 0; v < c->eval_batches; v++) {
			TG_TRY(tg_model_forward(tr->model, tr->logits, tr->val_in[v]));
			TG_TRY(tg_softmax_xent(tr->val_loss[v], tr->logits, tr->val_tgt[v]));
		}
	return 0;
}

/* Read what step `step` produced: its loss (a NaN stops the run), norm and validation loss. */
static int read_step(tg_trainer *tr, int step, tg_step_info *info)
{
	int k = step % 2;
	float l, nrm[2] = {NAN, NAN};
	TG_TRY(tg_tensor_to_host(tr->loss[k], &l, sizeof l));
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
			TG_TRY(tg_tensor_to_host(tr->val_loss[v], &vl, sizeof vl));
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
	int k = tr->step % 2;
	TG_TRY(upload_batch(tr, k, (uint64_t)tr->step));
	TG_TRY(submit_forward_backward(tr, k));
	float l;
	TG_TRY(tg_tensor_to_host(tr->loss[k], &l, sizeof l));
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
