/* submit_local.c — the local submitter: a recorded task becomes a StarPU task (handles,
 * per-task access modes, a copy of the arguments, name, flops, priority, where it may run)
 * submitted with starpu_task_submit. This is the one place that builds tasks: a distributed
 * submitter (StarPU-MPI: an owner rank per tensor, starpu_mpi_task_insert) is a second
 * tg_submitter beside this one, and the checks, the tape and the tiles stay as they are. */
#include "tg_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The StarPU mode of a recorded operand (whether it commutes was decided by the tape). */
static enum starpu_data_access_mode starpu_mode(const tg_operand *o)
{
	switch (o->mode) {
	case TG_R: return STARPU_R;
	case TG_W: return STARPU_W;
	case TG_RW: return STARPU_RW;
	case TG_REDUX: return STARPU_REDUX;
	default: /* TG_ACC */
		return o->commute ? (enum starpu_data_access_mode)(STARPU_RW | STARPU_COMMUTE) : STARPU_RW;
	}
}

/* ------------------------------------------------------------------ StarPU's reductions */

/* A float32 tensor's per-worker copies start at zero and are summed into it (its handle is a
 * StarPU matrix or vector, leading dimension honoured). */
static void redux_zero_cpu(void *buffers[], void *arg)
{
	(void)arg;
	struct starpu_matrix_interface *m = buffers[0];
	uint32_t rows = tg_buf_rows(m), cols = tg_buf_cols(m), ld = tg_buf_ld(m);
	float *p = (float *)tg_buf_ptr(m);
	for (uint32_t r = 0; r < rows; r++)
		memset(p + (size_t)r * ld, 0, (size_t)cols * sizeof(float));
}

static void redux_add_cpu(void *buffers[], void *arg)
{
	(void)arg;
	uint32_t rows = tg_buf_rows(buffers[0]), cols = tg_buf_cols(buffers[0]);
	uint32_t ldd = tg_buf_ld(buffers[0]), lds = tg_buf_ld(buffers[1]);
	float *d = (float *)tg_buf_ptr(buffers[0]);
	const float *s = (const float *)tg_buf_ptr(buffers[1]);
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++)
			d[(size_t)r * ldd + c] += s[(size_t)r * lds + c];
}

/* The reduction codelet's first mode is STARPU_RW in StarPU 1.3 (it aborts on
 * RW|COMMUTE) and STARPU_RW|STARPU_COMMUTE in 1.4. */
#if STARPU_MAJOR_VERSION == 1 && STARPU_MINOR_VERSION == 3
#define TG_REDUX_DST_MODE STARPU_RW
#else
#define TG_REDUX_DST_MODE (STARPU_RW | STARPU_COMMUTE)
#endif
static struct starpu_codelet redux_zero_cl = {
	.cpu_funcs = {redux_zero_cpu}, .nbuffers = 1, .modes = {STARPU_W}, .name = "redux_zero"};
static struct starpu_codelet redux_add_cl = {
	.cpu_funcs = {redux_add_cpu}, .nbuffers = 2, .modes = {TG_REDUX_DST_MODE, STARPU_R}, .name = "redux_add"};

void tg_redux_prepare(tg_tensor *t)
{
	if (t->redux_ready)
		return;
	starpu_data_set_reduction_methods(t->handle, &redux_add_cl, &redux_zero_cl);
	t->redux_ready = 1;
}

/* The shared scratch handle of at least bytes bytes (a power of two). */
static starpu_data_handle_t scratch_handle(size_t bytes)
{
	int k = 0;
	while (((size_t)1 << k) < bytes)
		k++;
	if (!tg_rt.scratch[k])
		starpu_vector_data_register(&tg_rt.scratch[k], -1, 0, (uint32_t)((size_t)1 << k), 1);
	return tg_rt.scratch[k];
}

void tg_scratch_release_all(void)
{
	for (int k = 0; k < 64; k++)
		if (tg_rt.scratch[k]) {
			starpu_data_unregister(tg_rt.scratch[k]);
			tg_rt.scratch[k] = NULL;
		}
}

static int local_submit(const tg_task_spec *s, tg_task_node *node)
{
	struct starpu_task *task = starpu_task_create();
	if (!task) {
		node->graph->broken = 1;
		return tg_error(TG_ENOMEM, "out of memory (task)");
	}
	task->cl = s->cl;
	task->name = node->task_name;
	task->flops = s->flops;
	task->priority = s->priority;
	if (node->microbatch > 0) {
		/* earlier micro-batches first: a pipeline stage then hands micro-batch 0 on as soon as
		 * it can, instead of working on every micro-batch at once (breadth first), which left
		 * the next stage waiting until the first had finished them all (measured: a 2-stage
		 * pipeline ran no faster than 1 worker) */
		int p = s->priority - node->microbatch, lo = starpu_sched_get_min_priority();
		task->priority = p < lo ? lo : p;
	}
	if (node->stage >= 0 && tg_rt.stage_has_mask[node->stage]) {
		/* a pipeline stage's task runs on its stage's workers only */
		task->workerids = tg_rt.stage_mask[node->stage];
		task->workerids_len = TG_MASK_WORDS;
	}
	if (tg_rt.backends) {
		task->where = 0;
		if (tg_rt.backends & TG_BACKEND_CPU)
			task->where |= STARPU_CPU;
		if (tg_rt.backends & TG_BACKEND_CUDA)
			task->where |= STARPU_CUDA;
	} else if (tg_rt.cfg.deterministic && tg_rt.info.ncuda > 0) {
		/* CPU and GPU kernels round differently: in deterministic mode an op always runs on
		 * the same kind of worker, whatever the policy would prefer */
		task->where = s->cl->cuda_funcs[0] ? STARPU_CUDA : STARPU_CPU;
	}
	int nb = 0, total = s->n + (s->scratch_bytes ? 1 : 0);
	if (total > STARPU_NMAXBUFS) { /* more buffers than a task holds: StarPU's dynamic arrays (freed with the task) */
		task->dyn_handles = malloc((size_t)total * sizeof *task->dyn_handles);
		task->dyn_modes = malloc((size_t)total * sizeof *task->dyn_modes);
		if (!task->dyn_handles || !task->dyn_modes) {
			free(task->dyn_handles);
			free(task->dyn_modes);
			task->dyn_handles = NULL;
			task->dyn_modes = NULL;
			starpu_task_destroy(task);
			node->graph->broken = 1;
			return tg_error(TG_ENOMEM, "out of memory (task buffers)");
		}
	}
	for (int i = 0; i < s->n; i++, nb++) {
		if (s->mode[i] == TG_REDUX)
			tg_redux_prepare(s->t[i]);
		STARPU_TASK_SET_HANDLE(task, s->t[i]->handle, nb);
		STARPU_TASK_SET_MODE(task, starpu_mode(&node->opd[i]), nb);
	}
	if (s->scratch_bytes) {
		STARPU_TASK_SET_HANDLE(task, scratch_handle(s->scratch_bytes), nb);
		STARPU_TASK_SET_MODE(task, STARPU_SCRATCH, nb);
		nb++;
	}
	task->nbuffers = nb;
	if (s->args_size) {
		task->cl_arg = malloc(s->args_size);
		if (!task->cl_arg) {
			starpu_task_destroy(task);
			node->graph->broken = 1;
			return tg_error(TG_ENOMEM, "out of memory (task arguments)");
		}
		memcpy(task->cl_arg, s->args, s->args_size);
		task->cl_arg_size = s->args_size;
		task->cl_arg_free = 1;
	}
	int rc = starpu_task_submit(task);
	if (rc == 0)
		return 0;
	/* The node is on the tape but its task will never run: the graph cannot be
	 * differentiated any more (tg_backward refuses it until the next reset). */
	node->graph->broken = 1;
	starpu_task_destroy(task);
	if (rc == -ENODEV)
		return tg_error(TG_ENODEV, "%s: no worker can run this task", node->task_name);
	return tg_error(TG_ESTARPU, "%s: starpu_task_submit failed (%d)", node->task_name, rc);
}


const tg_submitter tg_submitter_local = {"local", local_submit};
