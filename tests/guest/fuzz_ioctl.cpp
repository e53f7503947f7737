// SPDX-License-Identifier: MIT
/*
 * refnpu-ioctl-fuzz: a bounded, seeded fuzzer of the refnpu uAPI, run in
 * the guest against /dev/accel/accelN.
 *
 * Workers (--procs processes of --threads threads each) issue random
 * operations: every refnpu ioctl, the DRM core ioctls an accel node
 * serves (GEM close/flink/open, PRIME, every syncobj ioctl, version and
 * caps), mmap/munmap of BOs, closing and reopening the device, fork (the
 * child is killed or exits with jobs queued) and dma-bufs passed between
 * processes over a socket. Each worker owns its files, so it knows every
 * handle, VA and syncobj in them, and models what each call must return.
 *
 * Checks:
 *  - every call returns 0 or an errno of its table (kind_table below; the
 *    refnpu ones come from the uAPI header and Documentation/uapi.rst, the
 *    DRM core ones from the core's code). When the arguments determine the
 *    outcome (a valid call, or one with a single defect) the errno must be
 *    the expected one. An errno outside the table is a violation too: a
 *    call that fails must fail as documented (bad input gets a clear,
 *    documented error);
 *  - jobs built from the worker's own BOs produce exactly the bytes the
 *    program computes from its shadow copy of every BO; jobs that fault on
 *    purpose fail with the documented errno and leave read-only memory
 *    untouched; BO_WAIT reports the status of the last job listing the BO;
 *  - isolation: every byte a worker writes carries its tag in the high
 *    nibble, so any memory it reads (own BOs, userptr memory, BOs imported
 *    from dma-bufs whose origin it knows) may only hold zeros and the tags
 *    of the workers whose data legitimately flowed there;
 *  - the program does not crash, the children it does not kill exit 0.
 *
 * Each worker has five files with fixed roles: "main" and "second" (its
 * BOs, imports of its own and other processes' dma-bufs, checked jobs),
 * "wild" (jobs of random commands at random VAs near its BOs, nothing
 * shared), "compute" (random compute commands, never checked) and "peer"
 * (a second refnpu device, when there is one). Each process also has one
 * "chaos" file its threads race on with small handle numbers.
 *
 * The run is bounded: pools are capped (BOs, syncobjs, fds, mappings,
 * jobs, memory), every wait uses a short absolute deadline and workers
 * stop at --duration. Every operation draws from a generator seeded with
 * the worker's seed and the operation's number, so with --threads 1
 * --procs 1 the sequence of operations depends only on the seed (print it
 * with --verbose; VAs may differ where the kernel frees mappings late),
 * and a failure replays with --seed S --ops N; --regress FILE replays a
 * list. A worker of a larger run replays alone the same way unless the
 * failure involved other processes (dma-bufs received, VAs they used):
 * such a seed is rerun whole with its --procs and --threads (a
 * "seed ops procs threads" line), each worker replaying its own operations
 * while the interleaving between them varies from run to run.
 */
#include <fcntl.h>
#include <linux/sync_file.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bitset>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include <xf86drm.h>

#include "guest_util.h"
#include "refnpu_accel.h"
#include "refnpu_hw.h"

namespace {

namespace fs = std::filesystem;
using refnpu_test::now_ns;

/* ---- DRM uAPI newer than the libdrm headers ---------------------------- */

/* drm_syncobj_wait and _timeline_wait with deadline_nsec (Linux 6.5) */
struct fz_syncobj_wait {
	__u64 handles;
	__s64 timeout_nsec;
	__u32 count_handles;
	__u32 flags;
	__u32 first_signaled;
	__u32 pad;
	__u64 deadline_nsec;
};
struct fz_syncobj_timeline_wait {
	__u64 handles;
	__u64 points;
	__s64 timeout_nsec;
	__u32 count_handles;
	__u32 flags;
	__u32 first_signaled;
	__u32 pad;
	__u64 deadline_nsec;
};
#define FZ_IOCTL_SYNCOBJ_WAIT DRM_IOWR(0xC3, struct fz_syncobj_wait)
#define FZ_IOCTL_SYNCOBJ_TIMELINE_WAIT DRM_IOWR(0xCA, struct fz_syncobj_timeline_wait)
constexpr uint32_t FZ_WAIT_ALL = 1u << 0;
constexpr uint32_t FZ_WAIT_FOR_SUBMIT = 1u << 1;
constexpr uint32_t FZ_WAIT_AVAILABLE = 1u << 2;
constexpr uint32_t FZ_WAIT_DEADLINE = 1u << 3;

/* ---- limits ------------------------------------------------------------- */

constexpr uint64_t kPage = 4096;
constexpr int kMaxWorkers = 64;
constexpr int kMaxProcs = 16;
constexpr size_t kMaxHandles = 64; /* BO handles per worker, all files */
constexpr size_t kMaxSyncobjs = 16; /* fuzzed syncobj handles per worker */
constexpr size_t kMaxPending = 16; /* jobs in flight per worker */
constexpr size_t kMaxDmabufs = 12; /* dma-buf fds held per worker */
constexpr size_t kMaxAuxFds = 8; /* syncobj / sync_file fds per worker */
constexpr size_t kMaxMappings = 16; /* extra mmaps per worker */
constexpr size_t kMaxOrphans = 8; /* mapped BOs without handle */
constexpr size_t kMaxForeign = 8; /* Mems received from other processes */
constexpr int kMaxChildren = 3; /* forked children alive per worker */
constexpr int kInflightMsgs = 6; /* dma-buf messages queued per process */
constexpr int64_t kWaitBudgetNs = 100 * 1000000LL; /* longest single wait */
constexpr uint64_t kMaxJobBytes = 256 * 1024; /* bytes a checked job moves */
constexpr int kErrSlots = 136; /* errno histogram (last: other) */

constexpr uint64_t kVaStartDefault = 16ULL << 20;
constexpr uint64_t kU64Max = ~0ULL;

/* ---- small helpers ------------------------------------------------------ */

uint64_t splitmix64(uint64_t &x)
{
	uint64_t z = (x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* xoshiro256**, seeded through splitmix64 */
class Rng
{
public:
	explicit Rng(uint64_t seed = 1)
	{
		for (auto &w : s_)
			w = splitmix64(seed);
	}
	uint64_t next()
	{
		uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;

		s_[2] ^= s_[0];
		s_[3] ^= s_[1];
		s_[1] ^= s_[2];
		s_[0] ^= s_[3];
		s_[2] ^= t;
		s_[3] = rotl(s_[3], 45);
		return r;
	}
	/* uniform in [0, n); 0 when n is 0 */
	uint64_t below(uint64_t n) { return n ? next() % n : 0; }
	/* uniform in [lo, hi] */
	uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
	/* true with probability num/den */
	bool chance(uint64_t num, uint64_t den) { return below(den) < num; }
	template <typename T>
	T &pick(std::vector<T> &v)
	{
		return v[below(v.size())];
	}

private:
	static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
	uint64_t s_[4];
};

uint64_t worker_seed(uint64_t seed, int w)
{
	uint64_t x = seed ^ (uint64_t(w) * 0xd1342543de82ef95ULL);

	return w == 0 ? seed : splitmix64(x);
}

int sys_ioctl(int fd, unsigned long req, void *arg)
{
	for (int i = 0; i < 1000; i++) {
		if (ioctl(fd, req, arg) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
	return -EINTR;
}

int eslot(int err)
{
	err = err < 0 ? -err : err;
	return err < kErrSlots - 1 ? err : kErrSlots - 1;
}

const char *errname(int err)
{
	static const std::map<int, const char *> names = {
		{0, "0"},
		{EPERM, "EPERM"},
		{ENOENT, "ENOENT"},
		{ESRCH, "ESRCH"},
		{EINTR, "EINTR"},
		{EIO, "EIO"},
		{EBADF, "EBADF"},
		{EAGAIN, "EAGAIN"},
		{ENOMEM, "ENOMEM"},
		{EACCES, "EACCES"},
		{EFAULT, "EFAULT"},
		{EBUSY, "EBUSY"},
		{EEXIST, "EEXIST"},
		{ENODEV, "ENODEV"},
		{EINVAL, "EINVAL"},
		{ENFILE, "ENFILE"},
		{EMFILE, "EMFILE"},
		{ENOTTY, "ENOTTY"},
		{ENOSPC, "ENOSPC"},
		{ERANGE, "ERANGE"},
		{EDEADLK, "EDEADLK"},
		{ENOSYS, "ENOSYS"},
		{ETIME, "ETIME"},
		{EOVERFLOW, "EOVERFLOW"},
		{EBADFD, "EBADFD"},
		{ENOBUFS, "ENOBUFS"},
		{ETOOMANYREFS, "ETOOMANYREFS"},
		{ETIMEDOUT, "ETIMEDOUT"},
		{ECANCELED, "ECANCELED"},
		{EOPNOTSUPP, "EOPNOTSUPP"},
		{ENXIO, "ENXIO"},
		{EHWPOISON, "EHWPOISON"},
		{512, "ERESTARTSYS"},
	};
	err = err < 0 ? -err : err;
	auto it = names.find(err);
	static thread_local char buf[24];
	if (it != names.end())
		return it->second;
	snprintf(buf, sizeof(buf), "errno%d", err);
	return buf;
}

std::string strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

/* One line to stderr with a single write(2): safe in forked children. */
void emit(const std::string &line)
{
	std::string s = line + "\n";
	size_t off = 0;

	while (off < s.size()) {
		ssize_t n = write(STDERR_FILENO, s.data() + off, s.size() - off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		off += n;
	}
}

uint64_t page_up(uint64_t x)
{
	return (x + kPage - 1) & ~(kPage - 1);
}

/* ---- operation kinds and their errno tables ----------------------------- */

enum Kind {
	K_GET_PARAM,
	K_BO_CREATE,
	K_BO_INFO,
	K_BO_WAIT,
	K_BO_USERPTR,
	K_SUBMIT,
	K_GEM_CLOSE,
	K_GEM_FLINK,
	K_GEM_OPEN,
	K_PRIME_H2FD,
	K_PRIME_FD2H,
	K_SO_CREATE,
	K_SO_DESTROY,
	K_SO_WAIT,
	K_SO_TL_WAIT,
	K_SO_RESET,
	K_SO_SIGNAL,
	K_SO_TL_SIGNAL,
	K_SO_QUERY,
	K_SO_TRANSFER,
	K_SO_H2FD,
	K_SO_FD2H,
	K_SO_EVENTFD,
	K_VERSION,
	K_GET_CAP,
	K_BAD_IOCTL,
	K_SYNC_FILE_INFO,
	K_MMAP,
	K_MUNMAP,
	K_TOUCH,
	K_OPEN,
	K_CLOSE_REOPEN,
	K_FORK,
	K_SEND_DMABUF,
	K_RECV_DMABUF,
	K_VGEM,
	K_INJECT,
	K_RETIRE,
	K_CHAOS,
	NUM_KINDS
};

struct KindDesc {
	const char *name;
	const char *source;
	std::vector<int> errnos; /* documented failures */
};

/*
 * What each call may return besides 0. EFAULT is in every ioctl's table:
 * drm_ioctl() fails with it when the argument itself cannot be copied.
 * For the refnpu ioctls the table is the union of the uAPI header's and
 * Documentation/uapi.rst's "Errors:" lists (-EINTR standing for "-EINTR or
 * a restart"); for the DRM core ioctls it is what drivers/gpu/drm returns
 * for them (drm_gem.c, drm_prime.c, drm_syncobj.c, drm_ioctl.c).
 */
const KindDesc kind_table[NUM_KINDS] = {
	{"GET_PARAM", "refnpu_accel.h", {EINVAL, ENODEV, EFAULT}},
	{"BO_CREATE", "refnpu_accel.h", {EINVAL, ENOSPC, ENOMEM, ENODEV, EFAULT}},
	{"BO_INFO", "refnpu_accel.h", {EINVAL, ENOENT, ENOSPC, ENOMEM, ENODEV, EFAULT}},
	{"BO_WAIT", "refnpu_accel.h", {EINVAL, ENOENT, ETIMEDOUT, EINTR, ENODEV, EFAULT}},
	{"BO_USERPTR", "refnpu_accel.h", {EINVAL, EFAULT, EACCES, ENOMEM, ENOSPC, ENODEV}},
	{"SUBMIT",
	 "refnpu_accel.h",
	 {EINVAL, ENOENT, EFAULT, EPERM, ECANCELED, ENOMEM, ENODEV, EINTR}},
	{"GEM_CLOSE", "drm_gem.c", {EINVAL, ENODEV, EFAULT}},
	{"GEM_FLINK", "drm_gem.c", {ENOENT, EACCES, ENOMEM, ENOSPC, ENODEV, EFAULT}},
	{"GEM_OPEN", "drm_gem.c", {ENOENT, EACCES, ENOMEM, ENOSPC, ENODEV, EFAULT}},
	{"PRIME_HANDLE_TO_FD",
	 "drm_prime.c, refnpu_accel.h",
	 {EINVAL, ENOENT, EOPNOTSUPP, EMFILE, ENFILE, ENOMEM, ENODEV, EFAULT}},
	{"PRIME_FD_TO_HANDLE",
	 "drm_prime.c, refnpu_accel.h",
	 {EBADF, EINVAL, ENOMEM, ENOSPC, ENODEV, EFAULT}},
	{"SYNCOBJ_CREATE", "drm_syncobj.c", {EINVAL, ENOMEM, ENOSPC, ENODEV, EFAULT}},
	{"SYNCOBJ_DESTROY", "drm_syncobj.c", {EINVAL, ENODEV, EFAULT}},
	{"SYNCOBJ_WAIT", "drm_syncobj.c", {EINVAL, ENOENT, EFAULT, ETIME, ENOMEM, EINTR, ENODEV}},
	{"SYNCOBJ_TIMELINE_WAIT",
	 "drm_syncobj.c",
	 {EINVAL, ENOENT, EFAULT, ETIME, ENOMEM, EINTR, ENODEV}},
	{"SYNCOBJ_RESET", "drm_syncobj.c", {EINVAL, ENOENT, EFAULT, ENOMEM, ENODEV}},
	{"SYNCOBJ_SIGNAL", "drm_syncobj.c", {EINVAL, ENOENT, EFAULT, ENOMEM, ENODEV}},
	{"SYNCOBJ_TIMELINE_SIGNAL", "drm_syncobj.c", {EINVAL, ENOENT, EFAULT, ENOMEM, ENODEV}},
	{"SYNCOBJ_QUERY", "drm_syncobj.c", {EINVAL, ENOENT, EFAULT, ENOMEM, ENODEV}},
	{"SYNCOBJ_TRANSFER",
	 "drm_syncobj.c",
	 {EINVAL, ENOENT, ENOMEM, ETIME, EINTR, ENODEV, EFAULT}},
	{"SYNCOBJ_HANDLE_TO_FD",
	 "drm_syncobj.c",
	 {EINVAL, ENOENT, EMFILE, ENFILE, ENOMEM, ENODEV, EFAULT}},
	{"SYNCOBJ_FD_TO_HANDLE", "drm_syncobj.c", {EINVAL, ENOENT, ENOMEM, ENOSPC, ENODEV, EFAULT}},
	{"SYNCOBJ_EVENTFD", "drm_syncobj.c", {EINVAL, ENOENT, EBADF, ENOMEM, ENODEV, EFAULT}},
	{"VERSION", "drm_ioctl.c", {EFAULT, ENODEV}},
	{"GET_CAP", "drm_ioctl.c", {EINVAL, EOPNOTSUPP, ENODEV, EFAULT}},
	{"bad ioctl",
	 "drm_ioctl.c, drm_dumb_buffers.c",
	 {EINVAL, ENOTTY, EOPNOTSUPP, EACCES, ENOSYS, EFAULT, ENODEV}},
	{"SYNC_IOC_FILE_INFO", "sync_file.c", {EINVAL, EFAULT, ENOMEM}},
	{"mmap", "mmap(2), drm_gem.c", {EINVAL, EACCES, ENOMEM, EPERM, ENODEV}},
	{"munmap", "munmap(2)", {EINVAL}},
	{"touch", "-", {}},
	{"open", "open(2)", {ENOMEM, EMFILE, ENFILE, ENODEV}},
	{"close+reopen", "-", {}},
	{"fork", "-", {}},
	{"send dma-buf", "sendmsg(2)", {EAGAIN, ENOBUFS, ENOMEM, ETOOMANYREFS}},
	{"recv dma-buf", "recvmsg(2)", {EAGAIN, ENOMEM}},
	{"vgem import", "vgem", {}},
	{"inject", "debugfs", {}},
	{"retire job", "-", {}},
	{"chaos file reopen", "-", {}},
};

/* One device's recovery counters, from its debugfs "counters" and "queues". */
struct DevCounters {
	std::string name, text; /* the device, its "counters" on one line */
	bool has_resets = false;
	uint64_t device_resets = 0, queue_resets = 0, queue_timeouts = 0;
};

std::vector<DevCounters> read_counters()
{
	std::vector<DevCounters> v;
	std::error_code ec;

	for (auto &d : fs::directory_iterator("/sys/kernel/debug/accel", ec)) {
		std::ifstream c(d.path() / "counters"), q(d.path() / "queues");
		std::string line;
		DevCounters dc;
		dc.name = d.path().filename().string();
		while (std::getline(c, line)) {
			unsigned long long n;
			dc.text += " " + line;
			if (sscanf(line.c_str(), "device_resets %llu", &n) == 1) {
				dc.device_resets = n;
				dc.has_resets = true;
			}
		}
		while (std::getline(q, line)) {
			auto at = line.find(" resets ");
			if (at != std::string::npos)
				dc.queue_resets += strtoull(line.c_str() + at + 8, nullptr, 10);
			at = line.find(" timeouts ");
			if (at != std::string::npos)
				dc.queue_timeouts += strtoull(line.c_str() + at + 10, nullptr, 10);
		}
		v.push_back(dc);
	}
	return v;
}

/*
 * Resets of every refnpu device so far (device resets and each queue's): a
 * job may fail with -EAGAIN only when this moved while it was in flight.
 * UINT64_MAX, which never equals a sample, without debugfs.
 */
uint64_t reset_count()
{
	uint64_t n = 0;
	bool any = false;

	for (auto &dc : read_counters()) {
		n += dc.device_resets + dc.queue_resets;
		any |= dc.has_resets;
	}
	return any ? n : UINT64_MAX;
}

/*
 * Where process @pid waits, for a child that did not exit: its state, its
 * wait channel, its kernel stack (root only) and, when it is in a system
 * call, the call and the mapping its first argument points into (a futex
 * in libc's or libstdc++'s data is a lock a sibling thread held at fork).
 */
std::string where_waits(pid_t pid)
{
	std::string out, sc;
	auto add = [&](const std::string &s) { out += (out.empty() ? "" : " | ") + s; };

	for (const char *f : {"status", "wchan", "stack", "syscall"}) {
		std::ifstream in(strf("/proc/%d/%s", int(pid), f));
		std::string line;
		while (std::getline(in, line)) {
			if (!strcmp(f, "status") && line.rfind("State:", 0))
				continue;
			if (!strcmp(f, "syscall"))
				sc = line;
			add(line);
		}
	}
	/* "NR arg0 ...": the mapping holding arg0 */
	unsigned long long nr, a0;
	if (sscanf(sc.c_str(), "%llu %llx", &nr, &a0) == 2) {
		std::ifstream maps(strf("/proc/%d/maps", int(pid)));
		std::string line;
		while (std::getline(maps, line)) {
			unsigned long long lo, hi;
			if (sscanf(line.c_str(), "%llx-%llx", &lo, &hi) == 2 && a0 >= lo && a0 < hi)
				add(strf("arg0 0x%llx in ", a0) + line);
		}
	}
	return out.empty() ? "(nothing in /proc)" : out;
}

/*
 * The recovery counters of every device on one line: printed before and
 * after a run, so a failure shows whether a reset, a TLB timeout or a queue
 * reset happened while it ran.
 */
std::string debugfs_counters()
{
	std::string out;

	for (auto &dc : read_counters())
		if (!dc.text.empty())
			out += strf(" %s:%s queue_timeouts %" PRIu64 " queue_resets %" PRIu64 ";",
				    dc.name.c_str(), dc.text.c_str(), dc.queue_timeouts,
				    dc.queue_resets);
	return out.empty() ? " (no debugfs)" : out;
}

/* Errnos a job's fence may carry (the overview table of the uAPI header). */
const std::vector<int> job_errnos = {EFAULT, EINVAL,	EIO,   ETIMEDOUT,
				     EAGAIN, ECANCELED, ESRCH, ENODEV};

bool documented(Kind k, int err)
{
	if (err == 0)
		return true;
	const auto &v = kind_table[k].errnos;
	return std::find(v.begin(), v.end(), err < 0 ? -err : err) != v.end();
}

/* The results a call may have, as negative errnos (0: success). */
struct Expect {
	std::bitset<kErrSlots> ok;

	Expect() = default;
	Expect(std::initializer_list<int> l)
	{
		for (int e : l)
			ok.set(eslot(e));
	}
	Expect &add(int e)
	{
		ok.set(eslot(e));
		return *this;
	}
	Expect &add(const Expect &o)
	{
		ok |= o.ok;
		return *this;
	}
	bool has(int e) const { return ok.test(eslot(e)); }
	std::string str() const
	{
		std::string s;

		for (int i = 0; i < kErrSlots; i++) {
			if (!ok.test(i))
				continue;
			if (!s.empty())
				s += "|";
			s += i ? std::string("-") + errname(i) : "0";
		}
		return s.empty() ? "nothing" : s;
	}
};

/* ---- statistics shared by every process (MAP_SHARED) -------------------- */

using Counter = std::atomic<uint64_t>;
static_assert(Counter::is_always_lock_free);

struct WarnExample {
	std::atomic<int> state; /* 0 free, 1 writing, 2 valid */
	int kind;
	int err;
	char text[400];
};

struct Shared {
	Counter ops[NUM_KINDS];
	Counter errs[NUM_KINDS][kErrSlots];
	Counter warns[NUM_KINDS][kErrSlots];
	Counter viol_kind[NUM_KINDS];
	Counter violations;
	Counter warnings;
	Counter jobs_submitted;
	Counter jobs_ok;
	Counter jobs_failed_expected;
	Counter jobs_status[kErrSlots];
	Counter jobs_abandoned;
	Counter jobs_reset_stopped;
	Counter jobs_slow;
	Counter bytes_verified;
	Counter pages_tag_checked;
	Counter forks;
	Counter kills;
	Counter child_exits;
	Counter dmabufs_sent;
	Counter dmabufs_received;
	Counter reopens;
	Counter submits_rejected;
	Counter workers_done;
	Counter teardown_max_ns;
	std::atomic<int> inflight[kMaxProcs];
	std::atomic<uint64_t> published_va[kMaxWorkers][8];
	WarnExample examples[64];
};

Shared *shared;

void count_warning(Kind k, int err, const std::string &text)
{
	shared->warnings++;
	shared->warns[k][eslot(err)]++;
	for (auto &ex : shared->examples) {
		int st = ex.state.load();
		if (st == 2 && ex.kind == k && ex.err == eslot(err))
			return;
		if (st == 0) {
			int zero = 0;
			if (!ex.state.compare_exchange_strong(zero, 1))
				continue;
			ex.kind = k;
			ex.err = eslot(err);
			snprintf(ex.text, sizeof(ex.text), "%s", text.c_str());
			ex.state = 2;
			return;
		}
	}
}

/* ---- options ------------------------------------------------------------ */

struct Options {
	uint64_t seed = 0;
	bool seed_given = false;
	double duration = 60;
	uint64_t ops = 0;
	int threads = 3;
	int procs = 2;
	std::string device;
	std::string peer = "auto";
	std::string regress;
	bool verbose = false;
	bool fork_ops = true;
	bool inject = true;
	bool inject_errors = false;
	uint64_t mem_budget = 8ULL << 20; /* own BO bytes per worker */
	bool list = false;
	bool unsafe_core = false;
	bool lenient_same_entity = false;
};

Options opt;

/* Device facts, read once by the main process. */
struct DevInfo {
	uint32_t num_queues = 1;
	uint64_t va_start = kVaStartDefault;
	uint64_t va_size = 0;
	uint64_t max_bo = 1ULL << 30;
	uint32_t max_bos = 1024;
	uint32_t max_syncs = 64;
	uint64_t caps = 0;
	uint64_t hw_caps = 0;
	uint64_t ops_mask = 0;
	uint64_t job_timeout_ms = 5000;
	bool cap_sys_nice = true;
	bool cap_ipc_lock = true;
	bool root = true;
	std::string inject_path;
	std::string vgem_path;
	std::string peer_path;
};

DevInfo dev;

/* ---- the memory model --------------------------------------------------- */

/*
 * Every byte a worker writes has the worker's tag in its high nibble, so
 * memory only ever holds 0 or tagged bytes, and a byte shows whose data it
 * is. Tags are 1..15; with more than 15 workers tags repeat.
 */
uint8_t tag_of(int worker)
{
	return uint8_t(1 + worker % 15);
}

void fill_tagged(uint8_t *dst, size_t n, uint8_t tag, Rng &r)
{
	uint64_t bits = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 16 == 0)
			bits = r.next();
		dst[i] = uint8_t(tag << 4 | (bits & 0xf));
		bits >>= 4;
	}
}

enum class MemKind { Shmem, Arena, Foreign, Vgem, Ghost };

const char *mem_kind_name(MemKind k)
{
	switch (k) {
	case MemKind::Shmem:
		return "shmem";
	case MemKind::Arena:
		return "userptr-arena";
	case MemKind::Foreign:
		return "imported";
	case MemKind::Vgem:
		return "vgem";
	case MemKind::Ghost:
		return "detached-userptr";
	}
	return "?";
}

/*
 * Memory whose content the worker models: a shmem BO (shared by all its
 * GEM handles and imports), the userptr arena, memory received from
 * another process, a vgem buffer. Pages carry the bookkeeping of the jobs
 * in flight; the shadow holds the expected bytes of "known" pages.
 */
struct Mem {
	uint64_t uid = 0;
	MemKind kind = MemKind::Shmem;
	uint64_t size = 0;
	uint8_t *cpu = nullptr; /* CPU view (nullptr: none) */
	bool cpu_writable = false;
	void *unmap_base = nullptr; /* mapping owned by this Mem */
	size_t unmap_len = 0;
	std::vector<uint8_t> shadow;
	std::vector<uint8_t> known;
	std::vector<uint16_t> rd, wr;
	std::vector<uint8_t> unordered;
	std::vector<uint64_t> domain;
	std::vector<uint64_t> last_writer;
	uint32_t mask = 0; /* tags its bytes may carry (bit t) */
	bool shared = false; /* another process may use it: tags only */
	bool checked = true; /* content checks apply */
	bool wild = false; /* created in the wild file, never leaves it */
	bool tainted = false; /* an abandoned job may still write it */
	bool dev_ro = false; /* some device mapping of it is read-only */
	uint64_t pending_listing = 0; /* jobs in flight listing it */
	uint64_t bytes_charged = 0;
	/* the last events on it, printed with a content violation */
	struct Event {
		char what;
		uint64_t op, seq, off, len;
	};
	std::deque<Event> history;
	void note(char what, uint64_t op, uint64_t seq, uint64_t off, uint64_t len)
	{
		history.push_back({what, op, seq, off, len});
		if (history.size() > 48)
			history.pop_front();
	}
	std::string events(uint64_t lo, uint64_t hi) const
	{
		std::string s;
		for (auto &e : history)
			if (e.off < hi && lo < e.off + e.len)
				s += strf(" %c@%" PRIu64 ":job%" PRIu64 "[0x%" PRIx64 "+0x%" PRIx64
					  "]",
					  e.what, e.op, e.seq, e.off, e.len);
		return s;
	}
	uint64_t *budget = nullptr;
	uint64_t ino = 0;
	int home_dev = 0; /* the device that exports it (-1: vgem) */
	uint32_t create_flags = 0;
	bool flags_known = false; /* created here with create_flags */
	/*
	 * What BO_WAIT reports for its GEM object on home_dev, kept when the
	 * worker drops its last Obj of it: the kernel object may outlive every
	 * handle (another device's import holds the dma-buf), and a later
	 * import into home_dev finds it again with the status of the last job
	 * that listed it.
	 */
	struct ListedRecord {
		uint64_t last_job = 0;
		std::deque<uint64_t> listed_by;
		int last_status = 0;
		bool last_known = true;
	};
	std::optional<ListedRecord> home_listed;

	Mem(MemKind k, uint64_t sz, uint64_t id) : uid(id), kind(k), size(sz)
	{
		size_t pages = (sz + kPage - 1) / kPage;

		shadow.assign(sz, 0);
		known.assign(pages, 0);
		rd.assign(pages, 0);
		wr.assign(pages, 0);
		unordered.assign(pages, 0);
		domain.assign(pages, 0);
		last_writer.assign(pages, 0);
	}
	Mem(const Mem &) = delete;
	Mem &operator=(const Mem &) = delete;
	~Mem()
	{
		if (unmap_base)
			munmap(unmap_base, unmap_len);
		if (budget)
			*budget -= bytes_charged;
	}
	size_t pages() const { return known.size(); }
	bool exact_capable() const
	{
		return checked && !shared && !tainted && kind != MemKind::Foreign &&
		       kind != MemKind::Ghost;
	}
	bool page_exact(size_t p) const { return exact_capable() && known[p] && !unordered[p]; }
	bool page_idle(size_t p) const { return !rd[p] && !wr[p]; }
	/* pages [off, off+len) all exact (no write may be in flight) */
	bool range_exact(uint64_t off, uint64_t len) const
	{
		if (!len)
			return true;
		for (uint64_t p = off / kPage; p <= (off + len - 1) / kPage; p++)
			if (!page_exact(p))
				return false;
		return true;
	}
};

/* A GEM object on one device: a view of a Mem. */
struct Obj {
	uint64_t uid = 0;
	int dev = 0;
	std::shared_ptr<Mem> mem;
	uint64_t off = 0; /* into mem (userptr) */
	uint64_t size = 0;
	uint32_t flags = 0; /* as BO_INFO reports them */
	bool userptr = false;
	uint64_t domain = 0; /* implicit-sync domain: the reservation object */
	uint64_t last_job = 0;
	std::deque<uint64_t> listed_by; /* the last jobs listing it */
	int last_status = 0;
	bool last_known = true;
	uint64_t mmap_offset = 0;
	/* userptr: part of its range was remapped, that part is no longer the
	 * memory the process sees */
	bool detached = false;
	bool dev_ro() const { return flags & DRM_REFNPU_BO_DEVICE_RO; }
	Obj() = default;
	Obj(const Obj &) = delete;
	Obj &operator=(const Obj &) = delete;
	~Obj()
	{
		if (mem && !userptr && dev == mem->home_dev)
			mem->home_listed =
				Mem::ListedRecord{last_job, listed_by, last_status, last_known};
	}
};

struct Handle {
	int file = 0;
	uint32_t handle = 0;
	uint64_t va = 0;
	std::shared_ptr<Obj> obj;
};

/* What a syncobj holds, or a sync_file carries. */
struct Fence {
	enum Kind { NONE, STUB, JOB, UNKNOWN } kind = NONE;
	uint64_t job = 0;
	int64_t entity = -1;
};

struct SyncState {
	uint64_t uid = 0;
	Fence head;
	bool chain = false;
	uint64_t max_point = 0;
	bool max_uncertain = false;
	bool points_uncertain = false;
	std::map<uint64_t, Fence> points;
	Fence base; /* the fence the first point was added to: the chain's tail */
};

struct Syncobj {
	int file = 0;
	uint32_t handle = 0;
	std::shared_ptr<SyncState> st;
};

struct DmaBuf {
	int fd = -1;
	std::shared_ptr<Mem> mem;
	std::shared_ptr<Obj> src; /* exported object (same-device imports) */
	uint64_t ino = 0;
	int dev = 0; /* exporting device, -1 for vgem */
	bool sendable = false;
};

enum AuxKind { AUX_SYNCOBJ_FD, AUX_SYNC_FILE };

struct AuxFd {
	int fd = -1;
	AuxKind kind = AUX_SYNCOBJ_FD;
	std::shared_ptr<SyncState> st;
	Fence fence;
};

struct Mapping {
	uint8_t *p = nullptr;
	size_t len = 0;
	std::shared_ptr<Mem> mem;
	uint64_t off = 0;
	bool writable = false;
};

/* One range a job reads or writes, in the Mem's offsets. */
struct Access {
	std::shared_ptr<Mem> mem;
	uint64_t off = 0, len = 0;
	bool write = false;
	bool certain = false; /* the write's bytes are in the shadow */
	bool ro_keep = false; /* a write the device must refuse */
	bool ordered = true; /* ordered with the Mem's other users */
	uint64_t domain = 0;
	bool voided = false;
};

struct Job {
	uint64_t seq = 0;
	int file = 0;
	uint32_t gen = 0;
	uint32_t status_so = 0;
	int queue = 0, prio = 0;
	int64_t entity = 0;
	bool same_entity_doc = false; /* waits on a failed job of its entity */
	std::string in_model; /* what the model knew of its in-fences */
	Expect allowed;
	bool certain = false; /* allowed holds exactly one status */
	uint64_t resets = 0; /* reset_count() before it was submitted */
	std::vector<Access> acc;
	std::vector<std::shared_ptr<Obj>> listed;
	std::vector<std::shared_ptr<Mem>> listing_mems;
	int slot = -1;
	std::string desc;
	int64_t t_submit = 0;
	std::vector<std::pair<uint64_t, uint64_t>> wild_ext;
	/* VA ranges it reads that were unmapped when it was planned */
	std::vector<std::pair<uint64_t, uint64_t>> wild_rd;
	/* tags of the memory a wild job may copy from */
	uint32_t read_tags = 0;
	/* syncobj points the job signals, applied once it is queued */
	std::vector<std::pair<std::shared_ptr<SyncState>, uint64_t>> signals;
	/* shadow bytes the plan changed, restored when the submit fails */
	std::vector<std::pair<std::shared_ptr<Mem>, std::pair<uint64_t, std::vector<uint8_t>>>>
		undo;
	bool slow = false;
	/* an unmapped VA it uses may get a BO before it runs: 0 is then fine */
	bool racy = false;
	uint64_t map_gen = 0;
	bool outputs_uncertain = false;
};

/* The worker's files: roles fix what may happen in each. */
enum FileRole { F_MAIN, F_SECOND, F_WILD, F_COMPUTE, F_PEER, NUM_FILES };
const char *file_name[NUM_FILES] = {"main", "second", "wild", "compute", "peer"};

constexpr int kCmdBos = 2;
constexpr uint64_t kCmdBoSize = 16384;
constexpr uint64_t kSlotSize = 2048;
constexpr int kSlotsPerBo = int(kCmdBoSize / kSlotSize);

struct CmdBo {
	uint32_t handle = 0;
	uint64_t va = 0;
	uint8_t *map = nullptr;
	int busy[kSlotsPerBo] = {};
};

struct File {
	int fd = -1;
	int dev = 0;
	uint32_t gen = 0;
	bool present = false;
	bool banned = false;
	uint32_t num_queues = 1;
	CmdBo cmd[kCmdBos];
	std::deque<std::pair<uint64_t, uint64_t>> freed; /* recently freed VAs */
	/* VAs of closed handles whose object lives on: a pending job listing
	 * it keeps the mapping until it ends */
	std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::weak_ptr<Obj>>> held;
	uint64_t map_gen = 0; /* bumped by every new BO mapping */
	std::vector<std::pair<uint64_t, uint64_t>> wild_ext;
};

/* Command buffer encoder. */
struct Cmds {
	std::vector<uint8_t> data;

	template <typename T>
	T &add(uint16_t opcode, uint32_t size)
	{
		size_t off = data.size();

		data.resize(off + size);
		auto *hdr = reinterpret_cast<refnpu_cmd_hdr *>(&data[off]);
		hdr->opcode = opcode;
		hdr->len_dw = size / 4;
		return *reinterpret_cast<T *>(&data[off]);
	}
	void nop() { add<refnpu_cmd_nop>(REFNPU_OP_NOP, REFNPU_CMD_NOP_SIZE); }
	refnpu_cmd_fill &fill(uint64_t va, uint64_t pitch, uint32_t rows, uint32_t row_bytes,
			      uint64_t pattern, uint32_t pb)
	{
		auto &c = add<refnpu_cmd_fill>(REFNPU_OP_FILL, REFNPU_CMD_FILL_SIZE);

		c.dst.va = va;
		c.dst.pitch = pitch;
		c.rows = rows;
		c.row_bytes = row_bytes;
		c.pattern = pattern;
		c.pattern_bytes = pb;
		return c;
	}
	refnpu_cmd_copy &copy(uint64_t dst, uint64_t dpitch, uint64_t src, uint64_t spitch,
			      uint32_t rows, uint32_t row_bytes)
	{
		auto &c = add<refnpu_cmd_copy>(REFNPU_OP_COPY, REFNPU_CMD_COPY_SIZE);

		c.src.va = src;
		c.src.pitch = spitch;
		c.dst.va = dst;
		c.dst.pitch = dpitch;
		c.rows = rows;
		c.row_bytes = row_bytes;
		return c;
	}
};

/* Memory the arguments of a bad call point to. */
struct BadMem {
	uint8_t *none = nullptr; /* PROT_NONE page */
	uint8_t *ro = nullptr; /* read-only page of zeros */
	uint8_t *edge = nullptr; /* readable page followed by PROT_NONE */

	void init()
	{
		auto *p = static_cast<uint8_t *>(mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE,
						      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
		if (p == MAP_FAILED)
			return;
		memset(p, 0, 4 * kPage);
		none = p;
		mprotect(none, kPage, PROT_NONE);
		ro = p + kPage;
		mprotect(ro, kPage, PROT_READ);
		edge = p + 2 * kPage;
		mprotect(p + 3 * kPage, kPage, PROT_NONE);
	}
	/* An unusable user pointer of some kind. */
	uint64_t pointer(Rng &r) const
	{
		switch (r.below(6)) {
		case 0:
			return 0;
		case 1:
			return 1;
		case 2:
			return 0xffff800000000000ULL;
		case 3:
			return reinterpret_cast<uintptr_t>(none);
		case 4:
			return 0x10;
		default:
			return kU64Max - 7;
		}
	}
};

/* Per-process state shared by the threads of a process. */
struct ProcState {
	int index = 0;
	int inbox = -1, outbox = -1;
	std::shared_mutex chaos_lock;
	int chaos_fd = -1;
	std::atomic<int> chaos_creates{0};
	std::atomic<uint64_t> uid{1};
};

/* The userptr arena: RW anonymous pages, a read-only view of a memfd
 * (written through a RW alias), never-touched read-only zero pages. */
constexpr uint64_t kArenaRw = 48, kArenaRo = 12, kArenaZero = 4;

struct Arena {
	uint8_t *base = nullptr; /* reservation, guard pages between parts */
	size_t len = 0;
	uint8_t *rw = nullptr, *ro = nullptr, *ro_alias = nullptr, *zero = nullptr;
	uint8_t *guard = nullptr;
	int memfd = -1;
	std::shared_ptr<Mem> rw_mem, ro_mem;
};

/* ---- the worker --------------------------------------------------------- */

struct ChildProc {
	pid_t pid = -1;
	bool kill_sent = false;
	int64_t kill_at = 0; /* 0: let it finish */
	int64_t deadline = 0; /* killed (as hung) after this */
};

/* Message carrying a dma-buf between processes (SCM_RIGHTS). */
struct DmabufMsg {
	uint32_t magic;
	uint32_t origin;
	uint32_t mask;
	int16_t dev;
	uint16_t flags; /* 1: read-only for the device somewhere */
	uint64_t size;
	uint64_t ino;
};
constexpr uint32_t kMsgMagic = 0x52464e50;

class Worker
{
public:
	Worker(int id, uint64_t seed, ProcState *ps, bool child)
		: id_(id), tag_(tag_of(id)), seed_(seed), ps_(ps), child_(child)
	{
	}
	Worker(const Worker &) = delete;
	Worker &operator=(const Worker &) = delete;

	void run(int64_t start, int64_t deadline, uint64_t ops);
	/* a forked child's entry: never returns */
	[[noreturn]] void child_main(int sock, uint64_t mode, uint64_t nops,
				     std::vector<DmaBuf> granted);

private:
	/* bookkeeping */
	uint64_t uid() { return ps_->uid.fetch_add(1) * kMaxWorkers + id_; }
	void say(const std::string &s);
	void violation(Kind k, const std::string &what);
	bool check(Kind k, int ret, Expect e, const std::string &desc);
	void count(Kind k, int ret)
	{
		shared->ops[k]++;
		shared->errs[k][eslot(ret)]++;
	}

	/* files */
	bool open_file(int f);
	void close_file(int f, bool wait_jobs);
	int file_dev(int f) const { return files_[f].dev; }
	bool file_ok(int f) const { return files_[f].present && files_[f].fd >= 0; }

	/* pools */
	std::vector<int> handles_in(int f) const;
	int handle_index(int f, uint32_t h) const;
	bool handle_live(int f, uint32_t h) const { return handle_index(f, h) >= 0; }
	uint32_t dead_handle(Rng &r, int f);
	void drop_handle(int idx);
	void add_handle(const Handle &h);
	void taint_readers(const Job &w, const Access &wa);
	void outputs_uncertain(Job &j);
	void spread_tags(Job &j, uint32_t tags);
	void gem_close_idx(int idx, bool check_result);
	std::shared_ptr<Mem> new_mem(MemKind k, uint64_t size);
	std::shared_ptr<Obj> obj_for(const std::shared_ptr<Mem> &m, int dev);
	int handle_count_for(const Mem *m) const;
	void note_orphan(const std::shared_ptr<Mem> &m);
	bool make_room_handles(Rng &r);

	/* memory checks */
	bool check_bytes(Mem &m, uint64_t off, uint64_t len, const char *what,
			 const uint8_t *view = nullptr);
	void cpu_rewrite(Rng &r, Mem &m, uint64_t off, uint64_t len);
	bool va_free_for(int f, uint64_t va, uint64_t size, const std::string &what);

	/* jobs */
	int alloc_slot(int f);
	bool submit_job(Rng &r, std::unique_ptr<Job> job, Cmds &cmds, uint32_t flags,
			std::vector<drm_refnpu_bo_ref> refs, std::vector<drm_refnpu_sync> in,
			std::vector<drm_refnpu_sync> out, Expect submit_expect);
	bool retire_oldest(int64_t budget_ns);
	void retire(std::unique_ptr<Job> &job, int status);
	void abandon(Job &j);
	void begin_access(Job &j, Access &a);
	void end_access(Job &j, Access &a, int status);
	Fence job_fence(const Job &j) const;
	int fence_status(const Fence &f, bool *signaled) const;
	int point_status(const SyncState &st, uint64_t p, const Fence &fe, bool *signaled) const;
	bool lookup_va(int f, uint64_t va, uint64_t len, int *hidx, uint64_t *off) const;
	bool va_certainly_unmapped(int f, uint64_t va, uint64_t len) const;
	void plan_in_syncs(Rng &r, int f, Job &j, std::vector<drm_refnpu_sync> &in,
			   bool *uncertain_cancel);
	void plan_out_syncs(Rng &r, int f, Job &j, std::vector<drm_refnpu_sync> &out);

	/* operations */
	void step(Rng &r);
	void op_get_param(Rng &r);
	void op_bo_create(Rng &r);
	void op_bo_info(Rng &r);
	void op_bo_wait(Rng &r);
	void op_userptr(Rng &r);
	void op_arena_remap(Rng &r);
	void op_gem_close(Rng &r);
	void op_flink(Rng &r);
	void op_prime_export(Rng &r);
	void op_prime_import(Rng &r);
	void op_so_create(Rng &r);
	void op_so_destroy(Rng &r);
	void op_so_wait(Rng &r, bool timeline);
	void op_so_reset_signal(Rng &r, bool signal);
	void op_so_tl_signal(Rng &r);
	void op_so_query(Rng &r);
	void op_so_transfer(Rng &r);
	void op_so_h2fd(Rng &r);
	void op_so_fd2h(Rng &r);
	void op_so_eventfd(Rng &r);
	void op_version(Rng &r);
	void op_get_cap(Rng &r);
	void op_bad_ioctl(Rng &r);
	void op_mmap(Rng &r);
	void op_munmap(Rng &r);
	void op_touch(Rng &r);
	void op_recanary(Rng &r);
	void op_reopen(Rng &r);
	void op_fork(Rng &r);
	void op_send(Rng &r);
	void op_recv(Rng &r);
	void op_vgem(Rng &r);
	void op_inject(Rng &r);
	void op_chaos(Rng &r);
	void op_publish(Rng &r);
	void op_job_tracked(Rng &r, int f, int mode);
	void op_job_wild(Rng &r);
	void op_job_compute(Rng &r);
	void op_submit_invalid(Rng &r);

	/* helpers for the generators */
	int pick_file(Rng &r, std::initializer_list<int> roles);
	int pick_handle(Rng &r, int f, bool need_cpu = false);
	int pick_syncobj(Rng &r, int f);
	uint64_t pick_timeout(Rng &r, bool allow_block);
	int export_mem(Rng &r, int hidx, bool check_result, int flags = DRM_CLOEXEC | DRM_RDWR);
	int add_dmabuf(DmaBuf d);
	void close_dmabuf(int i);
	std::shared_ptr<Mem> mem_for_ino(uint64_t ino);
	int import_dmabuf(int f, int di, uint32_t *handle, bool check_result);
	bool writable_target(const Handle &h) const;
	void reap_children(bool final);
	void setup();
	void teardown();
	std::string hdesc(const Handle &h) const;

	int id_;
	uint8_t tag_;
	uint64_t seed_;
	ProcState *ps_;
	bool child_;
	uint64_t opno_ = 0;
	File files_[NUM_FILES];
	std::vector<Handle> handles_;
	std::vector<Syncobj> syncobjs_;
	std::vector<DmaBuf> dmabufs_;
	std::vector<AuxFd> auxfds_;
	std::vector<Mapping> maps_;
	std::deque<std::shared_ptr<Mem>> orphans_;
	std::vector<std::shared_ptr<Mem>> foreign_;
	std::deque<std::unique_ptr<Job>> pending_;
	std::map<uint64_t, int> outcomes_;
	std::map<uint64_t, std::weak_ptr<Mem>> ino_map_;
	std::map<uint64_t, std::weak_ptr<Obj>> dev_objs_[2]; /* mem uid -> GEM object */
	std::multimap<uint64_t, uint32_t> prime_cache_[NUM_FILES]; /* ino -> handle */
	std::vector<ChildProc> children_;
	uint64_t job_seq_ = 0;
	uint64_t budget_ = 0;
	Arena arena_;
	BadMem bad_;
	int vgem_fd_ = -1;
	int evfd_ = -1;
	int pipe_[2] = {-1, -1};
	int parent_sock_ = -1;
	bool untracked_ = false;
	bool inject_ok_ = true;
	int64_t deadline_ = 0;
	uint64_t local_violations_ = 0;
};

void Worker::say(const std::string &s)
{
	if (opt.verbose)
		emit(strf("[w%d%s #%" PRIu64 "] ", id_, child_ ? "c" : "", opno_) + s);
}

void Worker::violation(Kind k, const std::string &what)
{
	shared->violations++;
	shared->viol_kind[k]++;
	local_violations_++;
	emit(strf("refnpu-ioctl-fuzz: VIOLATION worker %d%s seed %" PRIu64 " op #%" PRIu64
		  " [%s]: ",
		  id_, child_ ? " (forked child)" : "", seed_, opno_, kind_table[k].name) +
	     what);
	if (!child_)
		emit(strf("refnpu-ioctl-fuzz:   replay: refnpu-ioctl-fuzz --procs 1 --threads 1 "
			  "--seed %" PRIu64 " --ops %" PRIu64 " --verbose",
			  seed_, opno_ + 1));
}

/*
 * The errno policy: a result in @e is fine; a documented errno outside @e
 * is a violation (the arguments determined another outcome), as is success
 * outside @e, and so is an errno the tables do not list. Resource
 * exhaustion (ENOMEM, ENOSPC, EMFILE, ENFILE) is accepted where documented.
 */
bool Worker::check(Kind k, int ret, Expect e, const std::string &desc)
{
	count(k, ret);
	say(desc + " -> " + (ret ? std::string("-") + errname(ret) : "0"));
	if (e.has(ret))
		return true;
	if (!documented(k, ret)) {
		violation(k, desc + " returned -" + errname(ret) + ", which " +
				     kind_table[k].source + " does not document for it (expected " +
				     e.str() + ")");
		return false;
	}
	if (ret == -ENOMEM || ret == -ENOSPC || ret == -EMFILE || ret == -ENFILE)
		return false;
	violation(k, desc + " returned " + (ret ? std::string("-") + errname(ret) : "0") +
			     ", expected " + e.str());
	return false;
}

std::shared_ptr<Mem> Worker::new_mem(MemKind k, uint64_t size)
{
	auto m = std::make_shared<Mem>(k, size, uid());

	m->mask = 1u << tag_;
	return m;
}

std::string Worker::hdesc(const Handle &h) const
{
	return strf("%s:h%u(va 0x%" PRIx64 " size 0x%" PRIx64 " %s%s)", file_name[h.file], h.handle,
		    h.va, h.obj->size, mem_kind_name(h.obj->mem->kind),
		    h.obj->dev_ro() ? " ro" : "");
}

/* ---- files -------------------------------------------------------------- */

bool Worker::open_file(int f)
{
	File &fl = files_[f];
	const std::string &path = f == F_PEER ? dev.peer_path : opt.device;

	fl = File{};
	fl.dev = f == F_PEER ? 1 : 0;
	if (path.empty())
		return false;
	int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
	if (!check(K_OPEN, fd < 0 ? -errno : 0, {0}, "open " + path))
		return false;
	fl.fd = fd;
	fl.present = true;
	fl.gen = uint32_t(uid());
	drm_refnpu_get_param gp = {};
	gp.param = DRM_REFNPU_PARAM_NUM_QUEUES;
	int ret = sys_ioctl(fd, DRM_IOCTL_REFNPU_GET_PARAM, &gp);
	check(K_GET_PARAM, ret, {0}, "GET_PARAM NUM_QUEUES");
	fl.num_queues = ret ? 1 : uint32_t(std::max<uint64_t>(gp.value, 1));
	for (auto &c : fl.cmd) {
		drm_refnpu_bo_create bc = {};
		drm_refnpu_bo_info bi = {};

		bc.size = kCmdBoSize;
		ret = sys_ioctl(fd, DRM_IOCTL_REFNPU_BO_CREATE, &bc);
		if (!check(K_BO_CREATE, ret, {0}, strf("%s: command BO create", file_name[f])))
			return false;
		bi.handle = bc.handle;
		ret = sys_ioctl(fd, DRM_IOCTL_REFNPU_BO_INFO, &bi);
		if (!check(K_BO_INFO, ret, {0}, strf("%s: command BO info", file_name[f])))
			return false;
		void *p = mmap(nullptr, kCmdBoSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			       bi.mmap_offset);
		if (!check(K_MMAP, p == MAP_FAILED ? -errno : 0, {0}, "mmap command BO"))
			return false;
		c.handle = bc.handle;
		c.va = bc.va;
		c.map = static_cast<uint8_t *>(p);
		memset(c.busy, 0, sizeof(c.busy));
	}
	return true;
}

/* Close a file: its handles and syncobjs go, the Mems live on. */
void Worker::close_file(int f, bool wait_jobs)
{
	File &fl = files_[f];

	if (fl.fd < 0)
		return;
	if (wait_jobs) {
		int64_t end = now_ns() + 2 * kWaitBudgetNs;
		for (size_t i = 0; i < pending_.size() && now_ns() < end;) {
			if (pending_[i]->file != f) {
				i++;
				continue;
			}
			std::unique_ptr<Job> j = std::move(pending_[i]);
			pending_.erase(pending_.begin() + i);
			pending_.push_front(std::move(j));
			if (!retire_oldest(end - now_ns()))
				break;
		}
	}
	for (size_t i = 0; i < pending_.size();) {
		if (pending_[i]->file == f) {
			abandon(*pending_[i]);
			pending_.erase(pending_.begin() + i);
		} else {
			i++;
		}
	}
	for (int i = int(handles_.size()) - 1; i >= 0; i--)
		if (handles_[i].file == f)
			drop_handle(i);
	for (int i = int(syncobjs_.size()) - 1; i >= 0; i--)
		if (syncobjs_[i].file == f)
			syncobjs_.erase(syncobjs_.begin() + i);
	prime_cache_[f].clear();
	for (auto &c : fl.cmd)
		if (c.map)
			munmap(c.map, kCmdBoSize);
	close(fl.fd);
	fl.fd = -1;
	fl.present = false;
	shared->reopens++;
}

/* ---- pools -------------------------------------------------------------- */

std::vector<int> Worker::handles_in(int f) const
{
	std::vector<int> v;

	for (size_t i = 0; i < handles_.size(); i++)
		if (handles_[i].file == f)
			v.push_back(int(i));
	return v;
}

int Worker::handle_index(int f, uint32_t h) const
{
	for (size_t i = 0; i < handles_.size(); i++)
		if (handles_[i].file == f && handles_[i].handle == h)
			return int(i);
	return -1;
}

/* A handle number that names no BO in file @f. */
uint32_t Worker::dead_handle(Rng &r, int f)
{
	for (int tries = 0; tries < 8; tries++) {
		uint32_t h;
		switch (r.below(5)) {
		case 0:
			h = 0;
			break;
		case 1:
			h = r.chance(1, 2) ? 0x7fffffff : 0xffffffff;
			break;
		case 2: /* a live handle of another file */
			if (!handles_.empty()) {
				h = r.pick(handles_).handle;
				break;
			}
			[[fallthrough]];
		default: /* recently closed or never used: small numbers */
			h = uint32_t(r.range(1, 96));
			break;
		}
		bool cmd = false;
		for (auto &c : files_[f].cmd)
			cmd |= c.handle == h;
		if (!handle_live(f, h) && !cmd)
			return h;
	}
	return 0x7ffffff0;
}

int Worker::handle_count_for(const Mem *m) const
{
	int n = 0;

	for (auto &h : handles_)
		n += h.obj->mem.get() == m;
	return n;
}

void Worker::note_orphan(const std::shared_ptr<Mem> &m)
{
	if (!m->cpu || m->kind != MemKind::Shmem)
		return;
	orphans_.push_back(m);
	while (orphans_.size() > kMaxOrphans)
		orphans_.pop_front();
}

/*
 * Record a new handle. A job in flight that may write unmapped VAs of its
 * file (wild jobs, faults at a VA that was free) may write the new BO: it
 * joins that job's accesses, so its pages stay unknown until the job ends.
 */
void Worker::add_handle(const Handle &h)
{
	handles_.push_back(h);
	files_[h.file].map_gen++;
	for (auto &jp : pending_) {
		Job &j = *jp;
		if (j.file != h.file || j.gen != files_[h.file].gen)
			continue;
		/* what of extent @e the new BO covers: an access of @j, unordered */
		auto credit = [&](const std::pair<uint64_t, uint64_t> &e, bool write) {
			uint64_t end = e.first + e.second < e.first ? kU64Max : e.first + e.second;
			uint64_t a = std::max(e.first, h.va), b = std::min(end, h.va + h.obj->size);
			if (a >= b)
				return false;
			Access acc;
			acc.mem = h.obj->mem;
			acc.off = h.obj->off + (a - h.va);
			acc.len = b - a;
			acc.write = write;
			acc.ro_keep = write && (h.obj->dev_ro() || h.obj->mem->dev_ro);
			acc.ordered = false;
			acc.domain = h.obj->domain;
			begin_access(j, acc);
			j.acc.push_back(acc);
			if (write && !acc.ro_keep)
				h.obj->mem->mask |= j.read_tags;
			return true;
		};
		for (auto &e : j.wild_ext)
			credit(e, true);
		/* a job reading where the new BO landed copies its bytes */
		for (auto &e : j.wild_rd) {
			if (credit(e, false)) {
				j.read_tags |= h.obj->mem->mask;
				outputs_uncertain(j);
				spread_tags(j, h.obj->mem->mask);
			}
		}
	}
}

/* Forget a handle (already closed in the kernel, or its file closed). */
void Worker::drop_handle(int idx)
{
	Handle h = handles_[idx];
	File &fl = files_[h.file];

	handles_.erase(handles_.begin() + idx);
	fl.freed.emplace_back(h.va, h.obj->size);
	while (fl.freed.size() > 64)
		fl.freed.pop_front();
	std::erase_if(fl.held, [](const auto &e) { return e.second.expired(); });
	fl.held.push_back({{h.va, h.obj->size}, h.obj});
	for (auto it = prime_cache_[h.file].begin(); it != prime_cache_[h.file].end();) {
		if (it->second == h.handle)
			it = prime_cache_[h.file].erase(it);
		else
			++it;
	}
	if (!handle_count_for(h.obj->mem.get()))
		note_orphan(h.obj->mem);
}

void Worker::gem_close_idx(int idx, bool check_result)
{
	Handle &h = handles_[idx];
	drm_gem_close gc = {};

	gc.handle = h.handle;
	int ret = sys_ioctl(files_[h.file].fd, DRM_IOCTL_GEM_CLOSE, &gc);
	if (check_result)
		check(K_GEM_CLOSE, ret, {0}, "GEM_CLOSE " + hdesc(h));
	else
		count(K_GEM_CLOSE, ret);
	drop_handle(idx);
}

bool Worker::make_room_handles(Rng &r)
{
	while (handles_.size() >= kMaxHandles)
		gem_close_idx(int(r.below(handles_.size())), true);
	return true;
}

/* The GEM object of @m on device @dev: the same for every file. */
std::shared_ptr<Obj> Worker::obj_for(const std::shared_ptr<Mem> &m, int d)
{
	auto it = dev_objs_[d].find(m->uid);
	if (it != dev_objs_[d].end())
		if (auto o = it->second.lock())
			return o;
	auto o = std::make_shared<Obj>();
	o->uid = uid();
	o->dev = d;
	o->mem = m;
	o->size = m->size;
	o->domain = m->uid;
	o->last_known = m->pending_listing == 0 && !m->shared;
	if (m->home_listed && d == m->home_dev) {
		o->last_job = m->home_listed->last_job;
		o->listed_by = m->home_listed->listed_by;
		o->last_status = m->home_listed->last_status;
		o->last_known &= m->home_listed->last_known;
	}
	dev_objs_[d][m->uid] = o;
	return o;
}

int Worker::pick_file(Rng &r, std::initializer_list<int> roles)
{
	std::vector<int> ok;

	for (int f : roles)
		if (file_ok(f))
			ok.push_back(f);
	return ok.empty() ? -1 : r.pick(ok);
}

int Worker::pick_handle(Rng &r, int f, bool need_cpu)
{
	std::vector<int> v;

	for (size_t i = 0; i < handles_.size(); i++)
		if ((f < 0 || handles_[i].file == f) && (!need_cpu || handles_[i].obj->mem->cpu))
			v.push_back(int(i));
	return v.empty() ? -1 : r.pick(v);
}

int Worker::pick_syncobj(Rng &r, int f)
{
	std::vector<int> v;

	for (size_t i = 0; i < syncobjs_.size(); i++)
		if (f < 0 || syncobjs_[i].file == f)
			v.push_back(int(i));
	return v.empty() ? -1 : r.pick(v);
}

/* An absolute CLOCK_MONOTONIC deadline that never blocks long. */
uint64_t Worker::pick_timeout(Rng &r, bool allow_block)
{
	switch (r.below(allow_block ? 6 : 5)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return uint64_t(now_ns() - 1000000000);
	case 3:
		return uint64_t(-1); /* negative: in the past */
	case 4:
		return uint64_t(now_ns() + int64_t(r.below(20)) * 1000000);
	default:
		return uint64_t(INT64_MAX);
	}
}

/* ---- memory checks ------------------------------------------------------ */

/*
 * Check [off, off+len) of @m through its CPU view: every byte is 0 or
 * tagged by a worker whose data may be there, and pages whose content is
 * known and that no job may be writing hold exactly the shadow bytes.
 */
bool Worker::check_bytes(Mem &m, uint64_t off, uint64_t len, const char *what, const uint8_t *view)
{
	const uint8_t *base = view ? view : m.cpu;

	if (!base || !m.checked || !len)
		return true;
	len = std::min(len, m.size - std::min(off, m.size));
	for (uint64_t p = off / kPage; len && p <= (off + len - 1) / kPage; p++) {
		uint64_t lo = std::max(off, p * kPage), hi = std::min(off + len, (p + 1) * kPage);
		const uint8_t *b = base + lo;
		shared->pages_tag_checked++;
		for (uint64_t i = 0; i < hi - lo; i++) {
			uint8_t v = b[i];
			unsigned t = v >> 4;
			if (!v || (m.mask & (1u << t)))
				continue;
			std::string who = t ? strf("tag %u: data of worker %u (mod 15)", t, t - 1)
					    : "untagged";
			violation(K_TOUCH,
				  strf("%s: %s memory 0x%" PRIx64 " (size 0x%" PRIx64
				       ") byte 0x%" PRIx64 " is 0x%02x, %s; allowed tags 0x%x",
				       what, mem_kind_name(m.kind), m.uid, m.size, lo + i, v,
				       who.c_str(), m.mask) +
					  "; events on the page (W/w write, R read, K refused "
					  "write, E/F job ended ok/failed, C CPU write, T tags "
					  "spread):" +
					  m.events(p * kPage, (p + 1) * kPage));
			return false;
		}
		if (m.page_exact(p) && !m.wr[p]) {
			if (memcmp(base + lo, m.shadow.data() + lo, hi - lo)) {
				uint64_t i = 0;
				while (base[lo + i] == m.shadow[lo + i])
					i++;
				violation(K_TOUCH,
					  strf("%s: %s memory 0x%" PRIx64 " byte 0x%" PRIx64
					       " is 0x%02x, expected 0x%02x (last written by "
					       "job %" PRIu64 ")",
					       what, mem_kind_name(m.kind), m.uid, lo + i,
					       base[lo + i], m.shadow[lo + i], m.last_writer[p]) +
						  "; events on the page (W/w write, R read, K "
						  "refused "
						  "write, E/F job ended ok/failed, C CPU write):" +
						  m.events(p * kPage, (p + 1) * kPage));
				m.known[p] = 0;
				return false;
			}
			shared->bytes_verified += hi - lo;
		}
	}
	return true;
}

/* Write fresh tagged bytes through the CPU where no job is in flight. */
void Worker::cpu_rewrite(Rng &r, Mem &m, uint64_t off, uint64_t len)
{
	if (!m.cpu || !m.cpu_writable || !m.exact_capable())
		return;
	len = std::min(len, m.size - std::min(off, m.size));
	for (uint64_t p = off / kPage; len && p <= (off + len - 1) / kPage; p++) {
		if (!m.page_idle(p))
			continue;
		uint64_t lo = std::max(off, p * kPage), hi = std::min(off + len, (p + 1) * kPage);
		if (!m.known[p]) {
			/* unknown bytes outside the range would stay unknown */
			lo = p * kPage;
			hi = std::min((p + 1) * kPage, m.size);
		}
		fill_tagged(m.shadow.data() + lo, hi - lo, tag_, r);
		memcpy(m.cpu + lo, m.shadow.data() + lo, hi - lo);
		m.note('C', opno_, 0, lo, hi - lo);
		m.known[p] = 1;
		m.unordered[p] = 0;
	}
}

/* A new BO's VA range must not overlap (or touch) another BO's in @f. */
bool Worker::va_free_for(int f, uint64_t va, uint64_t size, const std::string &what)
{
	uint64_t end = va + size;
	bool ok = va >= dev.va_start && va % kPage == 0 && end > va &&
		  (!dev.va_size || end <= dev.va_start + dev.va_size);

	if (!ok) {
		violation(K_BO_CREATE, strf("%s: VA 0x%" PRIx64 "+0x%" PRIx64
					    " outside the device VA range or unaligned",
					    what.c_str(), va, size));
		return false;
	}
	auto clash = [&](uint64_t a, uint64_t s) { return va < a + s + kPage && a < end + kPage; };
	for (auto &h : handles_) {
		if (h.file != f || !clash(h.va, h.obj->size))
			continue;
		/* an import of an object this file holds shares its mapping */
		violation(K_BO_CREATE, strf("%s: VA 0x%" PRIx64 "+0x%" PRIx64
					    " overlaps or has no guard gap to ",
					    what.c_str(), va, size) +
					       hdesc(h));
		return false;
	}
	for (auto &c : files_[f].cmd) {
		if (c.map && clash(c.va, kCmdBoSize)) {
			violation(K_BO_CREATE,
				  strf("%s: VA 0x%" PRIx64 " overlaps a command BO at 0x%" PRIx64,
				       what.c_str(), va, c.va));
			return false;
		}
	}
	return true;
}

/* ---- syncobj model ------------------------------------------------------ */

void so_replace(SyncState &s, Fence f)
{
	s.head = f;
	s.base = Fence{};
	s.chain = false;
	s.points.clear();
	s.max_point = 0;
	s.max_uncertain = false;
	s.points_uncertain = false;
}

/* drm_syncobj_add_point(): see dma_fence_chain_init() for the seqno rule */
void so_add_point(SyncState &s, Fence f, uint64_t p)
{
	if (s.chain && !s.max_uncertain && p > s.max_point) {
		s.points[p] = f;
		s.max_point = p;
		s.head = f;
		return;
	}
	if (s.chain) {
		/* an unordered point: the newest node answers every lookup */
		if (s.max_uncertain)
			s.max_point = std::max(s.max_point, p);
		s.points_uncertain = true;
		s.head = f;
		return;
	}
	Fence base = s.head;
	so_replace(s, f);
	s.base = base;
	s.chain = true;
	s.max_point = p;
	if (p)
		s.points[p] = f;
}

int single(const Expect &e)
{
	for (int i = 0; i < kErrSlots; i++)
		if (e.ok.test(i))
			return -i;
	return 0;
}

/*
 * What a job's in-fence or a wait finds at @p: 1 found, 0 nothing (the
 * point was never submitted, or no fence), -1 cannot tell.
 */
int so_lookup(const SyncState &s, uint64_t p, Fence *f)
{
	f->kind = Fence::UNKNOWN;
	if (p == 0) {
		if (s.head.kind == Fence::NONE)
			return 0;
		if (!s.chain)
			*f = s.head;
		return 1;
	}
	if (!s.chain)
		return 0;
	if (s.max_uncertain)
		return -1;
	if (p > s.max_point)
		return 0;
	if (!s.points_uncertain) {
		auto it = s.points.lower_bound(p);
		if (it != s.points.end())
			*f = it->second;
	}
	return 1;
}

Fence Worker::job_fence(const Job &j) const
{
	Fence f;

	f.kind = Fence::JOB;
	f.job = j.seq;
	f.entity = j.entity;
	return f;
}

/* 0 ok, <0 failed with that errno, 1 unknown; *signaled when known done */
int Worker::fence_status(const Fence &f, bool *signaled) const
{
	*signaled = false;
	switch (f.kind) {
	case Fence::STUB:
		*signaled = true;
		return 0;
	case Fence::JOB: {
		auto it = outcomes_.find(f.job);
		if (it != outcomes_.end()) {
			*signaled = true;
			return it->second;
		}
		for (auto &j : pending_)
			if (j->seq == f.job)
				return j->certain ? single(j->allowed) : 1;
		return 1;
	}
	default:
		return 1;
	}
}

/*
 * The status of what a lookup at @p found (@fe). A timeline point may be
 * answered by any later node once the chain was garbage collected, so a
 * point is only known good when every point from @p is. A chain node
 * signals when its fence and every earlier node's have
 * (dma_fence_chain_signaled()), so a point is signalled when every point
 * up to the node that answers it is (the first point at or above @p), and
 * the fence the chain was started on.
 */
int Worker::point_status(const SyncState &st, uint64_t p, const Fence &fe, bool *signaled) const
{
	if (!p || !st.chain || st.points_uncertain || st.max_uncertain)
		return fence_status(fe, signaled);
	int worst = 0;
	bool all = true;
	auto node = st.points.lower_bound(p);
	if (st.base.kind != Fence::NONE) {
		bool sg;
		fence_status(st.base, &sg);
		all = sg;
	}
	for (auto it = st.points.begin(); it != st.points.end(); ++it) {
		bool sg;
		int fs = fence_status(it->second, &sg);
		if (it->first >= p && fs)
			worst = 1;
		if (node == st.points.end() || it->first <= node->first)
			all &= sg;
	}
	*signaled = all;
	return worst;
}

/* ---- VA map of a file --------------------------------------------------- */

bool Worker::lookup_va(int f, uint64_t va, uint64_t len, int *hidx, uint64_t *off) const
{
	for (size_t i = 0; i < handles_.size(); i++) {
		const Handle &h = handles_[i];
		if (h.file != f || va < h.va || va - h.va >= h.obj->size)
			continue;
		if (len > h.obj->size - (va - h.va))
			return false;
		*hidx = int(i);
		*off = va - h.va;
		return true;
	}
	return false;
}

/* Nothing is or may soon be mapped at [va, va+len) in file @f. */
bool Worker::va_certainly_unmapped(int f, uint64_t va, uint64_t len) const
{
	auto meets = [&](uint64_t a, uint64_t s) { return va < a + s && a < va + len; };

	if (va + len < va)
		return false;
	for (auto &h : handles_)
		if (h.file == f && meets(h.va, page_up(h.obj->size)))
			return false;
	for (auto &c : files_[f].cmd)
		if (meets(c.va, kCmdBoSize))
			return false;
	for (auto &fr : files_[f].freed)
		if (meets(fr.first, page_up(fr.second)))
			return false;
	for (auto &e : files_[f].held)
		if (!e.second.expired() && meets(e.first.first, page_up(e.first.second)))
			return false;
	return true;
}

/* ---- job bookkeeping ---------------------------------------------------- */

void Worker::begin_access(Job &j, Access &a)
{
	Mem &m = *a.mem;

	if (!a.len)
		return;
	m.note(a.ro_keep ? 'K'
	       : a.write ? (a.certain ? 'W' : 'w')
			 : 'R',
	       opno_, j.seq, a.off, a.len);
	for (uint64_t p = a.off / kPage; p <= (a.off + a.len - 1) / kPage && p < m.pages(); p++) {
		if ((m.rd[p] || m.wr[p]) && (m.domain[p] != a.domain || !a.ordered))
			m.unordered[p] = 1;
		if (!a.ordered)
			m.unordered[p] = 1;
		m.domain[p] = a.domain;
		if (a.write && !a.ro_keep) {
			m.wr[p]++;
			m.last_writer[p] = j.seq;
			bool full = a.off <= p * kPage &&
				    a.off + a.len >= std::min((p + 1) * kPage, m.size);
			if (!a.certain)
				m.known[p] = 0;
			else if (full)
				m.known[p] = 1;
		} else {
			m.rd[p]++;
		}
		if (m.unordered[p])
			m.known[p] = 0;
	}
}

void Worker::end_access(Job &j, Access &a, int status)
{
	Mem &m = *a.mem;

	if (a.voided || !a.len)
		return;
	m.note(status ? 'F' : 'E', opno_, j.seq, a.off, a.len);
	for (uint64_t p = a.off / kPage; p <= (a.off + a.len - 1) / kPage && p < m.pages(); p++) {
		if (a.write && !a.ro_keep) {
			if (m.wr[p])
				m.wr[p]--;
			if (status && m.last_writer[p] >= j.seq)
				m.known[p] = 0;
		} else if (m.rd[p]) {
			m.rd[p]--;
		}
		if (!m.rd[p] && !m.wr[p])
			m.unordered[p] = 0;
	}
}

int Worker::alloc_slot(int f)
{
	for (int b = 0; b < kCmdBos; b++)
		for (int s = 0; s < kSlotsPerBo; s++)
			if (files_[f].cmd[b].map && !files_[f].cmd[b].busy[s])
				return b * kSlotsPerBo + s;
	return -1;
}

void undo_plan(Job &j)
{
	for (auto it = j.undo.rbegin(); it != j.undo.rend(); ++it)
		memcpy(it->first->shadow.data() + it->second.first, it->second.second.data(),
		       it->second.second.size());
	j.undo.clear();
}

/* Record the shadow bytes a planned write replaces. */
void save_undo(Job &j, const std::shared_ptr<Mem> &m, uint64_t off, uint64_t len)
{
	j.undo.push_back({m,
			  {off, std::vector<uint8_t>(m->shadow.begin() + off,
						     m->shadow.begin() + off + len)}});
}

/*
 * Submit a planned job. The status syncobj is added to @out; on success the
 * job's accesses, listings and signals take effect.
 */
bool Worker::submit_job(Rng &r, std::unique_ptr<Job> job, Cmds &cmds, uint32_t flags,
			std::vector<drm_refnpu_bo_ref> refs, std::vector<drm_refnpu_sync> in,
			std::vector<drm_refnpu_sync> out, Expect sub)
{
	int f = job->file;
	File &fl = files_[f];
	int slot = alloc_slot(f);

	if (slot < 0 || cmds.data.size() > kSlotSize || cmds.data.empty()) {
		undo_plan(*job);
		return false;
	}
	CmdBo &cb = fl.cmd[slot / kSlotsPerBo];
	uint64_t cmd_off = uint64_t(slot % kSlotsPerBo) * kSlotSize;
	memcpy(cb.map + cmd_off, cmds.data.data(), cmds.data.size());

	drm_syncobj_create sc = {};
	int ret = sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc);
	if (!check(K_SO_CREATE, ret, {0}, std::string(file_name[f]) + ": status syncobj")) {
		undo_plan(*job);
		return false;
	}
	job->status_so = sc.handle;
	out.insert(out.begin() + r.below(out.size() + 1), drm_refnpu_sync{sc.handle, 0, 0});

	/* element strides: usually the struct, sometimes larger with a zero tail */
	uint32_t bstride = sizeof(drm_refnpu_bo_ref), sstride = sizeof(drm_refnpu_sync);
	if (r.chance(1, 6))
		bstride = uint32_t(8 * r.range(2, 8));
	if (r.chance(1, 6))
		sstride = uint32_t(8 * r.range(3, 10));
	std::vector<uint8_t> bbuf(refs.size() * bstride + 8), ibuf(in.size() * sstride + 8),
		obuf(out.size() * sstride + 8);
	for (size_t i = 0; i < refs.size(); i++)
		memcpy(&bbuf[i * bstride], &refs[i], sizeof(refs[i]));
	for (size_t i = 0; i < in.size(); i++)
		memcpy(&ibuf[i * sstride], &in[i], sizeof(in[i]));
	for (size_t i = 0; i < out.size(); i++)
		memcpy(&obuf[i * sstride], &out[i], sizeof(out[i]));

	drm_refnpu_submit s = {};
	s.queue = uint32_t(job->queue);
	s.priority = uint32_t(job->prio);
	s.flags = flags;
	s.cmd_handle = cb.handle;
	s.cmd_offset = cmd_off;
	s.cmd_size = cmds.data.size();
	s.bos = refs.empty() && r.chance(1, 2) ? bad_.pointer(r) : uintptr_t(bbuf.data());
	s.bo_count = uint32_t(refs.size());
	s.bo_stride = refs.empty() && r.chance(1, 2) ? uint32_t(r.next()) : bstride;
	s.in_syncs = in.empty() && r.chance(1, 2) ? bad_.pointer(r) : uintptr_t(ibuf.data());
	s.in_sync_count = uint32_t(in.size());
	s.in_sync_stride = sstride;
	s.out_syncs = uintptr_t(obuf.data());
	s.out_sync_count = uint32_t(out.size());
	s.out_sync_stride = sstride;

	std::string d = strf("SUBMIT %s q%u prio%u flags 0x%x cmd 0x%" PRIx64 "+%" PRIu64
			     " bos %u/%u in %u out %u",
			     file_name[f], s.queue, s.priority, s.flags, uint64_t(s.cmd_offset),
			     uint64_t(s.cmd_size), s.bo_count, s.bo_stride, s.in_sync_count,
			     s.out_sync_count);
	for (auto &ref : refs)
		d += strf(" h%u:%s%s", ref.handle, ref.flags & 1 ? "R" : "",
			  ref.flags & 2 ? "W" : "");
	for (auto &x : in)
		d += strf(" in:s%u@%llu", x.handle, (unsigned long long)x.point);
	for (auto &x : out)
		d += strf(" out:s%u@%llu", x.handle, (unsigned long long)x.point);
	job->desc = d + " {" + job->desc + "}";

	if (job->prio == DRM_REFNPU_PRIORITY_HIGH && !dev.cap_sys_nice)
		sub = Expect{-EPERM};
	job->resets = reset_count();
	ret = sys_ioctl(fl.fd, DRM_IOCTL_REFNPU_SUBMIT, &s);
	check(K_SUBMIT, ret, sub, job->desc);
	if (ret) {
		if (ret == -ECANCELED)
			fl.banned = true;
		undo_plan(*job);
		drm_syncobj_destroy sd = {};
		sd.handle = job->status_so;
		check(K_SO_DESTROY, sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd), {0},
		      "destroy status syncobj");
		shared->submits_rejected++;
		return false;
	}
	job->undo.clear();
	job->slot = slot;
	cb.busy[slot % kSlotsPerBo]++;
	job->t_submit = now_ns();
	for (auto &a : job->acc)
		if (a.write && !a.ro_keep)
			taint_readers(*job, a);
	for (auto &a : job->acc)
		begin_access(*job, a);
	for (auto &o : job->listed) {
		o->last_job = job->seq;
		o->last_known = false;
		o->listed_by.push_back(job->seq);
		if (o->listed_by.size() > 8)
			o->listed_by.pop_front();
		if (std::find(job->listing_mems.begin(), job->listing_mems.end(), o->mem) ==
		    job->listing_mems.end())
			job->listing_mems.push_back(o->mem);
	}
	for (auto &m : job->listing_mems)
		m->pending_listing++;
	Fence jf = job_fence(*job);
	for (auto &sg : job->signals) {
		if (sg.second)
			so_add_point(*sg.first, jf, sg.second);
		else
			so_replace(*sg.first, jf);
	}
	for (auto &e : job->wild_ext)
		fl.wild_ext.push_back(e);
	job->map_gen = fl.map_gen;
	shared->jobs_submitted++;
	pending_.push_back(std::move(job));
	return true;
}

/* Wait (at most @budget_ns) for the oldest job, then check how it ended. */
bool Worker::retire_oldest(int64_t budget_ns)
{
	if (pending_.empty())
		return true;
	std::unique_ptr<Job> &j = pending_.front();
	File &fl = files_[j->file];
	fz_syncobj_wait w = {};
	uint32_t h = j->status_so;

	w.handles = uintptr_t(&h);
	w.count_handles = 1;
	w.timeout_nsec = now_ns() + std::max<int64_t>(budget_ns, 0);
	int ret = sys_ioctl(fl.fd, FZ_IOCTL_SYNCOBJ_WAIT, &w);
	if (!check(K_SO_WAIT, ret, {0, -ETIME}, strf("wait job %" PRIu64, j->seq)))
		return false;
	if (ret) {
		if (!j->slow) {
			j->slow = true;
			shared->jobs_slow++;
		}
		return false;
	}
	drm_syncobj_handle sh = {};
	sh.handle = h;
	sh.flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE;
	sh.fd = -1;
	ret = sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &sh);
	if (!check(K_SO_H2FD, ret, {0}, strf("export job %" PRIu64 " fence", j->seq)))
		return false;
	sync_file_info info = {};
	sync_fence_info fi = {};
	info.num_fences = 1;
	info.sync_fence_info = uintptr_t(&fi);
	ret = sys_ioctl(sh.fd, SYNC_IOC_FILE_INFO, &info);
	close(sh.fd);
	if (!check(K_SYNC_FILE_INFO, ret, {0}, "SYNC_IOC_FILE_INFO"))
		return false;
	if (fi.status == 0 || info.status == 0) {
		violation(K_RETIRE, strf("job %" PRIu64 ": syncobj wait returned but its fence "
					 "is not signalled (status %d)",
					 j->seq, fi.status));
		return false;
	}
	drm_syncobj_destroy sd = {};
	sd.handle = h;
	check(K_SO_DESTROY, sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd), {0},
	      "destroy status syncobj");
	std::unique_ptr<Job> job = std::move(pending_.front());
	pending_.pop_front();
	retire(job, fi.status < 0 ? fi.status : 0);
	return true;
}

void Worker::retire(std::unique_ptr<Job> &j, int st)
{
	File &fl = files_[j->file];

	count(K_RETIRE, st);
	shared->jobs_status[eslot(st)]++;
	if (!st)
		shared->jobs_ok++;
	else if (j->allowed.has(st))
		shared->jobs_failed_expected++;
	say(strf("job %" PRIu64 " ended %s%s", j->seq, st ? "-" : "", st ? errname(st) : "0"));
	if (!st && j->racy && fl.map_gen != j->map_gen) {
		say("the unmapped VA it used may have got a BO before it ran: success accepted");
	} else if (st == -EAGAIN && !j->allowed.has(st) && reset_count() != j->resets) {
		/* refnpu_accel.h: a reset stopped it part-way (another job hung) */
		shared->jobs_reset_stopped++;
		say("a device or queue reset happened while it ran: -EAGAIN accepted");
	} else if (st == -ECANCELED && !j->allowed.has(st) && !j->in_model.empty() &&
		   reset_count() != j->resets) {
		/* an in-fence's job may have been stopped by that reset (-EAGAIN) */
		shared->jobs_reset_stopped++;
		say("a reset happened while it waited on in-fences: -ECANCELED accepted");
	} else if (j->same_entity_doc && st == -ECANCELED && opt.lenient_same_entity) {
		count_warning(K_RETIRE, st,
			      "job cancelled by a failed in-fence of its own file, queue and "
			      "priority (accepted by --lenient-same-entity): " +
				      j->desc);
	} else if (!j->allowed.has(st)) {
		std::string why;
		if (j->same_entity_doc && st == -ECANCELED)
			why = " (its in-fence is a failed job of the same file, queue and "
			      "priority: refnpu_accel.h says such a fence does not cancel it)";
		violation(K_RETIRE,
			  strf("job %" PRIu64 " ended with %s%s, expected %s%s: ", j->seq,
			       st ? "-" : "", st ? errname(st) : "0", j->allowed.str().c_str(),
			       why.c_str()) +
				  j->desc +
				  (j->in_model.empty() ? "" : "; in-fence model:" + j->in_model));
	}
	outcomes_[j->seq] = st;
	while (outcomes_.size() > 4096)
		outcomes_.erase(outcomes_.begin());
	for (auto &o : j->listed) {
		if (o->last_job == j->seq) {
			o->last_status = st;
			o->last_known = true;
		}
	}
	for (auto &m : j->listing_mems)
		if (m->pending_listing)
			m->pending_listing--;
	for (auto &a : j->acc)
		end_access(*j, a, st);
	/* verify: the job's certain writes, and read-only memory it tried to write */
	for (auto &a : j->acc) {
		Mem &m = *a.mem;
		if (a.voided || !a.len || !m.cpu)
			continue;
		if (a.write && !a.ro_keep && !st) {
			for (uint64_t p = a.off / kPage; p <= (a.off + a.len - 1) / kPage; p++) {
				uint64_t lo = std::max(a.off, p * kPage);
				uint64_t hi = std::min(a.off + a.len, (p + 1) * kPage);
				if (m.last_writer[p] == j->seq)
					check_bytes(m, lo, hi - lo,
						    strf("job %" PRIu64 " output", j->seq).c_str());
			}
		} else if (a.ro_keep) {
			check_bytes(m, a.off, a.len,
				    strf("read-only memory job %" PRIu64 " tried to write", j->seq)
					    .c_str());
		} else if (a.write) {
			check_bytes(m, a.off, a.len, "memory a failed job may have written");
		}
	}
	if (j->slot >= 0 && fl.gen == j->gen) {
		CmdBo &cb = fl.cmd[j->slot / kSlotsPerBo];
		if (cb.busy[j->slot % kSlotsPerBo])
			cb.busy[j->slot % kSlotsPerBo]--;
	}
	for (auto &e : j->wild_ext) {
		auto it = std::find(fl.wild_ext.begin(), fl.wild_ext.end(), e);
		if (it != fl.wild_ext.end())
			fl.wild_ext.erase(it);
	}
}

/*
 * A write nothing orders after the reads of an earlier job (another sync
 * domain, or no implicit sync) may land before those reads: that job's
 * outputs, and what later jobs computed from them, are no longer known,
 * and they may carry every tag the written memory may carry. Two userptr
 * BOs over the same pages are such a pair: each has its own reservation
 * object, so the kernel orders nothing between them (uapi.rst; the
 * dmabuf test UnorderedUserptrAliasesMayReadALaterWrite pins it).
 */
void Worker::taint_readers(const Job &w, const Access &wa)
{
	for (auto &jp : pending_) {
		Job &j = *jp;
		if (&j == &w)
			continue;
		for (auto &ra : j.acc) {
			if (ra.write || ra.voided || ra.mem != wa.mem ||
			    ra.off >= wa.off + wa.len || wa.off >= ra.off + ra.len)
				continue;
			if (ra.domain != wa.domain || !ra.ordered || !wa.ordered) {
				outputs_uncertain(j);
				spread_tags(j, wa.mem->mask);
				break;
			}
		}
	}
}

/*
 * Bytes tagged @tags may reach what pending job @j writes: its destinations
 * may carry them, and so may the destinations of later pending jobs that
 * read those (the masks were taken when each job was planned).
 */
void Worker::spread_tags(Job &j, uint32_t tags)
{
	for (auto &a : j.acc) {
		if (!a.write || a.ro_keep || a.voided || !a.len ||
		    (a.mem->mask | tags) == a.mem->mask)
			continue;
		a.mem->mask |= tags;
		a.mem->note('T', opno_, j.seq, a.off, a.len);
		for (auto &kp : pending_) {
			Job &k = *kp;
			if (k.seq <= j.seq)
				continue;
			for (auto &kr : k.acc)
				if (!kr.write && !kr.voided && kr.mem == a.mem &&
				    kr.off < a.off + a.len && a.off < kr.off + kr.len) {
					spread_tags(k, a.mem->mask);
					break;
				}
		}
	}
}

void Worker::outputs_uncertain(Job &j)
{
	if (j.outputs_uncertain)
		return;
	j.outputs_uncertain = true;
	for (auto &a : j.acc) {
		if (!a.write || a.ro_keep || a.voided || !a.len)
			continue;
		a.certain = false;
		for (uint64_t p = a.off / kPage;
		     p <= (a.off + a.len - 1) / kPage && p < a.mem->pages(); p++)
			a.mem->known[p] = 0;
	}
	/* later jobs that read what it writes */
	for (auto &kp : pending_) {
		Job &k = *kp;
		if (k.seq <= j.seq || k.outputs_uncertain)
			continue;
		bool reads = false;
		for (auto &kr : k.acc)
			for (auto &a : j.acc)
				reads |= !kr.write && a.write && kr.mem == a.mem &&
					 kr.off < a.off + a.len && a.off < kr.off + kr.len;
		if (reads)
			outputs_uncertain(k);
	}
}

/* A job whose file was closed before it could be waited for. */
void Worker::abandon(Job &j)
{
	shared->jobs_abandoned++;
	for (auto &a : j.acc) {
		end_access(j, a, -EIO);
		if (a.write && !a.ro_keep)
			a.mem->tainted = true;
		a.voided = true;
	}
	for (auto &o : j.listed)
		o->last_known = false;
	for (auto &m : j.listing_mems) {
		if (m->pending_listing)
			m->pending_listing--;
		m->tainted = true;
	}
	File &fl = files_[j.file];
	for (auto &e : j.wild_ext) {
		auto it = std::find(fl.wild_ext.begin(), fl.wild_ext.end(), e);
		if (it != fl.wild_ext.end())
			fl.wild_ext.erase(it);
	}
}

/* ---- job planning ------------------------------------------------------- */

bool Worker::writable_target(const Handle &h) const
{
	const Mem &m = *h.obj->mem;

	return !h.obj->dev_ro() && !m.dev_ro && m.checked && m.kind != MemKind::Ghost;
}

/* No job of another sync domain (or unordered) may touch these pages. */
bool conflict_free(const Mem &m, uint64_t off, uint64_t len, uint64_t domain, bool write)
{
	for (uint64_t p = off / kPage; len && p <= (off + len - 1) / kPage; p++) {
		if (m.unordered[p])
			return false;
		if ((m.rd[p] || m.wr[p]) && m.domain[p] != domain && (write || m.wr[p]))
			return false;
	}
	return true;
}

/* In-fences for a planned job: only ones the model says exist. */
void Worker::plan_in_syncs(Rng &r, int f, Job &j, std::vector<drm_refnpu_sync> &in,
			   bool *cancel_maybe)
{
	int n = r.chance(1, 4) ? int(r.range(1, 2)) : 0;

	for (int i = 0; i < n; i++) {
		int si = pick_syncobj(r, f);
		if (si < 0)
			return;
		SyncState &st = *syncobjs_[si].st;
		uint64_t p = 0;
		if (st.chain && st.max_point && r.chance(2, 3))
			p = r.range(1, st.max_point);
		Fence fe;
		if (so_lookup(st, p, &fe) != 1)
			continue;
		bool sig;
		int fs = point_status(st, p, fe, &sig);
		if (fs == 1 || (fs < 0 && p)) {
			*cancel_maybe = true;
		} else if (fs < 0) {
			if (fe.entity == j.entity)
				j.same_entity_doc = true;
			else
				j.allowed = Expect{-ECANCELED};
		}
		in.push_back({syncobjs_[si].handle, 0, p});
		j.in_model +=
			strf(" s%u@%llu:%s/job%llu/st%d/ent%s", syncobjs_[si].handle,
			     (unsigned long long)p,
			     fe.kind == Fence::STUB  ? "stub"
			     : fe.kind == Fence::JOB ? "job"
						     : "unknown",
			     (unsigned long long)fe.job, fs, fe.entity == j.entity ? "=" : "!=");
	}
}

void Worker::plan_out_syncs(Rng &r, int f, Job &j, std::vector<drm_refnpu_sync> &out)
{
	int n = r.chance(1, 3) ? int(r.range(1, 2)) : 0;

	for (int i = 0; i < n; i++) {
		int si = pick_syncobj(r, f);
		if (si < 0)
			return;
		SyncState &st = *syncobjs_[si].st;
		uint64_t p = 0;
		if (r.chance(1, 2)) {
			p = st.max_point + r.range(1, 3);
			if (r.chance(1, 8))
				p = r.range(1, st.max_point + 1);
		}
		out.push_back({syncobjs_[si].handle, 0, p});
		j.signals.push_back({syncobjs_[si].st, p});
	}
}

uint64_t tagged_pattern(Rng &r, uint8_t tag, uint32_t pb)
{
	uint8_t b[8];

	fill_tagged(b, 8, tag, r);
	uint64_t v = 0;
	for (uint32_t i = 0; i < pb; i++)
		v |= uint64_t(b[i]) << (8 * i);
	return v;
}

/*
 * A checked job in file @f built from the worker's own BOs: fills and
 * copies whose result the shadow predicts. Modes: 0 valid; 1 valid
 * commands then one that must fail (fault or malformed); 2 a copy from a
 * VA another worker published; 3 a data BO executed as commands.
 */
void Worker::op_job_tracked(Rng &r, int f, int mode)
{
	if (!file_ok(f) || files_[f].banned)
		return;
	if (pending_.size() >= kMaxPending && !retire_oldest(kWaitBudgetNs)) {
		say("jobs in flight at the limit and the oldest is slow: no submit");
		return;
	}
	std::vector<int> rd, wrt, ro;
	for (int i : handles_in(f)) {
		const Handle &h = handles_[i];
		if (!h.obj->mem->checked || h.obj->mem->kind == MemKind::Ghost)
			continue;
		rd.push_back(i);
		if (writable_target(h))
			wrt.push_back(i);
		if (h.obj->dev_ro())
			ro.push_back(i);
	}
	if (rd.empty())
		return;

	auto job = std::make_unique<Job>();
	Job &j = *job;
	j.seq = ++job_seq_;
	j.file = f;
	j.gen = files_[f].gen;
	j.queue = int(r.below(files_[f].num_queues));
	j.prio = r.chance(1, 8)
			 ? DRM_REFNPU_PRIORITY_HIGH
			 : (r.chance(1, 4) ? DRM_REFNPU_PRIORITY_LOW : DRM_REFNPU_PRIORITY_NORMAL);
	j.entity = int64_t(files_[f].gen) << 12 | f << 8 | j.queue << 2 | j.prio;
	j.allowed = Expect{0};
	bool uncertain = opt.inject_errors;
	std::vector<drm_refnpu_sync> in, out;
	Expect sub{0};
	plan_in_syncs(r, f, j, in, &uncertain);
	bool cancelled = j.allowed.has(-ECANCELED);
	if (cancelled || uncertain)
		j.same_entity_doc = false;
	/* the doc and the code may disagree on such a job: predict nothing */
	bool shaky = uncertain || j.same_entity_doc;

	Cmds cmds;
	std::map<int, uint32_t> list;
	std::set<std::pair<const Mem *, uint64_t>> dirty;
	uint64_t bytes = 0;
	std::string d;

	auto src_exact = [&](const std::shared_ptr<Obj> &o, uint64_t off, uint64_t len) {
		const Mem &m = *o->mem;
		if (o->detached)
			return false;
		if (!m.range_exact(o->off + off, len) ||
		    !conflict_free(m, o->off + off, len, o->domain, false))
			return false;
		for (uint64_t p = (o->off + off) / kPage;
		     len && p <= (o->off + off + len - 1) / kPage; p++)
			if (dirty.count({&m, p}))
				return false;
		return true;
	};
	auto add_write = [&](int hi, uint64_t off, uint64_t len, bool certain) {
		const Handle &h = handles_[hi];
		Access a;
		a.mem = h.obj->mem;
		a.off = h.obj->off + off;
		a.len = len;
		a.write = true;
		a.domain = h.obj->domain;
		a.certain = certain && !shaky && !cancelled && !h.obj->detached &&
			    a.mem->exact_capable() &&
			    conflict_free(*a.mem, a.off, len, a.domain, true);
		if (!a.certain)
			for (uint64_t p = a.off / kPage; len && p <= (a.off + len - 1) / kPage; p++)
				dirty.insert({a.mem.get(), p});
		j.acc.push_back(a);
		return a.certain;
	};
	auto add_read = [&](int hi, uint64_t off, uint64_t len) {
		const Handle &h = handles_[hi];
		Access a;
		a.mem = h.obj->mem;
		a.off = h.obj->off + off;
		a.len = len;
		a.domain = h.obj->domain;
		j.acc.push_back(a);
	};

	int ncmd = mode == 3 ? 0 : int(r.range(mode == 1 ? 0 : 1, 4));
	for (int c = 0; c < ncmd && bytes < kMaxJobBytes; c++) {
		int type = int(r.below(10));
		if (type < 4 && !wrt.empty()) {
			/* FILL */
			int hi = r.pick(wrt);
			const Handle &h = handles_[hi];
			const Mem &m = *h.obj->mem;
			if (m.shared || m.kind == MemKind::Foreign) {
				cmds.nop();
				continue;
			}
			static const uint32_t pbs[] = {1, 2, 4, 8};
			uint32_t pb = pbs[r.below(4)];
			uint64_t size = h.obj->size;
			uint32_t rows = uint32_t(r.range(1, 3));
			uint64_t maxrow = std::min<uint64_t>(size / rows, 16384);
			uint32_t row_bytes =
				uint32_t(pb * r.range(1, std::max<uint64_t>(1, maxrow / pb)));
			uint64_t pitch = rows > 1 ? row_bytes + pb * r.below(64) : row_bytes;
			if ((rows - 1) * pitch + row_bytes > size) {
				rows = 1;
				pitch = row_bytes;
			}
			if (row_bytes > size)
				row_bytes = uint32_t(size / pb * pb);
			uint64_t ext = (rows - 1) * pitch + row_bytes;
			uint64_t off = pb * r.below((size - ext) / pb + 1);
			uint64_t pat = tagged_pattern(r, tag_, pb);
			cmds.fill(h.va + off, pitch, rows, row_bytes, pat, pb);
			list[hi] |= DRM_REFNPU_BO_REF_WRITE;
			for (uint32_t row = 0; row < rows; row++) {
				uint64_t o = off + row * pitch;
				if (add_write(hi, o, row_bytes, true)) {
					auto &mm = handles_[hi].obj->mem;
					uint64_t mo = handles_[hi].obj->off + o;
					save_undo(j, mm, mo, row_bytes);
					for (uint32_t b = 0; b < row_bytes; b++)
						mm->shadow[mo + b] = uint8_t(pat >> (8 * (b % pb)));
				}
			}
			bytes += uint64_t(rows) * row_bytes;
			d += strf(" fill(%s+0x%" PRIx64 " %ux%u/%" PRIu64 " pb%u)", file_name[f],
				  off, rows, row_bytes, pitch, pb);
		} else if (type < 9 && !wrt.empty()) {
			/* COPY */
			int si = r.pick(rd), di = r.pick(wrt);
			const Handle &s = handles_[si], &dh = handles_[di];
			Mem &dm = *dh.obj->mem;
			/* memory others see only gets copies of itself */
			if ((dm.shared || dm.kind == MemKind::Foreign) && s.obj->mem.get() != &dm) {
				cmds.nop();
				continue;
			}
			uint64_t ssz = s.obj->size, dsz = dh.obj->size;
			uint32_t rows = uint32_t(r.range(1, 3));
			uint64_t lim = std::min<uint64_t>({ssz / rows, dsz / rows, 16384});
			uint32_t row_bytes = uint32_t(r.range(1, std::max<uint64_t>(lim, 1)));
			uint64_t sp = row_bytes + r.below(64), dp = row_bytes + r.below(64);
			if (rows == 1 || (rows - 1) * sp + row_bytes > ssz ||
			    (rows - 1) * dp + row_bytes > dsz) {
				rows = 1;
				sp = dp = row_bytes;
			}
			if (row_bytes > std::min(ssz, dsz)) {
				cmds.nop();
				continue;
			}
			uint64_t sext = (rows - 1) * sp + row_bytes,
				 dext = (rows - 1) * dp + row_bytes;
			uint64_t so = r.below(ssz - sext + 1), dof = r.below(dsz - dext + 1);
			cmds.copy(dh.va + dof, dp, s.va + so, sp, rows, row_bytes);
			list[si] |= DRM_REFNPU_BO_REF_READ;
			list[di] |= DRM_REFNPU_BO_REF_WRITE;
			bool same = s.obj->mem.get() == &dm;
			uint64_t sa = s.obj->off + so, da = dh.obj->off + dof;
			bool overlap = same && sa < da + dext && da < sa + sext;
			dm.mask |= s.obj->mem->mask;
			for (uint32_t row = 0; row < rows; row++) {
				bool sx = src_exact(s.obj, so + row * sp, row_bytes) && !overlap;
				add_read(si, so + row * sp, row_bytes);
				if (add_write(di, dof + row * dp, row_bytes, sx)) {
					auto &mm = handles_[di].obj->mem;
					uint64_t mo = da + row * dp;
					save_undo(j, mm, mo, row_bytes);
					memmove(mm->shadow.data() + mo,
						s.obj->mem->shadow.data() + sa + row * sp,
						row_bytes);
				}
			}
			bytes += uint64_t(rows) * row_bytes;
			d += strf(" copy(%u:0x%" PRIx64 "->%u:0x%" PRIx64 " %ux%u)", s.handle, so,
				  dh.handle, dof, rows, row_bytes);
		} else {
			cmds.nop();
			d += " nop";
		}
	}
	if (cmds.data.empty() && mode == 0) {
		cmds.nop();
		d += " nop";
	}

	uint64_t cmd_cut = 0;
	if (mode == 1 && !cancelled) {
		/* the last command fails */
		int v = int(r.below(10));
		int hi = r.pick(rd);
		const Handle &h = handles_[hi];
		uint64_t gap = h.va + page_up(h.obj->size);
		int expect = -EFAULT;
		switch (v) {
		case 0: /* into the guard gap after a listed BO */
			cmds.fill(gap + 8 * r.below(500), 64, 1, 64, tagged_pattern(r, tag_, 8), 8);
			list[hi] |= DRM_REFNPU_BO_REF_READ;
			d += " fill(guard gap)";
			break;
		case 1: { /* from inside a BO across its end */
			if (wrt.empty() || handles_[wrt[0]].obj->mem->shared) {
				cmds.fill(0x1000, 8, 1, 8, tagged_pattern(r, tag_, 8), 8);
				d += " fill(VA 0x1000)";
				break;
			}
			int wi = r.pick(wrt);
			const Handle &w = handles_[wi];
			if (w.obj->mem->shared || w.obj->mem->kind == MemKind::Foreign ||
			    w.obj->size != page_up(w.obj->size)) {
				cmds.fill(w.va + page_up(w.obj->size), 8, 1, 8,
					  tagged_pattern(r, tag_, 8), 8);
				list[wi] |= DRM_REFNPU_BO_REF_READ;
				d += " fill(guard gap)";
				break;
			}
			uint64_t k = 8 * r.range(1, std::min<uint64_t>(64, w.obj->size / 8));
			uint32_t len = uint32_t(k + 8 * r.range(1, 64));
			cmds.fill(w.va + w.obj->size - k, len, 1, len, tagged_pattern(r, tag_, 8),
				  8);
			list[wi] |= DRM_REFNPU_BO_REF_WRITE;
			add_write(wi, w.obj->size - k, k, false);
			d += " fill(across the end)";
			break;
		}
		case 2: /* write a read-only BO */
			if (!ro.empty()) {
				int oi = r.pick(ro);
				const Handle &o = handles_[oi];
				uint64_t off = 8 * r.below(o.obj->size / 8);
				uint32_t len = uint32_t(std::min<uint64_t>(o.obj->size - off, 256));
				len &= ~7u;
				if (!len)
					len = 8, off = 0;
				if (r.chance(1, 2)) {
					cmds.fill(o.va + off, len, 1, len,
						  tagged_pattern(r, tag_, 8), 8);
				} else {
					int si = r.pick(rd);
					cmds.copy(o.va + off, len, handles_[si].va, len, 1,
						  uint32_t(std::min<uint64_t>(
							  len, handles_[si].obj->size)));
					list[si] |= DRM_REFNPU_BO_REF_READ;
				}
				list[oi] |= r.chance(1, 2) ? DRM_REFNPU_BO_REF_WRITE
							   : DRM_REFNPU_BO_REF_READ;
				Access a;
				a.mem = o.obj->mem;
				a.off = o.obj->off + off;
				a.len = len;
				a.write = true;
				a.ro_keep = true;
				a.domain = o.obj->domain;
				j.acc.push_back(a);
				d += " write(read-only BO)";
				break;
			}
			[[fallthrough]];
		case 3: /* below the VA range */
			cmds.fill(8 * r.below(dev.va_start / 8), 8, 1, 8,
				  tagged_pattern(r, tag_, 8), 8);
			d += " fill(below VA_START)";
			break;
		case 4: { /* above the VA range, or a non-canonical VA */
			uint64_t va = dev.va_start + dev.va_size + 8 * r.below(1 << 20);
			if (r.chance(1, 2) || va >= REFNPU_VA_LIMIT)
				va = (1ULL << (48 + r.below(15))) | (8 * r.below(1 << 20));
			cmds.fill(va, 8, 1, 8, tagged_pattern(r, tag_, 8), 8);
			d += strf(" fill(VA 0x%" PRIx64 ")", va);
			break;
		}
		case 5: { /* copy from the guard gap */
			int wi = wrt.empty() ? -1 : r.pick(wrt);
			if (wi < 0 || handles_[wi].obj->mem->shared ||
			    handles_[wi].obj->mem->kind == MemKind::Foreign) {
				cmds.copy(gap, 64, gap + 64, 64, 1, 64);
			} else {
				const Handle &w = handles_[wi];
				uint32_t len = uint32_t(std::min<uint64_t>(w.obj->size, 64));
				cmds.copy(w.va, len, gap, len, 1, len);
				list[wi] |= DRM_REFNPU_BO_REF_WRITE;
				add_write(wi, 0, len, false);
			}
			list[hi] |= DRM_REFNPU_BO_REF_READ;
			d += " copy(from guard gap)";
			break;
		}
		case 6: { /* malformed commands */
			expect = -EINVAL;
			uint64_t va = gap + 4096;
			switch (r.below(10)) {
			case 0:
				cmds.add<refnpu_cmd_nop>(uint16_t(r.chance(1, 2) ? 0x7ff : 0xffff),
							 8);
				d += " unknown-opcode";
				break;
			case 1:
				cmds.fill(va, 8, 1, 8, 0, 8).hdr.len_dw = r.chance(1, 2) ? 11 : 13;
				d += " fill(bad len_dw)";
				break;
			case 2:
				cmds.nop();
				reinterpret_cast<refnpu_cmd_hdr *>(&cmds.data[cmds.data.size() - 8])
					->len_dw = 0;
				d += " nop(len_dw 0)";
				break;
			case 3:
				cmds.fill(va, 8, 1, 9, 0, 3);
				d += " fill(pattern_bytes 3)";
				break;
			case 4:
				cmds.fill(va, 8, 1, 8, 0, 8).rsvd = 1;
				d += " fill(rsvd)";
				break;
			case 5:
				cmds.fill(va, 8, 1, 8, 0, 8).hdr.flags =
					uint16_t(1u << r.below(16));
				d += " fill(flags)";
				break;
			case 6:
				cmds.fill(va, 4, 1, 4, 0x1ffff, 2);
				d += " fill(pattern above pattern_bytes)";
				break;
			case 7:
				cmds.copy(va, 8, va + 64, 4, 2, 8);
				d += " copy(pitch below row)";
				break;
			case 8:
				cmds.fill(kU64Max - 4095, 8, 1, 8192, 0, 8);
				d += " fill(wraps the address space)";
				break;
			default:
				cmds.nop();
				reinterpret_cast<refnpu_cmd_hdr *>(&cmds.data[cmds.data.size() - 8])
					->flags = 1;
				d += " nop(flags)";
				break;
			}
			break;
		}
		case 7: /* the buffer ends inside the last command */
			expect = -EINVAL;
			cmds.fill(gap, 8, 1, 8, 0, 8);
			cmd_cut = 8 * r.range(1, 5);
			d += strf(" fill(cut by %" PRIu64 " bytes)", cmd_cut);
			break;
		default: { /* a VA that no longer or never was a BO here */
			uint64_t va = 0;
			if (!files_[f].freed.empty() && r.chance(1, 2)) {
				auto &fr = files_[f].freed[r.below(files_[f].freed.size())];
				va = fr.first;
			} else {
				va = dev.va_start + kPage * r.below(1 << 24);
			}
			if (!va_certainly_unmapped(f, va, 64)) {
				va = gap;
			} else {
				j.racy = true;
				j.wild_ext.push_back({va, 64});
			}
			cmds.fill(va, 64, 1, 64, tagged_pattern(r, tag_, 8), 8);
			list[hi] |= DRM_REFNPU_BO_REF_READ;
			d += strf(" fill(unmapped VA 0x%" PRIx64 ")", va);
			break;
		}
		}
		j.allowed = Expect{expect};
	} else if (mode == 2 && !cancelled) {
		/* copy from a VA another worker uses in its own address space */
		int other = int(r.below(kMaxWorkers));
		uint64_t va = shared->published_va[other][r.below(8)].load();
		if (!va || other == id_ || wrt.empty()) {
			cmds.nop();
		} else {
			int wi = r.pick(wrt);
			const Handle &w = handles_[wi];
			if (w.obj->mem->shared || w.obj->mem->kind == MemKind::Foreign) {
				cmds.nop();
			} else {
				uint32_t len = uint32_t(std::min<uint64_t>(w.obj->size, 256));
				int shi;
				uint64_t soff;
				list[wi] |= DRM_REFNPU_BO_REF_WRITE;
				if (lookup_va(f, va, len, &shi, &soff)) {
					/* our own BO is there: we read our own data */
					cmds.copy(w.va, len, va, len, 1, len);
					list[shi] |= DRM_REFNPU_BO_REF_READ;
					add_read(shi, soff, len);
					bool same = handles_[shi].obj->mem == w.obj->mem;
					bool sx = src_exact(handles_[shi].obj, soff, len) && !same;
					w.obj->mem->mask |= handles_[shi].obj->mem->mask;
					if (add_write(wi, 0, len, sx)) {
						auto &mm = w.obj->mem;
						save_undo(j, mm, w.obj->off, len);
						memmove(mm->shadow.data() + w.obj->off,
							handles_[shi].obj->mem->shadow.data() +
								handles_[shi].obj->off + soff,
							len);
					}
					d += strf(" copy(worker %d's VA 0x%" PRIx64 ": ours)",
						  other, va);
				} else if (va_certainly_unmapped(f, va, len)) {
					cmds.copy(w.va, len, va, len, 1, len);
					add_write(wi, 0, len, false);
					j.allowed = Expect{-EFAULT};
					j.racy = true;
					j.wild_rd.push_back({va, len});
					d += strf(" copy(worker %d's VA 0x%" PRIx64
						  ": unmapped here)",
						  other, va);
				} else {
					cmds.nop();
				}
			}
		}
	} else if (mode == 3) {
		cmds.data.clear();
	}

	if (uncertain) {
		j.allowed.add(-ECANCELED);
		if (opt.inject_errors)
			for (int e : job_errnos)
				if (e != ESRCH && e != ENODEV)
					j.allowed.add(-e);
	}
	j.certain = !shaky && j.allowed.ok.count() == 1;

	/* listing: what the commands touch, sometimes more, sometimes twice */
	std::vector<drm_refnpu_bo_ref> refs;
	for (auto &l : list) {
		refs.push_back({handles_[l.first].handle, l.second});
		j.listed.push_back(handles_[l.first].obj);
	}
	if (r.chance(1, 8) && !rd.empty()) {
		int xi = r.pick(rd);
		refs.push_back({handles_[xi].handle, DRM_REFNPU_BO_REF_READ});
		j.listed.push_back(handles_[xi].obj);
	}
	if (r.chance(1, 10) && !refs.empty())
		refs.push_back(refs[r.below(refs.size())]);
	for (size_t i = refs.size(); i > 1; i--)
		std::swap(refs[i - 1], refs[r.below(i)]);
	plan_out_syncs(r, f, j, out);
	j.desc = strf("job %" PRIu64 " mode %d:", j.seq, mode) + d;

	if (mode == 3) {
		/* a data BO as the command buffer: tags and zeros never decode */
		int hi = r.pick(rd);
		Handle &h = handles_[hi];
		if (h.obj->userptr && h.obj->size < 8)
			return;
		drm_syncobj_create sc = {};
		int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc);
		if (!check(K_SO_CREATE, ret, {0}, "status syncobj"))
			return;
		j.status_so = sc.handle;
		drm_refnpu_sync o = {sc.handle, 0, 0};
		drm_refnpu_submit s = {};
		s.queue = uint32_t(j.queue);
		s.priority = dev.cap_sys_nice ? uint32_t(j.prio) : 0;
		s.cmd_handle = h.handle;
		s.cmd_offset = 8 * r.below(h.obj->size / 8);
		s.cmd_size = std::min<uint64_t>(8 * r.range(1, 8), h.obj->size - s.cmd_offset);
		s.out_syncs = uintptr_t(&o);
		s.out_sync_count = 1;
		s.out_sync_stride = sizeof(o);
		j.allowed = Expect{-EINVAL};
		j.certain = !opt.inject_errors;
		if (opt.inject_errors)
			j.allowed.add(0).add(-EIO).add(-EFAULT).add(-ETIMEDOUT);
		j.listed = {h.obj};
		j.desc += strf(" data BO %s as commands at 0x%" PRIx64 "+%" PRIu64,
			       hdesc(h).c_str(), uint64_t(s.cmd_offset), uint64_t(s.cmd_size));
		ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_SUBMIT, &s);
		check(K_SUBMIT, ret, {0}, j.desc);
		if (ret) {
			drm_syncobj_destroy sd = {};
			sd.handle = sc.handle;
			sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
			return;
		}
		j.t_submit = now_ns();
		h.obj->last_job = j.seq;
		h.obj->last_known = false;
		h.obj->listed_by.push_back(j.seq);
		j.listing_mems.push_back(h.obj->mem);
		h.obj->mem->pending_listing++;
		shared->jobs_submitted++;
		pending_.push_back(std::move(job));
		return;
	}
	if (cmd_cut) {
		/*
		 * The buffer ends inside its last command: the slot holds the
		 * whole command, the submit names only a prefix of it
		 * (submit_job() takes the same free slot and rewrites that
		 * prefix with the same bytes).
		 */
		std::vector<uint8_t> keep = cmds.data;
		Cmds cut;
		cut.data.assign(keep.begin(), keep.end() - long(cmd_cut));
		int slot = alloc_slot(f);
		if (slot < 0 || cut.data.empty()) {
			undo_plan(j);
			return;
		}
		memcpy(files_[f].cmd[slot / kSlotsPerBo].map + (slot % kSlotsPerBo) * kSlotSize,
		       keep.data(), keep.size());
		submit_job(r, std::move(job), cut, 0, refs, in, out, sub);
		return;
	}
	submit_job(r, std::move(job), cmds, 0, refs, in, out, sub);
}

/*
 * A job of random commands in the wild file: any VA near its BOs, odd
 * sizes and pitches, partial or no listing, sometimes without implicit
 * sync. Nothing is predicted but its status set; every page it may touch
 * loses its known content, read-only BOs must come out unchanged.
 */
void Worker::op_job_wild(Rng &r)
{
	const int f = F_WILD;
	if (!file_ok(f))
		return;
	if (pending_.size() >= kMaxPending && !retire_oldest(kWaitBudgetNs))
		return;
	std::vector<int> hs = handles_in(f);
	if (hs.empty())
		return;
	auto job = std::make_unique<Job>();
	Job &j = *job;
	j.seq = ++job_seq_;
	j.file = f;
	j.gen = files_[f].gen;
	j.queue = int(r.below(files_[f].num_queues));
	j.prio = int(r.below(dev.cap_sys_nice ? 3 : 2));
	j.entity = int64_t(files_[f].gen) << 12 | f << 8 | j.queue << 2 | j.prio;
	j.allowed = Expect{0, -EFAULT, -EINVAL};
	uint32_t flags = r.chance(1, 3) ? DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC : 0;
	std::vector<drm_refnpu_sync> in, out;
	Expect sub{0};
	bool maybe = false;
	plan_in_syncs(r, f, j, in, &maybe);
	j.allowed.add(-ECANCELED);
	if (opt.inject_errors)
		j.allowed.add(-EIO).add(-ETIMEDOUT);
	j.same_entity_doc = false;

	Cmds cmds;
	std::map<int, uint32_t> list;
	std::string d;
	struct Ext {
		uint64_t va, len;
		bool write;
	};
	std::vector<Ext> exts;
	auto near_va = [&](uint64_t align) {
		if (r.chance(1, 16))
			return (dev.va_start + r.below(1ULL << 36)) & ~(align - 1);
		const Handle &h = handles_[r.pick(hs)];
		int64_t delta = int64_t(r.below(h.obj->size + 131072)) - 65536;
		return (h.va + uint64_t(delta)) & ~(align - 1);
	};
	auto meets_cmd = [&](uint64_t va, uint64_t len) {
		for (auto &c : files_[f].cmd)
			if (va < c.va + kCmdBoSize && c.va < va + len)
				return true;
		return va + len < va;
	};

	int n = int(r.range(1, 6));
	uint64_t bytes = 0;
	for (int c = 0; c < n; c++) {
		uint32_t rows = uint32_t(r.range(1, 8));
		uint32_t row_bytes = uint32_t(r.chance(1, 8) ? r.range(0, 8) : r.range(1, 16384));
		uint64_t pitch = r.chance(1, 4) ? r.below(262144) : row_bytes + r.below(4096);
		if (uint64_t(rows) * row_bytes > kMaxJobBytes)
			rows = 1;
		uint64_t ext = rows ? (rows - 1) * pitch + row_bytes : 0;
		if (r.chance(1, 2)) {
			static const uint32_t pbs[] = {1, 2, 4, 8, 3, 0};
			uint32_t pb = pbs[r.below(r.chance(1, 8) ? 6 : 4)];
			uint64_t va = near_va(r.chance(3, 4) && pb ? pb : 1);
			if (meets_cmd(va, ext)) {
				cmds.nop();
				continue;
			}
			auto &cm = cmds.fill(
				va, pitch, rows, row_bytes,
				pb && pb <= 8 ? tagged_pattern(r, tag_, std::min(pb, 8u)) : 0, pb);
			if (r.chance(1, 32))
				cm.rsvd = 1;
			exts.push_back({va, ext, true});
			d += strf(" fill(0x%" PRIx64 " %ux%u/%" PRIu64 " pb%u)", va, rows,
				  row_bytes, pitch, pb);
		} else {
			uint64_t sp = r.chance(1, 4) ? r.below(262144) : row_bytes + r.below(4096);
			uint64_t sext = rows ? (rows - 1) * sp + row_bytes : 0;
			uint64_t dva = near_va(1), sva = near_va(1);
			if (meets_cmd(dva, ext)) {
				cmds.nop();
				continue;
			}
			cmds.copy(dva, pitch, sva, sp, rows, row_bytes);
			exts.push_back({dva, ext, true});
			exts.push_back({sva, sext, false});
			d += strf(" copy(0x%" PRIx64 "->0x%" PRIx64 " %ux%u)", sva, dva, rows,
				  row_bytes);
		}
		bytes += uint64_t(rows) * row_bytes;
		if (bytes > kMaxJobBytes)
			break;
	}
	/* list some of the BOs, with random access flags */
	for (int i : hs)
		if (r.chance(1, 2))
			list[i] = uint32_t(r.range(1, 3));
	for (auto &e : exts) {
		if (!e.len)
			continue;
		if (e.write)
			j.wild_ext.push_back({e.va, e.len});
		else
			j.wild_rd.push_back({e.va, e.len});
		for (int i : hs) {
			const Handle &h = handles_[i];
			uint64_t a = std::max(e.va, h.va),
				 b = std::min(e.va + e.len, h.va + h.obj->size);
			if (e.va + e.len < e.va)
				b = h.va + h.obj->size;
			if (a >= b)
				continue;
			Access acc;
			acc.mem = h.obj->mem;
			acc.off = h.obj->off + (a - h.va);
			acc.len = b - a;
			acc.domain = h.obj->domain;
			acc.ordered = !(flags & DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC) &&
				      list.count(i) && (list[i] & (e.write ? 2 : 1));
			acc.write = e.write;
			acc.ro_keep = e.write && (h.obj->dev_ro() || h.obj->mem->dev_ro);
			j.acc.push_back(acc);
		}
	}
	/*
	 * Its copies may carry the tags of any memory it may read (a userptr
	 * BO over the arena holds what main-file jobs copied from imports),
	 * into anything it may write; a BO placed later under one of its
	 * ranges is credited by add_handle().
	 */
	for (auto &a : j.acc)
		if (!a.write)
			j.read_tags |= a.mem->mask;
	for (auto &a : j.acc)
		if (a.write && !a.ro_keep)
			a.mem->mask |= j.read_tags;
	std::vector<drm_refnpu_bo_ref> refs;
	for (auto &l : list) {
		refs.push_back({handles_[l.first].handle, l.second});
		j.listed.push_back(handles_[l.first].obj);
	}
	plan_out_syncs(r, f, j, out);
	j.desc = strf("job %" PRIu64 " wild:", j.seq) + d;
	submit_job(r, std::move(job), cmds, flags, refs, in, out, sub);
}

/*
 * Random compute commands (every opcode the header defines, and unknown
 * ones) in the compute file, whose BOs are never checked: the engine's
 * operand validation against arbitrary fields.
 */
void Worker::op_job_compute(Rng &r)
{
	const int f = F_COMPUTE;
	if (!file_ok(f))
		return;
	if (files_[f].banned) {
		close_file(f, true);
		open_file(f);
		return;
	}
	if (pending_.size() >= kMaxPending && !retire_oldest(kWaitBudgetNs))
		return;
	std::vector<int> hs = handles_in(f);
	if (hs.empty()) {
		drm_refnpu_bo_create bc = {};
		bc.size = 256 * 1024;
		int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_CREATE, &bc);
		if (!check(K_BO_CREATE, ret, {0}, "compute scratch BO"))
			return;
		Handle h;
		h.file = f;
		h.handle = bc.handle;
		h.va = bc.va;
		h.obj = std::make_shared<Obj>();
		h.obj->uid = uid();
		h.obj->mem = new_mem(MemKind::Shmem, bc.size);
		h.obj->mem->checked = false;
		h.obj->size = bc.size;
		h.obj->domain = h.obj->mem->uid;
		make_room_handles(r);
		add_handle(h);
		return;
	}
	auto job = std::make_unique<Job>();
	Job &j = *job;
	j.seq = ++job_seq_;
	j.file = f;
	j.gen = files_[f].gen;
	j.queue = int(r.below(files_[f].num_queues));
	j.prio = int(r.below(2));
	j.entity = int64_t(files_[f].gen) << 12 | f << 8 | j.queue << 2 | j.prio;
	j.allowed = Expect{0, -EFAULT, -EINVAL, -ETIMEDOUT, -ECANCELED};
	if (opt.inject_errors)
		j.allowed.add(-EIO);

	static const uint16_t ops[] = {REFNPU_OP_GEMM,
				       REFNPU_OP_EWISE,
				       REFNPU_OP_ACT,
				       REFNPU_OP_SOFTMAX,
				       REFNPU_OP_LAYERNORM,
				       REFNPU_OP_CONV2D,
				       REFNPU_OP_POOL2D,
				       REFNPU_OP_COPY,
				       REFNPU_OP_FILL,
				       REFNPU_OP_NOP,
				       0x0003,
				       0x0011,
				       0x0032,
				       0x00ff};
	static const uint32_t sizes[] = {REFNPU_CMD_GEMM_SIZE,
					 REFNPU_CMD_EWISE_SIZE,
					 REFNPU_CMD_ACT_SIZE,
					 REFNPU_CMD_SOFTMAX_SIZE,
					 REFNPU_CMD_LAYERNORM_SIZE,
					 REFNPU_CMD_CONV2D_SIZE,
					 REFNPU_CMD_POOL2D_SIZE,
					 REFNPU_CMD_COPY_SIZE,
					 REFNPU_CMD_FILL_SIZE,
					 REFNPU_CMD_NOP_SIZE,
					 8,
					 16,
					 24,
					 REFNPU_CMD_MAX_SIZE};
	Cmds cmds;
	std::string d;
	const Handle &h = handles_[r.pick(hs)];
	int n = int(r.range(1, 4));
	for (int c = 0; c < n; c++) {
		int k = int(r.below(sizeof(ops) / sizeof(ops[0])));
		uint32_t size = sizes[k];
		size_t off = cmds.data.size();
		cmds.data.resize(off + size);
		auto *w = reinterpret_cast<uint32_t *>(&cmds.data[off]);
		/* small numbers, VAs into the scratch BO, aligned; some noise */
		for (uint32_t i = 2; i < size / 4; i++) {
			switch (r.below(8)) {
			case 0:
			case 1:
				w[i] = uint32_t(r.below(9));
				break;
			case 2:
				w[i] = uint32_t(r.below(65));
				break;
			case 3:
				w[i] = uint32_t(r.next());
				break;
			default:
				w[i] = uint32_t(r.below(5));
				break;
			}
		}
		/* 64-bit VA fields are at 8-byte offsets after the header */
		for (uint32_t q = 8; q + 8 <= std::min<uint32_t>(size, 80); q += 8) {
			if (r.chance(1, 2)) {
				uint64_t va = h.va + 4 * r.below(h.obj->size / 4);
				if (r.chance(1, 16))
					va = r.next();
				memcpy(&cmds.data[off + q], &va, 8);
			}
		}
		auto *hdr = reinterpret_cast<refnpu_cmd_hdr *>(&cmds.data[off]);
		hdr->opcode = ops[k];
		hdr->flags = r.chance(1, 3) ? uint16_t(r.below(4)) : 0;
		hdr->len_dw = r.chance(1, 16) ? uint32_t(r.below(64)) : size / 4;
		d += strf(" op%#x/%u", ops[k], size);
	}
	Access a;
	a.mem = h.obj->mem;
	a.off = 0;
	a.len = h.obj->size;
	a.write = true;
	a.ordered = false;
	a.domain = h.obj->domain;
	j.acc.push_back(a);
	std::vector<drm_refnpu_bo_ref> refs = {{h.handle, DRM_REFNPU_BO_REF_WRITE}};
	j.listed.push_back(h.obj);
	j.desc = strf("job %" PRIu64 " compute:", j.seq) + d;
	Expect sub{0, -ECANCELED};
	submit_job(r, std::move(job), cmds, 0, refs, {}, {}, sub);
}

/*
 * One SUBMIT with a single defect in its arguments: the errno the header
 * documents for it. The base is a NOP job listing one BO; a defect the
 * kernel accepts leaves a job we still wait for.
 */
void Worker::op_submit_invalid(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0 || files_[f].banned)
		return;
	if (pending_.size() >= kMaxPending && !retire_oldest(kWaitBudgetNs))
		return;
	File &fl = files_[f];
	int hi = pick_handle(r, f);
	int slot = alloc_slot(f);
	if (hi < 0 || slot < 0)
		return;
	Handle &h = handles_[hi];
	CmdBo &cb = fl.cmd[slot / kSlotsPerBo];
	uint64_t cmd_off = uint64_t(slot % kSlotsPerBo) * kSlotSize;
	Cmds nops;
	nops.nop();
	nops.nop();
	memcpy(cb.map + cmd_off, nops.data.data(), 16);

	drm_syncobj_create sc = {};
	if (!check(K_SO_CREATE, sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc), {0},
		   "status syncobj"))
		return;
	drm_syncobj_create fresh = {};
	bool have_fresh = false;

	struct {
		drm_refnpu_bo_ref ref;
		uint32_t tail[6];
	} ext[2] = {};
	drm_refnpu_bo_ref ref = {h.handle, DRM_REFNPU_BO_REF_READ};
	drm_refnpu_sync in[2] = {}, outs[2] = {{sc.handle, 0, 0}, {}};
	drm_refnpu_submit s = {};
	s.queue = uint32_t(r.below(fl.num_queues));
	s.cmd_handle = cb.handle;
	s.cmd_offset = cmd_off;
	s.cmd_size = 16;
	s.bos = uintptr_t(&ref);
	s.bo_count = 1;
	s.bo_stride = sizeof(ref);
	s.in_sync_stride = sizeof(drm_refnpu_sync);
	s.out_syncs = uintptr_t(outs);
	s.out_sync_count = 1;
	s.out_sync_stride = sizeof(drm_refnpu_sync);

	Expect e{-EINVAL};
	bool out_intact = true;
	std::string what;
	int v = int(r.below(34));
	switch (v) {
	case 0:
		s.flags = 1u << r.range(1, 31);
		what = "unknown submit flag";
		break;
	case 1:
		s.pad = 1ULL << r.below(64);
		what = "pad";
		break;
	case 2:
		s.queue = r.chance(1, 2) ? fl.num_queues : uint32_t(r.next() | 0x80000000);
		what = "queue out of range";
		break;
	case 3:
		s.priority = uint32_t(r.range(3, 0xffffffff));
		what = "priority out of range";
		break;
	case 4:
		s.cmd_size = 0;
		what = "cmd_size 0";
		break;
	case 5:
		s.cmd_size = 16 + r.range(1, 7);
		what = "cmd_size not a multiple of 8";
		break;
	case 6:
		s.cmd_size = uint64_t(REFNPU_CMDBUF_MAX_SIZE) + 8 * r.range(1, 1 << 20);
		what = "cmd_size above REFNPU_CMDBUF_MAX_SIZE";
		break;
	case 7:
		s.cmd_offset = cmd_off + r.range(1, 7);
		what = "unaligned cmd_offset";
		break;
	case 8:
		s.cmd_offset = kCmdBoSize - 8;
		what = "command range beyond its BO";
		break;
	case 9:
		s.cmd_offset = r.chance(1, 2) ? kCmdBoSize + 8 : (kU64Max & ~7ULL);
		s.cmd_size = 16;
		what = "cmd_offset beyond its BO";
		break;
	case 10:
		s.bo_count = r.chance(1, 2) ? dev.max_bos + 1 : uint32_t(r.next() | 0x80000000);
		what = "bo_count above the limit";
		break;
	case 11:
		s.in_sync_count = dev.max_syncs + uint32_t(r.range(1, 1000));
		s.in_syncs = uintptr_t(in);
		what = "in_sync_count above the limit";
		break;
	case 12:
		s.out_sync_count = r.chance(1, 2) ? ~0u : dev.max_syncs + 1;
		what = "out_sync_count above the limit";
		out_intact = false;
		break;
	case 13:
		s.bo_stride = uint32_t(r.below(sizeof(ref)));
		what = "bo_stride below the element";
		break;
	case 14:
		s.bo_stride = r.chance(1, 2) ? 4097 + uint32_t(r.below(8192)) : ~0u;
		what = "bo_stride above 4096";
		break;
	case 15:
		ext[0].ref = ref;
		ext[0].tail[r.below(6)] = 1;
		s.bos = uintptr_t(ext);
		s.bo_stride = sizeof(ext[0]);
		what = "non-zero bytes beyond the element";
		break;
	case 16:
		ref.flags = r.chance(1, 2) ? 0 : (DRM_REFNPU_BO_REF_READ | 1u << r.range(2, 31));
		what = "BO reference flags";
		break;
	case 17:
		ref.handle = dead_handle(r, f);
		e = Expect{-ENOENT};
		what = strf("BO handle %u that names nothing here", ref.handle);
		break;
	case 18:
		s.cmd_handle = dead_handle(r, f);
		e = Expect{-ENOENT};
		what = strf("command handle %u that names nothing here", s.cmd_handle);
		break;
	case 19:
		s.bos = r.chance(1, 3) ? uintptr_t(bad_.edge + kPage - 4) : bad_.pointer(r);
		e = Expect{-EFAULT};
		what = strf("unreadable BO array 0x%llx", (unsigned long long)s.bos);
		break;
	case 20:
		memcpy(bad_.edge + kPage - sizeof(ref), &ref, sizeof(ref));
		s.bos = uintptr_t(bad_.edge + kPage - sizeof(ref));
		s.bo_count = 2;
		e = Expect{-EFAULT};
		what = "BO array crossing into an unmapped page";
		break;
	case 21:
		in[0] = {0x7fffff00u + uint32_t(r.below(200)), 0, 0};
		s.in_syncs = uintptr_t(in);
		s.in_sync_count = 1;
		e = Expect{-ENOENT};
		what = "in-syncobj that names nothing";
		break;
	case 22:
	case 23: {
		if (!check(K_SO_CREATE, sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_CREATE, &fresh), {0},
			   "fresh syncobj"))
			break;
		have_fresh = true;
		in[0] = {fresh.handle, v == 22 ? 1u << r.below(32) : 0,
			 v == 23 ? r.range(0, 5) : 0};
		s.in_syncs = uintptr_t(in);
		s.in_sync_count = 1;
		if (v == 23)
			e = Expect{-ENOENT};
		what = v == 22 ? "in-sync flags" : "in-syncobj without a fence";
		break;
	}
	case 24:
		s.in_syncs = bad_.pointer(r);
		s.in_sync_count = 1;
		e = Expect{-EFAULT};
		what = "unreadable in-sync array";
		break;
	case 25:
		s.out_syncs = bad_.pointer(r);
		e = Expect{-EFAULT};
		what = "unreadable out-sync array";
		out_intact = false;
		break;
	case 26:
		outs[1] = {0x7fffff00u + uint32_t(r.below(200)), 0, 0};
		s.out_sync_count = 2;
		e = Expect{-ENOENT};
		what = "out-syncobj that names nothing";
		out_intact = false;
		break;
	case 27:
		outs[0].flags = 1u << r.below(32);
		what = "out-sync flags";
		out_intact = false;
		break;
	case 28:
		in[0] = {sc.handle, 0, 0};
		s.in_syncs = uintptr_t(in);
		s.in_sync_count = 1;
		s.in_sync_stride = uint32_t(r.below(sizeof(drm_refnpu_sync)));
		what = "in_sync_stride below the element";
		break;
	case 29: /* valid: a zero count ignores pointer and stride */
		s.bo_count = 0;
		s.bos = bad_.pointer(r);
		s.bo_stride = uint32_t(r.next());
		e = Expect{0};
		what = "bo_count 0 with a bad pointer and stride (valid)";
		break;
	case 30: /* valid: a larger stride with a zero tail */
		ext[0].ref = ref;
		s.bos = uintptr_t(ext);
		s.bo_stride = sizeof(ext[0]);
		e = Expect{0};
		what = "bo_stride 32 with a zero tail (valid)";
		break;
	case 31: /* valid: high priority needs CAP_SYS_NICE */
		s.priority = DRM_REFNPU_PRIORITY_HIGH;
		e = dev.cap_sys_nice ? Expect{0} : Expect{-EPERM};
		what = "high priority";
		break;
	case 32: /* the same BO listed many times, merged */
		for (auto &x : ext)
			x.ref = ref;
		s.bos = uintptr_t(ext);
		s.bo_count = 2;
		s.bo_stride = sizeof(ext[0]);
		e = Expect{0};
		what = "one BO listed twice (valid)";
		break;
	default: /* the ioctl argument itself unreadable */
		e = Expect{-EFAULT};
		what = "argument pointer";
		break;
	}
	int ret;
	if (v >= 33)
		ret = sys_ioctl(fl.fd, DRM_IOCTL_REFNPU_SUBMIT,
				reinterpret_cast<void *>(bad_.pointer(r)));
	else
		ret = sys_ioctl(fl.fd, DRM_IOCTL_REFNPU_SUBMIT, &s);
	check(K_SUBMIT, ret, e, strf("SUBMIT %s with %s", file_name[f], what.c_str()));
	if (have_fresh) {
		drm_syncobj_destroy sd = {};
		sd.handle = fresh.handle;
		sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
	}
	if (ret) {
		drm_syncobj_destroy sd = {};
		sd.handle = sc.handle;
		sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
		shared->submits_rejected++;
		return;
	}
	/* accepted: a NOP job that lists the BO */
	auto job = std::make_unique<Job>();
	job->seq = ++job_seq_;
	job->file = f;
	job->gen = fl.gen;
	job->status_so = sc.handle;
	job->allowed = Expect{0};
	job->certain = !opt.inject_errors;
	if (opt.inject_errors)
		job->allowed.add(-EIO).add(-EFAULT).add(-EINVAL).add(-ETIMEDOUT).add(-ECANCELED);
	job->slot = slot;
	job->desc = "accepted SUBMIT with " + what;
	job->t_submit = now_ns();
	cb.busy[slot % kSlotsPerBo]++;
	if (out_intact) {
		if (s.bo_count) { /* bo_count 0 lists nothing */
			job->listed.push_back(h.obj);
			h.obj->last_job = job->seq;
			h.obj->last_known = false;
			h.obj->listed_by.push_back(job->seq);
			job->listing_mems.push_back(h.obj->mem);
			h.obj->mem->pending_listing++;
		}
		shared->jobs_submitted++;
		pending_.push_back(std::move(job));
	} else {
		/* no status syncobj to wait on: BO_WAIT cannot be trusted */
		untracked_ = true;
		cb.busy[slot % kSlotsPerBo]--;
		h.obj->last_known = false;
		drm_syncobj_destroy sd = {};
		sd.handle = sc.handle;
		sys_ioctl(fl.fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
	}
}

/* ---- refnpu ioctls ------------------------------------------------------ */

void Worker::op_get_param(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_COMPUTE, F_PEER});
	if (f < 0)
		return;
	drm_refnpu_get_param p = {};
	Expect e{0};
	int v = int(r.below(20));
	p.param = uint32_t(r.below(DRM_REFNPU_PARAM_HW_CAPS + 1));
	void *arg = &p;
	if (v == 0) {
		p.param =
			r.chance(1, 2) ? DRM_REFNPU_PARAM_HW_CAPS + 1 : uint32_t(r.next() | 0x100);
		e = Expect{-EINVAL};
	} else if (v == 1) {
		p.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 2) {
		arg = reinterpret_cast<void *>(bad_.pointer(r));
		e = Expect{-EFAULT};
	} else if (v == 3) {
		/* readable but not writable: the result cannot be copied back */
		arg = bad_.ro;
		e = Expect{-EFAULT};
	}
	std::string d = strf("GET_PARAM %s param %u pad %u%s", file_name[f], p.param, p.pad,
			     arg != &p ? " (bad argument pointer)" : "");
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_GET_PARAM, arg);
	if (!check(K_GET_PARAM, ret, e, d) || ret || arg != &p)
		return;
	uint64_t val = p.value;
	auto bad = [&](const char *what) {
		violation(K_GET_PARAM, strf("%s: value 0x%" PRIx64 " %s", d.c_str(), val, what));
	};
	bool primary = file_dev(f) == 0;
	switch (p.param) {
	case DRM_REFNPU_PARAM_DRIVER_VERSION:
		if (val != (DRM_REFNPU_DRIVER_MAJOR << 16 | DRM_REFNPU_DRIVER_MINOR))
			bad("is not the header's version");
		break;
	case DRM_REFNPU_PARAM_CAPABILITIES:
		if ((val & (DRM_REFNPU_CAP_TIMELINE_SYNCOBJ | DRM_REFNPU_CAP_PRIME |
			    DRM_REFNPU_CAP_USERPTR)) !=
		    (DRM_REFNPU_CAP_TIMELINE_SYNCOBJ | DRM_REFNPU_CAP_PRIME |
		     DRM_REFNPU_CAP_USERPTR))
			bad("lacks timeline, PRIME or userptr");
		break;
	case DRM_REFNPU_PARAM_NUM_QUEUES:
		if (val < REFNPU_MIN_QUEUES || val > REFNPU_MAX_QUEUES ||
		    (primary && val != dev.num_queues))
			bad("changed or out of range");
		break;
	case DRM_REFNPU_PARAM_VA_START:
		if (primary && val != dev.va_start)
			bad("changed");
		break;
	case DRM_REFNPU_PARAM_PAGE_SIZES:
		if (!(val & kPage))
			bad("lacks 4096");
		break;
	case DRM_REFNPU_PARAM_OPS:
		if ((val & 7) != 7)
			bad("lacks NOP, COPY or FILL");
		break;
	case DRM_REFNPU_PARAM_HANG_LIMIT:
		if (!val)
			bad("is 0");
		break;
	case DRM_REFNPU_PARAM_CONTEXT_BANNED:
		if (val > 1)
			bad("is not 0 or 1");
		if (val)
			files_[f].banned = true;
		if (val && f != F_COMPUTE)
			bad("says a context without timeouts is banned");
		break;
	case DRM_REFNPU_PARAM_MAX_SUBMIT_BOS:
		if (primary && val != dev.max_bos)
			bad("changed");
		break;
	default:
		break;
	}
}

void Worker::op_bo_create(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	drm_refnpu_bo_create c = {};
	Expect e{0};
	std::string what = "valid";
	static const uint32_t fl[] = {0,
				      0,
				      0,
				      DRM_REFNPU_BO_WC,
				      DRM_REFNPU_BO_DEVICE_RO,
				      DRM_REFNPU_BO_WC | DRM_REFNPU_BO_DEVICE_RO};
	uint64_t pages = r.chance(1, 8) ? r.range(17, 256) : r.range(1, 16);
	switch (r.below(4)) {
	case 0:
		c.size = pages * kPage;
		break;
	case 1:
		c.size = pages * kPage - 1;
		break;
	case 2:
		c.size = pages * kPage + 1;
		break;
	default:
		c.size = r.range(1, 200);
		break;
	}
	c.flags = fl[r.below(6)];
	bool valid = page_up(c.size) + budget_ <= opt.mem_budget;
	void *arg = &c;
	if (!valid || r.chance(1, 4)) {
		e = Expect{-EINVAL};
		switch (r.below(9)) {
		case 0:
			c.size = 0;
			what = "size 0";
			break;
		case 1: {
			static const uint64_t big[] = {0, 1, kPage, 1ULL << 32};
			c.size = dev.max_bo + big[r.below(4)] + 1;
			what = "size above MAX_BO_SIZE";
			break;
		}
		case 2:
			c.size = kU64Max - r.below(kPage);
			what = "size that wraps when page aligned";
			break;
		case 3:
			c.size = (1ULL << (32 + r.below(32))) + r.range(0, 1);
			what = "size beyond 4 GiB";
			break;
		case 4:
			c.size = kPage;
			c.flags = 1u << r.range(2, 31);
			what = "undefined flag";
			break;
		case 5:
			c.size = kPage;
			c.handle = uint32_t(r.range(1, 0xffffffff));
			what = "non-zero handle";
			break;
		case 6:
			c.size = kPage;
			c.va = r.next() | 1;
			what = "non-zero va";
			break;
		case 7:
			c.size = kPage;
			arg = reinterpret_cast<void *>(bad_.pointer(r));
			e = Expect{-EFAULT};
			what = "unreadable argument";
			break;
		default:
			c.size = kU64Max;
			what = "size ~0";
			break;
		}
	}
	std::string d = strf("BO_CREATE %s size 0x%" PRIx64 " flags 0x%x (%s)", file_name[f],
			     uint64_t(c.size), c.flags, what.c_str());
	if (e.has(0))
		make_room_handles(r);
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_CREATE, arg);
	check(K_BO_CREATE, ret, e, d);
	if (ret || arg != &c)
		return;
	if (!c.handle || handle_live(f, c.handle)) {
		violation(K_BO_CREATE, d + strf(": returned handle %u, already in use", c.handle));
		return;
	}
	uint64_t size = page_up(c.size);
	Handle h;
	h.file = f;
	h.handle = c.handle;
	h.va = c.va;
	auto m = new_mem(MemKind::Shmem, size);
	m->dev_ro = c.flags & DRM_REFNPU_BO_DEVICE_RO;
	m->wild = f == F_WILD;
	m->home_dev = file_dev(f);
	m->create_flags = c.flags;
	m->flags_known = true;
	m->budget = &budget_;
	m->bytes_charged = size;
	budget_ += size;
	auto o = obj_for(m, file_dev(f));
	o->flags = c.flags;
	o->last_known = true;
	h.obj = o;
	va_free_for(f, c.va, size, d);
	/* BO_INFO reports what was created */
	drm_refnpu_bo_info bi = {};
	bi.handle = c.handle;
	ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_INFO, &bi);
	if (check(K_BO_INFO, ret, {0}, strf("BO_INFO of new %s:h%u", file_name[f], c.handle)) &&
	    (bi.size != size || bi.flags != c.flags || bi.va != c.va || !bi.mmap_offset))
		violation(K_BO_INFO,
			  d + strf(": BO_INFO says size 0x%llx flags 0x%x va 0x%llx "
				   "mmap_offset 0x%llx",
				   (unsigned long long)bi.size, bi.flags, (unsigned long long)bi.va,
				   (unsigned long long)bi.mmap_offset));
	add_handle(h);
	if (ret)
		return;
	o->mmap_offset = bi.mmap_offset;
	void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, files_[f].fd,
		       bi.mmap_offset);
	if (!check(K_MMAP, p == MAP_FAILED ? -errno : 0, {0}, d + ": mmap"))
		return;
	m->cpu = static_cast<uint8_t *>(p);
	m->cpu_writable = true;
	m->unmap_base = p;
	m->unmap_len = size;
	/* a wild job still in flight may write any new BO in its range */
	bool hit = false;
	for (auto &w : files_[f].wild_ext)
		hit |= c.va < w.first + w.second && w.first < c.va + size;
	if (!hit) {
		/* zero-filled: the shadow is all zeros, every page known */
		std::fill(m->known.begin(), m->known.end(), 1);
		check_bytes(*m, 0, size, "new BO");
		cpu_rewrite(r, *m, 0, size);
	} else {
		check_bytes(*m, 0, size, "new BO in a wild job's range");
	}
}

void Worker::op_bo_info(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_COMPUTE, F_PEER});
	if (f < 0)
		return;
	drm_refnpu_bo_info bi = {};
	int hi = pick_handle(r, f);
	Expect e{0};
	void *arg = &bi;
	int v = int(r.below(10));
	if (hi < 0 || v == 0) {
		bi.handle = dead_handle(r, f);
		hi = -1;
		e = Expect{-ENOENT};
	} else {
		bi.handle = handles_[hi].handle;
	}
	if (v == 1) {
		bi.pad = r.next() | 1;
		e = Expect{-EINVAL};
		if (hi < 0)
			e.add(-ENOENT);
	} else if (v == 2) {
		arg = reinterpret_cast<void *>(bad_.pointer(r));
		e = Expect{-EFAULT};
	} else if (v == 3) {
		arg = bad_.ro;
		e = Expect{-EFAULT};
	} else if (v == 4) {
		bi.flags = uint32_t(r.next()); /* output fields are ignored on input */
		bi.va = r.next();
		bi.size = r.next();
		bi.mmap_offset = r.next();
	}
	std::string d = strf("BO_INFO %s:h%u pad %llu", file_name[f], bi.handle,
			     (unsigned long long)bi.pad);
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_INFO, arg);
	if (!check(K_BO_INFO, ret, e, d) || ret || hi < 0 || arg != &bi)
		return;
	const Handle &h = handles_[hi];
	const Obj &o = *h.obj;
	bool ok = bi.va == h.va && bi.size == o.size && bi.flags == o.flags;
	if (o.userptr)
		ok &= bi.mmap_offset == 0;
	else
		ok &= bi.mmap_offset && (!o.mmap_offset || bi.mmap_offset == o.mmap_offset);
	if (!ok)
		violation(K_BO_INFO,
			  d +
				  strf(": got va 0x%llx size 0x%llx flags 0x%x offset 0x%llx, "
				       "expected ",
				       (unsigned long long)bi.va, (unsigned long long)bi.size,
				       bi.flags, (unsigned long long)bi.mmap_offset) +
				  hdesc(h) +
				  strf(" flags 0x%x offset 0x%" PRIx64, o.flags, o.mmap_offset));
	if (!o.userptr && !o.mmap_offset)
		h.obj->mmap_offset = bi.mmap_offset;
}

void Worker::op_bo_wait(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_COMPUTE, F_PEER});
	if (f < 0)
		return;
	drm_refnpu_bo_wait w = {};
	int hi = pick_handle(r, f);
	int v = int(r.below(12));
	Expect e{0};
	bool idle = false;
	void *arg = &w;
	if (hi < 0 || v == 0) {
		w.handle = dead_handle(r, f);
		hi = -1;
		e = Expect{-ENOENT};
	} else {
		const Handle &h = handles_[hi];
		const Mem &m = *h.obj->mem;
		w.handle = h.handle;
		idle = !m.shared && !m.tainted && !untracked_ && m.kind != MemKind::Foreign &&
		       !m.pending_listing;
		if (!idle)
			e.add(-ETIMEDOUT);
	}
	w.timeout_ns = int64_t(pick_timeout(r, idle));
	if (v == 1) {
		w.flags = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 2) {
		w.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 3) {
		arg = reinterpret_cast<void *>(bad_.pointer(r));
		e = Expect{-EFAULT};
	}
	if (v <= 3 && v >= 1 && hi < 0)
		e.add(-ENOENT);
	std::string d = strf("BO_WAIT %s:h%u timeout %lld flags 0x%x pad 0x%x", file_name[f],
			     w.handle, (long long)w.timeout_ns, w.flags, w.pad);
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_WAIT, arg);
	if (!check(K_BO_WAIT, ret, e, d) || ret || hi < 0 || arg != &w)
		return;
	const Obj &o = *handles_[hi].obj;
	bool known = std::find(job_errnos.begin(), job_errnos.end(), -w.status) != job_errnos.end();
	if (w.status > 0 || (w.status && !known)) {
		violation(K_BO_WAIT, d + strf(": status %d is not a job errno", w.status));
	} else if (idle && o.last_known && w.status != o.last_status) {
		std::string jobs;
		for (uint64_t q : o.listed_by) {
			auto it = outcomes_.find(q);
			jobs += strf(" %" PRIu64 ":%s", q,
				     it == outcomes_.end()
					     ? "?"
					     : (it->second ? errname(it->second) : "0"));
		}
		violation(K_BO_WAIT,
			  d + strf(": status %d, but the last job listing it (%" PRIu64
				   ") ended with %d; %s memory 0x%" PRIx64 ", object 0x%" PRIx64
				   " dev %d, listed by%s",
				   w.status, o.last_job, o.last_status, mem_kind_name(o.mem->kind),
				   o.mem->uid, o.uid, o.dev, jobs.c_str()));
	}
}

/* Userptr BOs over the arena: overlapping, read-only, partial and bad ranges. */
void Worker::op_userptr(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0 || !arena_.rw)
		return;
	drm_refnpu_bo_userptr u = {};
	Expect e{0};
	std::string what;
	std::shared_ptr<Mem> mem;
	uint64_t moff = 0;
	bool dev_ro = false;
	int v = int(r.below(24));
	if (v < 10) {
		uint64_t first = r.below(kArenaRw),
			 n = r.range(1, std::min<uint64_t>(8, kArenaRw - first));
		u.user_ptr = uintptr_t(arena_.rw + first * kPage);
		u.size = n * kPage;
		if (r.chance(1, 4)) {
			u.flags = DRM_REFNPU_BO_DEVICE_RO;
			dev_ro = true;
		}
		mem = arena_.rw_mem;
		moff = first * kPage;
		what = "read-write arena";
	} else if (v < 14) {
		if (v < 13) {
			uint64_t first = r.below(kArenaRo), n = r.range(1, kArenaRo - first);
			u.user_ptr = uintptr_t(arena_.ro + first * kPage);
			u.size = n * kPage;
			mem = arena_.ro_mem;
			moff = first * kPage;
			what = "read-only mapping";
		} else {
			u.user_ptr = uintptr_t(arena_.zero);
			u.size = kArenaZero * kPage;
			mem = nullptr; /* never-touched private pages: the zero page */
			what = "untouched read-only pages";
		}
		/*
		 * Memory the process may not write needs DEVICE_RO (-EACCES
		 * without it), asked for 3 times in 4. Chosen from the
		 * operation number, not drawn: the regression seeds keep
		 * their random streams.
		 */
		dev_ro = (opno_ * 0x9e3779b97f4a7c15ULL) >> 62 != 0;
		if (dev_ro)
			u.flags = DRM_REFNPU_BO_DEVICE_RO;
		else
			e = Expect{-EACCES};
	} else {
		e = Expect{-EINVAL};
		u.user_ptr = uintptr_t(arena_.rw);
		u.size = kPage;
		switch (v) {
		case 14:
			u.user_ptr += r.range(1, kPage - 1);
			what = "unaligned pointer";
			break;
		case 15:
			u.size = r.chance(1, 2) ? r.range(1, kPage - 1)
						: kPage + r.range(1, kPage - 1);
			what = "unaligned size";
			break;
		case 16:
			u.size = 0;
			what = "size 0";
			break;
		case 17:
			u.size = page_up(dev.max_bo + 1) + kPage * r.below(4);
			what = "size above MAX_BO_SIZE";
			break;
		case 18:
			u.user_ptr = kU64Max & ~(kPage - 1);
			u.size = 2 * kPage;
			what = "range wrapping the address space";
			break;
		case 19:
			u.flags = r.chance(1, 2) ? DRM_REFNPU_BO_WC : 1u << r.range(2, 31);
			what = "flag other than DEVICE_RO";
			break;
		case 20:
			u.handle = uint32_t(r.range(1, 1000));
			what = "non-zero handle";
			break;
		default: {
			e = Expect{-EFAULT};
			static const uint64_t bad[] = {0, 0xffff800000000000ULL, 0x1000};
			int k = int(r.below(6));
			if (k < 3) {
				u.user_ptr = bad[k];
			} else if (k == 3) {
				u.user_ptr = uintptr_t(arena_.guard);
			} else if (k == 4) {
				/* read-write pages running into a guard page */
				u.user_ptr = uintptr_t(arena_.rw + (kArenaRw - 1) * kPage);
				u.size = 2 * kPage;
			} else {
				/* a BO's mmap: a PFN mapping, not pinnable */
				int hi = pick_handle(r, -1, true);
				if (hi < 0 || handles_[hi].obj->mem->kind != MemKind::Shmem) {
					u.user_ptr = 0;
				} else {
					u.user_ptr = uintptr_t(handles_[hi].obj->mem->cpu);
					u.size = kPage;
				}
			}
			what = strf("unpinnable range 0x%llx", (unsigned long long)u.user_ptr);
			break;
		}
		}
	}
	if (e.has(0))
		make_room_handles(r);
	std::string d = strf("BO_USERPTR %s ptr 0x%llx size 0x%llx flags 0x%x (%s)", file_name[f],
			     (unsigned long long)u.user_ptr, (unsigned long long)u.size, u.flags,
			     what.c_str());
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_USERPTR, &u);
	check(K_BO_USERPTR, ret, e, d);
	if (ret)
		return;
	if (!u.handle || handle_live(f, u.handle)) {
		violation(K_BO_USERPTR, d + strf(": handle %u already in use", u.handle));
		return;
	}
	Handle h;
	h.file = f;
	h.handle = u.handle;
	h.va = u.va;
	auto o = std::make_shared<Obj>();
	o->uid = uid();
	o->dev = file_dev(f);
	o->userptr = true;
	o->size = u.size;
	o->off = moff;
	o->flags = dev_ro ? DRM_REFNPU_BO_DEVICE_RO : 0;
	o->domain = o->uid;
	if (!mem) {
		mem = new_mem(MemKind::Ghost, u.size);
		mem->mask = 0;
		o->off = 0;
	}
	o->mem = mem;
	h.obj = o;
	va_free_for(f, u.va, u.size, d);
	add_handle(h);
	drm_refnpu_bo_info bi = {};
	bi.handle = u.handle;
	ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_INFO, &bi);
	if (check(K_BO_INFO, ret, {0}, "BO_INFO of new userptr BO") &&
	    (bi.size != u.size || bi.mmap_offset || bi.va != u.va || bi.flags != o->flags))
		violation(K_BO_USERPTR,
			  d + strf(": BO_INFO says size 0x%llx flags 0x%x offset 0x%llx",
				   (unsigned long long)bi.size, bi.flags,
				   (unsigned long long)bi.mmap_offset));
}

/*
 * Replace arena pages under live userptr BOs: those BOs keep the pages they
 * pinned (they become unobservable), the process sees fresh zero pages.
 */
void Worker::op_arena_remap(Rng &r)
{
	if (!arena_.rw)
		return;
	uint64_t first = r.below(kArenaRw), n = r.range(1, std::min<uint64_t>(4, kArenaRw - first));
	uint64_t lo = first * kPage, hi = (first + n) * kPage;
	void *p = mmap(arena_.rw + lo, n * kPage, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (!check(K_MMAP, p == MAP_FAILED ? -errno : 0, {0},
		   strf("remap arena pages %" PRIu64 "+%" PRIu64, first, n)))
		return;
	Mem &m = *arena_.rw_mem;
	for (auto &h : handles_) {
		Obj &o = *h.obj;
		if (o.mem.get() != &m || o.off >= hi || o.off + o.size <= lo)
			continue;
		o.detached = true;
	}
	/*
	 * Jobs in flight write the old pages there: drop that part of their
	 * accesses, keep the rest (still the pages the process sees).
	 */
	for (auto &j : pending_) {
		std::vector<Access> rest;
		for (auto &a : j->acc) {
			if (a.voided || a.mem.get() != &m || a.off >= hi || a.off + a.len <= lo)
				continue;
			if (a.off < lo) {
				Access left = a;
				left.len = lo - a.off;
				rest.push_back(left);
			}
			if (a.off + a.len > hi) {
				Access right = a;
				right.off = hi;
				right.len = a.off + a.len - hi;
				rest.push_back(right);
			}
			uint64_t end = std::min(a.off + a.len, hi);
			a.off = std::max(a.off, lo);
			a.len = end - a.off;
			end_access(*j, a, 0);
			a.voided = true;
		}
		for (auto &x : rest)
			j->acc.push_back(x);
	}
	for (uint64_t q = first; q < first + n; q++) {
		m.rd[q] = m.wr[q] = 0;
		m.unordered[q] = 0;
		m.known[q] = 1;
	}
	std::fill(m.shadow.begin() + lo, m.shadow.begin() + hi, 0);
	m.note('M', opno_, 0, lo, hi - lo);
	check_bytes(m, lo, hi - lo, "remapped arena pages");
	cpu_rewrite(r, m, lo, hi - lo);
}

void Worker::op_gem_close(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_COMPUTE, F_PEER});
	if (f < 0)
		return;
	int hi = pick_handle(r, f);
	drm_gem_close gc = {};
	if (hi >= 0 && r.chance(4, 5)) {
		if (r.chance(1, 6))
			gc.pad = uint32_t(r.next()); /* the core ignores pad */
		gc.handle = handles_[hi].handle;
		std::string d = "GEM_CLOSE " + hdesc(handles_[hi]) + strf(" pad 0x%x", gc.pad);
		int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_CLOSE, &gc);
		check(K_GEM_CLOSE, ret, {0}, d);
		if (!ret)
			drop_handle(hi);
		return;
	}
	gc.handle = dead_handle(r, f);
	check(K_GEM_CLOSE, sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_CLOSE, &gc), {-EINVAL},
	      strf("GEM_CLOSE %s:h%u (names nothing)", file_name[f], gc.handle));
}

/* GEM_FLINK of an own BO, GEM_OPEN of that name (root only). */
void Worker::op_flink(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_PEER});
	if (f < 0)
		return;
	/* room for GEM_OPEN's handle first: closing the BO drops its name */
	make_room_handles(r);
	int hi = pick_handle(r, f);
	drm_gem_flink fk = {};
	bool dead = hi < 0 || r.chance(1, 6);
	fk.handle = dead ? dead_handle(r, f) : handles_[hi].handle;
	Expect e = dev.root ? (dead ? Expect{-ENOENT} : Expect{0}) : Expect{-EACCES};
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_FLINK, &fk);
	check(K_GEM_FLINK, ret, e, strf("GEM_FLINK %s:h%u", file_name[f], fk.handle));
	drm_gem_open go = {};
	bool bogus = ret || r.chance(1, 8);
	go.name = bogus ? (r.chance(1, 2) ? 0 : 0x7ffffff0u) : fk.name;
	e = dev.root ? (bogus ? Expect{-ENOENT} : Expect{0}) : Expect{-EACCES};
	ret = sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_OPEN, &go);
	check(K_GEM_OPEN, ret, e, strf("GEM_OPEN %s name %u", file_name[f], go.name));
	if (ret)
		return;
	if (bogus || hi < 0) {
		drm_gem_close gc = {};
		gc.handle = go.handle;
		sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_CLOSE, &gc);
		return;
	}
	/* flink found our object back: handle stays valid across make_room */
	int idx = -1;
	for (size_t i = 0; i < handles_.size(); i++)
		if (handles_[i].file == f && handles_[i].handle == fk.handle)
			idx = int(i);
	if (idx < 0 || handle_live(f, go.handle)) {
		if (handle_live(f, go.handle) && (idx < 0 || go.handle != handles_[idx].handle))
			violation(K_GEM_OPEN, strf("GEM_OPEN returned live handle %u", go.handle));
		drm_gem_close gc = {};
		gc.handle = go.handle;
		if (idx < 0 || go.handle != handles_[idx].handle)
			sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_CLOSE, &gc);
		return;
	}
	Handle h = handles_[idx];
	if (go.size != h.obj->size)
		violation(K_GEM_OPEN, strf("GEM_OPEN size 0x%llx, the BO has 0x%" PRIx64,
					   (unsigned long long)go.size, h.obj->size));
	drm_refnpu_bo_info bi = {};
	bi.handle = go.handle;
	ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_INFO, &bi);
	if (check(K_BO_INFO, ret, {0}, "BO_INFO of GEM_OPEN handle") && bi.va != h.va)
		violation(K_GEM_OPEN, strf("a second handle of %s maps at 0x%llx", hdesc(h).c_str(),
					   (unsigned long long)bi.va));
	h.handle = go.handle;
	add_handle(h);
}

int Worker::add_dmabuf(DmaBuf d)
{
	while (dmabufs_.size() >= kMaxDmabufs)
		close_dmabuf(int(opno_ % dmabufs_.size()));
	dmabufs_.push_back(d);
	return int(dmabufs_.size()) - 1;
}

void Worker::close_dmabuf(int i)
{
	close(dmabufs_[i].fd);
	dmabufs_.erase(dmabufs_.begin() + i);
}

std::shared_ptr<Mem> Worker::mem_for_ino(uint64_t ino)
{
	auto it = ino_map_.find(ino);
	return it == ino_map_.end() ? nullptr : it->second.lock();
}

/* PRIME export of handle @hi; returns the dmabuf index or -1. */
int Worker::export_mem(Rng &r, int hi, bool check_result, int flags)
{
	Handle &h = handles_[hi];
	drm_prime_handle ph = {};
	ph.handle = h.handle;
	ph.flags = uint32_t(flags);
	ph.fd = -1;
	Expect e = h.obj->userptr ? Expect{-EOPNOTSUPP} : Expect{0};
	std::string d = "PRIME_HANDLE_TO_FD " + hdesc(h) + strf(" flags 0x%x", ph.flags);
	int ret = sys_ioctl(files_[h.file].fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph);
	if (check_result)
		check(K_PRIME_H2FD, ret, e, d);
	else
		count(K_PRIME_H2FD, ret);
	if (ret)
		return -1;
	struct stat st = {};
	fstat(ph.fd, &st);
	auto prev = mem_for_ino(st.st_ino);
	if (prev && prev != h.obj->mem)
		violation(K_PRIME_H2FD, d + strf(": dma-buf inode %lu is that of another BO",
						 (unsigned long)st.st_ino));
	ino_map_[st.st_ino] = h.obj->mem;
	h.obj->mem->ino = st.st_ino;
	prime_cache_[h.file].insert({uint64_t(st.st_ino), h.handle});
	DmaBuf db;
	db.fd = ph.fd;
	db.mem = h.obj->mem;
	db.src = h.obj;
	db.ino = st.st_ino;
	/* re-exporting an import gives back the original dma-buf */
	db.dev = h.obj->mem->home_dev;
	db.sendable = h.obj->mem->checked && !h.obj->mem->wild &&
		      h.obj->mem->kind != MemKind::Ghost && h.obj->mem->kind != MemKind::Arena;
	(void)r;
	return add_dmabuf(db);
}

void Worker::op_prime_export(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	int hi = pick_handle(r, f);
	int v = int(r.below(10));
	if (hi >= 0 && v < 7) {
		static const int fl[] = {DRM_CLOEXEC | DRM_RDWR, DRM_CLOEXEC, 0, DRM_RDWR};
		export_mem(r, hi, true, fl[r.below(4)]);
		return;
	}
	drm_prime_handle ph = {};
	Expect e{-ENOENT};
	ph.handle = dead_handle(r, f);
	if (v == 8 && hi >= 0) {
		ph.handle = handles_[hi].handle;
		uint32_t bit = uint32_t(r.range(2, 30));
		ph.flags = DRM_CLOEXEC | 1u << (bit >= 19 ? bit + 1 : bit);
		e = Expect{-EINVAL};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph);
	check(K_PRIME_H2FD, ret, e,
	      strf("PRIME_HANDLE_TO_FD %s:h%u flags 0x%x", file_name[f], ph.handle, ph.flags));
	if (!ret)
		close(ph.fd);
}

/* PRIME import of dmabuf @di into file @f; returns the handle's index. */
int Worker::import_dmabuf(int f, int di, uint32_t *handle, bool check_result)
{
	DmaBuf &db = dmabufs_[di];
	std::shared_ptr<Mem> m = db.mem;
	drm_prime_handle ph = {};
	ph.fd = db.fd;
	std::set<uint32_t> cached;
	auto range = prime_cache_[f].equal_range(db.ino);
	for (auto it = range.first; it != range.second; ++it)
		if (handle_live(f, it->second))
			cached.insert(it->second);
	std::string d = strf("PRIME_FD_TO_HANDLE %s fd of %s memory 0x%" PRIx64 " (dev %d)",
			     file_name[f], mem_kind_name(m->kind), m->uid, db.dev);
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph);
	if (check_result)
		check(K_PRIME_FD2H, ret, {0}, d);
	else
		count(K_PRIME_FD2H, ret);
	if (ret)
		return -1;
	*handle = ph.handle;
	int live = handle_index(f, ph.handle);
	if (!cached.empty() && !cached.count(ph.handle))
		violation(K_PRIME_FD2H, d + strf(": handle %u, but the file already has handle %u "
						 "for this dma-buf",
						 ph.handle, *cached.begin()));
	if (live >= 0) {
		if (handles_[live].obj->mem != m)
			violation(K_PRIME_FD2H,
				  d + strf(": returned handle %u of another BO: ", ph.handle) +
					  hdesc(handles_[live]));
		return live;
	}
	if (cached.size())
		return -1;
	bool same_dev = db.dev == file_dev(f);
	std::shared_ptr<Obj> o;
	if (same_dev) {
		o = obj_for(m, db.dev);
	} else {
		o = std::make_shared<Obj>();
		o->uid = uid();
		o->dev = file_dev(f);
		o->mem = m;
		o->size = m->size;
		o->domain = m->uid;
		o->last_known = !m->pending_listing && !m->shared;
	}
	drm_refnpu_bo_info bi = {};
	bi.handle = ph.handle;
	ret = sys_ioctl(files_[f].fd, DRM_IOCTL_REFNPU_BO_INFO, &bi);
	if (!check(K_BO_INFO, ret, {0}, d + ": BO_INFO")) {
		drm_gem_close gc = {};
		gc.handle = ph.handle;
		sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_CLOSE, &gc);
		return -1;
	}
	if (bi.size != m->size)
		violation(K_PRIME_FD2H, d + strf(": imported size 0x%llx, the BO has 0x%" PRIx64,
						 (unsigned long long)bi.size, m->size));
	if (same_dev && m->flags_known && m->home_dev == db.dev && bi.flags != m->create_flags)
		violation(K_PRIME_FD2H, d + strf(": flags 0x%x, the BO was created with 0x%x",
						 bi.flags, m->create_flags));
	o->flags = bi.flags;
	if (!o->mmap_offset)
		o->mmap_offset = bi.mmap_offset;
	bool mapped_here = false;
	for (auto &h : handles_) {
		if (h.file == f && h.obj == o) {
			mapped_here = true;
			if (h.va != bi.va)
				violation(K_PRIME_FD2H, d + strf(": VA 0x%llx, but the file maps "
								 "this BO at 0x%" PRIx64,
								 (unsigned long long)bi.va, h.va));
		}
	}
	if (!mapped_here)
		va_free_for(f, bi.va, m->size, d);
	Handle h;
	h.file = f;
	h.handle = ph.handle;
	h.va = bi.va;
	h.obj = o;
	add_handle(h);
	prime_cache_[f].insert({db.ino, ph.handle});
	return int(handles_.size()) - 1;
}

void Worker::op_prime_import(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	int v = int(r.below(10));
	if (v < 7 && !dmabufs_.empty()) {
		int di = int(r.below(dmabufs_.size()));
		if (dmabufs_[di].mem->wild != (f == F_WILD) || !dmabufs_[di].mem->checked)
			return;
		make_room_handles(r);
		uint32_t h;
		import_dmabuf(f, di, &h, true);
		return;
	}
	/* file descriptors that are no dma-buf */
	drm_prime_handle ph = {};
	Expect e{-EINVAL};
	std::string what;
	int tmp = -1;
	switch (r.below(8)) {
	case 0:
		ph.fd = -1;
		e = Expect{-EBADF};
		what = "fd -1";
		break;
	case 1:
		ph.fd = 0x7ffffff0;
		e = Expect{-EBADF};
		what = "fd beyond the table";
		break;
	case 2:
		/* high above what other threads get: the number stays unused */
		tmp = fcntl(pipe_[0], F_DUPFD_CLOEXEC, 900 + 10 * (id_ % 8));
		close(tmp);
		ph.fd = tmp;
		tmp = -1;
		e = Expect{-EBADF};
		what = "closed fd";
		break;
	case 3:
		ph.fd = pipe_[0];
		what = "pipe";
		break;
	case 4:
		ph.fd = files_[f].fd;
		what = "the device file";
		break;
	case 5:
		ph.fd = evfd_;
		what = "eventfd";
		break;
	case 6:
		if (!auxfds_.empty()) {
			ph.fd = auxfds_[r.below(auxfds_.size())].fd;
			what = "syncobj or sync_file fd";
			break;
		}
		[[fallthrough]];
	default:
		tmp = memfd_create("fuzz", MFD_CLOEXEC);
		ph.fd = tmp;
		what = "memfd";
		break;
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph);
	check(K_PRIME_FD2H, ret, e, strf("PRIME_FD_TO_HANDLE %s %s", file_name[f], what.c_str()));
	if (!ret) {
		drm_gem_close gc = {};
		gc.handle = ph.handle;
		sys_ioctl(files_[f].fd, DRM_IOCTL_GEM_CLOSE, &gc);
	}
	if (tmp >= 0)
		close(tmp);
}

/* ---- syncobj ioctls ----------------------------------------------------- */

/* A syncobj handle number that names nothing in file @f. */
static bool so_live(const std::vector<Syncobj> &v, const std::deque<std::unique_ptr<Job>> &p, int f,
		    uint32_t h)
{
	for (auto &s : v)
		if (s.file == f && s.handle == h)
			return true;
	for (auto &j : p)
		if (j->file == f && j->status_so == h)
			return true;
	return false;
}

void Worker::op_so_create(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	drm_syncobj_create c = {};
	Expect e{0};
	if (r.chance(1, 8)) {
		c.flags = 1u << r.range(1, 31);
		e = Expect{-EINVAL};
	} else if (r.chance(1, 2)) {
		c.flags = DRM_SYNCOBJ_CREATE_SIGNALED;
	}
	if (e.has(0))
		while (syncobjs_.size() >= kMaxSyncobjs) {
			Syncobj &s = syncobjs_[r.below(syncobjs_.size())];
			drm_syncobj_destroy d = {};
			d.handle = s.handle;
			check(K_SO_DESTROY,
			      sys_ioctl(files_[s.file].fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d), {0},
			      "SYNCOBJ_DESTROY (pool full)");
			syncobjs_.erase(syncobjs_.begin() + (&s - syncobjs_.data()));
		}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_CREATE, &c);
	check(K_SO_CREATE, ret, e, strf("SYNCOBJ_CREATE %s flags 0x%x", file_name[f], c.flags));
	if (ret)
		return;
	if (so_live(syncobjs_, pending_, f, c.handle) || !c.handle) {
		violation(K_SO_CREATE, strf("SYNCOBJ_CREATE returned live handle %u", c.handle));
		return;
	}
	Syncobj s;
	s.file = f;
	s.handle = c.handle;
	s.st = std::make_shared<SyncState>();
	s.st->uid = uid();
	if (c.flags & DRM_SYNCOBJ_CREATE_SIGNALED)
		s.st->head.kind = Fence::STUB;
	syncobjs_.push_back(s);
}

void Worker::op_so_destroy(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	drm_syncobj_destroy d = {};
	int si = pick_syncobj(r, f);
	Expect e{0};
	if (si < 0 || r.chance(1, 5)) {
		do
			d.handle = uint32_t(r.chance(1, 4) ? r.next() : r.range(0, 40));
		while (so_live(syncobjs_, pending_, f, d.handle));
		si = -1;
		e = Expect{-EINVAL};
	} else {
		d.handle = syncobjs_[si].handle;
		if (r.chance(1, 8)) {
			d.pad = uint32_t(r.next() | 1);
			e = Expect{-EINVAL};
		}
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d);
	check(K_SO_DESTROY, ret, e,
	      strf("SYNCOBJ_DESTROY %s:s%u pad 0x%x", file_name[f], d.handle, d.pad));
	if (!ret && si >= 0)
		syncobjs_.erase(syncobjs_.begin() + si);
}

/*
 * SYNCOBJ_WAIT / _TIMELINE_WAIT. The expected result follows the core's
 * walk: entries in order, a missing fence is -EINVAL unless waiting for
 * submission, the first signalled one ends a wait-any, and a deadline
 * that passes is -ETIME.
 */
void Worker::op_so_wait(Rng &r, bool timeline)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	Kind k = timeline ? K_SO_TL_WAIT : K_SO_WAIT;
	uint32_t hs[4];
	uint64_t pts[4] = {};
	int n = int(r.range(1, 4));
	Expect e;
	bool defect = false;
	uint32_t flags = 0;
	if (r.chance(1, 2))
		flags |= FZ_WAIT_ALL;
	if (r.chance(1, 4))
		flags |= FZ_WAIT_FOR_SUBMIT;
	if (timeline && r.chance(1, 6))
		flags |= FZ_WAIT_AVAILABLE;
	if (r.chance(1, 6))
		flags |= FZ_WAIT_DEADLINE;
	std::vector<int> idx;
	for (int i = 0; i < n; i++) {
		int si = pick_syncobj(r, f);
		if (si < 0)
			return;
		idx.push_back(si);
		hs[i] = syncobjs_[si].handle;
		const SyncState &st = *syncobjs_[si].st;
		if (timeline && r.chance(2, 3))
			pts[i] = r.range(0, st.max_point + 2);
	}
	uint64_t handles_ptr = uintptr_t(hs), points_ptr = uintptr_t(pts);
	uint32_t count = uint32_t(n);
	int v = int(r.below(16));
	if (v == 0) {
		hs[r.below(n)] = 0x7ffffff0u - uint32_t(r.below(100));
		e = Expect{-ENOENT};
		defect = true;
	} else if (v == 1) {
		flags |= timeline ? 1u << r.range(4, 31)
				  : (r.chance(1, 2) ? FZ_WAIT_AVAILABLE : 1u << r.range(4, 31));
		e = Expect{-EINVAL};
		defect = true;
	} else if (v == 2) {
		count = 0;
		e = Expect{0};
		defect = true;
	} else if (v == 3) {
		handles_ptr = bad_.pointer(r);
		e = Expect{-EFAULT};
		defect = true;
	} else if (v == 4 && timeline) {
		points_ptr = bad_.pointer(r) | (r.chance(1, 2) ? 0 : 1);
		if (points_ptr == 0)
			points_ptr = 0x10;
		e = Expect{-EFAULT};
		defect = true;
	} else if (v == 5) {
		/* a count far beyond the array: the handle copy faults first */
		count = uint32_t(r.range(1 << 12, 1 << 20));
		memcpy(bad_.edge + kPage - 8, hs, 8);
		handles_ptr = uintptr_t(bad_.edge + kPage - 8);
		e = Expect{-EFAULT, -ENOMEM};
		defect = true;
	}
	if (!defect) {
		/* drm_syncobj_array_wait_timeout() first looks at every entry */
		bool any = flags & (FZ_WAIT_FOR_SUBMIT | FZ_WAIT_AVAILABLE);
		bool missing = false, maybe = false;
		int sig = 0;
		for (int i = 0; i < n; i++) {
			Fence fe;
			int av = so_lookup(*syncobjs_[idx[i]].st, pts[i], &fe);
			missing |= av == 0;
			maybe |= av == -1;
			bool s = false;
			if (av == 1) {
				point_status(*syncobjs_[idx[i]].st, pts[i], fe, &s);
				s |= (flags & FZ_WAIT_AVAILABLE) != 0;
			}
			sig += s;
		}
		if (missing && !any) {
			e = Expect{-EINVAL};
		} else {
			if (maybe && !any)
				e.add(-EINVAL);
			e.add(0);
			if (!(sig == n || (sig && !(flags & FZ_WAIT_ALL))))
				e.add(-ETIME);
		}
	}
	int64_t timeout = int64_t(pick_timeout(r, false));
	uint64_t deadline = uint64_t(now_ns() + int64_t(r.below(1000000)));
	int ret;
	std::string d;
	if (timeline) {
		fz_syncobj_timeline_wait w = {};
		w.handles = handles_ptr;
		w.points = points_ptr;
		w.count_handles = count;
		w.flags = flags;
		w.timeout_nsec = timeout;
		w.deadline_nsec = deadline;
		d = strf("SYNCOBJ_TIMELINE_WAIT %s count %u flags 0x%x timeout %lld", file_name[f],
			 count, flags, (long long)timeout);
		ret = sys_ioctl(files_[f].fd, FZ_IOCTL_SYNCOBJ_TIMELINE_WAIT, &w);
	} else {
		fz_syncobj_wait w = {};
		w.handles = handles_ptr;
		w.count_handles = count;
		w.flags = flags;
		w.timeout_nsec = timeout;
		w.deadline_nsec = deadline;
		d = strf("SYNCOBJ_WAIT %s count %u flags 0x%x timeout %lld", file_name[f], count,
			 flags, (long long)timeout);
		ret = sys_ioctl(files_[f].fd, FZ_IOCTL_SYNCOBJ_WAIT, &w);
	}
	for (int i = 0; i < n; i++)
		d += strf(" s%u@%llu", hs[i], (unsigned long long)pts[i]);
	check(k, ret, e, d);
}

void Worker::op_so_reset_signal(Rng &r, bool signal)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	Kind k = signal ? K_SO_SIGNAL : K_SO_RESET;
	uint32_t hs[3];
	std::vector<int> idx;
	int n = int(r.range(1, 3));
	for (int i = 0; i < n; i++) {
		int si = pick_syncobj(r, f);
		if (si < 0)
			return;
		idx.push_back(si);
		hs[i] = syncobjs_[si].handle;
	}
	drm_syncobj_array a = {};
	a.handles = uintptr_t(hs);
	a.count_handles = uint32_t(n);
	Expect e{0};
	int v = int(r.below(12));
	if (v == 0) {
		a.count_handles = 0;
		e = Expect{-EINVAL};
	} else if (v == 1) {
		a.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 2) {
		hs[r.below(n)] = 0x7fffff00u + uint32_t(r.below(200));
		e = Expect{-ENOENT};
	} else if (v == 3) {
		a.handles = bad_.pointer(r);
		e = Expect{-EFAULT};
	}
	int ret = sys_ioctl(files_[f].fd,
			    signal ? DRM_IOCTL_SYNCOBJ_SIGNAL : DRM_IOCTL_SYNCOBJ_RESET, &a);
	check(k, ret, e,
	      strf("SYNCOBJ_%s %s count %u", signal ? "SIGNAL" : "RESET", file_name[f],
		   a.count_handles));
	if (ret)
		return;
	for (int si : idx) {
		Fence fe;
		fe.kind = signal ? Fence::STUB : Fence::NONE;
		so_replace(*syncobjs_[si].st, fe);
	}
}

void Worker::op_so_tl_signal(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	uint32_t hs[3];
	uint64_t pts[3];
	std::vector<int> idx;
	int n = int(r.range(1, 3));
	for (int i = 0; i < n; i++) {
		int si = pick_syncobj(r, f);
		if (si < 0)
			return;
		idx.push_back(si);
		hs[i] = syncobjs_[si].handle;
		const SyncState &st = *syncobjs_[si].st;
		pts[i] = r.chance(1, 8) ? r.range(0, st.max_point) : st.max_point + r.range(1, 4);
	}
	drm_syncobj_timeline_array a = {};
	a.handles = uintptr_t(hs);
	a.points = r.chance(1, 10) ? 0 : uintptr_t(pts);
	a.count_handles = uint32_t(n);
	Expect e{0};
	int v = int(r.below(12));
	if (v == 0) {
		a.flags = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 1) {
		a.count_handles = 0;
		e = Expect{-EINVAL};
	} else if (v == 2) {
		hs[0] = 0x7fffff00u;
		e = Expect{-ENOENT};
	} else if (v == 3) {
		a.points = bad_.pointer(r);
		if (!a.points)
			a.points = 0x10;
		e = Expect{-EFAULT};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, &a);
	check(K_SO_TL_SIGNAL, ret, e,
	      strf("SYNCOBJ_TIMELINE_SIGNAL %s count %u points %s", file_name[f], a.count_handles,
		   a.points ? "set" : "NULL"));
	if (ret)
		return;
	Fence stub;
	stub.kind = Fence::STUB;
	for (int i = 0; i < n; i++)
		so_add_point(*syncobjs_[idx[i]].st, stub, a.points ? pts[i] : 0);
}

void Worker::op_so_query(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	int si = pick_syncobj(r, f);
	if (si < 0)
		return;
	uint32_t h = syncobjs_[si].handle;
	uint64_t pt = ~0ULL;
	drm_syncobj_timeline_array a = {};
	a.handles = uintptr_t(&h);
	a.points = uintptr_t(&pt);
	a.count_handles = 1;
	a.flags = r.chance(1, 2) ? DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED : 0;
	Expect e{0};
	int v = int(r.below(10));
	if (v == 0) {
		a.flags |= 1u << r.range(1, 31);
		e = Expect{-EINVAL};
	} else if (v == 1) {
		a.points = r.chance(1, 2) ? uintptr_t(bad_.ro) : bad_.pointer(r);
		e = Expect{-EFAULT};
	} else if (v == 2) {
		a.count_handles = 0;
		e = Expect{-EINVAL};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_QUERY, &a);
	check(K_SO_QUERY, ret, e,
	      strf("SYNCOBJ_QUERY %s:s%u flags 0x%x", file_name[f], h, a.flags));
	if (ret || v <= 2)
		return;
	const SyncState &st = *syncobjs_[si].st;
	if (st.max_uncertain)
		return;
	bool bad = false;
	if (!st.chain)
		bad = pt != 0;
	else if (a.flags)
		bad = pt != st.max_point;
	else
		bad = pt > st.max_point;
	if (bad)
		violation(K_SO_QUERY,
			  strf("SYNCOBJ_QUERY %s:s%u flags 0x%x: point %llu, the model's "
			       "last point is %llu (%s)",
			       file_name[f], h, a.flags, (unsigned long long)pt,
			       (unsigned long long)st.max_point, st.chain ? "timeline" : "binary"));
}

void Worker::op_so_transfer(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	int s = pick_syncobj(r, f), d = pick_syncobj(r, f);
	if (s < 0)
		return;
	drm_syncobj_transfer t = {};
	t.src_handle = syncobjs_[s].handle;
	t.dst_handle = syncobjs_[d].handle;
	const SyncState &ss = *syncobjs_[s].st;
	t.src_point = ss.chain && r.chance(1, 2) ? r.range(0, ss.max_point + 1) : 0;
	t.dst_point = r.chance(1, 2) ? syncobjs_[d].st->max_point + r.range(0, 3) : 0;
	Fence fe;
	int av = so_lookup(ss, t.src_point, &fe);
	Expect e = av == 1 ? Expect{0} : (av == 0 ? Expect{-EINVAL} : Expect{0, -EINVAL});
	if (av == 1 && r.chance(1, 4))
		t.flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
	int v = int(r.below(12));
	if (v == 0) {
		t.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 1) {
		t.dst_handle = 0x7fffff00u;
		e = Expect{-ENOENT};
	} else if (v == 2) {
		t.src_handle = 0x7fffff00u;
		e = Expect{-ENOENT};
	} else if (v == 3) {
		t.flags = 1u << r.range(2, 31);
		e = Expect{-EINVAL};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_TRANSFER, &t);
	check(K_SO_TRANSFER, ret, e,
	      strf("SYNCOBJ_TRANSFER %s s%u@%llu -> s%u@%llu flags 0x%x", file_name[f],
		   t.src_handle, (unsigned long long)t.src_point, t.dst_handle,
		   (unsigned long long)t.dst_point, t.flags));
	if (ret)
		return;
	SyncState &ds = *syncobjs_[d].st;
	bool chainy = ss.chain && !t.src_point;
	if (ss.chain) {
		/*
		 * The core hands over the chain node, or merges it with every
		 * earlier node (a timeline destination): good only if all are.
		 */
		bool all_ok = !ss.points_uncertain && !ss.max_uncertain;
		for (auto &pt : ss.points) {
			bool sg;
			all_ok &= fence_status(pt.second, &sg) == 0;
		}
		fe.kind = all_ok ? Fence::STUB : Fence::UNKNOWN;
		fe.job = 0;
		chainy |= t.src_point != 0;
	}
	if (t.dst_point) {
		so_add_point(ds, fe, t.dst_point);
	} else {
		so_replace(ds, fe);
		if (chainy) {
			/* the fence is a chain: points can be looked up again */
			ds.chain = true;
			ds.max_uncertain = true;
		}
	}
}

void Worker::op_so_h2fd(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	int si = pick_syncobj(r, f);
	drm_syncobj_handle h = {};
	h.fd = -1;
	bool sync_file = r.chance(1, 2);
	h.flags = sync_file ? DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE : 0;
	Expect e{0};
	Fence fe;
	if (si < 0 || r.chance(1, 8)) {
		h.handle = 0x7ffffe00u;
		si = -1;
		e = sync_file ? Expect{-ENOENT} : Expect{-EINVAL};
	} else {
		h.handle = syncobjs_[si].handle;
		if (sync_file) {
			int av = so_lookup(*syncobjs_[si].st, 0, &fe);
			e = av == 1 ? Expect{0} : Expect{-EINVAL};
		}
	}
	int v = int(r.below(10));
	if (v == 0) {
		h.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 1) {
		h.flags = 1u << r.range(1, 31);
		e = Expect{-EINVAL};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &h);
	check(K_SO_H2FD, ret, e,
	      strf("SYNCOBJ_HANDLE_TO_FD %s:s%u flags 0x%x pad 0x%x", file_name[f], h.handle,
		   h.flags, h.pad));
	if (ret)
		return;
	if (si < 0 || v < 2) {
		close(h.fd);
		return;
	}
	while (auxfds_.size() >= kMaxAuxFds) {
		close(auxfds_.front().fd);
		auxfds_.erase(auxfds_.begin());
	}
	AuxFd a;
	a.fd = h.fd;
	a.kind = sync_file ? AUX_SYNC_FILE : AUX_SYNCOBJ_FD;
	a.st = syncobjs_[si].st;
	a.fence = syncobjs_[si].st->chain ? Fence{Fence::UNKNOWN, 0, -1} : fe;
	auxfds_.push_back(a);
}

void Worker::op_so_fd2h(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0)
		return;
	drm_syncobj_handle h = {};
	int ai = auxfds_.empty() ? -1 : int(r.below(auxfds_.size()));
	bool import = r.chance(1, 2);
	int si = pick_syncobj(r, f);
	Expect e{0};
	if (import) {
		h.flags = DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE;
		if (si < 0)
			return;
		h.handle = syncobjs_[si].handle;
		if (ai < 0 || auxfds_[ai].kind != AUX_SYNC_FILE) {
			h.fd = ai < 0 ? pipe_[0] : auxfds_[ai].fd;
			e = Expect{-EINVAL};
		} else {
			h.fd = auxfds_[ai].fd;
			if (r.chance(1, 8)) {
				h.handle = 0x7fff0000u;
				e = Expect{-ENOENT};
			}
		}
	} else {
		if (ai < 0 || auxfds_[ai].kind != AUX_SYNCOBJ_FD) {
			static const int junk[] = {-1, 0x7fff0000};
			h.fd = r.chance(1, 2) ? pipe_[1] : junk[r.below(2)];
			if (ai >= 0)
				h.fd = auxfds_[ai].fd;
			e = Expect{-EINVAL};
		} else {
			h.fd = auxfds_[ai].fd;
			while (syncobjs_.size() >= kMaxSyncobjs) {
				Syncobj &s = syncobjs_.front();
				drm_syncobj_destroy d = {};
				d.handle = s.handle;
				sys_ioctl(files_[s.file].fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d);
				syncobjs_.erase(syncobjs_.begin());
				si = -1;
			}
		}
	}
	if (r.chance(1, 10)) {
		h.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &h);
	check(K_SO_FD2H, ret, e,
	      strf("SYNCOBJ_FD_TO_HANDLE %s fd %d flags 0x%x handle %u", file_name[f], h.fd,
		   h.flags, h.handle));
	if (ret)
		return;
	if (import) {
		if (si >= 0 && ai >= 0) {
			so_replace(*syncobjs_[si].st, auxfds_[ai].fence);
			if (auxfds_[ai].fence.kind == Fence::UNKNOWN) {
				syncobjs_[si].st->chain = true;
				syncobjs_[si].st->max_uncertain = true;
			}
		}
		return;
	}
	if (so_live(syncobjs_, pending_, f, h.handle)) {
		violation(K_SO_FD2H,
			  strf("SYNCOBJ_FD_TO_HANDLE returned live handle %u", h.handle));
		return;
	}
	Syncobj s;
	s.file = f;
	s.handle = h.handle;
	s.st = auxfds_[ai].st;
	syncobjs_.push_back(s);
}

void Worker::op_so_eventfd(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_WILD, F_PEER});
	if (f < 0 || evfd_ < 0)
		return;
	int si = pick_syncobj(r, f);
	refnpu_test::syncobj_eventfd a = {};
	Expect e{0};
	a.fd = evfd_;
	if (si < 0 || r.chance(1, 8)) {
		a.handle = 0x7ffff000u;
		e = Expect{-ENOENT};
	} else {
		a.handle = syncobjs_[si].handle;
		a.point = r.range(0, syncobjs_[si].st->max_point + 1);
	}
	a.flags = r.chance(1, 3) ? FZ_WAIT_AVAILABLE : 0;
	int v = int(r.below(10));
	if (v == 0) {
		a.flags = 1u << r.range(0, 31);
		if (a.flags != FZ_WAIT_AVAILABLE)
			e = Expect{-EINVAL};
	} else if (v == 1) {
		a.pad = uint32_t(r.next() | 1);
		e = Expect{-EINVAL};
	} else if (v == 2 && e.has(0)) {
		a.fd = r.chance(1, 2) ? pipe_[0] : files_[f].fd;
		e = Expect{-EINVAL};
	} else if (v == 3 && e.has(0)) {
		a.fd = r.chance(1, 2) ? -1 : 0x7ffff000;
		e = Expect{-EBADF};
	}
	int ret = sys_ioctl(files_[f].fd, REFNPU_TEST_IOCTL_SYNCOBJ_EVENTFD, &a);
	check(K_SO_EVENTFD, ret, e,
	      strf("SYNCOBJ_EVENTFD %s:s%u point %llu flags 0x%x fd %d", file_name[f], a.handle,
		   (unsigned long long)a.point, a.flags, a.fd));
	uint64_t cnt;
	while (read(evfd_, &cnt, sizeof(cnt)) == sizeof(cnt)) { }
}

/* ---- DRM core odds and ends --------------------------------------------- */

void Worker::op_version(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_PEER});
	if (f < 0)
		return;
	char name[64] = {}, date[64] = {}, desc[256] = {};
	drm_version v = {};
	Expect e{0};
	if (r.chance(3, 4)) {
		v.name = name;
		v.name_len = sizeof(name) - 1;
		v.date = date;
		v.date_len = sizeof(date) - 1;
		v.desc = desc;
		v.desc_len = sizeof(desc) - 1;
	}
	if (r.chance(1, 8)) {
		v.name = reinterpret_cast<char *>(bad_.pointer(r) | 1);
		v.name_len = 16;
		e = Expect{-EFAULT};
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_VERSION, &v);
	check(K_VERSION, ret, e, strf("VERSION %s", file_name[f]));
	if (!ret && v.name == name && strcmp(name, "refnpu"))
		violation(K_VERSION, strf("VERSION name \"%s\"", name));
}

void Worker::op_get_cap(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND, F_PEER});
	if (f < 0)
		return;
	drm_get_cap c = {};
	static const uint64_t caps[] = {DRM_CAP_TIMESTAMP_MONOTONIC,
					DRM_CAP_PRIME,
					DRM_CAP_SYNCOBJ,
					DRM_CAP_SYNCOBJ_TIMELINE,
					DRM_CAP_DUMB_BUFFER,
					DRM_CAP_VBLANK_HIGH_CRTC,
					0x7fffffff,
					0};
	c.capability = caps[r.below(8)];
	if (!c.capability)
		c.capability = r.next();
	Expect e{-EOPNOTSUPP};
	uint64_t want = ~0ULL;
	switch (c.capability) {
	case DRM_CAP_TIMESTAMP_MONOTONIC:
	case DRM_CAP_SYNCOBJ:
	case DRM_CAP_SYNCOBJ_TIMELINE:
		e = Expect{0};
		want = 1;
		break;
	case DRM_CAP_PRIME:
		e = Expect{0};
		want = DRM_PRIME_CAP_IMPORT | DRM_PRIME_CAP_EXPORT;
		break;
	}
	int ret = sys_ioctl(files_[f].fd, DRM_IOCTL_GET_CAP, &c);
	check(K_GET_CAP, ret, e,
	      strf("GET_CAP %s 0x%llx", file_name[f], (unsigned long long)c.capability));
	if (!ret && want != ~0ULL && c.value != want)
		violation(K_GET_CAP, strf("GET_CAP 0x%llx = %llu, expected %llu",
					  (unsigned long long)c.capability,
					  (unsigned long long)c.value, (unsigned long long)want));
}

/*
 * Ioctl numbers an accel file refuses, and refnpu structs of other sizes
 * (drm_ioctl() zero-extends a short struct and ignores the bytes beyond
 * the kernel's). Core ioctls that dereference the DRM master, which an
 * accel file never has, are only issued with --unsafe-core-ioctls.
 */
void Worker::op_bad_ioctl(Rng &r)
{
	int f = pick_file(r, {F_MAIN, F_SECOND});
	if (f < 0)
		return;
	uint8_t buf[256] = {};
	unsigned long req;
	Expect e{-EINVAL};
	std::string d;
	switch (r.below(opt.unsafe_core ? 9 : 8)) {
	case 0: { /* driver ioctl numbers past the table */
		unsigned nr = DRM_COMMAND_BASE + 6 +
			      unsigned(r.below(DRM_COMMAND_END - DRM_COMMAND_BASE - 6));
		req = DRM_IOWR(nr, struct drm_refnpu_get_param);
		d = strf("driver ioctl 0x%x", nr);
		break;
	}
	case 1: /* not a DRM ioctl */
		req = _IOWR('x', r.below(256), struct drm_refnpu_get_param);
		e = Expect{-ENOTTY};
		d = "ioctl of another type";
		break;
	case 2: /* KMS ioctls on a device without modesetting */
		req = DRM_IOCTL_MODE_GETRESOURCES;
		e = Expect{-EOPNOTSUPP};
		d = "MODE_GETRESOURCES";
		break;
	case 3:
		req = DRM_IOCTL_MODE_CREATE_DUMB;
		reinterpret_cast<drm_mode_create_dumb *>(buf)->width = 64;
		reinterpret_cast<drm_mode_create_dumb *>(buf)->height = 64;
		reinterpret_cast<drm_mode_create_dumb *>(buf)->bpp = 32;
		e = Expect{-ENOSYS};
		d = "MODE_CREATE_DUMB";
		break;
	case 4: /* master-only ioctls: an accel file is never master */
		req = r.chance(1, 2) ? DRM_IOCTL_MODE_SETCRTC : DRM_IOCTL_AUTH_MAGIC;
		e = Expect{-EACCES};
		d = "master-only ioctl";
		break;
	case 5: { /* a short GET_PARAM: param only, pad and value read as zero */
		auto *p = reinterpret_cast<drm_refnpu_get_param *>(buf);
		p->param = DRM_REFNPU_PARAM_NUM_QUEUES;
		req = _IOC(_IOC_READ | _IOC_WRITE, DRM_IOCTL_BASE,
			   DRM_COMMAND_BASE + DRM_REFNPU_GET_PARAM, 4);
		e = Expect{0};
		d = "GET_PARAM with a 4-byte struct";
		break;
	}
	case 6: { /* a long BO_INFO whose extra bytes are ignored */
		int hi = pick_handle(r, f);
		if (hi < 0)
			return;
		auto *p = reinterpret_cast<drm_refnpu_bo_info *>(buf);
		p->handle = handles_[hi].handle;
		buf[sizeof(*p) + r.below(64)] = uint8_t(r.range(1, 255));
		req = _IOC(_IOC_READ | _IOC_WRITE, DRM_IOCTL_BASE,
			   DRM_COMMAND_BASE + DRM_REFNPU_BO_INFO, sizeof(*p) + 64);
		e = Expect{0};
		d = "BO_INFO with a 104-byte struct";
		break;
	}
	case 7: { /* a BO_WAIT without its timeout: polls */
		int hi = pick_handle(r, f);
		if (hi < 0)
			return;
		reinterpret_cast<drm_refnpu_bo_wait *>(buf)->handle = handles_[hi].handle;
		req = _IOC(_IOC_READ | _IOC_WRITE, DRM_IOCTL_BASE,
			   DRM_COMMAND_BASE + DRM_REFNPU_BO_WAIT, 8);
		e = Expect{0, -ETIMEDOUT};
		d = "BO_WAIT with an 8-byte struct";
		break;
	}
	default: /* --unsafe-core-ioctls */
		req = r.chance(1, 2) ? DRM_IOCTL_GET_MAGIC : DRM_IOCTL_GET_UNIQUE;
		e = Expect{-EINVAL, -EACCES, -EOPNOTSUPP, 0};
		d = req == DRM_IOCTL_GET_MAGIC ? "GET_MAGIC" : "GET_UNIQUE";
		break;
	}
	int ret = sys_ioctl(files_[f].fd, req, buf);
	check(K_BAD_IOCTL, ret, e, strf("%s on %s (cmd 0x%lx)", d.c_str(), file_name[f], req));
}

/* ---- CPU mappings ------------------------------------------------------- */

void Worker::op_mmap(Rng &r)
{
	int hi = pick_handle(r, -1);
	int v = int(r.below(12));
	void *p = MAP_FAILED;
	size_t len = 0;
	Expect e{0};
	std::string d;
	std::shared_ptr<Mem> mem;
	bool writable = r.chance(2, 3);
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	if (v == 10 && !dmabufs_.empty()) {
		/* the dma-buf itself */
		DmaBuf &db = dmabufs_[r.below(dmabufs_.size())];
		len = db.mem->size;
		writable = false;
		p = mmap(nullptr, len, PROT_READ, MAP_SHARED, db.fd, 0);
		d = strf("mmap dma-buf of %s memory 0x%" PRIx64, mem_kind_name(db.mem->kind),
			 db.mem->uid);
		mem = db.mem;
	} else {
		if (hi < 0 || handles_[hi].file == F_COMPUTE)
			return;
		Handle &h = handles_[hi];
		int fd = files_[h.file].fd;
		uint64_t off = h.obj->mmap_offset;
		if (!off && !h.obj->userptr) {
			drm_refnpu_bo_info bi = {};
			bi.handle = h.handle;
			if (sys_ioctl(fd, DRM_IOCTL_REFNPU_BO_INFO, &bi))
				return;
			off = h.obj->mmap_offset = bi.mmap_offset;
		}
		len = h.obj->size;
		mem = h.obj->mem;
		d = "mmap " + hdesc(h);
		if (h.obj->userptr) {
			off = r.chance(1, 2) ? 0 : r.next() & ~(kPage - 1) & 0xffffffffffULL;
			e = Expect{-EINVAL, -EACCES};
			d += " (userptr: no mmap offset)";
		} else if (v == 6) {
			len += kPage * r.range(1, 4);
			e = Expect{-EINVAL};
			d += " (longer than the BO)";
		} else if (v == 7) {
			/* the offset of a BO this file holds no handle on */
			int oi = pick_handle(r, -1);
			if (oi < 0)
				return;
			Handle &o = handles_[oi];
			bool here = false;
			for (auto &x : handles_)
				here |= x.file == h.file && x.obj->mem == o.obj->mem;
			if (here || o.obj->userptr || file_dev(o.file) != file_dev(h.file) ||
			    !o.obj->mmap_offset || o.obj->dev != file_dev(o.file))
				return;
			off = o.obj->mmap_offset;
			len = o.obj->size;
			mem = nullptr;
			e = Expect{-EACCES};
			d = strf("mmap on %s of the offset of ", file_name[h.file]) + hdesc(o);
		} else if (v == 8 && h.obj->mem->kind == MemKind::Shmem &&
			   h.obj->dev == file_dev(h.file) && h.obj->mem->checked) {
			p = mmap(nullptr, len, prot, MAP_PRIVATE, fd, off);
			check(K_MMAP, p == MAP_FAILED ? -errno : 0, {-EINVAL}, d + " MAP_PRIVATE");
			if (p != MAP_FAILED)
				munmap(p, len);
			return;
		} else if (v == 9) {
			off = (r.next() & 0xffffffffULL) * kPage;
			e = Expect{-EINVAL, -EACCES};
			d += strf(" at random offset 0x%" PRIx64, off);
			mem = nullptr;
		}
		p = mmap(nullptr, len, prot, MAP_SHARED, fd, off);
	}
	int ret = p == MAP_FAILED ? -errno : 0;
	check(K_MMAP, ret, e, d);
	if (ret)
		return;
	if (!mem || !mem->checked || !e.has(0) || mem->kind == MemKind::Ghost) {
		munmap(p, len);
		return;
	}
	while (maps_.size() >= kMaxMappings) {
		munmap(maps_.front().p, maps_.front().len);
		maps_.erase(maps_.begin());
	}
	Mapping mp;
	mp.p = static_cast<uint8_t *>(p);
	mp.len = len;
	mp.mem = mem;
	mp.writable = writable;
	maps_.push_back(mp);
	check_bytes(*mem, 0, std::min<uint64_t>(len, mem->size), "new mapping", mp.p);
}

void Worker::op_munmap(Rng &r)
{
	if (maps_.empty())
		return;
	size_t i = r.below(maps_.size());
	Mapping &m = maps_[i];
	if (r.chance(1, 6)) {
		int ret = munmap(m.p + 1, kPage) ? -errno : 0;
		check(K_MUNMAP, ret, {-EINVAL}, "munmap of an unaligned address");
		return;
	}
	if (m.len > kPage && r.chance(1, 3)) {
		/* drop the last page, keep the rest */
		int ret = munmap(m.p + m.len - kPage, kPage) ? -errno : 0;
		check(K_MUNMAP, ret, {0}, "munmap of a mapping's last page");
		if (!ret)
			m.len -= kPage;
		return;
	}
	int ret = munmap(m.p, m.len) ? -errno : 0;
	check(K_MUNMAP, ret, {0}, "munmap");
	maps_.erase(maps_.begin() + long(i));
}

/* Read (and for own memory, write) memory the worker can see. */
void Worker::op_touch(Rng &r)
{
	std::vector<std::pair<std::shared_ptr<Mem>, const uint8_t *>> views;
	for (auto &h : handles_)
		if (h.obj->mem->cpu)
			views.push_back({h.obj->mem, nullptr});
	for (auto &o : orphans_)
		views.push_back({o, nullptr});
	for (auto &f : foreign_)
		views.push_back({f, nullptr});
	for (auto &m : maps_)
		views.push_back({m.mem, m.p});
	if (arena_.rw_mem) {
		views.push_back({arena_.rw_mem, nullptr});
		views.push_back({arena_.ro_mem, nullptr});
		views.push_back({arena_.ro_mem, arena_.ro});
	}
	if (views.empty())
		return;
	auto &v = views[r.below(views.size())];
	Mem &m = *v.first;
	uint64_t len = v.second ? 0 : m.size;
	if (v.second)
		for (auto &mp : maps_)
			if (mp.p == v.second)
				len = std::min<uint64_t>(mp.len, m.size);
	if (v.second == arena_.ro)
		len = m.size;
	if (!len)
		return;
	uint64_t off = r.below(len), n = std::min<uint64_t>(len - off, r.range(1, 3 * kPage));
	count(K_TOUCH, 0);
	say(strf("touch %s memory 0x%" PRIx64 " +0x%" PRIx64 "/0x%" PRIx64, mem_kind_name(m.kind),
		 m.uid, off, n));
	check_bytes(m, off, n, "touched memory", v.second);
	if (!r.chance(1, 3) || !m.exact_capable() || !m.cpu_writable)
		return;
	if (!v.second) {
		cpu_rewrite(r, m, off, n);
		return;
	}
	/* write through the extra mapping, where no job is in flight */
	for (auto &mp : maps_) {
		if (mp.p != v.second || !mp.writable)
			continue;
		for (uint64_t p = off / kPage; p <= (off + n - 1) / kPage; p++) {
			if (!m.page_idle(p) || !m.known[p])
				continue;
			uint64_t lo = std::max(off, p * kPage),
				 hi = std::min(off + n, (p + 1) * kPage);
			fill_tagged(m.shadow.data() + lo, hi - lo, tag_, r);
			memcpy(mp.p + lo, m.shadow.data() + lo, hi - lo);
			m.note('C', opno_, 1, lo, hi - lo);
		}
		check_bytes(m, off, n, "memory written through a second mapping");
	}
}

void Worker::op_recanary(Rng &r)
{
	std::vector<std::shared_ptr<Mem>> v;
	for (auto &h : handles_)
		if (h.obj->mem->cpu && h.obj->mem->exact_capable())
			v.push_back(h.obj->mem);
	if (arena_.rw_mem)
		v.push_back(r.chance(1, 2) ? arena_.rw_mem : arena_.ro_mem);
	if (v.empty())
		return;
	Mem &m = *v[r.below(v.size())];
	count(K_TOUCH, 0);
	check_bytes(m, 0, m.size, "memory before a rewrite");
	cpu_rewrite(r, m, 0, m.size);
}

/* ---- files, processes --------------------------------------------------- */

void Worker::op_reopen(Rng &r)
{
	static const int pick[] = {F_SECOND, F_WILD, F_COMPUTE, F_PEER, F_SECOND, F_WILD, F_MAIN};
	int f = pick[r.below(7)];
	if (!file_ok(f) && f != F_PEER)
		f = F_SECOND;
	bool busy = (f == F_WILD || f == F_COMPUTE) && r.chance(1, 2);
	count(K_CLOSE_REOPEN, 0);
	say(strf("close and reopen %s%s", file_name[f], busy ? " with jobs in flight" : ""));
	if (busy)
		for (int i = 0; i < 3; i++)
			f == F_WILD ? op_job_wild(r) : op_job_compute(r);
	close_file(f, !busy);
	if (f != F_PEER || !dev.peer_path.empty())
		open_file(f);
}

void Worker::reap_children(bool final)
{
	int64_t end = now_ns() + 2000000000LL;
	while (!children_.empty()) {
		for (size_t i = 0; i < children_.size();) {
			ChildProc &c = children_[i];
			int64_t now = now_ns();
			if (!c.kill_sent && ((c.kill_at && now >= c.kill_at) || final)) {
				if (!c.kill_at && final && now < c.deadline) {
					/* let a child that exits by itself finish */
				} else {
					kill(c.pid, SIGKILL);
					c.kill_sent = true;
					shared->kills++;
					if (!c.kill_at)
						violation(K_FORK,
							  strf("forked child %d did not exit "
							       "in time",
							       int(c.pid)));
				}
			}
			if (!c.kill_sent && now >= c.deadline) {
				violation(K_FORK, strf("forked child %d hung: ", int(c.pid)) +
							  where_waits(c.pid));
				kill(c.pid, SIGKILL);
				c.kill_sent = true;
			}
			int st;
			pid_t w = waitpid(c.pid, &st, WNOHANG);
			if (w == c.pid) {
				shared->child_exits++;
				if (WIFSIGNALED(st) && !(WTERMSIG(st) == SIGKILL && c.kill_sent))
					violation(K_FORK, strf("forked child %d died by signal %d",
							       int(c.pid), WTERMSIG(st)));
				else if (WIFEXITED(st) && WEXITSTATUS(st))
					say(strf("forked child %d exited %d (it reported why)",
						 int(c.pid), WEXITSTATUS(st)));
				children_.erase(children_.begin() + long(i));
				continue;
			}
			i++;
		}
		if (!final || children_.empty())
			break;
		if (now_ns() > end) {
			/* the run is over: children still exiting are killed */
			for (auto &c : children_) {
				if (!c.kill_sent) {
					kill(c.pid, SIGKILL);
					c.kill_sent = true;
					shared->kills++;
				}
			}
			end = INT64_MAX;
		}
		usleep(2000);
	}
}

/*
 * Fork a child that opens its own file, sends back a BO, runs a few
 * operations on its own and on dma-bufs it inherited, then exits with jobs
 * queued, exits cleanly, or waits to be killed.
 */
void Worker::op_fork(Rng &r)
{
	if (!opt.fork_ops || child_)
		return;
	reap_children(false);
	if (children_.size() >= size_t(kMaxChildren))
		return;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
		/* Out of descriptors or memory may happen; anything else may not. */
		if (errno != EMFILE && errno != ENFILE && errno != ENOMEM)
			violation(K_FORK, strf("socketpair(AF_UNIX) failed: %s", strerror(errno)));
		return;
	}
	uint64_t mode = r.below(4), nops = r.range(5, 40), cseed = r.next();
	std::vector<DmaBuf> granted;
	for (auto &db : dmabufs_)
		if (db.sendable && granted.size() < 2 && r.chance(1, 2)) {
			db.mem->shared = true;
			granted.push_back(db);
		}
	count(K_FORK, 0);
	say(strf("fork: mode %" PRIu64 " ops %" PRIu64 " seed %" PRIu64, mode, nops, cseed));
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		/* a fresh worker with the same tag; nothing of the parent's is used */
		auto *w = new Worker(id_, cseed, ps_, true);
		w->child_main(sv[1], mode, nops, granted);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return;
	}
	shared->forks++;
	ChildProc c;
	c.pid = pid;
	/* exit waits up to a second per scheduler entity for queued jobs */
	c.deadline = now_ns() + 20000000000LL;
	/* the child's first message: a BO it filled */
	pollfd pfd = {sv[0], POLLIN, 0};
	if (poll(&pfd, 1, 1500) == 1) {
		DmabufMsg msg = {};
		char cbuf[CMSG_SPACE(sizeof(int))];
		iovec iov = {&msg, sizeof(msg)};
		msghdr mh = {};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		ssize_t n = recvmsg(sv[0], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		if (n == sizeof(msg) && cm && cm->cmsg_type == SCM_RIGHTS) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
			auto m = new_mem(MemKind::Foreign, msg.size);
			m->shared = true;
			m->mask = msg.mask;
			void *p = mmap(nullptr, msg.size, PROT_READ, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED) {
				m->cpu = static_cast<uint8_t *>(p);
				m->unmap_base = p;
				m->unmap_len = msg.size;
			}
			struct stat st = {};
			fstat(fd, &st);
			m->ino = st.st_ino;
			ino_map_[st.st_ino] = m;
			check_bytes(*m, 0, m->size, "BO a forked child filled");
			DmaBuf db;
			db.fd = fd;
			db.mem = m;
			db.ino = st.st_ino;
			db.dev = 0;
			db.sendable = true;
			add_dmabuf(db);
			foreign_.push_back(m);
			while (foreign_.size() > kMaxForeign)
				foreign_.erase(foreign_.begin());
		}
	}
	close(sv[0]);
	if (mode >= 2)
		c.kill_at = mode == 3 ? now_ns() : now_ns() + int64_t(r.below(30)) * 1000000;
	children_.push_back(c);
}

void Worker::child_main(int sock, uint64_t mode, uint64_t nops, std::vector<DmaBuf> granted)
{
	deadline_ = now_ns() + 1500000000LL;
	bad_.init();
	if (pipe2(pipe_, O_CLOEXEC | O_NONBLOCK))
		_exit(3);
	evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!open_file(F_MAIN))
		_exit(2);
	Rng r(seed_);
	/* a BO for the parent, filled with our (the parent's) tag */
	drm_refnpu_bo_create bc = {};
	bc.size = kPage * r.range(1, 16);
	int ret = sys_ioctl(files_[F_MAIN].fd, DRM_IOCTL_REFNPU_BO_CREATE, &bc);
	if (check(K_BO_CREATE, ret, {0}, "child BO")) {
		drm_refnpu_bo_info bi = {};
		bi.handle = bc.handle;
		drm_prime_handle ph = {};
		ph.handle = bc.handle;
		ph.flags = DRM_CLOEXEC | DRM_RDWR;
		if (!sys_ioctl(files_[F_MAIN].fd, DRM_IOCTL_REFNPU_BO_INFO, &bi) &&
		    !sys_ioctl(files_[F_MAIN].fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph)) {
			void *p = mmap(nullptr, bc.size, PROT_READ | PROT_WRITE, MAP_SHARED,
				       files_[F_MAIN].fd, bi.mmap_offset);
			if (p != MAP_FAILED) {
				fill_tagged(static_cast<uint8_t *>(p), bc.size, tag_, r);
				munmap(p, bc.size);
			}
			struct stat st = {};
			fstat(ph.fd, &st);
			DmabufMsg msg = {kMsgMagic, uint32_t(id_), 1u << tag_,	       0,
					 0,	    bc.size,	   uint64_t(st.st_ino)};
			char cbuf[CMSG_SPACE(sizeof(int))] = {};
			iovec iov = {&msg, sizeof(msg)};
			msghdr mh = {};
			mh.msg_iov = &iov;
			mh.msg_iovlen = 1;
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			cmsghdr *cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &ph.fd, sizeof(int));
			sendmsg(sock, &mh, MSG_DONTWAIT);
			close(ph.fd);
		}
		/* the parent holds the BO now, through the dma-buf */
		drm_gem_close gc = {};
		gc.handle = bc.handle;
		check(K_GEM_CLOSE, sys_ioctl(files_[F_MAIN].fd, DRM_IOCTL_GEM_CLOSE, &gc), {0},
		      "GEM_CLOSE child BO");
	}
	close(sock);
	/* the inherited dma-bufs: read them, import them */
	for (auto &g : granted) {
		DmaBuf db = g;
		db.fd = dup(g.fd);
		db.sendable = false;
		check_bytes(*db.mem, 0, db.mem->size, "inherited dma-buf memory");
		int di = add_dmabuf(db);
		uint32_t h;
		import_dmabuf(F_MAIN, di, &h, true);
	}
	for (uint64_t i = 0; i < nops && now_ns() < deadline_; i++) {
		opno_ = i;
		Rng opr(seed_ ^ (i * 0xd1b54a32d192ed03ULL));
		step(opr);
	}
	if (mode == 1) {
		/* exit with jobs queued: the file is closed by the exit */
		for (int i = 0; i < 6; i++)
			op_job_tracked(r, F_MAIN, 0);
		_exit(local_violations_ ? 1 : 0);
	}
	if (mode >= 2) {
		for (int i = 0; i < 6; i++)
			op_job_tracked(r, F_MAIN, 0);
		for (;;)
			pause();
	}
	while (!pending_.empty() && now_ns() < deadline_ + 500000000LL)
		if (!retire_oldest(kWaitBudgetNs))
			break;
	_exit(local_violations_ ? 1 : 0);
}

/* Send a dma-buf to the next process of the ring. */
void Worker::op_send(Rng &r)
{
	if (child_ || ps_->outbox < 0)
		return;
	std::vector<int> v;
	for (size_t i = 0; i < dmabufs_.size(); i++)
		if (dmabufs_[i].sendable)
			v.push_back(int(i));
	if (v.empty())
		return;
	DmaBuf &db = dmabufs_[r.pick(v)];
	int to = (ps_->index + 1) % opt.procs;
	int cur = shared->inflight[to].load();
	if (cur >= kInflightMsgs || !shared->inflight[to].compare_exchange_strong(cur, cur + 1))
		return;
	db.mem->shared = true;
	DmabufMsg msg = {kMsgMagic,
			 uint32_t(id_),
			 db.mem->mask,
			 int16_t(db.dev),
			 uint16_t(db.mem->dev_ro ? 1 : 0),
			 db.mem->size,
			 db.ino};
	char cbuf[CMSG_SPACE(sizeof(int))] = {};
	iovec iov = {&msg, sizeof(msg)};
	msghdr mh = {};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &db.fd, sizeof(int));
	int ret = sendmsg(ps_->outbox, &mh, MSG_DONTWAIT) < 0 ? -errno : 0;
	check(K_SEND_DMABUF, ret, {0, -EAGAIN, -ENOBUFS},
	      strf("send dma-buf of memory 0x%" PRIx64 " to process %d", db.mem->uid, to));
	if (ret)
		shared->inflight[to]--;
	else
		shared->dmabufs_sent++;
}

void Worker::op_recv(Rng &r)
{
	(void)r;
	if (child_ || ps_->inbox < 0)
		return;
	DmabufMsg msg = {};
	char cbuf[CMSG_SPACE(sizeof(int))];
	iovec iov = {&msg, sizeof(msg)};
	msghdr mh = {};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	ssize_t n = recvmsg(ps_->inbox, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int ret = n < 0 ? -errno : 0;
	check(K_RECV_DMABUF, ret, {0, -EAGAIN}, "receive dma-buf");
	if (n < 0)
		return;
	shared->inflight[ps_->index]--;
	cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (n != sizeof(msg) || msg.magic != kMsgMagic || !cm || cm->cmsg_type != SCM_RIGHTS) {
		violation(K_RECV_DMABUF, "malformed dma-buf message");
		return;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	shared->dmabufs_received++;
	struct stat st = {};
	fstat(fd, &st);
	if (uint64_t(st.st_size) != msg.size)
		violation(K_RECV_DMABUF, strf("received dma-buf of size %lld, its sender says %llu",
					      (long long)st.st_size, (unsigned long long)msg.size));
	std::shared_ptr<Mem> m = mem_for_ino(st.st_ino);
	if (!m) {
		m = new_mem(MemKind::Foreign, msg.size);
		m->shared = true;
		m->mask = msg.mask;
		m->dev_ro = msg.flags & 1;
		m->home_dev = msg.dev;
		m->ino = st.st_ino;
		void *p = mmap(nullptr, msg.size, PROT_READ, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			m->cpu = static_cast<uint8_t *>(p);
			m->unmap_base = p;
			m->unmap_len = msg.size;
		}
		ino_map_[st.st_ino] = m;
		foreign_.push_back(m);
		while (foreign_.size() > kMaxForeign)
			foreign_.erase(foreign_.begin());
	}
	say(strf("received dma-buf of worker %u: memory 0x%" PRIx64 " size 0x%" PRIx64 " tags 0x%x",
		 msg.origin, m->uid, m->size, m->mask));
	check_bytes(*m, 0, m->size, strf("dma-buf from worker %u", msg.origin).c_str());
	DmaBuf db;
	db.fd = fd;
	db.mem = m;
	db.ino = st.st_ino;
	db.dev = msg.dev;
	db.sendable = true;
	add_dmabuf(db);
}

/* A vgem buffer, exported to a dma-buf that the refnpu files import. */
void Worker::op_vgem(Rng &r)
{
	if (dev.vgem_path.empty())
		return;
	if (vgem_fd_ < 0)
		vgem_fd_ = open(dev.vgem_path.c_str(), O_RDWR | O_CLOEXEC);
	if (vgem_fd_ < 0)
		return;
	uint64_t pages = r.range(1, 16);
	if (budget_ + pages * kPage > opt.mem_budget)
		return;
	drm_mode_create_dumb cd = {};
	cd.width = 1024;
	cd.height = uint32_t(pages);
	cd.bpp = 32;
	int ret = sys_ioctl(vgem_fd_, DRM_IOCTL_MODE_CREATE_DUMB, &cd);
	if (!check(K_VGEM, ret, {0}, "vgem CREATE_DUMB"))
		return;
	drm_prime_handle ph = {};
	ph.handle = cd.handle;
	ph.flags = DRM_CLOEXEC | DRM_RDWR;
	ret = sys_ioctl(vgem_fd_, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph);
	drm_gem_close gc = {};
	gc.handle = cd.handle;
	sys_ioctl(vgem_fd_, DRM_IOCTL_GEM_CLOSE, &gc);
	if (!check(K_VGEM, ret, {0}, "vgem export"))
		return;
	auto m = new_mem(MemKind::Vgem, cd.size);
	m->home_dev = -1;
	void *p = mmap(nullptr, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, ph.fd, 0);
	if (!check(K_VGEM, p == MAP_FAILED ? -errno : 0, {0}, "mmap vgem dma-buf")) {
		close(ph.fd);
		return;
	}
	m->cpu = static_cast<uint8_t *>(p);
	m->cpu_writable = true;
	m->unmap_base = p;
	m->unmap_len = cd.size;
	m->budget = &budget_;
	m->bytes_charged = cd.size;
	budget_ += cd.size;
	std::fill(m->known.begin(), m->known.end(), 1);
	check_bytes(*m, 0, m->size, "new vgem buffer");
	cpu_rewrite(r, *m, 0, m->size);
	struct stat st = {};
	fstat(ph.fd, &st);
	m->ino = st.st_ino;
	ino_map_[st.st_ino] = m;
	DmaBuf db;
	db.fd = ph.fd;
	db.mem = m;
	db.ino = st.st_ino;
	db.dev = -1;
	db.sendable = true;
	add_dmabuf(db);
	int f = pick_file(r, {F_MAIN, F_SECOND, F_PEER});
	uint32_t h;
	if (f >= 0) {
		make_room_handles(r);
		import_dmabuf(f, int(dmabufs_.size()) - 1, &h, true);
	}
}

/* Delay the next job of a queue (device fault injection, debugfs). */
void Worker::op_inject(Rng &r)
{
	if (dev.inject_path.empty() || !inject_ok_)
		return;
	unsigned q = unsigned(r.below(dev.num_queues));
	std::string s =
		strf("%u %u 0 %u 0\n", q, REFNPU_DBG_INJECT_DELAY, unsigned(r.range(1000, 30000)));
	if (opt.inject_errors && r.chance(1, 2)) {
		static const unsigned codes[] = {REFNPU_ERR_MMU_UNMAPPED, REFNPU_ERR_MALFORMED,
						 REFNPU_ERR_DMA, REFNPU_ERR_UNSUPPORTED,
						 REFNPU_ERR_MMU_WRITE_PERM};
		s = strf("%u %u %u 0 0\n", q,
			 r.chance(1, 4) ? REFNPU_DBG_INJECT_MMU_FAULT : REFNPU_DBG_INJECT_ERROR,
			 codes[r.below(5)]);
	}
	int fd = open(dev.inject_path.c_str(), O_WRONLY | O_CLOEXEC);
	int ret = fd < 0 ? -errno : 0;
	if (!ret && write(fd, s.data(), s.size()) != ssize_t(s.size()))
		ret = -errno;
	if (fd >= 0)
		close(fd);
	count(K_INJECT, ret);
	say("inject " + s.substr(0, s.size() - 1) + (ret ? strf(" -> -%s", errname(ret)) : ""));
	if (ret)
		inject_ok_ = false;
}

/*
 * The process's shared file: every thread creates, closes, looks up and
 * submits on small handle numbers, racing the others. Only the errnos are
 * checked (and that a new BO has a VA).
 */
void Worker::op_chaos(Rng &r)
{
	if (child_)
		return;
	{
		std::shared_lock<std::shared_mutex> lk(ps_->chaos_lock);
		int fd = ps_->chaos_fd;
		if (fd < 0)
			return;
		uint32_t h = uint32_t(r.range(1, 12));
		int ret;
		switch (r.below(6)) {
		case 0: {
			drm_refnpu_bo_create c = {};
			c.size = kPage;
			ret = sys_ioctl(fd, DRM_IOCTL_REFNPU_BO_CREATE, &c);
			check(K_BO_CREATE, ret, {0}, "chaos BO_CREATE");
			if (!ret && (!c.handle || c.va < dev.va_start))
				violation(K_BO_CREATE, strf("chaos BO_CREATE: handle %u va 0x%llx",
							    c.handle, (unsigned long long)c.va));
			ps_->chaos_creates++;
			if (!ret && r.chance(1, 2)) {
				drm_gem_close gc = {};
				gc.handle = c.handle;
				check(K_GEM_CLOSE, sys_ioctl(fd, DRM_IOCTL_GEM_CLOSE, &gc),
				      {0, -EINVAL}, "chaos GEM_CLOSE of a new handle");
			}
			break;
		}
		case 1: {
			drm_gem_close gc = {};
			gc.handle = h;
			check(K_GEM_CLOSE, sys_ioctl(fd, DRM_IOCTL_GEM_CLOSE, &gc), {0, -EINVAL},
			      strf("chaos GEM_CLOSE %u", h));
			break;
		}
		case 2: {
			drm_refnpu_bo_info bi = {};
			bi.handle = h;
			ret = sys_ioctl(fd, DRM_IOCTL_REFNPU_BO_INFO, &bi);
			check(K_BO_INFO, ret, {0, -ENOENT}, strf("chaos BO_INFO %u", h));
			if (!ret && (bi.size != kPage || !bi.va))
				violation(K_BO_INFO, strf("chaos BO_INFO %u: size 0x%llx va 0x%llx",
							  h, (unsigned long long)bi.size,
							  (unsigned long long)bi.va));
			break;
		}
		case 3: {
			drm_refnpu_bo_ref ref = {uint32_t(r.range(1, 12)), DRM_REFNPU_BO_REF_READ};
			drm_refnpu_submit s = {};
			s.queue = uint32_t(r.below(dev.num_queues));
			s.cmd_handle = h;
			s.cmd_size = 8;
			s.bos = uintptr_t(&ref);
			s.bo_count = 1;
			s.bo_stride = sizeof(ref);
			check(K_SUBMIT, sys_ioctl(fd, DRM_IOCTL_REFNPU_SUBMIT, &s), {0, -ENOENT},
			      strf("chaos SUBMIT cmd %u bo %u", h, ref.handle));
			break;
		}
		case 4: {
			drm_refnpu_bo_wait w = {};
			w.handle = h;
			ret = sys_ioctl(fd, DRM_IOCTL_REFNPU_BO_WAIT, &w);
			check(K_BO_WAIT, ret, {0, -ENOENT, -ETIMEDOUT},
			      strf("chaos BO_WAIT %u", h));
			if (!ret && w.status &&
			    std::find(job_errnos.begin(), job_errnos.end(), -w.status) ==
				    job_errnos.end())
				violation(K_BO_WAIT,
					  strf("chaos BO_WAIT %u: status %d", h, w.status));
			break;
		}
		default: {
			drm_prime_handle ph = {};
			ph.handle = h;
			ph.flags = DRM_CLOEXEC;
			ret = sys_ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph);
			check(K_PRIME_H2FD, ret, {0, -ENOENT},
			      strf("chaos PRIME_HANDLE_TO_FD %u", h));
			if (!ret)
				close(ph.fd);
			break;
		}
		}
	}
	if (ps_->chaos_creates.load() > 48) {
		std::unique_lock<std::shared_mutex> lk(ps_->chaos_lock);
		if (ps_->chaos_creates.load() > 48) {
			close(ps_->chaos_fd);
			ps_->chaos_fd = open(opt.device.c_str(), O_RDWR | O_CLOEXEC);
			ps_->chaos_creates = 0;
			count(K_CHAOS, ps_->chaos_fd < 0 ? -errno : 0);
		}
	}
}

void Worker::op_publish(Rng &r)
{
	std::vector<int> v = handles_in(F_MAIN);
	for (int i = 0; i < 8 && !v.empty(); i++) {
		const Handle &h = handles_[r.pick(v)];
		shared->published_va[id_ % kMaxWorkers][i] = h.va + r.below(h.obj->size) / 8 * 8;
	}
}

/* ---- the loop ----------------------------------------------------------- */

void Worker::step(Rng &r)
{
	struct W {
		int weight;
		int op;
	};
	static const W parent_ops[] = {
		{4, 0},	 {12, 1},  {5, 2},  {6, 3},  {4, 4},  {1, 5},  {7, 6},	{1, 7},	 {5, 8},
		{6, 9},	 {4, 10},  {2, 11}, {3, 12}, {3, 13}, {2, 14}, {2, 15}, {3, 16}, {2, 17},
		{2, 18}, {2, 19},  {2, 20}, {1, 21}, {1, 22}, {1, 23}, {2, 24}, {3, 25}, {2, 26},
		{6, 27}, {3, 28},  {1, 29}, {1, 30}, {2, 31}, {3, 32}, {1, 33}, {1, 34}, {3, 35},
		{1, 36}, {16, 37}, {5, 38}, {2, 39}, {1, 40}, {5, 41}, {3, 42}, {6, 43}, {10, 44},
	};
	static const W child_ops[] = {
		{2, 0},	 {6, 1},  {3, 2},  {3, 3},   {3, 6},  {3, 9},
		{3, 27}, {2, 10}, {2, 12}, {10, 37}, {3, 38}, {5, 44},
	};
	const W *t = child_ ? child_ops : parent_ops;
	size_t n = child_ ? sizeof(child_ops) / sizeof(W) : sizeof(parent_ops) / sizeof(W);
	int total = 0;
	for (size_t i = 0; i < n; i++)
		total += t[i].weight;
	int x = int(r.below(uint64_t(total))), op = 0;
	for (size_t i = 0; i < n; i++) {
		if (x < t[i].weight) {
			op = t[i].op;
			break;
		}
		x -= t[i].weight;
	}
	static const int job_files[] = {F_MAIN, F_MAIN, F_SECOND, F_WILD, F_PEER};
	int jf = child_ ? F_MAIN : job_files[r.below(5)];
	switch (op) {
	case 0:
		op_get_param(r);
		break;
	case 1:
		op_bo_create(r);
		break;
	case 2:
		op_bo_info(r);
		break;
	case 3:
		op_bo_wait(r);
		break;
	case 4:
		op_userptr(r);
		break;
	case 5:
		op_arena_remap(r);
		break;
	case 6:
		op_gem_close(r);
		break;
	case 7:
		op_flink(r);
		break;
	case 8:
		op_prime_export(r);
		break;
	case 9:
		op_prime_import(r);
		break;
	case 10:
		op_so_create(r);
		break;
	case 11:
		op_so_destroy(r);
		break;
	case 12:
		op_so_wait(r, false);
		break;
	case 13:
		op_so_wait(r, true);
		break;
	case 14:
		op_so_reset_signal(r, false);
		break;
	case 15:
		op_so_reset_signal(r, true);
		break;
	case 16:
		op_so_tl_signal(r);
		break;
	case 17:
		op_so_query(r);
		break;
	case 18:
		op_so_transfer(r);
		break;
	case 19:
		op_so_h2fd(r);
		break;
	case 20:
		op_so_fd2h(r);
		break;
	case 21:
		op_so_eventfd(r);
		break;
	case 22:
		op_version(r);
		break;
	case 23:
		op_get_cap(r);
		break;
	case 24:
		op_bad_ioctl(r);
		break;
	case 25:
		op_mmap(r);
		break;
	case 26:
		op_munmap(r);
		break;
	case 27:
		op_touch(r);
		break;
	case 28:
		op_recanary(r);
		break;
	case 29:
		op_reopen(r);
		break;
	case 30:
		op_fork(r);
		break;
	case 31:
		op_send(r);
		break;
	case 32:
		op_recv(r);
		break;
	case 33:
		op_vgem(r);
		break;
	case 34:
		op_inject(r);
		break;
	case 35:
		op_chaos(r);
		break;
	case 36:
		op_publish(r);
		break;
	case 37:
		op_job_tracked(r, jf, 0);
		break;
	case 38:
		op_job_tracked(r, jf, 1);
		break;
	case 39:
		op_job_tracked(r, jf, 2);
		break;
	case 40:
		op_job_tracked(r, jf, 3);
		break;
	case 41:
		op_job_wild(r);
		break;
	case 42:
		op_job_compute(r);
		break;
	case 43:
		op_submit_invalid(r);
		break;
	default:
		count(K_RETIRE, 0);
		retire_oldest(kWaitBudgetNs);
		break;
	}
}

void Worker::setup()
{
	bad_.init();
	if (pipe2(pipe_, O_CLOEXEC | O_NONBLOCK))
		pipe_[0] = pipe_[1] = -1;
	evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	/* the userptr arena */
	Arena &a = arena_;
	a.len = (kArenaRw + kArenaRo + kArenaZero + 4) * kPage;
	void *base = mmap(nullptr, a.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base != MAP_FAILED) {
		a.base = static_cast<uint8_t *>(base);
		a.guard = a.base;
		a.rw = a.base + kPage;
		a.ro = a.rw + (kArenaRw + 1) * kPage;
		a.zero = a.ro + (kArenaRo + 1) * kPage;
		a.memfd = memfd_create("refnpu-fuzz-arena", MFD_CLOEXEC);
		bool ok = a.memfd >= 0 && !ftruncate(a.memfd, kArenaRo * kPage);
		ok = ok && mmap(a.rw, kArenaRw * kPage, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
		ok = ok && mmap(a.ro, kArenaRo * kPage, PROT_READ, MAP_SHARED | MAP_FIXED, a.memfd,
				0) != MAP_FAILED;
		void *alias = ok ? mmap(nullptr, kArenaRo * kPage, PROT_READ | PROT_WRITE,
					MAP_SHARED, a.memfd, 0)
				 : MAP_FAILED;
		ok = ok && alias != MAP_FAILED;
		ok = ok && mmap(a.zero, kArenaZero * kPage, PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
		if (ok) {
			a.ro_alias = static_cast<uint8_t *>(alias);
			Rng r(seed_ ^ 0xa5a5);
			a.rw_mem = new_mem(MemKind::Arena, kArenaRw * kPage);
			a.rw_mem->cpu = a.rw;
			a.rw_mem->cpu_writable = true;
			a.ro_mem = new_mem(MemKind::Arena, kArenaRo * kPage);
			a.ro_mem->cpu = a.ro_alias;
			a.ro_mem->cpu_writable = true;
			a.ro_mem->dev_ro = true;
			cpu_rewrite(r, *a.rw_mem, 0, a.rw_mem->size);
			cpu_rewrite(r, *a.ro_mem, 0, a.ro_mem->size);
		} else {
			a.rw = nullptr;
		}
	}
	for (int f = 0; f < NUM_FILES; f++)
		if (f != F_PEER || !dev.peer_path.empty())
			open_file(f);
}

void Worker::teardown()
{
	int64_t end = now_ns() + 1000000000LL;
	while (!pending_.empty() && now_ns() < end)
		if (!retire_oldest(std::min<int64_t>(end - now_ns(), kWaitBudgetNs)) &&
		    now_ns() >= end)
			break;
	int64_t t1 = now_ns();
	reap_children(true);
	int64_t t2 = now_ns();
	for (int f = 0; f < NUM_FILES; f++)
		close_file(f, false);
	int64_t t3 = now_ns();
	for (auto &m : maps_)
		munmap(m.p, m.len);
	maps_.clear();
	for (auto &d : dmabufs_)
		close(d.fd);
	dmabufs_.clear();
	for (auto &x : auxfds_)
		close(x.fd);
	auxfds_.clear();
	orphans_.clear();
	foreign_.clear();
	handles_.clear();
	if (vgem_fd_ >= 0)
		close(vgem_fd_);
	if (evfd_ >= 0)
		close(evfd_);
	for (int p : pipe_)
		if (p >= 0)
			close(p);
	arena_.rw_mem.reset();
	arena_.ro_mem.reset();
	if (arena_.base)
		munmap(arena_.base, arena_.len);
	if (arena_.ro_alias)
		munmap(arena_.ro_alias, kArenaRo * kPage);
	if (arena_.memfd >= 0)
		close(arena_.memfd);
	int64_t t4 = now_ns();
	if (t4 - (end - 1000000000LL) > 2000000000LL)
		emit(strf("refnpu-ioctl-fuzz: worker %d teardown: jobs %.2f s, children %.2f s, "
			  "files %.2f s, the rest %.2f s",
			  id_, double(t1 - (end - 1000000000LL)) / 1e9, double(t2 - t1) / 1e9,
			  double(t3 - t2) / 1e9, double(t4 - t3) / 1e9));
}

/*
 * Operations stop early enough for the teardown (waiting for the last
 * jobs, reaping children, closing everything) to end by @deadline.
 */
void Worker::run(int64_t start, int64_t deadline, uint64_t ops)
{
	int64_t reserve = std::min<int64_t>(2000000000LL, (deadline - start) / 20);
	int64_t stop = deadline - reserve;

	deadline_ = deadline;
	setup();
	for (uint64_t i = 0;; i++) {
		if ((ops && i >= ops) || now_ns() >= stop)
			break;
		opno_ = i;
		Rng r(seed_ ^ (i * 0xd1b54a32d192ed03ULL));
		step(r);
		reap_children(false);
	}
	int64_t t = now_ns();
	teardown();
	t = now_ns() - t;
	uint64_t prev = shared->teardown_max_ns.load();
	while (uint64_t(t) > prev && !shared->teardown_max_ns.compare_exchange_weak(prev, t)) { }
	shared->workers_done++;
}

} // namespace

/* ---- main --------------------------------------------------------------- */

namespace {

const char *usage_text =
	"usage: refnpu-ioctl-fuzz [options]\n"
	"  --seed N          main seed (default: from the clock); always printed first\n"
	"  --duration S      stop after S seconds (default 60)\n"
	"  --ops N           stop each worker after N operations (0: no limit)\n"
	"  --threads T       worker threads per process (default 3)\n"
	"  --procs P         worker processes (default 2)\n"
	"  --device PATH     refnpu node (default: the first /dev/accel/accel*)\n"
	"  --peer PATH|none  second refnpu node for cross-device PRIME (default: auto)\n"
	"  --mem-mb N        BO memory per worker (default 8)\n"
	"  --no-fork         no fork operations\n"
	"  --no-inject       no debugfs delay injection\n"
	"  --inject-errors   also inject job errors (job results are then not predicted)\n"
	"  --unsafe-core-ioctls  also issue core ioctls that need a DRM master\n"
	"                    (GET_MAGIC, GET_UNIQUE)\n"
	"  --lenient-same-entity  accept -ECANCELED for a job whose in-fence is a failed\n"
	"                    job of its own file, queue and priority (the header says it\n"
	"                    is not cancelled; the driver cancels it): a warning, not a\n"
	"                    violation\n"
	"  --regress FILE    run each 'seed ops [procs threads]' line of FILE (default:\n"
	"                    one worker)\n"
	"  --verbose         print every operation\n"
	"  --list-errnos     print the errno tables and the policy, then exit\n"
	"With --threads 1 --procs 1 the operations depend only on --seed: a worker's\n"
	"failure replays with --procs 1 --threads 1 --seed <its seed> --ops <n>.\n";

void print_policy()
{
	emit("refnpu-ioctl-fuzz: errno policy: a result the arguments call for passes; "
	     "a documented errno other than the one called for, success where an error "
	     "is due, or an errno missing from the call's table is a violation; "
	     "ENOMEM/ENOSPC/EMFILE/ENFILE pass where documented");
}

void print_tables()
{
	print_policy();
	for (int k = 0; k < NUM_KINDS; k++) {
		std::string s = strf("  %-24s [%s]", kind_table[k].name, kind_table[k].source);
		for (int e : kind_table[k].errnos)
			s += std::string(" -") + errname(e);
		emit(s);
	}
	std::string s = "  job fence status         [refnpu_accel.h]";
	for (int e : job_errnos)
		s += std::string(" -") + errname(e);
	emit(s);
}

std::string first_accel()
{
	std::vector<std::pair<int, std::string>> v;
	std::error_code ec;
	for (auto &e : fs::directory_iterator("/dev/accel", ec)) {
		std::string n = e.path().filename().string();
		if (n.rfind("accel", 0) == 0 && n.size() > 5)
			v.push_back({atoi(n.c_str() + 5), e.path().string()});
	}
	std::sort(v.begin(), v.end());
	return v.empty() ? "" : v.front().second;
}

std::string drm_name(int fd)
{
	char name[64] = {};
	drm_version v = {};
	v.name = name;
	v.name_len = sizeof(name) - 1;
	if (sys_ioctl(fd, DRM_IOCTL_VERSION, &v))
		return "";
	return name;
}

bool has_cap(int cap)
{
	struct {
		uint32_t version;
		int pid;
	} hdr = {0x20080522, 0};
	struct {
		uint32_t effective, permitted, inheritable;
	} data[2] = {};
	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1u << (cap % 32));
}

bool probe_device()
{
	if (opt.device.empty())
		opt.device = first_accel();
	int fd = open(opt.device.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		emit("refnpu-ioctl-fuzz: cannot open " + opt.device + ": " + strerror(errno));
		return false;
	}
	auto param = [&](uint32_t p, uint64_t def) {
		drm_refnpu_get_param g = {};
		g.param = p;
		return sys_ioctl(fd, DRM_IOCTL_REFNPU_GET_PARAM, &g) ? def : g.value;
	};
	dev.num_queues = uint32_t(param(DRM_REFNPU_PARAM_NUM_QUEUES, 1));
	dev.va_start = param(DRM_REFNPU_PARAM_VA_START, kVaStartDefault);
	dev.va_size = param(DRM_REFNPU_PARAM_VA_SIZE, 0);
	dev.max_bo = param(DRM_REFNPU_PARAM_MAX_BO_SIZE, 1ULL << 30);
	dev.max_bos = uint32_t(param(DRM_REFNPU_PARAM_MAX_SUBMIT_BOS, 1024));
	dev.max_syncs = uint32_t(param(DRM_REFNPU_PARAM_MAX_SUBMIT_SYNCS, 64));
	dev.caps = param(DRM_REFNPU_PARAM_CAPABILITIES, 0);
	dev.hw_caps = param(DRM_REFNPU_PARAM_HW_CAPS, 0);
	dev.ops_mask = param(DRM_REFNPU_PARAM_OPS, 0);
	dev.job_timeout_ms = param(DRM_REFNPU_PARAM_JOB_TIMEOUT_MS, 5000);
	std::string name = drm_name(fd);
	close(fd);
	if (name != "refnpu") {
		emit("refnpu-ioctl-fuzz: " + opt.device + " is not refnpu (" + name + ")");
		return false;
	}
	dev.cap_sys_nice = has_cap(23);
	dev.cap_ipc_lock = has_cap(14);
	dev.root = has_cap(21); /* CAP_SYS_ADMIN: accel files are authenticated */

	std::error_code ec;
	if (opt.peer == "auto") {
		std::vector<std::string> nodes;
		for (auto &e : fs::directory_iterator("/dev/accel", ec))
			nodes.push_back(e.path().string());
		std::sort(nodes.begin(), nodes.end());
		struct stat ds = {};
		stat(opt.device.c_str(), &ds);
		for (auto &n : nodes) {
			struct stat ns = {};
			if (stat(n.c_str(), &ns) || ns.st_rdev == ds.st_rdev)
				continue;
			int pfd = open(n.c_str(), O_RDWR | O_CLOEXEC);
			if (pfd < 0)
				continue;
			if (drm_name(pfd) == "refnpu")
				dev.peer_path = n;
			close(pfd);
			if (!dev.peer_path.empty())
				break;
		}
	} else if (opt.peer != "none") {
		dev.peer_path = opt.peer;
	}
	std::vector<std::string> cards;
	for (auto &e : fs::directory_iterator("/dev/dri", ec))
		if (e.path().filename().string().rfind("card", 0) == 0)
			cards.push_back(e.path().string());
	std::sort(cards.begin(), cards.end());
	for (auto &c : cards) {
		int vfd = open(c.c_str(), O_RDWR | O_CLOEXEC);
		if (vfd < 0)
			continue;
		if (drm_name(vfd) == "vgem")
			dev.vgem_path = c;
		close(vfd);
		if (!dev.vgem_path.empty())
			break;
	}
	/*
	 * Where every streaming mapping bounces (swiotlb=force), an import is
	 * coherent only if its exporter syncs it, and vgem does not
	 * (Documentation/dma-buf.rst): no vgem imports there.
	 */
	if (!dev.vgem_path.empty() && refnpu_test::dma_always_bounced()) {
		emit("refnpu-ioctl-fuzz: DMA always bounced (swiotlb=force): no vgem imports, "
		     "vgem does not sync what it exports");
		dev.vgem_path.clear();
	}
	if (opt.inject && (dev.hw_caps & REFNPU_CAP_FAULT_INJECT)) {
		fs::path d =
			fs::path("/sys/class/accel") / fs::path(opt.device).filename() / "device";
		fs::path target = fs::canonical(d, ec);
		if (!ec) {
			fs::path p =
				fs::path("/sys/kernel/debug/accel") / target.filename() / "inject";
			if (access(p.c_str(), W_OK) == 0)
				dev.inject_path = p.string();
		}
	}
	return true;
}

/* One worker process: its threads, its chaos file, its mailbox. */
[[noreturn]] void proc_main(int p, int inbox, int outbox, uint64_t seed, int64_t start,
			    int64_t deadline)
{
	ProcState ps;
	ps.index = p;
	ps.inbox = inbox;
	ps.outbox = outbox;
	ps.chaos_fd = open(opt.device.c_str(), O_RDWR | O_CLOEXEC);
	std::vector<std::thread> threads;
	for (int t = 0; t < opt.threads; t++) {
		int id = p * opt.threads + t;
		threads.emplace_back([&, id] {
			Worker w(id, worker_seed(seed, id), &ps, false);
			w.run(start, deadline, opt.ops);
		});
	}
	for (auto &t : threads)
		t.join();
	_exit(0);
}

std::string hist(const Counter *c)
{
	std::string s;
	for (int e = 0; e < kErrSlots; e++) {
		uint64_t n = c[e].load();
		if (!n)
			continue;
		s += strf(" %s%s:%" PRIu64, e ? "-" : "", e == kErrSlots - 1 ? "other" : errname(e),
			  n);
	}
	return s;
}

void summary(double secs)
{
	uint64_t total = 0;
	emit("refnpu-ioctl-fuzz: summary (operations, results by errno)");
	for (int k = 0; k < NUM_KINDS; k++) {
		uint64_t n = shared->ops[k].load();
		total += n;
		if (!n)
			continue;
		emit(strf("  %-24s %9" PRIu64 " ", kind_table[k].name, n) + hist(shared->errs[k]) +
		     (shared->viol_kind[k]
			      ? strf("  VIOLATIONS %" PRIu64, shared->viol_kind[k].load())
			      : std::string()));
	}
	emit(strf("refnpu-ioctl-fuzz: %" PRIu64 " operations in %.1f s (%.0f/s), longest "
		  "teardown %.2f s",
		  total, secs, secs > 0 ? double(total) / secs : 0.0,
		  double(shared->teardown_max_ns.load()) / 1e9));
	emit(strf("refnpu-ioctl-fuzz: jobs submitted %" PRIu64 ", succeeded %" PRIu64
		  ", failed as expected %" PRIu64 ", abandoned %" PRIu64 ", slow %" PRIu64
		  ", submits rejected %" PRIu64 ", stopped by a reset %" PRIu64,
		  shared->jobs_submitted.load(), shared->jobs_ok.load(),
		  shared->jobs_failed_expected.load(), shared->jobs_abandoned.load(),
		  shared->jobs_slow.load(), shared->submits_rejected.load(),
		  shared->jobs_reset_stopped.load()));
	emit("refnpu-ioctl-fuzz: job status" + hist(shared->jobs_status));
	emit(strf("refnpu-ioctl-fuzz: bytes verified %" PRIu64 ", pages tag-checked %" PRIu64
		  ", forks %" PRIu64 " (killed %" PRIu64 "), dma-bufs sent %" PRIu64
		  " received %" PRIu64 ", reopens %" PRIu64,
		  shared->bytes_verified.load(), shared->pages_tag_checked.load(),
		  shared->forks.load(), shared->kills.load(), shared->dmabufs_sent.load(),
		  shared->dmabufs_received.load(), shared->reopens.load()));
	uint64_t w = shared->warnings.load();
	emit(strf("refnpu-ioctl-fuzz: warnings (issues accepted by an option): %" PRIu64, w));
	for (int k = 0; k < NUM_KINDS; k++)
		if (hist(shared->warns[k]).size())
			emit(strf("  %-24s", kind_table[k].name) + hist(shared->warns[k]));
	for (auto &ex : shared->examples)
		if (ex.state.load() == 2)
			emit(std::string("    e.g. ") + ex.text);
	print_policy();
}

int run_workers(uint64_t seed, int procs, int threads, uint64_t ops, double duration)
{
	int saved_p = opt.procs, saved_t = opt.threads;
	uint64_t saved_o = opt.ops;
	opt.procs = procs;
	opt.threads = threads;
	opt.ops = ops;
	for (int p = 0; p < procs; p++)
		for (int t = 0; t < threads; t++) {
			int id = p * threads + t;
			emit(strf(
				"refnpu-ioctl-fuzz: worker %d (process %d thread %d) seed %" PRIu64,
				id, p, t, worker_seed(seed, id)));
		}
	int64_t start = now_ns();
	int64_t deadline = start + int64_t(duration * 1e9);
	std::vector<std::array<int, 2>> sv(procs);
	for (auto &s : sv)
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, s.data())) {
			emit(strf("refnpu-ioctl-fuzz: FAIL: socketpair(AF_UNIX): %s: dma-bufs "
				  "cannot pass between the processes",
				  strerror(errno)));
			std::exit(2);
		}
	std::vector<pid_t> pids;
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid == 0)
			proc_main(p, sv[p][0], sv[(p + 1) % procs][1], seed, start, deadline);
		pids.push_back(pid);
	}
	for (auto &s : sv) {
		close(s[0]);
		close(s[1]);
	}
	int64_t hard = deadline + 30 * 1000000000LL;
	size_t left = pids.size();
	uint64_t done0 = shared->workers_done.load();
	while (left) {
		int st;
		pid_t w = waitpid(-1, &st, WNOHANG);
		if (w > 0) {
			auto it = std::find(pids.begin(), pids.end(), w);
			if (it == pids.end())
				continue;
			left--;
			int p = int(it - pids.begin());
			*it = -1;
			if (WIFSIGNALED(st)) {
				shared->violations++;
				emit(strf("refnpu-ioctl-fuzz: VIOLATION worker process %d died by "
					  "signal %d (%s)",
					  p, WTERMSIG(st), strsignal(WTERMSIG(st))));
			} else if (WIFEXITED(st) && WEXITSTATUS(st)) {
				shared->violations++;
				emit(strf(
					"refnpu-ioctl-fuzz: VIOLATION worker process %d exited %d",
					p, WEXITSTATUS(st)));
			}
			continue;
		}
		if (now_ns() > hard) {
			for (size_t p = 0; p < pids.size(); p++) {
				if (pids[p] <= 0)
					continue;
				shared->violations++;
				emit(strf("refnpu-ioctl-fuzz: VIOLATION worker process %zu still "
					  "running 30 s after the deadline: killed",
					  p));
				kill(pids[p], SIGKILL);
			}
			hard = INT64_MAX;
		}
		usleep(20000);
	}
	uint64_t done = shared->workers_done.load() - done0;
	if (done != uint64_t(procs * threads)) {
		shared->violations++;
		emit(strf("refnpu-ioctl-fuzz: VIOLATION only %" PRIu64 " of %d workers finished "
			  "(a thread killed inside the kernel?)",
			  done, procs * threads));
	}
	opt.procs = saved_p;
	opt.threads = saved_t;
	opt.ops = saved_o;
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto val = [&]() -> std::string {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s needs a value\n%s", a.c_str(), usage_text);
				exit(2);
			}
			return argv[++i];
		};
		if (a == "--seed") {
			opt.seed = strtoull(val().c_str(), nullptr, 0);
			opt.seed_given = true;
		} else if (a == "--duration") {
			opt.duration = atof(val().c_str());
		} else if (a == "--ops") {
			opt.ops = strtoull(val().c_str(), nullptr, 0);
		} else if (a == "--threads") {
			opt.threads = std::clamp(atoi(val().c_str()), 1, 16);
		} else if (a == "--procs") {
			opt.procs = std::clamp(atoi(val().c_str()), 1, kMaxProcs);
		} else if (a == "--device") {
			opt.device = val();
		} else if (a == "--peer") {
			opt.peer = val();
		} else if (a == "--mem-mb") {
			opt.mem_budget = strtoull(val().c_str(), nullptr, 0) << 20;
		} else if (a == "--regress") {
			opt.regress = val();
		} else if (a == "--verbose") {
			opt.verbose = true;
		} else if (a == "--no-fork") {
			opt.fork_ops = false;
		} else if (a == "--no-inject") {
			opt.inject = false;
		} else if (a == "--inject-errors") {
			opt.inject_errors = true;
		} else if (a == "--unsafe-core-ioctls") {
			opt.unsafe_core = true;
		} else if (a == "--lenient-same-entity") {
			opt.lenient_same_entity = true;
		} else if (a == "--list-errnos") {
			opt.list = true;
		} else if (a == "--help" || a == "-h") {
			fputs(usage_text, stdout);
			return 0;
		} else {
			fprintf(stderr, "unknown option %s\n%s", a.c_str(), usage_text);
			return 2;
		}
	}
	if (opt.list) {
		print_tables();
		return 0;
	}
	if (!opt.seed_given)
		opt.seed = uint64_t(now_ns()) ^ (uint64_t(getpid()) << 32);
	emit(strf("refnpu-ioctl-fuzz: seed %" PRIu64, opt.seed));
	if (opt.procs * opt.threads > kMaxWorkers) {
		emit("refnpu-ioctl-fuzz: too many workers");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	void *mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	shared = new (mem) Shared();
	if (!probe_device())
		return 1;
	emit(strf("refnpu-ioctl-fuzz: device %s (%u queues%s), peer %s, vgem %s, injection %s, "
		  "CAP_SYS_NICE %d, CAP_SYS_ADMIN %d",
		  opt.device.c_str(), dev.num_queues,
		  dev.caps & DRM_REFNPU_CAP_VIRTUAL ? ", in-kernel virtual device" : "",
		  dev.peer_path.empty() ? "none" : dev.peer_path.c_str(),
		  dev.vgem_path.empty() ? "none" : dev.vgem_path.c_str(),
		  dev.inject_path.empty() ? "off"
					  : (opt.inject_errors ? "delays and errors" : "delays"),
		  dev.cap_sys_nice, dev.root));
	print_policy();

	/*
	 * Fork and dma-buf passing between processes need AF_UNIX sockets
	 * (SCM_RIGHTS). Without them (a kernel without CONFIG_UNIX) both would
	 * silently not run, exactly under the kernels meant to catch their
	 * bugs: fail instead. --no-fork --procs 1 runs without them on purpose.
	 */
	if (opt.fork_ops || opt.procs > 1 || !opt.regress.empty()) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
			emit(strf("refnpu-ioctl-fuzz: FAIL: no AF_UNIX sockets (%s): fork and "
				  "dma-buf passing cannot run (a kernel without CONFIG_UNIX?); "
				  "--no-fork --procs 1 runs without them",
				  strerror(errno)));
			return 2;
		}
		close(sv[0]);
		close(sv[1]);
	}

	emit("refnpu-ioctl-fuzz: debugfs counters before:" + debugfs_counters());
	int64_t t0 = now_ns();
	if (!opt.regress.empty()) {
		std::ifstream in(opt.regress);
		if (!in) {
			emit("refnpu-ioctl-fuzz: cannot read " + opt.regress);
			return 2;
		}
		std::string line;
		while (std::getline(in, line)) {
			auto h = line.find('#');
			if (h != std::string::npos)
				line.resize(h);
			unsigned long long s, n;
			int procs = 1, threads = 1;
			int got = sscanf(line.c_str(), "%llu %llu %d %d", &s, &n, &procs, &threads);
			if (got < 2)
				continue;
			if (got == 3 || procs < 1 || threads < 1 || procs > kMaxWorkers ||
			    threads > kMaxWorkers || procs * threads > kMaxWorkers) {
				emit("refnpu-ioctl-fuzz: bad line in " + opt.regress + ": " + line);
				return 2;
			}
			emit(strf(
				"refnpu-ioctl-fuzz: regress seed %llu ops %llu procs %d threads %d",
				s, n, procs, threads));
			run_workers(s, procs, threads, n, opt.duration);
		}
	} else {
		run_workers(opt.seed, opt.procs, opt.threads, opt.ops, opt.duration);
	}
	summary(double(now_ns() - t0) / 1e9);
	emit("refnpu-ioctl-fuzz: debugfs counters after:" + debugfs_counters());
	uint64_t v = shared->violations.load();
	if (v) {
		emit(strf("refnpu-ioctl-fuzz: FAIL (%" PRIu64 " violations)", v));
		return 1;
	}
	emit("refnpu-ioctl-fuzz: PASS");
	return 0;
}
