/* cli.c — messages, numbers, and the option groups shared by taskgrad's commands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *prog = "taskgrad";

int fail_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	return EXIT_USAGE;
}

int fail_lib(int code)
{
	fprintf(stderr, "%s: %s\n", prog, tg_last_error());
	return code;
}

/* Whole numbers in [min, max], nothing else (no blanks, no trailing text). */
int parse_int(const char *opt, const char *s, long min, long max, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || isspace((unsigned char)*s) || *end || errno == ERANGE)
		return fail_usage("%s: '%s' is not a whole number", opt, s);
	if (v < min || v > max) {
		if (v < 0 && min >= 0)
			return fail_usage("%s: must not be negative, got %ld", opt, v);
		return fail_usage("%s: must be between %ld and %ld, got %ld", opt, min, max, v);
	}
	*out = (int)v;
	return 0;
}

int parse_u64(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!*s || !isdigit((unsigned char)*s))
		return fail_usage("%s: '%s' is not a non-negative whole number", opt, s);
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno == ERANGE)
		return fail_usage("%s: '%s' is not a non-negative whole number", opt, s);
	*out = (uint64_t)v;
	return 0;
}

/* Finite numbers in [min, max) (max_open) or [min, max]. */
int parse_float(const char *opt, const char *s, double min, double max, int max_open, float *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || isspace((unsigned char)*s) || *end || errno == ERANGE || !isfinite(v))
		return fail_usage("%s: '%s' is not a finite number", opt, s);
	v = (float)v; /* the value used is the float: check that one */
	if (v < min || v > max || (max_open && v >= max)) {
		if (v < 0 && min >= 0)
			return fail_usage("%s: must not be negative, got %g", opt, v);
		return fail_usage("%s: must be in [%g, %g%s, got %g", opt, min, max, max_open ? ")" : "]", v);
	}
	*out = (float)v;
	return 0;
}

/* Refuse an output path that cannot be written, before any work is done. */
int check_output_path(const char *opt, const char *path)
{
	if (tg_file_check_writable(path) < 0)
		return fail_usage("%s: %s", opt, tg_last_error());
	return 0;
}

/* ------------------------------------------------------------------ the option table */

enum {
	O_SCHED = 256, O_NCPU, O_NCUDA, O_FAST, O_SEED, O_TILE_ROWS, O_VERBOSE,
	O_MODEL, O_LAYERS, O_DMODEL, O_HEADS, O_CTX, O_UNTIED,
	O_DATA, O_BATCH, O_STEPS, O_LR, O_WARMUP, O_WD, O_CLIP, O_EVAL_EVERY, O_EVAL_BATCHES,
	O_MICRO_BATCHES, O_REDUCE, O_PIPELINE, O_SCHEDULE, O_TENSOR_PARALLEL,
	O_CHECKPOINT, O_CHECKPOINT_EVERY, O_RESUME, O_INIT, O_LOG, O_DUMP_GRADS, O_GRAPH, O_QUIET,
	O_PROMPT, O_TOKENS, O_TEMPERATURE, O_TOP_K, O_HELP, O_LAST
};

typedef struct cli_option {
	unsigned group;
	const char *name;
	int id;
	const char *arg;    /* NULL: a flag */
	const char *help;
} cli_option;

static const cli_option options[] = {
	{CLI_MODEL, "model", O_MODEL, "NAME", "model: gpt, lstm or mlp (default gpt)"},
	{CLI_MODEL, "layers", O_LAYERS, "N", "gpt blocks, lstm layers, mlp hidden layers (gpt 4, lstm 2, mlp 2)"},
	{CLI_MODEL, "dmodel", O_DMODEL, "N", "width: gpt channels, lstm hidden size, mlp hidden width (128, 256, 64)"},
	{CLI_MODEL, "heads", O_HEADS, "N", "gpt attention heads, dividing dmodel (4)"},
	{CLI_MODEL, "ctx", O_CTX, "N", "tokens per sequence (64)"},
	{CLI_MODEL, "untied", O_UNTIED, NULL, "gpt: a head of its own instead of the token embedding"},
	{CLI_TRAIN, "data", O_DATA, "FILE", "text to train on, bytes as tokens (lstm, gpt); mlp: the two spirals"},
	{CLI_TRAIN, "batch", O_BATCH, "N", "sequences per step (8)"},
	{CLI_TRAIN, "steps", O_STEPS, "N", "optimizer steps; 0 with --checkpoint writes the initial weights (1000)"},
	{CLI_TRAIN, "lr", O_LR, "X", "peak learning rate of AdamW (0.001)"},
	{CLI_TRAIN, "warmup", O_WARMUP, "N", "steps of linear warm-up, then cosine decay to lr/10 (100)"},
	{CLI_TRAIN, "weight-decay", O_WD, "X", "AdamW weight decay of the matrices (0.1)"},
	{CLI_TRAIN, "clip", O_CLIP, "X", "clip the global gradient norm to X; 0: off (1.0)"},
	{CLI_TRAIN, "eval-every", O_EVAL_EVERY, "N", "validation loss every N steps; 0: never (100)"},
	{CLI_TRAIN, "eval-batches", O_EVAL_BATCHES, "N", "validation batches (4)"},
	{CLI_TRAIN, "micro-batches", O_MICRO_BATCHES, "M", "split each batch into M micro-batches, submitted together (1)"},
	{CLI_TRAIN, "reduce", O_REDUCE, "MODE", "sum of their gradients: deterministic, a fixed tree of adds (default), or redux, StarPU's (with --fast)"},
	{CLI_TRAIN, "pipeline", O_PIPELINE, "K", "cut the layers into K stages, each on its own workers (1)"},
	{CLI_TRAIN, "schedule", O_SCHEDULE, "NAME", "pipeline order: gpipe, all forwards then backwards (default), or 1f1b"},
	{CLI_TRAIN, "tensor-parallel", O_TENSOR_PARALLEL, "N", "split heads and MLP columns (gpt), hidden units (lstm) into N groups (1)"},
	{CLI_OUTPUT | CLI_SAMPLE, "checkpoint", O_CHECKPOINT, "FILE", "train: write the final checkpoint (safetensors) to FILE; sample: read it"},
	{CLI_OUTPUT, "checkpoint-every", O_CHECKPOINT_EVERY, "N", "also write it every N steps"},
	{CLI_OUTPUT, "resume", O_RESUME, "FILE", "continue the run saved in FILE (bit-identical to not stopping)"},
	{CLI_OUTPUT, "init", O_INIT, "FILE", "start from the weights in FILE (safetensors with these names)"},
	{CLI_OUTPUT, "log", O_LOG, "FILE.csv", "one CSV row per step: step,loss,val_loss,lr,tokens_per_s,ms"},
	{CLI_OUTPUT, "dump-grads", O_DUMP_GRADS, "FILE", "run one step, write every gradient, the batch and the loss, exit"},
	{CLI_OUTPUT, "graph", O_GRAPH, "FILE.dot", "write the task graph of one training step (Graphviz DOT)"},
	{CLI_OUTPUT | CLI_SAMPLE, "quiet", O_QUIET, NULL, "-q: print only the results"},
	{CLI_SAMPLE, "prompt", O_PROMPT, "TEXT", "text the sample starts from (default: a newline)"},
	{CLI_SAMPLE, "tokens", O_TOKENS, "N", "tokens to generate (200)"},
	{CLI_SAMPLE, "temperature", O_TEMPERATURE, "X", "softmax temperature; 0: always the most likely (0.8)"},
	{CLI_SAMPLE, "top-k", O_TOP_K, "K", "draw among the K most likely tokens; 0: all (40)"},
	{CLI_RUNTIME, "sched", O_SCHED, "POLICY", "StarPU scheduling policy (STARPU_SCHED, else lws); see 'taskgrad policies'"},
	{CLI_RUNTIME, "ncpu", O_NCPU, "N", "CPU workers (default: StarPU's, all cores)"},
	{CLI_RUNTIME, "ncuda", O_NCUDA, "N", "CUDA workers (default: StarPU's, all GPUs)"},
	{CLI_RUNTIME, "fast", O_FAST, NULL, "let accumulations commute (not bit-reproducible across policies)"},
	{CLI_RUNTIME | CLI_SAMPLE, "seed", O_SEED, "N", "seed of the weights, the data and sampling (1)"},
	{CLI_RUNTIME, "tile-rows", O_TILE_ROWS, "N", "rows per tile of every op; 0: automatic"},
	{CLI_RUNTIME | CLI_SAMPLE, "verbose", O_VERBOSE, NULL, "-v: show StarPU's own messages on stderr"},
};
#define NOPTIONS (int)(sizeof options / sizeof options[0])

static const char *group_title(unsigned g)
{
	return g == CLI_MODEL ? "Model" : g == CLI_TRAIN ? "Training" : g == CLI_OUTPUT ? "Files" :
	       g == CLI_SAMPLE ? "Sampling" : "Runtime";
}

static void usage(FILE *f, unsigned groups, const char *cmd, const char *summary)
{
	fprintf(f, "Usage: taskgrad %s [OPTIONS]\n%s\n", cmd, summary);
	static const unsigned order[] = {CLI_MODEL, CLI_TRAIN, CLI_SAMPLE, CLI_OUTPUT, CLI_RUNTIME};
	int shown[NOPTIONS] = {0};
	for (int g = 0; g < 5; g++) {
		if (!(groups & order[g]))
			continue;
		fprintf(f, "\n%s:\n", group_title(order[g]));
		for (int i = 0; i < NOPTIONS; i++) {
			if (!(options[i].group & order[g]) || shown[i])
				continue;
			shown[i] = 1;
			char left[48];
			snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].arg ? " " : "",
			         options[i].arg ? options[i].arg : "");
			fprintf(f, "  %-26s %s\n", left, options[i].help);
		}
	}
	fprintf(f, "\n  %-26s %s\n", "-h, --help", "show this help");
}

/* What getopt_long refused in argv[at]: one message naming the option and what is wrong. */
static int bad_option(const struct option *longopts, char **argv, int at, const char *help)
{
	const char *arg = argv[at];
	if (strncmp(arg, "--", 2) != 0 || !arg[2])
		return fail_usage("unknown option '-%c' (see '%s')", isprint(optopt) ? optopt : '?', help);
	const char *name = arg + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	int exact = -1, matches = 0, last = -1;
	char candidates[512] = "";
	for (int i = 0; longopts[i].name; i++) {
		if (strncmp(longopts[i].name, name, len) != 0)
			continue;
		if (strlen(longopts[i].name) == len)
			exact = i;
		size_t used = strlen(candidates);
		snprintf(candidates + used, sizeof candidates - used, "%s--%s", matches ? ", " : "", longopts[i].name);
		matches++;
		last = i;
	}
	int found = exact >= 0 ? exact : matches == 1 ? last : -1;
	if (found >= 0 && eq && longopts[found].has_arg == no_argument)
		return fail_usage("option '--%s' takes no value, got '%s' (see '%s')", longopts[found].name, arg, help);
	if (found < 0 && matches > 1)
		return fail_usage("option '--%.*s' is ambiguous: it could be %s (see '%s')", (int)len, name, candidates, help);
	return fail_usage("unknown option '--%.*s' (see '%s')", (int)len, name, help);
}

static int apply(cli_opts *o, int id, const char *a)
{
	tg_train_config *t = &o->train;
	switch (id) {
	case O_SCHED: o->rt.sched = a; return 0;
	case O_NCPU: return parse_int("--ncpu", a, 0, 4096, &o->rt.ncpu);
	case O_NCUDA: return parse_int("--ncuda", a, 0, 64, &o->rt.ncuda);
	case O_FAST: o->rt.deterministic = 0; return 0;
	case O_SEED: return parse_u64("--seed", a, &o->rt.seed);
	case O_TILE_ROWS: {
		int v;
		int rc = parse_int("--tile-rows", a, 0, INT_MAX, &v);
		o->rt.tile_rows = v;
		return rc;
	}
	case O_VERBOSE: o->rt.verbose = 1; return 0;
	case O_MODEL: o->model = a; return 0;
	case O_LAYERS: return parse_int("--layers", a, 1, 1024, &o->layers);
	case O_DMODEL: return parse_int("--dmodel", a, 1, 16384, &o->dmodel);
	case O_HEADS: return parse_int("--heads", a, 1, 16384, &o->heads);
	case O_CTX: return parse_int("--ctx", a, 1, 65536, &o->ctx);
	case O_UNTIED: o->untied = 1; return 0;
	case O_DATA: o->data = a; return 0;
	case O_BATCH: return parse_int("--batch", a, 1, 1 << 20, &t->batch);
	case O_STEPS: return parse_int("--steps", a, 0, INT_MAX - 1, &t->steps);
	case O_LR: return parse_float("--lr", a, 0, 1e3, 0, &t->lr);
	case O_WARMUP: return parse_int("--warmup", a, 0, INT_MAX, &t->warmup);
	case O_WD: return parse_float("--weight-decay", a, 0, 1e3, 0, &t->weight_decay);
	case O_CLIP: return parse_float("--clip", a, 0, 1e9, 0, &t->clip);
	case O_EVAL_EVERY: return parse_int("--eval-every", a, 0, INT_MAX, &t->eval_every);
	case O_EVAL_BATCHES: return parse_int("--eval-batches", a, 1, 64, &t->eval_batches);
	case O_MICRO_BATCHES: return parse_int("--micro-batches", a, 1, 64, &t->micro_batches);
	case O_REDUCE:
		if (!strcmp(a, "deterministic") || !strcmp(a, "redux")) {
			t->reduce = !strcmp(a, "redux") ? TG_REDUCE_REDUX : TG_REDUCE_DETERMINISTIC;
			return 0;
		}
		return fail_usage("--reduce: unknown mode '%s' (deterministic or redux)", a);
	case O_PIPELINE: return parse_int("--pipeline", a, 1, TG_MAX_STAGES, &t->pipeline);
	case O_SCHEDULE:
		if (!strcmp(a, "gpipe") || !strcmp(a, "1f1b")) {
			t->schedule = !strcmp(a, "1f1b") ? TG_SCHEDULE_1F1B : TG_SCHEDULE_GPIPE;
			return 0;
		}
		return fail_usage("--schedule: unknown schedule '%s' (gpipe or 1f1b)", a);
	case O_TENSOR_PARALLEL: return parse_int("--tensor-parallel", a, 1, 64, &t->tensor_parallel);
	case O_CHECKPOINT: o->checkpoint = a; return 0;
	case O_CHECKPOINT_EVERY: return parse_int("--checkpoint-every", a, 1, INT_MAX, &o->checkpoint_every);
	case O_RESUME: o->resume = a; return 0;
	case O_INIT: o->init = a; return 0;
	case O_LOG: o->log = a; return 0;
	case O_DUMP_GRADS: o->dump_grads = a; return 0;
	case O_GRAPH: o->graph = a; return 0;
	case O_QUIET: o->quiet = 1; return 0;
	case O_PROMPT: o->prompt = a; return 0;
	case O_TOKENS: return parse_int("--tokens", a, 0, 1 << 20, &o->tokens);
	case O_TEMPERATURE: return parse_float("--temperature", a, 0, 100, 0, &o->temperature);
	case O_TOP_K: return parse_int("--top-k", a, 0, 1 << 20, &o->top_k);
	}
	return fail_usage("internal: option %d has no handler", id);
}

int cli_parse(int argc, char **argv, unsigned groups, const char *cmd, const char *summary, cli_opts *o, int *done)
{
	memset(o, 0, sizeof *o);
	tg_config_default(&o->rt);
	tg_train_config_default(&o->train);
	o->layers = o->dmodel = o->heads = o->ctx = -1;
	o->tokens = 200;
	o->temperature = 0.8f;
	o->top_k = 40;
	o->prompt = "\n";
	*done = 0;
	/* the training defaults that suit the model (before the flags, which override them) */
	const char *arch = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--model") && i + 1 < argc)
			arch = argv[i + 1];
		else if (!strncmp(argv[i], "--model=", 8))
			arch = argv[i] + 8;
	}
	if (arch && !strcmp(arch, "mlp")) {
		o->train.batch = 128;
		o->train.lr = 1e-2f;
		o->train.warmup = 10;
		o->train.weight_decay = 0;
		o->train.steps = 1500;
	} else if (arch && !strcmp(arch, "lstm")) {
		o->train.batch = 32;
		o->train.lr = 2e-3f;
		o->train.weight_decay = 0;
	}
	struct option longopts[NOPTIONS + 2];
	int n = 0;
	for (int i = 0; i < NOPTIONS; i++)
		if (options[i].group & groups)
			longopts[n++] = (struct option){options[i].name, options[i].arg ? required_argument : no_argument, NULL,
			                                options[i].id};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};
	char help[64];
	snprintf(help, sizeof help, "taskgrad %s --help", cmd);
	opterr = 0;
	optind = 1;
	int c, at;
	/* "+": stop at the first argument that is not an option (an error below), so that argv[at]
	 * is the element getopt_long reads */
	const char *shorts = groups & (CLI_OUTPUT | CLI_SAMPLE) ? "+:hqv" : "+:hv";
	while ((at = optind, c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		if (c == 'q')
			c = O_QUIET;
		else if (c == 'v')
			c = O_VERBOSE;
		if (c == 'h') {
			usage(stdout, groups, cmd, summary);
			*done = 1;
			return 0;
		}
		if (c == ':')
			return fail_usage("option '%s' needs a value (see '%s')", argv[optind - 1], help);
		if (c == '?' || c < O_SCHED || c >= O_LAST)
			return bad_option(longopts, argv, at, help);
		o->given[c - O_SCHED] = 1;
		int rc = apply(o, c, optarg);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return fail_usage("unexpected argument '%s' (see '%s')", argv[optind], help);
	if (o->rt.sched && !tg_sched_policy_valid(o->rt.sched)) {
		char names[4096];
		tg_sched_policy_names(names, sizeof names);
		return fail_usage("--sched: unknown scheduling policy '%s'; StarPU's policies are: %s", o->rt.sched, names);
	}
	return 0;
}

int cli_given(const cli_opts *o, const char *name)
{
	for (int i = 0; i < NOPTIONS; i++)
		if (!strcmp(options[i].name, name))
			return o->given[options[i].id - O_SCHED];
	return 0;
}

int cli_model_config(const cli_opts *o, tg_model_config *c)
{
	const char *arch = o->model ? o->model : "gpt";
	if (tg_model_config_default(c, arch) < 0)
		return fail_usage("--model: %s", tg_last_error());
	if (o->layers > 0)
		c->layers = o->layers;
	if (o->dmodel > 0)
		c->dmodel = o->dmodel;
	if (o->heads > 0)
		c->heads = o->heads;
	if (o->ctx > 0)
		c->ctx = o->ctx;
	c->untied = o->untied;
	c->seed = o->rt.seed;
	if (!strcmp(c->arch, "gpt") && c->dmodel % c->heads != 0)
		return fail_usage("--heads: %d heads do not divide dmodel %d", c->heads, c->dmodel);
	if (o->untied && strcmp(c->arch, "gpt") != 0)
		return fail_usage("--untied: only the gpt model ties its head");
	if (o->heads > 0 && strcmp(c->arch, "gpt") != 0)
		return fail_usage("--heads: the %s model has no attention heads", c->arch);
	if (!strcmp(c->arch, "lstm") && c->ctx > 4096)
		return fail_usage("--ctx: the lstm model unrolls at most 4096 steps, got %d", c->ctx);
	return 0;
}

int cli_init(cli_opts *o)
{
	if (tg_init(&o->rt) < 0)
		return fail_lib(EXIT_USAGE); /* what tg_init refuses is the configuration */
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	if (info.perfmodel_dir_temporary)
		fprintf(stderr,
		        "%s: note: no cache directory is writable ($XDG_CACHE_HOME, $HOME/.cache); StarPU's performance "
		        "models go to %s, removed at the end of the run (set STARPU_HOME to keep them)\n",
		        prog, info.perfmodel_dir);
	return 0;
}
