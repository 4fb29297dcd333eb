/* dot.c — the graph in Graphviz DOT: a cluster per layer, a colour per op kind, a style per
 * phase, stable node ids (n<record index>) and the longest path by flop count in red. A step
 * cut into pipeline stages and micro-batches shows its strategy: clusters nest stage >
 * micro-batch > layer, and the sums of the micro-batches' gradients form a "gradient
 * reduction" cluster in their stage. */
#include "tg_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_colour[TG_KIND_COUNT] = {
	[TG_KIND_GEMM] = "#8ecae6",        [TG_KIND_ELEMENTWISE] = "#b7e4c7",
	[TG_KIND_REDUCTION] = "#ffd6a5",   [TG_KIND_LOSS] = "#ffadad",
	[TG_KIND_OPTIMIZER] = "#cdb4db",   [TG_KIND_DATA] = "#e9ecef",
	[TG_KIND_OTHER] = "#fdffb6",
};
static const char *kind_name[TG_KIND_COUNT] = {
	[TG_KIND_GEMM] = "gemm",           [TG_KIND_ELEMENTWISE] = "elementwise",
	[TG_KIND_REDUCTION] = "reduction", [TG_KIND_LOSS] = "loss",
	[TG_KIND_OPTIMIZER] = "optimizer", [TG_KIND_DATA] = "data",
	[TG_KIND_OTHER] = "other",
};
static const char *phase_name[] = {"forward", "backward", "optimizer", "partition switch"};

/* A DOT string body: quotes and backslashes escaped, a newline as DOT's \n, other control
 * characters as '?' (names come from users: a name must never end the string early or
 * inject attributes). */
static void put_escaped(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c < 0x20 || c == 0x7f) {
			fputc('?', f);
		} else {
			fputc(c, f);
		}
	}
}

static const char *mode_name(unsigned m)
{
	return m == TG_R ? "R" : m == TG_W ? "W" : m == TG_RW ? "RW" : m == TG_REDUX ? "REDUX" : "ACC";
}

static void put_shape(FILE *f, const tg_gtensor *t)
{
	fputc('(', f);
	for (int i = 0; i < t->rank; i++)
		fprintf(f, "%s%lld", i ? "," : "", (long long)t->shape[i]);
	fputc(')', f);
}

/* Longest path where a node weighs its flops (+1, so that zero-flop tasks count).
 * path_from[i] is i's predecessor on the path, -1 for its first node, -2 off the path. */
static int longest_path(const tg_graph *g, int *path_from, double *total, int *len)
{
	*total = 0;
	*len = 0;
	if (g->nnodes == 0)
		return 0;
	double *dist = malloc((size_t)g->nnodes * sizeof *dist);
	int *from = malloc((size_t)g->nnodes * sizeof *from);
	if (!dist || !from) {
		free(dist);
		free(from);
		return tg_error(TG_ENOMEM, "out of memory");
	}
	int best = 0;
	for (int i = 0; i < g->nnodes; i++) { /* record order is a topological order */
		const tg_task_node *n = g->nodes[i];
		dist[i] = 0;
		from[i] = -1;
		for (int k = 0; k < n->npred; k++)
			if (dist[n->preds[k]] > dist[i] || (dist[n->preds[k]] == dist[i] && from[i] < 0)) {
				dist[i] = dist[n->preds[k]];
				from[i] = n->preds[k];
			}
		dist[i] += n->flops + 1.0;
		if (dist[i] > dist[best])
			best = i;
	}
	for (int i = 0; i < g->nnodes; i++)
		path_from[i] = -2;
	for (int i = best; i >= 0; i = from[i]) {
		path_from[i] = from[i];
		*total += g->nodes[i]->flops;
		(*len)++;
	}
	free(dist);
	free(from);
	return 0;
}

static void put_node(FILE *f, const tg_graph *g, const tg_task_node *n, int on_path, int indent)
{
	int kind = n->op->kind >= 0 && n->op->kind < TG_KIND_COUNT ? n->op->kind : TG_KIND_OTHER;
	fprintf(f, "%*sn%d [label=\"", indent, "", n->id);
	put_escaped(f, n->task_name);
	/* the tags again in the label: a node read alone (an SVG search, a diff) still says where
	 * it runs; "\xc2\xb7" is a middle dot in UTF-8, DOT's default charset */
	if (n->microbatch >= 0 && n->stage >= 0)
		fprintf(f, "\\nmb %d \xc2\xb7 st %d", n->microbatch, n->stage);
	else if (n->microbatch >= 0)
		fprintf(f, "\\nmb %d", n->microbatch);
	else if (n->stage >= 0)
		fprintf(f, "\\nst %d", n->stage);
	if (n->flops > 0)
		fprintf(f, "\\n%.3g MFLOP", n->flops / 1e6);
	fprintf(f, "\", fillcolor=\"%s\"", kind_colour[kind]);
	if (n->phase == TG_PHASE_BWD)
		fprintf(f, ", style=\"filled,dashed\"");
	else if (n->phase == TG_PHASE_OPT)
		fprintf(f, ", shape=hexagon");
	else if (n->phase == TG_PHASE_DATA)
		fprintf(f, ", shape=ellipse, fontsize=8");
	if (on_path)
		fprintf(f, ", color=\"#d62828\", penwidth=2.5");
	fprintf(f, ", tooltip=\"");
	put_escaped(f, n->op->name);
	fprintf(f, " (%s, %s)", kind_name[kind], phase_name[n->phase]);
	if (n->fwd_node >= 0)
		fprintf(f, ", differentiates n%d", n->fwd_node);
	for (int i = 0; i < n->n; i++) {
		const tg_gtensor *t = &g->tensors[n->opd[i].slot];
		fprintf(f, "&#10;%s ", mode_name(n->opd[i].mode));
		put_escaped(f, t->name);
		fputc(' ', f);
		put_shape(f, t);
	}
	fprintf(f, "\"];\n");
}

/* ------------------------------------------------------------------ clusters */

/* Where a node goes: its stage (-1: none), its group in the stage (a micro-batch, none, or the
 * gradient reduction, which sorts after the micro-batches it sums), its layer (-1: none).
 * Sorted by these and then by node id, the nodes of one cluster are contiguous and every
 * list is in a fixed order: the same graph gives the same bytes. */
enum { GROUP_NONE = -1, GROUP_REDUCTION = INT_MAX };
typedef struct place {
	int stage, group, layer, node;
} place;

static int cmp_int(int a, int b)
{
	return (a > b) - (a < b);
}

static int cmp_place(const void *pa, const void *pb)
{
	const place *a = pa, *b = pb;
	int c = cmp_int(a->stage, b->stage);
	if (!c)
		c = cmp_int(a->group, b->group);
	if (!c)
		c = cmp_int(a->layer, b->layer); /* layer indices: the graph's order of first appearance */
	return c ? c : cmp_int(a->node, b->node);
}

static int cmp_int_p(const void *a, const void *b)
{
	return cmp_int(*(const int *)a, *(const int *)b);
}

/* A sum of micro-batches' gradients: a task of tg_sum outside every micro-batch (a sum inside
 * one is that micro-batch's own work). */
static int is_reduction(const tg_task_node *n)
{
	return n->microbatch < 0 && strcmp(n->op->name, "sum") == 0;
}

/* Light fill and border per stage, cycling: neighbouring stages differ, so the pipeline reads
 * as bands of colour. */
static const char *stage_fill[] = {"#e7f0fd", "#fdf0e2", "#e6f5ea", "#f5e8f5", "#fdf7d9", "#e5f4f6"};
static const char *stage_border[] = {"#4a7cc9", "#d08a3c", "#4c9a62", "#a05ca0", "#b39b27", "#3f8f99"};
#define NSTAGE_COLOURS ((int)(sizeof stage_fill / sizeof stage_fill[0]))

static void count(FILE *f, const char *sep, int n, const char *one, const char *many)
{
	fprintf(f, "%s%d %s", sep, n, n == 1 ? one : many);
}

/* The graph's label: the counts, the legend and, for a tagged graph, its strategy (counts of
 * distinct stages and micro-batches, and of the gradient reduction's tasks). */
static void put_label(FILE *f, const tg_graph *g, int cp_len, double cp_flops, int nstages, int nmb, int nred)
{
	fprintf(f, "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=12, labelloc=t, "
	           "label=\"taskgrad: %d tasks, %d dependencies; red: longest path by flop count "
	           "(%d tasks, %.3g MFLOP)\\nfill: op kind; dashed: backward; hexagon: optimizer; ellipse: partition switch",
	        g->nnodes, g->nedges, cp_len, cp_flops / 1e6);
	if (nstages > 0 || nmb > 0) {
		const char *sep = "\\n";
		if (nstages > 0) {
			count(f, sep, nstages, "pipeline stage", "pipeline stages");
			sep = ", ";
		}
		if (nmb > 0)
			count(f, sep, nmb, "micro-batch", "micro-batches");
		fprintf(f, " (clusters: %s%slayer", nstages > 0 ? "stage > " : "", nmb > 0 ? "micro-batch > " : "");
		if (nred > 0)
			count(f, "; gradient reduction: ", nred, "task", "tasks");
		fputc(')', f);
	}
	fprintf(f, "\"];\n");
}

/* Open the cluster of one level: its name extends its parent's (unique in the graph); a
 * layer at the top keeps its old name, cluster_<layer>. */
static void open_cluster(FILE *f, const tg_graph *g, int depth, const char *parent, char *name, size_t size,
                         int level, const place *p)
{
	int in = 2 * (depth + 1);
	const char *sep = parent[0] ? "_" : "";
	if (level == 0)
		snprintf(name, size, "s%d", p->stage);
	else if (level == 1 && p->group == GROUP_REDUCTION)
		snprintf(name, size, "%s%sreduction", parent, sep);
	else if (level == 1)
		snprintf(name, size, "%s%smb%d", parent, sep, p->group);
	else if (parent[0])
		snprintf(name, size, "%s_l%d", parent, p->layer);
	else
		snprintf(name, size, "%d", p->layer);
	fprintf(f, "%*ssubgraph cluster_%s {\n%*slabel=\"", in, "", name, in + 2, "");
	if (level == 0) {
		fprintf(f, "stage %d\"; style=\"rounded,filled\"; fillcolor=\"%s\"; color=\"%s\"; penwidth=2;\n", p->stage,
		        stage_fill[p->stage % NSTAGE_COLOURS], stage_border[p->stage % NSTAGE_COLOURS]);
	} else if (level == 1 && p->group == GROUP_REDUCTION) {
		fprintf(f, "gradient reduction\"; style=\"rounded,filled\"; fillcolor=\"#fff8ec\"; color=\"#f4a261\"; "
		           "penwidth=1.5;\n");
	} else if (level == 1) {
		fprintf(f, "micro-batch %d\"; style=\"rounded,filled,dashed\"; fillcolor=\"#ffffff\"; color=\"#6c757d\";\n",
		        p->group);
	} else {
		put_escaped(f, g->layers[p->layer]);
		fprintf(f, "\"; style=\"rounded,filled\"; fillcolor=\"#f8f9fa\"; color=\"#adb5bd\";\n");
	}
}

int tg_graph_write_dot(const tg_graph *g, FILE *f)
{
	TG_CHECK(g && f, TG_EINVAL, "tg_graph_write_dot: NULL argument");
	size_t nn = (size_t)g->nnodes + 1;
	int *path_from = malloc(nn * sizeof *path_from), *mbs = malloc(nn * sizeof *mbs);
	place *pl = malloc(nn * sizeof *pl);
	int rc = path_from && mbs && pl ? 0 : tg_error(TG_ENOMEM, "out of memory");
	double cp_flops;
	int cp_len;
	if (rc == 0)
		rc = longest_path(g, path_from, &cp_flops, &cp_len);
	if (rc < 0) {
		free(path_from);
		free(mbs);
		free(pl);
		return rc;
	}
	/* the micro-batches present, sorted: their count, and whether there is anything to
	 * reduce (the reduction cluster only then: a graph without tags keeps its old shape) */
	int nmbs = 0;
	for (int i = 0; i < g->nnodes; i++)
		if (g->nodes[i]->microbatch >= 0)
			mbs[nmbs++] = g->nodes[i]->microbatch;
	qsort(mbs, (size_t)nmbs, sizeof *mbs, cmp_int_p);
	int nmb = 0;
	for (int k = 0; k < nmbs; k++)
		nmb += k == 0 || mbs[k] != mbs[k - 1];
	for (int i = 0; i < g->nnodes; i++) {
		const tg_task_node *n = g->nodes[i];
		pl[i].stage = n->stage >= 0 ? n->stage : -1;
		pl[i].group = n->microbatch >= 0          ? n->microbatch
		              : nmb > 0 && is_reduction(n) ? GROUP_REDUCTION
		                                           : GROUP_NONE;
		pl[i].layer = n->layer;
		pl[i].node = i;
	}
	qsort(pl, (size_t)g->nnodes, sizeof *pl, cmp_place);
	int nstages = 0, nred = 0;
	for (int k = 0; k < g->nnodes; k++) {
		nstages += pl[k].stage >= 0 && (k == 0 || pl[k].stage != pl[k - 1].stage);
		nred += pl[k].group == GROUP_REDUCTION;
	}
	fprintf(f, "digraph taskgrad {\n");
	put_label(f, g, cp_len, cp_flops, nstages, nmb, nred);
	fprintf(f, "  node [shape=box, style=filled, fontname=\"Helvetica\", fontsize=10];\n");
	fprintf(f, "  edge [color=\"#555555\", arrowsize=0.6];\n");
	/* one pass over the sorted nodes: close the levels whose key changed, open the ones the
	 * node needs (stage, group, layer: open[] says which are open, name[] their names) */
	int open[3] = {0, 0, 0}, depth = 0;
	char name[3][64] = {"", "", ""};
	const place none = {-1, GROUP_NONE, -1, -1};
	const place *cur = &none;
	for (int k = 0; k < g->nnodes; k++) {
		const place *p = &pl[k];
		int changed[3];
		changed[0] = p->stage != cur->stage;
		changed[1] = changed[0] || p->group != cur->group;
		changed[2] = changed[1] || p->layer != cur->layer;
		for (int lv = 2; lv >= 0; lv--)
			if (open[lv] && changed[lv]) {
				open[lv] = 0;
				depth--;
				fprintf(f, "%*s}\n", 2 * (depth + 1), "");
			}
		const int wanted[3] = {p->stage >= 0, p->group != GROUP_NONE, p->layer >= 0};
		for (int lv = 0; lv < 3; lv++)
			if (wanted[lv] && !open[lv]) {
				const char *parent = lv == 2 && open[1] ? name[1] : lv >= 1 && open[0] ? name[0] : "";
				open_cluster(f, g, depth, parent, name[lv], sizeof name[lv], lv, p);
				open[lv] = 1;
				depth++;
			}
		cur = p;
		put_node(f, g, g->nodes[p->node], path_from[p->node] != -2, 2 * (depth + 1));
	}
	while (depth > 0) {
		depth--;
		fprintf(f, "%*s}\n", 2 * (depth + 1), "");
	}
	for (int i = 0; i < g->nnodes; i++) {
		const tg_task_node *n = g->nodes[i];
		for (int k = 0; k < n->npred; k++) {
			int p = n->preds[k];
			fprintf(f, "  n%d -> n%d", p, i);
			if (path_from[i] == p)
				fprintf(f, " [color=\"#d62828\", penwidth=2.5]");
			fprintf(f, ";\n");
		}
	}
	fprintf(f, "}\n");
	free(path_from);
	free(mbs);
	free(pl);
	TG_CHECK(!ferror(f), TG_EIO, "writing the DOT graph failed");
	return 0;
}

static int write_dot(FILE *f, void *g)
{
	return tg_graph_write_dot(g, f);
}

int tg_graph_dump_dot(const tg_graph *g, const char *path)
{
	TG_CHECK(g, TG_EINVAL, "tg_graph_dump_dot: graph is NULL");
	return tg_write_file_atomic(path, write_dot, (void *)g);
}
