// SPDX-License-Identifier: MIT
/*
 * refnpu device core: register file, queues, rings, completion and fault
 * records, TLB invalidation, reset, watchdog and fault injection.  See
 * refnpu_core.h for the platform interface and the locking rules, and
 * Documentation/hardware.rst for the behaviour specified.
 *
 * Copyright (c) 2025 The refnpu authors
 */
#include "refnpu_core.h"
#include "refnpu_engine.h"

#ifdef __KERNEL__
#include <linux/compiler.h>
#include <linux/stddef.h>
#include <linux/string.h>
#include <asm/barrier.h>
#define core_read(x)		READ_ONCE(x)
#define core_write(x, v)	WRITE_ONCE(x, v)
/* Full barrier of the dma_gen/tlb_gen and dma_gen/paused pairings. */
#define core_mb()		smp_mb()
#else
#include <stddef.h>
#include <string.h>
#define core_read(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define core_write(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define core_mb()		__atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the refnpu device core assumes a little-endian host"
#endif

#define NS_PER_US		1000ULL
#define NS_PER_MS		1000000ULL

/* Place @v in the (contiguous) field @mask, whose lowest bit is @shift. */
#define FIELD(v, mask, shift)	(((__u32)(v) << (shift)) & (mask))

static inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

static inline __u64 deposit_lo(__u64 reg, __u32 val)
{
	return (reg & 0xffffffff00000000ULL) | val;
}

static inline __u64 deposit_hi(__u64 reg, __u32 val)
{
	return (reg & 0xffffffffULL) | (__u64)val << 32;
}

static void core_lock(struct refnpu_core *c, int lock)
{
	c->ops->lock(c->opaque, lock);
}

static void core_unlock(struct refnpu_core *c, int lock)
{
	c->ops->unlock(c->opaque, lock);
}

static __u64 core_now(struct refnpu_core *c)
{
	return c->ops->now_ns(c->opaque);
}

static void core_event(struct refnpu_core *c, __u32 kind, int queue,
		       __u32 code, __u32 flags, __u64 a, __u64 b,
		       const char *msg)
{
	struct refnpu_core_event ev = {
		.kind = kind, .queue = queue, .code = code, .flags = flags,
		.a = a, .b = b, .msg = msg,
	};

	if (c->ops->event)
		c->ops->event(c->opaque, &ev);
}

static void guest_error(struct refnpu_core *c, int queue, const char *msg,
			__u64 a, __u64 b)
{
	core_event(c, REFNPU_CORE_EV_GUEST_ERROR, queue, 0, 0, a, b, msg);
}

/**
 * refnpu_core_init() - set up a device in its reset state
 * @core: zeroed or previously used device
 * @ops: platform interface
 * @opaque: passed to every op
 * @num_queues: queues, in [REFNPU_MIN_QUEUES, REFNPU_MAX_QUEUES] (clamped)
 * @caps: REFNPU_REG_CAPS
 * @stray_dma: whether REFNPU_DBG_INJECT_STRAY_DMA may write bus memory;
 *	when false it fails the job with REFNPU_ERR_UNSUPPORTED
 */
void refnpu_core_init(struct refnpu_core *core,
		      const struct refnpu_core_ops *ops, void *opaque,
		      __u32 num_queues, __u32 caps, bool stray_dma)
{
	unsigned int i;

	memset(core, 0, sizeof(*core));
	core->ops = ops;
	core->opaque = opaque;
	if (num_queues < REFNPU_MIN_QUEUES)
		num_queues = REFNPU_MIN_QUEUES;
	if (num_queues > REFNPU_MAX_QUEUES)
		num_queues = REFNPU_MAX_QUEUES;
	core->num_queues = num_queues;
	core->caps = caps;
	core->stray_dma = stray_dma;
	core->tlb_gen = 1;
	for (i = 0; i < REFNPU_MAX_QUEUES; i++) {
		core->queues[i].core = core;
		core->queues[i].idx = i;
		refnpu_tlb_flush(&core->queues[i].tlb);
	}
}

/* ------------------------------------------------------------------------
 * Interrupts and fault records
 */

/* Latch @bits in IRQ_STATUS and notify unmasked vectors; device lock held. */
static void irq_raise_locked(struct refnpu_core *c, __u32 bits, bool send)
{
	__u32 fresh = bits & ~c->irq_mask;
	unsigned int q;

	c->irq_status |= bits;
	if (!send)
		return;
	if (fresh & REFNPU_IRQ_ERROR)
		c->ops->irq(c->opaque, REFNPU_MSIX_VEC_ERROR);
	for (q = 0; q < c->num_queues; q++)
		if (fresh & REFNPU_IRQ_QUEUE(q))
			c->ops->irq(c->opaque, REFNPU_MSIX_VEC_QUEUE(q));
}

/* Record a fault (the first one wins) and raise the error interrupt. */
static void record_fault(struct refnpu_core *c, unsigned int queue, __u32 code,
			 __u32 flags, __u32 ctx, __u64 va, __u64 seq)
{
	core_event(c, REFNPU_CORE_EV_FAULT, (int)queue, code, flags, va, seq,
		   refnpu_engine_err_name(code));

	core_lock(c, REFNPU_CORE_DEV_LOCK);
	if (c->fault_status & REFNPU_FAULT_STATUS_VALID) {
		c->fault_status |= REFNPU_FAULT_STATUS_OVERFLOW;
	} else {
		c->fault_status = REFNPU_FAULT_STATUS_VALID |
			FIELD(flags, REFNPU_FAULT_STATUS_FLAGS_MASK,
			      REFNPU_FAULT_STATUS_FLAGS_SHIFT) |
			FIELD(queue, REFNPU_FAULT_STATUS_QUEUE_MASK,
			      REFNPU_FAULT_STATUS_QUEUE_SHIFT) |
			FIELD(code, REFNPU_FAULT_STATUS_CODE_MASK,
			      REFNPU_FAULT_STATUS_CODE_SHIFT);
		c->fault_ctx = ctx;
		c->fault_addr = va;
		c->fault_seq = seq;
	}
	irq_raise_locked(c, REFNPU_IRQ_ERROR, true);
	core_unlock(c, REFNPU_CORE_DEV_LOCK);
}

/* ------------------------------------------------------------------------
 * Jobs: checks, translation and data transfer
 */

/**
 * refnpu_core_queue_aborted() - whether a queue's job in flight must stop
 * @core: device
 * @queue: queue index
 *
 * For a platform's DMA path: an access that had to wait (e.g. for a lock
 * a reset holds) checks this before it touches memory.
 *
 * Return: true when a reset or the device's removal stopped the job.
 */
bool refnpu_core_queue_aborted(struct refnpu_core *core, unsigned int queue)
{
	return queue < REFNPU_MAX_QUEUES && core_read(core->queues[queue].abort);
}

/**
 * refnpu_core_job_check() - whether a job must stop
 * @job: running job
 *
 * Return: REFNPU_ERR_ABORTED after a reset or removal, REFNPU_ERR_TIMEOUT
 * once the watchdog expired, else REFNPU_ERR_NONE.
 */
__u32 refnpu_core_job_check(struct refnpu_core_job *job)
{
	struct refnpu_core *c = job->q->core;

	job->chunks = 0;
	if (core_read(job->q->abort))
		return REFNPU_ERR_ABORTED;
	if (job->watchdog_ms &&
	    core_now(c) - job->start_ns >= (__u64)job->watchdog_ms * NS_PER_MS)
		return REFNPU_ERR_TIMEOUT;
	return REFNPU_ERR_NONE;
}

/*
 * Sleep up to @ns (forever with 0) or until the job must stop.  Returns
 * the stop reason, or REFNPU_ERR_NONE when the time is up.  A synchronous
 * platform cannot wait: the job ends as if its watchdog had fired.
 */
static __u32 job_wait(struct refnpu_core_job *job, __u64 ns)
{
	struct refnpu_core *c = job->q->core;
	__u64 deadline = core_now(c) + ns;

	for (;;) {
		__u64 now = core_now(c), slice = REFNPU_CORE_WAIT_SLICE_NS;
		__u32 st = refnpu_core_job_check(job);

		if (st)
			return st;
		if (ns) {
			if (now >= deadline)
				return REFNPU_ERR_NONE;
			slice = min_u64(slice, deadline - now);
		}
		if (job->watchdog_ms) {
			__u64 wd = job->start_ns +
				   (__u64)job->watchdog_ms * NS_PER_MS;

			slice = min_u64(slice, wd > now ? wd - now : 1);
		}
		if (!c->ops->wait)
			return REFNPU_ERR_TIMEOUT;
		c->ops->wait(c->opaque, job->q->idx, slice);
	}
}

/* While the platform has paused the device, hold the job between commands. */
static __u32 job_pause_point(struct refnpu_core_job *job)
{
	struct refnpu_core *c = job->q->core;

	while (core_read(c->paused) && c->ops->wait) {
		if (core_read(job->q->abort))
			return REFNPU_ERR_ABORTED;
		c->ops->wait(c->opaque, job->q->idx, REFNPU_CORE_WAIT_SLICE_NS);
	}
	return REFNPU_ERR_NONE;
}

static int core_read64(void *opaque, __u64 addr, __u64 *val)
{
	struct refnpu_core_queue *q = opaque;
	__u64 le;

	if (q->core->ops->dma(q->core->opaque, q->idx, addr, &le, sizeof(le),
			      false))
		return -1;
	*val = le;
	return 0;
}

/*
 * Start a memory access: publish the TLB generation it uses, and hold it
 * while the platform has paused the device.  Paired with the barriers in
 * tlb_invalidate() and refnpu_core_set_paused(): either the other side
 * sees @dma_gen (TLB_INVALIDATE reads BUSY, refnpu_core_dma_idle() is
 * false until the access ends) or this sees the new generation (and drops
 * the stale translations) and the pause (and waits).  Returns the
 * generation, or 0 with *@st set when the job must stop instead.
 */
static __u32 dma_begin(struct refnpu_core_queue *q, __u32 *st)
{
	struct refnpu_core *c = q->core;
	__u32 gen;

	for (;;) {
		gen = core_read(c->tlb_gen);
		core_write(q->dma_gen, gen);
		core_mb();
		if (core_read(c->tlb_gen) != gen)
			continue;
		if (!core_read(c->paused) || !c->ops->wait)
			return gen;
		core_write(q->dma_gen, 0);
		if (core_read(q->abort)) {
			*st = REFNPU_ERR_ABORTED;
			return 0;
		}
		c->ops->wait(c->opaque, q->idx, REFNPU_CORE_WAIT_SLICE_NS);
	}
}

static void dma_end(struct refnpu_core_queue *q)
{
	core_mb();
	core_write(q->dma_gen, 0);
}

/**
 * refnpu_core_job_rw() - copy between a job's device VA space and @buf
 * @job: running job
 * @va: device virtual address
 * @buf: host buffer
 * @len: bytes
 * @write: towards device memory
 * @fault_va: set to the failing address on failure
 *
 * Translates through the device MMU, at most REFNPU_CORE_DMA_CHUNK bytes
 * per translation, and stops between chunks once the job must stop.
 *
 * Return: REFNPU_ERR_NONE or the error of the first failing byte.
 */
__u32 refnpu_core_job_rw(struct refnpu_core_job *job, __u64 va, void *buf,
			 __u64 len, bool write, __u64 *fault_va)
{
	struct refnpu_core_queue *q = job->q;
	struct refnpu_core *c = q->core;
	__u8 *p = buf;
	__u32 st;

	st = refnpu_core_job_check(job);
	while (!st && len) {
		__u64 pa = 0, room = 0, chunk;
		__u32 gen;

		if (++job->chunks >= REFNPU_CORE_WATCHDOG_CHUNKS)
			st = refnpu_core_job_check(job);
		else if (core_read(q->abort))
			st = REFNPU_ERR_ABORTED;
		if (st)
			break;

		if ((job->inj.bits & REFNPU_DBG_INJECT_MMU_FAULT) &&
		    (va >> REFNPU_PAGE_SHIFT) ==
		    (job->inj.fault_va >> REFNPU_PAGE_SHIFT)) {
			*fault_va = va;
			return REFNPU_ERR_MMU_UNMAPPED;
		}
		gen = dma_begin(q, &st);
		if (!gen)
			break;
		st = refnpu_mmu_translate(&q->tlb, gen, job->ctx, job->pt_root,
					  va, write, core_read64, q, &pa,
					  &room);
		if (st) {
			dma_end(q);
			*fault_va = va;
			return st;
		}
		chunk = min_u64(min_u64(len, room), REFNPU_CORE_DMA_CHUNK);
		st = c->ops->dma(c->opaque, q->idx, pa, p, chunk, write);
		dma_end(q);
		if (st) {
			if (st != REFNPU_ERR_ABORTED) {
				guest_error(c, (int)q->idx,
					    write ? "DMA write failed" :
						    "DMA read failed", pa, va);
				st = REFNPU_ERR_DMA;
			}
			*fault_va = va;
			return st;
		}
		va += chunk;
		p += chunk;
		len -= chunk;
	}
	if (st)
		*fault_va = va;
	return st;
}

/* ------------------------------------------------------------------------
 * Engine callbacks
 */

static __u32 eng_read(void *opaque, __u64 va, void *buf, __u64 len,
		      __u64 *fault_va)
{
	return refnpu_core_job_rw(opaque, va, buf, len, false, fault_va);
}

static __u32 eng_write(void *opaque, __u64 va, const void *buf, __u64 len,
		       __u64 *fault_va)
{
	return refnpu_core_job_rw(opaque, va, (void *)buf, len, true,
				  fault_va);
}

static __u32 eng_checkpoint(void *opaque)
{
	struct refnpu_core_job *job = opaque;
	struct refnpu_core *c = job->q->core;

	if (c->ops->yield)
		c->ops->yield(c->opaque, job->q->idx);
	return refnpu_core_job_check(job) ?: job_pause_point(job);
}

static __u32 eng_gemm_f32(void *opaque, const struct refnpu_cmd_gemm *g,
			  __u64 *fault_va, __u32 *fault_flags)
{
	struct refnpu_core_job *job = opaque;
	struct refnpu_core *c = job->q->core;

	return c->ops->gemm_f32(c->opaque, job, g, fault_va, fault_flags);
}

/* ------------------------------------------------------------------------
 * Ring processing
 */

static __u32 core_dma(struct refnpu_core_queue *q, __u64 addr, void *buf,
		      __u64 len, bool write)
{
	struct refnpu_core *c = q->core;
	__u8 *p = buf;

	while (len) {
		__u64 chunk = min_u64(len, REFNPU_CORE_DMA_CHUNK);
		__u32 st = REFNPU_ERR_NONE;

		if (!dma_begin(q, &st))
			return st;
		st = c->ops->dma(c->opaque, q->idx, addr, p, chunk, write);
		dma_end(q);
		if (st)
			return st == REFNPU_ERR_ABORTED ? st : REFNPU_ERR_DMA;
		addr += chunk;
		p += chunk;
		len -= chunk;
	}
	return REFNPU_ERR_NONE;
}

/* Halt the queue: a ring-level error, no completion can be written. */
static void queue_halt(struct refnpu_core_queue *q, __u32 code, __u32 flags,
		       __u32 ctx, __u64 addr, __u64 seq)
{
	struct refnpu_core *c = q->core;

	core_lock(c, (int)q->idx);
	if (!q->error)
		q->error = code;
	core_unlock(c, (int)q->idx);
	record_fault(c, q->idx, code, flags | REFNPU_FAULT_F_RING, ctx, addr,
		     seq);
}

/* Look up the job's context; sets job->pt_root. */
static __u32 job_context(struct refnpu_core_job *job)
{
	struct refnpu_core_queue *q = job->q;
	struct refnpu_core *c = q->core;
	struct refnpu_ctx_entry ce;
	__u64 base;
	__u32 count, st;

	core_lock(c, REFNPU_CORE_DEV_LOCK);
	base = c->ctx_table_base;
	count = c->ctx_table_count;
	core_unlock(c, REFNPU_CORE_DEV_LOCK);

	if (job->ctx >= count || job->ctx >= REFNPU_MAX_CONTEXTS)
		return REFNPU_ERR_INVALID_CONTEXT;
	/* 0 < count <= REFNPU_MAX_CONTEXTS: the table's last byte may wrap. */
	if ((__u64)count * REFNPU_CTX_ENTRY_SIZE - 1 > ~0ULL - base)
		return REFNPU_ERR_MMU_WALK;
	st = core_dma(q, base + (__u64)job->ctx * REFNPU_CTX_ENTRY_SIZE, &ce,
		      sizeof(ce), false);
	if (st) {
		if (st != REFNPU_ERR_ABORTED) {
			guest_error(c, (int)q->idx,
				    "context table read failed", base, 0);
			st = REFNPU_ERR_MMU_WALK;
		}
		return st;
	}
	st = refnpu_ctx_entry_check(&ce);
	if (!st)
		job->pt_root = ce.pt_root;
	return st;
}

/*
 * Injected stray DMA: a burst straight to a bus address, with no device
 * MMU translation, as a device with a broken DMA engine would write.  A
 * system IOMMU in front of the device is what is supposed to stop it.
 */
static __u32 stray_dma(struct refnpu_core_queue *q, __u64 addr)
{
	__u8 burst[REFNPU_DBG_STRAY_DMA_BYTES];
	__u32 st;

	if (!q->core->stray_dma)
		return REFNPU_ERR_UNSUPPORTED;
	memset(burst, REFNPU_DBG_STRAY_DMA_PATTERN, sizeof(burst));
	st = core_dma(q, addr, burst, sizeof(burst), true);
	if (st == REFNPU_ERR_DMA)
		guest_error(q->core, (int)q->idx,
			    "injected stray DMA write rejected", addr, 0);
	return st;
}

/* Write a completion record; the "done" word goes last. */
static __u32 write_completion(struct refnpu_core_queue *q, __u64 addr,
			      const struct refnpu_completion *comp)
{
	__u32 done = REFNPU_COMPLETION_DONE;
	__u32 st;

	st = core_dma(q, addr, (void *)comp, sizeof(*comp), true);
	if (st)
		return st;
	core_mb();
	return core_dma(q, addr + offsetof(struct refnpu_completion, done),
			&done, sizeof(done), true);
}

/*
 * REFNPU_DBG_INJECT_STUCK: hang, and once a register reset asks the job to
 * stop, go on for @us more (at most REFNPU_DBG_STUCK_MAX_US), like an
 * engine that is slow to stop.  A hard reset or the device's removal stops
 * it at once.  Returns the job's status; *@late is set when the job went
 * on for the whole time after a register reset.
 */
static __u32 job_stuck(struct refnpu_core_job *job, __u32 us, bool *late)
{
	struct refnpu_core_queue *q = job->q;
	struct refnpu_core *c = q->core;
	__u32 st = job_wait(job, 0);
	__u64 deadline;

	*late = false;
	if (st != REFNPU_ERR_ABORTED)
		return st;
	if (us > REFNPU_DBG_STUCK_MAX_US)
		us = REFNPU_DBG_STUCK_MAX_US;
	deadline = core_now(c) + (__u64)us * NS_PER_US;
	for (;;) {
		__u64 now = core_now(c);
		bool soft;

		core_lock(c, (int)q->idx);
		soft = q->reset_req && q->abort_record && !q->stop;
		core_unlock(c, (int)q->idx);
		if (!soft || !c->ops->wait)
			return st;
		if (now >= deadline) {
			*late = true;
			return st;
		}
		c->ops->wait(c->opaque, q->idx,
			     min_u64(REFNPU_CORE_WAIT_SLICE_NS, deadline - now));
	}
}

/* Execute the job: injection first, then the command buffer. */
static void job_execute(struct refnpu_core_job *job,
			const struct refnpu_job_desc *d,
			struct refnpu_engine_result *res)
{
	struct refnpu_core_queue *q = job->q;
	struct refnpu_core *c = q->core;
	struct refnpu_engine_env env = {
		.opaque = job,
		.read = eng_read,
		.write = eng_write,
		.checkpoint = eng_checkpoint,
		.gemm_f32 = c->ops->gemm_f32 ? eng_gemm_f32 : NULL,
	};
	const struct refnpu_core_inject *inj = &job->inj;
	__u32 st;

	res->status = refnpu_job_desc_check(d);
	if (!res->status)
		res->status = job_context(job);
	if (res->status) {
		res->fault_flags = REFNPU_FAULT_F_RING;
		return;
	}

	if (inj->bits & REFNPU_DBG_INJECT_STUCK) {
		bool late;

		res->status = job_stuck(job, inj->delay_us, &late);
		/* A late write: what the driver must not have freed yet. */
		if (late && (inj->bits & REFNPU_DBG_INJECT_STRAY_DMA))
			stray_dma(q, inj->fault_va);
		return;
	}
	if (inj->bits & REFNPU_DBG_INJECT_STRAY_DMA) {
		res->status = stray_dma(q, inj->fault_va);
		if (res->status) {
			res->fault_flags = REFNPU_FAULT_F_RING |
					   REFNPU_FAULT_F_WRITE;
			res->fault_va = inj->fault_va;
			return;
		}
	}
	if (inj->bits & REFNPU_DBG_INJECT_HANG) {
		res->status = job_wait(job, 0);
		return;
	}
	if (inj->bits & REFNPU_DBG_INJECT_ERROR) {
		res->status = inj->error && inj->error < REFNPU_ERR_COUNT ?
			      inj->error : REFNPU_ERR_INJECTED;
		return;
	}

	if (c->ops->engine_begin)
		c->ops->engine_begin(c->opaque, q->idx);
	refnpu_engine_run(&env, d->cmd_va, d->cmd_size, res);
	if (c->ops->engine_end)
		c->ops->engine_end(c->opaque, q->idx);

	if (!res->status && (inj->bits & REFNPU_DBG_INJECT_DELAY) &&
	    inj->delay_us) {
		st = job_wait(job, (__u64)inj->delay_us * NS_PER_US);
		if (st)
			res->status = st;
	}
}

/*
 * Run the descriptor at ring index @idx.  Returns false when the queue
 * halted (the descriptor is not consumed).
 */
static bool run_job(struct refnpu_core_queue *q, __u32 idx, __u64 ring_base,
		    __u32 ring_size, __u32 watchdog_ms,
		    const struct refnpu_core_inject *inj)
{
	struct refnpu_core *c = q->core;
	struct refnpu_core_job job = {
		.q = q,
		.start_ns = core_now(c),
		.watchdog_ms = watchdog_ms,
		.inj = *inj,
	};
	struct refnpu_engine_result res = { 0 };
	struct refnpu_completion comp = { 0 };
	__u64 desc_addr = ring_base + (__u64)idx * REFNPU_JOB_DESC_SIZE;
	struct refnpu_job_desc d;
	bool send_irq = true, aborted, record = false;
	__u32 st;

	st = core_dma(q, desc_addr, &d, sizeof(d), false);
	if (st == REFNPU_ERR_ABORTED)
		return true;
	if (st) {
		guest_error(c, (int)q->idx, "descriptor read failed",
			    desc_addr, idx);
		queue_halt(q, REFNPU_ERR_DMA, 0, 0, desc_addr, 0);
		return false;
	}
	job.seq = d.seq;
	job.ctx = d.ctx_id;
	core_event(c, REFNPU_CORE_EV_JOB_START, (int)q->idx, 0, 0, d.seq,
		   d.ctx_id, NULL);

	if (d.completion_addr % REFNPU_COMPLETION_ALIGN ||
	    d.completion_addr > ~0ULL - REFNPU_COMPLETION_SIZE) {
		guest_error(c, (int)q->idx, "misaligned completion address",
			    d.completion_addr, d.seq);
		queue_halt(q, REFNPU_ERR_BAD_DESCRIPTOR, 0, d.ctx_id,
			   d.completion_addr, d.seq);
		return false;
	}

	job_execute(&job, &d, &res);

	/*
	 * Stopped by a reset: a register reset (REFNPU_Q_RESET or
	 * REFNPU_REG_RESET) wants the job's completion record, with
	 * REFNPU_ERR_ABORTED unless the job had completed after all, so that
	 * the driver knows the job had started.  It goes to the address
	 * checked above, like any record.  A hard reset or the device's
	 * removal leaves no trace.  Either way there is no interrupt and
	 * HEAD stays (the reset clears the ring).  The abort is lifted for
	 * the record; a later stop or hard reset sets it again and refuses
	 * what is left of it.  An injected REFNPU_ERR_ABORTED is an ordinary
	 * job status.
	 */
	core_lock(c, (int)q->idx);
	aborted = core_read(q->abort);
	if (aborted) {
		record = q->reset_req && q->abort_record && !q->stop;
		if (record)
			core_write(q->abort, 0);
	}
	core_unlock(c, (int)q->idx);
	if (aborted && !record)
		return true;
	if (aborted && res.status) {
		res.status = REFNPU_ERR_ABORTED;
		res.fault_flags = 0;
		res.fault_va = 0;
	}

	comp.status = res.status;
	comp.fault_flags = res.fault_flags;
	comp.seq = d.seq;
	comp.fault_va = res.fault_va;
	comp.cmd_index = res.cmd_index;
	comp.cmd_offset = res.cmd_offset;
	comp.start_ts = job.start_ns;
	comp.end_ts = core_now(c);
	comp.ctx_id = d.ctx_id;

	st = write_completion(q, d.completion_addr, &comp);
	if (st == REFNPU_ERR_ABORTED)
		return true;
	if (st) {
		guest_error(c, (int)q->idx, "completion write failed",
			    d.completion_addr, d.seq);
		record_fault(c, q->idx, REFNPU_ERR_DMA,
			     REFNPU_FAULT_F_RING | REFNPU_FAULT_F_WRITE,
			     d.ctx_id, d.completion_addr, d.seq);
	}
	if (res.status && !aborted)
		record_fault(c, q->idx, res.status, res.fault_flags, d.ctx_id,
			     res.fault_va, d.seq);
	core_event(c, REFNPU_CORE_EV_JOB_END, (int)q->idx, res.status, 0,
		   d.seq, d.ctx_id, NULL);

	if (inj->bits & REFNPU_DBG_INJECT_DROP_IRQ)
		send_irq = false;

	core_lock(c, (int)q->idx);
	if (!q->reset_req && !q->stop) {
		q->last_seq = d.seq;
		q->head = (idx + 1) & (ring_size - 1);
		if (d.flags & REFNPU_JOB_F_IRQ) {
			core_lock(c, REFNPU_CORE_DEV_LOCK);
			irq_raise_locked(c, REFNPU_IRQ_QUEUE(q->idx), send_irq);
			core_unlock(c, REFNPU_CORE_DEV_LOCK);
		}
	}
	core_unlock(c, (int)q->idx);
	return true;
}

/* ------------------------------------------------------------------------
 * Reset
 */

/* Reset the queue's registers; queue lock held, no job in flight. */
static void queue_reset_regs(struct refnpu_core_queue *q)
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

/* Reset the global registers; device lock held, every queue idle. */
static void global_reset_regs(struct refnpu_core *c)
{
	c->irq_status = 0;
	c->irq_mask = 0;
	c->ctx_table_base = 0;
	c->ctx_table_count = 0;
	c->fault_status = 0;
	c->fault_ctx = 0;
	c->fault_addr = 0;
	c->fault_seq = 0;
	c->scratch = 0;
	c->ts_latched = false;
	core_write(c->tlb_gen, c->tlb_gen + 1 ? c->tlb_gen + 1 : 1);
}

/* Carry out a queue's reset; queue lock held, no job in flight. */
static void queue_do_reset(struct refnpu_core_queue *q)
{
	struct refnpu_core *c = q->core;
	bool global = q->reset_global, done = false;

	queue_reset_regs(q);
	q->reset_req = false;
	q->reset_global = false;
	q->abort_record = false;
	core_write(q->abort, q->stop ? 1 : 0);

	core_lock(c, REFNPU_CORE_DEV_LOCK);
	c->irq_status &= ~REFNPU_IRQ_QUEUE(q->idx);
	if (global && c->reset_pending && --c->reset_pending == 0) {
		global_reset_regs(c);
		c->resetting = false;
		done = true;
	}
	core_unlock(c, REFNPU_CORE_DEV_LOCK);
	core_event(c, REFNPU_CORE_EV_RESET, (int)q->idx, 0, 0, 0, 0, NULL);
	if (done)
		core_event(c, REFNPU_CORE_EV_RESET, -1, 0, 0, 0, 0, NULL);
}

/*
 * Reset a queue: at once when it has no job in flight, else abort the job
 * and let the queue's worker finish the reset when the job has stopped.
 * With @record the job in flight writes its completion record (status
 * REFNPU_ERR_ABORTED unless it had completed); one request without it,
 * a hard reset, is enough to suppress the record.  Returns whether the
 * worker must be kicked.
 */
static bool queue_request_reset(struct refnpu_core_queue *q, bool global,
				bool record)
{
	struct refnpu_core *c = q->core;
	bool kick = false;

	core_lock(c, (int)q->idx);
	q->reset_global |= global;
	if (!q->busy) {
		queue_do_reset(q);
	} else {
		/* Already stopping for a record: the record may be on its way. */
		bool writing = q->reset_req && q->abort_record && record;

		q->abort_record = q->reset_req ? q->abort_record && record :
						 record;
		q->reset_req = true;
		if (!writing)
			core_write(q->abort, 1);
		kick = true;
	}
	core_unlock(c, (int)q->idx);
	if (kick && c->ops->wake)
		c->ops->wake(c->opaque, q->idx);
	return kick;
}

/* A hard reset during a device reset: the records are no longer wanted. */
static void core_drop_records(struct refnpu_core *core)
{
	unsigned int i;

	for (i = 0; i < core->num_queues; i++) {
		struct refnpu_core_queue *q = &core->queues[i];

		core_lock(core, (int)i);
		if (q->reset_req) {
			q->abort_record = false;
			core_write(q->abort, 1);
		}
		core_unlock(core, (int)i);
		if (core->ops->wake)
			core->ops->wake(core->opaque, i);
	}
}

static void core_reset(struct refnpu_core *core, bool record)
{
	bool kick[REFNPU_MAX_QUEUES];
	unsigned int i;

	core_lock(core, REFNPU_CORE_DEV_LOCK);
	if (core->resetting) {
		core_unlock(core, REFNPU_CORE_DEV_LOCK);
		if (!record)
			core_drop_records(core);
		return;
	}
	core->resetting = true;
	core->reset_pending = core->num_queues;
	core_unlock(core, REFNPU_CORE_DEV_LOCK);

	for (i = 0; i < core->num_queues; i++)
		kick[i] = queue_request_reset(&core->queues[i], true, record);
	for (i = 0; i < core->num_queues; i++)
		if (kick[i])
			core->ops->kick(core->opaque, i);
}

/**
 * refnpu_core_reset() - reset the whole device (as REFNPU_REG_RESET)
 * @core: device
 *
 * Idle queues reset at once; a queue with a job in flight aborts it,
 * writes its completion record (REFNPU_ERR_ABORTED unless the job had
 * completed) and resets when it has stopped.  refnpu_core_resetting()
 * tells when every queue is done.
 */
void refnpu_core_reset(struct refnpu_core *core)
{
	core_reset(core, true);
}

/**
 * refnpu_core_hard_reset() - reset the device as its bus resets it
 * @core: device
 *
 * A system or function-level reset: as refnpu_core_reset(), except that
 * the jobs in flight write nothing, since the memory they were given no
 * longer belongs to their driver.
 */
void refnpu_core_hard_reset(struct refnpu_core *core)
{
	core_reset(core, false);
}

/**
 * refnpu_core_resetting() - whether a device reset is still in progress
 * @core: device
 *
 * Return: true until every queue carried out the last device reset.
 */
bool refnpu_core_resetting(struct refnpu_core *core)
{
	bool r;

	core_lock(core, REFNPU_CORE_DEV_LOCK);
	r = core->resetting;
	core_unlock(core, REFNPU_CORE_DEV_LOCK);
	return r;
}

/**
 * refnpu_core_dma_idle() - whether no queue has a memory access in flight
 * @core: device
 *
 * Return: true when no transfer is in progress at this instant.
 */
bool refnpu_core_dma_idle(struct refnpu_core *core)
{
	unsigned int i;

	core_mb();
	for (i = 0; i < core->num_queues; i++)
		if (core_read(core->queues[i].dma_gen))
			return false;
	return true;
}

/**
 * refnpu_core_stop() - stop every queue before the device goes away
 * @core: device
 *
 * Aborts the jobs in flight and makes refnpu_core_queue_run() return at
 * once from then on.  The platform then waits for its workers.
 */
void refnpu_core_stop(struct refnpu_core *core)
{
	unsigned int i;

	for (i = 0; i < core->num_queues; i++) {
		struct refnpu_core_queue *q = &core->queues[i];

		core_lock(core, (int)i);
		q->stop = true;
		core_write(q->abort, 1);
		core_unlock(core, (int)i);
		if (core->ops->wake)
			core->ops->wake(core->opaque, i);
	}
}

/**
 * refnpu_core_set_paused() - hold or release every queue (VM run state)
 * @core: device
 * @paused: hold
 *
 * While paused, no queue starts a job, and running jobs wait before their
 * next memory access; the platform may wait for refnpu_core_dma_idle().
 */
void refnpu_core_set_paused(struct refnpu_core *core, bool paused)
{
	unsigned int i;

	core_write(core->paused, paused ? 1 : 0);
	core_mb();
	for (i = 0; i < core->num_queues; i++) {
		if (core->ops->wake)
			core->ops->wake(core->opaque, i);
		if (!paused)
			core->ops->kick(core->opaque, i);
	}
}

/**
 * refnpu_core_queue_run_jobs() - process a queue, up to a number of jobs
 * @core: device
 * @queue: queue index
 * @max_jobs: stop after this many jobs (0: until there is nothing to do)
 *
 * Called by the platform's worker after &refnpu_core_ops.kick.  Carries
 * out a pending reset, then runs descriptors from HEAD to TAIL while the
 * queue is enabled and not halted.  A platform that shares a few workers
 * among many queues passes a small @max_jobs and requeues the queue while
 * this returns true, so that one busy queue cannot starve the others.
 * Several calls for one queue must not run at once; calls for different
 * queues may.
 *
 * Return: true when the queue still has work (it stopped at @max_jobs).
 */
bool refnpu_core_queue_run_jobs(struct refnpu_core *core, unsigned int queue,
				unsigned int max_jobs)
{
	struct refnpu_core_queue *q;
	unsigned int jobs = 0;
	bool more = false;

	if (queue >= core->num_queues)
		return false;
	q = &core->queues[queue];

	core_lock(core, (int)queue);
	for (;;) {
		struct refnpu_core_inject inj;
		__u32 idx, size, watchdog_ms;
		__u64 base;

		if (q->reset_req) {
			queue_do_reset(q);
			continue;
		}
		if (q->stop || !(q->ctrl & REFNPU_Q_CTRL_ENABLE) || q->error)
			break;
		if (core_read(core->paused) && core->ops->wait)
			break;
		if (!refnpu_ring_valid(q->ring_base, q->ring_size, q->tail)) {
			base = q->ring_base;
			q->error = REFNPU_ERR_RING;
			core_unlock(core, (int)queue);
			guest_error(core, (int)queue, "invalid ring", base,
				    q->ring_size);
			record_fault(core, queue, REFNPU_ERR_RING,
				     REFNPU_FAULT_F_RING, 0, base, 0);
			core_lock(core, (int)queue);
			continue;
		}
		if (q->head == q->tail)
			break;
		if (max_jobs && jobs == max_jobs) {
			more = true;
			break;
		}

		idx = q->head;
		base = q->ring_base;
		size = q->ring_size;
		watchdog_ms = q->watchdog_ms;
		inj = q->dbg;
		q->dbg.bits = 0;
		q->busy = true;
		core_unlock(core, (int)queue);

		run_job(q, idx, base, size, watchdog_ms, &inj);
		jobs++;

		core_lock(core, (int)queue);
		q->busy = false;
	}
	core_unlock(core, (int)queue);
	return more;
}

/**
 * refnpu_core_queue_run() - process a queue until it has nothing to do
 * @core: device
 * @queue: queue index
 *
 * refnpu_core_queue_run_jobs() without a limit.
 */
void refnpu_core_queue_run(struct refnpu_core *core, unsigned int queue)
{
	refnpu_core_queue_run_jobs(core, queue, 0);
}

/* ------------------------------------------------------------------------
 * Registers
 */

static bool queue_busy_locked(const struct refnpu_core_queue *q)
{
	return q->busy || (!q->error && (q->ctrl & REFNPU_Q_CTRL_ENABLE) &&
			   q->head != q->tail);
}

/* Read a queue register; queue lock held. */
static __u32 queue_read32(struct refnpu_core *c, struct refnpu_core_queue *q,
			  __u32 off)
{
	bool inject = c->caps & REFNPU_CAP_FAULT_INJECT;
	__u32 val = 0;

	switch (off) {
	case REFNPU_Q_RING_BASE:
		return (__u32)q->ring_base;
	case REFNPU_Q_RING_BASE + 4:
		return q->ring_base >> 32;
	case REFNPU_Q_RING_SIZE:
		return q->ring_size;
	case REFNPU_Q_CTRL:
		return q->ctrl;
	case REFNPU_Q_TAIL:
		return q->tail;
	case REFNPU_Q_HEAD:
		return q->head;
	case REFNPU_Q_STATUS:
		if (q->ctrl & REFNPU_Q_CTRL_ENABLE)
			val |= REFNPU_Q_STATUS_ENABLED;
		if (queue_busy_locked(q))
			val |= REFNPU_Q_STATUS_BUSY;
		if (q->error)
			val |= REFNPU_Q_STATUS_ERROR;
		if (q->reset_req)
			val |= REFNPU_Q_STATUS_RESETTING;
		return val;
	case REFNPU_Q_WATCHDOG_MS:
		return q->watchdog_ms;
	case REFNPU_Q_ERROR:
		return q->error;
	case REFNPU_Q_LAST_SEQ:
		return (__u32)q->last_seq;
	case REFNPU_Q_LAST_SEQ + 4:
		return q->last_seq >> 32;
	case REFNPU_Q_DBG_INJECT:
		return inject ? q->dbg.bits : 0;
	case REFNPU_Q_DBG_ERROR:
		return inject ? q->dbg.error : 0;
	case REFNPU_Q_DBG_DELAY_US:
		return inject ? q->dbg.delay_us : 0;
	case REFNPU_Q_DBG_FAULT_VA:
		return inject ? (__u32)q->dbg.fault_va : 0;
	case REFNPU_Q_DBG_FAULT_VA + 4:
		return inject ? q->dbg.fault_va >> 32 : 0;
	default:
		return 0;
	}
}

/* TLB_INVALIDATE reads BUSY while an access may use older translations. */
static bool tlb_busy(struct refnpu_core *c)
{
	__u32 gen = core_read(c->tlb_gen);
	unsigned int i;

	core_mb();
	for (i = 0; i < c->num_queues; i++) {
		__u32 g = core_read(c->queues[i].dma_gen);

		if (g && g != gen)
			return true;
	}
	return false;
}

/* Bump the TLB generation; every queue drops its translations. */
static void tlb_invalidate(struct refnpu_core *c)
{
	core_write(c->tlb_gen, c->tlb_gen + 1 ? c->tlb_gen + 1 : 1);
	core_mb();
}

/* Read a global register; device lock held. */
static __u32 global_read32(struct refnpu_core *c, __u32 addr)
{
	__u64 ts;

	switch (addr) {
	case REFNPU_REG_ID:
		return REFNPU_ID_VALUE;
	case REFNPU_REG_VERSION:
		return REFNPU_VERSION_VALUE;
	case REFNPU_REG_CAPS:
		return c->caps;
	case REFNPU_REG_NUM_QUEUES:
		return c->num_queues;
	case REFNPU_REG_MMU_CAPS:
		return REFNPU_MMU_CAPS_VALUE;
	case REFNPU_REG_MAX_CONTEXTS:
		return REFNPU_MAX_CONTEXTS;
	case REFNPU_REG_TIMESTAMP_FREQ:
		return REFNPU_TIMESTAMP_FREQ_HZ;
	case REFNPU_REG_TIMESTAMP:
		/* Reading the low half latches the high half. */
		ts = core_now(c);
		c->ts_hi = ts >> 32;
		c->ts_latched = true;
		return (__u32)ts;
	case REFNPU_REG_TIMESTAMP + 4:
		return c->ts_latched ? c->ts_hi : core_now(c) >> 32;
	case REFNPU_REG_TLB_INVALIDATE:
		return tlb_busy(c) ? REFNPU_TLB_INV_BUSY : 0;
	case REFNPU_REG_IRQ_STATUS:
		return c->irq_status;
	case REFNPU_REG_IRQ_MASK:
		return c->irq_mask;
	case REFNPU_REG_CTX_TABLE_BASE:
		return (__u32)c->ctx_table_base;
	case REFNPU_REG_CTX_TABLE_BASE + 4:
		return c->ctx_table_base >> 32;
	case REFNPU_REG_CTX_TABLE_COUNT:
		return c->ctx_table_count;
	case REFNPU_REG_FAULT_STATUS:
		return c->fault_status;
	case REFNPU_REG_FAULT_CTX:
		return c->fault_ctx;
	case REFNPU_REG_FAULT_ADDR:
		return (__u32)c->fault_addr;
	case REFNPU_REG_FAULT_ADDR + 4:
		return c->fault_addr >> 32;
	case REFNPU_REG_FAULT_SEQ:
		return (__u32)c->fault_seq;
	case REFNPU_REG_FAULT_SEQ + 4:
		return c->fault_seq >> 32;
	case REFNPU_REG_SCRATCH:
		return c->scratch;
	default:
		return 0;
	}
}

/* Queue index of a queue-block address, or -1. */
static int queue_of(struct refnpu_core *c, __u32 addr, __u32 *off)
{
	__u32 qi;

	if (addr < REFNPU_QUEUE_BLOCK_BASE)
		return -1;
	qi = (addr - REFNPU_QUEUE_BLOCK_BASE) / REFNPU_QUEUE_BLOCK_STRIDE;
	*off = (addr - REFNPU_QUEUE_BLOCK_BASE) % REFNPU_QUEUE_BLOCK_STRIDE;
	return qi < c->num_queues ? (int)qi : -2;
}

/**
 * refnpu_core_read() - read a register
 * @core: device
 * @addr: byte offset in BAR0
 * @size: 4, or 8 for both halves of a 64-bit register at once
 *
 * An 8-byte read returns both halves from one lock section, so a 64-bit
 * register never tears.
 *
 * Return: the register value (0 for undefined offsets).
 */
__u64 refnpu_core_read(struct refnpu_core *core, __u32 addr,
		       unsigned int size)
{
	__u32 off = 0;
	int qi = queue_of(core, addr, &off);
	__u64 val = 0;
	unsigned int i;

	if (qi == -2)
		return 0;
	if (qi >= 0) {
		struct refnpu_core_queue *q = &core->queues[qi];

		core_lock(core, qi);
		val = queue_read32(core, q, off);
		if (size == 8)
			val |= (__u64)queue_read32(core, q, off + 4) << 32;
		core_unlock(core, qi);
		return val;
	}

	if (addr == REFNPU_REG_STATUS) {
		__u32 st = 0;

		for (i = 0; i < core->num_queues; i++) {
			core_lock(core, (int)i);
			if (queue_busy_locked(&core->queues[i]))
				st |= REFNPU_STATUS_BUSY;
			core_unlock(core, (int)i);
		}
		core_lock(core, REFNPU_CORE_DEV_LOCK);
		if (!core->resetting)
			st |= REFNPU_STATUS_READY;
		if (core->fault_status & REFNPU_FAULT_STATUS_VALID)
			st |= REFNPU_STATUS_FAULT;
		core_unlock(core, REFNPU_CORE_DEV_LOCK);
		return st;
	}

	core_lock(core, REFNPU_CORE_DEV_LOCK);
	if (size == 8 && addr == REFNPU_REG_TIMESTAMP) {
		val = core_now(core);
	} else {
		val = global_read32(core, addr);
		if (size == 8)
			val |= (__u64)global_read32(core, addr + 4) << 32;
	}
	core_unlock(core, REFNPU_CORE_DEV_LOCK);
	return val;
}

/* Write a queue register.  Returns whether the worker must be kicked. */
static bool queue_write32(struct refnpu_core *c, struct refnpu_core_queue *q,
			  __u32 off, __u32 val)
{
	bool inject = c->caps & REFNPU_CAP_FAULT_INJECT;
	bool kick = false;

	if (off == REFNPU_Q_RESET) {
		if (val & REFNPU_Q_RESET_GO)
			return queue_request_reset(q, false, true);
		return false;
	}

	core_lock(c, (int)q->idx);
	switch (off) {
	case REFNPU_Q_RING_BASE:
		q->ring_base = deposit_lo(q->ring_base, val);
		break;
	case REFNPU_Q_RING_BASE + 4:
		q->ring_base = deposit_hi(q->ring_base, val);
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
		core_event(c, REFNPU_CORE_EV_DOORBELL, (int)q->idx, 0, 0, val,
			   0, NULL);
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
			q->dbg.fault_va = deposit_lo(q->dbg.fault_va, val);
		break;
	case REFNPU_Q_DBG_FAULT_VA + 4:
		if (inject)
			q->dbg.fault_va = deposit_hi(q->dbg.fault_va, val);
		break;
	default:
		core_unlock(c, (int)q->idx);
		guest_error(c, (int)q->idx,
			    "write to a read-only or undefined queue register",
			    off, val);
		return false;
	}
	core_unlock(c, (int)q->idx);
	return kick;
}

static void global_write32(struct refnpu_core *c, __u32 addr, __u32 val)
{
	__u32 unmasked;

	switch (addr) {
	case REFNPU_REG_RESET:
		if (val & REFNPU_RESET_GO)
			refnpu_core_reset(c);
		return;
	case REFNPU_REG_DBG_SPURIOUS_IRQ:
		if ((c->caps & REFNPU_CAP_FAULT_INJECT) &&
		    val < REFNPU_MSIX_NUM_VECTORS(c->num_queues))
			c->ops->irq(c->opaque, val);
		return;
	default:
		break;
	}

	core_lock(c, REFNPU_CORE_DEV_LOCK);
	switch (addr) {
	case REFNPU_REG_TLB_INVALIDATE:
		/* Per-context invalidation drops every context: always correct. */
		tlb_invalidate(c);
		core_event(c, REFNPU_CORE_EV_TLB_INVALIDATE, -1, 0, 0, val, 0,
			   NULL);
		break;
	case REFNPU_REG_IRQ_STATUS:
		c->irq_status &= ~val;
		break;
	case REFNPU_REG_IRQ_MASK:
		unmasked = c->irq_mask & ~val;
		c->irq_mask = val & (REFNPU_GENMASK(c->num_queues - 1, 0) |
				     REFNPU_IRQ_ERROR);
		/* Sources pending while masked fire when unmasked. */
		if (c->irq_status & unmasked)
			irq_raise_locked(c, c->irq_status & unmasked, true);
		break;
	case REFNPU_REG_CTX_TABLE_BASE:
		c->ctx_table_base = deposit_lo(c->ctx_table_base, val);
		tlb_invalidate(c);
		break;
	case REFNPU_REG_CTX_TABLE_BASE + 4:
		c->ctx_table_base = deposit_hi(c->ctx_table_base, val);
		tlb_invalidate(c);
		break;
	case REFNPU_REG_CTX_TABLE_COUNT:
		c->ctx_table_count = val < REFNPU_MAX_CONTEXTS ?
				     val : REFNPU_MAX_CONTEXTS;
		tlb_invalidate(c);
		break;
	case REFNPU_REG_FAULT_ACK:
		if (val & REFNPU_FAULT_ACK_GO) {
			c->fault_status = 0;
			c->fault_ctx = 0;
			c->fault_addr = 0;
			c->fault_seq = 0;
		}
		break;
	case REFNPU_REG_SCRATCH:
		c->scratch = val;
		break;
	default:
		core_unlock(c, REFNPU_CORE_DEV_LOCK);
		guest_error(c, -1, "write to a read-only or undefined register",
			    addr, val);
		return;
	}
	core_unlock(c, REFNPU_CORE_DEV_LOCK);
}

/**
 * refnpu_core_write() - write a register
 * @core: device
 * @addr: byte offset in BAR0
 * @val: value
 * @size: 4, or 8 for a 64-bit register (low half takes effect first)
 */
void refnpu_core_write(struct refnpu_core *core, __u32 addr, __u64 val,
		       unsigned int size)
{
	unsigned int half;

	for (half = 0; half < (size == 8 ? 2U : 1U); half++) {
		__u32 a = addr + 4 * half, v = (__u32)(val >> (32 * half));
		__u32 off = 0;
		int qi = queue_of(core, a, &off);

		if (qi == -2)
			continue;
		if (qi < 0) {
			global_write32(core, a, v);
			continue;
		}
		if (queue_write32(core, &core->queues[qi], off, v))
			core->ops->kick(core->opaque, (unsigned int)qi);
	}
}
