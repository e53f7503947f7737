// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The accel error category and the mapping of kernel errnos onto it.
 */
#include <cerrno>
#include <cstring>
#include <string>

#include <accel/result.h>

#include "internal.h"

namespace accel {

namespace {

class AccelCategory final : public std::error_category
{
public:
	const char *name() const noexcept override { return "accel"; }

	std::string message(int ev) const override
	{
		switch (static_cast<Errc>(ev)) {
		case Errc::no_device:
			return "no such accel device";
		case Errc::permission_denied:
			return "permission denied";
		case Errc::unsupported:
			return "not supported by this driver or uAPI version";
		case Errc::device_lost:
			return "device lost or reset";
		case Errc::timeout:
			return "timed out";
		case Errc::invalid_argument:
			return "invalid argument";
		case Errc::resource_limit:
			return "out of memory or a resource limit";
		case Errc::job_failed:
			return "the device reported a job error";
		case Errc::system_error:
			return "system error";
		}
		return "unknown accel error " + std::to_string(ev);
	}

	std::error_condition default_error_condition(int ev) const noexcept override
	{
		switch (static_cast<Errc>(ev)) {
		case Errc::no_device:
			return std::errc::no_such_device;
		case Errc::permission_denied:
			return std::errc::permission_denied;
		case Errc::unsupported:
			return std::errc::not_supported;
		case Errc::device_lost:
			return std::errc::no_such_device;
		case Errc::timeout:
			return std::errc::timed_out;
		case Errc::invalid_argument:
			return std::errc::invalid_argument;
		case Errc::resource_limit:
			return std::errc::not_enough_memory;
		case Errc::job_failed:
		case Errc::system_error:
			return std::errc::io_error;
		}
		return std::error_condition(ev, *this);
	}
};

} // namespace

const std::error_category &category() noexcept
{
	static const AccelCategory cat;
	return cat;
}

Errc errc_from_errno(int err) noexcept
{
	switch (err) {
	case ENODEV:
	case ENXIO:
	case ECANCELED:
	case ESHUTDOWN:
		return Errc::device_lost;
	case EACCES:
	case EPERM:
		return Errc::permission_denied;
	case ENOTTY:
	case EOPNOTSUPP:
	case ENOSYS:
		return Errc::unsupported;
	case ETIME:
	case ETIMEDOUT:
		return Errc::timeout;
	case EINVAL:
	case ENOENT:
	case EBADF:
	case ERANGE:
	case E2BIG:
	case EOVERFLOW:
		return Errc::invalid_argument;
	case ENOMEM:
	case ENOSPC:
	case EMFILE:
	case ENFILE:
	case EAGAIN:
	case EDQUOT:
		return Errc::resource_limit;
	case EFAULT:
	case EIO:
		return Errc::job_failed;
	default:
		return Errc::system_error;
	}
}

std::string Error::what() const
{
	std::string s = message_.empty() ? code_.message() : message_;
	if (!message_.empty() && errno_ == 0)
		s += " [" + code_.message() + "]";
	if (errno_)
		s += " [" + code_.message() + ", errno " + std::to_string(errno_) + " " +
		     detail::errno_text(errno_) + "]";
	return s;
}

namespace detail {

std::string errno_text(int err)
{
	const char *name = strerrorname_np(err);
	return std::string(name ? name : "E?") + ": " + std::strerror(err);
}

Error ioctl_error(int err, const std::string &what)
{
	std::string hint;
	switch (errc_from_errno(err)) {
	case Errc::device_lost:
		hint = "; the device was removed or reset, or this context was banned: "
		       "reopen the device";
		break;
	case Errc::resource_limit:
		hint = err == EMFILE   ? "; raise the open-file limit (ulimit -n)"
		       : err == ENOSPC ? "; the device address space is full: free buffers"
				       : "; free memory or raise the limit";
		break;
	case Errc::unsupported:
		hint = "; the driver does not implement this: update refnpu.ko";
		break;
	default:
		break;
	}
	return Error::from_errno(err, what + " failed" + hint);
}

Error job_error(int status)
{
	int err = -status;
	switch (err) {
	case EFAULT:
		return Error(Errc::job_failed,
			     "the job touched an unmapped or read-only device address (MMU fault)",
			     err);
	case EINVAL:
		return Error(Errc::job_failed,
			     "the device rejected the command buffer as malformed", err);
	case EIO:
		return Error(Errc::job_failed, "a DMA transfer of the job failed", err);
	case ETIMEDOUT:
	case ETIME:
		return Error(Errc::timeout,
			     "the job exceeded the driver's job timeout and was stopped", err);
	case EAGAIN:
		return Error(Errc::device_lost,
			     "the job was stopped part-way by a reset of the device caused by "
			     "another job: memory it writes may be partly written; restore its "
			     "inputs, then submit it again",
			     err);
	case ECANCELED:
		return Error(Errc::device_lost,
			     "the job was not run: its context was banned (open the device "
			     "again) or one of its in-fences failed",
			     err);
	case ENODEV:
		return Error(Errc::device_lost, "the device was removed while the job ran", err);
	default:
		return Error::from_errno(err, "the job failed");
	}
}

} // namespace detail

Error job_status_error(int status)
{
	return detail::job_error(status);
}

} // namespace accel
