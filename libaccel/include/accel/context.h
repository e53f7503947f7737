// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file context.h
 * \brief Jobs and the submission contexts that run them.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <accel/buffer.h>
#include <accel/device.h>
#include <accel/encoder.h>
#include <accel/export.h>
#include <accel/fence.h>
#include <accel/result.h>

namespace accel {

namespace detail {
struct ContextImpl;
}

/** \brief Scheduling priority of a context's jobs (enum drm_refnpu_priority). */
enum class Priority : uint32_t {
	/** The default. */
	normal = 0,
	/** Runs when no normal or high priority job is ready. */
	low = 1,
	/** Runs first; needs CAP_SYS_NICE. */
	high = 2,
};

/**
 * \brief One unit of work: a command buffer plus the buffers it uses and
 *        the fences it waits for.
 *
 * A Job can be submitted any number of times. The buffers it lists must
 * stay alive until submit() returns; from then on the kernel holds them
 * until the job completed. Move-only. Thread safety: a Job may be
 * submitted from several threads at once when nobody modifies it.
 */
class ACCEL_EXPORT Job
{
public:
	/** \brief An empty job. */
	Job() = default;

	/**
	 * \brief Copy \a enc's commands into a new buffer of \a dev and list
	 *        the buffers they use.
	 * \return Errc::invalid_argument for an empty encoder
	 */
	static Result<Job> create(const Device &dev, const CommandEncoder &enc);
	/** \brief A job of \a size bytes of commands at \a offset of \a cmd. */
	static Result<Job> from_buffer(Buffer cmd, uint64_t offset, uint64_t size);

	/** \brief List \a buf for the job with \a access (merged with earlier uses). */
	void use(const Buffer &buf, uint32_t access) { use(buf.handle(), access); }
	/** \brief List the buffer with GEM handle \a handle. */
	void use(uint32_t handle, uint32_t access);
	/** \brief Do not start before \a fence signalled. */
	void wait_for(const Fence &fence) { deps_.push_back(fence); }
	/** \brief Forget every fence added with wait_for(). */
	void clear_dependencies() noexcept { deps_.clear(); }
	/** \brief Order against other users of the listed buffers (default on). */
	void set_implicit_sync(bool on) noexcept { implicit_sync_ = on; }

	/** \brief The buffer holding the commands. */
	const Buffer &command_buffer() const noexcept { return cmd_; }
	/** \brief Offset of the commands in command_buffer(). */
	uint64_t command_offset() const noexcept { return offset_; }
	/** \brief Size of the commands in bytes. */
	uint64_t command_size() const noexcept { return size_; }
	/** \brief Listed buffers. */
	const std::vector<BufferUse> &uses() const noexcept { return uses_; }
	/** \brief Fences waited for. */
	const std::vector<Fence> &dependencies() const noexcept { return deps_; }
	/** \brief Whether implicit synchronisation is on. */
	bool implicit_sync() const noexcept { return implicit_sync_; }

private:
	Buffer cmd_;
	uint64_t offset_ = 0;
	uint64_t size_ = 0;
	std::vector<BufferUse> uses_;
	std::vector<Fence> deps_;
	bool implicit_sync_ = true;
};

/** \brief Where and how a Context submits. */
struct ContextOptions {
	/** Hardware queue, below DeviceProperties::num_queues. */
	uint32_t queue = 0;
	/** Priority of every job of the context. */
	Priority priority = Priority::normal;
};

/**
 * \brief A submission stream: a queue and priority of a device, with a
 *        timeline sync object whose points are the fences of its jobs.
 *
 * Jobs of one context run in submission order. Buffers belong to the
 * Device (one device address space per process and device), so every
 * context of a device can use every buffer of it.
 *
 * A Context is a cheap handle; copies share the stream. Thread safety:
 * every method may be called from several threads at once; submissions
 * are serialised per context (each gets the next timeline point).
 */
class ACCEL_EXPORT Context
{
public:
	/** \brief An empty handle. */
	Context() = default;

	/**
	 * \brief A context on \a dev.
	 * \return Errc::invalid_argument for a queue the device does not
	 *         have, Errc::unsupported when the driver lacks job submission
	 */
	static Result<Context> create(const Device &dev, const ContextOptions &opts = {});

	/** \brief True when this handle refers to a context. */
	bool is_valid() const noexcept { return impl_ != nullptr; }
	/** \brief The device. */
	const Device &device() const noexcept;
	/** \brief The options the context was created with. */
	const ContextOptions &options() const noexcept;

	/** \brief Submit \a job; the fence signals when it completed. */
	Result<Fence> submit(const Job &job);
	/** \brief Encode-and-submit convenience: Job::create() then submit(). */
	Result<Fence> submit(const CommandEncoder &enc);
	/** \brief The fence of the last submitted job (empty before the first). */
	Fence last_fence() const;
	/** \brief Wait for every job submitted so far. */
	Result<void> finish(std::chrono::steady_clock::time_point deadline) const;

private:
	std::shared_ptr<detail::ContextImpl> impl_;
};

} // namespace accel
