#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Harness self-test of the per-stage timing: run vmtest.py (its arguments
follow) with one command, `sleep 3` named 'three seconds', and check that its
'# host time:' line gives boot, module load, that command, teardown and
power-off a time, with the command's close to the 3 s it slept."""
import re
import subprocess
import sys


def main():
    out = subprocess.run([sys.executable] + sys.argv[1:], stdout=subprocess.PIPE,
                         text=True).stdout
    print(out, end="")
    lines = [l for l in out.splitlines() if l.startswith("# host time: ")]
    if len(lines) != 1:
        print("check-stage-times: expected one '# host time:' line, got %d" % len(lines))
        return 1
    stages = {}
    for part in lines[0][len("# host time: "):].split(", "):
        m = re.match(r"^(.+) ([0-9.]+) s$", part)
        if not m:
            print("check-stage-times: stage without a time: %r" % part)
            return 1
        stages[m.group(1)] = float(m.group(2))
    want = ["boot", "modules", "three seconds", "teardown", "power-off"]
    if list(stages) != want:
        print("check-stage-times: stages %s, expected %s" % (list(stages), want))
        return 1
    if stages["boot"] <= 0 or not 2.5 <= stages["three seconds"] < 60:
        print("check-stage-times: implausible times %s" % stages)
        return 1
    print("check-stage-times: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
