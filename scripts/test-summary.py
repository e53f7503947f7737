#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Print the wall time of every test `meson test` ran and of every suite,
then count every individual test case and print one closing line:
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


def fmt_time(sec):
    return "%dm%04.1fs" % (sec // 60, sec % 60) if sec >= 60 else "%.1fs" % sec


def time_table(entries):
    """The wall time of each test, slowest first, then of each suite.  A
    test in several suites counts in each, so the suites overlap; the total
    is the sum over tests (meson ran them one after another, or the
    parallel ones side by side)."""
    if not entries:
        return
    width = max(len(e.get("name", "")) for e in entries)
    print("time per test (slowest first):")
    for e in sorted(entries, key=lambda e: -e.get("duration", 0)):
        print("  %-*s %9s  %s" % (width, e.get("name", ""), fmt_time(e.get("duration", 0)),
                                  e.get("result", "")))
    suites = {}
    for e in entries:
        # meson names a test "project:suite1+suite2 / test"
        name = e.get("name", "")
        prefix = name.split(" / ", 1)[0] if " / " in name else ""
        for s in prefix.split(":", 1)[-1].split("+") if prefix else []:
            n, t = suites.get(s, (0, 0.0))
            suites[s] = (n + 1, t + e.get("duration", 0))
    print("time per suite (a test counts in each of its suites):")
    for s, (n, t) in sorted(suites.items(), key=lambda kv: -kv[1][1]):
        print("  %-*s %9s  %d tests" % (width, s, fmt_time(t), n))
    print("  %-*s %9s  %d tests" % (width, "total", fmt_time(sum(e.get("duration", 0)
                                                               for e in entries)),
                                    len(entries)))


STAGE_RE = re.compile(r"^# host time: (.*)$")
PART_RE = re.compile(r"^(.+) ([0-9.]+) s$")


def stage_table(entries):
    """Where the time of each guest run went (tests/vm/vmtest.py prints a
    '# host time:' line: boot, module load, each program, teardown): a line
    per run, then each stage's sum over all runs, largest first."""
    runs = []
    for e in entries:
        for line in (e.get("stdout", "") or "").splitlines():
            m = STAGE_RE.match(line.strip())
            if not m:
                continue
            stages = {}
            for part in m.group(1).split(", "):
                pm = PART_RE.match(part)
                if pm:
                    stages[pm.group(1)] = stages.get(pm.group(1), 0.0) + float(pm.group(2))
            runs.append((e.get("name", "").split(" / ", 1)[-1], stages))
    if not runs:
        return
    width = max(len(r) for r, _ in runs)
    print("guest time per stage (host seconds):")
    total = {}
    for r, st in runs:
        print("  %-*s %s" % (width, r, ", ".join("%s %.1f" % kv for kv in st.items())))
        for n, v in st.items():
            total[n] = total.get(n, 0.0) + v
    print("  %-*s %s" % (width, "all runs", ", ".join(
        "%s %.1f" % kv for kv in sorted(total.items(), key=lambda kv: -kv[1]))))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json"
    tp = tf = ts = 0
    entries = []
    try:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    entries.append(json.loads(line))
    except OSError as e:
        print("test-summary: cannot read %s: %s" % (path, e), file=sys.stderr)
        tf += 1
    time_table(entries)
    stage_table(entries)
    for entry in entries:
        p, f, s = count(entry)
        tp, tf, ts = tp + p, tf + f, ts + s
    print("%d passed, %d failed, %d skipped" % (tp, tf, ts))
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
