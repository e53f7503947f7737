/*
 * refnpu: reference NPU, PCI device model
 *
 * What the device does -- registers, queues, rings, completion and fault
 * records, TLB invalidation, reset, watchdog, fault injection -- is the
 * shared device core (refnpu_core.c), which the refnpu driver's in-kernel
 * virtual device runs as well; commands are executed by the shared compute
 * engine (refnpu_engine.c).  This file is the transport: MMIO, MSI-X, DMA,
 * threads, the host fast path for fp32 GEMM, and QEMU's life cycle.
 * Documentation/hardware.rst of the refnpu project is the specification.
 *
 * Threading model:
 *  - MMIO handlers run on vCPU threads under the BQL and only update the
 *    core's registers; a doorbell puts its queue on the device's run queue
 *    and signals a worker.
 *  - A bounded pool of worker threads (property num-workers) runs the
 *    queues, outside the BQL, a few jobs at a time in turn, so one busy
 *    queue cannot starve the others and a guest cannot make the host run
 *    more threads than the pool.  A job that waits (injected hang or
 *    delay) holds its worker until it ends, is aborted or times out.
 *  - All device memory accesses are DMA through refnpu_op_dma() with the
 *    "memory" transaction attribute, so they are translated by a vIOMMU
 *    when there is one and never reach device MMIO.  Without a vIOMMU a
 *    worker never takes the BQL.  Behind one (decided once, at realize) it
 *    holds the BQL for each access and for nothing else, because a vIOMMU
 *    reports a translation fault by raising an interrupt on the spot; after
 *    taking the BQL it checks whether its job was aborted meanwhile, so a
 *    reset (which runs under the BQL) never has to wait for a worker and
 *    no access lands after it.
 *  - Interrupts are latched in a pending mask and sent by a bottom half.
 *  - While the VM is stopped, no job starts and running jobs wait before
 *    their next memory access.
 *  - With x-sync=on there are no workers: a doorbell runs the queue in
 *    the MMIO handler, and waits end as the watchdog would.  Every result
 *    then depends only on the guest's accesses (for fuzzing).
 *
 * Host memory: the GEMM fast path's buffers are charged against the
 * device's host-mem-budget and allocated with non-aborting allocators;
 * a GEMM that does not fit runs on the reference engine instead.
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include <math.h>
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/queue.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/qdev-properties.h"
#include "hw/core/qdev-prop-internal.h"
#include "migration/vmstate.h"
#include "system/dma.h"
#include "system/runstate.h"
#include "trace.h"

#include "refnpu_hw.h"
#include "refnpu_core.h"
#include "refnpu_engine.h"
#include "refnpu-gemm.h"

#define TYPE_REFNPU "refnpu"
OBJECT_DECLARE_SIMPLE_TYPE(RefnpuState, REFNPU)

/* Largest B operand the GEMM fast path gathers into host memory. */
#define REFNPU_FAST_GEMM_MAX_B (256 * MiB)
/* Largest slice of A and of C the fast path holds at once. */
#define REFNPU_FAST_GEMM_MAX_SLICE (64 * MiB)
/* Scratch a queue keeps between jobs, at most; larger buffers are freed. */
#define REFNPU_SCRATCH_KEEP (48 * MiB)
/* Default host-mem-budget: one largest fast-path GEMM fits. */
#define REFNPU_DEFAULT_MEM_BUDGET (512 * MiB)
#define REFNPU_DEFAULT_WORKERS 4
/* Jobs a worker runs of one queue before it turns to the next queue. */
#define REFNPU_JOBS_PER_TURN 4
/* How long a system reset or a VM stop waits for the workers. */
#define REFNPU_RESET_WAIT_MS 2000

typedef struct RefnpuState RefnpuState;

enum {
    REFNPU_SCRATCH_A,
    REFNPU_SCRATCH_B,
    REFNPU_SCRATCH_C,
    REFNPU_SCRATCH_BIAS,
    REFNPU_SCRATCH_WORK,
    REFNPU_SCRATCH_COUNT,
};

/* Host buffer reused from job to job, charged to the device's budget. */
typedef struct RefnpuScratch {
    void *p;
    size_t size;
} RefnpuScratch;

typedef enum RefnpuSched {
    REFNPU_SCHED_IDLE,      /* not on the run queue, no worker */
    REFNPU_SCHED_QUEUED,    /* on the run queue */
    REFNPU_SCHED_RUNNING,   /* a worker runs it */
} RefnpuSched;

typedef struct RefnpuQueue {
    RefnpuState *s;
    unsigned idx;
    QemuMutex lock;         /* the core's lock of this queue */

    /* refnpu_op_wait() / refnpu_op_wake() */
    QemuMutex wait_lock;
    QemuCond wait_cond;
    bool woken;             /* wait_lock */

    /* Scheduling (RefnpuState.sched_lock) */
    RefnpuSched sched;
    bool rerun;             /* kicked while running */
    QSIMPLEQ_ENTRY(RefnpuQueue) sched_next;

    /* Worker-private: whoever runs the queue */
    RefnpuScratch scratch[REFNPU_SCRATCH_COUNT];
} RefnpuQueue;

typedef enum RefnpuGemmKernelId {
    REFNPU_GEMM_KERNEL_AUTO,
    REFNPU_GEMM_KERNEL_GENERIC,
    REFNPU_GEMM_KERNEL_AVX2,
    REFNPU_GEMM_KERNEL_AVX512,
    REFNPU_GEMM_KERNEL__MAX,
} RefnpuGemmKernelId;

struct RefnpuState {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    struct refnpu_core core;
    QemuMutex lock;         /* the core's device lock */
    QEMUBH *irq_bh;
    uint32_t irq_pending;   /* MSI-X vectors to notify (atomic) */
    int64_t clock_base;     /* QEMU_CLOCK_VIRTUAL at creation */
    bool dma_bql;           /* behind a vIOMMU: DMA under the BQL */
    VMChangeStateEntry *vmstate;
    QemuSemaphore reset_sem; /* posted when a device reset completes */

    /* Worker pool */
    QemuMutex sched_lock;
    QemuCond sched_cond;
    QSIMPLEQ_HEAD(, RefnpuQueue) runq;
    bool pool_stop;         /* sched_lock */
    QemuThread *workers;
    unsigned nworkers;

    /* Host memory held by scratch buffers (mem_lock) */
    QemuMutex mem_lock;
    uint64_t mem_used;
    uint64_t scratch_keep;

    /* Properties */
    uint32_t num_queues;
    uint32_t num_workers;
    bool fault_inject;
    bool fast_gemm;
    int gemm_kernel_id;
    uint64_t mem_budget;
    bool sync;

    const RefnpuGemmKernel *gemm_kernel;
    RefnpuQueue queues[REFNPU_MAX_QUEUES];
};

static const MemTxAttrs refnpu_attrs = { .memory = 1 };

static unsigned refnpu_num_vectors(RefnpuState *s)
{
    return REFNPU_MSIX_NUM_VECTORS(s->num_queues);
}

/*
 * ---------------------------------------------------------------------
 * Platform interface of the device core
 */

static __u32 refnpu_op_dma(void *opaque, unsigned int queue, __u64 addr,
                           void *buf, __u64 len, bool write)
{
    RefnpuState *s = opaque;
    DMADirection dir = write ? DMA_DIRECTION_FROM_DEVICE :
                               DMA_DIRECTION_TO_DEVICE;
    MemTxResult r;

    if (s->dma_bql && !bql_locked()) {
        bql_lock();
        /*
         * A reset, the device's removal or a VM stop may have happened
         * while we waited for the BQL: they do not wait for us, so the
         * access must not happen after them.
         */
        while (qatomic_read(&s->core.paused) &&
               !refnpu_core_queue_aborted(&s->core, queue)) {
            bql_unlock();
            g_usleep(1000);
            bql_lock();
        }
        if (refnpu_core_queue_aborted(&s->core, queue)) {
            bql_unlock();
            return REFNPU_ERR_ABORTED;
        }
        r = pci_dma_rw(PCI_DEVICE(s), addr, buf, len, dir, refnpu_attrs);
        bql_unlock();
    } else {
        r = pci_dma_rw(PCI_DEVICE(s), addr, buf, len, dir, refnpu_attrs);
    }
    if (r != MEMTX_OK) {
        trace_refnpu_dma_error(queue, addr, len, write, r);
        return REFNPU_ERR_DMA;
    }
    return REFNPU_ERR_NONE;
}

static void refnpu_irq_bh(void *opaque)
{
    RefnpuState *s = opaque;
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t pending = qatomic_xchg(&s->irq_pending, 0);

    while (pending) {
        unsigned vector = ctz32(pending);

        pending &= pending - 1;
        if (msix_enabled(pdev) && vector < refnpu_num_vectors(s)) {
            trace_refnpu_irq(vector);
            msix_notify(pdev, vector);
        }
    }
}

/* Any thread, core locks possibly held: latch and schedule only. */
static void refnpu_op_irq(void *opaque, unsigned int vector)
{
    RefnpuState *s = opaque;

    if (vector < 32) {
        qatomic_or(&s->irq_pending, 1u << vector);
        qemu_bh_schedule(s->irq_bh);
    }
}

/*
 * Device time (REFNPU_REG_TIMESTAMP, completion timestamps, watchdog):
 * nanoseconds of QEMU's virtual clock since the device was created.
 */
static __u64 refnpu_op_now_ns(void *opaque)
{
    RefnpuState *s = opaque;

    return qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) - s->clock_base;
}

static QemuMutex *refnpu_core_mutex(RefnpuState *s, int lock)
{
    return lock == REFNPU_CORE_DEV_LOCK ? &s->lock : &s->queues[lock].lock;
}

static void refnpu_op_lock(void *opaque, int lock)
{
    qemu_mutex_lock(refnpu_core_mutex(opaque, lock));
}

static void refnpu_op_unlock(void *opaque, int lock)
{
    qemu_mutex_unlock(refnpu_core_mutex(opaque, lock));
}

/* Put @q on the run queue; sched_lock held. */
static void refnpu_sched_enqueue(RefnpuState *s, RefnpuQueue *q)
{
    q->sched = REFNPU_SCHED_QUEUED;
    QSIMPLEQ_INSERT_TAIL(&s->runq, q, sched_next);
    qemu_cond_signal(&s->sched_cond);
}

static void refnpu_op_kick(void *opaque, unsigned int queue)
{
    RefnpuState *s = opaque;
    RefnpuQueue *q = &s->queues[queue];

    qemu_mutex_lock(&s->sched_lock);
    if (!s->pool_stop) {
        if (q->sched == REFNPU_SCHED_IDLE) {
            refnpu_sched_enqueue(s, q);
        } else if (q->sched == REFNPU_SCHED_RUNNING) {
            q->rerun = true;
        }
    }
    qemu_mutex_unlock(&s->sched_lock);
}

static void refnpu_scratch_trim(RefnpuQueue *q, bool all);

/*
 * x-sync: run the queue here and now (the core kicks a synchronous
 * platform with no lock held; MMIO and reset run under the BQL, so runs
 * never overlap).  A kick from inside a run only asks for another round.
 */
static void refnpu_sync_kick(void *opaque, unsigned int queue)
{
    RefnpuState *s = opaque;
    RefnpuQueue *q = &s->queues[queue];

    if (q->sched == REFNPU_SCHED_RUNNING) {
        q->rerun = true;
        return;
    }
    q->sched = REFNPU_SCHED_RUNNING;
    do {
        q->rerun = false;
        refnpu_core_queue_run(&s->core, queue);
    } while (q->rerun);
    q->sched = REFNPU_SCHED_IDLE;
    refnpu_scratch_trim(q, false);
}

static void refnpu_op_wait(void *opaque, unsigned int queue, __u64 ns)
{
    RefnpuState *s = opaque;
    RefnpuQueue *q = &s->queues[queue];

    if (ns < SCALE_MS) {
        g_usleep(MAX(ns / SCALE_US, 1));
        return;
    }
    qemu_mutex_lock(&q->wait_lock);
    if (!q->woken) {
        qemu_cond_timedwait(&q->wait_cond, &q->wait_lock,
                            MIN(ns / SCALE_MS, INT_MAX));
    }
    q->woken = false;
    qemu_mutex_unlock(&q->wait_lock);
}

static void refnpu_op_wake(void *opaque, unsigned int queue)
{
    RefnpuState *s = opaque;
    RefnpuQueue *q = &s->queues[queue];

    qemu_mutex_lock(&q->wait_lock);
    q->woken = true;
    qemu_cond_broadcast(&q->wait_cond);
    qemu_mutex_unlock(&q->wait_lock);
}

static void refnpu_op_event(void *opaque, const struct refnpu_core_event *ev)
{
    RefnpuState *s = opaque;

    switch (ev->kind) {
    case REFNPU_CORE_EV_DOORBELL:
        trace_refnpu_doorbell(ev->queue, ev->a);
        break;
    case REFNPU_CORE_EV_JOB_START:
        trace_refnpu_job_start(ev->queue, ev->a, ev->b);
        break;
    case REFNPU_CORE_EV_JOB_END:
        trace_refnpu_job_end(ev->queue, ev->a, ev->code);
        break;
    case REFNPU_CORE_EV_FAULT:
        trace_refnpu_fault(ev->queue, ev->code, ev->a, ev->b, ev->flags);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: queue %d job seq %" PRIu64 ": error 0x%x "
                      "(%s) at 0x%" PRIx64 " flags 0x%x\n",
                      ev->queue, (uint64_t)ev->b, ev->code,
                      ev->msg ? ev->msg : "?", (uint64_t)ev->a, ev->flags);
        break;
    case REFNPU_CORE_EV_RESET:
        trace_refnpu_reset(ev->queue);
        if (ev->queue < 0) {
            qemu_sem_post(&s->reset_sem);
        }
        break;
    case REFNPU_CORE_EV_TLB_INVALIDATE:
        trace_refnpu_tlb_invalidate(ev->a);
        break;
    case REFNPU_CORE_EV_GUEST_ERROR:
        trace_refnpu_guest_error(ev->queue, ev->msg, ev->a, ev->b);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: queue %d: %s (0x%" PRIx64 ", 0x%" PRIx64 ")\n",
                      ev->queue, ev->msg, (uint64_t)ev->a, (uint64_t)ev->b);
        break;
    }
}

static __u32 refnpu_gemm_f32(void *opaque, struct refnpu_core_job *job,
                             const struct refnpu_cmd_gemm *g,
                             __u64 *fault_va, __u32 *fault_flags);

static const struct refnpu_core_ops refnpu_core_ops = {
    .dma = refnpu_op_dma,
    .irq = refnpu_op_irq,
    .now_ns = refnpu_op_now_ns,
    .lock = refnpu_op_lock,
    .unlock = refnpu_op_unlock,
    .kick = refnpu_op_kick,
    .wait = refnpu_op_wait,
    .wake = refnpu_op_wake,
    .gemm_f32 = refnpu_gemm_f32,
    .event = refnpu_op_event,
};

/* x-sync=on: no workers, no waiting. */
static const struct refnpu_core_ops refnpu_sync_core_ops = {
    .dma = refnpu_op_dma,
    .irq = refnpu_op_irq,
    .now_ns = refnpu_op_now_ns,
    .lock = refnpu_op_lock,
    .unlock = refnpu_op_unlock,
    .kick = refnpu_sync_kick,
    .gemm_f32 = refnpu_gemm_f32,
    .event = refnpu_op_event,
};

/*
 * ---------------------------------------------------------------------
 * Worker pool
 */

static void *refnpu_worker(void *opaque)
{
    RefnpuState *s = opaque;

    qemu_mutex_lock(&s->sched_lock);
    for (;;) {
        RefnpuQueue *q;
        bool more;

        while (!s->pool_stop && QSIMPLEQ_EMPTY(&s->runq)) {
            qemu_cond_wait(&s->sched_cond, &s->sched_lock);
        }
        if (s->pool_stop) {
            break;
        }
        q = QSIMPLEQ_FIRST(&s->runq);
        QSIMPLEQ_REMOVE_HEAD(&s->runq, sched_next);
        q->sched = REFNPU_SCHED_RUNNING;
        q->rerun = false;
        qemu_mutex_unlock(&s->sched_lock);

        more = refnpu_core_queue_run_jobs(&s->core, q->idx,
                                          REFNPU_JOBS_PER_TURN);
        refnpu_scratch_trim(q, false);

        qemu_mutex_lock(&s->sched_lock);
        if ((more || q->rerun) && !s->pool_stop) {
            refnpu_sched_enqueue(s, q);     /* to the back: round robin */
        } else {
            q->sched = REFNPU_SCHED_IDLE;
        }
    }
    qemu_mutex_unlock(&s->sched_lock);
    return NULL;
}

/*
 * ---------------------------------------------------------------------
 * Host memory for the GEMM fast path
 */

static bool refnpu_mem_charge(RefnpuState *s, uint64_t size)
{
    bool ok;

    qemu_mutex_lock(&s->mem_lock);
    ok = size <= s->mem_budget && s->mem_used <= s->mem_budget - size;
    if (ok) {
        s->mem_used += size;
    }
    qemu_mutex_unlock(&s->mem_lock);
    return ok;
}

static void refnpu_mem_uncharge(RefnpuState *s, uint64_t size)
{
    qemu_mutex_lock(&s->mem_lock);
    s->mem_used -= size;
    qemu_mutex_unlock(&s->mem_lock);
}

static void refnpu_scratch_free(RefnpuQueue *q, unsigned i)
{
    RefnpuScratch *sc = &q->scratch[i];

    if (sc->p) {
        qemu_vfree(sc->p);
        refnpu_mem_uncharge(q->s, sc->size);
    }
    sc->p = NULL;
    sc->size = 0;
}

/* A buffer of at least @size bytes, or NULL when over budget or OOM. */
static float *refnpu_scratch_get(RefnpuQueue *q, unsigned i, uint64_t size)
{
    RefnpuScratch *sc = &q->scratch[i];

    if (sc->p && sc->size >= size) {
        return sc->p;
    }
    refnpu_scratch_free(q, i);
    if (size > SIZE_MAX || !refnpu_mem_charge(q->s, size)) {
        return NULL;
    }
    sc->p = qemu_try_memalign(64, size);
    if (!sc->p) {
        refnpu_mem_uncharge(q->s, size);
        return NULL;
    }
    sc->size = size;
    return sc->p;
}

static void refnpu_scratch_trim(RefnpuQueue *q, bool all)
{
    size_t total = 0;

    for (unsigned i = 0; i < REFNPU_SCRATCH_COUNT; i++) {
        total += q->scratch[i].size;
    }
    if (all || total > q->s->scratch_keep) {
        for (unsigned i = 0; i < REFNPU_SCRATCH_COUNT; i++) {
            refnpu_scratch_free(q, i);
        }
    }
}

/*
 * ---------------------------------------------------------------------
 * fp32 GEMM fast path
 */

static bool refnpu_gemm_stop(void *opaque)
{
    return refnpu_core_job_check(opaque) != REFNPU_ERR_NONE;
}

static inline float refnpu_relu(float x)
{
    return x < 0.0f ? 0.0f : x;   /* as the engine: keeps NaN and -0 */
}

/* Largest magnitude of @n floats; false if any is infinite or NaN. */
static bool refnpu_absmax(const float *p, size_t n, float *max)
{
    float m = *max;

    for (size_t i = 0; i < n; i++) {
        float v = fabsf(p[i]);

        if (!(v <= FLT_MAX)) {
            return false;
        }
        m = v > m ? v : m;
    }
    *max = m;
    return true;
}

/*
 * Whether no sum of products, in any order, rounded or fused, can
 * overflow: then neither this path nor the reference produces an
 * infinity from finite inputs, and the two agree on which results are
 * infinite (none), as the specification requires.  The factor 2^-8 covers
 * the rounding errors of up to 2^26 terms ((1 + 2^-24)^(2^26) < e^4).
 */
static bool refnpu_gemm_in_range(float amax, float bmax, float biasmax,
                                 uint64_t k)
{
    double bound = (double)amax * bmax * (double)k + biasmax;

    return bound < FLT_MAX * 0x1p-8;
}

/*
 * Gather the operands through the device MMU into host buffers, multiply
 * with the blocked host kernel and scatter C back.  Declines (the engine
 * then runs the reference) when the operands do not fit the device's host
 * memory budget, or when an input is infinite or NaN or the products are
 * large enough for the two methods to disagree on overflow.  Memory is
 * touched in a different order than by the reference engine; the first
 * failing access decides the job's error as usual.
 */
static __u32 refnpu_gemm_f32(void *opaque, struct refnpu_core_job *job,
                             const struct refnpu_cmd_gemm *g,
                             __u64 *fault_va, __u32 *fault_flags)
{
    RefnpuState *s = opaque;
    RefnpuQueue *q = &s->queues[job->q->idx];
    bool relu = g->hdr.flags & REFNPU_GEMM_F_RELU;
    bool has_bias = g->hdr.flags & REFNPU_GEMM_F_BIAS;
    uint64_t m = g->m, n = g->n, k = g->k, rows, wide;
    float amax = 0, bmax = 0, biasmax = 0;
    float *a, *b, *c, *bias = NULL, *work;
    uint32_t st = REFNPU_ERR_NONE;

    if (!s->fast_gemm || !k || !n || !m) {
        return REFNPU_ENGINE_DECLINED;
    }
    /* k, n < 2^32, so k * n does not wrap. */
    if (k * n > REFNPU_FAST_GEMM_MAX_B / sizeof(float)) {
        return REFNPU_ENGINE_DECLINED;
    }
    /*
     * Row slices of A and C: rows * wide * 4 <= MAX(MAX_SLICE, wide * 4),
     * and wide <= k * n, so every size below is at most MAX_B.
     */
    wide = MAX(k, n);
    rows = REFNPU_FAST_GEMM_MAX_SLICE / (wide * sizeof(float));
    rows = MAX(MIN(rows, m), 1);

    b = refnpu_scratch_get(q, REFNPU_SCRATCH_B, k * n * sizeof(float));
    a = refnpu_scratch_get(q, REFNPU_SCRATCH_A, rows * k * sizeof(float));
    c = refnpu_scratch_get(q, REFNPU_SCRATCH_C, rows * n * sizeof(float));
    work = refnpu_scratch_get(q, REFNPU_SCRATCH_WORK,
                              refnpu_sgemm_work_size());
    if (has_bias) {
        bias = refnpu_scratch_get(q, REFNPU_SCRATCH_BIAS, n * sizeof(float));
    }
    if (!a || !b || !c || !work || (has_bias && !bias)) {
        trace_refnpu_gemm_declined(q->idx, m, n, k, "host memory budget");
        refnpu_scratch_trim(q, true);
        return REFNPU_ENGINE_DECLINED;
    }

    *fault_flags = 0;
    for (uint64_t r = 0; r < k && !st; r++) {
        st = refnpu_core_job_rw(job, g->b.va + r * g->b.pitch, b + r * n,
                                n * sizeof(float), false, fault_va);
    }
    if (!st && has_bias) {
        st = refnpu_core_job_rw(job, g->bias_va, bias, n * sizeof(float),
                                false, fault_va);
    }
    if (st) {
        return st;
    }
    if (!refnpu_absmax(b, k * n, &bmax) ||
        (has_bias && !refnpu_absmax(bias, n, &biasmax))) {
        trace_refnpu_gemm_declined(q->idx, m, n, k, "non-finite input");
        return REFNPU_ENGINE_DECLINED;
    }
    /* With several slices, look at all of A before any of C is written. */
    for (uint64_t i0 = 0; rows < m && i0 < m && !st; i0 += rows) {
        uint64_t mb = MIN(rows, m - i0);

        for (uint64_t r = 0; r < mb && !st; r++) {
            st = refnpu_core_job_rw(job, g->a.va + (i0 + r) * g->a.pitch,
                                    a + r * k, k * sizeof(float), false,
                                    fault_va);
        }
        if (!st && !refnpu_absmax(a, mb * k, &amax)) {
            amax = INFINITY;
            break;
        }
    }
    if (st) {
        return st;
    }

    for (uint64_t i0 = 0; i0 < m && !st; i0 += rows) {
        uint64_t mb = MIN(rows, m - i0);

        for (uint64_t r = 0; r < mb && !st; r++) {
            st = refnpu_core_job_rw(job, g->a.va + (i0 + r) * g->a.pitch,
                                    a + r * k, k * sizeof(float), false,
                                    fault_va);
        }
        if (st) {
            break;
        }
        if (rows >= m && !refnpu_absmax(a, mb * k, &amax)) {
            amax = INFINITY;
        }
        if (i0 == 0 && !refnpu_gemm_in_range(amax, bmax, biasmax, k)) {
            trace_refnpu_gemm_declined(q->idx, m, n, k, "range");
            return REFNPU_ENGINE_DECLINED;
        }
        if (!refnpu_sgemm(s->gemm_kernel, mb, n, k, a, k, b, n, c, n, work,
                          refnpu_gemm_stop, job)) {
            st = refnpu_core_job_check(job) ?: REFNPU_ERR_ABORTED;
            break;
        }
        if (bias || relu) {
            for (uint64_t r = 0; r < mb; r++) {
                float *row = c + r * n;

                for (uint64_t j = 0; j < n; j++) {
                    float v = row[j];

                    if (bias) {
                        v = v + bias[j];
                    }
                    if (relu) {
                        v = refnpu_relu(v);
                    }
                    row[j] = v;
                }
            }
        }
        for (uint64_t r = 0; r < mb && !st; r++) {
            st = refnpu_core_job_rw(job, g->c.va + (i0 + r) * g->c.pitch,
                                    c + r * n, n * sizeof(float), true,
                                    fault_va);
            if (st) {
                *fault_flags = REFNPU_FAULT_F_WRITE;
            }
        }
    }
    return st;
}

/*
 * ---------------------------------------------------------------------
 * MMIO
 */

static uint64_t refnpu_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    RefnpuState *s = opaque;
    uint64_t val = refnpu_core_read(&s->core, addr, size);

    trace_refnpu_mmio_read(addr, size, val);
    return val;
}

static void refnpu_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                              unsigned size)
{
    RefnpuState *s = opaque;

    trace_refnpu_mmio_write(addr, size, val);
    refnpu_core_write(&s->core, addr, val, size);
}

static const MemoryRegionOps refnpu_mmio_ops = {
    .read = refnpu_mmio_read,
    .write = refnpu_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

/*
 * ---------------------------------------------------------------------
 * Device life cycle
 */

/*
 * System reset.  Idle queues reset at once; a queue with a job in flight
 * aborts it and resets on its worker.  This is a hard reset: unlike a
 * write of REFNPU_REG_RESET, it writes no completion record for the
 * aborted jobs, since guest memory is no longer the old driver's.  Behind a vIOMMU a worker's access
 * needs the BQL, which we hold, and re-checks the abort once it has it, so
 * nothing can land after this returns: no need to wait (STATUS.READY tells
 * the driver when the reset is complete).  Without one, workers never
 * need the BQL and stop within one chunk of work: wait for them, bounded.
 */
static void refnpu_reset_hold(Object *obj, ResetType type)
{
    RefnpuState *s = REFNPU(obj);
    int64_t deadline = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                       REFNPU_RESET_WAIT_MS;

    refnpu_core_hard_reset(&s->core);
    if (s->dma_bql) {
        return;
    }
    while (refnpu_core_resetting(&s->core)) {
        int64_t left = deadline - qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

        if (left <= 0) {
            warn_report("refnpu: device reset continues in the background");
            break;
        }
        qemu_sem_timedwait(&s->reset_sem, MIN(left, 10));
    }
}

/*
 * VM run state: while stopped, no job starts and running jobs hold before
 * their next access.  Without a vIOMMU, wait for accesses in flight (each
 * at most REFNPU_CORE_DMA_CHUNK bytes).  Behind one, none can be in flight:
 * we hold the BQL, and refnpu_op_dma() checks the pause after taking it.
 */
static void refnpu_vm_state_change(void *opaque, bool running,
                                   RunState state)
{
    RefnpuState *s = opaque;
    int64_t deadline = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                       REFNPU_RESET_WAIT_MS;

    trace_refnpu_vm_state(running);
    refnpu_core_set_paused(&s->core, !running);
    if (running || s->dma_bql || s->sync) {
        return;
    }
    while (!refnpu_core_dma_idle(&s->core)) {
        if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) >= deadline) {
            warn_report("refnpu: DMA still in flight after the VM stopped");
            break;
        }
        g_usleep(100);
    }
}

/*
 * Stop and join every worker.  A worker behind a vIOMMU may be waiting
 * for the BQL (which unrealize holds), so let it have the BQL meanwhile;
 * once it has it, it sees the abort and touches nothing.  Nothing is torn
 * down before every worker has returned.
 */
static void refnpu_stop_workers(RefnpuState *s)
{
    bool drop_bql = s->dma_bql && bql_locked();

    refnpu_core_stop(&s->core);
    qemu_mutex_lock(&s->sched_lock);
    s->pool_stop = true;
    qemu_cond_broadcast(&s->sched_cond);
    qemu_mutex_unlock(&s->sched_lock);

    if (drop_bql) {
        bql_unlock();
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        qemu_thread_join(&s->workers[i]);
    }
    if (drop_bql) {
        bql_lock();
    }
    g_free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
}

static void refnpu_free_sync(RefnpuState *s)
{
    for (unsigned i = 0; i < s->num_queues; i++) {
        RefnpuQueue *q = &s->queues[i];

        refnpu_scratch_trim(q, true);
        qemu_cond_destroy(&q->wait_cond);
        qemu_mutex_destroy(&q->wait_lock);
        qemu_mutex_destroy(&q->lock);
    }
    qemu_mutex_destroy(&s->mem_lock);
    qemu_cond_destroy(&s->sched_cond);
    qemu_mutex_destroy(&s->sched_lock);
    qemu_sem_destroy(&s->reset_sem);
    qemu_mutex_destroy(&s->lock);
}

static const char *const refnpu_gemm_kernel_names[] = {
    [REFNPU_GEMM_KERNEL_AUTO] = "auto",
    [REFNPU_GEMM_KERNEL_GENERIC] = "generic",
    [REFNPU_GEMM_KERNEL_AVX2] = "avx2",
    [REFNPU_GEMM_KERNEL_AVX512] = "avx512",
};

/*
 * PCI power management: D0 and D3hot, no PME.  QEMU disables the BARs
 * outside D0; the device keeps its state across D3hot (No_Soft_Reset), so
 * the driver resets it after resume as after probe.
 */
static bool refnpu_init_pm(PCIDevice *pdev, uint8_t offset, Error **errp)
{
    if (pci_pm_init(pdev, offset, errp) < 0) {
        return false;
    }
    pci_set_word(pdev->config + offset + PCI_PM_PMC, PCI_PM_CAP_VER_1_2);
    pci_set_word(pdev->config + offset + PCI_PM_CTRL,
                 PCI_PM_CTRL_NO_SOFT_RESET);
    pci_set_word(pdev->wmask + offset + PCI_PM_CTRL, PCI_PM_CTRL_STATE_MASK);
    return true;
}

static void refnpu_realize(PCIDevice *pdev, Error **errp)
{
    RefnpuState *s = REFNPU(pdev);
    DeviceState *dev = DEVICE(pdev);
    uint32_t caps;

    if (s->num_queues < REFNPU_MIN_QUEUES ||
        s->num_queues > REFNPU_MAX_QUEUES) {
        error_setg(errp, "refnpu: num-queues must be in [%u, %u]",
                   REFNPU_MIN_QUEUES, REFNPU_MAX_QUEUES);
        return;
    }
    if (!s->sync && (s->num_workers < 1 || s->num_workers > 64)) {
        error_setg(errp, "refnpu: num-workers must be in [1, 64]");
        return;
    }
    s->gemm_kernel =
        refnpu_sgemm_kernel(refnpu_gemm_kernel_names[s->gemm_kernel_id]);
    if (!s->gemm_kernel) {
        error_setg(errp, "refnpu: GEMM kernel '%s' is not supported by "
                   "this host", refnpu_gemm_kernel_names[s->gemm_kernel_id]);
        return;
    }

    s->clock_base = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    pci_set_word(pdev->config + PCI_SUBSYSTEM_VENDOR_ID,
                 REFNPU_PCI_SUBSYSTEM_VENDOR_ID);
    pci_set_word(pdev->config + PCI_SUBSYSTEM_ID, REFNPU_PCI_SUBSYSTEM_ID);

    if (!refnpu_init_pm(pdev, 0x60, errp)) {
        return;
    }
    if (pcie_endpoint_cap_init(pdev, 0x80) < 0) {
        error_setg(errp, "refnpu: cannot add the PCI Express capability");
        return;
    }

    memory_region_init_io(&s->mmio, OBJECT(s), &refnpu_mmio_ops, s,
                          "refnpu-regs", REFNPU_BAR_REGS_SIZE);
    pci_register_bar(pdev, REFNPU_BAR_REGS,
                     PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->mmio);

    if (msix_init_exclusive_bar(pdev, refnpu_num_vectors(s),
                                REFNPU_BAR_MSIX, errp)) {
        return;
    }
    for (unsigned v = 0; v < refnpu_num_vectors(s); v++) {
        msix_vector_use(pdev, v);
    }

    /* The DMA address space does not change after realize. */
    s->dma_bql = pci_device_iommu_address_space(pdev) !=
                 &address_space_memory;
    s->scratch_keep = MIN(REFNPU_SCRATCH_KEEP,
                          s->mem_budget / s->num_queues);

    qemu_mutex_init(&s->lock);
    qemu_sem_init(&s->reset_sem, 0);
    qemu_mutex_init(&s->sched_lock);
    qemu_cond_init(&s->sched_cond);
    qemu_mutex_init(&s->mem_lock);
    QSIMPLEQ_INIT(&s->runq);
    for (unsigned i = 0; i < s->num_queues; i++) {
        RefnpuQueue *q = &s->queues[i];

        q->s = s;
        q->idx = i;
        qemu_mutex_init(&q->lock);
        qemu_mutex_init(&q->wait_lock);
        qemu_cond_init(&q->wait_cond);
    }
    s->irq_bh = qemu_bh_new_guarded(refnpu_irq_bh, s,
                                    &dev->mem_reentrancy_guard);

    caps = REFNPU_CAPS_BASE | (s->fault_inject ? REFNPU_CAP_FAULT_INJECT : 0);
    refnpu_core_init(&s->core, s->sync ? &refnpu_sync_core_ops :
                                         &refnpu_core_ops,
                     s, s->num_queues, caps, true);

    if (!s->sync) {
        s->nworkers = MIN(s->num_workers, s->num_queues);
        s->workers = g_new0(QemuThread, s->nworkers);
        for (unsigned i = 0; i < s->nworkers; i++) {
            g_autofree char *name = g_strdup_printf("refnpu-w%u", i);

            qemu_thread_create(&s->workers[i], name, refnpu_worker, s,
                               QEMU_THREAD_JOINABLE);
        }
    }
    s->vmstate = qemu_add_vm_change_state_handler(refnpu_vm_state_change, s);
}

static void refnpu_exit(PCIDevice *pdev)
{
    RefnpuState *s = REFNPU(pdev);

    qemu_del_vm_change_state_handler(s->vmstate);
    refnpu_stop_workers(s);
    qemu_bh_delete(s->irq_bh);
    refnpu_free_sync(s);
    for (unsigned v = 0; v < refnpu_num_vectors(s); v++) {
        msix_vector_unuse(pdev, v);
    }
    msix_uninit_exclusive_bar(pdev);
}

static const VMStateDescription vmstate_refnpu = {
    .name = TYPE_REFNPU,
    .unmigratable = 1,
};

static const QEnumLookup refnpu_gemm_kernel_lookup = {
    .array = refnpu_gemm_kernel_names,
    .size = REFNPU_GEMM_KERNEL__MAX,
};

static const PropertyInfo refnpu_prop_gemm_kernel = {
    .type = "RefnpuGemmKernel",
    .description = "fp32 GEMM micro-kernel: auto/generic/avx2/avx512",
    .enum_table = &refnpu_gemm_kernel_lookup,
    .get = qdev_propinfo_get_enum,
    .set = qdev_propinfo_set_enum,
    .set_default_value = qdev_propinfo_set_default_value_enum,
};

static const Property refnpu_properties[] = {
    DEFINE_PROP_UINT32("num-queues", RefnpuState, num_queues,
                       REFNPU_DEFAULT_QUEUES),
    DEFINE_PROP_UINT32("num-workers", RefnpuState, num_workers,
                       REFNPU_DEFAULT_WORKERS),
    DEFINE_PROP_BOOL("fault-inject", RefnpuState, fault_inject, false),
    DEFINE_PROP_BOOL("fast-gemm", RefnpuState, fast_gemm, true),
    DEFINE_PROP_SIGNED("gemm-kernel", RefnpuState, gemm_kernel_id,
                       REFNPU_GEMM_KERNEL_AUTO, refnpu_prop_gemm_kernel, int),
    DEFINE_PROP_SIZE("host-mem-budget", RefnpuState, mem_budget,
                     REFNPU_DEFAULT_MEM_BUDGET),
    DEFINE_PROP_BOOL("x-sync", RefnpuState, sync, false),
};

static void refnpu_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    k->realize = refnpu_realize;
    k->exit = refnpu_exit;
    k->vendor_id = REFNPU_PCI_VENDOR_ID;
    k->device_id = REFNPU_PCI_DEVICE_ID;
    k->revision = REFNPU_PCI_REVISION;
    k->class_id = REFNPU_PCI_CLASS_CODE >> 8;
    rc->phases.hold = refnpu_reset_hold;
    dc->desc = "refnpu reference NPU";
    dc->vmsd = &vmstate_refnpu;
    device_class_set_props(dc, refnpu_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo refnpu_info = {
    .name = TYPE_REFNPU,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(RefnpuState),
    .class_init = refnpu_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void refnpu_register_types(void)
{
    type_register_static(&refnpu_info);
}

type_init(refnpu_register_types)
