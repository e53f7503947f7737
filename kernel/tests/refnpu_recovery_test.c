// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * KUnit: recovery, against a virtual device with fault injection and a
 * short scheduler timeout. refnpu_recovery drives the timeout state
 * machine (hang -> timeout -> queue reset -> blame -> resubmit -> restart)
 * with injected hangs, lost and spurious interrupts, injected errors and
 * delays, and device resets; refnpu_mmu_fault checks that device MMU
 * faults fail only the faulting job, are reported and counted, and never
 * ban a context, while hangs do once they reach the hang limit.
 */

#include <kunit/test.h>

#include <linux/completion.h>
#include <linux/debug_locks.h>
#include <linux/delay.h>
#include <linux/dma-direct.h>
#include <linux/string.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/sched/task.h>
#include <linux/scatterlist.h>
#include <linux/workqueue.h>
#include <linux/sizes.h>

#include <drm/drm_drv.h>
#include <drm/drm_gem.h>
#include <drm/drm_managed.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_gem.h"
#include "refnpu_hw_ops.h"
#include "refnpu_hwif.h"
#include "refnpu_job.h"
#include "refnpu_kunit.h"
#include "refnpu_mmu.h"

/**
 * struct rec_fixture - a device with fault injection, a file, a NOP
 * @rdev: device, with a REFNPU_TEST_TIMEOUT_MS scheduler timeout
 * @filp: file
 * @ctx: its context
 * @cmd: GEM handle of a command buffer holding one NOP
 */
struct rec_fixture {
	struct refnpu_device *rdev;
	struct file *filp;
	struct refnpu_ctx *ctx;
	u32 cmd;
};

static int rec_init(struct kunit *test)
{
	struct rec_fixture *f;

	f = kunit_kzalloc(test, sizeof(*f), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, f);
	f->rdev = refnpu_test_device(test, REFNPU_TEST_TIMEOUT_MS);
	if (!(f->rdev->info.caps & REFNPU_CAP_FAULT_INJECT))
		kunit_skip(test, "virtual devices without fault injection (virt_fault_inject=0)");
	f->filp = refnpu_test_open(test, f->rdev);
	f->ctx = refnpu_test_ctx(f->filp);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &f->cmd,
					     NULL), 0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, f->filp, f->cmd));
	test->priv = f;

	return 0;
}

static s32 rec_nop(struct kunit *test, struct file *filp, u32 cmd)
{
	s32 status;

	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, filp, 0, cmd,
					      REFNPU_CMD_NOP_SIZE, &status), 0);
	return status;
}

static s64 stat(atomic64_t *counter)
{
	return atomic64_read(counter);
}

/* Wait until @counter reaches @n: handlers count after they signal. */
static s64 wait_stat(atomic64_t *counter, s64 n)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);

	while (atomic64_read(counter) < n && time_before(jiffies, end))
		usleep_range(5000, 10000);

	return atomic64_read(counter);
}

static void rec_inject(struct kunit *test, u32 flags, u32 error, u32 delay_us,
		       u64 fault_va)
{
	struct rec_fixture *f = test->priv;

	KUNIT_ASSERT_EQ(test, refnpu_test_inject(f->rdev, 0, flags, error,
						 delay_us, fault_va), 0);
}

static void restore_hang_limit(void *saved)
{
	refnpu_hang_limit = (uintptr_t)saved;
}

static void set_hang_limit(struct kunit *test, unsigned int limit)
{
	void *saved = (void *)(uintptr_t)refnpu_hang_limit;

	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, restore_hang_limit,
							saved), 0);
	refnpu_hang_limit = limit;
}

static void recovery_hang_times_out(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];
	unsigned long start = jiffies;

	rec_inject(test, REFNPU_DBG_INJECT_HANG, 0, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -ETIMEDOUT);
	/* Not before the scheduler's timeout. */
	KUNIT_EXPECT_GE(test, jiffies_to_msecs(jiffies - start),
			REFNPU_TEST_TIMEOUT_MS);

	KUNIT_EXPECT_EQ(test, stat(&q->stats.timeouts), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.resets), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.lost_irqs), 0LL);
	/* A queue reset was enough. */
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->device_resets), 0LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 1);
	KUNIT_EXPECT_FALSE(test, READ_ONCE(f->ctx->banned));
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_CONTEXT_HANGS),
			1ULL);

	/* The queue runs jobs again, and the device's queue is healthy. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_EQ(test, refnpu_test_reg(f->rdev,
					      REFNPU_REG_QUEUE(0, REFNPU_Q_ERROR)),
			0U);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.timeouts), 1LL);
}

static void recovery_innocent_resubmitted(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct file *other = refnpu_test_open(test, f->rdev);
	u32 cmd2;
	s32 status;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, other, SZ_4K, 0, &cmd2, NULL),
			0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, other, cmd2));

	/* The guilty job first, the innocent one queued behind it. */
	rec_inject(test, REFNPU_DBG_INJECT_HANG, 0, 0, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, f->cmd,
						 REFNPU_CMD_NOP_SIZE), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, other, 0, cmd2,
						 REFNPU_CMD_NOP_SIZE), 0);

	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, other, cmd2,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -ETIMEDOUT);

	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 1);
	KUNIT_EXPECT_EQ(test, atomic_read(&refnpu_test_ctx(other)->hangs), 0);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->queues[0].stats.completed), 1LL);
}

static void recovery_ban_after_hang_limit(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct file *other;
	unsigned int i;
	u32 cmd2;

	set_hang_limit(test, 2);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_HANG_LIMIT),
			2ULL);

	for (i = 0; i < 2; i++) {
		KUNIT_EXPECT_FALSE(test, READ_ONCE(f->ctx->banned));
		rec_inject(test, REFNPU_DBG_INJECT_HANG, 0, 0, 0);
		KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -ETIMEDOUT);
	}

	KUNIT_EXPECT_TRUE(test, READ_ONCE(f->ctx->banned));
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 2);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, f->filp,
						DRM_REFNPU_PARAM_CONTEXT_BANNED),
			1ULL);
	/* A banned context cannot submit any more... */
	KUNIT_EXPECT_EQ(test, refnpu_test_submit(test, f->filp, 0, f->cmd,
						 REFNPU_CMD_NOP_SIZE), -ECANCELED);
	KUNIT_EXPECT_EQ(test, refnpu_test_submit(test, f->filp, 1, f->cmd,
						 REFNPU_CMD_NOP_SIZE), -ECANCELED);

	/* ...while another file of the same device still can. */
	other = refnpu_test_open(test, f->rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, other, SZ_4K, 0, &cmd2, NULL),
			0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, other, cmd2));
	KUNIT_EXPECT_EQ(test, rec_nop(test, other, cmd2), 0);
	KUNIT_EXPECT_EQ(test, refnpu_test_param(test, other,
						DRM_REFNPU_PARAM_CONTEXT_BANNED),
			0ULL);
}

static void recovery_lost_interrupt(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];

	/* The job completes, but its interrupt never arrives. */
	rec_inject(test, REFNPU_DBG_INJECT_DROP_IRQ, 0, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);

	/* The timeout found the completion: no reset, nobody blamed. */
	KUNIT_EXPECT_EQ(test, wait_stat(&q->stats.lost_irqs, 1), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.timeouts), 0LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.resets), 0LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.completed), 1LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.lost_irqs), 1LL);
}

static void recovery_spurious_interrupts(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];

	/* Interrupts with nothing behind them, on every vector. */
	refnpu_test_reg_write(f->rdev, REFNPU_REG_DBG_SPURIOUS_IRQ,
			      REFNPU_MSIX_VEC_ERROR);
	refnpu_test_reg_write(f->rdev, REFNPU_REG_DBG_SPURIOUS_IRQ,
			      REFNPU_MSIX_VEC_QUEUE(0));
	refnpu_test_reg_write(f->rdev, REFNPU_REG_DBG_SPURIOUS_IRQ,
			      REFNPU_MSIX_VEC_QUEUE(1));
	KUNIT_EXPECT_EQ(test, wait_stat(&f->rdev->spurious_irqs, 3), 3LL);
	msleep(20);

	KUNIT_EXPECT_EQ(test, stat(&q->stats.completed), 0LL);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->mmu_faults), 0LL);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.completed), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.failed), 0LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.lost_irqs), 0LL);
}

/* Write @text to the device's debugfs "inject" file, as a shell would. */
static ssize_t rec_debugfs_inject(struct kunit *test, const char *text)
{
	struct rec_fixture *f = test->priv;
	size_t len = strlen(text);
	struct file *filp;
	char path[96];
	loff_t pos = 0;
	ssize_t ret;
	u64 ubuf;

	snprintf(path, sizeof(path), "/sys/kernel/debug/accel/%s/inject",
		 f->rdev->drm.unique);
	ubuf = refnpu_test_user(test, 1, text, len);
	filp = filp_open(path, O_WRONLY, 0);
	if (IS_ERR(filp))
		kunit_skip(test, "cannot open %s (%ld): debugfs not mounted",
			   path, PTR_ERR(filp));
	/* vfs_write() is not exported: call the file's write as it would. */
	ret = filp->f_op->write ?
	      filp->f_op->write(filp, u64_to_user_ptr(ubuf), len, &pos) :
	      -EINVAL;
	fput(filp);

	return ret;
}

static void recovery_debugfs_spurious_irq(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];
	char bad[32];

	/* The error vector and both queues' vectors, through debugfs. */
	KUNIT_EXPECT_EQ(test, rec_debugfs_inject(test, "spurious 0\n"), 11);
	KUNIT_EXPECT_EQ(test, rec_debugfs_inject(test, "spurious 1"), 10);
	KUNIT_EXPECT_EQ(test, rec_debugfs_inject(test, " spurious 0x2\n"), 14);
	KUNIT_EXPECT_EQ(test, wait_stat(&f->rdev->spurious_irqs, 3), 3LL);

	/* Vectors the device does not have, and no vector at all. */
	snprintf(bad, sizeof(bad), "spurious %u",
		 REFNPU_MSIX_NUM_VECTORS(f->rdev->info.num_queues));
	KUNIT_EXPECT_EQ(test, rec_debugfs_inject(test, bad), (ssize_t)-EINVAL);
	KUNIT_EXPECT_EQ(test, rec_debugfs_inject(test, "spurious x"),
			(ssize_t)-EINVAL);

	/* Nothing was behind them, and the device works on. */
	msleep(20);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->spurious_irqs), 3LL);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->mmu_faults), 0LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.completed), 0LL);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.completed), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.failed), 0LL);
}

static void recovery_injected_errors(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];

	rec_inject(test, REFNPU_DBG_INJECT_ERROR, REFNPU_ERR_MALFORMED, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -EINVAL);
	rec_inject(test, REFNPU_DBG_INJECT_ERROR, REFNPU_ERR_DMA, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -EIO);
	/* No code, or an undefined one: the device reports INJECTED. */
	rec_inject(test, REFNPU_DBG_INJECT_ERROR, 0, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -EIO);
	rec_inject(test, REFNPU_DBG_INJECT_ERROR, REFNPU_ERR_COUNT, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -EIO);

	KUNIT_EXPECT_EQ(test, stat(&q->stats.failed), 4LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.timeouts), 0LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 0);
	/* Injections are one-shot. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

static void recovery_delay_is_device_time(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	const u32 delay_us = 100 * USEC_PER_MSEC;

	/* Slower than usual, but within the timeout: just device time. */
	rec_inject(test, REFNPU_DBG_INJECT_DELAY, 0, delay_us, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_GE(test, atomic64_read(&f->ctx->busy_ns[0]),
			(s64)delay_us * NSEC_PER_USEC);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->queues[0].stats.timeouts), 0LL);
}

/*
 * A job that is not idempotent: it moves its source to its destination
 * (COPY), then overwrites the source (FILL). Run twice, the destination
 * holds the fill pattern instead of the original data. Commands at the
 * start of the BO, source at REC_SRC, destination at REC_DST.
 */
#define REC_SRC		0x800
#define REC_DST		0xc00
#define REC_MOVE_BYTES	64
#define REC_ORIG	0x3c
#define REC_FILL	0xee

static u32 rec_move_job(struct kunit *test, struct file *filp, u8 **map,
			u64 *size)
{
	u32 bo;
	u64 va;
	u8 *p;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, filp, SZ_4K, 0, &bo, &va), 0);
	p = refnpu_test_bo_map(test, filp, bo);
	*size = refnpu_test_cmd_copy(p, va + REC_SRC, va + REC_DST, 0, 1,
				     REC_MOVE_BYTES);
	*size += refnpu_test_cmd_fill(p + *size, va + REC_SRC, 0, 1,
				      REC_MOVE_BYTES, REC_FILL, 1);
	memset(p + REC_SRC, REC_ORIG, REC_MOVE_BYTES);
	memset(p + REC_DST, 0, REC_MOVE_BYTES);
	*map = p;
	return bo;
}

/* The job ran exactly once: moved, source overwritten. */
static void rec_expect_moved_once(struct kunit *test, const u8 *p)
{
	KUNIT_EXPECT_NULL_MSG(test, memchr_inv(p + REC_DST, REC_ORIG,
					       REC_MOVE_BYTES),
			      "the destination does not hold the source: the job ran twice or not at all");
	KUNIT_EXPECT_NULL(test, memchr_inv(p + REC_SRC, REC_FILL,
					   REC_MOVE_BYTES));
}

/* Wait until the device has fetched the next job of @queue. */
static void rec_wait_fetched(struct kunit *test, struct refnpu_device *rdev,
			     unsigned int queue)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);

	while (refnpu_test_reg(rdev, REFNPU_REG_QUEUE(queue,
						      REFNPU_Q_DBG_INJECT)) &&
	       time_before(jiffies, end))
		usleep_range(1000, 2000);
	KUNIT_ASSERT_EQ(test, refnpu_test_reg(rdev,
					      REFNPU_REG_QUEUE(queue, REFNPU_Q_DBG_INJECT)),
			0U);
}

/*
 * Wait until the move job whose BO is mapped at @p has run its commands:
 * its last one, the fill, is done. The device takes the job (and its
 * injection) before it runs the commands, so a reset right after the
 * fetch may stop it before it moved anything.
 */
static void rec_wait_moved(struct kunit *test, const u8 *p)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);

	while (memchr_inv(p + REC_SRC, REC_FILL, REC_MOVE_BYTES) &&
	       time_before(jiffies, end))
		usleep_range(1000, 2000);
	KUNIT_ASSERT_NULL(test, memchr_inv(p + REC_SRC, REC_FILL,
					   REC_MOVE_BYTES));
}

/*
 * A device reset nobody is blamed for (debugfs): the job in flight had
 * started, so it fails with -EAGAIN and does not run again; the job
 * queued behind it had not, so it runs after the reset. The reset comes
 * once the first job has run its commands and sits in its injected delay,
 * so that it ran exactly once is certain.
 */
static void recovery_device_reset_fails_started_job(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	u64 size, size2;
	u32 bo, bo2;
	u8 *p, *p2;
	s32 status;

	bo = rec_move_job(test, f->filp, &p, &size);
	bo2 = rec_move_job(test, f->filp, &p2, &size2);
	rec_inject(test, REFNPU_DBG_INJECT_DELAY, 0, 5 * USEC_PER_SEC, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, bo, size), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, bo2, size2),
			0);
	rec_wait_fetched(test, f->rdev, 0);
	rec_wait_moved(test, p);
	refnpu_device_reset_async(f->rdev);

	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, bo,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EAGAIN);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, bo2,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	flush_workqueue(f->rdev->reset_wq);
	rec_expect_moved_once(test, p);
	rec_expect_moved_once(test, p2);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->device_resets), 1LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 0);
	KUNIT_EXPECT_FALSE(test, READ_ONCE(f->ctx->banned));

	/* The context table survived: the context still translates. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

/* Backend operations whose queue reset always fails. */
static struct {
	const struct refnpu_hw_ops *orig;
	struct refnpu_hw_ops ops;
} qrf;

static int qrf_queue_reset(struct refnpu_device *rdev, unsigned int queue)
{
	return -ETIMEDOUT;
}

static void qrf_restore(void *arg)
{
	struct refnpu_device *rdev = arg;

	flush_workqueue(rdev->reset_wq);
	rdev->hw_ops = qrf.orig;
}

/*
 * A hang on queue 0 whose queue reset fails forces a device reset, which
 * stops the job running on queue 1 for another context. That job had
 * started and updates memory it reads: it fails with -EAGAIN and is not
 * run a second time (its output shows whether it ran twice). The job
 * queued behind it had not started: it is resubmitted and succeeds. Only
 * the guilty context is blamed.
 */
static void recovery_device_reset_spares_innocents(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	struct file *other;
	u64 size, size2;
	u32 bo, bo2;
	u8 *p, *p2;
	s32 status;

	if (rdev->info.num_queues < 2)
		kunit_skip(test, "needs two queues");
	other = refnpu_test_open(test, rdev);
	bo = rec_move_job(test, other, &p, &size);
	bo2 = rec_move_job(test, other, &p2, &size2);

	qrf.orig = rdev->hw_ops;
	qrf.ops = *rdev->hw_ops;
	qrf.ops.queue_reset = qrf_queue_reset;
	rdev->hw_ops = &qrf.ops;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, qrf_restore, rdev),
			0);

	/* The guilty job first: its timeout comes before queue 1's. */
	rec_inject(test, REFNPU_DBG_INJECT_HANG, 0, 0, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, f->cmd,
						 REFNPU_CMD_NOP_SIZE), 0);
	rec_wait_fetched(test, rdev, 0);
	msleep(REFNPU_TEST_TIMEOUT_MS / 2);

	KUNIT_ASSERT_EQ(test, refnpu_test_inject(rdev, 1, REFNPU_DBG_INJECT_DELAY,
						 0, 10 * USEC_PER_SEC, 0), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, other, 1, bo, size), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, other, 1, bo2, size2), 0);
	rec_wait_fetched(test, rdev, 1);

	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -ETIMEDOUT);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, other, bo,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EAGAIN);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, other, bo2,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	flush_workqueue(rdev->reset_wq);

	rec_expect_moved_once(test, p);
	rec_expect_moved_once(test, p2);
	KUNIT_EXPECT_EQ(test, stat(&rdev->device_resets), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&rdev->queues[0].stats.timeouts), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&rdev->queues[1].stats.timeouts), 0LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 1);
	KUNIT_EXPECT_EQ(test, atomic_read(&refnpu_test_ctx(other)->hangs), 0);
}

/* Submit a job that stays on the hardware; return its hardware fence. */
static struct dma_fence *rec_hang_job(struct kunit *test,
				      struct refnpu_device *rdev,
				      struct file *filp)
{
	struct refnpu_queue *q = &rdev->queues[0];
	struct dma_fence *fence = NULL;
	struct refnpu_job *job;
	unsigned long flags;
	u32 cmd;

	/* A hung job never reads its commands: no CPU mapping is needed. */
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, filp, SZ_4K, 0, &cmd, NULL),
			0);
	KUNIT_ASSERT_EQ(test, refnpu_test_inject(rdev, 0, REFNPU_DBG_INJECT_HANG,
						 0, 0, 0), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, filp, 0, cmd,
						 REFNPU_CMD_NOP_SIZE), 0);
	KUNIT_ASSERT_EQ(test, wait_stat(&q->stats.submitted, 1), 1LL);

	spin_lock_irqsave(&q->lock, flags);
	job = list_first_entry_or_null(&q->active, struct refnpu_job, link);
	if (job)
		fence = dma_fence_get(job->hw_fence);
	spin_unlock_irqrestore(&q->lock, flags);
	KUNIT_ASSERT_NOT_NULL(test, fence);

	return fence;
}

/* What the removal test saw when its device was finally released. */
static struct {
	struct completion released;
	bool in_sched_work;
} unplug_state;

static void unplug_released(struct drm_device *drm, void *arg)
{
	struct refnpu_device *rdev = to_refnpu(drm);
	struct work_struct *work = current_work();
	unsigned int i;

	for (i = 0; i < rdev->info.num_queues; i++)
		if (work == &rdev->queues[i].sched.work_free_job ||
		    work == &rdev->queues[i].sched.work_run_job)
			unplug_state.in_sched_work = true;
	complete(&unplug_state.released);
}

/* Record in unplug_state when and where @rdev is finally released. */
static void unplug_track(struct kunit *test, struct refnpu_device *rdev)
{
	init_completion(&unplug_state.released);
	unplug_state.in_sched_work = false;
	KUNIT_ASSERT_EQ(test, drmm_add_action_or_reset(&rdev->drm,
						       unplug_released, NULL),
			0);
}

KUNIT_DEFINE_ACTION_WRAPPER(unplug_wqueue_start, drm_sched_wqueue_start,
			    struct drm_gpu_scheduler *);

/*
 * A device removed while the schedulers are still freeing its jobs: the
 * file is closed with a job on the hardware, the device is unplugged (the
 * job fails with -ENODEV), and only then is the job freed, in the
 * scheduler's free_job work. That job holds the last reference to the
 * device, whose release tears the schedulers down: it must not happen
 * inside the scheduler's own work, which drm_sched_fini() waits for.
 */
static void recovery_remove_while_freeing(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct drm_gpu_scheduler *sched = &rdev->queues[0].sched;
	unsigned long left;

	unplug_track(test, rdev);

	/* A job that stays on the hardware until the device goes away. */
	dma_fence_put(rec_hang_job(test, rdev, filp));

	/* Hold the job back from being freed until the device is gone. */
	drm_sched_wqueue_stop(sched);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, unplug_wqueue_start,
							sched), 0);

	refnpu_test_close(test, filp);
	refnpu_test_remove(test, rdev);
	KUNIT_EXPECT_FALSE_MSG(test, completion_done(&unplug_state.released),
			       "the job did not keep the device alive");

	/* The scheduler frees the job, dropping the last reference. */
	kunit_release_action(test, unplug_wqueue_start, sched);
	left = wait_for_completion_timeout(&unplug_state.released,
					   msecs_to_jiffies(REFNPU_TEST_WAIT_MS));
	KUNIT_ASSERT_NE_MSG(test, left, 0, "the device was never released");
	KUNIT_EXPECT_FALSE_MSG(test, unplug_state.in_sched_work,
			       "the device was released in a scheduler's work");

	/* The fixture's device was not disturbed. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

/* What the unbind test saw when the job's hardware fence signalled. */
struct unbind_cb {
	struct dma_fence_cb cb;
	struct refnpu_hwif *hw;
	bool signalled;
	bool device_running;
	int error;
};

static void unbind_fence_cb(struct dma_fence *fence, struct dma_fence_cb *cb)
{
	struct unbind_cb *u = container_of(cb, struct unbind_cb, cb);

	u->signalled = true;
	u->device_running = READ_ONCE(u->hw->ready);
	u->error = fence->error;
}

/*
 * Unbinding with a job on the hardware: its fence must not signal before
 * the device was stopped, since waiters then free the memory the job
 * used, and the freed job unmaps its BOs without a TLB invalidation.
 */
static void recovery_unbind_stops_device_first(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct unbind_cb u = { .hw = rdev->hw };
	struct dma_fence *fence;

	fence = rec_hang_job(test, rdev, filp);
	KUNIT_ASSERT_EQ(test, dma_fence_add_callback(fence, &u.cb,
						     unbind_fence_cb), 0);

	refnpu_test_remove(test, rdev);
	KUNIT_EXPECT_TRUE(test, u.signalled);
	KUNIT_EXPECT_FALSE_MSG(test, u.device_running,
			       "the job's fence signalled while the device could still run it");
	KUNIT_EXPECT_EQ(test, u.error, -ENODEV);
	if (!u.signalled)
		dma_fence_remove_callback(fence, &u.cb);
	dma_fence_put(fence);
	refnpu_test_close(test, filp);
}

/*
 * A job that stays on the hardware of @rdev, kept on its scheduler's
 * pending list (the scheduler's work is stopped until the test ends or
 * unplug_expect_released()), its file closed.
 */
static struct drm_gpu_scheduler *unplug_hang_setup(struct kunit *test,
						   struct refnpu_device *rdev)
{
	struct file *filp = refnpu_test_open(test, rdev);
	struct drm_gpu_scheduler *sched = &rdev->queues[0].sched;

	unplug_track(test, rdev);
	dma_fence_put(rec_hang_job(test, rdev, filp));
	drm_sched_wqueue_stop(sched);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, unplug_wqueue_start,
							sched), 0);
	refnpu_test_close(test, filp);
	return sched;
}

/* The scheduler's timeout work on its first pending job, replayed. */
static enum drm_gpu_sched_stat unplug_replay_timeout(struct kunit *test,
						     struct drm_gpu_scheduler *sched)
{
	enum drm_gpu_sched_stat stat;
	struct drm_sched_job *s_job;

	spin_lock(&sched->job_list_lock);
	s_job = list_first_entry_or_null(&sched->pending_list,
					 struct drm_sched_job, list);
	if (s_job)
		list_del_init(&s_job->list);
	spin_unlock(&sched->job_list_lock);
	KUNIT_ASSERT_NOT_NULL(test, s_job);
	stat = sched->ops->timedout_job(s_job);
	if (sched->free_guilty) {
		sched->ops->free_job(s_job);
		sched->free_guilty = false;
	}
	return stat;
}

/*
 * The timed-out job must be freed, which releases the device. The handler
 * restarts the scheduler itself; once the device is released its
 * schedulers are gone: only a device that was not may have its scheduler
 * started here.
 */
static void unplug_expect_released(struct kunit *test,
				   struct drm_gpu_scheduler *sched)
{
	unsigned long left;

	left = wait_for_completion_timeout(&unplug_state.released,
					   msecs_to_jiffies(REFNPU_TEST_WAIT_MS));
	if (left)
		kunit_remove_action(test, unplug_wqueue_start, sched);
	else
		kunit_release_action(test, unplug_wqueue_start, sched);
	KUNIT_EXPECT_NE_MSG(test, left, 0,
			    "the timed-out job was never freed: the device was never released");
}

/*
 * A job times out after its device was removed: the timeout handler
 * cannot reset anything, but it must still hand the job back to the
 * scheduler to be freed, or the job's pins, context and device references
 * leak and the device is never released. The scheduler's timeout work is
 * replayed here step by step (drm_sched_job_timedout()), after the
 * removal, to make the race certain.
 */
static void recovery_timeout_after_unplug_frees_job(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct drm_gpu_scheduler *sched = unplug_hang_setup(test, rdev);

	refnpu_test_remove(test, rdev);
	KUNIT_EXPECT_EQ(test, unplug_replay_timeout(test, sched),
			DRM_GPU_SCHED_STAT_ENODEV);
	unplug_expect_released(test, sched);
}

/* The removal the next test starts inside the timeout handler. */
static struct {
	const struct refnpu_hw_ops *orig;
	struct refnpu_hw_ops ops;
	struct kunit *test;
	struct refnpu_device *rdev;
	struct task_struct *remover;
	struct completion removed;
	bool started;
	bool unplugged_in_poll;
} upr;

static int upr_remove_fn(void *arg)
{
	refnpu_test_remove(upr.test, upr.rdev);
	complete(&upr.removed);
	return 0;
}

/* A removing thread the poll never started is stopped without running. */
static void upr_reap(void *unused)
{
	if (!upr.started)
		kthread_stop(upr.remover);
	put_task_struct(upr.remover);
}

/*
 * The timeout handler's poll of the queue, inside its drm_dev_enter()
 * section: start removing the device, and return once the removal has
 * marked it unplugged. The removal then waits for the section to end, and
 * the handler goes on to refnpu_recover() with the device unplugged. The
 * poll is also a fence signalling section, where nothing may allocate:
 * the removing thread was created before.
 */
static void upr_queue_poll(struct refnpu_device *rdev, unsigned int queue)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);

	upr.orig->queue_poll(rdev, queue);
	wake_up_process(upr.remover);
	upr.started = true;
	while (!drm_dev_is_unplugged(&rdev->drm) && time_before(jiffies, end))
		usleep_range(100, 200);
	upr.unplugged_in_poll = drm_dev_is_unplugged(&rdev->drm);
}

/*
 * The device is removed after the timeout handler checked that it was
 * there and before recovery starts (the handler's poll of the queue is
 * where the removal is made to happen). Recovery cannot reset anything,
 * but the timed-out job must still go back to the scheduler to be freed,
 * or its references leak and the device is never released.
 */
static void recovery_unplug_during_timeout_frees_job(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct drm_gpu_scheduler *sched = unplug_hang_setup(test, rdev);

	upr.orig = rdev->hw_ops;
	upr.ops = *rdev->hw_ops;
	upr.ops.queue_poll = upr_queue_poll;
	upr.test = test;
	upr.rdev = rdev;
	upr.started = false;
	upr.unplugged_in_poll = false;
	init_completion(&upr.removed);
	upr.remover = kthread_create(upr_remove_fn, NULL, "refnpu-test-unplug");
	KUNIT_ASSERT_FALSE(test, IS_ERR(upr.remover));
	get_task_struct(upr.remover);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, upr_reap, NULL), 0);
	rdev->hw_ops = &upr.ops;

	unplug_replay_timeout(test, sched);
	KUNIT_ASSERT_TRUE(test, upr.started);
	KUNIT_EXPECT_TRUE_MSG(test, upr.unplugged_in_poll,
			      "the removal did not happen inside the window");
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&upr.removed,
							  msecs_to_jiffies(REFNPU_TEST_WAIT_MS)),
			0);
	unplug_expect_released(test, sched);
}

/*
 * A hardware fence outlives its device: asking it for its timeline name
 * (as SYNC_IOC_FILE_INFO or a dependency's debug output does) must not
 * reach the freed device.
 */
static void recovery_fence_outlives_device(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct dma_fence *fence;
	unsigned long left;

	unplug_track(test, rdev);
	fence = rec_hang_job(test, rdev, filp);
	KUNIT_EXPECT_STREQ(test, fence->ops->get_timeline_name(fence),
			   "queue0");

	refnpu_test_remove(test, rdev);
	refnpu_test_close(test, filp);
	left = wait_for_completion_timeout(&unplug_state.released,
					   msecs_to_jiffies(REFNPU_TEST_WAIT_MS));
	KUNIT_ASSERT_NE(test, left, 0);

	/* KASAN reports a use-after-free here if the device is reached. */
	KUNIT_EXPECT_TRUE(test, dma_fence_is_signaled(fence));
	KUNIT_EXPECT_STREQ(test, fence->ops->get_timeline_name(fence),
			   "signaled");
	dma_fence_put(fence);
}

/*
 * An injected ABORTED is an ordinary job status: the job completes with
 * it (the errno of a job a reset stopped), HEAD moves on, and the job
 * does not run a second time.
 */
static void recovery_injected_aborted_completes(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];
	s64 completed = stat(&q->stats.completed);

	rec_inject(test, REFNPU_DBG_INJECT_ERROR, REFNPU_ERR_ABORTED, 0, 0);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -EAGAIN);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.failed), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.timeouts), 0LL);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.completed), completed + 1);
}

/*
 * Reading TIMESTAMP's low half latches its high half: a reader that takes
 * the halves apart never sees a value torn by a carry in between. Waits
 * for the first carry of the device's clock, about 4.3 s after creation.
 */
static void recovery_timestamp_latches_high_half(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	unsigned long end = jiffies + 10 * HZ;
	u64 before, after;
	u32 lo, hi;

	do {
		lo = refnpu_test_reg(f->rdev, REFNPU_REG_TIMESTAMP);
		hi = refnpu_test_reg(f->rdev, REFNPU_REG_TIMESTAMP + 4);
		if (hi || lo >= 0xf0000000U)
			break;
		msleep(100);
	} while (time_before(jiffies, end));
	KUNIT_ASSERT_EQ_MSG(test, hi, 0U, "the device clock started late");
	KUNIT_ASSERT_GE(test, lo, 0xf0000000U);

	/* The carry comes between the two halves of this read. */
	lo = refnpu_test_reg(f->rdev, REFNPU_REG_TIMESTAMP);
	msleep(600);
	hi = refnpu_test_reg(f->rdev, REFNPU_REG_TIMESTAMP + 4);
	before = (u64)hi << 32 | lo;
	lo = refnpu_test_reg(f->rdev, REFNPU_REG_TIMESTAMP);
	hi = refnpu_test_reg(f->rdev, REFNPU_REG_TIMESTAMP + 4);
	after = (u64)hi << 32 | lo;
	KUNIT_EXPECT_EQ(test, hi, 1U);
	KUNIT_EXPECT_GE(test, after, before + 600 * NSEC_PER_MSEC);
	KUNIT_EXPECT_LT(test, after, before + 10ULL * NSEC_PER_SEC);
}

/*
 * Stray-DMA injection makes the device write a physical address with no
 * MMU in the way. The virtual device refuses it unless virt_stray_dma is
 * set: by default nothing a debugfs writer injects reaches kernel memory.
 */
static void recovery_stray_dma_refused(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	u8 *page;

	if (refnpu_virt_stray_dma)
		kunit_skip(test, "virt_stray_dma=1 lets stray DMA land");
	page = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, page);

	rec_inject(test, REFNPU_DBG_INJECT_STRAY_DMA, 0, 0,
		   phys_to_dma(f->rdev->drm.dev, virt_to_phys(page)));
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), -EINVAL);
	KUNIT_EXPECT_NULL(test, memchr_inv(page, 0, PAGE_SIZE));
	/* One-shot: the device works on. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

static void restore_job_timeout(void *saved)
{
	refnpu_job_timeout_ms = (uintptr_t)saved;
}

/*
 * job_timeout_ms=0 means no scheduler timeout, not a zero one: a job
 * slower than a jiffy completes normally and no context is banned.
 */
static void recovery_zero_timeout_means_none(struct kunit *test)
{
	void *saved = (void *)(uintptr_t)refnpu_job_timeout_ms;
	struct refnpu_device *rdev;
	struct file *filp;
	s32 status;
	u32 cmd;
	int i;

	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							restore_job_timeout,
							saved), 0);
	refnpu_job_timeout_ms = 0;
	rdev = refnpu_test_device(test, 0);
	filp = refnpu_test_open(test, rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, filp, SZ_4K, 0, &cmd, NULL),
			0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, filp, cmd));

	for (i = 0; i < 4; i++) {
		KUNIT_ASSERT_EQ(test, refnpu_test_inject(rdev, 0,
							 REFNPU_DBG_INJECT_DELAY,
							 0, 50 * USEC_PER_MSEC,
							 0), 0);
		KUNIT_ASSERT_EQ(test, refnpu_test_run(test, filp, 0, cmd,
						      REFNPU_CMD_NOP_SIZE,
						      &status), 0);
		KUNIT_EXPECT_EQ(test, status, 0);
	}
	KUNIT_EXPECT_EQ(test, stat(&rdev->queues[0].stats.timeouts), 0LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&refnpu_test_ctx(filp)->hangs), 0);
}

/*
 * The next test holds a run_job of the hung queue inside its work while
 * the timeout handler stops that queue's scheduler.
 */
static struct {
	const struct refnpu_hw_ops *orig;
	struct refnpu_hw_ops ops;
	const struct drm_sched_backend_ops *sched_orig;
	struct drm_sched_backend_ops sched_ops;
	struct drm_gpu_scheduler *sched;
	struct refnpu_device *rdev;
	struct completion in_poll;
	struct completion in_run;
	bool armed;
	bool polling;
	bool overlapped;
} rjo;

/*
 * The timeout handler's poll (the handler is its only caller): wait until
 * run_job is running.
 */
static void rjo_queue_poll(struct refnpu_device *rdev, unsigned int queue)
{
	if (xchg(&rjo.armed, false)) {
		WRITE_ONCE(rjo.polling, true);
		complete(&rjo.in_poll);
		wait_for_completion_timeout(&rjo.in_run,
					    msecs_to_jiffies(REFNPU_TEST_WAIT_MS));
	}
	rjo.orig->queue_poll(rdev, queue);
}

/*
 * run_job, in the scheduler's run_job work: let the timeout handler go on
 * from its poll, and stay until it stops this scheduler (it sets
 * pause_submit in drm_sched_wqueue_stop() right before it waits for this
 * work), then run the job.
 */
static struct dma_fence *rjo_run_job(struct drm_sched_job *sched_job)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);

	if (xchg(&rjo.polling, false)) {
		complete(&rjo.in_run);
		while (!READ_ONCE(rjo.sched->pause_submit) &&
		       time_before(jiffies, end))
			usleep_range(1000, 2000);
		rjo.overlapped = READ_ONCE(rjo.sched->pause_submit);
		/* Into cancel_work_sync(), right after. */
		msleep(20);
	}
	return rjo.sched_orig->run_job(sched_job);
}

/* With the scheduler's works and every recovery done, as the others. */
static void rjo_restore(void *arg)
{
	struct refnpu_device *rdev = arg;

	drm_sched_wqueue_stop(rjo.sched);
	flush_workqueue(rdev->reset_wq);
	flush_workqueue(refnpu_wq);
	rdev->hw_ops = rjo.orig;
	rjo.sched->ops = rjo.sched_orig;
	drm_sched_wqueue_start(rjo.sched);
}

/*
 * A job times out while the run_job work of its queue is running (here
 * held there until the timeout handler waits for it, as happens by
 * chance under load). drm_sched_stop() waits for that work, which is a
 * fence signalling section of its own; stopped inside the handler's
 * section, lockdep reports a circular dependency and turns itself off.
 * The handler and recovery stop schedulers outside the section
 * (refnpu_recover()). The job @inject makes times out: the status of its
 * wait is @status.
 */
static void rjo_run(struct kunit *test, u32 inject, s32 status)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	s32 st;
	u32 cmd2;

	if (!IS_ENABLED(CONFIG_PROVE_LOCKING))
		kunit_skip(test, "lockdep (CONFIG_PROVE_LOCKING) is off");
	if (!debug_locks)
		kunit_skip(test, "lockdep turned itself off after an earlier report");

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &cmd2,
					     NULL), 0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, f->filp, cmd2));

	memset(&rjo, 0, sizeof(rjo));
	init_completion(&rjo.in_poll);
	init_completion(&rjo.in_run);
	rjo.rdev = rdev;
	rjo.orig = rdev->hw_ops;
	rjo.ops = *rdev->hw_ops;
	rjo.ops.queue_poll = rjo_queue_poll;
	rjo.sched = &rdev->queues[0].sched;
	rjo.sched_orig = rjo.sched->ops;
	rjo.sched_ops = *rjo.sched->ops;
	rjo.sched_ops.run_job = rjo_run_job;
	rdev->hw_ops = &rjo.ops;
	rjo.sched->ops = &rjo.sched_ops;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, rjo_restore, rdev),
			0);

	WRITE_ONCE(rjo.armed, true);
	rec_inject(test, inject, 0, 0, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, f->cmd,
						 REFNPU_CMD_NOP_SIZE), 0);
	rec_wait_fetched(test, rdev, 0);

	/* The timeout handler is in its poll: the next job's run_job runs. */
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&rjo.in_poll,
							  msecs_to_jiffies(REFNPU_TEST_WAIT_MS)),
			0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, cmd2,
						 REFNPU_CMD_NOP_SIZE), 0);

	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &st), 0);
	KUNIT_EXPECT_EQ(test, st, status);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, cmd2,
					       REFNPU_TEST_WAIT_MS, &st), 0);
	KUNIT_EXPECT_EQ(test, st, 0);
	KUNIT_EXPECT_TRUE_MSG(test, rjo.overlapped,
			      "the timeout handler never waited while run_job ran");
	KUNIT_EXPECT_TRUE_MSG(test, debug_locks,
			      "lockdep reported a problem (kernel log) and is off");
}

/* The timed-out job hangs: refnpu_recover() stops the queue. */
static void recovery_timeout_meets_running_run_job(struct kunit *test)
{
	rjo_run(test, REFNPU_DBG_INJECT_HANG, -ETIMEDOUT);
}

/*
 * The timed-out job had completed, its interrupt lost: the handler puts
 * it back to the scheduler (refnpu_queue_requeue()), which stops the
 * queue too. This is the one that stopped inside the section on a KCSAN
 * kernel under load.
 */
static void recovery_lost_irq_meets_running_run_job(struct kunit *test)
{
	struct rec_fixture *f = test->priv;

	rjo_run(test, REFNPU_DBG_INJECT_DROP_IRQ, 0);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->queues[0].stats.lost_irqs), 1LL);
}

static struct kunit_case refnpu_recovery_cases[] = {
	KUNIT_CASE_SLOW(recovery_hang_times_out),
	KUNIT_CASE_SLOW(recovery_innocent_resubmitted),
	KUNIT_CASE_SLOW(recovery_ban_after_hang_limit),
	KUNIT_CASE_SLOW(recovery_lost_interrupt),
	KUNIT_CASE(recovery_spurious_interrupts),
	KUNIT_CASE(recovery_debugfs_spurious_irq),
	KUNIT_CASE(recovery_injected_errors),
	KUNIT_CASE(recovery_injected_aborted_completes),
	KUNIT_CASE_SLOW(recovery_timestamp_latches_high_half),
	KUNIT_CASE(recovery_stray_dma_refused),
	KUNIT_CASE(recovery_zero_timeout_means_none),
	KUNIT_CASE(recovery_delay_is_device_time),
	KUNIT_CASE(recovery_device_reset_fails_started_job),
	KUNIT_CASE_SLOW(recovery_device_reset_spares_innocents),
	KUNIT_CASE(recovery_remove_while_freeing),
	KUNIT_CASE(recovery_unbind_stops_device_first),
	KUNIT_CASE(recovery_timeout_after_unplug_frees_job),
	KUNIT_CASE(recovery_unplug_during_timeout_frees_job),
	KUNIT_CASE(recovery_fence_outlives_device),
	KUNIT_CASE_SLOW(recovery_timeout_meets_running_run_job),
	KUNIT_CASE_SLOW(recovery_lost_irq_meets_running_run_job),
	{}
};

static struct kunit_suite refnpu_recovery_suite = {
	.name = "refnpu_recovery",
	.init = rec_init,
	.test_cases = refnpu_recovery_cases,
};

/* Wait until the error interrupt reported @n faults in total. */
static void wait_mmu_faults(struct kunit *test, s64 n)
{
	struct rec_fixture *f = test->priv;

	KUNIT_EXPECT_EQ(test, wait_stat(&f->rdev->mmu_faults, n), n);
	/* The driver acknowledged the fault record. */
	KUNIT_EXPECT_FALSE(test, refnpu_test_reg(f->rdev, REFNPU_REG_STATUS) &
			   REFNPU_STATUS_FAULT);
}

/* A command buffer with one command, in a BO of its own. */
static u32 mmu_cmd(struct kunit *test, void **p)
{
	struct rec_fixture *f = test->priv;
	u32 handle;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &handle,
					     NULL), 0);
	*p = refnpu_test_bo_map(test, f->filp, handle);

	return handle;
}

static void mmu_fault_unmapped_read(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];
	u32 data, cmd;
	s32 status;
	u64 va;
	void *p;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &data, &va),
			0);
	cmd = mmu_cmd(test, &p);

	/* Read the guard gap just past the BO. */
	refnpu_test_cmd_copy(p, va + SZ_4K, va, 0, 1, 64);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_COPY_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EFAULT);
	wait_mmu_faults(test, 1);
	KUNIT_EXPECT_EQ(test, stat(&f->ctx->faults), 1LL);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.failed), 1LL);

	/* Only that job failed: the queue goes on, nothing was reset. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
	KUNIT_EXPECT_EQ(test, stat(&q->stats.resets), 0LL);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 0);
}

static void mmu_fault_write_read_only(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	u32 ro, rw, cmd;
	u64 ro_va, rw_va;
	u8 *ro_data, *rw_data;
	s32 status;
	void *p;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K,
					     DRM_REFNPU_BO_DEVICE_RO, &ro,
					     &ro_va), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &rw,
					     &rw_va), 0);
	ro_data = refnpu_test_bo_map(test, f->filp, ro);
	rw_data = refnpu_test_bo_map(test, f->filp, rw);
	memset(ro_data, 0x33, 64);
	cmd = mmu_cmd(test, &p);

	refnpu_test_cmd_fill(p, ro_va, 0, 1, 64, 0xff, 1);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EFAULT);
	KUNIT_EXPECT_EQ(test, ro_data[0], 0x33);
	wait_mmu_faults(test, 1);

	/* Reading it is fine. */
	refnpu_test_cmd_copy(p, ro_va, rw_va, 0, 1, 64);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_COPY_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_EXPECT_MEMEQ(test, rw_data, ro_data, 64);
	KUNIT_EXPECT_EQ(test, stat(&f->rdev->mmu_faults), 1LL);
}

static void mmu_fault_injected(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	u32 data, cmd;
	s32 status;
	u64 va;
	u8 *bytes;
	void *p;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &data, &va),
			0);
	bytes = refnpu_test_bo_map(test, f->filp, data);
	cmd = mmu_cmd(test, &p);
	refnpu_test_cmd_fill(p, va, 0, 1, 64, 0x5a, 1);

	/* The device pretends the page is unmapped, once. */
	rec_inject(test, REFNPU_DBG_INJECT_MMU_FAULT, 0, 0, va);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EFAULT);
	KUNIT_EXPECT_EQ(test, bytes[0], 0);
	wait_mmu_faults(test, 1);

	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_EXPECT_EQ(test, bytes[0], 0x5a);
	KUNIT_EXPECT_EQ(test, bytes[63], 0x5a);
	KUNIT_EXPECT_EQ(test, bytes[64], 0);
}

static void mmu_fault_after_unmap(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	u32 data, cmd;
	s32 status;
	u64 va;
	void *p;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &data, &va),
			0);
	cmd = mmu_cmd(test, &p);
	refnpu_test_cmd_fill(p, va, 0, 1, 64, 0x5a, 1);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);

	/* Closing the last handle unmaps the BO from the device. */
	refnpu_test_bo_close(test, f->filp, data);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EFAULT);
	wait_mmu_faults(test, 1);
}

static void mmu_fault_never_bans(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	unsigned int i, n = refnpu_hang_limit + 2;
	u32 cmd;
	s32 status;
	void *p;

	cmd = mmu_cmd(test, &p);
	refnpu_test_cmd_copy(p, REFNPU_VA_START - SZ_4K, REFNPU_VA_START, 0, 1,
			     8);
	for (i = 0; i < n; i++) {
		KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
						      REFNPU_CMD_COPY_SIZE,
						      &status), 0);
		KUNIT_EXPECT_EQ(test, status, -EFAULT);
	}
	wait_mmu_faults(test, n);
	KUNIT_EXPECT_EQ(test, stat(&f->ctx->faults), (s64)n);
	KUNIT_EXPECT_EQ(test, atomic_read(&f->ctx->hangs), 0);
	KUNIT_EXPECT_FALSE(test, READ_ONCE(f->ctx->banned));
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

/* Point the level-0 entry of @va at bus address @addr, behind the driver. */
static void mmu_repoint(struct refnpu_ctx *ctx, u64 va, u64 addr)
{
	LIST_HEAD(freelist);

	mutex_lock(&ctx->vm_lock);
	refnpu_pgtable_unmap(&ctx->pgt, va, SZ_4K, &freelist);
	WARN_ON(refnpu_pgtable_map(&ctx->pgt, va, addr, SZ_4K, true));
	mutex_unlock(&ctx->vm_lock);
	/* Tables emptied by the unmap; the device never cached those. */
	refnpu_pgtable_free_tables(&ctx->pgt, &freelist);
}

/*
 * The virtual device caches translations like the QEMU model (a TLB per
 * queue), so a driver that changes a page-table entry without invalidating
 * the TLB sees the old translation used, instead of getting away with it.
 */
static void mmu_tlb_needs_invalidation(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	u32 a, b, cmd;
	u64 va_a, va_b, pa_a, pa_b;
	u8 *bytes_a, *bytes_b;
	s32 status;
	void *p;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &a, &va_a),
			0);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &b, &va_b),
			0);
	bytes_a = refnpu_test_bo_map(test, f->filp, a);
	bytes_b = refnpu_test_bo_map(test, f->filp, b);
	cmd = mmu_cmd(test, &p);
	pa_a = refnpu_pgtable_lookup(&f->ctx->pgt, va_a, NULL) & REFNPU_PTE_ADDR_MASK;
	pa_b = refnpu_pgtable_lookup(&f->ctx->pgt, va_b, NULL) & REFNPU_PTE_ADDR_MASK;
	KUNIT_ASSERT_NE(test, pa_a, 0ULL);
	KUNIT_ASSERT_NE(test, pa_b, 0ULL);

	/* Warm the queue's TLB with va_a -> A. */
	refnpu_test_cmd_fill(p, va_a, 0, 1, 64, 0x11, 1);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_ASSERT_EQ(test, status, 0);
	KUNIT_EXPECT_EQ(test, bytes_a[0], 0x11);

	/* Re-point va_a at B's page without invalidating: A is still used. */
	mmu_repoint(f->ctx, va_a, pa_b);
	refnpu_test_cmd_fill(p, va_a, 0, 1, 64, 0x22, 1);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_EXPECT_EQ_MSG(test, bytes_a[0], 0x22, "no stale translation used");
	KUNIT_EXPECT_EQ(test, bytes_b[0], 0);

	/* After the invalidation the new entry is walked. */
	refnpu_test_reg_write(f->rdev, REFNPU_REG_TLB_INVALIDATE, f->ctx->id);
	refnpu_test_cmd_fill(p, va_a, 0, 1, 64, 0x33, 1);
	KUNIT_ASSERT_EQ(test, refnpu_test_run(test, f->filp, 0, cmd,
					      REFNPU_CMD_FILL_SIZE, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_EXPECT_EQ(test, bytes_a[0], 0x22);
	KUNIT_EXPECT_EQ(test, bytes_b[0], 0x33);

	/* Put A back, as the driver would: with an invalidation. */
	mmu_repoint(f->ctx, va_a, pa_a);
	refnpu_test_reg_write(f->rdev, REFNPU_REG_TLB_INVALIDATE,
			      REFNPU_TLB_INV_ALL);
}

/*
 * Backend operations of a test's device, wrapped: TLB invalidations can
 * be made to time out or to take long and count how many overlap, and
 * device resets can be held back until the test lets them through (the
 * first by @reset_go, later ones by @reset_go2).
 */
static struct {
	const struct refnpu_hw_ops *orig;
	struct refnpu_hw_ops ops;
	bool tlb_fail;
	atomic_t tlb_calls;
	atomic_t tlb_inflight;
	int tlb_max_inflight;
	bool tlb_slow;
	atomic_t resets;
	struct completion reset_go;
	struct completion reset_go2;
} tlbw;

static int tlbw_invalidate(struct refnpu_device *rdev, u32 ctx_id)
{
	int n = atomic_inc_return(&tlbw.tlb_inflight), ret;

	atomic_inc(&tlbw.tlb_calls);
	if (n > READ_ONCE(tlbw.tlb_max_inflight))
		WRITE_ONCE(tlbw.tlb_max_inflight, n);
	if (READ_ONCE(tlbw.tlb_slow))
		usleep_range(2000, 3000);
	ret = READ_ONCE(tlbw.tlb_fail) ? -ETIMEDOUT :
	      tlbw.orig->tlb_invalidate(rdev, ctx_id);
	atomic_dec(&tlbw.tlb_inflight);
	return ret;
}

static int tlbw_reset(struct refnpu_device *rdev)
{
	int n = atomic_inc_return(&tlbw.resets);

	wait_for_completion(n == 1 ? &tlbw.reset_go : &tlbw.reset_go2);
	return tlbw.orig->reset(rdev);
}

static void tlbw_restore(void *arg)
{
	struct refnpu_device *rdev = arg;

	complete_all(&tlbw.reset_go);
	complete_all(&tlbw.reset_go2);
	WRITE_ONCE(tlbw.tlb_fail, false);
	flush_workqueue(rdev->reset_wq);
	flush_workqueue(refnpu_wq);
	rdev->hw_ops = tlbw.orig;
}

static void tlbw_install(struct kunit *test, struct refnpu_device *rdev)
{
	tlbw.orig = rdev->hw_ops;
	tlbw.ops = *rdev->hw_ops;
	tlbw.ops.tlb_invalidate = tlbw_invalidate;
	tlbw.ops.reset = tlbw_reset;
	tlbw.tlb_fail = false;
	tlbw.tlb_slow = false;
	atomic_set(&tlbw.tlb_inflight, 0);
	tlbw.tlb_max_inflight = 0;
	atomic_set(&tlbw.resets, 0);
	atomic_set(&tlbw.tlb_calls, 0);
	init_completion(&tlbw.reset_go);
	init_completion(&tlbw.reset_go2);
	rdev->hw_ops = &tlbw.ops;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, tlbw_restore, rdev),
			0);
}

static unsigned int bo_count(struct refnpu_device *rdev)
{
	struct list_head *pos;
	unsigned int n = 0;

	mutex_lock(&rdev->bo_lock);
	list_for_each(pos, &rdev->bo_list)
		n++;
	mutex_unlock(&rdev->bo_lock);
	return n;
}

/*
 * A TLB invalidation that times out leaves the device with translations
 * to the pages just unmapped: they must not go back to the allocator.
 * The BO stays alive until a device reset dropped every translation.
 */
static void mmu_tlb_timeout_quarantines_until_reset(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	unsigned long end;
	unsigned int n;
	u32 bo;

	tlbw_install(test, rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &bo, NULL),
			0);
	n = bo_count(rdev);

	WRITE_ONCE(tlbw.tlb_fail, true);
	refnpu_test_bo_close(test, f->filp, bo);
	KUNIT_EXPECT_EQ(test, atomic64_read(&rdev->tlb_timeouts), 1LL);
	KUNIT_EXPECT_EQ_MSG(test, bo_count(rdev), n,
			    "the BO was freed while the device may still reach it");
	WRITE_ONCE(tlbw.tlb_fail, false);

	/* The reset that was asked for frees it. */
	complete_all(&tlbw.reset_go);
	end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);
	while (bo_count(rdev) == n && time_before(jiffies, end))
		usleep_range(1000, 2000);
	KUNIT_EXPECT_EQ(test, bo_count(rdev), n - 1);
	KUNIT_EXPECT_GE(test, atomic64_read(&rdev->device_resets), 1LL);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

/*
 * A quarantined mapping keeps its device address until the reset: a BO
 * mapped meanwhile gets another one, since the stale translations of the
 * old one still lead to the old pages. After the reset the address is
 * handed out again.
 */
static void mmu_tlb_quarantine_keeps_the_address(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	u32 bo, bo2, bo3;
	u64 va, va2, va3;

	tlbw_install(test, rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &bo,
					     &va), 0);
	WRITE_ONCE(tlbw.tlb_fail, true);
	refnpu_test_bo_close(test, f->filp, bo);
	WRITE_ONCE(tlbw.tlb_fail, false);
	KUNIT_ASSERT_EQ(test, atomic64_read(&rdev->tlb_timeouts), 1LL);

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &bo2,
					     &va2), 0);
	KUNIT_EXPECT_NE_MSG(test, va2, va,
			    "a quarantined device address was handed out again");
	refnpu_test_bo_close(test, f->filp, bo2);

	complete_all(&tlbw.reset_go);
	flush_workqueue(rdev->reset_wq);
	flush_workqueue(refnpu_wq);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &bo3,
					     &va3), 0);
	KUNIT_EXPECT_EQ_MSG(test, va3, va,
			    "the reset did not give the address back");
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

/* Wait until @n BOs are left; returns the count. */
static unsigned int bo_count_settled(struct refnpu_device *rdev,
				     unsigned int n)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);

	while (bo_count(rdev) != n && time_before(jiffies, end))
		usleep_range(1000, 2000);
	return bo_count(rdev);
}

/*
 * What is quarantined while a device reset is under way may have been
 * cached after the reset dropped the TLB: that reset frees only what was
 * quarantined before it began, and the next reset the rest.
 */
static void mmu_tlb_quarantine_waits_for_its_own_reset(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	unsigned long end;
	unsigned int n;
	u32 a, b;

	tlbw_install(test, rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &a,
					     NULL), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &b,
					     NULL), 0);
	n = bo_count(rdev);

	/* A is quarantined; its reset begins and is held. */
	WRITE_ONCE(tlbw.tlb_fail, true);
	refnpu_test_bo_close(test, f->filp, a);
	end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);
	while (atomic_read(&tlbw.resets) < 1 && time_before(jiffies, end))
		usleep_range(1000, 2000);
	KUNIT_ASSERT_EQ(test, atomic_read(&tlbw.resets), 1);

	/* B is quarantined while that reset is under way. */
	refnpu_test_bo_close(test, f->filp, b);
	WRITE_ONCE(tlbw.tlb_fail, false);

	complete_all(&tlbw.reset_go);
	KUNIT_EXPECT_EQ_MSG(test, bo_count_settled(rdev, n - 1), n - 1,
			    "the first reset did not free what it covered");
	/* The second reset is held: B must still be there. */
	msleep(50);
	KUNIT_EXPECT_EQ_MSG(test, bo_count(rdev), n - 1,
			    "a reset freed what was quarantined after it began");

	complete_all(&tlbw.reset_go2);
	KUNIT_EXPECT_EQ(test, bo_count_settled(rdev, n - 2), n - 2);
	KUNIT_EXPECT_EQ(test, atomic_read(&tlbw.resets), 2);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

/* A mapping of @obj in @ctx for refnpu_mmu_map(), owned by the test. */
static struct refnpu_mapping *rollback_map(struct kunit *test,
					   struct drm_gem_object *obj,
					   struct refnpu_ctx *ctx)
{
	struct refnpu_mapping *map = kzalloc(sizeof(*map), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, map);
	kref_init(&map->refcount);
	map->bo = to_refnpu_bo(obj);
	map->ctx = ctx;
	return map;
}

/*
 * A map that fails part-way is rolled back like an unmap: a job of the
 * context may have walked the new tables, so they are freed only after a
 * TLB invalidation; when that fails, they, the range and the BO are
 * quarantined until a device reset.
 */
static void mmu_map_rollback_invalidates(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	struct refnpu_mapping *map;
	struct drm_gem_object *obj;
	struct scatterlist *sg;
	bool quarantined = false;
	struct sg_table sgt;
	unsigned int n;
	u32 bo;

	tlbw_install(test, rdev);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &bo,
					     NULL), 0);
	obj = drm_gem_object_lookup(f->filp->private_data, bo);
	KUNIT_ASSERT_NOT_NULL(test, obj);
	n = bo_count(rdev);

	/* Two pages, then a segment that ends inside a page. */
	KUNIT_ASSERT_EQ(test, sg_alloc_table(&sgt, 2, GFP_KERNEL), 0);
	sg = sgt.sgl;
	sg_dma_address(sg) = SZ_1G;
	sg_dma_len(sg) = 2 * SZ_4K;
	sg = sg_next(sg);
	sg_dma_address(sg) = SZ_2G;
	sg_dma_len(sg) = SZ_4K + 512;
	sgt.nents = 2;

	map = rollback_map(test, obj, f->ctx);
	KUNIT_EXPECT_EQ(test, refnpu_mmu_map(f->ctx, map, &sgt, 4 * SZ_4K,
					     true, &quarantined), -EINVAL);
	KUNIT_EXPECT_FALSE(test, quarantined);
	KUNIT_EXPECT_EQ_MSG(test, atomic_read(&tlbw.tlb_calls), 1,
			    "the rollback freed tables without an invalidation");
	KUNIT_EXPECT_FALSE(test, drm_mm_node_allocated(&map->node));
	kfree(map);

	WRITE_ONCE(tlbw.tlb_fail, true);
	map = rollback_map(test, obj, f->ctx);
	KUNIT_EXPECT_EQ(test, refnpu_mmu_map(f->ctx, map, &sgt, 4 * SZ_4K,
					     true, &quarantined), -EINVAL);
	WRITE_ONCE(tlbw.tlb_fail, false);
	KUNIT_EXPECT_TRUE(test, quarantined);
	KUNIT_EXPECT_EQ(test, atomic64_read(&rdev->tlb_timeouts), 1LL);
	sg_free_table(&sgt);

	/* The quarantine keeps the BO past its last handle, until the reset. */
	drm_gem_object_put(obj);
	refnpu_test_bo_close(test, f->filp, bo);
	KUNIT_EXPECT_EQ(test, bo_count(rdev), n);
	complete_all(&tlbw.reset_go);
	KUNIT_EXPECT_EQ(test, bo_count_settled(rdev, n - 1), n - 1);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, f->cmd), 0);
}

struct tlb_closer {
	struct file *filp;
	u32 handles[8];
	int ret;
};

static int tlb_closer_fn(void *arg)
{
	struct tlb_closer *c = arg;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(c->handles); i++)
		c->ret |= drm_gem_handle_delete(c->filp->private_data,
						c->handles[i]);
	return 0;
}

/* Invalidations for different contexts never overlap on the device. */
static void mmu_tlb_invalidations_serialised(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct tlb_closer c[2] = {
		{ .filp = f->filp },
		{ .filp = refnpu_test_open(test, f->rdev) },
	};
	struct task_struct *t[2];
	unsigned int i, j;

	tlbw_install(test, f->rdev);
	for (i = 0; i < 2; i++)
		for (j = 0; j < ARRAY_SIZE(c[i].handles); j++)
			KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, c[i].filp, SZ_4K,
							     0, &c[i].handles[j],
							     NULL), 0);

	WRITE_ONCE(tlbw.tlb_slow, true);
	for (i = 0; i < 2; i++) {
		t[i] = kthread_run(tlb_closer_fn, &c[i], "refnpu-tlb-%u", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t[i]));
		get_task_struct(t[i]);
	}
	for (i = 0; i < 2; i++) {
		kthread_stop(t[i]);
		put_task_struct(t[i]);
		KUNIT_EXPECT_EQ(test, c[i].ret, 0);
	}
	WRITE_ONCE(tlbw.tlb_slow, false);

	KUNIT_EXPECT_EQ(test, atomic64_read(&f->rdev->tlb_timeouts), 0LL);
	KUNIT_EXPECT_EQ_MSG(test, tlbw.tlb_max_inflight, 1,
			    "TLB invalidations of two contexts overlapped");
}

/* A removal the next test holds between unplug and the device's stop. */
static struct {
	const struct refnpu_hw_ops *orig;
	struct refnpu_hw_ops ops;
	struct kunit *test;
	struct refnpu_device *rdev;
	struct completion in_fini;
	struct completion go;
	struct completion removed;
} ufw;

static void ufw_fini(struct refnpu_device *rdev)
{
	complete(&ufw.in_fini);
	wait_for_completion(&ufw.go);
	ufw.orig->fini(rdev);
}

static int ufw_remove_fn(void *arg)
{
	refnpu_test_remove(ufw.test, ufw.rdev);
	complete(&ufw.removed);
	return 0;
}

static void ufw_finish(void *arg)
{
	complete_all(&ufw.go);
	wait_for_completion(&ufw.removed);
}

/*
 * Between drm_dev_unplug() and the backend's fini a removed device still
 * runs the jobs in its rings, and it can no longer be asked to invalidate
 * its TLB: a BO unmapped then stays allocated (quarantined) until the
 * device has stopped.
 */
static void mmu_unmap_after_unplug_waits_for_stop(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct task_struct *t;
	unsigned long end;
	unsigned int n;
	u32 bo;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, filp, SZ_64K, 0, &bo, NULL),
			0);
	n = bo_count(rdev);

	ufw.orig = rdev->hw_ops;
	ufw.ops = *rdev->hw_ops;
	ufw.ops.fini = ufw_fini;
	ufw.test = test;
	ufw.rdev = rdev;
	init_completion(&ufw.in_fini);
	init_completion(&ufw.go);
	init_completion(&ufw.removed);
	rdev->hw_ops = &ufw.ops;
	t = kthread_run(ufw_remove_fn, NULL, "refnpu-test-unplug");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, ufw_finish, NULL),
			0);
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&ufw.in_fini,
							  msecs_to_jiffies(REFNPU_TEST_WAIT_MS)),
			0);
	KUNIT_ASSERT_TRUE(test, drm_dev_is_unplugged(&rdev->drm));

	refnpu_test_bo_close(test, filp, bo);
	KUNIT_EXPECT_EQ_MSG(test, bo_count(rdev), n,
			    "the BO was freed while the removed device still ran");

	/* Once the device has stopped, the BO goes. */
	kunit_release_action(test, ufw_finish, NULL);
	end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);
	while (bo_count(rdev) == n && time_before(jiffies, end))
		usleep_range(1000, 2000);
	KUNIT_EXPECT_EQ(test, bo_count(rdev), n - 1);
	KUNIT_EXPECT_EQ(test, atomic64_read(&rdev->tlb_timeouts), 0LL);
	refnpu_test_close(test, filp);
}

/* Backend operations whose resets fail while @fail is set. */
static struct {
	const struct refnpu_hw_ops *orig;
	struct refnpu_hw_ops ops;
	bool fail;
	atomic_t tlb_calls;
} wdg;

static int wdg_queue_reset(struct refnpu_device *rdev, unsigned int queue)
{
	return READ_ONCE(wdg.fail) ? -ETIMEDOUT :
	       wdg.orig->queue_reset(rdev, queue);
}

static int wdg_reset(struct refnpu_device *rdev)
{
	return READ_ONCE(wdg.fail) ? -ETIMEDOUT : wdg.orig->reset(rdev);
}

static int wdg_tlb_invalidate(struct refnpu_device *rdev, u32 ctx_id)
{
	atomic_inc(&wdg.tlb_calls);
	return wdg.orig->tlb_invalidate(rdev, ctx_id);
}

static void wdg_restore(void *arg)
{
	struct refnpu_device *rdev = arg;

	WRITE_ONCE(wdg.fail, false);
	flush_workqueue(rdev->reset_wq);
	if (READ_ONCE(rdev->wedged)) {
		refnpu_device_reset_async(rdev);
		flush_workqueue(rdev->reset_wq);
	}
	rdev->hw_ops = wdg.orig;
}

/*
 * A hang whose queue reset and device reset both fail wedges the device
 * (Documentation/driver.rst, "Wedged device"): the hung job fails with
 * -ETIMEDOUT, the job queued behind it and every later one with -EIO, the
 * device's DMA is off and TLB invalidations are skipped, so unmapped
 * memory is freed at once; a reset that succeeds ends it.
 */
static void recovery_failed_reset_wedges(struct kunit *test)
{
	struct rec_fixture *f = test->priv;
	struct refnpu_device *rdev = f->rdev;
	struct refnpu_hwif *hw = rdev->hw;
	unsigned int n;
	u32 cmd2, bo;
	s32 status;

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_4K, 0, &cmd2,
					     NULL), 0);
	refnpu_test_cmd_nop(refnpu_test_bo_map(test, f->filp, cmd2));
	wdg.orig = rdev->hw_ops;
	wdg.ops = *rdev->hw_ops;
	wdg.ops.queue_reset = wdg_queue_reset;
	wdg.ops.reset = wdg_reset;
	wdg.ops.tlb_invalidate = wdg_tlb_invalidate;
	WRITE_ONCE(wdg.fail, true);
	atomic_set(&wdg.tlb_calls, 0);
	rdev->hw_ops = &wdg.ops;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, wdg_restore, rdev),
			0);

	rec_inject(test, REFNPU_DBG_INJECT_HANG, 0, 0, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, f->cmd,
						 REFNPU_CMD_NOP_SIZE), 0);
	rec_wait_fetched(test, rdev, 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_submit(test, f->filp, 0, cmd2,
						 REFNPU_CMD_NOP_SIZE), 0);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -ETIMEDOUT);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, cmd2,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, -EIO);
	KUNIT_EXPECT_TRUE(test, READ_ONCE(rdev->wedged));
	KUNIT_EXPECT_TRUE(test, hw->dma_off);

	/* While wedged: jobs fail before the device; unmaps free at once. */
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, cmd2), -EIO);
	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, f->filp, SZ_64K, 0, &bo,
					     NULL), 0);
	n = bo_count(rdev);
	refnpu_test_bo_close(test, f->filp, bo);
	KUNIT_EXPECT_EQ(test, atomic_read(&wdg.tlb_calls), 0);
	KUNIT_EXPECT_EQ(test, bo_count(rdev), n - 1);
	KUNIT_EXPECT_EQ(test, atomic64_read(&rdev->tlb_timeouts), 0LL);

	/* A reset that succeeds ends it, and the device reaches memory again. */
	WRITE_ONCE(wdg.fail, false);
	refnpu_device_reset_async(rdev);
	flush_workqueue(rdev->reset_wq);
	KUNIT_EXPECT_FALSE(test, READ_ONCE(rdev->wedged));
	KUNIT_EXPECT_FALSE(test, hw->dma_off);
	KUNIT_EXPECT_EQ(test, rec_nop(test, f->filp, cmd2), 0);
}

static struct kunit_case refnpu_mmu_fault_cases[] = {
	KUNIT_CASE(mmu_fault_unmapped_read),
	KUNIT_CASE(mmu_fault_write_read_only),
	KUNIT_CASE(mmu_fault_injected),
	KUNIT_CASE(mmu_fault_after_unmap),
	KUNIT_CASE(mmu_fault_never_bans),
	KUNIT_CASE(mmu_tlb_needs_invalidation),
	KUNIT_CASE(mmu_tlb_timeout_quarantines_until_reset),
	KUNIT_CASE(mmu_tlb_quarantine_keeps_the_address),
	KUNIT_CASE(mmu_tlb_quarantine_waits_for_its_own_reset),
	KUNIT_CASE(mmu_map_rollback_invalidates),
	KUNIT_CASE(mmu_tlb_invalidations_serialised),
	KUNIT_CASE(recovery_failed_reset_wedges),
	KUNIT_CASE(mmu_unmap_after_unplug_waits_for_stop),
	{}
};

static struct kunit_suite refnpu_mmu_fault_suite = {
	.name = "refnpu_mmu_fault",
	.init = rec_init,
	.test_cases = refnpu_mmu_fault_cases,
};

kunit_test_suites(&refnpu_recovery_suite, &refnpu_mmu_fault_suite);
