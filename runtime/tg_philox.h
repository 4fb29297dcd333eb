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

TG_PHILOX_FN void tg_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
	const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
	const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
	uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
	uint32_t k0 = key[0], k1 = key[1];
	for (int round = 0; round < 10; round++) {
		uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
		uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
		uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
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

/* A uniform number in [0, 1) (24 random bits) for position i of stream (seed, step): word
 * i mod 4 of the block i / 4, whose counter is (i / 4, step) and key the seed. */
TG_PHILOX_FN float tg_philox_uniform(uint64_t seed, uint64_t step, uint64_t i)
{
	uint64_t block = i >> 2;
	uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)step, (uint32_t)(step >> 32)};
	uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
	uint32_t w[4];
	tg_philox4x32_10(ctr, key, w);
	return (float)(w[i & 3] >> 8) * 0x1p-24f;
}

#endif /* TG_PHILOX_H */
