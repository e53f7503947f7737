// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 */

#include <linux/module.h>

#include <drm/drm_accel.h>
#include <drm/drm_drv.h>
#include <drm/drm_gem.h>
#include <drm/drm_ioctl.h>

#include "refnpu_drv.h"

static bool selftest_warn;
module_param(selftest_warn, bool, 0444);
MODULE_PARM_DESC(selftest_warn,
		 "Test hook only: WARN once at module load so the VM harness can check that it detects kernel splats (default: false)");

DEFINE_DRM_ACCEL_FOPS(refnpu_fops);

static const struct drm_driver refnpu_drm_driver = {
	.driver_features = DRIVER_COMPUTE_ACCEL | DRIVER_GEM,
	.fops = &refnpu_fops,
	.name = DRIVER_NAME,
	.desc = DRIVER_DESC,
	.date = DRIVER_DATE,
	.major = DRIVER_MAJOR,
	.minor = DRIVER_MINOR,
};

/**
 * refnpu_device_create() - allocate a refnpu device for a bus device
 * @parent: the bus device (PCI function or virtual platform device)
 *
 * The returned structure is owned by the DRM device's managed lifetime,
 * itself tied to @parent through devres.
 *
 * Return: the new device, or an ERR_PTR() on failure.
 */
struct refnpu_device *refnpu_device_create(struct device *parent)
{
	return devm_drm_dev_alloc(parent, &refnpu_drm_driver,
				  struct refnpu_device, drm);
}

/**
 * refnpu_device_register() - make a device visible to user space
 * @rdev: device set up by its backend
 *
 * Return: 0 on success or a negative errno.
 */
int refnpu_device_register(struct refnpu_device *rdev)
{
	return drm_dev_register(&rdev->drm, 0);
}

/**
 * refnpu_device_unregister() - unplug a device from user space
 * @rdev: device to unplug
 *
 * After this returns no new hardware access can start: every access
 * section guarded by drm_dev_enter() fails. Open files stay valid until
 * they are closed.
 */
void refnpu_device_unregister(struct refnpu_device *rdev)
{
	drm_dev_unplug(&rdev->drm);
}

static int __init refnpu_init(void)
{
	/* Lets the VM harness prove that it catches kernel splats. */
	WARN_ON(selftest_warn);

	return refnpu_virt_init();
}

static void __exit refnpu_exit(void)
{
	refnpu_virt_exit();
}

module_init(refnpu_init);
module_exit(refnpu_exit);

MODULE_DESCRIPTION(DRIVER_DESC);
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(DMA_BUF);
