/* model.c — the generic side of models: forward dispatch, parameters, freeing. */
#include "tg_model.h"

#include <stdlib.h>

int tg_model_forward(tg_model *m, tg_tensor *logits, tg_tensor *x)
{
	TG_CHECK(m && logits && x, TG_EINVAL, "tg_model_forward: NULL argument");
	return m->forward(m, logits, x);
}

int tg_model_num_params(const tg_model *m)
{
	return m ? m->nparams : 0;
}

tg_tensor *tg_model_param(const tg_model *m, int i)
{
	return m && i >= 0 && i < m->nparams ? m->params[i] : NULL;
}

const char *tg_model_name(const tg_model *m)
{
	return m ? m->name : "";
}

void tg_model_free(tg_model *m)
{
	if (!m)
		return;
	if (m->destroy)
		m->destroy(m);
	for (int i = 0; i < m->nparams; i++)
		tg_tensor_free(m->params[i]);
	free(m->params);
	free(m);
}
