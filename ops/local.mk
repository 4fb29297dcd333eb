# ops/: one op = ops/NAME.c (CPU kernels, codelets, submission, backward rule) + ops/NAME.cu.
# The list of ops is ops/ops.def.
libtaskgrad_la_SOURCES += ops/tg_ops.h ops/tg_cuda.h ops/registry.c \
	ops/matmul.c ops/add.c ops/relu.c ops/softmax_xent.c ops/sgd.c
TG_CUDA_SOURCES += ops/cuda_report.cu ops/matmul.cu ops/add.cu ops/relu.cu ops/softmax_xent.cu ops/sgd.cu
EXTRA_DIST += ops/ops.def
