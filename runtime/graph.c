/* graph.c — the tape: every submitted task is recorded as a node, with the edges StarPU
 * infers from access modes under sequential consistency (read after the last write, write
 * after the reads since, commuting accumulations as one group). Partition switches are
 * tasks too (StarPU submits them as such). Beside the tasks, the graph keeps the ops they
 * belong to, with the tensors as the ops were given them: what autograd walks. */
#include "tg_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Grow *arr (of *cap elements of size elem) to hold at least need elements. */
static int grow(void *arr, int *cap, int need, size_t elem)
{
	if (need <= *cap)
		return 0;
	TG_CHECK(need > 0 && need <= INT_MAX / 2, TG_ENOMEM, "the graph is too large (%d entries)", need);
	int ncap = *cap ? *cap : 4;
	while (ncap < need)
		ncap *= 2;
	void *p = realloc(*(void **)arr, (size_t)ncap * elem);
	TG_CHECK(p, TG_ENOMEM, "out of memory (graph)");
	*(void **)arr = p;
	*cap = ncap;
	return 0;
}

static int push_int(int **arr, int *n, int *cap, int v)
{
	TG_TRY(grow(arr, cap, *n + 1, sizeof **arr));
	(*arr)[(*n)++] = v;
	return 0;
}

tg_graph *tg_graph_new_internal(uint64_t serial)
{
	tg_graph *g = calloc(1, sizeof *g);
	if (g)
		g->serial = serial;
	return g;
}

static void drop_tracking(tg_gtensor *gt)
{
	free(gt->writers);
	free(gt->readers);
	free(gt->group_preds);
	gt->writers = gt->readers = gt->group_preds = NULL;
	gt->nwriters = gt->nreaders = gt->ngroup_preds = 0;
	gt->capwriters = gt->capreaders = gt->capgroup_preds = 0;
}

void tg_graph_free(tg_graph *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nnodes; i++) {
		free(g->nodes[i]->opd);
		free(g->nodes[i]->preds);
		free(g->nodes[i]);
	}
	free(g->nodes);
	for (int i = 0; i < g->nops; i++) {
		free(g->ops[i]->args);
		free(g->ops[i]);
	}
	free(g->ops);
	for (int i = 0; i < g->ntensors; i++) {
		drop_tracking(&g->tensors[i]);
		free(g->tensors[i].name);
	}
	free(g->tensors);
	for (int i = 0; i < g->nlayers; i++)
		free(g->layers[i]);
	free(g->layers);
	free(g);
}

static int layer_index(tg_graph *g, const char *layer, int *out)
{
	*out = -1;
	if (!layer)
		return 0;
	for (int i = g->nlayers - 1; i >= 0; i--)
		if (strcmp(g->layers[i], layer) == 0) {
			*out = i;
			return 0;
		}
	TG_TRY(grow(&g->layers, &g->caplayers, g->nlayers + 1, sizeof *g->layers));
	g->layers[g->nlayers] = strdup(layer);
	TG_CHECK(g->layers[g->nlayers], TG_ENOMEM, "out of memory (graph)");
	*out = g->nlayers++;
	return 0;
}

int tg_graph_slot(tg_tensor *t, int *out)
{
	tg_graph *g = tg_rt.graph;
	if (t->graph_serial == g->serial) {
		*out = t->graph_slot;
		return 0;
	}
	TG_TRY(grow(&g->tensors, &g->captensors, g->ntensors + 1, sizeof *g->tensors));
	tg_gtensor *gt = &g->tensors[g->ntensors];
	memset(gt, 0, sizeof *gt);
	gt->name = strdup(t->name);
	TG_CHECK(gt->name, TG_ENOMEM, "out of memory (graph)");
	gt->live = t;
	gt->id = t->id;
	gt->parent_id = t->parent ? t->parent->id : 0;
	const tg_tensor *root = t;
	while (root->parent)
		root = root->parent;
	gt->root_id = root->id;
	gt->dtype = t->dtype;
	gt->rank = t->rank;
	memcpy(gt->shape, t->shape, sizeof gt->shape);
	t->graph_serial = g->serial;
	t->graph_slot = g->ntensors;
	*out = g->ntensors++;
	return 0;
}

static int add_pred(tg_graph *g, tg_task_node *n, int pred)
{
	if (pred == n->id)
		return 0;
	for (int i = 0; i < n->npred; i++)
		if (n->preds[i] == pred)
			return 0;
	TG_TRY(push_int(&n->preds, &n->npred, &n->cappred, pred));
	g->nedges++;
	return 0;
}

static int add_preds(tg_graph *g, tg_task_node *n, const int *preds, int npreds)
{
	for (int i = 0; i < npreds; i++)
		TG_TRY(add_pred(g, n, preds[i]));
	return 0;
}

/* The dependency rules of StarPU's sequential consistency, applied to one access. */
static int track(tg_graph *g, tg_gtensor *gt, tg_task_node *n, unsigned mode, int commute)
{
	if (mode == TG_R) {
		TG_TRY(add_preds(g, n, gt->writers, gt->nwriters));
		if (gt->nreaders == 0 || gt->readers[gt->nreaders - 1] != n->id)
			TG_TRY(push_int(&gt->readers, &gt->nreaders, &gt->capreaders, n->id));
		return 0;
	}
	if (commute && gt->writers_commute && gt->nreaders == 0 && gt->nwriters > 0) {
		/* joins the running group of commuting accumulations */
		TG_TRY(add_preds(g, n, gt->group_preds, gt->ngroup_preds));
		if (gt->writers[gt->nwriters - 1] != n->id)
			TG_TRY(push_int(&gt->writers, &gt->nwriters, &gt->capwriters, n->id));
		return 0;
	}
	const int *preds = gt->nreaders ? gt->readers : gt->writers;
	int npreds = gt->nreaders ? gt->nreaders : gt->nwriters;
	TG_TRY(add_preds(g, n, preds, npreds));
	if (commute) {
		gt->ngroup_preds = 0;
		for (int i = 0; i < npreds; i++)
			TG_TRY(push_int(&gt->group_preds, &gt->ngroup_preds, &gt->capgroup_preds, preds[i]));
	}
	gt->nwriters = 0;
	TG_TRY(push_int(&gt->writers, &gt->nwriters, &gt->capwriters, n->id));
	gt->writers_commute = commute;
	gt->nreaders = 0;
	return 0;
}

/* A new task node with n operands, appended to the current graph. */
static int new_task(tg_task_node **out, const tg_op_desc *op, const char *task_name, tg_phase phase, int n,
                    const char *layer)
{
	tg_graph *g = tg_rt.graph;
	TG_TRY(grow(&g->nodes, &g->capnodes, g->nnodes + 1, sizeof *g->nodes));
	tg_task_node *t = calloc(1, sizeof *t);
	TG_CHECK(t, TG_ENOMEM, "out of memory (graph)");
	t->opd = calloc((size_t)n, sizeof *t->opd);
	if (!t->opd) {
		free(t);
		return tg_error(TG_ENOMEM, "out of memory (graph)");
	}
	t->id = g->nnodes;
	t->graph = g;
	t->op = op;
	t->task_name = task_name;
	t->phase = phase;
	t->microbatch = tg_rt.microbatch;
	t->stage = tg_rt.stage;
	t->fwd_node = tg_rt.fwd_node;
	t->oprec = -1;
	t->n = n;
	g->nodes[g->nnodes++] = t; /* owned by the graph from here on */
	TG_TRY(layer_index(g, layer, &t->layer));
	*out = t;
	return 0;
}

/* The layer of a node: the spec's, else the current tag, else where the tensors live (the
 * layer of the first written operand that has one, else of the first operand that has one). */
static const char *spec_layer(const tg_task_spec *s)
{
	if (s->layer)
		return s->layer;
	if (tg_rt.layer)
		return tg_rt.layer;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < s->n; i++)
			if (s->t[i] && s->t[i]->layer && (pass == 1 || s->mode[i] != TG_R))
				return s->t[i]->layer;
	return NULL;
}

int tg_graph_record_task(tg_task_node **out, const tg_task_spec *s, int oprec)
{
	tg_graph *g = tg_rt.graph;
	tg_task_node *n;
	TG_TRY(new_task(&n, s->op, s->name ? s->name : s->cl->name, s->phase, s->n, spec_layer(s)));
	n->oprec = oprec;
	n->flops = s->flops;
	for (int i = 0; i < s->n; i++) {
		tg_tensor *t = s->t[i];
		TG_TRY(tg_graph_slot(t, &n->opd[i].slot));
		n->opd[i].mode = s->mode[i];
		/* The one place where an access is decided to commute: StarPU gets the same
		 * (tg_submit) as the tape's edges. In deterministic mode accumulations keep their
		 * submission order. */
		n->opd[i].commute = (s->mode[i] == TG_ACC && !tg_rt.cfg.deterministic) || s->mode[i] == TG_REDUX;
		if (s->mode[i] & TG_W)
			tg_tensor_bump_version(t);
		n->opd[i].version = t->version;
		n->bytes += t->nbytes;
		TG_TRY(track(g, &g->tensors[n->opd[i].slot], n, s->mode[i], n->opd[i].commute));
	}
	*out = n;
	return 0;
}

/* The op that switches partitions, for the tape (not one users submit). */
static const tg_op_desc switch_op = {
	.name = "partition",
	.kind = TG_KIND_DATA,
	.doc = "partition switch: a tensor and its parts, as StarPU hands them over",
};

int tg_graph_record_switch(const tg_plan *p, int partition)
{
	tg_graph *g = tg_rt.graph;
	tg_task_node *n;
	int saved = tg_rt.fwd_node;
	tg_rt.fwd_node = -1;
	int rc = new_task(&n, &switch_op, partition ? "partition" : "unpartition", TG_PHASE_DATA, p->n + 1,
	                  p->parent->layer);
	tg_rt.fwd_node = saved;
	TG_TRY(rc);
	/* what StarPU's switch task accesses; versions stay (the values do not change) */
	for (int i = 0; i <= p->n; i++) {
		tg_tensor *t = i == 0 ? p->parent : p->children[i - 1];
		unsigned mode = i == 0 ? (partition ? TG_RW : TG_W) : (partition ? TG_W : TG_RW);
		TG_TRY(tg_graph_slot(t, &n->opd[i].slot));
		n->opd[i].mode = mode;
		n->opd[i].version = t->version;
		TG_TRY(track(g, &g->tensors[n->opd[i].slot], n, mode, 0));
	}
	return 0;
}

int tg_graph_record_op(tg_node **out, const tg_task_spec *s)
{
	tg_graph *g = tg_rt.graph;
	TG_TRY(grow(&g->ops, &g->capops, g->nops + 1, sizeof *g->ops));
	tg_node *n = calloc(1, sizeof *n);
	TG_CHECK(n, TG_ENOMEM, "out of memory (graph)");
	if (s->args_size) {
		n->args = malloc(s->args_size);
		if (!n->args) {
			free(n);
			return tg_error(TG_ENOMEM, "out of memory (graph)");
		}
		memcpy(n->args, s->args, s->args_size);
		n->args_size = s->args_size;
	}
	n->id = g->nops;
	n->graph = g;
	n->op = s->op;
	n->name = s->name ? s->name : s->cl ? s->cl->name : s->op->name;
	n->phase = s->phase;
	n->microbatch = tg_rt.microbatch;
	n->stage = tg_rt.stage;
	n->first_task = g->nnodes;
	n->n = s->n;
	g->ops[g->nops++] = n;
	TG_TRY(layer_index(g, spec_layer(s), &n->layer));
	for (int i = 0; i < s->n; i++) {
		TG_TRY(tg_graph_slot(s->t[i], &n->opd[i].slot));
		n->opd[i].mode = s->mode[i];
		n->opd[i].version = s->t[i]->version;
	}
	*out = n;
	return 0;
}

void tg_graph_forget_tensor(tg_tensor *t)
{
	tg_graph *g = tg_rt.graph;
	if (g && t->graph_serial == g->serial)
		g->tensors[t->graph_slot].live = NULL;
}

tg_tensor *tg_node_tensor_live(const tg_node *n, int i)
{
	if (!n || i < 0 || i >= n->n || n->graph->serial != tg_rt.graph->serial)
		return NULL;
	return n->graph->tensors[n->opd[i].slot].live;
}

int tg_graph_take(tg_graph **out)
{
	TG_TRY(tg_require_init("tg_graph_take"));
	TG_CHECK(out, TG_EINVAL, "tg_graph_take: out is NULL");
	tg_graph *fresh = tg_graph_new_internal(tg_rt.graph_serial + 1);
	TG_CHECK(fresh, TG_ENOMEM, "out of memory (graph)");
	tg_graph *g = tg_rt.graph;
	for (int i = 0; i < g->ntensors; i++) {
		g->tensors[i].live = NULL;
		drop_tracking(&g->tensors[i]);
	}
	tg_rt.graph = fresh;
	tg_rt.graph_serial++;
	*out = g;
	return 0;
}

int tg_graph_reset(void)
{
	tg_graph *g;
	TG_TRY(tg_graph_take(&g));
	tg_graph_free(g);
	return 0;
}

int tg_tape_num_nodes(void)
{
	return tg_rt.initialized ? tg_rt.graph->nnodes : 0;
}

int tg_graph_num_nodes(const tg_graph *g)
{
	return g ? g->nnodes : 0;
}

int tg_graph_num_edges(const tg_graph *g)
{
	return g ? g->nedges : 0;
}

int tg_graph_node(const tg_graph *g, int i, tg_graph_node_info *info)
{
	TG_CHECK(g && info, TG_EINVAL, "tg_graph_node: NULL argument");
	TG_CHECK(i >= 0 && i < g->nnodes, TG_EINVAL, "tg_graph_node: node %d out of range (0..%d)", i, g->nnodes - 1);
	const tg_task_node *n = g->nodes[i];
	info->id = n->id;
	info->op = n->op->name;
	info->task = n->task_name;
	info->layer = n->layer >= 0 ? g->layers[n->layer] : NULL;
	info->phase = n->phase;
	info->microbatch = n->microbatch;
	info->stage = n->stage;
	info->flops = n->flops;
	info->npred = n->npred;
	info->fwd = n->fwd_node;
	info->op_id = n->oprec;
	return 0;
}

int tg_graph_pred(const tg_graph *g, int i, int j)
{
	TG_CHECK(g && i >= 0 && i < g->nnodes, TG_EINVAL, "tg_graph_pred: node %d out of range", i);
	TG_CHECK(j >= 0 && j < g->nodes[i]->npred, TG_EINVAL, "tg_graph_pred: node %d has no predecessor %d", i, j);
	return g->nodes[i]->preds[j];
}

int tg_graph_num_operands(const tg_graph *g, int i)
{
	TG_CHECK(g && i >= 0 && i < g->nnodes, TG_EINVAL, "tg_graph_num_operands: node %d out of range", i);
	return g->nodes[i]->n;
}

int tg_graph_operand(const tg_graph *g, int i, int j, tg_graph_operand_info *info)
{
	TG_CHECK(g && info, TG_EINVAL, "tg_graph_operand: NULL argument");
	TG_CHECK(i >= 0 && i < g->nnodes, TG_EINVAL, "tg_graph_operand: node %d out of range (0..%d)", i, g->nnodes - 1);
	const tg_task_node *n = g->nodes[i];
	TG_CHECK(j >= 0 && j < n->n, TG_EINVAL, "tg_graph_operand: node %d has no operand %d", i, j);
	const tg_gtensor *t = &g->tensors[n->opd[j].slot];
	info->tensor = t->name;
	info->tensor_id = t->id;
	info->parent_id = t->parent_id;
	info->root_id = t->root_id;
	info->mode = n->opd[j].mode;
	info->commute = n->opd[j].commute;
	info->version = n->opd[j].version;
	info->rank = t->rank;
	info->shape = t->shape;
	return 0;
}

tg_tensor *tg_node_tensor(const tg_node *n, int i)
{
	return tg_node_tensor_live(n, i);
}

const tg_op_desc *tg_node_op(const tg_node *n)
{
	return n ? n->op : NULL;
}

const void *tg_node_args(const tg_node *n)
{
	return n ? n->args : NULL;
}

int tg_node_num_operands(const tg_node *n)
{
	return n ? n->n : 0;
}
