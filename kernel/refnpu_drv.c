// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Driver core: the DRM driver, its ioctl table, per-file state, fdinfo,
 * and the device life cycle shared by every backend.
 */

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include <drm/drm_accel.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_ioctl.h>
#include <drm/drm_managed.h>
#include <drm/drm_prime.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_debugfs.h"
#include "refnpu_drv.h"
#include "refnpu_gem.h"
#include "refnpu_hw_ops.h"
#include "refnpu_job.h"
#include "refnpu_mmu.h"
#include "refnpu_userptr.h"

unsigned int refnpu_debug_mask;
module_param_named(debug_mask, refnpu_debug_mask, uint, 0644);
MODULE_PARM_DESC(debug_mask,
		 "Debug message categories: 0x1 driver, 0x2 GEM, 0x4 MMU, 0x8 jobs, 0x10 interrupts, 0x20 resets (default: 0)");

#ifdef REFNPU_TEST_HOOKS
/* Only in test builds (Kbuild: REFNPU_TEST_HOOKS=1): a splat on request. */
static bool selftest_warn;
module_param(selftest_warn, bool, 0444);
MODULE_PARM_DESC(selftest_warn,
		 "Test hook only: WARN once at module load so the VM harness can check that it detects kernel splats (default: false)");
#else
#define selftest_warn false
#endif

/*
 * Work that must not run where it is triggered, such as dropping what may
 * be the last device reference (refnpu_ctx_put()). Module exit waits for
 * every device to be released, then drains it.
 */
struct workqueue_struct *refnpu_wq;

/* Devices not released yet. */
static atomic_t refnpu_live_devices = ATOMIC_INIT(0);
#define REFNPU_RELEASE_WAIT_MS	30000

static int refnpu_open(struct drm_device *drm, struct drm_file *file)
{
	struct refnpu_device *rdev = to_refnpu(drm);
	struct refnpu_file *rfile;
	int ret, idx;

	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	rfile = kzalloc(sizeof(*rfile), GFP_KERNEL);
	if (!rfile) {
		ret = -ENOMEM;
		goto out_exit;
	}
	rfile->rdev = rdev;
	mutex_init(&rfile->submit_lock);

	rfile->ctx = refnpu_ctx_create(rdev);
	if (IS_ERR(rfile->ctx)) {
		ret = PTR_ERR(rfile->ctx);
		goto err_free;
	}

	ret = refnpu_job_file_open(rfile);
	if (ret)
		goto err_ctx;

	file->driver_priv = rfile;
	drm_dev_exit(idx);
	return 0;

err_ctx:
	refnpu_ctx_put(rfile->ctx);
err_free:
	mutex_destroy(&rfile->submit_lock);
	kfree(rfile);
out_exit:
	drm_dev_exit(idx);
	return ret;
}

/*
 * Called after every GEM handle of the file was closed: the file's BO
 * mappings survive only as long as jobs still use them, and those jobs
 * hold their own context reference.
 */
static void refnpu_postclose(struct drm_device *drm, struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;

	refnpu_job_file_close(rfile);
	refnpu_ctx_put(rfile->ctx);
	mutex_destroy(&rfile->submit_lock);
	kfree(rfile);
}

/* The opcodes the device's capabilities back (hardware.rst, REG_CAPS). */
static u64 refnpu_ops_mask(const struct refnpu_device_info *info)
{
	u64 mask = BIT_ULL(REFNPU_OP_NOP) | BIT_ULL(REFNPU_OP_COPY) |
		   BIT_ULL(REFNPU_OP_FILL);

	if (info->caps & (REFNPU_CAP_FP32 | REFNPU_CAP_FP16 | REFNPU_CAP_BF16 |
			  REFNPU_CAP_INT8))
		mask |= BIT_ULL(REFNPU_OP_GEMM);
	if (info->caps & REFNPU_CAP_FP32)
		mask |= BIT_ULL(REFNPU_OP_EWISE) | BIT_ULL(REFNPU_OP_ACT) |
			BIT_ULL(REFNPU_OP_SOFTMAX) | BIT_ULL(REFNPU_OP_LAYERNORM);
	if (info->caps & REFNPU_CAP_CONV)
		mask |= BIT_ULL(REFNPU_OP_CONV2D) | BIT_ULL(REFNPU_OP_POOL2D);

	return mask;
}

static int refnpu_get_param_ioctl(struct drm_device *drm, void *data,
				  struct drm_file *file)
{
	struct refnpu_device *rdev = to_refnpu(drm);
	struct refnpu_file *rfile = file->driver_priv;
	const struct refnpu_device_info *info = &rdev->info;
	struct drm_refnpu_get_param *args = data;
	u64 va_end = min_t(u64, REFNPU_VA_END,
			   1ULL << (info->mmu_caps & REFNPU_MMU_CAPS_VA_BITS_MASK));

	if (args->pad)
		return -EINVAL;

	switch (args->param) {
	case DRM_REFNPU_PARAM_DRIVER_VERSION:
		args->value = DRM_REFNPU_DRIVER_MAJOR << 16 |
			      DRM_REFNPU_DRIVER_MINOR;
		break;
	case DRM_REFNPU_PARAM_HW_VERSION:
		args->value = info->version;
		break;
	case DRM_REFNPU_PARAM_CAPABILITIES:
		args->value = DRM_REFNPU_CAP_TIMELINE_SYNCOBJ |
			      DRM_REFNPU_CAP_PRIME | DRM_REFNPU_CAP_USERPTR |
			      (info->is_virtual ? DRM_REFNPU_CAP_VIRTUAL : 0);
		break;
	case DRM_REFNPU_PARAM_HW_CAPS:
		args->value = info->caps;
		break;
	case DRM_REFNPU_PARAM_OPS:
		args->value = info->ops_mask;
		break;
	case DRM_REFNPU_PARAM_NUM_QUEUES:
		args->value = info->num_queues;
		break;
	case DRM_REFNPU_PARAM_VA_START:
		args->value = REFNPU_VA_START;
		break;
	case DRM_REFNPU_PARAM_VA_SIZE:
		args->value = va_end - REFNPU_VA_START;
		break;
	case DRM_REFNPU_PARAM_PAGE_SIZES:
		args->value = REFNPU_PAGE_SIZE;
		if (info->mmu_caps & REFNPU_MMU_CAPS_PGSZ_2M)
			args->value |= REFNPU_HUGE_PAGE_SIZE;
		break;
	case DRM_REFNPU_PARAM_MAX_BO_SIZE:
		args->value = REFNPU_MAX_BO_SIZE;
		break;
	case DRM_REFNPU_PARAM_TIMESTAMP_FREQ:
		args->value = info->timestamp_freq;
		break;
	case DRM_REFNPU_PARAM_MAX_SUBMIT_BOS:
		args->value = REFNPU_MAX_SUBMIT_BOS;
		break;
	case DRM_REFNPU_PARAM_MAX_SUBMIT_SYNCS:
		args->value = REFNPU_MAX_SUBMIT_SYNCS;
		break;
	case DRM_REFNPU_PARAM_JOB_TIMEOUT_MS:
		args->value = refnpu_job_timeout_ms;
		break;
	case DRM_REFNPU_PARAM_HANG_LIMIT:
		args->value = max(refnpu_hang_limit, 1U);
		break;
	case DRM_REFNPU_PARAM_CONTEXT_HANGS:
		args->value = atomic_read(&rfile->ctx->hangs);
		break;
	case DRM_REFNPU_PARAM_CONTEXT_BANNED:
		args->value = READ_ONCE(rfile->ctx->banned);
		break;
	default:
		return -EINVAL;
	}

	return 0;
}

static void refnpu_show_fdinfo(struct drm_printer *p, struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct refnpu_device *rdev = rfile->rdev;
	unsigned int i;

	for (i = 0; i < rdev->info.num_queues; i++)
		drm_printf(p, "drm-engine-%s:\t%llu ns\n", rdev->queues[i].name,
			   atomic64_read(&rfile->ctx->busy_ns[i]));

	drm_show_memory_stats(p, file);
}

static const struct drm_ioctl_desc refnpu_ioctls[] = {
	DRM_IOCTL_DEF_DRV(REFNPU_GET_PARAM, refnpu_get_param_ioctl, 0),
	DRM_IOCTL_DEF_DRV(REFNPU_BO_CREATE, refnpu_bo_create_ioctl, 0),
	DRM_IOCTL_DEF_DRV(REFNPU_BO_INFO, refnpu_bo_info_ioctl, 0),
	DRM_IOCTL_DEF_DRV(REFNPU_BO_WAIT, refnpu_bo_wait_ioctl, 0),
	DRM_IOCTL_DEF_DRV(REFNPU_SUBMIT, refnpu_submit_ioctl, 0),
	DRM_IOCTL_DEF_DRV(REFNPU_BO_USERPTR, refnpu_bo_userptr_ioctl, 0),
};

static const struct file_operations refnpu_fops = {
	.owner = THIS_MODULE,
	DRM_ACCEL_FOPS,
	.show_fdinfo = drm_show_fdinfo,
};

static const struct drm_driver refnpu_drm_driver = {
	.driver_features = DRIVER_COMPUTE_ACCEL | DRIVER_GEM | DRIVER_SYNCOBJ |
			   DRIVER_SYNCOBJ_TIMELINE,
	.open = refnpu_open,
	.postclose = refnpu_postclose,
	.show_fdinfo = refnpu_show_fdinfo,
	.gem_create_object = refnpu_gem_create_object,
	.gem_prime_import = refnpu_gem_prime_import,
	.gem_prime_import_sg_table = drm_gem_shmem_prime_import_sg_table,
	.ioctls = refnpu_ioctls,
	.num_ioctls = ARRAY_SIZE(refnpu_ioctls),
	.fops = &refnpu_fops,
	.name = DRIVER_NAME,
	.desc = DRIVER_DESC,
	.date = DRIVER_DATE,
	.major = DRM_REFNPU_DRIVER_MAJOR,
	.minor = DRM_REFNPU_DRIVER_MINOR,
};

/* The last managed action of a device: it is about to be freed. */
static void refnpu_device_release(struct drm_device *drm, void *arg)
{
	if (atomic_dec_and_test(&refnpu_live_devices))
		wake_up_var(&refnpu_live_devices);
}

/**
 * refnpu_device_create() - allocate a refnpu device for a bus device
 * @parent: the bus device (PCI function or virtual platform device)
 * @ops: the backend's operations
 * @hw: the backend's private data
 *
 * The returned structure is owned by the DRM device's managed lifetime,
 * itself tied to @parent through devres. The backend then sets up its bus
 * resources and calls refnpu_device_init() and refnpu_device_register().
 *
 * Return: the new device, or an ERR_PTR() on failure.
 */
struct refnpu_device *refnpu_device_create(struct device *parent,
					   const struct refnpu_hw_ops *ops,
					   void *hw)
{
	struct refnpu_device *rdev;

	rdev = devm_drm_dev_alloc(parent, &refnpu_drm_driver,
				  struct refnpu_device, drm);
	if (IS_ERR(rdev))
		return rdev;

	atomic_inc(&refnpu_live_devices);
	if (drmm_add_action_or_reset(&rdev->drm, refnpu_device_release, NULL))
		return ERR_PTR(-ENOMEM);

	rdev->hw_ops = ops;
	rdev->hw = hw;
	ratelimit_state_init(&rdev->fault_rs, 5 * HZ, 10);
	INIT_LIST_HEAD(&rdev->ctx_list);
	INIT_LIST_HEAD(&rdev->bo_list);

	INIT_LIST_HEAD(&rdev->tlb_quarantine.pts);
	INIT_LIST_HEAD(&rdev->tlb_quarantine.maps);
	INIT_LIST_HEAD(&rdev->tlb_resetting.pts);
	INIT_LIST_HEAD(&rdev->tlb_resetting.maps);
	INIT_LIST_HEAD(&rdev->tlb_released.pts);
	INIT_LIST_HEAD(&rdev->tlb_released.maps);

	if (drmm_mutex_init(&rdev->drm, &rdev->ctx_lock) ||
	    drmm_mutex_init(&rdev->drm, &rdev->bo_lock) ||
	    drmm_mutex_init(&rdev->drm, &rdev->tlb_lock))
		return ERR_PTR(-ENOMEM);

	return rdev;
}

/**
 * refnpu_device_init() - bring up the hardware and the core
 * @rdev: device created by refnpu_device_create()
 *
 * Calls the backend's init, then sets up the context table, the queues'
 * schedulers and debugfs. On failure everything is undone.
 *
 * Return: 0 or a negative errno.
 */
int refnpu_device_init(struct refnpu_device *rdev)
{
	int ret;

	ret = rdev->hw_ops->init(rdev);
	if (ret)
		return ret;

	if (!rdev->info.num_queues || rdev->info.num_queues > REFNPU_MAX_QUEUES) {
		refnpu_err(rdev, "bad queue count %u\n", rdev->info.num_queues);
		ret = -ENODEV;
		goto err_hw;
	}
	rdev->info.ops_mask = refnpu_ops_mask(&rdev->info);

	ret = refnpu_mmu_init(rdev);
	if (ret)
		goto err_hw;

	ret = refnpu_job_init(rdev);
	if (ret)
		goto err_mmu;

	refnpu_debugfs_init(rdev);

	refnpu_dbg(rdev, DRV, "version 0x%x caps 0x%x queues %u\n",
		   rdev->info.version, rdev->info.caps, rdev->info.num_queues);
	return 0;

err_mmu:
	rdev->hw_ops->fini(rdev);
	refnpu_mmu_fini(rdev);
	return ret;
err_hw:
	rdev->hw_ops->fini(rdev);
	return ret;
}

/**
 * refnpu_device_register() - make a device visible to user space
 * @rdev: device set up by refnpu_device_init()
 *
 * On failure the hardware is shut down again.
 *
 * Return: 0 on success or a negative errno.
 */
int refnpu_device_register(struct refnpu_device *rdev)
{
	int ret;

	ret = drm_dev_register(&rdev->drm, 0);
	if (ret)
		refnpu_device_fini(rdev);

	return ret;
}

/**
 * refnpu_device_fini() - shut the hardware down
 * @rdev: device, unplugged or never registered
 *
 * Lets the backend stop the device first, so that it no longer runs jobs,
 * walks page tables or does DMA; only then fails the jobs it will never
 * complete (their waiters may free what the jobs used, and freed jobs
 * unmap their BOs without a TLB invalidation), and releases every DMA
 * mapping and coherent allocation the core made for it (page tables,
 * context table, BO mappings), so none outlives the binding. The rest
 * goes with the DRM device, after the last file closed.
 */
void refnpu_device_fini(struct refnpu_device *rdev)
{
	refnpu_job_fini(rdev);
	rdev->hw_ops->fini(rdev);
	mutex_lock(&rdev->tlb_lock);
	rdev->hw_stopped = true;
	mutex_unlock(&rdev->tlb_lock);
	refnpu_job_cancel_all(rdev);
	refnpu_mmu_fini(rdev);
	refnpu_gem_unplug(rdev);
}

/**
 * refnpu_device_unregister() - unplug a device from user space
 * @rdev: device to unplug
 *
 * After drm_dev_unplug() no new hardware access can start: every section
 * guarded by drm_dev_enter() fails and running ones have finished. Jobs
 * left in the rings fail with -ENODEV, then the hardware is shut down.
 * Open files stay valid until they are closed.
 */
void refnpu_device_unregister(struct refnpu_device *rdev)
{
	drm_dev_unplug(&rdev->drm);
	refnpu_device_fini(rdev);
}

static int __init refnpu_init(void)
{
	int ret;

	/* Lets the VM harness prove that it catches kernel splats. */
	WARN_ON(selftest_warn);

	refnpu_wq = alloc_workqueue("refnpu", WQ_UNBOUND, 0);
	if (!refnpu_wq)
		return -ENOMEM;

	ret = refnpu_pci_init();
	if (ret)
		goto err_wq;

	ret = refnpu_virt_init();
	if (ret)
		goto err_pci;

	return 0;

err_pci:
	refnpu_pci_exit();
err_wq:
	destroy_workqueue(refnpu_wq);
	return ret;
}

static void __exit refnpu_exit(void)
{
	refnpu_virt_exit();
	refnpu_pci_exit();

	/*
	 * The devices are unbound, but one may live on until the schedulers
	 * freed its last jobs: this module's code releases it.
	 */
	if (!wait_var_event_timeout(&refnpu_live_devices,
				    !atomic_read(&refnpu_live_devices),
				    msecs_to_jiffies(REFNPU_RELEASE_WAIT_MS)))
		pr_err("refnpu: %d devices still referenced at module exit\n",
		       atomic_read(&refnpu_live_devices));
	destroy_workqueue(refnpu_wq);
}

module_init(refnpu_init);
module_exit(refnpu_exit);

MODULE_DESCRIPTION(DRIVER_DESC);
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(DMA_BUF);
