// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Helpers shared by the KUnit suites.
 *
 * The suites that need a device create a virtual one of their own (a
 * "refnpu-virt" platform device, bound by the driver like those of
 * virt_devices=N), open its accel node and talk to it through the uAPI:
 * ioctls go through the file's unlocked_ioctl, i.e. drm_ioctl() with its
 * argument copying, from user memory mapped into the test thread with
 * kunit_vm_mmap(). Everything a test creates is released by KUnit actions,
 * in reverse order, even when an assertion stops the test.
 */

#include <kunit/device.h>
#include <kunit/resource.h>
#include <kunit/test.h>

#include <linux/dma-mapping.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/iosys-map.h>
#include <linux/ktime.h>
#include <linux/mman.h>
#include <linux/platform_device.h>
#include <linux/uaccess.h>

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_hw_ops.h"
#include "refnpu_hwif.h"
#include "refnpu_job.h"
#include "refnpu_kunit.h"

/* The virtual devices' platform driver (refnpu_virt.c). */
#define REFNPU_TEST_VIRT_NAME	"refnpu-virt"

KUNIT_DEFINE_ACTION_WRAPPER(refnpu_test_unregister, platform_device_unregister,
			    struct platform_device *);
KUNIT_DEFINE_ACTION_WRAPPER(refnpu_test_fput, __fput_sync, struct file *);

/**
 * refnpu_test_device() - create a virtual refnpu device for one test
 * @test: the test; the device is removed when it ends
 * @timeout_ms: scheduler job timeout of the device, 0 for the default
 *
 * Return: the device, bound and registered (the test stops otherwise).
 */
struct refnpu_device *refnpu_test_device(struct kunit *test,
					 unsigned int timeout_ms)
{
	unsigned int saved = refnpu_job_timeout_ms;
	struct platform_device *pdev;
	struct refnpu_device *rdev;
	int ret;

	/* The scheduler reads the timeout when the device probes. */
	if (timeout_ms)
		refnpu_job_timeout_ms = timeout_ms;
	pdev = platform_device_register_simple(REFNPU_TEST_VIRT_NAME,
					       PLATFORM_DEVID_AUTO, NULL, 0);
	refnpu_job_timeout_ms = saved;
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, pdev);

	ret = kunit_add_action_or_reset(test, refnpu_test_unregister, pdev);
	KUNIT_ASSERT_EQ(test, ret, 0);

	rdev = platform_get_drvdata(pdev);
	KUNIT_ASSERT_NOT_NULL_MSG(test, rdev, "refnpu-virt did not bind");
	KUNIT_ASSERT_TRUE(test, rdev->info.is_virtual);

	return rdev;
}

/**
 * refnpu_test_remove() - remove a test's device now
 * @test: the test that created it with refnpu_test_device()
 * @rdev: the device
 *
 * The device is unplugged; it is released once its files are closed and
 * its jobs freed, as after a hot unplug.
 */
void refnpu_test_remove(struct kunit *test, struct refnpu_device *rdev)
{
	kunit_release_action(test, refnpu_test_unregister,
			     to_platform_device(rdev->drm.dev));
}

/**
 * refnpu_test_dma_device() - a device for DMA allocations only
 * @test: the test; the device goes away when it ends
 *
 * Return: a device on the KUnit bus with a 64-bit DMA mask.
 */
struct device *refnpu_test_dma_device(struct kunit *test)
{
	static atomic_t seq = ATOMIC_INIT(0);
	struct device *dev;
	char *name;

	/* Each device also registers a driver of its name: keep them unique. */
	name = kunit_kzalloc(test, 32, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, name);
	snprintf(name, 32, "refnpu-kunit-dma.%d", atomic_inc_return(&seq));

	dev = kunit_device_register(test, name);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, dev);
	KUNIT_ASSERT_EQ(test, dma_coerce_mask_and_coherent(dev, DMA_BIT_MASK(64)),
			0);

	return dev;
}

/**
 * refnpu_test_open() - open a device's accel node, like a process would
 * @test: the test; the file is closed when it ends
 * @rdev: the device
 *
 * Return: the open file, with its own context.
 */
struct file *refnpu_test_open(struct kunit *test, struct refnpu_device *rdev)
{
	struct file *filp;
	char path[32];
	int ret;

	KUNIT_ASSERT_NOT_NULL(test, rdev->drm.accel);
	snprintf(path, sizeof(path), "/dev/accel/accel%d",
		 rdev->drm.accel->index);
	filp = filp_open(path, O_RDWR, 0);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(filp), "cannot open %s: %ld", path,
			       PTR_ERR(filp));

	ret = kunit_add_action_or_reset(test, refnpu_test_fput, filp);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return filp;
}

/**
 * refnpu_test_close() - close a file opened by refnpu_test_open() now
 * @test: the test
 * @filp: the file
 */
void refnpu_test_close(struct kunit *test, struct file *filp)
{
	kunit_release_action(test, refnpu_test_fput, filp);
}

/**
 * refnpu_test_ctx() - the device context of an open file
 * @filp: file opened by refnpu_test_open()
 *
 * Return: the context.
 */
struct refnpu_ctx *refnpu_test_ctx(struct file *filp)
{
	struct drm_file *file = filp->private_data;
	struct refnpu_file *rfile = file->driver_priv;

	return rfile->ctx;
}

/* The test's user memory, mapped on first use. */
static unsigned long refnpu_test_ubase(struct kunit *test)
{
	struct kunit_resource *res;
	unsigned long addr;
	int ret;

	res = kunit_find_named_resource(test, "refnpu-user");
	if (res) {
		addr = (unsigned long)res->data;
		kunit_put_resource(res);
		return addr;
	}

	addr = kunit_vm_mmap(test, NULL, 0,
			     REFNPU_TEST_SLOTS * REFNPU_TEST_SLOT_SIZE,
			     PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
			     0);
	KUNIT_ASSERT_NE_MSG(test, addr, 0, "no user memory for the test");
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));

	res = kunit_kzalloc(test, sizeof(*res), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, res);
	ret = kunit_add_named_resource(test, NULL, NULL, res, "refnpu-user",
				       (void *)addr);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return addr;
}

/**
 * refnpu_test_user() - copy data into the test's user memory
 * @test: the test
 * @slot: which REFNPU_TEST_SLOT_SIZE slot; 0 is used by refnpu_test_ioctl()
 * @data: data to copy, or NULL to zero the bytes
 * @len: bytes, at most REFNPU_TEST_SLOT_SIZE
 *
 * Return: the user address of the slot.
 */
u64 refnpu_test_user(struct kunit *test, unsigned int slot, const void *data,
		     size_t len)
{
	unsigned long addr;
	unsigned long left;

	KUNIT_ASSERT_LT(test, slot, REFNPU_TEST_SLOTS);
	KUNIT_ASSERT_LE(test, len, REFNPU_TEST_SLOT_SIZE);

	addr = refnpu_test_ubase(test) + slot * REFNPU_TEST_SLOT_SIZE;
	if (data)
		left = copy_to_user((void __user *)addr, data, len);
	else
		left = clear_user((void __user *)addr, len);
	KUNIT_ASSERT_EQ(test, left, 0);

	return addr;
}

/**
 * refnpu_test_ioctl() - issue an ioctl through drm_ioctl()
 * @test: the test
 * @filp: open accel file
 * @cmd: DRM_IOCTL_* command; its size gives the argument size
 * @arg: argument, copied to user memory and back
 *
 * Return: what the ioctl returned.
 */
int refnpu_test_ioctl(struct kunit *test, struct file *filp, unsigned int cmd,
		      void *arg)
{
	size_t size = _IOC_SIZE(cmd);
	unsigned long left;
	u64 uarg;
	long ret;

	uarg = refnpu_test_user(test, 0, arg, size);
	ret = filp->f_op->unlocked_ioctl(filp, cmd, uarg);
	left = copy_from_user(arg, u64_to_user_ptr(uarg), size);
	KUNIT_ASSERT_EQ(test, left, 0);

	return ret;
}

/**
 * refnpu_test_bo() - create a BO
 * @test: the test
 * @filp: open accel file
 * @size: size in bytes
 * @flags: DRM_REFNPU_BO_* flags
 * @handle: receives the GEM handle
 * @va: receives the device virtual address, may be NULL
 *
 * Return: what DRM_IOCTL_REFNPU_BO_CREATE returned.
 */
int refnpu_test_bo(struct kunit *test, struct file *filp, u64 size, u32 flags,
		   u32 *handle, u64 *va)
{
	struct drm_refnpu_bo_create args = { .size = size, .flags = flags };
	int ret;

	ret = refnpu_test_ioctl(test, filp, DRM_IOCTL_REFNPU_BO_CREATE, &args);
	*handle = args.handle;
	if (va)
		*va = args.va;

	return ret;
}

/**
 * struct refnpu_test_vmap - a kernel mapping of a BO
 * @obj: the BO, with a reference
 * @map: its mapping
 */
struct refnpu_test_vmap {
	struct drm_gem_object *obj;
	struct iosys_map map;
};

static void refnpu_test_vunmap(void *data)
{
	struct refnpu_test_vmap *v = data;

	drm_gem_vunmap_unlocked(v->obj, &v->map);
	drm_gem_object_put(v->obj);
}

/**
 * refnpu_test_bo_map() - map a BO into the kernel
 * @test: the test; the mapping goes away when it ends
 * @filp: open accel file
 * @handle: GEM handle
 *
 * Return: the BO's kernel address.
 */
void *refnpu_test_bo_map(struct kunit *test, struct file *filp, u32 handle)
{
	struct refnpu_test_vmap *v;
	int ret;

	v = kunit_kzalloc(test, sizeof(*v), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, v);
	v->obj = drm_gem_object_lookup(filp->private_data, handle);
	KUNIT_ASSERT_NOT_NULL(test, v->obj);

	ret = drm_gem_vmap_unlocked(v->obj, &v->map);
	if (ret)
		drm_gem_object_put(v->obj);
	KUNIT_ASSERT_EQ(test, ret, 0);
	KUNIT_ASSERT_FALSE(test, v->map.is_iomem);

	ret = kunit_add_action_or_reset(test, refnpu_test_vunmap, v);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return v->map.vaddr;
}

/**
 * refnpu_test_bo_close() - close a GEM handle
 * @test: the test
 * @filp: open accel file
 * @handle: GEM handle
 */
void refnpu_test_bo_close(struct kunit *test, struct file *filp, u32 handle)
{
	KUNIT_ASSERT_EQ(test, drm_gem_handle_delete(filp->private_data, handle),
			0);
}

/**
 * refnpu_test_submit() - submit the command buffer at the start of a BO
 * @test: the test
 * @filp: open accel file
 * @queue: hardware queue
 * @handle: GEM handle of the command buffer
 * @size: command bytes
 *
 * Return: what DRM_IOCTL_REFNPU_SUBMIT returned.
 */
int refnpu_test_submit(struct kunit *test, struct file *filp,
		       unsigned int queue, u32 handle, u64 size)
{
	struct drm_refnpu_submit args = {
		.queue = queue,
		.cmd_handle = handle,
		.cmd_size = size,
	};

	return refnpu_test_ioctl(test, filp, DRM_IOCTL_REFNPU_SUBMIT, &args);
}

/**
 * refnpu_test_wait() - wait for the jobs using a BO
 * @test: the test
 * @filp: open accel file
 * @handle: GEM handle
 * @timeout_ms: relative timeout
 * @status: receives the status of the last job that listed the BO
 *
 * Return: what DRM_IOCTL_REFNPU_BO_WAIT returned.
 */
int refnpu_test_wait(struct kunit *test, struct file *filp, u32 handle,
		     unsigned int timeout_ms, s32 *status)
{
	struct drm_refnpu_bo_wait args = {
		.handle = handle,
		.timeout_ns = ktime_get_ns() + (u64)timeout_ms * NSEC_PER_MSEC,
	};
	int ret;

	ret = refnpu_test_ioctl(test, filp, DRM_IOCTL_REFNPU_BO_WAIT, &args);
	*status = args.status;

	return ret;
}

/**
 * refnpu_test_run() - submit a command buffer and wait for it
 * @test: the test; stops when the job does not complete in time
 * @filp: open accel file
 * @queue: hardware queue
 * @handle: GEM handle of the command buffer
 * @size: command bytes
 * @status: receives the job's status (0 or a negative errno)
 *
 * Return: what DRM_IOCTL_REFNPU_SUBMIT returned.
 */
int refnpu_test_run(struct kunit *test, struct file *filp, unsigned int queue,
		    u32 handle, u64 size, s32 *status)
{
	int ret;

	*status = 1;
	ret = refnpu_test_submit(test, filp, queue, handle, size);
	if (ret)
		return ret;
	KUNIT_ASSERT_EQ_MSG(test, refnpu_test_wait(test, filp, handle,
						   REFNPU_TEST_WAIT_MS, status),
			    0, "job did not complete");

	return 0;
}

/**
 * refnpu_test_param() - query a parameter
 * @test: the test; stops when the query fails
 * @filp: open accel file
 * @param: DRM_REFNPU_PARAM_*
 *
 * Return: the parameter's value.
 */
u64 refnpu_test_param(struct kunit *test, struct file *filp, u32 param)
{
	struct drm_refnpu_get_param args = { .param = param };

	KUNIT_ASSERT_EQ(test, refnpu_test_ioctl(test, filp,
						DRM_IOCTL_REFNPU_GET_PARAM,
						&args), 0);

	return args.value;
}

/**
 * refnpu_test_inject() - arm fault injection for a queue's next job
 * @rdev: device
 * @queue: queue
 * @flags: REFNPU_DBG_INJECT_*
 * @error: error code for REFNPU_DBG_INJECT_ERROR
 * @delay_us: delay for REFNPU_DBG_INJECT_DELAY
 * @fault_va: address for REFNPU_DBG_INJECT_MMU_FAULT
 *
 * Return: what the backend's inject operation returned.
 */
int refnpu_test_inject(struct refnpu_device *rdev, unsigned int queue,
		       u32 flags, u32 error, u32 delay_us, u64 fault_va)
{
	struct refnpu_hw_inject inj = {
		.flags = flags,
		.error = error,
		.delay_us = delay_us,
		.fault_va = fault_va,
	};
	int ret, idx;

	if (!drm_dev_enter(&rdev->drm, &idx))
		return -ENODEV;
	ret = rdev->hw_ops->inject(rdev, queue, &inj);
	drm_dev_exit(idx);

	return ret;
}

/**
 * refnpu_test_reg() - read a device register, as the driver does
 * @rdev: device driven by the register-level backend
 * @off: register offset
 *
 * Return: the register's value.
 */
u32 refnpu_test_reg(struct refnpu_device *rdev, u32 off)
{
	struct refnpu_hwif *hw = rdev->hw;

	return hw->bus->read32(hw, off);
}

/**
 * refnpu_test_reg_write() - write a device register behind the driver
 * @rdev: device driven by the register-level backend
 * @off: register offset
 * @val: value
 */
void refnpu_test_reg_write(struct refnpu_device *rdev, u32 off, u32 val)
{
	struct refnpu_hwif *hw = rdev->hw;

	hw->bus->write32(hw, off, val);
}
