/* tensor.c — tensors: a shape, a home copy in (pinned) host memory, a StarPU handle.
 * Rank >= 2 is registered as a starpu_matrix (nx = last dimension, ny = the product of the
 * others, ld = nx); rank 1 as a starpu_vector. */
#include "tg_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t tg_dtype_size(tg_dtype d)
{
	(void)d; /* float32 and int32 */
	return 4;
}

static const char *dtype_name(tg_dtype d)
{
	return d == TG_F32 ? "f32" : d == TG_I32 ? "i32" : "?";
}

static void shape_str(char *buf, size_t size, int rank, const int64_t *shape)
{
	size_t used = (size_t)snprintf(buf, size, "(");
	for (int i = 0; i < rank && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (used < size)
		snprintf(buf + used, size - used, ")");
}

int tg_tensor_check_shape(int rank, const int64_t *shape, int64_t *numel)
{
	TG_CHECK(rank >= 1 && rank <= TG_MAX_RANK, TG_ESHAPE, "tensor rank must be 1 to %d, got %d", TG_MAX_RANK, rank);
	TG_CHECK(shape, TG_ESHAPE, "tensor shape is NULL");
	char s[160];
	shape_str(s, sizeof s, rank, shape);
	int64_t n = 1;
	for (int i = 0; i < rank; i++) {
		TG_CHECK(shape[i] >= 1, TG_ESHAPE, "tensor shape %s: dimension %d is %" PRId64 ", it must be >= 1", s, i, shape[i]);
		TG_CHECK(shape[i] <= INT64_MAX / n, TG_ESHAPE, "tensor shape %s: the number of elements overflows", s);
		n *= shape[i];
	}
	/* StarPU's matrix sizes are 32-bit and BLAS/CUDA sizes are int: rows and columns must
	 * fit in an int; the byte size must fit too. */
	int64_t cols = shape[rank - 1], rows = n / cols;
	TG_CHECK(cols <= INT32_MAX && rows <= INT32_MAX, TG_ESHAPE,
	         "tensor shape %s: %" PRId64 " rows of %" PRId64 " columns exceed the 32-bit sizes of StarPU and BLAS", s,
	         rows, cols);
	TG_CHECK((uint64_t)n <= SIZE_MAX / 4 && n <= INT64_MAX / 4, TG_ESHAPE, "tensor shape %s: too many bytes", s);
	*numel = n;
	return 0;
}

/* Allocate the tensor and its home memory; the handle is registered by finish_tensor once
 * the contents are in place. */
static int alloc_struct(tg_tensor **out, const char *name, tg_dtype dtype, int rank, const int64_t *shape, int host_less)
{
	TG_TRY(tg_require_init("tg_tensor_new"));
	TG_CHECK(out, TG_EINVAL, "tg_tensor_new: out is NULL");
	*out = NULL;
	TG_CHECK(dtype == TG_F32 || dtype == TG_I32, TG_EINVAL, "unknown tensor dtype %d", (int)dtype);
	int64_t numel;
	TG_TRY(tg_tensor_check_shape(rank, shape, &numel));
	tg_tensor *t = calloc(1, sizeof *t);
	TG_CHECK(t, TG_ENOMEM, "out of memory");
	t->dtype = dtype;
	t->rank = rank;
	memcpy(t->shape, shape, (size_t)rank * sizeof *shape);
	t->numel = numel;
	t->nbytes = (size_t)numel * tg_dtype_size(dtype);
	t->cols = (uint32_t)shape[rank - 1];
	t->rows = (uint32_t)(numel / shape[rank - 1]);
	t->ld = t->cols;
	t->name = strdup(name ? name : "");
	t->layer = tg_rt.layer ? strdup(tg_rt.layer) : NULL;
	t->is_leaf = 1;
	t->id = ++tg_rt.tensor_ids;
	if (!t->name || (tg_rt.layer && !t->layer) || (!host_less && starpu_malloc(&t->host, t->nbytes) != 0)) {
		free(t->name);
		free(t->layer);
		free(t);
		char s[160];
		shape_str(s, sizeof s, rank, shape);
		return tg_error(TG_ENOMEM, "out of memory for tensor '%s' %s (%zu bytes)", name ? name : "", s, (size_t)numel * 4);
	}
	*out = t;
	return 0;
}

static int alloc_tensor(tg_tensor **out, const char *name, tg_dtype dtype, int rank, const int64_t *shape)
{
	return alloc_struct(out, name, dtype, rank, shape, 0);
}

static void free_struct(tg_tensor *t)
{
	free(t->name);
	free(t->layer);
	free(t);
}

static void live_add(tg_tensor *t)
{
	t->live_prev = NULL;
	t->live_next = tg_rt.live;
	if (tg_rt.live)
		tg_rt.live->live_prev = t;
	tg_rt.live = t;
	tg_rt.live_tensors++;
	if (t->host) {
		tg_rt.live_bytes += t->nbytes;
		if (tg_rt.live_bytes > tg_rt.peak_bytes)
			tg_rt.peak_bytes = tg_rt.live_bytes;
	}
}

static void live_remove(tg_tensor *t)
{
	if (t->live_prev)
		t->live_prev->live_next = t->live_next;
	else
		tg_rt.live = t->live_next;
	if (t->live_next)
		t->live_next->live_prev = t->live_prev;
	t->live_prev = t->live_next = NULL;
	tg_rt.live_tensors--;
}

/* Give the StarPU side back: the partitions, then the handle and the home copy (waits for
 * the tasks that use it). The structure stays (orphan) until tg_tensor_free. */
static void release(tg_tensor *t)
{
	if (t->orphan)
		return;
	tg_plans_clean(t);
	tg_graph_forget_tensor(t);
	starpu_data_unregister(t->handle);
	if (t->host)
		tg_rt.live_bytes -= t->nbytes;
	tg_starpu_free(t->host, t->nbytes);
	t->handle = NULL;
	t->host = NULL;
	t->orphan = 1;
	live_remove(t);
}

int tg_memory_get(size_t *in_use, size_t *peak, int reset_peak)
{
	TG_TRY(tg_require_init("tg_memory_get"));
	if (in_use)
		*in_use = tg_rt.live_bytes;
	if (peak)
		*peak = tg_rt.peak_bytes;
	if (reset_peak)
		tg_rt.peak_bytes = tg_rt.live_bytes;
	return 0;
}

int64_t tg_tensor_release_all(void)
{
	int64_t n = tg_rt.live_tensors;
	while (tg_rt.live)
		release(tg_rt.live);
	return n;
}

static void finish_tensor(tg_tensor *t)
{
	if (t->rank == 1)
		starpu_vector_data_register(&t->handle, STARPU_MAIN_RAM, (uintptr_t)t->host, t->cols,
		                            tg_dtype_size(t->dtype));
	else
		starpu_matrix_data_register(&t->handle, STARPU_MAIN_RAM, (uintptr_t)t->host, t->cols,
		                            t->cols, t->rows, tg_dtype_size(t->dtype));
	if (t->name[0])
		starpu_data_set_name(t->handle, t->name);
	live_add(t);
}

int tg_tensor_new(tg_tensor **out, const char *name, tg_dtype dtype, int rank, const int64_t *shape)
{
	TG_TRY(alloc_tensor(out, name, dtype, rank, shape));
	finish_tensor(*out);
	return 0;
}

int tg_tensor_new_from_host(tg_tensor **out, const char *name, tg_dtype dtype, int rank,
                            const int64_t *shape, const void *data, size_t size)
{
	TG_CHECK(out, TG_EINVAL, "tg_tensor_new_from_host: out is NULL");
	*out = NULL;
	TG_CHECK(data, TG_EINVAL, "tg_tensor_new_from_host: data is NULL");
	TG_TRY(alloc_tensor(out, name, dtype, rank, shape));
	if (size != (*out)->nbytes) {
		size_t want = (*out)->nbytes;
		tg_starpu_free((*out)->host, want);
		free_struct(*out);
		*out = NULL;
		return tg_error(TG_EINVAL, "tg_tensor_new_from_host: tensor '%s' holds %zu bytes, the buffer %zu",
		                name ? name : "", want, size);
	}
	memcpy((*out)->host, data, (*out)->nbytes);
	finish_tensor(*out);
	return 0;
}

static int check_fill(const tg_fill *fill)
{
	TG_CHECK(fill, TG_EINVAL, "fill is NULL");
	TG_CHECK(fill->kind >= TG_FILL_ZEROS && fill->kind <= TG_FILL_NORMAL, TG_EINVAL, "unknown fill kind %d", (int)fill->kind);
	TG_CHECK(fill->kind != TG_FILL_UNIFORM || fill->a < fill->b, TG_EINVAL,
	         "uniform fill needs a < b, got [%g, %g)", (double)fill->a, (double)fill->b);
	TG_CHECK(fill->kind != TG_FILL_NORMAL || fill->b >= 0, TG_EINVAL,
	         "normal fill needs a standard deviation >= 0, got %g", (double)fill->b);
	return 0;
}

int tg_fill_host(float *dst, int64_t n, const tg_fill *fill)
{
	TG_CHECK(dst || n == 0, TG_EINVAL, "tg_fill_host: destination is NULL");
	TG_CHECK(n >= 0, TG_EINVAL, "tg_fill_host: negative count %lld", (long long)n);
	TG_TRY(check_fill(fill));
	tg_fill_host_f32(dst, n, fill);
	return 0;
}

static int fill_host(tg_tensor *t, const tg_fill *fill)
{
	TG_TRY(check_fill(fill));
	if (t->dtype == TG_I32) {
		TG_CHECK(fill->kind == TG_FILL_ZEROS || fill->kind == TG_FILL_CONSTANT, TG_EINVAL,
		         "tensor '%s' is int32: only zero and constant fills apply", t->name);
		int32_t v = fill->kind == TG_FILL_ZEROS ? 0 : (int32_t)fill->a;
		int32_t *p = t->host;
		for (int64_t i = 0; i < t->numel; i++)
			p[i] = v;
		return 0;
	}
	tg_fill_host_f32(t->host, t->numel, fill);
	return 0;
}

int tg_tensor_new_filled(tg_tensor **out, const char *name, tg_dtype dtype, int rank,
                         const int64_t *shape, const tg_fill *fill)
{
	TG_TRY(alloc_tensor(out, name, dtype, rank, shape));
	int rc = fill_host(*out, fill);
	if (rc < 0) {
		tg_starpu_free((*out)->host, (*out)->nbytes);
		free_struct(*out);
		*out = NULL;
		return rc;
	}
	finish_tensor(*out);
	return 0;
}

int tg_tensor_free(tg_tensor *t)
{
	if (!t)
		return 0;
	TG_CHECK(!t->parent, TG_ESTATE,
	         "tg_tensor_free: '%s' is part of '%s': it goes with its parent (or tg_tensor_drop_partition)", t->name,
	         t->parent->name);
	if (t->grad_owned)
		tg_tensor_free(t->grad);
	else if (t->grad && t->grad->grad_of == t)
		t->grad->grad_of = NULL;
	if (t->grad_of && t->grad_of->grad == t) /* a gradient freed on its own: forget it */
		t->grad_of->grad = NULL;
	if (tg_rt.initialized)
		release(t);
	tg_plans_free(t);
	free_struct(t);
	return 0;
}

int tg_tensor_prefetch(tg_tensor *t, unsigned backend)
{
	TG_TRY(tg_require_init("tg_tensor_prefetch"));
	TG_CHECK(t, TG_EINVAL, "tg_tensor_prefetch: tensor is NULL");
	TG_TRY(tg_tensor_check_usable(t, "tg_tensor_prefetch"));
	TG_CHECK(backend == TG_BACKEND_CPU || backend == TG_BACKEND_CUDA, TG_EINVAL,
	         "tg_tensor_prefetch: backend must be TG_BACKEND_CPU or TG_BACKEND_CUDA");
	TG_TRY(tg_tensor_make_accessible(t));
	unsigned node = STARPU_MAIN_RAM;
	if (backend == TG_BACKEND_CUDA) {
		int worker = -1;
#ifdef STARPU_USE_CUDA
		if (starpu_worker_get_count_by_type(STARPU_CUDA_WORKER) > 0)
			starpu_worker_get_ids_by_type(STARPU_CUDA_WORKER, &worker, 1);
#endif
		TG_CHECK(worker >= 0, TG_ENODEV, "tg_tensor_prefetch: there is no CUDA worker");
		node = starpu_worker_get_memory_node((unsigned)worker);
	}
	TG_CHECK(starpu_data_fetch_on_node(t->handle, node, 0) == 0, TG_ESTARPU,
	         "tg_tensor_prefetch: StarPU could not fetch '%s'", t->name);
	return 0;
}

int tg_tensor_check_usable(const tg_tensor *t, const char *what)
{
	TG_CHECK(t, TG_EINVAL, "%s: tensor is NULL", what);
	TG_CHECK(!t->orphan, TG_ESTATE, "%s: tensor '%s' belongs to a runtime that was shut down", what, t->name);
	TG_CHECK(!t->dropped, TG_ESTATE, "%s: tensor '%s' is part of a partition that was dropped", what, t->name);
	return 0;
}

/* Host access: acquire the home copy, copy, release. */
static int host_access(const tg_tensor *t, size_t size, enum starpu_data_access_mode mode, const char *what)
{
	TG_TRY(tg_require_init(what));
	TG_CHECK(t, TG_EINVAL, "%s: tensor is NULL", what);
	TG_CHECK(size == t->nbytes, TG_EINVAL, "%s: tensor '%s' holds %zu bytes, the buffer %zu", what, t->name, t->nbytes, size);
	TG_TRY(tg_tensor_check_usable(t, what));
	TG_TRY(tg_tensor_make_accessible((tg_tensor *)t));
	int rc = starpu_data_acquire(t->handle, mode);
	TG_CHECK(rc == 0, TG_ESTARPU, "%s: starpu_data_acquire failed (%d)", what, rc);
	return 0;
}

/* Copy between a packed host buffer and the tensor's home copy (rows ld apart). */
static void copy_rows(const tg_tensor *t, void *dst, const void *src, int to_host)
{
	size_t row = (size_t)t->cols * tg_dtype_size(t->dtype), stride = (size_t)t->ld * tg_dtype_size(t->dtype);
	if (row == stride) {
		memcpy(dst, src, t->nbytes);
		return;
	}
	for (uint32_t r = 0; r < t->rows; r++) {
		if (to_host)
			memcpy((char *)dst + r * row, (const char *)src + r * stride, row);
		else
			memcpy((char *)dst + r * stride, (const char *)src + r * row, row);
	}
}

int tg_tensor_to_host(const tg_tensor *t, void *dst, size_t size)
{
	TG_CHECK(dst, TG_EINVAL, "tg_tensor_to_host: destination is NULL");
	TG_TRY(host_access(t, size, STARPU_R, "tg_tensor_to_host"));
	copy_rows(t, dst, t->host, 1);
	starpu_data_release(t->handle);
	int rc = tg_async_error_take();
	return rc;
}

int tg_tensor_from_host(tg_tensor *t, const void *src, size_t size)
{
	TG_CHECK(src, TG_EINVAL, "tg_tensor_from_host: source is NULL");
	TG_TRY(host_access(t, size, STARPU_W, "tg_tensor_from_host"));
	copy_rows(t, t->host, src, 0);
	tg_tensor_bump_version(t);
	starpu_data_release(t->handle);
	return 0;
}

int tg_tensor_fill(tg_tensor *t, const tg_fill *fill)
{
	TG_CHECK(t, TG_EINVAL, "tg_tensor_fill: tensor is NULL");
	TG_CHECK(t->ld == t->cols, TG_ENOTSUP, "tg_tensor_fill: '%s' is a strided part of a tensor; fill a host buffer and use tg_tensor_from_host", t->name);
	TG_TRY(host_access(t, t->nbytes, STARPU_W, "tg_tensor_fill"));
	int rc = fill_host(t, fill);
	tg_tensor_bump_version(t);
	starpu_data_release(t->handle);
	return rc;
}

const char *tg_tensor_shape_str(const tg_tensor *t, char *buf, size_t size)
{
	if (!buf || size == 0)
		return NULL;
	buf[0] = '\0';
	if (t)
		shape_str(buf, size, t->rank, t->shape);
	return buf;
}

int tg_tensor_rank(const tg_tensor *t) { return t ? t->rank : 0; }
const int64_t *tg_tensor_shape(const tg_tensor *t) { return t ? t->shape : NULL; }
int64_t tg_tensor_numel(const tg_tensor *t) { return t ? t->numel : 0; }
size_t tg_tensor_nbytes(const tg_tensor *t) { return t ? t->nbytes : 0; }
tg_dtype tg_tensor_dtype(const tg_tensor *t) { return t ? t->dtype : TG_F32; }
const char *tg_tensor_name(const tg_tensor *t) { return t ? t->name : ""; }
const char *tg_tensor_layer(const tg_tensor *t) { return t ? t->layer : NULL; }
uint64_t tg_tensor_id(const tg_tensor *t) { return t ? t->id : 0; }

static void bump_down(tg_tensor *t)
{
	t->version++;
	for (tg_plan *p = t->plans; p; p = p->next)
		for (int i = 0; i < p->n; i++)
			bump_down(p->children[i]);
}

void tg_tensor_bump_version(tg_tensor *t)
{
	bump_down(t);
	for (tg_tensor *a = t->parent; a; a = a->parent)
		a->version++;
}
static void set_down(tg_tensor *t, int leaf, int requires_grad)
{
	if (leaf >= 0)
		t->is_leaf = leaf;
	if (requires_grad >= 0)
		t->requires_grad = requires_grad;
	for (tg_plan *p = t->plans; p; p = p->next)
		for (int i = 0; i < p->n; i++)
			set_down(p->children[i], leaf, requires_grad);
}

void tg_tensor_mark_written(tg_tensor *t, int needs_grad)
{
	/* a tensor, its parts and the wholes it is part of are all activations now */
	tg_tensor *root = t;
	while (root->parent)
		root = root->parent;
	set_down(root, 0, -1);
	/* what t holds (and each part of it) depends on the op's inputs; a whole it is part of
	 * needs a gradient when any of its parts does */
	set_down(t, -1, needs_grad);
	for (tg_tensor *a = t->parent; a; a = a->parent)
		a->requires_grad |= needs_grad;
}

int tg_tensor_set_name(tg_tensor *t, const char *name)
{
	TG_TRY(tg_tensor_check_usable(t, "tg_tensor_set_name"));
	char *copy = strdup(name ? name : "");
	TG_CHECK(copy, TG_ENOMEM, "out of memory");
	starpu_data_set_name(t->handle, copy); /* StarPU keeps the pointer: the old name goes after */
	free(t->name);
	t->name = copy;
	return 0;
}

int tg_tensor_set_layer(tg_tensor *t, const char *layer)
{
	TG_TRY(tg_tensor_check_usable(t, "tg_tensor_set_layer"));
	char *copy = NULL;
	if (layer) {
		copy = strdup(layer);
		TG_CHECK(copy, TG_ENOMEM, "out of memory");
	}
	free(t->layer);
	t->layer = copy;
	return 0;
}

int64_t tg_tensor_rows(const tg_tensor *t) { return t ? t->rows : 0; }
int64_t tg_tensor_cols(const tg_tensor *t) { return t ? t->cols : 0; }

int64_t tg_tensor_dim(const tg_tensor *t, int i)
{
	if (!t)
		return 0;
	if (i < 0)
		i += t->rank;
	return (i >= 0 && i < t->rank) ? t->shape[i] : 0;
}

int tg_tensor_set_requires_grad(tg_tensor *t, int on)
{
	TG_TRY(tg_tensor_check_usable(t, "tg_tensor_set_requires_grad"));
	TG_CHECK(!on || t->dtype == TG_F32, TG_EINVAL, "tensor '%s' is %s: only float32 tensors have gradients",
	         t->name, dtype_name(t->dtype));
	t->requires_grad = on ? 1 : 0;
	return 0;
}

int tg_tensor_requires_grad(const tg_tensor *t) { return t ? t->requires_grad : 0; }
tg_tensor *tg_tensor_grad(const tg_tensor *t) { return t ? t->grad : NULL; }

int tg_tensor_grad_valid(const tg_tensor *t)
{
	if (!t || !t->grad)
		return 0;
	if (t->is_leaf)
		return tg_leaf_grad_valid(t);
	return t->grad_valid && t->grad_serial == tg_rt.backward_serial && t->grad_version == t->version;
}

int tg_tensor_set_grad(tg_tensor *t, tg_tensor *g)
{
	TG_CHECK(t && g, TG_EINVAL, "tg_tensor_set_grad: NULL argument");
	TG_TRY(tg_require_init("tg_tensor_set_grad"));
	TG_TRY(tg_tensor_check_usable(t, "tg_tensor_set_grad"));
	TG_TRY(tg_tensor_check_usable(g, "tg_tensor_set_grad"));
	TG_CHECK(t != g, TG_EINVAL, "tg_tensor_set_grad: a tensor cannot be its own gradient");
	TG_CHECK(t->dtype == TG_F32 && g->dtype == TG_F32, TG_EINVAL, "tg_tensor_set_grad: '%s' and '%s' must be float32",
	         t->name, g->name);
	int same = t->rank == g->rank;
	for (int i = 0; same && i < t->rank; i++)
		same = t->shape[i] == g->shape[i];
	char ts[160], gs[160];
	shape_str(ts, sizeof ts, t->rank, t->shape);
	shape_str(gs, sizeof gs, g->rank, g->shape);
	TG_CHECK(same, TG_ESHAPE, "tg_tensor_set_grad: gradient '%s' %s must have the shape of '%s' %s", g->name, gs,
	         t->name, ts);
	if (t->grad != g) {
		tg_tensor *old = t->grad;
		/* the parts' gradients that are parts of the old buffer go first */
		tg_parts_grad_reset(t, old);
		if (t->grad_owned)
			tg_tensor_free(old);
		else if (old && old->grad_of == t)
			old->grad_of = NULL; /* the old buffer is an ordinary tensor again */
		t->grad = g;
		t->grad_owned = 0;
	}
	g->grad_of = t;
	t->grad_valid = t->is_leaf;
	t->grad_serial = 0;
	return 0;
}

int tg_zero_grad(tg_tensor *param)
{
	TG_TRY(tg_tensor_check_usable(param, "tg_zero_grad"));
	param->grad_valid = 0;
	tg_parts_grad_reset(param, NULL);
	return 0;
}
