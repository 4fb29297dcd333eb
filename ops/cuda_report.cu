/* cuda_report.cu — errors found by kernels, turned into task errors (see tg_cuda.h).
 *
 * The host side of a report is a slot of pinned host memory per (worker, site). The slots
 * belong to one runtime: they are allocated when a kernel of that runtime first reports and
 * released at its tg_shutdown (a hook, before StarPU stops). A later tg_init may see StarPU
 * reset the devices while it calibrates the bus (cudaDeviceReset frees pinned memory), so
 * slots made under another runtime generation are never used; and an allocation that fails
 * fails the task that needed it only, the next one tries again. A worker's tasks run in the
 * order of its stream, so a slot is written by one copy at a time and read by the host
 * function queued right behind that copy. */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <starpu.h>

#include "tg_cuda.h"
#include "tg_hooks.h"

typedef struct report_slot {
	tg_cuda_report rep;
	const char *fmt;
} report_slot;

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static report_slot *slots;        /* [STARPU_NMAXWORKERS][TG_CUDA_REPORT_SITES], or NULL */
static uint64_t slots_generation; /* the runtime generation they were allocated under */
static int release_registered;

/* At tg_shutdown: every task is done (and the host functions behind them), CUDA is still up. */
static void release_slots(void)
{
	pthread_mutex_lock(&slots_lock);
	if (slots && cudaFreeHost(slots) != cudaSuccess)
		(void)cudaGetLastError(); /* not an error of any task's */
	slots = NULL;
	pthread_mutex_unlock(&slots_lock);
}

/* The slots of the running runtime (allocated now if needed), or NULL with why. */
static report_slot *current_slots(const char **why)
{
	pthread_mutex_lock(&slots_lock);
	uint64_t generation = tg_runtime_generation();
	if (slots && slots_generation != generation) {
		/* made under an earlier runtime that was not shut down through tg_shutdown: after a
		 * device reset the pointer is dead, so it is dropped (freed if CUDA still knows it) */
		if (cudaFreeHost(slots) != cudaSuccess)
			(void)cudaGetLastError();
		slots = NULL;
	}
	*why = NULL;
	if (!slots) {
		void *p = NULL;
		size_t size = sizeof(report_slot) * STARPU_NMAXWORKERS * TG_CUDA_REPORT_SITES;
		cudaError_t e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
		if (e == cudaSuccess) {
			memset(p, 0, size);
			slots = (report_slot *)p;
			slots_generation = generation;
			if (!release_registered)
				release_registered = tg_at_shutdown(release_slots) == 0;
		} else {
			*why = cudaGetErrorString(e);
			(void)cudaGetLastError(); /* reported here, not by the next launch check */
		}
	}
	report_slot *s = slots;
	pthread_mutex_unlock(&slots_lock);
	return s;
}

/* Runs on a CUDA thread once the copy before it is done; no CUDA call allowed here. */
static void CUDART_CB check_slot(void *arg)
{
	report_slot *s = (report_slot *)arg;
	if (s->rep.code) {
		tg_task_error(TG_EINVAL, s->fmt, s->rep.a, s->rep.b, s->rep.c);
		s->rep.code = 0;
	}
}

extern "C" void tg_cuda_report_clear(tg_cuda_report *dev, cudaStream_t stream)
{
	TG_CUDA_CHECK(cudaMemsetAsync(dev, 0, sizeof *dev, stream));
}

extern "C" void tg_cuda_report_check(const tg_cuda_report *dev, int site, const char *fmt, cudaStream_t stream)
{
	int worker = starpu_worker_get_id();
	if (worker < 0 || worker >= STARPU_NMAXWORKERS || site < 0 || site >= TG_CUDA_REPORT_SITES) {
		tg_task_error(TG_ECUDA, "cannot check a kernel's report (worker %d, site %d)", worker, site);
		return;
	}
	const char *why;
	report_slot *all = current_slots(&why);
	if (!all) {
		tg_task_error(TG_ECUDA, "cannot check a kernel's report: no pinned host memory for it (%s)", why);
		return;
	}
	report_slot *s = &all[worker * TG_CUDA_REPORT_SITES + site];
	s->fmt = fmt; /* the same static string at every call of a site */
	TG_CUDA_CHECK(cudaMemcpyAsync(&s->rep, dev, sizeof s->rep, cudaMemcpyDeviceToHost, stream));
	TG_CUDA_CHECK(cudaLaunchHostFunc(stream, check_slot, s));
}
