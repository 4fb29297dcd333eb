/* submit.c — the one way tasks are submitted: check, record the tape node, build the
 * StarPU task (handles, per-task access modes, a copy of the arguments, name, flops,
 * priority, where it may run) and submit it. Nothing waits. */
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
	default: /* TG_ACC */
		return o->commute ? (enum starpu_data_access_mode)(STARPU_RW | STARPU_COMMUTE) : STARPU_RW;
	}
}

static int check_spec(const tg_task_spec *s)
{
	TG_CHECK(s && s->op && s->op->name, TG_EINVAL, "tg_submit: spec or its op descriptor is NULL");
	const char *name = s->name ? s->name : s->cl ? s->cl->name : s->op->name;
	TG_CHECK(s->cl, TG_EINVAL, "%s: no codelet", name);
	TG_CHECK(s->cl->nbuffers == STARPU_VARIABLE_NBUFFERS, TG_EINVAL,
	         "%s: the codelet must declare nbuffers = STARPU_VARIABLE_NBUFFERS", name);
	TG_CHECK(s->n >= 1 && s->n <= TG_MAX_OPERANDS, TG_EINVAL, "%s: %d operands (1 to %d)", name, s->n, TG_MAX_OPERANDS);
	TG_CHECK(s->phase >= TG_PHASE_FWD && s->phase <= TG_PHASE_OPT, TG_EINVAL, "%s: unknown phase %d", name, (int)s->phase);
	TG_CHECK(s->args_size == 0 || s->args, TG_EINVAL, "%s: args_size without args", name);
	TG_CHECK(s->scratch_bytes <= ((size_t)1 << 31), TG_EINVAL, "%s: scratch of %zu bytes is too large", name, s->scratch_bytes);
	for (int i = 0; i < s->n; i++) {
		TG_CHECK(s->t[i], TG_EINVAL, "%s: operand %d is NULL", name, i);
		TG_TRY(tg_tensor_check_usable(s->t[i], name));
		unsigned m = s->mode[i];
		TG_CHECK(m == TG_R || m == TG_W || m == TG_RW || m == TG_ACC, TG_EINVAL,
		         "%s: operand %d has an unknown access mode %u", name, i, m);
	}
	if (s->phase == TG_PHASE_FWD) {
		if (s->op->check)
			TG_TRY(s->op->check(s));
		/* A forward op only writes fresh outputs: an in-place write would destroy a value
		 * the backward pass needs. */
		for (int i = 0; i < s->n; i++) {
			if (s->mode[i] == TG_R)
				continue;
			TG_CHECK(s->mode[i] == TG_W, TG_EINVAL,
			         "%s: forward ops write their outputs (TG_W); operand %d ('%s') is read-modify-write",
			         name, i, s->t[i]->name);
			for (int j = 0; j < s->n; j++)
				TG_CHECK(j == i || s->t[j] != s->t[i], TG_EINVAL,
				         "%s: tensor '%s' is both an input and an output (in-place forward ops are not differentiable)",
				         name, s->t[i]->name);
		}
	}
	/* Could any worker run it? (StarPU would refuse at submission, after the tape.) */
	unsigned b = tg_rt.backends;
	int can_cpu = s->cl->cpu_funcs[0] && tg_rt.info.ncpu > 0 && (!b || (b & TG_BACKEND_CPU));
	int can_cuda = s->cl->cuda_funcs[0] && tg_rt.info.ncuda > 0 && (!b || (b & TG_BACKEND_CUDA));
	if (!can_cpu && !can_cuda) {
		const char *why = (b & TG_BACKEND_CUDA) && !s->cl->cuda_funcs[0] ? "it has no CUDA implementation"
		                 : (b & TG_BACKEND_CUDA) && tg_rt.info.ncuda == 0 ? "there is no CUDA worker"
		                 : !s->cl->cpu_funcs[0] ? "it has no CPU implementation"
		                 : "there is no CPU worker";
		return tg_error(TG_ENODEV, "%s: no worker can run this task (%s)", name, why);
	}
	return 0;
}

_Static_assert(TG_MAX_OPERANDS + 1 <= STARPU_NMAXBUFS, "operands plus a scratch buffer must fit in a task");

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

int tg_submit(const tg_task_spec *s)
{
	TG_TRY(tg_require_init("tg_submit"));
	TG_TRY(check_spec(s));

	if (s->phase == TG_PHASE_FWD) {
		int needs_grad = 0;
		for (int i = 0; i < s->n; i++)
			if (s->mode[i] == TG_R && s->t[i]->requires_grad)
				needs_grad = 1;
		for (int i = 0; i < s->n; i++)
			if (s->mode[i] == TG_W) {
				s->t[i]->is_leaf = 0;
				s->t[i]->requires_grad = needs_grad;
			}
	}
	tg_node *node;
	TG_TRY(tg_graph_record(&node, s));

	struct starpu_task *task = starpu_task_create();
	TG_CHECK(task, TG_ENOMEM, "out of memory (task)");
	task->cl = s->cl;
	task->name = node->task_name;
	task->flops = s->flops;
	task->priority = s->priority;
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
	int nb = 0;
	for (int i = 0; i < s->n; i++, nb++) {
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
