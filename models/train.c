/* train.c — training a classifier on the spirals set: the loop of `taskgrad train --model mlp`.
 *
 * A step submits forward, loss, backward and the SGD updates without waiting; the host then
 * reads the loss of the previous step (two loss tensors alternate), so the next step's
 * tasks are already queued while it waits. The training set is cut once into batch tensors,
 * so no step writes input data from the host. */
#include "tg_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPIRAL_TRAIN_PER_CLASS 1024
#define SPIRAL_TEST_PER_CLASS 500
#define SPIRAL_NOISE 0.04f
#define SPIRAL_TURNS 1.5

void tg_train_opts_default(tg_train_opts *o)
{
	memset(o, 0, sizeof *o);
	o->steps = 1500;
	o->batch = 128;
	o->lr = 0.1f;
	o->momentum = 0.9f;
	o->hidden = 64;
	o->seed = 1;
	o->log_every = 100;
	o->log = NULL;
	o->graph_path = NULL;
	o->graph_step = 0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct trainer {
	tg_model *model;
	tg_tensor **bx, **by;    /* training batches */
	int nbatches;
	tg_tensor *logits, *loss[2];
	tg_tensor **velocity;
	tg_tensor *test_x, *test_logits;
	int32_t *test_labels;
	float *host_xy;
	int32_t *host_labels;
	tg_graph *graph;         /* the step whose graph is written once training succeeded */
} trainer;

static void trainer_free(trainer *tr)
{
	for (int i = 0; i < tr->nbatches; i++) {
		tg_tensor_free(tr->bx[i]);
		tg_tensor_free(tr->by[i]);
	}
	free(tr->bx);
	free(tr->by);
	if (tr->velocity && tr->model)
		for (int i = 0; i < tg_model_num_params(tr->model); i++)
			tg_tensor_free(tr->velocity[i]);
	free(tr->velocity);
	tg_tensor_free(tr->logits);
	tg_tensor_free(tr->loss[0]);
	tg_tensor_free(tr->loss[1]);
	tg_tensor_free(tr->test_x);
	tg_tensor_free(tr->test_logits);
	tg_model_free(tr->model);
	free(tr->test_labels);
	free(tr->host_xy);
	free(tr->host_labels);
	tg_graph_free(tr->graph);
}

static int trainer_setup(trainer *tr, const tg_train_opts *o)
{
	int ntrain = 2 * SPIRAL_TRAIN_PER_CLASS, ntest = 2 * SPIRAL_TEST_PER_CLASS;
	TG_CHECK(o->batch <= ntrain, TG_EINVAL, "batch size %d is larger than the training set (%d points)", o->batch, ntrain);
	int nbatches = ntrain / o->batch;
	tr->host_xy = malloc((size_t)ntrain * 2 * sizeof(float));
	tr->host_labels = malloc((size_t)ntrain * sizeof(int32_t));
	tr->bx = calloc((size_t)nbatches, sizeof *tr->bx);
	tr->by = calloc((size_t)nbatches, sizeof *tr->by);
	tr->test_labels = malloc((size_t)ntest * sizeof(int32_t));
	TG_CHECK(tr->host_xy && tr->host_labels && tr->bx && tr->by && tr->test_labels, TG_ENOMEM, "out of memory");
	tr->nbatches = nbatches;

	TG_TRY(tg_data_spirals(tr->host_xy, tr->host_labels, SPIRAL_TRAIN_PER_CLASS, SPIRAL_NOISE, SPIRAL_TURNS, o->seed));
	TG_TRY(tg_tag_layer("data"));
	for (int b = 0; b < tr->nbatches; b++) {
		TG_TRY(tg_tensor_new_from_host(&tr->bx[b], "x", TG_F32, TG_SHAPE(o->batch, 2),
		                               tr->host_xy + (size_t)b * o->batch * 2, (size_t)o->batch * 2 * sizeof(float)));
		TG_TRY(tg_tensor_new_from_host(&tr->by[b], "y", TG_I32, TG_SHAPE(o->batch),
		                               tr->host_labels + (size_t)b * o->batch, (size_t)o->batch * sizeof(int32_t)));
	}
	/* the test set: other points of the same spirals (another seed) */
	TG_TRY(tg_data_spirals(tr->host_xy, tr->test_labels, SPIRAL_TEST_PER_CLASS, SPIRAL_NOISE, SPIRAL_TURNS,
	                       o->seed ^ 0x5eed5eedULL));
	TG_TRY(tg_tensor_new_from_host(&tr->test_x, "test_x", TG_F32, TG_SHAPE(ntest, 2), tr->host_xy,
	                               (size_t)ntest * 2 * sizeof(float)));
	TG_TRY(tg_tag_layer("loss"));
	TG_TRY(tg_tensor_new(&tr->logits, "logits", TG_F32, TG_SHAPE(o->batch, 2)));
	TG_TRY(tg_tensor_new(&tr->test_logits, "test_logits", TG_F32, TG_SHAPE(ntest, 2)));
	TG_TRY(tg_tensor_new(&tr->loss[0], "loss", TG_F32, TG_SHAPE(1)));
	TG_TRY(tg_tensor_new(&tr->loss[1], "loss", TG_F32, TG_SHAPE(1)));
	TG_TRY(tg_tag_layer(NULL));

	TG_TRY(tg_mlp_new(&tr->model, 2, o->hidden, 2, o->seed));
	int np = tg_model_num_params(tr->model);
	tr->velocity = calloc((size_t)np, sizeof *tr->velocity);
	TG_CHECK(tr->velocity, TG_ENOMEM, "out of memory");
	if (o->momentum > 0)
		for (int i = 0; i < np; i++) {
			tg_tensor *p = tg_model_param(tr->model, i);
			char name[128];
			snprintf(name, sizeof name, "%s.velocity", tg_tensor_name(p));
			TG_TRY(tg_tag_layer(tg_tensor_layer(p)));
			TG_TRY(tg_tensor_new_filled(&tr->velocity[i], name, TG_F32, tg_tensor_rank(p), tg_tensor_shape(p),
			                            &(tg_fill){TG_FILL_ZEROS, 0, 0, 0, 0}));
		}
	return tg_tag_layer(NULL);
}

/* Submit one training step; nothing waits. */
static int submit_step(trainer *tr, const tg_train_opts *o, int step)
{
	int b = step % tr->nbatches;
	tg_tensor *loss = tr->loss[step % 2];
	TG_TRY(tg_model_forward(tr->model, tr->logits, tr->bx[b]));
	TG_TRY(tg_tag_layer("loss"));
	TG_TRY(tg_softmax_xent(loss, tr->logits, tr->by[b]));
	TG_TRY(tg_tag_layer(NULL));
	TG_TRY(tg_backward(loss));
	tg_sgd_params sp = {o->lr, o->momentum, 0.0f};
	for (int i = 0; i < tg_model_num_params(tr->model); i++)
		TG_TRY(tg_sgd(tg_model_param(tr->model, i), tr->velocity[i], &sp));
	return 0;
}

static int read_loss(trainer *tr, int step, float *out)
{
	TG_TRY(tg_tensor_to_host(tr->loss[step % 2], out, sizeof *out));
	TG_CHECK(isfinite(*out), TG_ENUMERIC, "training diverged: the loss is %s at step %d (try a lower --lr)",
	         isnan(*out) ? "NaN" : "infinite", step);
	return 0;
}

static int evaluate(trainer *tr, float *accuracy)
{
	int ntest = 2 * SPIRAL_TEST_PER_CLASS;
	TG_TRY(tg_model_forward(tr->model, tr->test_logits, tr->test_x));
	float *lg = malloc((size_t)ntest * 2 * sizeof *lg);
	TG_CHECK(lg, TG_ENOMEM, "out of memory");
	int rc = tg_tensor_to_host(tr->test_logits, lg, (size_t)ntest * 2 * sizeof *lg);
	int correct = 0;
	for (int i = 0; rc == 0 && i < ntest; i++)
		correct += (lg[2 * i + 1] > lg[2 * i]) == (tr->test_labels[i] == 1);
	free(lg);
	*accuracy = (float)correct / (float)ntest;
	TG_TRY(rc);
	return tg_graph_reset();
}

static int train(trainer *tr, const tg_train_opts *o, tg_train_result *res)
{
	TG_TRY(trainer_setup(tr, o));
	res->losses = calloc((size_t)o->steps, sizeof *res->losses);
	TG_CHECK(res->losses, TG_ENOMEM, "out of memory");
	res->nlosses = o->steps;
	double t0 = now_seconds();
	TG_TRY(tg_graph_reset());
	for (int step = 0; step < o->steps; step++) {
		TG_TRY(submit_step(tr, o, step));
		tg_graph *g;
		TG_TRY(tg_graph_take(&g));
		if (o->graph_path && step == o->graph_step)
			tr->graph = g; /* written at the end: a failed run must not replace an existing file */
		else
			tg_graph_free(g);
		if (step > 0) {
			TG_TRY(read_loss(tr, step - 1, &res->losses[step - 1]));
			if (o->log && o->log_every > 0 && (step - 1) % o->log_every == 0)
				fprintf(o->log, "step %5d/%d  loss %.4f\n", step - 1, o->steps, res->losses[step - 1]);
		}
	}
	TG_TRY(read_loss(tr, o->steps - 1, &res->losses[o->steps - 1]));
	res->seconds = now_seconds() - t0;
	res->final_loss = res->losses[o->steps - 1];
	if (o->log)
		fprintf(o->log, "step %5d/%d  loss %.4f\n", o->steps - 1, o->steps, res->final_loss);
	TG_TRY(evaluate(tr, &res->accuracy));
	if (tr->graph) {
		res->graph_nodes = tg_graph_num_nodes(tr->graph);
		res->graph_edges = tg_graph_num_edges(tr->graph);
		TG_TRY(tg_graph_dump_dot(tr->graph, o->graph_path));
	}
	return 0;
}

int tg_train_mlp_spirals(const tg_train_opts *o, tg_train_result *res)
{
	TG_CHECK(o && res, TG_EINVAL, "tg_train_mlp_spirals: NULL argument");
	memset(res, 0, sizeof *res);
	TG_CHECK(o->steps >= 1, TG_EINVAL, "steps must be >= 1, got %d", o->steps);
	TG_CHECK(o->batch >= 1, TG_EINVAL, "batch must be >= 1, got %d", o->batch);
	TG_CHECK(o->hidden >= 1, TG_EINVAL, "hidden width must be >= 1, got %d", o->hidden);
	TG_CHECK(isfinite(o->lr) && o->lr > 0, TG_EINVAL, "learning rate must be > 0, got %g", (double)o->lr);
	TG_CHECK(o->graph_step >= 0 && o->graph_step < o->steps, TG_EINVAL, "graph step %d is not one of the %d steps",
	         o->graph_step, o->steps);
	trainer tr;
	memset(&tr, 0, sizeof tr);
	int rc = train(&tr, o, res);
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", tg_last_error());
	trainer_free(&tr);
	tg_tag_layer(NULL);
	if (rc < 0) {
		free(res->losses);
		res->losses = NULL;
		res->nlosses = 0;
		return tg_set_error(rc, "%s", msg);
	}
	return 0;
}
