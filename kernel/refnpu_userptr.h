/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_USERPTR_H__
#define __REFNPU_USERPTR_H__

#include <linux/types.h>

struct drm_device;
struct drm_file;
struct mm_struct;
struct refnpu_bo;

int refnpu_bo_userptr_ioctl(struct drm_device *drm, void *data,
			    struct drm_file *file);
void refnpu_userptr_release(struct refnpu_bo *bo);
bool refnpu_userptr_is_of(const struct refnpu_bo *bo,
			  const struct mm_struct *mm);

#endif /* __REFNPU_USERPTR_H__ */
