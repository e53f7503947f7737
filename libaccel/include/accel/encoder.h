// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file encoder.h
 * \brief Typed command encoder for the refnpu instruction set.
 *
 * The encoder writes command buffers in the format of the hardware
 * specification (accel/hw/refnpu_hw.h, the same header the device model,
 * the kernel and the compute engine use). Every operand is checked before
 * it is encoded -- shapes, element types, alignment, pitches, bounds within
 * its buffer, overlaps, op-specific parameters -- so that a mistake is
 * reported as Errc::invalid_argument naming the operand and the rule,
 * instead of a device fault later.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <accel/buffer.h>
#include <accel/export.h>
#include <accel/hw/refnpu_hw.h>
#include <accel/result.h>

namespace accel {

/** \brief Element types (REFNPU_DTYPE_*). */
enum class DType : uint32_t {
	fp32 = REFNPU_DTYPE_FP32,
	fp16 = REFNPU_DTYPE_FP16,
	bf16 = REFNPU_DTYPE_BF16,
	int8 = REFNPU_DTYPE_INT8,
	int32 = REFNPU_DTYPE_INT32,
};

/** \brief Bytes per element of \a t (0 for an invalid value). */
ACCEL_EXPORT std::size_t dtype_size(DType t) noexcept;
/** \brief "fp32", "fp16", "bf16", "int8" or "int32". */
ACCEL_EXPORT const char *dtype_name(DType t) noexcept;
/** \brief Parse a dtype_name(). */
ACCEL_EXPORT std::optional<DType> dtype_from_name(std::string_view name) noexcept;

/** \brief Elementwise binary operations (REFNPU_EWISE_*). */
enum class EwiseOp : uint32_t {
	add = REFNPU_EWISE_ADD,
	sub = REFNPU_EWISE_SUB,
	mul = REFNPU_EWISE_MUL,
	max = REFNPU_EWISE_MAX,
	min = REFNPU_EWISE_MIN,
};

/** \brief Activation functions (REFNPU_ACT_*). */
enum class Activation : uint32_t {
	relu = REFNPU_ACT_RELU,
	gelu = REFNPU_ACT_GELU,
	gelu_tanh = REFNPU_ACT_GELU_TANH,
	sigmoid = REFNPU_ACT_SIGMOID,
	tanh = REFNPU_ACT_TANH,
};

/** \brief Pooling modes (REFNPU_POOL_*). */
enum class PoolMode : uint32_t {
	max = REFNPU_POOL_MAX,
	avg = REFNPU_POOL_AVG,
};

/**
 * \brief A strided 2-D view: \a rows x \a cols elements of \a dtype at
 *        byte \a offset of \a mem, rows \a pitch bytes apart.
 */
struct Tensor2D {
	/** The memory the view lies in. */
	Memory mem;
	/** Byte offset of element [0][0] in \a mem. */
	uint64_t offset = 0;
	/** Element type. */
	DType dtype = DType::fp32;
	/** Rows. */
	uint32_t rows = 0;
	/** Columns (elements per row). */
	uint32_t cols = 0;
	/** Bytes between row starts; 0 means packed (cols * element size). */
	uint64_t pitch = 0;

	/** \brief The effective row pitch in bytes. */
	uint64_t row_pitch() const noexcept { return pitch ? pitch : cols * dtype_size(dtype); }
	/** \brief Device address of element [0][0]. */
	uint64_t va() const noexcept { return mem.va + offset; }
	/** \brief Bytes from the first to one past the last element (0 when empty). */
	uint64_t extent() const noexcept
	{
		if (!rows || !cols)
			return 0;
		return (rows - 1) * row_pitch() + cols * dtype_size(dtype);
	}
};

/** \brief A packed rows x cols view at \a offset of \a mem. */
inline Tensor2D tensor2d(const Memory &mem, DType dtype, uint32_t rows, uint32_t cols,
			 uint64_t offset = 0, uint64_t pitch = 0)
{
	return Tensor2D{mem, offset, dtype, rows, cols, pitch};
}

/**
 * \brief A strided NHWC view: each image row holds w * c packed elements.
 */
struct TensorNHWC {
	/** The memory the view lies in. */
	Memory mem;
	/** Byte offset of element [0][0][0][0] in \a mem. */
	uint64_t offset = 0;
	/** Element type. */
	DType dtype = DType::fp32;
	/** Batch. */
	uint32_t n = 0;
	/** Height. */
	uint32_t h = 0;
	/** Width. */
	uint32_t w = 0;
	/** Channels. */
	uint32_t c = 0;
	/** Bytes between rows (h); 0 means packed. */
	uint64_t pitch_h = 0;
	/** Bytes between images (n); 0 means packed. */
	uint64_t pitch_n = 0;

	/** \brief Effective row pitch. */
	uint64_t row_pitch() const noexcept
	{
		return pitch_h ? pitch_h : uint64_t(w) * c * dtype_size(dtype);
	}
	/** \brief Effective image pitch. */
	uint64_t image_pitch() const noexcept { return pitch_n ? pitch_n : h * row_pitch(); }
	/** \brief Device address of the first element. */
	uint64_t va() const noexcept { return mem.va + offset; }
	/** \brief Bytes from the first to one past the last element (0 when empty). */
	uint64_t extent() const noexcept
	{
		if (!n || !h || !w || !c)
			return 0;
		return (n - 1) * image_pitch() + (h - 1) * row_pitch() +
		       uint64_t(w) * c * dtype_size(dtype);
	}
};

/** \brief Contiguous per-column parameters (bias, gamma, beta) at \a offset of \a mem. */
struct VectorRef {
	/** The memory the vector lies in. */
	Memory mem;
	/** Byte offset of element 0. */
	uint64_t offset = 0;
};

/** \brief Operands of CommandEncoder::gemm(): c = act(a * b + bias). */
struct GemmOp {
	/** M x K input. */
	Tensor2D a;
	/** K x N input, same dtype as \a a. */
	Tensor2D b;
	/** M x N output. */
	Tensor2D c;
	/** Optional N-element bias: fp32 for float inputs, int32 for int8. */
	std::optional<VectorRef> bias;
	/** Fused ReLU. */
	bool relu = false;
	/** int8 output: requantisation multiplier in [0, 2^31). */
	int32_t rq_multiplier = 0;
	/** int8 output: right shift in [0, 63]. */
	uint32_t rq_shift = 0;
	/** int8 output: zero point in [-128, 127]. */
	int32_t rq_zero_point = 0;
};

/** \brief Operands of CommandEncoder::layernorm(). */
struct LayerNormOp {
	/** Input, rows x cols fp32. */
	Tensor2D src;
	/** Output; may be exactly \a src. */
	Tensor2D dst;
	/** Optional cols fp32 scale values. */
	std::optional<VectorRef> gamma;
	/** Optional cols fp32 offsets. */
	std::optional<VectorRef> beta;
	/** Epsilon added to the variance, finite and >= 0. */
	float eps = 1e-5f;
};

/** \brief Kernel geometry shared by convolution and pooling. */
struct Window2D {
	uint32_t kh = 1; /**< kernel height */
	uint32_t kw = 1; /**< kernel width */
	uint32_t stride_h = 1; /**< vertical stride */
	uint32_t stride_w = 1; /**< horizontal stride */
	uint32_t dil_h = 1; /**< vertical dilation (convolution only) */
	uint32_t dil_w = 1; /**< horizontal dilation (convolution only) */
	uint32_t pad_top = 0; /**< zero rows above */
	uint32_t pad_bottom = 0; /**< zero rows below */
	uint32_t pad_left = 0; /**< zero columns left */
	uint32_t pad_right = 0; /**< zero columns right */
};

/**
 * \brief Output extent of a window over an input extent.
 * \return the output size, or std::nullopt when the window does not fit
 */
ACCEL_EXPORT std::optional<uint32_t> window_output(uint32_t in, uint32_t k, uint32_t stride,
						   uint32_t dil, uint32_t pad_lo,
						   uint32_t pad_hi) noexcept;

/** \brief Operands of CommandEncoder::conv2d(). */
struct Conv2dOp {
	/** N x H x W x C input. */
	TensorNHWC in;
	/** N x OH x OW x OC output. */
	TensorNHWC out;
	/** (KH * KW * C) x OC filter, HWIO order. */
	Tensor2D filter;
	/** Optional OC fp32 bias. */
	std::optional<VectorRef> bias;
	/** Fused ReLU. */
	bool relu = false;
	/** Kernel size, stride, dilation and padding. */
	Window2D win;
};

/** \brief Operands of CommandEncoder::pool2d(). */
struct Pool2dOp {
	/** N x H x W x C input. */
	TensorNHWC in;
	/** N x OH x OW x C output. */
	TensorNHWC out;
	/** Max or average. */
	PoolMode mode = PoolMode::max;
	/** Window; dilation must be 1, each padding smaller than the window. */
	Window2D win;
};

/** \brief Access of a buffer by a job. */
enum Access : uint32_t {
	/** The job reads the buffer. */
	access_read = 0x1,
	/** The job writes the buffer. */
	access_write = 0x2,
	/** Both. */
	access_read_write = 0x3,
};

/** \brief A buffer used by encoded commands. */
struct BufferUse {
	/** GEM handle. */
	uint32_t handle = 0;
	/** Access bits. */
	uint32_t access = 0;
};

/**
 * \brief Builds one command buffer.
 *
 * Each method validates its operands and, only when they are valid,
 * appends one command; on error nothing is appended. The encoder also
 * records which buffers (by GEM handle) the commands read and write, so a
 * Job can list them for implicit synchronisation.
 *
 * Thread safety: not synchronised; use one encoder per thread.
 */
class ACCEL_EXPORT CommandEncoder
{
public:
	CommandEncoder() = default;

	/**
	 * \brief Restrict the encoder to the opcodes in \a mask (bit N =
	 *        opcode N, DeviceProperties::ops): others fail with Errc::unsupported.
	 */
	void set_supported_ops(uint64_t mask) noexcept { supported_ops_ = mask; }

	/** \brief A command that does nothing. */
	Result<void> nop();
	/** \brief Copy \a src to \a dst (same shape and dtype, not overlapping). */
	Result<void> copy(const Tensor2D &dst, const Tensor2D &src);
	/** \brief Copy \a bytes bytes between two memory ranges. */
	Result<void> copy_bytes(const Memory &dst, uint64_t dst_offset, const Memory &src,
				uint64_t src_offset, uint64_t bytes);
	/** \brief Fill \a dst with the element bit pattern \a pattern (low bytes of one element).
	 */
	Result<void> fill(const Tensor2D &dst, uint64_t pattern);
	/** \brief Fill an fp32 tensor with \a value. */
	Result<void> fill_f32(const Tensor2D &dst, float value);
	/** \brief Matrix multiply with optional bias and ReLU. */
	Result<void> gemm(const GemmOp &op);
	/**
	 * \brief out = op(a, b), fp32. The broadcast of \a b follows from its
	 *        shape: rows x cols, 1 x cols (row), rows x 1 (column) or 1 x 1.
	 *        \a out may be exactly \a a or \a b.
	 */
	Result<void> ewise(EwiseOp op, const Tensor2D &out, const Tensor2D &a, const Tensor2D &b);
	/** \brief dst = f(src), fp32; \a dst may be exactly \a src. */
	Result<void> act(Activation f, const Tensor2D &dst, const Tensor2D &src);
	/** \brief Row-wise softmax, fp32; \a dst may be exactly \a src. */
	Result<void> softmax(const Tensor2D &dst, const Tensor2D &src);
	/** \brief Row-wise layer normalisation. */
	Result<void> layernorm(const LayerNormOp &op);
	/** \brief 2-D convolution, NHWC, HWIO filter. */
	Result<void> conv2d(const Conv2dOp &op);
	/** \brief 2-D max or average pooling, NHWC. */
	Result<void> pool2d(const Pool2dOp &op);

	/** \brief The encoded command buffer. */
	std::span<const std::byte> data() const noexcept { return {buf_.data(), buf_.size()}; }
	/** \brief Its size in bytes. */
	std::size_t size() const noexcept { return buf_.size(); }
	/** \brief Number of commands encoded. */
	std::size_t command_count() const noexcept { return count_; }
	/** \brief Buffers the commands use, with their access (one entry per handle). */
	const std::vector<BufferUse> &buffer_uses() const noexcept { return uses_; }
	/** \brief Drop every command (keeps the supported-ops mask). */
	void clear() noexcept;

	/** \brief Append a raw, already encoded command (for tests of the device's own checks). */
	void append_raw(std::span<const std::byte> cmd);

private:
	Result<void> check_op(uint16_t opcode, const char *name) const;
	void emit(const void *cmd, std::size_t size);
	void note(const Memory &mem, uint32_t access);

	std::vector<std::byte> buf_;
	std::vector<BufferUse> uses_;
	std::size_t count_ = 0;
	uint64_t supported_ops_ = ~0ULL;
};

} // namespace accel
