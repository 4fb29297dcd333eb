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

/* cuda_report.cu: errors that kernels find in their data (an index out of range).
 * A kernel raises a report in device memory (tg_cuda_report_raise: the first raise wins);
 * the launcher clears the report before the kernel (tg_cuda_report_clear) and calls
 * tg_cuda_report_check after it, which copies the report, behind the kernel on the stream,
 * into this worker's slot `site` of pinned host memory and, once the kernel has run, turns a
 * raised report into a task error: tg_task_error(TG_EINVAL, fmt, a, b, c) (fmt: three ints,
 * a static string). The task completes after that, so the error is there at the next wait.
 * A report is 16 bytes of a task's scratch buffer. */
typedef struct tg_cuda_report {
	int code, a, b, c;
} tg_cuda_report;
#ifdef __cplusplus
static_assert(sizeof(tg_cuda_report) == 16, "a report takes the first 16 bytes of a scratch buffer");
#else
_Static_assert(sizeof(tg_cuda_report) == 16, "a report takes the first 16 bytes of a scratch buffer");
#endif
/* the launchers that report, one site each */
enum { TG_SITE_XENT_FWD = 0, TG_SITE_XENT_BWD = 1, TG_SITE_EMBED_FWD = 2, TG_SITE_EMBED_BWD = 3, TG_CUDA_REPORT_SITES = 8 };
void tg_cuda_report_clear(tg_cuda_report *dev, cudaStream_t stream);
void tg_cuda_report_check(const tg_cuda_report *dev, int site, const char *fmt, cudaStream_t stream);
#ifdef __CUDACC__
/* Row kernels: one block per row, tg_row_threads(cols) threads (a power of two from 32 to
 * 256, enough for the row's columns). */
static inline int tg_row_threads(int cols)
{
	int t = 32;
	while (t < cols && t < 256)
		t *= 2;
	return t;
}

/* Block-wide sum and max, the same bits in every thread: a butterfly in each warp (every lane
 * ends with the same value, float addition commutes), then the warps' values in a fixed
 * order. sh: 32 floats of shared memory; blockDim.x a multiple of 32. */
static __device__ inline float tg_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

static __device__ inline float tg_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

static __device__ inline float tg_block_sum(float v, float *sh)
{
	v = tg_warp_sum(v);
	__syncthreads(); /* sh is free: the previous call's reads are done */
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	int lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
	return tg_warp_sum(lane < nwarps ? sh[lane] : 0.0f);
}

static __device__ inline float tg_block_max(float v, float *sh)
{
	v = tg_warp_max(v);
	__syncthreads();
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	int lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
	return tg_warp_max(lane < nwarps ? sh[lane] : -INFINITY);
}

static __device__ inline void tg_cuda_report_raise(tg_cuda_report *r, int a, int b, int c)
{
	if (atomicCAS(&r->code, 0, 1) == 0) {
		r->a = a;
		r->b = b;
		r->c = c;
	}
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* TG_CUDA_H */
