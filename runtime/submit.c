/* submit.c — the one way tasks are submitted, the part every runtime shares: check the spec,
 * record the op and its tasks on the tape, split an op into row tiles, and hand each recorded
 * task to the submitter (tg_rt.submitter: submit_local.c builds and submits the StarPU task).
 * Nothing waits. */
#include "tg_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *spec_name(const tg_task_spec *s)
{
	return s->name ? s->name : s->cl ? s->cl->name : s->op->name;
}

/* What every spec must be: an op, operands that are usable, known modes. */
static int check_operands(const tg_task_spec *s)
{
	TG_CHECK(s && s->op && s->op->name, TG_EINVAL, "tg_submit: spec or its op descriptor is NULL");
	const char *name = spec_name(s);
	TG_CHECK(s->n >= 1 && s->n <= TG_MAX_OPERANDS, TG_EINVAL, "%s: %d operands (1 to %d)", name, s->n, TG_MAX_OPERANDS);
	TG_CHECK(s->phase >= TG_PHASE_FWD && s->phase <= TG_PHASE_OPT, TG_EINVAL, "%s: unknown phase %d", name, (int)s->phase);
	TG_CHECK(s->args_size == 0 || s->args, TG_EINVAL, "%s: args_size without args", name);
	TG_CHECK(s->tile == TG_TILE_NONE || s->tile == TG_TILE_ROWS, TG_EINVAL, "%s: unknown tiling %u", name, s->tile);
	TG_CHECK(s->tile_on >= 0 && s->tile_on < s->n, TG_EINVAL, "%s: tile_on %d is not an operand (0 to %d)", name,
	         s->tile_on, s->n - 1);
	/* tiles follow the rows of one operand: that one cannot go whole to every tile (the op
	 * would silently run as one task) */
	TG_CHECK(s->tile != TG_TILE_ROWS || !(s->whole & (1u << s->tile_on)), TG_EINVAL,
	         "%s: tiles follow the rows of operand %d (tile_on), which is marked whole; set tile_on to the operand "
	         "whose rows are split", name, s->tile_on);
	for (int i = 0; i < s->n; i++) {
		TG_CHECK(s->t[i], TG_EINVAL, "%s: operand %d is NULL", name, i);
		TG_TRY(tg_tensor_check_usable(s->t[i], name));
		unsigned m = s->mode[i];
		TG_CHECK(m == TG_R || m == TG_W || m == TG_RW || m == TG_ACC || m == TG_REDUX, TG_EINVAL,
		         "%s: operand %d has an unknown access mode %u", name, i, m);
	}
	return 0;
}

/* An op as given (whole tensors): the op's own check, and for a forward op fresh outputs. */
static int check_op(const tg_task_spec *s)
{
	TG_TRY(check_operands(s));
	if (s->phase != TG_PHASE_FWD)
		return 0;
	const char *name = spec_name(s);
	if (s->op->check)
		TG_TRY(s->op->check(s));
	/* A forward op only writes fresh outputs: an in-place write would destroy a value the
	 * backward pass needs. */
	for (int i = 0; i < s->n; i++) {
		if (s->mode[i] == TG_R)
			continue;
		TG_CHECK(s->mode[i] == TG_W, TG_EINVAL,
		         "%s: forward ops write their outputs (TG_W); operand %d ('%s') is read-modify-write", name, i,
		         s->t[i]->name);
		for (int j = 0; j < s->n; j++)
			TG_CHECK(j == i || (!tg_tensor_is_ancestor(s->t[j], s->t[i]) && !tg_tensor_is_ancestor(s->t[i], s->t[j])),
			         TG_EINVAL,
			         "%s: tensor '%s' is both an input and an output, or part of one (in-place forward ops are not "
			         "differentiable)", name, s->t[i]->name);
	}
	return 0;
}

/* One task: a codelet some worker can run, operands that do not overlap. */
static int check_task(const tg_task_spec *s)
{
	TG_TRY(check_operands(s));
	const char *name = spec_name(s);
	TG_CHECK(s->cl, TG_EINVAL, "%s: no codelet", name);
	TG_CHECK(!s->cl->model || !s->cl->model->symbol || strlen(s->cl->model->symbol) <= TG_PERFMODEL_SYMBOL_MAX,
	         TG_EINVAL, "%s: the performance model's symbol '%s' is longer than %d characters (StarPU's file names "
	         "would not fit)", name, s->cl->model->symbol, TG_PERFMODEL_SYMBOL_MAX);
	TG_CHECK(s->cl->nbuffers == STARPU_VARIABLE_NBUFFERS, TG_EINVAL,
	         "%s: the codelet must declare nbuffers = STARPU_VARIABLE_NBUFFERS", name);
	TG_CHECK(s->scratch_bytes <= ((size_t)1 << 31), TG_EINVAL, "%s: scratch of %zu bytes is too large", name, s->scratch_bytes);
	TG_TRY(tg_check_no_overlap(s->t, s->n, name));
	for (int i = 0; i < s->n; i++)
		TG_CHECK(s->mode[i] != TG_REDUX || tg_tensor_dtype(s->t[i]) == TG_F32, TG_EINVAL,
		         "%s: operand %d ('%s'): TG_REDUX needs a float32 tensor", name, i, tg_tensor_name(s->t[i]));
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


/* Record one task (checked) and hand it to the submitter. oprec: the op it belongs to, or -1. */
static int submit_task(const tg_task_spec *s, int oprec)
{
	/* StarPU must see each operand as it is: switch partitions first (recorded) */
	for (int i = 0; i < s->n; i++)
		TG_TRY(tg_tensor_make_accessible(s->t[i]));
	tg_task_node *node;
	TG_TRY(tg_graph_record_task(&node, s, oprec));

	return tg_rt.submitter->submit(s, node);
}

/* ------------------------------------------------------------------ tiles */

int tg_tile_count(int64_t rows)
{
	if (!tg_rt.initialized || rows <= 1)
		return 1;
	int64_t want;
	if (tg_rt.cfg.tile_rows > 0) {
		want = rows / tg_rt.cfg.tile_rows + (rows % tg_rt.cfg.tile_rows != 0);
	} else {
		int workers = tg_rt.info.ncpu + tg_rt.info.ncuda;
		int64_t most = tg_rt.cfg.max_tiles > 0 ? tg_rt.cfg.max_tiles : (workers > 0 ? workers : 1);
		want = rows / 256;
		if (want > most)
			want = most;
	}
	if (tg_rt.cfg.tile_rows > 0 && tg_rt.cfg.max_tiles > 0 && want > tg_rt.cfg.max_tiles)
		want = tg_rt.cfg.max_tiles;
	if (want > TG_MAX_TILES)
		want = TG_MAX_TILES;
	if (want > rows)
		want = rows;
	return want < 1 ? 1 : (int)want;
}

int tg_set_tiling(int64_t tile_rows, int max_tiles)
{
	TG_TRY(tg_require_init("tg_set_tiling"));
	TG_CHECK(tile_rows >= 0 && max_tiles >= 0, TG_EINVAL, "tg_set_tiling: tile rows (%lld) and tiles (%d) must be >= 0",
	         (long long)tile_rows, max_tiles);
	tg_rt.cfg.tile_rows = tile_rows;
	tg_rt.cfg.max_tiles = max_tiles;
	return 0;
}

/* How operand i of s is tiled into T row tiles of `rows` rows. */
enum { TILE_WHOLE, TILE_BY_ROWS, TILE_BY_PIECES };
static int tile_kind(const tg_task_spec *s, int i, int64_t rows)
{
	const tg_tensor *t = s->t[i];
	if (s->whole & (1u << i))
		return TILE_WHOLE;
	if (t->rank >= 2 && t->rows == rows)
		return TILE_BY_ROWS;
	if (t->rank == 1 && t->numel == rows && rows > 1)
		return TILE_BY_PIECES;
	return TILE_WHOLE;
}

/* The tasks of an op tiled by rows (tile: TG_TILE_ROWS). */
static int submit_tiled(const tg_task_spec *s, int oprec)
{
	int64_t rows = s->t[s->tile_on]->rows;
	int T = tg_tile_count(rows);
	if (T > 1) {
		/* every operand of the op's rows must split along them the same way */
		for (int i = 0; i < s->n; i++)
			if (tile_kind(s, i, rows) == TILE_WHOLE && !(s->whole & (1u << i)) && s->t[i]->numel == rows && rows > 1) {
				T = 1; /* a rank >= 2 operand holding one value per row, in another shape */
				break;
			}
	}
	if (T <= 1)
		return submit_task(s, oprec);
	tg_tensor *tiles[TG_MAX_OPERANDS][TG_MAX_TILES];
	int kind[TG_MAX_OPERANDS];
	for (int i = 0; i < s->n; i++) {
		kind[i] = tile_kind(s, i, rows);
		if (kind[i] != TILE_WHOLE)
			TG_TRY(tg_tensor_partition(s->t[i], kind[i] == TILE_BY_ROWS ? TG_SPLIT_ROWS : TG_SPLIT_COLS, T, tiles[i]));
	}
	unsigned char argbuf[1024];
	TG_CHECK(s->args_size <= sizeof argbuf, TG_EINVAL, "%s: arguments of %zu bytes are too large to tile (%zu at most)",
	         spec_name(s), s->args_size, sizeof argbuf);
	int64_t row0 = 0;
	for (int k = 0; k < T; k++) {
		tg_task_spec ts = *s;
		ts.tile = TG_TILE_NONE;
		ts.flops = s->flops / T;
		for (int i = 0; i < s->n; i++) {
			if (kind[i] != TILE_WHOLE)
				ts.t[i] = tiles[i][k];
			else if (k > 0 && s->mode[i] != TG_R)
				ts.mode[i] = TG_ACC; /* a whole output: the first tile writes, the others add */
		}
		if (s->args_size) {
			memcpy(argbuf, s->args, s->args_size);
			if (s->tile_args)
				s->tile_args(argbuf, k, T, row0);
			ts.args = argbuf;
		}
		TG_TRY(submit_task(&ts, oprec));
		row0 += rows / T + (k < rows % T ? 1 : 0); /* the split of tg_tensor_partition */
	}
	return 0;
}

/* ------------------------------------------------------------------ ops */

/* Record op s for autograd (a forward op: its outputs now depend on its inputs). */
static int begin_op(const tg_task_spec *s, tg_node **out)
{
	if (s->phase == TG_PHASE_FWD) {
		int needs_grad = 0;
		for (int i = 0; i < s->n; i++)
			if (s->mode[i] == TG_R && s->t[i]->requires_grad)
				needs_grad = 1;
		for (int i = 0; i < s->n; i++)
			if (s->mode[i] == TG_W)
				tg_tensor_mark_written(s->t[i], needs_grad);
	}
	return tg_graph_record_op(out, s);
}

/* The op's tasks are in: what it wrote is at its new version. */
static void end_op(tg_node *op)
{
	tg_graph *g = op->graph;
	op->ntasks = g->nnodes - op->first_task;
	for (int i = 0; i < op->n; i++)
		if (op->opd[i].mode != TG_R) {
			tg_tensor *t = g->tensors[op->opd[i].slot].live;
			if (t)
				op->opd[i].version = t->version;
		}
}

int tg_op_begin(const tg_task_spec *s)
{
	TG_TRY(tg_require_init("tg_op_begin"));
	TG_CHECK(!tg_rt.open_op, TG_ESTATE, "tg_op_begin: an op is already open (call tg_op_end first)");
	TG_TRY(check_op(s));
	TG_TRY(begin_op(s, &tg_rt.open_op));
	return 0;
}

int tg_op_end(void)
{
	TG_CHECK(tg_rt.open_op, TG_ESTATE, "tg_op_end: no op is open");
	end_op(tg_rt.open_op);
	tg_rt.open_op = NULL;
	return 0;
}

int tg_submit(const tg_task_spec *s)
{
	TG_TRY(tg_require_init("tg_submit"));
	if (tg_rt.open_op) { /* one task of the open op */
		TG_TRY(check_task(s));
		return s->tile == TG_TILE_ROWS ? submit_tiled(s, tg_rt.open_op->id) : submit_task(s, tg_rt.open_op->id);
	}
	TG_TRY(check_op(s));
	TG_TRY(check_task(s));
	tg_node *op;
	TG_TRY(begin_op(s, &op));
	int rc = s->tile == TG_TILE_ROWS ? submit_tiled(s, op->id) : submit_task(s, op->id);
	end_op(op);
	return rc;
}
