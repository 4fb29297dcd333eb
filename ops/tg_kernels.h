/*
 * tg_kernels.h — every built-in kernel, with its argument struct: the CPU kernels (defined in
 * ops/NAME.c) and the CUDA launchers (ops/NAME.cu) take the same arguments, the launcher adds
 * the stream. Operands are tg_mat (pointer, rows, columns, leading dimension); kernels work
 * without StarPU, so tests and benchmarks call them directly. Arguments: outputs, then
 * inputs, then the argument struct.
 */
#ifndef TG_KERNELS_H
#define TG_KERNELS_H

#include <stdint.h>

#include "taskgrad_op.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TG_USE_CUDA) || defined(__CUDACC__)
#include <cuda_runtime.h>
#define TG_CUDA_KERNEL(decl) decl;
#else
#define TG_CUDA_KERNEL(decl)
#endif
/* Declares name_cpu(operands..., args) and, with CUDA, name_cuda(operands..., args, stream). */
#define TG_KERNEL_DECL(name, args_t, ...)                                   \
	void name##_cpu(__VA_ARGS__, const args_t *args);                   \
	TG_CUDA_KERNEL(void name##_cuda(__VA_ARGS__, const args_t *args, cudaStream_t stream))

/* matmul: C (m, n) = op(X) op(Y) + beta C; op(M) = M^T when trans is set. */
struct tg_matmul_args {
	int trans_x, trans_y;
	float beta;
};
TG_KERNEL_DECL(tg_matmul, struct tg_matmul_args, tg_mat c, tg_mat x, tg_mat y)

/* add: out = a + b, b of a's shape or one row broadcast over a's rows. backward:
 * dst (=|+=) src, or the column sums of src when dst is one row and src has more (summed
 * in row order: deterministic, and the same whatever the row tiles). */
struct tg_add_args {
	int broadcast;  /* forward: b is one row */
	int accumulate; /* backward: add into dst */
};
TG_KERNEL_DECL(tg_add_fwd, struct tg_add_args, tg_mat out, tg_mat a, tg_mat b)
TG_KERNEL_DECL(tg_add_bwd, struct tg_add_args, tg_mat dst, tg_mat src)

/* softmax_xent: loss (+)= sum over the rows r of (logsumexp(logits[r]) - logits[r][t_r]) /
 * total_rows; backward dlogits (=|+=) dloss / total_rows * (softmax - onehot). targets: int32,
 * one per row (a vector, or a matrix read row by row). A target outside [0, V) is reported
 * (tg_task_error; on GPUs through the report in the first 16 bytes of scratch) and gives NaN.
 * scratch (GPUs): the report, then one float per row. */
struct tg_softmax_xent_args {
	int64_t total_rows; /* rows of the whole op (a tile takes its share of the mean) */
	int64_t row0;       /* the tile's first row in the op (for messages) */
	int accumulate;     /* forward: add into the loss (the tiles after the first); backward: into dlogits */
	const char *bad_target_fmt; /* the message of a target out of range: value, row, classes */
};
TG_KERNEL_DECL(tg_softmax_xent_fwd, struct tg_softmax_xent_args, tg_mat loss, tg_mat logits, tg_mat targets,
               tg_mat scratch)
TG_KERNEL_DECL(tg_softmax_xent_bwd, struct tg_softmax_xent_args, tg_mat dlogits, tg_mat dloss, tg_mat logits,
               tg_mat targets, tg_mat scratch)

/* sgd: g = grad + weight_decay * param; v = momentum * v + g (if v.p); param -= lr * (v or g). */
struct tg_sgd_args {
	float lr, momentum, weight_decay;
};
TG_KERNEL_DECL(tg_sgd, struct tg_sgd_args, tg_mat param, tg_mat grad, tg_mat velocity)

/* embedding: out row r = table row ids[r]; backward dtable[ids[r]] (+)= dout[r] in row order.
 * A bad id is reported (tg_task_error; on GPUs through the report in scratch) and gives NaN. */
struct tg_embedding_args {
	int64_t row0;         /* the tile's first row in the op (for messages) */
	int accumulate;       /* backward: add into dtable (else it is zeroed first) */
	const char *bad_fmt;  /* the message of a bad id: value, row, V */
};
TG_KERNEL_DECL(tg_embedding_fwd, struct tg_embedding_args, tg_mat out, tg_mat table, tg_mat ids, tg_mat scratch)
TG_KERNEL_DECL(tg_embedding_bwd, struct tg_embedding_args, tg_mat dtable, tg_mat dout, tg_mat ids, tg_mat scratch)

/* pos_add: out row r = x row r + pos row ((row0 + r) mod T); backward dpos[t] (+)= the rows of
 * dout at position t, in row order; dx (=|+=) dout. */
struct tg_pos_add_args {
	int64_t T, row0;
	int accumulate;
};
TG_KERNEL_DECL(tg_pos_add_fwd, struct tg_pos_add_args, tg_mat out, tg_mat x, tg_mat pos)
TG_KERNEL_DECL(tg_pos_add_bwd, struct tg_pos_add_args, tg_mat dpos, tg_mat dout)
TG_KERNEL_DECL(tg_copy, struct tg_pos_add_args, tg_mat dst, tg_mat src) /* dst (=|+=) src */

/* layernorm over each row: out = (x - mean) rstd w + b; mean, rstd per row. backward:
 * dx (=|+=) rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) (+ extra, the gradient of the
 * residual sum for add_layernorm), dxhat = dout w; dw (+)= sum_r dout xhat, db (+)= sum_r dout
 * (summed in row order). add_layernorm: sum = a + r first, then the same on sum. */
struct tg_layernorm_args {
	float eps;
	int accumulate;
	int has_extra;   /* bwd_dx: add the extra operand */
};
TG_KERNEL_DECL(tg_layernorm_fwd, struct tg_layernorm_args, tg_mat out, tg_mat mean, tg_mat rstd, tg_mat x, tg_mat w,
               tg_mat b)
TG_KERNEL_DECL(tg_add_layernorm_fwd, struct tg_layernorm_args, tg_mat sum, tg_mat out, tg_mat mean, tg_mat rstd, tg_mat a,
               tg_mat r, tg_mat w, tg_mat b)
TG_KERNEL_DECL(tg_layernorm_bwd_dx, struct tg_layernorm_args, tg_mat dx, tg_mat dout, tg_mat x, tg_mat mean, tg_mat rstd,
               tg_mat w, tg_mat extra)
TG_KERNEL_DECL(tg_layernorm_bwd_dwb, struct tg_layernorm_args, tg_mat dw, tg_mat db, tg_mat dout, tg_mat x, tg_mat mean,
               tg_mat rstd)

/* softmax of scale * x per row, columns j > (row0 + r) mod causal_T masked when causal_T > 0;
 * backward dx (=|+=) scale y (dy - sum_j y dy). */
struct tg_softmax_args {
	float scale;
	int64_t causal_T, row0;
	int accumulate;
};
TG_KERNEL_DECL(tg_softmax_fwd, struct tg_softmax_args, tg_mat out, tg_mat x)
TG_KERNEL_DECL(tg_softmax_bwd, struct tg_softmax_args, tg_mat dx, tg_mat dy, tg_mat y)

/* attention of one batch and a group of `heads` heads of head_dim d: q, k, v, out are (T,
 * heads d) (head h: columns h d .. h d + d - 1), att (heads T, T) (head h: rows h T ..).
 * forward: att_h = softmax(q_h k_h^T scale, causal), out_h = att_h v_h. backward:
 * dv_h (=|+=) att_h^T dout_h; with datt = dout_h v_h^T, dpre = att (datt - rowsum(datt att)):
 * dq_h (=|+=) scale dpre k_h, dk_h (=|+=) scale dpre^T q_h. scratch (bwd_qk): T floats x T. */
struct tg_attention_args {
	int heads, head_dim, T;
	float scale;
	int accumulate;
};
TG_KERNEL_DECL(tg_attention_fwd, struct tg_attention_args, tg_mat out, tg_mat att, tg_mat q, tg_mat k, tg_mat v)
TG_KERNEL_DECL(tg_attention_bwd_v, struct tg_attention_args, tg_mat dv, tg_mat att, tg_mat dout)
TG_KERNEL_DECL(tg_attention_bwd_qk, struct tg_attention_args, tg_mat dq, tg_mat dk, tg_mat dout, tg_mat v, tg_mat q,
               tg_mat k, tg_mat att, tg_mat scratch)

/* LSTM cell, gate order i, f, g, o in pre and gates (B, 4H): gates = [sigmoid, sigmoid, tanh,
 * sigmoid](pre); c = f c_prev + i g; h = o tanh(c). backward, with dc_total = dc + dh o (1 -
 * tanh(c)^2): dpre = [dc_total g i (1-i), dc_total c_prev f (1-f), dc_total i (1-g^2),
 * dh tanh(c) o (1-o)], dc_prev = dc_total f. Operands a step lacks (c_prev, dh, dc, dpre, dc_prev)
 * are given as any other tensor, and the flags say so. */
struct tg_lstm_args {
	int has_c_prev, has_dh, has_dc, want_dc_prev;
	int acc_pre, acc_c_prev;
	int want_pre; /* backward: write dpre (else dpre is a stand-in, not written) */
};
TG_KERNEL_DECL(tg_lstm_fwd, struct tg_lstm_args, tg_mat h, tg_mat c, tg_mat gates, tg_mat pre, tg_mat c_prev)
TG_KERNEL_DECL(tg_lstm_bwd, struct tg_lstm_args, tg_mat dpre, tg_mat dc_prev, tg_mat dh, tg_mat dc, tg_mat gates,
               tg_mat c, tg_mat c_prev)

/* slice: out (=|+=) x[:, col0 .. col0 + out.cols); backward dx[:, col0 ..] (=|+=) dout, the other
 * columns of dx zeroed when overwriting (zero_rest). concat: out = [x0 | x1 | ... ] (n inputs). */
struct tg_slice_args {
	int64_t col0;
	int accumulate, zero_rest, n;
};
TG_KERNEL_DECL(tg_slice_fwd, struct tg_slice_args, tg_mat out, tg_mat x)
TG_KERNEL_DECL(tg_slice_bwd, struct tg_slice_args, tg_mat dx, tg_mat dout)
TG_KERNEL_DECL(tg_concat_fwd, struct tg_slice_args, tg_mat out, tg_mat x0, tg_mat x1, tg_mat x2, tg_mat x3, tg_mat x4,
               tg_mat x5, tg_mat x6, tg_mat x7)
/* transpose of each of `batch` (n, m) matrices stacked by rows: out (=|+=) x^T. */
struct tg_transpose_args {
	int batch, n, m, accumulate;
};
TG_KERNEL_DECL(tg_transpose, struct tg_transpose_args, tg_mat out, tg_mat x)

/* bias_gelu: out = gelu(x + b); backward dx (=|+=) dout gelu'(x + b), db (+)= the column sums of
 * that (row order). */
struct tg_bias_gelu_args {
	int accumulate;
};
TG_KERNEL_DECL(tg_bias_gelu_fwd, struct tg_bias_gelu_args, tg_mat out, tg_mat x, tg_mat b)
TG_KERNEL_DECL(tg_bias_gelu_bwd_dx, struct tg_bias_gelu_args, tg_mat dx, tg_mat dout, tg_mat x, tg_mat b)
TG_KERNEL_DECL(tg_bias_gelu_bwd_db, struct tg_bias_gelu_args, tg_mat db, tg_mat dout, tg_mat x, tg_mat b)

/* dropout: element (row0 + r, c) of a tensor of `cols` columns has index i = (row0 + r) cols +
 * c; kept when the uniform number of (seed, step, i) is >= p, then scaled by 1 / (1 - p).
 * The backward multiplies dout by the same. */
struct tg_dropout_args {
	float p;
	uint64_t seed, step;
	int64_t row0, cols;
	int accumulate;
};
TG_KERNEL_DECL(tg_dropout_fwd, struct tg_dropout_args, tg_mat out, tg_mat x)
TG_KERNEL_DECL(tg_dropout_bwd, struct tg_dropout_args, tg_mat dx, tg_mat dout)

/* optimizers and gradient plumbing */
struct tg_adamw_args {
	float lr, beta1, beta2, eps, weight_decay;
	float bias1, bias2; /* 1 - beta1^t, 1 - beta2^t */
};
TG_KERNEL_DECL(tg_adamw, struct tg_adamw_args, tg_mat param, tg_mat grad, tg_mat m, tg_mat v)
/* clip: acc[0] (+)= sum of squares of g (double inside a task); norm = sqrt(acc[0]),
 * factor = min(1, max_norm / (norm + 1e-6)) into acc[0], acc[1]; g *= acc[1]. */
struct tg_clip_args {
	float max_norm;
	int accumulate;
};
TG_KERNEL_DECL(tg_sumsq, struct tg_clip_args, tg_mat acc, tg_mat g)
TG_KERNEL_DECL(tg_clip_norm, struct tg_clip_args, tg_mat acc)
TG_KERNEL_DECL(tg_clip_scale, struct tg_clip_args, tg_mat g, tg_mat acc)
/* sums: dst (=|+=) src (tg_copy); zero: dst = 0 (StarPU's reductions start from it). */
TG_KERNEL_DECL(tg_zero, struct tg_pos_add_args, tg_mat dst)

/* the elementwise family (elementwise.def): forward out = f(x) (or f(a, b)); backward
 * dx (=|+=) dout * df. Binary ops: which = 0 gives da, 1 gives db. */
struct tg_unary_args {
	float p;        /* the op's parameter (TG_UNARY_P) */
	int accumulate; /* backward: add into dx */
};
struct tg_binary_args {
	int which;      /* backward: 0: da, 1: db */
	int accumulate;
};
#define TG_UNARY(name, doc, f, df)                                                            \
	TG_KERNEL_DECL(tg_##name##_fwd, struct tg_unary_args, tg_mat out, tg_mat x)           \
	TG_KERNEL_DECL(tg_##name##_bwd, struct tg_unary_args, tg_mat dx, tg_mat dout, tg_mat x)
#define TG_UNARY_P TG_UNARY
#define TG_BINARY(name, doc, f, dfa, dfb)                                                             \
	TG_KERNEL_DECL(tg_##name##_fwd, struct tg_binary_args, tg_mat out, tg_mat a, tg_mat b)        \
	TG_KERNEL_DECL(tg_##name##_bwd, struct tg_binary_args, tg_mat d, tg_mat dout, tg_mat a, tg_mat b)
#include "elementwise.def"
#undef TG_UNARY
#undef TG_UNARY_P
#undef TG_BINARY

#ifdef __cplusplus
}
#endif
#endif /* TG_KERNELS_H */
