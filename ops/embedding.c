/* embedding.c — out row r = table row ids[r] (token embeddings).
 *   backward: dtable[ids[r]] (+)= dout[r], summed in row order: deterministic without atomics,
 *   and the same whatever the tiling (each tile adds its rows after the tiles before it).
 * An id outside [0, V) is never used as an index: it is a task error naming its row and value
 * (returned at the next wait), and that output row is NaN. Tiled by rows (ids split with
 * them); the table goes whole to every tile. Gradient rule: the table's gradient is a
 * parameter gradient (accumulated); ids have none. */
#include "tg_ops.h"

static const char bad_id_fmt[] = "embedding: id %d of row %d is outside [0, %d) (the rows of the table)";

/* ------------------------------------------------------------------ CPU kernels */

/* id r of an ids operand (a vector, or a matrix read row by row) */
static inline int32_t id_at(tg_mat ids, int r)
{
	return TG_MI(ids)[(size_t)(r / ids.cols) * (size_t)ids.ld + (size_t)(r % ids.cols)];
}

void tg_embedding_fwd_cpu(tg_mat out, tg_mat table, tg_mat ids, tg_mat scratch, const struct tg_embedding_args *a)
{
	(void)scratch;
	for (int r = 0; r < out.rows; r++) {
		int32_t id = id_at(ids, r);
		float *o = TG_ROW(out, r);
		if (id < 0 || id >= table.rows) {
			tg_task_error(TG_EINVAL, a->bad_fmt, (int)id, (int)(a->row0 + r), table.rows);
			for (int c = 0; c < out.cols; c++)
				o[c] = NAN;
			continue;
		}
		memcpy(o, TG_ROW(table, id), (size_t)out.cols * sizeof(float));
	}
}

static TG_VEC void embedding_bwd_vec(tg_mat dtable, tg_mat dout, tg_mat ids, const struct tg_embedding_args *a)
{
	if (!a->accumulate)
		for (int v = 0; v < dtable.rows; v++)
			memset(TG_ROW(dtable, v), 0, (size_t)dtable.cols * sizeof(float));
	for (int r = 0; r < dout.rows; r++) {
		int32_t id = id_at(ids, r);
		if (id < 0 || id >= dtable.rows) {
			tg_task_error(TG_EINVAL, a->bad_fmt, (int)id, (int)(a->row0 + r), dtable.rows);
			continue;
		}
		float *restrict d = TG_ROW(dtable, id);
		const float *restrict g = TG_ROW(dout, r);
		for (int c = 0; c < dtable.cols; c++)
			d[c] += g[c];
	}
}

void tg_embedding_bwd_cpu(tg_mat dtable, tg_mat dout, tg_mat ids, tg_mat scratch, const struct tg_embedding_args *a)
{
	(void)scratch;
	embedding_bwd_vec(dtable, dout, ids, a);
}

TG_OP_WRAPPERS(tg_embedding_fwd, 4, struct tg_embedding_args)
TG_OP_WRAPPERS(tg_embedding_bwd, 4, struct tg_embedding_args)
TG_OP_CODELET(embedding_fwd_cl, "embedding_fwd", tg_embedding_fwd);
TG_OP_CODELET(embedding_bwd_cl, "embedding_bwd", tg_embedding_bwd);

/* ------------------------------------------------------------------ submission */

static int embedding_check(const tg_task_spec *s);
static int embedding_backward(const tg_node *fwd);
TG_OP_DESC(embedding, TG_KIND_DATA, embedding_check, embedding_backward,
           "out row r = table row ids[r] (token embeddings); backward adds into the table's rows");

static int embedding_check(const tg_task_spec *s)
{
	const tg_tensor *out = s->t[0], *table = s->t[1], *ids = s->t[2];
	char so[96], st[96], si[96];
	TG_TRY(tg_check_f32("embedding", "output", out));
	TG_TRY(tg_check_f32("embedding", "table", table));
	TG_TRY(tg_check_i32("embedding", "ids", ids));
	TG_CHECK(tg_tensor_cols(out) == tg_tensor_cols(table), TG_ESHAPE,
	         "embedding: output '%s' %s and table '%s' %s must have the same last dimension", tg_tensor_name(out),
	         tg_tensor_shape_str(out, so, sizeof so), tg_tensor_name(table), tg_tensor_shape_str(table, st, sizeof st));
	TG_CHECK(tg_tensor_numel(ids) == tg_tensor_rows(out), TG_ESHAPE,
	         "embedding: output '%s' %s has %lld rows but ids '%s' %s hold %lld", tg_tensor_name(out),
	         tg_tensor_shape_str(out, so, sizeof so), (long long)tg_tensor_rows(out), tg_tensor_name(ids),
	         tg_tensor_shape_str(ids, si, sizeof si), (long long)tg_tensor_numel(ids));
	return 0;
}

static void set_row0(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	struct tg_embedding_args *a = args;
	a->row0 = row0;
	if (tile > 0)
		a->accumulate = 1; /* the table's gradient: the first tile writes it, the others add */
}

int tg_embedding(tg_tensor *out, tg_tensor *table, tg_tensor *ids)
{
	TG_CHECK(out && table && ids, TG_EINVAL, "embedding: a tensor argument is NULL");
	struct tg_embedding_args args = {0, 0, bad_id_fmt};
	tg_task_spec s = tg_spec(&tg_op_embedding, &embedding_fwd_cl, "embedding_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         0.0);
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, table, TG_R);
	tg_spec_add(&s, ids, TG_R);
	s.scratch_bytes = 16; /* on GPUs: the report of a bad id */
	s.tile = TG_TILE_ROWS;
	s.whole = 1u << 1;
	s.tile_args = set_row0;
	return tg_submit(&s);
}

static int embedding_backward(const tg_node *fwd)
{
	tg_tensor *dout = tg_grad_of(fwd, 0), *ids = tg_node_tensor(fwd, 2), *dtable;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dtable, &mode));
	if (!dtable)
		return 0;
	struct tg_embedding_args args = {0, mode == TG_ACC, bad_id_fmt};
	tg_task_spec s = tg_spec(&tg_op_embedding, &embedding_bwd_cl, "embedding_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         (double)tg_tensor_numel(dout));
	tg_spec_add(&s, dtable, mode);
	tg_spec_add(&s, dout, TG_R);
	tg_spec_add(&s, ids, TG_R);
	s.scratch_bytes = 16;
	s.tile = TG_TILE_ROWS;
	s.tile_on = 1; /* dout's rows; the table's gradient goes whole to every tile */
	s.whole = 1u << 0;
	s.tile_args = set_row0;
	return tg_submit(&s);
}
