#!/bin/sh
# test_exports.sh — the shared library exports the functions its public header declares, and
# nothing else (the library is built with hidden visibility; TG_API marks the API).
set -u
lib=${TG_BUILDDIR:-.}/.libs/libtaskgrad.so
headers="${TG_SRCDIR:-.}/runtime/taskgrad.h ${TG_SRCDIR:-.}/runtime/taskgrad_op.h"
[ -f "$lib" ] || { echo "SKIP: no shared library was built ($lib)"; exit 77; }
command -v nm >/dev/null || { echo "FAIL: nm (binutils) is needed"; exit 1; }
failures=0

# every function the headers declare carries TG_API (else it would be hidden); static inline
# helpers of the op kit are compiled into the user's code
unmarked=$(grep -h -E '^[A-Za-z_][A-Za-z0-9_ *]*[ *]tg_[a-z0-9_]+\(' $headers | grep -v '^TG_API ' | grep -v '^static inline ')
if [ -n "$unmarked" ]; then
	echo "FAIL: declared in the public headers without TG_API:"; echo "$unmarked" | sed 's/^/    /'
	failures=$((failures + 1))
fi

declared=$(sed -n 's/^TG_API[^(]*[ *]\(tg_[a-z0-9_]*\)(.*/\1/p' $headers | sort -u)
exported=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' |
	grep -v -x -e _init -e _fini -e __bss_start -e _edata -e _end | sort -u)
[ -n "$declared" ] || { echo "FAIL: no TG_API declaration found in $headers"; exit 1; }

extra=$(printf '%s\n' "$exported" | grep -v -x -F "$declared")
missing=$(printf '%s\n' "$declared" | grep -v -x -F "$exported")
if [ -n "$extra" ]; then
	echo "FAIL: exported but not in the public headers:"; echo "$extra" | sed 's/^/    /'
	failures=$((failures + 1))
fi
if [ -n "$missing" ]; then
	echo "FAIL: in the public headers but not exported:"; echo "$missing" | sed 's/^/    /'
	failures=$((failures + 1))
fi
echo "$(printf '%s\n' "$declared" | wc -l) functions declared, $(printf '%s\n' "$exported" | wc -l) symbols exported"
[ $failures = 0 ]
