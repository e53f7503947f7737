// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __CHECKER__
#define CREATE_TRACE_POINTS
#include "refnpu_trace.h"
#endif
