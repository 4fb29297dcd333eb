/* concat_cols.cu — out = [x0 | x1 | ... | x_{n-1}] along the columns (1 to 8 inputs, each of
 * out's rows). One thread per element of out finds its input from the column offsets
 * (each element written by one thread: deterministic). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

#define MAX_INPUTS 8

/* the inputs, by value: pointers, leading dimensions, first column in out (c0[n] = out's cols) */
struct concat_inputs {
	const float *p[MAX_INPUTS];
	int ld[MAX_INPUTS];
	int c0[MAX_INPUTS + 1];
	int n;
};

static __global__ void concat_kernel(float *out, int ldo, int rows, int cols, struct concat_inputs in)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (int64_t)rows * cols)
		return;
	int r = (int)(i / cols), c = (int)(i % cols);
	int k = 0;
	while (k + 1 < in.n && c >= in.c0[k + 1])
		k++;
	out[(int64_t)r * ldo + c] = in.p[k][(int64_t)r * in.ld[k] + (c - in.c0[k])];
}

extern "C" void tg_concat_fwd_cuda(tg_mat out, tg_mat x0, tg_mat x1, tg_mat x2, tg_mat x3, tg_mat x4, tg_mat x5,
                                   tg_mat x6, tg_mat x7, const struct tg_slice_args *a, cudaStream_t st)
{
	const tg_mat xs[MAX_INPUTS] = {x0, x1, x2, x3, x4, x5, x6, x7};
	struct concat_inputs in;
	int n = a->n < 0 ? 0 : (a->n > MAX_INPUTS ? MAX_INPUTS : a->n);
	int c0 = 0;
	for (int k = 0; k < MAX_INPUTS; k++) {
		in.p[k] = k < n ? TG_MF(xs[k]) : NULL;
		in.ld[k] = k < n ? xs[k].ld : 0;
		in.c0[k] = c0;
		c0 += k < n ? xs[k].cols : 0;
	}
	in.c0[MAX_INPUTS] = c0;
	in.n = n;
	/* only the columns the inputs cover (they cover out's when the shapes were checked) */
	int cols = c0 < out.cols ? c0 : out.cols;
	int64_t total = (int64_t)out.rows * cols;
	if (total <= 0)
		return;
	concat_kernel<<<(unsigned)((total + 255) / 256), 256, 0, st>>>(TG_MF(out), out.ld, out.rows, cols, in);
	TG_CUDA_LAUNCH_CHECK();
}
