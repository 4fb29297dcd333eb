/* taskgrad — the command line: a table of commands, one file per command (tools/cmd_*.c),
 * option groups shared by all of them (tools/cli.c). */
#include "cli.h"

#include <errno.h>
#include <string.h>

int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_policies(int argc, char **argv);
int cmd_ops(int argc, char **argv);

static const cli_command commands[] = {
	{"train", cmd_train, "train a model (gpt, lstm on a text file; mlp on the two spirals)"},
	{"sample", cmd_sample, "continue a prompt with a trained language model"},
	{"policies", cmd_policies, "list StarPU's scheduling policies"},
	{"ops", cmd_ops, "list the built-in ops"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage_main(FILE *f)
{
	fprintf(f, "Usage: taskgrad COMMAND [OPTIONS]\nTrain neural networks as StarPU task graphs.\n\nCommands:\n");
	for (int i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
	           "  -h, --help     show this help (taskgrad COMMAND --help for a command's options)\n"
	           "  -V, --version  show the version\n");
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
		if (argc > 2)
			return fail_usage("%s takes no arguments, got '%s'", cmd, argv[2]);
		printf("taskgrad %s (StarPU %s%s)\n", TG_VERSION_STRING, TG_STARPU_VERSION,
#ifdef TG_USE_CUDA
		       ", CUDA"
#else
		       ", no CUDA"
#endif
		);
		return 0;
	}
	for (int i = 0; i < NCOMMANDS; i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
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
