/*
 * tg_hooks.h — what the runtime tells the layers above it about its own life, for C and C++
 * (ops/cuda_report.cu includes it): a number that changes with every tg_init, and functions
 * called at every tg_shutdown. The runtime knows nothing of who uses them.
 */
#ifndef TG_HOOKS_H
#define TG_HOOKS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The runtime's generation: 0 before the first tg_init, then one more at each tg_init, once
 * StarPU has started. Something made for one runtime (pinned CUDA memory: StarPU may reset
 * the devices while it starts) is stale when the generation it was made under has passed. */
uint64_t tg_runtime_generation(void);

/* Call fn at every tg_shutdown, once all tasks are done and before StarPU stops (CUDA is still
 * usable then), in the order of registration. Registering fn again does nothing. 0, or
 * TG_ENOMEM (with the message set) when the table is full. Any thread may register. */
int tg_at_shutdown(void (*fn)(void));

#ifdef __cplusplus
}
#endif
#endif /* TG_HOOKS_H */
