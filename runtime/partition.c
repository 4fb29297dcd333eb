/* partition.c — children that are parts of a tensor (StarPU's asynchronous partitioning).
 *
 * A plan is made once (starpu_data_partition_plan, with our own filter so that a child can be
 * any block) and kept for the parent's life. StarPU has at most one plan of a tensor active;
 * before a task or the host uses a tensor, tg_tensor_make_accessible switches: it
 * unpartitions what covers the tensor (children first) and partitions its ancestors down to
 * it, each switch submitted asynchronously (starpu_data_partition_submit /
 * starpu_data_unpartition_submit, tasks named "partition" and "unpartition") and recorded on
 * the tape with the accesses StarPU gives it (partition: parent RW, children W; unpartition:
 * children RW, parent W), so the recorded edges stay StarPU's. */
#include "tg_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ the StarPU filter */

/* Child id of plan f->filter_arg_ptr: a block of the parent, with the parent's leading
 * dimension (a vector parent gives vector children). */
static void child_filter(void *father_interface, void *child_interface, struct starpu_data_filter *f, unsigned id,
                         unsigned nparts)
{
	(void)nparts;
	const tg_plan *p = f->filter_arg_ptr;
	const tg_child_geom *g = &p->geom[id];
	if (((struct starpu_matrix_interface *)father_interface)->id == STARPU_VECTOR_INTERFACE_ID && g->packed) {
		/* a packed block of a flat buffer: a contiguous matrix (ld = its columns) */
		struct starpu_vector_interface *father = father_interface;
		struct starpu_matrix_interface *child = child_interface;
		child->id = STARPU_MATRIX_INTERFACE_ID;
		child->nx = g->nx;
		child->ny = g->ny;
		child->ld = g->nx;
		child->elemsize = father->elemsize;
		child->allocsize = (size_t)child->nx * child->ny * child->elemsize;
		if (father->dev_handle) {
			if (father->ptr)
				child->ptr = father->ptr + g->offset;
			child->offset = father->offset + g->offset;
			child->dev_handle = father->dev_handle;
		}
		return;
	}
	if (((struct starpu_matrix_interface *)father_interface)->id == STARPU_VECTOR_INTERFACE_ID) {
		struct starpu_vector_interface *father = father_interface, *child = child_interface;
		child->id = STARPU_VECTOR_INTERFACE_ID;
		child->nx = g->nx;
		child->elemsize = father->elemsize;
		child->allocsize = (size_t)child->nx * child->elemsize;
		if (father->dev_handle) {
			if (father->ptr)
				child->ptr = father->ptr + g->offset;
			child->offset = father->offset + g->offset;
			child->dev_handle = father->dev_handle;
		}
		return;
	}
	struct starpu_matrix_interface *father = father_interface, *child = child_interface;
	child->id = STARPU_MATRIX_INTERFACE_ID;
	child->nx = g->nx;
	child->ny = g->ny;
	child->elemsize = father->elemsize;
	if (father->dev_handle) {
		if (father->ptr)
			child->ptr = father->ptr + g->offset;
		child->ld = father->ld;
		child->dev_handle = father->dev_handle;
		child->offset = father->offset + g->offset;
		child->allocsize = (size_t)child->ld * child->ny * child->elemsize;
	} else {
		child->allocsize = (size_t)child->nx * child->ny * child->elemsize;
	}
}

/* The interface of child id: a packed block of a flat buffer is a matrix, else the parent's kind. */
static struct starpu_data_interface_ops *child_ops(struct starpu_data_filter *f, unsigned id)
{
	const tg_plan *p = f->filter_arg_ptr;
	return p->geom[id].packed || p->parent->rank >= 2 ? &starpu_interface_matrix_ops : &starpu_interface_vector_ops;
}

/* ------------------------------------------------------------------ making plans */

static void shape_text(char *buf, size_t size, int rank, const int64_t *shape)
{
	size_t used = (size_t)snprintf(buf, size, "(");
	for (int i = 0; i < rank && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (used < size)
		snprintf(buf + used, size - used, ")");
}

static void free_plan_struct(tg_plan *p)
{
	if (!p)
		return;
	for (int i = 0; p->children && i < p->n; i++) {
		tg_tensor *c = p->children[i];
		if (!c)
			continue;
		free(c->name);
		free(c->layer);
		free(c);
	}
	free(p->children);
	free(p->handles);
	free(p->geom);
	free(p);
}

/* A new plan of parent with n children at the given blocks (shapes already checked). */
static int make_plan(tg_plan **out, tg_tensor *parent, tg_plan_kind kind, int nr, int nc, int n, const tg_block *b)
{
	tg_plan *p = calloc(1, sizeof *p);
	TG_CHECK(p, TG_ENOMEM, "out of memory");
	p->parent = parent;
	p->kind = kind;
	p->nr = nr;
	p->nc = nc;
	p->n = n;
	p->geom = calloc((size_t)n, sizeof *p->geom);
	p->handles = calloc((size_t)n, sizeof *p->handles);
	p->children = calloc((size_t)n, sizeof *p->children);
	if (!p->geom || !p->handles || !p->children) {
		free_plan_struct(p);
		return tg_error(TG_ENOMEM, "out of memory");
	}
	size_t esize = tg_dtype_size(parent->dtype);
	for (int i = 0; i < n; i++) {
		tg_tensor *c = calloc(1, sizeof *c);
		if (!c) {
			free_plan_struct(p);
			return tg_error(TG_ENOMEM, "out of memory");
		}
		p->children[i] = c;
		int64_t numel = 1;
		for (int d = 0; d < b[i].rank; d++)
			numel *= b[i].shape[d];
		c->dtype = parent->dtype;
		c->rank = b[i].rank;
		memcpy(c->shape, b[i].shape, sizeof c->shape);
		c->numel = numel;
		c->nbytes = (size_t)numel * esize;
		c->cols = (uint32_t)b[i].shape[b[i].rank - 1];
		c->rows = (uint32_t)(numel / c->cols);
		/* a flat (rank-1) parent: block i is contiguous from element col0, of any rank */
		int packed = parent->rank == 1 && b[i].rank >= 2;
		c->ld = packed ? c->cols : parent->ld;
		c->row0 = b[i].row0;
		c->col0 = b[i].col0;
		size_t offset = ((size_t)b[i].row0 * parent->ld + (size_t)b[i].col0) * esize;
		c->host = (char *)parent->host + offset;
		c->parent = parent;
		c->plan = p;
		c->index = i;
		c->is_leaf = 1;
		c->requires_grad = parent->requires_grad;
		c->id = ++tg_rt.tensor_ids;
		char name[256];
		snprintf(name, sizeof name, "%s[%d]", parent->name, i);
		c->name = strdup(name);
		c->layer = parent->layer ? strdup(parent->layer) : NULL;
		if (!c->name || (parent->layer && !c->layer)) {
			free_plan_struct(p);
			return tg_error(TG_ENOMEM, "out of memory");
		}
		p->geom[i].nx = c->cols;
		p->geom[i].ny = c->rows;
		p->geom[i].offset = offset;
		p->geom[i].packed = packed;
		p->any_packed |= packed;
	}
	p->filter.filter_func = child_filter;
	if (p->any_packed)
		p->filter.get_child_ops = child_ops;
	p->filter.nchildren = (unsigned)n;
	p->filter.filter_arg_ptr = p;
	starpu_data_partition_plan(parent->handle, &p->filter, p->handles);
	for (int i = 0; i < n; i++) {
		p->children[i]->handle = p->handles[i];
		starpu_data_set_name(p->handles[i], p->children[i]->name);
	}
	p->next = parent->plans;
	parent->plans = p;
	*out = p;
	return 0;
}

/* The children's shapes for a split of parent's rows or columns. */
static int split_blocks(const tg_tensor *parent, tg_split how, int n, tg_block *b)
{
	int64_t total = how == TG_SPLIT_ROWS ? parent->rows : parent->cols;
	/* rows of one index of dimension 0: a child keeps the parent's rank when it takes whole
	 * indices of dimension 0 */
	int64_t inner = parent->rank >= 2 ? (int64_t)parent->rows / parent->shape[0] : 1;
	int64_t at = 0;
	for (int i = 0; i < n; i++) {
		int64_t len = total / n + (i < total % n ? 1 : 0);
		memset(&b[i], 0, sizeof b[i]);
		if (how == TG_SPLIT_COLS) {
			b[i].row0 = 0;
			b[i].col0 = at;
			b[i].rank = parent->rank;
			memcpy(b[i].shape, parent->shape, sizeof b[i].shape);
			b[i].shape[parent->rank - 1] = len;
		} else {
			b[i].row0 = at;
			b[i].col0 = 0;
			if (parent->rank >= 3 && len % inner == 0 && at % inner == 0) {
				b[i].rank = parent->rank;
				memcpy(b[i].shape, parent->shape, sizeof b[i].shape);
				b[i].shape[0] = len / inner;
			} else {
				b[i].rank = 2;
				b[i].shape[0] = len;
				b[i].shape[1] = parent->cols;
			}
		}
		at += len;
	}
	return 0;
}

static int check_parent(const tg_tensor *parent, const char *what)
{
	TG_TRY(tg_require_init(what));
	TG_TRY(tg_tensor_check_usable(parent, what));
	TG_CHECK(!parent->grad_of || parent->grad_of->grad == parent, TG_EINVAL, "%s: '%s' is a detached gradient", what,
	         parent->name);
	return 0;
}

static tg_plan *find_plan(const tg_tensor *parent, tg_plan_kind kind, int nr, int nc)
{
	for (tg_plan *p = parent->plans; p; p = p->next)
		if (p->kind == kind && p->nr == nr && p->nc == nc)
			return p;
	return NULL;
}

static void give_children(const tg_plan *p, tg_tensor **children)
{
	for (int i = 0; i < p->n; i++)
		children[i] = p->children[i];
}

#define TG_MAX_CHILDREN 4096

int tg_tensor_partition(tg_tensor *parent, tg_split how, int n, tg_tensor **children)
{
	TG_CHECK(parent && children, TG_EINVAL, "tg_tensor_partition: NULL argument");
	TG_TRY(check_parent(parent, "tg_tensor_partition"));
	TG_CHECK(how == TG_SPLIT_ROWS || how == TG_SPLIT_COLS, TG_EINVAL, "tg_tensor_partition: unknown split %d", (int)how);
	int64_t total = how == TG_SPLIT_ROWS ? parent->rows : parent->cols;
	TG_CHECK(n >= 1 && n <= TG_MAX_CHILDREN && n <= total, TG_EINVAL,
	         "tg_tensor_partition: '%s' has %lld %s: it cannot be split into %d parts (1 to %lld)", parent->name,
	         (long long)total, how == TG_SPLIT_ROWS ? "rows" : "columns", n,
	         (long long)(total < TG_MAX_CHILDREN ? total : TG_MAX_CHILDREN));
	tg_plan_kind kind = how == TG_SPLIT_ROWS ? TG_PLAN_ROWS : TG_PLAN_COLS;
	tg_plan *p = find_plan(parent, kind, how == TG_SPLIT_ROWS ? n : 1, how == TG_SPLIT_ROWS ? 1 : n);
	if (!p) {
		tg_block *b = calloc((size_t)n, sizeof *b);
		TG_CHECK(b, TG_ENOMEM, "out of memory");
		split_blocks(parent, how, n, b);
		int rc = make_plan(&p, parent, kind, how == TG_SPLIT_ROWS ? n : 1, how == TG_SPLIT_ROWS ? 1 : n, n, b);
		free(b);
		TG_TRY(rc);
	}
	give_children(p, children);
	return 0;
}

int tg_tensor_partition_grid(tg_tensor *parent, int nr, int nc, tg_tensor **children)
{
	TG_CHECK(parent && children, TG_EINVAL, "tg_tensor_partition_grid: NULL argument");
	TG_TRY(check_parent(parent, "tg_tensor_partition_grid"));
	TG_CHECK(nr >= 1 && nc >= 1 && (uint32_t)nr <= parent->rows && (uint32_t)nc <= parent->cols && (int64_t)nr * nc <= TG_MAX_CHILDREN,
	         TG_EINVAL, "tg_tensor_partition_grid: '%s' is %u x %u: it cannot be split into %d x %d parts",
	         parent->name, parent->rows, parent->cols, nr, nc);
	tg_plan *p = find_plan(parent, TG_PLAN_GRID, nr, nc);
	if (!p) {
		int n = nr * nc;
		tg_block *b = calloc((size_t)n, sizeof *b);
		TG_CHECK(b, TG_ENOMEM, "out of memory");
		int64_t r0 = 0;
		for (int r = 0; r < nr; r++) {
			int64_t rlen = parent->rows / nr + (r < (int64_t)parent->rows % nr ? 1 : 0), c0 = 0;
			for (int c = 0; c < nc; c++) {
				int64_t clen = parent->cols / nc + (c < (int64_t)parent->cols % nc ? 1 : 0);
				tg_block *k = &b[r * nc + c];
				k->row0 = r0;
				k->col0 = c0;
				k->rank = 2;
				k->shape[0] = rlen;
				k->shape[1] = clen;
				c0 += clen;
			}
			r0 += rlen;
		}
		int rc = make_plan(&p, parent, TG_PLAN_GRID, nr, nc, n, b);
		free(b);
		TG_TRY(rc);
	}
	give_children(p, children);
	return 0;
}

/* Blocks of a flat (rank-1) parent: block i holds numel elements from element col0 (row0 is 0),
 * packed, whatever its rank (a parameter table in one buffer). */
static int packed_blocks(tg_tensor *parent, int n, const tg_block *blocks, tg_tensor **children, const char *ps)
{
	char bs[160];
	int64_t *len = calloc((size_t)n, sizeof *len);
	TG_CHECK(len, TG_ENOMEM, "out of memory");
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		if ((rc = tg_tensor_check_shape(blocks[i].rank, blocks[i].shape, &len[i])) < 0)
			break;
		shape_text(bs, sizeof bs, blocks[i].rank, blocks[i].shape);
		if (blocks[i].row0 != 0 || blocks[i].col0 < 0 || len[i] > parent->numel ||
		    blocks[i].col0 > parent->numel - len[i]) {
			rc = tg_error(TG_ESHAPE, "tg_tensor_partition_blocks: block %d %s at element %lld (row %lld) does not fit in "
			              "'%s' %s", i, bs, (long long)blocks[i].col0, (long long)blocks[i].row0, parent->name, ps);
			break;
		}
		for (int j = 0; j < i; j++)
			if (blocks[i].col0 < blocks[j].col0 + len[j] && blocks[j].col0 < blocks[i].col0 + len[i]) {
				rc = tg_error(TG_ESHAPE, "tg_tensor_partition_blocks: blocks %d and %d of '%s' overlap", j, i,
				              parent->name);
				break;
			}
	}
	free(len);
	TG_TRY(rc);
	tg_plan *p;
	TG_TRY(make_plan(&p, parent, TG_PLAN_BLOCKS, n, 1, n, blocks));
	give_children(p, children);
	return 0;
}

int tg_tensor_partition_blocks(tg_tensor *parent, int n, const tg_block *blocks, tg_tensor **children)
{
	TG_CHECK(parent && blocks && children, TG_EINVAL, "tg_tensor_partition_blocks: NULL argument");
	TG_TRY(check_parent(parent, "tg_tensor_partition_blocks"));
	TG_CHECK(n >= 1 && n <= TG_MAX_CHILDREN, TG_EINVAL, "tg_tensor_partition_blocks: %d blocks (1 to %d)", n,
	         TG_MAX_CHILDREN);
	char ps[160], bs[160];
	shape_text(ps, sizeof ps, parent->rank, parent->shape);
	if (parent->rank == 1)
		return packed_blocks(parent, n, blocks, children, ps);
	for (int i = 0; i < n; i++) {
		int64_t numel;
		TG_TRY(tg_tensor_check_shape(blocks[i].rank, blocks[i].shape, &numel));
		int64_t cols = blocks[i].shape[blocks[i].rank - 1], rows = numel / cols;
		shape_text(bs, sizeof bs, blocks[i].rank, blocks[i].shape);
		/* overflow-safe: row0 + rows <= parent rows, written without the sum */
		TG_CHECK(blocks[i].row0 >= 0 && blocks[i].col0 >= 0 && rows <= parent->rows && cols <= parent->cols &&
		                 blocks[i].row0 <= (int64_t)parent->rows - rows && blocks[i].col0 <= (int64_t)parent->cols - cols,
		         TG_ESHAPE, "tg_tensor_partition_blocks: block %d %s at row %lld, column %lld does not fit in '%s' %s", i,
		         bs, (long long)blocks[i].row0, (long long)blocks[i].col0, parent->name, ps);
		for (int j = 0; j < i; j++) {
			int64_t jn = 1;
			for (int d = 0; d < blocks[j].rank; d++)
				jn *= blocks[j].shape[d];
			int64_t jc = blocks[j].shape[blocks[j].rank - 1], jr = jn / jc;
			int apart = blocks[i].row0 >= blocks[j].row0 + jr || blocks[j].row0 >= blocks[i].row0 + rows ||
			            blocks[i].col0 >= blocks[j].col0 + jc || blocks[j].col0 >= blocks[i].col0 + cols;
			TG_CHECK(apart, TG_ESHAPE, "tg_tensor_partition_blocks: blocks %d and %d of '%s' overlap", j, i, parent->name);
		}
	}
	tg_plan *p;
	TG_TRY(make_plan(&p, parent, TG_PLAN_BLOCKS, n, 1, n, blocks));
	give_children(p, children);
	return 0;
}

int tg_plan_mirror(const tg_tensor *child, tg_tensor *other, tg_tensor **out)
{
	const tg_plan *p = child->plan;
	tg_tensor **kids = calloc((size_t)p->n, sizeof *kids);
	TG_CHECK(kids, TG_ENOMEM, "out of memory");
	int rc = 0;
	switch (p->kind) {
	case TG_PLAN_ROWS: rc = tg_tensor_partition(other, TG_SPLIT_ROWS, p->n, kids); break;
	case TG_PLAN_COLS: rc = tg_tensor_partition(other, TG_SPLIT_COLS, p->n, kids); break;
	case TG_PLAN_GRID: rc = tg_tensor_partition_grid(other, p->nr, p->nc, kids); break;
	default: {
		/* the same blocks: an existing plan of other made of them, or a new one */
		const tg_plan *q = other->plans;
		for (; q; q = q->next)
			if (q->kind == TG_PLAN_BLOCKS && q->n == p->n &&
			    memcmp(q->geom, p->geom, (size_t)p->n * sizeof *p->geom) == 0)
				break;
		if (q) {
			give_children(q, kids);
			break;
		}
		tg_block *b = calloc((size_t)p->n, sizeof *b);
		if (!b) {
			rc = tg_error(TG_ENOMEM, "out of memory");
			break;
		}
		for (int i = 0; i < p->n; i++) {
			const tg_tensor *c = p->children[i];
			b[i].row0 = c->row0;
			b[i].col0 = c->col0;
			b[i].rank = c->rank;
			memcpy(b[i].shape, c->shape, sizeof b[i].shape);
		}
		rc = tg_tensor_partition_blocks(other, p->n, b, kids);
		free(b);
	}
	}
	if (rc == 0)
		*out = kids[child->index];
	free(kids);
	return rc;
}

tg_tensor *tg_tensor_parent(const tg_tensor *t)
{
	return t ? t->parent : NULL;
}

/* ------------------------------------------------------------------ switching */

static void submit_switch(tg_plan *p, int partition)
{
	tg_graph_record_switch(p, partition);
	if (partition)
		starpu_data_partition_submit(p->parent->handle, (unsigned)p->n, p->handles);
	else
		starpu_data_unpartition_submit(p->parent->handle, (unsigned)p->n, p->handles, STARPU_MAIN_RAM);
}

/* t whole again: its active plan (and its children's, first) unpartitioned. */
static void deactivate(tg_tensor *t)
{
	tg_plan *p = t->active;
	if (!p)
		return;
	for (int i = 0; i < p->n; i++)
		deactivate(p->children[i]);
	submit_switch(p, 0);
	t->active = NULL;
}

/* p the active plan of its parent, the parent itself accessible. */
static void activate(tg_plan *p)
{
	tg_tensor *parent = p->parent;
	if (parent->active == p)
		return;
	if (parent->parent)
		activate(parent->plan);
	deactivate(parent);
	submit_switch(p, 1);
	parent->active = p;
}

int tg_tensor_make_accessible(tg_tensor *t)
{
	TG_TRY(tg_tensor_check_usable(t, "taskgrad"));
	if (t->parent)
		activate(t->plan);
	deactivate(t);
	return 0;
}

int tg_tensor_is_ancestor(const tg_tensor *a, const tg_tensor *t)
{
	for (; t; t = t->parent)
		if (t == a)
			return 1;
	return 0;
}

/* The plan of a under which t lies (t a strict descendant of a), or NULL. */
static const tg_plan *plan_towards(const tg_tensor *a, const tg_tensor *t)
{
	for (; t && t->parent; t = t->parent)
		if (t->parent == a)
			return t->plan;
	return NULL;
}

int tg_check_no_overlap(tg_tensor *const *t, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			const tg_tensor *a = t[i], *b = t[j];
			if (a == b)
				continue;
			TG_CHECK(!tg_tensor_is_ancestor(a, b) && !tg_tensor_is_ancestor(b, a), TG_EINVAL,
			         "%s: '%s' and '%s' overlap (one is part of the other); a task cannot use both", what, a->name,
			         b->name);
			/* a common ancestor reached through two different plans */
			for (const tg_tensor *x = a->parent; x; x = x->parent) {
				const tg_plan *pa = plan_towards(x, a), *pb = plan_towards(x, b);
				if (pa && pb && pa != pb)
					return tg_error(TG_EINVAL,
					                "%s: '%s' and '%s' are parts of two partitions of '%s'; a task cannot use "
					                "both (StarPU has one partition of a tensor active at a time)",
					                what, a->name, b->name, x->name);
			}
		}
	return 0;
}

/* ------------------------------------------------------------------ dropping */

/* Give StarPU's side of plan p (and of the plans below it) back: unpartitioned if active,
 * children unregistered. The structures stay, and every tensor below p is marked (MARK_DROPPED
 * or MARK_ORPHAN), so that using one is an error. */
enum { MARK_DROPPED = 1, MARK_ORPHAN = 2 };
static void clean_plan(tg_plan *p, int mark)
{
	for (int i = 0; i < p->n; i++) {
		tg_tensor *c = p->children[i];
		for (tg_plan *q = c->plans; q; q = q->next)
			clean_plan(q, mark);
		c->active = NULL;
	}
	if (p->parent->active == p)
		p->parent->active = NULL;
	starpu_data_partition_clean(p->parent->handle, (unsigned)p->n, p->handles);
	for (int i = 0; i < p->n; i++) {
		tg_graph_forget_tensor(p->children[i]);
		p->children[i]->handle = NULL;
		p->children[i]->dropped |= (mark & MARK_DROPPED) != 0;
		p->children[i]->orphan |= (mark & MARK_ORPHAN) != 0;
	}
}

/* Free the structures of a list of plans and of everything below them. */
static void free_plans(tg_plan *p)
{
	while (p) {
		tg_plan *next = p->next;
		for (int i = 0; i < p->n; i++) {
			free_plans(p->children[i]->plans);
			free_plans(p->children[i]->dropped_plans);
		}
		free_plan_struct(p);
		p = next;
	}
}

void tg_plans_clean(tg_tensor *t)
{
	for (tg_plan *p = t->plans; p; p = p->next)
		clean_plan(p, MARK_ORPHAN);
	t->active = NULL;
}

void tg_plans_free(tg_tensor *t)
{
	free_plans(t->plans);
	free_plans(t->dropped_plans);
	t->plans = t->dropped_plans = NULL;
}

int tg_tensor_drop_partition(tg_tensor *child)
{
	TG_CHECK(child, TG_EINVAL, "tg_tensor_drop_partition: tensor is NULL");
	TG_TRY(tg_require_init("tg_tensor_drop_partition"));
	TG_TRY(tg_tensor_check_usable(child, "tg_tensor_drop_partition"));
	TG_CHECK(child->parent, TG_EINVAL, "tg_tensor_drop_partition: '%s' is not part of a partition", child->name);
	tg_plan *p = child->plan;
	tg_tensor *parent = child->parent;
	/* the parent holds what the children hold once it is whole again */
	if (parent->active == p)
		deactivate(parent);
	clean_plan(p, MARK_DROPPED);
	for (tg_plan **q = &parent->plans; *q; q = &(*q)->next)
		if (*q == p) {
			*q = p->next;
			break;
		}
	p->next = parent->dropped_plans; /* freed with the parent */
	parent->dropped_plans = p;
	return 0;
}
