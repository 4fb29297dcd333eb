/*
 * op_cases.h — the op harness's table (tests/op_cases.c), shared by the harness's programs.
 */
#ifndef TG_OP_CASES_H
#define TG_OP_CASES_H

#include "config.h"

#include <taskgrad_op.h>

extern const tg_check_case tg_test_cases[];
extern const int tg_test_ncases;

#endif /* TG_OP_CASES_H */
