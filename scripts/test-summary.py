#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Count every individual test that `meson test` ran and print one line:
'N passed, N failed, N skipped'.

Meson's own summary counts test programs; this counts test cases: each TAP
line (guest runs, KUnit, qtest), each GoogleTest case (host suites), and one
case for every other program.  Expected failures (harness self-tests) count
as passed.
"""
import json
import re
import sys

TAP_RE = re.compile(r"^(ok|not ok) \d+\b(.*)$")
GTEST_RE = re.compile(r"^\[ +(OK|FAILED|SKIPPED) +\] (\S+) \(\d+ ms\)$")


def count(entry):
    p = f = s = 0
    result = entry.get("result", "")
    out = entry.get("stdout", "") or ""
    if result == "EXPECTEDFAIL":
        return 1, 0, 0
    if result == "UNEXPECTEDPASS":
        return 0, 1, 0
    for line in out.splitlines():
        m = TAP_RE.match(line)
        if m:
            if m.group(1) == "not ok":
                f += 1
            elif "# SKIP" in m.group(2).upper():
                s += 1
            else:
                p += 1
            continue
        m = GTEST_RE.match(line.strip())
        if m:
            if m.group(1) == "OK":
                p += 1
            elif m.group(1) == "FAILED":
                f += 1
            else:
                s += 1
    if p + f + s == 0:
        if result == "OK":
            return 1, 0, 0
        if result == "SKIP":
            return 0, 0, 1
        return 0, 1, 0
    if result not in ("OK", "SKIP") and f == 0:
        f += 1  # the program failed (crash, timeout) after its cases passed
    return p, f, s


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json"
    tp = tf = ts = 0
    try:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                p, f, s = count(json.loads(line))
                tp, tf, ts = tp + p, tf + f, ts + s
    except OSError as e:
        print("test-summary: cannot read %s: %s" % (path, e), file=sys.stderr)
        tf += 1
    print("%d passed, %d failed, %d skipped" % (tp, tf, ts))
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
