/* dropout.cu — inverted dropout: element (row0 + r, c) of a tensor of `cols` columns has index
 * i = (row0 + r) cols + c, and is kept when tg_philox_uniform(seed, step, i) >= p, then scaled
 * by 1 / (1 - p); the backward draws the same mask again and applies it to dout. The mask is a
 * function of (seed, step, i) only: the same on every worker and whatever the tiling, and the
 * same bits as the CPU kernel's (tg_philox.h is shared). One thread per element. */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

/* dst (=|+=) src * mask * scale (accumulate: the backward's dx) */
static __global__ void dropout_kernel(float *dst, int ldd, const float *src, int lds, int rows, int cols, float p,
                                      float scale, uint64_t seed, uint64_t step, int64_t row0, int64_t tcols,
                                      int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	uint64_t e = (uint64_t)((row0 + r) * tcols + c);
	float v = tg_philox_uniform(seed, step, e) >= p ? src[(int64_t)r * lds + c] * scale : 0.0f;
	float *d = &dst[(int64_t)r * ldd + c];
	*d = accumulate ? *d + v : v;
}

static void dropout_launch(tg_mat dst, tg_mat src, const struct tg_dropout_args *a, int accumulate, cudaStream_t st)
{
	int64_t n = (int64_t)dst.rows * dst.cols;
	if (n <= 0)
		return;
	float scale = 1.0f / (1.0f - a->p);
	dropout_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(dst), dst.ld, TG_MF(src), src.ld, dst.rows, dst.cols,
	                                                   a->p, scale, a->seed, a->step, a->row0, a->cols, accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_dropout_fwd_cuda(tg_mat out, tg_mat x, const struct tg_dropout_args *a, cudaStream_t st)
{
	dropout_launch(out, x, a, 0, st);
}

extern "C" void tg_dropout_bwd_cuda(tg_mat dx, tg_mat dout, const struct tg_dropout_args *a, cudaStream_t st)
{
	dropout_launch(dx, dout, a, a->accumulate, st);
}
