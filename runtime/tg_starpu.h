/*
 * tg_starpu.h — the one place where StarPU 1.3 and 1.4 differ for taskgrad.
 * Include this instead of <starpu.h>.
 */
#ifndef TG_STARPU_H
#define TG_STARPU_H

/* A CUDA-enabled starpu.h pulls CUDA headers whose cusparse part is full of deprecation
 * warnings that are not ours. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <starpu.h>
#pragma GCC diagnostic pop

#if !defined(STARPU_MAJOR_VERSION) || STARPU_MAJOR_VERSION != 1 || \
	(STARPU_MINOR_VERSION != 3 && STARPU_MINOR_VERSION != 4)
#error "taskgrad supports StarPU 1.3 and 1.4"
#endif

/* StarPU's performance-model folder holds codelets/N/ (history models; N is its internal
 * _STARPU_PERFMODEL_VERSION, src/core/perfmodel/perfmodel.h), bus/ (bus calibration) and
 * debug/: N is 45 in StarPU 1.3.10 and in 1.4.10. */
#define TG_STARPU_CODELETS_DIR "codelets/45"

/* starpu_free is deprecated in 1.4; starpu_free_flags exists in both. */
static inline void tg_starpu_free(void *p, size_t size)
{
	starpu_free_flags(p, size, STARPU_MALLOC_PINNED);
}

/* Pointer and matrix view of a buffer inside a codelet, whether the handle is a matrix
 * (rank >= 2) or a vector (rank 1, seen as one row). */
static inline uintptr_t tg_buf_ptr(void *buf)
{
	struct starpu_matrix_interface *m = (struct starpu_matrix_interface *)buf;
	if (m->id == STARPU_MATRIX_INTERFACE_ID)
		return m->ptr;
	return ((struct starpu_vector_interface *)buf)->ptr;
}
static inline uint32_t tg_buf_rows(void *buf)
{
	struct starpu_matrix_interface *m = (struct starpu_matrix_interface *)buf;
	return m->id == STARPU_MATRIX_INTERFACE_ID ? m->ny : 1;
}
static inline uint32_t tg_buf_cols(void *buf)
{
	struct starpu_matrix_interface *m = (struct starpu_matrix_interface *)buf;
	return m->id == STARPU_MATRIX_INTERFACE_ID ? m->nx : ((struct starpu_vector_interface *)buf)->nx;
}
static inline uint32_t tg_buf_ld(void *buf)
{
	struct starpu_matrix_interface *m = (struct starpu_matrix_interface *)buf;
	return m->id == STARPU_MATRIX_INTERFACE_ID ? m->ld : ((struct starpu_vector_interface *)buf)->nx;
}

#endif /* TG_STARPU_H */
