/* lstm_cell.c — one LSTM step with fused gates (PyTorch's gate order i, f, g, o):
 *   gates = [sigmoid(pre_i), sigmoid(pre_f), tanh(pre_g), sigmoid(pre_o)]
 *   c = f * c_prev + i * g;  h = o * tanh(c)          (no c_prev: the first step, c = i * g)
 * gates (B, 4H) is kept for the backward; with dc_total = dc + dh o (1 - tanh(c)^2):
 *   dpre = [dc_total g i (1-i), dc_total c_prev f (1-f), dc_total i (1-g^2), dh tanh(c) o (1-o)]
 *   dc_prev = dc_total f
 * dh and dc are the gradients h and c get from later steps and layers; either may be absent.
 * Tiled by rows (batch). */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

/* one batch row; has_c_prev is a constant where it is inlined, so each loop has no branch */
TG_INLINE void lstm_fwd_row(float *restrict hr, float *restrict cr, float *restrict gt, const float *restrict p,
                            const float *restrict cp, int has_c_prev, int H)
{
	for (int j = 0; j < H; j++) {
		float i = tg_sigmoidf(p[j]), f = tg_sigmoidf(p[H + j]);
		float g = tg_tanhf(p[2 * H + j]), o = tg_sigmoidf(p[3 * H + j]);
		gt[j] = i;
		gt[H + j] = f;
		gt[2 * H + j] = g;
		gt[3 * H + j] = o;
		float cv = has_c_prev ? f * cp[j] + i * g : i * g;
		cr[j] = cv;
		hr[j] = o * tg_tanhf(cv);
	}
}

static TG_VEC void lstm_fwd_vec(tg_mat h, tg_mat c, tg_mat gates, tg_mat pre, tg_mat c_prev, int has_c_prev)
{
	for (int r = 0; r < h.rows; r++) {
		if (has_c_prev)
			lstm_fwd_row(TG_ROW(h, r), TG_ROW(c, r), TG_ROW(gates, r), TG_ROW(pre, r), TG_ROW(c_prev, r), 1, h.cols);
		else
			lstm_fwd_row(TG_ROW(h, r), TG_ROW(c, r), TG_ROW(gates, r), TG_ROW(pre, r), NULL, 0, h.cols);
	}
}

void tg_lstm_fwd_cpu(tg_mat h, tg_mat c, tg_mat gates, tg_mat pre, tg_mat c_prev, const struct tg_lstm_args *a)
{
	lstm_fwd_vec(h, c, gates, pre, c_prev, a->has_c_prev);
}

/* The backward of one batch row in chunks of LSTM_CHUNK units: the five gradients of a chunk
 * are computed into local arrays (one loop without branches: absent inputs read as zeros from
 * a zero chunk), then stored by loops specialised on what is written and how. */
#define LSTM_CHUNK 256
static TG_VEC void lstm_bwd_row(float *dp, float *dcp, const float *dhr, const float *dcr, const float *restrict gt,
                                const float *restrict cr, const float *cp, int H, const struct tg_lstm_args *a)
{
	static const float zeros[LSTM_CHUNK];
	float v[4][LSTM_CHUNK], vc[LSTM_CHUNK];
	for (int j0 = 0; j0 < H; j0 += LSTM_CHUNK) {
		int n = H - j0 < LSTM_CHUNK ? H - j0 : LSTM_CHUNK;
		const float *restrict dh = dhr ? dhr + j0 : zeros, *restrict dc = dcr ? dcr + j0 : zeros;
		const float *restrict cpv = cp ? cp + j0 : zeros;
		const float *restrict gi = gt + j0, *restrict gf = gt + H + j0, *restrict gg = gt + 2 * H + j0,
		                      *restrict go = gt + 3 * H + j0, *restrict cc = cr + j0;
		for (int j = 0; j < n; j++) {
			float i = gi[j], f = gf[j], g = gg[j], o = go[j], tc = tg_tanhf(cc[j]);
			float dct = dc[j] + dh[j] * o * (1.0f - tc * tc);
			v[0][j] = dct * g * i * (1.0f - i);
			v[1][j] = dct * cpv[j] * f * (1.0f - f);
			v[2][j] = dct * i * (1.0f - g * g);
			v[3][j] = dh[j] * tc * o * (1.0f - o);
			vc[j] = dct * f;
		}
		if (dp)
			for (int q = 0; q < 4; q++) {
				float *restrict d = dp + q * H + j0;
				if (a->acc_pre)
					for (int j = 0; j < n; j++)
						d[j] += v[q][j];
				else
					for (int j = 0; j < n; j++)
						d[j] = v[q][j];
			}
		if (dcp) {
			float *restrict d = dcp + j0;
			if (a->acc_c_prev)
				for (int j = 0; j < n; j++)
					d[j] += vc[j];
			else
				for (int j = 0; j < n; j++)
					d[j] = vc[j];
		}
	}
}

void tg_lstm_bwd_cpu(tg_mat dpre, tg_mat dc_prev, tg_mat dh, tg_mat dc, tg_mat gates, tg_mat c, tg_mat c_prev,
                     const struct tg_lstm_args *a)
{
	for (int r = 0; r < c.rows; r++)
		lstm_bwd_row(a->want_pre ? TG_ROW(dpre, r) : NULL, a->want_dc_prev ? TG_ROW(dc_prev, r) : NULL,
		             a->has_dh ? TG_ROW(dh, r) : NULL, a->has_dc ? TG_ROW(dc, r) : NULL, TG_ROW(gates, r),
		             TG_ROW(c, r), a->has_c_prev ? TG_ROW(c_prev, r) : NULL, c.cols, a);
}

TG_OP_WRAPPERS(tg_lstm_fwd, 5, struct tg_lstm_args)
TG_OP_WRAPPERS(tg_lstm_bwd, 7, struct tg_lstm_args)
TG_OP_CODELET(lstm_fwd_cl, "lstm_cell_fwd", tg_lstm_fwd);
TG_OP_CODELET(lstm_bwd_cl, "lstm_cell_bwd", tg_lstm_bwd);

/* ------------------------------------------------------------------ submission */

static int lstm_check(const tg_task_spec *s);
static int lstm_backward(const tg_node *fwd);
TG_OP_DESC(lstm_cell, TG_KIND_ELEMENTWISE, lstm_check, lstm_backward,
           "one LSTM step from the gate preactivations (gate order i, f, g, o)");

static int lstm_check(const tg_task_spec *s)
{
	const char *names[] = {"h", "c", "gates", "pre", "c_prev"};
	for (int i = 0; i < s->n && i < 5; i++)
		TG_TRY(tg_check_f32("lstm_cell", names[i], s->t[i]));
	int64_t B = tg_tensor_rows(s->t[0]), H = tg_tensor_cols(s->t[0]);
	TG_TRY(tg_check_matrix("lstm_cell", "h", s->t[0], B, H));
	TG_TRY(tg_check_matrix("lstm_cell", "c", s->t[1], B, H));
	TG_CHECK(H <= INT64_MAX / 4, TG_ESHAPE, "lstm_cell: hidden size %lld too large", (long long)H);
	TG_TRY(tg_check_matrix("lstm_cell", "gates", s->t[2], B, 4 * H));
	TG_TRY(tg_check_matrix("lstm_cell", "pre", s->t[3], B, 4 * H));
	if (s->n > 4)
		TG_TRY(tg_check_matrix("lstm_cell", "c_prev", s->t[4], B, H));
	return 0;
}

int tg_lstm_cell(tg_tensor *h, tg_tensor *c, tg_tensor *gates, tg_tensor *pre, tg_tensor *c_prev)
{
	TG_CHECK(h && c && gates && pre, TG_EINVAL, "lstm_cell: h, c, gates or pre is NULL");
	struct tg_lstm_args args = {c_prev != NULL, 0, 0, 0, 0, 0, 0};
	tg_task_spec s = tg_spec(&tg_op_lstm_cell, &lstm_fwd_cl, "lstm_cell_fwd", TG_PHASE_FWD, &args, sizeof args,
	                         20.0 * (double)tg_tensor_numel(c));
	tg_spec_add(&s, h, TG_W);
	tg_spec_add(&s, c, TG_W);
	tg_spec_add(&s, gates, TG_W);
	tg_spec_add(&s, pre, TG_R);
	if (c_prev)
		tg_spec_add(&s, c_prev, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

/* Operands a step lacks are given as c (read only, never used: the flags say so). */
static int lstm_backward(const tg_node *fwd)
{
	tg_tensor *dh = tg_grad_of(fwd, 0), *dc = tg_grad_of(fwd, 1);
	tg_tensor *c = tg_node_tensor(fwd, 1), *gates = tg_node_tensor(fwd, 2);
	int has_c_prev = tg_node_num_operands(fwd) > 4;
	tg_tensor *c_prev = has_c_prev ? tg_node_tensor(fwd, 4) : NULL;
	TG_CHECK(!tg_grad_of(fwd, 2), TG_ENOTSUP,
	         "lstm_cell: gates '%s' is kept for the backward; a gradient through it is not supported",
	         tg_tensor_name(gates));
	if (!dh && !dc)
		return 0;
	tg_tensor *dpre, *dcp = NULL;
	unsigned mpre, mcp = 0;
	TG_TRY(tg_grad_target(fwd, 3, &dpre, &mpre));
	if (has_c_prev)
		TG_TRY(tg_grad_target(fwd, 4, &dcp, &mcp));
	if (!dpre && !dcp)
		return 0;
	struct tg_lstm_args args = {has_c_prev, dh != NULL, dc != NULL, dcp != NULL, mpre == TG_ACC, mcp == TG_ACC,
	                            dpre != NULL};
	tg_task_spec s = tg_spec(&tg_op_lstm_cell, &lstm_bwd_cl, "lstm_cell_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         25.0 * (double)tg_tensor_numel(c));
	tg_spec_add(&s, dpre ? dpre : c, dpre ? mpre : TG_R);
	tg_spec_add(&s, dcp ? dcp : c, dcp ? mcp : TG_R);
	tg_spec_add(&s, dh ? dh : c, TG_R);
	tg_spec_add(&s, dc ? dc : c, TG_R);
	tg_spec_add(&s, gates, TG_R);
	tg_spec_add(&s, c, TG_R);
	tg_spec_add(&s, c_prev ? c_prev : c, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}
