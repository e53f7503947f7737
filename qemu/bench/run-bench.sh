#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build (or refresh) the custom QEMU and the GEMM benchmark, then run the
# device's fp32 GEMM against single-threaded OpenBLAS on this host and
# print the throughput ratio.  A measurement, not a test.
#
# Usage: qemu/bench/run-bench.sh [-n SIZE] [-r REPS] [--huge] [--min-ratio R]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mapfile -t out < <("$here/../build-qemu.sh" --bench)
[ ${#out[@]} -ge 2 ] || {
	echo "run-bench: qemu/build-qemu.sh failed" >&2
	exit 1
}
bench=${out[0]}
qemu=${out[1]}

# libqtest runs QEMU through the shell and derives the target from the
# binary's name: a wrapper adds the firmware path and -nodefaults.
wrap=$(mktemp -d "${TMPDIR:-/tmp}/refnpu-bench.XXXXXX")
trap 'rm -rf "$wrap"' EXIT
cat >"$wrap/qemu-system-x86_64" <<WRAP
#!/bin/sh
exec "$qemu" -nodefaults -L /usr/share/seabios -L /usr/share/qemu "\$@"
WRAP
chmod +x "$wrap/qemu-system-x86_64"

export QTEST_QEMU_BINARY=$wrap/qemu-system-x86_64
export OPENBLAS_NUM_THREADS=1
"$bench" "$@" | grep -v '^# starting QEMU'
