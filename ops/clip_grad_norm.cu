/* clip_grad_norm.cu — the global norm clip, without a host wait:
 *   sumsq: acc[0] (+)= the sum of squares of g, in double inside the task: one block, each
 *     thread a fixed stride of the elements, then a fixed tree (deterministic, no atomics);
 *   clip_norm: norm = sqrt(acc[0]); acc[0] = norm, acc[1] = min(1, max_norm / (norm + 1e-6));
 *   clip_scale: g *= acc[1] (read on the device). */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

#define SUMSQ_THREADS 512

/* one block: thread t takes the elements t, t + SUMSQ_THREADS, ... (row-major over g), then
 * the threads' sums meet in a fixed tree */
static __global__ void sumsq_kernel(float *acc, const float *g, int ldg, int rows, int cols, int accumulate)
{
	__shared__ double sh[SUMSQ_THREADS];
	double s = 0.0;
	int r = (int)(threadIdx.x / cols), c = (int)(threadIdx.x % cols);
	while (r < rows) {
		double x = g[(int64_t)r * ldg + c];
		s += x * x;
		c += SUMSQ_THREADS; /* the next element of this thread: SUMSQ_THREADS further on */
		r += c / cols;
		c %= cols;
	}
	sh[threadIdx.x] = s;
	__syncthreads();
	for (int half = SUMSQ_THREADS / 2; half > 0; half /= 2) {
		if ((int)threadIdx.x < half)
			sh[threadIdx.x] += sh[threadIdx.x + half];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		acc[0] = (float)(accumulate ? (double)acc[0] + sh[0] : sh[0]);
}

static __global__ void clip_norm_kernel(float *acc, float max_norm)
{
	float norm = sqrtf(acc[0]);
	float factor = max_norm / (norm + 1e-6f);
	acc[0] = norm;
	acc[1] = factor > 1.0f ? 1.0f : factor; /* a NaN norm gives a NaN factor: it shows */
}

static __global__ void clip_scale_kernel(float *g, int ldg, const float *acc, int rows, int cols)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	g[(int64_t)r * ldg + c] *= acc[1];
}

extern "C" void tg_sumsq_cuda(tg_mat acc, tg_mat g, const struct tg_clip_args *a, cudaStream_t st)
{
	if ((int64_t)g.rows * g.cols <= 0) {
		if (a->accumulate)
			return;
		/* nothing to add: the sum is 0 */
		TG_CUDA_CHECK(cudaMemsetAsync(acc.p, 0, sizeof(float), st));
		return;
	}
	sumsq_kernel<<<1, SUMSQ_THREADS, 0, st>>>(TG_MF(acc), TG_MF(g), g.ld, g.rows, g.cols, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_clip_norm_cuda(tg_mat acc, const struct tg_clip_args *a, cudaStream_t st)
{
	clip_norm_kernel<<<1, 1, 0, st>>>(TG_MF(acc), a->max_norm);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_clip_scale_cuda(tg_mat g, tg_mat acc, const struct tg_clip_args *a, cudaStream_t st)
{
	(void)a;
	int64_t n = (int64_t)g.rows * g.cols;
	if (n <= 0)
		return;
	clip_scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(TG_MF(g), g.ld, TG_MF(acc), g.rows, g.cols);
	TG_CUDA_LAUNCH_CHECK();
}
