#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Unpack Debian's linux-source-<series> into the cache once and print the
# directory.  Used for checkpatch.pl / kernel-doc and for the debug kernel.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
series=${REFNPU_KERNEL_SERIES:-6.12}
cache=${REFNPU_CACHE:-$("$here/cache-dir.sh")}
tarball=/usr/src/linux-source-$series.tar.xz
if [ ! -f "$tarball" ]; then
	"$here/setup-deps.sh" --with-kernel-source >&2
fi
ver=$(dpkg-query -W -f='${Version}' "linux-source-$series")
dir="$cache/src/linux-source-$series"
stamp="$dir/.refnpu-version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$cache/src"
# One unpacker at a time (the style checks and the debug-kernel build both
# call this): a second caller waits, then finds the tree ready.
exec 9>"$cache/src/.lock-linux-source-$series"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ]; then
	echo "$dir"
	exit 0
fi
rm -rf "$dir" "$dir.tmp"
mkdir -p "$dir.tmp"
tar -C "$dir.tmp" -xf "$tarball"
mv "$dir.tmp/linux-source-$series" "$dir"
rmdir "$dir.tmp"
echo "$ver" >"$stamp"
echo "$dir"
