/* sgd.cu — the SGD step, one thread per element. */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"

static __global__ void sgd_kernel(float *p, int ldp, const float *g, int ldg, float *v, int ldv, int rows, int cols,
                                  float lr, float momentum, float wd)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float *pi = &p[(int64_t)r * ldp + c];
	float gi = g[(int64_t)r * ldg + c] + wd * *pi;
	if (v) {
		float *vi = &v[(int64_t)r * ldv + c];
		*vi = momentum * *vi + gi;
		gi = *vi;
	}
	*pi -= lr * gi;
}

extern "C" void tg_sgd_cuda(tg_mat param, tg_mat grad, tg_mat velocity, const struct tg_sgd_args *a, cudaStream_t st)
{
	int64_t n = (int64_t)param.rows * param.cols;
	sgd_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(TG_MF(param), param.ld, TG_MF(grad), grad.ld,
	                                                        TG_MF(velocity), velocity.ld, param.rows, param.cols, a->lr,
	                                                        a->momentum, a->weight_decay);
	TG_CUDA_LAUNCH_CHECK();
}
