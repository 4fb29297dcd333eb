# tests/: CMocka programs and shell tests under automake's parallel driver (exit 77 = SKIP).
# Every test runs with its own StarPU home inside the build tree (perfmodels never leak into
# ~/.starpu) and hwloc's PCI plugin off (its leak is not ours). STARPU_SILENT is unset: the
# library keeps StarPU quiet by itself, and the tests check that it does.
# In the sanitizer build, leaks that are StarPU's own are suppressed (tests/lsan.supp); the
# slow unwinder is needed to see the StarPU frames that the suppressions name.
AM_TESTS_ENVIRONMENT = \
	STARPU_HOME=$(abs_top_builddir)/tests/starpu-home; export STARPU_HOME; \
	unset STARPU_SILENT; \
	HWLOC_PLUGINS_BLACKLIST=hwloc_pci; export HWLOC_PLUGINS_BLACKLIST; \
	LSAN_OPTIONS=suppressions=$(abs_top_srcdir)/tests/lsan.supp:print_suppressions=0; export LSAN_OPTIONS; \
	ASAN_OPTIONS=fast_unwind_on_malloc=0; export ASAN_OPTIONS; \
	OMP_NUM_THREADS=1; export OMP_NUM_THREADS; \
	unset STARPU_SCHED STARPU_NCPU STARPU_NCPUS STARPU_NCUDA; \
	TG_BUILDDIR=$(abs_top_builddir); export TG_BUILDDIR; \
	TG_SRCDIR=$(abs_top_srcdir); export TG_SRCDIR;

if TG_HAVE_CMOCKA
TG_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
TG_TEST_LDADD = libtaskgrad.la $(CMOCKA_LIBS) -lm

check_PROGRAMS += tests/test_ops_cpu tests/test_ops_cuda tests/test_runtime tests/test_graph tests/test_mlp \
	tests/test_determinism tests/test_policies tests/test_partition tests/test_math tests/test_safetensors \
	tests/test_train tests/test_models tests/test_parallel
tests_test_ops_cpu_SOURCES = tests/test_ops.c tests/op_cases.c tests/op_cases.h tests/tg_test.h
tests_test_ops_cpu_CPPFLAGS = $(AM_CPPFLAGS) -DTG_TEST_BACKEND=TG_BACKEND_CPU
tests_test_ops_cpu_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_ops_cpu_LDADD = $(TG_TEST_LDADD)
tests_test_ops_cuda_SOURCES = tests/test_ops.c tests/op_cases.c tests/op_cases.h tests/tg_test.h
tests_test_ops_cuda_CPPFLAGS = $(AM_CPPFLAGS) -DTG_TEST_BACKEND=TG_BACKEND_CUDA
tests_test_ops_cuda_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_ops_cuda_LDADD = $(TG_TEST_LDADD)
# the random generator's known answers are checked on its internal function: a copy of it
tests_test_runtime_SOURCES = tests/test_runtime.c tests/tg_test.h runtime/rng.c
tests_test_runtime_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_runtime_LDADD = $(TG_TEST_LDADD)
tests_test_graph_SOURCES = tests/test_graph.c tests/tg_test.h
tests_test_graph_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_graph_LDADD = $(TG_TEST_LDADD)
tests_test_mlp_SOURCES = tests/test_mlp.c tests/tg_test.h
tests_test_mlp_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_mlp_LDADD = $(TG_TEST_LDADD)
tests_test_determinism_SOURCES = tests/test_determinism.c tests/tg_test.h
tests_test_determinism_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_determinism_LDADD = $(TG_TEST_LDADD)
tests_test_partition_SOURCES = tests/test_partition.c tests/tg_test.h
tests_test_partition_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_partition_LDADD = $(TG_TEST_LDADD)
tests_test_safetensors_SOURCES = tests/test_safetensors.c tests/tg_test.h
tests_test_safetensors_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_safetensors_LDADD = $(TG_TEST_LDADD)
tests_test_parallel_SOURCES = tests/test_parallel.c tests/tg_test.h
tests_test_parallel_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_parallel_LDADD = $(TG_TEST_LDADD) $(STARPU_LIBS)
tests_test_train_SOURCES = tests/test_train.c tests/tg_test.h
tests_test_train_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_train_LDADD = $(TG_TEST_LDADD)
# the models against a double-precision implementation written apart from the ops
tests_test_models_SOURCES = tests/test_models.c tests/ref_models.c tests/ref_models.h tests/tg_test.h
tests_test_models_CFLAGS = $(TG_TEST_CFLAGS)
tests_test_models_LDADD = $(TG_TEST_LDADD)
# the scalar functions of the CPU kernels (ops/tg_math.h), compiled with the kernels' flags
tests_test_math_SOURCES = tests/test_math.c
tests_test_math_CFLAGS = $(TG_TEST_CFLAGS) $(TG_VECTOR_CFLAGS)
tests_test_math_LDADD = $(CMOCKA_LIBS) -lm
tests_test_policies_SOURCES = tests/test_policies.c
tests_test_policies_LDADD = libtaskgrad.la
TESTS += tests/test_ops_cpu tests/test_ops_cuda tests/test_runtime tests/test_graph tests/test_mlp \
	tests/test_determinism tests/test_policies tests/test_partition tests/test_math tests/test_safetensors \
	tests/test_train tests/test_models tests/test_parallel
else
check-local:
	@echo "make check needs CMocka (libcmocka-dev); configure did not find it" >&2; exit 1
endif

# the double-precision reference models (GPT-2, LSTM) checked by themselves: no library, no CMocka
check_PROGRAMS += tests/test_ref_models
tests_test_ref_models_SOURCES = tests/test_ref_models.c tests/ref_models.c tests/ref_models.h
tests_test_ref_models_LDADD = -lm
TESTS += tests/test_ref_models

TESTS += tests/test_cli.sh tests/test_exports.sh
EXTRA_DIST += tests/test_cli.sh tests/test_exports.sh tests/lsan.supp
