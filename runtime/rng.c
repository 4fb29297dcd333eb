/* rng.c — Philox4x32-10, a counter-based generator (Salmon et al., SC'11): the value at
 * position i depends only on (key, counter), so fills are reproducible whatever runs them. */
#include "tg_internal.h"
#include "tg_philox.h"

#include <math.h>

void tg_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
	tg_philox4x32_10(ctr, key, out);
}

/* Four random words for block `block` of the stream. */
static void block_words(const tg_fill *f, uint64_t block, uint32_t out[4])
{
	uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)f->stream, (uint32_t)(f->stream >> 32)};
	uint32_t key[2] = {(uint32_t)f->seed, (uint32_t)(f->seed >> 32)};
	tg_philox4x32(ctr, key, out);
}

/* [0, 1) with 24 random bits, and (0, 1] for logarithms. */
static inline double unit_open_right(uint32_t x) { return (double)(x >> 8) * 0x1p-24; }
static inline double unit_open_left(uint32_t x) { return (double)((x >> 8) + 1) * 0x1p-24; }

void tg_fill_host_f32(float *dst, int64_t n, const tg_fill *f)
{
	switch (f->kind) {
	case TG_FILL_ZEROS:
		for (int64_t i = 0; i < n; i++)
			dst[i] = 0.0f;
		break;
	case TG_FILL_CONSTANT:
		for (int64_t i = 0; i < n; i++)
			dst[i] = f->a;
		break;
	case TG_FILL_UNIFORM: {
		uint32_t w[4] = {0, 0, 0, 0};
		for (int64_t i = 0; i < n; i++) {
			if (i % 4 == 0)
				block_words(f, (uint64_t)i / 4, w);
			float v = (float)(f->a + (f->b - (double)f->a) * unit_open_right(w[i % 4]));
			if (v >= f->b) /* rounding must not reach the open end */
				v = nextafterf(f->b, f->a);
			dst[i] = v;
		}
		break;
	}
	case TG_FILL_NORMAL: {
		/* Box-Muller: block i/2 gives the pair (cos, sin) of elements 2k and 2k+1. */
		uint32_t w[4] = {0, 0, 0, 0};
		for (int64_t i = 0; i < n; i++) {
			if (i % 2 == 0)
				block_words(f, (uint64_t)i / 2, w);
			double r = sqrt(-2.0 * log(unit_open_left(w[0])));
			double theta = 6.283185307179586 * unit_open_right(w[1]);
			double z = (i % 2 == 0) ? r * cos(theta) : r * sin(theta);
			dst[i] = (float)(f->a + f->b * z);
		}
		break;
	}
	}
}
