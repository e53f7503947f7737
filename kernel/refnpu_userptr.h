/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_USERPTR_H__
#define __REFNPU_USERPTR_H__

struct drm_device;
struct drm_file;
struct refnpu_bo;

int refnpu_bo_userptr_ioctl(struct drm_device *drm, void *data,
			    struct drm_file *file);
void refnpu_userptr_release(struct refnpu_bo *bo);

#endif /* __REFNPU_USERPTR_H__ */
