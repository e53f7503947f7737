#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Fuzz the refnpu QEMU device with QEMU's own fuzzing framework (libFuzzer,
# tests/qtest/fuzz) in the sanitizer build of qemu/build-qemu.sh --fuzz.
# For each target, one libFuzzer run: first every input of the committed
# corpus runs once (a regression test of every crash ever found), then the
# target is fuzzed from that corpus until the run's time is up.  Any crash, sanitizer report, leak
# or timeout fails the run; the input is kept under $REFNPU_FUZZ_ARTIFACTS
# (default build/fuzz-artifacts) for qemu/README.md's "Fuzzing" steps.
# TAP on stdout.
#
# Usage: tests/fuzz/run-fuzz.sh [SECONDS-PER-TARGET] [TARGET...]
#   SECONDS-PER-TARGET  default 50 (REFNPU_FUZZ_SECONDS); meson passes an
#                       eighth of its fuzz_budget option
#   TARGET              default: refnpu-fuzz generic-fuzz-refnpu
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
seconds=${1:-${REFNPU_FUZZ_SECONDS:-50}}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(refnpu-fuzz generic-fuzz-refnpu)
artifacts=${REFNPU_FUZZ_ARTIFACTS:-$repo/build/fuzz-artifacts}

mapfile -t out < <("$repo/qemu/build-qemu.sh" --fuzz)
[ ${#out[@]} -ge 2 ] || {
	echo "Bail out! qemu/build-qemu.sh --fuzz failed"
	exit 1
}
fuzz=${out[0]}

# Leaks are reported too; a report aborts the process (and fails the test).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

work=$(mktemp -d "${TMPDIR:-/tmp}/refnpu-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

echo "TAP version 13"
echo "1..$((${#targets[@]} * 2))"
n=0 failed=0
for t in "${targets[@]}"; do
	corpus=$here/corpus/$t
	mkdir -p "$work/$t"
	log=$work/$t.log

	# One libFuzzer run per target: it first runs every input of the
	# committed corpus once (its seed corpus; "INITED" when done), which
	# is the regression test, then fuzzes until -max_total_time, counted
	# from its start. A separate replay first (-runs=0) would run the
	# corpus twice, about 30 s per target.
	args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096
		-max_len=4096 -len_control=0 -print_final_stats=1
		-artifact_prefix="$artifacts/$t-" "$work/$t")
	[ -d "$corpus" ] && args+=("$corpus")
	# libFuzzer picks a fresh seed each run and logs it; -seed=N repeats
	# the run's mutation sequence (qemu/README.md, "Fuzzing").
	rc=0
	start=$SECONDS
	"$fuzz" --fuzz-target="$t" "${args[@]}" >"$log" 2>&1 || rc=$?
	seed=$(grep -m1 -o 'INFO: Seed: [0-9]*' "$log" || true)
	inited=$(grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$log" || true)
	ninputs=0
	[ -d "$corpus" ] && ninputs=$(ls "$corpus" | wc -l)

	# 1. Every committed input, once.
	n=$((n + 1))
	if [ "$ninputs" -eq 0 ]; then
		echo "ok $n - $t: no committed corpus # SKIP"
	elif [ -n "$inited" ]; then
		echo "ok $n - $t: $ninputs corpus inputs replay cleanly"
		echo "# $inited"
	else
		echo "not ok $n - $t: a corpus input fails"
		tail -n 60 "$log" | sed 's/^/# /'
		failed=1
	fi

	# 2. Bounded fuzzing from the corpus, new inputs in a scratch directory.
	n=$((n + 1))
	if [ $rc -eq 0 ]; then
		stats=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -n1 || true)
		echo "ok $n - $t: fuzzed ${seconds}s (corpus replay included), no crash"
		[ -z "$stats" ] || echo "# $stats"
	elif [ -n "$inited" ] || [ "$ninputs" -eq 0 ]; then
		echo "not ok $n - $t: the fuzzer found a crash (input in $artifacts)"
		tail -n 80 "$log" | sed 's/^/# /'
		failed=1
	else
		echo "not ok $n - $t: not fuzzed, the corpus replay failed"
	fi
	echo "# $t: $((SECONDS - start)) s"
	echo "# $t: ${seed:-seed not logged}"
done
exit $failed
