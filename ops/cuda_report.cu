/* cuda_report.cu — errors found by kernels, turned into task errors (see tg_cuda.h).
 *
 * The host side of a report is a slot of pinned host memory per (worker, site), allocated
 * once per process when a kernel first reports (a few kilobytes, kept for the process's
 * life: the CUDA workers come and go with tg_init/tg_shutdown, the slots stay valid). A
 * worker's tasks run in the order of its stream, so a slot is written by one copy at a time
 * and read by the host function queued right behind that copy. */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <starpu.h>

#include "tg_cuda.h"

typedef struct report_slot {
	tg_cuda_report rep;
	const char *fmt;
} report_slot;

static report_slot *slots; /* [STARPU_NMAXWORKERS][TG_CUDA_REPORT_SITES] */
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static void alloc_slots(void)
{
	void *p = NULL;
	size_t size = sizeof(report_slot) * STARPU_NMAXWORKERS * TG_CUDA_REPORT_SITES;
	if (cudaHostAlloc(&p, size, cudaHostAllocPortable) == cudaSuccess) {
		memset(p, 0, size);
		slots = (report_slot *)p;
	}
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
	pthread_once(&slots_once, alloc_slots);
	int worker = starpu_worker_get_id();
	if (!slots || worker < 0 || worker >= STARPU_NMAXWORKERS || site < 0 || site >= TG_CUDA_REPORT_SITES) {
		tg_task_error(TG_ECUDA, "cannot check a kernel's report (worker %d, site %d, pinned memory %s)", worker,
		              site, slots ? "allocated" : "unavailable");
		return;
	}
	report_slot *s = &slots[worker * TG_CUDA_REPORT_SITES + site];
	s->fmt = fmt; /* the same static string at every call of a site */
	TG_CUDA_CHECK(cudaMemcpyAsync(&s->rep, dev, sizeof s->rep, cudaMemcpyDeviceToHost, stream));
	TG_CUDA_CHECK(cudaLaunchHostFunc(stream, check_slot, s));
}
