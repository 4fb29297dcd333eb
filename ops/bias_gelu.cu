/* bias_gelu.cu — out = gelu(x + b) (b one row, a bias), and its backward:
 *   dx (=|+=) dout gelu'(x + b): one thread per element;
 *   db (+)= the column sums of dout gelu'(x + b): one thread per column adds its rows in row
 *   order (no atomics: deterministic, the CPU's order). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

static __global__ void bias_gelu_fwd_kernel(float *out, int ldo, const float *x, int ldx, const float *b, int rows,
                                            int cols)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	out[(int64_t)r * ldo + c] = tg_geluf(x[(int64_t)r * ldx + c] + b[c]);
}

static __global__ void bias_gelu_bwd_dx_kernel(float *dx, int ldd, const float *dout, int ldg, const float *x, int ldx,
                                               const float *b, int rows, int cols, int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float v = dout[(int64_t)r * ldg + c] * tg_gelu_gradf(x[(int64_t)r * ldx + c] + b[c]);
	float *d = &dx[(int64_t)r * ldd + c];
	*d = accumulate ? *d + v : v;
}

static __global__ void bias_gelu_bwd_db_kernel(float *db, const float *dout, int ldg, const float *x, int ldx,
                                               const float *b, int rows, int cols, int accumulate)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= cols)
		return;
	float bc = b[c], s = accumulate ? db[c] : 0.0f;
#pragma unroll 4
	for (int r = 0; r < rows; r++)
		s += dout[(int64_t)r * ldg + c] * tg_gelu_gradf(x[(int64_t)r * ldx + c] + bc);
	db[c] = s;
}

extern "C" void tg_bias_gelu_fwd_cuda(tg_mat out, tg_mat x, tg_mat b, const struct tg_bias_gelu_args *a,
                                      cudaStream_t st)
{
	(void)a;
	int64_t n = (int64_t)out.rows * out.cols;
	if (n <= 0)
		return;
	bias_gelu_fwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(out), out.ld, TG_MF(x), x.ld, TG_MF(b), out.rows,
	                                                         out.cols);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_bias_gelu_bwd_dx_cuda(tg_mat dx, tg_mat dout, tg_mat x, tg_mat b, const struct tg_bias_gelu_args *a,
                                         cudaStream_t st)
{
	int64_t n = (int64_t)dx.rows * dx.cols;
	if (n <= 0)
		return;
	bias_gelu_bwd_dx_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(dx), dx.ld, TG_MF(dout), dout.ld, TG_MF(x), x.ld,
	                                                            TG_MF(b), dx.rows, dx.cols, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_bias_gelu_bwd_db_cuda(tg_mat db, tg_mat dout, tg_mat x, tg_mat b, const struct tg_bias_gelu_args *a,
                                         cudaStream_t st)
{
	if (x.cols <= 0 || (x.rows <= 0 && a->accumulate))
		return;
	bias_gelu_bwd_db_kernel<<<blocks_for(x.cols, 128), 128, 0, st>>>(TG_MF(db), TG_MF(dout), dout.ld, TG_MF(x), x.ld,
	                                                                 TG_MF(b), x.rows, x.cols, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
