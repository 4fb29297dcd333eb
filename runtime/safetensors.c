/* safetensors.c — safetensors files: a reader that validates everything, and a writer.
 *
 * A file is an 8-byte little-endian header size N, N bytes of a JSON object (the header),
 * then the data region. The reader takes a file as hostile input: it reads it whole into
 * memory (a regular file only), then checks every entry of the header and the layout of the
 * data region (tensors back to back, no overlap, no byte outside every tensor) before it
 * hands anything out, so that no accessor can reach outside the file. The writer lays the
 * tensors out back to back in the order added and pads the header with spaces so that the
 * data region starts at a multiple of 8, as the reference writer does; the same adds give
 * the same bytes. */
#include "tg_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A larger header is not a header (the reference reader's limit too). */
#define ST_MAX_HEADER 100000000u

/* ---------------------------------------------------------------- shared */

typedef struct st_dtype {
	const char *name;
	size_t size;
} st_dtype;

static const st_dtype st_dtypes[] = {
	{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
	{"U8", 1},  {"U16", 2}, {"U32", 4}, {"U64", 8},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};
#define ST_DTYPE_LIST "F64, F32, F16, BF16, I64, I32, I16, I8, U8, U16, U32, U64, BOOL, F8_E4M3, F8_E5M2"

static const st_dtype *find_dtype(const char *name)
{
	for (size_t i = 0; name && i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
		if (strcmp(st_dtypes[i].name, name) == 0)
			return &st_dtypes[i];
	return NULL;
}

/* The data of a file is little-endian, and it is handed out (and taken) as it is in memory. */
static int check_host(const char *what)
{
	const uint32_t one = 1;
	unsigned char first;
	memcpy(&first, &one, 1);
	TG_CHECK(first == 1, TG_ENOTSUP, "%s: safetensors data is little-endian and this host is big-endian", what);
	return 0;
}

/* The bytes of a tensor of shape (rank, shape), dimensions >= 0, with elements of esize
 * bytes; -1 when the count does not fit in an int64_t or a size_t. */
static int byte_count(int rank, const int64_t *shape, size_t esize, size_t *bytes)
{
	*bytes = 0;
	for (int i = 0; i < rank; i++)
		if (shape[i] == 0)
			return 0;
	uint64_t numel = 1;
	for (int i = 0; i < rank; i++) {
		if (numel > (uint64_t)INT64_MAX / (uint64_t)shape[i])
			return -1;
		numel *= (uint64_t)shape[i];
	}
	if (numel > (uint64_t)INT64_MAX / esize || numel > SIZE_MAX / esize)
		return -1;
	*bytes = (size_t)(numel * esize);
	return 0;
}

/* "(2, 3)", "()" for rank 0. */
typedef struct st_shape_text {
	char s[200];
} st_shape_text;

static st_shape_text shape_text(int rank, const int64_t *shape)
{
	st_shape_text r;
	size_t used = (size_t)snprintf(r.s, sizeof r.s, "(");
	for (int i = 0; i < rank && used < sizeof r.s; i++)
		used += (size_t)snprintf(r.s + used, sizeof r.s - used, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (used < sizeof r.s)
		snprintf(r.s + used, sizeof r.s - used, ")");
	return r;
}
#define SHAPE_TEXT(rank, shape) (shape_text((rank), (shape)).s)

/* A name from a file or a caller as it goes into a message: control characters as '?', and
 * cut (between characters) with "..." when long. */
typedef struct st_shown {
	char s[100];
} st_shown;

static st_shown shown_name(const char *name)
{
	st_shown r;
	const unsigned char *p = (const unsigned char *)(name ? name : "");
	size_t len = strlen((const char *)p), keep = len, n = 0;
	if (len > sizeof r.s - 4) {
		keep = sizeof r.s - 4;
		while (keep > 0 && (p[keep] & 0xc0) == 0x80) /* p[keep] continues a UTF-8 character */
			keep--;
	}
	for (size_t i = 0; i < keep; i++)
		r.s[n++] = p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
	if (keep < len) {
		memcpy(r.s + n, "...", 3);
		n += 3;
	}
	r.s[n] = '\0';
	return r;
}
#define SHOWN_NAME(name_) (shown_name(name_).s)

/* 1 if s is valid UTF-8, as a JSON string must be (jansson refuses to make a string of it
 * otherwise). */
static int valid_utf8(const char *s)
{
	json_t *j = json_string(s);
	int ok = j != NULL;
	json_decref(j);
	return ok;
}

/* ---------------------------------------------------------------- reader */

typedef struct st_tensor {
	char *name;
	const char *dtype;          /* st_dtypes' name */
	int rank;
	int64_t shape[TG_ST_MAX_RANK];
	size_t begin, end;          /* in the data region */
	int order;                  /* place in the header: orders tensors at one offset */
} st_tensor;

struct tg_st_file {
	char *path;
	unsigned char *bytes;       /* the whole file */
	size_t size;
	size_t data_start, data_size;
	st_tensor *t;               /* sorted by data offset */
	int n;
	char **meta_key, **meta_value;
	int nmeta;
};

/* The file is not a valid safetensors file: the message names it and what is wrong. */
static int bad_file(const char *file, int line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad_file(const char *file, int line, const char *path, const char *fmt, ...)
{
	char what[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return tg_set_error_at(file, line, TG_EIO, "'%s' is not a valid safetensors file: %s", TG_SHOWN(path), what);
}
#define ST_CHECK(cond, ...)                                                          \
	do {                                                                         \
		if (!(cond))                                                         \
			return bad_file(__FILE__, __LINE__, path, __VA_ARGS__);      \
	} while (0)

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a JSON value";
}

/* The whole of a regular file (opened without blocking: a FIFO is refused, not waited on). */
static int read_whole(const char *path, unsigned char **out, size_t *size)
{
	*out = NULL;
	*size = 0;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return tg_error(TG_EIO, "cannot read '%s': %s", TG_SHOWN(path), strerror(e));
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		rc = tg_error(TG_EIO, "cannot read '%s': %s", TG_SHOWN(path), strerror(e));
	} else if (!S_ISREG(st.st_mode)) {
		rc = tg_error(TG_EIO, "cannot read '%s': it is %s, not a safetensors file", TG_SHOWN(path),
		              tg_file_kind(st.st_mode));
	} else if (st.st_size < 0 || (uintmax_t)st.st_size > SIZE_MAX / 2) {
		rc = tg_error(TG_EIO, "cannot read '%s': it is too large (%jd bytes)", TG_SHOWN(path),
		              (intmax_t)st.st_size);
	}
	size_t n = rc == 0 ? (size_t)st.st_size : 0, got = 0;
	unsigned char *buf = rc == 0 ? malloc(n ? n : 1) : NULL;
	if (rc == 0 && !buf)
		rc = tg_error(TG_ENOMEM, "cannot read '%s': out of memory for its %zu bytes", TG_SHOWN(path), n);
	while (rc == 0 && got < n) {
		size_t chunk = n - got < ((size_t)1 << 30) ? n - got : (size_t)1 << 30;
		ssize_t r = read(fd, buf + got, chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			rc = tg_error(TG_EIO, "cannot read '%s': %s", TG_SHOWN(path), strerror(e));
		} else if (r == 0) {
			rc = tg_error(TG_EIO, "cannot read '%s': it shrank while it was read (%zu of %zu bytes)",
			              TG_SHOWN(path), got, n);
		} else {
			got += (size_t)r;
		}
	}
	close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*size = n;
	return 0;
}

static int parse_metadata(tg_st_file *f, const char *path, json_t *md)
{
	ST_CHECK(json_is_object(md), "__metadata__ is %s, not an object of strings", json_kind(md));
	size_t n = json_object_size(md);
	f->meta_key = calloc(n ? n : 1, sizeof *f->meta_key);
	f->meta_value = calloc(n ? n : 1, sizeof *f->meta_value);
	TG_CHECK(f->meta_key && f->meta_value, TG_ENOMEM, "out of memory reading '%s'", TG_SHOWN(path));
	const char *key;
	json_t *v;
	json_object_foreach(md, key, v) {
		ST_CHECK(json_is_string(v), "metadata entry '%s' is %s, not a string", SHOWN_NAME(key), json_kind(v));
		char *k = strdup(key), *value = strdup(json_string_value(v));
		f->meta_key[f->nmeta] = k;
		f->meta_value[f->nmeta] = value;
		f->nmeta++;
		TG_CHECK(k && value, TG_ENOMEM, "out of memory reading '%s'", TG_SHOWN(path));
	}
	return 0;
}

/* One offset of data_offsets. */
static int parse_offset(const tg_st_file *f, const char *path, const char *name, const json_t *v, int which,
                        size_t *offset)
{
	const char *what = which ? "end" : "begin";
	ST_CHECK(json_is_integer(v), "tensor '%s': data_offsets %s is %s, not an integer", SHOWN_NAME(name), what,
	         json_kind(v));
	json_int_t x = json_integer_value(v);
	ST_CHECK(x >= 0, "tensor '%s': data_offsets %s is %lld, offsets must be >= 0", SHOWN_NAME(name), what,
	         (long long)x);
	ST_CHECK((unsigned long long)x <= f->data_size,
	         "tensor '%s': data_offsets %s %lld is past the end of the data region, which has %zu bytes (the file "
	         "has %zu, of which %zu are the header and its size)", SHOWN_NAME(name), what, (long long)x,
	         f->data_size, f->size, f->data_start);
	*offset = (size_t)x;
	return 0;
}

static int parse_tensor(const tg_st_file *f, const char *path, const char *name, json_t *v, st_tensor *t)
{
	ST_CHECK(json_is_object(v), "tensor '%s' is %s, not an object", SHOWN_NAME(name), json_kind(v));
	json_t *dtype = NULL, *shape = NULL, *offsets = NULL, *x;
	const char *field;
	json_object_foreach(v, field, x) {
		if (strcmp(field, "dtype") == 0)
			dtype = x;
		else if (strcmp(field, "shape") == 0)
			shape = x;
		else if (strcmp(field, "data_offsets") == 0)
			offsets = x;
		else
			ST_CHECK(0, "tensor '%s' has an unknown field '%s' (a tensor has dtype, shape and "
			         "data_offsets)", SHOWN_NAME(name), SHOWN_NAME(field));
	}
	ST_CHECK(dtype, "tensor '%s' has no dtype", SHOWN_NAME(name));
	ST_CHECK(shape, "tensor '%s' has no shape", SHOWN_NAME(name));
	ST_CHECK(offsets, "tensor '%s' has no data_offsets", SHOWN_NAME(name));

	ST_CHECK(json_is_string(dtype), "tensor '%s': its dtype is %s, not a string", SHOWN_NAME(name),
	         json_kind(dtype));
	const st_dtype *d = find_dtype(json_string_value(dtype));
	ST_CHECK(d, "tensor '%s' has an unknown dtype '%s' (known: " ST_DTYPE_LIST ")", SHOWN_NAME(name),
	         SHOWN_NAME(json_string_value(dtype)));
	t->dtype = d->name;

	ST_CHECK(json_is_array(shape), "tensor '%s': its shape is %s, not an array of integers", SHOWN_NAME(name),
	         json_kind(shape));
	size_t rank = json_array_size(shape);
	ST_CHECK(rank <= TG_ST_MAX_RANK, "tensor '%s' has %zu dimensions, more than the %d supported", SHOWN_NAME(name),
	         rank, TG_ST_MAX_RANK);
	for (size_t i = 0; i < rank; i++) {
		json_t *e = json_array_get(shape, i);
		ST_CHECK(json_is_integer(e), "tensor '%s': shape entry %zu is %s, not an integer", SHOWN_NAME(name), i,
		         json_kind(e));
		json_int_t dim = json_integer_value(e);
		ST_CHECK(dim >= 0, "tensor '%s': shape entry %zu is %lld, dimensions must be >= 0", SHOWN_NAME(name), i,
		         (long long)dim);
		t->shape[i] = (int64_t)dim;
	}
	t->rank = (int)rank;

	ST_CHECK(json_is_array(offsets), "tensor '%s': its data_offsets is %s, not an array [begin, end]",
	         SHOWN_NAME(name), json_kind(offsets));
	ST_CHECK(json_array_size(offsets) == 2, "tensor '%s': its data_offsets is an array of %zu, not of two offsets "
	         "[begin, end]", SHOWN_NAME(name), json_array_size(offsets));
	TG_TRY(parse_offset(f, path, name, json_array_get(offsets, 0), 0, &t->begin));
	TG_TRY(parse_offset(f, path, name, json_array_get(offsets, 1), 1, &t->end));
	ST_CHECK(t->begin <= t->end, "tensor '%s': its data_offsets [%zu, %zu] begin after they end", SHOWN_NAME(name),
	         t->begin, t->end);

	size_t want;
	ST_CHECK(byte_count(t->rank, t->shape, d->size, &want) == 0,
	         "tensor '%s': shape %s of %s has too many elements (its byte count overflows)", SHOWN_NAME(name),
	         SHAPE_TEXT(t->rank, t->shape), d->name);
	ST_CHECK(want == t->end - t->begin,
	         "tensor '%s': shape %s of %s takes %zu bytes, but its data_offsets [%zu, %zu] hold %zu",
	         SHOWN_NAME(name), SHAPE_TEXT(t->rank, t->shape), d->name, want, t->begin, t->end, t->end - t->begin);
	return 0;
}

static int by_offset(const void *pa, const void *pb)
{
	const st_tensor *a = pa, *b = pb;
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return (a->order > b->order) - (a->order < b->order);
}

/* Tensors back to back from the start of the data region to its end, as the format says. */
static int check_layout(tg_st_file *f, const char *path)
{
	if (f->n > 1)
		qsort(f->t, (size_t)f->n, sizeof *f->t, by_offset);
	size_t at = 0;
	const st_tensor *last = NULL; /* the tensor that ends at `at` */
	for (int i = 0; i < f->n; i++) {
		const st_tensor *t = &f->t[i];
		if (t->begin < at)
			ST_CHECK(0, "tensors '%s' (data_offsets [%zu, %zu]) and '%s' (data_offsets [%zu, %zu]) overlap",
			         SHOWN_NAME(last->name), last->begin, last->end, SHOWN_NAME(t->name), t->begin, t->end);
		ST_CHECK(t->begin == at,
		         "the %zu bytes at offset %zu of the data region belong to no tensor (they come before '%s')",
		         t->begin - at, at, SHOWN_NAME(t->name));
		at = t->end;
		last = t;
	}
	if (!last)
		ST_CHECK(at == f->data_size,
		         "the %zu bytes at offset 0 of the data region belong to no tensor (the header lists none)",
		         f->data_size);
	else
		ST_CHECK(at == f->data_size,
		         "the %zu bytes at offset %zu of the data region belong to no tensor (they come after '%s', "
		         "the last; the data region has %zu bytes)", f->data_size - at, at, SHOWN_NAME(last->name),
		         f->data_size);
	return 0;
}

static int parse_header(tg_st_file *f, const char *path, json_t *root)
{
	ST_CHECK(json_is_object(root), "its header is %s, not a JSON object", json_kind(root));
	size_t keys = json_object_size(root);
	ST_CHECK(keys < INT_MAX, "its header has %zu entries, too many", keys);
	const char *key;
	json_t *v;
	int order = 0, cap = 0;
	json_object_foreach(root, key, v) {
		if (strcmp(key, "__metadata__") == 0) {
			TG_TRY(parse_metadata(f, path, v));
			continue;
		}
		ST_CHECK(*key, "a tensor has an empty name");
		if (f->n == cap) { /* grown as entries pass, not sized by a header that may be mostly junk */
			cap = cap ? (cap < INT_MAX / 2 ? 2 * cap : INT_MAX) : 16;
			st_tensor *grown = realloc(f->t, (size_t)cap * sizeof *grown);
			TG_CHECK(grown, TG_ENOMEM, "out of memory reading '%s'", TG_SHOWN(path));
			f->t = grown;
		}
		st_tensor *t = &f->t[f->n];
		memset(t, 0, sizeof *t);
		t->name = strdup(key);
		TG_CHECK(t->name, TG_ENOMEM, "out of memory reading '%s'", TG_SHOWN(path));
		t->order = order++;
		f->n++;
		TG_TRY(parse_tensor(f, path, key, v, t));
	}
	return check_layout(f, path);
}

static int parse_file(tg_st_file *f, const char *path)
{
	ST_CHECK(f->size >= 8, "it has %zu bytes, fewer than the 8 that hold the size of its header", f->size);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | f->bytes[i];
	size_t rest = f->size - 8;
	ST_CHECK(n <= ST_MAX_HEADER, "its header size is %" PRIu64 " bytes, absurd (more than 100 MB; %zu bytes follow "
	         "the size)", n, rest);
	ST_CHECK(n <= rest, "its header size is %" PRIu64 " bytes, larger than the rest of the file (%zu bytes)", n,
	         rest);
	f->data_start = 8 + (size_t)n;
	f->data_size = rest - (size_t)n;
	json_error_t err;
	json_t *root = json_loadb((const char *)f->bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
	if (!root) {
		ST_CHECK(json_error_code(&err) != json_error_duplicate_key,
		         "its header has a duplicate key (%s, line %d, column %d)", SHOWN_NAME(err.text), err.line,
		         err.column);
		ST_CHECK(0, "its header is not valid JSON: %s (line %d, column %d)", SHOWN_NAME(err.text), err.line,
		         err.column);
	}
	int rc = parse_header(f, path, root);
	json_decref(root);
	return rc;
}

int tg_st_open(tg_st_file **out, const char *path)
{
	TG_CHECK(out, TG_EINVAL, "tg_st_open: out is NULL");
	*out = NULL;
	TG_CHECK(path && *path, TG_EINVAL, "tg_st_open: no file name given");
	TG_TRY(check_host("tg_st_open"));
	tg_st_file *f = calloc(1, sizeof *f);
	TG_CHECK(f, TG_ENOMEM, "out of memory");
	f->path = strdup(path);
	int rc = f->path ? read_whole(path, &f->bytes, &f->size) : tg_error(TG_ENOMEM, "out of memory");
	if (rc == 0)
		rc = parse_file(f, path);
	if (rc < 0) {
		tg_st_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void tg_st_close(tg_st_file *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n; i++)
		free(f->t[i].name);
	for (int i = 0; i < f->nmeta; i++) {
		free(f->meta_key[i]);
		free(f->meta_value[i]);
	}
	free(f->t);
	free(f->meta_key);
	free(f->meta_value);
	free(f->bytes);
	free(f->path);
	free(f);
}

int tg_st_num_tensors(const tg_st_file *f)
{
	TG_CHECK(f, TG_EINVAL, "tg_st_num_tensors: the file is NULL");
	return f->n;
}

int tg_st_tensor_info(const tg_st_file *f, int i, tg_st_info *info)
{
	TG_CHECK(f && info, TG_EINVAL, "tg_st_tensor_info: %s is NULL", f ? "info" : "the file");
	TG_CHECK(i >= 0 && i < f->n, TG_EINVAL, "tg_st_tensor_info: '%s' has no tensor %d (it has %d)",
	         TG_SHOWN(f->path), i, f->n);
	const st_tensor *t = &f->t[i];
	memset(info, 0, sizeof *info);
	info->name = t->name;
	info->dtype = t->dtype;
	info->rank = t->rank;
	memcpy(info->shape, t->shape, (size_t)t->rank * sizeof *t->shape);
	info->nbytes = t->end - t->begin;
	info->offset = t->begin;
	return 0;
}

int tg_st_find(const tg_st_file *f, const char *name)
{
	for (int i = 0; f && name && i < f->n; i++)
		if (strcmp(f->t[i].name, name) == 0)
			return i;
	return -1;
}

const void *tg_st_tensor_data(const tg_st_file *f, int i)
{
	if (!f || i < 0 || i >= f->n)
		return NULL;
	return f->bytes + f->data_start + f->t[i].begin;
}

const char *tg_st_metadata(const tg_st_file *f, const char *key)
{
	for (int i = 0; f && key && i < f->nmeta; i++)
		if (strcmp(f->meta_key[i], key) == 0)
			return f->meta_value[i];
	return NULL;
}

int tg_st_num_metadata(const tg_st_file *f)
{
	TG_CHECK(f, TG_EINVAL, "tg_st_num_metadata: the file is NULL");
	return f->nmeta;
}

int tg_st_metadata_at(const tg_st_file *f, int i, const char **key, const char **value)
{
	TG_CHECK(f, TG_EINVAL, "tg_st_metadata_at: the file is NULL");
	TG_CHECK(i >= 0 && i < f->nmeta, TG_EINVAL, "tg_st_metadata_at: '%s' has no metadata entry %d (it has %d)",
	         TG_SHOWN(f->path), i, f->nmeta);
	if (key)
		*key = f->meta_key[i];
	if (value)
		*value = f->meta_value[i];
	return 0;
}

int tg_st_read_f32(const tg_st_file *f, const char *name, int rank, const int64_t *shape, float *dst)
{
	TG_CHECK(f && name, TG_EINVAL, "tg_st_read_f32: %s is NULL", f ? "the name" : "the file");
	TG_CHECK(rank >= 0 && rank <= TG_ST_MAX_RANK, TG_EINVAL, "tg_st_read_f32: rank %d, it must be 0 to %d", rank,
	         TG_ST_MAX_RANK);
	TG_CHECK(shape || rank == 0, TG_EINVAL, "tg_st_read_f32: the shape is NULL");
	int i = tg_st_find(f, name);
	TG_CHECK(i >= 0, TG_EIO, "'%s' has no tensor '%s'", TG_SHOWN(f->path), SHOWN_NAME(name));
	const st_tensor *t = &f->t[i];
	TG_CHECK(strcmp(t->dtype, "F32") == 0, TG_EIO, "tensor '%s' of '%s' is %s, not F32", SHOWN_NAME(name),
	         TG_SHOWN(f->path), t->dtype);
	int same = t->rank == rank;
	for (int k = 0; same && k < rank; k++)
		same = t->shape[k] == shape[k];
	TG_CHECK(same, TG_ESHAPE, "tensor '%s' of '%s' has shape %s, not %s", SHOWN_NAME(name), TG_SHOWN(f->path),
	         SHAPE_TEXT(t->rank, t->shape), SHAPE_TEXT(rank, shape));
	size_t nbytes = t->end - t->begin;
	TG_CHECK(dst || nbytes == 0, TG_EINVAL, "tg_st_read_f32: the destination is NULL");
	if (nbytes)
		memcpy(dst, f->bytes + f->data_start + t->begin, nbytes);
	return 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct st_entry {
	char *name;
	const char *dtype;          /* st_dtypes' name */
	int rank;
	int64_t shape[TG_ST_MAX_RANK];
	void *data;
	size_t nbytes;
} st_entry;

struct tg_st_writer {
	st_entry *t;
	int n, cap;
	size_t data_bytes;
	char **meta_key, **meta_value;
	int nmeta, capmeta;
};

int tg_st_writer_new(tg_st_writer **out)
{
	TG_CHECK(out, TG_EINVAL, "tg_st_writer_new: out is NULL");
	*out = NULL;
	TG_TRY(check_host("tg_st_writer_new"));
	*out = calloc(1, sizeof **out);
	TG_CHECK(*out, TG_ENOMEM, "out of memory");
	return 0;
}

void tg_st_writer_free(tg_st_writer *w)
{
	if (!w)
		return;
	for (int i = 0; i < w->n; i++) {
		free(w->t[i].name);
		free(w->t[i].data);
	}
	for (int i = 0; i < w->nmeta; i++) {
		free(w->meta_key[i]);
		free(w->meta_value[i]);
	}
	free(w->t);
	free(w->meta_key);
	free(w->meta_value);
	free(w);
}

/* What a new tensor must be; *d receives its dtype. */
static int check_entry(const tg_st_writer *w, const char *what, const char *name, const char *dtype, int rank,
                       const int64_t *shape, size_t nbytes, const st_dtype **d)
{
	TG_CHECK(w, TG_EINVAL, "%s: the writer is NULL", what);
	TG_CHECK(name && *name, TG_EINVAL, "%s: a tensor needs a name (not empty)", what);
	TG_CHECK(strcmp(name, "__metadata__") != 0, TG_EINVAL,
	         "%s: '__metadata__' names the metadata of a file, it cannot name a tensor", what);
	TG_CHECK(valid_utf8(name), TG_EINVAL, "%s: tensor name '%s' is not valid UTF-8", what, SHOWN_NAME(name));
	for (int i = 0; i < w->n; i++)
		TG_CHECK(strcmp(w->t[i].name, name) != 0, TG_EINVAL, "%s: there is already a tensor '%s'", what,
		         SHOWN_NAME(name));
	*d = find_dtype(dtype);
	TG_CHECK(*d, TG_EINVAL, "%s: tensor '%s': unknown dtype '%s' (known: " ST_DTYPE_LIST ")", what,
	         SHOWN_NAME(name), SHOWN_NAME(dtype ? dtype : "(null)"));
	TG_CHECK(rank >= 0 && rank <= TG_ST_MAX_RANK, TG_ESHAPE, "%s: tensor '%s': rank %d, it must be 0 to %d", what,
	         SHOWN_NAME(name), rank, TG_ST_MAX_RANK);
	TG_CHECK(shape || rank == 0, TG_ESHAPE, "%s: tensor '%s': the shape is NULL", what, SHOWN_NAME(name));
	for (int i = 0; i < rank; i++)
		TG_CHECK(shape[i] >= 0, TG_ESHAPE, "%s: tensor '%s': shape %s, dimension %d is negative", what,
		         SHOWN_NAME(name), SHAPE_TEXT(rank, shape), i);
	size_t want;
	TG_CHECK(byte_count(rank, shape, (*d)->size, &want) == 0, TG_ESHAPE,
	         "%s: tensor '%s': shape %s of %s has too many elements (its byte count overflows)", what,
	         SHOWN_NAME(name), SHAPE_TEXT(rank, shape), (*d)->name);
	TG_CHECK(nbytes == want, TG_EINVAL, "%s: tensor '%s': shape %s of %s takes %zu bytes, %zu given", what,
	         SHOWN_NAME(name), SHAPE_TEXT(rank, shape), (*d)->name, want, nbytes);
	TG_CHECK(w->data_bytes <= (size_t)INT64_MAX - nbytes && w->n < INT_MAX - 1, TG_EINVAL,
	         "%s: tensor '%s' would make the file too large", what, SHOWN_NAME(name));
	return 0;
}

/* Add a checked tensor whose data (malloc'd, or NULL when empty) the writer takes. */
static int append(tg_st_writer *w, const char *name, const st_dtype *d, int rank, const int64_t *shape, void *data,
                  size_t nbytes)
{
	if (w->n == w->cap) {
		int cap = w->cap ? (w->cap < INT_MAX / 2 ? 2 * w->cap : INT_MAX) : 16;
		st_entry *t = realloc(w->t, (size_t)cap * sizeof *t);
		if (!t) {
			free(data);
			return tg_error(TG_ENOMEM, "out of memory");
		}
		w->t = t;
		w->cap = cap;
	}
	st_entry *e = &w->t[w->n];
	memset(e, 0, sizeof *e);
	e->name = strdup(name);
	if (!e->name) {
		free(data);
		return tg_error(TG_ENOMEM, "out of memory");
	}
	e->dtype = d->name;
	e->rank = rank;
	if (rank > 0)
		memcpy(e->shape, shape, (size_t)rank * sizeof *shape);
	e->data = data;
	e->nbytes = nbytes;
	w->data_bytes += nbytes;
	w->n++;
	return 0;
}

int tg_st_writer_add(tg_st_writer *w, const char *name, const char *dtype, int rank, const int64_t *shape,
                     const void *data, size_t nbytes)
{
	const st_dtype *d;
	TG_TRY(check_entry(w, "tg_st_writer_add", name, dtype, rank, shape, nbytes, &d));
	TG_CHECK(data || nbytes == 0, TG_EINVAL, "tg_st_writer_add: tensor '%s': the data is NULL", SHOWN_NAME(name));
	void *copy = NULL;
	if (nbytes) {
		copy = malloc(nbytes);
		TG_CHECK(copy, TG_ENOMEM, "tg_st_writer_add: out of memory for the %zu bytes of tensor '%s'", nbytes,
		         SHOWN_NAME(name));
		memcpy(copy, data, nbytes);
	}
	return append(w, name, d, rank, shape, copy, nbytes);
}

int tg_st_writer_add_tensor(tg_st_writer *w, const char *name, const tg_tensor *t)
{
	TG_CHECK(w, TG_EINVAL, "tg_st_writer_add_tensor: the writer is NULL");
	TG_TRY(tg_tensor_check_usable(t, "tg_st_writer_add_tensor"));
	const char *dtype = t->dtype == TG_F32 ? "F32" : t->dtype == TG_I32 ? "I32" : NULL;
	TG_CHECK(dtype, TG_EINVAL, "tg_st_writer_add_tensor: tensor '%s' has an unknown dtype %d", SHOWN_NAME(t->name),
	         (int)t->dtype);
	const st_dtype *d;
	TG_TRY(check_entry(w, "tg_st_writer_add_tensor", name, dtype, t->rank, t->shape, t->nbytes, &d));
	void *copy = malloc(t->nbytes ? t->nbytes : 1);
	TG_CHECK(copy, TG_ENOMEM, "tg_st_writer_add_tensor: out of memory for the %zu bytes of tensor '%s'", t->nbytes,
	         SHOWN_NAME(name));
	int rc = tg_tensor_to_host(t, copy, t->nbytes);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	return append(w, name, d, t->rank, t->shape, copy, t->nbytes);
}

int tg_st_writer_set_metadata(tg_st_writer *w, const char *key, const char *value)
{
	TG_CHECK(w, TG_EINVAL, "tg_st_writer_set_metadata: the writer is NULL");
	TG_CHECK(key && value, TG_EINVAL, "tg_st_writer_set_metadata: the %s is NULL", key ? "value" : "key");
	TG_CHECK(valid_utf8(key), TG_EINVAL, "tg_st_writer_set_metadata: key '%s' is not valid UTF-8", SHOWN_NAME(key));
	TG_CHECK(valid_utf8(value), TG_EINVAL, "tg_st_writer_set_metadata: the value of '%s' is not valid UTF-8",
	         SHOWN_NAME(key));
	char *v = strdup(value);
	TG_CHECK(v, TG_ENOMEM, "out of memory");
	for (int i = 0; i < w->nmeta; i++) {
		if (strcmp(w->meta_key[i], key) == 0) {
			free(w->meta_value[i]);
			w->meta_value[i] = v;
			return 0;
		}
	}
	if (w->nmeta == w->capmeta) {
		int cap = w->capmeta ? 2 * w->capmeta : 8;
		char **k = w->capmeta < INT_MAX / 2 ? realloc(w->meta_key, (size_t)cap * sizeof *k) : NULL;
		if (k)
			w->meta_key = k;
		char **vs = k ? realloc(w->meta_value, (size_t)cap * sizeof *vs) : NULL;
		if (vs)
			w->meta_value = vs;
		if (!k || !vs) {
			free(v);
			return tg_error(TG_ENOMEM, "out of memory");
		}
		w->capmeta = cap;
	}
	char *k = strdup(key);
	if (!k) {
		free(v);
		return tg_error(TG_ENOMEM, "out of memory");
	}
	w->meta_key[w->nmeta] = k;
	w->meta_value[w->nmeta] = v;
	w->nmeta++;
	return 0;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, or NULL when out of memory. */
static json_t *entry_json(const st_entry *e, size_t begin)
{
	json_t *t = json_object(), *shape = json_array(), *offsets = json_array();
	int ok = t && shape && offsets;
	for (int k = 0; ok && k < e->rank; k++)
		ok = json_array_append_new(shape, json_integer((json_int_t)e->shape[k])) == 0;
	ok = ok && json_array_append_new(offsets, json_integer((json_int_t)begin)) == 0 &&
	     json_array_append_new(offsets, json_integer((json_int_t)(begin + e->nbytes))) == 0 &&
	     json_object_set_new(t, "dtype", json_string(e->dtype)) == 0 && json_object_set(t, "shape", shape) == 0 &&
	     json_object_set(t, "data_offsets", offsets) == 0;
	json_decref(shape);
	json_decref(offsets);
	if (!ok) {
		json_decref(t);
		return NULL;
	}
	return t;
}

/* The header's JSON text (malloc'd): the metadata first, then the tensors in the order added. */
static int header_json(const tg_st_writer *w, char **out)
{
	json_t *root = json_object();
	int ok = root != NULL;
	if (ok && w->nmeta > 0) {
		json_t *md = json_object();
		ok = md && json_object_set_new(root, "__metadata__", md) == 0;
		for (int i = 0; ok && i < w->nmeta; i++)
			ok = json_object_set_new(md, w->meta_key[i], json_string(w->meta_value[i])) == 0;
	}
	size_t at = 0;
	for (int i = 0; ok && i < w->n; i++) {
		ok = json_object_set_new(root, w->t[i].name, entry_json(&w->t[i], at)) == 0;
		at += w->t[i].nbytes;
	}
	*out = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
	json_decref(root);
	TG_CHECK(*out, TG_ENOMEM, "out of memory making the header of a safetensors file");
	return 0;
}

typedef struct st_out {
	const tg_st_writer *w;
	const char *header;
	size_t len, padded;         /* the JSON text, and the header size with its padding */
} st_out;

static int write_body(FILE *fp, void *ctx)
{
	const st_out *o = ctx;
	unsigned char size[8];
	for (int i = 0; i < 8; i++)
		size[i] = (unsigned char)((uint64_t)o->padded >> (8 * i));
	static const char spaces[] = "       "; /* the padding is 7 bytes at most */
	int ok = fwrite(size, 1, sizeof size, fp) == sizeof size && fwrite(o->header, 1, o->len, fp) == o->len &&
	         fwrite(spaces, 1, o->padded - o->len, fp) == o->padded - o->len;
	for (int i = 0; ok && i < o->w->n; i++)
		ok = o->w->t[i].nbytes == 0 || fwrite(o->w->t[i].data, 1, o->w->t[i].nbytes, fp) == o->w->t[i].nbytes;
	if (!ok) {
		int e = errno ? errno : EIO;
		return tg_error(TG_EIO, "%s", strerror(e));
	}
	return 0;
}

int tg_st_writer_write(const tg_st_writer *w, const char *path)
{
	TG_CHECK(w, TG_EINVAL, "tg_st_writer_write: the writer is NULL");
	TG_TRY(check_host("tg_st_writer_write"));
	st_out o = {.w = w};
	char *header;
	TG_TRY(header_json(w, &header));
	o.header = header;
	o.len = strlen(header);
	o.padded = o.len + (8 - o.len % 8) % 8; /* 8 + padded is a multiple of 8 */
	int rc = 0;
	if (o.padded > ST_MAX_HEADER)
		rc = tg_error(TG_EINVAL, "cannot write '%s': its header would have %zu bytes, more than the 100 MB "
		              "readers take", TG_SHOWN(path), o.padded);
	else
		rc = tg_write_file_atomic(path, write_body, &o);
	free(header);
	return rc;
}
