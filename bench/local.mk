# bench/: benchmarks that print figures (not run by make check; `make bench` builds them).
EXTRA_PROGRAMS = bench/bench_overhead
bench_bench_overhead_SOURCES = bench/bench_overhead.c
bench_bench_overhead_LDADD = libtaskgrad.la $(STARPU_LIBS)
CLEANFILES += $(EXTRA_PROGRAMS)
bench: $(EXTRA_PROGRAMS)
.PHONY: bench
