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
#define TG_ACT_SETS 4 /* batch sizes a model keeps activations for */

typedef enum tg_param_init {
	TG_INIT_ZEROS = 0,
	TG_INIT_ONES,
	TG_INIT_NORMAL,  /* normal(0, a) */
	TG_INIT_UNIFORM  /* uniform(-a, a) */
} tg_param_init;

typedef struct tg_param_spec {
	char name[TG_PARAM_NAME];   /* "transformer.h.0.attn.c_attn.weight" */
	char layer[48];             /* the layer tag of the parameter and its ops ("h.0") */
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
	/* Activations, one set per batch size (rows): a model says how to make and free a set of
	 * act_size bytes; tg_model_acts finds or makes the set of a size, tg_model_free frees them. */
	size_t act_size;
	int (*make_acts)(const tg_model *m, void *set, int64_t rows);
	void (*free_acts)(const tg_model *m, void *set);
	struct {
		int64_t rows;
		void *set;
	} acts[TG_ACT_SETS];
	int nacts;
};

/* Add a parameter to a table being built (*n entries, capacity cap). */
void tg_param_add(tg_param_spec *spec, int *n, const char *layer, const char *name, int rank, int64_t d0, int64_t d1,
                  tg_param_init init, float a);
/* Allocate and initialise the families of m from its table (m->spec, m->nparams), seeded by
 * m->cfg.seed: parameter i's values depend only on (seed, i). */
int tg_model_build(tg_model *m);
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

/* The activation set of m for rows (a batch size), made at its first use. */
int tg_model_acts(tg_model *m, int64_t rows, void **set);

/* An activation tensor of layer `layer` (set at creation). */
int tg_act_new(tg_tensor **out, const char *layer, const char *name, int rank, const int64_t *shape);

#endif /* TG_MODEL_H */
