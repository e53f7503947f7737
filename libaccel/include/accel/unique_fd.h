// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file unique_fd.h
 * \brief An owned file descriptor.
 */
#pragma once

#include <utility>

#include <accel/export.h>
#include <accel/result.h>

namespace accel {

/**
 * \brief Owns one file descriptor and closes it on destruction.
 *
 * Move-only. Thread safety: one object must not be used by several threads
 * at once without synchronisation.
 */
class ACCEL_EXPORT UniqueFd
{
public:
	/** \brief An empty descriptor (get() is -1). */
	UniqueFd() noexcept = default;
	/** \brief Take ownership of \a fd (may be -1). */
	explicit UniqueFd(int fd) noexcept : fd_(fd) { }
	~UniqueFd() { reset(); }

	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	/** \brief Take the descriptor of \a other, leaving it empty. */
	UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) { }
	/** \brief Close the current descriptor and take the one of \a other. */
	UniqueFd &operator=(UniqueFd &&other) noexcept
	{
		if (this != &other)
			reset(other.release());
		return *this;
	}

	/** \brief The descriptor, or -1. */
	int get() const noexcept { return fd_; }
	/** \brief True when a descriptor is owned. */
	bool is_valid() const noexcept { return fd_ >= 0; }
	/** \brief True when a descriptor is owned. */
	explicit operator bool() const noexcept { return is_valid(); }
	/** \brief Give up ownership and return the descriptor. */
	int release() noexcept { return std::exchange(fd_, -1); }
	/** \brief Close the owned descriptor (if any) and own \a fd. */
	void reset(int fd = -1) noexcept;
	/** \brief A new descriptor for the same file (F_DUPFD_CLOEXEC). */
	Result<UniqueFd> dup() const;

private:
	int fd_ = -1;
};

} // namespace accel
