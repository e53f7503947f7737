#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs inside the guest, after refnpu.ko (built with KUnit) was loaded:
# loading it ran its KUnit suites.  Prints each named suite's KTAP results
# from debugfs (vmtest.py turns the "ok N case" lines into TAP results) and
# fails if a suite is missing or any case failed.
#
# Usage: run-kunit.sh SUITE...
dir=/sys/kernel/debug/kunit
rc=0
for suite in "$@"; do
	if [ ! -r "$dir/$suite/results" ]; then
		echo "# $suite: no results in $dir (suite not built or not run)"
		rc=1
		continue
	fi
	cat "$dir/$suite/results"
	grep -q "^ *not ok " "$dir/$suite/results" && rc=1
done
exit $rc
