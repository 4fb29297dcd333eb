# tools/: the taskgrad command, and the scripts of the README's two commands.
bin_PROGRAMS += taskgrad
taskgrad_SOURCES = tools/taskgrad.c tools/cli.h tools/cli.c tools/cmd_train.c tools/cmd_sample.c tools/cmd_info.c
taskgrad_LDADD = libtaskgrad.la
EXTRA_DIST += tools/build-starpu-cuda tools/dev
