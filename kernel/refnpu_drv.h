/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_DRV_H__
#define __REFNPU_DRV_H__

#include <drm/drm_device.h>

#define DRIVER_NAME	"refnpu"
#define DRIVER_DESC	"Reference NPU accelerator driver"
#define DRIVER_DATE	"20250101"
#define DRIVER_MAJOR	0
#define DRIVER_MINOR	1

/**
 * struct refnpu_device - one refnpu device instance
 * @drm: DRM device, embedded; its managed lifetime owns this structure
 */
struct refnpu_device {
	struct drm_device drm;
};

static inline struct refnpu_device *to_refnpu(struct drm_device *drm)
{
	return container_of(drm, struct refnpu_device, drm);
}

struct refnpu_device *refnpu_device_create(struct device *parent);
int refnpu_device_register(struct refnpu_device *rdev);
void refnpu_device_unregister(struct refnpu_device *rdev);

int refnpu_virt_init(void);
void refnpu_virt_exit(void);

#endif /* __REFNPU_DRV_H__ */
