#!/bin/bash
# SPDX-License-Identifier: MIT
#
# checkpatch.pl --strict and kernel-doc on every kernel source file, using
# the scripts of Debian's linux-source (unpacked into the cache).  Prints TAP:
# one result per file and tool.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
ksrc=$("$here/kernel-source.sh") || { echo "Bail out! kernel source unavailable"; exit 1; }
cd "$top"
mapfile -t files < <(git ls-files -- 'kernel/*.c' 'kernel/*.h' 2>/dev/null ||
	find kernel -name '*.[ch]' -not -name '*.mod.c')
if [ ${#files[@]} = 0 ]; then
	echo "Bail out! no kernel sources found"
	exit 1
fi
echo "TAP version 13"
echo "1..$((${#files[@]} * 2))"
n=0 failed=0
for f in "${files[@]}"; do
	n=$((n + 1))
	out=$(perl "$ksrc/scripts/checkpatch.pl" --strict --no-tree --show-types \
		--ignore SPDX_LICENSE_TAG,FILE_PATH_CHANGES -q -f "$f" 2>&1)
	if [ -z "$out" ]; then
		echo "ok $n - checkpatch --strict $f"
	else
		echo "not ok $n - checkpatch --strict $f"
		echo "$out" | sed 's/^/# /'
		failed=1
	fi
	n=$((n + 1))
	out=$(perl "$ksrc/scripts/kernel-doc" -none -Wall "$f" 2>&1)
	if [ -z "$out" ]; then
		echo "ok $n - kernel-doc $f"
	else
		echo "not ok $n - kernel-doc $f"
		echo "$out" | sed 's/^/# /'
		failed=1
	fi
done
exit $failed
