/*
 * tg_model.h — what a model is, for the files of models/: a parameter table and a forward
 * function that submits ops. Users see tg_model as an opaque type (taskgrad.h).
 */
#ifndef TG_MODEL_H
#define TG_MODEL_H

#include "config.h"

#include "taskgrad.h"
#include "tg_check.h"

struct tg_model {
	const char *name;
	tg_tensor **params;
	int nparams;
	int (*forward)(tg_model *m, tg_tensor *logits, tg_tensor *x);
	void (*destroy)(tg_model *m); /* frees what the model owns besides params */
	void *impl;
};

#endif /* TG_MODEL_H */
