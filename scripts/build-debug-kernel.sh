#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the refnpu debug kernel (KUnit, KASAN, lockdep, kmemleak, DMA-API
# debug, debug objects) from Debian's linux-source and the config fragment
# tests/kunit/debug-kernel.config, into the cache.  The result is laid out
# like an unpacked Debian image, so the VM harness treats both alike:
#
#   <dir>/root/boot/vmlinuz-<release>
#   <dir>/root/lib/modules/<release>/...      (modules.dep included)
#   <dir>/build/                              (O= tree for out-of-tree modules)
#   <dir>/release                             (the kernel release string)
#
# Usage: build-debug-kernel.sh [VARIANT]
#
# With VARIANT (e.g. kcsan), tests/kunit/VARIANT-kernel.config is merged
# over debug-kernel.config (its options win) and the release is
# <version>-refnpu-VARIANT: KCSAN excludes KASAN, so it is a kernel of its
# own.
#
# The cache key is the source package version plus a hash of the fragments
# and of this script.  Prints <dir> on stdout.  Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
variant=${1:-debug}
frags=("$top/tests/kunit/debug-kernel.config")
if [ "$variant" != debug ]; then
	case "$variant" in
	*[!a-z0-9]*) echo "build-debug-kernel: bad variant '$variant'" >&2; exit 2 ;;
	esac
	frags+=("$top/tests/kunit/$variant-kernel.config")
	[ -f "${frags[1]}" ] || { echo "build-debug-kernel: no ${frags[1]}" >&2; exit 2; }
fi
cache=${REFNPU_CACHE:-$("$here/cache-dir.sh")}
src=$("$here/kernel-source.sh")
srcver=$(cat "$src/.refnpu-version")
key=$(cat "${frags[@]}" "$0" | sha256sum | cut -c1-12)
sub=debug-kernel
[ "$variant" = debug ] || sub=$variant-kernel
dir="$cache/$sub/${srcver//[~:]/_}-$key"
if [ -f "$dir/.done" ]; then
	echo "$dir"
	exit 0
fi
out="$dir/build"
mkdir -p "$out"
log="$dir/build.log"
echo "build-debug-kernel: building into $dir (log: $log); cold build takes several minutes" >&2
t0=$(date +%s)
{
	make -C "$src" O="$out" ARCH=x86_64 allnoconfig
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}"
	make -C "$src" O="$out" ARCH=x86_64 olddefconfig
} >"$log" 2>&1 || { tail -50 "$log" >&2; exit 1; }
# Every option of the fragments must have survived olddefconfig (a later
# fragment's setting of an option replaces an earlier one's).
bad=0
declare -A want=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) want[${line%%=*}]=$line ;;
	esac
done < <(cat "${frags[@]}")
for line in "${want[@]}"; do
	case "$line" in
	CONFIG_*=n) opt=${line%%=*}
		grep -q "^$opt=" "$out/.config" && { echo "not unset: $line" >&2; bad=1; } ;;
	CONFIG_*) grep -qx "$line" "$out/.config" || { echo "not applied: $line" >&2; bad=1; } ;;
	esac
done
[ $bad = 0 ] || { echo "build-debug-kernel: fix ${frags[*]}" >&2; exit 1; }
make -C "$src" O="$out" ARCH=x86_64 LOCALVERSION=-refnpu-$variant -j"$(nproc)" \
	bzImage modules >>"$log" 2>&1 || { tail -50 "$log" >&2; exit 1; }
rel=$(make -s -C "$src" O="$out" ARCH=x86_64 LOCALVERSION=-refnpu-$variant kernelrelease)
rm -rf "$dir/root"
mkdir -p "$dir/root/boot"
cp "$out/arch/x86/boot/bzImage" "$dir/root/boot/vmlinuz-$rel"
make -C "$src" O="$out" ARCH=x86_64 LOCALVERSION=-refnpu-$variant \
	INSTALL_MOD_PATH="$dir/root" INSTALL_MOD_STRIP=1 modules_install >>"$log" 2>&1
echo "$rel" >"$dir/release"
echo "build-debug-kernel: done in $(($(date +%s) - t0)) s" | tee -a "$log" >&2
touch "$dir/.done"
echo "$dir"
