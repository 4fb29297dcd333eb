/* transpose.cu — out (=|+=) x^T for each of `batch` (n, m) matrices stacked by rows: x (batch n,
 * m), out (batch m, n). Tiles of 32 x 32 go through shared memory so that both the reads and
 * the writes are coalesced; each element of out is written by one thread (deterministic). */
#include "config.h"

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

#define TILE 32
#define ROWS_PER_PASS 8 /* blockDim.y: each thread moves TILE / ROWS_PER_PASS elements */

/* block (bx, by, z): the tile of x at rows by TILE .., columns bx TILE .. of matrices z,
 * z + gridDim.z, ... */
static __global__ void transpose_kernel(float *out, int ldo, const float *x, int ldx, int batch, int n, int m,
                                        int accumulate)
{
	__shared__ float tile[TILE][TILE + 1]; /* + 1: no bank conflicts on the column reads */
	int i0 = blockIdx.y * TILE, j0 = blockIdx.x * TILE; /* the tile's first row (i) and column (j) of x */
	for (int b = blockIdx.z; b < batch; b += gridDim.z) {
		const float *xb = x + (int64_t)b * n * ldx;
		float *ob = out + (int64_t)b * m * ldo;
		for (int di = threadIdx.y; di < TILE; di += ROWS_PER_PASS) {
			int i = i0 + di, j = j0 + threadIdx.x;
			if (i < n && j < m)
				tile[di][threadIdx.x] = xb[(int64_t)i * ldx + j];
		}
		__syncthreads();
		for (int dj = threadIdx.y; dj < TILE; dj += ROWS_PER_PASS) {
			int j = j0 + dj, i = i0 + threadIdx.x; /* out row j, column i */
			if (j < m && i < n) {
				float *o = &ob[(int64_t)j * ldo + i];
				float v = tile[threadIdx.x][dj];
				*o = accumulate ? *o + v : v;
			}
		}
		__syncthreads(); /* the tile is read before the next matrix overwrites it */
	}
}

extern "C" void tg_transpose_cuda(tg_mat out, tg_mat x, const struct tg_transpose_args *a, cudaStream_t st)
{
	if (a->batch <= 0 || a->n <= 0 || a->m <= 0)
		return;
	dim3 block(TILE, ROWS_PER_PASS);
	dim3 grid((unsigned)((a->m + TILE - 1) / TILE), (unsigned)((a->n + TILE - 1) / TILE),
	          (unsigned)(a->batch < 65535 ? a->batch : 65535));
	transpose_kernel<<<grid, block, 0, st>>>(TG_MF(out), out.ld, TG_MF(x), x.ld, a->batch, a->n, a->m,
	                                         a->accumulate);
	TG_CUDA_LAUNCH_CHECK();
}
