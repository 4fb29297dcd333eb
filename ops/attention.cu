/* attention.cu — causal self-attention of one batch and a group of heads (see tg_kernels.h
 * for the layout: q, k, v, out (T, heads d), head h in columns h d ..; att (heads T, T), head h
 * in rows h T ..).
 *   forward: att_h = scale q_h k_h^T (one strided batched GEMM over the heads), then a causal
 *     softmax in place (key j > query t: probability exactly 0); out_h = att_h v_h.
 *   bwd_v: dv_h (=|+=) att_h^T dout_h.
 *   bwd_qk: per group of heads that fits in scratch (T x T floats a head): datt = dout_h v_h^T,
 *     dpre = att (datt - rowsum(datt att)) in place, dq_h (=|+=) scale dpre k_h, dk_h (=|+=)
 *     scale dpre^T q_h.
 * GEMMs through cuBLAS (StarPU's handle for the worker); the row kernels reduce in a fixed
 * order (a butterfly in each warp, then the warps in order) without atomics. */
#include "config.h"

#include <math.h>
#include <starpu.h>
#include <starpu_cublas_v2.h>

#include "tg_cuda.h"
#include "tg_kernels.h"
#include "tg_math.h"

/* ------------------------------------------------------------------ cuBLAS */

/* StarPU's cuBLAS handle for this worker, running on st. StarPU binds it to the worker's
 * stream, which is the stream its codelets pass; another stream is bound for the call (and
 * given back by blas_end), so that the GEMMs stay ordered with the kernels between them. */
static cublasHandle_t blas_begin(cudaStream_t st, cudaStream_t *prev)
{
	cublasHandle_t h = starpu_cublas_get_local_handle();
	*prev = st;
	TG_CUBLAS_CHECK(cublasGetStream(h, prev));
	if (*prev != st)
		TG_CUBLAS_CHECK(cublasSetStream(h, st));
	return h;
}

static void blas_end(cublasHandle_t h, cudaStream_t st, cudaStream_t prev)
{
	if (prev != st)
		TG_CUBLAS_CHECK(cublasSetStream(h, prev));
}

/* Row-major, batched: C_i (m, n) = alpha op(A_i) op(B_i) + beta C_i, op(M) = M^T when ta/tb,
 * matrix i at A + i sa (B, C alike). Row-major C is column-major C^T = op(B)^T op(A)^T:
 * cuBLAS gets the operands swapped. */
static void gemm_rm(cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda,
                    long long sa, const float *B, int ldb, long long sb, float beta, float *C, int ldc, long long sc,
                    int batch)
{
	TG_CUBLAS_CHECK(cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n,
	                                          m, k, &alpha, B, ldb, sb, A, lda, sa, &beta, C, ldc, sc, batch));
}

/* ------------------------------------------------------------------ row kernels */

/* Block r: row r of att (query t = r mod T, already scaled) becomes its causal softmax, in
 * place; keys j > t get exactly 0 and are left out of the max and the sum. Each thread
 * rewrites only the elements it read. */
static __global__ void causal_softmax_kernel(float *att, int lda, int T)
{
	__shared__ float sh[32];
	int r = blockIdx.x, n = r % T + 1;
	float *row = att + (int64_t)r * lda;
	float m = -INFINITY;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		m = fmaxf(m, row[j]);
	m = tg_block_max(m, sh);
	float s = 0.0f;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		s += expf(row[j] - m);
	float inv = 1.0f / tg_block_sum(s, sh);
	for (int j = threadIdx.x; j < T; j += blockDim.x)
		row[j] = j < n ? expf(row[j] - m) * inv : 0.0f;
}

/* Block r: d (ld T) holds row r of datt; it becomes dpre = att (datt - sum_j datt att), in
 * place, over the unmasked keys j <= t = r mod T (the masked ones: 0). */
static __global__ void dpre_kernel(float *d, const float *att, int lda, int T)
{
	__shared__ float sh[32];
	int r = blockIdx.x, n = r % T + 1;
	float *dr = d + (int64_t)r * T;
	const float *ar = att + (int64_t)r * lda;
	float s = 0.0f;
	for (int j = threadIdx.x; j < n; j += blockDim.x)
		s += dr[j] * ar[j];
	s = tg_block_sum(s, sh);
	for (int j = threadIdx.x; j < T; j += blockDim.x)
		dr[j] = j < n ? ar[j] * (dr[j] - s) : 0.0f;
}

/* ------------------------------------------------------------------ launchers */

extern "C" void tg_attention_fwd_cuda(tg_mat out, tg_mat att, tg_mat q, tg_mat k, tg_mat v,
                                      const struct tg_attention_args *a, cudaStream_t st)
{
	int H = a->heads, d = a->head_dim, T = a->T;
	if (H <= 0 || T <= 0)
		return;
	cudaStream_t prev;
	cublasHandle_t h = blas_begin(st, &prev);
	long long att_stride = (long long)T * att.ld;
	gemm_rm(h, 0, 1, T, T, d, a->scale, TG_MF(q), q.ld, d, TG_MF(k), k.ld, d, 0.0f, TG_MF(att), att.ld, att_stride,
	        H);
	causal_softmax_kernel<<<H * T, tg_row_threads(T), 0, st>>>(TG_MF(att), att.ld, T);
	TG_CUDA_LAUNCH_CHECK();
	if (d > 0)
		gemm_rm(h, 0, 0, T, d, T, 1.0f, TG_MF(att), att.ld, att_stride, TG_MF(v), v.ld, d, 0.0f, TG_MF(out), out.ld,
		        d, H);
	blas_end(h, st, prev);
}

extern "C" void tg_attention_bwd_v_cuda(tg_mat dv, tg_mat att, tg_mat dout, const struct tg_attention_args *a,
                                        cudaStream_t st)
{
	int H = a->heads, d = a->head_dim, T = a->T;
	if (H <= 0 || T <= 0 || d <= 0)
		return;
	cudaStream_t prev;
	cublasHandle_t h = blas_begin(st, &prev);
	gemm_rm(h, 1, 0, T, d, T, 1.0f, TG_MF(att), att.ld, (long long)T * att.ld, TG_MF(dout), dout.ld, d,
	        a->accumulate ? 1.0f : 0.0f, TG_MF(dv), dv.ld, d, H);
	blas_end(h, st, prev);
}

extern "C" void tg_attention_bwd_qk_cuda(tg_mat dq, tg_mat dk, tg_mat dout, tg_mat v, tg_mat q, tg_mat k, tg_mat att,
                                         tg_mat scratch, const struct tg_attention_args *a, cudaStream_t st)
{
	int H = a->heads, d = a->head_dim, T = a->T;
	if (H <= 0 || T <= 0 || d <= 0)
		return;
	/* heads per group: as many T x T floats as scratch holds for sure (its columns counted as
	 * bytes, the least they can be), at least one (the op asks for T x T floats) */
	size_t head_bytes = (size_t)T * (size_t)T * sizeof(float);
	int G = (int)((size_t)scratch.cols / head_bytes);
	G = G < 1 ? 1 : (G > H ? H : G);
	float *dp = (float *)scratch.p; /* G heads of datt, then dpre: (G T, T), ld T */
	long long att_stride = (long long)T * att.ld, dp_stride = (long long)T * T;
	float beta = a->accumulate ? 1.0f : 0.0f;
	cudaStream_t prev;
	cublasHandle_t h = blas_begin(st, &prev);
	for (int h0 = 0; h0 < H; h0 += G) {
		int g = H - h0 < G ? H - h0 : G;
		int64_t col = (int64_t)h0 * d; /* the group's first column in q, k, v, dout, dq, dk */
		const float *att_g = TG_MF(att) + (int64_t)h0 * att_stride;
		gemm_rm(h, 0, 1, T, T, d, 1.0f, TG_MF(dout) + col, dout.ld, d, TG_MF(v) + col, v.ld, d, 0.0f, dp, T,
		        dp_stride, g);
		dpre_kernel<<<g * T, tg_row_threads(T), 0, st>>>(dp, att_g, att.ld, T);
		TG_CUDA_LAUNCH_CHECK();
		gemm_rm(h, 0, 0, T, d, T, a->scale, dp, T, dp_stride, TG_MF(k) + col, k.ld, d, beta, TG_MF(dq) + col, dq.ld,
		        d, g);
		gemm_rm(h, 1, 0, T, d, T, a->scale, dp, T, dp_stride, TG_MF(q) + col, q.ld, d, beta, TG_MF(dk) + col, dk.ld,
		        d, g);
	}
	blas_end(h, st, prev);
}
