// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file accel.h
 * \brief libaccel: the C++20 SDK of the refnpu compute accelerator.
 *
 * Include this one header for the whole API:
 *
 * - enumerate_devices(), Device: find and open accel devices
 * - Buffer, Mapping: device memory, CPU mappings, dma-buf sharing
 * - CommandEncoder: typed, validated command buffers
 * - Job, Context, Fence: submission and completion
 * - Graph, CompiledGraph: sequences of operations with managed tensors
 * - ReferenceMachine: the same command buffers on the CPU reference engine
 *
 * Every fallible call returns a Result<T>; see result.h for the error kinds.
 */
#pragma once

#include <accel/buffer.h>
#include <accel/context.h>
#include <accel/device.h>
#include <accel/encoder.h>
#include <accel/fence.h>
#include <accel/graph.h>
#include <accel/reference.h>
#include <accel/result.h>
#include <accel/unique_fd.h>
#include <accel/version.h>
