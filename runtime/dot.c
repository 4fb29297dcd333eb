/* dot.c — the graph in Graphviz DOT: a cluster per layer, a colour per op kind, a style per
 * phase, stable node ids (n<record index>) and the longest path by flop count in red. */
#include "tg_internal.h"

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

static void put_node(FILE *f, const tg_graph *g, const tg_task_node *n, int on_path, const char *indent)
{
	int kind = n->op->kind >= 0 && n->op->kind < TG_KIND_COUNT ? n->op->kind : TG_KIND_OTHER;
	fprintf(f, "%sn%d [label=\"", indent, n->id);
	put_escaped(f, n->task_name);
	if (n->microbatch >= 0)
		fprintf(f, "\\nmb %d", n->microbatch);
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

int tg_graph_write_dot(const tg_graph *g, FILE *f)
{
	TG_CHECK(g && f, TG_EINVAL, "tg_graph_write_dot: NULL argument");
	int *path_from = malloc(((size_t)g->nnodes + 1) * sizeof *path_from);
	TG_CHECK(path_from, TG_ENOMEM, "out of memory");
	double cp_flops;
	int cp_len;
	int rc = longest_path(g, path_from, &cp_flops, &cp_len);
	if (rc < 0) {
		free(path_from);
		return rc;
	}
	fprintf(f, "digraph taskgrad {\n");
	fprintf(f, "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=12, labelloc=t, "
	           "label=\"taskgrad: %d tasks, %d dependencies; red: longest path by flop count "
	           "(%d tasks, %.3g MFLOP)\\nfill: op kind; dashed: backward; hexagon: optimizer; ellipse: partition switch\"];\n",
	        g->nnodes, g->nedges, cp_len, cp_flops / 1e6);
	fprintf(f, "  node [shape=box, style=filled, fontname=\"Helvetica\", fontsize=10];\n");
	fprintf(f, "  edge [color=\"#555555\", arrowsize=0.6];\n");
	for (int l = -1; l < g->nlayers; l++) {
		const char *indent = "  ";
		if (l >= 0) {
			fprintf(f, "  subgraph cluster_%d {\n    label=\"", l);
			put_escaped(f, g->layers[l]);
			fprintf(f, "\"; style=\"rounded,filled\"; fillcolor=\"#f8f9fa\"; color=\"#adb5bd\";\n");
			indent = "    ";
		}
		for (int i = 0; i < g->nnodes; i++)
			if (g->nodes[i]->layer == l)
				put_node(f, g, g->nodes[i], path_from[i] != -2, indent);
		if (l >= 0)
			fprintf(f, "  }\n");
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
