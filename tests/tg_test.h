/*
 * tg_test.h — what the tests share: starting the runtime for a test, the seed of fresh
 * random inputs, and small checks. Tests run under automake's parallel driver with
 * STARPU_HOME in the build tree and STARPU_SILENT unset (tests/local.mk): the library keeps
 * StarPU quiet by itself (STARPU_SILENT=1 while it runs), and the tests check that it does;
 * exit 77 = SKIP.
 */
#ifndef TG_TEST_H
#define TG_TEST_H

#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "taskgrad.h"

#define TG_TEST_SKIP 77

/* Start the runtime or fail the test with the library's message. */
#define TG_TEST_INIT(sched_, ncpu_, ncuda_)                                                 \
	do {                                                                               \
		tg_config cfg_;                                                            \
		tg_config_default(&cfg_);                                                  \
		cfg_.sched = (sched_);                                                     \
		cfg_.ncpu = (ncpu_);                                                       \
		cfg_.ncuda = (ncuda_);                                                     \
		if (tg_init(&cfg_) < 0)                                                    \
			fail_msg("tg_init(%s): %s", (sched_) ? (sched_) : "default", tg_last_error()); \
	} while (0)

/* assert that a taskgrad call succeeded, printing the library's message if not */
#define TG_OK_OR_FAIL(call)                                                      \
	do {                                                                     \
		int rc_ = (call);                                                \
		if (rc_ < 0)                                                     \
			fail_msg("%s failed (%d): %s", #call, rc_, tg_last_error()); \
	} while (0)

/* A teardown: a failed test must not leave the runtime running for the next one. */
static inline int tg_test_teardown(void **state)
{
	(void)state;
	if (tg_is_initialized())
		tg_shutdown();
	return 0;
}

/* child = the block of parent of shape (rank, shape) at row row0, column col0 (a plan of one
 * block; TG_SHAPE gives rank and shape). */
static inline int tg_test_block(tg_tensor *parent, int rank, const int64_t *shape, int64_t row0, int64_t col0,
                                tg_tensor **child)
{
	tg_block b;
	memset(&b, 0, sizeof b);
	b.row0 = row0;
	b.col0 = col0;
	b.rank = rank;
	for (int i = 0; i < rank && i < TG_MAX_RANK; i++)
		b.shape[i] = shape[i];
	return tg_tensor_partition_blocks(parent, 1, &b, child);
}

/* The seed of this run's random inputs: TG_TEST_SEED, else fresh. Printed so that a
 * failure can be repeated. */
static inline uint64_t tg_test_seed(const char *what)
{
	static uint64_t seed;
	static int have;
	if (!have) {
		const char *env = getenv("TG_TEST_SEED");
		seed = env && *env ? strtoull(env, NULL, 10)
		                   : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)clock();
		have = 1;
		printf("# %s: seed %llu (TG_TEST_SEED=%llu repeats this run)\n", what, (unsigned long long)seed,
		       (unsigned long long)seed);
		fflush(stdout);
	}
	return seed;
}

#endif /* TG_TEST_H */
