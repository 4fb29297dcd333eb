/* softmax.cu — row softmax of scale * x with an optional causal mask, and its backward.
 * One block per row. Row r is query position t = (row0 + r) mod causal_T when causal_T > 0:
 * columns j > t are masked (probability exactly 0, left out of the max and the sum).
 *   backward: dx (=|+=) scale y (dy - sum_j y_j dy_j)   (masked entries have y = 0)
 * The block reductions have a fixed order (a butterfly in each warp, then the warps in
 * order) and nothing uses atomics: results do not depend on scheduling. */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static __global__ void softmax_fwd_kernel(float *out, int ldo, const float *x, int ldx, int cols, float scale,
                                          int64_t causal_T, int64_t row0)
{
	__shared__ float sh[32];
	int r = blockIdx.x;
	const float *xr = x + (int64_t)r * ldx;
	float *o = out + (int64_t)r * ldo;
	int n = cols; /* the unmasked columns */
	if (causal_T > 0) {
		int64_t t1 = (row0 + r) % causal_T + 1;
		n = t1 < cols ? (int)t1 : cols;
	}
	float m = -INFINITY;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		m = fmaxf(m, scale * xr[j]);
	m = tg_block_max(m, sh);
	float s = 0.0f;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		s += expf(scale * xr[j] - m);
	float inv = 1.0f / tg_block_sum(s, sh);
	for (int j = threadIdx.x; j < cols; j += blockDim.x)
		o[j] = j < n ? expf(scale * xr[j] - m) * inv : 0.0f;
}

static __global__ void softmax_bwd_kernel(float *dx, int ldd, const float *dy, int ldg, const float *y, int ldy,
                                          int cols, float scale, int accumulate)
{
	__shared__ float sh[32];
	int r = blockIdx.x;
	const float *yr = y + (int64_t)r * ldy, *g = dy + (int64_t)r * ldg;
	float *d = dx + (int64_t)r * ldd;
	float dot = 0.0f;
	for (int j = threadIdx.x; j < cols; j += blockDim.x)
		dot += yr[j] * g[j];
	dot = tg_block_sum(dot, sh);
	for (int j = threadIdx.x; j < cols; j += blockDim.x) {
		float v = scale * yr[j] * (g[j] - dot);
		d[j] = accumulate ? d[j] + v : v;
	}
}

extern "C" void tg_softmax_fwd_cuda(tg_mat out, tg_mat x, const struct tg_softmax_args *a, cudaStream_t st)
{
	if (x.rows <= 0 || x.cols <= 0)
		return;
	softmax_fwd_kernel<<<x.rows, tg_row_threads(x.cols), 0, st>>>(TG_MF(out), out.ld, TG_MF(x), x.ld, x.cols, a->scale,
	                                                            a->causal_T, a->row0);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_softmax_bwd_cuda(tg_mat dx, tg_mat dy, tg_mat y, const struct tg_softmax_args *a, cudaStream_t st)
{
	if (y.rows <= 0 || y.cols <= 0)
		return;
	softmax_bwd_kernel<<<y.rows, tg_row_threads(y.cols), 0, st>>>(TG_MF(dx), dx.ld, TG_MF(dy), dy.ld, TG_MF(y), y.ld,
	                                                            y.cols, a->scale, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
