/* lstm_cell.cu — one LSTM step with fused gates (order i, f, g, o in pre and gates, (B, 4H)),
 * one thread per (batch row, hidden unit): it reads the unit's four gates and writes its own
 * outputs (no atomics: deterministic).
 *   forward: gates = [sigmoid, sigmoid, tanh, sigmoid](pre); c = f c_prev + i g; h = o tanh(c).
 *   backward: dc_total = dc + dh o (1 - tanh(c)^2);
 *     dpre (+)= [dc_total g i (1-i), dc_total c_prev f (1-f), dc_total i (1-g^2),
 *                dh tanh(c) o (1-o)];   dc_prev (+)= dc_total f.
 * Operands a step lacks (c_prev: zeros; dh, dc: zeros; dc_prev: not wanted) are passed like
 * any other and never read: the flags of struct tg_lstm_args say which are real. */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

static __global__ void lstm_fwd_kernel(float *h, int ldh, float *c, int ldc, float *gates, int ldgt, const float *pre,
                                       int ldp, const float *c_prev, int ldcp, int B, int H)
{
	int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= (int64_t)B * H)
		return;
	int b = (int)(idx / H), j = (int)(idx % H);
	const float *p = pre + (int64_t)b * ldp;
	float *gt = gates + (int64_t)b * ldgt;
	float i = tg_sigmoidf(p[j]), f = tg_sigmoidf(p[H + j]), g = tg_tanhf(p[2 * H + j]), o = tg_sigmoidf(p[3 * H + j]);
	gt[j] = i;
	gt[H + j] = f;
	gt[2 * H + j] = g;
	gt[3 * H + j] = o;
	float cv = c_prev ? f * c_prev[(int64_t)b * ldcp + j] + i * g : i * g;
	c[(int64_t)b * ldc + j] = cv;
	h[(int64_t)b * ldh + j] = o * tg_tanhf(cv);
}

static __global__ void lstm_bwd_kernel(float *dpre, int lddp, float *dc_prev, int lddcp, const float *dh, int lddh,
                                       const float *dc, int lddc, const float *gates, int ldgt, const float *c, int ldc,
                                       const float *c_prev, int ldcp, int B, int H, int acc_pre, int acc_c_prev)
{
	int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= (int64_t)B * H)
		return;
	int b = (int)(idx / H), j = (int)(idx % H);
	const float *gt = gates + (int64_t)b * ldgt;
	float i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];
	float tc = tg_tanhf(c[(int64_t)b * ldc + j]);
	float dhv = dh ? dh[(int64_t)b * lddh + j] : 0.0f;
	float dct = dc ? dc[(int64_t)b * lddc + j] : 0.0f;
	if (dh)
		dct += dhv * o * (1.0f - tc * tc);
	float cp = c_prev ? c_prev[(int64_t)b * ldcp + j] : 0.0f;
	float v[4] = {dct * g * i * (1.0f - i), dct * cp * f * (1.0f - f), dct * i * (1.0f - g * g),
	              dhv * tc * o * (1.0f - o)};
	if (dpre) {
		float *dp = dpre + (int64_t)b * lddp;
		for (int q = 0; q < 4; q++)
			dp[q * H + j] = acc_pre ? dp[q * H + j] + v[q] : v[q];
	}
	if (dc_prev) {
		float *d = &dc_prev[(int64_t)b * lddcp + j];
		*d = acc_c_prev ? *d + dct * f : dct * f;
	}
}

extern "C" void tg_lstm_fwd_cuda(tg_mat h, tg_mat c, tg_mat gates, tg_mat pre, tg_mat c_prev,
                                 const struct tg_lstm_args *a, cudaStream_t st)
{
	int64_t n = (int64_t)h.rows * h.cols;
	if (n <= 0)
		return;
	lstm_fwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(h), h.ld, TG_MF(c), c.ld, TG_MF(gates), gates.ld,
	                                                    TG_MF(pre), pre.ld, a->has_c_prev ? TG_MF(c_prev) : NULL,
	                                                    c_prev.ld, h.rows, h.cols);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_lstm_bwd_cuda(tg_mat dpre, tg_mat dc_prev, tg_mat dh, tg_mat dc, tg_mat gates, tg_mat c,
                                 tg_mat c_prev, const struct tg_lstm_args *a, cudaStream_t st)
{
	int B = c.rows, H = c.cols;
	int64_t n = (int64_t)B * H;
	if (n <= 0)
		return;
	lstm_bwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(
		a->want_pre ? TG_MF(dpre) : NULL, dpre.ld, a->want_dc_prev ? TG_MF(dc_prev) : NULL, dc_prev.ld, a->has_dh ? TG_MF(dh) : NULL,
		dh.ld, a->has_dc ? TG_MF(dc) : NULL, dc.ld, TG_MF(gates), gates.ld, TG_MF(c), c.ld,
		a->has_c_prev ? TG_MF(c_prev) : NULL, c_prev.ld, B, H, a->acc_pre, a->acc_c_prev);
	TG_CUDA_LAUNCH_CHECK();
}
