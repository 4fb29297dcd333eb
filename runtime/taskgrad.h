/*
 * taskgrad.h — the one public header of taskgrad.
 *
 * taskgrad trains neural networks as StarPU task graphs. A model does not run its layers:
 * every forward op, backward op and optimizer update is submitted as a StarPU task, StarPU
 * infers the dependency DAG from the tasks' data access modes and schedules it over CPU
 * cores and GPUs. taskgrad records the same DAG on a tape, so it can differentiate it
 * (tg_backward) and show it (tg_graph_dump_dot).
 *
 * A first program:
 *
 *     tg_config cfg;
 *     tg_config_default(&cfg);
 *     cfg.sched = "dmda";
 *     if (tg_init(&cfg) < 0) { fprintf(stderr, "%s\n", tg_last_error()); return 1; }
 *
 *     tg_tensor *x, *w, *y, *loss, *tgt;
 *     tg_tensor_new_filled(&x, "x", TG_F32, TG_SHAPE(64, 2), &(tg_fill){TG_FILL_NORMAL, 0, 1, 7, 0});
 *     tg_tensor_new_filled(&w, "w", TG_F32, TG_SHAPE(3, 2), &(tg_fill){TG_FILL_UNIFORM, -1, 1, 7, 1});
 *     tg_tensor_set_requires_grad(w, 1);          // a parameter
 *     tg_tensor_new(&y, "y", TG_F32, TG_SHAPE(64, 3));
 *     ...
 *     tg_matmul(y, x, w, TG_TRANS_B);              // y = x w^T   (submits a task, returns at once)
 *     tg_softmax_xent(loss, y, tgt);               // mean cross-entropy
 *     tg_backward(loss);                           // submits the backward tasks
 *     tg_sgd(w, NULL, &(tg_sgd_params){.lr = 0.1f});
 *     float l; tg_tensor_to_host(loss, &l, sizeof l);   // the only wait
 *
 *     tg_graph *g; tg_graph_take(&g);              // the recorded DAG of that step
 *     tg_graph_dump_dot(g, "step.dot");
 *     tg_graph_free(g);
 *     ... tg_tensor_free(...); tg_shutdown();
 *
 * Conventions: every function returns 0 or a negative TG_E* code and leaves a message for
 * tg_last_error(); arguments are outputs, then inputs, then sizes; tensors are float32 (or
 * int32 for indices), row-major and contiguous. The library never exits the process.
 */
#ifndef TASKGRAD_H
#define TASKGRAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* TG_API marks what the library exports; everything else in it is hidden. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define TG_API __attribute__((visibility("default")))
#else
#define TG_API
#endif

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0
#define TG_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */

enum {
	TG_OK = 0,
	TG_EINVAL = -1,   /* an argument is invalid (a name, a number, a flag) */
	TG_ESHAPE = -2,   /* tensor shapes do not fit the op, or a shape is impossible */
	TG_ENOMEM = -3,   /* out of memory */
	TG_ESTATE = -4,   /* called at the wrong time (not initialised, already initialised, ...) */
	TG_ESTARPU = -5,  /* StarPU refused something */
	TG_ENODEV = -6,   /* no worker can run the task (e.g. a CUDA-only request without a GPU) */
	TG_EIO = -7,      /* a file could not be read or written */
	TG_ECUDA = -8,    /* a CUDA or cuBLAS call failed inside a task */
	TG_ENUMERIC = -9, /* NaN or infinity where a finite number is required */
	TG_ENOTSUP = -10  /* not supported in this build */
};

/* The message of the last error of the calling thread ("" if none). */
TG_API const char *tg_last_error(void);
/* A short name of an error code ("invalid argument", ...). */
TG_API const char *tg_strerror(int code);
/* Clear the calling thread's last error. */
TG_API void tg_clear_error(void);
/* "file:line" where the last error was raised (for debugging; "" if none). */
TG_API const char *tg_last_error_where(void);
/* Set the calling thread's last error and return code (for users' own ops and checks). */
TG_API int tg_set_error_at(const char *file, int line, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
#define tg_set_error(code, ...) tg_set_error_at(__FILE__, __LINE__, (code), __VA_ARGS__)
/* Report an error from inside a task (a codelet cannot return one): the first such error is
 * kept and returned by the next tg_wait_all or tg_tensor_to_host. Thread-safe. */
TG_API void tg_task_error_at(const char *file, int line, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
#define tg_task_error(code, ...) tg_task_error_at(__FILE__, __LINE__, (code), __VA_ARGS__)

/* ------------------------------------------------------------------------------------ */
/* Runtime                                                                              */
/* ------------------------------------------------------------------------------------ */

typedef struct tg_config {
	/* StarPU scheduling policy ("eager", "lws", "dmda", ...). NULL: take STARPU_SCHED from
	 * the environment if set, else "lws". A name that is not one of StarPU's predefined
	 * policies is an error listing the valid names. When both this and STARPU_SCHED are set
	 * and differ, tg_init fails (the environment never silently overrides the config). */
	const char *sched;
	int ncpu;          /* CPU workers; -1: StarPU's default (STARPU_NCPU, else all cores);
	                    * a count StarPU cannot start is an error */
	int ncuda;         /* CUDA workers; -1: StarPU's default (STARPU_NCUDA, else all GPUs) */
	uint64_t seed;     /* default seed for models and data */
	int deterministic; /* 1: bit-identical results under every policy, and under every worker
	                    * count for a given tiling (the automatic tile count follows the
	                    * workers: set tile_rows to compare worker counts): accumulations keep
	                    * their order, and with CUDA workers each op runs where it has a CUDA
	                    * implementation (else on CPUs), never both */
	int profiling;     /* 1: enable StarPU's task profiling */
	int verbose;       /* 1: let StarPU print its messages (calibration, warnings) on stderr,
	                    * even when the environment has STARPU_SILENT=1; 0: StarPU is
	                    * silenced unless STARPU_SILENT is set in the environment */
	/* Tiles: an op works on its tensors in row tiles, one task per tile (see tg_tile_count).
	 * tile_rows 0: automatic (tiles of at least 256 rows, at most max_tiles of them);
	 * N > 0: tiles of N rows (the last may be smaller). max_tiles 0: one per worker. */
	int64_t tile_rows;
	int max_tiles;
} tg_config;

/* Fill *cfg with the defaults: sched NULL, ncpu -1, ncuda -1, seed 1, deterministic 1,
 * profiling 0, verbose 0, tile_rows 0, max_tiles 0. */
TG_API void tg_config_default(tg_config *cfg);

/* Start StarPU with cfg (NULL: defaults). OpenBLAS is set single-threaded first: parallelism
 * comes from StarPU workers. tg_init/tg_shutdown may be repeated in one process.
 *
 * Before StarPU starts, tg_init
 *   - refuses a StarPU variable of the environment that StarPU would abort or crash on, or
 *     read otherwise than it is written (a number variable such as STARPU_NCPU holding a
 *     non-number or a negative value, a CPU this machine does not have, a malformed CPU list);
 *   - refuses more CPU workers than this machine has cores (from cfg or STARPU_NCPU alike:
 *     StarPU would bind two workers to one core), and more than StarPU was built for;
 *   - places StarPU's performance models and bus calibration: $STARPU_PERF_MODEL_DIR, else
 *     $STARPU_HOME/.starpu/sampling if set (an error if it cannot be written), else
 *     $XDG_CACHE_HOME/taskgrad/starpu-X.Y or ~/.cache/taskgrad/starpu-X.Y, else a temporary
 *     directory (tg_runtime_info says so; tg_shutdown removes it), checking that StarPU's
 *     folders can be made in it and that its file names there fit StarPU's buffers;
 *   - silences StarPU's messages unless cfg->verbose (which also overrides STARPU_SILENT=1)
 *     or STARPU_SILENT is set;
 *   - keeps StarPU's signal handlers out (unless STARPU_CATCH_SIGNALS is set) and restores
 *     the process's signal dispositions at tg_shutdown, so that a crash or a Ctrl-C ends the
 *     process however many times the runtime was started.
 * It sets STARPU_PERF_MODEL_DIR and STARPU_SILENT in the environment while the runtime runs
 * and restores them at tg_shutdown; call it from one thread, as any setenv. */
TG_API int tg_init(const tg_config *cfg);
/* Wait for every submitted task, then stop StarPU. Tensors must have been freed. */
TG_API int tg_shutdown(void);
TG_API int tg_is_initialized(void);

/* What really runs after tg_init. */
typedef struct tg_runtime_info {
	char sched[64];      /* the policy StarPU runs */
	int ncpu, ncuda;     /* workers of each type */
	int deterministic;
	char starpu_version[32];
	int cuda_compiled;   /* 1 if this library has its CUDA kernels compiled in */
	int max_cpu_workers; /* the most CPU workers this machine takes (cores, StarPU's limit) */
	char perfmodel_dir[256];     /* where StarPU keeps its performance models */
	int perfmodel_dir_temporary; /* 1: no cache directory was writable; a temporary one is used */
	char blas_core[32];  /* the kernels OpenBLAS runs ("Haswell", "SkylakeX", ...): its choice for this
	                      * CPU, or the OPENBLAS_CORETYPE of the environment */
} tg_runtime_info;
TG_API int tg_runtime_get_info(tg_runtime_info *info);

/* Writes the names of StarPU's predefined scheduling policies, separated by ", ", into buf. */
TG_API int tg_sched_policy_names(char *buf, size_t size);
/* 1 if name is one of StarPU's predefined scheduling policies. */
TG_API int tg_sched_policy_valid(const char *name);

/* Wait until every submitted task has run. Returns the first error a task reported
 * (TG_ECUDA, ...) since the last tg_wait_all, or 0. */
TG_API int tg_wait_all(void);

/* Restrict where tasks submitted from now on may run (OR of TG_BACKEND_*); 0 = anywhere. */
enum { TG_BACKEND_ANY = 0, TG_BACKEND_CPU = 1, TG_BACKEND_CUDA = 2 };
TG_API int tg_set_backend(unsigned backends);
TG_API unsigned tg_get_backend(void);

/* ------------------------------------------------------------------------------------ */
/* Tensors                                                                              */
/* ------------------------------------------------------------------------------------ */

typedef struct tg_tensor tg_tensor;

typedef enum tg_dtype { TG_F32 = 0, TG_I32 = 1 } tg_dtype;

#define TG_MAX_RANK 4
/* TG_SHAPE(a, b, c) expands to "3, (const int64_t[]){a, b, c}": a rank and a shape. */
#define TG_SHAPE(...) \
	(int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

typedef enum tg_fill_kind {
	TG_FILL_ZEROS = 0,
	TG_FILL_CONSTANT, /* every element = a */
	TG_FILL_UNIFORM,  /* uniform in [a, b) */
	TG_FILL_NORMAL    /* normal with mean a and standard deviation b */
} tg_fill_kind;

/* Random fills come from a counter-based generator (Philox4x32-10): element i of a tensor
 * depends only on (seed, stream, i), so a fill is the same whatever the worker, the order or
 * the shape it is later viewed as. Use a different stream per tensor. */
typedef struct tg_fill {
	tg_fill_kind kind;
	float a, b;
	uint64_t seed, stream;
} tg_fill;

/* The same fills on host memory (dst holds n floats). */
TG_API int tg_fill_host(float *dst, int64_t n, const tg_fill *fill);

/* A new tensor of rank 1..4; its contents are undefined until written. Every dimension must
 * be >= 1 and the sizes must fit StarPU's 32-bit matrix sizes. name is copied (may be NULL). */
TG_API int tg_tensor_new(tg_tensor **out, const char *name, tg_dtype dtype, int rank, const int64_t *shape);
/* A new tensor holding a copy of data; size (bytes) must be exactly numel * 4. */
TG_API int tg_tensor_new_from_host(tg_tensor **out, const char *name, tg_dtype dtype, int rank,
                                   const int64_t *shape, const void *data, size_t size);
/* A new tensor filled as fill says (TG_I32 tensors take zeros and constants only). */
TG_API int tg_tensor_new_filled(tg_tensor **out, const char *name, tg_dtype dtype, int rank,
                         const int64_t *shape, const tg_fill *fill);
/* Free a tensor, its partitions and the gradient it owns; waits for the tasks that use it. A
 * gradient belongs to its tensor: freeing it on its own only detaches it. A child of a
 * partition cannot be freed on its own (TG_ESTATE): it goes with its parent, or with
 * tg_tensor_drop_partition. NULL is fine. */
TG_API int tg_tensor_free(tg_tensor *t);

/* Partitions: children that are parts of a tensor, without copies and without host waits.
 *
 * A parent may have several partitions ("plans"); StarPU has at most one of them active at a
 * time, and taskgrad switches between the parent, its plans and their children as tasks use
 * them: a switch is submitted asynchronously and recorded on the tape (task names
 * "partition" and "unpartition", phase TG_PHASE_DATA), so the recorded edges stay StarPU's.
 * Switching costs tens of microseconds per tensor: keep tensors that are always used in
 * parts (activations in tiles) in the same plan. Children are tensors: any op reads and
 * writes them, honouring their leading dimension (the parent's), and they can be partitioned
 * in turn. Plans live as long as their parent (or until tg_tensor_drop_partition). A task may
 * not use a tensor together with a part of it, or parts of two plans of one tensor
 * (TG_EINVAL, before anything is submitted). */
typedef enum tg_split { TG_SPLIT_ROWS = 0, TG_SPLIT_COLS = 1 } tg_split;
/* n children along the rows (the leading dimensions, flattened) or the columns (the last
 * dimension), as even as can be: the first (size % n) children have one more. A child keeps
 * the parent's rank when its rows split the leading dimensions evenly ((B, T, C) into n
 * children of (B/n, T, C)); otherwise it is (rows, C). Asking again for the same split gives
 * the same children. */
TG_API int tg_tensor_partition(tg_tensor *parent, tg_split how, int n, tg_tensor **children);
/* nr x nc children, row-major (children[r * nc + c]), each (rows, cols). */
TG_API int tg_tensor_partition_grid(tg_tensor *parent, int nr, int nc, tg_tensor **children);
/* Children at chosen places: child i has the shape (rank, shape) of block i and sits at row
 * row0, column col0 of the parent seen as a matrix. Blocks must fit and not overlap.
 * A flat (rank-1) parent packs its children: block i is contiguous, of any rank, from element
 * col0 (row0 0) — a table of parameters in one buffer, each a tensor of its own shape. */
typedef struct tg_block {
	int64_t row0, col0;
	int rank;
	int64_t shape[TG_MAX_RANK];
} tg_block;
TG_API int tg_tensor_partition_blocks(tg_tensor *parent, int n, const tg_block *blocks, tg_tensor **children);
/* Drop the plan child belongs to: its children cannot be used any more (an error, not a
 * crash, until the parent is freed); what they hold stays in the parent. */
TG_API int tg_tensor_drop_partition(tg_tensor *child);
/* The tensor a child is part of (NULL for a tensor of its own). */
TG_API tg_tensor *tg_tensor_parent(const tg_tensor *t);
/* How many row tiles an op makes of rows rows under the current tiling (tg_config). */
TG_API int tg_tile_count(int64_t rows);
/* Change the tiling of ops submitted from now on (tile_rows, max_tiles as in tg_config). */
TG_API int tg_set_tiling(int64_t tile_rows, int max_tiles);

/* Copy the tensor to host memory (waits for the tasks that write it). size in bytes must be
 * exactly the tensor's size. Returns the first asynchronous task error, if any. */
TG_API int tg_tensor_to_host(const tg_tensor *t, void *dst, size_t size);
/* Overwrite the tensor from host memory (waits for the tasks that use it). */
TG_API int tg_tensor_from_host(tg_tensor *t, const void *src, size_t size);
/* Bring the tensor's current value to a backend's memory now (the first CUDA device for
 * TG_BACKEND_CUDA), waiting for the copy. */
TG_API int tg_tensor_prefetch(tg_tensor *t, unsigned backend);
/* Refill an existing tensor (waits for the tasks that use it). */
TG_API int tg_tensor_fill(tg_tensor *t, const tg_fill *fill);

TG_API int tg_tensor_rank(const tg_tensor *t);
TG_API const int64_t *tg_tensor_shape(const tg_tensor *t); /* rank entries */
TG_API int64_t tg_tensor_dim(const tg_tensor *t, int i); /* i < 0 counts from the end */
TG_API int64_t tg_tensor_numel(const tg_tensor *t);
TG_API size_t tg_tensor_nbytes(const tg_tensor *t);
/* Memory of the live tensors (parameters, optimizer state, gradients, activations, batches):
 * in use now and the most since tg_init (or the last reset_peak). Parts share their
 * tensor's memory; StarPU's own buffers (scratch, per-worker reduction copies) are not
 * counted. */
TG_API int tg_memory_get(size_t *in_use, size_t *peak, int reset_peak);
TG_API tg_dtype tg_tensor_dtype(const tg_tensor *t);
TG_API const char *tg_tensor_name(const tg_tensor *t);
/* The shape as text, "(2, 3, 4)", truncated to size; returns buf ("" when t is NULL; NULL
 * when buf is NULL or size is 0, and then nothing is written). */
TG_API const char *tg_tensor_shape_str(const tg_tensor *t, char *buf, size_t size);
/* The layer a tensor lives in: the tag current when it was created (NULL: none), or set. An
 * op's tasks carry the layer of the tensors they write (else of those they read) unless a
 * tag is current (tg_tag_layer): tag a model's parameters and activations once, at creation. */
TG_API const char *tg_tensor_layer(const tg_tensor *t);
TG_API int tg_tensor_set_layer(tg_tensor *t, const char *layer);
/* Rename a tensor (the name shows in graphs, traces and messages). */
TG_API int tg_tensor_set_name(tg_tensor *t, const char *name);
/* 0 if t can be used now: not NULL, not left over from a runtime that was shut down, not
 * split into a view; else an error naming what (the caller, "myop") and the tensor. Ops call
 * it (tg_submit does, for every operand) before they decide anything from a tensor. */
TG_API int tg_tensor_check_usable(const tg_tensor *t, const char *what);
/* A number that names the tensor for the life of the process (graph operands refer to it). */
TG_API uint64_t tg_tensor_id(const tg_tensor *t);
/* Matrix view used by ops: rows = product of all but the last dimension, cols = last. */
TG_API int64_t tg_tensor_rows(const tg_tensor *t);
TG_API int64_t tg_tensor_cols(const tg_tensor *t);

/* A tensor that requires a gradient and is not produced by an op is a parameter: its
 * gradient accumulates over tg_backward calls until tg_zero_grad or an optimizer step. */
TG_API int tg_tensor_set_requires_grad(tg_tensor *t, int on);
TG_API int tg_tensor_requires_grad(const tg_tensor *t);
/* The gradient tensor of t (NULL before the first backward that reached t). */
TG_API tg_tensor *tg_tensor_grad(const tg_tensor *t);
/* 1 if t's gradient holds a value (some backward contributed since the last reset). */
TG_API int tg_tensor_grad_valid(const tg_tensor *t);
/* Use g (same shape, float32) as t's gradient buffer; t does not own it (free g after t).
 * For a parameter, g's current contents become its gradient (valid); for an activation, g is
 * the buffer its next backward writes. Use it to place gradients in a flat buffer, or views,
 * or to give each micro-batch a buffer of its own. The gradients of t's parts that were parts
 * of the old buffer follow: they become the same parts of g. */
TG_API int tg_tensor_set_grad(tg_tensor *t, tg_tensor *g);
/* Mark a parameter's gradient empty, and its parts': the next contribution overwrites it (no
 * task runs). A parameter's gradient is valid when its own is, or when every part of one of
 * its plans holds one (tg_tensor_grad_valid). */
TG_API int tg_zero_grad(tg_tensor *param);

/* ------------------------------------------------------------------------------------ */
/* Ops (each call records a tape node and submits a task; nothing waits)                */
/* ------------------------------------------------------------------------------------ */

enum { TG_TRANS_A = 1, TG_TRANS_B = 2 };

/* out = op(a) op(b); op(x) = x^T when the flag is set. Tensors of rank > 2 are viewed as
 * matrices (rows, cols) (see tg_tensor_rows).   out (M, N), op(a) (M, K), op(b) (K, N) */
TG_API int tg_matmul(tg_tensor *out, tg_tensor *a, tg_tensor *b, unsigned flags);

/* out = a + b, where b has the shape of a, or is one row broadcast over a's rows (a bias).
 *   out (.., C), a (.., C), b (.., C) or (C) */
TG_API int tg_add(tg_tensor *out, tg_tensor *a, tg_tensor *b);

/* The elementwise family: out and x (and a, b) of one shape, any rank.
 *   relu: max(x, 0)   gelu: GELU, tanh form   tanh   sigmoid: 1 / (1 + exp(-x))
 *   scale: p x        mul: a * b */
TG_API int tg_relu(tg_tensor *out, tg_tensor *x);
TG_API int tg_gelu(tg_tensor *out, tg_tensor *x);
TG_API int tg_tanh(tg_tensor *out, tg_tensor *x);
TG_API int tg_sigmoid(tg_tensor *out, tg_tensor *x);
TG_API int tg_scale(tg_tensor *out, tg_tensor *x, float p);
TG_API int tg_mul(tg_tensor *out, tg_tensor *a, tg_tensor *b);

/* loss = mean over rows r of -log softmax(logits[r])[targets[r]]   (fused, numerically stable)
 *   loss (1), logits (N, V), targets (N) int32 in [0, V). A target outside [0, V) is never
 *   used as an index: the next wait (tg_wait_all, tg_tensor_to_host) returns TG_EINVAL naming
 *   its row and value, and the loss is NaN. */
TG_API int tg_softmax_xent(tg_tensor *loss, tg_tensor *logits, tg_tensor *targets);

/* ---- embeddings */

/* out row r = table row ids[r]: an embedding lookup.   out (.., C) with N rows, table (V, C),
 *   ids int32 with N elements, in [0, V). Backward: dtable[ids[r]] += dout[r], summed in row
 *   order (deterministic, no atomics; the same whatever the tiling). An id outside [0, V) is
 *   never used as an index: the next wait returns TG_EINVAL naming its row and value, and the
 *   row is NaN. */
TG_API int tg_embedding(tg_tensor *out, tg_tensor *table, tg_tensor *ids);
/* out = x + pos[t], t = r mod T for row r: positional embeddings added to sequences of T rows.
 *   out, x (.., C), rows a multiple of T; pos (P >= T, C). */
TG_API int tg_pos_add(tg_tensor *out, tg_tensor *x, tg_tensor *pos, int64_t T);

/* ---- normalisation, softmax, attention */

/* Layer normalisation over the last dimension: out = (x - mean) * rstd * w + b, rstd =
 *   1 / sqrt(var + eps) (biased variance); mean and rstd are written for the backward.
 *   out, x (.., C); w, b (C); mean, rstd (N) for the N rows of x; eps > 0. */
TG_API int tg_layernorm(tg_tensor *out, tg_tensor *mean, tg_tensor *rstd, tg_tensor *x, tg_tensor *w, tg_tensor *b,
                        float eps);
/* Fused residual add and layer normalisation: sum = a + r, out = layernorm(sum) (one pass
 *   over the rows). sum, out, a, r (.., C); the rest as tg_layernorm. */
TG_API int tg_add_layernorm(tg_tensor *sum, tg_tensor *out, tg_tensor *mean, tg_tensor *rstd, tg_tensor *a,
                            tg_tensor *r, tg_tensor *w, tg_tensor *b, float eps);
/* Row softmax of scale * x: out[r] = softmax(scale * x[r]). causal_T > 0: row r is query
 *   position t = r mod causal_T, and columns j > t are masked out (probability 0); x then has
 *   causal_T columns. out, x (.., V). */
TG_API int tg_softmax(tg_tensor *out, tg_tensor *x, float scale, int64_t causal_T);
/* Causal multi-head self-attention with H heads of d = C / H:
 *   for each batch b and head h, with Q, K, V the head's columns of qkv = [Q | K | V]:
 *   att[b, h] = softmax(Q K^T / sqrt(d), causal), out[b, :, head h's columns] = att[b, h] V.
 *   out (B, T, C); att (B, H, T, T), kept for the backward; qkv (B, T, 3C). Tiled by batch and
 *   group of heads. */
TG_API int tg_attention(tg_tensor *out, tg_tensor *att, tg_tensor *qkv, int heads);

/* ---- recurrent cells */

/* One LSTM step with fused gates, as PyTorch's nn.LSTM (gate order i, f, g, o): from the
 *   preactivations pre = x W_ih^T + b_ih + h_prev W_hh^T + b_hh (B, 4H):
 *   i, f, o = sigmoid, g = tanh;  c = f * c_prev + i * g;  h = o * tanh(c).
 *   h, c (B, H); gates (B, 4H) holds the activated gates for the backward; c_prev (B, H) or
 *   NULL (zeros, the first step). */
TG_API int tg_lstm_cell(tg_tensor *h, tg_tensor *c, tg_tensor *gates, tg_tensor *pre, tg_tensor *c_prev);

/* ---- shapes */

/* out = x[..., col0 : col0 + w] with w out's last dimension: a copy of some columns. */
TG_API int tg_slice_cols(tg_tensor *out, tg_tensor *x, int64_t col0);
/* out = [x_0 | x_1 | ...] along the last dimension (1 to 8 inputs, their rows out's). */
TG_API int tg_concat_cols(tg_tensor *out, int n, tg_tensor *const *xs);
/* out = x with its last two dimensions swapped: x (.., N, M), out (.., M, N). */
TG_API int tg_transpose(tg_tensor *out, tg_tensor *x);

/* ---- fused elementwise, dropout */

/* out = gelu(x + b), b one row broadcast over x's rows (a bias). out, x (.., C), b (C). */
TG_API int tg_bias_gelu(tg_tensor *out, tg_tensor *x, tg_tensor *b);
/* Inverted dropout: element i (row-major over the whole tensor) is kept when a uniform number
 *   drawn from (seed, step, i) is >= p, and kept elements are scaled by 1 / (1 - p). The same
 *   seed, step and position give the same mask whatever the tiling or the worker; the backward
 *   draws it again (no mask is stored). p in [0, 1). out, x same shape. */
TG_API int tg_dropout(tg_tensor *out, tg_tensor *x, float p, uint64_t seed, uint64_t step);

/* ---- sums of gradients */

/* out (=|+=) the sum of xs (n of out's shape, 1 to 64): how = TG_SUM_TREE adds them pairwise in
 *   a fixed binary tree of tasks (bit-identical under every policy and worker count; the
 *   partial sums go to xs[0], xs[2], ... which are overwritten); TG_SUM_REDUX hands them to
 *   StarPU's reductions (STARPU_REDUX: fast, the order varies, the xs are left alone).
 *   accumulate: add to out instead of overwriting it. Not differentiable (a reduction of
 *   gradients, e.g. over micro-batches). */
enum { TG_SUM_TREE = 0, TG_SUM_REDUX = 1 };
TG_API int tg_sum(tg_tensor *out, int n, tg_tensor *const *xs, int how, int accumulate);

/* SGD step on one parameter, using its gradient (skipped if the gradient is empty):
 *   g = grad + weight_decay * param;  v = momentum * v + g (if velocity);  param -= lr * (v or g)
 * then the gradient is marked empty (see tg_zero_grad).  velocity: same shape or NULL. */
typedef struct tg_sgd_params {
	float lr, momentum, weight_decay;
} tg_sgd_params;
TG_API int tg_sgd(tg_tensor *param, tg_tensor *velocity, const tg_sgd_params *p);

/* AdamW step on one parameter, using its gradient (skipped if the gradient is empty), with
 * bias correction and decoupled weight decay (t = step >= 1):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   param -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * param)
 * then the gradient is marked empty. m, v: the parameter's shape (zeros at the start). */
typedef struct tg_adamw_params {
	float lr, beta1, beta2, eps, weight_decay;
	int64_t step;
} tg_adamw_params;
TG_API int tg_adamw(tg_tensor *param, tg_tensor *m, tg_tensor *v, const tg_adamw_params *p);

/* Clip the global norm of the gradients of n parameters to max_norm, without a host wait:
 * per-tensor sums of squares added in a fixed order, one task for the norm, then every
 * gradient scaled by min(1, max_norm / (norm + 1e-6)). norm (2) receives [the norm before
 * clipping, the factor applied] (read it later, e.g. with the loss). Parameters without a
 * gradient are skipped. */
TG_API int tg_clip_grad_norm(int n, tg_tensor *const *params, float max_norm, tg_tensor *norm);

/* Built-in ops, as listed once in ops/ops.def. */
typedef struct tg_op_desc tg_op_desc;
TG_API int tg_ops_builtin_count(void);
TG_API const tg_op_desc *tg_ops_builtin(int i);

/* ------------------------------------------------------------------------------------ */
/* Writing your own op                                                                  */
/* ------------------------------------------------------------------------------------ */
/*
 * Built-in ops and yours go through the same three pieces:
 *   - StarPU codelets (nbuffers = STARPU_VARIABLE_NBUFFERS: modes are chosen per task);
 *   - an op descriptor: name, kind (DOT colour), shape check, backward rule;
 *   - tg_submit(), which checks, records the tape node and submits the StarPU task.
 * A backward rule reads its forward node (tg_node_tensor, tg_node_args), gets the gradient
 * of the outputs with tg_grad_of, asks tg_grad_target where to put each input gradient (and
 * whether to overwrite or accumulate), and submits tasks with phase TG_PHASE_BWD.
 * See examples/custom_op.c.
 */

/* TG_PHASE_DATA: partition switches (taskgrad's own tasks, see tg_tensor_partition). */
typedef enum tg_phase { TG_PHASE_FWD = 0, TG_PHASE_BWD = 1, TG_PHASE_OPT = 2, TG_PHASE_DATA = 3 } tg_phase;

typedef enum tg_op_kind {
	TG_KIND_GEMM = 0,
	TG_KIND_ELEMENTWISE,
	TG_KIND_REDUCTION,
	TG_KIND_LOSS,
	TG_KIND_OPTIMIZER,
	TG_KIND_DATA,
	TG_KIND_OTHER,
	TG_KIND_COUNT
} tg_op_kind;

/* Operand access modes. TG_ACC accumulates into the operand (read-modify-write); in fast
 * (non-deterministic) mode StarPU may reorder accumulations into the same tensor. TG_REDUX
 * (a float32 operand): the task adds to a per-worker copy that starts at zero, and StarPU sums
 * the copies into the tensor when it is next used otherwise (STARPU_REDUX): fast, in an order
 * that varies from run to run. */
enum { TG_R = 1, TG_W = 2, TG_RW = 3, TG_ACC = 7, TG_REDUX = 11 };

#define TG_MAX_OPERANDS 12
struct starpu_codelet;
typedef struct tg_node tg_node;

/* One task to submit. Strings must have static storage (task names, like codelet names). */
typedef struct tg_task_spec {
	const tg_op_desc *op;
	struct starpu_codelet *cl;   /* nbuffers must be STARPU_VARIABLE_NBUFFERS */
	const char *name;            /* task name ("matmul_bwd_da"); NULL: the codelet's */
	tg_phase phase;
	int n;                       /* operands */
	tg_tensor *t[TG_MAX_OPERANDS];
	unsigned mode[TG_MAX_OPERANDS];
	const void *args;            /* copied into the task (STARPU_CL_ARGS-style) */
	size_t args_size;
	double flops;
	int priority;
	size_t scratch_bytes;        /* >0: one more buffer, a per-worker STARPU_SCRATCH vector */
	const char *layer;           /* layer tag of the node; NULL: the current tag */
	/* TG_TILE_ROWS: one task per row tile (tg_tile_count of the rows of operand tile_on,
	 * usually 0). An operand with those rows is split into row tiles, a rank-1 operand with
	 * that many elements into pieces; the others go whole to every task, and a whole operand that is
	 * written is written by the first task and accumulated into (TG_ACC) by the others. The
	 * flops are shared out. tile_args, when set, adjusts each task's copy of args (tile i of
	 * n, whose first row is row0 of the op's rows), e.g. to say "accumulate" to the tasks
	 * after the first, or where a tile's rows are (positions). */
	unsigned tile;
	unsigned whole;              /* bit i set: operand i goes whole to every tile, whatever its shape */
	void (*tile_args)(void *args, int tile, int ntiles, int64_t row0);
	int tile_on;                 /* the operand whose rows are tiled (e.g. a gradient's input, not the table it adds into) */
} tg_task_spec;
enum { TG_TILE_NONE = 0, TG_TILE_ROWS = 1 };
#define TG_MAX_TILES 64

struct tg_op_desc {
	const char *name;
	tg_op_kind kind;
	/* Check a forward spec (shapes, arguments) before anything is recorded or submitted;
	 * return 0 or a TG_E* code with a message. NULL: no check. */
	int (*check)(const tg_task_spec *s);
	/* Submit the tasks computing the input gradients of forward node fwd. NULL: the op is
	 * not differentiable (an error if a backward reaches it). */
	int (*backward)(const tg_node *fwd);
	const char *doc;             /* one line for listings */
};

/* Check, record on the tape and submit one op: one task, or one per tile (s->tile). Forward
 * ops (TG_PHASE_FWD) run the op's check first and must not write a tensor they read; they
 * are recorded for tg_backward with the tensors as given. */
TG_API int tg_submit(const tg_task_spec *s);
/* An op that tiles its work its own way (a GEMM by rows, columns or the summed dimension):
 * tg_op_begin(s) checks and records the op as s describes it (whole tensors, no task), then
 * each tg_submit until tg_op_end submits one of its tasks (on parts of those tensors). */
TG_API int tg_op_begin(const tg_task_spec *s);
TG_API int tg_op_end(void);

/* For backward rules. */
TG_API tg_tensor *tg_node_tensor(const tg_node *n, int i);   /* operand i (NULL if freed) */
TG_API const void *tg_node_args(const tg_node *n);
TG_API const tg_op_desc *tg_node_op(const tg_node *n);
TG_API int tg_node_num_operands(const tg_node *n);
/* The gradient of forward output out for the version fwd wrote, or NULL when no gradient
 * reached it. */
TG_API tg_tensor *tg_grad_of(const tg_node *fwd, int operand);
/* Where the gradient of input operand i of fwd goes: *grad is NULL when the input needs no
 * gradient; otherwise *mode is TG_W (first contribution) or TG_ACC (add to it). */
TG_API int tg_grad_target(const tg_node *fwd, int operand, tg_tensor **grad, unsigned *mode);

/* ------------------------------------------------------------------------------------ */
/* Tape, autograd and graphs                                                            */
/* ------------------------------------------------------------------------------------ */

/* Tags that every node recorded from now on carries (until changed). A layer tag is a
 * name ("fc1", "block3.attn"); NULL clears it. Backward and optimizer nodes take the tags
 * of the forward node or the parameter they come from. */
TG_API int tg_tag_layer(const char *layer);
TG_API const char *tg_current_layer(void);
/* A task of micro-batch j > 0 gets StarPU priority (its op's) - j, so that policies that honour
 * priorities (lws, prio, dmdas, ...; not eager) finish earlier micro-batches first. */
TG_API int tg_tag_microbatch(int microbatch); /* -1: none */
TG_API int tg_current_microbatch(void);
/* Pipeline stages. A task recorded while stage s is current (tg_tag_stage; backward tasks
 * take their forward op's stage) runs only on the workers given to s with
 * tg_stage_set_workers (a StarPU worker mask on the task: the one scheduler sees every
 * stage's tasks, so the policy's decisions stay comparable; a stage without workers set runs
 * anywhere). Setting a stage's workers waits for the tasks in flight. */
#define TG_MAX_STAGES 64
TG_API int tg_tag_stage(int stage); /* -1: none */
TG_API int tg_current_stage(void);
TG_API int tg_stage_set_workers(int stage, int n, const int *workers); /* n = 0: any worker */
/* Stages 0 .. nstages-1 over the workers: of each kind (CPU, CUDA) present, stage s gets
 * workers [s n / K, (s + 1) n / K) of that kind; a kind with fewer workers than stages is
 * refused (TG_EINVAL). */
TG_API int tg_stage_split(int nstages);
/* The workers of a stage (up to max into workers); returns how many (0: any worker). */
TG_API int tg_stage_workers(int stage, int *workers, int max);

/* Differentiate the loss: walk the tape backwards from the node that wrote loss and submit
 * each op's backward rule. The loss gradient is 1. Parameter gradients accumulate. After an
 * error, gradients are undefined until tg_zero_grad. */
TG_API int tg_backward(tg_tensor *loss);
/* The same, from any output with a given gradient dout (its shape; NULL: ones): a
 * vector-Jacobian product, or a pipeline stage receiving its output's gradient. dout becomes
 * out's gradient buffer (see tg_tensor_set_grad). */
TG_API int tg_backward_from(tg_tensor *out, tg_tensor *dout);
/* The same from several outputs at once (the outputs of one op, say h and c of an LSTM cell):
 * douts[i] is outs[i]'s gradient (NULL: ones). */
TG_API int tg_backward_many(int n, tg_tensor *const *outs, tg_tensor *const *douts);

/* The recorded DAG. The runtime records into a current graph; tg_graph_take hands it to the
 * caller and starts a new, empty one. A taken graph does not refer to live tensors. */
typedef struct tg_graph tg_graph;
TG_API int tg_graph_take(tg_graph **out);
/* Forget everything recorded so far (start of a training step). */
TG_API int tg_graph_reset(void);
TG_API void tg_graph_free(tg_graph *g);
TG_API int tg_graph_num_nodes(const tg_graph *g);
TG_API int tg_graph_num_edges(const tg_graph *g);
/* Nodes and edges of the current (not yet taken) graph. */
TG_API int tg_tape_num_nodes(void);

typedef struct tg_graph_node_info {
	int id;
	const char *op;     /* op name ("matmul") */
	const char *task;   /* task name ("matmul_bwd_da") */
	const char *layer;  /* layer tag or NULL */
	tg_phase phase;
	int microbatch;     /* -1: none */
	int stage;          /* pipeline stage, -1: none */
	double flops;
	int npred;          /* number of direct predecessors */
	int fwd;            /* a backward node: the first node of the forward op it differentiates; else -1 */
	int op_id;          /* the op application it is a task of (ops number from 0 in a graph; the
	                     * tiles of one op share it); -1 for a partition switch */
} tg_graph_node_info;
TG_API int tg_graph_node(const tg_graph *g, int i, tg_graph_node_info *info);
/* The j-th direct predecessor of node i. */
TG_API int tg_graph_pred(const tg_graph *g, int i, int j);

/* Operand j of node i, as its task was submitted to StarPU. */
typedef struct tg_graph_operand_info {
	const char *tensor;     /* the tensor's name */
	uint64_t tensor_id;     /* tg_tensor_id of the tensor */
	uint64_t parent_id;     /* a part of a tensor (a tile): tg_tensor_id of that tensor; else 0 */
	uint64_t root_id;       /* the tensor that is no part of another (itself, when parent_id is 0) */
	unsigned mode;          /* TG_R, TG_W, TG_RW or TG_ACC */
	int commute;            /* 1: StarPU may reorder it with other accumulations (fast mode) */
	uint32_t version;       /* the tensor's version read (R) or produced (W, RW, ACC) */
	int rank;
	const int64_t *shape;   /* rank entries */
} tg_graph_operand_info;
TG_API int tg_graph_num_operands(const tg_graph *g, int i);
TG_API int tg_graph_operand(const tg_graph *g, int i, int j, tg_graph_operand_info *info);

/* Write the graph in Graphviz DOT: a cluster per layer, a colour per op kind, styles per
 * phase, stable node ids, and the longest path by flops highlighted. A graph with pipeline
 * stages or micro-batches (tg_tag_stage, tg_tag_microbatch) nests its clusters stage >
 * micro-batch > layer, puts the sums of micro-batch gradients (tg_sum outside every
 * micro-batch) in a "gradient reduction" cluster of their stage, and says the counts in
 * its label; the tags show in the node labels too. The file is written to
 * a temporary name and renamed, so a failure leaves no half-written file (see
 * tg_file_check_writable for what is refused). */
TG_API int tg_graph_dump_dot(const tg_graph *g, const char *path);
TG_API int tg_graph_write_dot(const tg_graph *g, FILE *f);

/* 0 if taskgrad can write path (an output file): a name that does not end in '/', in an
 * existing folder where a file can be created, naming nothing or a regular file (a symbolic
 * link is followed to the regular file it names). A FIFO, a device, a folder or a dangling
 * link is refused: outputs are written to a temporary file that replaces path, and that
 * must never replace something that is not a regular file. Use it to check output paths
 * before long work. */
TG_API int tg_file_check_writable(const char *path);

/* ------------------------------------------------------------------------------------ */
/* Safetensors files                                                                    */
/* ------------------------------------------------------------------------------------ */
/*
 * The safetensors format (Hugging Face): an 8-byte little-endian header size N, N bytes of a
 * UTF-8 JSON object, then the data region. Each key of the object but "__metadata__" is a
 * tensor, {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, its offsets
 * relative to the data region; "__metadata__" maps strings to strings. Known dtypes: F64,
 * F32, F16, BF16, I64, I32, I16, I8, U8, U16, U32, U64, BOOL, F8_E4M3, F8_E5M2. Data is
 * little-endian: a big-endian host is refused (TG_ENOTSUP).
 */

#define TG_ST_MAX_RANK 8

/* An opened, validated safetensors file (held in memory whole). */
typedef struct tg_st_file tg_st_file;

/* One tensor of a file; the strings live as long as the file. */
typedef struct tg_st_info {
	const char *name;
	const char *dtype;               /* "F32", "I32", ... as in the file */
	int rank;                        /* 0 to TG_ST_MAX_RANK */
	int64_t shape[TG_ST_MAX_RANK];
	size_t nbytes;
	size_t offset;                   /* in the data region */
} tg_st_info;

/* Read path whole and validate it: the header (valid JSON, an object, no duplicate keys),
 * every entry (known dtype, shape, offsets inside the data region, byte count = numel x
 * dtype size) and the layout (no overlaps, no bytes outside every tensor). On error *out is
 * NULL and the message names the file and what is wrong (TG_EIO for a file that is not a
 * valid safetensors file or cannot be read). */
TG_API int tg_st_open(tg_st_file **out, const char *path);
/* NULL is fine. */
TG_API void tg_st_close(tg_st_file *f);
/* Tensors are numbered in file order (sorted by data offset). */
TG_API int tg_st_num_tensors(const tg_st_file *f);
TG_API int tg_st_tensor_info(const tg_st_file *f, int i, tg_st_info *info);
/* The index of tensor name, or -1. */
TG_API int tg_st_find(const tg_st_file *f, const char *name);
/* Tensor i's nbytes bytes, little-endian, maybe unaligned (memcpy from it); NULL if i is
 * out of range. */
TG_API const void *tg_st_tensor_data(const tg_st_file *f, int i);
/* The value of metadata key, or NULL if absent. */
TG_API const char *tg_st_metadata(const tg_st_file *f, const char *key);
TG_API int tg_st_num_metadata(const tg_st_file *f);
/* Metadata entry i, in file order. */
TG_API int tg_st_metadata_at(const tg_st_file *f, int i, const char **key, const char **value);
/* Read tensor name as float32 into dst (its count floats): an error names the tensor if it
 * is missing or its dtype is not F32 (TG_EIO), or its shape is not (rank, shape) (TG_ESHAPE). */
TG_API int tg_st_read_f32(const tg_st_file *f, const char *name, int rank, const int64_t *shape, float *dst);

/* A file being put together: tensors and metadata, written at once by tg_st_writer_write. */
typedef struct tg_st_writer tg_st_writer;
TG_API int tg_st_writer_new(tg_st_writer **out);
/* NULL is fine. */
TG_API void tg_st_writer_free(tg_st_writer *w);
/* Add a tensor; its data is copied now. nbytes must equal numel x the dtype's size; names
 * are unique, non-empty UTF-8 and not "__metadata__"; dtype is one of the known ones.
 * Tensors are written in the order added, back to back. */
TG_API int tg_st_writer_add(tg_st_writer *w, const char *name, const char *dtype, int rank, const int64_t *shape,
                            const void *data, size_t nbytes);
/* Add a tensor's current value (float32 as "F32", int32 as "I32"), read with
 * tg_tensor_to_host (waits for the tasks that write it). */
TG_API int tg_st_writer_add_tensor(tg_st_writer *w, const char *name, const tg_tensor *t);
/* Set a metadata entry (UTF-8 strings); setting a key again replaces its value. Entries are
 * written first, in the order their keys were first set. */
TG_API int tg_st_writer_set_metadata(tg_st_writer *w, const char *key, const char *value);
/* Write the file whole or not at all (a temporary file, fsynced and renamed; see
 * tg_file_check_writable for what is refused). The header is padded with spaces so that the
 * data region starts at a multiple of 8. The bytes depend only on what was added. */
TG_API int tg_st_writer_write(const tg_st_writer *w, const char *path);

/* ------------------------------------------------------------------------------------ */
/* Models                                                                               */
/* ------------------------------------------------------------------------------------ */

/* A model is a table of parameters (names and shapes, declared once) and a forward function
 * that submits ops. Its parameters, their gradients and the AdamW moments are four flat
 * buffers; every parameter is a packed part of the first (tg_tensor_partition_blocks).
 * Names follow the common layouts so checkpoints interoperate: "gpt" as Hugging Face GPT-2
 * (transformer.wte.weight, transformer.h.{i}.attn.c_attn.weight (C, 3C), ...), "lstm" as
 * PyTorch's nn.LSTM (lstm.weight_ih_l{k}, gate order i, f, g, o; embedding.weight,
 * head.weight, head.bias), "mlp" as fc{i}.weight (out, in) and fc{i}.bias. */
typedef struct tg_model tg_model;

typedef struct tg_model_config {
	const char *arch;  /* "mlp", "lstm" or "gpt" */
	int vocab;         /* lstm, gpt: token ids in [0, vocab) (256: bytes); mlp: classes */
	int layers;        /* gpt: blocks; lstm: stacked LSTM layers; mlp: hidden layers */
	int dmodel;        /* gpt: channels; lstm: embedding and hidden size; mlp: hidden width */
	int heads;         /* gpt: attention heads (dividing dmodel) */
	int ctx;           /* lstm, gpt: tokens per sequence (gpt: rows of wpe) */
	int inputs;        /* mlp: input features */
	int untied;        /* gpt: 1 = a head of its own (lm_head.weight); 0 = the head is wte (GPT-2) */
	uint64_t seed;     /* of the initial weights: parameter i depends only on (seed, i) */
} tg_model_config;

/* The defaults of an architecture (gpt: 4 layers, dmodel 128, 4 heads, ctx 64, vocab 256;
 * lstm: 2 layers of 256, ctx 64; mlp: 2 hidden layers of 64, 2 inputs, 2 classes). */
TG_API int tg_model_config_default(tg_model_config *c, const char *arch);
TG_API const char *tg_model_arch_names(void);
TG_API int tg_model_new(tg_model **out, const tg_model_config *c);
TG_API const tg_model_config *tg_model_get_config(const tg_model *m);
/* logits = model(x). gpt: x int32 (B, ctx) tokens, logits (B ctx, vocab); lstm: x int32 (ctx, B),
 * time-major (tg_model_time_major), logits (ctx B, vocab) in the same order; mlp: x float32
 * (B, inputs), logits (B, vocab). Activations are kept per batch size (up to 4 sizes). */
TG_API int tg_model_forward(tg_model *m, tg_tensor *logits, tg_tensor *x);
/* 1: inputs and targets are (T, B), time step major (the LSTM); 0: (B, T). */
TG_API int tg_model_time_major(const tg_model *m);
TG_API int tg_model_num_params(const tg_model *m);
TG_API tg_tensor *tg_model_param(const tg_model *m, int i);     /* tg_tensor_name: its name */
TG_API int tg_model_find_param(const tg_model *m, const char *name); /* index or -1 */
/* The AdamW moments of parameter i: which 0 = m, 1 = v. */
TG_API tg_tensor *tg_model_adam_state(const tg_model *m, int i, int which);
TG_API int64_t tg_model_num_weights(const tg_model *m);
TG_API const char *tg_model_name(const tg_model *m);
TG_API void tg_model_free(tg_model *m);
/* Load the parameters of a safetensors file (a checkpoint, or another writer's file with the
 * same names and shapes; opt.* tensors are ignored). The whole file is checked first: a
 * missing or unknown tensor, a wrong dtype or shape is an error naming it, and nothing changes. */
TG_API int tg_model_load(tg_model *m, const char *path);
/* The model configuration a taskgrad checkpoint was written with (its __metadata__). */
TG_API int tg_model_config_read(tg_model_config *c, const char *path);

/* ------------------------------------------------------------------------------------ */
/* Datasets                                                                             */
/* ------------------------------------------------------------------------------------ */

/* A dataset hands out batches by number: batch `index` of a split is always the same, so a
 * run resumes at any step and every policy sees the same data. Write your own by filling
 * this struct (the trainer only calls batch and free). */
enum { TG_SPLIT_TRAIN = 0, TG_SPLIT_VAL = 1 };
typedef struct tg_dataset tg_dataset;
struct tg_dataset {
	const char *name;
	tg_dtype input_dtype;     /* TG_I32 tokens or TG_F32 features */
	int64_t input_width;      /* per sample: T tokens, or F features */
	int64_t target_width;     /* per sample: T targets, or 1 label (int32) */
	int vocab;                /* targets are in [0, vocab) */
	int64_t size[2];          /* bytes or samples in each split (for messages) */
	/* inputs (B, input_width), targets (B, target_width), sample-major */
	int (*batch)(tg_dataset *d, int split, uint64_t index, int B, void *inputs, int32_t *targets);
	void (*free)(tg_dataset *d);
	void *impl;
};
/* The bytes of a text file as tokens (vocabulary 256): the first 90% trains, the last 10%
 * validates; samples are windows of ctx + 1 bytes at positions drawn from (seed, split, index). */
TG_API int tg_dataset_text(tg_dataset **out, const char *path, int ctx, uint64_t seed);
/* The two-spirals set (2 inputs, 2 classes), points_per_class per class for training and a
 * quarter as many, from another seed, for validation. */
TG_API int tg_dataset_spirals(tg_dataset **out, int points_per_class, float noise, uint64_t seed);
TG_API void tg_dataset_free(tg_dataset *d);

/* Two-spirals classification data, generated from a seed: n points per class, coordinates
 * (x, y) scaled to about [-1, 1], label 0 or 1; noise is the standard deviation of the
 * Gaussian jitter. xy must hold 2 * n_total floats, labels n_total ints; n_total = 2 * n. */
TG_API int tg_data_spirals(float *xy, int32_t *labels, int n, float noise, double turns, uint64_t seed);

/* ------------------------------------------------------------------------------------ */
/* Training                                                                             */
/* ------------------------------------------------------------------------------------ */

/* The trainer: AdamW (weight decay on matrices only), linear warm-up then cosine decay to
 * lr / 10, gradient clipping, validation every eval_every steps. A step — forward, loss,
 * backward, clipping, updates (and the validation forwards) — is submitted whole before the
 * host reads anything, and the loss of step s is read while step s + 1 runs. The library
 * prints nothing and writes no file unless asked (tg_trainer_save). */
typedef struct tg_train_config {
	int steps;            /* the run's length (the schedule's end) */
	int batch;            /* samples per step */
	float lr;             /* peak learning rate */
	int warmup;           /* steps of linear warm-up */
	float weight_decay;
	float clip;           /* max global gradient norm; 0: no clipping */
	float beta1, beta2, eps;
	int eval_every;       /* validation loss every N steps (and at the last); 0: never */
	int eval_batches;     /* validation batches (always the same ones) */
	int sync_every;       /* every N steps the host waits for the whole step before the next is
	                       * submitted (info->synced: tg_trainer_save may run); 0: only at the end */
	/* Parallel strategies: shapes of the one step's task graph (docs/PARALLEL.md). Every one
	 * computes the same step: the loss is the mean over the batch whatever the split. */
	int micro_batches;    /* the batch is split into M micro-batches (M divides batch; 1: none) */
	int reduce;           /* how their gradients are summed: TG_REDUCE_DETERMINISTIC (a fixed tree of
	                       * add tasks) or TG_REDUCE_REDUX (StarPU's reductions, order varies) */
	int pipeline;         /* K stages of contiguous layers, each on its own workers (1: none) */
	int schedule;         /* TG_SCHEDULE_GPIPE (all forwards, then all backwards) or TG_SCHEDULE_1F1B
	                       * (at most K micro-batches' activations alive, each backward as early as it can) */
	int tensor_parallel;  /* N groups of heads / MLP columns (gpt) or hidden units (lstm) (1: none) */
} tg_train_config;
enum { TG_REDUCE_DETERMINISTIC = 0, TG_REDUCE_REDUX = 1 };
enum { TG_SCHEDULE_GPIPE = 0, TG_SCHEDULE_1F1B = 1 };
TG_API void tg_train_config_default(tg_train_config *c);

typedef struct tg_trainer tg_trainer;
typedef struct tg_step_info {
	int step;             /* the step just done, from 0 */
	int steps;
	float loss;
	float val_loss;       /* NaN: not evaluated at this step */
	float lr;
	float grad_norm;      /* before clipping (NaN without clipping) */
	double ms;            /* wall time of the step (between two loss reads) */
	double tokens_per_s;  /* B x T / time of the step */
	int synced;           /* 1: nothing of a later step is submitted; the state is this step's */
} tg_step_info;
/* Called once per step, in order; a positive return stops the run (tg_trainer_run returns 0), a
 * negative one (a TG_E* code, its message set) stops it with that error. */
typedef int (*tg_step_fn)(tg_trainer *tr, const tg_step_info *info, void *user);

/* The model and the dataset stay the caller's (free them after the trainer). */
TG_API int tg_trainer_new(tg_trainer **out, tg_model *m, tg_dataset *d, const tg_train_config *c);
/* Train from the current step to c->steps. A NaN or infinite loss stops the run with
 * TG_ENUMERIC naming the step. */
TG_API int tg_trainer_run(tg_trainer *tr, tg_step_fn fn, void *user);
TG_API int tg_trainer_step(const tg_trainer *tr);     /* steps done */
TG_API const tg_train_config *tg_trainer_config(const tg_trainer *tr);
/* Checkpoint (safetensors): the parameters under their names, the AdamW moments as
 * opt.m.<name> and opt.v.<name>, and in __metadata__ the model configuration, the step and
 * the data position. Written atomically; call it when no step is in flight (from a step
 * callback whose info->synced is 1, or outside tg_trainer_run). */
TG_API int tg_trainer_save(tg_trainer *tr, const char *path);
/* Load a checkpoint: resume 1 continues its run (parameters, moments, step, data position;
 * the model configuration must match); resume 0 takes the parameters only (another writer's
 * file with the same names and shapes will do; opt.* tensors are ignored). Everything is
 * checked before anything is changed, and a mismatch names the tensor. */
TG_API int tg_trainer_load(tg_trainer *tr, const char *path, int resume);
/* Run the forward and backward of the next step (no update) and write every parameter's
 * gradient under the parameter's name, the batch as batch.inputs (int32 tokens (B, T), or the
 * float32 features) and int32 batch.targets (B, T), sample-major, the loss in
 * __metadata__["loss"] (as text, %.9g), and "format": "taskgrad-gradients-1". */
TG_API int tg_trainer_dump_grads(tg_trainer *tr, const char *path, float *loss);
TG_API void tg_trainer_free(tg_trainer *tr);

/* Sampling from a language model: the prompt's tokens, then n more, each drawn from
 * softmax(logits / temperature) restricted to the top_k most likely (0: all), with uniform
 * numbers from (seed, position): the same seed gives the same text. temperature 0: the most
 * likely token. A context longer than the model's is cut to its last ctx tokens. out receives
 * n tokens. */
typedef struct tg_sample_config {
	int tokens;
	float temperature;
	int top_k;
	uint64_t seed;
} tg_sample_config;
TG_API int tg_sample(tg_model *m, const int32_t *prompt, int nprompt, const tg_sample_config *c, int32_t *out);

#ifdef __cplusplus
}
#endif
#endif /* TASKGRAD_H */
