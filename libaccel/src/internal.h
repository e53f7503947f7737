// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Library-internal state shared by the translation units of libaccel.
 */
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <accel/device.h>
#include <accel/result.h>
#include <accel/unique_fd.h>

namespace accel::detail {

/* The one open file of a device in this process. */
struct DeviceImpl {
	UniqueFd fd;
	dev_t rdev = 0;
	std::string node;
	DriverVersion version;

	/* Driver is refnpu and answers GET_PARAM with a compatible version. */
	bool refnpu = false;
	/* Why refnpu is false, for Errc::unsupported messages. */
	std::string unsupported_reason;
	uint64_t caps = 0;
	uint64_t num_queues = 0;
	uint64_t ops = 0;

	/* GEM handle -> number of Buffer objects referring to it. */
	std::mutex bo_lock;
	std::unordered_map<uint32_t, unsigned> bo_refs;

	~DeviceImpl();
	/* Drop one reference of a GEM handle, closing it with the last. */
	void put_handle(uint32_t handle) noexcept;
};

/* A DRM sync object owned by libaccel. */
struct Syncobj {
	std::shared_ptr<DeviceImpl> dev;
	uint32_t handle = 0;
	bool timeline = false;

	Syncobj(std::shared_ptr<DeviceImpl> d, uint32_t h, bool tl)
		: dev(std::move(d)), handle(h), timeline(tl)
	{
	}
	~Syncobj();
	Syncobj(const Syncobj &) = delete;
	Syncobj &operator=(const Syncobj &) = delete;

	static Result<std::shared_ptr<Syncobj>> create(const std::shared_ptr<DeviceImpl> &dev,
						       bool timeline);
};

/*
 * What a Fence refers to: a point of a syncobj (point 0: binary), and for
 * jobs a binary syncobj holding the job's own fence, which carries its
 * error (a timeline point only holds a dma_fence_chain, and chains drop
 * the error of the fence they contain).
 */
struct FenceState {
	std::shared_ptr<Syncobj> sync;
	uint64_t point = 0;
	std::shared_ptr<Syncobj> status;
};

/* An Error for a failed ioctl: classified errno, "what: strerror". */
Error ioctl_error(int err, const std::string &what);
/* An Error for a job that completed with negative errno status. */
Error job_error(int status);
/* The message of errno err. */
std::string errno_text(int err);
/* Absolute CLOCK_MONOTONIC nanoseconds of a steady_clock deadline. */
int64_t deadline_ns(std::chrono::steady_clock::time_point deadline);
/* Name of group gid, or its number. */
std::string group_name(gid_t gid);

} // namespace accel::detail
