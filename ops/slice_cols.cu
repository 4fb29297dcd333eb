/* slice_cols.cu — out (=|+=) x[:, col0 .. col0 + out.cols), and its backward
 * dx[:, col0 ..] (=|+=) dout, the other columns of dx zeroed when zero_rest is set.
 * One thread per element written (each written by one thread: deterministic). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

static __global__ void slice_fwd_kernel(float *out, int ldo, const float *x, int ldx, int64_t col0, int rows, int cols,
                                        int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float v = x[(int64_t)r * ldx + col0 + c];
	float *o = &out[(int64_t)r * ldo + c];
	*o = accumulate ? *o + v : v;
}

/* over the columns [c0, c0 + ncols) of dx: the slice's get dout, the others 0 (zero_rest) */
static __global__ void slice_bwd_kernel(float *dx, int ldd, const float *dout, int ldg, int64_t col0, int wcols,
                                        int c0, int ncols, int rows, int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * ncols)
		return;
	int r = (int)(i / ncols), c = c0 + (int)(i % ncols);
	float *d = &dx[(int64_t)r * ldd + c];
	if (c >= col0 && c < col0 + wcols) {
		float v = dout[(int64_t)r * ldg + (c - col0)];
		*d = accumulate ? *d + v : v;
	} else {
		*d = 0.0f;
	}
}

extern "C" void tg_slice_fwd_cuda(tg_mat out, tg_mat x, const struct tg_slice_args *a, cudaStream_t st)
{
	int64_t n = (int64_t)out.rows * out.cols;
	if (n <= 0)
		return;
	slice_fwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(out), out.ld, TG_MF(x), x.ld, a->col0, out.rows,
	                                                     out.cols, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_slice_bwd_cuda(tg_mat dx, tg_mat dout, const struct tg_slice_args *a, cudaStream_t st)
{
	/* every column of dx when zeroing the rest, else only the slice's */
	int c0 = a->zero_rest ? 0 : (int)a->col0, ncols = a->zero_rest ? dx.cols : dout.cols;
	int64_t n = (int64_t)dx.rows * ncols;
	if (n <= 0)
		return;
	slice_bwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(dx), dx.ld, TG_MF(dout), dout.ld, a->col0, dout.cols,
	                                                     c0, ncols, dx.rows, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
