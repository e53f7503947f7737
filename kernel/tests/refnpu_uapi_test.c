// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * KUnit: argument validation of the uAPI. Each ioctl is issued through
 * drm_ioctl() on a file of a virtual device, with its arguments (and the
 * arrays they point to) in user memory, and must fail with the errno the
 * uAPI header documents, or succeed when everything is valid. Also the
 * mapping of device error codes to errnos.
 */

#include <kunit/test.h>

#include <linux/sizes.h>

#include <drm/drm_file.h>
#include <drm/drm_syncobj.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_job.h"
#include "refnpu_kunit.h"

/**
 * struct uapi_fixture - a device, a file and a command buffer
 * @rdev: device
 * @filp: file
 * @cmd: GEM handle of a 4 KiB BO holding one NOP command
 */
struct uapi_fixture {
	struct refnpu_device *rdev;
	struct file *filp;
	u32 cmd;
};

static int uapi_init(struct kunit *test)
{
	struct uapi_fixture *f;

	f = kunit_kzalloc(test, sizeof(*f), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, f);
	f->rdev = refnpu_test_device(test, 0);
	f->filp = refnpu_test_open(test, f->rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &f->cmd,
					     NULL), 0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, f->filp, f->cmd));
	test->priv = f;

	return 0;
}

static int get_param(struct kunit *test, struct drm_refnpu_get_param *args)
{
	struct uapi_fixture *f = test->priv;

	return refnpu_test_ioctl(test, f->filp, DRM_IOCTL_REFNPU_GET_PARAM, args);
}

static void uapi_get_param(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;
	struct drm_refnpu_get_param args = {};
	u64 caps;

	args.param = DRM_REFNPU_PARAM_NUM_QUEUES;
	args.pad = 1;
	KUNIT_EXPECT_EQ(test, get_param(test, &args), -EINVAL);
	args.pad = 0;
	args.param = DRM_REFNPU_PARAM_HW_CAPS + 1;
	KUNIT_EXPECT_EQ(test, get_param(test, &args), -EINVAL);
	args.param = U32_MAX;
	KUNIT_EXPECT_EQ(test, get_param(test, &args), -EINVAL);

	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_NUM_QUEUES),
			(u64)f->rdev->info.num_queues);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_VA_START),
			(u64)REFNPU_VA_START);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_MAX_BO_SIZE),
			(u64)REFNPU_MAX_BO_SIZE);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_PAGE_SIZES),
			(u64)(SZ_4K | SZ_2M));
	caps = refnpu_test_param(test, f->filp, DRM_REFNPU_PARAM_CAPABILITIES);
	KUNIT_EXPECT_TRUE(test, caps & DRM_REFNPU_CAP_VIRTUAL);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_CONTEXT_BANNED),
			0ULL);
}

static void uapi_bo_create(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;
	struct drm_refnpu_bo_create args = {};
	u32 handle;
	u64 va;

	KUNIT_EXPECT_EQ(test, refnpu_test_bo(test, f->filp, 0, 0, &handle, NULL),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_test_bo(test, f->filp,
					     REFNPU_MAX_BO_SIZE + 1, 0, &handle,
					     NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K,
					     DRM_REFNPU_BO_FLAGS + 1, &handle,
					     NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0x80000000,
					     &handle, NULL), -EINVAL);

	/* Output fields must be zero on input. */
	args.size = SZ_4K;
	args.handle = 1;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_CREATE,
						&args), -EINVAL);
	args.handle = 0;
	args.va = REFNPU_VA_START;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_CREATE,
						&args), -EINVAL);

	KUNIT_EXPECT_EQ(test, refnpu_test_bo(test, f->filp, 1,
					     DRM_REFNPU_BO_DEVICE_RO |
					     DRM_REFNPU_BO_WC, &handle, &va), 0);
	KUNIT_EXPECT_NE(test, handle, 0U);
	KUNIT_EXPECT_GE(test, va, (u64)REFNPU_VA_START);
}

static void uapi_bo_info_and_wait(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;
	struct drm_refnpu_bo_info info = { .handle = f->cmd };
	struct drm_refnpu_bo_wait wait = { .handle = f->cmd };
	u32 handle;
	u64 va;
	s32 status;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, 3 * SZ_4K - 1,
					     DRM_REFNPU_BO_DEVICE_RO, &handle,
					     &va), 0);
	info.handle = handle;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_INFO, &info),
			0);
	KUNIT_EXPECT_EQ(test, info.size, (u64)3 * SZ_4K);
	KUNIT_EXPECT_EQ(test, info.va, va);
	KUNIT_EXPECT_EQ(test, info.flags, DRM_REFNPU_BO_DEVICE_RO);
	KUNIT_EXPECT_NE(test, info.mmap_offset, 0ULL);

	info.pad = 1;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_INFO, &info),
			-EINVAL);
	info.pad = 0;
	info.handle = handle + 100;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_INFO, &info),
			-ENOENT);

	wait.flags = 1;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_WAIT, &wait),
			-EINVAL);
	wait.flags = 0;
	wait.pad = 1;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_WAIT, &wait),
			-EINVAL);
	wait.pad = 0;
	wait.handle = handle + 100;
	KUNIT_EXPECT_EQ(test, refnpu_test_ioctl(test, f->filp,
						DRM_IOCTL_REFNPU_BO_WAIT, &wait),
			-ENOENT);
	/* An idle BO that no job used: status 0, even with a past deadline. */
	KUNIT_EXPECT_EQ(test, refnpu_test_wait(test, f->filp, handle, 0, &status),
			0);
	KUNIT_EXPECT_EQ(test, status, 0);
}

/* Submit @args through the ioctl; the fixture's NOP is the default. */
static int submit(struct kunit *test, struct drm_refnpu_submit *args)
{
	return refnpu_test_ioctl(test, ((struct uapi_fixture *)test->priv)->filp,
				 DRM_IOCTL_REFNPU_SUBMIT, args);
}

static struct drm_refnpu_submit nop_submit(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;

	return (struct drm_refnpu_submit){
		.cmd_handle = f->cmd,
		.cmd_size = REFNPU_CMD_NOP_SIZE,
	};
}

static void uapi_submit_scalars(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;
	struct drm_refnpu_submit args;
	s32 status;

	args = nop_submit(test);
	args.flags = DRM_REFNPU_SUBMIT_FLAGS + 1;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.pad = 1;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.queue = f->rdev->info.num_queues;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.priority = DRM_REFNPU_PRIORITY_HIGH + 1;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_size = 0;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_size = 12;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_offset = 4;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_size = REFNPU_CMDBUF_MAX_SIZE + 8;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	/* The command range must lie inside its BO. */
	args = nop_submit(test);
	args.cmd_offset = SZ_4K;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_offset = SZ_4K - 8;
	args.cmd_size = 16;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_offset = U64_MAX - 7;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.cmd_handle = f->cmd + 100;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -ENOENT);
	args = nop_submit(test);
	args.bo_count = REFNPU_MAX_SUBMIT_BOS + 1;
	args.bo_stride = sizeof(struct drm_refnpu_bo_ref);
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.in_sync_count = REFNPU_MAX_SUBMIT_SYNCS + 1;
	args.in_sync_stride = sizeof(struct drm_refnpu_sync);
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args = nop_submit(test);
	args.out_sync_count = REFNPU_MAX_SUBMIT_SYNCS + 1;
	args.out_sync_stride = sizeof(struct drm_refnpu_sync);
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);

	/* None of these reached the device; a valid one does. */
	KUNIT_EXPECT_EQ(test, atomic64_read(&f->rdev->queues[0].stats.submitted),
			0LL);
	args = nop_submit(test);
	KUNIT_EXPECT_EQ(test, submit(test, &args), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_EXPECT_EQ(test, atomic64_read(&f->rdev->queues[0].stats.completed),
			1LL);
}

static void uapi_submit_bo_array(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;
	struct drm_refnpu_bo_ref refs[2] = {};
	struct drm_refnpu_submit args;
	u32 padded[4] = {};
	u32 data;
	s32 status;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &data,
					     NULL), 0);
	refs[0].handle = data;
	refs[0].flags = DRM_REFNPU_BO_REF_WRITE;

	/* Stride smaller than an element, or larger than 4096. */
	args = nop_submit(test);
	args.bos = refnpu_test_user(test, 1, refs, sizeof(refs));
	args.bo_count = 1;
	args.bo_stride = sizeof(refs[0]) - 1;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	args.bo_stride = 4097;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);

	/* Flags: neither READ nor WRITE, or an unknown bit. */
	args.bo_stride = sizeof(refs[0]);
	refs[0].flags = 0;
	args.bos = refnpu_test_user(test, 1, refs, sizeof(refs));
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	refs[0].flags = DRM_REFNPU_BO_REF_READ | 0x4;
	args.bos = refnpu_test_user(test, 1, refs, sizeof(refs));
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);

	/* A handle that names nothing. */
	refs[0].flags = DRM_REFNPU_BO_REF_READ;
	refs[1].handle = data + 100;
	refs[1].flags = DRM_REFNPU_BO_REF_READ;
	args.bos = refnpu_test_user(test, 1, refs, sizeof(refs));
	args.bo_count = 2;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -ENOENT);

	/* An unreadable array. */
	args.bos = 0x10;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EFAULT);

	/* A larger element from a newer uAPI: its extra bytes must be 0. */
	padded[0] = data;
	padded[1] = DRM_REFNPU_BO_REF_READ;
	padded[2] = 1;
	args.bos = refnpu_test_user(test, 1, padded, sizeof(padded));
	args.bo_count = 1;
	args.bo_stride = sizeof(padded);
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	padded[2] = 0;
	args.bos = refnpu_test_user(test, 1, padded, sizeof(padded));
	KUNIT_EXPECT_EQ(test, submit(test, &args), 0);

	/* The same BO twice, and the command BO listed too: merged. */
	refs[0].handle = data;
	refs[0].flags = DRM_REFNPU_BO_REF_READ;
	refs[1].handle = f->cmd;
	refs[1].flags = DRM_REFNPU_BO_REF_WRITE;
	args = nop_submit(test);
	args.bos = refnpu_test_user(test, 2, refs, sizeof(refs));
	args.bo_count = 2;
	args.bo_stride = sizeof(refs[0]);
	KUNIT_EXPECT_EQ(test, submit(test, &args), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, data,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
}

static void uapi_submit_syncs(struct kunit *test)
{
	struct uapi_fixture *f = test->priv;
	struct drm_file *file = f->filp->private_data;
	struct drm_refnpu_sync sync = {};
	struct drm_refnpu_submit args;
	struct drm_syncobj *syncobj;
	struct dma_fence *fence;
	u32 handle;
	long left;

	KUNIT_ASSERT_EQ(test, drm_syncobj_create(&syncobj, 0, NULL), 0);
	KUNIT_ASSERT_EQ(test, drm_syncobj_get_handle(file, syncobj, &handle), 0);
	drm_syncobj_put(syncobj);

	/* In-sync: unknown flags, unknown handle, no fence yet. */
	sync.handle = handle;
	sync.flags = 1;
	args = nop_submit(test);
	args.in_syncs = refnpu_test_user(test, 1, &sync, sizeof(sync));
	args.in_sync_count = 1;
	args.in_sync_stride = sizeof(sync);
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	sync.flags = 0;
	sync.handle = handle + 100;
	args.in_syncs = refnpu_test_user(test, 1, &sync, sizeof(sync));
	KUNIT_EXPECT_EQ(test, submit(test, &args), -ENOENT);
	sync.handle = handle;
	args.in_syncs = refnpu_test_user(test, 1, &sync, sizeof(sync));
	KUNIT_EXPECT_EQ(test, submit(test, &args), -ENOENT);
	args.in_sync_stride = sizeof(sync) - 8;
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);

	/* Out-sync: unknown flags, unknown handle, then the real thing. */
	sync.flags = 2;
	args = nop_submit(test);
	args.out_syncs = refnpu_test_user(test, 2, &sync, sizeof(sync));
	args.out_sync_count = 1;
	args.out_sync_stride = sizeof(sync);
	KUNIT_EXPECT_EQ(test, submit(test, &args), -EINVAL);
	sync.flags = 0;
	sync.handle = handle + 100;
	args.out_syncs = refnpu_test_user(test, 2, &sync, sizeof(sync));
	KUNIT_EXPECT_EQ(test, submit(test, &args), -ENOENT);
	sync.handle = handle;
	args.out_syncs = refnpu_test_user(test, 2, &sync, sizeof(sync));
	KUNIT_EXPECT_EQ(test, submit(test, &args), 0);

	/* The job's fence landed in the syncobj and signals without error. */
	KUNIT_ASSERT_EQ(test, drm_syncobj_find_fence(file, handle, 0, 0, &fence),
			0);
	left = dma_fence_wait_timeout(fence, false,
				      msecs_to_jiffies(REFNPU_TEST_WAIT_MS));
	KUNIT_EXPECT_GT(test, left, 0L);
	KUNIT_EXPECT_EQ(test, dma_fence_get_status(fence), 1);
	dma_fence_put(fence);

	/* Now it has a fence: usable as an in-sync. */
	args = nop_submit(test);
	args.in_syncs = refnpu_test_user(test, 1, &sync, sizeof(sync));
	args.in_sync_count = 1;
	args.in_sync_stride = sizeof(sync);
	KUNIT_EXPECT_EQ(test, submit(test, &args), 0);
}

/* The rule of the uAPI header's overview, code by code. */
static void uapi_status_to_errno(struct kunit *test)
{
	static const int expected[REFNPU_ERR_COUNT] = {
		[REFNPU_ERR_NONE] = 0,
		[REFNPU_ERR_MMU_UNMAPPED] = -EFAULT,
		[REFNPU_ERR_MMU_READ_PERM] = -EFAULT,
		[REFNPU_ERR_MMU_WRITE_PERM] = -EFAULT,
		[REFNPU_ERR_MMU_WALK] = -EIO,
		[REFNPU_ERR_DMA] = -EIO,
		[REFNPU_ERR_MALFORMED] = -EINVAL,
		[REFNPU_ERR_UNSUPPORTED] = -EINVAL,
		[REFNPU_ERR_INVALID_CONTEXT] = -EIO,
		[REFNPU_ERR_TIMEOUT] = -ETIMEDOUT,
		[REFNPU_ERR_INJECTED] = -EIO,
		[REFNPU_ERR_BAD_DESCRIPTOR] = -EIO,
		[REFNPU_ERR_RING] = -EIO,
		[REFNPU_ERR_ABORTED] = -EAGAIN,
	};
	u32 code;

	for (code = 0; code < REFNPU_ERR_COUNT; code++)
		KUNIT_EXPECT_EQ_MSG(test, refnpu_hw_status_to_errno(code),
				    expected[code], "code 0x%x", code);
	KUNIT_EXPECT_EQ(test, refnpu_hw_status_to_errno(REFNPU_ERR_COUNT), -EIO);
	KUNIT_EXPECT_EQ(test, refnpu_hw_status_to_errno(U32_MAX), -EIO);
}

static struct kunit_case refnpu_uapi_cases[] = {
	KUNIT_CASE(uapi_get_param),
	KUNIT_CASE(uapi_bo_create),
	KUNIT_CASE(uapi_bo_info_and_wait),
	KUNIT_CASE(uapi_submit_scalars),
	KUNIT_CASE(uapi_submit_bo_array),
	KUNIT_CASE(uapi_submit_syncs),
	KUNIT_CASE(uapi_status_to_errno),
	{}
};

static struct kunit_suite refnpu_uapi_suite = {
	.name = "refnpu_uapi",
	.init = uapi_init,
	.test_cases = refnpu_uapi_cases,
};

kunit_test_suite(refnpu_uapi_suite);
