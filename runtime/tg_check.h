/*
 * tg_check.h — the error-return macros of the runtime and the ops.
 * TG_CHECK(cond, code, fmt, ...): when cond is false, set the error (with file and line)
 * and return code.  TG_TRY(expr): return expr's negative code, its message already set.
 */
#ifndef TG_CHECK_H
#define TG_CHECK_H

#include "taskgrad.h"

#define TG_CHECK(cond, code, ...)                                                      \
	do {                                                                           \
		if (!(cond))                                                           \
			return tg_set_error_at(__FILE__, __LINE__, (code), __VA_ARGS__); \
	} while (0)

#define TG_TRY(expr)                   \
	do {                           \
		int tg_rc_ = (expr);   \
		if (tg_rc_ < 0)        \
			return tg_rc_; \
	} while (0)

#endif /* TG_CHECK_H */
