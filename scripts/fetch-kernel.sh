#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Download Debian's unsigned kernel image of the ABI printed by
# scripts/kernel-version.sh and unpack it into the cache (never into the
# host's /boot).  Prints the cache directory on stdout.  Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
abi=${1:-$("$here/kernel-version.sh")}
cache=${REFNPU_CACHE:-$("$here/cache-dir.sh")}
dir="$cache/kernel/$abi"
if [ -f "$dir/.done" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$dir.tmp"
rm -rf "${dir:?}.tmp"/*
pkg="linux-image-$abi-unsigned"
(cd "$dir.tmp" && apt-get download -q "$pkg" >&2) || {
	echo "fetch-kernel: 'apt-get download $pkg' failed; run 'apt-get update' and retry" >&2
	exit 1
}
deb=$(ls "$dir.tmp"/*.deb)
dpkg-deb -x "$deb" "$dir.tmp/root"
rm -f "$deb"
depmod -b "$dir.tmp/root" "$abi"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
touch "$dir/.done"
echo "$dir"
