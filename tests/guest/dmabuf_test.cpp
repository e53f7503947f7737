// SPDX-License-Identifier: MIT
/*
 * refnpu dma-buf suite (Documentation/dma-buf.rst), run inside the guest:
 *
 *  - PRIME sharing with drivers we did not write: udmabuf (memfd memory),
 *    vgem in both directions, and a second refnpu device; zero-copy proven
 *    by page frame numbers (/proc/self/pagemap) and by writes through one
 *    mapping seen through the other; self-import; lifetimes when the fd,
 *    the handles and the exporter are closed in every order, also while a
 *    job still uses the buffer;
 *  - implicit sync across drivers through the shared dma_resv (vgem
 *    fences, poll(), DMA_BUF_IOCTL_EXPORT/IMPORT_SYNC_FILE) and explicit
 *    sync through syncobjs and sync_files;
 *  - userptr BOs: zero-copy, read-only memory, RLIMIT_MEMLOCK accounting;
 *  - IOMMU containment: the device's stray-DMA fault injection is blocked
 *    by a translating system IOMMU (skipped without one), and lands
 *    without one (the control that shows the injection works).
 *
 * Raw ioctls and libdrm only. Every device-dependent part skips when what
 * it needs is absent: vgem not loaded, /dev/udmabuf missing, a single
 * refnpu device, no fault injection, no IOMMU.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/dma-buf.h>
#include <linux/sync_file.h>
#include <linux/udmabuf.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <xf86drm.h>

#include "guest_util.h"
#include "refnpu_accel.h"
#include "refnpu_hw.h"

/* vgem's uAPI (include/uapi/drm/vgem_drm.h, MIT): not in libdrm's headers. */
struct drm_vgem_fence_attach {
	uint32_t handle;
	uint32_t flags;
	uint32_t out_fence;
	uint32_t pad;
};
struct drm_vgem_fence_signal {
	uint32_t fence;
	uint32_t flags;
};
#define VGEM_FENCE_WRITE 0x1
#define DRM_IOCTL_VGEM_FENCE_ATTACH DRM_IOWR(DRM_COMMAND_BASE + 0x1, struct drm_vgem_fence_attach)
#define DRM_IOCTL_VGEM_FENCE_SIGNAL DRM_IOW(DRM_COMMAND_BASE + 0x2, struct drm_vgem_fence_signal)

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kPage = 4096;
constexpr int64_t kLongMs = 60000;

using refnpu_test::Fd;
using refnpu_test::now_ns;
using refnpu_test::xioctl;

/* A CPU mapping, unmapped on destruction. */
class Map
{
public:
	Map() = default;
	Map(const Map &) = delete;
	Map &operator=(const Map &) = delete;
	~Map() { reset(); }
	int map(int fd, uint64_t offset, size_t size, int prot = PROT_READ | PROT_WRITE)
	{
		reset();
		void *p = mmap(nullptr, size, prot, MAP_SHARED, fd, offset);
		if (p == MAP_FAILED)
			return -errno;
		ptr_ = static_cast<uint8_t *>(p);
		size_ = size;
		return 0;
	}
	void reset()
	{
		if (ptr_)
			munmap(ptr_, size_);
		ptr_ = nullptr;
	}
	uint8_t *get() const { return ptr_; }
	uint32_t *u32() const { return reinterpret_cast<uint32_t *>(ptr_); }
	explicit operator bool() const { return ptr_ != nullptr; }

private:
	uint8_t *ptr_ = nullptr;
	size_t size_ = 0;
};

std::string read_text(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream s;

	s << f.rdbuf();
	return s.str();
}

bool write_text(const std::string &path, const std::string &text)
{
	std::ofstream f(path);

	f << text;
	f.flush();
	return bool(f);
}

uint64_t get_param(int fd, uint32_t param)
{
	drm_refnpu_get_param p = {};

	p.param = param;
	EXPECT_EQ(xioctl(fd, DRM_IOCTL_REFNPU_GET_PARAM, &p), 0) << param;
	return p.value;
}

/*
 * Page frame number backing a virtual address of this process (root only),
 * 0 when it cannot be read. The address is touched first.
 */
uint64_t pfn_of(const void *addr)
{
	volatile const uint8_t *p = static_cast<const uint8_t *>(addr);
	uint64_t entry = 0;

	(void)*p;
	Fd f(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	if (f.get() < 0)
		return 0;
	off_t off = (reinterpret_cast<uintptr_t>(addr) / kPage) * sizeof(entry);
	if (pread(f.get(), &entry, sizeof(entry), off) != sizeof(entry))
		return 0;
	if (!(entry & (1ULL << 63)))
		return 0;
	return entry & ((1ULL << 55) - 1);
}

/* The inode of a dma-buf fd: two fds name the same dma-buf iff it matches. */
uint64_t inode_of(int fd)
{
	struct stat st = {};

	return fstat(fd, &st) ? 0 : uint64_t(st.st_ino);
}

/* Number of live dma-bufs in the system, -1 without debugfs. */
int dmabuf_count()
{
	std::string text = read_text("/sys/kernel/debug/dma_buf/bufinfo");
	std::smatch m;

	if (!std::regex_search(text, m, std::regex(R"(Total (\d+) objects)")))
		return -1;
	return std::stoi(m[1]);
}

/*
 * The dma-buf count once it settled at @want: a completed job's references
 * go when the scheduler frees it, shortly after its fence signalled.
 */
int dmabuf_count_settled(int want)
{
	int n = dmabuf_count();

	for (int i = 0; i < 100 && n != want; i++) {
		usleep(20000);
		n = dmabuf_count();
	}
	return n;
}

/*
 * The dma-buf count once it stopped changing (100 ms without a change, at
 * most 2 s): the buffers of an earlier test may still be going away, from
 * the scheduler's work after their job's fence signalled.
 */
int dmabuf_count_quiet()
{
	int n = dmabuf_count();

	for (int i = 0, same = 0; i < 100 && same < 5; i++) {
		usleep(20000);
		int m = dmabuf_count();
		same = m == n ? same + 1 : 0;
		n = m;
	}
	return n;
}

/* "drm-total-memory" of an open DRM file (fdinfo), "" if absent. */
std::string fdinfo_total(int fd)
{
	std::string text = read_text("/proc/self/fdinfo/" + std::to_string(fd));
	std::smatch m;

	if (!std::regex_search(text, m, std::regex(R"(drm-total-memory:\s*(\S+ ?\S*))")))
		return "";
	return m[1];
}

/* A refnpu BO (created, or imported from a dma-buf) in one file. */
struct Bo {
	int fd = -1;
	uint32_t handle = 0;
	uint32_t flags = 0;
	uint64_t va = 0;
	uint64_t size = 0;
	uint64_t mmap_offset = 0;
	Map map;

	Bo() = default;
	Bo(const Bo &) = delete;
	Bo &operator=(const Bo &) = delete;
	~Bo() { close_handle(); }

	int info()
	{
		drm_refnpu_bo_info i = {};

		i.handle = handle;
		int ret = xioctl(fd, DRM_IOCTL_REFNPU_BO_INFO, &i);
		if (ret)
			return ret;
		flags = i.flags;
		va = i.va;
		size = i.size;
		mmap_offset = i.mmap_offset;
		return 0;
	}

	int create(int dev, uint64_t bytes, uint32_t fl = 0, bool cpu = true)
	{
		drm_refnpu_bo_create c = {};

		c.size = bytes;
		c.flags = fl;
		int ret = xioctl(dev, DRM_IOCTL_REFNPU_BO_CREATE, &c);
		if (ret)
			return ret;
		fd = dev;
		handle = c.handle;
		ret = info();
		return ret ? ret : cpu ? map.map(fd, mmap_offset, size) : 0;
	}

	/* Import a dma-buf; with @cpu, also map it through the refnpu file. */
	int import(int dev, int dmabuf, bool cpu = false)
	{
		int ret = drmPrimeFDToHandle(dev, dmabuf, &handle) ? -errno : 0;
		if (ret)
			return ret;
		fd = dev;
		ret = info();
		return ret ? ret : cpu ? map.map(fd, mmap_offset, size) : 0;
	}

	int userptr(int dev, void *ptr, uint64_t bytes, uint32_t fl = 0)
	{
		drm_refnpu_bo_userptr u = {};

		u.user_ptr = reinterpret_cast<uintptr_t>(ptr);
		u.size = bytes;
		u.flags = fl;
		int ret = xioctl(dev, DRM_IOCTL_REFNPU_BO_USERPTR, &u);
		if (ret)
			return ret;
		fd = dev;
		handle = u.handle;
		ret = info();
		if (!ret && va != u.va)
			ret = -EPROTO;
		return ret;
	}

	int export_fd(Fd *out) const
	{
		int f = -1;

		if (drmPrimeHandleToFD(fd, handle, DRM_CLOEXEC | DRM_RDWR, &f))
			return -errno;
		out->reset(f);
		return 0;
	}

	void close_handle()
	{
		map.reset();
		if (handle) {
			drm_gem_close gc = {};

			gc.handle = handle;
			drmIoctl(fd, DRM_IOCTL_GEM_CLOSE, &gc);
		}
		handle = 0;
	}

	/* Forget the handle without closing it (another Bo owns it). */
	void forget()
	{
		map.reset();
		handle = 0;
	}

	uint8_t *bytes() const { return map.get(); }
	uint32_t *u32() const { return map.u32(); }
};

/* Encoder of the commands the tests use. */
struct CmdBuf {
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

	CmdBuf &fill(uint64_t va, uint32_t bytes, uint32_t pattern)
	{
		auto &c = add<refnpu_cmd_fill>(REFNPU_OP_FILL, REFNPU_CMD_FILL_SIZE);

		c.dst.va = va;
		c.dst.pitch = bytes;
		c.rows = 1;
		c.row_bytes = bytes;
		c.pattern = pattern;
		c.pattern_bytes = 4;
		return *this;
	}

	CmdBuf &copy(uint64_t dst, uint64_t src, uint32_t bytes)
	{
		auto &c = add<refnpu_cmd_copy>(REFNPU_OP_COPY, REFNPU_CMD_COPY_SIZE);

		c.src.va = src;
		c.src.pitch = bytes;
		c.dst.va = dst;
		c.dst.pitch = bytes;
		c.rows = 1;
		c.row_bytes = bytes;
		return *this;
	}
};

/* Completion status of a syncobj's fence: 1 signalled, 0 pending, <0 error. */
int syncobj_status(int fd, uint32_t syncobj)
{
	int sf = -1;
	sync_file_info info = {};

	if (drmSyncobjExportSyncFile(fd, syncobj, &sf))
		return -1000;
	int ret = ioctl(sf, SYNC_IOC_FILE_INFO, &info);
	close(sf);
	return ret ? -1001 : info.status;
}

/* Status of a sync_file: 1 signalled, 0 pending, <0 error. */
int sync_file_status(int sf)
{
	sync_file_info info = {};

	return ioctl(sf, SYNC_IOC_FILE_INFO, &info) ? -1001 : info.status;
}

/* Poll readiness of an fd within @ms milliseconds. */
short poll_fd(int fd, short events, int ms)
{
	pollfd p = {fd, events, 0};

	return poll(&p, 1, ms) > 0 ? p.revents : 0;
}

/* One job: a command buffer, the BOs it lists and an out-syncobj. */
class Job
{
public:
	explicit Job(int fd, uint32_t queue = 0) : fd_(fd), queue_(queue)
	{
		EXPECT_EQ(drmSyncobjCreate(fd, 0, &syncobj_), 0);
	}
	Job(const Job &) = delete;
	Job &operator=(const Job &) = delete;
	~Job()
	{
		if (syncobj_)
			drmSyncobjDestroy(fd_, syncobj_);
	}

	Job &read(uint32_t handle)
	{
		bos_.push_back({handle, DRM_REFNPU_BO_REF_READ});
		return *this;
	}
	Job &write(uint32_t handle)
	{
		bos_.push_back({handle, DRM_REFNPU_BO_REF_WRITE});
		return *this;
	}
	Job &wait_on(uint32_t syncobj)
	{
		in_.push_back({syncobj, 0, 0});
		return *this;
	}
	Job &flags(uint32_t f)
	{
		flags_ = f;
		return *this;
	}

	/* Upload @cb and submit; returns the ioctl result. */
	int submit(const CmdBuf &cb)
	{
		int ret = cmd_.create(fd_, std::max<size_t>(cb.data.size(), kPage));
		if (ret)
			return ret;
		memcpy(cmd_.bytes(), cb.data.data(), cb.data.size());

		drm_refnpu_sync out = {syncobj_, 0, 0};
		drm_refnpu_submit s = {};
		s.queue = queue_;
		s.flags = flags_;
		s.cmd_handle = cmd_.handle;
		s.cmd_size = cb.data.size();
		s.bos = reinterpret_cast<uintptr_t>(bos_.data());
		s.bo_count = bos_.size();
		s.bo_stride = sizeof(drm_refnpu_bo_ref);
		s.in_syncs = reinterpret_cast<uintptr_t>(in_.data());
		s.in_sync_count = in_.size();
		s.in_sync_stride = sizeof(drm_refnpu_sync);
		s.out_syncs = reinterpret_cast<uintptr_t>(&out);
		s.out_sync_count = 1;
		s.out_sync_stride = sizeof(drm_refnpu_sync);
		ret = xioctl(fd_, DRM_IOCTL_REFNPU_SUBMIT, &s);
		/* The job keeps its command buffer alive by itself. */
		cmd_.close_handle();
		return ret;
	}

	/* Wait up to @ms; true when the job completed (with or without error). */
	bool wait(int64_t ms = kLongMs)
	{
		int64_t deadline = now_ns() + ms * 1000000;

		return drmSyncobjWait(fd_, &syncobj_, 1, deadline, 0, nullptr) == 0;
	}
	bool done() { return wait(0); }

	/* Wait for completion: 0 on success, else the job's negative errno. */
	int result(int64_t ms = kLongMs)
	{
		if (!wait(ms))
			return -ETIME;
		int st = syncobj_status(fd_, syncobj_);
		return st == 1 ? 0 : st;
	}

	uint32_t syncobj() const { return syncobj_; }

private:
	int fd_;
	uint32_t queue_;
	uint32_t flags_ = 0;
	uint32_t syncobj_ = 0;
	Bo cmd_;
	std::vector<drm_refnpu_bo_ref> bos_;
	std::vector<drm_refnpu_sync> in_;
};

/* ---- devices ------------------------------------------------------------ */

/* An open refnpu device node. */
struct Node {
	std::string path;
	std::string sysdev; /* /sys/class/accel/accelN/device, resolved */
	Fd fd;
	uint64_t caps = 0;
	uint64_t hw_caps = 0;

	int get() const { return fd.get(); }
	bool is_virtual() const { return caps & DRM_REFNPU_CAP_VIRTUAL; }

	std::string debugfs() const
	{
		fs::path dir = fs::path("/sys/kernel/debug/accel") / fs::path(sysdev).filename();

		return fs::exists(dir / "inject") ? dir.string() : "";
	}
	bool can_inject() const
	{
		return (hw_caps & REFNPU_CAP_FAULT_INJECT) && !debugfs().empty();
	}
	/* Arm fault injection for the next job of @queue. */
	bool inject(unsigned int queue, uint32_t flags, uint32_t delay_us = 0,
		    uint64_t addr = 0) const
	{
		std::ostringstream s;

		s << queue << " " << flags << " 0 " << delay_us << " " << addr << "\n";
		return write_text(debugfs() + "/inject", s.str());
	}
	/* A counter of the device's debugfs "counters", -1 without it. */
	long long counter(const std::string &name) const
	{
		std::string text = read_text(debugfs() + "/counters");
		std::smatch m;

		if (!std::regex_search(text, m, std::regex("(^|\n)" + name + R"( (\d+))")))
			return -1;
		return std::stoll(m[2]);
	}
	long long faults() const { return counter("faults"); }
	/* IOMMU domain type of the device ("DMA", "identity", ...), "" if none. */
	std::string iommu_type() const
	{
		std::string t = read_text(sysdev + "/iommu_group/type");

		t.erase(std::remove(t.begin(), t.end(), '\n'), t.end());
		return t;
	}
	/* The PCI address, e.g. "00:03.0" (as the IOMMU drivers print it). */
	std::string pci_bdf() const
	{
		std::string name = fs::path(sysdev).filename().string();

		return name.size() > 5 ? name.substr(5) : name;
	}
};

/* Every refnpu node, one per device, in /dev/accel order. */
std::vector<std::string> node_paths()
{
	std::vector<std::string> out;
	const char *env = std::getenv("REFNPU_NODE");

	if (env)
		out.push_back(env);
	for (int i = 0; i < 64; i++) {
		std::string p = "/dev/accel/accel" + std::to_string(i);
		if (fs::exists(p) && (!env || p != env))
			out.push_back(p);
	}
	return out;
}

bool open_node(const std::string &path, Node *n)
{
	std::error_code ec;
	fs::path dev = fs::path("/sys/class/accel") / fs::path(path).filename() / "device";

	n->fd.reset(open(path.c_str(), O_RDWR | O_CLOEXEC));
	if (n->fd.get() < 0)
		return false;
	drmVersionPtr v = drmGetVersion(n->fd.get());
	bool ours = v && std::string(v->name, v->name_len) == "refnpu";
	drmFreeVersion(v);
	if (!ours)
		return false;
	n->path = path;
	n->sysdev = fs::canonical(dev, ec).string();
	n->caps = get_param(n->get(), DRM_REFNPU_PARAM_CAPABILITIES);
	n->hw_caps = get_param(n->get(), DRM_REFNPU_PARAM_HW_CAPS);
	return true;
}

/* vgem's card node, or -1 when vgem is not loaded. */
int open_vgem()
{
	for (int i = 0; i < 16; i++) {
		std::string path = "/dev/dri/card" + std::to_string(i);
		int f = open(path.c_str(), O_RDWR | O_CLOEXEC);
		if (f < 0)
			continue;
		drmVersionPtr v = drmGetVersion(f);
		bool vgem = v && std::string(v->name, v->name_len) == "vgem";
		drmFreeVersion(v);
		if (vgem)
			return f;
		close(f);
	}
	return -1;
}

/* A vgem dumb buffer with its CPU mapping through vgem. */
struct VgemBo {
	int fd = -1;
	uint32_t handle = 0;
	uint64_t size = 0;
	Map map;

	VgemBo() = default;
	VgemBo(const VgemBo &) = delete;
	VgemBo &operator=(const VgemBo &) = delete;
	~VgemBo() { close_handle(); }

	int create(int vgem, uint64_t bytes)
	{
		drm_mode_create_dumb c = {};
		drm_mode_map_dumb m = {};

		c.width = 1024;
		c.height = bytes / 4096;
		c.bpp = 32;
		int ret = xioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &c);
		if (ret)
			return ret;
		fd = vgem;
		handle = c.handle;
		size = c.size;
		m.handle = handle;
		ret = xioctl(vgem, DRM_IOCTL_MODE_MAP_DUMB, &m);
		return ret ? ret : map.map(vgem, m.offset, size);
	}

	int export_fd(Fd *out) const
	{
		int f = -1;

		if (drmPrimeHandleToFD(fd, handle, DRM_CLOEXEC | DRM_RDWR, &f))
			return -errno;
		out->reset(f);
		return 0;
	}

	/* Attach a vgem fence to the buffer's dma_resv; returns its id. */
	int attach_fence(bool write, uint32_t *fence) const
	{
		drm_vgem_fence_attach a = {};

		a.handle = handle;
		a.flags = write ? VGEM_FENCE_WRITE : 0;
		int ret = xioctl(fd, DRM_IOCTL_VGEM_FENCE_ATTACH, &a);
		*fence = a.out_fence;
		return ret;
	}

	void close_handle()
	{
		map.reset();
		if (handle) {
			drm_gem_close gc = {};

			gc.handle = handle;
			drmIoctl(fd, DRM_IOCTL_GEM_CLOSE, &gc);
		}
		handle = 0;
	}
};

int vgem_signal(int vgem, uint32_t fence)
{
	drm_vgem_fence_signal s = {};

	s.fence = fence;
	return xioctl(vgem, DRM_IOCTL_VGEM_FENCE_SIGNAL, &s);
}

/* memfd memory exported through /dev/udmabuf. */
struct Udmabuf {
	Fd memfd;
	Fd dmabuf;
	Map map;
	uint64_t size = 0;

	int create(uint64_t bytes)
	{
		Fd dev(open("/dev/udmabuf", O_RDWR | O_CLOEXEC));
		if (dev.get() < 0)
			return -errno;
		memfd.reset(memfd_create("refnpu-udmabuf", MFD_ALLOW_SEALING | MFD_CLOEXEC));
		if (memfd.get() < 0)
			return -errno;
		if (ftruncate(memfd.get(), bytes) || fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK))
			return -errno;
		size = bytes;
		int ret = map.map(memfd.get(), 0, bytes);
		if (ret)
			return ret;

		udmabuf_create c = {};
		c.memfd = memfd.get();
		c.flags = UDMABUF_FLAGS_CLOEXEC;
		c.offset = 0;
		c.size = bytes;
		int f = ioctl(dev.get(), UDMABUF_CREATE, &c);
		if (f < 0)
			return -errno;
		dmabuf.reset(f);
		return 0;
	}
};

/*
 * A gate: a pending vgem write fence on a vgem buffer, imported into a
 * refnpu file. A refnpu job that lists the gate for reading cannot start
 * before open() signals the fence (implicit sync through the dma_resv).
 */
struct Gate {
	Fd vgem;
	VgemBo bo;
	Fd dmabuf;
	Bo imported;
	uint32_t fence = 0;
	bool armed = false;

	/* Returns false (with a failure) when vgem is unusable. */
	bool arm(int refnpu_fd)
	{
		vgem.reset(open_vgem());
		if (vgem.get() < 0)
			return false;
		EXPECT_EQ(bo.create(vgem.get(), kPage * 4), 0);
		EXPECT_EQ(bo.export_fd(&dmabuf), 0);
		EXPECT_EQ(imported.import(refnpu_fd, dmabuf.get()), 0);
		EXPECT_EQ(bo.attach_fence(true, &fence), 0);
		armed = !::testing::Test::HasFailure();
		return armed;
	}
	/* A sync_file of the gate's fence (DMA_BUF_IOCTL_EXPORT_SYNC_FILE). */
	int sync_file() const
	{
		dma_buf_export_sync_file e = {};

		e.flags = DMA_BUF_SYNC_READ;
		return ioctl(dmabuf.get(), DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e) ? -errno : e.fd;
	}
	void open()
	{
		if (armed) {
			EXPECT_EQ(vgem_signal(vgem.get(), fence), 0);
		}
		armed = false;
	}
	~Gate() { open(); }
};

/* ---- fixture ------------------------------------------------------------ */

class DmaBuf : public ::testing::Test
{
protected:
	void SetUp() override
	{
		for (const auto &p : node_paths()) {
			Node n;
			if (!open_node(p, &n))
				continue;
			bool dup = std::any_of(nodes.begin(), nodes.end(),
					       [&](const Node &o) { return o.sysdev == n.sysdev; });
			if (!dup)
				nodes.push_back(std::move(n));
		}
		if (nodes.empty())
			GTEST_SKIP() << "no refnpu device";
		fd = nodes[0].get();
	}

	/* A second open file of the first device. */
	Fd reopen() const { return Fd(open(nodes[0].path.c_str(), O_RDWR | O_CLOEXEC)); }

	/* Fill @n bytes with a pattern derived from @seed. */
	static void pattern(uint8_t *p, size_t n, unsigned seed)
	{
		for (size_t i = 0; i < n; i++)
			p[i] = uint8_t(i * 31 + seed * 7 + (i >> 9));
	}
	static bool has_pattern(const uint8_t *p, size_t n, unsigned seed)
	{
		for (size_t i = 0; i < n; i++)
			if (p[i] != uint8_t(i * 31 + seed * 7 + (i >> 9)))
				return false;
		return true;
	}
	static bool all_u32(const uint8_t *p, size_t n, uint32_t v)
	{
		for (size_t i = 0; i < n / 4; i++)
			if (reinterpret_cast<const uint32_t *>(p)[i] != v)
				return false;
		return true;
	}

	std::vector<Node> nodes;
	int fd = -1;
};

#define REQUIRE_VGEM(var)                                                                          \
	Fd var(open_vgem());                                                                       \
	if (var.get() < 0)                                                                         \
	GTEST_SKIP() << "vgem is not loaded"

#define REQUIRE_UDMABUF()                                                                          \
	if (!fs::exists("/dev/udmabuf"))                                                           \
	GTEST_SKIP() << "no /dev/udmabuf (CONFIG_UDMABUF)"

#define REQUIRE_TWO_DEVICES()                                                                      \
	if (nodes.size() < 2)                                                                      \
	GTEST_SKIP() << "needs two refnpu devices, found " << nodes.size()

#define REQUIRE_USERPTR()                                                                          \
	if (!(nodes[0].caps & DRM_REFNPU_CAP_USERPTR))                                             \
	GTEST_SKIP() << "the driver has no userptr BOs"

/* ---- PRIME sharing: foreign exporters and importers ---------------------- */

/* memfd memory, exported by udmabuf, is read and written by refnpu jobs. */
TEST_F(DmaBuf, UdmabufMemoryIsReadAndWrittenByJobs)
{
	REQUIRE_UDMABUF();
	const uint64_t size = 64 * 1024, half = size / 2;
	Udmabuf u;
	Bo imp, dst;

	ASSERT_EQ(u.create(size), 0);
	pattern(u.map.get(), half, 1);
	ASSERT_EQ(imp.import(fd, u.dmabuf.get(), true), 0);
	EXPECT_EQ(imp.size, size);
	EXPECT_EQ(imp.flags, 0u);
	ASSERT_EQ(dst.create(fd, half), 0);

	{
		Job j(fd);
		CmdBuf cb;
		cb.copy(dst.va, imp.va, half).fill(imp.va + half, half, 0x5eed1234);
		ASSERT_EQ(j.read(imp.handle).write(imp.handle).write(dst.handle).submit(cb), 0);
		ASSERT_EQ(j.result(), 0);
	}
	EXPECT_TRUE(has_pattern(dst.bytes(), half, 1)) << "the device read the memfd";
	EXPECT_TRUE(all_u32(u.map.get() + half, half, 0x5eed1234))
		<< "the memfd mapping shows what the device wrote";

	/* Zero-copy: new CPU data in the memfd, no re-import, the device sees it. */
	pattern(u.map.get(), half, 2);
	{
		Job j(fd);
		CmdBuf cb;
		cb.copy(dst.va, imp.va, half);
		ASSERT_EQ(j.read(imp.handle).write(dst.handle).submit(cb), 0);
		ASSERT_EQ(j.result(), 0);
	}
	EXPECT_TRUE(has_pattern(dst.bytes(), half, 2));

	/*
	 * refnpu's CPU mapping of the import is udmabuf's mmap of the memfd's
	 * pages: a write through one is visible through the other at once.
	 * (udmabuf maps with VM_PFNMAP, which /proc/self/pagemap does not
	 * report, so the page frames are compared only when it does.)
	 */
	pattern(imp.bytes() + half, half, 3);
	EXPECT_TRUE(has_pattern(u.map.get() + half, half, 3));
	uint64_t pfn = pfn_of(imp.bytes());
	if (pfn) {
		EXPECT_EQ(pfn_of(u.map.get()), pfn);
	}
}

/* vgem -> refnpu: the device writes a vgem buffer, vgem's CPU mapping sees it. */
TEST_F(DmaBuf, VgemBufferIsWrittenByTheDeviceAndReadThroughVgem)
{
	REQUIRE_VGEM(vgem);
	const uint64_t size = 64 * 1024, half = size / 2;
	VgemBo vb;
	Fd dmabuf;
	Bo imp, dst;

	ASSERT_EQ(vb.create(vgem.get(), size), 0);
	ASSERT_EQ(vb.size, size);
	pattern(vb.map.get(), half, 3);
	ASSERT_EQ(vb.export_fd(&dmabuf), 0);
	ASSERT_EQ(imp.import(fd, dmabuf.get(), true), 0);
	ASSERT_EQ(dst.create(fd, half), 0);

	Job j(fd);
	CmdBuf cb;
	cb.copy(dst.va, imp.va, half).fill(imp.va + half, half, 0xfeedface);
	ASSERT_EQ(j.read(imp.handle).write(imp.handle).write(dst.handle).submit(cb), 0);
	ASSERT_EQ(j.result(), 0);

	EXPECT_TRUE(has_pattern(dst.bytes(), half, 3)) << "the device read vgem's pages";
	EXPECT_TRUE(all_u32(vb.map.get() + half, half, 0xfeedface))
		<< "vgem's CPU mapping shows what the device wrote";
	uint64_t pfn = pfn_of(vb.map.get());
	if (pfn) {
		EXPECT_EQ(pfn_of(imp.bytes()), pfn) << "refnpu maps vgem's own pages";
	}
}

/*
 * Two GEM objects of one file may share a reservation object: a vgem
 * buffer imported, opened a second time by its global name, its first
 * handle closed (which forgets the import, drm_gem_remove_prime_handles())
 * and imported again is a second object on the same dma-buf. A job
 * listing both must lock the shared dma_resv once: locking it twice with
 * one acquire context is -EALREADY, which SUBMIT used to return.
 */
/*
 * Two objects of one vgem buffer in file @fd, hence of one reservation:
 * @named opened by global name (the import it names is closed), @again a
 * new import of the same dma-buf. Needs CAP_SYS_ADMIN (global names).
 */
void two_objects_of_one_resv(int fd, int vgem, uint64_t size, VgemBo &vb, Fd &dmabuf, Bo &named,
			     Bo &again)
{
	Bo first;

	ASSERT_EQ(vb.create(vgem, size), 0);
	ASSERT_EQ(vb.export_fd(&dmabuf), 0);
	ASSERT_EQ(first.import(fd, dmabuf.get()), 0);
	drm_gem_flink fl = {};
	fl.handle = first.handle;
	ASSERT_EQ(xioctl(fd, DRM_IOCTL_GEM_FLINK, &fl), 0);
	drm_gem_open op = {};
	op.name = fl.name;
	ASSERT_EQ(xioctl(fd, DRM_IOCTL_GEM_OPEN, &op), 0);
	named.fd = fd;
	named.handle = op.handle;
	ASSERT_EQ(named.info(), 0);
	first.close_handle();
	ASSERT_EQ(again.import(fd, dmabuf.get()), 0);
	ASSERT_NE(again.handle, named.handle) << "the second import is a new object";
	ASSERT_NE(again.va, named.va);
}

TEST_F(DmaBuf, JobListsTwoObjectsOfOneReservation)
{
	REQUIRE_VGEM(vgem);
	if (geteuid() != 0)
		GTEST_SKIP() << "global GEM names need CAP_SYS_ADMIN";
	const uint64_t size = 16 * 1024;
	VgemBo vb;
	Fd dmabuf;
	Bo named, again;

	ASSERT_NO_FATAL_FAILURE(
		two_objects_of_one_resv(fd, vgem.get(), size, vb, dmabuf, named, again));
	Job j(fd);
	CmdBuf cb;
	cb.fill(named.va, size / 2, 0x0b0e0b0e).fill(again.va + size / 2, size / 2, 0x1dea1dea);
	ASSERT_EQ(j.write(named.handle).write(again.handle).submit(cb), 0)
		<< "both objects listed: their shared reservation is locked once";
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(all_u32(vb.map.get(), size / 2, 0x0b0e0b0e));
	EXPECT_TRUE(all_u32(vb.map.get() + size / 2, size / 2, 0x1dea1dea));
}

/*
 * A job listing two objects of one reservation, the first for writing and
 * the second for reading, adds its fence to that reservation twice: a
 * write fence does not stand in for a read one. Reserving one slot per
 * object reserved one in all (dma_resv_reserve_fences() calls do not add
 * up), and when the reservation had exactly one slot free the second
 * fence hit the BUG_ON in dma_resv_add_fence(). k unsignalled vgem read
 * fences, a context each, hold k slots first: for some k below 16 exactly
 * one is free, whatever the slab rounds the table up to.
 */
TEST_F(DmaBuf, JobWritingAndReadingOneReservationReservesASlotForEach)
{
	REQUIRE_VGEM(vgem);
	if (geteuid() != 0)
		GTEST_SKIP() << "global GEM names need CAP_SYS_ADMIN";
	const uint64_t size = 16 * 1024, half = size / 2;

	for (int k = 0; k < 16; k++) {
		SCOPED_TRACE("read fences before the job: " + std::to_string(k));
		VgemBo vb;
		Fd dmabuf;
		Bo named, again;
		ASSERT_NO_FATAL_FAILURE(
			two_objects_of_one_resv(fd, vgem.get(), size, vb, dmabuf, named, again));
		pattern(vb.map.get() + half, half, unsigned(k));
		std::vector<uint32_t> fences(k);
		for (auto &f : fences)
			ASSERT_EQ(vb.attach_fence(false, &f), 0);

		Job j(fd);
		CmdBuf cb;
		cb.copy(named.va, again.va + half, half);
		int ret = j.write(named.handle).read(again.handle).submit(cb);
		for (auto f : fences)
			EXPECT_EQ(vgem_signal(vgem.get(), f), 0);
		ASSERT_EQ(ret, 0);
		ASSERT_EQ(j.result(), 0);
		EXPECT_TRUE(has_pattern(vb.map.get(), half, unsigned(k)));
	}
}

/*
 * refnpu -> vgem: vgem imports a refnpu BO. vgem refuses CPU mappings of
 * imported buffers (drm_gem_dumb_map_offset), so its view is the dma-buf
 * it re-exports: the very dma-buf refnpu exported, mapping refnpu's pages.
 */
TEST_F(DmaBuf, RefnpuBufferIsImportedByVgem)
{
	REQUIRE_VGEM(vgem);
	const uint64_t size = 64 * 1024;
	Bo bo;
	Fd dmabuf, again;
	uint32_t vh = 0;

	ASSERT_EQ(bo.create(fd, size), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);
	ASSERT_EQ(drmPrimeFDToHandle(vgem.get(), dmabuf.get(), &vh), 0);
	dmabuf.reset();

	int f = -1;
	ASSERT_EQ(drmPrimeHandleToFD(vgem.get(), vh, DRM_CLOEXEC | DRM_RDWR, &f), 0);
	again.reset(f);
	Fd mine;
	ASSERT_EQ(bo.export_fd(&mine), 0);
	EXPECT_EQ(inode_of(again.get()), inode_of(mine.get()))
		<< "vgem's handle names the dma-buf refnpu exported";

	Map vm;
	ASSERT_EQ(vm.map(again.get(), 0, size), 0);
	pattern(vm.get(), size, 4);
	EXPECT_TRUE(has_pattern(bo.bytes(), size, 4));
	{
		Job j(fd);
		CmdBuf cb;
		cb.fill(bo.va + size / 2, size / 2, 0x0badcafe);
		ASSERT_EQ(j.write(bo.handle).submit(cb), 0);
		ASSERT_EQ(j.result(), 0);
	}
	EXPECT_TRUE(all_u32(vm.get() + size / 2, size / 2, 0x0badcafe));
	uint64_t pfn = pfn_of(bo.bytes());
	if (pfn) {
		EXPECT_EQ(pfn_of(vm.get()), pfn);
	}

	drm_gem_close gc = {};
	gc.handle = vh;
	EXPECT_EQ(drmIoctl(vgem.get(), DRM_IOCTL_GEM_CLOSE, &gc), 0);
}

/* Zero-copy export: the dma-buf's mapping and the BO's are the same pages. */
TEST_F(DmaBuf, ExportedMappingIsTheBoItself)
{
	const uint64_t size = 32 * 1024;
	Bo bo;
	Fd dmabuf;
	Map m;

	ASSERT_EQ(bo.create(fd, size), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);
	ASSERT_EQ(m.map(dmabuf.get(), 0, size), 0);

	dma_buf_sync sync = {DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW};
	ASSERT_EQ(ioctl(dmabuf.get(), DMA_BUF_IOCTL_SYNC, &sync), 0);
	pattern(m.get(), size, 5);
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
	ASSERT_EQ(ioctl(dmabuf.get(), DMA_BUF_IOCTL_SYNC, &sync), 0);
	EXPECT_TRUE(has_pattern(bo.bytes(), size, 5)) << "a write through the dma-buf";

	Job j(fd);
	CmdBuf cb;
	cb.fill(bo.va, size, 0x600df00d);
	ASSERT_EQ(j.write(bo.handle).submit(cb), 0);
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(all_u32(m.get(), size, 0x600df00d)) << "the device's write, no transfer";
	uint64_t pfn = pfn_of(bo.bytes());
	if (pfn)
		for (uint64_t off = 0; off < size; off += kPage) {
			EXPECT_EQ(pfn_of(m.get() + off), pfn_of(bo.bytes() + off)) << off;
		}
}

/* Importing our own dma-buf gives back the same GEM object. */
TEST_F(DmaBuf, SelfImportReturnsTheSameObject)
{
	const uint64_t size = 16 * 1024;
	Bo bo;
	Fd dmabuf;

	ASSERT_EQ(bo.create(fd, size), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);
	int before = dmabuf_count();

	/* Same file: the same handle. */
	uint32_t h = 0;
	ASSERT_EQ(drmPrimeFDToHandle(fd, dmabuf.get(), &h), 0);
	EXPECT_EQ(h, bo.handle);

	/* Another file of the device: its own handle on the same object. */
	Fd other = reopen();
	ASSERT_GE(other.get(), 0);
	Bo imp;
	ASSERT_EQ(imp.import(other.get(), dmabuf.get(), true), 0);
	uint32_t h2 = 0;
	ASSERT_EQ(drmPrimeFDToHandle(other.get(), dmabuf.get(), &h2), 0);
	EXPECT_EQ(h2, imp.handle) << "a second import in one file is deduplicated";
	EXPECT_EQ(imp.size, bo.size);
	EXPECT_EQ(imp.mmap_offset, bo.mmap_offset) << "one GEM object, one mmap offset";
	uint64_t pfn = pfn_of(bo.bytes());
	if (pfn) {
		EXPECT_EQ(pfn_of(imp.bytes()), pfn);
	}
	Fd again;
	ASSERT_EQ(imp.export_fd(&again), 0);
	EXPECT_EQ(inode_of(again.get()), inode_of(dmabuf.get())) << "re-export: the same dma-buf";
	if (before >= 0) {
		EXPECT_EQ(dmabuf_count(), before) << "no new dma-buf was created";
	}

	/* The other file's job writes; the exporter's mapping sees it. */
	Job j(other.get());
	CmdBuf cb;
	cb.fill(imp.va, size, 0x51f51f00);
	ASSERT_EQ(j.write(imp.handle).submit(cb), 0);
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(all_u32(bo.bytes(), size, 0x51f51f00));
}

/* Device A's output is device B's input, and the other way round. */
TEST_F(DmaBuf, TwoDevicesChainThroughADmaBuf)
{
	REQUIRE_TWO_DEVICES();
	const uint64_t size = 64 * 1024;

	for (int dir = 0; dir < 2; dir++) {
		SCOPED_TRACE(dir ? "B to A" : "A to B");
		const Node &a = nodes[dir], &b = nodes[1 - dir];
		Bo src, mid, imp, out;
		Fd dmabuf;

		ASSERT_EQ(src.create(a.get(), size), 0);
		pattern(src.bytes(), size, 6 + dir);
		ASSERT_EQ(mid.create(a.get(), size), 0);
		ASSERT_EQ(mid.export_fd(&dmabuf), 0);
		ASSERT_EQ(imp.import(b.get(), dmabuf.get(), true), 0);
		ASSERT_EQ(out.create(b.get(), size), 0);

		/*
		 * A's job is slow when A can delay it; B's job is submitted at
		 * once, and the shared dma_resv alone orders it after A's.
		 */
		bool delayed = a.can_inject() && a.inject(0, REFNPU_DBG_INJECT_DELAY, 300000);
		Job ja(a.get()), jb(b.get());
		CmdBuf ca, cb;
		ca.copy(mid.va, src.va, size);
		cb.copy(out.va, imp.va, size);
		ASSERT_EQ(ja.read(src.handle).write(mid.handle).submit(ca), 0);
		ASSERT_EQ(jb.read(imp.handle).write(out.handle).submit(cb), 0);
		if (delayed) {
			EXPECT_FALSE(jb.wait(100)) << "B ran before A's write finished";
		}
		ASSERT_EQ(ja.result(), 0);
		ASSERT_EQ(jb.result(), 0);
		EXPECT_TRUE(has_pattern(out.bytes(), size, 6 + dir)) << "B read what A wrote";
		uint64_t pfn = pfn_of(mid.bytes());
		if (pfn) {
			EXPECT_EQ(pfn_of(imp.bytes()), pfn) << "B maps A's pages";
		}
	}
}

/* ---- lifetimes ---------------------------------------------------------- */

/*
 * An exporter, its dma-buf fd and a refnpu import of it are released in
 * each of the six orders. While the import lives the device keeps using
 * it; at the end no dma-buf and no memory of the importing file is left.
 */
struct Sharing {
	std::function<void()> close_exporter;
	Fd dmabuf;
	Fd importer;
	Bo imp;
};

class DmaBufLifetime : public DmaBuf
{
protected:
	/* Run the six orders with exporters made by @make. */
	void every_order(const std::function<bool(Sharing &)> &make)
	{
		const std::array<std::array<int, 3>, 6> orders = {{
			{0, 1, 2},
			{0, 2, 1},
			{1, 0, 2},
			{1, 2, 0},
			{2, 0, 1},
			{2, 1, 0},
		}};
		const char *names[] = {"dma-buf fd", "import handle", "exporter"};
		int base = dmabuf_count();

		for (const auto &order : orders) {
			std::string trace;
			for (int s : order)
				trace += std::string(names[s]) + " ";
			SCOPED_TRACE("closing " + trace);
			Sharing sh;
			sh.importer = reopen();
			ASSERT_GE(sh.importer.get(), 0);
			std::string mem0 = fdinfo_total(sh.importer.get());
			ASSERT_TRUE(make(sh));
			ASSERT_EQ(sh.imp.import(sh.importer.get(), sh.dmabuf.get()), 0);
			unsigned round = 0;
			for (int s : order) {
				if (s == 0)
					sh.dmabuf.reset();
				else if (s == 1)
					sh.imp.close_handle();
				else
					sh.close_exporter();
				if (!sh.imp.handle)
					continue;
				/* The import still works without what was closed. */
				Job j(sh.importer.get());
				CmdBuf cb;
				cb.fill(sh.imp.va, kPage, 0x11110000 + ++round);
				ASSERT_EQ(j.write(sh.imp.handle).submit(cb), 0);
				EXPECT_EQ(j.result(), 0);
			}
			EXPECT_EQ(fdinfo_total(sh.importer.get()), mem0)
				<< "the importing file still accounts the buffer";
			if (base >= 0) {
				EXPECT_EQ(dmabuf_count_settled(base), base) << "a dma-buf leaked";
			}
		}
	}
};

TEST_F(DmaBufLifetime, UdmabufInEveryOrder)
{
	REQUIRE_UDMABUF();
	every_order([](Sharing &sh) {
		auto u = std::make_shared<Udmabuf>();
		if (u->create(4 * kPage))
			return false;
		sh.dmabuf = std::move(u->dmabuf);
		sh.close_exporter = [u]() {
			u->map.reset();
			u->memfd.reset();
		};
		return true;
	});
}

TEST_F(DmaBufLifetime, VgemInEveryOrder)
{
	REQUIRE_VGEM(probe);
	every_order([](Sharing &sh) {
		auto v = std::make_shared<std::pair<Fd, VgemBo>>();
		v->first.reset(open_vgem());
		if (v->first.get() < 0 || v->second.create(v->first.get(), 4 * kPage) ||
		    v->second.export_fd(&sh.dmabuf))
			return false;
		/* The exporter goes entirely: handle and vgem file. */
		sh.close_exporter = [v]() {
			v->second.close_handle();
			v->first.reset();
		};
		return true;
	});
}

TEST_F(DmaBufLifetime, RefnpuFileInEveryOrder)
{
	std::string path = nodes[0].path;
	every_order([path](Sharing &sh) {
		auto e = std::make_shared<std::pair<Fd, Bo>>();
		e->first.reset(open(path.c_str(), O_RDWR | O_CLOEXEC));
		if (e->first.get() < 0 || e->second.create(e->first.get(), 4 * kPage) ||
		    e->second.export_fd(&sh.dmabuf))
			return false;
		sh.close_exporter = [e]() {
			e->second.close_handle();
			e->first.reset();
		};
		return true;
	});
}

TEST_F(DmaBufLifetime, OtherRefnpuDeviceInEveryOrder)
{
	REQUIRE_TWO_DEVICES();
	std::string path = nodes[1].path;
	every_order([path](Sharing &sh) {
		auto e = std::make_shared<std::pair<Fd, Bo>>();
		e->first.reset(open(path.c_str(), O_RDWR | O_CLOEXEC));
		if (e->first.get() < 0 || e->second.create(e->first.get(), 4 * kPage) ||
		    e->second.export_fd(&sh.dmabuf))
			return false;
		sh.close_exporter = [e]() {
			e->second.close_handle();
			e->first.reset();
		};
		return true;
	});
}

/*
 * A queued job keeps an imported buffer alive: everything user space held
 * on the buffer is closed (memfd, its mapping, the dma-buf, the handle,
 * the job's syncobj) before the job may start; it then runs on the pages,
 * which are freed after it. (The importing file stays open: closing a file
 * waits until its queued jobs have reached the hardware.)
 */
TEST_F(DmaBuf, QueuedJobKeepsImportedPagesAlive)
{
	REQUIRE_UDMABUF();
	REQUIRE_VGEM(probe);
	int base = dmabuf_count_quiet();
	Fd file = reopen();
	Gate gate;
	Fd sfd;

	ASSERT_TRUE(gate.arm(file.get()));
	int with_gate = dmabuf_count_quiet();
	{
		Udmabuf u;
		Bo imp;
		ASSERT_EQ(u.create(16 * kPage), 0);
		ASSERT_EQ(imp.import(file.get(), u.dmabuf.get()), 0);
		Job j(file.get());
		CmdBuf cb;
		cb.fill(imp.va, 16 * kPage, 0xdeadbeef);
		ASSERT_EQ(j.read(gate.imported.handle).write(imp.handle).submit(cb), 0);
		int sf = -1;
		ASSERT_EQ(drmSyncobjExportSyncFile(file.get(), j.syncobj(), &sf), 0);
		sfd.reset(sf);
	}
	gate.imported.close_handle();
	EXPECT_EQ(sync_file_status(sfd.get()), 0) << "the job ran before the gate opened";
	if (with_gate >= 0) {
		EXPECT_EQ(dmabuf_count(), with_gate + 1) << "the job holds the udmabuf";
	}
	gate.open();
	EXPECT_EQ(poll_fd(sfd.get(), POLLIN, 60000), POLLIN);
	EXPECT_EQ(sync_file_status(sfd.get()), 1) << "the job ran on the kept pages";
	file.reset();
	gate.dmabuf.reset();
	gate.bo.close_handle();
	if (base >= 0) {
		EXPECT_EQ(dmabuf_count_settled(base), base);
	}
}

/*
 * A process killed with a job still queued (held back by a vgem fence):
 * the job never runs and its fence fails with -ESRCH (Documentation/
 * uapi.rst), once its dependencies signalled, whoever else waits on it.
 */
TEST_F(DmaBuf, KilledProcessQueuedJobFailsWithEsrch)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	int p[2];

	ASSERT_TRUE(gate.arm(fd));
	/* The child reports the number of its sync_file through a pipe. */
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	Fd rd(p[0]), wr(p[1]);
	std::string node = nodes[0].path;

	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The child: its own file, the gate imported, a queued job. */
		Fd file(open(node.c_str(), O_RDWR | O_CLOEXEC));
		Bo imp, dst;
		int sf = -1;
		if (file.get() < 0 || imp.import(file.get(), gate.dmabuf.get()) ||
		    dst.create(file.get(), kPage))
			_exit(2);
		Job j(file.get());
		CmdBuf cb;
		cb.fill(dst.va, kPage, 0x5a5a5a5a);
		if (j.read(imp.handle).write(dst.handle).submit(cb) ||
		    drmSyncobjExportSyncFile(file.get(), j.syncobj(), &sf) ||
		    write(wr.get(), &sf, sizeof(sf)) != sizeof(sf))
			_exit(3);
		pause();
		_exit(4);
	}
	wr.reset();
	int child_fd = -1;
	ASSERT_EQ(read(rd.get(), &child_fd, sizeof(child_fd)), ssize_t(sizeof(child_fd)))
		<< "the child could not queue its job";
	/* Take the child's sync_file (no unix sockets in the debug kernel). */
	Fd pidfd(int(syscall(SYS_pidfd_open, pid, 0)));
	ASSERT_GE(pidfd.get(), 0) << strerror(errno);
	Fd sfd(int(syscall(SYS_pidfd_getfd, pidfd.get(), child_fd, 0)));
	ASSERT_GE(sfd.get(), 0) << strerror(errno);
	EXPECT_EQ(sync_file_status(sfd.get()), 0) << "the job ran before the gate opened";

	ASSERT_EQ(kill(pid, SIGKILL), 0);
	int wstatus = 0;
	ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
	EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);

	gate.open();
	EXPECT_EQ(poll_fd(sfd.get(), POLLIN, 60000), POLLIN);
	EXPECT_EQ(sync_file_status(sfd.get()), -ESRCH)
		<< "a killed process's queued job must fail with -ESRCH";
}

/* Same with a running job (delay injection) and the exporter's device file. */
TEST_F(DmaBuf, RunningJobKeepsAnotherDevicesBufferAlive)
{
	REQUIRE_TWO_DEVICES();
	const Node &b = nodes[1];
	if (!nodes[0].can_inject())
		GTEST_SKIP() << "needs delay injection";
	int base = dmabuf_count();
	Fd sfd;
	{
		Fd exp_file(open(b.path.c_str(), O_RDWR | O_CLOEXEC));
		Bo src;
		Fd dmabuf;
		ASSERT_EQ(src.create(exp_file.get(), 16 * kPage), 0);
		ASSERT_EQ(src.export_fd(&dmabuf), 0);
		Fd file = reopen();
		Bo imp;
		ASSERT_EQ(imp.import(file.get(), dmabuf.get()), 0);
		ASSERT_TRUE(nodes[0].inject(0, REFNPU_DBG_INJECT_DELAY, 500000));
		Job j(file.get());
		CmdBuf cb;
		cb.fill(imp.va, 16 * kPage, 0x12345678);
		ASSERT_EQ(j.write(imp.handle).submit(cb), 0);
		int sf = -1;
		ASSERT_EQ(drmSyncobjExportSyncFile(file.get(), j.syncobj(), &sf), 0);
		sfd.reset(sf);
		usleep(100000);
		/* Exporter BO, exporter file, dma-buf, import, importer: closed. */
	}
	EXPECT_EQ(sync_file_status(sfd.get()), 0) << "the delayed job is still running";
	EXPECT_GT(poll_fd(sfd.get(), POLLIN, 60000) & POLLIN, 0);
	EXPECT_EQ(sync_file_status(sfd.get()), 1);
	if (base >= 0) {
		EXPECT_EQ(dmabuf_count_settled(base), base);
	}
}

/* ---- implicit sync across drivers ---------------------------------------- */

/* A job reading a vgem buffer waits for vgem's pending write fence. */
TEST_F(DmaBuf, JobWaitsForTheExportersWriteFence)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	Bo dst;
	ASSERT_TRUE(gate.arm(fd));
	pattern(gate.bo.map.get(), kPage, 8);
	ASSERT_EQ(dst.create(fd, kPage), 0);

	Job j(fd);
	CmdBuf cb;
	cb.copy(dst.va, gate.imported.va, kPage);
	ASSERT_EQ(j.read(gate.imported.handle).write(dst.handle).submit(cb), 0);
	EXPECT_FALSE(j.wait(500)) << "the job did not wait for vgem's fence";
	EXPECT_FALSE(has_pattern(dst.bytes(), kPage, 8)) << "the job ran early";
	/* vgem's writer finishes its write, then signals. */
	pattern(gate.bo.map.get(), kPage, 9);
	gate.open();
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(has_pattern(dst.bytes(), kPage, 9)) << "the job read after the write";
}

/* DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC: the same job does not wait. */
TEST_F(DmaBuf, NoImplicitSyncIgnoresTheExportersFence)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	Bo dst;
	ASSERT_TRUE(gate.arm(fd));
	pattern(gate.bo.map.get(), kPage, 10);
	ASSERT_EQ(dst.create(fd, kPage), 0);

	Job j(fd);
	CmdBuf cb;
	cb.copy(dst.va, gate.imported.va, kPage);
	j.flags(DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC);
	ASSERT_EQ(j.read(gate.imported.handle).write(dst.handle).submit(cb), 0);
	EXPECT_EQ(j.result(30000), 0) << "the job waited although told not to";
	EXPECT_TRUE(has_pattern(dst.bytes(), kPage, 10));
}

/*
 * A foreign fence that never signals: the job waits (no refnpu timeout
 * applies before a job reaches the hardware), waits on it time out, and
 * the job runs once the fence signals - vgem signals its fences itself
 * after 10 s (VGEM_FENCE_TIMEOUT), as every dma_fence must in finite time.
 */
TEST_F(DmaBuf, UnsignalledForeignFenceHoldsTheJobUntilItExpires)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	Bo dst;
	int64_t t0 = now_ns();
	ASSERT_TRUE(gate.arm(fd));
	ASSERT_EQ(dst.create(fd, kPage), 0);

	Job j(fd);
	CmdBuf cb;
	cb.fill(dst.va, kPage, 0x77777777);
	ASSERT_EQ(j.read(gate.imported.handle).write(dst.handle).submit(cb), 0);

	drm_refnpu_bo_wait w = {};
	w.handle = dst.handle;
	w.timeout_ns = now_ns() + 2000000000LL;
	EXPECT_EQ(xioctl(fd, DRM_IOCTL_REFNPU_BO_WAIT, &w), -ETIMEDOUT);
	EXPECT_FALSE(j.done());

	ASSERT_TRUE(j.wait(30000)) << "the job never ran after vgem's fence expired";
	double waited = (now_ns() - t0) / 1e9;
	EXPECT_GE(waited, 9.0) << "the job ran before the fence expired";
	EXPECT_EQ(j.result(), 0);
	EXPECT_TRUE(all_u32(dst.bytes(), kPage, 0x77777777));
	gate.armed = false; /* expired: nothing to signal */
	RecordProperty("waited_s", std::to_string(waited));
}

/* An importer's fence (vgem on a refnpu BO) holds back the exporter's job. */
TEST_F(DmaBuf, ImportersFenceHoldsTheExportersJob)
{
	REQUIRE_VGEM(vgem);
	Bo bo;
	Fd dmabuf;
	uint32_t vh = 0, fence = 0;

	ASSERT_EQ(bo.create(fd, kPage), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);
	ASSERT_EQ(drmPrimeFDToHandle(vgem.get(), dmabuf.get(), &vh), 0);
	drm_vgem_fence_attach a = {vh, VGEM_FENCE_WRITE, 0, 0};
	ASSERT_EQ(xioctl(vgem.get(), DRM_IOCTL_VGEM_FENCE_ATTACH, &a), 0);
	fence = a.out_fence;

	Job j(fd);
	CmdBuf cb;
	cb.fill(bo.va, kPage, 0x31415926);
	ASSERT_EQ(j.write(bo.handle).submit(cb), 0);
	EXPECT_FALSE(j.wait(500)) << "refnpu wrote while vgem's write was pending";
	EXPECT_EQ(vgem_signal(vgem.get(), fence), 0);
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(all_u32(bo.bytes(), kPage, 0x31415926));

	drm_gem_close gc = {};
	gc.handle = vh;
	EXPECT_EQ(drmIoctl(vgem.get(), DRM_IOCTL_GEM_CLOSE, &gc), 0);
}

/* refnpu's job fences are in the dma_resv other drivers look at: vgem. */
TEST_F(DmaBuf, JobFencesAreVisibleToOtherImporters)
{
	REQUIRE_VGEM(vgem);
	Gate gate;
	Bo bo;
	Fd dmabuf;
	uint32_t vh = 0, fence = 0;

	ASSERT_TRUE(gate.arm(fd));
	ASSERT_EQ(bo.create(fd, kPage), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);
	ASSERT_EQ(drmPrimeFDToHandle(vgem.get(), dmabuf.get(), &vh), 0);

	Job j(fd);
	CmdBuf cb;
	cb.fill(bo.va, kPage, 1);
	ASSERT_EQ(j.read(gate.imported.handle).write(bo.handle).submit(cb), 0);

	/* vgem refuses to attach a fence while another driver's write is pending. */
	drm_vgem_fence_attach a = {vh, 0, 0, 0};
	EXPECT_EQ(xioctl(vgem.get(), DRM_IOCTL_VGEM_FENCE_ATTACH, &a), -EBUSY);
	gate.open();
	ASSERT_EQ(j.result(), 0);
	a = {vh, VGEM_FENCE_WRITE, 0, 0};
	ASSERT_EQ(xioctl(vgem.get(), DRM_IOCTL_VGEM_FENCE_ATTACH, &a), 0);
	fence = a.out_fence;
	EXPECT_EQ(vgem_signal(vgem.get(), fence), 0);

	drm_gem_close gc = {};
	gc.handle = vh;
	EXPECT_EQ(drmIoctl(vgem.get(), DRM_IOCTL_GEM_CLOSE, &gc), 0);
}

/* poll() on the exported dma-buf follows the job writing it. */
TEST_F(DmaBuf, PollOnTheDmaBufFollowsTheJob)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	Bo bo;
	Fd dmabuf;

	ASSERT_TRUE(gate.arm(fd));
	ASSERT_EQ(bo.create(fd, kPage), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);
	EXPECT_EQ(poll_fd(dmabuf.get(), POLLIN | POLLOUT, 0), POLLIN | POLLOUT) << "idle";

	Job j(fd);
	CmdBuf cb;
	cb.fill(bo.va, kPage, 2);
	ASSERT_EQ(j.read(gate.imported.handle).write(bo.handle).submit(cb), 0);
	EXPECT_EQ(poll_fd(dmabuf.get(), POLLIN | POLLOUT, 200), 0)
		<< "a pending device write blocks readers and writers";
	gate.open();
	EXPECT_EQ(poll_fd(dmabuf.get(), POLLIN, 60000), POLLIN);
	EXPECT_TRUE(j.done()) << "poll returned before the job completed";

	/* A job that only reads the BO blocks writers, not readers. */
	Gate gate2;
	ASSERT_TRUE(gate2.arm(fd));
	Bo dst;
	ASSERT_EQ(dst.create(fd, kPage), 0);
	Job r(fd);
	CmdBuf rc;
	rc.copy(dst.va, bo.va, kPage);
	ASSERT_EQ(r.read(gate2.imported.handle).read(bo.handle).write(dst.handle).submit(rc), 0);
	EXPECT_EQ(poll_fd(dmabuf.get(), POLLIN | POLLOUT, 200), POLLIN);
	gate2.open();
	EXPECT_EQ(poll_fd(dmabuf.get(), POLLOUT, 60000), POLLOUT);
	EXPECT_EQ(r.result(), 0);
}

/* DMA_BUF_IOCTL_EXPORT_SYNC_FILE hands out the job's fence, error included. */
TEST_F(DmaBuf, ExportedSyncFileCarriesTheJobFence)
{
	REQUIRE_VGEM(probe);
	for (bool fail : {false, true}) {
		SCOPED_TRACE(fail ? "failing job" : "good job");
		Gate gate;
		Bo bo;
		Fd dmabuf;
		ASSERT_TRUE(gate.arm(fd));
		ASSERT_EQ(bo.create(fd, kPage), 0);
		ASSERT_EQ(bo.export_fd(&dmabuf), 0);

		Job j(fd);
		CmdBuf cb;
		/* The failing job writes past the BO, into its unmapped guard gap. */
		cb.fill(bo.va + (fail ? bo.size : 0), kPage, 3);
		ASSERT_EQ(j.read(gate.imported.handle).write(bo.handle).submit(cb), 0);

		dma_buf_export_sync_file e = {};
		e.flags = DMA_BUF_SYNC_READ;
		ASSERT_EQ(ioctl(dmabuf.get(), DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e), 0);
		Fd sf(e.fd);
		EXPECT_EQ(sync_file_status(sf.get()), 0);
		EXPECT_EQ(poll_fd(sf.get(), POLLIN, 100), 0);
		gate.open();
		EXPECT_EQ(poll_fd(sf.get(), POLLIN, 60000), POLLIN);
		EXPECT_EQ(sync_file_status(sf.get()), fail ? -EFAULT : 1);
		EXPECT_EQ(j.result(), fail ? -EFAULT : 0);
	}
}

/* DMA_BUF_IOCTL_IMPORT_SYNC_FILE: a foreign fence added to a refnpu BO. */
TEST_F(DmaBuf, ImportedSyncFileOrdersTheJob)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	Bo bo, dst;
	Fd dmabuf;
	ASSERT_TRUE(gate.arm(fd));
	ASSERT_EQ(bo.create(fd, kPage), 0);
	ASSERT_EQ(dst.create(fd, kPage), 0);
	ASSERT_EQ(bo.export_fd(&dmabuf), 0);

	Fd sf(gate.sync_file());
	ASSERT_GE(sf.get(), 0);
	dma_buf_import_sync_file imp = {};
	imp.flags = DMA_BUF_SYNC_WRITE;
	imp.fd = sf.get();
	ASSERT_EQ(ioctl(dmabuf.get(), DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &imp), 0);

	/* The job lists only the refnpu BO, not the gate. */
	pattern(bo.bytes(), kPage, 11);
	Job j(fd);
	CmdBuf cb;
	cb.copy(dst.va, bo.va, kPage);
	ASSERT_EQ(j.read(bo.handle).write(dst.handle).submit(cb), 0);
	EXPECT_FALSE(j.wait(500)) << "the job ignored the imported write fence";
	gate.open();
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(has_pattern(dst.bytes(), kPage, 11));
}

/* Explicit sync: sync_files in and out of syncobjs. */
TEST_F(DmaBuf, SyncFilesRoundTripThroughSyncobjs)
{
	REQUIRE_VGEM(probe);
	Gate gate;
	Bo dst;
	ASSERT_TRUE(gate.arm(fd));
	ASSERT_EQ(dst.create(fd, kPage), 0);

	/* In: vgem's fence as a sync_file, imported into a syncobj. */
	uint32_t in = 0;
	ASSERT_EQ(drmSyncobjCreate(fd, 0, &in), 0);
	Fd sf(gate.sync_file());
	ASSERT_GE(sf.get(), 0);
	ASSERT_EQ(drmSyncobjImportSyncFile(fd, in, sf.get()), 0);

	Job j(fd);
	CmdBuf cb;
	cb.fill(dst.va, kPage, 0xabcdef01);
	/* No BO tells the job about vgem: only the explicit in-fence does. */
	j.flags(DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC).wait_on(in);
	ASSERT_EQ(j.write(dst.handle).submit(cb), 0);

	/* Out: the job's fence exported from its syncobj as a sync_file. */
	int out = -1;
	ASSERT_EQ(drmSyncobjExportSyncFile(fd, j.syncobj(), &out), 0);
	Fd osf(out);
	EXPECT_EQ(poll_fd(osf.get(), POLLIN, 500), 0) << "the job ignored its in-fence";
	gate.open();
	EXPECT_EQ(poll_fd(osf.get(), POLLIN, 60000), POLLIN);
	EXPECT_EQ(sync_file_status(osf.get()), 1);
	EXPECT_TRUE(all_u32(dst.bytes(), kPage, 0xabcdef01));
	drmSyncobjDestroy(fd, in);
}

/* ---- userptr ------------------------------------------------------------- */

/* Anonymous memory, page aligned, unmapped on destruction. */
struct Anon {
	uint8_t *p = nullptr;
	size_t size = 0;

	explicit Anon(size_t bytes, int prot = PROT_READ | PROT_WRITE) : size(bytes)
	{
		void *m = mmap(nullptr, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p = m == MAP_FAILED ? nullptr : static_cast<uint8_t *>(m);
	}
	~Anon()
	{
		if (p)
			munmap(p, size);
	}
};

/* Kilobytes of pinned memory of this process (VmPin). */
long vm_pin_kb()
{
	std::string text = read_text("/proc/self/status");
	std::smatch m;

	if (!std::regex_search(text, m, std::regex(R"(VmPin:\s*(\d+) kB)")))
		return -1;
	return std::stol(m[1]);
}

/* VmPin once it settled at @want (jobs release their BOs just after). */
long vm_pin_kb_settled(long want)
{
	long n = vm_pin_kb();

	for (int i = 0; i < 100 && n != want; i++) {
		usleep(20000);
		n = vm_pin_kb();
	}
	return n;
}

/*
 * Userptr BOs may overlap (Documentation/uapi.rst): two writable BOs over
 * the same pages, one job writing through each in turn. Each sees the
 * other's write; under DMA-API debug (debug kernel) the second mapping of
 * the pages used to report "overlapping mappings aren't supported", which
 * the harness fails as a splat.
 */
TEST_F(DmaBuf, OverlappingUserptrBosShareTheirPages)
{
	REQUIRE_USERPTR();
	const size_t size = 16 * 1024, page = 4096;
	Anon mem(size);
	Bo a, b, dst;
	ASSERT_NE(mem.p, nullptr);

	ASSERT_EQ(a.userptr(fd, mem.p, size), 0);
	ASSERT_EQ(b.userptr(fd, mem.p + page, size - page), 0) << "a second BO over 3 of its pages";
	ASSERT_EQ(dst.create(fd, page), 0);
	{
		Job j(fd);
		CmdBuf cb;
		cb.fill(a.va + page, page, 0x5eed0001);
		ASSERT_EQ(j.write(a.handle).submit(cb), 0);
		ASSERT_EQ(j.result(), 0);
	}
	{
		Job j(fd);
		CmdBuf cb;
		cb.copy(dst.va, b.va, page).fill(b.va + page, page, 0x5eed0002);
		ASSERT_EQ(j.read(b.handle).write(b.handle).write(dst.handle).submit(cb), 0);
		ASSERT_EQ(j.result(), 0);
	}
	EXPECT_TRUE(all_u32(dst.bytes(), page, 0x5eed0001))
		<< "B reads what the job wrote through A";
	EXPECT_TRUE(all_u32(mem.p + page, page, 0x5eed0001));
	EXPECT_TRUE(all_u32(mem.p + 2 * page, page, 0x5eed0002)) << "the process sees B's write";
}

/*
 * Nothing orders jobs on two userptr BOs over the same pages: each BO has
 * its own reservation object (Documentation/uapi.rst). A job R copying
 * from U1, held on queue 0 behind a delayed job, reads what a job W
 * submitted after it on queue 1 wrote through U2. The uAPI fuzzer's model
 * must allow exactly this: R's output carries W's source data, even when
 * that is another process's.
 */
TEST_F(DmaBuf, UnorderedUserptrAliasesMayReadALaterWrite)
{
	REQUIRE_USERPTR();
	if (!nodes[0].can_inject())
		GTEST_SKIP() << "needs delay injection";
	if (get_param(fd, DRM_REFNPU_PARAM_NUM_QUEUES) < 2)
		GTEST_SKIP() << "needs two queues";
	const size_t page = 4096;
	Anon mem(2 * page);
	Bo u1, u2, src, dst;
	ASSERT_NE(mem.p, nullptr);
	memset(mem.p, 0x11, 2 * page);

	ASSERT_EQ(u1.userptr(fd, mem.p, 2 * page), 0);
	ASSERT_EQ(u2.userptr(fd, mem.p + page, page), 0) << "U2 aliases U1's second page";
	ASSERT_EQ(src.create(fd, page), 0);
	ASSERT_EQ(dst.create(fd, page), 0);
	pattern(src.bytes(), page, 5);
	memset(dst.bytes(), 0, page);

	/*
	 * queue 0: a job held for 1.5 s, or half the job timeout when that is
	 * shorter (the delay must not read as a hang; 0 is no timeout), then R
	 * (the ring keeps their order)
	 */
	uint64_t timeout_ms = get_param(fd, DRM_REFNPU_PARAM_JOB_TIMEOUT_MS);
	uint64_t hold_us =
		timeout_ms ? std::min<uint64_t>(1500000, timeout_ms * 1000 / 2) : 1500000;
	ASSERT_TRUE(nodes[0].inject(0, REFNPU_DBG_INJECT_DELAY, uint32_t(hold_us)));
	Job hold(fd, 0), r(fd, 0), w(fd, 1);
	CmdBuf nop, rc, wc;
	nop.add<refnpu_cmd_nop>(REFNPU_OP_NOP, REFNPU_CMD_NOP_SIZE);
	ASSERT_EQ(hold.submit(nop), 0);
	rc.copy(dst.va, u1.va + page, page);
	ASSERT_EQ(r.read(u1.handle).write(dst.handle).submit(rc), 0);
	/* queue 1: W, submitted after R, writes the page R reads */
	wc.copy(u2.va, src.va, page);
	ASSERT_EQ(w.read(src.handle).write(u2.handle).submit(wc), 0);

	ASSERT_EQ(w.result(), 0);
	EXPECT_FALSE(r.done()) << "R must still be held behind the delayed job when W is done";
	ASSERT_EQ(r.result(), 0);
	EXPECT_EQ(hold.result(), 0);
	EXPECT_TRUE(has_pattern(mem.p + page, page, 5)) << "W wrote the page through U2";
	EXPECT_TRUE(has_pattern(dst.bytes(), page, 5))
		<< "R, submitted first, reads the bytes W wrote through the alias";
}

/*
 * A userptr BO's pages are its process's own: it cannot be exported, and
 * its global name (a privileged file may make one; the core cannot refuse
 * it) opens only in files of the same process. Before the driver's GEM
 * open hook refused it, a child process opened the name and got the
 * parent's pinned pages mapped in its own address space.
 */
TEST_F(DmaBuf, UserptrGlobalNameOpensOnlyInItsProcess)
{
	REQUIRE_USERPTR();
	if (geteuid() != 0)
		GTEST_SKIP() << "global GEM names need CAP_SYS_ADMIN";
	const size_t size = 4 * kPage;
	Anon mem(size);
	ASSERT_NE(mem.p, nullptr);
	memset(mem.p, 0x5a, size);
	Bo u;
	ASSERT_EQ(u.userptr(fd, mem.p, size), 0);
	drm_gem_flink fl = {};
	fl.handle = u.handle;
	ASSERT_EQ(xioctl(fd, DRM_IOCTL_GEM_FLINK, &fl), 0);

	/* another file of this process opens it: the same pages */
	Fd other = reopen();
	drm_gem_open op = {};
	op.name = fl.name;
	ASSERT_EQ(xioctl(other.get(), DRM_IOCTL_GEM_OPEN, &op), 0);
	Bo named, dst;
	named.fd = other.get();
	named.handle = op.handle;
	ASSERT_EQ(named.info(), 0);
	ASSERT_EQ(dst.create(other.get(), size), 0);
	{
		Job j(other.get());
		CmdBuf cb;
		cb.copy(dst.va, named.va, size);
		ASSERT_EQ(j.read(named.handle).write(dst.handle).submit(cb), 0);
		ASSERT_EQ(j.result(), 0);
	}
	EXPECT_TRUE(all_u32(dst.bytes(), size, 0x5a5a5a5a));

	/* a file of another process does not */
	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int f = open(nodes[0].path.c_str(), O_RDWR | O_CLOEXEC);
		drm_gem_open co = {};
		co.name = fl.name;
		int ret = f < 0 ? -ENODEV : xioctl(f, DRM_IOCTL_GEM_OPEN, &co);
		_exit(ret == -EOPNOTSUPP ? 0 : ret == 0 ? 1 : 2);
	}
	int st = 0;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	EXPECT_EQ(WEXITSTATUS(st), 0) << "GEM_OPEN in another process: "
				      << (WEXITSTATUS(st) == 1 ? "succeeded" : "failed otherwise")
				      << ", expected -EOPNOTSUPP";
}

TEST_F(DmaBuf, UserptrIsSharedWithTheDevice)
{
	REQUIRE_USERPTR();
	const size_t size = 64 * 1024, half = size / 2;
	Anon mem(size);
	Bo up, dst;
	ASSERT_NE(mem.p, nullptr);
	pattern(mem.p, half, 12);

	long pin0 = vm_pin_kb();
	ASSERT_EQ(up.userptr(fd, mem.p, size), 0);
	EXPECT_EQ(up.size, size);
	EXPECT_EQ(up.flags, 0u) << "writable memory maps writable";
	EXPECT_EQ(up.mmap_offset, 0u) << "no mmap offset: the process has the memory";
	if (pin0 >= 0) {
		EXPECT_EQ(vm_pin_kb(), pin0 + long(size / 1024));
	}
	ASSERT_EQ(dst.create(fd, half), 0);

	Job j(fd);
	CmdBuf cb;
	cb.copy(dst.va, up.va, half).fill(up.va + half, half, 0x0ddba11);
	ASSERT_EQ(j.read(up.handle).write(up.handle).write(dst.handle).submit(cb), 0);
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(has_pattern(dst.bytes(), half, 12));
	EXPECT_TRUE(all_u32(mem.p + half, half, 0x0ddba11)) << "the process sees the device write";

	/* Zero-copy: later CPU writes reach the device without a new BO. */
	pattern(mem.p, half, 13);
	Job k(fd);
	CmdBuf ck;
	ck.copy(dst.va, up.va, half);
	ASSERT_EQ(k.read(up.handle).write(dst.handle).submit(ck), 0);
	ASSERT_EQ(k.result(), 0);
	EXPECT_TRUE(has_pattern(dst.bytes(), half, 13));

	/* Userptr BOs stay with their process: no export. */
	Fd dmabuf;
	EXPECT_EQ(up.export_fd(&dmabuf), -EOPNOTSUPP);

	up.close_handle();
	if (pin0 >= 0) {
		EXPECT_EQ(vm_pin_kb_settled(pin0), pin0) << "closing the BO unpins its pages";
	}
}

/*
 * Read-only user memory needs DRM_REFNPU_BO_DEVICE_RO (-EACCES without it,
 * with nothing pinned) and maps read-only: a device write faults the job.
 * The flag makes writable memory read-only for the device too.
 */
TEST_F(DmaBuf, ReadOnlyUserMemoryFaultsDeviceWrites)
{
	REQUIRE_USERPTR();
	const size_t size = 16 * 1024;

	for (int kind = 0; kind < 3; kind++) {
		const char *names[] = {"mprotect(PROT_READ)", "read-only memfd mapping",
				       "DRM_REFNPU_BO_DEVICE_RO on writable memory"};
		SCOPED_TRACE(names[kind]);
		Anon mem(size);
		Fd memfd;
		Map ro;
		uint8_t *p = mem.p;
		ASSERT_NE(mem.p, nullptr);
		pattern(mem.p, size, 14);
		if (kind == 0) {
			ASSERT_EQ(mprotect(mem.p, size, PROT_READ), 0);
		} else if (kind == 1) {
			memfd.reset(memfd_create("refnpu-ro", MFD_CLOEXEC));
			ASSERT_EQ(ftruncate(memfd.get(), size), 0);
			ASSERT_EQ(pwrite(memfd.get(), mem.p, size, 0), ssize_t(size));
			ASSERT_EQ(ro.map(memfd.get(), 0, size, PROT_READ), 0);
			p = ro.get();
		}

		Bo up, dst;
		if (kind < 2) {
			long pin0 = vm_pin_kb();
			Bo rw;
			EXPECT_EQ(rw.userptr(fd, p, size), -EACCES)
				<< "a writable BO of memory the process may not write";
			if (pin0 >= 0) {
				EXPECT_EQ(vm_pin_kb(), pin0) << "a failed call pins nothing";
			}
		}
		ASSERT_EQ(up.userptr(fd, p, size, DRM_REFNPU_BO_DEVICE_RO), 0);
		EXPECT_EQ(up.flags, uint32_t(DRM_REFNPU_BO_DEVICE_RO));
		ASSERT_EQ(dst.create(fd, size), 0);
		{
			Job j(fd);
			CmdBuf cb;
			cb.copy(dst.va, up.va, size);
			ASSERT_EQ(j.read(up.handle).write(dst.handle).submit(cb), 0);
			EXPECT_EQ(j.result(), 0) << "reading is allowed";
			EXPECT_TRUE(has_pattern(dst.bytes(), size, 14));
		}
		{
			Job j(fd);
			CmdBuf cb;
			cb.fill(up.va, size, 0xbad0bad0);
			ASSERT_EQ(j.write(up.handle).submit(cb), 0);
			EXPECT_EQ(j.result(), -EFAULT) << "a device write to read-only memory";
			EXPECT_TRUE(has_pattern(p, size, 14)) << "the memory is unchanged";
		}
	}
}

TEST_F(DmaBuf, UserptrRejectsBadArguments)
{
	REQUIRE_USERPTR();
	Anon mem(4 * kPage);
	ASSERT_NE(mem.p, nullptr);
	auto call = [&](uint64_t ptr, uint64_t size, uint32_t flags, uint32_t handle = 0) {
		drm_refnpu_bo_userptr u = {};
		u.user_ptr = ptr;
		u.size = size;
		u.flags = flags;
		u.handle = handle;
		int ret = xioctl(fd, DRM_IOCTL_REFNPU_BO_USERPTR, &u);
		if (!ret) {
			drm_gem_close gc = {};
			gc.handle = u.handle;
			drmIoctl(fd, DRM_IOCTL_GEM_CLOSE, &gc);
		}
		return ret;
	};
	uint64_t p = reinterpret_cast<uintptr_t>(mem.p);

	EXPECT_EQ(call(p, 4 * kPage, 0), 0);
	EXPECT_EQ(call(p + 8, kPage, 0), -EINVAL) << "unaligned address";
	EXPECT_EQ(call(p, kPage + 8, 0), -EINVAL) << "unaligned size";
	EXPECT_EQ(call(p, 0, 0), -EINVAL) << "empty";
	EXPECT_EQ(call(p, kPage, DRM_REFNPU_BO_WC), -EINVAL) << "flag other than DEVICE_RO";
	EXPECT_EQ(call(p, kPage, 0x80000000u), -EINVAL) << "undefined flag";
	EXPECT_EQ(call(p, kPage, 0, 1), -EINVAL) << "handle not zero";
	EXPECT_EQ(call(p, get_param(fd, DRM_REFNPU_PARAM_MAX_BO_SIZE) + kPage, 0), -EINVAL);
	EXPECT_EQ(call(~0ULL & ~(kPage - 1), 2 * kPage, 0), -EINVAL) << "wraps around";

	/* A hole in the range. */
	Anon hole(3 * kPage);
	ASSERT_NE(hole.p, nullptr);
	ASSERT_EQ(munmap(hole.p + kPage, kPage), 0);
	EXPECT_EQ(call(reinterpret_cast<uintptr_t>(hole.p), 3 * kPage, 0), -EFAULT);
	EXPECT_EQ(call(0x1000, kPage, 0), -EFAULT) << "nothing mapped there";
}

/* Pinned pages count against RLIMIT_MEMLOCK without CAP_IPC_LOCK. */
TEST_F(DmaBuf, UserptrIsChargedToMemlock)
{
	REQUIRE_USERPTR();
	const std::string path = nodes[0].path;
	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* Child: drop CAP_IPC_LOCK, allow 64 KiB of locked memory. */
		__user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
		__user_cap_data_struct data[2] = {};
		if (syscall(SYS_capget, &hdr, data))
			_exit(10);
		data[0].effective &= ~(1u << CAP_IPC_LOCK);
		if (syscall(SYS_capset, &hdr, data))
			_exit(11);
		rlimit lim = {64 * 1024, 64 * 1024};
		if (setrlimit(RLIMIT_MEMLOCK, &lim))
			_exit(12);
		int dev = open(path.c_str(), O_RDWR | O_CLOEXEC);
		Anon a(48 * 1024), b(32 * 1024);
		if (dev < 0 || !a.p || !b.p)
			_exit(13);
		long pin0 = vm_pin_kb();
		drm_refnpu_bo_userptr u = {};
		u.user_ptr = reinterpret_cast<uintptr_t>(a.p);
		u.size = a.size;
		if (xioctl(dev, DRM_IOCTL_REFNPU_BO_USERPTR, &u))
			_exit(14);
		if (vm_pin_kb() != pin0 + 48)
			_exit(15);
		drm_refnpu_bo_userptr v = {};
		v.user_ptr = reinterpret_cast<uintptr_t>(b.p);
		v.size = b.size;
		if (xioctl(dev, DRM_IOCTL_REFNPU_BO_USERPTR, &v) != -ENOMEM)
			_exit(16);
		if (vm_pin_kb() != pin0 + 48)
			_exit(17);
		drm_gem_close gc = {};
		gc.handle = u.handle;
		if (drmIoctl(dev, DRM_IOCTL_GEM_CLOSE, &gc) || vm_pin_kb() != pin0)
			_exit(18);
		v.handle = 0;
		v.va = 0;
		if (xioctl(dev, DRM_IOCTL_REFNPU_BO_USERPTR, &v))
			_exit(19);
		_exit(0);
	}
	int st = 0;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	EXPECT_EQ(WEXITSTATUS(st), 0)
		<< "step " << WEXITSTATUS(st) << " failed (see the child's checks)";
}

/* The BO keeps its pinned pages when the process unmaps the range. */
TEST_F(DmaBuf, UserptrOutlivesItsMapping)
{
	REQUIRE_USERPTR();
	const size_t size = 8 * kPage;
	Bo up, dst;
	long pin0 = vm_pin_kb();
	{
		Anon mem(size);
		ASSERT_NE(mem.p, nullptr);
		pattern(mem.p, size, 15);
		ASSERT_EQ(up.userptr(fd, mem.p, size), 0);
	}
	ASSERT_EQ(dst.create(fd, size), 0);
	Job j(fd);
	CmdBuf cb;
	cb.copy(dst.va, up.va, size).fill(up.va, size, 0x5a5a5a5a);
	ASSERT_EQ(j.read(up.handle).write(up.handle).write(dst.handle).submit(cb), 0);
	ASSERT_EQ(j.result(), 0);
	EXPECT_TRUE(has_pattern(dst.bytes(), size, 15)) << "the pinned pages kept their data";
	up.close_handle();
	if (pin0 >= 0) {
		EXPECT_EQ(vm_pin_kb_settled(pin0), pin0);
	}
}

/* ---- IOMMU containment ---------------------------------------------------- */

/* A locked page of this process and its physical (= bus, without IOMMU) address. */
struct Target {
	Anon mem{kPage};
	uint64_t phys = 0;

	bool init()
	{
		if (!mem.p || mlock(mem.p, kPage))
			return false;
		for (size_t i = 0; i < kPage; i++)
			mem.p[i] = uint8_t(i ^ 0x3c);
		phys = pfn_of(mem.p) * kPage;
		return phys != 0;
	}
	bool unchanged() const
	{
		for (size_t i = 0; i < kPage; i++)
			if (mem.p[i] != uint8_t(i ^ 0x3c))
				return false;
		return true;
	}
};

/* The kernel log, for the IOMMU's own fault report. */
std::string kernel_log()
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, nullptr, 0);
	std::string buf(std::max(len, 1 << 16), '\0');

	len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf.data(), buf.size());
	buf.resize(std::max(len, 0));
	return buf;
}

/* The device's fault counter once it exceeds @before, or after 5 s. */
long long faults_settled(const Node &n, long long before)
{
	long long now = n.faults();

	for (int i = 0; i < 250 && now <= before; i++) {
		usleep(20000);
		now = n.faults();
	}
	return now;
}

/*
 * The device writes to a bus address the driver never mapped, bypassing its
 * own MMU. Behind a translating IOMMU the write is blocked: the job fails
 * with -EIO, the device and the IOMMU record the fault, memory is intact.
 */
TEST_F(DmaBuf, IommuBlocksStrayDeviceDma)
{
	const Node &n = nodes[0];
	std::string type = n.iommu_type();
	if (n.is_virtual())
		GTEST_SKIP() << "the in-kernel virtual device has no IOMMU";
	if (type != "DMA" && type != "DMA-FQ")
		GTEST_SKIP() << "no translating IOMMU (domain type '" << type << "')";
	if (!n.can_inject())
		GTEST_SKIP() << "needs fault injection (-device refnpu,fault-inject=on)";
	Target t;
	ASSERT_TRUE(t.init()) << "cannot lock a page and read its address";
	Bo dst;
	ASSERT_EQ(dst.create(fd, kPage), 0);
	long long faults = n.faults();
	uint64_t addr = t.phys + 64;

	ASSERT_TRUE(n.inject(0, REFNPU_DBG_INJECT_STRAY_DMA, 0, addr));
	Job j(fd);
	CmdBuf cb;
	cb.fill(dst.va, kPage, 0x1badd00d);
	ASSERT_EQ(j.write(dst.handle).submit(cb), 0);
	EXPECT_EQ(j.result(), -EIO) << "the stray write was not blocked";
	EXPECT_TRUE(t.unchanged()) << "guest memory changed";
	EXPECT_FALSE(all_u32(dst.bytes(), kPage, 0x1badd00d)) << "the job ran on";
	/*
	 * The fault record comes by the device's error interrupt and the
	 * IOMMU's report by the IOMMU's own: each its own MSI, which may be
	 * handled after the completion interrupt signalled the job's fence
	 * (on another CPU, or just later). So both are awaited, for at most
	 * 5 s, rather than read once.
	 */
	EXPECT_GT(faults_settled(n, faults), faults) << "the device did not report the fault";

	/* The IOMMU's own report names the page (DMAR, or virtio-iommu). */
	std::ostringstream page;
	page << std::hex << (addr & ~(kPage - 1)) / kPage;
	std::regex report("(DMAR|virtio_iommu|fault).*0x0*" + page.str() + "[0-9a-f]{3}");
	bool reported = std::regex_search(kernel_log(), report);
	for (int i = 0; i < 250 && !reported; i++) {
		usleep(20000);
		reported = std::regex_search(kernel_log(), report);
	}
	EXPECT_TRUE(reported) << "no IOMMU fault report for page 0x" << page.str()
			      << "000 in the kernel log";

	/* One-shot: the device works on. */
	Job k(fd);
	ASSERT_EQ(k.write(dst.handle).submit(cb), 0);
	EXPECT_EQ(k.result(), 0);
	EXPECT_TRUE(all_u32(dst.bytes(), kPage, 0x1badd00d));
}

/*
 * The control: without an IOMMU the same stray write lands in memory and
 * the job cannot tell. This is what the IOMMU test above is protecting
 * against, and it shows that the injection is real.
 */
TEST_F(DmaBuf, StrayDeviceDmaLandsWithoutAnIommu)
{
	const Node &n = nodes[0];
	std::string type = n.iommu_type();
	if (!type.empty() && type != "identity")
		GTEST_SKIP() << "the device is behind a translating IOMMU ('" << type << "')";
	if (!n.can_inject())
		GTEST_SKIP() << "needs fault injection (-device refnpu,fault-inject=on)";
	Target t;
	ASSERT_TRUE(t.init()) << "cannot lock a page and read its address";
	Bo dst;
	ASSERT_EQ(dst.create(fd, kPage), 0);

	ASSERT_TRUE(n.inject(0, REFNPU_DBG_INJECT_STRAY_DMA, 0, t.phys + 64));
	Job j(fd);
	CmdBuf cb;
	cb.fill(dst.va, kPage, 0x2badd00d);
	ASSERT_EQ(j.write(dst.handle).submit(cb), 0);
	EXPECT_EQ(j.result(), 0);
	for (unsigned i = 0; i < kPage; i++) {
		bool hit = i >= 64 && i < 64 + REFNPU_DBG_STRAY_DMA_BYTES;
		ASSERT_EQ(t.mem.p[i], hit ? REFNPU_DBG_STRAY_DMA_PATTERN : uint8_t(i ^ 0x3c)) << i;
	}
	EXPECT_TRUE(all_u32(dst.bytes(), kPage, 0x2badd00d));
}

/*
 * A reset that does not complete in time (Documentation/driver.rst, "Wedged
 * device"). The job hangs and, once a reset asks it to stop, goes on for a
 * while and then writes a stray burst into a page of this process
 * (REFNPU_DBG_INJECT_STUCK with _STRAY_DMA): a device still writing memory
 * after the driver gave up on it.
 *
 * First the control, without a translating IOMMU: stuck for 0.2 s, well
 * within the queue reset's bound. The reset succeeds, the job fails with
 * -ETIMEDOUT, and the late burst lands, which shows that the write is real.
 * Then stuck for 4 s, longer than the queue reset and the device reset wait
 * together: the device reset fails, and the driver must cut the device off
 * from memory before it fails the job, so the late burst must not land.
 * While wedged, jobs fail with -EIO; a reset that succeeds ends it (and
 * shows that the device has stopped, so the memory is checked after it),
 * and the device runs jobs again.
 */
TEST_F(DmaBuf, FailedResetCutsTheDeviceOffFromMemory)
{
	const Node &n = nodes[0];
	const std::string type = n.iommu_type();
	const bool translated = !type.empty() && type != "identity";
	const uint32_t stuck = REFNPU_DBG_INJECT_STUCK | REFNPU_DBG_INJECT_STRAY_DMA;
	if (!n.can_inject())
		GTEST_SKIP() << "needs fault injection (-device refnpu,fault-inject=on)";
	ASSERT_EQ(n.counter("wedged"), 0);
	Bo dst;
	ASSERT_EQ(dst.create(fd, kPage), 0);
	CmdBuf cb;
	cb.fill(dst.va, kPage, 0x3badd00d);
	/* A job stuck for @us after its reset, its late write aimed at @t. */
	auto run_stuck = [&](Target &t, uint32_t us) {
		ASSERT_TRUE(t.init()) << "cannot lock a page and read its address";
		ASSERT_TRUE(n.inject(0, stuck, us, t.phys + 64));
		Job j(fd);
		ASSERT_EQ(j.write(dst.handle).submit(cb), 0);
		EXPECT_EQ(j.result(), -ETIMEDOUT);
	};

	if (!translated) {
		Target t;
		ASSERT_NO_FATAL_FAILURE(run_stuck(t, 200000));
		EXPECT_EQ(n.counter("wedged"), 0) << "a reset that completed wedged the device";
		bool landed = !t.unchanged();
		for (int i = 0; i < 100 && !landed; i++) {
			usleep(20000);
			landed = !t.unchanged();
		}
		EXPECT_TRUE(landed) << "the control's late write did not land";
	}

	Target t;
	ASSERT_NO_FATAL_FAILURE(run_stuck(t, 4000000));
	auto failed_at = std::chrono::steady_clock::now();
	EXPECT_EQ(n.counter("wedged"), 1) << "the reset failed, yet the device is not wedged";

	Job k(fd);
	ASSERT_EQ(k.write(dst.handle).submit(cb), 0);
	EXPECT_EQ(k.result(), -EIO) << "a wedged device ran a job";

	/*
	 * The device stops 4 s after the queue reset, 2 s before the failure,
	 * and only then completes the reset: a reset that succeeds shows that
	 * the late write was attempted. Try until one does.
	 */
	std::this_thread::sleep_until(failed_at + std::chrono::milliseconds(2100));
	long long wedged = 1;
	for (int tries = 0; tries < 8 && wedged != 0; tries++) {
		ASSERT_TRUE(write_text(n.debugfs() + "/reset", "1\n"));
		for (int i = 0; i < 75 && wedged != 0; i++) {
			usleep(20000);
			wedged = n.counter("wedged");
		}
	}
	ASSERT_EQ(wedged, 0) << "a reset of the stopped device did not end the wedge";
	EXPECT_TRUE(t.unchanged()) << "the device wrote memory after its job had failed";
	Job m(fd);
	ASSERT_EQ(m.write(dst.handle).submit(cb), 0);
	EXPECT_EQ(m.result(), 0);
	EXPECT_TRUE(all_u32(dst.bytes(), kPage, 0x3badd00d));
	EXPECT_TRUE(t.unchanged());
}

/* ---- device removal -------------------------------------------------------- */

/*
 * Unbinding the device while its BOs are exported to vgem, imported from
 * udmabuf and vgem and made from user memory (read-write and read-only), with a
 * job in flight: the job ends, every ioctl fails with -ENODEV, the CPU
 * mappings keep working, and closing the file releases every page, pin
 * and dma-buf. Under the debug kernel DMA-API debugging checks that no
 * DMA mapping outlives the binding. It removes the device, so it runs
 * only with REFNPU_DMABUF_UNPLUG=1, as the last command of a guest run.
 */
TEST_F(DmaBuf, ZzUnbindReleasesSharedAndUserMemory)
{
	const char *env = std::getenv("REFNPU_DMABUF_UNPLUG");
	if (!env || std::string(env) != "1")
		GTEST_SKIP() << "set REFNPU_DMABUF_UNPLUG=1 to remove the device";
	const Node &n = nodes[0];
	std::string name = fs::path(n.sysdev).filename().string();
	std::string unbind = n.sysdev + "/driver/unbind";
	bool userptr = n.caps & DRM_REFNPU_CAP_USERPTR;
	const size_t size = 16 * kPage;
	int base = dmabuf_count();
	long pin0 = vm_pin_kb();
	Fd vgem(open_vgem());
	Fd file(open(n.path.c_str(), O_RDWR | O_CLOEXEC));
	ASSERT_GE(file.get(), 0);

	Anon rw(size), ro(size);
	ASSERT_TRUE(rw.p && ro.p);
	Bo up, upro, imp, ex;
	if (userptr) {
		ASSERT_EQ(up.userptr(file.get(), rw.p, size), 0);
		ASSERT_EQ(mprotect(ro.p, size, PROT_READ), 0);
		ASSERT_EQ(upro.userptr(file.get(), ro.p, size, DRM_REFNPU_BO_DEVICE_RO), 0);
	}
	Udmabuf u;
	bool udmabuf = fs::exists("/dev/udmabuf");
	if (udmabuf) {
		ASSERT_EQ(u.create(size), 0);
		ASSERT_EQ(imp.import(file.get(), u.dmabuf.get()), 0);
	}
	ASSERT_EQ(ex.create(file.get(), size), 0);
	Fd exfd, vfd;
	uint32_t vh = 0;
	ASSERT_EQ(ex.export_fd(&exfd), 0);
	VgemBo vb;
	Bo vimp;
	if (vgem.get() >= 0) {
		ASSERT_EQ(drmPrimeFDToHandle(vgem.get(), exfd.get(), &vh), 0);
		ASSERT_EQ(vb.create(vgem.get(), size), 0);
		ASSERT_EQ(vb.export_fd(&vfd), 0);
		ASSERT_EQ(vimp.import(file.get(), vfd.get()), 0);
	}

	/* A job (slow, when the device can delay it) using all of them. */
	if (n.can_inject()) {
		ASSERT_TRUE(n.inject(0, REFNPU_DBG_INJECT_DELAY, 300000));
	}
	Fd sf;
	{
		Job j(file.get());
		CmdBuf cb;
		cb.fill(ex.va, size, 0x600d600d);
		j.write(ex.handle);
		if (userptr) {
			cb.fill(up.va, size, 0x600d600d).copy(ex.va, upro.va, kPage);
			j.write(up.handle).read(upro.handle);
		}
		if (udmabuf) {
			cb.fill(imp.va, size, 0x600d600d);
			j.write(imp.handle);
		}
		if (vimp.handle) {
			cb.fill(vimp.va, size, 0x600d600d);
			j.write(vimp.handle);
		}
		ASSERT_EQ(j.submit(cb), 0);
		int f = -1;
		ASSERT_EQ(drmSyncobjExportSyncFile(file.get(), j.syncobj(), &f), 0);
		sf.reset(f);
	}

	ASSERT_TRUE(write_text(unbind, name)) << "cannot unbind " << name;
	EXPECT_EQ(poll_fd(sf.get(), POLLIN, 60000), POLLIN) << "the job's fence never signalled";
	int st = sync_file_status(sf.get());
	EXPECT_TRUE(st == 1 || st == -ENODEV) << st;
	drm_refnpu_get_param p = {};
	p.param = DRM_REFNPU_PARAM_NUM_QUEUES;
	EXPECT_EQ(xioctl(file.get(), DRM_IOCTL_REFNPU_GET_PARAM, &p), -ENODEV);

	/* CPU mappings outlive the device. */
	ex.bytes()[0] = 0x42;
	EXPECT_EQ(ex.bytes()[0], 0x42);
	Map m;
	ASSERT_EQ(m.map(exfd.get(), 0, size), 0);
	EXPECT_EQ(m.get()[0], 0x42) << "the exported dma-buf still maps the BO";

	/* Handles go with the file (GEM_CLOSE fails on a removed device). */
	for (Bo *b : {&up, &upro, &imp, &ex, &vimp})
		b->forget();
	m.reset();
	file.reset();
	if (vh) {
		drm_gem_close gc = {};
		gc.handle = vh;
		EXPECT_EQ(drmIoctl(vgem.get(), DRM_IOCTL_GEM_CLOSE, &gc), 0);
	}
	exfd.reset();
	vfd.reset();
	vb.close_handle();
	u.dmabuf.reset();
	if (pin0 >= 0) {
		EXPECT_EQ(vm_pin_kb_settled(pin0), pin0) << "user pages stayed pinned";
	}
	if (base >= 0) {
		EXPECT_EQ(dmabuf_count_settled(base), base) << "a dma-buf outlived everything";
	}
}

} // namespace
