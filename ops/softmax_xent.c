/* softmax_xent.c — fused softmax + cross-entropy with integer targets, mean over rows:
 *   loss = (1/N) sum_r [ logsumexp(logits[r]) - logits[r][t_r] ]
 *   backward: dlogits[r][j] = dloss / N * (softmax(logits[r])[j] - [j == t_r])
 * The softmax is recomputed in the backward task (no probabilities kept). A target outside
 * [0, V) is never used as an index: it is a task error naming its row and value (returned at
 * the next wait), and the loss and that row's gradient are NaN.
 * Gradient rule: activation gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

struct tg_softmax_xent_args {
	int accumulate; /* backward: add into dlogits */
};

/* Target r of a targets buffer (a vector, or a matrix with its leading dimension). */
static inline int32_t target_at(void *buf, uint32_t r)
{
	const int32_t *t = (const int32_t *)tg_buf_ptr(buf);
	uint32_t cols = tg_buf_cols(buf);
	return t[(size_t)(r / cols) * tg_buf_ld(buf) + r % cols];
}

/* The message of a target out of range (CPU and CUDA): value, row, number of classes. */
static const char bad_target_fmt[] = "softmax_xent: target %d of row %d is outside [0, %d) (the number of classes)";

/* Max and sum of exp(x - max) of one row. */
static void row_stats(const float *x, uint32_t v, float *max, double *sum)
{
	float m = x[0];
	for (uint32_t j = 1; j < v; j++)
		m = x[j] > m ? x[j] : m;
	double s = 0.0;
	for (uint32_t j = 0; j < v; j++)
		s += exp((double)x[j] - m);
	*max = m;
	*sum = s;
}

/* buffers: loss (1), logits (N, V), targets (N), scratch */
static void softmax_xent_fwd_cpu(void *buffers[], void *cl_arg)
{
	(void)cl_arg;
	void *lg = buffers[1];
	uint32_t n = tg_buf_rows(lg), v = tg_buf_cols(lg), ld = tg_buf_ld(lg);
	const float *x = TG_F32(lg);
	double total = 0.0;
	for (uint32_t r = 0; r < n; r++) {
		const float *row = x + (size_t)r * ld;
		int32_t t = target_at(buffers[2], r);
		if (t < 0 || (uint32_t)t >= v) {
			tg_task_error(TG_EINVAL, bad_target_fmt, (int)t, (int)r, (int)v);
			total = NAN;
			continue;
		}
		float m;
		double s;
		row_stats(row, v, &m, &s);
		total += (double)m + log(s) - (double)row[t];
	}
	TG_F32(buffers[0])[0] = (float)(total / n);
}

/* buffers: dlogits (N, V), dloss (1), logits (N, V), targets (N), scratch */
static void softmax_xent_bwd_cpu(void *buffers[], void *cl_arg)
{
	const struct tg_softmax_xent_args *args = cl_arg;
	void *dl = buffers[0], *lg = buffers[2];
	uint32_t n = tg_buf_rows(lg), v = tg_buf_cols(lg), ld = tg_buf_ld(lg), ldd = tg_buf_ld(dl);
	const float *x = TG_F32(lg);
	float *d = TG_F32(dl);
	double scale = (double)TG_F32(buffers[1])[0] / n;
	for (uint32_t r = 0; r < n; r++) {
		const float *row = x + (size_t)r * ld;
		float *drow = d + (size_t)r * ldd;
		int32_t t = target_at(buffers[3], r);
		int valid = t >= 0 && (uint32_t)t < v;
		if (!valid)
			tg_task_error(TG_EINVAL, bad_target_fmt, (int)t, (int)r, (int)v);
		float m;
		double s;
		row_stats(row, v, &m, &s);
		for (uint32_t j = 0; j < v; j++) {
			double g = valid ? scale * (exp((double)row[j] - m) / s - (j == (uint32_t)t ? 1.0 : 0.0)) : NAN;
			drow[j] = args->accumulate ? drow[j] + (float)g : (float)g;
		}
	}
}

#ifdef TG_USE_CUDA
static void softmax_xent_fwd_cuda(void *buffers[], void *cl_arg)
{
	(void)cl_arg;
	void *lg = buffers[1];
	void *t = buffers[2];
	tg_cuda_report *report = (tg_cuda_report *)tg_buf_ptr(buffers[3]);
	tg_cuda_softmax_xent_fwd(TG_F32(buffers[0]), TG_F32(lg), (int)tg_buf_ld(lg), (const int32_t *)tg_buf_ptr(t),
	                         (int)tg_buf_cols(t), (int)tg_buf_ld(t), (int)tg_buf_rows(lg), (int)tg_buf_cols(lg),
	                         (float *)(report + 1), report, bad_target_fmt);
}

static void softmax_xent_bwd_cuda(void *buffers[], void *cl_arg)
{
	const struct tg_softmax_xent_args *args = cl_arg;
	void *dl = buffers[0], *lg = buffers[2];
	void *t = buffers[3];
	tg_cuda_softmax_xent_bwd(TG_F32(dl), (int)tg_buf_ld(dl), TG_F32(buffers[1]), TG_F32(lg), (int)tg_buf_ld(lg),
	                         (const int32_t *)tg_buf_ptr(t), (int)tg_buf_cols(t), (int)tg_buf_ld(t),
	                         (int)tg_buf_rows(lg), (int)tg_buf_cols(lg), args->accumulate,
	                         (tg_cuda_report *)tg_buf_ptr(buffers[4]), bad_target_fmt);
}
#endif

/* ------------------------------------------------------------------ codelets */

TG_CODELET(softmax_xent_fwd_cl, "softmax_xent_fwd", softmax_xent_fwd_cpu, softmax_xent_fwd_cuda);
TG_CODELET(softmax_xent_bwd_cl, "softmax_xent_bwd", softmax_xent_bwd_cpu, softmax_xent_bwd_cuda);

/* ------------------------------------------------------------------ submission */

extern const tg_op_desc tg_op_softmax_xent;

static int softmax_xent_check(const tg_task_spec *s)
{
	const tg_tensor *loss = s->t[0], *logits = s->t[1], *targets = s->t[2];
	char sl[96], st[96];
	TG_TRY(tg_check_f32("softmax_xent", "loss", loss));
	TG_TRY(tg_check_f32("softmax_xent", "logits", logits));
	TG_CHECK(tg_tensor_numel(loss) == 1, TG_ESHAPE, "softmax_xent: loss '%s' %s must hold one element",
	         tg_tensor_name(loss), tg_tensor_shape_str(loss, sl, sizeof sl));
	TG_CHECK(tg_tensor_dtype(targets) == TG_I32, TG_EINVAL, "softmax_xent: targets '%s' must be int32",
	         tg_tensor_name(targets));
	TG_CHECK(tg_tensor_numel(targets) == tg_tensor_rows(logits), TG_ESHAPE,
	         "softmax_xent: logits '%s' %s have %lld rows but targets '%s' %s hold %lld",
	         tg_tensor_name(logits), tg_tensor_shape_str(logits, sl, sizeof sl), (long long)tg_tensor_rows(logits),
	         tg_tensor_name(targets), tg_tensor_shape_str(targets, st, sizeof st), (long long)tg_tensor_numel(targets));
	return 0;
}

int tg_softmax_xent(tg_tensor *loss, tg_tensor *logits, tg_tensor *targets)
{
	TG_CHECK(loss && logits && targets, TG_EINVAL, "softmax_xent: a tensor argument is NULL");
	struct tg_softmax_xent_args args = {0};
	tg_task_spec s = tg_spec(&tg_op_softmax_xent, &softmax_xent_fwd_cl, "softmax_xent_fwd", TG_PHASE_FWD, &args,
	                         sizeof args, 4.0 * (double)tg_tensor_numel(logits));
	tg_spec_add(&s, loss, TG_W);
	tg_spec_add(&s, logits, TG_R);
	tg_spec_add(&s, targets, TG_R);
	/* on GPUs: the report of a bad target (16 bytes), then the per-row losses */
	s.scratch_bytes = 16 + (size_t)tg_tensor_rows(logits) * sizeof(float);
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
	struct tg_softmax_xent_args args = {mode == TG_ACC};
	tg_task_spec s = tg_spec(&tg_op_softmax_xent, &softmax_xent_bwd_cl, "softmax_xent_bwd", TG_PHASE_BWD, &args,
	                         sizeof args, 5.0 * (double)tg_tensor_numel(logits));
	tg_spec_add(&s, dlogits, mode);
	tg_spec_add(&s, dloss, TG_R);
	tg_spec_add(&s, logits, TG_R);
	tg_spec_add(&s, targets, TG_R);
	s.scratch_bytes = 16; /* on GPUs: the report of a bad target */
	return tg_submit(&s);
}

const tg_op_desc tg_op_softmax_xent = {
	.name = "softmax_xent",
	.kind = TG_KIND_LOSS,
	.check = softmax_xent_check,
	.backward = softmax_xent_backward,
	.doc = "mean softmax cross-entropy of logits (N, V) against int32 targets (N)",
};
