/* add.cu — elementwise add with row broadcast, and its backward (copy, or column sums). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"

static __global__ void add_fwd_kernel(float *out, int ldo, const float *a, int lda, const float *b, int ldb,
                                      int rows, int cols)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	out[(int64_t)r * ldo + c] = a[(int64_t)r * lda + c] + b[(int64_t)r * ldb + c];
}

static __global__ void copy_acc_kernel(float *dst, int ldd, const float *src, int lds, int rows, int cols,
                                       int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float v = src[(int64_t)r * lds + c];
	dst[(int64_t)r * ldd + c] = accumulate ? dst[(int64_t)r * ldd + c] + v : v;
}

/* One thread per column sums the rows in order: deterministic, coalesced across threads. */
static __global__ void colsum_kernel(float *dst, const float *src, int lds, int rows, int cols, int accumulate)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= cols)
		return;
	float s = accumulate ? dst[c] : 0.0f;
	for (int r = 0; r < rows; r++)
		s += src[(int64_t)r * lds + c];
	dst[c] = s;
}

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

extern "C" void tg_add_fwd_cuda(tg_mat out, tg_mat a, tg_mat b, const struct tg_add_args *args, cudaStream_t st)
{
	add_fwd_kernel<<<blocks_for((int64_t)out.rows * out.cols, 256), 256, 0, st>>>(
		TG_MF(out), out.ld, TG_MF(a), a.ld, TG_MF(b), args->broadcast ? 0 : b.ld, out.rows, out.cols);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_add_bwd_cuda(tg_mat dst, tg_mat src, const struct tg_add_args *args, cudaStream_t st)
{
	if (dst.rows != src.rows)
		colsum_kernel<<<blocks_for(src.cols, 128), 128, 0, st>>>(TG_MF(dst), TG_MF(src), src.ld, src.rows, src.cols,
		                                                         args->accumulate);
	else
		copy_acc_kernel<<<blocks_for((int64_t)src.rows * src.cols, 256), 256, 0, st>>>(
			TG_MF(dst), dst.ld, TG_MF(src), src.ld, src.rows, src.cols, args->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
