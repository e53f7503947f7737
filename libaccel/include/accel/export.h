// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file export.h
 * \brief Symbol visibility of the libaccel API.
 *
 * libaccel is built with -fvisibility=hidden: only declarations marked
 * ACCEL_EXPORT are part of the shared library's ABI (tests/unit/libaccel
 * checks the exported symbol list).
 */
#pragma once

/** \brief Marks a class or function as part of the libaccel ABI. */
#define ACCEL_EXPORT __attribute__((visibility("default")))
