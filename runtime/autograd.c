/* autograd.c — reverse-mode differentiation over the tape.
 *
 * Gradient rule: the first contribution to a gradient writes it (TG_W), later ones
 * accumulate (TG_ACC). An activation's gradient belongs to one backward call and to the
 * version of the activation a forward node wrote, so activations reused by several
 * micro-batches are handled right. A parameter's (leaf's) gradient accumulates over backward
 * calls until tg_zero_grad or an optimizer step marks it empty; no zeroing task runs. */
#include "tg_internal.h"

#include <stdlib.h>
#include <string.h>

static int make_grad(tg_tensor *t);

static int own_valid(const tg_tensor *t, uint32_t version)
{
	if (!t->grad)
		return 0;
	if (t->is_leaf)
		return t->grad_valid;
	return t->grad_valid && t->grad_serial == tg_rt.backward_serial && t->grad_version == version;
}

/* Every part of one plan of t (or of their parts) holds its gradient in this backward. */
static int covered_by_parts(const tg_tensor *t)
{
	for (const tg_plan *p = t->plans; p; p = p->next) {
		int all = 1;
		for (int i = 0; i < p->n && all; i++) {
			const tg_tensor *c = p->children[i];
			all = own_valid(c, c->version) || covered_by_parts(c);
		}
		if (all)
			return 1;
	}
	return 0;
}

/* Some part of t holds a gradient of this backward (t's own is not valid). */
static int partly_covered(const tg_tensor *t)
{
	for (const tg_plan *p = t->plans; p; p = p->next)
		for (int i = 0; i < p->n; i++) {
			const tg_tensor *c = p->children[i];
			if (own_valid(c, c->version) || partly_covered(c))
				return 1;
		}
	return 0;
}

/* The gradient of t's version `version` is valid: t's own, or (for an activation that still
 * holds that version) the same part of a whole's valid gradient, or all of its parts'. A part's
 * gradient is the same part of its whole's gradient (make_grad), so they are one buffer. */
static int grad_valid_for(const tg_tensor *t, uint32_t version)
{
	if (own_valid(t, version))
		return 1;
	if (!t->is_leaf && t->version != version)
		return 0;
	for (const tg_tensor *a = t->parent; a; a = a->parent)
		if (own_valid(a, a->version))
			return 1;
	return t->grad && covered_by_parts(t);
}

/* A parameter's gradient is valid: its own, through a whole it is part of, or through all
 * the parts of one of its plans (a tensor-parallel split writes a weight's gradient by
 * column blocks). */
int tg_leaf_grad_valid(const tg_tensor *t)
{
	return grad_valid_for(t, t->version);
}

/* Forget the gradients of t's parts: their validity, and (old_grad not NULL) the buffers that
 * are parts of old_grad, t's gradient until now: they are made again from the new one. */
void tg_parts_grad_reset(tg_tensor *t, const tg_tensor *old_grad)
{
	for (const tg_plan *p = t->plans; p; p = p->next)
		for (int i = 0; i < p->n; i++) {
			tg_tensor *c = p->children[i];
			c->grad_valid = 0;
			if (old_grad && c->grad && !c->grad_owned && tg_tensor_is_ancestor(old_grad, c->grad)) {
				if (c->grad->grad_of == c)
					c->grad->grad_of = NULL;
				c->grad = NULL;
			}
			tg_parts_grad_reset(c, old_grad);
		}
}

tg_tensor *tg_grad_of(const tg_node *fwd, int i)
{
	tg_tensor *t = tg_node_tensor_live(fwd, i);
	if (!t || !(fwd->opd[i].mode & TG_W))
		return NULL;
	if (!grad_valid_for(t, fwd->opd[i].version))
		return NULL;
	if (!t->grad && make_grad(t) < 0) /* valid through a whole: its part of the whole's gradient */
		return NULL;
	return t->grad;
}

static int make_grad(tg_tensor *t)
{
	if (t->grad)
		return 0;
	if (t->parent) {
		/* a part's gradient is the same part of its parent's gradient */
		TG_TRY(make_grad(t->parent));
		TG_TRY(tg_plan_mirror(t, t->parent->grad, &t->grad));
		t->grad->grad_of = t;
		t->grad_owned = 0;
		return 0;
	}
	char name[256];
	snprintf(name, sizeof name, "d%s", t->name);
	char *saved = tg_rt.layer;
	tg_rt.layer = t->layer; /* the gradient lives in the tensor's layer */
	int rc = tg_tensor_new(&t->grad, name, TG_F32, t->rank, t->shape);
	tg_rt.layer = saved;
	TG_TRY(rc);
	t->grad->grad_of = t;
	t->grad_owned = 1;
	return 0;
}

int tg_grad_target(const tg_node *fwd, int i, tg_tensor **grad, unsigned *mode)
{
	TG_CHECK(grad && mode, TG_EINVAL, "tg_grad_target: NULL argument");
	*grad = NULL;
	*mode = TG_W;
	TG_CHECK(fwd && i >= 0 && i < fwd->n, TG_EINVAL, "tg_grad_target: operand %d out of range", i);
	tg_tensor *t = tg_node_tensor_live(fwd, i);
	TG_CHECK(t, TG_ESTATE, "%s: input %d was freed before the backward pass", fwd->name, i);
	if (!t->requires_grad)
		return 0;
	TG_TRY(make_grad(t));
	uint32_t version = fwd->opd[i].version;
	*mode = grad_valid_for(t, version) ? TG_ACC : TG_W;
	TG_CHECK(*mode == TG_ACC || !partly_covered(t), TG_ENOTSUP,
	         "tg_backward: parts of '%s' have gradients and the rest has none; %s would overwrite them (write every "
	         "part of a tensor, or none)", t->name, fwd->name);
	t->grad_valid = 1;
	t->grad_serial = tg_rt.backward_serial;
	t->grad_version = version;
	*grad = t->grad;
	return 0;
}

/* The seed: dout, or ones kept in out->grad and refilled only if a task wrote it since. */
static int seed_grad(tg_tensor *out, tg_tensor *dout)
{
	static const tg_fill ones = {TG_FILL_CONSTANT, 1.0f, 0.0f, 0, 0};
	if (dout) {
		TG_TRY(tg_tensor_set_grad(out, dout));
	} else if (!out->grad || !out->grad_owned) {
		if (out->grad && !out->grad_owned)
			out->grad = NULL; /* a borrowed buffer is not overwritten with ones */
		TG_TRY(make_grad(out));
		TG_TRY(tg_tensor_fill(out->grad, &ones));
		out->grad->grad_version = out->grad->version;
	} else if (out->grad->version != out->grad->grad_version) {
		/* for a gradient tensor, grad_version remembers the version that holds the ones */
		TG_TRY(tg_tensor_fill(out->grad, &ones));
		out->grad->grad_version = out->grad->version;
	}
	out->grad_valid = 1;
	out->grad_serial = tg_rt.backward_serial;
	out->grad_version = out->version;
	return 0;
}

/* A backward rule reads the operands of its forward node: they must still hold the values
 * that node saw (activations reused by a later forward must be differentiated first). */
static int check_versions(const tg_node *n)
{
	for (int k = 0; k < n->n; k++) {
		const tg_tensor *t = tg_node_tensor_live(n, k);
		TG_CHECK(t, TG_ESTATE, "tg_backward: an operand of %s was freed before the backward pass", n->name);
		TG_CHECK(t->version == n->opd[k].version, TG_ESTATE,
		         "tg_backward: '%s' was overwritten after %s used it (run the backward pass of a forward before "
		         "reusing its tensors)", t->name, n->name);
	}
	return 0;
}

int tg_backward(tg_tensor *loss)
{
	return tg_backward_from(loss, NULL);
}

int tg_backward_from(tg_tensor *loss, tg_tensor *dout)
{
	return tg_backward_many(1, &loss, &dout);
}

/* The last forward op that wrote t's current version (-1 if none). */
static int writer_of(const tg_graph *g, const tg_tensor *t)
{
	if (t->graph_serial != g->serial)
		return -1;
	for (int i = g->nops - 1; i >= 0; i--) {
		const tg_node *n = g->ops[i];
		if (n->phase != TG_PHASE_FWD)
			continue;
		for (int k = 0; k < n->n; k++)
			if (n->opd[k].slot == t->graph_slot && (n->opd[k].mode & TG_W) && n->opd[k].version == t->version)
				return i;
	}
	return -1;
}

int tg_backward_many(int nout, tg_tensor *const *outs, tg_tensor *const *douts)
{
	TG_TRY(tg_require_init("tg_backward"));
	TG_CHECK(nout >= 1 && nout <= 64 && outs, TG_EINVAL, "tg_backward: %d outputs (1 to 64)", nout);
	TG_CHECK(!tg_rt.open_op, TG_ESTATE, "tg_backward: an op is open (tg_op_begin without tg_op_end)");
	tg_graph *g = tg_rt.graph;
	TG_CHECK(!g->broken, TG_ESTATE, "tg_backward: a task of this graph failed to submit; reset the graph");
	int start = -1;
	for (int i = 0; i < nout; i++) {
		tg_tensor *loss = outs[i], *dout = douts ? douts[i] : NULL;
		TG_CHECK(loss, TG_EINVAL, "tg_backward: output is NULL");
		TG_TRY(tg_tensor_check_usable(loss, "tg_backward"));
		if (dout)
			TG_TRY(tg_tensor_check_usable(dout, "tg_backward"));
		int w = writer_of(g, loss);
		TG_CHECK(w >= 0, TG_ESTATE, "tg_backward: no forward op recorded since the last graph reset wrote '%s'",
		         loss->name);
		TG_CHECK(loss->requires_grad, TG_EINVAL,
		         "tg_backward: '%s' does not depend on any tensor that requires a gradient", loss->name);
		start = w > start ? w : start;
	}
	tg_rt.backward_serial++;
	for (int i = 0; i < nout; i++)
		TG_TRY(seed_grad(outs[i], douts ? douts[i] : NULL));

	char *saved_layer = tg_rt.layer; /* the caller's tag, restored at the end */
	int saved_mb = tg_rt.microbatch, saved_stage = tg_rt.stage;
	tg_rt.layer = NULL;
	int rc = 0;
	for (int i = start; i >= 0 && rc == 0; i--) {
		const tg_node *n = g->ops[i];
		if (n->phase != TG_PHASE_FWD)
			continue;
		int reached = 0;
		for (int k = 0; k < n->n; k++)
			if (tg_grad_of(n, k))
				reached = 1;
		if (!reached)
			continue;
		if (!n->op->backward) {
			rc = tg_error(TG_ENOTSUP, "tg_backward: op '%s' has no backward rule", n->op->name);
			break;
		}
		if ((rc = check_versions(n)) < 0)
			break;
		/* backward tasks carry the tags of their forward op (a copy: a rule may retag) */
		if ((rc = tg_tag_layer(n->layer >= 0 ? g->layers[n->layer] : NULL)) < 0)
			break;
		tg_rt.microbatch = n->microbatch;
		tg_rt.stage = n->stage;
		tg_rt.fwd_node = n->first_task;
		rc = n->op->backward(n);
	}
	free(tg_rt.layer);
	tg_rt.layer = saved_layer;
	tg_rt.microbatch = saved_mb;
	tg_rt.stage = saved_stage;
	tg_rt.fwd_node = -1;
	return rc;
}
