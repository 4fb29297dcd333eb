/* cmd_info.c — taskgrad policies and taskgrad ops: what this build offers. */
#include "cli.h"

#include <string.h>

static int help(const char *cmd, const char *what)
{
	printf("Usage: taskgrad %s\n%s\n", cmd, what);
	return 0;
}

int cmd_policies(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return help("policies", "List the scheduling policies of the StarPU taskgrad runs on.");
	if (argc > 1)
		return fail_usage("policies takes no arguments, got '%s'", argv[1]);
	char names[4096];
	if (tg_sched_policy_names(names, sizeof names) < 0)
		return fail_lib(1);
	for (char *p = strtok(names, ", "); p; p = strtok(NULL, ", "))
		printf("%s\n", p);
	return 0;
}

int cmd_ops(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return help("ops", "List the built-in ops, each with what it computes.");
	if (argc > 1)
		return fail_usage("ops takes no arguments, got '%s'", argv[1]);
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
