#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run every test: install what is missing, build everything, run all
# suites (host unit tests, style checks, qtest, KUnit, guest suites) and
# print the wall time of each phase, test and suite, and one closing line
# counting every test case: 'N passed, N failed, N skipped'.  Extra
# arguments go to 'meson test' (e.g. --suite vm).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
scripts/setup-deps.sh --with-kernel-source
t1=$SECONDS
builddir=${REFNPU_BUILD:-build}
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" >/dev/null
meson compile -C "$builddir"
t2=$SECONDS
set +e
meson test -C "$builddir" --print-errorlogs "$@"
rc=$?
set -e
t3=$SECONDS
echo "wall time: set-up $((t1 - t0)) s, build $((t2 - t1)) s, tests $((t3 - t2)) s, total $((t3 - t0)) s"
python3 scripts/test-summary.py "$builddir/meson-logs/testlog.json" || rc=1
[ $rc = 0 ] || rc=1
exit $rc
