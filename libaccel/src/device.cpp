// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Opening devices (one shared file per device and process), the ioctl
 * wrapper, parameters and buffer-handle bookkeeping.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>
#include <map>

#include <drm/refnpu_accel.h>
#include <xf86drm.h>

#include <accel/buffer.h>
#include <accel/device.h>

#include "internal.h"

namespace accel {

static_assert(buffer_write_combined == DRM_REFNPU_BO_WC);
static_assert(buffer_device_read_only == DRM_REFNPU_BO_DEVICE_RO);
static_assert(cap_timeline_syncobj == DRM_REFNPU_CAP_TIMELINE_SYNCOBJ);
static_assert(cap_prime == DRM_REFNPU_CAP_PRIME);
static_assert(cap_virtual == DRM_REFNPU_CAP_VIRTUAL);
#ifdef DRM_REFNPU_CAP_USERPTR
static_assert(cap_userptr == DRM_REFNPU_CAP_USERPTR);
#endif

int ioctl_retry(int fd, unsigned long request, void *arg) noexcept
{
	unsigned again = 0;
	for (;;) {
		if (::ioctl(fd, request, arg) == 0)
			return 0;
		int err = errno;
		if (err == EINTR)
			continue;
		if (err != EAGAIN)
			return err;
		/*
		 * EAGAIN: the kernel asks to come back later. Yield a few
		 * times, then back off up to 1 ms; give up after about a
		 * second so a persistent condition surfaces as an error.
		 */
		if (++again > 1000)
			return err;
		if (again < 8) {
			sched_yield();
		} else {
			long ns = std::min(1000000L, 1000L << std::min(again - 8, 10U));
			struct timespec ts = {0, ns};
			nanosleep(&ts, nullptr);
		}
	}
}

namespace detail {

namespace {

std::mutex registry_lock;
std::map<dev_t, std::weak_ptr<DeviceImpl>> registry;

/*
 * A forked child inherits the parent's open files, and with them the
 * parent's contexts and GEM handles. Devices opened in the child after
 * fork() get files of their own: the child forgets the registry (Device
 * objects it inherited keep working on the inherited files). The lock is
 * held across fork() so the child never sees it taken.
 */
void fork_prepare()
{
	registry_lock.lock();
}

void fork_parent()
{
	registry_lock.unlock();
}

void fork_child()
{
	registry_lock.unlock();
	registry.clear();
}

[[maybe_unused]] const int fork_handlers = pthread_atfork(fork_prepare, fork_parent, fork_child);

} // namespace

DeviceImpl::~DeviceImpl()
{
	std::lock_guard<std::mutex> lk(registry_lock);
	auto it = registry.find(rdev);
	if (it != registry.end() && it->second.expired())
		registry.erase(it);
}

void DeviceImpl::put_handle(uint32_t handle) noexcept
{
	std::lock_guard<std::mutex> lk(bo_lock);
	auto it = bo_refs.find(handle);
	if (it == bo_refs.end() || --it->second)
		return;
	bo_refs.erase(it);
	/*
	 * Closed under bo_lock: an import racing with this close must not
	 * get the same handle number back and then lose it.
	 */
	struct drm_gem_close arg = {};
	arg.handle = handle;
	ioctl_retry(fd.get(), DRM_IOCTL_GEM_CLOSE, &arg);
}

namespace {

Error open_error(int err, const std::string &node)
{
	switch (err) {
	case ENOENT:
		return Error(Errc::no_device,
			     "no device node " + node +
				     ": is the driver loaded (modprobe refnpu)? "
				     "'accel-smi list' shows the devices present",
			     err);
	case ENXIO:
	case ENODEV:
		return Error(Errc::no_device,
			     node + " exists but no driver is bound to it (device removed?)", err);
	case EACCES:
	case EPERM: {
		std::string hint;
		struct stat st;
		if (::stat(node.c_str(), &st) == 0) {
			std::string grp = group_name(st.st_gid);
			hint = ": the node belongs to group '" + grp +
			       "'; add your user to it (usermod -aG " + grp +
			       " $USER, then log in again)";
		}
		return Error(Errc::permission_denied, "cannot open " + node + hint, err);
	}
	case EMFILE:
	case ENFILE:
		return Error(Errc::resource_limit,
			     "cannot open " + node + ": too many open files (ulimit -n)", err);
	default:
		return Error::from_errno(err, "cannot open " + node);
	}
}

/* Probe the refnpu uAPI once at open time. */
void probe_refnpu(DeviceImpl &d)
{
	if (d.version.name != "refnpu") {
		d.unsupported_reason = d.node + " is driven by '" + d.version.name +
				       "', not refnpu: only enumeration, buffers of "
				       "other drivers and generic DRM calls work";
		return;
	}
	auto get = [&](uint32_t param, uint64_t &val) {
		struct drm_refnpu_get_param gp = {};
		gp.param = param;
		int err = ioctl_retry(d.fd.get(), DRM_IOCTL_REFNPU_GET_PARAM, &gp);
		if (!err)
			val = gp.value;
		return err;
	};
	uint64_t ver = 0;
	int err = get(DRM_REFNPU_PARAM_DRIVER_VERSION, ver);
	if (err) {
		d.unsupported_reason = "refnpu driver " + std::to_string(d.version.major) + "." +
				       std::to_string(d.version.minor) + " on " + d.node +
				       " does not answer DRM_IOCTL_REFNPU_GET_PARAM (" +
				       errno_text(err) +
				       "): it predates the uAPI this libaccel speaks; "
				       "update refnpu.ko";
		return;
	}
	if ((ver >> 16) != DRM_REFNPU_DRIVER_MAJOR) {
		d.unsupported_reason =
			"refnpu uAPI " + std::to_string(ver >> 16) + "." +
			std::to_string(ver & 0xffff) + " on " + d.node +
			" is incompatible with the uAPI " +
			std::to_string(DRM_REFNPU_DRIVER_MAJOR) + "." +
			std::to_string(DRM_REFNPU_DRIVER_MINOR) +
			" libaccel was built for: install matching libaccel and refnpu.ko";
		return;
	}
	get(DRM_REFNPU_PARAM_CAPABILITIES, d.caps);
	get(DRM_REFNPU_PARAM_NUM_QUEUES, d.num_queues);
	get(DRM_REFNPU_PARAM_OPS, d.ops);
	d.refnpu = true;
}

Result<Device> open_node(const std::string &node)
{
	struct stat st;
	if (::stat(node.c_str(), &st) < 0)
		return open_error(errno, node);
	if (!S_ISCHR(st.st_mode))
		return Error(Errc::invalid_argument,
			     node + " is not a character device node (expected /dev/accel/accelN)");

	{
		std::lock_guard<std::mutex> lk(registry_lock);
		auto it = registry.find(st.st_rdev);
		if (it != registry.end()) {
			if (auto impl = it->second.lock())
				return Device(std::move(impl));
		}
	}

	/* Opened and probed unlocked: ~DeviceImpl takes registry_lock. */
	int fd = ::open(node.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return open_error(errno, node);
	auto impl = std::make_shared<DeviceImpl>();
	impl->fd.reset(fd);
	impl->rdev = st.st_rdev;
	impl->node = node;

	drmVersionPtr v = drmGetVersion(fd);
	if (!v)
		return Error(Errc::unsupported,
			     node + " does not answer DRM_IOCTL_VERSION: not a DRM accel device",
			     errno);
	impl->version.name.assign(v->name, v->name_len);
	impl->version.description.assign(v->desc, v->desc_len);
	impl->version.date.assign(v->date, v->date_len);
	impl->version.major = v->version_major;
	impl->version.minor = v->version_minor;
	impl->version.patch = v->version_patchlevel;
	drmFreeVersion(v);

	probe_refnpu(*impl);

	std::shared_ptr<DeviceImpl> existing;
	{
		std::lock_guard<std::mutex> lk(registry_lock);
		auto &slot = registry[st.st_rdev];
		existing = slot.lock();
		if (!existing)
			slot = impl;
	}
	/* Another thread won the race: use its file, close ours (unlocked). */
	if (existing)
		return Device(std::move(existing));
	return Device(std::move(impl));
}

} // namespace

} // namespace detail

Result<Device> Device::open(unsigned index)
{
	return detail::open_node("/dev/accel/accel" + std::to_string(index));
}

Result<Device> Device::open(const DeviceInfo &info)
{
	return detail::open_node(info.node);
}

Result<Device> Device::open(std::string_view spec)
{
	if (spec.empty())
		return Error(Errc::invalid_argument, "empty device specification");
	if (spec.front() == '/')
		return detail::open_node(std::string(spec));
	unsigned idx = 0;
	auto [p, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), idx);
	if (ec == std::errc() && p == spec.data() + spec.size())
		return open(idx);
	if (spec.rfind("accel", 0) == 0)
		return detail::open_node("/dev/accel/" + std::string(spec));
	/* A bus address: "0000:00:04.0", its short form "00:04.0", "refnpu-virt.0". */
	auto devs = enumerate_devices();
	if (devs) {
		for (const auto &d : *devs) {
			const std::string &a = d.bus_address;
			if (a == spec || (a.size() > spec.size() && a.ends_with(spec) &&
					  a[a.size() - spec.size() - 1] == ':'))
				return open(d);
		}
	}
	if (spec.find(':') != std::string_view::npos)
		return Error(Errc::no_device, "no accel device at bus address " +
						      std::string(spec) +
						      " ('accel-smi list' shows the addresses)");
	return Error(Errc::invalid_argument,
		     "device '" + std::string(spec) +
			     "' is neither an index, a node path, accelN nor a PCI address");
}

int Device::fd() const noexcept
{
	return impl_ ? impl_->fd.get() : -1;
}

const std::string &Device::node() const noexcept
{
	static const std::string none;
	return impl_ ? impl_->node : none;
}

const DriverVersion &Device::version() const noexcept
{
	static const DriverVersion none;
	return impl_ ? impl_->version : none;
}

bool Device::is_refnpu() const noexcept
{
	return impl_ && impl_->refnpu;
}

bool Device::has_capability(Capability cap) const noexcept
{
	return impl_ && (impl_->caps & cap) == cap;
}

Result<void> Device::require_refnpu() const
{
	if (!impl_)
		return Error(Errc::invalid_argument, "device handle is empty (open it first)");
	if (!impl_->refnpu)
		return Error(Errc::unsupported, impl_->unsupported_reason);
	return {};
}

Result<uint64_t> Device::get_param(uint32_t param) const
{
	if (auto r = require_refnpu(); !r)
		return std::move(r).error();
	struct drm_refnpu_get_param gp = {};
	gp.param = param;
	int err = ioctl_retry(fd(), DRM_IOCTL_REFNPU_GET_PARAM, &gp);
	if (err == EINVAL)
		return Error(Errc::unsupported,
			     "parameter " + std::to_string(param) + " is unknown to refnpu " +
				     std::to_string(version().major) + "." +
				     std::to_string(version().minor) + " (driver too old?)",
			     err);
	if (err)
		return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_GET_PARAM(" +
							std::to_string(param) + ")");
	return gp.value;
}

Result<DeviceProperties> Device::properties() const
{
	if (auto r = require_refnpu(); !r)
		return std::move(r).error();
	DeviceProperties p;
	struct {
		uint32_t param;
		std::optional<uint64_t> DeviceProperties::*field;
	} const table[] = {
		{DRM_REFNPU_PARAM_DRIVER_VERSION, &DeviceProperties::driver_version},
		{DRM_REFNPU_PARAM_HW_VERSION, &DeviceProperties::hw_version},
		{DRM_REFNPU_PARAM_CAPABILITIES, &DeviceProperties::capabilities},
		{DRM_REFNPU_PARAM_HW_CAPS, &DeviceProperties::hw_caps},
		{DRM_REFNPU_PARAM_OPS, &DeviceProperties::ops},
		{DRM_REFNPU_PARAM_NUM_QUEUES, &DeviceProperties::num_queues},
		{DRM_REFNPU_PARAM_VA_START, &DeviceProperties::va_start},
		{DRM_REFNPU_PARAM_VA_SIZE, &DeviceProperties::va_size},
		{DRM_REFNPU_PARAM_PAGE_SIZES, &DeviceProperties::page_sizes},
		{DRM_REFNPU_PARAM_MAX_BO_SIZE, &DeviceProperties::max_bo_size},
		{DRM_REFNPU_PARAM_TIMESTAMP_FREQ, &DeviceProperties::timestamp_freq},
		{DRM_REFNPU_PARAM_MAX_SUBMIT_BOS, &DeviceProperties::max_submit_bos},
		{DRM_REFNPU_PARAM_MAX_SUBMIT_SYNCS, &DeviceProperties::max_submit_syncs},
		{DRM_REFNPU_PARAM_JOB_TIMEOUT_MS, &DeviceProperties::job_timeout_ms},
		{DRM_REFNPU_PARAM_HANG_LIMIT, &DeviceProperties::hang_limit},
		{DRM_REFNPU_PARAM_CONTEXT_HANGS, &DeviceProperties::context_hangs},
		{DRM_REFNPU_PARAM_CONTEXT_BANNED, &DeviceProperties::context_banned},
	};
	for (const auto &t : table) {
		struct drm_refnpu_get_param gp = {};
		gp.param = t.param;
		int err = ioctl_retry(fd(), DRM_IOCTL_REFNPU_GET_PARAM, &gp);
		if (!err)
			p.*t.field = gp.value;
		else if (err != EINVAL)
			return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_GET_PARAM(" +
								std::to_string(t.param) + ")");
	}
	return p;
}

Result<Buffer> Device::create_buffer(uint64_t size, uint32_t flags) const
{
	if (auto r = require_refnpu(); !r)
		return std::move(r).error();
	if (size == 0)
		return Error(Errc::invalid_argument, "create_buffer: size is 0");
	if (flags & ~uint32_t(DRM_REFNPU_BO_FLAGS))
		return Error(Errc::invalid_argument,
			     "create_buffer: unknown flags " + std::to_string(flags));
	struct drm_refnpu_bo_create arg = {};
	arg.size = size;
	arg.flags = flags;
	int err = ioctl_retry(fd(), DRM_IOCTL_REFNPU_BO_CREATE, &arg);
	if (err == EINVAL)
		return Error(Errc::invalid_argument,
			     "create_buffer: the driver refused a buffer of " +
				     std::to_string(size) +
				     " bytes (above DRM_REFNPU_PARAM_MAX_BO_SIZE?)",
			     err);
	if (err)
		return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_BO_CREATE(" +
							std::to_string(size) + " bytes)");
	{
		std::lock_guard<std::mutex> lk(impl_->bo_lock);
		++impl_->bo_refs[arg.handle];
	}
	uint64_t rounded = (size + 4095) & ~uint64_t(4095);
	return Buffer(*this, arg.handle, rounded, arg.va, 0, flags);
}

Result<Buffer> Device::import_dmabuf(int dmabuf_fd) const
{
	if (auto r = require_refnpu(); !r)
		return std::move(r).error();
	if (dmabuf_fd < 0)
		return Error(Errc::invalid_argument, "import_dmabuf: fd is negative");
	uint32_t handle = 0;
	{
		std::lock_guard<std::mutex> lk(impl_->bo_lock);
		if (drmPrimeFDToHandle(fd(), dmabuf_fd, &handle))
			return detail::ioctl_error(errno, "import_dmabuf: "
							  "DRM_IOCTL_PRIME_FD_TO_HANDLE");
		++impl_->bo_refs[handle];
	}
	struct drm_refnpu_bo_info info = {};
	info.handle = handle;
	int err = ioctl_retry(fd(), DRM_IOCTL_REFNPU_BO_INFO, &info);
	if (err) {
		impl_->put_handle(handle);
		return detail::ioctl_error(err, "import_dmabuf: DRM_IOCTL_REFNPU_BO_INFO");
	}
	return Buffer(*this, handle, info.size, info.va, info.mmap_offset, info.flags);
}

Result<Buffer> Device::import_user_memory(void *ptr, uint64_t size, uint32_t flags) const
{
	if (auto r = require_refnpu(); !r)
		return std::move(r).error();
#ifdef DRM_IOCTL_REFNPU_BO_USERPTR
	if (!(impl_->caps & DRM_REFNPU_CAP_USERPTR))
		return Error(Errc::unsupported,
			     "refnpu " + std::to_string(version().major) + "." +
				     std::to_string(version().minor) +
				     " cannot make buffers from process memory (no "
				     "DRM_REFNPU_CAP_USERPTR): update refnpu.ko");
	uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
	auto addr = reinterpret_cast<uintptr_t>(ptr);
	if (!ptr || !size || addr % page || size % page)
		return Error(Errc::invalid_argument,
			     "import_user_memory: address and size must be non-zero multiples "
			     "of the page size (" +
				     std::to_string(page) + " bytes)");
	if (flags & ~uint32_t(DRM_REFNPU_BO_DEVICE_RO))
		return Error(Errc::invalid_argument,
			     "import_user_memory: only buffer_device_read_only is allowed");
	struct drm_refnpu_bo_userptr arg = {};
	arg.user_ptr = addr;
	arg.size = size;
	arg.flags = flags;
	int err = ioctl_retry(fd(), DRM_IOCTL_REFNPU_BO_USERPTR, &arg);
	switch (err) {
	case 0:
		break;
	case ENOMEM:
		return Error(Errc::resource_limit,
			     "pinning " + std::to_string(size) +
				     " bytes failed: over RLIMIT_MEMLOCK (ulimit -l; or grant "
				     "CAP_IPC_LOCK) or out of memory",
			     err);
	case EFAULT:
		return Error(Errc::invalid_argument,
			     "import_user_memory: part of the range is not mapped or cannot be "
			     "pinned (I/O or PFN mappings)",
			     err);
	case EACCES:
		return Error(Errc::permission_denied,
			     "import_user_memory: the device may not write part of the range "
			     "(read-only pages, or a shared file mapping): pass "
			     "buffer_device_read_only",
			     err);
	default:
		return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_BO_USERPTR");
	}
	{
		std::lock_guard<std::mutex> lk(impl_->bo_lock);
		++impl_->bo_refs[arg.handle];
	}
	struct drm_refnpu_bo_info info = {};
	info.handle = arg.handle;
	if (int e = ioctl_retry(fd(), DRM_IOCTL_REFNPU_BO_INFO, &info)) {
		impl_->put_handle(arg.handle);
		return detail::ioctl_error(e, "DRM_IOCTL_REFNPU_BO_INFO");
	}
	return Buffer(*this, arg.handle, size, arg.va, 0, info.flags | Buffer::user_memory_flag);
#else
	(void)ptr;
	(void)size;
	(void)flags;
	return Error(Errc::unsupported,
		     "this libaccel was built without DRM_IOCTL_REFNPU_BO_USERPTR");
#endif
}

std::size_t Device::handle_count() const
{
	if (!impl_)
		return 0;
	std::lock_guard<std::mutex> lk(impl_->bo_lock);
	return impl_->bo_refs.size();
}

} // namespace accel
