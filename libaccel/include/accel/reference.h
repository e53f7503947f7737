// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file reference.h
 * \brief Running command buffers on the CPU with the shared compute engine.
 *
 * libaccel compiles the hardware's reference compute engine
 * (kernel/hw/refnpu_engine.c, the file the QEMU device model and the
 * in-kernel virtual device use too), so results computed here are
 * bit-identical to the device's -- except fp32 GEMM, where the device may
 * use a faster method within the tolerance of gemm_tolerance().
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <accel/buffer.h>
#include <accel/export.h>
#include <accel/result.h>

namespace accel {

/** \brief Outcome of a command buffer (struct refnpu_completion's fields). */
struct EngineStatus {
	/** REFNPU_ERR_* code; 0 on success. */
	uint32_t code = 0;
	/** REFNPU_FAULT_F_* flags of a failing access. */
	uint32_t fault_flags = 0;
	/** Device VA of a failing access. */
	uint64_t fault_va = 0;
	/** Failing command; the number of commands on success. */
	uint32_t cmd_index = 0;
	/** Byte offset of the failing command; the size on success. */
	uint32_t cmd_offset = 0;
};

/** \brief Name of a REFNPU_ERR_* code ("MMU_UNMAPPED", ...). */
ACCEL_EXPORT const char *engine_error_name(uint32_t code) noexcept;

/**
 * \brief A device address space in host memory, executing command buffers
 *        with the reference engine.
 *
 * Memory is allocated at page-aligned device addresses with an unmapped
 * guard page between allocations, as the driver lays out buffers, so an
 * access beyond a tensor faults here as it would on the device.
 *
 * Thread safety: not synchronised; one machine per thread.
 */
class ACCEL_EXPORT ReferenceMachine
{
public:
	ReferenceMachine();
	~ReferenceMachine();
	ReferenceMachine(const ReferenceMachine &) = delete;
	ReferenceMachine &operator=(const ReferenceMachine &) = delete;
	/** \brief Move the address space. */
	ReferenceMachine(ReferenceMachine &&) noexcept;
	/** \brief Move the address space. */
	ReferenceMachine &operator=(ReferenceMachine &&) noexcept;

	/**
	 * \brief Allocate \a size zeroed bytes at a fresh device address.
	 * \param size bytes (rounded up to 4 KiB)
	 * \param device_read_only the engine may read but not write it
	 */
	Memory alloc(uint64_t size, bool device_read_only = false);
	/** \brief Release memory from alloc(); its addresses fault afterwards. */
	void free(const Memory &mem);
	/** \brief Host view of \a mem (empty if \a mem was not allocated here). */
	std::span<std::byte> data(const Memory &mem) const;

	/**
	 * \brief Execute a command buffer.
	 * \return Errc::job_failed naming the failing command, the error and
	 *         the faulting address when the engine stops with an error
	 */
	Result<void> run(std::span<const std::byte> commands);
	/** \brief Outcome of the last run(). */
	const EngineStatus &last_status() const noexcept;

private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

/** \brief IEEE fp32 to fp16, round to nearest even (the device's conversion). */
ACCEL_EXPORT uint16_t fp32_to_fp16(float f) noexcept;
/** \brief IEEE fp16 to fp32 (exact). */
ACCEL_EXPORT float fp16_to_fp32(uint16_t h) noexcept;
/** \brief IEEE fp32 to bfloat16, round to nearest even (the device's conversion). */
ACCEL_EXPORT uint16_t fp32_to_bf16(float f) noexcept;
/** \brief bfloat16 to fp32 (exact). */
ACCEL_EXPORT float bf16_to_fp32(uint16_t h) noexcept;

/**
 * \brief Largest difference the device's fp32 GEMM may show against the
 *        reference for one output element (REFNPU_GEMM_TOL_* of the spec).
 * \param k inner dimension
 * \param abs_sum exact sum over k of |A[m][k] * B[k][n]| plus |bias[n]|
 */
ACCEL_EXPORT double gemm_tolerance(uint32_t k, double abs_sum) noexcept;

} // namespace accel
