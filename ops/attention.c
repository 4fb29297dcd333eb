/* attention.c — causal multi-head self-attention (GPT-2's), with its backward.
 *   qkv (B, T, 3C) = [Q | K | V]; head h of d = C / H uses columns h d .. h d + d - 1 of each;
 *   att[b, h] = softmax(Q_h K_h^T / sqrt(d), causal)  (B, H, T, T), kept for the backward;
 *   out[b, :, head h's columns] = att[b, h] V_h          (B, T, C).
 *   backward, per head: dV = att^T dout; datt = dout V^T; dpre = att * (datt - rowsum(datt att));
 *   dQ = dpre K / sqrt(d); dK = dpre^T Q / sqrt(d).
 * Tiles: one task per (batch, group of heads): qkv is split into its Q, K and V columns, each of
 * those, out and their gradients into a (B x groups) grid, att into the matching rows; so the
 * tasks of one layer run on every worker at once. The GEMMs of a head are BLAS calls on the
 * tiles, honouring their leading dimensions. Gradient rule: activation gradients are written,
 * parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

/* att rows of head h (T x T) */
static float *att_head(tg_mat att, int h, int T)
{
	return TG_MF(att) + (size_t)h * (size_t)T * (size_t)att.ld;
}

/* the causal softmax of a head's T score rows, in place */
static TG_VEC void causal_softmax(float *A, int ld, int T)
{
	for (int t = 0; t < T; t++)
		tg_softmax_row(A + (size_t)t * ld, t + 1, T);
}

/* dpre = att * (datt - rowsum(datt att)) in place of datt (S, T x T), 0 above the diagonal */
static TG_VEC void causal_softmax_bwd(float *restrict S, const float *restrict A, int ld, int T)
{
	for (int t = 0; t < T; t++) {
		const float *restrict ar = A + (size_t)t * ld;
		float *restrict sr = S + (size_t)t * T;
		float dot = (float)tg_dot_row(sr, ar, t + 1);
		for (int j = 0; j <= t; j++)
			sr[j] = ar[j] * (sr[j] - dot);
		for (int j = t + 1; j < T; j++)
			sr[j] = 0.0f;
	}
}

/* Causal blocks: the score rows are taken TG_ATT_BLOCK at a time, each with the columns up to
 * its last row only, so the GEMMs skip most of the masked half (at T = 256, 62.5% of the full
 * products are computed). The block size is fixed: the same work whatever the workers. */
#define TG_ATT_BLOCK 64

void tg_attention_fwd_cpu(tg_mat out, tg_mat att, tg_mat q, tg_mat k, tg_mat v, const struct tg_attention_args *a)
{
	int T = a->T, d = a->head_dim;
	for (int h = 0; h < a->heads; h++) {
		float *A = att_head(att, h, T);
		/* scores = scale Q K^T on and below the diagonal blocks; the softmax writes the zeros */
		for (int r0 = 0; r0 < T; r0 += TG_ATT_BLOCK) {
			int rows = T - r0 < TG_ATT_BLOCK ? T - r0 : TG_ATT_BLOCK, cols = r0 + rows;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, a->scale,
			            TG_MF(q) + (size_t)r0 * q.ld + h * d, q.ld, TG_MF(k) + h * d, k.ld, 0.0f,
			            A + (size_t)r0 * att.ld, att.ld);
		}
		causal_softmax(A, att.ld, T);
		for (int r0 = 0; r0 < T; r0 += TG_ATT_BLOCK) {
			int rows = T - r0 < TG_ATT_BLOCK ? T - r0 : TG_ATT_BLOCK, cols = r0 + rows;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, 1.0f, A + (size_t)r0 * att.ld,
			            att.ld, TG_MF(v) + h * d, v.ld, 0.0f, TG_MF(out) + (size_t)r0 * out.ld + h * d, out.ld);
		}
	}
}

/* dX[c0 ..] = alpha L[c0 .., c0 .. c0 + cr]^T Y[c0 ..] (+ beta dX) for a lower-triangular L (T x T):
 * the rows of L above c0 are zero in those columns. */
static void lower_tn(int T, int d, float alpha, const float *L, int ldl, const float *Y, int ldy, float beta, float *X,
                     int ldx)
{
	for (int c0 = 0; c0 < T; c0 += TG_ATT_BLOCK) {
		int cr = T - c0 < TG_ATT_BLOCK ? T - c0 : TG_ATT_BLOCK;
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cr, d, T - c0, alpha, L + (size_t)c0 * ldl + c0, ldl,
		            Y + (size_t)c0 * ldy, ldy, beta, X + (size_t)c0 * ldx, ldx);
	}
}

void tg_attention_bwd_v_cpu(tg_mat dv, tg_mat att, tg_mat dout, const struct tg_attention_args *a)
{
	int T = a->T, d = a->head_dim;
	for (int h = 0; h < a->heads; h++) /* dV = att^T dout */
		lower_tn(T, d, 1.0f, att_head(att, h, T), att.ld, TG_MF(dout) + h * d, dout.ld, a->accumulate ? 1.0f : 0.0f,
		         TG_MF(dv) + h * d, dv.ld);
}

void tg_attention_bwd_qk_cpu(tg_mat dq, tg_mat dk, tg_mat dout, tg_mat v, tg_mat q, tg_mat k, tg_mat att,
                             tg_mat scratch, const struct tg_attention_args *a)
{
	int T = a->T, d = a->head_dim;
	float *S = TG_MF(scratch); /* T x T: datt, then dpre */
	float beta = a->accumulate ? 1.0f : 0.0f;
	for (int h = 0; h < a->heads; h++) {
		const float *A = att_head(att, h, T);
		/* datt = dout V^T on and below the diagonal blocks (the softmax backward reads no more) */
		for (int r0 = 0; r0 < T; r0 += TG_ATT_BLOCK) {
			int rows = T - r0 < TG_ATT_BLOCK ? T - r0 : TG_ATT_BLOCK, cols = r0 + rows;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, 1.0f,
			            TG_MF(dout) + (size_t)r0 * dout.ld + h * d, dout.ld, TG_MF(v) + h * d, v.ld, 0.0f,
			            S + (size_t)r0 * T, T);
		}
		causal_softmax_bwd(S, A, att.ld, T);
		for (int r0 = 0; r0 < T; r0 += TG_ATT_BLOCK) { /* dQ = scale dpre K */
			int rows = T - r0 < TG_ATT_BLOCK ? T - r0 : TG_ATT_BLOCK, cols = r0 + rows;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, a->scale, S + (size_t)r0 * T, T,
			            TG_MF(k) + h * d, k.ld, beta, TG_MF(dq) + (size_t)r0 * dq.ld + h * d, dq.ld);
		}
		lower_tn(T, d, a->scale, S, T, TG_MF(q) + h * d, q.ld, beta, TG_MF(dk) + h * d, dk.ld); /* dK = scale dpre^T Q */
	}
}

TG_OP_WRAPPERS(tg_attention_fwd, 5, struct tg_attention_args)
TG_OP_WRAPPERS(tg_attention_bwd_v, 3, struct tg_attention_args)
TG_OP_WRAPPERS(tg_attention_bwd_qk, 8, struct tg_attention_args)
TG_OP_CODELET(attention_fwd_cl, "attention_fwd", tg_attention_fwd);
TG_OP_CODELET(attention_bwd_v_cl, "attention_bwd_v", tg_attention_bwd_v);
TG_OP_CODELET(attention_bwd_qk_cl, "attention_bwd_qk", tg_attention_bwd_qk);

/* ------------------------------------------------------------------ submission */

static int attention_check(const tg_task_spec *s);
static int attention_backward(const tg_node *fwd);
TG_OP_DESC(attention, TG_KIND_GEMM, attention_check, attention_backward,
           "causal multi-head self-attention: out, att = attention(qkv), tiled by batch and group of heads");

static int attention_check(const tg_task_spec *s)
{
	const struct tg_attention_args *a = s->args;
	const tg_tensor *out = s->t[0], *att = s->t[1], *qkv = s->t[2];
	char so[96], sa[96], sq[96];
	TG_TRY(tg_check_f32("attention", "output", out));
	TG_TRY(tg_check_f32("attention", "att", att));
	TG_TRY(tg_check_f32("attention", "qkv", qkv));
	TG_CHECK(tg_tensor_rank(qkv) == 3 && tg_tensor_rank(out) == 3 && tg_tensor_rank(att) == 4, TG_ESHAPE,
	         "attention: qkv '%s' %s and out '%s' %s must be (B, T, 3C) and (B, T, C), att '%s' %s (B, H, T, T)",
	         tg_tensor_name(qkv), tg_tensor_shape_str(qkv, sq, sizeof sq), tg_tensor_name(out),
	         tg_tensor_shape_str(out, so, sizeof so), tg_tensor_name(att), tg_tensor_shape_str(att, sa, sizeof sa));
	int64_t B = tg_tensor_dim(out, 0), T = tg_tensor_dim(out, 1), C = tg_tensor_dim(out, 2), H = a->heads;
	TG_CHECK(H >= 1 && C % H == 0, TG_ESHAPE, "attention: %lld heads do not divide the %lld columns of out '%s'",
	         (long long)H, (long long)C, tg_tensor_name(out));
	TG_CHECK(tg_tensor_dim(qkv, 0) == B && tg_tensor_dim(qkv, 1) == T && tg_tensor_dim(qkv, 2) == 3 * C, TG_ESHAPE,
	         "attention: qkv '%s' %s must be (%lld, %lld, %lld)", tg_tensor_name(qkv),
	         tg_tensor_shape_str(qkv, sq, sizeof sq), (long long)B, (long long)T, (long long)(3 * C));
	TG_CHECK(tg_tensor_dim(att, 0) == B && tg_tensor_dim(att, 1) == H && tg_tensor_dim(att, 2) == T &&
	                 tg_tensor_dim(att, 3) == T,
	         TG_ESHAPE, "attention: att '%s' %s must be (%lld, %lld, %lld, %lld)", tg_tensor_name(att),
	         tg_tensor_shape_str(att, sa, sizeof sa), (long long)B, (long long)H, (long long)T, (long long)T);
	TG_CHECK(T <= 65536 && B * T <= INT32_MAX, TG_ESHAPE, "attention: sequences of %lld are too long", (long long)T);
	TG_CHECK(B <= TG_MAX_TILES, TG_ESHAPE, "attention: %lld sequences in one op, at most %d (one task each at least): "
	         "split the batch (micro-batches)", (long long)B, TG_MAX_TILES);
	return 0;
}

/* The tiling of one attention: groups of heads per batch, and the tiles of its tensors. */
typedef struct att_tiles {
	int B, G, T, heads, d;
	tg_tensor *q[TG_MAX_TILES], *k[TG_MAX_TILES], *v[TG_MAX_TILES]; /* [b G + g] */
	tg_tensor *out[TG_MAX_TILES], *att[TG_MAX_TILES];
} att_tiles;

static int group_count(int B, int H, int64_t rows)
{
	int want = tg_tile_count(rows), G = (want + B - 1) / B;
	G = G < 1 ? 1 : G > H ? H : G;
	while (H % G)
		G--;
	while (B * G > TG_MAX_TILES && G > 1) {
		G--;
		while (H % G)
			G--;
	}
	return G;
}

/* The tiles of qkv (or dqkv): its Q, K, V columns, each a (B x G) grid. */
static int qkv_tiles(tg_tensor *qkv, int B, int G, tg_tensor **q, tg_tensor **k, tg_tensor **v)
{
	tg_tensor *cols[3];
	TG_TRY(tg_tensor_partition(qkv, TG_SPLIT_COLS, 3, cols));
	TG_TRY(tg_tensor_partition_grid(cols[0], B, G, q));
	TG_TRY(tg_tensor_partition_grid(cols[1], B, G, k));
	return tg_tensor_partition_grid(cols[2], B, G, v);
}

/* out (or dout) as a (B x G) grid, att as B G row blocks; one tile: the tensors themselves. */
static int out_tiles(tg_tensor *out, tg_tensor *att, int B, int G, tg_tensor **ot, tg_tensor **at)
{
	if (B * G == 1) {
		ot[0] = out;
		if (att)
			at[0] = att;
		return 0;
	}
	TG_TRY(tg_tensor_partition_grid(out, B, G, ot));
	return att ? tg_tensor_partition(att, TG_SPLIT_ROWS, B * G, at) : 0;
}

static int plan_tiles(att_tiles *tl, tg_tensor *out, tg_tensor *att, tg_tensor *qkv, int heads)
{
	tl->B = (int)tg_tensor_dim(out, 0);
	tl->T = (int)tg_tensor_dim(out, 1);
	tl->d = (int)(tg_tensor_dim(out, 2) / heads);
	tl->G = group_count(tl->B, heads, tg_tensor_rows(out));
	tl->heads = heads / tl->G;
	TG_TRY(qkv_tiles(qkv, tl->B, tl->G, tl->q, tl->k, tl->v));
	return out_tiles(out, att, tl->B, tl->G, tl->out, tl->att);
}

int tg_attention(tg_tensor *out, tg_tensor *att, tg_tensor *qkv, int heads)
{
	TG_CHECK(out && att && qkv, TG_EINVAL, "attention: a tensor argument is NULL");
	TG_CHECK(heads >= 1, TG_EINVAL, "attention: heads must be >= 1, got %d", heads);
	struct tg_attention_args args = {heads, 0, 0, 0.0f, 0};
	tg_task_spec s = tg_spec(&tg_op_attention, &attention_fwd_cl, "attention_fwd", TG_PHASE_FWD, &args, sizeof args, 0);
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, att, TG_W);
	tg_spec_add(&s, qkv, TG_R);
	TG_TRY(tg_op_begin(&s));
	att_tiles tl;
	int rc = plan_tiles(&tl, out, att, qkv, heads);
	double T = (double)tl.T, d = (double)tl.d;
	for (int i = 0; rc == 0 && i < tl.B * tl.G; i++) {
		struct tg_attention_args ta = {tl.heads, tl.d, tl.T, (float)(1.0 / sqrt(d)), 0};
		tg_task_spec t = tg_spec(&tg_op_attention, &attention_fwd_cl, "attention_fwd", TG_PHASE_FWD, &ta, sizeof ta,
		                         tl.heads * (4.0 * T * T * d + 5.0 * T * T));
		tg_spec_add(&t, tl.out[i], TG_W);
		tg_spec_add(&t, tl.att[i], TG_W);
		tg_spec_add(&t, tl.q[i], TG_R);
		tg_spec_add(&t, tl.k[i], TG_R);
		tg_spec_add(&t, tl.v[i], TG_R);
		rc = tg_submit(&t);
	}
	tg_op_end();
	return rc;
}

static int attention_backward(const tg_node *fwd)
{
	const struct tg_attention_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0), *att = tg_node_tensor(fwd, 1), *qkv = tg_node_tensor(fwd, 2), *dqkv;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 2, &dqkv, &mode));
	if (!dqkv)
		return 0;
	struct tg_attention_args args = *fa;
	tg_task_spec s = tg_spec(&tg_op_attention, &attention_bwd_qk_cl, "attention_bwd", TG_PHASE_BWD, &args, sizeof args,
	                         0);
	tg_spec_add(&s, dqkv, mode);
	tg_spec_add(&s, dout, TG_R);
	tg_spec_add(&s, qkv, TG_R);
	tg_spec_add(&s, att, TG_R);
	TG_TRY(tg_op_begin(&s));
	att_tiles tl;
	tg_tensor *dq[TG_MAX_TILES], *dk[TG_MAX_TILES], *dv[TG_MAX_TILES], *dot[TG_MAX_TILES];
	int rc = plan_tiles(&tl, dout, att, qkv, fa->heads);
	if (rc == 0)
		rc = qkv_tiles(dqkv, tl.B, tl.G, dq, dk, dv);
	if (rc == 0)
		rc = out_tiles(dout, NULL, tl.B, tl.G, dot, NULL);
	double T = (double)tl.T, d = (double)tl.d;
	for (int i = 0; rc == 0 && i < tl.B * tl.G; i++) {
		struct tg_attention_args ta = {tl.heads, tl.d, tl.T, (float)(1.0 / sqrt(d)), mode == TG_ACC};
		tg_task_spec v = tg_spec(&tg_op_attention, &attention_bwd_v_cl, "attention_bwd_v", TG_PHASE_BWD, &ta,
		                         sizeof ta, tl.heads * 2.0 * T * T * d);
		tg_spec_add(&v, dv[i], mode);
		tg_spec_add(&v, tl.att[i], TG_R);
		tg_spec_add(&v, dot[i], TG_R);
		rc = tg_submit(&v);
		if (rc)
			break;
		tg_task_spec qk = tg_spec(&tg_op_attention, &attention_bwd_qk_cl, "attention_bwd_qk", TG_PHASE_BWD, &ta,
		                          sizeof ta, tl.heads * (6.0 * T * T * d + 4.0 * T * T));
		tg_spec_add(&qk, dq[i], mode);
		tg_spec_add(&qk, dk[i], mode);
		tg_spec_add(&qk, dot[i], TG_R);
		tg_spec_add(&qk, tl.v[i], TG_R);
		tg_spec_add(&qk, tl.q[i], TG_R);
		tg_spec_add(&qk, tl.k[i], TG_R);
		tg_spec_add(&qk, tl.att[i], TG_R);
		qk.scratch_bytes = (size_t)tl.T * (size_t)tl.T * sizeof(float);
		rc = tg_submit(&qk);
	}
	tg_op_end();
	return rc;
}
