#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Boot a guest kernel with refnpu under QEMU and run commands inside it.

The harness builds a busybox initramfs (kernel modules taken from the guest
kernel's own image, decompressed; the files given with --file and every shared
library they need, found with ldd), boots ``qemu-system-x86_64 -nodefaults
-machine q35`` under TCG and runs each --cmd in order.

Two serial ports are used: ttyS0 carries the kernel console (streamed to the
log file), ttyS1 carries the harness protocol (command output, exit codes,
files sent back to the host, the final kernel log).  Keeping them apart means
kernel messages can never corrupt a result.

The run fails if any command fails, if the guest does not finish within the
timeout (the guest is killed), or if the kernel log shows a WARN, BUG, Oops,
KASAN, UBSAN, lockdep, kmemleak or hung-task report - even when every command
passed.

Results are printed as TAP on stdout: one line per GoogleTest case (from the
XML each command may write to $GTEST_OUTPUT) or per KTAP result line, one line
per plain command, one line for the kernel-log check.
"""

import argparse
import base64
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

# Kernel log patterns that fail a run.  Each one is a report a kernel
# developer would treat as a bug, whatever the tests said.
SPLAT_PATTERNS = [
    r"WARNING: CPU: \d+ PID: \d+ at ",
    r"\bBUG: ",
    r"kernel BUG at ",
    r"\bOops\b",
    r"general protection fault",
    r"KASAN: ",
    r"UBSAN: ",
    r"WARNING: possible (circular|recursive) locking",
    r"WARNING: suspicious RCU usage",
    r"WARNING: inconsistent lock state",
    r"WARNING: bad unlock balance",
    r"DEBUG_LOCKS_WARN_ON",
    r"INFO: task .* blocked for more than",
    r"unreferenced object 0x",
    r"Kernel panic",
    r"DMA-API: .* (bug|leak)",
    r"list_(add|del) corruption",
]
SPLAT_RE = re.compile("|".join("(?:%s)" % p for p in SPLAT_PATTERNS))
# Lines of each failure's message repeated at the end of stderr.
FAIL_SUMMARY_LINES = 12
# One KCSAN report: from its "BUG: KCSAN:" line up to the rule that ends it
# (re.split keeps the captured report as an element of its own).
KCSAN_BLOCK_RE = re.compile(r"(BUG: KCSAN: .*?^=+$)", re.M | re.S)


def kcsan_in_scope(block, word):
    """Whether a KCSAN report is about code named by @word: the racing
    functions of its title, or the first frame of either access. A race
    between two core functions that merely have a refnpu caller deeper in
    the stack (mm's LRU against shmem's page lookup under BO_CREATE) is
    the core's."""
    lines = block.splitlines()
    if word in lines[0]:
        return True
    for i, line in enumerate(lines[:-1]):
        if re.search(r" by (task \d+|interrupt) on cpu \d+:$", line) and word in lines[i + 1]:
            return True
    return False

PROTO = "@@REFNPU"

INIT_TEMPLATE = r"""#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib:/usr/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /results
P=/dev/ttyS1
stty -F $P raw -echo 2>/dev/null
say() { echo "$*" > $P; }
say "@@REFNPU BOOTED $(cut -d' ' -f1 /proc/uptime)@@"
i=0
while read -r line; do
    insmod $line > /tmp/insmod.log 2>&1 || { say "@@REFNPU INSMOD-FAIL $line@@"; cat /tmp/insmod.log > $P; }
done < /etc/refnpu/modules
say "@@REFNPU MODULES@@"
for f in /etc/refnpu/cmd.*; do
    [ -e "$f" ] || continue
    n=${f##*.}
    say "@@REFNPU CMD-BEGIN $n@@"
    GTEST_OUTPUT=xml:/results/gtest.$n.xml sh "$f" > $P 2>&1 < /dev/null
    rc=$?
    say "@@REFNPU CMD-END $n $rc@@"
    if [ -e /results/gtest.$n.xml ]; then
        say "@@REFNPU FILE gtest.$n.xml@@"
        base64 /results/gtest.$n.xml > $P
        say "@@REFNPU FILE-END@@"
    fi
done
say "@@REFNPU TEARDOWN@@"
if [ -e /sys/kernel/debug/kmemleak ]; then
    echo scan > /sys/kernel/debug/kmemleak
    sleep 1
    echo scan > /sys/kernel/debug/kmemleak
    cat /sys/kernel/debug/kmemleak > /tmp/kmemleak
    if [ -s /tmp/kmemleak ]; then
        say "@@REFNPU FILE kmemleak.txt@@"; base64 /tmp/kmemleak > $P; say "@@REFNPU FILE-END@@"
    fi
fi
dmesg > /tmp/dmesg
say "@@REFNPU FILE dmesg.txt@@"
base64 /tmp/dmesg > $P
say "@@REFNPU FILE-END@@"
say "@@REFNPU DONE@@"
sync
poweroff -f
"""


def cmd_name(args, i):
    """The name of command @i: its --name, else its program's name."""
    return args.name[i] if i < len(args.name) else args.cmd[i].split()[0].split("/")[-1]


def stage_times(at, args, elapsed):
    """Where the host's wall time went: boot (to init), module load, each
    command, teardown (kmemleak scan, kernel log) and power-off, from the
    host times at which the guest's protocol lines arrived."""
    def span(a, b):
        return "%.1f s" % (b - a) if a is not None and b is not None else "?"

    booted = at.get(("BOOTED", ""))
    boot = "%.1f s" % booted if booted is not None else "?"
    out = ["boot " + boot, "modules " + span(booted, at.get(("MODULES", "")))]
    # a command's time runs to the next stage: its results' transfer counts
    begins = [at.get(("CMD-BEGIN", "%03d" % i)) for i in range(len(args.cmd))]
    ends = begins[1:] + [at.get(("TEARDOWN", ""))]
    for i in range(len(args.cmd)):
        out.append("%s %s" % (cmd_name(args, i), span(begins[i], ends[i])))
    done = at.get(("DONE", ""))
    out += ["teardown " + span(at.get(("TEARDOWN", "")), done),
            "power-off " + span(done, elapsed)]
    return ", ".join(out)


def die(msg):
    print("vmtest: " + msg, file=sys.stderr)
    sys.exit(2)


class Initramfs:
    """Builds the guest's root file system as a newc cpio archive."""

    def __init__(self, root):
        self.root = root

    def add_file(self, src, dest, mode=None):
        dst = os.path.join(self.root, dest.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
        if mode is not None:
            os.chmod(dst, mode)

    def add_text(self, dest, text, mode=0o644):
        dst = os.path.join(self.root, dest.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        os.chmod(dst, mode)

    def add_binary(self, src, dest):
        """Add an executable or library and every shared library it needs."""
        self.add_file(src, dest)
        for lib in ldd(src):
            # Each library goes to the path the host's loader found it at
            # (the ELF interpreter must be there) and to /lib, which the
            # guest searches: a build-tree library found through an
            # $ORIGIN rpath on the host would not be found in the guest.
            for where in (lib, "/lib/" + os.path.basename(lib)):
                dst = os.path.join(self.root, where.lstrip("/"))
                if not os.path.exists(dst):
                    self.add_file(os.path.realpath(lib), where)

    def pack(self, out):
        with open(out, "wb") as f:
            find = subprocess.Popen(["find", "."], cwd=self.root,
                                    stdout=subprocess.PIPE)
            subprocess.check_call(["cpio", "-o", "-H", "newc", "--quiet"],
                                  cwd=self.root, stdin=find.stdout, stdout=f)
            find.wait()


def ldd(path):
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    except OSError:
        return []
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def module_closure(moddir, names):
    """Resolve module names (or paths inside the tree) to an ordered list of
    .ko files, dependencies first, using the image's own modules.dep."""
    deps = {}
    byname = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
            base = os.path.basename(mod).split(".ko")[0].replace("-", "_")
            byname[base] = mod
    builtin = set()
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            for line in f:
                builtin.add(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_"))
    except OSError:
        pass
    order = []

    def visit(mod):
        if mod in order:
            return
        for d in deps.get(mod, []):
            visit(d)
        order.append(mod)

    for n in names:
        key = n.replace("-", "_")
        if key in builtin:
            continue  # built into this kernel (e.g. the debug kernel)
        if key not in byname:
            die("module %s not found in %s/modules.dep" % (n, moddir))
        visit(byname[key])
    return order


def decompressed_module(moddir, rel, cachedir):
    """busybox insmod cannot read .ko.xz: keep decompressed copies cached."""
    src = os.path.join(moddir, rel)
    name = os.path.basename(rel)
    for ext in (".xz", ".zst", ".gz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    out = os.path.join(cachedir, name)
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    # Two guest runs may decompress the same module at once: each writes a
    # file of its own and renames it into place.
    tmp = "%s.tmp.%d" % (out, os.getpid())
    if src.endswith(".xz"):
        subprocess.check_call("xz -dc %s > %s" % (shlex.quote(src), shlex.quote(tmp)), shell=True)
    elif src.endswith(".zst"):
        subprocess.check_call(["zstd", "-q", "-d", "-f", src, "-o", tmp])
    elif src.endswith(".gz"):
        subprocess.check_call("gzip -dc %s > %s" % (shlex.quote(src), shlex.quote(tmp)), shell=True)
    else:
        shutil.copy2(src, tmp)
    os.rename(tmp, out)
    return out


def find_busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            out = subprocess.run(["file", "-L", p], capture_output=True, text=True).stdout \
                if shutil.which("file") else "statically linked"
            if "dynamically" not in out:
                return p
    die("busybox-static is not installed; run scripts/setup-deps.sh")


def gtest_cases(xml_bytes):
    """Yield (name, status, message, seconds) for each test case in a
    GoogleTest XML."""
    root = ET.fromstring(xml_bytes)
    for case in root.iter("testcase"):
        name = "%s.%s" % (case.get("classname"), case.get("name"))
        fails = case.findall("failure")
        skipped = case.find("skipped") is not None or case.get("result") == "skipped"
        try:
            secs = float(case.get("time") or 0)
        except ValueError:
            secs = 0.0
        if fails:
            msg = (fails[0].get("message") or "").splitlines()
            yield name, "fail", msg[0] if msg else "", secs
        elif skipped:
            yield name, "skip", "", secs
        else:
            yield name, "pass", "", secs


KTAP_RE = re.compile(r"^\s*(ok|not ok) (\d+) (\S.*?)(?:\s+#\s*(SKIP.*))?$")


def ktap_cases(text):
    """Yield (name, status) for the nested KTAP test-case lines of a run.

    KTAP indents a subtest's lines, its "# Subtest: NAME" header included,
    4 spaces deeper than its parent's; the subtest's own "ok N NAME" line
    sits at the parent's level.  So a result line belongs to the header at
    its own indentation: with 6.12's KUnit (dmesg and the debugfs results
    files alike) suites are "    # Subtest: SUITE" and their cases
    "    ok N CASE"; parameters of a case one level deeper.  Result lines
    without a header at their level (the suites' own) are not cases.
    """
    headers = {}  # indentation -> name of the subtest being printed there
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        m = re.match(r"^\s*# Subtest: (\S+)", line)
        if m:
            headers = {i: n for i, n in headers.items() if i < indent}
            headers[indent] = m.group(1)
            continue
        m = KTAP_RE.match(line)
        if not m:
            continue
        if indent in headers:
            path = ".".join(headers[i] for i in sorted(headers) if i <= indent)
            status = "skip" if m.group(4) else ("pass" if m.group(1) == "ok" else "fail")
            yield "%s.%s" % (path, m.group(3)), status
        # Subtests deeper than this result line are finished.
        headers = {i: n for i, n in headers.items() if i <= indent}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel-dir", required=True,
                    help="unpacked kernel image (scripts/fetch-kernel.sh) or @FILE")
    ap.add_argument("--abi", required=True, help="kernel ABI, e.g. 6.12.117+deb12-amd64; 'release' reads "
                    "KERNEL_DIR/release (debug kernel)")
    ap.add_argument("--vmlinuz", help="kernel image (default: from --kernel-dir)")
    ap.add_argument("--modules-dir", help="module tree (default: from --kernel-dir)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--module", action="append", default=[],
                    help="kernel module to load from the image, with its dependencies")
    ap.add_argument("--ko", action="append", default=[],
                    help="out-of-tree module to load after --module: PATH[ PARAMS]")
    ap.add_argument("--file", action="append", default=[],
                    help="SRC[:DEST] binary or file to add (default DEST /usr/bin/NAME)")
    ap.add_argument("--cmd", action="append", default=[], help="shell command run in the guest")
    ap.add_argument("--name", action="append", default=[],
                    help="name of the matching --cmd in the TAP output")
    ap.add_argument("--qemu-arg", action="append", default=[],
                    help="extra QEMU argument (shell-split)")
    ap.add_argument("--append", default="", help="extra kernel command line")
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--smp", default="2")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--kvm", action="store_true", help="use KVM (opt-in; default TCG)")
    ap.add_argument("--log", help="guest console log file")
    ap.add_argument("--outdir", help="directory for files sent back by the guest")
    ap.add_argument("--expect-splat", action="store_true",
                    help="self-test: succeed only if the kernel log shows a splat")
    ap.add_argument("--verbose", action="store_true", help="echo command output to stderr")
    ap.add_argument("--kcsan-scope", metavar="WORD",
                    help="count a KCSAN data-race report as a splat only when WORD (a module "
                         "or symbol prefix) appears in it; the others are listed, not failed")
    args = ap.parse_args()
    # Values that another build step decides (the custom QEMU's path, the
    # debug kernel's cache directory) are passed as @FILE: the last line of
    # FILE holds the value.
    for opt in ("kernel_dir", "abi", "qemu"):
        val = getattr(args, opt)
        if val and val.startswith("@"):
            try:
                with open(val[1:]) as f:
                    setattr(args, opt, f.read().strip().splitlines()[-1])
            except (OSError, IndexError):
                die("cannot read %s from %s" % (opt, val[1:]))
    if args.abi == "release":
        try:
            with open(os.path.join(args.kernel_dir, "release")) as f:
                args.abi = f.read().strip()
        except OSError:
            die("%s has no release file" % args.kernel_dir)

    kdir = args.kernel_dir
    vmlinuz = args.vmlinuz or os.path.join(kdir, "root/boot/vmlinuz-" + args.abi)
    moddir = args.modules_dir or os.path.join(kdir, "root/lib/modules", args.abi)
    for p in (vmlinuz, moddir):
        if not os.path.exists(p):
            die("%s does not exist; run scripts/fetch-kernel.sh" % p)
    qemu = shutil.which(args.qemu) or args.qemu
    if not os.path.exists(qemu):
        die("QEMU binary %s not found; run scripts/setup-deps.sh" % args.qemu)

    work = tempfile.mkdtemp(prefix="refnpu-vm-")
    try:
        return run(args, work, vmlinuz, moddir, qemu)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work, vmlinuz, moddir, qemu):
    root = os.path.join(work, "root")
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc/refnpu", "lib", "usr/bin",
              "lib/modules"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    ir = Initramfs(root)
    ir.add_file(find_busybox(), "/bin/busybox", 0o755)
    for applet in ("sh", "mount", "insmod", "rmmod", "lsmod", "modprobe", "cat", "echo",
                   "ls", "dmesg", "base64", "poweroff", "stty", "sleep", "cut", "grep",
                   "sed", "test", "[", "true", "false", "mkdir", "rm", "cp", "dd", "head",
                   "tail", "wc", "sync", "find", "readlink", "basename", "dirname", "env",
                   "kill", "ps", "timeout", "tr", "uname", "awk", "xargs", "chmod", "ln",
                   "mknod", "stat", "hexdump", "od", "seq", "printf", "id", "su", "chown"):
        os.symlink("busybox", os.path.join(root, "bin", applet))

    cache = os.path.join(args.kernel_dir, "decompressed")
    os.makedirs(cache, exist_ok=True)
    load = []
    for rel in module_closure(moddir, args.module):
        ko = decompressed_module(moddir, rel, cache)
        dest = "/lib/modules/" + os.path.basename(ko)
        ir.add_file(ko, dest)
        load.append(dest)
    for spec in args.ko:
        path, _, params = spec.partition(" ")
        if not os.path.exists(path):
            die("module %s not found (did the module build run?)" % path)
        dest = "/lib/modules/" + os.path.basename(path)
        ir.add_file(path, dest)
        load.append((dest + " " + params).strip())
    ir.add_text("/etc/refnpu/modules", "".join(l + "\n" for l in load))

    for spec in args.file:
        src, _, dest = spec.partition(":")
        if not os.path.exists(src):
            die("file %s not found" % src)
        dest = dest or "/usr/bin/" + os.path.basename(src)
        if os.access(src, os.X_OK) and not os.path.isdir(src):
            ir.add_binary(src, dest)
        else:
            ir.add_file(src, dest)
    for i, cmd in enumerate(args.cmd):
        ir.add_text("/etc/refnpu/cmd.%03d" % i, cmd + "\n")
    ir.add_text("/init", INIT_TEMPLATE, 0o755)
    initrd = os.path.join(work, "initrd.cpio")
    ir.pack(initrd)

    log_path = args.log or os.path.join(work, "console.log")
    proto_path = os.path.join(work, "proto.pipe")
    os.mkfifo(proto_path + ".in")
    os.mkfifo(proto_path + ".out")
    append = "console=ttyS0 loglevel=4 panic=-1 rdinit=/init " + args.append
    cmd = [qemu, "-nodefaults", "-machine", "q35", "-m", args.memory, "-smp", args.smp,
           "-no-reboot", "-display", "none", "-monitor", "none",
           "-serial", "file:" + log_path, "-serial", "pipe:" + proto_path,
           "-kernel", vmlinuz, "-initrd", initrd, "-append", append.strip(),
           "-L", "/usr/share/seabios", "-L", "/usr/share/qemu"]
    if args.kvm:
        cmd += ["-accel", "kvm", "-cpu", "host"]
    else:
        cmd += ["-accel", "tcg", "-cpu", "max"]
    for a in args.qemu_arg:
        cmd += shlex.split(a)

    # A guest kernel that crashes before init ran never reached refnpu (the
    # modules load after BOOTED): that is the emulator (TCG has rare early
    # boot crashes, e.g. an int3 left by text patching), so it is booted
    # once more, and the retry is reported.
    boot_retries = []
    for attempt in range(2):
        t0 = time.monotonic()
        qemu_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        lines = []
        # host time (since t0) at which each protocol line arrived
        stamps = {}
        first_line_at = [None]
        reader_done = threading.Event()

        def reader():
            # Opening the pipe blocks until QEMU opens its end.
            with open(proto_path + ".out", "rb") as f:
                for raw in f:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if first_line_at[0] is None and "BOOTED" in line:
                        first_line_at[0] = time.monotonic()
                    if line.strip().startswith(PROTO):
                        stamps[len(lines)] = time.monotonic() - t0
                    lines.append(line)
            reader_done.set()

        # QEMU opens the .in side for writing; hold it open so it never sees EOF.
        threading.Thread(target=reader, daemon=True).start()
        in_fd = os.open(proto_path + ".in", os.O_RDWR)
        timed_out = False
        try:
            qemu_proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            qemu_proc.kill()
            qemu_proc.wait()
        os.close(in_fd)
        reader_done.wait(5)
        elapsed = time.monotonic() - t0
        qemu_out = qemu_proc.stdout.read().decode("utf-8", "replace")

        booted = any("BOOTED" in l for l in lines)
        if attempt == 0 and not booted and not timed_out and qemu_proc.returncode == 0:
            crash = log_path + ".early-crash"
            try:
                os.replace(log_path, crash)
            except OSError:
                pass
            boot_retries.append(crash)
            os.unlink(proto_path + ".in")
            os.unlink(proto_path + ".out")
            os.mkfifo(proto_path + ".in")
            os.mkfifo(proto_path + ".out")
            continue
        break

    # Parse the protocol stream.
    results = []   # (name, status, message)
    files = {}
    outputs = {}
    rcs = {}
    boot_time = None
    done = False
    cur = None
    cur_file = None
    insmod_fail = []
    # host time of each stage: boot, module load, each command, teardown
    at = {}
    for idx, line in enumerate(lines):
        m = re.match(r"^@@REFNPU (\S+)(?: (.*))?@@$", line.strip())
        if cur_file is not None:
            if m and m.group(1) == "FILE-END":
                files[cur_file[0]] = base64.b64decode("".join(cur_file[1]))
                cur_file = None
            else:
                cur_file[1].append(line.strip())
            continue
        if not m:
            if cur is not None:
                outputs[cur].append(line)
            continue
        kind, arg = m.group(1), m.group(2) or ""
        if kind in ("BOOTED", "MODULES", "CMD-BEGIN", "TEARDOWN", "DONE"):
            at[(kind, arg.split(" ")[0] if kind == "CMD-BEGIN" else "")] = stamps.get(idx)
        if kind == "BOOTED":
            boot_time = float(arg)
        elif kind == "INSMOD-FAIL":
            insmod_fail.append(arg)
        elif kind == "CMD-BEGIN":
            cur = int(arg)
            outputs[cur] = []
        elif kind == "CMD-END":
            n, rc = arg.split()
            rcs[int(n)] = int(rc)
            cur = None
        elif kind == "FILE":
            cur_file = (arg, [])
        elif kind == "DONE":
            done = True

    try:
        with open(log_path, "r", errors="replace") as f:
            console = f.read()
    except OSError:
        console = ""
    dmesg = files.get("dmesg.txt", b"").decode("utf-8", "replace")
    kmemleak = files.get("kmemleak.txt", b"").decode("utf-8", "replace")
    if args.outdir:
        os.makedirs(args.outdir, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(args.outdir, name), "wb") as f:
                f.write(data)
        for n, out in outputs.items():
            with open(os.path.join(args.outdir, "cmd.%03d.log" % n), "w") as f:
                f.write("\n".join(out) + "\n")

    slowest = []
    for i, c in enumerate(args.cmd):
        name = cmd_name(args, i)
        out = "\n".join(outputs.get(i, []))
        if args.verbose or rcs.get(i, 1) not in (0, 77):
            sys.stderr.write("---- guest: %s (exit %s) ----\n%s\n" % (c, rcs.get(i), out))
        xml = files.get("gtest.%03d.xml" % i)
        cases = []
        if xml:
            try:
                parsed = list(gtest_cases(xml))
                cases = [("%s: %s" % (name, n), s, msg) for n, s, msg, _ in parsed]
                slowest += [(t, "%s: %s" % (name, n)) for n, _, _, t in parsed]
            except ET.ParseError as e:
                cases = [("%s: gtest XML" % name, "fail", "unparsable XML: %s" % e)]
        kcases = [("%s: %s" % (name, n), s, "") for n, s in ktap_cases(out)]
        cases += kcases
        rc = rcs.get(i)
        if rc is None:
            results.append((name, "fail", "did not finish (timeout or guest crash)"))
        elif cases:
            results.extend(cases)
            if rc not in (0, 77) and not any(s == "fail" for _, s, _ in cases):
                results.append((name, "fail", "exit status %d" % rc))
        elif rc == 77:
            results.append((name, "skip", "skipped (exit 77)"))
        elif rc == 0:
            results.append((name, "pass", ""))
        else:
            # A program without per-case results (the fuzzer, a tool):
            # the message carries its first violations (the fuzzer prints
            # them as they happen) and the end of its output, where it
            # says why it failed.
            out_lines = outputs.get(i, [])
            half = FAIL_SUMMARY_LINES // 2
            first = [l for l in out_lines if "VIOLATION" in l][:half]
            tail = [l for l in out_lines[-half:] if l not in first]
            results.append((name, "fail", "\n".join(["exit status %d" % rc] + first + tail)))

    # KCSAN reports races all over a kernel; with --kcsan-scope only those
    # with one side in the code under test fail the run.
    kcsan_other = 0
    if args.kcsan_scope:
        def scope(text):
            nonlocal kcsan_other
            out = []
            for block in KCSAN_BLOCK_RE.split(text):
                if block.startswith("BUG: KCSAN: ") and not kcsan_in_scope(block, args.kcsan_scope):
                    kcsan_other += 1
                    continue
                out.append(block)
            return "".join(out)
        console, dmesg = scope(console), scope(dmesg)
        results.append(("KCSAN reports outside %s (not failed)" % args.kcsan_scope, "pass",
                        "%d" % kcsan_other))

    # The kernel-log check looks at everything the kernel printed.
    full_log = console + "\n" + dmesg + "\n" + kmemleak
    splats = sorted(set(m.group(0) for m in SPLAT_RE.finditer(full_log)))
    splat_context = ""
    if splats:
        # Show the first report with its backtrace, from the most complete log.
        src = (dmesg + "\n" + kmemleak) if SPLAT_RE.search(dmesg + kmemleak) else console
        lines_ = src.splitlines()
        for idx, l in enumerate(lines_):
            if SPLAT_RE.search(l):
                splat_context = "\n".join(lines_[max(0, idx - 2):idx + 40])
                break
    if args.log:
        base = args.log[:-len(".console.log")] if args.log.endswith(".console.log") else args.log
        with open(base + ".dmesg.txt", "w") as f:
            f.write(dmesg + ("\n--- kmemleak ---\n" + kmemleak if kmemleak else ""))
    if args.expect_splat:
        results.append(("kernel log shows the injected splat",
                        "pass" if splats else "fail", ", ".join(splats)))
    else:
        results.append(("kernel log clean", "fail" if splats else "pass",
                        "; ".join(splats) + ("\n" + splat_context if splat_context else "")))
    for mod in insmod_fail:
        results.append(("insmod %s" % mod, "fail", "module failed to load"))
    for crash in boot_retries:
        results.append(("guest kernel crashed before init, booted again", "pass",
                        "first boot's console: %s" % crash))
    if timed_out:
        results.append(("guest finished", "fail",
                        "timed out after %.0f s; guest killed" % args.timeout))
    elif not done:
        results.append(("guest finished", "fail", "guest stopped before finishing "
                        "(QEMU exit %s): %s" % (qemu_proc.returncode, qemu_out.strip()[-500:])))

    print("TAP version 13")
    print("1..%d" % len(results))
    failed = 0
    for i, (name, status, msg) in enumerate(results, 1):
        if status == "fail":
            failed += 1
            print("not ok %d - %s" % (i, name))
            for mline in msg.splitlines():
                print("# %s" % mline)
        elif status == "skip":
            print("ok %d - %s # SKIP %s" % (i, name, msg))
        else:
            print("ok %d - %s" % (i, name))
    host_boot = first_line_at[0] - t0 if first_line_at[0] else None
    print("# boot to first command: %s s host time (%s s guest uptime), whole run %.1f s, "
          "console log %s"
          % ("%.2f" % host_boot if host_boot is not None else "?",
             "%.2f" % boot_time if boot_time is not None else "?", elapsed,
             args.log or "(not kept)"))
    print("# host time: " + stage_times(at, args, elapsed))
    slow = [c for c in sorted(slowest, reverse=True)[:8] if c[0] >= 1.0]
    if slow:
        print("# slowest cases: " + ", ".join("%s %.1f s" % (n, t) for t, n in slow))
    if splats or failed:
        sys.stderr.write(console[-4000:] if console else "(no console output)\n")
        # Last, so that a CI log that keeps only the tail of the output
        # still names what failed: each failed result with the start of
        # its message (a violation, a splat, an assertion).
        sys.stderr.write("\n==== %d failed in this guest ====\n" % failed)
        for name, status, msg in results:
            if status != "fail":
                continue
            sys.stderr.write("FAILED: %s\n" % name)
            mlines = msg.splitlines()
            for mline in mlines[:FAIL_SUMMARY_LINES]:
                sys.stderr.write("    %s\n" % mline)
            if len(mlines) > FAIL_SUMMARY_LINES:
                sys.stderr.write("    ... (%d more lines in the TAP output)\n"
                                 % (len(mlines) - FAIL_SUMMARY_LINES))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
