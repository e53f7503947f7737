#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build (or refresh) the custom QEMU and the refnpu qtest, then run the
# qtest against it, TAP on stdout.  Called by `meson test --suite qtest`.
#
# Usage: tests/qtest/run-qtest.sh [--sanitize] [qtest arguments, e.g. -p /refnpu/mmu]
#   --sanitize  run against the AddressSanitizer + UndefinedBehaviorSanitizer
#               build (qemu/build-qemu.sh --sanitize): any report aborts
#               QEMU (or the qtest), which fails the test that was running
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

variant=()
if [ "${1:-}" = --sanitize ]; then
	variant=(--sanitize)
	shift
	# Reports abort the process; leaks at exit are reports too.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
fi

mapfile -t out < <("$repo/qemu/build-qemu.sh" "${variant[@]}" --qtest)
[ ${#out[@]} -ge 2 ] || {
	echo "Bail out! qemu/build-qemu.sh failed"
	exit 1
}
qtest=${out[0]}
qemu=${out[1]}

# libqtest derives the target from the binary's name and runs it through
# the shell: a wrapper named like QEMU adds the firmware search path (the
# +ds build installs no blobs) and -nodefaults (no default NIC, whose
# option ROM the system does not ship).
wrap=$(mktemp -d "${TMPDIR:-/tmp}/refnpu-qtest.XXXXXX")
trap 'rm -rf "$wrap"' EXIT
cat >"$wrap/qemu-system-x86_64" <<WRAP
#!/bin/sh
exec "$qemu" -nodefaults -L /usr/share/seabios -L /usr/share/qemu "\$@"
WRAP
chmod +x "$wrap/qemu-system-x86_64"

export QTEST_QEMU_BINARY=$wrap/qemu-system-x86_64
"$qtest" --tap -k "$@"
