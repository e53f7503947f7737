// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The in-kernel virtual device: a refnpu emulated inside the kernel, so
 * the driver runs without the QEMU device (like vgem or vkms).
 *
 * virt_devices=N creates N platform devices. Each emulates the register
 * file of refnpu_hw.h behind the same register-level backend the PCI
 * function uses (refnpu_hwif.c): the driver writes descriptors into the
 * same rings, the emulation walks the same context table and page tables,
 * runs the command buffer with the shared compute engine and writes the
 * same completion and fault records, then "raises" the interrupt through
 * an irq_work, i.e. in hard interrupt context like an MSI-X vector.
 *
 * This file follows the QEMU model (qemu/device/refnpu.c) closely; the
 * hardware behaviour itself is specified in Documentation/hardware.rst.
 *
 * Threading: MMIO is a function call under the register locks. Each queue
 * runs its jobs on an unbound workqueue item; floating-point work runs
 * under kernel_fpu_begin() in chunks of REFNPU_ENGINE_CHUNK_WORK with a
 * rescheduling point between chunks. Where the kernel cannot use the FPU
 * (no CONFIG_ARCH_HAS_KERNEL_FPU_SUPPORT) the engine is built without
 * floating point and the device reports only the integer capabilities.
 * Locks: a queue's lock may be taken before the device lock, never the
 * reverse.
 *
 * Memory: a platform device has no IOMMU, so bus addresses are physical
 * addresses (dma_to_phys()); accesses outside RAM fail as DMA errors.
 */

#include <linux/delay.h>
#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/irq_work.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#if IS_ENABLED(CONFIG_ARCH_HAS_KERNEL_FPU_SUPPORT)
#include <linux/fpu.h>
#endif

#include "refnpu_drv.h"
#include "refnpu_engine.h"
#include "refnpu_hw_ops.h"
#include "refnpu_hwif.h"
#include "refnpu_mmu_walk.h"

#define REFNPU_VIRT_NAME	"refnpu-virt"
#define REFNPU_VIRT_MAX		8

static unsigned int virt_devices;
module_param(virt_devices, uint, 0444);
MODULE_PARM_DESC(virt_devices,
		 "Number of in-kernel virtual refnpu devices to create (default: 0, max: 8)");

static unsigned int virt_queues = REFNPU_DEFAULT_QUEUES;
module_param(virt_queues, uint, 0444);
MODULE_PARM_DESC(virt_queues,
		 "Hardware queues of each virtual device (default: 4, 1 to 16)");

static bool virt_fault_inject = true;
module_param(virt_fault_inject, bool, 0444);
MODULE_PARM_DESC(virt_fault_inject,
		 "Virtual devices expose the fault-injection registers (default: true)");

struct refnpu_virt;

/* One-shot fault injections latched when a job is fetched. */
struct refnpu_virt_inject {
	u32 bits;
	u32 error;
	u32 delay_us;
	u64 fault_va;
};

/* The job a queue is running: private to the queue's worker. */
struct refnpu_virt_job {
	struct refnpu_virt_queue *q;
	u32 ctx;
	u64 pt_root;
	u64 seq;
	u64 start_ns;
	u32 watchdog_ms;
	struct refnpu_virt_inject inj;
};

/**
 * struct refnpu_virt_queue - an emulated hardware queue
 * @v: device
 * @idx: queue index
 * @lock: protects the registers and the worker state below
 * @work: the queue's worker: runs descriptors and resets
 * @waitq: woken on abort, for a job waiting (hang or delay injection)
 * @ring_base: REFNPU_Q_RING_BASE
 * @ring_size: REFNPU_Q_RING_SIZE
 * @ctrl: REFNPU_Q_CTRL
 * @tail: REFNPU_Q_TAIL
 * @head: REFNPU_Q_HEAD
 * @error: REFNPU_Q_ERROR
 * @last_seq: REFNPU_Q_LAST_SEQ
 * @watchdog_ms: REFNPU_Q_WATCHDOG_MS
 * @dbg: armed fault injection (REFNPU_Q_DBG_*)
 * @busy: a job is running
 * @reset_req: a reset is pending (REFNPU_Q_STATUS_RESETTING)
 * @reset_global: the reset is part of a device reset
 * @stop: the device is going away
 * @abort: the running job must stop
 * @tlb: translations cached by the worker (worker-private)
 */
struct refnpu_virt_queue {
	struct refnpu_virt *v;
	unsigned int idx;
	spinlock_t lock; /* registers and worker state */
	struct work_struct work;
	wait_queue_head_t waitq;
	u64 ring_base;
	u32 ring_size;
	u32 ctrl;
	u32 tail;
	u32 head;
	u32 error;
	u64 last_seq;
	u32 watchdog_ms;
	struct refnpu_virt_inject dbg;
	bool busy;
	bool reset_req;
	bool reset_global;
	bool stop;
	bool abort;
	struct refnpu_tlb tlb;
};

/**
 * struct refnpu_virt - an emulated refnpu device
 * @hw: the register-level backend driving it, embedded
 * @pdev: platform device
 * @lock: protects the global registers
 * @irq_status: REFNPU_REG_IRQ_STATUS
 * @irq_mask: REFNPU_REG_IRQ_MASK
 * @ctx_table_base: REFNPU_REG_CTX_TABLE_BASE
 * @ctx_table_count: REFNPU_REG_CTX_TABLE_COUNT
 * @fault_status: REFNPU_REG_FAULT_STATUS
 * @fault_ctx: REFNPU_REG_FAULT_CTX
 * @fault_addr: REFNPU_REG_FAULT_ADDR
 * @fault_seq: REFNPU_REG_FAULT_SEQ
 * @scratch: REFNPU_REG_SCRATCH
 * @resetting: a device reset is in progress
 * @reset_pending: queues that still have to reset
 * @caps: REFNPU_REG_CAPS
 * @num_queues: REFNPU_REG_NUM_QUEUES
 * @clock_base: ktime_get_ns() when the device was created
 * @tlb_gen: bumped by every TLB invalidation; queues flush their TLB when
 *	it changed
 * @wq: runs the queue workers
 * @irq_pending: vectors to notify from @irq_work
 * @irq_work: delivers the interrupts in hard interrupt context
 * @queues: the queues
 */
struct refnpu_virt {
	struct refnpu_hwif hw;
	struct platform_device *pdev;
	spinlock_t lock; /* global registers */
	u32 irq_status;
	u32 irq_mask;
	u64 ctx_table_base;
	u32 ctx_table_count;
	u32 fault_status;
	u32 fault_ctx;
	u64 fault_addr;
	u64 fault_seq;
	u32 scratch;
	bool resetting;
	unsigned int reset_pending;
	u32 caps;
	u32 num_queues;
	u64 clock_base;
	atomic_t tlb_gen;
	struct workqueue_struct *wq;
	unsigned long irq_pending;
	struct irq_work irq_work;
	struct refnpu_virt_queue queues[REFNPU_MAX_QUEUES];
};

static struct platform_device *refnpu_virt_pdevs[REFNPU_VIRT_MAX];

static inline struct refnpu_virt *to_virt(struct refnpu_hwif *hw)
{
	return container_of(hw, struct refnpu_virt, hw);
}

/* Device time: nanoseconds since the device was created. */
static u64 virt_now(struct refnpu_virt *v)
{
	return ktime_get_ns() - v->clock_base;
}

/* ------------------------------------------------------------------------
 * Interrupts
 */

static void virt_send_vector(struct refnpu_virt *v, unsigned int vector)
{
	set_bit(vector, &v->irq_pending);
	irq_work_queue(&v->irq_work);
}

static void virt_irq_work(struct irq_work *work)
{
	struct refnpu_virt *v = container_of(work, struct refnpu_virt, irq_work);
	unsigned long pending = xchg(&v->irq_pending, 0);
	unsigned int vector;

	for_each_set_bit(vector, &pending, REFNPU_MSIX_NUM_VECTORS(REFNPU_MAX_QUEUES)) {
		if (vector == REFNPU_MSIX_VEC_ERROR)
			refnpu_hwif_error_irq(&v->hw);
		else
			refnpu_hwif_queue_irq(&v->hw,
					      vector - REFNPU_MSIX_VEC_QUEUE(0));
	}
}

/* Latch @bits in IRQ_STATUS and notify unmasked vectors; v->lock held. */
static void virt_irq_raise_locked(struct refnpu_virt *v, u32 bits, bool send)
{
	u32 fresh = bits & ~v->irq_mask;
	unsigned int q;

	lockdep_assert_held(&v->lock);

	v->irq_status |= bits;
	if (!send)
		return;
	if (fresh & REFNPU_IRQ_ERROR)
		virt_send_vector(v, REFNPU_MSIX_VEC_ERROR);
	for (q = 0; q < v->num_queues; q++)
		if (fresh & REFNPU_IRQ_QUEUE(q))
			virt_send_vector(v, REFNPU_MSIX_VEC_QUEUE(q));
}

/* Record a fault (first one wins) and raise the error interrupt. */
static void virt_record_fault(struct refnpu_virt *v, unsigned int queue,
			      u32 code, u32 flags, u32 ctx, u64 va, u64 seq)
{
	unsigned long irqflags;

	spin_lock_irqsave(&v->lock, irqflags);
	if (v->fault_status & REFNPU_FAULT_STATUS_VALID) {
		v->fault_status |= REFNPU_FAULT_STATUS_OVERFLOW;
	} else {
		v->fault_status = REFNPU_FAULT_STATUS_VALID |
			((flags << REFNPU_FAULT_STATUS_FLAGS_SHIFT) &
			 REFNPU_FAULT_STATUS_FLAGS_MASK) |
			((queue << REFNPU_FAULT_STATUS_QUEUE_SHIFT) &
			 REFNPU_FAULT_STATUS_QUEUE_MASK) |
			((code << REFNPU_FAULT_STATUS_CODE_SHIFT) &
			 REFNPU_FAULT_STATUS_CODE_MASK);
		v->fault_ctx = ctx;
		v->fault_addr = va;
		v->fault_seq = seq;
	}
	virt_irq_raise_locked(v, REFNPU_IRQ_ERROR, true);
	spin_unlock_irqrestore(&v->lock, irqflags);
}

/* ------------------------------------------------------------------------
 * Bus memory
 */

/* Copy to or from bus memory; REFNPU_ERR_DMA outside RAM. */
static u32 virt_dma_rw(struct refnpu_virt *v, u64 addr, void *buf, u64 len,
		       bool write)
{
	struct device *dev = &v->pdev->dev;

	while (len) {
		u64 chunk = min_t(u64, len, PAGE_SIZE - offset_in_page(addr));
		phys_addr_t phys = dma_to_phys(dev, addr);
		void *p;

		if (phys == (phys_addr_t)DMA_MAPPING_ERROR ||
		    !pfn_valid(PHYS_PFN(phys)))
			return REFNPU_ERR_DMA;
		p = phys_to_virt(phys);
		if (write)
			memcpy(p, buf, chunk);
		else
			memcpy(buf, p, chunk);
		addr += chunk;
		buf += chunk;
		len -= chunk;
	}

	return REFNPU_ERR_NONE;
}

/* Page-table reads of the shared walker (refnpu_mmu_walk.c). */
static int virt_read64(void *opaque, u64 addr, u64 *val)
{
	__le64 le;
	u32 st = virt_dma_rw(opaque, addr, &le, sizeof(le), false);

	*val = le64_to_cpu(le);
	return st;
}

/* ------------------------------------------------------------------------
 * Device MMU
 */

static u32 virt_job_check(struct refnpu_virt_job *job)
{
	if (READ_ONCE(job->q->abort))
		return REFNPU_ERR_ABORTED;
	if (job->watchdog_ms &&
	    virt_now(job->q->v) - job->start_ns >=
	    (u64)job->watchdog_ms * NSEC_PER_MSEC)
		return REFNPU_ERR_TIMEOUT;
	return REFNPU_ERR_NONE;
}

/*
 * Translate @va in the job's context through the queue's TLB. On success
 * returns the bus address in *@pa and the bytes left in the page in *@room.
 */
static u32 virt_translate(struct refnpu_virt_job *job, u64 va, bool write,
			  u64 *pa, u64 *room)
{
	struct refnpu_virt *v = job->q->v;

	if ((job->inj.bits & REFNPU_DBG_INJECT_MMU_FAULT) &&
	    (va >> REFNPU_PAGE_SHIFT) == (job->inj.fault_va >> REFNPU_PAGE_SHIFT))
		return REFNPU_ERR_MMU_UNMAPPED;

	return refnpu_mmu_translate(&job->q->tlb, atomic_read(&v->tlb_gen),
				    job->ctx, job->pt_root, va, write,
				    virt_read64, v, pa, room);
}

static u32 virt_job_rw(struct refnpu_virt_job *job, u64 va, void *buf, u64 len,
		       bool write, u64 *fault_va)
{
	while (len) {
		u64 pa, room, chunk;
		u32 st;

		st = virt_translate(job, va, write, &pa, &room);
		if (st) {
			*fault_va = va;
			return st;
		}
		chunk = min(len, room);
		st = virt_dma_rw(job->q->v, pa, buf, chunk, write);
		if (st) {
			*fault_va = va;
			return st;
		}
		va += chunk;
		buf += chunk;
		len -= chunk;
	}

	return REFNPU_ERR_NONE;
}

/* ------------------------------------------------------------------------
 * Engine callbacks; called with the FPU held (kernel_fpu_begin()).
 */

static __u32 virt_eng_read(void *opaque, __u64 va, void *buf, __u64 len,
			   __u64 *fault_va)
{
	return virt_job_rw(opaque, va, buf, len, false, fault_va);
}

static __u32 virt_eng_write(void *opaque, __u64 va, const void *buf,
			    __u64 len, __u64 *fault_va)
{
	return virt_job_rw(opaque, va, (void *)buf, len, true, fault_va);
}

/* Between chunks of work: drop the FPU and let others run. */
static __u32 virt_eng_checkpoint(void *opaque)
{
#if REFNPU_ENGINE_HAS_FP
	kernel_fpu_end();
	cond_resched();
	kernel_fpu_begin();
#else
	cond_resched();
#endif

	return virt_job_check(opaque);
}

/* Run a command buffer, in an FPU section when the engine has FP code. */
static void virt_engine_run(const struct refnpu_engine_env *env, u64 cmd_va,
			    u64 cmd_size, struct refnpu_engine_result *res)
{
#if REFNPU_ENGINE_HAS_FP
	kernel_fpu_begin();
	refnpu_engine_run(env, cmd_va, cmd_size, res);
	kernel_fpu_end();
#else
	refnpu_engine_run(env, cmd_va, cmd_size, res);
#endif
}

/* Wait up to @us microseconds (forever when 0) for an abort. */
static u32 virt_job_wait(struct refnpu_virt_job *job, u64 us)
{
	struct refnpu_virt_queue *q = job->q;
	u64 deadline = virt_now(q->v) + us * NSEC_PER_USEC;

	for (;;) {
		u64 now = virt_now(q->v), left_ns = 100 * NSEC_PER_MSEC;
		u32 st = virt_job_check(job);

		if (st || READ_ONCE(q->stop))
			return st ? st : REFNPU_ERR_ABORTED;
		if (us) {
			if (now >= deadline)
				return REFNPU_ERR_NONE;
			left_ns = min(left_ns, deadline - now);
		}
		wait_event_idle_timeout(q->waitq, READ_ONCE(q->abort) ||
					READ_ONCE(q->stop),
					max(nsecs_to_jiffies(left_ns), 1UL));
	}
}

/* ------------------------------------------------------------------------
 * Queues
 */

static u32 virt_write_completion(struct refnpu_virt *v, u64 addr,
				 const struct refnpu_completion *c)
{
	__le32 done = cpu_to_le32(REFNPU_COMPLETION_DONE);
	u32 st;

	st = virt_dma_rw(v, addr, (void *)c, sizeof(*c), true);
	if (st)
		return st;
	/* The done word is written last, after the rest of the record. */
	wmb();
	return virt_dma_rw(v, addr + offsetof(struct refnpu_completion, done),
			   &done, sizeof(done), true);
}

/* Halt the queue: a ring-level error, no completion can be written. */
static void virt_queue_halt(struct refnpu_virt_queue *q, u32 code, u32 flags,
			    u32 ctx, u64 addr, u64 seq)
{
	unsigned long irqflags;

	spin_lock_irqsave(&q->lock, irqflags);
	if (!q->error)
		q->error = code;
	spin_unlock_irqrestore(&q->lock, irqflags);
	virt_record_fault(q->v, q->idx, code, flags | REFNPU_FAULT_F_RING, ctx,
			  addr, seq);
}

static void virt_le_desc(struct refnpu_job_desc *d)
{
	d->ctx_id = le32_to_cpu((__force __le32)d->ctx_id);
	d->flags = le32_to_cpu((__force __le32)d->flags);
	d->cmd_va = le64_to_cpu((__force __le64)d->cmd_va);
	d->cmd_size = le64_to_cpu((__force __le64)d->cmd_size);
	d->completion_addr = le64_to_cpu((__force __le64)d->completion_addr);
	d->seq = le64_to_cpu((__force __le64)d->seq);
}

/* Look up the job's context; sets job->pt_root. */
static u32 virt_job_context(struct refnpu_virt *v, struct refnpu_virt_job *job)
{
	struct refnpu_ctx_entry ce;
	unsigned long irqflags;
	u64 base;
	u32 count;

	spin_lock_irqsave(&v->lock, irqflags);
	base = v->ctx_table_base;
	count = v->ctx_table_count;
	spin_unlock_irqrestore(&v->lock, irqflags);

	if (job->ctx >= count || job->ctx >= REFNPU_MAX_CONTEXTS)
		return REFNPU_ERR_INVALID_CONTEXT;
	if (virt_dma_rw(v, base + (u64)job->ctx * REFNPU_CTX_ENTRY_SIZE, &ce,
			sizeof(ce), false))
		return REFNPU_ERR_MMU_WALK;

	ce.pt_root = le64_to_cpu((__force __le64)ce.pt_root);
	ce.flags = le32_to_cpu((__force __le32)ce.flags);
	ce.rsvd = le32_to_cpu((__force __le32)ce.rsvd);
	if (refnpu_ctx_entry_check(&ce))
		return REFNPU_ERR_INVALID_CONTEXT;

	job->pt_root = ce.pt_root;
	return REFNPU_ERR_NONE;
}

/* Run the descriptor at ring index @idx; false when the queue halted. */
static bool virt_run_job(struct refnpu_virt_queue *q, u32 idx,
			 const struct refnpu_virt_inject *inj, u32 watchdog_ms,
			 u64 ring_base)
{
	struct refnpu_virt *v = q->v;
	struct refnpu_virt_job job = {
		.q = q,
		.start_ns = virt_now(v),
		.watchdog_ms = watchdog_ms,
		.inj = *inj,
	};
	struct refnpu_engine_env env = {
		.opaque = &job,
		.read = virt_eng_read,
		.write = virt_eng_write,
		.checkpoint = virt_eng_checkpoint,
	};
	struct refnpu_engine_result res = { 0 };
	struct refnpu_completion comp = { 0 };
	u64 desc_addr = ring_base + (u64)idx * REFNPU_JOB_DESC_SIZE;
	unsigned long irqflags;
	struct refnpu_job_desc d;
	bool send_irq = true;
	u32 st;

	if (virt_dma_rw(v, desc_addr, &d, sizeof(d), false)) {
		virt_queue_halt(q, REFNPU_ERR_DMA, 0, 0, desc_addr, 0);
		return false;
	}
	virt_le_desc(&d);
	job.seq = d.seq;
	job.ctx = d.ctx_id;

	if (d.completion_addr % REFNPU_COMPLETION_ALIGN) {
		virt_queue_halt(q, REFNPU_ERR_BAD_DESCRIPTOR, 0, d.ctx_id,
				d.completion_addr, d.seq);
		return false;
	}

	res.status = refnpu_job_desc_check(&d);
	if (res.status) {
		res.fault_flags = REFNPU_FAULT_F_RING;
		goto complete;
	}

	res.status = virt_job_context(v, &job);
	if (res.status) {
		res.fault_flags = REFNPU_FAULT_F_RING;
		goto complete;
	}

	/* Stray DMA: a burst to a bus address, no device MMU; no IOMMU here. */
	if (inj->bits & REFNPU_DBG_INJECT_STRAY_DMA) {
		u8 burst[REFNPU_DBG_STRAY_DMA_BYTES];

		memset(burst, REFNPU_DBG_STRAY_DMA_PATTERN, sizeof(burst));
		res.status = virt_dma_rw(v, inj->fault_va, burst, sizeof(burst),
					 true);
		if (res.status) {
			res.fault_flags = REFNPU_FAULT_F_RING |
					  REFNPU_FAULT_F_WRITE;
			res.fault_va = inj->fault_va;
			goto complete;
		}
	}

	if (inj->bits & REFNPU_DBG_INJECT_HANG) {
		res.status = virt_job_wait(&job, 0);
		goto complete;
	}
	if (inj->bits & REFNPU_DBG_INJECT_ERROR) {
		res.status = inj->error && inj->error < REFNPU_ERR_COUNT ?
			     inj->error : REFNPU_ERR_INJECTED;
		goto complete;
	}

	virt_engine_run(&env, d.cmd_va, d.cmd_size, &res);

	if (!res.status && (inj->bits & REFNPU_DBG_INJECT_DELAY) && inj->delay_us) {
		st = virt_job_wait(&job, inj->delay_us);
		if (st)
			res.status = st;
	}

complete:
	/*
	 * Stopped by a reset: the job leaves no trace, no completion record
	 * and no interrupt; the reset clears the ring.
	 */
	if (res.status == REFNPU_ERR_ABORTED)
		return true;

	comp.status = (__force u32)cpu_to_le32(res.status);
	comp.fault_flags = (__force u32)cpu_to_le32(res.fault_flags);
	comp.seq = (__force u64)cpu_to_le64(d.seq);
	comp.fault_va = (__force u64)cpu_to_le64(res.fault_va);
	comp.cmd_index = (__force u32)cpu_to_le32(res.cmd_index);
	comp.cmd_offset = (__force u32)cpu_to_le32(res.cmd_offset);
	comp.start_ts = (__force u64)cpu_to_le64(job.start_ns);
	comp.end_ts = (__force u64)cpu_to_le64(virt_now(v));
	comp.ctx_id = (__force u32)cpu_to_le32(d.ctx_id);

	if (virt_write_completion(v, d.completion_addr, &comp))
		virt_record_fault(v, q->idx, REFNPU_ERR_DMA,
				  REFNPU_FAULT_F_RING | REFNPU_FAULT_F_WRITE,
				  d.ctx_id, d.completion_addr, d.seq);
	if (res.status)
		virt_record_fault(v, q->idx, res.status, res.fault_flags,
				  d.ctx_id, res.fault_va, d.seq);

	if (inj->bits & REFNPU_DBG_INJECT_DROP_IRQ)
		send_irq = false;

	spin_lock_irqsave(&q->lock, irqflags);
	q->last_seq = d.seq;
	q->head = (idx + 1) & (q->ring_size - 1);
	if ((d.flags & REFNPU_JOB_F_IRQ) && !q->reset_req) {
		spin_lock(&v->lock);
		virt_irq_raise_locked(v, REFNPU_IRQ_QUEUE(q->idx), send_irq);
		spin_unlock(&v->lock);
	}
	spin_unlock_irqrestore(&q->lock, irqflags);

	return true;
}

/* Reset the queue's registers; q->lock held, no job running. */
static void virt_queue_reset_locked(struct refnpu_virt_queue *q)
{
	q->ring_base = 0;
	q->ring_size = 0;
	q->ctrl = 0;
	q->tail = 0;
	q->head = 0;
	q->error = 0;
	q->last_seq = 0;
	q->watchdog_ms = 0;
	memset(&q->dbg, 0, sizeof(q->dbg));
	refnpu_tlb_flush(&q->tlb);
}

/* Reset the global registers; v->lock held, every queue idle. */
static void virt_global_reset_locked(struct refnpu_virt *v)
{
	v->irq_status = 0;
	v->irq_mask = 0;
	v->ctx_table_base = 0;
	v->ctx_table_count = 0;
	v->fault_status = 0;
	v->fault_ctx = 0;
	v->fault_addr = 0;
	v->fault_seq = 0;
	v->scratch = 0;
	v->irq_pending = 0;
	atomic_inc(&v->tlb_gen);
}

/* Worker: carry out a requested reset; q->lock held. */
static void virt_queue_do_reset(struct refnpu_virt_queue *q)
{
	struct refnpu_virt *v = q->v;
	bool global = q->reset_global;

	virt_queue_reset_locked(q);
	q->reset_req = false;
	q->reset_global = false;
	WRITE_ONCE(q->abort, false);

	spin_lock(&v->lock);
	v->irq_status &= ~REFNPU_IRQ_QUEUE(q->idx);
	if (global && v->reset_pending && --v->reset_pending == 0) {
		virt_global_reset_locked(v);
		v->resetting = false;
	}
	spin_unlock(&v->lock);
}

static void virt_queue_work(struct work_struct *work)
{
	struct refnpu_virt_queue *q =
		container_of(work, struct refnpu_virt_queue, work);

	spin_lock_irq(&q->lock);
	for (;;) {
		struct refnpu_virt_inject inj;
		u32 idx, watchdog_ms;
		u64 ring_base;

		if (q->reset_req) {
			virt_queue_do_reset(q);
			continue;
		}
		if (q->stop || !(q->ctrl & REFNPU_Q_CTRL_ENABLE) || q->error)
			break;
		if (!refnpu_ring_valid(q->ring_base, q->ring_size, q->tail)) {
			u64 base = q->ring_base;

			q->error = REFNPU_ERR_RING;
			spin_unlock_irq(&q->lock);
			virt_record_fault(q->v, q->idx, REFNPU_ERR_RING,
					  REFNPU_FAULT_F_RING, 0, base, 0);
			spin_lock_irq(&q->lock);
			continue;
		}
		if (q->head == q->tail)
			break;

		idx = q->head;
		ring_base = q->ring_base;
		watchdog_ms = q->watchdog_ms;
		inj = q->dbg;
		q->dbg.bits = 0;
		q->busy = true;
		spin_unlock_irq(&q->lock);

		virt_run_job(q, idx, &inj, watchdog_ms, ring_base);
		cond_resched();

		spin_lock_irq(&q->lock);
		q->busy = false;
	}
	spin_unlock_irq(&q->lock);
}

static void virt_queue_kick(struct refnpu_virt_queue *q)
{
	queue_work(q->v->wq, &q->work);
}

/* Ask the queue's worker to abort its job and reset the queue. */
static void virt_queue_request_reset(struct refnpu_virt_queue *q, bool global)
{
	unsigned long irqflags;

	spin_lock_irqsave(&q->lock, irqflags);
	q->reset_req = true;
	q->reset_global |= global;
	WRITE_ONCE(q->abort, true);
	spin_unlock_irqrestore(&q->lock, irqflags);
	wake_up_all(&q->waitq);
	virt_queue_kick(q);
}

static void virt_request_reset(struct refnpu_virt *v)
{
	unsigned long irqflags;
	unsigned int i;

	spin_lock_irqsave(&v->lock, irqflags);
	if (v->resetting) {
		spin_unlock_irqrestore(&v->lock, irqflags);
		return;
	}
	v->resetting = true;
	v->reset_pending = v->num_queues;
	spin_unlock_irqrestore(&v->lock, irqflags);

	for (i = 0; i < v->num_queues; i++)
		virt_queue_request_reset(&v->queues[i], true);
}

/* ------------------------------------------------------------------------
 * Registers
 */

static u32 virt_queue_read32(struct refnpu_virt *v, struct refnpu_virt_queue *q,
			     u32 off)
{
	bool inject = v->caps & REFNPU_CAP_FAULT_INJECT;
	unsigned long irqflags;
	u32 val = 0;

	spin_lock_irqsave(&q->lock, irqflags);
	switch (off) {
	case REFNPU_Q_RING_BASE:
		val = lower_32_bits(q->ring_base);
		break;
	case REFNPU_Q_RING_BASE + 4:
		val = upper_32_bits(q->ring_base);
		break;
	case REFNPU_Q_RING_SIZE:
		val = q->ring_size;
		break;
	case REFNPU_Q_CTRL:
		val = q->ctrl;
		break;
	case REFNPU_Q_TAIL:
		val = q->tail;
		break;
	case REFNPU_Q_HEAD:
		val = q->head;
		break;
	case REFNPU_Q_STATUS:
		if (q->ctrl & REFNPU_Q_CTRL_ENABLE)
			val |= REFNPU_Q_STATUS_ENABLED;
		if (q->busy || (!q->error && (q->ctrl & REFNPU_Q_CTRL_ENABLE) &&
				q->head != q->tail))
			val |= REFNPU_Q_STATUS_BUSY;
		if (q->error)
			val |= REFNPU_Q_STATUS_ERROR;
		if (q->reset_req)
			val |= REFNPU_Q_STATUS_RESETTING;
		break;
	case REFNPU_Q_WATCHDOG_MS:
		val = q->watchdog_ms;
		break;
	case REFNPU_Q_ERROR:
		val = q->error;
		break;
	case REFNPU_Q_LAST_SEQ:
		val = lower_32_bits(q->last_seq);
		break;
	case REFNPU_Q_LAST_SEQ + 4:
		val = upper_32_bits(q->last_seq);
		break;
	case REFNPU_Q_DBG_INJECT:
		val = inject ? q->dbg.bits : 0;
		break;
	case REFNPU_Q_DBG_ERROR:
		val = inject ? q->dbg.error : 0;
		break;
	case REFNPU_Q_DBG_DELAY_US:
		val = inject ? q->dbg.delay_us : 0;
		break;
	case REFNPU_Q_DBG_FAULT_VA:
		val = inject ? lower_32_bits(q->dbg.fault_va) : 0;
		break;
	case REFNPU_Q_DBG_FAULT_VA + 4:
		val = inject ? upper_32_bits(q->dbg.fault_va) : 0;
		break;
	default:
		break;
	}
	spin_unlock_irqrestore(&q->lock, irqflags);

	return val;
}

static u32 virt_read32(struct refnpu_hwif *hw, u32 addr)
{
	struct refnpu_virt *v = to_virt(hw);
	unsigned long irqflags;
	unsigned int i;
	u64 ts;
	u32 val = 0;

	if (addr >= REFNPU_QUEUE_BLOCK_BASE) {
		unsigned int qi = (addr - REFNPU_QUEUE_BLOCK_BASE) /
				  REFNPU_QUEUE_BLOCK_STRIDE;

		if (qi < v->num_queues)
			return virt_queue_read32(v, &v->queues[qi],
						 (addr - REFNPU_QUEUE_BLOCK_BASE) %
						 REFNPU_QUEUE_BLOCK_STRIDE);
		return 0;
	}

	switch (addr) {
	case REFNPU_REG_ID:
		return REFNPU_ID_VALUE;
	case REFNPU_REG_VERSION:
		return REFNPU_VERSION_VALUE;
	case REFNPU_REG_CAPS:
		return v->caps;
	case REFNPU_REG_NUM_QUEUES:
		return v->num_queues;
	case REFNPU_REG_MMU_CAPS:
		return REFNPU_MMU_CAPS_VALUE;
	case REFNPU_REG_MAX_CONTEXTS:
		return REFNPU_MAX_CONTEXTS;
	case REFNPU_REG_TIMESTAMP_FREQ:
		return REFNPU_TIMESTAMP_FREQ_HZ;
	case REFNPU_REG_TIMESTAMP:
		return lower_32_bits(virt_now(v));
	case REFNPU_REG_TIMESTAMP + 4:
		ts = virt_now(v);
		return upper_32_bits(ts);
	case REFNPU_REG_TLB_INVALIDATE:
		/* Invalidation completes before the write returns. */
		return 0;
	default:
		break;
	}

	if (addr == REFNPU_REG_STATUS) {
		for (i = 0; i < v->num_queues; i++) {
			u32 st = virt_queue_read32(v, &v->queues[i],
						   REFNPU_Q_STATUS);

			if (st & REFNPU_Q_STATUS_BUSY) {
				val |= REFNPU_STATUS_BUSY;
				break;
			}
		}
	}

	spin_lock_irqsave(&v->lock, irqflags);
	switch (addr) {
	case REFNPU_REG_STATUS:
		if (!v->resetting)
			val |= REFNPU_STATUS_READY;
		if (v->fault_status & REFNPU_FAULT_STATUS_VALID)
			val |= REFNPU_STATUS_FAULT;
		break;
	case REFNPU_REG_IRQ_STATUS:
		val = v->irq_status;
		break;
	case REFNPU_REG_IRQ_MASK:
		val = v->irq_mask;
		break;
	case REFNPU_REG_CTX_TABLE_BASE:
		val = lower_32_bits(v->ctx_table_base);
		break;
	case REFNPU_REG_CTX_TABLE_BASE + 4:
		val = upper_32_bits(v->ctx_table_base);
		break;
	case REFNPU_REG_CTX_TABLE_COUNT:
		val = v->ctx_table_count;
		break;
	case REFNPU_REG_FAULT_STATUS:
		val = v->fault_status;
		break;
	case REFNPU_REG_FAULT_CTX:
		val = v->fault_ctx;
		break;
	case REFNPU_REG_FAULT_ADDR:
		val = lower_32_bits(v->fault_addr);
		break;
	case REFNPU_REG_FAULT_ADDR + 4:
		val = upper_32_bits(v->fault_addr);
		break;
	case REFNPU_REG_FAULT_SEQ:
		val = lower_32_bits(v->fault_seq);
		break;
	case REFNPU_REG_FAULT_SEQ + 4:
		val = upper_32_bits(v->fault_seq);
		break;
	case REFNPU_REG_SCRATCH:
		val = v->scratch;
		break;
	default:
		break;
	}
	spin_unlock_irqrestore(&v->lock, irqflags);

	return val;
}

static void virt_queue_write32(struct refnpu_virt *v,
			       struct refnpu_virt_queue *q, u32 off, u32 val)
{
	bool inject = v->caps & REFNPU_CAP_FAULT_INJECT;
	unsigned long irqflags;
	bool kick = false;

	if (off == REFNPU_Q_RESET) {
		if (val & REFNPU_Q_RESET_GO)
			virt_queue_request_reset(q, false);
		return;
	}

	spin_lock_irqsave(&q->lock, irqflags);
	switch (off) {
	case REFNPU_Q_RING_BASE:
		q->ring_base = (q->ring_base & GENMASK_ULL(63, 32)) | val;
		break;
	case REFNPU_Q_RING_BASE + 4:
		q->ring_base = lower_32_bits(q->ring_base) | (u64)val << 32;
		break;
	case REFNPU_Q_RING_SIZE:
		q->ring_size = val;
		break;
	case REFNPU_Q_CTRL:
		q->ctrl = val & REFNPU_Q_CTRL_ENABLE;
		kick = true;
		break;
	case REFNPU_Q_TAIL:
		q->tail = val;
		kick = true;
		break;
	case REFNPU_Q_WATCHDOG_MS:
		q->watchdog_ms = val;
		break;
	case REFNPU_Q_DBG_INJECT:
		if (inject)
			q->dbg.bits = val & REFNPU_DBG_INJECT_ALL;
		break;
	case REFNPU_Q_DBG_ERROR:
		if (inject)
			q->dbg.error = val;
		break;
	case REFNPU_Q_DBG_DELAY_US:
		if (inject)
			q->dbg.delay_us = val;
		break;
	case REFNPU_Q_DBG_FAULT_VA:
		if (inject)
			q->dbg.fault_va = (q->dbg.fault_va & GENMASK_ULL(63, 32)) | val;
		break;
	case REFNPU_Q_DBG_FAULT_VA + 4:
		if (inject)
			q->dbg.fault_va = lower_32_bits(q->dbg.fault_va) |
					  (u64)val << 32;
		break;
	default:
		break;
	}
	spin_unlock_irqrestore(&q->lock, irqflags);

	if (kick)
		virt_queue_kick(q);
}

static void virt_write32(struct refnpu_hwif *hw, u32 addr, u32 val)
{
	struct refnpu_virt *v = to_virt(hw);
	unsigned long irqflags;
	u32 unmasked;

	if (addr >= REFNPU_QUEUE_BLOCK_BASE) {
		unsigned int qi = (addr - REFNPU_QUEUE_BLOCK_BASE) /
				  REFNPU_QUEUE_BLOCK_STRIDE;

		if (qi < v->num_queues)
			virt_queue_write32(v, &v->queues[qi],
					   (addr - REFNPU_QUEUE_BLOCK_BASE) %
					   REFNPU_QUEUE_BLOCK_STRIDE, val);
		return;
	}

	switch (addr) {
	case REFNPU_REG_RESET:
		if (val & REFNPU_RESET_GO)
			virt_request_reset(v);
		return;
	case REFNPU_REG_TLB_INVALIDATE:
		/* Per-context invalidation drops every context: always correct. */
		atomic_inc(&v->tlb_gen);
		return;
	case REFNPU_REG_DBG_SPURIOUS_IRQ:
		if ((v->caps & REFNPU_CAP_FAULT_INJECT) &&
		    val < REFNPU_MSIX_NUM_VECTORS(v->num_queues))
			virt_send_vector(v, val);
		return;
	default:
		break;
	}

	spin_lock_irqsave(&v->lock, irqflags);
	switch (addr) {
	case REFNPU_REG_IRQ_STATUS:
		v->irq_status &= ~val;
		break;
	case REFNPU_REG_IRQ_MASK:
		unmasked = v->irq_mask & ~val;
		v->irq_mask = val & (REFNPU_GENMASK(v->num_queues - 1, 0) |
				     REFNPU_IRQ_ERROR);
		/* Sources pending while masked fire when unmasked. */
		if (v->irq_status & unmasked)
			virt_irq_raise_locked(v, v->irq_status & unmasked, true);
		break;
	case REFNPU_REG_CTX_TABLE_BASE:
		v->ctx_table_base = (v->ctx_table_base & GENMASK_ULL(63, 32)) | val;
		atomic_inc(&v->tlb_gen);
		break;
	case REFNPU_REG_CTX_TABLE_BASE + 4:
		v->ctx_table_base = lower_32_bits(v->ctx_table_base) |
				    (u64)val << 32;
		atomic_inc(&v->tlb_gen);
		break;
	case REFNPU_REG_CTX_TABLE_COUNT:
		v->ctx_table_count = min_t(u32, val, REFNPU_MAX_CONTEXTS);
		atomic_inc(&v->tlb_gen);
		break;
	case REFNPU_REG_FAULT_ACK:
		if (val & REFNPU_FAULT_ACK_GO) {
			v->fault_status = 0;
			v->fault_ctx = 0;
			v->fault_addr = 0;
			v->fault_seq = 0;
		}
		break;
	case REFNPU_REG_SCRATCH:
		v->scratch = val;
		break;
	default:
		break;
	}
	spin_unlock_irqrestore(&v->lock, irqflags);
}

static void virt_sync_irqs(struct refnpu_hwif *hw)
{
	irq_work_sync(&to_virt(hw)->irq_work);
}

static const struct refnpu_hwif_bus refnpu_virt_bus = {
	.read32 = virt_read32,
	.write32 = virt_write32,
	.sync_irqs = virt_sync_irqs,
};

/* ------------------------------------------------------------------------
 * Platform device
 */

static void refnpu_virt_stop(struct refnpu_virt *v)
{
	unsigned int i;

	for (i = 0; i < v->num_queues; i++) {
		struct refnpu_virt_queue *q = &v->queues[i];

		spin_lock_irq(&q->lock);
		q->stop = true;
		WRITE_ONCE(q->abort, true);
		spin_unlock_irq(&q->lock);
		wake_up_all(&q->waitq);
	}
	destroy_workqueue(v->wq);
	irq_work_sync(&v->irq_work);
}

static int refnpu_virt_probe(struct platform_device *pdev)
{
	struct refnpu_device *rdev;
	struct refnpu_virt *v;
	unsigned int i;
	int ret;

	ret = dma_coerce_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	dma_set_max_seg_size(&pdev->dev, UINT_MAX);

	v = devm_kzalloc(&pdev->dev, sizeof(*v), GFP_KERNEL);
	if (!v)
		return -ENOMEM;
	v->pdev = pdev;
	v->hw.dev = &pdev->dev;
	v->hw.bus = &refnpu_virt_bus;
	spin_lock_init(&v->lock);
	init_irq_work(&v->irq_work, virt_irq_work);
	v->clock_base = ktime_get_ns();
	v->num_queues = clamp_t(u32, virt_queues, REFNPU_MIN_QUEUES,
				REFNPU_MAX_QUEUES);
	/* Without the FPU, only what the integer engine can do. */
	v->caps = REFNPU_ENGINE_CAPS;
	if (virt_fault_inject)
		v->caps |= REFNPU_CAP_FAULT_INJECT;

	for (i = 0; i < v->num_queues; i++) {
		struct refnpu_virt_queue *q = &v->queues[i];

		q->v = v;
		q->idx = i;
		spin_lock_init(&q->lock);
		init_waitqueue_head(&q->waitq);
		INIT_WORK(&q->work, virt_queue_work);
	}

	v->wq = alloc_workqueue("refnpu-virt-%s", WQ_UNBOUND, v->num_queues,
				dev_name(&pdev->dev));
	if (!v->wq)
		return -ENOMEM;

	rdev = refnpu_device_create(&pdev->dev, &refnpu_hwif_ops, &v->hw);
	if (IS_ERR(rdev)) {
		ret = PTR_ERR(rdev);
		goto err_stop;
	}
	rdev->info.is_virtual = true;
	platform_set_drvdata(pdev, rdev);

	ret = refnpu_device_init(rdev);
	if (ret)
		goto err_stop;

	ret = refnpu_device_register(rdev);
	if (ret)
		goto err_stop;

	return 0;

err_stop:
	refnpu_virt_stop(v);
	return ret;
}

static void refnpu_virt_remove(struct platform_device *pdev)
{
	struct refnpu_device *rdev = platform_get_drvdata(pdev);

	refnpu_device_unregister(rdev);
	refnpu_virt_stop(to_virt(rdev->hw));
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
