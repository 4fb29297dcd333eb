/* taskgrad — the command line: parse, call the library, print. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskgrad.h"

#define EXIT_USAGE 2

static const char *prog = "taskgrad";

static void usage_main(FILE *f)
{
	fprintf(f,
	        "Usage: taskgrad COMMAND [OPTIONS]\n"
	        "Train neural networks as StarPU task graphs.\n\n"
	        "Commands:\n"
	        "  train      train a model and print its loss and accuracy\n"
	        "  policies   list StarPU's scheduling policies\n"
	        "  ops        list the built-in ops\n\n"
	        "Options:\n"
	        "  -h, --help     show this help (taskgrad COMMAND --help for a command's options)\n"
	        "  -V, --version  show the version\n");
}

static void usage_train(FILE *f)
{
	fprintf(f,
	        "Usage: taskgrad train [OPTIONS]\n"
	        "Train a model; every forward, backward and update op is a StarPU task.\n\n"
	        "  --model NAME      model to train: mlp (two hidden ReLU layers, on the two-spirals set)\n"
	        "  --sched POLICY    StarPU scheduling policy (default: STARPU_SCHED if set, else lws);\n"
	        "                    see 'taskgrad policies'\n"
	        "  --steps N         optimizer steps (default 1500)\n"
	        "  --batch N         rows per step (default 128)\n"
	        "  --lr X            learning rate (default 0.1)\n"
	        "  --momentum X      SGD momentum in [0, 1) (default 0.9)\n"
	        "  --hidden N        width of the hidden layers (default 64)\n"
	        "  --seed N          seed of the data and the weights (default 1)\n"
	        "  --ncpu N          CPU workers (default: StarPU's, all cores)\n"
	        "  --ncuda N         CUDA workers (default: StarPU's, all GPUs)\n"
	        "  --graph FILE      write the task graph (Graphviz DOT) of one training step to FILE\n"
	        "  --graph-step N    the step whose graph is written (default 0)\n"
	        "  --log-every N     print the loss every N steps (default 100; 0: only the last)\n"
	        "  --fast            let accumulations commute (not bit-reproducible across policies)\n"
	        "  -q, --quiet       print only the final result\n"
	        "  -v, --verbose     show StarPU's own messages (calibration, warnings) on stderr, even\n"
	        "                    under STARPU_SILENT=1\n"
	        "  -h, --help        show this help\n");
}

static int fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	return EXIT_USAGE;
}

/* What getopt_long refused in argv[at] (the element it was reading when it returned '?'):
 * one message that names the option and says what is wrong with it. */
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

/* Whole numbers in [min, max], nothing else (no blanks, no trailing text). */
static int parse_int(const char *opt, const char *s, long min, long max, int *out)
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

static int parse_u64(const char *opt, const char *s, uint64_t *out)
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
static int parse_float(const char *opt, const char *s, double min, double max, int max_open, float *out)
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
static int check_output_path(const char *opt, const char *path)
{
	if (tg_file_check_writable(path) < 0)
		return fail_usage("%s: %s", opt, tg_last_error());
	return 0;
}

static int cmd_policies(void)
{
	char names[4096];
	if (tg_sched_policy_names(names, sizeof names) < 0) {
		fprintf(stderr, "%s: %s\n", prog, tg_last_error());
		return 1;
	}
	for (char *p = strtok(names, ", "); p; p = strtok(NULL, ", "))
		printf("%s\n", p);
	return 0;
}

static int cmd_ops(void)
{
	int width = 0;
	for (int i = 0; i < tg_ops_builtin_count(); i++) {
		int n = (int)strlen(tg_ops_builtin(i)->name);
		width = n > width ? n : width;
	}
	for (int i = 0; i < tg_ops_builtin_count(); i++) {
		const tg_op_desc *op = tg_ops_builtin(i);
		printf("%-*s  %s\n", width, op->name, op->doc ? op->doc : "");
	}
	return 0;
}

enum {
	OPT_MODEL = 256, OPT_SCHED, OPT_STEPS, OPT_BATCH, OPT_LR, OPT_MOMENTUM, OPT_HIDDEN, OPT_SEED, OPT_NCPU,
	OPT_NCUDA, OPT_GRAPH, OPT_GRAPH_STEP, OPT_LOG_EVERY, OPT_FAST
};

/* The one note taskgrad prints when StarPU's performance models cannot go to a cache. */
static void note_perfmodel_dir(const tg_runtime_info *info)
{
	if (info->perfmodel_dir_temporary)
		fprintf(stderr,
		        "%s: note: no cache directory is writable ($XDG_CACHE_HOME, $HOME/.cache); StarPU's performance "
		        "models go to %s, removed at the end of the run (set STARPU_HOME to keep them)\n",
		        prog, info->perfmodel_dir);
}

static int cmd_train(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"model", required_argument, NULL, OPT_MODEL},
		{"sched", required_argument, NULL, OPT_SCHED},
		{"steps", required_argument, NULL, OPT_STEPS},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"lr", required_argument, NULL, OPT_LR},
		{"momentum", required_argument, NULL, OPT_MOMENTUM},
		{"hidden", required_argument, NULL, OPT_HIDDEN},
		{"seed", required_argument, NULL, OPT_SEED},
		{"ncpu", required_argument, NULL, OPT_NCPU},
		{"ncuda", required_argument, NULL, OPT_NCUDA},
		{"graph", required_argument, NULL, OPT_GRAPH},
		{"graph-step", required_argument, NULL, OPT_GRAPH_STEP},
		{"log-every", required_argument, NULL, OPT_LOG_EVERY},
		{"fast", no_argument, NULL, OPT_FAST},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	tg_config cfg;
	tg_config_default(&cfg);
	tg_train_opts o;
	tg_train_opts_default(&o);
	o.log = stdout;
	const char *model = "mlp";
	int quiet = 0, rc = 0;
	opterr = 0;
	optind = 1;
	int c, at = optind;
	/* "+": stop at the first argument that is not an option (it is an error below), so that
	 * argv[at] is the element getopt_long reads */
	while ((at = optind, c = getopt_long(argc, argv, "+:qvh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_MODEL: model = optarg; break;
		case OPT_SCHED: cfg.sched = optarg; break;
		case OPT_STEPS: rc = parse_int("--steps", optarg, 1, INT_MAX, &o.steps); break;
		case OPT_BATCH: rc = parse_int("--batch", optarg, 1, INT_MAX, &o.batch); break;
		case OPT_LR: rc = parse_float("--lr", optarg, 0, 1e6, 0, &o.lr); break;
		case OPT_MOMENTUM: rc = parse_float("--momentum", optarg, 0, 1, 1, &o.momentum); break;
		case OPT_HIDDEN: rc = parse_int("--hidden", optarg, 1, 1 << 20, &o.hidden); break;
		case OPT_SEED: rc = parse_u64("--seed", optarg, &o.seed); break;
		case OPT_NCPU: rc = parse_int("--ncpu", optarg, 0, 4096, &cfg.ncpu); break;
		case OPT_NCUDA: rc = parse_int("--ncuda", optarg, 0, 64, &cfg.ncuda); break;
		case OPT_GRAPH: o.graph_path = optarg; break;
		case OPT_GRAPH_STEP: rc = parse_int("--graph-step", optarg, 0, INT_MAX, &o.graph_step); break;
		case OPT_LOG_EVERY: rc = parse_int("--log-every", optarg, 0, INT_MAX, &o.log_every); break;
		case OPT_FAST: cfg.deterministic = 0; break;
		case 'q': quiet = 1; break;
		case 'v': cfg.verbose = 1; break;
		case 'h': usage_train(stdout); return 0;
		case ':': return fail_usage("option '%s' needs a value (see 'taskgrad train --help')", argv[optind - 1]);
		default: return bad_option(longopts, argv, at, "taskgrad train --help");
		}
		if (rc)
			return rc;
	}
	if (optind < argc)
		return fail_usage("unexpected argument '%s' (see 'taskgrad train --help')", argv[optind]);
	if (strcmp(model, "mlp") != 0)
		return fail_usage("--model: unknown model '%s' (available: mlp)", model);
	if (o.lr <= 0)
		return fail_usage("--lr: must be > 0, got %g", (double)o.lr);
	if (o.graph_step >= o.steps)
		return fail_usage("--graph-step: %d is not one of the %d steps", o.graph_step, o.steps);
	if (o.graph_path && (rc = check_output_path("--graph", o.graph_path)))
		return rc;
	if (cfg.sched && !tg_sched_policy_valid(cfg.sched)) {
		char names[4096];
		tg_sched_policy_names(names, sizeof names);
		return fail_usage("--sched: unknown scheduling policy '%s'; StarPU's policies are: %s", cfg.sched, names);
	}
	cfg.seed = o.seed;
	if (quiet)
		o.log = NULL;

	if (tg_init(&cfg) < 0) {
		fprintf(stderr, "%s: %s\n", prog, tg_last_error());
		return EXIT_USAGE; /* what tg_init refuses is the configuration */
	}
	tg_runtime_info info;
	tg_runtime_get_info(&info);
	note_perfmodel_dir(&info);
	if (!quiet)
		printf("taskgrad %s: StarPU %s, policy %s, %d CPU + %d CUDA workers, %s mode\n"
		       "model mlp (2 -> %d -> %d -> 2), two-spirals set, %d steps of batch %d, lr %g, momentum %g, seed %llu\n",
		       TG_VERSION_STRING, info.starpu_version, info.sched, info.ncpu, info.ncuda,
		       info.deterministic ? "deterministic" : "fast", o.hidden, o.hidden, o.steps, o.batch, (double)o.lr,
		       (double)o.momentum, (unsigned long long)o.seed);
	tg_train_result res;
	rc = tg_train_mlp_spirals(&o, &res);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, tg_last_error());
		tg_shutdown();
		return rc == TG_EINVAL ? EXIT_USAGE : 1; /* an option the trainer refused, or a failure */
	}
	printf("final loss %.4f, test accuracy %.1f%% (1000 points), %d steps in %.2f s (%.0f steps/s)\n",
	       (double)res.final_loss, 100.0 * res.accuracy, o.steps, res.seconds, o.steps / res.seconds);
	if (o.graph_path)
		printf("graph of step %d: %s (%d tasks, %d dependencies)\n", o.graph_step, o.graph_path, res.graph_nodes,
		       res.graph_edges);
	free(res.losses);
	if (tg_shutdown() < 0) {
		fprintf(stderr, "%s: %s\n", prog, tg_last_error());
		return 1;
	}
	return 0;
}

static int run_command(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("taskgrad %s (StarPU %s%s)\n", TG_VERSION_STRING, TG_STARPU_VERSION,
#ifdef TG_USE_CUDA
		       ", CUDA"
#else
		       ", no CUDA"
#endif
		);
		return 0;
	}
	if (!strcmp(cmd, "train"))
		return cmd_train(argc - 1, argv + 1);
	if (!strcmp(cmd, "policies") || !strcmp(cmd, "ops")) {
		if (argc > 2)
			return fail_usage("%s takes no arguments", cmd);
		return !strcmp(cmd, "ops") ? cmd_ops() : cmd_policies();
	}
	if (cmd[0] == '-')
		return fail_usage("unknown option '%s' (see 'taskgrad --help')", cmd);
	return fail_usage("unknown command '%s' (see 'taskgrad --help')", cmd);
}

int main(int argc, char **argv)
{
	int rc = run_command(argc, argv);
	/* What was printed must have reached its file: `taskgrad ... > /dev/full` is a failure. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: writing the standard output failed: %s\n", prog, strerror(errno ? errno : EIO));
		return rc ? rc : 1;
	}
	return rc;
}
