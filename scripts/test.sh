#!/bin/sh
# `make test`: every unit test binary, then the end-to-end suite, against the
# sanitizer build in $1 (build/asan).  Ends with one line:
#   total: N passed, N failed
set -u

B="${1:-build/asan}"
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export KEEL_BUILD="$TOP/$B"
# Tests that need a peer (dnsmasq, ...) fail rather than skip when it is
# missing: scripts/deps.sh installs them.
export KEEL_REQUIRE_PEERS=1

passed=0
failed=0
for t in $(find "$B/tests" -type f -perm -u+x | sort); do
	echo "== $t"
	out=$("$t" 2>&1)
	rc=$?
	echo "$out" | grep -v '^ok ' || true
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | cut -d' ' -f1)
		f=$(echo "$line" | cut -d' ' -f3)
	else
		p=0
		f=1
	fi
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$t exited $rc (sanitizer report or crash)"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"

junit=$(mktemp)
/usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$junit" tests/
rc=$?
counts=$(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f, sk)
PY
)
rm -f "$junit"
set -- $counts
e2e_passed=$1
e2e_failed=$2
e2e_skipped=$3
if [ $rc -ne 0 ] && [ "$e2e_failed" -eq 0 ]; then
	e2e_failed=1
fi
echo "e2e: $e2e_passed passed, $e2e_failed failed, $e2e_skipped skipped"
passed=$((passed + e2e_passed))
failed=$((failed + e2e_failed))

# The fuzz smoke run (make test sets these): each target for a few seconds
# from its corpus, one pass or failure per target.
if [ -n "${KEEL_FUZZ_BUILD:-}" ]; then
	fuzz_out=$(scripts/fuzz.sh "$KEEL_FUZZ_BUILD" "${KEEL_FUZZ_SECONDS:-10}")
	echo "$fuzz_out"
	line=$(echo "$fuzz_out" | grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -n "$line" ]; then
		passed=$((passed + $(echo "$line" | cut -d' ' -f2)))
		failed=$((failed + $(echo "$line" | cut -d' ' -f4)))
	else
		failed=$((failed + 1))
	fi
fi
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
