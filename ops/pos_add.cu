/* pos_add.cu — out = x + pos[(row0 + r) mod T], and the backward of pos:
 * dpos[t] (+)= the rows of dout at position t. One thread per element of dpos adds its rows in
 * row order (r = first row at t, then every T rows): no atomics, deterministic, the CPU's
 * order. (dx = dout is tg_copy, sum.cu.) */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

static unsigned blocks_for(int64_t n, int threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

static __global__ void pos_add_fwd_kernel(float *out, int ldo, const float *x, int ldx, const float *pos, int ldp,
                                          int rows, int cols, int64_t T, int64_t row0)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	int64_t t = (row0 + r) % T;
	out[(int64_t)r * ldo + c] = x[(int64_t)r * ldx + c] + pos[t * ldp + c];
}

/* element (t, c) of dpos: the rows r of this tile with (row0 + r) mod T == t, in order */
static __global__ void pos_add_bwd_kernel(float *dpos, int ldp, int prows, const float *dout, int ldg, int rows,
                                          int cols, int64_t T, int64_t row0, int accumulate)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)prows * cols)
		return;
	int t = (int)(i / cols), c = (int)(i % cols);
	float *d = &dpos[(int64_t)t * ldp + c];
	float s = accumulate ? *d : 0.0f;
	if (t < T) /* the positions past T get no rows: kept (accumulate) or zeroed */
		for (int64_t r = ((int64_t)t - row0 % T + T) % T; r < rows; r += T)
			s += dout[r * ldg + c];
	*d = s;
}

extern "C" void tg_pos_add_fwd_cuda(tg_mat out, tg_mat x, tg_mat pos, const struct tg_pos_add_args *a,
                                    cudaStream_t st)
{
	int64_t n = (int64_t)out.rows * out.cols;
	if (n <= 0)
		return;
	pos_add_fwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(out), out.ld, TG_MF(x), x.ld, TG_MF(pos), pos.ld,
	                                                       out.rows, out.cols, a->T, a->row0);
	TG_CUDA_LAUNCH_CHECK();
}

extern "C" void tg_pos_add_bwd_cuda(tg_mat dpos, tg_mat dout, const struct tg_pos_add_args *a, cudaStream_t st)
{
	int64_t n = (int64_t)dpos.rows * dpos.cols;
	if (n <= 0 || (a->accumulate && dout.rows <= 0))
		return;
	pos_add_bwd_kernel<<<blocks_for(n, 256), 256, 0, st>>>(TG_MF(dpos), dpos.ld, dpos.rows, TG_MF(dout), dout.ld,
	                                                       dout.rows, dpos.cols, a->T, a->row0, a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
