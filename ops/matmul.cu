/* matmul.cu — the GEMM of every matmul task, on cuBLAS.
 * Row-major C = op(X) op(Y) is column-major C^T = op(Y)^T op(X)^T: the same call with the
 * operands swapped and the same transpose flags. */
#include "config.h"

#include <starpu.h>
#include <starpu_cublas_v2.h>

#include "tg_cuda.h"

extern "C" void tg_cuda_gemm(float *c, int ldc, const float *x, int ldx, const float *y, int ldy, int m, int n,
                             int k, int trans_x, int trans_y, float beta)
{
	const float alpha = 1.0f;
	cublasHandle_t h = starpu_cublas_get_local_handle();
	TG_CUBLAS_CHECK(cublasSgemm(h, trans_y ? CUBLAS_OP_T : CUBLAS_OP_N, trans_x ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
	                            &alpha, y, ldy, x, ldx, &beta, c, ldc));
}
