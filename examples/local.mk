# examples/: programs that use taskgrad the way users do (public header only); run as tests.
check_PROGRAMS += examples/custom_op
examples_custom_op_SOURCES = examples/custom_op.c
examples_custom_op_LDADD = libtaskgrad.la $(STARPU_LIBS) -lm
TESTS += examples/custom_op
