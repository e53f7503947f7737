// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <accel/unique_fd.h>

namespace accel {

void UniqueFd::reset(int fd) noexcept
{
	int old = std::exchange(fd_, fd);
	/* close() is not retried on EINTR: Linux releases the fd regardless. */
	if (old >= 0 && old != fd)
		::close(old);
}

Result<UniqueFd> UniqueFd::dup() const
{
	if (fd_ < 0)
		return Error(Errc::invalid_argument, "dup() of an empty UniqueFd");
	int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return Error::from_errno(errno, "fcntl(F_DUPFD_CLOEXEC) failed");
	return UniqueFd(fd);
}

} // namespace accel
