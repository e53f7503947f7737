#!/bin/bash
# SPDX-License-Identifier: MIT
# clang-format --dry-run on the C++ sources (libaccel, tools, tests); TAP.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cf=$(command -v clang-format || true)
if [ -z "$cf" ]; then
	echo "Bail out! clang-format not installed; run scripts/setup-deps.sh"
	exit 1
fi
mapfile -t files < <(git ls-files -- 'libaccel/*.cpp' 'libaccel/*.h' 'libaccel/*.hpp' \
	'tools/*.cpp' 'tools/*.h' 'tests/*.cpp' 'tests/*.h')
echo "TAP version 13"
echo "1..${#files[@]}"
n=0 failed=0
for f in "${files[@]}"; do
	n=$((n + 1))
	if out=$("$cf" --dry-run --Werror "$f" 2>&1) && [ -z "$out" ]; then
		echo "ok $n - clang-format $f"
	else
		echo "not ok $n - clang-format $f (fix with: clang-format -i $f)"
		echo "$out" | head -20 | sed 's/^/# /'
		failed=1
	fi
done
exit $failed
