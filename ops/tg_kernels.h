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
