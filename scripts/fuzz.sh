#!/bin/sh
# Runs every fuzz target in $1 (build/fuzz/fuzz) for $2 seconds each, from a
# copy of its seed corpus, and prints one line per target, then
#   fuzz: N passed, N failed
# (a target passes when it ran its time without a crash or a leak).
set -u
B="${1:-build/fuzz}"
SECONDS_EACH="${2:-60}"
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
passed=0
failed=0
for bin in "$B"/fuzz/fuzz_*; do
	case "$bin" in *.o | *.d) continue ;; esac
	name=$(basename "$bin" | sed 's/^fuzz_//')
	work=$(mktemp -d)
	[ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
	if "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 "$work" \
		>"$work.log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
		echo "fuzz $name: ${execs:-?} executions in ${SECONDS_EACH}s, no crash"
		passed=$((passed + 1))
	else
		echo "fuzz $name: FAILED (see below)"
		tail -n 40 "$work.log"
		status=1
		failed=$((failed + 1))
	fi
	rm -rf "$work" "$work.log"
done
if [ $((passed + failed)) -eq 0 ]; then
	echo "fuzz: no fuzz target in $B/fuzz"
	failed=1
	status=1
fi
echo "fuzz: $passed passed, $failed failed"
exit $status
