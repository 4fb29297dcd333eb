/* dropout.c — inverted dropout with a counter-based mask: element i of the tensor (row-major
 * over all of it) is kept when tg_philox_uniform(seed, step, i) >= p, and kept elements are
 * scaled by 1 / (1 - p). The mask depends only on (seed, step, i): the same whatever the
 * tiling, the worker or the backend, and the backward draws it again instead of storing it.
 *   backward: dx (=|+=) dout * mask / (1 - p). Tiled by rows. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

/* u[j] = the uniform number of element e0 + j (j < n <= DROPOUT_CHUNK): one Philox block
 * gives four. The whole blocks run as a loop over blocks whose four words go to four arrays
 * (each block independent of the others: the loop vectorises, 32 x 32 -> 64-bit products in
 * vector lanes), then are interleaved into u; partial blocks at the ends one by one. */
#define DROPOUT_CHUNK 256
TG_INLINE void uniforms(float *restrict u, uint64_t seed, uint64_t step, uint64_t e0, int n)
{
	int j = 0;
	for (; j < n && ((e0 + (uint64_t)j) & 3) != 0; j++)
		u[j] = tg_philox_uniform(seed, step, e0 + (uint64_t)j);
	const uint64_t b0 = (e0 + (uint64_t)j) >> 2;
	const int nb = (n - j) / 4;
	const uint32_t s0 = (uint32_t)step, s1 = (uint32_t)(step >> 32);
	uint32_t w0[DROPOUT_CHUNK / 4], w1[DROPOUT_CHUNK / 4], w2[DROPOUT_CHUNK / 4], w3[DROPOUT_CHUNK / 4];
	for (int b = 0; b < nb; b++) {
		uint64_t block = b0 + (uint64_t)b;
		uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = s0, c3 = s1;
		uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
		TG_PHILOX_10(c0, c1, c2, c3, k0, k1);
		w0[b] = c0;
		w1[b] = c1;
		w2[b] = c2;
		w3[b] = c3;
	}
	for (int b = 0; b < nb; b++) {
		float *restrict q = u + j + 4 * b;
		q[0] = (float)(w0[b] >> 8) * 0x1p-24f;
		q[1] = (float)(w1[b] >> 8) * 0x1p-24f;
		q[2] = (float)(w2[b] >> 8) * 0x1p-24f;
		q[3] = (float)(w3[b] >> 8) * 0x1p-24f;
	}
	for (j += 4 * nb; j < n; j++)
		u[j] = tg_philox_uniform(seed, step, e0 + (uint64_t)j);
}

/* dst (=|+=) src * mask * scale, in chunks: the uniform numbers, then a loop of selects */
static TG_VEC void dropout_rows(tg_mat dst, tg_mat src, const struct tg_dropout_args *a, int accumulate)
{
	const float p = a->p, scale = 1.0f / (1.0f - p);
	float u[DROPOUT_CHUNK];
	for (int r = 0; r < dst.rows; r++) {
		uint64_t base = (uint64_t)(a->row0 + r) * (uint64_t)a->cols;
		for (int c0 = 0; c0 < dst.cols; c0 += DROPOUT_CHUNK) {
			int n = dst.cols - c0 < DROPOUT_CHUNK ? dst.cols - c0 : DROPOUT_CHUNK;
			uniforms(u, a->seed, a->step, base + (uint64_t)c0, n);
			float *restrict d = TG_ROW(dst, r) + c0;
			const float *restrict s = TG_ROW(src, r) + c0;
			if (accumulate)
				for (int j = 0; j < n; j++) {
					float v = s[j] * scale;
					d[j] += u[j] >= p ? v : 0.0f;
				}
			else
				for (int j = 0; j < n; j++) {
					float v = s[j] * scale;
					d[j] = u[j] >= p ? v : 0.0f;
				}
		}
	}
}

void tg_dropout_fwd_cpu(tg_mat out, tg_mat x, const struct tg_dropout_args *a)
{
	dropout_rows(out, x, a, 0);
}

void tg_dropout_bwd_cpu(tg_mat dx, tg_mat dout, const struct tg_dropout_args *a)
{
	dropout_rows(dx, dout, a, a->accumulate);
}

TG_OP_WRAPPERS(tg_dropout_fwd, 2, struct tg_dropout_args)
TG_OP_WRAPPERS(tg_dropout_bwd, 2, struct tg_dropout_args)
TG_OP_CODELET(dropout_fwd_cl, "dropout_fwd", tg_dropout_fwd);
TG_OP_CODELET(dropout_bwd_cl, "dropout_bwd", tg_dropout_bwd);

/* ------------------------------------------------------------------ submission */

static int dropout_check(const tg_task_spec *s);
static int dropout_backward(const tg_node *fwd);
TG_OP_DESC(dropout, TG_KIND_ELEMENTWISE, dropout_check, dropout_backward,
           "inverted dropout, mask drawn from (seed, step, position)");

static int dropout_check(const tg_task_spec *s)
{
	const struct tg_dropout_args *a = s->args;
	TG_TRY(tg_check_f32("dropout", "output", s->t[0]));
	TG_TRY(tg_check_f32("dropout", "x", s->t[1]));
	TG_TRY(tg_check_same_shape("dropout", "output", s->t[0], "x", s->t[1]));
	TG_CHECK(a->p >= 0.0f && a->p < 1.0f, TG_EINVAL, "dropout: p must be in [0, 1), got %g", (double)a->p);
	return 0;
}

static void set_row0(void *args, int tile, int ntiles, int64_t row0)
{
	(void)tile;
	(void)ntiles;
	((struct tg_dropout_args *)args)->row0 = row0;
}

int tg_dropout(tg_tensor *out, tg_tensor *x, float p, uint64_t seed, uint64_t step)
{
	TG_CHECK(out && x, TG_EINVAL, "dropout: a tensor argument is NULL");
	TG_TRY(tg_tensor_check_usable(x, "dropout"));
	struct tg_dropout_args args = {p, seed, step, 0, tg_tensor_cols(x), 0};
	tg_task_spec s = tg_spec(&tg_op_dropout, &dropout_fwd_cl, "dropout_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         2.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	s.tile_args = set_row0;
	return tg_submit(&s);
}

static int dropout_backward(const tg_node *fwd)
{
	const struct tg_dropout_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0), *dx;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mode));
	if (!dx)
		return 0;
	struct tg_dropout_args args = *fa;
	args.row0 = 0;
	args.accumulate = mode == TG_ACC;
	tg_task_spec s = tg_spec(&tg_op_dropout, &dropout_bwd_cl, "dropout_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         2.0 * (double)tg_tensor_numel(dout));
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dout, TG_R);
	s.tile = TG_TILE_ROWS;
	s.tile_args = set_row0;
	return tg_submit(&s);
}
