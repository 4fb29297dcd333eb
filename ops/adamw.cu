/* adamw.cu — the AdamW step, one thread per element (each element of param, m, v updated by
 * one thread: deterministic):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   param -= lr (m / bias1 / (sqrt(v / bias2) + eps) + weight_decay param)
 * bias1 = 1 - b1^t, bias2 = 1 - b2^t, given. */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static __global__ void adamw_kernel(float *param, int ldp, const float *grad, int ldg, float *m, int ldm, float *v,
                                    int ldv, int rows, int cols, struct tg_adamw_args a)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	float g = grad[(int64_t)r * ldg + c];
	float *pp = &param[(int64_t)r * ldp + c], *mp = &m[(int64_t)r * ldm + c], *vp = &v[(int64_t)r * ldv + c];
	float mi = a.beta1 * *mp + (1.0f - a.beta1) * g;
	float vi = a.beta2 * *vp + (1.0f - a.beta2) * g * g;
	*mp = mi;
	*vp = vi;
	float p = *pp;
	*pp = p - a.lr * (mi / a.bias1 / (sqrtf(vi / a.bias2) + a.eps) + a.weight_decay * p);
}

extern "C" void tg_adamw_cuda(tg_mat param, tg_mat grad, tg_mat m, tg_mat v, const struct tg_adamw_args *a,
                              cudaStream_t st)
{
	int64_t n = (int64_t)param.rows * param.cols;
	if (n <= 0)
		return;
	adamw_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(TG_MF(param), param.ld, TG_MF(grad), grad.ld, TG_MF(m),
	                                                          m.ld, TG_MF(v), v.ld, param.rows, param.cols, *a);
	TG_CUDA_LAUNCH_CHECK();
}
