/* registry.c — the built-in op table generated from ops.def, and checks shared by ops. */
#include "tg_ops.h"

#include <stdio.h>

enum tg_op_id {
#define TG_OP(name) TG_OP_##name,
#include "ops.def"
#undef TG_OP
	TG_OP_COUNT
};

#define TG_OP(name) extern const tg_op_desc tg_op_##name;
#include "ops.def"
#undef TG_OP


static const tg_op_desc *const builtin_ops[TG_OP_COUNT] = {
#define TG_OP(name) &tg_op_##name,
#include "ops.def"
#undef TG_OP
};

int tg_ops_builtin_count(void)
{
	return TG_OP_COUNT;
}

const tg_op_desc *tg_ops_builtin(int i)
{
	if (i < 0 || i >= TG_OP_COUNT)
		return NULL;
	return builtin_ops[i]; /* TG_OP_DESC named it after its ops.def line */
}

int tg_check_f32(const char *op, const char *what, const tg_tensor *t)
{
	TG_CHECK(t, TG_EINVAL, "%s: %s is NULL", op, what);
	TG_CHECK(tg_tensor_dtype(t) == TG_F32, TG_EINVAL, "%s: %s '%s' must be float32", op, what, tg_tensor_name(t));
	return 0;
}

int tg_check_i32(const char *op, const char *what, const tg_tensor *t)
{
	TG_CHECK(t, TG_EINVAL, "%s: %s is NULL", op, what);
	TG_CHECK(tg_tensor_dtype(t) == TG_I32, TG_EINVAL, "%s: %s '%s' must be int32", op, what, tg_tensor_name(t));
	return 0;
}

int tg_check_matrix(const char *op, const char *what, const tg_tensor *t, int64_t rows, int64_t cols)
{
	char s[96];
	TG_CHECK(t, TG_EINVAL, "%s: %s is NULL", op, what);
	TG_CHECK((rows < 0 || tg_tensor_rows(t) == rows) && (cols < 0 || tg_tensor_cols(t) == cols), TG_ESHAPE,
	         "%s: %s '%s' %s must be (%s%lld, %s%lld) as a matrix", op, what, tg_tensor_name(t),
	         tg_tensor_shape_str(t, s, sizeof s), rows < 0 ? "any: " : "", (long long)(rows < 0 ? tg_tensor_rows(t) : rows),
	         cols < 0 ? "any: " : "", (long long)(cols < 0 ? tg_tensor_cols(t) : cols));
	return 0;
}

int tg_check_same_shape(const char *op, const char *wa, const tg_tensor *a, const char *wb, const tg_tensor *b)
{
	int same = tg_tensor_rank(a) == tg_tensor_rank(b);
	for (int i = 0; same && i < tg_tensor_rank(a); i++)
		same = tg_tensor_dim(a, i) == tg_tensor_dim(b, i);
	char sa[96], sb[96];
	TG_CHECK(same, TG_ESHAPE, "%s: %s '%s' %s and %s '%s' %s must have the same shape", op, wa, tg_tensor_name(a),
	         tg_tensor_shape_str(a, sa, sizeof sa), wb, tg_tensor_name(b), tg_tensor_shape_str(b, sb, sizeof sb));
	return 0;
}
