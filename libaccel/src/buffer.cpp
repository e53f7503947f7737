// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Buffers (owned GEM handle references), CPU mappings and dma-buf export.
 */
#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <climits>

#include <drm/refnpu_accel.h>
#include <xf86drm.h>

#include <accel/buffer.h>

#include "internal.h"

namespace accel {

namespace detail {

int64_t deadline_ns(std::chrono::steady_clock::time_point deadline)
{
	/* libstdc++'s steady_clock is CLOCK_MONOTONIC, the clock of every DRM wait. */
	auto d = deadline.time_since_epoch();
	if (d >= std::chrono::nanoseconds::max())
		return INT64_MAX;
	return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

} // namespace detail

Mapping::~Mapping()
{
	if (data_)
		::munmap(data_, size_);
}

Mapping::Mapping(Mapping &&other) noexcept
	: data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0))
{
}

Mapping &Mapping::operator=(Mapping &&other) noexcept
{
	if (this != &other) {
		if (data_)
			::munmap(data_, size_);
		data_ = std::exchange(other.data_, nullptr);
		size_ = std::exchange(other.size_, 0);
	}
	return *this;
}

Buffer::~Buffer()
{
	release();
}

void Buffer::release() noexcept
{
	if (handle_ && dev_.impl())
		dev_.impl()->put_handle(handle_);
	handle_ = 0;
}

Buffer::Buffer(Buffer &&other) noexcept
	: dev_(std::move(other.dev_)), handle_(std::exchange(other.handle_, 0)), size_(other.size_),
	  va_(other.va_), mmap_offset_(other.mmap_offset_), flags_(other.flags_)
{
}

Buffer &Buffer::operator=(Buffer &&other) noexcept
{
	if (this != &other) {
		release();
		dev_ = std::move(other.dev_);
		handle_ = std::exchange(other.handle_, 0);
		size_ = other.size_;
		va_ = other.va_;
		mmap_offset_ = other.mmap_offset_;
		flags_ = other.flags_;
	}
	return *this;
}

Result<Mapping> Buffer::map() const
{
	if (!handle_)
		return Error(Errc::invalid_argument, "map() of an empty Buffer");
	if (is_user_memory())
		return Error(Errc::invalid_argument,
			     "map() of a buffer made from process memory: use that memory");
	uint64_t offset = mmap_offset_;
	if (!offset) {
		struct drm_refnpu_bo_info info = {};
		info.handle = handle_;
		int err = ioctl_retry(dev_.fd(), DRM_IOCTL_REFNPU_BO_INFO, &info);
		if (err)
			return detail::ioctl_error(err, "map: DRM_IOCTL_REFNPU_BO_INFO");
		offset = info.mmap_offset;
	}
	void *p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, dev_.fd(),
			 static_cast<off_t>(offset));
	if (p == MAP_FAILED) {
		int err = errno;
		if (err == ENOMEM || err == EAGAIN)
			return Error(Errc::resource_limit,
				     "mmap of a " + std::to_string(size_) +
					     "-byte buffer failed: out of address space or "
					     "over the memlock limit (ulimit -l)",
				     err);
		return Error::from_errno(err, "mmap of buffer " + std::to_string(handle_));
	}
	return Mapping(static_cast<std::byte *>(p), size_);
}

Result<UniqueFd> Buffer::export_dmabuf() const
{
	if (!handle_)
		return Error(Errc::invalid_argument, "export_dmabuf() of an empty Buffer");
	if (is_user_memory())
		return Error(Errc::unsupported,
			     "buffers made from process memory cannot be exported as dma-bufs");
	int out = -1;
	if (drmPrimeHandleToFD(dev_.fd(), handle_, DRM_CLOEXEC | DRM_RDWR, &out)) {
		int err = errno;
		if (err == ENOSYS || err == EOPNOTSUPP || err == EINVAL)
			return Error(Errc::unsupported,
				     "the driver cannot export buffers as dma-bufs (PRIME)", err);
		return detail::ioctl_error(err, "DRM_IOCTL_PRIME_HANDLE_TO_FD");
	}
	return UniqueFd(out);
}

Result<void> Buffer::wait(std::chrono::steady_clock::time_point deadline) const
{
	if (!handle_)
		return Error(Errc::invalid_argument, "wait() on an empty Buffer");
	struct drm_refnpu_bo_wait arg = {};
	arg.handle = handle_;
	arg.timeout_ns = detail::deadline_ns(deadline);
	int err = ioctl_retry(dev_.fd(), DRM_IOCTL_REFNPU_BO_WAIT, &arg);
	if (err == ETIMEDOUT || err == ETIME)
		return Error(Errc::timeout, "buffer still in use at the deadline", err);
	if (err)
		return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_BO_WAIT");
	if (arg.status < 0)
		return detail::job_error(arg.status);
	return {};
}

Result<bool> Buffer::is_idle() const
{
	if (!handle_)
		return Error(Errc::invalid_argument, "is_idle() on an empty Buffer");
	/* A deadline in the past only polls. */
	struct drm_refnpu_bo_wait arg = {};
	arg.handle = handle_;
	int err = ioctl_retry(dev_.fd(), DRM_IOCTL_REFNPU_BO_WAIT, &arg);
	if (err == ETIMEDOUT || err == ETIME)
		return false;
	if (err)
		return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_BO_WAIT");
	return true;
}

} // namespace accel
