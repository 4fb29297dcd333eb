/* cli.h — what the commands of taskgrad share: the command table's entry, messages and exit
 * codes, number parsing, and the option groups (runtime, model, training, output, sampling)
 * that every command takes the same way. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "taskgrad.h"

#define EXIT_USAGE 2
extern const char *prog;

typedef struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} cli_command;

/* One message "taskgrad: ..." on stderr; returns EXIT_USAGE. */
int fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "taskgrad: <the library's last error>"; returns code. */
int fail_lib(int code);

int parse_int(const char *opt, const char *s, long min, long max, int *out);
int parse_u64(const char *opt, const char *s, uint64_t *out);
int parse_float(const char *opt, const char *s, double min, double max, int max_open, float *out);
int check_output_path(const char *opt, const char *path);

/* Option groups. A command names the groups it takes; cli_parse builds getopt's table from
 * them, applies each option to the one cli_opts, and prints the usage from the same table. */
enum {
	CLI_RUNTIME = 1 << 0, /* --sched --ncpu --ncuda --fast --seed --tile-rows --verbose */
	CLI_MODEL = 1 << 1,   /* --model --layers --dmodel --heads --ctx --untied */
	CLI_TRAIN = 1 << 2,   /* --data --batch --steps --lr --warmup --weight-decay --clip --eval-every ... */
	CLI_OUTPUT = 1 << 3,  /* --checkpoint --checkpoint-every --resume --init --log --dump-grads --graph --quiet */
	CLI_SAMPLE = 1 << 4,  /* --checkpoint --prompt --tokens --temperature --top-k */
};

typedef struct cli_opts {
	tg_config rt;
	int quiet;
	/* model flags as given (-1: not given) */
	const char *model;
	int layers, dmodel, heads, ctx, untied;
	tg_train_config train;
	const char *data;
	const char *checkpoint, *resume, *init, *log, *dump_grads, *graph;
	int checkpoint_every;
	const char *prompt;
	int tokens, top_k;
	float temperature;
	int given[64];           /* option ids given (cli_given) */
} cli_opts;

/* Parse argv (argv[0] is the command) with the given groups; 0, or an exit code (0 after
 * --help: *done is set). */
int cli_parse(int argc, char **argv, unsigned groups, const char *cmd, const char *summary, cli_opts *o, int *done);
/* 1 if the option --name was given. */
int cli_given(const cli_opts *o, const char *name);
/* The model configuration: --model's defaults, then the flags given. */
int cli_model_config(const cli_opts *o, tg_model_config *c);
/* Start the runtime as the runtime group says; prints the library's message and returns an
 * exit code on failure. */
int cli_init(cli_opts *o);

#endif /* TG_CLI_H */
