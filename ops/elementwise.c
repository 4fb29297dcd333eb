/* elementwise.c — the elementwise family (elementwise.def): for each row, the CPU kernels, the
 * codelets, the descriptor and the public function. Tiled by rows; forward out = f(x),
 * backward dx (=|+=) dout * df (activation gradients are written, parameter gradients
 * accumulate: the mode comes from tg_grad_target). The same results whatever the tiling. */
#include "tg_ops.h"

/* ------------------------------------------------------------------ CPU kernels */

/* Loops over rows and columns honour the leading dimensions; the inner loops vectorise. */
#define TG_UNARY(name, doc, f, df)                                                                 \
	static TG_VEC void name##_fwd_vec(tg_mat out, tg_mat in, const struct tg_unary_args *a)    \
	{                                                                                          \
		const float p = a->p;                                                              \
		(void)p;                                                                           \
		for (int r = 0; r < out.rows; r++) {                                               \
			float *restrict o = TG_ROW(out, r);                                        \
			const float *restrict xr = TG_ROW(in, r);                                  \
			for (int c = 0; c < out.cols; c++) {                                       \
				const float x = xr[c];                                             \
				o[c] = (f);                                                        \
			}                                                                          \
		}                                                                                  \
	}                                                                                          \
	static TG_VEC void name##_bwd_vec(tg_mat dx, tg_mat dout, tg_mat in, const struct tg_unary_args *a) \
	{                                                                                          \
		const float p = a->p;                                                              \
		(void)p;                                                                           \
		for (int r = 0; r < dx.rows; r++) {                                                \
			float *restrict d = TG_ROW(dx, r);                                         \
			const float *restrict g = TG_ROW(dout, r), *restrict xr = TG_ROW(in, r);   \
			if (a->accumulate)                                                         \
				for (int c = 0; c < dx.cols; c++) {                                \
					const float x = xr[c], y = (f);                            \
					(void)y;                                                   \
					d[c] += g[c] * (df);                                       \
				}                                                                  \
			else                                                                       \
				for (int c = 0; c < dx.cols; c++) {                                \
					const float x = xr[c], y = (f);                            \
					(void)y;                                                   \
					d[c] = g[c] * (df);                                        \
				}                                                                  \
		}                                                                                  \
	}
#define TG_UNARY_P TG_UNARY
#define TG_BINARY(name, doc, f, dfa, dfb)                                                          \
	static TG_VEC void name##_fwd_vec(tg_mat out, tg_mat ma, tg_mat mb, const struct tg_binary_args *args) \
	{                                                                                          \
		(void)args;                                                                        \
		for (int r = 0; r < out.rows; r++) {                                               \
			float *restrict o = TG_ROW(out, r);                                        \
			const float *restrict ar = TG_ROW(ma, r), *restrict br = TG_ROW(mb, r);    \
			for (int c = 0; c < out.cols; c++) {                                       \
				const float a = ar[c], b = br[c];                                  \
				o[c] = (f);                                                        \
			}                                                                          \
		}                                                                                  \
	}                                                                                          \
	static TG_VEC void name##_bwd_vec(tg_mat d, tg_mat dout, tg_mat ma, tg_mat mb,             \
	                                const struct tg_binary_args *args)                         \
	{                                                                                          \
		for (int r = 0; r < d.rows; r++) {                                                 \
			float *restrict dr = TG_ROW(d, r);                                         \
			const float *restrict g = TG_ROW(dout, r), *restrict ar = TG_ROW(ma, r);   \
			const float *restrict br = TG_ROW(mb, r);                                  \
			for (int c = 0; c < d.cols; c++) {                                         \
				const float a = ar[c], b = br[c];                                  \
				float v = g[c] * (args->which ? (dfb) : (dfa));                    \
				dr[c] = args->accumulate ? dr[c] + v : v;                          \
			}                                                                          \
		}                                                                                  \
	}
#include "elementwise.def"
#undef TG_UNARY
#undef TG_UNARY_P
#undef TG_BINARY

/* The kernels themselves (plain functions: see TG_VEC). */
#define TG_UNARY(name, doc, f, df)                                                                        \
	void tg_##name##_fwd_cpu(tg_mat out, tg_mat in, const struct tg_unary_args *a)                    \
	{                                                                                                 \
		name##_fwd_vec(out, in, a);                                                               \
	}                                                                                                 \
	void tg_##name##_bwd_cpu(tg_mat dx, tg_mat dout, tg_mat in, const struct tg_unary_args *a)        \
	{                                                                                                 \
		name##_bwd_vec(dx, dout, in, a);                                                          \
	}
#define TG_UNARY_P TG_UNARY
#define TG_BINARY(name, doc, f, dfa, dfb)                                                                 \
	void tg_##name##_fwd_cpu(tg_mat out, tg_mat a, tg_mat b, const struct tg_binary_args *args)       \
	{                                                                                                 \
		name##_fwd_vec(out, a, b, args);                                                          \
	}                                                                                                 \
	void tg_##name##_bwd_cpu(tg_mat d, tg_mat dout, tg_mat a, tg_mat b, const struct tg_binary_args *args) \
	{                                                                                                 \
		name##_bwd_vec(d, dout, a, b, args);                                                      \
	}
#include "elementwise.def"
#undef TG_UNARY
#undef TG_UNARY_P
#undef TG_BINARY

/* ------------------------------------------------------------------ codelets, descriptors */

static int unary_check(const tg_task_spec *s);
static int unary_backward(const tg_node *fwd);
static int binary_check(const tg_task_spec *s);
static int binary_backward(const tg_node *fwd);

#define TG_UNARY(name, doc, f, df)                                                     \
	TG_OP_WRAPPERS(tg_##name##_fwd, 2, struct tg_unary_args)                       \
	TG_OP_WRAPPERS(tg_##name##_bwd, 3, struct tg_unary_args)                       \
	TG_OP_CODELET(tg_##name##_fwd_cl, #name "_fwd", tg_##name##_fwd);              \
	TG_OP_CODELET(tg_##name##_bwd_cl, #name "_bwd", tg_##name##_bwd);              \
	TG_OP_DESC(name, TG_KIND_ELEMENTWISE, unary_check, unary_backward, doc);
#define TG_UNARY_P TG_UNARY
#define TG_BINARY(name, doc, f, dfa, dfb)                                              \
	TG_OP_WRAPPERS(tg_##name##_fwd, 3, struct tg_binary_args)                      \
	TG_OP_WRAPPERS(tg_##name##_bwd, 4, struct tg_binary_args)                      \
	TG_OP_CODELET(tg_##name##_fwd_cl, #name "_fwd", tg_##name##_fwd);              \
	TG_OP_CODELET(tg_##name##_bwd_cl, #name "_bwd", tg_##name##_bwd);              \
	TG_OP_DESC(name, TG_KIND_ELEMENTWISE, binary_check, binary_backward, doc);
#include "elementwise.def"
#undef TG_UNARY
#undef TG_UNARY_P
#undef TG_BINARY

/* The family's table: which codelets an op's backward rule submits. */
typedef struct family_row {
	const tg_op_desc *op;
	struct starpu_codelet *fwd, *bwd;
	const char *fwd_name, *bwd_name, *bwd_a_name;
} family_row;

static const family_row rows[] = {
#define TG_UNARY(name, doc, f, df) \
	{&tg_op_##name, &tg_##name##_fwd_cl, &tg_##name##_bwd_cl, #name "_fwd", #name "_bwd", #name "_bwd"},
#define TG_UNARY_P TG_UNARY
#define TG_BINARY(name, doc, f, dfa, dfb) \
	{&tg_op_##name, &tg_##name##_fwd_cl, &tg_##name##_bwd_cl, #name "_fwd", #name "_bwd_db", #name "_bwd_da"},
#include "elementwise.def"
#undef TG_UNARY
#undef TG_UNARY_P
#undef TG_BINARY
};

static const family_row *row_of(const tg_op_desc *op)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].op == op)
			return &rows[i];
	return NULL;
}

/* ------------------------------------------------------------------ submission */

static int unary_check(const tg_task_spec *s)
{
	TG_TRY(tg_check_f32(s->op->name, "output", s->t[0]));
	TG_TRY(tg_check_f32(s->op->name, "x", s->t[1]));
	return tg_check_same_shape(s->op->name, "output", s->t[0], "x", s->t[1]);
}

static int binary_check(const tg_task_spec *s)
{
	TG_TRY(tg_check_f32(s->op->name, "output", s->t[0]));
	TG_TRY(tg_check_f32(s->op->name, "a", s->t[1]));
	TG_TRY(tg_check_f32(s->op->name, "b", s->t[2]));
	TG_TRY(tg_check_same_shape(s->op->name, "output", s->t[0], "a", s->t[1]));
	return tg_check_same_shape(s->op->name, "output", s->t[0], "b", s->t[2]);
}

static int unary(const tg_op_desc *op, tg_tensor *out, tg_tensor *x, float p)
{
	TG_CHECK(out && x, TG_EINVAL, "%s: a tensor argument is NULL", op->name);
	TG_CHECK(isfinite(p), TG_EINVAL, "%s: the parameter must be finite, got %g", op->name, (double)p);
	const family_row *row = row_of(op);
	struct tg_unary_args args = {p, 0};
	tg_task_spec s = tg_spec(op, row->fwd, row->fwd_name, TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(out));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

static int unary_backward(const tg_node *fwd)
{
	const family_row *row = row_of(tg_node_op(fwd));
	const struct tg_unary_args *fa = tg_node_args(fwd);
	tg_tensor *dout = tg_grad_of(fwd, 0), *x = tg_node_tensor(fwd, 1), *dx;
	unsigned mode;
	if (!dout)
		return 0;
	TG_TRY(tg_grad_target(fwd, 1, &dx, &mode));
	if (!dx)
		return 0;
	struct tg_unary_args args = {fa->p, mode == TG_ACC};
	tg_task_spec s = tg_spec(row->op, row->bwd, row->bwd_name, TG_PHASE_BWD, &args, sizeof args,
	                         2.0 * (double)tg_tensor_numel(x));
	tg_spec_add(&s, dx, mode);
	tg_spec_add(&s, dout, TG_R);
	tg_spec_add(&s, x, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

static int binary(const tg_op_desc *op, tg_tensor *out, tg_tensor *a, tg_tensor *b)
{
	TG_CHECK(out && a && b, TG_EINVAL, "%s: a tensor argument is NULL", op->name);
	const family_row *row = row_of(op);
	struct tg_binary_args args = {0, 0};
	tg_task_spec s = tg_spec(op, row->fwd, row->fwd_name, TG_PHASE_FWD, &args, sizeof args,
	                         (double)tg_tensor_numel(out));
	tg_spec_add(&s, out, TG_W);
	tg_spec_add(&s, a, TG_R);
	tg_spec_add(&s, b, TG_R);
	s.tile = TG_TILE_ROWS;
	return tg_submit(&s);
}

static int binary_backward(const tg_node *fwd)
{
	const family_row *row = row_of(tg_node_op(fwd));
	tg_tensor *dout = tg_grad_of(fwd, 0), *a = tg_node_tensor(fwd, 1), *b = tg_node_tensor(fwd, 2);
	if (!dout)
		return 0;
	for (int which = 0; which < 2; which++) {
		tg_tensor *d;
		unsigned mode;
		TG_TRY(tg_grad_target(fwd, 1 + which, &d, &mode));
		if (!d)
			continue;
		struct tg_binary_args args = {which, mode == TG_ACC};
		tg_task_spec s = tg_spec(row->op, row->bwd, which ? row->bwd_name : row->bwd_a_name, TG_PHASE_BWD, &args,
		                         sizeof args, 2.0 * (double)tg_tensor_numel(d));
		tg_spec_add(&s, d, mode);
		tg_spec_add(&s, dout, TG_R);
		tg_spec_add(&s, a, TG_R);
		tg_spec_add(&s, b, TG_R);
		s.tile = TG_TILE_ROWS;
		TG_TRY(tg_submit(&s));
	}
	return 0;
}

/* ------------------------------------------------------------------ the public functions */

#define TG_UNARY(name, doc, f, df) \
	int tg_##name(tg_tensor *out, tg_tensor *x) { return unary(&tg_op_##name, out, x, 0.0f); }
#define TG_UNARY_P(name, doc, f, df) \
	int tg_##name(tg_tensor *out, tg_tensor *x, float p) { return unary(&tg_op_##name, out, x, p); }
#define TG_BINARY(name, doc, f, dfa, dfb) \
	int tg_##name(tg_tensor *out, tg_tensor *a, tg_tensor *b) { return binary(&tg_op_##name, out, a, b); }
#include "elementwise.def"
#undef TG_UNARY
#undef TG_UNARY_P
#undef TG_BINARY
