// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file fence.h
 * \brief Completion of device work: a point on a DRM sync object.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <accel/device.h>
#include <accel/export.h>
#include <accel/result.h>
#include <accel/unique_fd.h>

namespace accel {

namespace detail {
struct FenceState;
}

/**
 * \brief A fence: a point of a timeline syncobj (or a binary syncobj).
 *
 * Returned by Context::submit(); also made from a sync_file of any driver.
 * Fences are cheap copyable values. libaccel starts no thread: waiting
 * happens in the caller, or in the caller's event loop on poll_fd().
 *
 * Thread safety: every method may be called concurrently, on one Fence or
 * on copies of it.
 */
class ACCEL_EXPORT Fence
{
public:
	/** \brief An empty fence, treated as already signalled. */
	Fence() = default;

	/** \brief True when this fence refers to a sync object. */
	bool is_valid() const noexcept { return s_ != nullptr; }

	/**
	 * \brief Wait until the fence signals or \a deadline passes.
	 * \return success when the work completed without error; the job's
	 *         error (Errc::job_failed, Errc::device_lost, ...) when it
	 *         failed; Errc::timeout when \a deadline passed first
	 */
	Result<void> wait(std::chrono::steady_clock::time_point deadline) const;
	/** \brief Wait at most \a timeout (relative). */
	Result<void> wait_for(std::chrono::nanoseconds timeout) const
	{
		return wait(std::chrono::steady_clock::now() + timeout);
	}
	/** \brief True when the fence signalled (successfully or not); does not block. */
	Result<bool> is_signaled() const;
	/**
	 * \brief Error status of a signalled fence: success, or the job's error.
	 * \return Errc::invalid_argument when the fence has not signalled yet
	 */
	Result<void> status() const;

	/** \brief Export as a sync_file, for another driver or process. */
	Result<UniqueFd> export_sync_file() const;
	/**
	 * \brief A descriptor that polls readable (POLLIN) once the fence signalled.
	 *
	 * It is a sync_file: the caller owns it and may keep it in an event loop.
	 */
	Result<UniqueFd> poll_fd() const { return export_sync_file(); }

	/** \brief A fence that signals with the sync_file \a fd (which stays owned by the caller).
	 */
	static Result<Fence> import_sync_file(const Device &dev, int fd);

	/** \brief The DRM syncobj handle on the device's file. */
	uint32_t syncobj_handle() const noexcept;
	/** \brief The timeline point (0 for a binary syncobj). */
	uint64_t point() const noexcept;

	/** \cond INTERNAL */
	explicit Fence(std::shared_ptr<detail::FenceState> state) noexcept
		: s_(std::move(state)) { }
	const std::shared_ptr<detail::FenceState> &state() const noexcept { return s_; }
	/** \endcond */

private:
	/* One reference per copy: copies stay cheap on the submission path. */
	std::shared_ptr<detail::FenceState> s_;
};

} // namespace accel
