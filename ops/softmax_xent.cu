/* softmax_xent.cu — fused softmax cross-entropy. One block per row; the reductions use a
 * fixed tree, and the mean over rows is a second single-block kernel, so the result does
 * not depend on scheduling (no atomics). */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"

#define THREADS 256

/* Block-wide max and sum over a shared array, fixed order. */
static __device__ float block_max(float v, float *sh)
{
	sh[threadIdx.x] = v;
	__syncthreads();
	for (int s = THREADS / 2; s > 0; s /= 2) {
		if (threadIdx.x < s)
			sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
		__syncthreads();
	}
	float r = sh[0];
	__syncthreads();
	return r;
}

static __device__ float block_sum(float v, float *sh)
{
	sh[threadIdx.x] = v;
	__syncthreads();
	for (int s = THREADS / 2; s > 0; s /= 2) {
		if (threadIdx.x < s)
			sh[threadIdx.x] += sh[threadIdx.x + s];
		__syncthreads();
	}
	float r = sh[0];
	__syncthreads();
	return r;
}

/* max and sum(exp(x - max)) of row r */
static __device__ void row_stats(const float *row, int v, float *sh, float *max, float *sum)
{
	float m = -INFINITY;
	for (int j = threadIdx.x; j < v; j += THREADS)
		m = fmaxf(m, row[j]);
	m = block_max(m, sh);
	float s = 0.0f;
	for (int j = threadIdx.x; j < v; j += THREADS)
		s += expf(row[j] - m);
	*sum = block_sum(s, sh);
	*max = m;
}

/* target r of a targets matrix (tcols columns, rows tld apart) */
static __device__ int target_at(const int32_t *targets, int tcols, int tld, int r)
{
	return targets[(int64_t)(r / tcols) * tld + r % tcols];
}

static __global__ void rowloss_kernel(float *rowloss, const float *logits, int ld, const int32_t *targets, int tcols,
                                      int tld, int v, tg_cuda_report *report)
{
	__shared__ float sh[THREADS];
	int r = blockIdx.x;
	const float *row = logits + (int64_t)r * ld;
	float m, s;
	row_stats(row, v, sh, &m, &s);
	if (threadIdx.x == 0) {
		int t = target_at(targets, tcols, tld, r);
		if (t >= 0 && t < v) {
			rowloss[r] = m + logf(s) - row[t];
		} else { /* never read outside the row: report the target instead */
			rowloss[r] = NAN;
			tg_cuda_report_raise(report, t, r, v);
		}
	}
}

static __global__ void mean_kernel(float *loss, const float *rowloss, int n)
{
	__shared__ float sh[THREADS];
	float s = 0.0f;
	for (int i = threadIdx.x; i < n; i += THREADS)
		s += rowloss[i];
	s = block_sum(s, sh);
	if (threadIdx.x == 0)
		loss[0] = s / n;
}

static __global__ void bwd_kernel(float *dlogits, int ldd, const float *dloss, const float *logits, int ld,
                                  const int32_t *targets, int tcols, int tld, int n, int v, int accumulate,
                                  tg_cuda_report *report)
{
	__shared__ float sh[THREADS];
	int r = blockIdx.x;
	const float *row = logits + (int64_t)r * ld;
	float *drow = dlogits + (int64_t)r * ldd;
	float m, s;
	row_stats(row, v, sh, &m, &s);
	int t = target_at(targets, tcols, tld, r);
	int valid = t >= 0 && t < v;
	if (!valid && threadIdx.x == 0)
		tg_cuda_report_raise(report, t, r, v);
	float scale = dloss[0] / n;
	for (int j = threadIdx.x; j < v; j += THREADS) {
		float g = valid ? scale * (expf(row[j] - m) / s - (j == t ? 1.0f : 0.0f)) : NAN;
		drow[j] = accumulate ? drow[j] + g : g;
	}
}

extern "C" void tg_cuda_softmax_xent_fwd(float *loss, const float *logits, int ld, const int32_t *targets, int tcols,
                                         int tld, int n, int v, float *rowloss, tg_cuda_report *report,
                                         const char *fmt)
{
	cudaStream_t st = starpu_cuda_get_local_stream();
	tg_cuda_report_clear(report, st);
	rowloss_kernel<<<n, THREADS, 0, st>>>(rowloss, logits, ld, targets, tcols, tld, v, report);
	TG_CUDA_LAUNCH_CHECK();
	tg_cuda_report_check(report, TG_SITE_XENT_FWD, fmt, st);
	mean_kernel<<<1, THREADS, 0, st>>>(loss, rowloss, n);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_cuda_softmax_xent_bwd(float *dlogits, int ldd, const float *dloss, const float *logits, int ld,
                                         const int32_t *targets, int tcols, int tld, int n, int v, int accumulate,
                                         tg_cuda_report *report, const char *fmt)
{
	cudaStream_t st = starpu_cuda_get_local_stream();
	tg_cuda_report_clear(report, st);
	bwd_kernel<<<n, THREADS, 0, st>>>(dlogits, ldd, dloss, logits, ld, targets, tcols, tld, n, v, accumulate, report);
	TG_CUDA_LAUNCH_CHECK();
	tg_cuda_report_check(report, TG_SITE_XENT_BWD, fmt, st);
}
