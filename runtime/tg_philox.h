/*
 * tg_philox.h — Philox4x32-10 (Salmon et al., SC'11), a counter-based generator: four random
 * words that depend only on a 128-bit counter and a 64-bit key, the same on CPUs and GPUs
 * (TG_PHILOX_FN). Used by the fills (runtime/rng.c) and by dropout (ops).
 */
#ifndef TG_PHILOX_H
#define TG_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define TG_PHILOX_FN static __host__ __device__ inline
#else
#define TG_PHILOX_FN static inline
#endif

/* one round: two 32 x 32 -> 64-bit products, the words permuted, the key bumped */
#define TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1)                               \
	do {                                                                  \
		uint64_t p0_ = (uint64_t)0xD2511F53u * (c0), p1_ = (uint64_t)0xCD9E8D57u * (c2); \
		uint32_t n0_ = (uint32_t)(p1_ >> 32) ^ (c1) ^ (k0);           \
		uint32_t n2_ = (uint32_t)(p0_ >> 32) ^ (c3) ^ (k1);           \
		(c1) = (uint32_t)p1_;                                         \
		(c3) = (uint32_t)p0_;                                         \
		(c0) = n0_;                                                   \
		(c2) = n2_;                                                   \
		(k0) += 0x9E3779B9u;                                          \
		(k1) += 0xBB67AE85u;                                          \
	} while (0)

/* the ten rounds, written out (no loop, no array), on words c0..c3 and key k0, k1 */
#define TG_PHILOX_10(c0, c1, c2, c3, k0, k1)                      \
	do {                                                      \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
		TG_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);          \
	} while (0)

/* One block: loops that call it vectorise. */
TG_PHILOX_FN void tg_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
	uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
	uint32_t k0 = key[0], k1 = key[1];
	TG_PHILOX_10(c0, c1, c2, c3, k0, k1);
	out[0] = c0;
	out[1] = c1;
	out[2] = c2;
	out[3] = c3;
}

/* A uniform number in [0, 1) (24 random bits) for position i of stream (seed, step): word
 * i mod 4 of the block i / 4, whose counter is (i / 4, step) and key the seed. */
TG_PHILOX_FN float tg_philox_uniform(uint64_t seed, uint64_t step, uint64_t i)
{
	uint64_t block = i >> 2;
	uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = (uint32_t)step, c3 = (uint32_t)(step >> 32);
	uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
	TG_PHILOX_10(c0, c1, c2, c3, k0, k1);
	unsigned w = (unsigned)(i & 3);
	uint32_t word = w == 0 ? c0 : w == 1 ? c1 : w == 2 ? c2 : c3;
	return (float)(word >> 8) * 0x1p-24f;
}

#endif /* TG_PHILOX_H */
