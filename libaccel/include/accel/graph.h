// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file graph.h
 * \brief A small graph API: a sequence of fp32 operations (an MLP, a small
 *        CNN) compiled into one command buffer, with every intermediate
 *        tensor placed in memory the library manages.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <accel/context.h>
#include <accel/device.h>
#include <accel/encoder.h>
#include <accel/export.h>
#include <accel/result.h>

namespace accel {

/** \brief Names a tensor of a Graph. */
struct TensorId {
	/** Index in the graph. */
	uint32_t index = UINT32_MAX;
	/** \brief True when the id names a tensor. */
	bool is_valid() const noexcept { return index != UINT32_MAX; }
};

/**
 * \brief A sequence of fp32 operations on 2-D ([rows, cols]) and NHWC
 *        ([n, h, w, c]) tensors.
 *
 * Building methods check shapes and return Errc::invalid_argument naming
 * the operation and the mismatch. Thread safety: not synchronised.
 */
class ACCEL_EXPORT Graph
{
public:
	Graph();
	~Graph();
	/** \brief Copy the graph description. */
	Graph(const Graph &);
	/** \brief Copy the graph description. */
	Graph &operator=(const Graph &);
	/** \brief Move the graph description. */
	Graph(Graph &&) noexcept;
	/** \brief Move the graph description. */
	Graph &operator=(Graph &&) noexcept;

	/** \brief An input fed at run time; \a shape has 2 or 4 dimensions. */
	Result<TensorId> input(const std::string &name, const std::vector<uint32_t> &shape);
	/** \brief A constant (weights, bias) with \a values in row-major / NHWC order. */
	Result<TensorId> constant(const std::string &name, const std::vector<uint32_t> &shape,
				  std::vector<float> values);
	/**
	 * \brief Fully connected layer: x [M, K] times w [K, N], plus bias
	 *        ([N] or [1, N]) when given, then ReLU when \a relu.
	 */
	Result<TensorId> dense(TensorId x, TensorId w, std::optional<TensorId> bias = {},
			       bool relu = false);
	/** \brief Elementwise op; \a b is broadcast as [M, N], [1, N], [M, 1] or [1, 1]. */
	Result<TensorId> ewise(EwiseOp op, TensorId a, TensorId b);
	/** \brief Activation on a 2-D tensor. */
	Result<TensorId> act(Activation f, TensorId x);
	/** \brief Row-wise softmax. */
	Result<TensorId> softmax(TensorId x);
	/** \brief Row-wise layer normalisation with optional gamma and beta ([N]). */
	Result<TensorId> layernorm(TensorId x, std::optional<TensorId> gamma = {},
				   std::optional<TensorId> beta = {}, float eps = 1e-5f);
	/**
	 * \brief Convolution of x [N, H, W, C] with filter [KH, KW, C, OC]
	 *        (HWIO), optional bias [OC], optional fused ReLU.
	 */
	Result<TensorId> conv2d(TensorId x, TensorId filter, std::optional<TensorId> bias,
				const Window2D &win, bool relu = false);
	/** \brief Max or average pooling of x [N, H, W, C]. */
	Result<TensorId> pool2d(PoolMode mode, TensorId x, const Window2D &win);
	/** \brief View x [N, H, W, C] as [N, H*W*C] (no copy). */
	Result<TensorId> flatten(TensorId x);
	/** \brief Make \a t readable after a run, under \a name. */
	Result<void> output(TensorId t, const std::string &name);

	/** \brief Shape of \a t. */
	std::vector<uint32_t> shape(TensorId t) const;
	/** \brief Name of \a t (generated for intermediate tensors). */
	std::string name(TensorId t) const;
	/** \brief The input tensors, in creation order. */
	std::vector<TensorId> inputs() const;
	/** \brief The output tensors, in the order output() was called. */
	std::vector<TensorId> outputs() const;
	/** \brief Number of operations. */
	std::size_t op_count() const noexcept;
	/** \brief Multiply-adds of one run (for throughput figures). */
	uint64_t macs() const noexcept;
	/** \brief Find a tensor by name. */
	std::optional<TensorId> find(const std::string &name) const;

	/** \cond INTERNAL */
	struct Impl;
	const Impl &impl() const noexcept { return *impl_; }
	/** \endcond */

private:
	std::unique_ptr<Impl> impl_;
};

/** \brief Timings of one CompiledGraph::run(). */
struct RunTimes {
	/** Host time from submission to completion (device), or engine time (reference). */
	std::chrono::nanoseconds execute{0};
};

/**
 * \brief A Graph bound to a target: tensors placed in one memory arena
 *        (intermediates share space when their lifetimes do not overlap),
 *        constants uploaded, the operations encoded as one command buffer.
 *
 * Thread safety: not synchronised.
 */
class ACCEL_EXPORT CompiledGraph
{
public:
	CompiledGraph();
	~CompiledGraph();
	/** \brief Move the compiled graph. */
	CompiledGraph(CompiledGraph &&) noexcept;
	/** \brief Move the compiled graph. */
	CompiledGraph &operator=(CompiledGraph &&) noexcept;

	/** \brief Compile for a device, submitting on \a ctx. */
	static Result<CompiledGraph> compile(const Graph &g, const Context &ctx);
	/** \brief Compile for the CPU reference engine. */
	static Result<CompiledGraph> compile_reference(const Graph &g);

	/** \brief Set input \a t from \a values (its element count must match). */
	Result<void> set_input(TensorId t, std::span<const float> values);
	/** \brief Run once; waits for completion until \a timeout. */
	Result<RunTimes> run(std::chrono::nanoseconds timeout = std::chrono::seconds(60));
	/** \brief Contents of tensor \a t after run() (outputs and inputs). */
	Result<std::vector<float>> read(TensorId t) const;
	/** \brief The encoded command buffer. */
	std::span<const std::byte> commands() const noexcept;
	/** \brief Bytes of the tensor arena. */
	uint64_t arena_size() const noexcept;

private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

} // namespace accel
