/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_HW_OPS_H__
#define __REFNPU_HW_OPS_H__

#include <linux/types.h>

struct drm_printer;
struct refnpu_device;

/**
 * struct refnpu_hw_job - what the hardware needs to run one job
 * @ctx_id: context whose page tables translate every address of the job
 * @seq: sequence number, unique and increasing per queue
 * @cmd_va: device virtual address of the command buffer
 * @cmd_size: size in bytes of the command buffer
 */
struct refnpu_hw_job {
	u32 ctx_id;
	u64 seq;
	u64 cmd_va;
	u64 cmd_size;
};

/**
 * struct refnpu_hw_done - a job completion reported by the hardware
 * @seq: sequence number of the job, as given in &refnpu_hw_job.seq
 * @status: REFNPU_ERR_* code
 * @fault_flags: REFNPU_FAULT_F_* of a failed access
 * @fault_va: device virtual address of a failed access
 * @start_ts: device timestamp when the job started
 * @end_ts: device timestamp when the job finished
 */
struct refnpu_hw_done {
	u64 seq;
	u32 status;
	u32 fault_flags;
	u64 fault_va;
	u64 start_ts;
	u64 end_ts;
};

/**
 * struct refnpu_hw_fault - a fault record reported by the hardware
 * @ctx_id: context of the faulting job
 * @queue: queue of the faulting job
 * @code: REFNPU_ERR_* code
 * @flags: REFNPU_FAULT_F_* of the faulting access
 * @va: faulting device virtual address
 * @seq: sequence number of the faulting job
 * @overflow: later faults were lost before this one was acknowledged
 */
struct refnpu_hw_fault {
	u32 ctx_id;
	u32 queue;
	u32 code;
	u32 flags;
	u64 va;
	u64 seq;
	bool overflow;
};

/**
 * struct refnpu_hw_inject - fault injection armed for the next job of a queue
 * @flags: REFNPU_DBG_INJECT_* bits
 * @error: REFNPU_ERR_* code reported with REFNPU_DBG_INJECT_ERROR
 * @delay_us: extra run time with REFNPU_DBG_INJECT_DELAY
 * @fault_va: faulting address with REFNPU_DBG_INJECT_MMU_FAULT
 */
struct refnpu_hw_inject {
	u32 flags;
	u32 error;
	u32 delay_us;
	u64 fault_va;
};

/**
 * struct refnpu_hw_ops - a backend: the only code that touches hardware
 *
 * The core (GEM, MMU, jobs, debugfs) never reads or writes a register; it
 * builds page tables and context table entries in bus memory, in the format
 * of refnpu_hw.h, and asks the backend for everything else through these
 * operations. Every operation is called inside drm_dev_enter(), except
 * @fini.
 *
 * The backend reports back through refnpu_job_done() (from its completion
 * interrupt, with &refnpu_queue.lock held), refnpu_job_stopped() (after a
 * reset, with the same lock held), refnpu_fault_report() and
 * refnpu_queue_error() (from its error interrupt).
 *
 * @init: reset the device, fill &refnpu_device.info, set up the queues'
 *	rings and enable interrupts. The context table is allocated by the
 *	core afterwards and passed to @set_ctx_table.
 * @fini: disable interrupts and queues and free what @init allocated.
 * @set_ctx_table: program the context table's bus address and entry count.
 * @tlb_invalidate: drop cached translations of a context, waiting until
 *	the device no longer uses any of them. May sleep.
 * @queue_submit: write a job into a queue's ring and ring the doorbell.
 *	Called with &refnpu_queue.lock held; never sleeps. The core never
 *	has more than REFNPU_QUEUE_JOBS jobs in one ring.
 * @queue_poll: report every job of the queue the device completed, as the
 *	completion interrupt would (used when an interrupt may have been lost).
 * @queue_reset: stop a queue, report the jobs it completed
 *	(refnpu_job_done()) and the job the reset stopped after it had
 *	started (refnpu_job_stopped()), drop the others and restart it empty.
 *	Returns 0, or an error when only a device reset can recover the
 *	queue. May sleep.
 * @reset: reset the whole device, report every queue's jobs as
 *	@queue_reset does and restart every queue empty, keeping the context
 *	table. After @wedge, a reset that succeeds lets the device reach
 *	memory again. May sleep.
 * @wedge: after a reset failed: cut the device off from memory (on PCI,
 *	bus mastering off), mask its interrupts and drop what its rings
 *	hold, so that nothing the device was given can be touched by it any
 *	more. Only a later @reset that succeeds undoes it. May sleep.
 * @timestamp: read the device's timestamp counter.
 * @inject: arm fault injection for the next job of a queue; -EOPNOTSUPP
 *	when the device has no fault injection.
 * @spurious_irq: make the device send interrupt @vector (0: error, 1 + q:
 *	queue q) with nothing behind it; -EOPNOTSUPP without fault injection,
 *	-EINVAL for a vector the device does not have.
 * @show: print the device's registers, for debugfs.
 */
struct refnpu_hw_ops {
	int (*init)(struct refnpu_device *rdev);
	void (*fini)(struct refnpu_device *rdev);
	void (*set_ctx_table)(struct refnpu_device *rdev, dma_addr_t base,
			      u32 count);
	int (*tlb_invalidate)(struct refnpu_device *rdev, u32 ctx_id);
	void (*queue_submit)(struct refnpu_device *rdev, unsigned int queue,
			     const struct refnpu_hw_job *job);
	void (*queue_poll)(struct refnpu_device *rdev, unsigned int queue);
	int (*queue_reset)(struct refnpu_device *rdev, unsigned int queue);
	int (*reset)(struct refnpu_device *rdev);
	void (*wedge)(struct refnpu_device *rdev);
	u64 (*timestamp)(struct refnpu_device *rdev);
	int (*inject)(struct refnpu_device *rdev, unsigned int queue,
		      const struct refnpu_hw_inject *inj);
	int (*spurious_irq)(struct refnpu_device *rdev, unsigned int vector);
	void (*show)(struct refnpu_device *rdev, struct drm_printer *p);
};

#endif /* __REFNPU_HW_OPS_H__ */
