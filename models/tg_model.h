/*
 * tg_model.h — what a model is, for the files of models/: a parameter table and a forward
 * function that submits ops. Users see tg_model as an opaque type (taskgrad.h).
 *
 * A model declares its parameters once, as a table of names and shapes (tg_param_spec); from
 * it tg_model_build allocates one flat buffer per family — parameters, gradients, and the
 * AdamW moments m and v — and makes every tensor a packed part of its family's buffer
 * (tg_tensor_partition_blocks on a rank-1 tensor), so a family is one allocation that can be
 * read, written or reduced whole.
 */
#ifndef TG_MODEL_H
#define TG_MODEL_H

#include "config.h"

#include "taskgrad.h"
#include "tg_check.h"

#define TG_PARAM_NAME 96

typedef enum tg_param_init {
	TG_INIT_ZEROS = 0,
	TG_INIT_ONES,
	TG_INIT_NORMAL,  /* normal(0, a) */
	TG_INIT_UNIFORM  /* uniform(-a, a) */
} tg_param_init;

typedef struct tg_param_spec {
	char name[TG_PARAM_NAME];   /* "transformer.h.0.attn.c_attn.weight" */
	char layer[48];             /* the layer tag of the parameter and its ops ("h.0") */
	int block;                  /* the layer (block) it belongs to, 0 to layers - 1: its pipeline stage */
	int rank;
	int64_t shape[2];
	tg_param_init init;
	float a;
} tg_param_spec;

enum { TG_FAMILY_PARAM = 0, TG_FAMILY_GRAD, TG_FAMILY_M, TG_FAMILY_V, TG_NFAMILIES };

struct tg_model {
	const char *name;
	tg_model_config cfg;
	int time_major;             /* inputs and targets are (T, B) */
	int nparams;
	tg_param_spec *spec;
	tg_tensor *flat[TG_NFAMILIES];          /* (nweights) each */
	tg_tensor **part[TG_NFAMILIES];         /* nparams packed parts of each */
	int64_t nweights;
	int (*forward)(tg_model *m, tg_tensor *logits, tg_tensor *x);
	/* Activations, one set per batch size (rows) and micro-batch: a model says how to make and
	 * free a set of act_size bytes; tg_model_acts finds or makes the set, tg_model_free frees
	 * them. */
	size_t act_size;
	int (*make_acts)(const tg_model *m, void *set, int64_t rows);
	void (*free_acts)(const tg_model *m, void *set);
	struct tg_act_set {
		int64_t rows;
		int microbatch;
		void *set;
	} *acts;
	int nacts, capacts;
	/* Parallel strategies (set by the trainer before the first forward): tensor-parallel
	 * groups (1: none) and pipeline stages (1: none). */
	int tp;
	int stages;
	int act_slot;               /* the activation set forwards use (one per micro-batch in flight) */
	tg_tensor ***pparts;        /* per parameter: its blocks for the tensor-parallel split, or NULL */
};

/* Use tp tensor-parallel groups and cut the layers into stages (checked against the model). */
int tg_model_set_parallel(tg_model *m, int tp, int stages);
int tg_model_check_parallel(const tg_model *m, int tp, int stages); /* the same checks, nothing set */
/* The pipeline stage of parameter i. */
int tg_model_param_stage(const tg_model *m, int i);
/* Another gradient buffer, packed as the gradient family (its parts in parts, nparams). */
int tg_model_grad_buffer(tg_model *m, const char *name, tg_tensor **flat, tg_tensor **parts);
/* The blocks of parameter i (made at the first call, the same ones after). */
int tg_model_param_blocks(tg_model *m, int i, int n, const tg_block *b, tg_tensor ***parts);

/* Tag the tasks submitted from now on with the pipeline stage of block (0 to layers - 1)
 * when the model is cut into stages. */
int tg_model_enter_block(const tg_model *m, int block);
/* The stage of block (0 when the model is not cut). */
int tg_model_block_stage(const tg_model *m, int block);
/* out = xs[0] + ... + xs[n-1] (2 <= n <= 64, same shapes) as a fixed binary tree of differentiable
 * adds; tmp holds n - 2 tensors of that shape for the inner sums (NULL when n <= 2). */
int tg_add_tree(tg_tensor *out, int n, tg_tensor *const *xs, tg_tensor *const *tmp);

/* Add a parameter to a table being built (*n entries, capacity cap). */
void tg_param_add(tg_param_spec *spec, int *n, const char *layer, const char *name, int rank, int64_t d0, int64_t d1,
                  tg_param_init init, float a);
/* Allocate and initialise the families of m from its table (m->spec, m->nparams), seeded by
 * m->cfg.seed: parameter i's values depend only on (seed, i). Then *out = m; on failure m is
 * freed (the message kept). */
int tg_model_build(tg_model *m, tg_model **out);
/* A new model struct (name, config copied), with room for a table of cap parameters. */
int tg_model_alloc(tg_model **out, const char *name, const tg_model_config *c, int cap);

/* The models. */
int tg_mlp_create(tg_model **out, const tg_model_config *c);
int tg_gpt_create(tg_model **out, const tg_model_config *c);
int tg_lstm_create(tg_model **out, const tg_model_config *c);

/* Checkpoints (checkpoint.c). */
int tg_checkpoint_write(const tg_model *m, int step, const tg_train_config *tc, const char *path);
int tg_checkpoint_read(tg_model *m, const char *path, int resume, long long *step, long long *steps);
int tg_grads_write(const tg_model *m, const void *inputs, const char *input_dtype, const int32_t *targets, int64_t B,
                   int64_t T, int64_t W, float loss, const char *path);

/* The activation set of m for rows (a batch size) and m->act_slot (one set per micro-batch
 * in flight, so that they do not share activations), made at its first use. */
int tg_model_acts(tg_model *m, int64_t rows, void **set);

/* An activation tensor of layer `layer` (set at creation). */
int tg_act_new(tg_tensor **out, const char *layer, const char *name, int rank, const int64_t *shape);

#endif /* TG_MODEL_H */
