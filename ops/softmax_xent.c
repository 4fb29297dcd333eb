/* softmax_xent.c — fused softmax + cross-entropy with integer targets, mean over rows:
 *   loss = (1/N) sum_r [ logsumexp(logits[r]) - logits[r][t_r] ]
 *   backward: dlogits[r][j] = dloss / N * (softmax(logits[r])[j] - [j == t_r])
 * The row maximum takes in every element, so huge logits stay exact. The softmax is
 * recomputed in the backward task (no probabilities kept). A target outside [0, V) is never
 * used as an index: it is a task error naming its row and value (returned at the next wait),
 * and the loss and that row's gradient are NaN.
 * Tiled by rows: each tile adds its rows' share of the mean to the loss (the first writes it),
 * so the loss is summed per tile: within rounding of one task. Gradient rule: activation
 * gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* The message of a target out of range (CPU and CUDA): value, row, number of classes. */
static const char bad_target_fmt[] = "softmax_xent: target %d of row %d is outside [0, %d) (the number of classes)";

/* ------------------------------------------------------------------ CPU kernels */

/* Target r of a targets operand (a vector, or a matrix read row by row). */
static inline int32_t target_at(tg_mat t, int r)
{
	return TG_MI(t)[(size_t)(r / t.cols) * (size_t)t.ld + (size_t)(r % t.cols)];
}

/* The rows' loss, sum_r logsumexp(logits[r]) - logits[r][t_r]: the row maximum, then the sum
 * of exp(x - max) (tg_sumexp_row: float exponentials, double lanes), so huge logits stay exact. */
static TG_VEC double xent_rows(tg_mat logits, tg_mat targets, const struct tg_softmax_xent_args *a)
{
	int v = logits.cols;
	double total = 0.0;
	for (int r = 0; r < logits.rows; r++) {
		const float *row = TG_ROW(logits, r);
		int32_t t = target_at(targets, r);
		if (t < 0 || t >= v) {
			tg_task_error(TG_EINVAL, bad_target_fmt, (int)t, (int)(a->row0 + r), v);
			total = NAN;
			continue;
		}
		float m = tg_max_row(row, v);
		total += (double)m + log(tg_sumexp_row(row, m, v)) - (double)row[t];
	}
	return total;
}

void tg_softmax_xent_fwd_cpu(tg_mat loss, tg_mat logits, tg_mat targets, tg_mat scratch,
                             const struct tg_softmax_xent_args *a)
{
	(void)scratch;
	float share = (float)(xent_rows(logits, targets, a) / (double)a->total_rows);
	TG_MF(loss)[0] = a->accumulate ? TG_MF(loss)[0] + share : share;
}

/* dlogits[r] (=|+=) scale * (softmax(logits[r]) - onehot(t_r)), scale = dloss / N; a row with
 * a bad target gets NaN */
static TG_VEC void xent_grad_rows(tg_mat dlogits, tg_mat logits, tg_mat targets, double scale,
                                  const struct tg_softmax_xent_args *a)
{
	int v = logits.cols;
	for (int r = 0; r < logits.rows; r++) {
		const float *restrict row = TG_ROW(logits, r);
		float *restrict drow = TG_ROW(dlogits, r);
		int32_t t = target_at(targets, r);
		if (t < 0 || t >= v) {
			tg_task_error(TG_EINVAL, bad_target_fmt, (int)t, (int)(a->row0 + r), v);
			for (int j = 0; j < v; j++)
				drow[j] = NAN;
			continue;
		}
		float m = tg_max_row(row, v);
		double s = tg_sumexp_row(row, m, v);
		float k = (float)(scale / s), old_t = drow[t];
		if (a->accumulate)
			for (int j = 0; j < v; j++)
				drow[j] += k * tg_expf(row[j] - m);
		else
			for (int j = 0; j < v; j++)
				drow[j] = k * tg_expf(row[j] - m);
		/* the target's p - 1 in double: in float it cancels when p is near 1 */
		float gt = (float)(scale * ((double)tg_expf(row[t] - m) / s - 1.0));
		drow[t] = a->accumulate ? old_t + gt : gt;
	}
}

void tg_softmax_xent_bwd_cpu(tg_mat dlogits, tg_mat dloss, tg_mat logits, tg_mat targets, tg_mat scratch,
                             const struct tg_softmax_xent_args *a)
{
	(void)scratch;
	xent_grad_rows(dlogits, logits, targets, (double)TG_MF(dloss)[0] / (double)a->total_rows, a);
}

TG_OP_WRAPPERS(tg_softmax_xent_fwd, 4, struct tg_softmax_xent_args)
TG_OP_WRAPPERS(tg_softmax_xent_bwd, 5, struct tg_softmax_xent_args)
TG_OP_CODELET(softmax_xent_fwd_cl, "softmax_xent_fwd", tg_softmax_xent_fwd);
TG_OP_CODELET(softmax_xent_bwd_cl, "softmax_xent_bwd", tg_softmax_xent_bwd);

/* ------------------------------------------------------------------ submission */

static int softmax_xent_check(const tg_task_spec *s);
static int softmax_xent_backward(const tg_node *fwd);
TG_OP_DESC(softmax_xent, TG_KIND_LOSS, softmax_xent_check, softmax_xent_backward,
           "mean softmax cross-entropy of logits (N, V) against int32 targets (N)");

static int softmax_xent_check(const tg_task_spec *s)
{
	const tg_tensor *loss = s->t[0], *logits = s->t[1], *targets = s->t[2];
	char sl[96], st[96];
	TG_TRY(tg_check_f32("softmax_xent", "loss", loss));
	TG_TRY(tg_check_f32("softmax_xent", "logits", logits));
	TG_CHECK(tg_tensor_numel(loss) == 1, TG_ESHAPE, "softmax_xent: loss '%s' %s must hold one element",
	         tg_tensor_name(loss), tg_tensor_shape_str(loss, sl, sizeof sl));
	TG_TRY(tg_check_i32("softmax_xent", "targets", targets));
	TG_CHECK(tg_tensor_numel(targets) == tg_tensor_rows(logits), TG_ESHAPE,
	         "softmax_xent: logits '%s' %s have %lld rows but targets '%s' %s hold %lld",
	         tg_tensor_name(logits), tg_tensor_shape_str(logits, sl, sizeof sl), (long long)tg_tensor_rows(logits),
	         tg_tensor_name(targets), tg_tensor_shape_str(targets, st, sizeof st), (long long)tg_tensor_numel(targets));
	return 0;
}

static void loss_tile(void *args, int tile, int ntiles, int64_t row0)
{
	(void)ntiles;
	((struct tg_softmax_xent_args *)args)->accumulate = tile > 0;
	((struct tg_softmax_xent_args *)args)->row0 = row0;
}

static void grad_tile(void *args, int tile, int ntiles, int64_t row0)
{
	(void)tile;
	(void)ntiles;
	((struct tg_softmax_xent_args *)args)->row0 = row0;
}

int tg_softmax_xent(tg_tensor *loss, tg_tensor *logits, tg_tensor *targets)
{
	TG_CHECK(loss && logits && targets, TG_EINVAL, "softmax_xent: a tensor argument is NULL");
	struct tg_softmax_xent_args args = {tg_tensor_rows(logits), 0, 0, bad_target_fmt};
	tg_task_spec s = tg_spec(&tg_op_softmax_xent, &softmax_xent_fwd_cl, "softmax_xent_fwd", TG_PHASE_FWD, &args,
	                         sizeof args, 4.0 * (double)tg_tensor_numel(logits));
	tg_spec_add(&s, loss, TG_W);
	tg_spec_add(&s, logits, TG_R);
	tg_spec_add(&s, targets, TG_R);
	/* on GPUs: the report of a bad target (16 bytes), then the per-row losses */
	s.scratch_bytes = 16 + (size_t)tg_tensor_rows(logits) * sizeof(float);
	s.tile = TG_TILE_ROWS;
	s.tile_on = 1;     /* the logits' rows */
	s.whole = 1u << 0; /* the loss: the first tile writes its share, the others add theirs */
	s.tile_args = loss_tile;
	return tg_submit(&s);
}

static int softmax_xent_backward(const tg_node *fwd)
{
	tg_tensor *dloss = tg_grad_of(fwd, 0), *logits = tg_node_tensor(fwd, 1), *targets = tg_node_tensor(fwd, 2);
	tg_tensor *dlogits;
	unsigned mode;
	if (!dloss)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dlogits, &mode));
	if (!dlogits)
		return 0;
	struct tg_softmax_xent_args args = {tg_tensor_rows(logits), 0, mode == TG_ACC, bad_target_fmt};
	tg_task_spec s = tg_spec(&tg_op_softmax_xent, &softmax_xent_bwd_cl, "softmax_xent_bwd", TG_PHASE_BWD, &args,
	                         sizeof args, 5.0 * (double)tg_tensor_numel(logits));
	tg_spec_add(&s, dlogits, mode);
	tg_spec_add(&s, dloss, TG_R);
	tg_spec_add(&s, logits, TG_R);
	tg_spec_add(&s, targets, TG_R);
	s.scratch_bytes = 16; /* on GPUs: the report of a bad target */
	s.tile = TG_TILE_ROWS;
	s.whole = 1u << 1;
	s.tile_args = grad_tile;
	return tg_submit(&s);
}
