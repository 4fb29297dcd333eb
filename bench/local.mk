# bench/: benchmarks that print figures (not run by make check; `make bench` builds them).
EXTRA_PROGRAMS = bench/bench_overhead bench/bench_ops bench/bench_train
bench_bench_overhead_SOURCES = bench/bench_overhead.c
bench_bench_overhead_LDADD = libtaskgrad.la $(STARPU_LIBS)
# bench_ops times the kernels themselves (ops/tg_kernels.h), which the shared library does not
# export: it links libtaskgrad's static archive (libtool's -static links uninstalled libtool
# libraries statically; it needs the static library, built unless --disable-static). Its
# peer loops are compiled with the library's vectoriser flags.
bench_bench_ops_SOURCES = bench/bench_ops.c
bench_bench_ops_CFLAGS = $(AM_CFLAGS) $(TG_VECTOR_CFLAGS)
bench_bench_ops_LDFLAGS = $(AM_LDFLAGS) -static
bench_bench_ops_LDADD = libtaskgrad.la $(STARPU_LIBS) $(BLAS_LIBS) -lpthread -lm
# bench_train: training throughput of the models; bench/compare-torch runs the same in PyTorch,
# bench/parallel runs it over the parallel strategies, policies and worker counts
bench_bench_train_SOURCES = bench/bench_train.c
bench_bench_train_LDADD = libtaskgrad.la $(STARPU_LIBS) $(BLAS_LIBS)
EXTRA_DIST += bench/compare-torch bench/compare_torch.py bench/parallel
CLEANFILES += $(EXTRA_PROGRAMS)
bench: $(EXTRA_PROGRAMS)
.PHONY: bench
