/* embedding.cu — embedding lookup and its backward.
 *   forward: one block per row copies table row ids[r] (a bad id: a NaN row and a report).
 *   backward: dtable[ids[r]] (+)= dout[r] in row order, without atomics: thread (c, p) owns
 *   column c of the table rows v with v mod P == p, zeroes them when not accumulating, then
 *   scans every id in row order and adds the rows that land on its own table rows. Each
 *   element of dtable is written by one thread, its terms added in row order: deterministic,
 *   and the same sums as the CPU kernel.
 * A bad id is never used as an index; it is reported through the first 16 bytes of scratch
 * (cuda_report.cu). */
#include "config.h"

#include <math.h>
#include <starpu.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"


/* id r of an ids operand (a vector, or a matrix read row by row) */
static __device__ int id_at(const int32_t *ids, int icols, int ild, int r)
{
	return ids[(int64_t)(r / icols) * ild + r % icols];
}

/* block r: out row r = table row ids[r], or NaN and a report when the id is outside [0, V) */
static __global__ void embedding_fwd_kernel(float *out, int ldo, const float *table, int ldt, int V,
                                            const int32_t *ids, int icols, int ild, int cols, int row0,
                                            tg_cuda_report *report)
{
	int r = blockIdx.x;
	int id = id_at(ids, icols, ild, r);
	float *o = out + (int64_t)r * ldo;
	if (id < 0 || id >= V) {
		if (threadIdx.x == 0)
			tg_cuda_report_raise(report, id, row0 + r, V);
		for (int c = threadIdx.x; c < cols; c += blockDim.x)
			o[c] = NAN;
		return;
	}
	const float *t = table + (int64_t)id * ldt;
	for (int c = threadIdx.x; c < cols; c += blockDim.x)
		o[c] = t[c];
}

/* thread (c, p), p = blockIdx.y of P = gridDim.y: column c of the table rows v = p mod P */
static __global__ void embedding_bwd_kernel(float *dtable, int ldd, int V, const float *dout, int ldg,
                                            const int32_t *ids, int icols, int ild, int rows, int cols,
                                            int accumulate, int row0, tg_cuda_report *report)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	int p = blockIdx.y, P = gridDim.y;
	if (c >= cols)
		return;
	if (!accumulate)
		for (int v = p; v < V; v += P)
			dtable[(int64_t)v * ldd + c] = 0.0f;
	for (int r = 0; r < rows; r++) {
		int id = id_at(ids, icols, ild, r);
		if (id < 0 || id >= V) { /* skipped, reported once (by thread (0, 0)) */
			if (c == 0 && p == 0)
				tg_cuda_report_raise(report, id, row0 + r, V);
			continue;
		}
		if (id % P == p)
			dtable[(int64_t)id * ldd + c] += dout[(int64_t)r * ldg + c];
	}
}

extern "C" void tg_embedding_fwd_cuda(tg_mat out, tg_mat table, tg_mat ids, tg_mat scratch,
                                      const struct tg_embedding_args *a, cudaStream_t st)
{
	if (out.rows <= 0)
		return;
	tg_cuda_report *report = (tg_cuda_report *)scratch.p;
	tg_cuda_report_clear(report, st);
	embedding_fwd_kernel<<<out.rows, tg_row_threads(out.cols), 0, st>>>(TG_MF(out), out.ld, TG_MF(table), table.ld,
	                                                                  table.rows, TG_MI(ids), ids.cols, ids.ld,
	                                                                  out.cols, (int)a->row0, report);
	TG_CUDA_LAUNCH_CHECK();
	tg_cuda_report_check(report, TG_SITE_EMBED_FWD, a->bad_fmt, st);
}

extern "C" void tg_embedding_bwd_cuda(tg_mat dtable, tg_mat dout, tg_mat ids, tg_mat scratch,
                                      const struct tg_embedding_args *a, cudaStream_t st)
{
	if (dtable.cols <= 0 || (dout.rows <= 0 && (a->accumulate || dtable.rows <= 0)))
		return;
	tg_cuda_report *report = (tg_cuda_report *)scratch.p;
	tg_cuda_report_clear(report, st);
	/* enough (column, residue) threads to fill the device: about 64K, at most 64 residues */
	const int threads = 128;
	int col_blocks = (dtable.cols + threads - 1) / threads;
	int P = (512 + col_blocks - 1) / col_blocks;
	P = P < 1 ? 1 : (P > 64 ? 64 : P);
	embedding_bwd_kernel<<<dim3((unsigned)col_blocks, (unsigned)P), threads, 0, st>>>(
		TG_MF(dtable), dtable.ld, dtable.rows, TG_MF(dout), dout.ld, TG_MI(ids), ids.cols, ids.ld, dout.rows,
		dtable.cols, a->accumulate, (int)a->row0, report);
	TG_CUDA_LAUNCH_CHECK();
	tg_cuda_report_check(report, TG_SITE_EMBED_BWD, a->bad_fmt, st);
}
