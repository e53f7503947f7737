// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Virtual refnpu devices: platform devices created by the module itself,
 * so the driver runs without the emulated PCI device.
 */

#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>

#include "refnpu_drv.h"

#define REFNPU_VIRT_NAME	"refnpu-virt"
#define REFNPU_VIRT_MAX		8

static unsigned int virt_devices;
module_param(virt_devices, uint, 0444);
MODULE_PARM_DESC(virt_devices,
		 "Number of in-kernel virtual refnpu devices to create (default: 0, max: 8)");

static struct platform_device *refnpu_virt_pdevs[REFNPU_VIRT_MAX];

static int refnpu_virt_probe(struct platform_device *pdev)
{
	struct refnpu_device *rdev;
	int ret;

	ret = dma_coerce_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;

	rdev = refnpu_device_create(&pdev->dev);
	if (IS_ERR(rdev))
		return PTR_ERR(rdev);

	platform_set_drvdata(pdev, rdev);

	return refnpu_device_register(rdev);
}

static void refnpu_virt_remove(struct platform_device *pdev)
{
	refnpu_device_unregister(platform_get_drvdata(pdev));
}

static struct platform_driver refnpu_virt_driver = {
	.probe = refnpu_virt_probe,
	.remove = refnpu_virt_remove,
	.driver = {
		.name = REFNPU_VIRT_NAME,
	},
};

/**
 * refnpu_virt_init() - register the virtual driver and its devices
 *
 * Return: 0 on success or a negative errno.
 */
int refnpu_virt_init(void)
{
	unsigned int i;
	int ret;

	if (virt_devices > REFNPU_VIRT_MAX)
		return -EINVAL;

	ret = platform_driver_register(&refnpu_virt_driver);
	if (ret)
		return ret;

	for (i = 0; i < virt_devices; i++) {
		struct platform_device *pdev;

		pdev = platform_device_register_simple(REFNPU_VIRT_NAME, i,
						       NULL, 0);
		if (IS_ERR(pdev)) {
			ret = PTR_ERR(pdev);
			goto err_unregister;
		}
		refnpu_virt_pdevs[i] = pdev;
	}

	return 0;

err_unregister:
	while (i--) {
		platform_device_unregister(refnpu_virt_pdevs[i]);
		refnpu_virt_pdevs[i] = NULL;
	}
	platform_driver_unregister(&refnpu_virt_driver);
	return ret;
}

/**
 * refnpu_virt_exit() - remove the virtual devices and their driver
 */
void refnpu_virt_exit(void)
{
	unsigned int i;

	for (i = REFNPU_VIRT_MAX; i--;) {
		if (!refnpu_virt_pdevs[i])
			continue;
		platform_device_unregister(refnpu_virt_pdevs[i]);
		refnpu_virt_pdevs[i] = NULL;
	}
	platform_driver_unregister(&refnpu_virt_driver);
}
