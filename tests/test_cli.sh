#!/bin/sh
# test_cli.sh — the taskgrad command: help and version, a short training run with its graph,
# and bad input: one clear message naming the problem, exit code 2, nothing half-written.
# StarPU's own messages never reach the terminal unless asked for (--verbose), also on a
# first run in a fresh HOME; this test does not silence StarPU itself.
set -u
unset STARPU_SILENT
tg=${TG_BUILDDIR:-.}/taskgrad
tmp=${TG_BUILDDIR:-.}/tests/cli-tmp
rm -rf "$tmp" && mkdir -p "$tmp" || exit 99
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE PATTERN [VAR=VALUE...] ARGS...: taskgrad ARGS, with the variables VAR=VALUE in
# its environment only (passed through env, so that nothing leaks into this shell or later
# runs), exits with CODE and, for errors, prints exactly one line on stderr that contains
# PATTERN; a success prints nothing on stderr.
expect() {
	code=$1 pattern=$2
	shift 2
	label=$*
	# rebuild the arguments as: VAR=VALUE... "$tg" ARGS..., for env
	n=$# i=0 k=0 placed=
	for a in "$@"; do
		case $a in [A-Z_]*=*) [ $k = $i ] && k=$((k + 1)) ;; esac
		i=$((i + 1))
	done
	i=0
	for a in "$@"; do
		[ $i = $k ] && set -- "$@" "$tg" && placed=1
		set -- "$@" "$a"
		i=$((i + 1))
	done
	[ -n "$placed" ] || set -- "$@" "$tg"
	shift $n
	env "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" != "$code" ]; then
		fail "taskgrad $label: exit $rc, expected $code"; sed 's/^/    /' "$tmp/err"; return
	fi
	if [ "$code" != 0 ]; then
		lines=$(wc -l < "$tmp/err")
		[ "$lines" = 1 ] || { fail "taskgrad $label: $lines lines on stderr, expected one"; sed 's/^/    /' "$tmp/err"; }
		grep -q -e "$pattern" "$tmp/err" || fail "taskgrad $label: stderr lacks '$pattern': $(cat "$tmp/err")"
	else
		grep -v '^step [0-9]' "$tmp/err" | grep -q . && { fail "taskgrad $label: a success printed on stderr:"; sed 's/^/    /' "$tmp/err"; }
		[ -z "$pattern" ] || grep -q -e "$pattern" "$tmp/out" || fail "taskgrad $label: stdout lacks '$pattern'"
	fi
	echo "ok: taskgrad $label -> $rc"
}

expect 0 "Usage: taskgrad COMMAND" --help
expect 0 "^taskgrad [0-9]" --version
expect 0 "--graph FILE.dot" train --help
expect 0 "^Model:" train --help
expect 0 "--top-k K" sample --help
expect 0 "^eager$" policies
expect 0 "^matmul " ops
expect 0 "^attention " ops
expect 0 "^clip_grad_norm  clip" ops
expect 2 "unknown command 'frobnicate'" frobnicate
expect 2 "unknown option '--bogus'" --bogus
expect 2 "unknown option '--bogus'" train --model mlp --bogus
expect 2 "unexpected argument 'extra'" train --model mlp extra
expect 2 "option '--s' is ambiguous: it could be --steps, --schedule, --sched, --seed" train --model mlp --s 5
expect 2 "option '--ch' is ambiguous: it could be --checkpoint, --checkpoint-every" train --model mlp --ch x
expect 2 "unknown option '-z'" train --model mlp -qz
expect 2 "unknown option '-z'" train --model mlp -zq
expect 2 "option '--fast' takes no value, got '--fast=1'" train --model mlp --fast=1
expect 2 "option '--quiet' takes no value" train --model mlp --quiet=yes
expect 2 "ops takes no arguments" ops extra
expect 2 "--steps: 'abc' is not a whole number" train --model mlp --steps abc
expect 2 "--steps: must not be negative" train --model mlp --steps -5
expect 2 "--steps 0 trains nothing: give --checkpoint FILE" train --model mlp --steps 0
expect 2 "--steps: '99999999999999999999' is not a whole number" train --model mlp --steps 99999999999999999999
expect 2 "--batch: '1.5' is not a whole number" train --model mlp --batch 1.5
expect 2 "--lr: must not be negative" train --model mlp --lr -0.1
expect 2 "--lr: 'nan' is not a finite number" train --model mlp --lr nan
expect 2 "--lr: must be > 0" train --model mlp --lr 0
expect 2 "--weight-decay: must not be negative" train --model mlp --weight-decay -1
expect 2 "--seed: '-1' is not a non-negative whole number" train --model mlp --seed -1
expect 2 "--ncpu: must not be negative" train --model mlp --ncpu -1
expect 2 "--seed: ' 1' is not a non-negative whole number" train --model mlp --seed " 1"
expect 2 "--steps: ' 5' is not a whole number" train --model mlp --steps " 5"
expect 2 "--clip: 'inf' is not a finite number" train --model mlp --clip inf
expect 2 "asked for 4096 CPU workers, but .* at most" train --model mlp --ncpu 4096 --steps 5
expect 2 "STARPU_NCPU=4096 asks for 4096 CPU workers, but .* at most" STARPU_NCPU=4096 train --model mlp --steps 5
expect 2 "STARPU_NCPU='abc' in the environment is not a whole number" STARPU_NCPU=abc train --model mlp --steps 5
expect 2 "STARPU_NCPU=-1 in the environment must be between 0" STARPU_NCPU=-1 train --model mlp --steps 5
expect 2 "STARPU_NCPUS='x'" STARPU_NCPUS=x train --model mlp --steps 5
expect 2 "STARPU_NCUDA=-3" STARPU_NCUDA=-3 train --model mlp --steps 5
expect 2 "STARPU_CALIBRATE='yes'" STARPU_CALIBRATE=yes train --model mlp --steps 5
expect 2 "STARPU_SCHED_ALPHA='fast' in the environment is not a number (StarPU would abort on it)" STARPU_SCHED_ALPHA=fast train --model mlp --steps 5
expect 2 "STARPU_NTHREADS_PER_CORE=0 in the environment must be" STARPU_NTHREADS_PER_CORE=0 train --model mlp --steps 5
expect 2 "STARPU_NTHREADS_PER_CORE=1024 in the environment must be" STARPU_NTHREADS_PER_CORE=1024 train --model mlp --steps 5
expect 2 "STARPU_MAIN_THREAD_CPUID=2147483647 in the environment names CPU 2147483647, which this machine does not have" STARPU_MAIN_THREAD_CPUID=2147483647 train --model mlp --steps 5
expect 2 "STARPU_WORKERS_CPUID='abc' in the environment is not a list of CPU numbers" STARPU_WORKERS_CPUID=abc train --model mlp --steps 5
expect 2 "STARPU_WATCHDOG_TIMEOUT='abc' in the environment is not a positive whole number of microseconds" STARPU_WATCHDOG_TIMEOUT=abc train --model mlp --steps 5
expect 2 "STARPU_NCPU='' in the environment is not a whole number (StarPU would read it as 0)" STARPU_NCPU= train --model mlp --steps 5
expect 2 "disagree" STARPU_NCPU=1 STARPU_NCPUS=2 train --model mlp --steps 5
expect 2 "STARPU_NCPU=2 in the environment conflicts with the configured 1" STARPU_NCPU=2 train --model mlp --steps 5 --ncpu 1
expect 2 "STARPU_RESERVE_NCPU=1 in the environment keeps 1 core" STARPU_RESERVE_NCPU=1 train --model mlp --steps 5 --ncpu 1 --ncuda 0
expect 2 "no worker to start: asked for 0 CPU workers" train --model mlp --steps 5 --ncpu 0 --ncuda 0
grep -q -e "-1\|(null)" "$tmp/err" && fail "--ncpu 0: the message names a count nobody asked for: $(cat "$tmp/err")"
# a variable given to one run is not left set for the next ones
[ -z "${STARPU_NCPU+set}${STARPU_NCPUS+set}" ] || fail "STARPU_NCPU or STARPU_NCPUS stayed set after the runs above"
expect 2 "option '--graph' needs a value" train --model mlp --graph
expect 2 "--model: unknown model 'rnn' (available: mlp, lstm, gpt)" train --model rnn
expect 2 "unknown scheduling policy 'nosuch'.*dmda" train --model mlp --sched nosuch
expect 2 "folder 'no-such-dir' does not exist" train --model mlp --graph no-such-dir/step.dot
expect 2 "'$tmp': it is a folder" train --model mlp --graph "$tmp"
# a device is never replaced. Only a device node of our own is offered (were the check broken,
# a real one, /dev/null, could be replaced as root); where none can be made (not root, or no
# right to make device nodes) the case is skipped.
if mknod "$tmp/null" c 1 3 2>/dev/null && [ -c "$tmp/null" ]; then
	expect 2 "'$tmp/null': it is a character device" train --model mlp --graph "$tmp/null" --steps 5
	[ -c "$tmp/null" ] || fail "$tmp/null is not a character device any more"
else
	echo "SKIP: a device as the graph file (no device node can be made here)"
fi
mkfifo "$tmp/fifo" || exit 99
expect 2 "it is a FIFO" train --model mlp --graph "$tmp/fifo" --steps 5
expect 2 "the name ends in '/'" train --model mlp --graph "$tmp/new.dot/" --steps 5
long=$(printf '%0300d' 0)
expect 2 "File name too long" train --model mlp --graph "$tmp/$long.dot" --steps 5
expect 2 "'.*\.\.\..*0.dot': File name too long" train --model mlp --graph "$tmp/$(printf '%01300d' 0).dot" --steps 5
ln -s nothing "$tmp/dangling" || exit 99
expect 2 "symbolic link to nothing" train --model mlp --graph "$tmp/dangling" --steps 5
expect 2 "graph: no output file name" train --model mlp --graph "" --steps 5
expect 2 "conflicts with STARPU_SCHED=eager" STARPU_SCHED=eager train --model mlp --sched dmda --steps 5
expect 2 "a batch of 5000 is larger than the training split" train --model mlp --batch 5000 --steps 5
# a run that diverges stops with a message naming the step: weights with a NaN (written by
# --steps 0, then the output layer's first bias overwritten in the file's data) make the
# first loss NaN
expect 0 "" train --model mlp --steps 0 --checkpoint "$tmp/init.safetensors" -q
hlen=$(od -An -tu4 -N4 "$tmp/init.safetensors" | tr -d ' ')
at=$(head -c $((8 + hlen)) "$tmp/init.safetensors" | tr -d '\n' |
	sed -n 's/.*"fc3\.bias":{[^}]*"data_offsets":\[\([0-9]*\),.*/\1/p')
[ -n "$at" ] || { fail "no fc3.bias in the header of a checkpoint"; at=0; }
cp "$tmp/init.safetensors" "$tmp/nan.safetensors" || exit 99
printf '\377\377\377\177' | dd of="$tmp/nan.safetensors" bs=1 seek=$((8 + hlen + at)) conv=notrunc 2>/dev/null || exit 99
expect 1 "training diverged: the loss is NaN at step 0" train --model mlp --init "$tmp/nan.safetensors" --steps 300 -q

# nothing half-written: a failing run leaves an existing output alone
echo "previous graph" > "$tmp/step.dot"
expect 2 "not a whole number" train --model mlp --steps x --graph "$tmp/step.dot"
[ "$(cat "$tmp/step.dot")" = "previous graph" ] || fail "a failed run changed the existing graph file"
cp "$tmp/init.safetensors" "$tmp/good.safetensors" || exit 99
expect 1 "training diverged" train --model mlp --init "$tmp/nan.safetensors" --steps 300 -q --graph "$tmp/step.dot" \
	--checkpoint "$tmp/good.safetensors" --checkpoint-every 1
[ "$(cat "$tmp/step.dot")" = "previous graph" ] || fail "a diverged run replaced the existing graph file"
cmp -s "$tmp/init.safetensors" "$tmp/good.safetensors" || fail "a diverged run replaced the last good checkpoint"

# a real run: it learns, and its graph renders
expect 0 "final loss" train --model mlp --sched eager --steps 300 --graph "$tmp/step.dot" --ncpu 1
grep -q "graph of step [0-9]*: .*step.dot ([0-9]* tasks" "$tmp/out" || fail "the run did not report its graph: $(cat "$tmp/out")"
if command -v dot >/dev/null; then
	dot -Tsvg "$tmp/step.dot" -o "$tmp/step.svg" || fail "dot cannot render the graph"
else
	fail "Graphviz's dot is not installed (apt-get install graphviz)"
fi
ls -a "$tmp" | grep -q '^\.taskgrad-' && fail "a temporary file was left behind"

# language models on a text file (a small one made here): train, resume, sample
awk 'BEGIN { srand(3); for (i = 0; i < 4000; i++) { printf "%s the %s of %s.\n", (i % 7 ? "Some" : "All"), \
	(i % 3 ? "cat" : "dog"), (i % 5 ? "night" : "day") } }' > "$tmp/text.txt"
small="--layers 1 --dmodel 16 --ctx 16 --batch 4 --eval-every 5 --eval-batches 1"
expect 2 "--data: the gpt model trains on a text file: give --data FILE" train --model gpt --steps 5
expect 2 "--data: cannot read '$tmp/none.txt'" train --model gpt --data "$tmp/none.txt" --steps 5
expect 2 "--data: cannot read the text '$tmp': it is a folder" train --model gpt --data "$tmp" --steps 5
expect 2 "--data: cannot read the text '/dev/null': it is not a regular file" train --model gpt --data /dev/null --steps 5
# (the sanitizer build's allocator returns NULL too, instead of stopping the process)
expect 2 "out of memory for tensor 'logits'" ASAN_OPTIONS=fast_unwind_on_malloc=0:allocator_may_return_null=1 \
	train --model lstm --data "$tmp/text.txt" --batch 1048576 --steps 2
head -c 100 "$tmp/text.txt" > "$tmp/short.txt"
expect 2 "has 100 bytes: with ctx 16 it needs at least 170" train --model gpt --data "$tmp/short.txt" $small --steps 5
expect 2 "--heads: 3 heads do not divide dmodel 16" train --model gpt --data "$tmp/text.txt" --dmodel 16 --heads 3
expect 2 "--untied: only the gpt model ties its head" train --model lstm --data "$tmp/text.txt" --untied
expect 2 "--init and --resume: give one" train --model gpt --data "$tmp/text.txt" --init a --resume b
for m in gpt lstm; do
	expect 0 "final loss" train --model $m --data "$tmp/text.txt" $small --steps 10 --checkpoint "$tmp/$m.safetensors" \
		--log "$tmp/$m.csv" -q
	[ "$(head -n 1 "$tmp/$m.csv")" = "step,loss,val_loss,lr,tokens_per_s,ms" ] && [ "$(wc -l < "$tmp/$m.csv")" = 11 ] ||
		fail "$m: the CSV log is not a header and 10 rows: $(cat "$tmp/$m.csv")"
	sed -n 6p "$tmp/$m.csv" | grep -q '^4,[0-9.]*,[0-9.]*,' || fail "$m: no validation loss in row 4 of the log"
	sed -n 3p "$tmp/$m.csv" | grep -q '^1,[0-9.]*,,' || fail "$m: a validation loss where none was evaluated"
	# resume: the step count goes on and the rows are appended
	expect 0 "checkpoint (step 14)" train --model $m --data "$tmp/text.txt" $small --steps 14 --resume "$tmp/$m.safetensors" \
		--checkpoint "$tmp/$m-b.safetensors" --log "$tmp/$m.csv" -q
	[ "$(wc -l < "$tmp/$m.csv")" = 15 ] && tail -n 1 "$tmp/$m.csv" | grep -q '^13,' ||
		fail "$m: resuming did not append rows 10 to 13: $(cat "$tmp/$m.csv")"
	expect 2 "--resume: checkpoint .* is at step 10, past this run's 9 steps" train --model $m --data "$tmp/text.txt" $small --steps 9 \
		--resume "$tmp/$m.safetensors"
	expect 0 "^Some" sample --checkpoint "$tmp/$m.safetensors" --prompt "Some" --tokens 40 --seed 5
	cp "$tmp/out" "$tmp/sample1"
	expect 0 "^Some" sample --checkpoint "$tmp/$m.safetensors" --prompt "Some" --tokens 40 --seed 5
	cmp -s "$tmp/out" "$tmp/sample1" || fail "$m: the same seed sampled different text"
	[ "$(head -c 44 "$tmp/sample1" | wc -c)" = 44 ] || fail "$m: the sample is not the prompt and 40 tokens"
done
expect 2 "--seed 9: the checkpoint '.*gpt.safetensors' was trained with seed 1" train --model gpt --data "$tmp/text.txt" \
	$small --steps 20 --seed 9 --resume "$tmp/gpt.safetensors"
expect 2 "--layers 2: the checkpoint '.*gpt.safetensors' was trained with 1" train --model gpt --data "$tmp/text.txt" \
	$small --layers 2 --steps 20 --resume "$tmp/gpt.safetensors"
expect 2 "--model lstm: the checkpoint '.*gpt.safetensors' holds a gpt model" train --model lstm --data "$tmp/text.txt" \
	--steps 20 --resume "$tmp/gpt.safetensors"
expect 2 "--init: checkpoint '.*lstm.safetensors': tensor 'embedding.weight' is not a parameter of this gpt model" \
	train --model gpt --data "$tmp/text.txt" $small --steps 20 --init "$tmp/lstm.safetensors"
expect 0 "gradients of step 0" train --model gpt --data "$tmp/text.txt" $small --dump-grads "$tmp/grads.safetensors"
# resuming takes the run's own settings; another value is refused
expect 2 "--batch: the checkpoint '.*gpt.safetensors' was trained with train.batch = 4" train --model gpt \
	--data "$tmp/text.txt" --batch 8 --steps 20 --resume "$tmp/gpt.safetensors"
expect 0 "train: 12 steps of batch 4 from step 10" train --data "$tmp/text.txt" --steps 12 --resume "$tmp/lstm.safetensors"
# rows of steps run again after a resume are not logged twice
printf '10,9,,1,1,1\n11,9,,1,1,1\n' >> "$tmp/gpt-log.csv"
expect 0 "" train --model gpt --data "$tmp/text.txt" $small --steps 10 --checkpoint "$tmp/gpt-c.safetensors" \
	--log "$tmp/gpt-log.csv" -q
printf '10,9,,1,1,1\n11,9,,1,1,1\n' >> "$tmp/gpt-log.csv"
expect 0 "" train --data "$tmp/text.txt" --steps 12 --resume "$tmp/gpt-c.safetensors" --log "$tmp/gpt-log.csv" -q
[ "$(cut -d, -f1 "$tmp/gpt-log.csv" | sort | uniq -d)" = "" ] && [ "$(wc -l < "$tmp/gpt-log.csv")" = 13 ] ||
	fail "a resumed log has rows twice: $(cat "$tmp/gpt-log.csv")"
# files that would replace one another
expect 2 "--checkpoint and --graph name the same file" train --model mlp --steps 5 --checkpoint "$tmp/same" \
	--graph "$tmp/same"
expect 2 "--checkpoint and --data name the same file" train --model gpt --data "$tmp/text.txt" --checkpoint "$tmp/text.txt"
expect 2 "--dump-grads and --resume name the same file" train --data "$tmp/text.txt" --resume "$tmp/gpt.safetensors" \
	--dump-grads "$tmp/gpt.safetensors"
expect 2 "--dump-grads runs no training" train --model mlp --dump-grads "$tmp/g.st" --checkpoint "$tmp/c.st"
expect 2 "--graph: --steps 0 runs no step" train --model mlp --steps 0 --checkpoint "$tmp/c.st" --graph "$tmp/g.dot"
expect 2 "--batch: the gpt model takes at most 64 sequences" train --model gpt --data "$tmp/text.txt" --batch 65
expect 2 "--heads: the lstm model has no attention heads" train --model lstm --data "$tmp/text.txt" --heads 2
expect 2 "--ctx: the lstm model unrolls at most 4096 steps" train --model lstm --data "$tmp/text.txt" --ctx 5000
# parallel strategies: each misfit refused before anything runs
expect 2 "--micro-batches 3: must divide --batch 8" train --data "$tmp/text.txt" --micro-batches 3
expect 2 "--micro-batches: must be between 1 and 64, got 0" train --data "$tmp/text.txt" --micro-batches 0
expect 2 "--micro-batches: '2x' is not a whole number" train --data "$tmp/text.txt" --micro-batches 2x
expect 2 "--reduce: unknown mode 'fastest' (deterministic or redux)" train --data "$tmp/text.txt" --micro-batches 2 --reduce fastest
expect 2 "--reduce: there is nothing to reduce" train --data "$tmp/text.txt" --reduce redux
expect 2 "--schedule: unknown schedule 'zigzag' (gpipe or 1f1b)" train --data "$tmp/text.txt" --micro-batches 2 --schedule zigzag
expect 2 "--schedule: orders micro-batches" train --data "$tmp/text.txt" --pipeline 2 --schedule 1f1b
expect 2 "--pipeline 5: more stages than the model's 4 layers" train --data "$tmp/text.txt" --pipeline 5
expect 2 "--pipeline 2: more stages than CPU workers (--ncpu 1)" train --data "$tmp/text.txt" --pipeline 2 --ncpu 1
expect 2 "--pipeline: must be between 1 and 64, got 65" train --data "$tmp/text.txt" --pipeline 65
expect 2 "2 pipeline stages for 1 CPU worker: every stage needs one" STARPU_NCPU=1 train --data "$tmp/text.txt" --pipeline 2 --steps 1
expect 2 "--reduce redux: StarPU's reductions sum in an order that varies" train --data "$tmp/text.txt" --micro-batches 2 --reduce redux
# a strategy that runs: the step is the plain one (the same final loss, printed to 4 places)
expect 0 "parallel: 2 micro-batches of 2" train --data "$tmp/text.txt" --layers 2 --dmodel 32 --ctx 16 --batch 4 --steps 2 --eval-every 0 --micro-batches 2 --tensor-parallel 2
grep -q "tensor-parallel 2" "$tmp/out" || fail "train --tensor-parallel 2: the parallel line lacks it"
plain_loss=$("$tg" train --data "$tmp/text.txt" --layers 2 --dmodel 32 --ctx 16 --batch 4 --steps 2 --eval-every 0 -q | sed -n 's/^final loss \([0-9.]*\).*/\1/p')
split_loss=$(sed -n 's/^final loss \([0-9.]*\).*/\1/p' "$tmp/out")
[ -n "$plain_loss" ] && [ "$plain_loss" = "$split_loss" ] || fail "final loss $split_loss with the strategy, $plain_loss plain"
expect 0 "tensors peak" train --data "$tmp/text.txt" --layers 2 --dmodel 32 --ctx 16 --batch 4 --steps 2 --eval-every 0 --micro-batches 2 --reduce redux --fast
expect 2 "--tensor-parallel 3: must divide the gpt's 4 heads" train --data "$tmp/text.txt" --tensor-parallel 3
expect 2 "--tensor-parallel 3: must divide the lstm's 256 hidden units" train --model lstm --data "$tmp/text.txt" --tensor-parallel 3
expect 2 "--tensor-parallel 16: the lstm gathers at most 8 groups" train --model lstm --data "$tmp/text.txt" --tensor-parallel 16
expect 2 "--tensor-parallel: the mlp model has no split" train --model mlp --tensor-parallel 2
expect 2 "--pipeline: the mlp model has no stages" train --model mlp --pipeline 2
expect 0 "^Usage: taskgrad ops" ops --help
expect 2 "--version takes no arguments" --version x
expect 2 "--checkpoint: give the checkpoint to sample from" sample --prompt x
expect 2 "--checkpoint: cannot read\|--checkpoint: .*none" sample --checkpoint "$tmp/none.safetensors"
expect 2 "holds an mlp, not a language model" sample --checkpoint "$tmp/init.safetensors"
expect 2 "--prompt: the prompt is empty" sample --checkpoint "$tmp/gpt.safetensors" --prompt ""
expect 2 "--temperature: must not be negative" sample --checkpoint "$tmp/gpt.safetensors" --temperature -1
printf 'not a checkpoint at all' > "$tmp/junk.safetensors"
expect 2 "junk.safetensors" sample --checkpoint "$tmp/junk.safetensors"

# a link to a regular file: the file gets the graph, the link stays
echo old > "$tmp/target.dot" && ln -s target.dot "$tmp/link.dot" || exit 99
expect 0 "graph of step" train --model mlp --steps 5 --graph "$tmp/link.dot" -q
[ -L "$tmp/link.dot" ] || fail "the symbolic link was replaced"
grep -q "digraph taskgrad" "$tmp/target.dot" || fail "the file the link names did not get the graph"

# what is printed must reach its file
for args in "policies" "--help" "train --model mlp --steps 5 -q"; do
	"$tg" $args >/dev/full 2>"$tmp/err"
	rc=$?
	[ "$rc" = 1 ] && [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q "writing the standard output failed" "$tmp/err" ||
		fail "taskgrad $args > /dev/full: exit $rc, $(cat "$tmp/err")"
done

# ---- StarPU's environment, performance models, and quiet runs

# run_in_home HOME ARGS...: taskgrad with that HOME, no STARPU_HOME nor XDG_CACHE_HOME
run_in_home() {
	h=$1
	shift
	env -u STARPU_HOME -u XDG_CACHE_HOME HOME="$h" "$tg" "$@" >"$tmp/out" 2>"$tmp/err"
}

# a first-time dmda run in a fresh HOME prints taskgrad's lines only
home=$tmp/home
run_in_home "$home" train --model mlp --sched dmda --steps 50 || fail "a first dmda run in a fresh HOME failed: $(cat "$tmp/err")"
! grep -v '^step [0-9]' "$tmp/err" | grep -q . || { fail "a first dmda run in a fresh HOME printed on stderr:"; sed 's/^/    /' "$tmp/err"; }
grep -v -E '^(taskgrad [0-9]|model |train: |final loss )' "$tmp/out" | grep -q . &&
	{ fail "a first dmda run printed lines that are not taskgrad's:"; sed 's/^/    /' "$tmp/out"; }
ls -d "$home"/.cache/taskgrad/starpu-*/bus >/dev/null 2>&1 || fail "no bus calibration in \$HOME/.cache/taskgrad"
ls "$home"/.cache/taskgrad/starpu-*/codelets/*/tg_matmul_fwd* >/dev/null 2>&1 ||
	fail "no performance model of matmul in \$HOME/.cache/taskgrad"
run_in_home "$home" train --model mlp --sched dmda --steps 50 && ! grep -v '^step [0-9]' "$tmp/err" | grep -q . ||
	{ fail "a second dmda run was not quiet:"; sed 's/^/    /' "$tmp/err"; }
# four runs sharing a HOME at once (perfmodels written concurrently)
for i in 1 2 3 4; do
	env -u STARPU_HOME -u XDG_CACHE_HOME HOME="$home" "$tg" train --model mlp --sched dmda --steps 100 --ncpu 1 -q \
		>"$tmp/out$i" 2>"$tmp/err$i" &
done
wait
for i in 1 2 3 4; do
	[ ! -s "$tmp/err$i" ] || { fail "concurrent dmda run $i printed on stderr:"; sed 's/^/    /' "$tmp/err$i"; }
done
# --verbose lets StarPU speak (a fresh HOME: it calibrates the bus)
run_in_home "$tmp/home2" train --model mlp --sched dmda --steps 5 -q --verbose
grep -q '^\[starpu\]' "$tmp/err" || fail "--verbose showed nothing of StarPU's on a first run"
# ... even when the user's STARPU_SILENT=1 is set
env -u STARPU_HOME -u XDG_CACHE_HOME HOME="$tmp/home4" STARPU_SILENT=1 "$tg" train --model mlp --sched dmda --steps 5 -q --verbose \
	>"$tmp/out" 2>"$tmp/err"
grep -q '^\[starpu\]' "$tmp/err" || fail "--verbose under STARPU_SILENT=1 showed nothing of StarPU's on a first run"
# no writable cache: one note, the run goes on, and its temporary folder (in $TMPDIR) is
# removed at the end
: > "$tmp/a-file"
mkdir -p "$tmp/tmpdir" || exit 99
for h in "$tmp/a-file" ""; do
	if [ -n "$h" ]; then
		env -u STARPU_HOME -u XDG_CACHE_HOME HOME="$h" TMPDIR="$tmp/tmpdir" "$tg" train --model mlp --steps 5 -q >"$tmp/out" 2>"$tmp/err"
	else
		env -u HOME -u STARPU_HOME -u XDG_CACHE_HOME TMPDIR="$tmp/tmpdir" "$tg" train --model mlp --steps 5 -q >"$tmp/out" 2>"$tmp/err"
	fi
	rc=$?
	[ "$rc" = 0 ] || fail "HOME='$h': exit $rc: $(cat "$tmp/err")"
	[ "$(wc -l < "$tmp/err")" = 1 ] && grep -q "note: no cache directory is writable.*$tmp/tmpdir/taskgrad-starpu-" "$tmp/err" ||
		{ fail "HOME='$h': expected one note on stderr:"; sed 's/^/    /' "$tmp/err"; }
	[ -z "$(ls -A "$tmp/tmpdir")" ] || fail "HOME='$h': left in \$TMPDIR: $(ls -A "$tmp/tmpdir")"
done
expect 2 "STARPU_HOME=.*a-file cannot hold StarPU's performance models" STARPU_HOME="$tmp/a-file" train --model mlp --steps 5
# StarPU's own folders in the cache (codelets/NN, bus, debug): one that is a file, which
# StarPU would abort on, also means a temporary folder; in the user's own folder, an error
version=$(cd "$home/.cache/taskgrad" && ls -d starpu-*)
mkdir -p "$tmp/home3/.cache/taskgrad/$version" && : > "$tmp/home3/.cache/taskgrad/$version/codelets" || exit 99
env -u STARPU_HOME -u XDG_CACHE_HOME HOME="$tmp/home3" TMPDIR="$tmp/tmpdir" "$tg" train --model mlp --steps 5 -q >"$tmp/out" 2>"$tmp/err"
[ "$?" = 0 ] && [ -z "$(ls -A "$tmp/tmpdir")" ] && [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q "note: no cache directory is writable" "$tmp/err" ||
	{ fail "a cache whose codelets folder is a file: expected one note on stderr:"; sed 's/^/    /' "$tmp/err"; }
mkdir -p "$tmp/pm" && : > "$tmp/pm/bus" || exit 99
expect 2 "STARPU_PERF_MODEL_DIR=.*pm cannot hold StarPU's performance models: '.*pm/bus' is not a directory" \
	STARPU_PERF_MODEL_DIR="$tmp/pm" train --model mlp --steps 5

# StarPU's file names hold the host name and must fit in 255 characters
host63=$(printf '%063d' 0)
if [ ${#tmp} -lt 170 ]; then
	pmdir=$tmp/$(printf '%0*d' $((179 - ${#tmp})) 0)
	expect 2 "STARPU_PERF_MODEL_DIR=.* cannot hold StarPU's performance models: its name is longer than the .*STARPU_HOSTNAME, 63 characters" \
		STARPU_HOSTNAME="$host63" STARPU_PERF_MODEL_DIR="$pmdir" train --model mlp --steps 5
fi
expect 2 "STARPU_HOSTNAME is 250 characters long" STARPU_HOSTNAME="$(printf '%0250d' 0)" train --model mlp --steps 5

# ---- Ctrl-C ends a run at once (env gives the background run the default SIGINT back)
env --default-signal=INT "$tg" train --model mlp --steps 100000000 -q >/dev/null 2>&1 &
pid=$!
sleep 1
kill -INT $pid
for i in $(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
	fail "SIGINT did not stop a training run within 5 s"
	kill -KILL $pid
fi
wait $pid
rc=$?
[ "$rc" = 130 ] || fail "a run stopped by SIGINT exited $rc, expected 130 (killed by SIGINT)"

[ $failures = 0 ] || { echo "$failures failure(s)"; exit 1; }
exit 0
