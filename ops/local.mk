# ops/: one op = ops/NAME.c (CPU kernels, codelets, submission, backward rule) + ops/NAME.cu;
# the elementwise family is one row each in ops/elementwise.def. The list of ops is ops/ops.def.
libtaskgrad_la_SOURCES += ops/tg_ops.h ops/tg_kernels.h ops/tg_math.h ops/tg_cuda.h ops/registry.c \
	ops/matmul.c ops/add.c ops/softmax_xent.c ops/sgd.c ops/elementwise.c \
	ops/embedding.c ops/pos_add.c ops/layernorm.c ops/softmax.c ops/attention.c ops/lstm_cell.c ops/slice_cols.c \
	ops/concat_cols.c ops/transpose.c ops/bias_gelu.c ops/dropout.c ops/sum.c ops/adamw.c ops/clip_grad_norm.c
TG_CUDA_SOURCES += ops/cuda_report.cu ops/matmul.cu ops/add.cu ops/softmax_xent.cu ops/sgd.cu ops/elementwise.cu \
	ops/embedding.cu ops/pos_add.cu ops/layernorm.cu ops/softmax.cu ops/attention.cu ops/lstm_cell.cu ops/slice_cols.cu \
	ops/concat_cols.cu ops/transpose.cu ops/bias_gelu.cu ops/dropout.cu ops/sum.cu ops/adamw.cu ops/clip_grad_norm.cu
EXTRA_DIST += ops/ops.def ops/elementwise.def

# make vec-report: what the vectoriser did with each op file's loops (every kernel's inner
# loop should say "loop vectorized", once per instruction set it is cloned for).
vec-report:
	@for f in $(libtaskgrad_la_SOURCES); do case $$f in ops/*.c) ;; *) continue ;; esac; \
		echo "== $$f"; \
		$(COMPILE) $(libtaskgrad_la_CPPFLAGS) $(libtaskgrad_la_CFLAGS) -fopt-info-vec-optimized -c $(top_srcdir)/$$f -o vec-report.o 2>&1 | \
			grep "loop vectorized" | sed 's/^.*ops\///; s/: optimized: / /' | sort | uniq -c; \
	done; rm -f vec-report.o
.PHONY: vec-report
