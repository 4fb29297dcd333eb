#!/bin/sh
# test_cli.sh — the taskgrad command: help and version, a short training run with its graph,
# and bad input: one clear message naming the problem, exit code 2, nothing half-written.
set -u
tg=${TG_BUILDDIR:-.}/taskgrad
tmp=${TG_BUILDDIR:-.}/tests/cli-tmp
rm -rf "$tmp" && mkdir -p "$tmp" || exit 99
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE PATTERN ARGS...: exit code CODE and, for errors, exactly one line on stderr
# that contains PATTERN.
expect() {
	code=$1 pattern=$2
	shift 2
	"$tg" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" != "$code" ]; then
		fail "taskgrad $*: exit $rc, expected $code"; sed 's/^/    /' "$tmp/err"; return
	fi
	if [ "$code" != 0 ]; then
		lines=$(wc -l < "$tmp/err")
		[ "$lines" = 1 ] || { fail "taskgrad $*: $lines lines on stderr, expected one"; sed 's/^/    /' "$tmp/err"; }
		grep -q -e "$pattern" "$tmp/err" || fail "taskgrad $*: stderr lacks '$pattern': $(cat "$tmp/err")"
	elif [ -n "$pattern" ]; then
		grep -q -e "$pattern" "$tmp/out" || fail "taskgrad $*: stdout lacks '$pattern'"
	fi
	echo "ok: taskgrad $* -> $rc"
}

expect 0 "Usage: taskgrad COMMAND" --help
expect 0 "^taskgrad [0-9]" --version
expect 0 "--graph FILE" train --help
expect 0 "^eager$" policies
expect 0 "^matmul " ops
expect 2 "unknown command 'frobnicate'" frobnicate
expect 2 "unknown option '--bogus'" --bogus
expect 2 "unknown option '--bogus'" train --bogus
expect 2 "unexpected argument 'extra'" train extra
expect 2 "ops takes no arguments" ops extra
expect 2 "--steps: 'abc' is not a whole number" train --steps abc
expect 2 "--steps: must not be negative" train --steps -5
expect 2 "--steps: must be between 1" train --steps 0
expect 2 "--steps: '99999999999999999999' is not a whole number" train --steps 99999999999999999999
expect 2 "--batch: '1.5' is not a whole number" train --batch 1.5
expect 2 "--lr: must not be negative" train --lr -0.1
expect 2 "--lr: 'nan' is not a finite number" train --lr nan
expect 2 "--lr: must be > 0" train --lr 0
expect 2 "--momentum: must be in \[0, 1)" train --momentum 1
expect 2 "--seed: '-1' is not a non-negative whole number" train --seed -1
expect 2 "--ncpu: must not be negative" train --ncpu -1
expect 2 "--seed: ' 1' is not a non-negative whole number" train --seed " 1"
expect 2 "--steps: ' 5' is not a whole number" train --steps " 5"
expect 2 "--momentum: must be in \[0, 1)" train --momentum 0.99999999999
expect 2 "asked for 4096 CPU workers but StarPU can start only" train --ncpu 4096 --steps 5
expect 2 "--graph-step: 10 is not one of the 10 steps" train --steps 10 --graph-step 10
expect 2 "option '--graph' needs a value" train --graph
expect 2 "--model: unknown model 'gpt'" train --model gpt
expect 2 "unknown scheduling policy 'nosuch'.*dmda" train --sched nosuch
expect 2 "folder 'no-such-dir' does not exist" train --graph no-such-dir/step.dot
expect 2 "is a directory" train --graph "$tmp"
STARPU_SCHED=eager expect 2 "conflicts with STARPU_SCHED=eager" train --sched dmda --steps 5
expect 2 "batch size 5000 is larger than the training set" train --batch 5000 --steps 5
expect 1 "training diverged" train --lr 10000 --steps 300 -q

# nothing half-written: a failing run leaves an existing output alone
echo "previous graph" > "$tmp/step.dot"
expect 2 "not a whole number" train --steps x --graph "$tmp/step.dot"
[ "$(cat "$tmp/step.dot")" = "previous graph" ] || fail "a failed run changed the existing graph file"
expect 1 "training diverged" train --lr 10000 --steps 300 -q --graph "$tmp/step.dot" --graph-step 0
[ "$(cat "$tmp/step.dot")" = "previous graph" ] || fail "a diverged run replaced the existing graph file"

# a real run: it learns, and its graph renders
expect 0 "test accuracy" train --sched eager --steps 300 --graph "$tmp/step.dot" --ncpu 1
grep -q "graph of step 0: .*step.dot (29 tasks" "$tmp/out" || fail "the run did not report its graph: $(cat "$tmp/out")"
if command -v dot >/dev/null; then
	dot -Tsvg "$tmp/step.dot" -o "$tmp/step.svg" || fail "dot cannot render the graph"
else
	fail "Graphviz's dot is not installed (apt-get install graphviz)"
fi
ls "$tmp"/step.dot.tmp.* >/dev/null 2>&1 && fail "a temporary file was left behind"

[ $failures = 0 ] || { echo "$failures failure(s)"; exit 1; }
exit 0
