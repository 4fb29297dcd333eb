/* elementwise.cu — the elementwise family's CUDA kernels (elementwise.def): one thread per
 * element, leading dimensions honoured, no atomics (deterministic). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n)
{
	return (unsigned)((n + 255) / 256);
}

#define TG_UNARY(name, doc, f, df)                                                                       \
	static __global__ void name##_fwd_kernel(float *o, int ldo, const float *xi, int ldx, int rows, int cols, \
	                                         float p)                                                \
	{                                                                                                \
		int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;                              \
		if (i >= (int64_t)rows * cols)                                                           \
			return;                                                                          \
		int r = (int)(i / cols), c = (int)(i % cols);                                            \
		const float x = xi[(int64_t)r * ldx + c];                                                \
		(void)p;                                                                                 \
		o[(int64_t)r * ldo + c] = (f);                                                           \
	}                                                                                                \
	static __global__ void name##_bwd_kernel(float *d, int ldd, const float *g, int ldg, const float *xi, int ldx, \
	                                         int rows, int cols, float p, int accumulate)            \
	{                                                                                                \
		int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;                              \
		if (i >= (int64_t)rows * cols)                                                           \
			return;                                                                          \
		int r = (int)(i / cols), c = (int)(i % cols);                                            \
		const float x = xi[(int64_t)r * ldx + c], y = (f);                                       \
		(void)y;                                                                                 \
		(void)p;                                                                                 \
		float v = g[(int64_t)r * ldg + c] * (df);                                                \
		float *dp = &d[(int64_t)r * ldd + c];                                                    \
		*dp = accumulate ? *dp + v : v;                                                          \
	}                                                                                                \
	extern "C" void tg_##name##_fwd_cuda(tg_mat out, tg_mat in, const struct tg_unary_args *a, cudaStream_t st) \
	{                                                                                                \
		name##_fwd_kernel<<<blocks_for((int64_t)out.rows * out.cols), 256, 0, st>>>(             \
			TG_MF(out), out.ld, TG_MF(in), in.ld, out.rows, out.cols, a->p);                 \
		TG_CUDA_LAUNCH_CHECK();                                                                  \
	}                                                                                                \
	extern "C" void tg_##name##_bwd_cuda(tg_mat dx, tg_mat dout, tg_mat in, const struct tg_unary_args *a,  \
	                                     cudaStream_t st)                                            \
	{                                                                                                \
		name##_bwd_kernel<<<blocks_for((int64_t)dx.rows * dx.cols), 256, 0, st>>>(               \
			TG_MF(dx), dx.ld, TG_MF(dout), dout.ld, TG_MF(in), in.ld, dx.rows, dx.cols, a->p, \
			a->accumulate);                                                                  \
		TG_CUDA_LAUNCH_CHECK();                                                                  \
	}
#define TG_UNARY_P TG_UNARY
#define TG_BINARY(name, doc, f, dfa, dfb)                                                                \
	static __global__ void name##_fwd_kernel(float *o, int ldo, const float *ai, int lda, const float *bi, int ldb, \
	                                         int rows, int cols)                                     \
	{                                                                                                \
		int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;                              \
		if (i >= (int64_t)rows * cols)                                                           \
			return;                                                                          \
		int r = (int)(i / cols), c = (int)(i % cols);                                            \
		const float a = ai[(int64_t)r * lda + c], b = bi[(int64_t)r * ldb + c];                  \
		o[(int64_t)r * ldo + c] = (f);                                                           \
	}                                                                                                \
	static __global__ void name##_bwd_kernel(float *d, int ldd, const float *g, int ldg, const float *ai, int lda, \
	                                         const float *bi, int ldb, int rows, int cols, int which, int accumulate) \
	{                                                                                                \
		int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;                              \
		if (i >= (int64_t)rows * cols)                                                           \
			return;                                                                          \
		int r = (int)(i / cols), c = (int)(i % cols);                                            \
		const float a = ai[(int64_t)r * lda + c], b = bi[(int64_t)r * ldb + c];                  \
		float v = g[(int64_t)r * ldg + c] * (which ? (dfb) : (dfa));                             \
		float *dp = &d[(int64_t)r * ldd + c];                                                    \
		*dp = accumulate ? *dp + v : v;                                                          \
	}                                                                                                \
	extern "C" void tg_##name##_fwd_cuda(tg_mat out, tg_mat ma, tg_mat mb, const struct tg_binary_args *args,  \
	                                     cudaStream_t st)                                            \
	{                                                                                                \
		(void)args;                                                                              \
		name##_fwd_kernel<<<blocks_for((int64_t)out.rows * out.cols), 256, 0, st>>>(             \
			TG_MF(out), out.ld, TG_MF(ma), ma.ld, TG_MF(mb), mb.ld, out.rows, out.cols);     \
		TG_CUDA_LAUNCH_CHECK();                                                                  \
	}                                                                                                \
	extern "C" void tg_##name##_bwd_cuda(tg_mat d, tg_mat dout, tg_mat ma, tg_mat mb,                  \
	                                     const struct tg_binary_args *args, cudaStream_t st)         \
	{                                                                                                \
		name##_bwd_kernel<<<blocks_for((int64_t)d.rows * d.cols), 256, 0, st>>>(                 \
			TG_MF(d), d.ld, TG_MF(dout), dout.ld, TG_MF(ma), ma.ld, TG_MF(mb), mb.ld, d.rows, \
			d.cols, args->which, args->accumulate);                                          \
		TG_CUDA_LAUNCH_CHECK();                                                                  \
	}
#include "elementwise.def"
