# tools/: the taskgrad command, and the scripts of the README's two commands.
bin_PROGRAMS += taskgrad
taskgrad_SOURCES = tools/taskgrad.c
taskgrad_LDADD = libtaskgrad.la
EXTRA_DIST += tools/build-starpu-cuda tools/dev
