/* sgd.cu — the SGD step, one thread per element. */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"

static __global__ void sgd_kernel(float *p, int ldp, const float *g, int ldg, float *v, int ldv, int rows,
                                  int cols, float lr, float momentum, float weight_decay)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int64_t r = i / cols, c = i % cols;
	float *pi = &p[r * ldp + c];
	float gi = g[r * ldg + c] + weight_decay * *pi;
	if (v) {
		float *vi = &v[r * ldv + c];
		*vi = momentum * *vi + gi;
		gi = *vi;
	}
	*pi -= lr * gi;
}

extern "C" void tg_cuda_sgd(float *param, int ldp, const float *grad, int ldg, float *velocity, int ldv, int rows,
                            int cols, float lr, float momentum, float weight_decay)
{
	int64_t n = (int64_t)rows * cols;
	sgd_kernel<<<(unsigned)((n + 255) / 256), 256, 0, starpu_cuda_get_local_stream()>>>(
		param, ldp, grad, ldg, velocity, ldv, rows, cols, lr, momentum, weight_decay);
	TG_CUDA_LAUNCH_CHECK();
}
