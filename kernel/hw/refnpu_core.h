/* SPDX-License-Identifier: MIT */
/*
 * refnpu device core: everything the device *does*, written once.
 *
 * The register file and its side effects, queue state, ring and descriptor
 * processing, context lookup, completion and fault records, interrupt
 * status, TLB invalidation, reset, watchdog and fault injection live here,
 * in freestanding C beside the compute engine (refnpu_engine.c) and the
 * MMU walker (refnpu_mmu_walk.c).  A platform -- the QEMU PCI model or the
 * kernel's virtual device -- is a thin transport: it forwards register
 * accesses to refnpu_core_read() and refnpu_core_write(), runs
 * refnpu_core_queue_run() when the core kicks a queue, and implements the
 * small interface of struct refnpu_core_ops (DMA, interrupts, clock,
 * locking, scheduling of queue work).  Documentation/hardware.rst is the
 * specification this code implements.
 *
 * Locks: the core takes the platform's locks through &refnpu_core_ops.lock:
 * one per queue (protecting that queue's registers and state) and one for
 * the device (global registers).  A queue lock may be taken before the
 * device lock, never the reverse.  The core never calls &refnpu_core_ops.dma,
 * .wait, .yield or .gemm_f32 with a lock held; it may call .irq and .kick
 * with locks held, so those must only schedule work.
 *
 * Copyright (c) 2025 The refnpu authors
 */
#ifndef REFNPU_CORE_H
#define REFNPU_CORE_H

#include "refnpu_hw.h"
#include "refnpu_mmu_walk.h"

#ifndef __KERNEL__
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* &refnpu_core_ops.lock: the device lock; queue locks are 0 .. queues-1. */
#define REFNPU_CORE_DEV_LOCK		(-1)

/*
 * Largest piece of one data transfer the core issues with one translation.
 * It bounds how long a reset or a TLB invalidation waits for an access in
 * flight, and how far a job runs past an abort.
 */
#define REFNPU_CORE_DMA_CHUNK		(64 * 1024)

/* Chunks between two watchdog checks inside one transfer. */
#define REFNPU_CORE_WATCHDOG_CHUNKS	16

/* Longest single &refnpu_core_ops.wait the core asks for, in ns. */
#define REFNPU_CORE_WAIT_SLICE_NS	(100ULL * 1000 * 1000)

/**
 * enum refnpu_core_event_kind - what &refnpu_core_ops.event reports
 * @REFNPU_CORE_EV_DOORBELL: TAIL written (@a: new tail)
 * @REFNPU_CORE_EV_JOB_START: a descriptor was fetched (@a: seq, @b: ctx)
 * @REFNPU_CORE_EV_JOB_END: a job completed (@a: seq, code: status)
 * @REFNPU_CORE_EV_FAULT: a fault was recorded (@a: address, @b: seq,
 *	code: error, flags: REFNPU_FAULT_F_*)
 * @REFNPU_CORE_EV_RESET: a reset completed (@queue < 0 for the device)
 * @REFNPU_CORE_EV_TLB_INVALIDATE: TLB invalidation (@a: register value)
 * @REFNPU_CORE_EV_GUEST_ERROR: the driver did something the spec forbids
 *	(@msg says what, @a: register offset or address, @b: value)
 */
enum refnpu_core_event_kind {
	REFNPU_CORE_EV_DOORBELL,
	REFNPU_CORE_EV_JOB_START,
	REFNPU_CORE_EV_JOB_END,
	REFNPU_CORE_EV_FAULT,
	REFNPU_CORE_EV_RESET,
	REFNPU_CORE_EV_TLB_INVALIDATE,
	REFNPU_CORE_EV_GUEST_ERROR,
};

/**
 * struct refnpu_core_event - one event, for tracing and guest-error logs
 * @kind: enum refnpu_core_event_kind
 * @queue: queue index, or -1 for the device
 * @code: error or status code
 * @flags: fault flags
 * @a: first argument (see enum refnpu_core_event_kind)
 * @b: second argument
 * @msg: static description, for REFNPU_CORE_EV_GUEST_ERROR
 */
struct refnpu_core_event {
	__u32 kind;
	int queue;
	__u32 code;
	__u32 flags;
	__u64 a;
	__u64 b;
	const char *msg;
};

struct refnpu_core;
struct refnpu_core_job;

/**
 * struct refnpu_core_ops - the platform interface
 * @dma: copy @len bytes between bus address @addr and @buf for queue
 *	@queue (@write: towards memory).  Returns REFNPU_ERR_NONE,
 *	REFNPU_ERR_DMA for a bus error, or REFNPU_ERR_ABORTED when the
 *	platform refused the access because refnpu_core_queue_aborted()
 *	became true while it waited (see the QEMU model's vIOMMU path).
 *	@len is at most REFNPU_CORE_DMA_CHUNK.  No core lock is held.
 * @irq: notify interrupt vector @vector (REFNPU_MSIX_VEC_*).  May be
 *	called with core locks held: it must only latch and schedule.
 * @now_ns: device time in nanoseconds (monotonic, from device creation)
 * @lock: take lock @lock (REFNPU_CORE_DEV_LOCK or a queue index)
 * @unlock: release it
 * @kick: make sure refnpu_core_queue_run() runs for @queue soon (in a
 *	worker) or, for a synchronous platform, now.  May be called with
 *	core locks held unless the platform is synchronous; the core only
 *	kicks a synchronous platform with no lock held.
 * @wait: optional; sleep up to @ns nanoseconds or until @wake is called
 *	for @queue, whichever is first (spurious returns are fine).  A
 *	platform without it is synchronous: waits that would block end
 *	the job as the watchdog would (REFNPU_ERR_TIMEOUT).
 * @wake: optional (with @wait); end a @wait of @queue
 * @yield: optional; called between chunks of engine work (kernel: drop
 *	and retake the FPU, reschedule)
 * @engine_begin: optional; called before the engine runs a command buffer
 * @engine_end: optional; called after it
 * @gemm_f32: optional fp32 GEMM fast path (see &refnpu_engine_env.gemm_f32);
 *	reaches memory through refnpu_core_job_rw()
 * @event: optional; trace and guest-error reporting.  Called with the
 *	queue's lock held for REFNPU_CORE_EV_DOORBELL and REFNPU_CORE_EV_RESET
 *	and with the device lock held for REFNPU_CORE_EV_TLB_INVALIDATE, so
 *	it must not block or call back into the core.
 */
struct refnpu_core_ops {
	__u32 (*dma)(void *opaque, unsigned int queue, __u64 addr, void *buf,
		     __u64 len, bool write);
	void (*irq)(void *opaque, unsigned int vector);
	__u64 (*now_ns)(void *opaque);
	void (*lock)(void *opaque, int lock);
	void (*unlock)(void *opaque, int lock);
	void (*kick)(void *opaque, unsigned int queue);
	void (*wait)(void *opaque, unsigned int queue, __u64 ns);
	void (*wake)(void *opaque, unsigned int queue);
	void (*yield)(void *opaque, unsigned int queue);
	void (*engine_begin)(void *opaque, unsigned int queue);
	void (*engine_end)(void *opaque, unsigned int queue);
	__u32 (*gemm_f32)(void *opaque, struct refnpu_core_job *job,
			  const struct refnpu_cmd_gemm *cmd, __u64 *fault_va,
			  __u32 *fault_flags);
	void (*event)(void *opaque, const struct refnpu_core_event *ev);
};

/**
 * struct refnpu_core_inject - one-shot fault injection (REFNPU_Q_DBG_*)
 * @bits: REFNPU_DBG_INJECT_*
 * @error: REFNPU_Q_DBG_ERROR
 * @delay_us: REFNPU_Q_DBG_DELAY_US
 * @rsvd: padding
 * @fault_va: REFNPU_Q_DBG_FAULT_VA
 */
struct refnpu_core_inject {
	__u32 bits;
	__u32 error;
	__u32 delay_us;
	__u32 rsvd;
	__u64 fault_va;
};

/**
 * struct refnpu_core_queue - one hardware queue
 * @core: device
 * @idx: queue index
 * @ring_base: REFNPU_Q_RING_BASE
 * @ring_size: REFNPU_Q_RING_SIZE
 * @ctrl: REFNPU_Q_CTRL
 * @tail: REFNPU_Q_TAIL
 * @head: REFNPU_Q_HEAD
 * @error: REFNPU_Q_ERROR
 * @last_seq: REFNPU_Q_LAST_SEQ
 * @watchdog_ms: REFNPU_Q_WATCHDOG_MS
 * @dbg: armed injection
 * @busy: a job is in flight (between fetch and completion)
 * @reset_req: a reset waits for the job in flight to stop
 * @reset_global: that reset is part of a device reset
 * @stop: the device is going away; run no more jobs
 * @abort_record: the reset of @reset_req wants the completion record of
 *	the job in flight (a register reset, not a hard one)
 * @abort: the job in flight must stop (read without the lock)
 * @dma_gen: TLB generation of the access in flight, 0 when none (atomic)
 * @tlb: translations cached for the job in flight (worker-private)
 *
 * Everything except @abort, @dma_gen and @tlb is protected by the queue's
 * lock.
 */
struct refnpu_core_queue {
	struct refnpu_core *core;
	unsigned int idx;
	__u64 ring_base;
	__u32 ring_size;
	__u32 ctrl;
	__u32 tail;
	__u32 head;
	__u32 error;
	__u64 last_seq;
	__u32 watchdog_ms;
	struct refnpu_core_inject dbg;
	bool busy;
	bool reset_req;
	bool reset_global;
	bool stop;
	bool abort_record;
	int abort;
	__u32 dma_gen;
	struct refnpu_tlb tlb;
};

/**
 * struct refnpu_core - one device
 * @ops: platform interface
 * @opaque: passed to every op
 * @num_queues: REFNPU_REG_NUM_QUEUES
 * @caps: REFNPU_REG_CAPS
 * @stray_dma: the platform lets REFNPU_DBG_INJECT_STRAY_DMA write the bus
 * @irq_status: REFNPU_REG_IRQ_STATUS
 * @irq_mask: REFNPU_REG_IRQ_MASK
 * @ctx_table_base: REFNPU_REG_CTX_TABLE_BASE
 * @ctx_table_count: REFNPU_REG_CTX_TABLE_COUNT
 * @fault_status: REFNPU_REG_FAULT_STATUS
 * @fault_ctx: REFNPU_REG_FAULT_CTX
 * @fault_addr: REFNPU_REG_FAULT_ADDR
 * @fault_seq: REFNPU_REG_FAULT_SEQ
 * @scratch: REFNPU_REG_SCRATCH
 * @ts_hi: high half of TIMESTAMP latched by the last low-half read
 * @ts_latched: @ts_hi is valid
 * @resetting: a device reset is in progress (STATUS.READY clear)
 * @reset_pending: queues that still have to carry out the device reset
 * @paused: the platform stopped the device (VM stopped); atomic
 * @tlb_gen: bumped by every TLB invalidation, never 0; atomic
 * @queues: the queues
 *
 * The global registers are protected by the device lock.
 */
struct refnpu_core {
	const struct refnpu_core_ops *ops;
	void *opaque;
	__u32 num_queues;
	__u32 caps;
	bool stray_dma;
	__u32 irq_status;
	__u32 irq_mask;
	__u64 ctx_table_base;
	__u32 ctx_table_count;
	__u32 fault_status;
	__u32 fault_ctx;
	__u64 fault_addr;
	__u64 fault_seq;
	__u32 scratch;
	__u32 ts_hi;
	bool ts_latched;
	bool resetting;
	unsigned int reset_pending;
	int paused;
	__u32 tlb_gen;
	struct refnpu_core_queue queues[REFNPU_MAX_QUEUES];
};

/**
 * struct refnpu_core_job - the job a queue runs; private to its worker
 * @q: queue
 * @ctx: context id
 * @pt_root: page-table root of the context
 * @seq: descriptor sequence number
 * @start_ns: device time at fetch
 * @watchdog_ms: REFNPU_Q_WATCHDOG_MS at fetch
 * @chunks: transfers since the last watchdog check
 * @inj: injection latched at fetch
 */
struct refnpu_core_job {
	struct refnpu_core_queue *q;
	__u32 ctx;
	__u64 pt_root;
	__u64 seq;
	__u64 start_ns;
	__u32 watchdog_ms;
	__u32 chunks;
	struct refnpu_core_inject inj;
};

void refnpu_core_init(struct refnpu_core *core,
		      const struct refnpu_core_ops *ops, void *opaque,
		      __u32 num_queues, __u32 caps, bool stray_dma);

__u64 refnpu_core_read(struct refnpu_core *core, __u32 addr,
		       unsigned int size);
void refnpu_core_write(struct refnpu_core *core, __u32 addr, __u64 val,
		       unsigned int size);

void refnpu_core_queue_run(struct refnpu_core *core, unsigned int queue);
bool refnpu_core_queue_run_jobs(struct refnpu_core *core, unsigned int queue,
				unsigned int max_jobs);
bool refnpu_core_queue_aborted(struct refnpu_core *core, unsigned int queue);

void refnpu_core_reset(struct refnpu_core *core);
void refnpu_core_hard_reset(struct refnpu_core *core);
bool refnpu_core_resetting(struct refnpu_core *core);
bool refnpu_core_dma_idle(struct refnpu_core *core);
void refnpu_core_stop(struct refnpu_core *core);
void refnpu_core_set_paused(struct refnpu_core *core, bool paused);

__u32 refnpu_core_job_rw(struct refnpu_core_job *job, __u64 va, void *buf,
			 __u64 len, bool write, __u64 *fault_va);
__u32 refnpu_core_job_check(struct refnpu_core_job *job);

#ifdef __cplusplus
}
#endif

#endif /* REFNPU_CORE_H */
