/* layernorm.cu — layer normalisation over each row (and the fused residual add), backward.
 *   forward: one block per row; mean, then the biased variance about it (two passes), rstd =
 *   1 / sqrt(var + eps); out = (x - mean) rstd w + b. add_layernorm: x = a + r, written to sum.
 *   bwd_dx: one block per row, the two row means of the backward, then dx (+ extra).
 *   bwd_dwb: one thread per column sums its rows in row order.
 * The block sums have a fixed order (a butterfly in each warp, then the warps in order) and
 * nothing uses atomics: results do not depend on scheduling. */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

/* Block r normalises row r of x = a (+ res when res is not NULL; then sum = x is written). */
static __global__ void layernorm_fwd_kernel(float *sum, int lds, float *out, int ldo, float *mean, float *rstd,
                                            const float *a, int lda, const float *res, int ldr, const float *w,
                                            const float *b, int cols, float eps)
{
	__shared__ float sh[32];
	int r = blockIdx.x;
	const float *ar = a + (int64_t)r * lda;
	const float *rr = res ? res + (int64_t)r * ldr : NULL;
	float *o = out + (int64_t)r * ldo;
	float s = 0.0f;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		float x = rr ? ar[c] + rr[c] : ar[c];
		if (sum)
			sum[(int64_t)r * lds + c] = x;
		s += x;
	}
	float m = tg_block_sum(s, sh) / (float)cols;
	float q = 0.0f;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		float d = (rr ? ar[c] + rr[c] : ar[c]) - m;
		q += d * d;
	}
	float rs = 1.0f / sqrtf(tg_block_sum(q, sh) / (float)cols + eps);
	if (threadIdx.x == 0) {
		mean[r] = m;
		rstd[r] = rs;
	}
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		float x = rr ? ar[c] + rr[c] : ar[c];
		o[c] = (x - m) * rs * w[c] + b[c];
	}
}

/* Block r: dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) (+ extra), dxhat = dout w. */
static __global__ void layernorm_bwd_dx_kernel(float *dx, int ldd, const float *dout, int ldg, const float *x, int ldx,
                                               const float *mean, const float *rstd, const float *w,
                                               const float *extra, int lde, int cols, int accumulate)
{
	__shared__ float sh[32];
	int r = blockIdx.x;
	const float *xr = x + (int64_t)r * ldx, *g = dout + (int64_t)r * ldg;
	const float *e = extra ? extra + (int64_t)r * lde : NULL;
	float *d = dx + (int64_t)r * ldd;
	float m = mean[r], s = rstd[r];
	float sd = 0.0f, sdx = 0.0f;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		float dxhat = g[c] * w[c], xhat = (xr[c] - m) * s;
		sd += dxhat;
		sdx += dxhat * xhat;
	}
	float mean_d = tg_block_sum(sd, sh) / (float)cols;
	float mean_dx = tg_block_sum(sdx, sh) / (float)cols;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		float xhat = (xr[c] - m) * s;
		float v = s * (g[c] * w[c] - mean_d - xhat * mean_dx);
		if (e)
			v += e[c];
		d[c] = accumulate ? d[c] + v : v;
	}
}

/* Column c: dw[c] (+)= sum_r dout xhat, db[c] (+)= sum_r dout, rows in order. */
static __global__ void layernorm_bwd_dwb_kernel(float *dw, float *db, const float *dout, int ldg, const float *x,
                                                int ldx, const float *mean, const float *rstd, int rows, int cols,
                                                int accumulate)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= cols)
		return;
	float sw = accumulate ? dw[c] : 0.0f, sb = accumulate ? db[c] : 0.0f;
#pragma unroll 4
	for (int r = 0; r < rows; r++) {
		float g = dout[(int64_t)r * ldg + c];
		sw += g * ((x[(int64_t)r * ldx + c] - mean[r]) * rstd[r]);
		sb += g;
	}
	dw[c] = sw;
	db[c] = sb;
}

extern "C" void tg_layernorm_fwd_cuda(tg_mat out, tg_mat mean, tg_mat rstd, tg_mat x, tg_mat w, tg_mat b,
                                      const struct tg_layernorm_args *a, cudaStream_t st)
{
	if (x.rows <= 0 || x.cols <= 0)
		return;
	layernorm_fwd_kernel<<<x.rows, tg_row_threads(x.cols), 0, st>>>(NULL, 0, TG_MF(out), out.ld, TG_MF(mean),
	                                                               TG_MF(rstd), TG_MF(x), x.ld, NULL, 0, TG_MF(w),
	                                                               TG_MF(b), x.cols, a->eps);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_add_layernorm_fwd_cuda(tg_mat sum, tg_mat out, tg_mat mean, tg_mat rstd, tg_mat a, tg_mat r,
                                          tg_mat w, tg_mat b, const struct tg_layernorm_args *args, cudaStream_t st)
{
	if (a.rows <= 0 || a.cols <= 0)
		return;
	layernorm_fwd_kernel<<<a.rows, tg_row_threads(a.cols), 0, st>>>(TG_MF(sum), sum.ld, TG_MF(out), out.ld, TG_MF(mean),
	                                                               TG_MF(rstd), TG_MF(a), a.ld, TG_MF(r), r.ld,
	                                                               TG_MF(w), TG_MF(b), a.cols, args->eps);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_layernorm_bwd_dx_cuda(tg_mat dx, tg_mat dout, tg_mat x, tg_mat mean, tg_mat rstd, tg_mat w,
                                         tg_mat extra, const struct tg_layernorm_args *a, cudaStream_t st)
{
	if (x.rows <= 0 || x.cols <= 0)
		return;
	layernorm_bwd_dx_kernel<<<x.rows, tg_row_threads(x.cols), 0, st>>>(
		TG_MF(dx), dx.ld, TG_MF(dout), dout.ld, TG_MF(x), x.ld, TG_MF(mean), TG_MF(rstd), TG_MF(w),
		a->has_extra ? TG_MF(extra) : NULL, extra.ld, x.cols, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_layernorm_bwd_dwb_cuda(tg_mat dw, tg_mat db, tg_mat dout, tg_mat x, tg_mat mean, tg_mat rstd,
                                          const struct tg_layernorm_args *a, cudaStream_t st)
{
	if (x.cols <= 0 || (x.rows <= 0 && a->accumulate))
		return;
	layernorm_bwd_dwb_kernel<<<(unsigned)((x.cols + 127) / 128), 128, 0, st>>>(
		TG_MF(dw), TG_MF(db), TG_MF(dout), dout.ld, TG_MF(x), x.ld, TG_MF(mean), TG_MF(rstd), x.rows, x.cols,
		a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
