/*
 * tg_internal.h — what the runtime's files share: the tensor and graph structures, the
 * runtime state, error helpers and the StarPU 1.3/1.4 compatibility layer.
 * Ops include it through ops/tg_ops.h; models and tools use taskgrad.h only.
 */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "tg_starpu.h"
#include "taskgrad.h"
#include "tg_hooks.h"

/* ---------------------------------------------------------------- errors */

#include "tg_check.h"
#define tg_error(code, ...) tg_set_error_at(__FILE__, __LINE__, (code), __VA_ARGS__)
/* Take the first error raised inside a task since the last call (0 if none) and make it the
 * calling thread's last error. */
int tg_async_error_take(void);
/* path as it goes into a message: whole when it fits in size (with its NUL), else its start
 * and its end around "...", so that a long path leaves room for the reason (the message is
 * cut at 1023 characters). Returns buf. */
const char *tg_short_path(const char *path, char *buf, size_t size);
/* A path shown in a message: TG_SHOWN(p).s, valid until the end of the full expression. */
typedef struct tg_shown {
	char s[256];
} tg_shown;
static inline tg_shown tg_shown_path(const char *path)
{
	tg_shown r;
	tg_short_path(path, r.s, sizeof r.s);
	return r;
}
#define TG_SHOWN(p) (tg_shown_path(p).s)

/* ---------------------------------------------------------------- runtime state */

#define TG_MASK_WORDS ((STARPU_NMAXWORKERS + 31) / 32)

typedef struct tg_runtime {
	bool initialized;
	tg_config cfg;
	tg_runtime_info info;
	unsigned backends;      /* TG_BACKEND_* mask for new tasks */
	/* current tags */
	char *layer;            /* owned copy of the current layer tag, or NULL */
	int microbatch;
	int stage;              /* pipeline stage tag, -1: none */
	/* the workers of each stage (StarPU worker masks, 32 workers a word); the masks live
	 * here because tasks point at them until they end */
	uint32_t stage_mask[TG_MAX_STAGES][TG_MASK_WORDS];
	int stage_has_mask[TG_MAX_STAGES];
	int fwd_node;           /* while a backward rule runs: the first task of its forward op, else -1 */
	tg_node *open_op;       /* between tg_op_begin and tg_op_end: the op its tasks belong to */
	const struct tg_submitter *submitter; /* builds and submits recorded tasks */
	/* the graph being recorded */
	tg_graph *graph;
	uint64_t graph_serial;  /* increases with every new current graph */
	uint64_t backward_serial;
	uint64_t tensor_ids;
	int64_t live_tensors;
	size_t live_bytes, peak_bytes; /* host memory of the live tensors, and its high mark */
	tg_tensor *live;        /* list of live tensors */
	/* STARPU_SCRATCH buffers, registered once per power-of-two size and shared by all tasks
	 * (scratch data creates no dependencies: each worker gets its own copy) */
	starpu_data_handle_t scratch[64];
} tg_runtime;

extern tg_runtime tg_rt;

int tg_require_init(const char *what);

/* The longest performance-model symbol of a codelet (StarPU names its model files after it,
 * in buffers that env.c leaves room in for this many characters). */
#define TG_PERFMODEL_SYMBOL_MAX 40

/* env.c: the environment around StarPU (see the comment at its top). */
/* *value = the whole number in variable var (-1 if unset); an error if it is malformed,
 * negative or beyond an int. */
int tg_env_whole_number(const char *var, long *value);
/* Every number-valued StarPU variable of the environment parses as StarPU needs it. */
int tg_env_check_starpu_vars(void);
/* CPU cores of this machine, as StarPU counts them (hwloc cores). */
int tg_machine_cores(void);
/* The most CPU workers tg_init accepts: cores (times STARPU_NTHREADS_PER_CORE), at most
 * STARPU_MAXCPUS. */
int tg_env_max_cpu_workers(void);
/* Before starpu_init: place the performance models (info->perfmodel_dir*) and silence StarPU
 * unless cfg->verbose (which lets it speak even under the user's STARPU_SILENT=1) or the
 * user's own STARPU_SILENT says otherwise; tg_env_restore (after starpu_shutdown) gives the environment back and
 * removes the temporary performance-model folder, if one was made. */
int tg_env_setup(const tg_config *cfg, tg_runtime_info *info);
void tg_env_restore(void);
/* The signal dispositions around StarPU's life: save before starpu_init, note what it left
 * after, and restore at shutdown the signals that nobody changed since. */
void tg_signals_save(void);
void tg_signals_started(void);
void tg_signals_restore(void);
/* Unregister the shared scratch buffers (at shutdown). */
void tg_scratch_release_all(void);

/* ---------------------------------------------------------------- tensors and partitions */

typedef struct tg_plan tg_plan;

struct tg_tensor {
	char *name;
	tg_dtype dtype;
	int rank;
	int64_t shape[TG_MAX_RANK];
	int64_t numel;
	size_t nbytes;
	uint32_t rows, cols;        /* matrix view (rank 1: 1 x n) */
	void *host;                 /* home copy (starpu_malloc; for a child: inside its parent's) */
	uint32_t ld;                /* elements between rows of the home copy (cols, or the root's) */
	starpu_data_handle_t handle;
	uint64_t id;

	/* partitions: a child belongs to one plan of its parent; a tensor may have several plans,
	 * at most one of them active (StarPU's data partitioned into its children) */
	tg_tensor *parent;          /* a child: the tensor it is part of */
	tg_plan *plan;              /* a child: its plan */
	int index;                  /* a child: its place in the plan */
	int64_t row0, col0;         /* a child: where it sits in its parent (matrix view) */
	tg_plan *plans;             /* the plans made of this tensor (a list) */
	tg_plan *dropped_plans;     /* plans dropped by the user (structures kept: freed with it) */
	tg_plan *active;            /* the plan StarPU has this tensor partitioned into, or NULL */
	int dropped;                /* a child whose plan was dropped: only the structure is left */
	int redux_ready;            /* StarPU has its reduction methods (TG_REDUX) */

	int requires_grad;
	int is_leaf;                /* not written by a forward op */
	uint32_t version;           /* counts writes (of the tensor, of a part or of a whole it is part of) */
	tg_tensor *grad;            /* gradient (created by the first backward that reaches it) */
	int grad_owned;             /* grad is freed with the tensor (not set by tg_tensor_set_grad) */
	tg_tensor *grad_of;         /* for a gradient tensor: whose gradient it is */
	int grad_valid;             /* leaves: gradient holds a value */
	uint64_t grad_serial;       /* non-leaves: backward serial of the valid gradient */
	uint32_t grad_version;      /* non-leaves: version the gradient belongs to */
	char *layer;                /* layer tag at creation (owned) */

	/* the runtime's list of live tensors (released by tg_shutdown if still there); children
	 * are not on it: they go with their parent */
	tg_tensor *live_prev, *live_next;
	int orphan;                 /* released by tg_shutdown: only the structure is left */

	/* the tensor's slot in the current graph (valid if graph_serial matches) */
	uint64_t graph_serial;
	int graph_slot;
};

/* How a plan was made (plans made the same way are shared). */
typedef enum tg_plan_kind { TG_PLAN_ROWS, TG_PLAN_COLS, TG_PLAN_GRID, TG_PLAN_BLOCKS } tg_plan_kind;

/* Where a child lies in its parent's memory (see the StarPU filter in partition.c). */
typedef struct tg_child_geom {
	uint32_t nx, ny;            /* columns, rows */
	size_t offset;              /* bytes from the parent's first element */
	int packed;                 /* a contiguous matrix inside a flat (rank-1) parent */
} tg_child_geom;

struct tg_plan {
	tg_tensor *parent;
	tg_plan_kind kind;
	int nr, nc;                 /* rows x cols of the split (TG_PLAN_BLOCKS: n x 1) */
	int n;
	tg_child_geom *geom;
	int any_packed;             /* some child is packed (its interface differs from the parent's) */
	struct starpu_data_filter filter;
	starpu_data_handle_t *handles;
	tg_tensor **children;
	tg_plan *next;
};

int tg_tensor_check_shape(int rank, const int64_t *shape, int64_t *numel);
/* A forward op writes t: t's whole family (the tensor it is part of, all their parts) holds
 * activations, not parameters; t and its parts need a gradient as the op's inputs do. */
void tg_tensor_mark_written(tg_tensor *t, int needs_grad);
/* Release the StarPU side of every live tensor (at shutdown); returns how many there were. */
int64_t tg_tensor_release_all(void);
size_t tg_dtype_size(tg_dtype d);
/* A write of t: its version moves on, and so do those of every tensor it overlaps (the
 * tensors it is part of, and its parts). */
void tg_tensor_bump_version(tg_tensor *t);

/* partition.c */
/* Make t usable by a task or the host now, as StarPU sees it: its ancestors partitioned down
 * to it, t itself whole (partition switches are recorded on the tape and submitted). */
int tg_tensor_make_accessible(tg_tensor *t);
/* The operands of one task may not overlap (a tensor and a part of it, or parts of two plans
 * of one tensor). */
int tg_check_no_overlap(tg_tensor *const *t, int n, const char *what);
/* A tensor's plans at free or shutdown: StarPU's side given back (every tensor below marked
 * orphan), then the structures freed. */
void tg_plans_clean(tg_tensor *t);
void tg_plans_free(tg_tensor *t);
/* The child of `other` (shaped as child's parent) that sits where child sits in its parent,
 * from a plan of other made the way child's plan was (found or made). */
int tg_plan_mirror(const tg_tensor *child, tg_tensor *other, tg_tensor **out);
int tg_leaf_grad_valid(const tg_tensor *t);
void tg_parts_grad_reset(tg_tensor *t, const tg_tensor *old_grad);
/* 1 if a is t or one of its ancestors. */
int tg_tensor_is_ancestor(const tg_tensor *a, const tg_tensor *t);

/* submit.c: give t's handle the reduction methods of TG_REDUX (once). */
void tg_redux_prepare(tg_tensor *t);

/* ---------------------------------------------------------------- graph / tape */

/* One operand of a recorded task or op. */
typedef struct tg_operand {
	int slot;          /* tensor slot in the graph */
	unsigned mode;     /* TG_R, TG_W, TG_RW, TG_ACC */
	int commute;       /* submitted with STARPU_COMMUTE (TG_ACC in fast mode) */
	uint32_t version;  /* version read (R) or produced (W) */
} tg_operand;

/* One StarPU task on the tape (graph "nodes" in the public API). */
typedef struct tg_task_node {
	int id;
	const tg_op_desc *op;
	const char *task_name;     /* static string */
	tg_phase phase;
	int layer;                 /* index in the graph's layer table, -1: none */
	int microbatch;
	int stage;
	int fwd_node;              /* backward tasks: first task of the forward op they differentiate */
	int oprec;                 /* the op it belongs to (index in the graph's ops), -1: none */
	int n;
	tg_operand *opd;
	double flops;
	size_t bytes;
	int *preds;
	int npred, cappred;
	tg_graph *graph;
} tg_task_node;

/* One application of an op, as autograd sees it: its operands are the tensors the op was
 * given (its tasks may work on parts of them). Backward rules get it as a tg_node. */
struct tg_node {
	int id;                    /* index in the graph's ops */
	const tg_op_desc *op;
	const char *name;          /* its (first) task's name, for messages */
	tg_phase phase;
	int layer;
	int microbatch;
	int stage;
	int first_task, ntasks;    /* its tasks on the tape */
	int n;
	tg_operand opd[TG_MAX_OPERANDS];
	void *args;
	size_t args_size;
	tg_graph *graph;
};

/* Per-tensor information kept by a graph (a snapshot, plus the live pointer while the graph
 * is current) and the dependency tracking state of the tensor. */
typedef struct tg_gtensor {
	tg_tensor *live;           /* NULL once the tensor is freed or the graph taken */
	uint64_t id;
	uint64_t parent_id;        /* a part of a tensor: that tensor's id; else 0 */
	uint64_t root_id;          /* the tensor it is a part of, at the top of the nesting (else its own id) */
	char *name;
	tg_dtype dtype;
	int rank;
	int64_t shape[TG_MAX_RANK];
	/* tracking: the last write (a set when it is a commuting group) and the reads since */
	int *writers;
	int nwriters, capwriters;
	int writers_commute;
	int *group_preds;          /* predecessors of the current commuting group */
	int ngroup_preds, capgroup_preds;
	int *readers;
	int nreaders, capreaders;
} tg_gtensor;

struct tg_graph {
	uint64_t serial;
	tg_task_node **nodes;      /* tasks */
	int nnodes, capnodes;
	tg_node **ops;
	int nops, capops;
	tg_gtensor *tensors;
	int ntensors, captensors;
	char **layers;
	int nlayers, caplayers;
	int nedges;
	int broken;                /* a recorded task failed to submit */
};

tg_graph *tg_graph_new_internal(uint64_t serial);
/* Record an op application (its operands as given) in the current graph. */
int tg_graph_record_op(tg_node **out, const tg_task_spec *s);
/* Record a task about to be submitted; its versions and edges. (oprec: its op, or -1.) */
int tg_graph_record_task(tg_task_node **out, const tg_task_spec *s, int oprec);
/* Record a partition switch of plan p (partition: 1, unpartition: 0). */
int tg_graph_record_switch(const tg_plan *p, int partition);
/* Forget a freed tensor in the current graph. */
void tg_graph_forget_tensor(tg_tensor *t);
tg_tensor *tg_node_tensor_live(const tg_node *n, int i);

/* ---------------------------------------------------------------- submitters */

/* How a checked, recorded task reaches StarPU: the seam between what every runtime shares
 * (checks, the tape, op records, tiles: submit.c) and the building and submission of the
 * task. The local submitter (submit_local.c) makes a starpu_task and calls
 * starpu_task_submit; a distributed one (StarPU-MPI: an owner rank per tensor,
 * starpu_mpi_task_insert) is another tg_submitter, chosen at tg_init. On failure the
 * submitter marks node->graph broken (the node is on the tape, its task will never run). */
typedef struct tg_submitter {
	const char *name;
	int (*submit)(const tg_task_spec *s, tg_task_node *node);
} tg_submitter;
extern const tg_submitter tg_submitter_local;
/* The tensor's slot in the current graph (made on first use). */
int tg_graph_slot(tg_tensor *t, int *slot);

/* ---------------------------------------------------------------- files */

/* Write a file whole or not at all: write() fills a temporary file next to path, which is
 * flushed, fsynced and renamed over path. On failure nothing at path changes. */
int tg_write_file_atomic(const char *path, int (*write)(FILE *f, void *ctx), void *ctx);
/* What a file that is not a regular file is, for messages ("a folder", "a FIFO", ...). */
const char *tg_file_kind(mode_t m);

/* ---------------------------------------------------------------- rng */

/* Philox4x32-10: four 32-bit outputs for a 128-bit counter and a 64-bit key. */
void tg_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Fill n floats: element i depends only on (fill->seed, fill->stream, i). */
void tg_fill_host_f32(float *dst, int64_t n, const tg_fill *fill);

#endif /* TG_INTERNAL_H */
