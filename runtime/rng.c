/* rng.c — Philox4x32-10, a counter-based generator (Salmon et al., SC'11): the value at
 * position i depends only on (key, counter), so fills are reproducible whatever runs them. */
#include "tg_internal.h"

#include <math.h>

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
	uint64_t p = (uint64_t)a * (uint64_t)b;
	*hi = (uint32_t)(p >> 32);
	*lo = (uint32_t)p;
}

void tg_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
	const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
	const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
	uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
	uint32_t k0 = key[0], k1 = key[1];
	for (int round = 0; round < 10; round++) {
		uint32_t hi0, lo0, hi1, lo1;
		mulhilo32(M0, c0, &hi0, &lo0);
		mulhilo32(M1, c2, &hi1, &lo1);
		uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
		c0 = n0;
		c1 = lo1;
		c2 = n2;
		c3 = lo0;
		k0 += W0;
		k1 += W1;
	}
	out[0] = c0;
	out[1] = c1;
	out[2] = c2;
	out[3] = c3;
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
