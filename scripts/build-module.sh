#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build refnpu.ko out of tree with W=1 and fail on any compiler warning,
# with the test hooks (REFNPU_TEST_HOOKS=1, kernel/Kbuild): this is the
# module of the test suites and the demo, never one to ship.
#
# Usage: build-module.sh SRCDIR OBJDIR KDIR|@FILE OUTPUT
#
# Kbuild in 6.12 builds external modules inside M=, so the kernel/ tree is
# mirrored into OBJDIR (timestamps kept, so rebuilds are incremental) and the
# source tree stays clean.
set -euo pipefail
src=$1 obj=$2 kdir=$3 out=$4
# KDIR may be @FILE: FILE's last line names a debug-kernel cache directory
# (scripts/build-debug-kernel.sh), whose O= tree is in build/.
if [ "${kdir#@}" != "$kdir" ]; then
	kdir=$(tail -n1 "${kdir#@}")/build
fi
if [ ! -d "$kdir" ]; then
	echo "build-module: $kdir not found; run scripts/setup-deps.sh" >&2
	exit 1
fi
mkdir -p "$obj"
# Mirror sources: copy changed files, drop files removed from the tree.
(cd "$src" && find . -type f \( -name '*.c' -o -name '*.h' -o -name 'Kbuild' \
	-o -name 'Makefile' -o -name '*.S' \) -printf '%P\n') | sort >"$obj/.srclist.new"
if [ -f "$obj/.srclist" ]; then
	comm -23 "$obj/.srclist" "$obj/.srclist.new" | while read -r f; do rm -f "$obj/$f"; done
fi
while read -r f; do
	if ! cmp -s "$src/$f" "$obj/$f"; then
		mkdir -p "$obj/$(dirname "$f")"
		cp -p "$src/$f" "$obj/$f"
	fi
done <"$obj/.srclist.new"
mv "$obj/.srclist.new" "$obj/.srclist"
log="$obj/build.log"
set +e
make -C "$kdir" M="$obj" W=1 REFNPU_TEST_HOOKS=1 -j"$(nproc)" modules >"$log" 2>&1
rc=$?
set -e
if [ $rc != 0 ]; then
	cat "$log" >&2
	echo "build-module: module build failed (log: $log)" >&2
	exit $rc
fi
if grep -E 'warning:|WARNING:' "$log" >&2; then
	echo "build-module: the module must build without warnings at W=1 (log: $log)" >&2
	exit 1
fi
cp "$obj/refnpu.ko" "$out"
