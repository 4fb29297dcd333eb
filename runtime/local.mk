# runtime/: init and config, tensors, the tape and autograd, task submission, exports.
include_HEADERS += runtime/taskgrad.h runtime/taskgrad_op.h
libtaskgrad_la_SOURCES += \
	runtime/taskgrad.h runtime/taskgrad_op.h runtime/tg_internal.h runtime/tg_philox.h runtime/tg_starpu.h runtime/tg_check.h \
	runtime/tg_hooks.h \
	runtime/error.c runtime/init.c runtime/env.c runtime/partition.c runtime/tensor.c runtime/rng.c runtime/io.c \
	runtime/graph.c runtime/autograd.c runtime/submit.c runtime/submit_local.c runtime/dot.c runtime/check.c \
	runtime/safetensors.c
