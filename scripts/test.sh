#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run every test: install what is missing, build everything, run all
# suites (host unit tests, style checks, qtest, KUnit, guest suites) and
# print one closing line counting every test case: 'N passed, N failed,
# N skipped'.  Extra arguments go to 'meson test' (e.g. --suite vm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --with-kernel-source
builddir=${REFNPU_BUILD:-build}
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" >/dev/null
meson compile -C "$builddir"
set +e
meson test -C "$builddir" --print-errorlogs "$@"
rc=$?
set -e
python3 scripts/test-summary.py "$builddir/meson-logs/testlog.json" || rc=1
[ $rc = 0 ] || rc=1
exit $rc
