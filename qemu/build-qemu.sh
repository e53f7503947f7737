#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build QEMU 10.0 with the refnpu device model.
#
# The QEMU source is Debian's bookworm-backports upstream tarball
# (qemu_<ver>+ds.orig.tar.xz), verified against the SHA256 that
# `apt-cache showsrc qemu` lists, cached and unpacked once under
# ${REFNPU_CACHE:-/var/cache/refnpu}/qemu/.  The device sources from this
# repository (qemu/device/ and the shared kernel/hw/ files: the specification
# header, the compute engine and the MMU walk) are synced into
# the tree's hw/misc/refnpu/ on every run, copying only files that changed so
# that ninja rebuilds only the device.  The qtest in tests/qtest/ is synced
# into the tree's tests/qtest/ in the same way.
#
# Usage: qemu/build-qemu.sh [--sanitize] [--qtest] [--bench] [--fuzz]
#   --sanitize  build the sanitizer variant instead: clang with
#               AddressSanitizer, UndefinedBehaviorSanitizer and QEMU's
#               fuzzing instrumentation (--enable-asan --enable-ubsan
#               --enable-fuzzing), in a build directory of its own
#   --qtest     also build the qtest (tests/qtest/refnpu-test.c)
#   --bench     also build the GEMM benchmark (qemu/bench/refnpu-gemm-bench.c)
#   --fuzz      also build the libFuzzer binary qemu-fuzz-x86_64 (with the
#               refnpu targets of qemu/fuzz/); implies --sanitize
#   Each extra binary's path is printed, in this order, on a line before
#   the QEMU binary's path.
#
# Everything but the final path(s) goes to stderr; the last line on stdout
# is the path of qemu-system-x86_64.
#
# Environment:
#   REFNPU_CACHE         cache root (default /var/cache/refnpu)
#   REFNPU_QEMU_VERSION  Debian source version to use (default: the newest
#                        1:10.0.* that apt-cache showsrc knows)
#   REFNPU_QEMU_JOBS     ninja -j value (default 2)
set -euo pipefail

# The whole script is one compound command, so bash parses it completely
# before running it: editing the file during a build cannot break the run.
{

want_qtest=0
want_bench=0
want_fuzz=0
sanitize=0
for a in "$@"; do
	case "$a" in
	--qtest) want_qtest=1 ;;
	--bench) want_bench=1 ;;
	--fuzz) want_fuzz=1 sanitize=1 ;;
	--sanitize) sanitize=1 ;;
	-h | --help)
		sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build-qemu.sh: unknown argument '$a'" >&2
		exit 2
		;;
	esac
done

log() { echo "build-qemu: $*" >&2; }
die() {
	echo "build-qemu: error: $*" >&2
	exit 1
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${REFNPU_CACHE:-/var/cache/refnpu}/qemu
jobs=${REFNPU_QEMU_JOBS:-2}
mkdir -p "$cache/dl"

# Serialise concurrent callers (meson test, VM harness, developers).
exec 9>"$cache/.lock"
flock 9

# --- resolve the source version and its checksum ---------------------------
showsrc=$(apt-cache showsrc qemu 2>/dev/null) ||
	die "apt-cache showsrc qemu failed (deb-src for bookworm-backports missing? run scripts/setup-deps.sh)"

# Print "version sha256 size filename" for every qemu source version's orig
# tarball.
orig_list() {
	awk '
		/^Package: /          { ver = ""; insha = 0 }
		/^Version: /          { ver = $2 }
		/^Checksums-Sha256:/  { insha = 1; next }
		/^[^ ]/               { insha = 0 }
		insha && $3 ~ /\.orig\.tar\./ { print ver, $1, $2, $3 }
	' <<<"$showsrc"
}

version=${REFNPU_QEMU_VERSION:-}
if [ -z "$version" ]; then
	version=$(orig_list | awk '$1 ~ /^1:10\.0\./ { print $1 }' | sort -V | tail -1)
	[ -n "$version" ] || die "no QEMU 10.0 source in apt-cache showsrc qemu (bookworm-backports deb-src missing?)"
fi
read -r _ sha size tarball < <(orig_list | awk -v v="$version" '$1 == v' | head -1) ||
	die "apt-cache showsrc qemu does not list version $version"
upver=${tarball#qemu_}
upver=${upver%.orig.tar.*} # e.g. 10.0.2+ds

# --- fetch and verify the tarball ------------------------------------------
tarpath=$cache/dl/$tarball
verify() {
	[ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size" ] &&
		echo "$sha  $1" | sha256sum --quiet -c - 2>/dev/null
}
if ! verify "$tarpath"; then
	log "fetching $tarball ($version)"
	tmpdl=$(mktemp -d "$cache/dl/.fetch.XXXXXX")
	# Only the tarball: the archive currently lacks this version's .dsc
	# and .debian.tar, on which a plain "apt-get source" fails.  Judge
	# success by the verified tarball, not by apt's exit status.
	(cd "$tmpdl" && apt-get source --download-only --tar-only \
		-t bookworm-backports "qemu=$version" >&2) ||
		log "apt-get source reported errors; checking what it fetched"
	if ! verify "$tmpdl/$tarball"; then
		rm -rf "$tmpdl"
		die "could not fetch $tarball with SHA256 $sha"
	fi
	mv "$tmpdl/$tarball" "$tarpath"
	rm -rf "$tmpdl"
fi
log "source $tarball sha256 ok"

# --- unpack once --------------------------------------------------------------
vdir=$cache/$upver
src=$vdir/src
build=$vdir/build
[ $sanitize = 1 ] && build=$vdir/build-sanitize
if [ ! -f "$src/.refnpu-unpacked" ]; then
	log "unpacking into $src"
	rm -rf "$src" "$vdir/.unpack" "$build"
	mkdir -p "$vdir/.unpack"
	tar -xJf "$tarpath" -C "$vdir/.unpack"
	top=$(find "$vdir/.unpack" -mindepth 1 -maxdepth 1 -type d | head -1)
	[ -f "$top/configure" ] || die "unexpected tarball layout"
	mv "$top" "$src"
	rmdir "$vdir/.unpack"
	touch "$src/.refnpu-unpacked"
fi

# --- patch the tree (each step idempotent, files untouched once applied) --
# The +ds tarball carries no firmware blobs: never unpack edk2.
if grep -q '^if unpack_edk2_blobs$' "$src/pc-bios/meson.build"; then
	sed -i 's/^if unpack_edk2_blobs$/if false # refnpu: +ds tarball has no edk2 blobs/' \
		"$src/pc-bios/meson.build"
fi
grep -q '^if false # refnpu' "$src/pc-bios/meson.build" ||
	die "could not disable edk2 unpacking in pc-bios/meson.build"

# virtio-iommu looks a DMA address up as the interval [addr, addr + 1], but
# its mappings are closed intervals [virt_start, virt_end]: an access that
# starts at the last byte of a mapping can match the next mapping instead
# and go to the byte before that mapping's physical page, another page of
# guest memory (qemu/README.md, "Patches to QEMU").  Look up [addr, addr].
viommu=$src/hw/virtio/virtio-iommu.c
if grep -q '^    interval.high = addr + 1;$' "$viommu"; then
	sed -i 's/^    interval.high = addr + 1;$/    interval.high = addr; \/\* refnpu: closed intervals \*\//' \
		"$viommu"
fi
grep -q '^    interval.high = addr; /\* refnpu: closed intervals \*/$' "$viommu" ||
	die "could not patch the address lookup of hw/virtio/virtio-iommu.c"

# Register the device: its Kconfig and meson.build live in hw/misc/refnpu/.
grep -q '^source refnpu/Kconfig$' "$src/hw/misc/Kconfig" ||
	printf '\nsource refnpu/Kconfig\n' >>"$src/hw/misc/Kconfig"
grep -q "^subdir('refnpu')$" "$src/hw/misc/meson.build" ||
	printf "\nsubdir('refnpu')\n" >>"$src/hw/misc/meson.build"
# Its trace-events: one more entry in QEMU's list of trace directories.
if ! grep -q "'hw/misc/refnpu'," "$src/meson.build"; then
	grep -q "^    'hw/misc',$" "$src/meson.build" ||
		die "trace_events_subdirs anchor not found in meson.build"
	sed -i "s|^    'hw/misc',$|    'hw/misc',\n    'hw/misc/refnpu',|" "$src/meson.build"
fi

# Register the qtest and the GEMM benchmark (tests/qtest/refnpu/meson.build,
# synced from qemu/qtest.meson).
qmeson=$src/tests/qtest/meson.build
if ! grep -q "^subdir('refnpu')$" "$qmeson"; then
	python3 - "$qmeson" <<-'PYEOF'
		import sys
		p = sys.argv[1]
		s = open(p).read()
		a = "qtests_x86_64 = qtests_i386\n"
		b = "qtest_executables = {}\n"
		assert a in s and b in s, "tests/qtest/meson.build anchors not found"
		if "'refnpu-test'" not in s:
		    s = s.replace(a, a + "qtests_x86_64 += ['refnpu-test']\n", 1)
		s = s.replace(b, "subdir('refnpu')\n" + b, 1)
		open(p, "w").write(s)
	PYEOF
fi
grep -q "refnpu-test" "$qmeson" || die "could not register refnpu-test"

# Register the fuzz target (only built with --enable-fuzzing) and the
# generic-fuzz configuration "generic-fuzz-refnpu".
fmeson=$src/tests/qtest/fuzz/meson.build
if ! grep -q "refnpu_fuzz.c" "$fmeson"; then
	grep -q "^specific_fuzz_ss.add(files('generic_fuzz.c'))$" "$fmeson" ||
		die "tests/qtest/fuzz/meson.build anchor not found"
	sed -i "s|^specific_fuzz_ss.add(files('generic_fuzz.c'))$|specific_fuzz_ss.add(when: 'CONFIG_REFNPU', if_true: files('refnpu_fuzz.c'))\n&|" "$fmeson"
fi
fconfigs=$src/tests/qtest/fuzz/generic_fuzz_configs.h
if ! grep -q '"refnpu"' "$fconfigs"; then
	python3 - "$fconfigs" "$here/fuzz/generic-fuzz-config.h" <<-'PYEOF'
		import sys
		p, entry = sys.argv[1], open(sys.argv[2]).read()
		s = open(p).read()
		a = "const generic_fuzz_config predefined_configs[] = {\n"
		assert a in s, "generic_fuzz_configs.h anchor not found"
		body = "".join(l for l in entry.splitlines(True)
		               if not l.startswith(("/*", " *", "//")))
		s = s.replace(a, a + body, 1)
		open(p, "w").write(s)
	PYEOF
fi
grep -q '"refnpu"' "$fconfigs" || die "could not register generic-fuzz-refnpu"

# --- sync the device and test sources -------------------------------------
# Copy only when the content differs, so unchanged files keep their
# timestamps and ninja does not rebuild them.
sync_file() {
	local from=$1 to=$2
	if ! cmp -s "$from" "$to"; then
		mkdir -p "$(dirname "$to")"
		cp "$from" "$to.tmp" && mv "$to.tmp" "$to"
		log "updated ${to#"$src"/}"
	fi
}
devdir=$src/hw/misc/refnpu
mkdir -p "$devdir"
for f in "$here"/device/*; do
	[ -f "$f" ] && sync_file "$f" "$devdir/$(basename "$f")"
done
for f in refnpu_hw.h refnpu_engine.h refnpu_engine.c refnpu_mmu_walk.h \
	refnpu_mmu_walk.c refnpu_core.h refnpu_core.c; do
	[ -f "$repo/kernel/hw/$f" ] || die "kernel/hw/$f missing"
	sync_file "$repo/kernel/hw/$f" "$devdir/$f"
done
qdir=$src/tests/qtest
sync_file "$here/qtest.meson" "$qdir/refnpu/meson.build"
sync_file "$repo/tests/qtest/refnpu-test.c" "$qdir/refnpu-test.c"
sync_file "$here/bench/refnpu-gemm-bench.c" "$qdir/refnpu/refnpu-gemm-bench.c"
sync_file "$here/fuzz/refnpu_fuzz.c" "$qdir/fuzz/refnpu_fuzz.c"

# --- configure ---------------------------------------------------------------
config_args=(
	--python=/usr/bin/python3
	--target-list=x86_64-softmmu
	--without-default-features
	--enable-kvm
	--enable-fdt=system
	--disable-docs
	--disable-tools
	--disable-install-blobs
)
if [ $sanitize = 1 ]; then
	command -v clang >/dev/null ||
		die "--sanitize needs clang and libFuzzer (run scripts/setup-deps.sh)"
	# The fuzz binary takes no -L: give it Debian's firmware directories.
	config_args+=(--cc=clang --cxx=clang++ --enable-asan --enable-ubsan
		--enable-fuzzing
		--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu)
fi
stamp="${config_args[*]}"
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.refnpu-config" 2>/dev/null)" != "$stamp" ]; then
	log "configuring in $build"
	rm -rf "$build"
	mkdir -p "$build"
	(cd "$build" && "$src/configure" "${config_args[@]}" >&2) ||
		die "configure failed"
	echo "$stamp" >"$build/.refnpu-config"
fi

# --- build -----------------------------------------------------------------
targets=(qemu-system-x86_64)
[ $want_qtest = 1 ] && targets+=(tests/qtest/refnpu-test)
[ $want_bench = 1 ] && targets+=(tests/qtest/refnpu/refnpu-gemm-bench)
[ $want_fuzz = 1 ] && targets+=(qemu-fuzz-x86_64)
start=$(date +%s)
ninja_log=$(mktemp)
trap 'rm -f "$ninja_log"' EXIT
ninja -C "$build" -j "$jobs" "${targets[@]}" 2>&1 | tee "$ninja_log" >&2 ||
	die "ninja failed"
# QEMU's release builds do not use -Werror; hold our own files to it.
warn_re='[^ ]*refnpu[^ ]*\.[ch]:[0-9]+:[0-9]+: warning'
if grep -E "$warn_re" "$ninja_log" >&2; then
	# Make the next run compile them again rather than pass silently.
	grep -oE "$warn_re" "$ninja_log" | sed 's/:.*//' | sort -u |
		while read -r f; do touch "$build/$f" 2>/dev/null || true; done
	die "warnings in refnpu sources"
fi
log "build finished in $(($(date +%s) - start)) s"
# A binary in the build tree looks for its firmware path inside
# qemu-bundle/: point those directories at Debian's firmware.
if [ $sanitize = 1 ]; then
	for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
		mkdir -p "$build/qemu-bundle$(dirname "$d")"
		ln -sfn "$d" "$build/qemu-bundle$d"
	done
fi

if [ $want_qtest = 1 ]; then echo "$build/tests/qtest/refnpu-test"; fi
if [ $want_bench = 1 ]; then echo "$build/tests/qtest/refnpu/refnpu-gemm-bench"; fi
if [ $want_fuzz = 1 ]; then echo "$build/qemu-fuzz-x86_64"; fi
echo "$build/qemu-system-x86_64"
exit 0
}
