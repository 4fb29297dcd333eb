/*
 * test_safetensors.c — safetensors files: a round trip (every info field and byte; the same
 * bytes when what was read is written again), the header's padding, files made by hand the
 * way the reference writer makes them, each kind of corrupt file refused with its own
 * message, the writer's checks, tensors written from the runtime, and random damage that
 * never crashes the reader. Files go to tests/st-tmp in the build tree.
 */
#include "tg_test.h"

#include <sys/stat.h>
#include <sys/types.h>

static char tmp_dir[512];

/* A file name in the test folder (four at a time). */
static const char *tmp_file(const char *name)
{
	static char buf[4][600];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, sizeof buf[0], "%s/%s", tmp_dir, name);
	return p;
}

static int group_setup(void **state)
{
	(void)state;
	const char *top = getenv("TG_BUILDDIR");
	snprintf(tmp_dir, sizeof tmp_dir, "%s/tests/st-tmp", top && *top ? top : ".");
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmp_dir, tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_bytes(const char *path, const void *bytes, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	unsigned char *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

static void put_le64(unsigned char *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(x >> (8 * i));
}

/* The bytes of a file as the reference writer lays it out: the size, the header padded with
 * spaces to a multiple of 8 (when pad), then datalen bytes of data (0, 1, 2, ...). */
static unsigned char *file_bytes(const char *header, size_t datalen, int pad, size_t *len)
{
	size_t h = strlen(header), n = pad ? h + (8 - h % 8) % 8 : h;
	*len = 8 + n + datalen;
	unsigned char *b = malloc(*len);
	assert_non_null(b);
	put_le64(b, n);
	memcpy(b + 8, header, h);
	memset(b + 8 + h, ' ', n - h);
	for (size_t i = 0; i < datalen; i++)
		b[8 + n + i] = (unsigned char)i;
	return b;
}

static void expect_error(int rc, int code, const char *needle)
{
	if (rc != code)
		fail_msg("expected error %d (%s), got %d; message: %s", code, tg_strerror(code), rc, tg_last_error());
	if (needle && !strstr(tg_last_error(), needle))
		fail_msg("the message \"%s\" does not mention \"%s\"", tg_last_error(), needle);
}

/* bytes written to a file are refused by tg_st_open, with needle in the message. */
static void expect_refused(const unsigned char *bytes, size_t len, const char *needle)
{
	const char *path = tmp_file("bad.safetensors");
	write_bytes(path, bytes, len);
	static char sentinel;
	tg_st_file *f = (tg_st_file *)&sentinel; /* not NULL: tg_st_open must clear it */
	tg_clear_error();
	expect_error(tg_st_open(&f, path), TG_EIO, needle);
	assert_null(f);
	if (!strstr(tg_last_error(), path))
		fail_msg("the message \"%s\" does not name the file", tg_last_error());
	printf("# refused: %s\n", tg_last_error());
}

static void expect_header_refused(const char *header, size_t datalen, const char *needle)
{
	size_t len;
	unsigned char *b = file_bytes(header, datalen, 1, &len);
	expect_refused(b, len, needle);
	free(b);
}

/* ---------------------------------------------------------------- round trip */

typedef struct case_tensor {
	const char *name, *dtype;
	int rank;
	int64_t shape[TG_ST_MAX_RANK];
	size_t esize;
} case_tensor;

static const case_tensor round_trip_tensors[] = {
	{"w", "F32", 2, {2, 3}, 4},
	{"bias", "F32", 1, {3}, 4},
	{"scalar", "F32", 0, {0}, 4},
	{"empty", "F32", 2, {0, 4}, 4},
	{"mask", "U8", 1, {3}, 1}, /* 3 bytes: what follows is not aligned */
	{"ids", "I32", 1, {5}, 4},
	{"block.0.attn", "F32", 4, {2, 1, 3, 2}, 4},
	{"zero.mid", "I32", 3, {3, 0, 2}, 4},
	{"na\xc3\xafve/\xc3\xbcn\xc3\xaf", "F32", 1, {1}, 4}, /* UTF-8, written as \u escapes */
};
#define NTENSORS ((int)(sizeof round_trip_tensors / sizeof round_trip_tensors[0]))

static size_t case_bytes(const case_tensor *c)
{
	size_t n = c->esize;
	for (int k = 0; k < c->rank; k++)
		n *= (size_t)c->shape[k];
	return n;
}

/* Tensor i's data: bytes that differ between tensors and positions. */
static unsigned char *case_data(int i, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);
	assert_non_null(d);
	for (size_t k = 0; k < n; k++)
		d[k] = (unsigned char)(37 * i + 11 * k + 5);
	return d;
}

static void write_round_trip(const char *path)
{
	tg_st_writer *w;
	TG_OK_OR_FAIL(tg_st_writer_new(&w));
	TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, "format", "pt"));
	TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, "step", "12"));
	TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, "format", "taskgrad")); /* replaced, keeps its place */
	TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, "note", "quotes \" and \\ and \xc3\xa9"));
	for (int i = 0; i < NTENSORS; i++) {
		const case_tensor *c = &round_trip_tensors[i];
		size_t n = case_bytes(c);
		unsigned char *d = case_data(i, n);
		if (strcmp(c->name, "w") == 0) { /* real floats, read back below with tg_st_read_f32 */
			float v[6] = {1.5f, -2.0f, 0.0f, 3.25f, -0.125f, 1e-30f};
			memcpy(d, v, sizeof v);
		}
		TG_OK_OR_FAIL(tg_st_writer_add(w, c->name, c->dtype, c->rank, c->shape, d, n));
		free(d);
	}
	TG_OK_OR_FAIL(tg_st_writer_write(w, path));
	tg_st_writer_free(w);
}

static void round_trip(void **unused)
{
	(void)unused;
	const char *a = tmp_file("a.safetensors"), *b = tmp_file("b.safetensors"), *c = tmp_file("c.safetensors");
	write_round_trip(a);
	tg_st_file *f;
	TG_OK_OR_FAIL(tg_st_open(&f, a));
	assert_int_equal(tg_st_num_tensors(f), NTENSORS);
	size_t offset = 0;
	for (int i = 0; i < NTENSORS; i++) {
		const case_tensor *ct = &round_trip_tensors[i];
		tg_st_info info;
		TG_OK_OR_FAIL(tg_st_tensor_info(f, i, &info));
		assert_string_equal(info.name, ct->name);
		assert_string_equal(info.dtype, ct->dtype);
		assert_int_equal(info.rank, ct->rank);
		for (int k = 0; k < ct->rank; k++)
			assert_int_equal(info.shape[k], ct->shape[k]);
		for (int k = ct->rank; k < TG_ST_MAX_RANK; k++)
			assert_int_equal(info.shape[k], 0);
		size_t n = case_bytes(ct);
		assert_int_equal(info.nbytes, n);
		assert_int_equal(info.offset, offset); /* back to back in the order added */
		offset += n;
		assert_int_equal(tg_st_find(f, ct->name), i);
		const void *data = tg_st_tensor_data(f, i);
		assert_non_null(data);
		if (strcmp(ct->name, "w") != 0) {
			unsigned char *want = case_data(i, n);
			assert_memory_equal(data, want, n);
			free(want);
		}
	}
	assert_int_equal(tg_st_find(f, "nope"), -1);
	assert_int_equal(tg_st_find(f, ""), -1);
	assert_null(tg_st_tensor_data(f, NTENSORS));
	assert_null(tg_st_tensor_data(f, -1));
	expect_error(tg_st_tensor_info(f, NTENSORS, &(tg_st_info){0}), TG_EINVAL, "no tensor 9");

	float w[6], want_w[6] = {1.5f, -2.0f, 0.0f, 3.25f, -0.125f, 1e-30f};
	TG_OK_OR_FAIL(tg_st_read_f32(f, "w", TG_SHAPE(2, 3), w));
	assert_memory_equal(w, want_w, sizeof w);
	float s;
	TG_OK_OR_FAIL(tg_st_read_f32(f, "scalar", 0, NULL, &s));
	TG_OK_OR_FAIL(tg_st_read_f32(f, "empty", TG_SHAPE(0, 4), NULL));

	assert_int_equal(tg_st_num_metadata(f), 3);
	const char *k, *v;
	TG_OK_OR_FAIL(tg_st_metadata_at(f, 0, &k, &v));
	assert_string_equal(k, "format");
	assert_string_equal(v, "taskgrad");
	TG_OK_OR_FAIL(tg_st_metadata_at(f, 1, &k, &v));
	assert_string_equal(k, "step");
	assert_string_equal(v, "12");
	TG_OK_OR_FAIL(tg_st_metadata_at(f, 2, &k, &v));
	assert_string_equal(k, "note");
	assert_string_equal(v, "quotes \" and \\ and \xc3\xa9");
	assert_string_equal(tg_st_metadata(f, "step"), "12");
	assert_null(tg_st_metadata(f, "nope"));
	expect_error(tg_st_metadata_at(f, 3, &k, &v), TG_EINVAL, "no metadata entry 3");

	/* what was read, written again: the same bytes */
	tg_st_writer *wr;
	TG_OK_OR_FAIL(tg_st_writer_new(&wr));
	for (int i = 0; i < tg_st_num_metadata(f); i++) {
		TG_OK_OR_FAIL(tg_st_metadata_at(f, i, &k, &v));
		TG_OK_OR_FAIL(tg_st_writer_set_metadata(wr, k, v));
	}
	for (int i = 0; i < tg_st_num_tensors(f); i++) {
		tg_st_info info;
		TG_OK_OR_FAIL(tg_st_tensor_info(f, i, &info));
		const void *data = tg_st_tensor_data(f, i);
		TG_OK_OR_FAIL(tg_st_writer_add(wr, info.name, info.dtype, info.rank, info.shape, data, info.nbytes));
	}
	TG_OK_OR_FAIL(tg_st_writer_write(wr, b));
	tg_st_writer_free(wr);
	tg_st_close(f);
	write_round_trip(c); /* the same adds again */
	size_t la, lb, lc;
	unsigned char *ba = slurp(a, &la), *bb = slurp(b, &lb), *bc = slurp(c, &lc);
	assert_int_equal(la, lb);
	assert_memory_equal(ba, bb, la);
	assert_int_equal(la, lc);
	assert_memory_equal(ba, bc, la);
	/* the non-ASCII name and value went out as \u escapes: the header is ASCII */
	uint64_t n = le64(ba);
	for (uint64_t i = 0; i < n; i++)
		assert_true(ba[8 + i] < 0x80);
	assert_non_null(memmem(ba + 8, n, "na\\u00EFve/\\u00FCn\\u00EF", 24));
	free(ba);
	free(bb);
	free(bc);
}

/* The header is padded with spaces so that 8 + N is a multiple of 8, the metadata first. */
static void header_padding(void **unused)
{
	(void)unused;
	for (int len = 1; len <= 9; len++) { /* names of 1 to 9 letters: every padding from 0 to 7 */
		tg_st_writer *w;
		TG_OK_OR_FAIL(tg_st_writer_new(&w));
		char name[16];
		memset(name, 'x', (size_t)len);
		name[len] = '\0';
		int8_t v = 7;
		TG_OK_OR_FAIL(tg_st_writer_add(w, name, "I8", TG_SHAPE(1), &v, 1));
		if (len % 2)
			TG_OK_OR_FAIL(tg_st_writer_set_metadata(w, "k", "v"));
		const char *path = tmp_file("pad.safetensors");
		TG_OK_OR_FAIL(tg_st_writer_write(w, path));
		tg_st_writer_free(w);
		size_t flen;
		unsigned char *b = slurp(path, &flen);
		uint64_t n = le64(b);
		assert_int_equal((8 + n) % 8, 0);
		assert_int_equal(flen, 8 + n + 1);
		assert_int_equal(b[8 + n], 7);
		const char *h = (const char *)b + 8;
		if (len % 2)
			assert_int_equal(strncmp(h, "{\"__metadata__\":{\"k\":\"v\"},", 26), 0);
		size_t end = (size_t)n; /* the JSON ends at the last '}', spaces (fewer than 8) follow */
		while (end > 0 && h[end - 1] == ' ')
			end--;
		assert_true(end > 0 && h[end - 1] == '}');
		assert_true(n - end < 8);
		free(b);
	}
	/* no tensor, no metadata: "{}" and six spaces */
	tg_st_writer *w;
	TG_OK_OR_FAIL(tg_st_writer_new(&w));
	TG_OK_OR_FAIL(tg_st_writer_write(w, tmp_file("none.safetensors")));
	tg_st_writer_free(w);
	size_t flen;
	unsigned char *b = slurp(tmp_file("none.safetensors"), &flen);
	assert_int_equal(flen, 16);
	assert_memory_equal(b + 8, "{}      ", 8);
	free(b);
	tg_st_file *f;
	TG_OK_OR_FAIL(tg_st_open(&f, tmp_file("none.safetensors")));
	assert_int_equal(tg_st_num_tensors(f), 0);
	assert_int_equal(tg_st_num_metadata(f), 0);
	tg_st_close(f);
}

/* Files made by hand exactly as the reference implementation writes them. */
static void reference_files(void **unused)
{
	(void)unused;
	const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	size_t len;
	unsigned char *b = file_bytes(header, 8, 1, &len);
	float v[2] = {1.0f, -2.5f};
	memcpy(b + len - 8, v, sizeof v);
	assert_int_equal((len - 8) % 8, 0);
	const char *path = tmp_file("ref.safetensors");
	write_bytes(path, b, len);
	tg_st_file *f;
	TG_OK_OR_FAIL(tg_st_open(&f, path));
	assert_int_equal(tg_st_num_tensors(f), 1);
	float got[2];
	TG_OK_OR_FAIL(tg_st_read_f32(f, "a", TG_SHAPE(2), got));
	assert_memory_equal(got, v, sizeof v);
	tg_st_close(f);
	/* our writer makes the same bytes */
	tg_st_writer *w;
	TG_OK_OR_FAIL(tg_st_writer_new(&w));
	TG_OK_OR_FAIL(tg_st_writer_add(w, "a", "F32", TG_SHAPE(2), v, sizeof v));
	TG_OK_OR_FAIL(tg_st_writer_write(w, tmp_file("ours.safetensors")));
	tg_st_writer_free(w);
	size_t olen;
	unsigned char *ours = slurp(tmp_file("ours.safetensors"), &olen);
	assert_int_equal(olen, len);
	assert_memory_equal(ours, b, len);
	free(ours);
	free(b);

	/* metadata, keys not in offset order, a scalar, no padding at all: tensors come in
	 * offset order */
	header = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]},"
	         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	b = file_bytes(header, 12, 0, &len);
	write_bytes(path, b, len);
	free(b);
	TG_OK_OR_FAIL(tg_st_open(&f, path));
	assert_int_equal(tg_st_num_tensors(f), 2);
	tg_st_info info;
	TG_OK_OR_FAIL(tg_st_tensor_info(f, 0, &info));
	assert_string_equal(info.name, "a");
	TG_OK_OR_FAIL(tg_st_tensor_info(f, 1, &info));
	assert_string_equal(info.name, "b");
	assert_string_equal(info.dtype, "I32");
	assert_int_equal(info.rank, 0);
	assert_int_equal(info.offset, 8);
	assert_int_equal(info.nbytes, 4);
	assert_memory_equal(tg_st_tensor_data(f, 1), "\x08\x09\x0a\x0b", 4);
	assert_string_equal(tg_st_metadata(f, "format"), "pt");
	tg_st_close(f);

	/* whitespace where JSON allows it, and empty tensors at one offset */
	header = " { \"z\" : { \"shape\" : [0] , \"dtype\" : \"F16\" , \"data_offsets\" : [ 0 , 0 ] } ,\n"
	         "\"y\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},"
	         "\"x\":{\"dtype\":\"BOOL\",\"shape\":[0,3],\"data_offsets\":[0,0]}}";
	b = file_bytes(header, 2, 1, &len);
	write_bytes(path, b, len);
	free(b);
	TG_OK_OR_FAIL(tg_st_open(&f, path));
	assert_int_equal(tg_st_num_tensors(f), 3);
	TG_OK_OR_FAIL(tg_st_tensor_info(f, 0, &info)); /* [0, 0] before [0, 2]; header order among equals */
	assert_string_equal(info.name, "z");
	TG_OK_OR_FAIL(tg_st_tensor_info(f, 1, &info));
	assert_string_equal(info.name, "x");
	TG_OK_OR_FAIL(tg_st_tensor_info(f, 2, &info));
	assert_string_equal(info.name, "y");
	tg_st_close(f);
}

/* ---------------------------------------------------------------- corrupt files */

static void corrupt_files(void **unused)
{
	(void)unused;
	const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	size_t len;
	unsigned char *b = file_bytes(good, 8, 1, &len);
	expect_refused(b, 4, "4 bytes, fewer than the 8");
	expect_refused(b, 0, "0 bytes, fewer than the 8");
	/* the header size past the end: both numbers */
	put_le64(b, len - 8 + 1);
	char needle[128];
	snprintf(needle, sizeof needle, "header size is %zu bytes, larger than the rest of the file (%zu bytes)",
	         len - 7, len - 8);
	expect_refused(b, len, needle);
	put_le64(b, (uint64_t)1 << 40);
	expect_refused(b, len, "absurd");
	put_le64(b, UINT64_MAX);
	expect_refused(b, len, "absurd");
	free(b);

	expect_header_refused("{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",", 0, "line 1, column");
	expect_header_refused("", 0, "not valid JSON");
	expect_header_refused("{} x", 0, "not valid JSON");                 /* something after the object */
	expect_header_refused("{\"a\xff\":1}", 0, "not valid JSON");        /* not UTF-8 */
	expect_header_refused("{\"a\\u0000b\":1}", 0, "not valid JSON");    /* a NUL in a name */
	expect_header_refused("[1, 2]", 0, "its header is an array, not a JSON object");
	expect_header_refused("{\"a\":3}", 0, "tensor 'a' is an integer, not an object");
	expect_header_refused("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty name");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate key");

	/* fields */
	expect_header_refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a' has no dtype");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a' has no shape");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a' has no data_offsets");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4,
	                      "unknown field 'extra'");
	expect_header_refused("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	                      "tensor 'a' has an unknown dtype 'F33'");
	expect_header_refused("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	                      "its dtype is an integer, not a string");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
	                      "shape entry 1 is -1, dimensions must be >= 0");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
	                      "shape entry 0 is a real number, not an integer");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}", 4,
	                      "its shape is an integer, not an array");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
	                      "9 dimensions, more than the 8");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
	                      "data_offsets is an array of 1, not of two");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}}", 4,
	                      "its data_offsets is a string");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
	                      "data_offsets begin is -4, offsets must be >= 0");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,null]}}", 4,
	                      "data_offsets end is null, not an integer");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
	                      "data_offsets [4, 0] begin after they end");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
	                      "data_offsets end 8 is past the end of the data region, which has 4 bytes (the file has "
	                      "68, of which 64 are the header and its size)");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
	                      "shape (2, 3) of F32 takes 24 bytes, but its data_offsets [0, 20] hold 20");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
	                      "\"data_offsets\":[0,0]}}", 0,
	                      "(4294967296, 4294967296, 4) of F32 has too many elements (its byte count overflows)");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,2],\"data_offsets\":[0,0]}}", 0,
	                      "overflows");
	expect_header_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}", 0,
	                      "not valid JSON"); /* beyond 64 bits */

	/* the layout of the data region */
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
	                      "tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets [4, 12]) overlap");
	expect_header_refused("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
	                      "tensors 'b' (data_offsets [0, 8]) and 'a' (data_offsets [0, 8]) overlap");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
	                      "the 4 bytes at offset 4 of the data region belong to no tensor (they come before 'b')");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	                      "the 4 bytes at offset 0 of the data region belong to no tensor");
	expect_header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 7,
	                      "the 3 bytes at offset 4 of the data region belong to no tensor (they come after 'a', "
	                      "the last");
	expect_header_refused("{}", 5,
	                      "the 5 bytes at offset 0 of the data region belong to no tensor (the header lists none)");

	/* metadata */
	expect_header_refused("{\"__metadata__\":{\"k\":1}}", 0, "metadata entry 'k' is an integer, not a string");
	expect_header_refused("{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is an array, not an object of strings");
	expect_header_refused("{\"__metadata__\":{\"k\":\"v\"},\"__metadata__\":{}}", 0, "duplicate key");

	/* names in messages: control characters shown as '?', long names cut */
	char header[600];
	snprintf(header, sizeof header, "{\"a\\nb%0300d\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0);
	expect_header_refused(header, 0, "tensor 'a?b000");
	assert_non_null(strstr(tg_last_error(), "0...' has an unknown dtype 'X'"));

	/* what is not a regular file, or no file */
	tg_st_file *f;
	expect_error(tg_st_open(&f, tmp_dir), TG_EIO, "it is a folder, not a safetensors file");
	assert_null(f);
	const char *fifo = tmp_file("fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_error(tg_st_open(&f, fifo), TG_EIO, "it is a FIFO"); /* refused, not waited on */
	unlink(fifo);
	expect_error(tg_st_open(&f, tmp_file("no-such.safetensors")), TG_EIO, "No such file");
	expect_error(tg_st_open(&f, ""), TG_EINVAL, "no file name");
	expect_error(tg_st_open(NULL, "x"), TG_EINVAL, "out is NULL");
}

/* tg_st_read_f32 names the tensor and what does not match. */
static void read_f32_checks(void **unused)
{
	(void)unused;
	const char *path = tmp_file("read.safetensors");
	write_round_trip(path);
	tg_st_file *f;
	TG_OK_OR_FAIL(tg_st_open(&f, path));
	float buf[32];
	expect_error(tg_st_read_f32(f, "ids", TG_SHAPE(5), buf), TG_EIO, "tensor 'ids' of");
	assert_non_null(strstr(tg_last_error(), "is I32, not F32"));
	expect_error(tg_st_read_f32(f, "w", TG_SHAPE(3, 2), buf), TG_ESHAPE, "tensor 'w' of");
	assert_non_null(strstr(tg_last_error(), "has shape (2, 3), not (3, 2)"));
	expect_error(tg_st_read_f32(f, "w", TG_SHAPE(6), buf), TG_ESHAPE, "has shape (2, 3), not (6)");
	expect_error(tg_st_read_f32(f, "scalar", TG_SHAPE(1), buf), TG_ESHAPE, "has shape (), not (1)");
	expect_error(tg_st_read_f32(f, "nope", TG_SHAPE(1), buf), TG_EIO, "has no tensor 'nope'");
	assert_non_null(strstr(tg_last_error(), path));
	expect_error(tg_st_read_f32(f, "w", 9, (int64_t[9]){0}, buf), TG_EINVAL, "rank 9");
	expect_error(tg_st_read_f32(f, "w", TG_SHAPE(2, 3), NULL), TG_EINVAL, "destination is NULL");
	tg_st_close(f);
	tg_st_close(NULL);
}

/* The writer refuses what it cannot write as a valid file. */
static void writer_checks(void **unused)
{
	(void)unused;
	tg_st_writer *w;
	TG_OK_OR_FAIL(tg_st_writer_new(&w));
	float v[6] = {0};
	expect_error(tg_st_writer_add(w, "", "F32", TG_SHAPE(1), v, 4), TG_EINVAL, "needs a name");
	expect_error(tg_st_writer_add(w, NULL, "F32", TG_SHAPE(1), v, 4), TG_EINVAL, "needs a name");
	expect_error(tg_st_writer_add(w, "__metadata__", "F32", TG_SHAPE(1), v, 4), TG_EINVAL, "'__metadata__'");
	expect_error(tg_st_writer_add(w, "a\xff", "F32", TG_SHAPE(1), v, 4), TG_EINVAL, "not valid UTF-8");
	expect_error(tg_st_writer_add(w, "a", "F33", TG_SHAPE(1), v, 4), TG_EINVAL, "unknown dtype 'F33'");
	expect_error(tg_st_writer_add(w, "a", NULL, TG_SHAPE(1), v, 4), TG_EINVAL, "unknown dtype");
	expect_error(tg_st_writer_add(w, "a", "F32", TG_SHAPE(2, 3), v, 20), TG_EINVAL, "takes 24 bytes, 20 given");
	expect_error(tg_st_writer_add(w, "a", "F32", TG_SHAPE(2, -3), v, 24), TG_ESHAPE, "dimension 1 is negative");
	expect_error(tg_st_writer_add(w, "a", "F32", TG_SHAPE(INT64_MAX, 2), v, 24), TG_ESHAPE, "overflows");
	expect_error(tg_st_writer_add(w, "a", "F32", 9, (int64_t[9]){1, 1, 1, 1, 1, 1, 1, 1, 1}, v, 4), TG_ESHAPE,
	             "rank 9");
	expect_error(tg_st_writer_add(w, "a", "F32", TG_SHAPE(1), NULL, 4), TG_EINVAL, "data is NULL");
	TG_OK_OR_FAIL(tg_st_writer_add(w, "a", "F32", TG_SHAPE(1), v, 4));
	TG_OK_OR_FAIL(tg_st_writer_add(w, "e", "F32", TG_SHAPE(0), NULL, 0));
	expect_error(tg_st_writer_add(w, "a", "F32", TG_SHAPE(1), v, 4), TG_EINVAL, "already a tensor 'a'");
	expect_error(tg_st_writer_set_metadata(w, "k", NULL), TG_EINVAL, "value is NULL");
	expect_error(tg_st_writer_set_metadata(w, "k", "\xc3"), TG_EINVAL, "not valid UTF-8");
	expect_error(tg_st_writer_add_tensor(w, "t", NULL), TG_EINVAL, "tensor is NULL");
	/* an output that is not a regular file: refused, nothing written */
	expect_error(tg_st_writer_write(w, tmp_dir), TG_EIO, "folder");
	expect_error(tg_st_writer_write(w, tmp_file("no-such-dir/x.safetensors")), TG_EIO, "does not exist");
	expect_error(tg_st_writer_write(NULL, tmp_file("x.safetensors")), TG_EINVAL, "writer is NULL");
	tg_st_writer_free(w);
	tg_st_writer_free(NULL);
	expect_error(tg_st_writer_new(NULL), TG_EINVAL, "out is NULL");
}

/* ---------------------------------------------------------------- runtime tensors */

static void runtime_tensors(void **unused)
{
	(void)unused;
	TG_TEST_INIT("eager", -1, 0);
	float xv[12];
	for (int i = 0; i < 12; i++)
		xv[i] = 0.25f * (float)i - 1.0f;
	int32_t idv[5] = {3, -1, 0, INT32_MAX, INT32_MIN};
	tg_tensor *x, *y, *ids, *cols[2];
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&x, "x", TG_F32, TG_SHAPE(3, 4), xv, sizeof xv));
	TG_OK_OR_FAIL(tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(3, 4)));
	TG_OK_OR_FAIL(tg_tensor_new_from_host(&ids, "ids", TG_I32, TG_SHAPE(5), idv, sizeof idv));
	TG_OK_OR_FAIL(tg_scale(y, x, 2.0f)); /* submitted: adding y waits for it */
	tg_st_writer *w;
	TG_OK_OR_FAIL(tg_st_writer_new(&w));
	TG_OK_OR_FAIL(tg_st_writer_add_tensor(w, "model.y", y));
	TG_OK_OR_FAIL(tg_st_writer_add_tensor(w, "model.ids", ids));
	TG_OK_OR_FAIL(tg_tensor_partition(x, TG_SPLIT_COLS, 2, cols)); /* (3, 2) parts, rows 4 apart */
	TG_OK_OR_FAIL(tg_st_writer_add_tensor(w, "model.x_right", cols[1]));
	expect_error(tg_st_writer_add_tensor(w, "model.y", y), TG_EINVAL, "already a tensor");
	const char *path = tmp_file("runtime.safetensors");
	TG_OK_OR_FAIL(tg_st_writer_write(w, path));
	tg_st_writer_free(w);
	TG_OK_OR_FAIL(tg_tensor_free(x));
	TG_OK_OR_FAIL(tg_tensor_free(y));
	TG_OK_OR_FAIL(tg_tensor_free(ids));
	TG_OK_OR_FAIL(tg_shutdown());

	tg_st_file *f;
	TG_OK_OR_FAIL(tg_st_open(&f, path));
	assert_int_equal(tg_st_num_tensors(f), 3);
	float got[12];
	TG_OK_OR_FAIL(tg_st_read_f32(f, "model.y", TG_SHAPE(3, 4), got));
	for (int i = 0; i < 12; i++)
		assert_true(got[i] == 2.0f * xv[i]);
	TG_OK_OR_FAIL(tg_st_read_f32(f, "model.x_right", TG_SHAPE(3, 2), got));
	for (int r = 0; r < 3; r++)
		for (int c = 0; c < 2; c++)
			assert_true(got[2 * r + c] == xv[4 * r + 2 + c]);
	tg_st_info info;
	int i = tg_st_find(f, "model.ids");
	assert_true(i >= 0);
	TG_OK_OR_FAIL(tg_st_tensor_info(f, i, &info));
	assert_string_equal(info.dtype, "I32");
	assert_int_equal(info.nbytes, sizeof idv);
	assert_memory_equal(tg_st_tensor_data(f, i), idv, sizeof idv);
	tg_st_close(f);
}

/* ---------------------------------------------------------------- damage */

static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Open path: an error with a message, or a file whose every tensor and entry can be read. */
static int open_survives(const char *path)
{
	tg_st_file *f = NULL;
	tg_clear_error();
	int rc = tg_st_open(&f, path);
	if (rc < 0) {
		assert_null(f);
		assert_true(tg_last_error()[0] != '\0');
		return 0;
	}
	assert_int_equal(rc, 0);
	unsigned char sink[256];
	for (int i = 0; i < tg_st_num_tensors(f); i++) {
		tg_st_info info;
		TG_OK_OR_FAIL(tg_st_tensor_info(f, i, &info));
		const unsigned char *d = tg_st_tensor_data(f, i);
		for (size_t k = 0; k < info.nbytes; k += sizeof sink) /* the sanitizers see every byte read */
			memcpy(sink, d + k, info.nbytes - k < sizeof sink ? info.nbytes - k : sizeof sink);
	}
	for (int i = 0; i < tg_st_num_metadata(f); i++) {
		const char *k, *v;
		TG_OK_OR_FAIL(tg_st_metadata_at(f, i, &k, &v));
		assert_true(strlen(k) + strlen(v) < 1u << 30);
	}
	tg_st_close(f);
	return 1;
}

/* Random damage to a valid file's size and header, and every truncation, never crash the
 * reader (run it under the sanitizers to see every byte it touches). */
static void damaged_files(void **unused)
{
	(void)unused;
	const char *path = tmp_file("valid.safetensors");
	write_round_trip(path);
	size_t len;
	unsigned char *good = slurp(path, &len), *b = malloc(len);
	assert_non_null(b);
	size_t header_end = 8 + (size_t)le64(good);
	const char *damaged = tmp_file("damaged.safetensors");
	int opened = 0, tries = 0;
	for (size_t cut = 0; cut <= len; cut++) {
		write_bytes(damaged, good, cut);
		opened += open_survives(damaged);
		tries++;
	}
	assert_int_equal(opened, 1); /* only the whole file */

	uint64_t s = tg_test_seed("test_safetensors") | 1;
	static const char tokens[] = "{}[],:\"\\ 0123456789-eE.tfnu";
	clock_t start = clock();
	for (int round = 0; round < 3000 && clock() - start < CLOCKS_PER_SEC; round++) {
		memcpy(b, good, len);
		int flips = 1 + (int)(next_random(&s) % 4);
		for (int k = 0; k < flips; k++) {
			size_t at = (size_t)(next_random(&s) % header_end);
			uint64_t r = next_random(&s);
			/* a JSON token a third of the time, else any byte */
			b[at] = r % 3 == 0 ? (unsigned char)tokens[(r >> 8) % (sizeof tokens - 1)]
			                   : (unsigned char)(r >> 16);
		}
		size_t blen = next_random(&s) % 8 == 0 ? (size_t)(next_random(&s) % (len + 1)) : len;
		write_bytes(damaged, b, blen);
		opened += open_survives(damaged);
		tries++;
	}
	printf("# %d damaged files, %d of them opened\n", tries, opened);
	free(good);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(header_padding),
		cmocka_unit_test(reference_files),
		cmocka_unit_test(corrupt_files),
		cmocka_unit_test(read_f32_checks),
		cmocka_unit_test(writer_checks),
		cmocka_unit_test_teardown(runtime_tensors, tg_test_teardown),
		cmocka_unit_test(damaged_files),
	};
	return cmocka_run_group_tests_name("safetensors", tests, group_setup, group_teardown);
}
