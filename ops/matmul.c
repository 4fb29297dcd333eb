/* matmul.c — out = op(a) op(b), op(x) = x or x^T (TG_TRANS_A / TG_TRANS_B).
 *
 * Every task of this op is one GEMM, C = op(X) op(Y) + beta C, with beta 0 when the output
 * is written (TG_W) and 1 when a gradient accumulates (TG_ACC). With C = op(A) op(B):
 *   dA = dC op(B)^T          (or op(B) dC^T  when A is transposed)
 *   dB = op(A)^T dC          (or dC^T op(A)  when B is transposed)
 * Gradient rule: activation gradients are written, parameter gradients accumulate. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

struct tg_matmul_args {
	int trans_x, trans_y;
	float beta;
};

/* buffers: C (m, n), X, Y */
static void matmul_cpu(void *buffers[], void *cl_arg)
{
	const struct tg_matmul_args *a = cl_arg;
	void *c = buffers[0], *x = buffers[1], *y = buffers[2];
	int m = (int)tg_buf_rows(c), n = (int)tg_buf_cols(c);
	int k = (int)(a->trans_x ? tg_buf_rows(x) : tg_buf_cols(x));
	cblas_sgemm(CblasRowMajor, a->trans_x ? CblasTrans : CblasNoTrans, a->trans_y ? CblasTrans : CblasNoTrans,
	            m, n, k, 1.0f, TG_F32(x), (int)tg_buf_ld(x), TG_F32(y), (int)tg_buf_ld(y), a->beta, TG_F32(c),
	            (int)tg_buf_ld(c));
}
#define matmul_fwd_cpu matmul_cpu
#define matmul_bwd_cpu matmul_cpu

#ifdef TG_USE_CUDA
static void matmul_cuda(void *buffers[], void *cl_arg)
{
	const struct tg_matmul_args *a = cl_arg;
	void *c = buffers[0], *x = buffers[1], *y = buffers[2];
	int k = (int)(a->trans_x ? tg_buf_rows(x) : tg_buf_cols(x));
	tg_cuda_gemm(TG_F32(c), (int)tg_buf_ld(c), TG_F32(x), (int)tg_buf_ld(x), TG_F32(y), (int)tg_buf_ld(y),
	             (int)tg_buf_rows(c), (int)tg_buf_cols(c), k, a->trans_x, a->trans_y, a->beta);
}
#endif

/* ------------------------------------------------------------------ codelets */

TG_CODELET(matmul_fwd_cl, "matmul_fwd", matmul_fwd_cpu, matmul_cuda);
TG_CODELET(matmul_bwd_cl, "matmul_bwd", matmul_bwd_cpu, matmul_cuda);

/* ------------------------------------------------------------------ submission */

extern const tg_op_desc tg_op_matmul;

/* Submit C = op(X) op(Y) (+ C when mode is TG_ACC). */
static int submit_gemm(struct starpu_codelet *cl, const char *name, tg_phase phase, tg_tensor *c, unsigned mode,
                       tg_tensor *x, int trans_x, tg_tensor *y, int trans_y)
{
	struct tg_matmul_args args = {trans_x, trans_y, mode == TG_ACC ? 1.0f : 0.0f};
	double m = (double)tg_tensor_rows(c), n = (double)tg_tensor_cols(c);
	double k = (double)(trans_x ? tg_tensor_rows(x) : tg_tensor_cols(x));
	tg_task_spec s = tg_spec(&tg_op_matmul, cl, name, phase, &args, sizeof args, 2.0 * m * n * k);
	tg_spec_add(&s, c, mode);
	tg_spec_add(&s, x, TG_R);
	tg_spec_add(&s, y, TG_R);
	return tg_submit(&s);
}

static int matmul_check(const tg_task_spec *s)
{
	const struct tg_matmul_args *a = s->args;
	TG_TRY(tg_check_f32("matmul", "output", s->t[0]));
	TG_TRY(tg_check_f32("matmul", "a", s->t[1]));
	TG_TRY(tg_check_f32("matmul", "b", s->t[2]));
	const tg_tensor *out = s->t[0], *x = s->t[1], *y = s->t[2];
	int64_t m = a->trans_x ? tg_tensor_cols(x) : tg_tensor_rows(x);
	int64_t kx = a->trans_x ? tg_tensor_rows(x) : tg_tensor_cols(x);
	int64_t ky = a->trans_y ? tg_tensor_cols(y) : tg_tensor_rows(y);
	int64_t n = a->trans_y ? tg_tensor_rows(y) : tg_tensor_cols(y);
	char sa[96], sb[96], so[96];
	TG_CHECK(kx == ky, TG_ESHAPE, "matmul: op(a) is (%lld, %lld) and op(b) is (%lld, %lld): inner sizes differ (a '%s' %s, b '%s' %s)",
	         (long long)m, (long long)kx, (long long)ky, (long long)n, tg_tensor_name(x), tg_tensor_shape_str(x, sa, sizeof sa),
	         tg_tensor_name(y), tg_tensor_shape_str(y, sb, sizeof sb));
	TG_CHECK(tg_tensor_rows(out) == m && tg_tensor_cols(out) == n, TG_ESHAPE,
	         "matmul: output '%s' %s must be (%lld, %lld) as a matrix", tg_tensor_name(out),
	         tg_tensor_shape_str(out, so, sizeof so), (long long)m, (long long)n);
	return 0;
}

int tg_matmul(tg_tensor *out, tg_tensor *a, tg_tensor *b, unsigned flags)
{
	TG_CHECK((flags & ~(unsigned)(TG_TRANS_A | TG_TRANS_B)) == 0, TG_EINVAL, "matmul: unknown flags 0x%x", flags);
	TG_CHECK(out && a && b, TG_EINVAL, "matmul: a tensor argument is NULL");
	return submit_gemm(&matmul_fwd_cl, "matmul_fwd", TG_PHASE_FWD, out, TG_W, a, !!(flags & TG_TRANS_A), b,
	                   !!(flags & TG_TRANS_B));
}

static int matmul_backward(const tg_node *fwd)
{
	const struct tg_matmul_args *fa = tg_node_args(fwd);
	tg_tensor *dc = tg_grad_of(fwd, 0);
	tg_tensor *a = tg_node_tensor(fwd, 1), *b = tg_node_tensor(fwd, 2);
	if (!dc)
		return 0;
	int ta = fa->trans_x, tb = fa->trans_y;
	tg_tensor *d;
	unsigned mode;
	TG_TRY(tg_grad_target(fwd, 1, &d, &mode));
	if (d) {
		if (!ta) /* dA = dC op(B)^T */
			TG_TRY(submit_gemm(&matmul_bwd_cl, "matmul_bwd_da", TG_PHASE_BWD, d, mode, dc, 0, b, !tb));
		else /* dA = op(B) dC^T */
			TG_TRY(submit_gemm(&matmul_bwd_cl, "matmul_bwd_da", TG_PHASE_BWD, d, mode, b, tb, dc, 1));
	}
	TG_TRY(tg_grad_target(fwd, 2, &d, &mode));
	if (d) {
		if (!tb) /* dB = op(A)^T dC */
			TG_TRY(submit_gemm(&matmul_bwd_cl, "matmul_bwd_db", TG_PHASE_BWD, d, mode, a, !ta, dc, 0));
		else /* dB = dC^T op(A) */
			TG_TRY(submit_gemm(&matmul_bwd_cl, "matmul_bwd_db", TG_PHASE_BWD, d, mode, dc, 1, a, ta));
	}
	return 0;
}

const tg_op_desc tg_op_matmul = {
	.name = "matmul",
	.kind = TG_KIND_GEMM,
	.check = matmul_check,
	.backward = matmul_backward,
	.doc = "out = op(a) op(b), with transpose flags (cuBLAS / OpenBLAS GEMM)",
};
