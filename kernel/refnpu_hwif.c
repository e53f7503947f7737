// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The register-level backend: struct refnpu_hw_ops implemented on the
 * register map, rings and completion records of refnpu_hw.h.
 *
 * Both buses use it: the PCI function (registers in BAR0, one MSI-X
 * vector per queue plus one for errors) and the in-kernel virtual device
 * (registers emulated by refnpu_virt.c). Only the register accessors and
 * the interrupt plumbing differ, so the virtual device exercises exactly
 * the code that drives the real one.
 *
 * Rings: each queue has REFNPU_RING_ENTRIES descriptors in coherent bus
 * memory, written only by the driver, and one completion record per slot.
 * The driver advances the tail doorbell; the device executes descriptors in
 * order, writes each completion record (its "done" word last) and raises
 * the queue's interrupt. The completion handler consumes records in ring
 * order from the driver's head, so it never reads a register on the fast
 * path. Head, tail and the records are protected by the core's per-queue
 * lock.
 */

#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/iopoll.h>

#include <drm/drm_print.h>

#include "refnpu_drv.h"
#include "refnpu_hw_ops.h"
#include "refnpu_hwif.h"
#include "refnpu_job.h"

#define REFNPU_RING_BYTES	(REFNPU_RING_ENTRIES * REFNPU_JOB_DESC_SIZE)
#define REFNPU_COMP_BYTES	(REFNPU_RING_ENTRIES * REFNPU_COMPLETION_SIZE)

static_assert(sizeof(struct refnpu_job_desc) == REFNPU_JOB_DESC_SIZE);
static_assert(sizeof(struct refnpu_completion) == REFNPU_COMPLETION_SIZE);
static_assert(REFNPU_RING_ENTRIES > REFNPU_QUEUE_JOBS);
static_assert((REFNPU_RING_ENTRIES & (REFNPU_RING_ENTRIES - 1)) == 0);
static_assert(REFNPU_RING_ENTRIES <= REFNPU_RING_MAX_ENTRIES);

static inline struct refnpu_hwif *to_hwif(struct refnpu_device *rdev)
{
	return rdev->hw;
}

static u32 hwif_read(struct refnpu_hwif *hw, u32 off)
{
	return hw->bus->read32(hw, off);
}

static void hwif_write(struct refnpu_hwif *hw, u32 off, u32 val)
{
	hw->bus->write32(hw, off, val);
}

static u64 hwif_read64(struct refnpu_hwif *hw, u32 off)
{
	u32 hi, lo;

	do {
		hi = hwif_read(hw, off + 4);
		lo = hwif_read(hw, off);
	} while (hi != hwif_read(hw, off + 4));

	return (u64)hi << 32 | lo;
}

/* 64-bit registers take effect half by half, low half first. */
static void hwif_write64(struct refnpu_hwif *hw, u32 off, u64 val)
{
	hwif_write(hw, off, lower_32_bits(val));
	hwif_write(hw, off + 4, upper_32_bits(val));
}

static u32 hwif_qread(struct refnpu_hwif *hw, unsigned int q, u32 off)
{
	return hwif_read(hw, REFNPU_REG_QUEUE(q, off));
}

static void hwif_qwrite(struct refnpu_hwif *hw, unsigned int q, u32 off,
			u32 val)
{
	hwif_write(hw, REFNPU_REG_QUEUE(q, off), val);
}

static u32 hwif_irq_mask_on(struct refnpu_hwif *hw)
{
	return ~(REFNPU_IRQ_ERROR |
		 REFNPU_GENMASK(hw->num_queues - 1, 0));
}

/* Program a queue's empty ring and enable it; the queue is idle. */
static void hwif_ring_start(struct refnpu_hwif *hw, unsigned int q)
{
	struct refnpu_hwif_ring *ring = &hw->rings[q];

	memset(ring->comp, 0, REFNPU_COMP_BYTES);
	ring->head = 0;
	ring->tail = 0;

	hwif_write64(hw, REFNPU_REG_QUEUE(q, REFNPU_Q_RING_BASE),
		     ring->desc_dma);
	hwif_qwrite(hw, q, REFNPU_Q_RING_SIZE, REFNPU_RING_ENTRIES);
	/* Timeouts are the scheduler's job, so recovery is the driver's. */
	hwif_qwrite(hw, q, REFNPU_Q_WATCHDOG_MS, 0);
	hwif_qwrite(hw, q, REFNPU_Q_TAIL, 0);
	hwif_qwrite(hw, q, REFNPU_Q_CTRL, REFNPU_Q_CTRL_ENABLE);
}

/*
 * Report every completion record the device wrote, in ring order. With
 * @after_reset, a record with REFNPU_ERR_ABORTED is the one a reset writes
 * for the job it stopped after the job had started: it only marks the job
 * (refnpu_job_stopped()), and the core decides its fate along with the
 * jobs that have no record (Documentation/driver.rst, "Recovery
 * contract"). Otherwise ABORTED is an ordinary (injected) status.
 */
static bool hwif_process(struct refnpu_hwif *hw, unsigned int q,
			 bool after_reset)
{
	struct refnpu_queue *queue = &hw->rdev->queues[q];
	struct refnpu_hwif_ring *ring = &hw->rings[q];
	bool any = false, cookie;

	lockdep_assert_held(&queue->lock);
	/* Signals job fences: see the rules in refnpu_job.c. */
	cookie = dma_fence_begin_signalling();

	while (ring->head != ring->tail) {
		struct refnpu_completion *c = &ring->comp[ring->head];
		struct refnpu_hw_done done;

		if ((__force u32)READ_ONCE(c->done) !=
		    (__force u32)cpu_to_le32(REFNPU_COMPLETION_DONE))
			break;
		/* The record's fields were written before its done word. */
		dma_rmb();

		done.seq = le64_to_cpu((__force __le64)c->seq);
		done.status = le32_to_cpu((__force __le32)c->status);
		done.fault_flags = le32_to_cpu((__force __le32)c->fault_flags);
		done.fault_va = le64_to_cpu((__force __le64)c->fault_va);
		done.start_ts = le64_to_cpu((__force __le64)c->start_ts);
		done.end_ts = le64_to_cpu((__force __le64)c->end_ts);
		WRITE_ONCE(c->done, 0);
		ring->head = (ring->head + 1) % REFNPU_RING_ENTRIES;
		any = true;

		if (after_reset && done.status == REFNPU_ERR_ABORTED)
			refnpu_job_stopped(queue, &done);
		else
			refnpu_job_done(queue, &done);
	}
	dma_fence_end_signalling(cookie);

	return any;
}

/**
 * refnpu_hwif_queue_irq() - completion interrupt of a queue
 * @hw: backend
 * @queue: queue index
 *
 * Runs in hard interrupt context; never sleeps.
 *
 * Return: IRQ_HANDLED when a completion was consumed, else IRQ_NONE.
 */
irqreturn_t refnpu_hwif_queue_irq(struct refnpu_hwif *hw, unsigned int queue)
{
	struct refnpu_queue *q;
	unsigned long flags;
	bool any;

	if (!READ_ONCE(hw->ready) || queue >= hw->num_queues)
		return IRQ_NONE;
	q = &hw->rdev->queues[queue];

	/* Acknowledge first: a completion after this raises a new one. */
	hwif_write(hw, REFNPU_REG_IRQ_STATUS, REFNPU_IRQ_QUEUE(queue));

	spin_lock_irqsave(&q->lock, flags);
	any = hwif_process(hw, queue, false);
	spin_unlock_irqrestore(&q->lock, flags);

	refnpu_dbg(hw->rdev, IRQ, "queue %u interrupt%s\n", queue,
		   any ? "" : " (spurious)");
	if (!any)
		atomic64_inc(&hw->rdev->spurious_irqs);

	return any ? IRQ_HANDLED : IRQ_NONE;
}

/**
 * refnpu_hwif_error_irq() - error interrupt of the device
 * @hw: backend
 *
 * Reports the fault record and any halted queue to the core. Runs in hard
 * interrupt context; never sleeps.
 *
 * Return: IRQ_HANDLED when there was something to report, else IRQ_NONE.
 */
irqreturn_t refnpu_hwif_error_irq(struct refnpu_hwif *hw)
{
	struct refnpu_device *rdev = hw->rdev;
	bool handled = false;
	unsigned int q;
	u32 status;

	if (!READ_ONCE(hw->ready))
		return IRQ_NONE;

	hwif_write(hw, REFNPU_REG_IRQ_STATUS, REFNPU_IRQ_ERROR);

	status = hwif_read(hw, REFNPU_REG_FAULT_STATUS);
	if (status & REFNPU_FAULT_STATUS_VALID) {
		struct refnpu_hw_fault f = {
			.ctx_id = hwif_read(hw, REFNPU_REG_FAULT_CTX),
			.queue = (status & REFNPU_FAULT_STATUS_QUEUE_MASK) >>
				 REFNPU_FAULT_STATUS_QUEUE_SHIFT,
			.code = (status & REFNPU_FAULT_STATUS_CODE_MASK) >>
				REFNPU_FAULT_STATUS_CODE_SHIFT,
			.flags = (status & REFNPU_FAULT_STATUS_FLAGS_MASK) >>
				 REFNPU_FAULT_STATUS_FLAGS_SHIFT,
			.va = hwif_read64(hw, REFNPU_REG_FAULT_ADDR),
			.seq = hwif_read64(hw, REFNPU_REG_FAULT_SEQ),
			.overflow = status & REFNPU_FAULT_STATUS_OVERFLOW,
		};

		hwif_write(hw, REFNPU_REG_FAULT_ACK, REFNPU_FAULT_ACK_GO);
		refnpu_fault_report(rdev, &f);
		handled = true;
	}

	for (q = 0; q < hw->num_queues; q++) {
		if (hwif_qread(hw, q, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_ERROR) {
			refnpu_err_ratelimited(rdev, "queue %u halted: error %u\n", q,
					       hwif_qread(hw, q, REFNPU_Q_ERROR));
			refnpu_queue_error(rdev, q);
			handled = true;
		}
	}

	if (!handled)
		atomic64_inc(&rdev->spurious_irqs);

	return handled ? IRQ_HANDLED : IRQ_NONE;
}

static int hwif_device_reset(struct refnpu_hwif *hw)
{
	u32 status;
	int ret;

	hwif_write(hw, REFNPU_REG_RESET, REFNPU_RESET_GO);
	ret = read_poll_timeout(hwif_read, status,
				status & REFNPU_STATUS_READY, 10,
				REFNPU_RESET_TIMEOUT_US, false, hw,
				REFNPU_REG_STATUS);
	if (ret)
		drm_err(&hw->rdev->drm, "device reset timed out\n");

	return ret;
}

static void hwif_free_rings(struct refnpu_hwif *hw)
{
	unsigned int q;

	for (q = 0; q < REFNPU_MAX_QUEUES; q++) {
		struct refnpu_hwif_ring *ring = &hw->rings[q];

		if (ring->desc)
			dma_free_coherent(hw->dev, REFNPU_RING_BYTES,
					  ring->desc, ring->desc_dma);
		if (ring->comp)
			dma_free_coherent(hw->dev, REFNPU_COMP_BYTES,
					  ring->comp, ring->comp_dma);
		ring->desc = NULL;
		ring->comp = NULL;
	}
}

static int hwif_init(struct refnpu_device *rdev)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	struct refnpu_device_info *info = &rdev->info;
	u32 id, levels;
	unsigned int q;
	int ret;

	hw->rdev = rdev;
	id = hwif_read(hw, REFNPU_REG_ID);
	info->version = hwif_read(hw, REFNPU_REG_VERSION);
	if (id != REFNPU_ID_VALUE ||
	    (info->version & REFNPU_VERSION_MAJOR_MASK) >>
	    REFNPU_VERSION_MAJOR_SHIFT != REFNPU_VERSION_MAJOR) {
		drm_err(&rdev->drm, "unsupported device: id 0x%08x version 0x%08x\n",
			id, info->version);
		return -ENODEV;
	}

	info->caps = hwif_read(hw, REFNPU_REG_CAPS);
	info->num_queues = min_t(u32, hwif_read(hw, REFNPU_REG_NUM_QUEUES),
				 REFNPU_MAX_QUEUES);
	info->mmu_caps = hwif_read(hw, REFNPU_REG_MMU_CAPS);
	info->max_contexts = hwif_read(hw, REFNPU_REG_MAX_CONTEXTS);
	info->timestamp_freq = hwif_read(hw, REFNPU_REG_TIMESTAMP_FREQ);
	hw->caps = info->caps;
	hw->num_queues = info->num_queues;

	levels = (info->mmu_caps & REFNPU_MMU_CAPS_LEVELS_MASK) >>
		 REFNPU_MMU_CAPS_LEVELS_SHIFT;
	if (!info->num_queues || levels != REFNPU_PT_LEVELS ||
	    (info->mmu_caps & REFNPU_MMU_CAPS_VA_BITS_MASK) > REFNPU_VA_BITS ||
	    !(info->mmu_caps & REFNPU_MMU_CAPS_PGSZ_4K)) {
		drm_err(&rdev->drm, "unsupported device: %u queues, MMU caps 0x%08x\n",
			info->num_queues, info->mmu_caps);
		return -ENODEV;
	}

	ret = hwif_device_reset(hw);
	if (ret)
		return ret;
	hwif_write(hw, REFNPU_REG_IRQ_MASK, ~0U);

	for (q = 0; q < hw->num_queues; q++) {
		struct refnpu_hwif_ring *ring = &hw->rings[q];

		ring->desc = dma_alloc_coherent(hw->dev, REFNPU_RING_BYTES,
						&ring->desc_dma, GFP_KERNEL);
		ring->comp = dma_alloc_coherent(hw->dev, REFNPU_COMP_BYTES,
						&ring->comp_dma, GFP_KERNEL);
		if (!ring->desc || !ring->comp) {
			hwif_free_rings(hw);
			return -ENOMEM;
		}
		hwif_ring_start(hw, q);
	}

	WRITE_ONCE(hw->ready, true);
	hwif_write(hw, REFNPU_REG_FAULT_ACK, REFNPU_FAULT_ACK_GO);
	hwif_write(hw, REFNPU_REG_IRQ_STATUS, ~0U);
	hwif_write(hw, REFNPU_REG_IRQ_MASK, hwif_irq_mask_on(hw));

	return 0;
}

static void hwif_fini(struct refnpu_device *rdev)
{
	struct refnpu_hwif *hw = to_hwif(rdev);

	if (!hw->ready)
		return;

	/*
	 * Quiesce the device before its rings go away; if it does not stop,
	 * keep it away from memory instead.
	 */
	hwif_write(hw, REFNPU_REG_IRQ_MASK, ~0U);
	if (hwif_device_reset(hw) && !hw->dma_off) {
		hw->bus->set_dma(hw, false);
		hw->dma_off = true;
	}
	WRITE_ONCE(hw->ready, false);
	hw->bus->sync_irqs(hw);
	hwif_free_rings(hw);
}

static void hwif_set_ctx_table(struct refnpu_device *rdev, dma_addr_t base,
			       u32 count)
{
	struct refnpu_hwif *hw = to_hwif(rdev);

	hw->ctx_table_dma = base;
	hw->ctx_count = count;
	hwif_write64(hw, REFNPU_REG_CTX_TABLE_BASE, base);
	hwif_write(hw, REFNPU_REG_CTX_TABLE_COUNT, count);
}

static int hwif_tlb_invalidate(struct refnpu_device *rdev, u32 ctx_id)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	u32 val;

	hwif_write(hw, REFNPU_REG_TLB_INVALIDATE,
		   ctx_id & REFNPU_TLB_INV_CTX_MASK);
	return read_poll_timeout(hwif_read, val, !(val & REFNPU_TLB_INV_BUSY),
				 1, REFNPU_TLB_INV_TIMEOUT_US, false, hw,
				 REFNPU_REG_TLB_INVALIDATE);
}

static void hwif_queue_submit(struct refnpu_device *rdev, unsigned int q,
			      const struct refnpu_hw_job *job)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	struct refnpu_hwif_ring *ring = &hw->rings[q];
	u32 slot = ring->tail, next = (slot + 1) % REFNPU_RING_ENTRIES;
	struct refnpu_job_desc *d = &ring->desc[slot];

	lockdep_assert_held(&rdev->queues[q].lock);
	if (drm_WARN_ON(&rdev->drm, next == ring->head))
		return;

	WRITE_ONCE(ring->comp[slot].done, 0);
	d->ctx_id = (__force u32)cpu_to_le32(job->ctx_id);
	d->flags = (__force u32)cpu_to_le32(REFNPU_JOB_F_IRQ);
	d->cmd_va = (__force u64)cpu_to_le64(job->cmd_va);
	d->cmd_size = (__force u64)cpu_to_le64(job->cmd_size);
	d->completion_addr = (__force u64)cpu_to_le64(ring->comp_dma +
						      slot * REFNPU_COMPLETION_SIZE);
	d->seq = (__force u64)cpu_to_le64(job->seq);
	memset(d->rsvd, 0, sizeof(d->rsvd));
	ring->tail = next;

	/* The register write orders the descriptor writes before it. */
	hwif_qwrite(hw, q, REFNPU_Q_TAIL, next);
}

static void hwif_queue_poll(struct refnpu_device *rdev, unsigned int q)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	unsigned long flags;

	spin_lock_irqsave(&rdev->queues[q].lock, flags);
	hwif_process(hw, q, false);
	spin_unlock_irqrestore(&rdev->queues[q].lock, flags);
}

/* After a queue reset: report the records written, restart the ring. */
static void hwif_queue_restart(struct refnpu_hwif *hw, unsigned int q)
{
	struct refnpu_queue *queue = &hw->rdev->queues[q];
	unsigned long flags;

	spin_lock_irqsave(&queue->lock, flags);
	hwif_process(hw, q, true);
	hwif_ring_start(hw, q);
	spin_unlock_irqrestore(&queue->lock, flags);
}

static int hwif_queue_reset(struct refnpu_device *rdev, unsigned int q)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	u32 status;
	int ret;

	hwif_qwrite(hw, q, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
	ret = read_poll_timeout(hwif_qread, status,
				!(status & REFNPU_Q_STATUS_RESETTING), 10,
				REFNPU_RESET_TIMEOUT_US, false, hw, q,
				REFNPU_Q_STATUS);
	if (ret)
		return ret;

	hwif_queue_restart(hw, q);
	return 0;
}

static int hwif_reset(struct refnpu_device *rdev)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	unsigned int q;
	int ret;

	ret = hwif_device_reset(hw);
	if (ret)
		return ret;

	hwif_write(hw, REFNPU_REG_IRQ_MASK, ~0U);
	hwif_set_ctx_table(rdev, hw->ctx_table_dma, hw->ctx_count);
	for (q = 0; q < hw->num_queues; q++)
		hwif_queue_restart(hw, q);
	/* Reset, its TLB empty, its rings restarted: memory is safe again. */
	if (hw->dma_off) {
		hw->bus->set_dma(hw, true);
		hw->dma_off = false;
	}
	hwif_write(hw, REFNPU_REG_FAULT_ACK, REFNPU_FAULT_ACK_GO);
	hwif_write(hw, REFNPU_REG_IRQ_STATUS, ~0U);
	hwif_write(hw, REFNPU_REG_IRQ_MASK, hwif_irq_mask_on(hw));

	return 0;
}

/*
 * A reset failed: the device may still be running jobs whose memory the
 * core is about to give back. Cut it off from memory first, then report
 * what it completed before that (a record it wrote is a job that ended),
 * and empty the rings; the core fails every job left.
 */
static void hwif_wedge(struct refnpu_device *rdev)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	unsigned long flags;
	unsigned int q;

	hwif_write(hw, REFNPU_REG_IRQ_MASK, ~0U);
	if (!hw->dma_off) {
		hw->bus->set_dma(hw, false);
		hw->dma_off = true;
	}
	hw->bus->sync_irqs(hw);

	for (q = 0; q < hw->num_queues; q++) {
		struct refnpu_queue *queue = &rdev->queues[q];
		struct refnpu_hwif_ring *ring = &hw->rings[q];

		spin_lock_irqsave(&queue->lock, flags);
		hwif_process(hw, q, true);
		memset(ring->comp, 0, REFNPU_COMP_BYTES);
		ring->head = 0;
		ring->tail = 0;
		spin_unlock_irqrestore(&queue->lock, flags);
	}
}

static u64 hwif_timestamp(struct refnpu_device *rdev)
{
	return hwif_read64(to_hwif(rdev), REFNPU_REG_TIMESTAMP);
}

static int hwif_inject(struct refnpu_device *rdev, unsigned int q,
		       const struct refnpu_hw_inject *inj)
{
	struct refnpu_hwif *hw = to_hwif(rdev);

	if (!(hw->caps & REFNPU_CAP_FAULT_INJECT))
		return -EOPNOTSUPP;
	if (inj->flags & ~REFNPU_DBG_INJECT_ALL)
		return -EINVAL;

	hwif_qwrite(hw, q, REFNPU_Q_DBG_ERROR, inj->error);
	hwif_qwrite(hw, q, REFNPU_Q_DBG_DELAY_US, inj->delay_us);
	hwif_write64(hw, REFNPU_REG_QUEUE(q, REFNPU_Q_DBG_FAULT_VA),
		     inj->fault_va);
	hwif_qwrite(hw, q, REFNPU_Q_DBG_INJECT, inj->flags);

	return 0;
}

static int hwif_spurious_irq(struct refnpu_device *rdev, unsigned int vector)
{
	struct refnpu_hwif *hw = to_hwif(rdev);

	if (!(hw->caps & REFNPU_CAP_FAULT_INJECT))
		return -EOPNOTSUPP;
	if (vector >= REFNPU_MSIX_NUM_VECTORS(hw->num_queues))
		return -EINVAL;

	hwif_write(hw, REFNPU_REG_DBG_SPURIOUS_IRQ, vector);

	return 0;
}

static void hwif_show(struct refnpu_device *rdev, struct drm_printer *p)
{
	struct refnpu_hwif *hw = to_hwif(rdev);
	unsigned int q;

	drm_printf(p, "status 0x%08x irq_status 0x%08x irq_mask 0x%08x\n",
		   hwif_read(hw, REFNPU_REG_STATUS),
		   hwif_read(hw, REFNPU_REG_IRQ_STATUS),
		   hwif_read(hw, REFNPU_REG_IRQ_MASK));
	drm_printf(p, "ctx_table 0x%llx count %u fault_status 0x%08x\n",
		   hwif_read64(hw, REFNPU_REG_CTX_TABLE_BASE),
		   hwif_read(hw, REFNPU_REG_CTX_TABLE_COUNT),
		   hwif_read(hw, REFNPU_REG_FAULT_STATUS));
	for (q = 0; q < hw->num_queues; q++) {
		drm_printf(p, "queue %u: status 0x%x head %u tail %u (driver %u/%u)",
			   q, hwif_qread(hw, q, REFNPU_Q_STATUS),
			   hwif_qread(hw, q, REFNPU_Q_HEAD),
			   hwif_qread(hw, q, REFNPU_Q_TAIL),
			   READ_ONCE(hw->rings[q].head),
			   READ_ONCE(hw->rings[q].tail));
		drm_printf(p, " error %u last_seq %llu\n",
			   hwif_qread(hw, q, REFNPU_Q_ERROR),
			   hwif_read64(hw, REFNPU_REG_QUEUE(q, REFNPU_Q_LAST_SEQ)));
	}
}

const struct refnpu_hw_ops refnpu_hwif_ops = {
	.init = hwif_init,
	.fini = hwif_fini,
	.set_ctx_table = hwif_set_ctx_table,
	.tlb_invalidate = hwif_tlb_invalidate,
	.queue_submit = hwif_queue_submit,
	.queue_poll = hwif_queue_poll,
	.queue_reset = hwif_queue_reset,
	.reset = hwif_reset,
	.wedge = hwif_wedge,
	.timestamp = hwif_timestamp,
	.inject = hwif_inject,
	.spurious_irq = hwif_spurious_irq,
	.show = hwif_show,
};
