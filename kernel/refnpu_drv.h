/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_DRV_H__
#define __REFNPU_DRV_H__

#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include <drm/drm_device.h>
#include <drm/drm_file.h>
#include <drm/drm_mm.h>
#include <drm/drm_print.h>
#include <drm/gpu_scheduler.h>

#include "refnpu_hw.h"
#include "refnpu_mmu.h"

#define DRIVER_NAME	"refnpu"
#define DRIVER_DESC	"Reference NPU accelerator driver"
#define DRIVER_DATE	"20250101"

/* Jobs a hardware queue holds at once (scheduler credits, one per job). */
#define REFNPU_QUEUE_JOBS		64
/* Ring entries per queue: one more than the jobs so full != empty. */
#define REFNPU_RING_ENTRIES		128
/* Number of priorities a file may submit at (enum drm_refnpu_priority). */
#define REFNPU_NUM_PRIORITIES		3
/* Context ids handed out (id 0 is never used). */
#define REFNPU_NUM_CONTEXTS		1024
/* Device virtual address range handed out to BOs. */
#define REFNPU_VA_START			SZ_16M
#define REFNPU_VA_END			REFNPU_VA_LIMIT
/* Unmapped gap after every BO, so running off its end faults. */
#define REFNPU_VA_GUARD			SZ_64K
/* Largest BO. */
#define REFNPU_MAX_BO_SIZE		SZ_1G
/* Limits of one submit. */
#define REFNPU_MAX_SUBMIT_BOS		1024
#define REFNPU_MAX_SUBMIT_SYNCS		64

/* Debug message categories of the debug_mask module parameter. */
#define REFNPU_DBG_DRV		BIT(0)
#define REFNPU_DBG_GEM		BIT(1)
#define REFNPU_DBG_MMU		BIT(2)
#define REFNPU_DBG_JOB		BIT(3)
#define REFNPU_DBG_IRQ		BIT(4)
#define REFNPU_DBG_RESET	BIT(5)

extern unsigned int refnpu_debug_mask;

#define refnpu_dbg(rdev, cat, fmt, ...) do {				\
	if (unlikely(refnpu_debug_mask & REFNPU_DBG_##cat))		\
		drm_dbg_driver(&(rdev)->drm, "[%s] " fmt, #cat,		\
			       ##__VA_ARGS__);				\
} while (0)

#define refnpu_err(rdev, fmt, ...) \
	drm_err(&(rdev)->drm, fmt, ##__VA_ARGS__)
#define refnpu_err_ratelimited(rdev, fmt, ...) \
	drm_err_ratelimited(&(rdev)->drm, fmt, ##__VA_ARGS__)
#define refnpu_warn(rdev, fmt, ...) \
	drm_warn(&(rdev)->drm, fmt, ##__VA_ARGS__)
#define refnpu_info(rdev, fmt, ...) \
	drm_info(&(rdev)->drm, fmt, ##__VA_ARGS__)

struct refnpu_hw_ops;
struct refnpu_job;

/**
 * struct refnpu_device_info - what the backend found out about the device
 * @version: REFNPU_REG_VERSION
 * @caps: REFNPU_REG_CAPS
 * @mmu_caps: REFNPU_REG_MMU_CAPS
 * @num_queues: hardware queues, at most REFNPU_MAX_QUEUES
 * @max_contexts: context ids the device accepts
 * @timestamp_freq: frequency of the device timestamps in Hz
 * @ops_mask: bit N set when opcode N is supported
 * @is_virtual: the device is emulated inside the kernel
 */
struct refnpu_device_info {
	u32 version;
	u32 caps;
	u32 mmu_caps;
	u32 num_queues;
	u32 max_contexts;
	u32 timestamp_freq;
	u64 ops_mask;
	bool is_virtual;
};

/**
 * struct refnpu_queue_stats - counters of one hardware queue
 * @submitted: jobs written to the ring
 * @completed: jobs completed successfully
 * @failed: jobs completed with an error reported by the device
 * @timeouts: jobs stopped by the scheduler timeout
 * @resets: queue resets
 * @lost_irqs: completions found by polling after a timeout
 * @busy_ns: device time spent executing jobs
 */
struct refnpu_queue_stats {
	atomic64_t submitted;
	atomic64_t completed;
	atomic64_t failed;
	atomic64_t timeouts;
	atomic64_t resets;
	atomic64_t lost_irqs;
	atomic64_t busy_ns;
};

/**
 * struct refnpu_queue - one hardware queue and its scheduler
 * @rdev: owning device
 * @id: queue index
 * @name: scheduler and fence timeline name
 * @sched: the DRM GPU scheduler feeding this queue
 * @fence_context: dma-fence context of the hardware fences
 * @lock: protects @next_seq, @active and the backend's ring of this queue;
 *	taken from the completion interrupt
 * @next_seq: sequence number of the next job written to the ring
 * @active: jobs in the ring, oldest first
 * @stats: counters
 */
struct refnpu_queue {
	struct refnpu_device *rdev;
	unsigned int id;
	char name[16];
	struct drm_gpu_scheduler sched;
	u64 fence_context;
	spinlock_t lock; /* seq, active jobs, ring; also the fence lock */
	u64 next_seq;
	struct list_head active;
	struct refnpu_queue_stats stats;
};

/**
 * struct refnpu_quarantine - what the device may still reach through stale
 *	TLB entries after a failed invalidation
 * @pts: page-table pages, off their table
 * @maps: BO mappings; each keeps its BO (and so its pages), its device
 *	address and its context
 * @ids: context ids, not handed out again
 */
struct refnpu_quarantine {
	struct list_head pts;
	struct list_head maps;
	DECLARE_BITMAP(ids, REFNPU_NUM_CONTEXTS);
};

/**
 * struct refnpu_device - one refnpu device instance
 * @drm: DRM device, embedded; its managed lifetime owns this structure
 * @hw_ops: the backend, the only code that touches the hardware
 * @hw: backend private data
 * @info: device description read by the backend at init
 * @queues: hardware queues, @info.num_queues of them
 * @ctx_table: context table in bus memory (struct refnpu_ctx_entry array)
 * @ctx_table_dma: bus address of @ctx_table
 * @ctx_ids: allocator of context ids
 * @ctx_lock: protects @ctx_list and the context table
 * @ctx_list: live contexts
 * @bo_lock: protects @bo_list
 * @bo_list: every BO of the device
 * @device_resets: number of device resets
 * @wedged: the last device reset failed: the device is cut off from
 *	memory and every job fails with -EIO until a reset succeeds
 *	(written by recovery only, on @reset_wq)
 * @mmu_faults: number of device MMU faults reported
 * @spurious_irqs: interrupts that found nothing to do: spurious ones, or
 *	ones whose completions an earlier interrupt already reported
 * @fault_rs: rate limit of fault reports
 * @reset_wq: ordered workqueue running every timeout handler and reset,
 *	which serialises them (no lock is needed, and none that a fence
 *	wait could depend on is held across drm_sched_stop())
 * @reset_work: device reset requested through debugfs
 * @tlb_lock: serialises TLB invalidations and protects the quarantine
 *	and @hw_stopped
 * @hw_stopped: refnpu_device_fini() stopped the device: it walks no page
 *	table any more
 * @tlb_timeouts: TLB invalidations the device did not complete in time
 * @tlb_quarantine: what was unmapped while a TLB invalidation failed,
 *	waiting for the next device reset
 * @tlb_resetting: what the device reset in progress (or the last one,
 *	if it failed) drops: moved from @tlb_quarantine when it begins, so
 *	that what is quarantined meanwhile waits for a reset of its own
 * @tlb_released: what a device reset that succeeded dropped, for
 *	@tlb_release_work to free
 * @tlb_release_work: frees the quarantine after a device reset, which
 *	drops every cached translation
 */
struct refnpu_device {
	struct drm_device drm;
	const struct refnpu_hw_ops *hw_ops;
	void *hw;
	struct refnpu_device_info info;
	struct refnpu_queue queues[REFNPU_MAX_QUEUES];
	struct refnpu_ctx_entry *ctx_table;
	dma_addr_t ctx_table_dma;
	struct ida ctx_ids;
	struct mutex ctx_lock; /* protects ctx_list and ctx_table */
	struct list_head ctx_list;
	struct mutex bo_lock; /* protects bo_list */
	struct list_head bo_list;
	atomic64_t device_resets;
	bool wedged;
	atomic64_t mmu_faults;
	atomic64_t spurious_irqs;
	struct ratelimit_state fault_rs;
	struct workqueue_struct *reset_wq;
	struct work_struct reset_work;
	struct mutex tlb_lock; /* serialises invalidations, quarantine */
	atomic64_t tlb_timeouts;
	bool hw_stopped;
	struct refnpu_quarantine tlb_quarantine;
	struct refnpu_quarantine tlb_resetting;
	struct refnpu_quarantine tlb_released;
	struct work_struct tlb_release_work;
};

static inline struct refnpu_device *to_refnpu(struct drm_device *drm)
{
	return container_of(drm, struct refnpu_device, drm);
}

/**
 * struct refnpu_ctx - a device context: one per open file
 * @refcount: held by the file, by every BO mapping and by every job
 * @rdev: owning device
 * @id: hardware context id, index into the context table
 * @vm_lock: protects @mm and the page tables
 * @mm: device virtual address allocator
 * @pgt: page tables in the hardware format
 * @hangs: jobs of this context stopped by a timeout
 * @banned: set once @hangs reaches the hang limit; jobs are cancelled
 * @faults: device MMU and DMA faults of this context's jobs
 * @busy_ns: device time per queue, for fdinfo
 * @link: entry in &refnpu_device.ctx_list
 * @pid: process that opened the file, for debugfs
 * @free_work: frees the context and drops its device reference, on
 *	&refnpu_wq (see refnpu_ctx_put())
 */
struct refnpu_ctx {
	struct kref refcount;
	struct refnpu_device *rdev;
	u32 id;
	struct mutex vm_lock; /* protects mm and page tables */
	struct drm_mm mm;
	struct refnpu_pgtable pgt;
	atomic_t hangs;
	bool banned;
	atomic64_t faults;
	atomic64_t busy_ns[REFNPU_MAX_QUEUES];
	struct list_head link;
	struct pid *pid;
	struct work_struct free_work;
};

/**
 * struct refnpu_file - per open file state
 * @rdev: owning device
 * @ctx: the file's device context
 * @submit_lock: orders arming and pushing of jobs to the entities
 * @entities: scheduler entity per queue and priority
 */
struct refnpu_file {
	struct refnpu_device *rdev;
	struct refnpu_ctx *ctx;
	struct mutex submit_lock; /* orders job arm and push */
	struct drm_sched_entity entities[REFNPU_MAX_QUEUES][REFNPU_NUM_PRIORITIES];
};

extern struct workqueue_struct *refnpu_wq;

int refnpu_device_init(struct refnpu_device *rdev);
void refnpu_device_fini(struct refnpu_device *rdev);
struct refnpu_device *refnpu_device_create(struct device *parent,
					   const struct refnpu_hw_ops *ops,
					   void *hw);
int refnpu_device_register(struct refnpu_device *rdev);
void refnpu_device_unregister(struct refnpu_device *rdev);

#ifdef REFNPU_TEST_HOOKS
extern bool refnpu_virt_stray_dma;
#else
#define refnpu_virt_stray_dma false
#endif
int refnpu_virt_init(void);
void refnpu_virt_exit(void);
int refnpu_pci_init(void);
void refnpu_pci_exit(void);

#endif /* __REFNPU_DRV_H__ */
