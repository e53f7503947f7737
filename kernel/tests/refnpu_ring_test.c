// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * KUnit: ring space and wrap-around accounting, and job sequence numbers
 * (the hardware fences' seqnos) wrapping, on a virtual device. The
 * driver's view of a ring (its head and tail, under the queue lock) and
 * the device's (its HEAD, TAIL and LAST_SEQ registers) must agree once
 * every job completed.
 */

#include <kunit/test.h>

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/sizes.h>

#include "refnpu_drv.h"
#include "refnpu_hwif.h"
#include "refnpu_kunit.h"

/**
 * struct ring_fixture - a device, a file and a NOP command buffer
 * @rdev: device
 * @filp: file
 * @cmd: GEM handle of the command buffer
 */
struct ring_fixture {
	struct refnpu_device *rdev;
	struct file *filp;
	u32 cmd;
};

static int ring_init(struct kunit *test)
{
	struct ring_fixture *f;

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

static u64 ring_reg64(struct refnpu_device *rdev, unsigned int q, u32 off)
{
	u32 lo = refnpu_test_reg(rdev, REFNPU_REG_QUEUE(q, off));
	u32 hi = refnpu_test_reg(rdev, REFNPU_REG_QUEUE(q, off + 4));

	return (u64)hi << 32 | lo;
}

/* Submit @n NOP jobs to queue @qi without waiting, then wait for all. */
static void ring_run_jobs(struct kunit *test, unsigned int qi, unsigned int n)
{
	struct ring_fixture *f = test->priv;
	unsigned int i;
	s32 status;

	for (i = 0; i < n; i++)
		KUNIT_ASSERT_EQ_MSG(test, refnpu_test_submit(test, f->filp, qi,
							     f->cmd,
							     REFNPU_CMD_NOP_SIZE),
				    0, "job %u", i);
	KUNIT_ASSERT_EQ(test, refnpu_test_wait(test, f->filp, f->cmd,
					       REFNPU_TEST_WAIT_MS, &status), 0);
	KUNIT_EXPECT_EQ(test, status, 0);
}

/*
 * The queue's status once the device finished: it raises the interrupt
 * before it drops BUSY, so give it a moment.
 */
static u32 ring_status_idle(struct refnpu_device *rdev, unsigned int qi)
{
	unsigned long end = jiffies + msecs_to_jiffies(REFNPU_TEST_WAIT_MS);
	u32 st;

	for (;;) {
		st = refnpu_test_reg(rdev, REFNPU_REG_QUEUE(qi, REFNPU_Q_STATUS));
		if (!(st & REFNPU_Q_STATUS_BUSY) || time_after(jiffies, end))
			return st;
		usleep_range(100, 200);
	}
}

/* Both sides agree the ring of queue @qi is empty at slot @slot. */
static void expect_ring_idle(struct kunit *test, unsigned int qi, u32 slot)
{
	struct ring_fixture *f = test->priv;
	struct refnpu_hwif *hw = f->rdev->hw;
	struct refnpu_queue *q = &f->rdev->queues[qi];
	unsigned long flags;
	u32 head, tail;
	bool idle;

	spin_lock_irqsave(&q->lock, flags);
	head = hw->rings[qi].head;
	tail = hw->rings[qi].tail;
	idle = list_empty(&q->active);
	spin_unlock_irqrestore(&q->lock, flags);

	KUNIT_EXPECT_TRUE(test, idle);
	KUNIT_EXPECT_EQ(test, head, slot);
	KUNIT_EXPECT_EQ(test, tail, slot);
	KUNIT_EXPECT_EQ(test, refnpu_test_reg(f->rdev,
					      REFNPU_REG_QUEUE(qi, REFNPU_Q_HEAD)),
			slot);
	KUNIT_EXPECT_EQ(test, refnpu_test_reg(f->rdev,
					      REFNPU_REG_QUEUE(qi, REFNPU_Q_TAIL)),
			slot);
	KUNIT_EXPECT_EQ(test, ring_status_idle(f->rdev, qi),
			(u32)REFNPU_Q_STATUS_ENABLED);
}

static void ring_wraps_around(struct kunit *test)
{
	struct ring_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];
	unsigned int n = 3 * REFNPU_RING_ENTRIES + 5;

	/* More jobs than the ring has slots, most of them queued at once. */
	ring_run_jobs(test, 0, n);

	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.submitted), (s64)n);
	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.completed), (s64)n);
	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.failed), 0LL);
	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.timeouts), 0LL);
	expect_ring_idle(test, 0, n % REFNPU_RING_ENTRIES);
	KUNIT_EXPECT_EQ(test, ring_reg64(f->rdev, 0, REFNPU_Q_LAST_SEQ),
			(u64)n - 1);
	KUNIT_EXPECT_EQ(test, q->next_seq, (u64)n);
}

static void ring_exactly_full(struct kunit *test)
{
	struct ring_fixture *f = test->priv;
	struct refnpu_queue *q = &f->rdev->queues[0];

	/* Fill the ring to its last slot, then go around once more. */
	ring_run_jobs(test, 0, REFNPU_RING_ENTRIES - 1);
	expect_ring_idle(test, 0, REFNPU_RING_ENTRIES - 1);
	ring_run_jobs(test, 0, 2);
	expect_ring_idle(test, 0, 1);
	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.completed),
			(s64)REFNPU_RING_ENTRIES + 1);
}

static void ring_queues_independent(struct kunit *test)
{
	struct ring_fixture *f = test->priv;
	unsigned int qi;

	KUNIT_ASSERT_GE(test, f->rdev->info.num_queues, 2U);
	for (qi = 0; qi < f->rdev->info.num_queues; qi++)
		ring_run_jobs(test, qi, qi + 1);
	for (qi = 0; qi < f->rdev->info.num_queues; qi++) {
		expect_ring_idle(test, qi, qi + 1);
		KUNIT_EXPECT_EQ(test,
				atomic64_read(&f->rdev->queues[qi].stats.completed),
				(s64)qi + 1);
	}
}

/* Jobs whose sequence numbers run across @start's wrap point. */
static void fence_seq_wrap(struct kunit *test, u64 start)
{
	struct ring_fixture *f = test->priv;
	unsigned int qi = f->rdev->info.num_queues - 1;
	struct refnpu_queue *q = &f->rdev->queues[qi];
	unsigned long flags;
	bool idle;

	spin_lock_irqsave(&q->lock, flags);
	idle = list_empty(&q->active);
	q->next_seq = start;
	spin_unlock_irqrestore(&q->lock, flags);
	KUNIT_ASSERT_TRUE(test, idle);

	ring_run_jobs(test, qi, 6);

	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.completed), 6LL);
	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.failed), 0LL);
	KUNIT_EXPECT_EQ(test, atomic64_read(&q->stats.timeouts), 0LL);
	KUNIT_EXPECT_EQ(test, q->next_seq, start + 6);
	/* The device saw the full 64-bit number of the last job. */
	KUNIT_EXPECT_EQ(test, ring_reg64(f->rdev, qi, REFNPU_Q_LAST_SEQ),
			start + 5);
	expect_ring_idle(test, qi, 6);
}

static void fence_seq_wraps_32bit(struct kunit *test)
{
	/* dma-fence compares the low 32 bits of seqnos unless told not to. */
	fence_seq_wrap(test, U32_MAX - 2);
}

static void fence_seq_wraps_64bit(struct kunit *test)
{
	fence_seq_wrap(test, U64_MAX - 2);
}

static struct kunit_case refnpu_ring_cases[] = {
	KUNIT_CASE(ring_wraps_around),
	KUNIT_CASE(ring_exactly_full),
	KUNIT_CASE(ring_queues_independent),
	{}
};

static struct kunit_suite refnpu_ring_suite = {
	.name = "refnpu_ring",
	.init = ring_init,
	.test_cases = refnpu_ring_cases,
};

static struct kunit_case refnpu_fence_seq_cases[] = {
	KUNIT_CASE(fence_seq_wraps_32bit),
	KUNIT_CASE(fence_seq_wraps_64bit),
	{}
};

static struct kunit_suite refnpu_fence_seq_suite = {
	.name = "refnpu_fence_seq",
	.init = ring_init,
	.test_cases = refnpu_fence_seq_cases,
};

kunit_test_suites(&refnpu_ring_suite, &refnpu_fence_seq_suite);
