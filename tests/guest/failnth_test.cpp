// SPDX-License-Identifier: MIT
/*
 * refnpu allocation-failure suite: every way into the driver runs with the
 * Nth memory allocation of the calling task failing, through
 * /proc/thread-self/fail-nth (Documentation/fault-injection/), for
 * N = 1, 2, ... until a run in which nothing was failed.
 *
 * Each run that had an allocation failed must either succeed anyway (the
 * allocation had a fallback) or fail with -ENOMEM and leave no trace: the
 * file's handles, syncobjs, memory (fdinfo drm-total-memory), the
 * process's file descriptors and the device's dma-bufs are as before, the
 * BOs a failed job would have written are untouched, and the same call
 * then succeeds. The VM harness fails the run on any kernel splat and
 * reads kmemleak at the end, so a leak on any error path fails too.
 *
 * Needs a kernel with CONFIG_FAULT_INJECTION, CONFIG_FAILSLAB,
 * CONFIG_FAIL_PAGE_ALLOC and CONFIG_FAULT_INJECTION_DEBUG_FS (the debug
 * kernel); every test skips elsewhere.
 */
#include <fcntl.h>
#include <linux/udmabuf.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xf86drm.h>

#include "guest_util.h"
#include "refnpu_accel.h"
#include "refnpu_hw.h"

namespace {

namespace fs = std::filesystem;
using refnpu_test::Fd;
using refnpu_test::now_ns;
using refnpu_test::xioctl;

const char *node_path()
{
	const char *env = std::getenv("REFNPU_NODE");
	return env ? env : "/dev/accel/accel0";
}

/* The raw call: no retry on EINTR, so that the errno seen is the driver's. */
int raw_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

bool write_file(const std::string &path, const std::string &text)
{
	std::ofstream f(path);
	f << text;
	f.flush();
	return bool(f);
}

std::string read_file(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

/*
 * The task's fail-nth file. Failures are armed for slab and page
 * allocations that may sleep, of every order, which the fault-injection
 * defaults leave out (they would fail almost nothing a driver allocates).
 */
class FailNth
{
public:
	bool open_self()
	{
		fd_.reset(open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC));
		return fd_.get() >= 0;
	}

	static bool configure()
	{
		const std::string dbg = "/sys/kernel/debug/";

		return write_file(dbg + "failslab/ignore-gfp-wait", "N") &&
		       write_file(dbg + "failslab/verbose", "0") &&
		       write_file(dbg + "fail_page_alloc/ignore-gfp-wait", "N") &&
		       write_file(dbg + "fail_page_alloc/ignore-gfp-highmem", "N") &&
		       write_file(dbg + "fail_page_alloc/min-order", "0") &&
		       write_file(dbg + "fail_page_alloc/verbose", "0");
	}

	/* Make the task's @n-th allocation from now on fail (0: none). */
	void arm(unsigned int n)
	{
		char buf[16];
		int len = snprintf(buf, sizeof(buf), "%u", n);

		if (pwrite(fd_.get(), buf, len, 0) != len)
			std::abort();
	}

	/* Whether the armed failure was injected; disarms. */
	bool fired()
	{
		char buf[16] = {};

		if (pread(fd_.get(), buf, sizeof(buf) - 1, 0) <= 0)
			std::abort();
		bool done = std::atoi(buf) == 0;
		arm(0);
		return done;
	}

private:
	Fd fd_;
};

/* What a failed call must leave unchanged. */
struct State {
	std::set<uint32_t> bos;
	std::set<uint32_t> syncobjs;
	std::string memory;
	size_t fds = 0;
	size_t dmabufs = 0;

	bool operator==(const State &) const = default;
};

std::ostream &operator<<(std::ostream &os, const State &s)
{
	os << "{bos:";
	for (uint32_t h : s.bos)
		os << ' ' << h;
	os << ", syncobjs:";
	for (uint32_t h : s.syncobjs)
		os << ' ' << h;
	return os << ", memory: " << s.memory << ", fds: " << s.fds << ", dma-bufs: " << s.dmabufs
		  << "}";
}

/* Handles are the lowest free numbers: probing the first 64 finds all. */
constexpr uint32_t kProbe = 64;

State snapshot(int fd)
{
	State s;

	for (uint32_t h = 1; h <= kProbe; h++) {
		drm_refnpu_bo_info i = {};
		i.handle = h;
		if (!xioctl(fd, DRM_IOCTL_REFNPU_BO_INFO, &i))
			s.bos.insert(h);

		drm_syncobj_wait w = {};
		w.handles = reinterpret_cast<uintptr_t>(&h);
		w.count_handles = 1;
		w.timeout_nsec = 0;
		if (xioctl(fd, DRM_IOCTL_SYNCOBJ_WAIT, &w) != -ENOENT)
			s.syncobjs.insert(h);
	}

	std::istringstream info(read_file("/proc/self/fdinfo/" + std::to_string(fd)));
	for (std::string line; std::getline(info, line);)
		if (line.rfind("drm-total-memory", 0) == 0)
			s.memory = line;

	for (auto &e : fs::directory_iterator("/proc/self/fd")) {
		(void)e;
		s.fds++;
	}

	std::istringstream bufs(read_file("/sys/kernel/debug/dma_buf/bufinfo"));
	for (std::string line; std::getline(bufs, line);)
		if (line.find("Total ") == 0)
			s.dmabufs = std::strtoul(line.c_str() + 6, nullptr, 10);
	return s;
}

Fd open_node()
{
	return Fd(open(node_path(), O_RDWR | O_CLOEXEC));
}

uint32_t bo_create(int fd, uint64_t size, uint32_t flags, uint64_t *va = nullptr)
{
	drm_refnpu_bo_create c = {};

	c.size = size;
	c.flags = flags;
	EXPECT_EQ(xioctl(fd, DRM_IOCTL_REFNPU_BO_CREATE, &c), 0);
	if (va)
		*va = c.va;
	return c.handle;
}

void gem_close(int fd, uint32_t handle)
{
	drm_gem_close c = {};

	c.handle = handle;
	EXPECT_EQ(xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c), 0);
}

void *bo_mmap(int fd, uint32_t handle, uint64_t size)
{
	drm_refnpu_bo_info i = {};

	i.handle = handle;
	EXPECT_EQ(xioctl(fd, DRM_IOCTL_REFNPU_BO_INFO, &i), 0);
	void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, i.mmap_offset);
	EXPECT_NE(p, MAP_FAILED);
	return p == MAP_FAILED ? nullptr : p;
}

int bo_wait(int fd, uint32_t handle, int32_t *status)
{
	drm_refnpu_bo_wait w = {};

	w.handle = handle;
	w.timeout_ns = now_ns() + 60LL * 1000000000;
	int ret = xioctl(fd, DRM_IOCTL_REFNPU_BO_WAIT, &w);
	if (status)
		*status = w.status;
	return ret;
}

class FailNthTest : public ::testing::Test
{
protected:
	void SetUp() override
	{
		if (access("/proc/self/fail-nth", F_OK))
			GTEST_SKIP() << "kernel without fault injection (CONFIG_FAULT_INJECTION)";
		if (access("/sys/kernel/debug/failslab", F_OK) ||
		    access("/sys/kernel/debug/fail_page_alloc", F_OK))
			GTEST_SKIP() << "kernel without FAILSLAB/FAIL_PAGE_ALLOC debugfs";
		fd_ = open_node();
		if (fd_.get() < 0)
			GTEST_SKIP() << "no device at " << node_path();
		ASSERT_TRUE(FailNth::configure());
		ASSERT_TRUE(fail_.open_self());
	}

	/*
	 * Runs @op with the Nth allocation failing, N = 1, 2, ..., until a run
	 * that had none failed (which must succeed). @op returns 0 or -errno;
	 * @undo reverts a successful @op; @check looks at what a failed run
	 * left, beyond the file's state, which must be as before. @prepare
	 * runs before each run, unarmed, and @cleanup after it (after @undo),
	 * for calls that need a fresh object each time. With @stride > 1,
	 * for a call whose allocations are mostly one loop (the pages of a
	 * large BO), N runs through the first kHead allocations, then every
	 * @stride-th, then the last kTail: a run costs N allocations, so
	 * failing each of a 2 MiB BO's ~950 would take minutes under the
	 * debug kernel, and allocation k of one loop fails the same way for
	 * every k. Returns the number of allocations the call made.
	 */
	unsigned int exhaust(const char *what, const std::function<int()> &op,
			     const std::function<void()> &undo,
			     const std::function<void()> &check = nullptr,
			     const std::function<void()> &prepare = nullptr,
			     const std::function<void()> &cleanup = nullptr,
			     unsigned int stride = 1)
	{
		static constexpr unsigned int kHead = 64, kTail = 32;
		auto pre = [&] {
			if (prepare)
				prepare();
		};
		auto post = [&] {
			if (cleanup)
				cleanup();
		};

		/* A first run: warms up the pages and paths the call touches. */
		State before = snapshot(fd_.get());
		pre();
		EXPECT_EQ(op(), 0) << what << " fails without fault injection";
		undo();
		post();
		EXPECT_EQ(snapshot(fd_.get()), before) << what << ": undo left something behind";

		/* One run with allocation @n failing; false when none failed. */
		auto attempt = [&](unsigned int n) {
			pre();
			fail_.arm(n);
			int ret = op();
			bool fired = fail_.fired();

			if (!fired) {
				EXPECT_EQ(ret, 0)
					<< what << ": nothing failed, yet " << strerror(-ret);
				undo();
				post();
				return false;
			}
			if (!ret) {
				/* The failed allocation had a fallback. */
				undo();
			} else {
				EXPECT_TRUE(ret == -ENOMEM || (core_errno_ && ret == core_errno_))
					<< what << " with allocation " << n
					<< " failed: " << strerror(-ret);
				if (check)
					check();
			}
			post();
			State after = snapshot(fd_.get());
			EXPECT_EQ(after, before) << what << " with allocation " << n << " failed";
			return true;
		};

		unsigned int last = 0, tried = 0;
		for (unsigned int n = 1; n < 20000; n += n < kHead ? 1 : stride) {
			if (attempt(n)) {
				last = n;
				tried++;
				if (::testing::Test::HasFailure())
					return n;
				continue;
			}
			/*
			 * Past the end: the last kTail allocations, each once
			 * (a run may make a few fewer: stop where none fails).
			 */
			for (unsigned int m = std::max(last + 1, n > kTail ? n - kTail : 1);
			     m < n && attempt(m); m++) {
				tried++;
				if (::testing::Test::HasFailure())
					return m;
			}
			std::cout << "[ fail-nth ] " << what << ": " << n - 1 << " allocations, "
				  << (tried == n - 1 ? std::string("each")
						     : std::to_string(tried) + " of them")
				  << " failed once\n";
			return n - 1;
		}
		ADD_FAILURE() << what << ": more than 20000 allocations";
		return 0;
	}

	Fd fd_;
	FailNth fail_;
	/*
	 * Besides -ENOMEM, the errno a DRM core path is known to return when
	 * an allocation fails (0: none), set around that one call, with the
	 * core function named where it is set.
	 */
	int core_errno_ = 0;
};

TEST_F(FailNthTest, OpenAndClose)
{
	int fd = -1;

	exhaust(
		"open",
		[&] {
			fd = open(node_path(), O_RDWR | O_CLOEXEC);
			return fd < 0 ? -errno : 0;
		},
		[&] {
			close(fd);
			fd = -1;
		});
}

TEST_F(FailNthTest, GetParam)
{
	drm_refnpu_get_param p = {};

	p.param = DRM_REFNPU_PARAM_CAPABILITIES;
	exhaust(
		"GET_PARAM", [&] { return raw_ioctl(fd_.get(), DRM_IOCTL_REFNPU_GET_PARAM, &p); },
		[] {});
}

TEST_F(FailNthTest, BoCreate)
{
	/*
	 * A page, a write-combined page, and 2 MiB (one 2 MiB device page:
	 * another page-table path; each of its 512 pages is one more
	 * allocation, so one large size is enough, and its allocations are
	 * sampled: see exhaust()).
	 */
	const std::pair<uint64_t, uint32_t> cases[] = {
		{4096, 0}, {4096, DRM_REFNPU_BO_WC}, {uint64_t(2) << 20, 0}};
	for (auto [size, flags] : cases) {
		drm_refnpu_bo_create c = {};

		exhaust(
			"BO_CREATE",
			[&] {
				c = {};
				c.size = size;
				c.flags = flags;
				return raw_ioctl(fd_.get(), DRM_IOCTL_REFNPU_BO_CREATE, &c);
			},
			[&] { gem_close(fd_.get(), c.handle); }, nullptr, nullptr, nullptr,
			size > 4096 ? 8 : 1);
	}
}

TEST_F(FailNthTest, BoInfoAndWait)
{
	uint32_t bo = bo_create(fd_.get(), 8192, 0);
	drm_refnpu_bo_info i = {};
	drm_refnpu_bo_wait w = {};

	exhaust(
		"BO_INFO",
		[&] {
			i = {};
			i.handle = bo;
			return raw_ioctl(fd_.get(), DRM_IOCTL_REFNPU_BO_INFO, &i);
		},
		[] {});
	exhaust(
		"BO_WAIT",
		[&] {
			w = {};
			w.handle = bo;
			w.timeout_ns = now_ns() + 1000000000;
			return raw_ioctl(fd_.get(), DRM_IOCTL_REFNPU_BO_WAIT, &w);
		},
		[] {});
	gem_close(fd_.get(), bo);
}

TEST_F(FailNthTest, Userptr)
{
	const size_t size = 16 * 4096;
	void *mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	memset(mem, 0x5a, size);
	drm_refnpu_bo_userptr u = {};

	for (uint32_t flags : {0u, uint32_t(DRM_REFNPU_BO_DEVICE_RO)}) {
		exhaust(
			"BO_USERPTR",
			[&] {
				u = {};
				u.user_ptr = reinterpret_cast<uintptr_t>(mem);
				u.size = size;
				u.flags = flags;
				return raw_ioctl(fd_.get(), DRM_IOCTL_REFNPU_BO_USERPTR, &u);
			},
			[&] { gem_close(fd_.get(), u.handle); });
	}
	munmap(mem, size);
}

TEST_F(FailNthTest, Mmap)
{
	const uint64_t size = 64 * 1024;
	uint32_t bo = bo_create(fd_.get(), size, 0);
	drm_refnpu_bo_info i = {};
	void *p = nullptr;

	i.handle = bo;
	ASSERT_EQ(xioctl(fd_.get(), DRM_IOCTL_REFNPU_BO_INFO, &i), 0);
	exhaust(
		"mmap",
		[&] {
			p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(),
				 i.mmap_offset);
			return p == MAP_FAILED ? -errno : 0;
		},
		[&] {
			/* Fault every page in, outside the armed window. */
			for (uint64_t off = 0; off < size; off += 4096)
				static_cast<volatile uint8_t *>(p)[off] = 1;
			munmap(p, size);
		});
	gem_close(fd_.get(), bo);
}

/*
 * A job with an in-syncobj, a binary and a timeline out-syncobj, a
 * command buffer and a destination BO. A failed SUBMIT must not have run
 * the job (the destination keeps its bytes) nor touched the out-syncobjs.
 */
TEST_F(FailNthTest, Submit)
{
	int fd = fd_.get();
	uint64_t cmd_va, dst_va;
	uint32_t cmd = bo_create(fd, 4096, 0, &cmd_va);
	uint32_t dst = bo_create(fd, 4096, 0, &dst_va);
	auto *cmd_map = static_cast<uint8_t *>(bo_mmap(fd, cmd, 4096));
	auto *dst_map = static_cast<uint32_t *>(bo_mmap(fd, dst, 4096));
	ASSERT_TRUE(cmd_map && dst_map);

	auto *fill = reinterpret_cast<refnpu_cmd_fill *>(cmd_map);
	memset(fill, 0, REFNPU_CMD_FILL_SIZE);
	fill->hdr.opcode = REFNPU_OP_FILL;
	fill->hdr.len_dw = REFNPU_CMD_FILL_SIZE / 4;
	fill->dst.va = dst_va;
	fill->dst.pitch = 4096;
	fill->rows = 1;
	fill->row_bytes = 4096;
	fill->pattern = 0xc0ffee11;
	fill->pattern_bytes = 4;

	uint32_t in_sync, out_bin, out_tl;
	ASSERT_EQ(drmSyncobjCreate(fd, DRM_SYNCOBJ_CREATE_SIGNALED, &in_sync), 0);
	ASSERT_EQ(drmSyncobjCreate(fd, 0, &out_bin), 0);
	ASSERT_EQ(drmSyncobjCreate(fd, 0, &out_tl), 0);

	drm_refnpu_bo_ref refs[2] = {{dst, DRM_REFNPU_BO_REF_WRITE}, {cmd, DRM_REFNPU_BO_REF_READ}};
	drm_refnpu_sync in[1] = {{in_sync, 0, 0}};
	uint64_t point = 0;
	drm_refnpu_sync out[2] = {{out_bin, 0, 0}, {out_tl, 0, 0}};
	drm_refnpu_submit s = {};

	auto reset = [&] {
		int32_t status;

		ASSERT_EQ(bo_wait(fd, dst, &status), 0);
		ASSERT_EQ(status, 0);
		memset(dst_map, 0, 4096);
		ASSERT_EQ(drmSyncobjReset(fd, &out_bin, 1), 0);
	};
	/* The timeline's last point, and whether the binary one has a fence. */
	auto check = [&] {
		uint64_t last = ~0ULL;

		EXPECT_EQ(drmSyncobjQuery2(fd, &out_tl, &last, 1,
					   DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED),
			  0);
		EXPECT_EQ(last, point) << "a failed SUBMIT added a timeline point";
		EXPECT_EQ(drmSyncobjWait(fd, &out_bin, 1, 0, DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
					 nullptr),
			  -ETIME)
			<< "a failed SUBMIT installed a fence";
		/* No job ran: had it been pushed, it would have run by now. */
		usleep(2000);
		EXPECT_EQ(dst_map[0], 0u) << "a failed SUBMIT ran its job";
	};

	exhaust(
		"SUBMIT",
		[&] {
			out[1].point = ++point;
			s = {};
			s.cmd_handle = cmd;
			s.cmd_size = REFNPU_CMD_FILL_SIZE;
			s.bos = reinterpret_cast<uintptr_t>(refs);
			s.bo_count = 2;
			s.bo_stride = sizeof(refs[0]);
			s.in_syncs = reinterpret_cast<uintptr_t>(in);
			s.in_sync_count = 1;
			s.in_sync_stride = sizeof(in[0]);
			s.out_syncs = reinterpret_cast<uintptr_t>(out);
			s.out_sync_count = 2;
			s.out_sync_stride = sizeof(out[0]);
			int ret = raw_ioctl(fd, DRM_IOCTL_REFNPU_SUBMIT, &s);
			if (ret)
				point--;
			return ret;
		},
		[&] {
			int32_t status;

			ASSERT_EQ(bo_wait(fd, dst, &status), 0);
			EXPECT_EQ(dst_map[0], 0xc0ffee11u) << "the job did not run";
			reset();
		},
		check);

	munmap(cmd_map, 4096);
	munmap(dst_map, 4096);
	drmSyncobjDestroy(fd, in_sync);
	drmSyncobjDestroy(fd, out_bin);
	drmSyncobjDestroy(fd, out_tl);
	gem_close(fd, cmd);
	gem_close(fd, dst);
}

TEST_F(FailNthTest, PrimeExportAndImport)
{
	int fd = fd_.get();
	uint32_t bo = bo_create(fd, 64 * 1024, 0);
	Fd other = open_node();
	ASSERT_GE(other.get(), 0);
	int dmabuf = -1;

	/* A fresh BO each time: a BO keeps its dma-buf once exported. */
	uint32_t fresh = 0;
	exhaust(
		"PRIME_HANDLE_TO_FD",
		[&] {
			int ret = drmPrimeHandleToFD(fd, fresh, DRM_CLOEXEC | DRM_RDWR, &dmabuf);
			return ret ? -errno : 0;
		},
		[&] { close(dmabuf); }, nullptr, [&] { fresh = bo_create(fd, 64 * 1024, 0); },
		[&] { gem_close(fd, fresh); });

	/* Into another file of the same device: a new mapping of the BO. */
	ASSERT_EQ(drmPrimeHandleToFD(fd, bo, DRM_CLOEXEC | DRM_RDWR, &dmabuf), 0);
	uint32_t imported = 0;
	auto other_state = snapshot(other.get());
	exhaust(
		"PRIME_FD_TO_HANDLE (same device)",
		[&] {
			int ret = drmPrimeFDToHandle(other.get(), dmabuf, &imported);
			return ret ? -errno : 0;
		},
		[&] { gem_close(other.get(), imported); },
		[&] {
			EXPECT_EQ(snapshot(other.get()), other_state)
				<< "the importing file changed";
		});
	close(dmabuf);
	gem_close(fd, bo);
}

TEST_F(FailNthTest, PrimeImportForeign)
{
	Fd dev(open("/dev/udmabuf", O_RDWR | O_CLOEXEC));
	if (dev.get() < 0)
		GTEST_SKIP() << "no /dev/udmabuf";
	const uint64_t size = 64 * 1024;
	Fd memfd(memfd_create("refnpu-failnth", MFD_ALLOW_SEALING | MFD_CLOEXEC));
	ASSERT_GE(memfd.get(), 0);
	ASSERT_EQ(ftruncate(memfd.get(), size), 0);
	ASSERT_EQ(fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
	udmabuf_create c = {};
	c.memfd = memfd.get();
	c.flags = UDMABUF_FLAGS_CLOEXEC;
	c.size = size;
	Fd dmabuf(ioctl(dev.get(), UDMABUF_CREATE, &c));
	ASSERT_GE(dmabuf.get(), 0);
	uint32_t handle = 0;

	exhaust(
		"PRIME_FD_TO_HANDLE (udmabuf)",
		[&] {
			int ret = drmPrimeFDToHandle(fd_.get(), dmabuf.get(), &handle);
			return ret ? -errno : 0;
		},
		[&] { gem_close(fd_.get(), handle); });
}

/*
 * Global names: GEM_FLINK of a fresh BO each time (a BO keeps its name),
 * and GEM_OPEN of a name into another file of the process, which maps
 * the BO into that file's address space through the driver's GEM open
 * hook. The suite runs as root, so both files may use names.
 */
TEST_F(FailNthTest, FlinkAndOpen)
{
	int fd = fd_.get();
	uint32_t fresh = 0;
	drm_gem_flink fl = {};

	exhaust(
		"GEM_FLINK",
		[&] {
			fl = {};
			fl.handle = fresh;
			return raw_ioctl(fd, DRM_IOCTL_GEM_FLINK, &fl);
		},
		[] {}, nullptr, [&] { fresh = bo_create(fd, 64 * 1024, 0); },
		[&] { gem_close(fd, fresh); });

	uint32_t bo = bo_create(fd, 64 * 1024, 0);
	fl = {};
	fl.handle = bo;
	ASSERT_EQ(xioctl(fd, DRM_IOCTL_GEM_FLINK, &fl), 0);
	Fd other = open_node();
	ASSERT_GE(other.get(), 0);
	auto other_state = snapshot(other.get());
	drm_gem_open op = {};
	exhaust(
		"GEM_OPEN",
		[&] {
			op = {};
			op.name = fl.name;
			int ret = raw_ioctl(other.get(), DRM_IOCTL_GEM_OPEN, &op);
			if (!ret && (op.size != 64 * 1024 || !op.handle))
				return -EPROTO;
			return ret;
		},
		[&] { gem_close(other.get(), op.handle); },
		[&] {
			EXPECT_EQ(snapshot(other.get()), other_state) << "the opening file changed";
		});
	gem_close(fd, bo);
}

/*
 * Every syncobj ioctl. They are the DRM core's, but they are how the
 * driver's fences reach user space, and an accel driver's users call
 * them on its files: a failed one must fail with -ENOMEM and change
 * nothing the file holds.
 */
TEST_F(FailNthTest, Syncobjs)
{
	int fd = fd_.get();
	uint32_t h = 0;

	for (uint32_t flags : {0u, uint32_t(DRM_SYNCOBJ_CREATE_SIGNALED)})
		exhaust(
			"SYNCOBJ_CREATE",
			[&] { return drmSyncobjCreate(fd, flags, &h) ? -errno : 0; },
			[&] { drmSyncobjDestroy(fd, h); });

	uint32_t bin = 0, tl = 0, dst = 0;
	ASSERT_EQ(drmSyncobjCreate(fd, DRM_SYNCOBJ_CREATE_SIGNALED, &bin), 0);
	ASSERT_EQ(drmSyncobjCreate(fd, 0, &tl), 0);
	ASSERT_EQ(drmSyncobjCreate(fd, 0, &dst), 0);
	uint64_t point = 1;
	ASSERT_EQ(drmSyncobjTimelineSignal(fd, &tl, &point, 1), 0);

	exhaust(
		"SYNCOBJ_DESTROY", [&] { return drmSyncobjDestroy(fd, h) ? -errno : 0; }, [] {},
		nullptr, [&] { ASSERT_EQ(drmSyncobjCreate(fd, 0, &h), 0); },
		[&] {
			/* A failed destroy leaves the syncobj: destroy it now. */
			drmSyncobjDestroy(fd, h);
		});

	int sfd = -1;
	exhaust(
		"SYNCOBJ_HANDLE_TO_FD",
		[&] { return drmSyncobjHandleToFD(fd, bin, &sfd) ? -errno : 0; },
		[&] { close(sfd); });
	ASSERT_EQ(drmSyncobjHandleToFD(fd, bin, &sfd), 0);
	Fd obj_fd(sfd);
	exhaust(
		"SYNCOBJ_FD_TO_HANDLE",
		[&] { return drmSyncobjFDToHandle(fd, obj_fd.get(), &h) ? -errno : 0; },
		[&] { drmSyncobjDestroy(fd, h); });

	/*
	 * drm_syncobj_export_sync_file() (drivers/gpu/drm/drm_syncobj.c, 6.12)
	 * fails with -EINVAL when sync_file_create() cannot allocate: the
	 * core's errno, not the driver's. Nothing else may differ.
	 */
	core_errno_ = -EINVAL;
	exhaust(
		"SYNCOBJ_HANDLE_TO_FD (sync_file)",
		[&] { return drmSyncobjExportSyncFile(fd, bin, &sfd) ? -errno : 0; },
		[&] { close(sfd); });
	core_errno_ = 0;
	ASSERT_EQ(drmSyncobjExportSyncFile(fd, bin, &sfd), 0);
	Fd sync_file(sfd);
	exhaust(
		"SYNCOBJ_FD_TO_HANDLE (sync_file)",
		[&] { return drmSyncobjImportSyncFile(fd, dst, sync_file.get()) ? -errno : 0; },
		[] {});

	exhaust(
		"SYNCOBJ_WAIT",
		[&] {
			return drmSyncobjWait(fd, &bin, 1, INT64_MAX,
					      DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL, nullptr)
				       ? -errno
				       : 0;
		},
		[] {});
	exhaust(
		"SYNCOBJ_TIMELINE_WAIT",
		[&] {
			uint64_t p = 1;
			return drmSyncobjTimelineWait(fd, &tl, &p, 1, INT64_MAX,
						      DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL, nullptr)
				       ? -errno
				       : 0;
		},
		[] {});
	exhaust(
		"SYNCOBJ_QUERY",
		[&] {
			uint64_t p = 0;
			int ret = drmSyncobjQuery(fd, &tl, &p, 1) ? -errno : 0;
			return !ret && p != point ? -EPROTO : ret;
		},
		[] {});
	exhaust(
		"SYNCOBJ_RESET", [&] { return drmSyncobjReset(fd, &dst, 1) ? -errno : 0; }, [] {});
	exhaust(
		"SYNCOBJ_SIGNAL", [&] { return drmSyncobjSignal(fd, &dst, 1) ? -errno : 0; },
		[] {});

	/*
	 * Calls that add timeline point point + 1: a failed one adds none, and
	 * the next run reuses the number.
	 */
	auto add_point = [&](const char *what, const std::function<int(uint64_t)> &call) {
		exhaust(
			what,
			[&] {
				int ret = call(point + 1) ? -errno : 0;
				if (!ret)
					point++;
				return ret;
			},
			[] {},
			[&] {
				uint64_t p = 0;
				EXPECT_EQ(drmSyncobjQuery(fd, &tl, &p, 1), 0);
				EXPECT_EQ(p, point) << "a failed " << what << " added a point";
			});
	};
	add_point("SYNCOBJ_TIMELINE_SIGNAL",
		  [&](uint64_t p) { return drmSyncobjTimelineSignal(fd, &tl, &p, 1); });
	exhaust(
		"SYNCOBJ_TRANSFER (timeline to binary)",
		[&] { return drmSyncobjTransfer(fd, dst, 0, tl, point, 0) ? -errno : 0; }, [] {});
	add_point("SYNCOBJ_TRANSFER (binary to timeline)",
		  [&](uint64_t p) { return drmSyncobjTransfer(fd, tl, p, bin, 0, 0); });

	Fd ev(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	ASSERT_GE(ev.get(), 0);
	exhaust(
		"SYNCOBJ_EVENTFD",
		[&] {
			refnpu_test::syncobj_eventfd e = {};
			e.handle = tl;
			e.point = point;
			e.fd = ev.get();
			int ret = raw_ioctl(fd, REFNPU_TEST_IOCTL_SYNCOBJ_EVENTFD, &e);
			uint64_t n = 0;
			/* The point has signalled: the eventfd fires at once. */
			if (!ret && read(ev.get(), &n, sizeof(n)) != sizeof(n))
				return -EPROTO;
			return ret;
		},
		[] {});

	drmSyncobjDestroy(fd, bin);
	drmSyncobjDestroy(fd, tl);
	drmSyncobjDestroy(fd, dst);
}

/*
 * The CPU page-fault path of an mmapped BO: the first touch of each page
 * of a fresh mapping, with the Nth allocation of the fault failing (the
 * page tables it fills in). A failed fault is retried, so the touch must
 * succeed and read what was written; nothing may splat or leak.
 */
TEST_F(FailNthTest, CpuPageFault)
{
	int fd = fd_.get();
	/* Two 2 MiB ranges: each needs a page table of its own. */
	const uint64_t size = 4 << 20;
	uint32_t bo = bo_create(fd, size, 0);
	volatile uint32_t *p = nullptr;
	uint32_t round = 0;

	exhaust(
		"CPU page fault",
		[&] {
			round++;
			for (uint64_t off = 0; off < size; off += 2 << 20) {
				p[off / 4] = round;
				if (p[off / 4] != round)
					return -EPROTO;
			}
			return 0;
		},
		[] {}, nullptr,
		[&] { p = static_cast<volatile uint32_t *>(bo_mmap(fd, bo, size)); },
		[&] { munmap(const_cast<uint32_t *>(p), size); });
	gem_close(fd, bo);
}

/*
 * Closing a file that still has BOs, a userptr BO, an exported dma-buf
 * and a job in flight: close cannot fail, but every allocation on the
 * way (deferred frees, the scheduler's entity teardown) is failed once,
 * and nothing may leak or splat.
 */
TEST_F(FailNthTest, CloseWithJobInFlight)
{
	const size_t size = 4 * 4096;
	void *mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	memset(mem, 1, size);
	int fd = -1;

	auto setup = [&] {
		fd = open(node_path(), O_RDWR | O_CLOEXEC);
		ASSERT_GE(fd, 0);
		uint64_t cmd_va;
		uint32_t cmd = bo_create(fd, 4096, 0, &cmd_va);
		auto *p = static_cast<uint8_t *>(bo_mmap(fd, cmd, 4096));
		ASSERT_NE(p, nullptr);
		auto *nop = reinterpret_cast<refnpu_cmd_nop *>(p);
		memset(nop, 0, REFNPU_CMD_NOP_SIZE);
		nop->hdr.opcode = REFNPU_OP_NOP;
		nop->hdr.len_dw = REFNPU_CMD_NOP_SIZE / 4;
		munmap(p, 4096);

		drm_refnpu_bo_userptr u = {};
		u.user_ptr = reinterpret_cast<uintptr_t>(mem);
		u.size = size;
		ASSERT_EQ(xioctl(fd, DRM_IOCTL_REFNPU_BO_USERPTR, &u), 0);
		drm_refnpu_bo_ref ref = {u.handle, DRM_REFNPU_BO_REF_WRITE};
		drm_refnpu_submit s = {};
		s.cmd_handle = cmd;
		s.cmd_size = REFNPU_CMD_NOP_SIZE;
		s.bos = reinterpret_cast<uintptr_t>(&ref);
		s.bo_count = 1;
		s.bo_stride = sizeof(ref);
		ASSERT_EQ(xioctl(fd, DRM_IOCTL_REFNPU_SUBMIT, &s), 0);
	};

	for (unsigned int n = 1; n < 20000; n++) {
		setup();
		if (HasFatalFailure())
			break;
		fail_.arm(n);
		close(fd);
		if (!fail_.fired()) {
			std::cout << "[ fail-nth ] close: " << n - 1 << " allocations\n";
			break;
		}
	}
	/* The device still works for a new file. */
	Fd again = open_node();
	ASSERT_GE(again.get(), 0);
	gem_close(again.get(), bo_create(again.get(), 4096, 0));
	munmap(mem, size);
}

} // namespace
