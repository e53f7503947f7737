// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file device.h
 * \brief Finding and opening compute-accelerator devices.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <accel/export.h>
#include <accel/result.h>
#include <accel/unique_fd.h>

namespace accel {

class Buffer;

namespace detail {
struct DeviceImpl;
}

/**
 * \brief One accel device as sysfs describes it, found without opening it.
 *
 * Works for every drivers/accel driver, not only refnpu.
 */
struct DeviceInfo {
	/** Minor index N of /dev/accel/accelN. */
	unsigned index = 0;
	/** Class device name, "accelN". */
	std::string name;
	/** Device node, e.g. "/dev/accel/accel0". */
	std::string node;
	/**
	 * Kernel driver bound to the parent (bus) device ("refnpu" for PCI,
	 * "refnpu-virt" for its virtual devices, "ivpu", ...), empty if none.
	 */
	std::string driver;
	/** Bus of the parent device ("pci", "platform", ...). */
	std::string bus;
	/** Address on that bus: "0000:00:04.0" for PCI, the device name otherwise. */
	std::string bus_address;
	/** The class device's sysfs directory. */
	std::string sysfs_path;
	/** PCI vendor id, 0 when not a PCI device. */
	uint16_t pci_vendor = 0;
	/** PCI device id, 0 when not a PCI device. */
	uint16_t pci_device = 0;
	/** True when the device node exists. */
	bool node_exists = false;
	/** Group owning the device node ("render", "accel", ...), empty if unknown. */
	std::string node_group;
	/** True when the calling process may open the node read-write. */
	bool accessible = false;
};

/** \brief Where enumerate_devices() looks; tests point it at a fake tree. */
struct EnumerateOptions {
	/** Root of sysfs. */
	std::string sysfs_root = "/sys";
	/** Root of the device nodes. */
	std::string dev_root = "/dev";
};

/**
 * \brief List the accel devices in sysfs (/sys/class/accel), sorted by index.
 *
 * Opens no device. An empty list is not an error; a sysfs without the accel
 * class (kernel without CONFIG_DRM_ACCEL) is reported as Errc::no_device.
 */
ACCEL_EXPORT Result<std::vector<DeviceInfo>> enumerate_devices(const EnumerateOptions &opts = {});

/** \brief What DRM_IOCTL_VERSION reports. */
struct DriverVersion {
	/** Driver name, "refnpu". */
	std::string name;
	/** Driver description. */
	std::string description;
	/** Driver date string. */
	std::string date;
	/** Major version. */
	int major = 0;
	/** Minor version. */
	int minor = 0;
	/** Patch level. */
	int patch = 0;
};

/**
 * \brief Device and driver parameters of a refnpu device
 *        (DRM_IOCTL_REFNPU_GET_PARAM); a field the driver does not know is empty.
 */
struct DeviceProperties {
	std::optional<uint64_t> driver_version; /**< major << 16 | minor */
	std::optional<uint64_t> hw_version; /**< hardware VERSION register */
	std::optional<uint64_t> capabilities; /**< DRM_REFNPU_CAP_* (see Capability) */
	std::optional<uint64_t> hw_caps; /**< hardware CAPS register (REFNPU_CAP_*) */
	std::optional<uint64_t> ops; /**< bit N: opcode N supported */
	std::optional<uint64_t> num_queues; /**< hardware queues */
	std::optional<uint64_t> va_start; /**< first device VA given to BOs */
	std::optional<uint64_t> va_size; /**< size of the device VA range */
	std::optional<uint64_t> page_sizes; /**< mask of MMU page sizes */
	std::optional<uint64_t> max_bo_size; /**< largest BO */
	std::optional<uint64_t> timestamp_freq; /**< device timestamp Hz */
	std::optional<uint64_t> max_submit_bos; /**< largest BO list of a job */
	std::optional<uint64_t> max_submit_syncs; /**< largest sync list of a job */
	std::optional<uint64_t> job_timeout_ms; /**< job timeout */
	std::optional<uint64_t> hang_limit; /**< timeouts before a context is banned */
	std::optional<uint64_t> context_hangs; /**< timeouts of this process' context */
	std::optional<uint64_t> context_banned; /**< 1 when this context is banned */
};

/** \brief Driver capability bits (DeviceProperties::capabilities). */
enum Capability : uint64_t {
	/** Submissions accept timeline syncobj points. */
	cap_timeline_syncobj = 0x1,
	/** Buffers can be exported and imported as dma-bufs. */
	cap_prime = 0x2,
	/** The device is the driver's in-kernel emulation. */
	cap_virtual = 0x4,
	/** Buffers can be made from process memory (Device::import_user_memory()). */
	cap_userptr = 0x8,
};

/**
 * \brief Issue an ioctl, retrying EINTR and EAGAIN.
 *
 * EINTR is retried at once, EAGAIN after a short back-off. Every refnpu and
 * DRM wait ioctl takes an absolute deadline, so a retry never extends it.
 *
 * \return 0 on success, else the positive errno
 */
ACCEL_EXPORT int ioctl_retry(int fd, unsigned long request, void *arg) noexcept;

/**
 * \brief An open accel device.
 *
 * A Device is a cheap handle: copies share one open file. Every process
 * opens each device node once: opening the same device again (by index,
 * node or PCI address) returns a handle to the same file, so buffers and
 * GEM handles of one Device are valid in all its copies. The file is
 * closed when the last handle and the last object created from it
 * (Buffer, Context, Fence) are gone.
 *
 * Thread safety: every method may be called from any thread concurrently.
 */
class ACCEL_EXPORT Device
{
public:
	/** \brief An empty handle; open() gives a usable one. */
	Device() = default;

	/** \brief Open /dev/accel/accel\a index. */
	static Result<Device> open(unsigned index);
	/**
	 * \brief Open by specification: a node path ("/dev/accel/accel0"), a
	 *        class name ("accel0"), an index ("0") or a PCI address
	 *        ("0000:00:04.0" or "00:04.0").
	 */
	static Result<Device> open(std::string_view spec);
	/** \brief Open the device \a info describes. */
	static Result<Device> open(const DeviceInfo &info);

	/** \brief True when this handle refers to an open device. */
	bool is_valid() const noexcept { return impl_ != nullptr; }
	/** \brief The shared file descriptor (owned by the Device). */
	int fd() const noexcept;
	/** \brief The node this device was opened through. */
	const std::string &node() const noexcept;
	/** \brief Name, version and description of the driver. */
	const DriverVersion &version() const noexcept;
	/** \brief True when the driver is refnpu with a uAPI this library speaks. */
	bool is_refnpu() const noexcept;

	/**
	 * \brief Check that the driver implements the refnpu uAPI this library needs.
	 * \return Errc::unsupported (with the versions found) otherwise
	 */
	Result<void> require_refnpu() const;

	/** \brief One DRM_IOCTL_REFNPU_GET_PARAM value (an enum drm_refnpu_param). */
	Result<uint64_t> get_param(uint32_t param) const;
	/** \brief Every parameter the driver knows. */
	Result<DeviceProperties> properties() const;
	/** \brief True when the driver reports capability \a cap. */
	bool has_capability(Capability cap) const noexcept;

	/**
	 * \brief Create a zero-filled buffer of at least \a size bytes.
	 * \param size bytes, rounded up to the page size
	 * \param flags BufferFlag bits
	 */
	Result<Buffer> create_buffer(uint64_t size, uint32_t flags = 0) const;
	/**
	 * \brief Import a dma-buf as a buffer of this device.
	 *
	 * Importing a dma-buf whose buffer this device already has (imported
	 * before, or created here and exported) returns another reference to
	 * the same GEM handle: the handle is closed when the last Buffer
	 * referring to it is destroyed, in any order. \a dmabuf_fd stays owned
	 * by the caller.
	 */
	Result<Buffer> import_dmabuf(int dmabuf_fd) const;

	/**
	 * \brief Make process memory a buffer of this device, without copying.
	 *
	 * The pages of [\a ptr, \a ptr + \a size) are pinned and mapped into
	 * the device address space until the Buffer (and the last job using
	 * it) is gone; keep the range mapped meanwhile. Pinned memory counts
	 * against RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK. The
	 * buffer has no mmap() (use \a ptr) and cannot be exported.
	 *
	 * \param ptr page-aligned start
	 * \param size bytes, a multiple of the page size
	 * \param flags 0 or buffer_device_read_only, which pages the process
	 *        may not write need (PROT_READ, a read-only file mapping)
	 * \return Errc::resource_limit above the memlock limit;
	 *         Errc::permission_denied for pages the device may not write
	 *         without buffer_device_read_only;
	 *         Errc::unsupported when the driver lacks cap_userptr
	 */
	Result<Buffer> import_user_memory(void *ptr, uint64_t size, uint32_t flags = 0) const;

	/** \brief Number of GEM handles this process holds on the device (for leak checks). */
	std::size_t handle_count() const;

	/** \brief True when both handles refer to the same open file. */
	bool operator==(const Device &other) const noexcept { return impl_ == other.impl_; }

	/** \cond INTERNAL */
	explicit Device(std::shared_ptr<detail::DeviceImpl> impl) : impl_(std::move(impl)) { }
	const std::shared_ptr<detail::DeviceImpl> &impl() const noexcept { return impl_; }
	/** \endcond */

private:
	std::shared_ptr<detail::DeviceImpl> impl_;
};

} // namespace accel
