/*
 * tg_cuda.h — the CUDA launchers of the ops (defined in ops/NAME.cu) and the CUDA error
 * macros. A launcher runs on starpu_cuda_get_local_stream(), checks its launch and never
 * synchronises the host. Errors inside a task are reported with tg_task_error.
 */
#ifndef TG_CUDA_H
#define TG_CUDA_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "taskgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CUDA_CHECK(call)                                                                 \
	do {                                                                                \
		cudaError_t tg_e_ = (call);                                                 \
		if (tg_e_ != cudaSuccess)                                                   \
			tg_task_error_at(__FILE__, __LINE__, TG_ECUDA, "%s: %s", #call,      \
			                 cudaGetErrorString(tg_e_));                        \
	} while (0)
#define TG_CUDA_LAUNCH_CHECK() TG_CUDA_CHECK(cudaGetLastError())
#define TG_CUBLAS_CHECK(call)                                                               \
	do {                                                                                \
		cublasStatus_t tg_s_ = (call);                                              \
		if (tg_s_ != CUBLAS_STATUS_SUCCESS)                                         \
			tg_task_error_at(__FILE__, __LINE__, TG_ECUDA, "%s: %s", #call,      \
			                 cublasGetStatusString(tg_s_));                     \
	} while (0)

/* matmul.cu: C (m, n) = op(X) op(Y) + beta C, row-major with leading dimensions. */
void tg_cuda_gemm(float *c, int ldc, const float *x, int ldx, const float *y, int ldy,
                  int m, int n, int k, int trans_x, int trans_y, float beta);

/* add.cu */
void tg_cuda_add_fwd(float *out, int ldo, const float *a, int lda, const float *b, int ldb,
                     int rows, int cols, int broadcast);
/* dst (=|+=) src, or the column sums of src when dst has one row. */
void tg_cuda_add_bwd(float *dst, int ldd, const float *src, int lds, int rows, int cols,
                     int reduce_rows, int accumulate);

/* relu.cu */
void tg_cuda_relu_fwd(float *out, int ldo, const float *x, int ldx, int rows, int cols);
void tg_cuda_relu_bwd(float *dx, int lddx, const float *dout, int lddo, const float *x, int ldx,
                      int rows, int cols, int accumulate);

/* softmax_xent.cu: targets is a (., tcols) matrix with rows tld apart; rowloss is a scratch
 * buffer of n floats. */
void tg_cuda_softmax_xent_fwd(float *loss, const float *logits, int ld, const int32_t *targets, int tcols,
                              int tld, int n, int v, float *rowloss);
void tg_cuda_softmax_xent_bwd(float *dlogits, int ldd, const float *dloss, const float *logits, int ld,
                              const int32_t *targets, int tcols, int tld, int n, int v, int accumulate);

/* sgd.cu */
void tg_cuda_sgd(float *param, int ldp, const float *grad, int ldg, float *velocity, int ldv, int rows,
                 int cols, float lr, float momentum, float weight_decay);

#ifdef __cplusplus
}
#endif
#endif /* TG_CUDA_H */
