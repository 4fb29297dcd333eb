/* sum.cu — the small kernels other ops share: dst (=|+=) src (tg_copy) and dst = 0 (tg_zero),
 * one thread per element (each element written by one thread: deterministic). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

static __global__ void copy_kernel(float *dst, int ldd, const float *src, int lds, int rows, int cols, int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float v = src[(int64_t)r * lds + c];
	float *d = &dst[(int64_t)r * ldd + c];
	*d = accumulate ? *d + v : v;
}

static __global__ void zero_kernel(float *dst, int ldd, int rows, int cols)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	dst[(int64_t)r * ldd + c] = 0.0f;
}

extern "C" void tg_copy_cuda(tg_mat dst, tg_mat src, const struct tg_pos_add_args *a, cudaStream_t st)
{
	int64_t n = (int64_t)dst.rows * dst.cols;
	if (n <= 0)
		return;
	copy_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(dst), dst.ld, TG_MF(src), src.ld, dst.rows, dst.cols,
	                                                a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_zero_cuda(tg_mat dst, const struct tg_pos_add_args *a, cudaStream_t st)
{
	(void)a;
	int64_t n = (int64_t)dst.rows * dst.cols;
	if (n <= 0)
		return;
	zero_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(dst), dst.ld, dst.rows, dst.cols);
	TG_CUDA_LAUNCH_CHECK();
}
