/* softmax_xent.cu — fused softmax cross-entropy. One block per row; the reductions use a
 * fixed tree, and the tile's share of the mean is a second single-block kernel, so the result
 * does not depend on scheduling (no atomics). A target out of range is reported through the
 * first 16 bytes of the scratch (cuda_report.cu); the per-row losses follow it. */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"

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

/* max and sum(exp(x - max)) of one row */
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
                                      int tld, int v, int row0, tg_cuda_report *report)
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
			tg_cuda_report_raise(report, t, row0 + r, v);
		}
	}
}

static __global__ void share_kernel(float *loss, const float *rowloss, int n, double total, int accumulate)
{
	__shared__ float sh[THREADS];
	float s = 0.0f;
	for (int i = threadIdx.x; i < n; i += THREADS)
		s += rowloss[i];
	s = block_sum(s, sh);
	if (threadIdx.x == 0) {
		float share = (float)(s / total);
		loss[0] = accumulate ? loss[0] + share : share;
	}
}

static __global__ void bwd_kernel(float *dlogits, int ldd, const float *dloss, const float *logits, int ld,
                                  const int32_t *targets, int tcols, int tld, double total, int v, int accumulate,
                                  int row0, tg_cuda_report *report)
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
		tg_cuda_report_raise(report, t, row0 + r, v);
	float scale = (float)(dloss[0] / total);
	for (int j = threadIdx.x; j < v; j += THREADS) {
		float g = valid ? scale * (expf(row[j] - m) / s - (j == t ? 1.0f : 0.0f)) : NAN;
		drow[j] = accumulate ? drow[j] + g : g;
	}
}

extern "C" void tg_softmax_xent_fwd_cuda(tg_mat loss, tg_mat logits, tg_mat targets, tg_mat scratch,
                                         const struct tg_softmax_xent_args *a, cudaStream_t st)
{
	tg_cuda_report *report = (tg_cuda_report *)scratch.p;
	float *rowloss = (float *)(report + 1);
	tg_cuda_report_clear(report, st);
	rowloss_kernel<<<logits.rows, THREADS, 0, st>>>(rowloss, TG_MF(logits), logits.ld, TG_MI(targets), targets.cols,
	                                                targets.ld, logits.cols, (int)a->row0, report);
	TG_CUDA_LAUNCH_CHECK();
	tg_cuda_report_check(report, TG_SITE_XENT_FWD, a->bad_target_fmt, st);
	share_kernel<<<1, THREADS, 0, st>>>(TG_MF(loss), rowloss, logits.rows, (double)a->total_rows, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_softmax_xent_bwd_cuda(tg_mat dlogits, tg_mat dloss, tg_mat logits, tg_mat targets, tg_mat scratch,
                                         const struct tg_softmax_xent_args *a, cudaStream_t st)
{
	tg_cuda_report *report = (tg_cuda_report *)scratch.p;
	tg_cuda_report_clear(report, st);
	bwd_kernel<<<logits.rows, THREADS, 0, st>>>(TG_MF(dlogits), dlogits.ld, TG_MF(dloss), TG_MF(logits), logits.ld,
	                                            TG_MI(targets), targets.cols, targets.ld, (double)a->total_rows,
	                                            logits.cols, a->accumulate, (int)a->row0, report);
	TG_CUDA_LAUNCH_CHECK();
	tg_cuda_report_check(report, TG_SITE_XENT_BWD, a->bad_target_fmt, st);
}
