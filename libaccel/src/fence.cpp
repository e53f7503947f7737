// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Fences: points on DRM sync objects, waited on with absolute deadlines,
 * exported and imported as sync_files.
 */
#include <linux/sync_file.h>
#include <sys/ioctl.h>

#include <cerrno>

#include <xf86drm.h>

#include <accel/fence.h>

#include "internal.h"

namespace accel {

namespace detail {

Syncobj::~Syncobj()
{
	struct drm_syncobj_destroy arg = {};
	arg.handle = handle;
	ioctl_retry(dev->fd.get(), DRM_IOCTL_SYNCOBJ_DESTROY, &arg);
}

Result<std::shared_ptr<Syncobj>> Syncobj::create(const std::shared_ptr<DeviceImpl> &dev,
						 bool timeline)
{
	struct drm_syncobj_create arg = {};
	int err = ioctl_retry(dev->fd.get(), DRM_IOCTL_SYNCOBJ_CREATE, &arg);
	if (err == EOPNOTSUPP || err == ENODEV || err == EINVAL)
		return Error(Errc::unsupported,
			     "the driver of " + dev->node +
				     " has no sync objects (DRIVER_SYNCOBJ): update the driver",
			     err);
	if (err)
		return ioctl_error(err, "DRM_IOCTL_SYNCOBJ_CREATE");
	return std::make_shared<Syncobj>(dev, arg.handle, timeline);
}

namespace {

/* A sync_file holding the fence of (sync, point). */
Result<UniqueFd> export_point(const Syncobj &sync, uint64_t point)
{
	int fd = sync.dev->fd.get();
	uint32_t src = sync.handle;
	std::shared_ptr<Syncobj> tmp;
	if (sync.timeline) {
		/* A timeline point is exported through a binary syncobj. */
		auto t = Syncobj::create(sync.dev, false);
		if (!t)
			return std::move(t).error();
		tmp = std::move(*t);
		struct drm_syncobj_transfer tr = {};
		tr.src_handle = sync.handle;
		tr.src_point = point;
		tr.dst_handle = tmp->handle;
		tr.flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
		int err = ioctl_retry(fd, DRM_IOCTL_SYNCOBJ_TRANSFER, &tr);
		if (err)
			return ioctl_error(err, "DRM_IOCTL_SYNCOBJ_TRANSFER");
		src = tmp->handle;
	}
	struct drm_syncobj_handle h = {};
	h.handle = src;
	h.flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE;
	h.fd = -1;
	int err = ioctl_retry(fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &h);
	if (err)
		return ioctl_error(err, "DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD(sync_file)");
	return UniqueFd(h.fd);
}

} // namespace

} // namespace detail

uint32_t Fence::syncobj_handle() const noexcept
{
	return s_ ? s_->sync->handle : 0;
}

uint64_t Fence::point() const noexcept
{
	return s_ ? s_->point : 0;
}

Result<void> Fence::wait(std::chrono::steady_clock::time_point deadline) const
{
	if (!s_)
		return {};
	const detail::Syncobj &sync = *s_->sync;
	int fd = sync.dev->fd.get();
	uint32_t handle = sync.handle;
	uint64_t point = s_->point;
	int err;
	if (sync.timeline) {
		struct drm_syncobj_timeline_wait w = {};
		w.handles = reinterpret_cast<uintptr_t>(&handle);
		w.points = reinterpret_cast<uintptr_t>(&point);
		w.count_handles = 1;
		w.timeout_nsec = detail::deadline_ns(deadline);
		w.flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
		err = ioctl_retry(fd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &w);
	} else {
		struct drm_syncobj_wait w = {};
		w.handles = reinterpret_cast<uintptr_t>(&handle);
		w.count_handles = 1;
		w.timeout_nsec = detail::deadline_ns(deadline);
		w.flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
		err = ioctl_retry(fd, DRM_IOCTL_SYNCOBJ_WAIT, &w);
	}
	if (err == ETIME || err == ETIMEDOUT)
		return Error(Errc::timeout, "the fence did not signal before the deadline", err);
	if (err)
		return detail::ioctl_error(err, "waiting for a fence");
	return status();
}

Result<bool> Fence::is_signaled() const
{
	auto r = wait(std::chrono::steady_clock::time_point{});
	if (r)
		return true;
	if (r.error().errc() == Errc::timeout && r.error().sys_errno() == ETIME)
		return false;
	if (r.error().errc() == Errc::job_failed || r.error().errc() == Errc::timeout ||
	    r.error().errc() == Errc::device_lost)
		return true;
	return std::move(r).error();
}

Result<void> Fence::status() const
{
	if (!s_)
		return {};
	/* The job's own fence carries its error (see detail::FenceState). */
	auto fd = s_->status ? detail::export_point(*s_->status, 0)
			     : detail::export_point(*s_->sync, s_->point);
	if (!fd)
		return std::move(fd).error();
	struct sync_file_info info = {};
	if (::ioctl(fd->get(), SYNC_IOC_FILE_INFO, &info) < 0)
		return detail::ioctl_error(errno, "SYNC_IOC_FILE_INFO");
	if (info.status == 0)
		return Error(Errc::invalid_argument, "status() of a fence that has not signalled");
	if (info.status < 0)
		return detail::job_error(info.status);
	return {};
}

Result<UniqueFd> Fence::export_sync_file() const
{
	if (!s_)
		return Error(Errc::invalid_argument, "export_sync_file() of an empty Fence");
	if (s_->status)
		return detail::export_point(*s_->status, 0);
	return detail::export_point(*s_->sync, s_->point);
}

Result<Fence> Fence::import_sync_file(const Device &dev, int fd)
{
	if (!dev.is_valid())
		return Error(Errc::invalid_argument, "import_sync_file: empty Device");
	if (fd < 0)
		return Error(Errc::invalid_argument, "import_sync_file: fd is negative");
	auto s = detail::Syncobj::create(dev.impl(), false);
	if (!s)
		return std::move(s).error();
	struct drm_syncobj_handle h = {};
	h.handle = (*s)->handle;
	h.flags = DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE;
	h.fd = fd;
	int err = ioctl_retry(dev.fd(), DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &h);
	if (err == EINVAL)
		return Error(Errc::invalid_argument,
			     "import_sync_file: fd " + std::to_string(fd) + " is not a sync_file",
			     err);
	if (err)
		return detail::ioctl_error(err, "DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE(sync_file)");
	auto st = std::make_shared<detail::FenceState>();
	st->sync = std::move(*s);
	return Fence(std::move(st));
}

} // namespace accel
