/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_DEBUGFS_H__
#define __REFNPU_DEBUGFS_H__

struct refnpu_device;

#if IS_ENABLED(CONFIG_DEBUG_FS)
void refnpu_debugfs_init(struct refnpu_device *rdev);
#else
static inline void refnpu_debugfs_init(struct refnpu_device *rdev)
{
}
#endif

#endif /* __REFNPU_DEBUGFS_H__ */
