// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file buffer.h
 * \brief Device buffers, their CPU mappings and dma-buf sharing.
 */
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include <accel/device.h>
#include <accel/export.h>
#include <accel/result.h>
#include <accel/unique_fd.h>

namespace accel {

/** \brief Flags of Device::create_buffer(). */
enum BufferFlag : uint32_t {
	/** Map write-combined on the CPU instead of write-back. */
	buffer_write_combined = 0x1,
	/** The device may read but not write the buffer. */
	buffer_device_read_only = 0x2,
};

/**
 * \brief A range of device memory as commands see it.
 *
 * \a handle names the GEM object (0 for memory of a ReferenceMachine),
 * \a va is its device virtual address and \a size its length in bytes.
 */
struct Memory {
	/** GEM handle, or 0 when not a device buffer. */
	uint32_t handle = 0;
	/** Device virtual address of the first byte. */
	uint64_t va = 0;
	/** Bytes. */
	uint64_t size = 0;
};

/**
 * \brief A CPU mapping of a buffer, unmapped on destruction.
 *
 * The mapping stays valid after the Buffer is destroyed (the kernel keeps
 * the memory while it is mapped). Thread safety: the object is immutable;
 * concurrent access to the bytes is the application's to order.
 */
class ACCEL_EXPORT Mapping
{
public:
	/** \brief An empty mapping. */
	Mapping() = default;
	~Mapping();
	Mapping(const Mapping &) = delete;
	Mapping &operator=(const Mapping &) = delete;
	/** \brief Take over \a other's mapping. */
	Mapping(Mapping &&other) noexcept;
	/** \brief Unmap this mapping and take over \a other's. */
	Mapping &operator=(Mapping &&other) noexcept;

	/** \brief The mapped bytes. */
	std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
	/** \brief First mapped byte. */
	std::byte *data() const noexcept { return data_; }
	/** \brief Mapped length in bytes. */
	std::size_t size() const noexcept { return size_; }
	/** \brief The bytes viewed as elements of T (size rounded down). */
	template <typename T>
	std::span<T> as() const noexcept
	{
		return {reinterpret_cast<T *>(data_), size_ / sizeof(T)};
	}

	/** \cond INTERNAL */
	Mapping(std::byte *data, std::size_t size) noexcept : data_(data), size_(size) { }
	/** \endcond */

private:
	std::byte *data_ = nullptr;
	std::size_t size_ = 0;
};

/**
 * \brief A buffer object of a device: an owned reference to a GEM handle.
 *
 * Several Buffer objects may refer to one GEM handle (a dma-buf imported
 * twice); the handle is closed when the last of them is destroyed.
 * Move-only. Thread safety: const methods may be called concurrently;
 * destroying a Buffer while another thread uses it is not allowed.
 */
class ACCEL_EXPORT Buffer
{
public:
	/** \brief An empty buffer. */
	Buffer() = default;
	~Buffer();
	Buffer(const Buffer &) = delete;
	Buffer &operator=(const Buffer &) = delete;
	/** \brief Take over \a other's reference. */
	Buffer(Buffer &&other) noexcept;
	/** \brief Drop this reference and take over \a other's. */
	Buffer &operator=(Buffer &&other) noexcept;

	/** \brief True when this object holds a buffer. */
	bool is_valid() const noexcept { return handle_ != 0; }
	/** \brief The device the buffer belongs to. */
	const Device &device() const noexcept { return dev_; }
	/** \brief GEM handle (valid on device().fd() only). */
	uint32_t handle() const noexcept { return handle_; }
	/** \brief Size in bytes. */
	uint64_t size() const noexcept { return size_; }
	/** \brief Device virtual address. */
	uint64_t va() const noexcept { return va_; }
	/** \brief BufferFlag bits the buffer was created with. */
	uint32_t flags() const noexcept { return flags_ & ~user_memory_flag; }
	/** \brief True for a buffer made with Device::import_user_memory(). */
	bool is_user_memory() const noexcept { return flags_ & user_memory_flag; }
	/** \brief The whole buffer as a Memory range for the command encoder. */
	Memory memory() const noexcept { return {handle_, va_, size_}; }

	/** \brief Map the whole buffer into the process. */
	Result<Mapping> map() const;
	/** \brief Export as a dma-buf; the caller owns the returned descriptor. */
	Result<UniqueFd> export_dmabuf() const;
	/**
	 * \brief Wait until every job using the buffer completed.
	 * \return the error of the last refnpu job that used it, or
	 *         Errc::timeout when \a deadline passed first
	 */
	Result<void> wait(std::chrono::steady_clock::time_point deadline) const;
	/** \brief True when no job uses the buffer. */
	Result<bool> is_idle() const;

	/** \cond INTERNAL */
	static constexpr uint32_t user_memory_flag = 1u << 31;
	Buffer(Device dev, uint32_t handle, uint64_t size, uint64_t va, uint64_t mmap_offset,
	       uint32_t flags) noexcept
		: dev_(std::move(dev)), handle_(handle), size_(size), va_(va),
		  mmap_offset_(mmap_offset), flags_(flags)
	{
	}
	/** \endcond */

private:
	void release() noexcept;

	Device dev_;
	uint32_t handle_ = 0;
	uint64_t size_ = 0;
	uint64_t va_ = 0;
	uint64_t mmap_offset_ = 0;
	uint32_t flags_ = 0;
};

} // namespace accel
