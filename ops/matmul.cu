/* matmul.cu — GEMM through cuBLAS (StarPU's handle for the worker), row-major operands. */
#include "config.h"

#include <starpu.h>
#include <starpu_cublas_v2.h>

#include "tg_cuda.h"
#include "tg_kernels.h"

/* Row-major C = op(X) op(Y) is column-major C^T = op(Y)^T op(X)^T: swap the operands. */
extern "C" void tg_matmul_cuda(tg_mat c, tg_mat x, tg_mat y, const struct tg_matmul_args *a, cudaStream_t stream)
{
	(void)stream; /* StarPU's handle is bound to the worker's stream */
	const float one = 1.0f;
	int k = a->trans_x ? x.rows : x.cols;
	TG_CUBLAS_CHECK(cublasSgemm(starpu_cublas_get_local_handle(), a->trans_y ? CUBLAS_OP_T : CUBLAS_OP_N,
	                            a->trans_x ? CUBLAS_OP_T : CUBLAS_OP_N, c.cols, c.rows, k, &one, TG_MF(y), y.ld,
	                            TG_MF(x), x.ld, &a->beta, TG_MF(c), c.ld));
}
