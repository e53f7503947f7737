// SPDX-License-Identifier: MIT
/*
 * refnpu SDK suite: libaccel against the real driver, inside the guest.
 *
 * Every public class, every error category that can be provoked, fences
 * across contexts and drivers, dma-buf deduplication under concurrency and
 * thread safety of submission.  Tests skip (GTEST_SKIP) when the device,
 * vgem, debugfs fault injection or a privilege they need is missing.
 * The device is /dev/accel/accel0 unless $REFNPU_NODE says otherwise.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/dma-buf.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include <drm/refnpu_accel.h>
#include <gtest/gtest.h>
#include <xf86drm.h>

#include <accel/accel.h>

#include "guest_util.h"

using namespace accel;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

const std::string &node()
{
	static const std::string n = [] {
		const char *e = std::getenv("REFNPU_NODE");
		return std::string(e ? e : "/dev/accel/accel0");
	}();
	return n;
}

std::vector<float> random_floats(size_t n, unsigned seed)
{
	std::mt19937 rng(seed);
	std::uniform_real_distribution<float> d(-1.0f, 1.0f);
	std::vector<float> v(n);
	for (auto &x : v)
		x = d(rng);
	return v;
}

/* Run fn in a forked child; true when it returned true. */
bool in_child(const std::function<bool()> &fn)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn() ? 0 : 1); /* _exit: never close the parent's handles */
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* vgem, for foreign buffers and fences. */
class Vgem
{
public:
	Vgem()
	{
		std::error_code ec;
		for (const auto &e : fs::directory_iterator("/dev/dri", ec)) {
			if (e.path().filename().string().rfind("card", 0))
				continue;
			int fd = open(e.path().c_str(), O_RDWR | O_CLOEXEC);
			if (fd < 0)
				continue;
			drmVersionPtr v = drmGetVersion(fd);
			bool ok = v && std::string(v->name, v->name_len) == "vgem";
			drmFreeVersion(v);
			if (ok) {
				fd_.reset(fd);
				path_ = e.path();
				return;
			}
			close(fd);
		}
	}
	bool ok() const { return fd_.is_valid(); }
	int fd() const { return fd_.get(); }
	const std::string &path() const { return path_; }
	uint32_t create(uint64_t bytes)
	{
		struct drm_mode_create_dumb c = {};
		c.width = 1024;
		c.height = uint32_t((bytes + 4095) / 4096);
		c.bpp = 32;
		return drmIoctl(fd(), DRM_IOCTL_MODE_CREATE_DUMB, &c) ? 0 : c.handle;
	}
	void close_handle(uint32_t h)
	{
		struct drm_gem_close c = {};
		c.handle = h;
		drmIoctl(fd(), DRM_IOCTL_GEM_CLOSE, &c);
	}
	/* vgem_drm.h: attach a write fence to a buffer / signal it. */
	uint32_t attach_fence(uint32_t bo)
	{
		struct {
			uint32_t handle, flags, out_fence, pad;
		} a = {bo, 1, 0, 0};
		return drmIoctl(fd(), DRM_IOWR(DRM_COMMAND_BASE + 1, decltype(a)), &a)
			       ? 0
			       : a.out_fence;
	}
	bool signal_fence(uint32_t fence)
	{
		struct {
			uint32_t fence, flags;
		} s = {fence, 0};
		return !drmIoctl(fd(), DRM_IOW(DRM_COMMAND_BASE + 2, decltype(s)), &s);
	}

private:
	UniqueFd fd_;
	std::string path_;
};

class Sdk : public ::testing::Test
{
protected:
	void SetUp() override
	{
		if (!fs::exists(node()))
			GTEST_SKIP() << node() << " does not exist";
		auto d = Device::open(std::string_view(node()));
		ASSERT_TRUE(d) << d.error().what();
		if (!d->is_refnpu())
			GTEST_SKIP() << d->require_refnpu().error().message();
		dev = *d;
		auto c = Context::create(dev);
		ASSERT_TRUE(c) << c.error().what();
		ctx = *c;
		auto p = dev.properties();
		ASSERT_TRUE(p) << p.error().what();
		props = *p;
	}

	Buffer buffer(uint64_t size, uint32_t flags = 0)
	{
		auto b = dev.create_buffer(size, flags);
		EXPECT_TRUE(b) << b.error().what();
		return b ? std::move(*b) : Buffer();
	}

	Result<void> run(const CommandEncoder &e, Context *c = nullptr)
	{
		auto f = (c ? *c : ctx).submit(e);
		if (!f)
			return std::move(f).error();
		return f->wait_for(60s);
	}

	std::string debugfs_dir()
	{
		auto devs = enumerate_devices();
		if (!devs)
			return {};
		for (const auto &d : *devs)
			if (d.node == dev.node()) {
				std::string dir = "/sys/kernel/debug/accel/" + d.bus_address;
				if (fs::exists(dir + "/inject"))
					return dir;
			}
		return {};
	}

	bool can_inject()
	{
		return (props.hw_caps.value_or(0) & REFNPU_CAP_FAULT_INJECT) &&
		       !debugfs_dir().empty();
	}

	void inject(unsigned queue, uint32_t flags, uint32_t delay_us = 0)
	{
		std::ofstream f(debugfs_dir() + "/inject");
		f << queue << " " << flags << " 0 " << delay_us << "\n";
		f.flush();
		ASSERT_TRUE(f.good()) << "writing " << debugfs_dir() << "/inject";
	}

	Device dev;
	Context ctx;
	DeviceProperties props;
};

} // namespace

/* ------------------------------------------------------------ devices */

TEST_F(Sdk, EnumerationFindsTheDeviceWithoutOpeningIt)
{
	auto devs = enumerate_devices();
	ASSERT_TRUE(devs) << devs.error().what();
	const DeviceInfo *me = nullptr;
	for (const auto &d : *devs)
		if (d.node == node())
			me = &d;
	ASSERT_NE(me, nullptr);
	/* The bus driver: "refnpu" (PCI) or "refnpu-virt" (virtual device). */
	EXPECT_EQ(me->driver.rfind("refnpu", 0), 0u) << me->driver;
	EXPECT_TRUE(me->node_exists);
	EXPECT_TRUE(me->accessible);
	EXPECT_FALSE(me->bus_address.empty());
	EXPECT_TRUE(me->bus == "pci" || me->bus == "platform") << me->bus;
	if (me->bus == "pci") {
		EXPECT_EQ(me->pci_vendor, REFNPU_PCI_VENDOR_ID);
		EXPECT_EQ(me->pci_device, REFNPU_PCI_DEVICE_ID);
	}
}

TEST_F(Sdk, EveryWayOfOpeningSharesOneFile)
{
	auto devs = *enumerate_devices();
	const DeviceInfo *me = nullptr;
	for (const auto &d : devs)
		if (d.node == node())
			me = &d;
	ASSERT_NE(me, nullptr);
	std::vector<Result<Device>> opened;
	opened.push_back(Device::open(me->index));
	opened.push_back(Device::open(std::string_view(node())));
	opened.push_back(Device::open(std::string_view(me->name)));
	opened.push_back(Device::open(std::string_view(std::to_string(me->index))));
	opened.push_back(Device::open(std::string_view(me->bus_address)));
	opened.push_back(Device::open(*me));
	for (auto &d : opened) {
		ASSERT_TRUE(d) << d.error().what();
		EXPECT_TRUE(*d == dev);
		EXPECT_EQ(d->fd(), dev.fd());
	}
	/* Concurrent opens race for the registry and still share the file. */
	std::vector<int> fds(8, -1);
	std::vector<std::thread> t;
	for (int i = 0; i < 8; i++)
		t.emplace_back([&, i] {
			auto d = Device::open(std::string_view(node()));
			fds[i] = d ? d->fd() : -2;
		});
	for (auto &th : t)
		th.join();
	for (int fd : fds)
		EXPECT_EQ(fd, dev.fd());
}

TEST_F(Sdk, VersionAndProperties)
{
	EXPECT_EQ(dev.version().name, "refnpu");
	EXPECT_EQ(dev.version().major, DRM_REFNPU_DRIVER_MAJOR);
	ASSERT_TRUE(props.num_queues);
	EXPECT_GE(*props.num_queues, 1u);
	EXPECT_LE(*props.num_queues, uint64_t(REFNPU_MAX_QUEUES));
	ASSERT_TRUE(props.va_size && props.va_start && props.max_bo_size);
	EXPECT_GT(*props.va_size, *props.max_bo_size);
	EXPECT_EQ(props.ops.value_or(0) & 1, 1u) << "NOP must be supported";
	EXPECT_TRUE(dev.has_capability(cap_timeline_syncobj));
	auto v = dev.get_param(0);
	ASSERT_TRUE(v);
	EXPECT_EQ(*v >> 16, uint64_t(DRM_REFNPU_DRIVER_MAJOR));
}

TEST_F(Sdk, ErrorUnknownParameterIsUnsupported)
{
	auto v = dev.get_param(0xdead);
	ASSERT_FALSE(v);
	EXPECT_EQ(v.code(), Errc::unsupported);
}

TEST_F(Sdk, ErrorNoDevice)
{
	auto d = Device::open(250u);
	ASSERT_FALSE(d);
	EXPECT_EQ(d.code(), Errc::no_device);
	EXPECT_EQ(Device::open(std::string_view("0000:ff:1f.7")).code(), Errc::no_device);
}

TEST_F(Sdk, ErrorOtherDriverIsUnsupported)
{
	Vgem vgem;
	if (!vgem.ok())
		GTEST_SKIP() << "no vgem";
	auto d = Device::open(std::string_view(vgem.path()));
	ASSERT_TRUE(d) << d.error().what();
	EXPECT_FALSE(d->is_refnpu());
	EXPECT_EQ(d->require_refnpu().code(), Errc::unsupported);
	EXPECT_NE(d->require_refnpu().error().message().find("vgem"), std::string::npos);
	EXPECT_EQ(d->create_buffer(4096).code(), Errc::unsupported);
	EXPECT_EQ(Context::create(*d).code(), Errc::unsupported);
}

TEST_F(Sdk, ErrorPermissionDeniedNamesTheGroup)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "needs root to drop privileges";
	bool ok = in_child([] {
		if (setgid(65534) || setuid(65534))
			return false;
		auto d = Device::open(std::string_view(node()));
		return !d && d.code() == Errc::permission_denied &&
		       d.error().message().find("group") != std::string::npos;
	});
	EXPECT_TRUE(ok) << "opening as nobody must fail with permission_denied and a hint";
}

TEST_F(Sdk, ErrorHighPriorityWithoutCapSysNice)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "needs root to hold CAP_SYS_NICE in the first place";
	bool ok = in_child([] {
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct c[2] = {};
		if (syscall(SYS_capget, &h, c))
			return false;
		c[0].effective &= ~(1u << CAP_SYS_NICE);
		c[0].permitted &= ~(1u << CAP_SYS_NICE);
		if (syscall(SYS_capset, &h, c))
			return false;
		auto d = Device::open(std::string_view(node()));
		if (!d)
			return false;
		ContextOptions o;
		o.priority = Priority::high;
		auto ctx = Context::create(*d, o);
		if (!ctx)
			return false;
		CommandEncoder e;
		(void)e.nop();
		auto f = ctx->submit(e);
		return !f && f.code() == Errc::permission_denied;
	});
	EXPECT_TRUE(ok);
}

TEST_F(Sdk, ErrorInvalidArguments)
{
	EXPECT_EQ(dev.create_buffer(0).code(), Errc::invalid_argument);
	EXPECT_EQ(dev.create_buffer(4096, 0x80).code(), Errc::invalid_argument);
	EXPECT_EQ(dev.create_buffer(*props.max_bo_size + 4096).code(), Errc::invalid_argument);
	ContextOptions o;
	o.queue = uint32_t(*props.num_queues);
	auto c = Context::create(dev, o);
	ASSERT_FALSE(c);
	EXPECT_EQ(c.code(), Errc::invalid_argument);
	EXPECT_NE(c.error().message().find("queue"), std::string::npos);
	Buffer b = buffer(4096);
	EXPECT_EQ(Job::from_buffer(std::move(b), 4, 8).code(), Errc::invalid_argument);
	EXPECT_EQ(dev.import_dmabuf(-1).code(), Errc::invalid_argument);
	EXPECT_EQ(Fence::import_sync_file(dev, -1).code(), Errc::invalid_argument);
	/* A regular file is not a dma-buf. */
	UniqueFd f(open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
	EXPECT_EQ(dev.import_dmabuf(f.get()).code(), Errc::invalid_argument);
	EXPECT_EQ(Fence::import_sync_file(dev, f.get()).code(), Errc::invalid_argument);
	CommandEncoder empty;
	EXPECT_EQ(ctx.submit(empty).code(), Errc::invalid_argument);
}

TEST_F(Sdk, ErrorResourceLimitOfFileDescriptors)
{
	Buffer b = buffer(4096);
	struct rlimit old;
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* No descriptor left for the dma-buf. */
	int highest = 0;
	for (const auto &e : fs::directory_iterator("/proc/self/fd"))
		highest = std::max(highest, std::atoi(e.path().filename().c_str()));
	struct rlimit lim = {rlim_t(highest), old.rlim_max};
	std::vector<int> filler;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		filler.push_back(fd);
	}
	auto r = b.export_dmabuf();
	for (int fd : filler)
		close(fd);
	setrlimit(RLIMIT_NOFILE, &old);
	ASSERT_FALSE(r);
	EXPECT_EQ(r.code(), Errc::resource_limit) << r.error().what();
	EXPECT_NE(r.error().message().find("ulimit"), std::string::npos) << r.error().what();
}

TEST_F(Sdk, ErrorJobFailedOnMmuFault)
{
	Buffer dst = buffer(4096);
	CommandEncoder e;
	Memory unmapped{0, REFNPU_VA_LIMIT - (1ULL << 32), 4096};
	ASSERT_TRUE(e.copy_bytes(dst.memory(), 0, unmapped, 0, 4096));
	auto r = run(e);
	ASSERT_FALSE(r);
	EXPECT_EQ(r.code(), Errc::job_failed);
	EXPECT_EQ(r.error().sys_errno(), EFAULT);
	/* The buffer reports the same failure, and the context still works. */
	auto w = dst.wait(std::chrono::steady_clock::now() + 10s);
	EXPECT_EQ(w.code(), Errc::job_failed);
	CommandEncoder nop;
	ASSERT_TRUE(nop.nop());
	EXPECT_TRUE(run(nop));
}

TEST_F(Sdk, ErrorJobFailedOnMalformedCommand)
{
	CommandEncoder e;
	refnpu_cmd_nop bad = {};
	bad.hdr.opcode = REFNPU_OP_NOP;
	bad.hdr.flags = 1; /* NOP takes no flags */
	bad.hdr.len_dw = REFNPU_CMD_NOP_SIZE / 4;
	e.append_raw(std::as_bytes(std::span(&bad, 1)));
	auto r = run(e);
	ASSERT_FALSE(r);
	EXPECT_EQ(r.code(), Errc::job_failed);
	EXPECT_EQ(r.error().sys_errno(), EINVAL);
	EXPECT_NE(r.error().message().find("malformed"), std::string::npos);
}

TEST_F(Sdk, ErrorJobFailedWritingDeviceReadOnlyBuffer)
{
	Buffer ro = buffer(4096, buffer_device_read_only);
	EXPECT_EQ(ro.flags(), uint32_t(buffer_device_read_only));
	CommandEncoder e;
	ASSERT_TRUE(e.fill_f32(tensor2d(ro.memory(), DType::fp32, 1, 16), 1.0f));
	auto r = run(e);
	ASSERT_FALSE(r);
	EXPECT_EQ(r.code(), Errc::job_failed);
}

TEST_F(Sdk, ErrorTimeoutWaitingForAnUnsignalledForeignFence)
{
	Vgem vgem;
	if (!vgem.ok())
		GTEST_SKIP() << "no vgem";
	uint32_t bo = vgem.create(4096);
	ASSERT_NE(bo, 0u);
	uint32_t vf = vgem.attach_fence(bo);
	ASSERT_NE(vf, 0u);
	int dmabuf = -1;
	ASSERT_EQ(drmPrimeHandleToFD(vgem.fd(), bo, DRM_CLOEXEC, &dmabuf), 0);
	struct dma_buf_export_sync_file ex = {DMA_BUF_SYNC_RW, -1};
	ASSERT_EQ(ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &ex), 0) << strerror(errno);
	auto in = Fence::import_sync_file(dev, ex.fd);
	close(ex.fd);
	ASSERT_TRUE(in) << in.error().what();
	EXPECT_EQ(*in->is_signaled(), false);

	Buffer out = buffer(4096);
	CommandEncoder e;
	ASSERT_TRUE(e.fill_f32(tensor2d(out.memory(), DType::fp32, 1, 4), 2.0f));
	auto job = Job::create(dev, e);
	ASSERT_TRUE(job);
	job->wait_for(*in);
	auto f = ctx.submit(*job);
	ASSERT_TRUE(f) << f.error().what();
	auto w = f->wait_for(200ms);
	ASSERT_FALSE(w);
	EXPECT_EQ(w.code(), Errc::timeout);
	EXPECT_EQ(out.wait(std::chrono::steady_clock::now() + 50ms).code(), Errc::timeout);
	EXPECT_EQ(*out.is_idle(), false);

	ASSERT_TRUE(vgem.signal_fence(vf));
	EXPECT_TRUE(f->wait_for(30s));
	EXPECT_TRUE(*out.is_idle());
	auto m = out.map();
	ASSERT_TRUE(m);
	EXPECT_EQ(m->as<float>()[3], 2.0f);
	close(dmabuf);
	vgem.close_handle(bo);
}

TEST_F(Sdk, ErrorDeviceLostWhenTheContextIsBanned)
{
	if (!can_inject())
		GTEST_SKIP() << "needs the fault-injection debugfs file";
	uint64_t per_hang = props.job_timeout_ms.value_or(0);
	uint64_t limit = props.hang_limit.value_or(0);
	if (!per_hang || !limit || per_hang * limit > 60000)
		GTEST_SKIP() << "hangs would take too long (" << per_hang << " ms x " << limit
			     << ")";
	std::string dir = debugfs_dir();
	/* A new process: a new context, banned without harming ours. */
	bool ok = in_child([&] {
		auto d = Device::open(std::string_view(node()));
		if (!d || *d == dev)
			return false;
		auto c = Context::create(*d);
		if (!c)
			return false;
		CommandEncoder e;
		(void)e.nop();
		auto job = Job::create(*d, e);
		if (!job)
			return false;
		for (uint64_t i = 0; i < limit; i++) {
			std::ofstream(dir + "/inject") << "0 " << REFNPU_DBG_INJECT_HANG << "\n";
			auto f = c->submit(*job);
			if (!f)
				return false;
			auto w = f->wait_for(std::chrono::milliseconds(per_hang * 4 + 10000));
			if (w || w.code() != Errc::timeout || w.error().sys_errno() != ETIMEDOUT) {
				std::fprintf(stderr, "hang %llu: %s\n", (unsigned long long)i,
					     w ? "completed" : w.error().what().c_str());
				return false;
			}
		}
		auto banned = d->get_param(DRM_REFNPU_PARAM_CONTEXT_BANNED);
		auto f = c->submit(*job);
		bool lost = !f ? f.code() == Errc::device_lost
			       : f->wait_for(30s).code() == Errc::device_lost;
		return banned && *banned == 1 && lost;
	});
	EXPECT_TRUE(ok);
	/* Our own context is unaffected. */
	CommandEncoder nop;
	ASSERT_TRUE(nop.nop());
	EXPECT_TRUE(run(nop));
	EXPECT_EQ(*dev.get_param(DRM_REFNPU_PARAM_CONTEXT_BANNED), 0u);
}

/* ----------------------------------------------------- buffers, maps */

TEST_F(Sdk, BufferLifecycleAndMapping)
{
	size_t before = dev.handle_count();
	Mapping keep;
	{
		Buffer b = buffer(10000);
		EXPECT_EQ(b.size(), 12288u) << "rounded up to pages";
		EXPECT_GE(b.va(), *props.va_start);
		EXPECT_LT(b.va(), *props.va_start + *props.va_size);
		EXPECT_EQ(dev.handle_count(), before + 1);
		auto m = b.map();
		ASSERT_TRUE(m) << m.error().what();
		EXPECT_EQ(m->size(), b.size());
		for (auto x : m->bytes())
			ASSERT_EQ(x, std::byte{0}) << "new buffers are zeroed";
		std::memset(m->data(), 0x5a, m->size());
		auto m2 = b.map();
		ASSERT_TRUE(m2);
		EXPECT_EQ(m2->bytes()[100], std::byte{0x5a});
		keep = std::move(*m2);
		Buffer moved = std::move(b);
		EXPECT_FALSE(b.is_valid());
		EXPECT_TRUE(moved.is_valid());
	}
	/* The mapping outlives its Buffer; the handle is gone. */
	EXPECT_EQ(dev.handle_count(), before);
	EXPECT_EQ(keep.bytes()[12287], std::byte{0x5a});
}

TEST_F(Sdk, BuffersHaveDistinctGuardedAddresses)
{
	Buffer a = buffer(4096), b = buffer(4096);
	EXPECT_NE(a.va(), b.va());
	EXPECT_TRUE(a.va() + a.size() < b.va() || b.va() + b.size() < a.va())
		<< "a guard gap separates buffers";
}

TEST_F(Sdk, UserMemoryIsSharedWithTheDevice)
{
	if (!dev.has_capability(cap_userptr))
		GTEST_SKIP() << "the driver has no user-memory buffers";
	const size_t page = size_t(sysconf(_SC_PAGESIZE)), size = 16 * page;
	void *mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	std::memset(mem, 0, size);
	size_t before = dev.handle_count();
	{
		auto b = dev.import_user_memory(mem, size);
		ASSERT_TRUE(b) << b.error().what();
		EXPECT_TRUE(b->is_user_memory());
		EXPECT_EQ(b->size(), size);
		EXPECT_EQ(b->map().code(), Errc::invalid_argument);
		EXPECT_EQ(b->export_dmabuf().code(), Errc::unsupported);
		CommandEncoder e;
		ASSERT_TRUE(e.fill(tensor2d(b->memory(), DType::int32, 4, 1024), 0xabcd));
		ASSERT_TRUE(run(e));
		EXPECT_EQ(static_cast<uint32_t *>(mem)[0], 0xabcdu);
		EXPECT_EQ(static_cast<uint32_t *>(mem)[4 * 1024 - 1], 0xabcdu);
		EXPECT_EQ(static_cast<uint32_t *>(mem)[4 * 1024], 0u);
	}
	EXPECT_EQ(dev.handle_count(), before);
	/* Read-only pages need a device-read-only buffer. */
	ASSERT_EQ(mprotect(mem, size, PROT_READ), 0);
	EXPECT_EQ(dev.import_user_memory(mem, size).code(), Errc::permission_denied);
	EXPECT_EQ(dev.handle_count(), before);
	auto ro = dev.import_user_memory(mem, size, buffer_device_read_only);
	ASSERT_TRUE(ro) << ro.error().what();
	EXPECT_EQ(ro->flags() & buffer_device_read_only, uint32_t(buffer_device_read_only));
	CommandEncoder w;
	ASSERT_TRUE(w.fill(tensor2d(ro->memory(), DType::int32, 1, 16), 1));
	EXPECT_EQ(run(w).code(), Errc::job_failed);
	*ro = Buffer();
	EXPECT_EQ(dev.import_user_memory(static_cast<char *>(mem) + 8, page).code(),
		  Errc::invalid_argument);
	munmap(mem, size);
}

TEST_F(Sdk, ErrorResourceLimitOfLockedMemory)
{
	if (!dev.has_capability(cap_userptr))
		GTEST_SKIP() << "the driver has no user-memory buffers";
	bool ok = in_child([] {
		/* Without CAP_IPC_LOCK, pinned pages count against RLIMIT_MEMLOCK. */
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct c[2] = {};
		if (syscall(SYS_capget, &h, c))
			return false;
		c[0].effective &= ~(1u << CAP_IPC_LOCK);
		c[0].permitted &= ~(1u << CAP_IPC_LOCK);
		if (syscall(SYS_capset, &h, c))
			return false;
		struct rlimit lim = {64 * 1024, 64 * 1024};
		if (setrlimit(RLIMIT_MEMLOCK, &lim))
			return false;
		auto d = Device::open(std::string_view(node()));
		if (!d)
			return false;
		const size_t size = 4 << 20;
		void *mem = mmap(nullptr, size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (mem == MAP_FAILED)
			return false;
		auto b = d->import_user_memory(mem, size);
		if (b) {
			std::fprintf(stderr, "pinning 4 MiB under a 64 KiB limit succeeded\n");
			return false;
		}
		std::fprintf(stderr, "%s\n", b.error().what().c_str());
		return b.code() == Errc::resource_limit &&
		       b.error().message().find("ulimit -l") != std::string::npos;
	});
	EXPECT_TRUE(ok);
}

/* ---------------------------------------------------------- dma-buf */

class SdkCloseOrder : public Sdk, public ::testing::WithParamInterface<int>
{
};

TEST_P(SdkCloseOrder, ImportDeduplicatesAndAnyCloseOrderIsSafe)
{
	size_t before = dev.handle_count();
	std::vector<Buffer> refs;
	refs.push_back(buffer(8192));
	uint32_t h = refs[0].handle();
	auto fd = refs[0].export_dmabuf();
	ASSERT_TRUE(fd) << fd.error().what();
	for (int i = 0; i < 3; i++) {
		auto imp = dev.import_dmabuf(fd->get());
		ASSERT_TRUE(imp) << imp.error().what();
		EXPECT_EQ(imp->handle(), h) << "one GEM handle per buffer and file";
		EXPECT_EQ(imp->size(), refs[0].size());
		EXPECT_EQ(imp->va(), refs[0].va());
		refs.push_back(std::move(*imp));
	}
	EXPECT_EQ(dev.handle_count(), before + 1);
	fd->reset();
	/* Drop the references in the order of the parameter. */
	std::vector<int> order = {0, 1, 2, 3};
	std::mt19937 rng(GetParam());
	if (GetParam() == 1)
		std::reverse(order.begin(), order.end());
	else if (GetParam() > 1)
		std::shuffle(order.begin(), order.end(), rng);
	for (size_t i = 0; i < order.size(); i++) {
		auto m = refs[order[i]].map();
		ASSERT_TRUE(m) << "reference " << order[i] << " still maps";
		refs[order[i]] = Buffer();
		EXPECT_EQ(dev.handle_count(), before + (i + 1 < order.size() ? 1 : 0));
	}
}

INSTANTIATE_TEST_SUITE_P(Orders, SdkCloseOrder, ::testing::Values(0, 1, 2, 3, 4));

TEST_F(Sdk, ForeignBufferFromVgemIsWrittenByTheDevice)
{
	Vgem vgem;
	if (!vgem.ok())
		GTEST_SKIP() << "no vgem";
	if (refnpu_test::dma_always_bounced())
		GTEST_SKIP() << "bounced DMA: vgem's exports do not sync their importers' mappings "
				"(Documentation/dma-buf.rst)";
	uint32_t h = vgem.create(64 * 1024);
	ASSERT_NE(h, 0u);
	int fd = -1;
	ASSERT_EQ(drmPrimeHandleToFD(vgem.fd(), h, DRM_CLOEXEC | DRM_RDWR, &fd), 0);
	size_t before = dev.handle_count();
	auto a = dev.import_dmabuf(fd);
	auto b = dev.import_dmabuf(fd);
	ASSERT_TRUE(a) << a.error().what();
	ASSERT_TRUE(b);
	EXPECT_EQ(a->handle(), b->handle());
	EXPECT_EQ(dev.handle_count(), before + 1);
	CommandEncoder e;
	ASSERT_TRUE(e.fill(tensor2d(a->memory(), DType::int32, 1, 1024), 0x12345678));
	ASSERT_TRUE(run(e));
	/* Read back through vgem's own mapping. */
	struct drm_mode_map_dumb md = {};
	md.handle = h;
	ASSERT_EQ(drmIoctl(vgem.fd(), DRM_IOCTL_MODE_MAP_DUMB, &md), 0);
	void *p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, vgem.fd(), off_t(md.offset));
	ASSERT_NE(p, MAP_FAILED);
	EXPECT_EQ(static_cast<uint32_t *>(p)[1023], 0x12345678u);
	munmap(p, 4096);
	*a = Buffer();
	*b = Buffer();
	EXPECT_EQ(dev.handle_count(), before);
	close(fd);
	vgem.close_handle(h);
}

TEST_F(Sdk, ConcurrentImportAndReleaseOfOneDmabuf)
{
	/* The race dedup must survive: a release closing the handle while
	 * another thread imports the same buffer. */
	Buffer src = buffer(4096);
	auto fd = src.export_dmabuf();
	ASSERT_TRUE(fd);
	uint32_t h = src.handle();
	src = Buffer(); /* only imports hold the handle from now on */
	size_t before = dev.handle_count();
	std::atomic<int> errors{0};
	std::vector<std::thread> t;
	for (int i = 0; i < 4; i++)
		t.emplace_back([&] {
			for (int it = 0; it < 200; it++) {
				auto b = dev.import_dmabuf(fd->get());
				if (!b || !b->map()) {
					errors++;
					continue;
				}
			}
		});
	for (auto &th : t)
		th.join();
	EXPECT_EQ(errors.load(), 0);
	EXPECT_EQ(dev.handle_count(), before);
	(void)h;
}

/* ----------------------------------------------------------- fences */

TEST_F(Sdk, FenceWaitPollExportImport)
{
	CommandEncoder e;
	ASSERT_TRUE(e.nop());
	auto f = ctx.submit(e);
	ASSERT_TRUE(f);
	EXPECT_TRUE(f->is_valid());
	EXPECT_GT(f->point(), 0u) << "a point on the context's timeline";
	auto pfd = f->poll_fd();
	ASSERT_TRUE(pfd) << pfd.error().what();
	struct pollfd p = {pfd->get(), POLLIN, 0};
	ASSERT_EQ(poll(&p, 1, 30000), 1);
	EXPECT_TRUE(*f->is_signaled());
	EXPECT_TRUE(f->status());
	EXPECT_TRUE(f->wait(std::chrono::steady_clock::now()));
	auto imp = Fence::import_sync_file(dev, pfd->get());
	ASSERT_TRUE(imp);
	EXPECT_EQ(imp->point(), 0u);
	EXPECT_TRUE(imp->wait_for(1s));
	/* An empty fence is signalled. */
	EXPECT_TRUE(Fence().wait_for(0s));
	/* Later submissions get later points; finish() waits for all. */
	auto g = ctx.submit(e);
	ASSERT_TRUE(g);
	EXPECT_GT(g->point(), f->point());
	EXPECT_EQ(ctx.last_fence().point(), g->point());
	EXPECT_TRUE(ctx.finish(std::chrono::steady_clock::now() + 30s));
}

TEST_F(Sdk, FailedJobStatusTravelsInItsSyncFile)
{
	Buffer dst = buffer(4096);
	CommandEncoder e;
	ASSERT_TRUE(e.copy_bytes(dst.memory(), 0, Memory{0, REFNPU_VA_LIMIT - (1ULL << 33), 64}, 0,
				 64));
	auto f = ctx.submit(e);
	ASSERT_TRUE(f);
	EXPECT_EQ(f->wait_for(30s).code(), Errc::job_failed);
	auto sf = f->export_sync_file();
	ASSERT_TRUE(sf);
	auto imp = Fence::import_sync_file(dev, sf->get());
	ASSERT_TRUE(imp);
	EXPECT_EQ(imp->wait_for(1s).code(), Errc::job_failed);
}

TEST_F(Sdk, FenceOrdersJobsAcrossContexts)
{
	if (*props.num_queues < 2)
		GTEST_SKIP() << "one queue";
	ContextOptions o1;
	o1.queue = 1;
	auto c1 = Context::create(dev, o1);
	ASSERT_TRUE(c1);
	const uint32_t n = 96;
	auto av = random_floats(n * n, 1);
	Buffer a = buffer(n * n * 4), c = buffer(n * n * 4), copy = buffer(n * n * 4);
	std::memcpy(a.map()->data(), av.data(), av.size() * 4);
	/* Queue 0 computes c = a * a; queue 1 copies c once that is done. */
	CommandEncoder g;
	ASSERT_TRUE(g.gemm({tensor2d(a.memory(), DType::fp32, n, n),
			    tensor2d(a.memory(), DType::fp32, n, n),
			    tensor2d(c.memory(), DType::fp32, n, n),
			    {}}));
	auto fg = ctx.submit(g);
	ASSERT_TRUE(fg);
	CommandEncoder cp;
	ASSERT_TRUE(cp.copy_bytes(copy.memory(), 0, c.memory(), 0, n * n * 4));
	auto job = Job::create(dev, cp);
	ASSERT_TRUE(job);
	job->set_implicit_sync(false); /* only the explicit fence orders them */
	job->wait_for(*fg);
	auto fc = c1->submit(*job);
	ASSERT_TRUE(fc);
	ASSERT_TRUE(fc->wait_for(60s));
	EXPECT_TRUE(*fg->is_signaled());
	EXPECT_EQ(std::memcmp(copy.map()->data(), c.map()->data(), n * n * 4), 0);
}

/* ---------------------------------------------------------- contexts */

TEST_F(Sdk, EveryQueueAndPriorityRunsJobs)
{
	for (uint32_t q = 0; q < *props.num_queues; q++)
		for (Priority p : {Priority::low, Priority::normal, Priority::high}) {
			if (p == Priority::high && geteuid() != 0)
				continue;
			ContextOptions o;
			o.queue = q;
			o.priority = p;
			auto c = Context::create(dev, o);
			ASSERT_TRUE(c) << c.error().what();
			EXPECT_EQ(c->options().queue, q);
			CommandEncoder e;
			ASSERT_TRUE(e.nop());
			EXPECT_TRUE(run(e, &*c)) << "queue " << q;
		}
}

TEST_F(Sdk, JobsOfOneContextRunInOrder)
{
	Buffer b = buffer(4096);
	std::vector<Job> jobs;
	for (int i = 0; i < 20; i++) {
		CommandEncoder e;
		ASSERT_TRUE(e.fill(tensor2d(b.memory(), DType::int32, 1, 1024), uint64_t(i)));
		auto j = Job::create(dev, e);
		ASSERT_TRUE(j);
		j->set_implicit_sync(false); /* order from the context alone */
		jobs.push_back(std::move(*j));
	}
	for (const auto &j : jobs)
		ASSERT_TRUE(ctx.submit(j));
	ASSERT_TRUE(ctx.finish(std::chrono::steady_clock::now() + 60s));
	EXPECT_EQ(b.map()->as<uint32_t>()[0], 19u);
	EXPECT_EQ(b.map()->as<uint32_t>()[1023], 19u);
}

/* ---------------------------------------------------- thread safety */

TEST_F(Sdk, ThreadsSubmitAndWaitOnOneDevice)
{
	const int threads = 4, jobs = 25;
	ContextOptions o2;
	o2.queue = *props.num_queues > 1 ? 1 : 0;
	auto other = Context::create(dev, o2);
	ASSERT_TRUE(other);
	std::atomic<int> bad{0};
	std::vector<std::thread> t;
	for (int i = 0; i < threads; i++)
		t.emplace_back([&, i] {
			/* Two threads share ctx, two share the other context. */
			Context &c = i % 2 ? *other : ctx;
			auto b = dev.create_buffer(4096);
			if (!b) {
				bad++;
				return;
			}
			for (int j = 0; j < jobs; j++) {
				uint32_t v = uint32_t(i * 1000 + j);
				CommandEncoder e;
				(void)e.fill(tensor2d(b->memory(), DType::int32, 1, 1024), v);
				auto f = c.submit(e);
				if (!f || !f->wait_for(60s) || b->map()->as<uint32_t>()[512] != v)
					bad++;
			}
		});
	for (auto &th : t)
		th.join();
	EXPECT_EQ(bad.load(), 0);
	EXPECT_TRUE(ctx.finish(std::chrono::steady_clock::now() + 30s));
}

TEST_F(Sdk, ForkedChildOpensItsOwnContext)
{
	bool ok = in_child([&] {
		auto d = Device::open(std::string_view(node()));
		if (!d || *d == dev || d->fd() == dev.fd())
			return false;
		CommandEncoder e;
		(void)e.nop();
		auto c = Context::create(*d);
		return c && c->submit(e) && c->finish(std::chrono::steady_clock::now() + 30s);
	});
	EXPECT_TRUE(ok);
}

/* --------------------------------------------- numerics on the device */

TEST_F(Sdk, EveryOpcodeMatchesTheReferenceEngine)
{
	/* One buffer, the same layout on the device and in the reference. */
	const uint64_t size = 1 << 20;
	Buffer b = buffer(size);
	ReferenceMachine rm;
	Memory rmem = rm.alloc(size);
	auto init = random_floats(size / 4, 42);
	std::memcpy(b.map()->data(), init.data(), size);
	std::memcpy(rm.data(rmem).data(), init.data(), size);
	/* int8 inputs and the int32 bias: small integers, no overflow. */
	{
		auto m = b.map();
		ASSERT_TRUE(m);
		for (size_t i = 28672; i < 36864; i++)
			m->data()[i] = rm.data(rmem)[i] = std::byte(uint8_t(i * 37));
		for (size_t i = 0; i < 4; i++) {
			int32_t v = int32_t(i * 1000) - 1500;
			std::memcpy(m->data() + 40960 + 4 * i, &v, 4);
			std::memcpy(rm.data(rmem).data() + 40960 + 4 * i, &v, 4);
		}
	}

	auto encode = [](const Memory &m, CommandEncoder &e) {
		auto t = [&](uint64_t off, uint32_t r, uint32_t c, DType d = DType::fp32) {
			return tensor2d(m, d, r, c, off);
		};
		bool ok = e.nop() && e.fill_f32(t(65536, 8, 8), 0.5f) &&
			  e.copy(t(69632, 8, 8), t(0, 8, 8)) &&
			  e.gemm({t(16384, 4, 8, DType::fp16),
				  t(20480, 8, 4, DType::fp16),
				  t(24576, 4, 4, DType::bf16),
				  {}});
		GemmOp q{t(28672, 4, 8, DType::int8), t(32768, 8, 4, DType::int8),
			 t(36864, 4, 4, DType::int8), VectorRef{m, 40960}};
		q.rq_multiplier = 1 << 30;
		q.rq_shift = 36;
		q.rq_zero_point = 3;
		ok = ok && e.gemm(q) &&
		     e.ewise(EwiseOp::max, t(73728, 8, 8), t(0, 8, 8), t(4096, 8, 1)) &&
		     e.act(Activation::gelu, t(77824, 8, 8), t(0, 8, 8)) &&
		     e.act(Activation::sigmoid, t(81920, 8, 8), t(0, 8, 8)) &&
		     e.act(Activation::tanh, t(86016, 8, 8), t(0, 8, 8)) &&
		     e.softmax(t(90112, 8, 8), t(0, 8, 8)) &&
		     e.layernorm({t(0, 8, 8), t(94208, 8, 8), VectorRef{m, 4096},
				  VectorRef{m, 8192}, 1e-3f});
		Conv2dOp cv;
		cv.in = TensorNHWC{m, 0, DType::fp32, 2, 6, 6, 3};
		cv.out = TensorNHWC{m, 98304, DType::fp32, 2, 3, 3, 4};
		cv.filter = t(12288, 3 * 3 * 3, 4);
		cv.bias = VectorRef{m, 8192};
		cv.relu = true;
		cv.win.kh = cv.win.kw = 3;
		cv.win.stride_h = cv.win.stride_w = 2;
		cv.win.pad_top = cv.win.pad_left = cv.win.pad_bottom = cv.win.pad_right = 1;
		Pool2dOp pl;
		pl.in = cv.out;
		pl.out = TensorNHWC{m, 102400, DType::fp32, 2, 2, 2, 4};
		pl.mode = PoolMode::avg;
		pl.win.kh = pl.win.kw = 2;
		pl.win.stride_h = pl.win.stride_w = 2;
		pl.win.pad_bottom = pl.win.pad_right = 1;
		return ok && e.conv2d(cv) && e.pool2d(pl);
	};
	CommandEncoder de, re;
	ASSERT_TRUE(encode(b.memory(), de));
	ASSERT_TRUE(encode(rmem, re));
	ASSERT_TRUE(run(de));
	auto rr = rm.run(re.data());
	ASSERT_TRUE(rr) << rr.error().what();
	/*
	 * Every op must have written its output: agreeing on untouched
	 * memory would prove nothing.
	 */
	for (uint64_t off :
	     {65536, 69632, 24576, 36864, 73728, 77824, 81920, 86016, 90112, 94208, 98304, 102400})
		EXPECT_NE(std::memcmp(rm.data(rmem).data() + off,
				      reinterpret_cast<const std::byte *>(init.data()) + off, 16),
			  0)
			<< "the reference left the output at " << off << " unchanged";
	/* No fp32 GEMM here: everything must be bit-exact. */
	auto devmap = b.map();
	ASSERT_TRUE(devmap);
	auto devb = devmap->bytes(), refb = rm.data(rmem);
	size_t diff = 0, first = 0;
	for (size_t i = 0; i < size; i++)
		if (devb[i] != refb[i] && !diff++)
			first = i;
	EXPECT_EQ(diff, 0u) << "first differing byte at offset " << first;
}

TEST_F(Sdk, MlpGraphMatchesTheReference)
{
	Graph g;
	auto x = *g.input("x", {16, 64});
	auto h = *g.dense(x, *g.constant("w1", {64, 48}, random_floats(64 * 48, 2)),
			  *g.constant("b1", {48}, random_floats(48, 3)), true);
	auto y = *g.dense(h, *g.constant("w2", {48, 10}, random_floats(480, 4)),
			  *g.constant("b2", {10}, random_floats(10, 5)));
	auto p = *g.softmax(y);
	ASSERT_TRUE(g.output(p, "probs"));
	auto dg = CompiledGraph::compile(g, ctx);
	auto rg = CompiledGraph::compile_reference(g);
	ASSERT_TRUE(dg) << dg.error().what();
	ASSERT_TRUE(rg);
	auto xv = random_floats(16 * 64, 1);
	ASSERT_TRUE(dg->set_input(x, xv));
	ASSERT_TRUE(rg->set_input(x, xv));
	auto t = dg->run();
	ASSERT_TRUE(t) << t.error().what();
	ASSERT_TRUE(rg->run());
	auto got = *dg->read(p), want = *rg->read(p);
	ASSERT_EQ(got.size(), want.size());
	for (size_t i = 0; i < got.size(); i++)
		EXPECT_NEAR(got[i], want[i], 1e-5 + 1e-4 * std::fabs(want[i])) << i;
}
