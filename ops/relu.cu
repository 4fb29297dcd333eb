/* relu.cu — ReLU forward and backward. */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"

static __global__ void relu_fwd_kernel(float *out, int ldo, const float *x, int ldx, int rows, int cols)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float v = x[(int64_t)r * ldx + c];
	out[(int64_t)r * ldo + c] = v > 0.0f ? v : 0.0f;
}

static __global__ void relu_bwd_kernel(float *dx, int lddx, const float *dout, int lddo, const float *x, int ldx,
                                       int rows, int cols, int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float g = x[(int64_t)r * ldx + c] > 0.0f ? dout[(int64_t)r * lddo + c] : 0.0f;
	float *d = &dx[(int64_t)r * lddx + c];
	*d = accumulate ? *d + g : g;
}

extern "C" void tg_cuda_relu_fwd(float *out, int ldo, const float *x, int ldx, int rows, int cols)
{
	int64_t n = (int64_t)rows * cols;
	relu_fwd_kernel<<<(unsigned)((n + 255) / 256), 256, 0, starpu_cuda_get_local_stream()>>>(out, ldo, x, ldx, rows,
	                                                                                         cols);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_cuda_relu_bwd(float *dx, int lddx, const float *dout, int lddo, const float *x, int ldx, int rows,
                                 int cols, int accumulate)
{
	int64_t n = (int64_t)rows * cols;
	relu_bwd_kernel<<<(unsigned)((n + 255) / 256), 256, 0, starpu_cuda_get_local_stream()>>>(
		dx, lddx, dout, lddo, x, ldx, rows, cols, accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
