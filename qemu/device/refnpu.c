/*
 * refnpu: reference NPU, PCI device model
 *
 * The register map, descriptor formats, page-table format and error codes
 * come from refnpu_hw.h; the command set is executed by the shared compute
 * engine (refnpu_engine.c).  Documentation/hardware.rst of the refnpu
 * project is the specification this model implements.
 *
 * Threading model:
 *  - MMIO handlers run on vCPU threads under the BQL.  They only update
 *    registers and, for a doorbell, wake the queue's worker by signalling
 *    its condition variable (no bottom half in between: a doorbell costs
 *    one thread wake-up, not a main-loop iteration as well).
 *  - Every hardware queue has a worker thread that fetches descriptors,
 *    walks the device page tables and runs the engine, outside the BQL.
 *    All of its memory accesses are DMA through refnpu_dma_rw() with the
 *    "memory" transaction attribute, so they are translated by a vIOMMU
 *    when there is one and never reach device MMIO.  Without a vIOMMU a
 *    worker never takes the BQL.  Behind one it holds the BQL for each
 *    DMA access (and for nothing else), because a vIOMMU reports a
 *    translation fault by raising an interrupt on the spot, which needs
 *    the BQL (intel-iommu sends an MSI to the APIC, virtio-iommu notifies
 *    its event queue).
 *  - Workers report interrupts by setting bits in a pending mask and
 *    scheduling a bottom half, which calls msix_notify() under the BQL.
 *  - Queue and device resets are carried out by the workers themselves
 *    once their current job has been aborted; a system reset waits for
 *    them.
 *
 * Locking: RefnpuQueue.lock protects a queue's registers and state;
 * RefnpuState.lock protects the global registers (interrupt status, fault
 * record, context table).  A queue lock may be taken before the device
 * lock, never the reverse.
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include "qemu/bitops.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "system/dma.h"

#include "refnpu_hw.h"
#include "refnpu_engine.h"
#include "refnpu_mmu_walk.h"
#include "refnpu-gemm.h"

#define TYPE_REFNPU "refnpu"
OBJECT_DECLARE_SIMPLE_TYPE(RefnpuState, REFNPU)

/* Largest B operand the GEMM fast path gathers into host memory. */
#define REFNPU_FAST_GEMM_MAX_B (256 * MiB)
/* Largest slice of A and of C the fast path holds at once. */
#define REFNPU_FAST_GEMM_MAX_SLICE (64 * MiB)
/* Scratch kept by a queue between jobs; larger buffers are freed. */
#define REFNPU_SCRATCH_KEEP (48 * MiB)

typedef struct RefnpuState RefnpuState;

/* Host buffer reused from job to job (avoids page faults per job). */
typedef struct RefnpuScratch {
    void *p;
    size_t size;
} RefnpuScratch;

/* One-shot fault injections latched when a job is fetched. */
typedef struct RefnpuInject {
    uint32_t bits;          /* REFNPU_DBG_INJECT_* */
    uint32_t error;
    uint32_t delay_us;
    uint64_t fault_va;
} RefnpuInject;

/* State of the job a worker is running; worker-private. */
typedef struct RefnpuJob {
    struct RefnpuQueue *q;
    uint32_t ctx;
    uint64_t pt_root;
    uint64_t seq;
    int64_t start_ns;
    uint32_t watchdog_ms;
    RefnpuInject inj;
} RefnpuJob;

typedef struct RefnpuQueue {
    RefnpuState *s;
    unsigned idx;
    QemuThread thread;
    QemuMutex lock;
    QemuCond cond;          /* worker wake-up, reset completion */

    /* Registers (lock) */
    uint64_t ring_base;
    uint32_t ring_size;
    uint32_t ctrl;
    uint32_t tail;
    uint32_t head;
    uint32_t error;
    uint64_t last_seq;
    uint32_t watchdog_ms;
    uint32_t dbg_inject;
    uint32_t dbg_error;
    uint32_t dbg_delay_us;
    uint64_t dbg_fault_va;

    /* Worker state (lock) */
    bool busy;
    bool reset_req;
    bool reset_global;      /* reset_req is part of a device reset */
    bool stop;
    bool exited;            /* the worker has returned */
    bool abort;             /* also read without the lock by the worker */

    /* Worker-private */
    bool dma_bql;           /* behind a vIOMMU: DMA under the BQL */
    struct refnpu_tlb tlb;  /* refnpu_mmu_walk.c's software TLB */
    RefnpuJob job;
    RefnpuScratch gemm_a, gemm_b, gemm_c;
} RefnpuQueue;

struct RefnpuState {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    QEMUBH *irq_bh;
    uint32_t irq_pending;   /* MSI-X vectors to notify (atomic) */
    uint32_t tlb_gen;       /* bumped by TLB invalidation (atomic) */

    QemuMutex lock;
    QemuCond reset_cond;

    /* Global registers (lock) */
    uint32_t irq_status;
    uint32_t irq_mask;
    uint64_t ctx_table_base;
    uint32_t ctx_table_count;
    uint32_t fault_status;
    uint32_t fault_ctx;
    uint64_t fault_addr;
    uint64_t fault_seq;
    uint32_t scratch;
    bool resetting;
    unsigned reset_pending;
    int64_t clock_base;     /* QEMU_CLOCK_VIRTUAL at creation */

    /* Properties */
    uint32_t num_queues;
    bool fault_inject;
    bool fast_gemm;
    char *gemm_kernel_name;

    const RefnpuGemmKernel *gemm_kernel;

    RefnpuQueue *queues;
};

/* Place @v in the (contiguous) field @mask of a register value. */
#define FIELD_PREP_MASK(mask, v) (((uint32_t)(v) << ctz32(mask)) & (mask))

static const MemTxAttrs refnpu_attrs = { .memory = 1 };

/*
 * DMA by a queue's worker (no device lock held).  Behind a vIOMMU the
 * access is made under the BQL: a translation fault is reported with an
 * interrupt raised from inside the translation (see the threading model).
 */
static MemTxResult refnpu_dma_rw(RefnpuQueue *q, dma_addr_t addr, void *buf,
                                 dma_addr_t len, DMADirection dir)
{
    bool lock = q->dma_bql && !bql_locked();
    MemTxResult r;

    if (lock) {
        bql_lock();
    }
    r = pci_dma_rw(PCI_DEVICE(q->s), addr, buf, len, dir, refnpu_attrs);
    if (lock) {
        bql_unlock();
    }
    return r;
}

static unsigned refnpu_num_vectors(RefnpuState *s)
{
    return REFNPU_MSIX_NUM_VECTORS(s->num_queues);
}

/*
 * Device time (REFNPU_REG_TIMESTAMP, completion timestamps, watchdog):
 * nanoseconds of QEMU's virtual clock since the device was created.
 */
static int64_t refnpu_now(RefnpuState *s)
{
    return qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) - s->clock_base;
}

/*
 * ---------------------------------------------------------------------
 * Interrupts
 */

/* Any thread: notify @vector from the interrupt bottom half. */
static void refnpu_send_vector(RefnpuState *s, unsigned vector)
{
    qatomic_or(&s->irq_pending, 1u << vector);
    qemu_bh_schedule(s->irq_bh);
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
            msix_notify(pdev, vector);
        }
    }
}

/*
 * Latch @bits in IRQ_STATUS and notify their vectors unless masked.
 * Called with s->lock held.
 */
static void refnpu_irq_raise_locked(RefnpuState *s, uint32_t bits, bool send)
{
    uint32_t fresh = bits & ~s->irq_mask;

    s->irq_status |= bits;
    if (!send) {
        return;
    }
    if (fresh & REFNPU_IRQ_ERROR) {
        refnpu_send_vector(s, REFNPU_MSIX_VEC_ERROR);
    }
    fresh &= REFNPU_IRQ_QUEUE_MASK;
    while (fresh) {
        unsigned q = ctz32(fresh);

        fresh &= fresh - 1;
        if (q < s->num_queues) {
            refnpu_send_vector(s, REFNPU_MSIX_VEC_QUEUE(q));
        }
    }
}

/*
 * Record a fault (first one wins, later ones set OVERFLOW) and raise the
 * error interrupt.  Any thread; takes s->lock.
 */
static void refnpu_record_fault(RefnpuState *s, unsigned queue, uint32_t code,
                                uint32_t flags, uint32_t ctx, uint64_t va,
                                uint64_t seq)
{
    qemu_log_mask(LOG_GUEST_ERROR,
                  "refnpu: queue %u job seq %" PRIu64 " ctx %u: error 0x%x "
                  "(%s) at va 0x%" PRIx64 " flags 0x%x\n",
                  queue, seq, ctx, code, refnpu_engine_err_name(code), va,
                  flags);

    qemu_mutex_lock(&s->lock);
    if (s->fault_status & REFNPU_FAULT_STATUS_VALID) {
        s->fault_status |= REFNPU_FAULT_STATUS_OVERFLOW;
    } else {
        s->fault_status = REFNPU_FAULT_STATUS_VALID |
            FIELD_PREP_MASK(REFNPU_FAULT_STATUS_FLAGS_MASK, flags) |
            FIELD_PREP_MASK(REFNPU_FAULT_STATUS_QUEUE_MASK, queue) |
            FIELD_PREP_MASK(REFNPU_FAULT_STATUS_CODE_MASK, code);
        s->fault_ctx = ctx;
        s->fault_addr = va;
        s->fault_seq = seq;
    }
    refnpu_irq_raise_locked(s, REFNPU_IRQ_ERROR, true);
    qemu_mutex_unlock(&s->lock);
}

/*
 * ---------------------------------------------------------------------
 * Device MMU
 */

static void refnpu_tlb_invalidate_all(RefnpuState *s)
{
    qatomic_inc(&s->tlb_gen);
}

/* Check whether a job should stop: reset requested, or watchdog expired. */
static uint32_t refnpu_job_check(RefnpuJob *job)
{
    RefnpuQueue *q = job->q;

    if (qatomic_read(&q->abort)) {
        return REFNPU_ERR_ABORTED;
    }
    if (job->watchdog_ms && refnpu_now(q->s) - job->start_ns >=
                            (int64_t)job->watchdog_ms * SCALE_MS) {
        return REFNPU_ERR_TIMEOUT;
    }
    return REFNPU_ERR_NONE;
}

/* Page-table reads of the shared walker (refnpu_mmu_walk.c). */
static int refnpu_read64(void *opaque, __u64 addr, __u64 *val)
{
    RefnpuQueue *q = opaque;
    uint64_t le;
    MemTxResult r = refnpu_dma_rw(q, addr, &le, sizeof(le),
                                  DMA_DIRECTION_TO_DEVICE);

    if (r != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: page walk read at 0x%" PRIx64
                      " failed (%d)\n", (uint64_t)addr, r);
        return -1;
    }
    *val = le64_to_cpu(le);
    return 0;
}

/*
 * Translate @va in the job's context for a read or a write, through the
 * queue's TLB.  On success returns REFNPU_ERR_NONE with the bus address in
 * *@pa and the number of bytes up to the end of the page in *@room.
 */
static uint32_t refnpu_translate(RefnpuJob *job, uint64_t va, bool write,
                                 dma_addr_t *pa, uint64_t *room)
{
    RefnpuQueue *q = job->q;
    __u64 addr = 0, left = 0;
    uint32_t st;

    if ((job->inj.bits & REFNPU_DBG_INJECT_MMU_FAULT) &&
        (va >> REFNPU_PAGE_SHIFT) ==
        (job->inj.fault_va >> REFNPU_PAGE_SHIFT)) {
        return REFNPU_ERR_MMU_UNMAPPED;
    }
    st = refnpu_mmu_translate(&q->tlb, qatomic_read(&q->s->tlb_gen),
                              job->ctx, job->pt_root, va, write,
                              refnpu_read64, q, &addr, &left);
    *pa = addr;
    *room = left;
    return st;
}

/* Copy between device VA space and @buf, page by page. */
static uint32_t refnpu_job_rw(RefnpuJob *job, uint64_t va, void *buf,
                              uint64_t len, bool write, uint64_t *fault_va)
{
    uint8_t *p = buf;
    uint32_t st = refnpu_job_check(job);

    if (st) {
        return st;
    }
    while (len) {
        dma_addr_t pa;
        uint64_t room, chunk;
        MemTxResult r;

        st = refnpu_translate(job, va, write, &pa, &room);
        if (st) {
            *fault_va = va;
            return st;
        }
        chunk = MIN(len, room);
        r = refnpu_dma_rw(job->q, pa, p, chunk,
                          write ? DMA_DIRECTION_FROM_DEVICE :
                                  DMA_DIRECTION_TO_DEVICE);
        if (r != MEMTX_OK) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "refnpu: DMA %s of %" PRIu64 " bytes at bus 0x%"
                          PRIx64 " (va 0x%" PRIx64 ") failed (%d)\n",
                          write ? "write" : "read", chunk, (uint64_t)pa, va,
                          r);
            *fault_va = va;
            return REFNPU_ERR_DMA;
        }
        va += chunk;
        p += chunk;
        len -= chunk;
    }
    return REFNPU_ERR_NONE;
}

/*
 * ---------------------------------------------------------------------
 * Engine callbacks
 */

/* The engine's types are the kernel's __u32/__u64, hence the casts. */
static __u32 refnpu_eng_read(void *opaque, __u64 va, void *buf, __u64 len,
                             __u64 *fault_va)
{
    uint64_t fva = *fault_va;
    uint32_t st = refnpu_job_rw(opaque, va, buf, len, false, &fva);

    *fault_va = fva;
    return st;
}

static __u32 refnpu_eng_write(void *opaque, __u64 va, const void *buf,
                              __u64 len, __u64 *fault_va)
{
    uint64_t fva = *fault_va;
    uint32_t st = refnpu_job_rw(opaque, va, (void *)buf, len, true, &fva);

    *fault_va = fva;
    return st;
}

static __u32 refnpu_eng_checkpoint(void *opaque)
{
    return refnpu_job_check(opaque);
}

static float *refnpu_scratch(RefnpuScratch *sc, size_t size)
{
    if (sc->size < size) {
        qemu_vfree(sc->p);
        sc->p = qemu_memalign(64, size);
        sc->size = size;
    }
    return sc->p;
}

static void refnpu_scratch_trim(RefnpuQueue *q, bool all)
{
    RefnpuScratch *sc[] = { &q->gemm_a, &q->gemm_b, &q->gemm_c };
    size_t total = q->gemm_a.size + q->gemm_b.size + q->gemm_c.size;

    if (all || total > REFNPU_SCRATCH_KEEP) {
        for (unsigned i = 0; i < ARRAY_SIZE(sc); i++) {
            qemu_vfree(sc[i]->p);
            sc[i]->p = NULL;
            sc[i]->size = 0;
        }
    }
}

static bool refnpu_gemm_stop(void *opaque)
{
    return refnpu_job_check(opaque) != REFNPU_ERR_NONE;
}

static inline float refnpu_relu(float x)
{
    return x < 0.0f ? 0.0f : x;   /* as the engine: keeps NaN and -0 */
}

/*
 * fp32 GEMM fast path: gather the operands through the device MMU into
 * host buffers, multiply with the blocked host kernel, and scatter C back.
 * Memory is touched in a different order than by the reference engine;
 * the first failing access decides the job's error as usual.
 */
static __u32 refnpu_eng_gemm_f32(void *opaque, const struct refnpu_cmd_gemm *g,
                                 __u64 *fault_va_out, __u32 *fault_flags)
{
    RefnpuJob *job = opaque;
    RefnpuQueue *q = job->q;
    uint64_t fva = 0;
    uint64_t *fault_va = &fva;
    size_t m = g->m, n = g->n, k = g->k;
    size_t rows;
    float *b, *a, *c, *bias = NULL;
    uint32_t st = REFNPU_ERR_NONE;

    if (!q->s->fast_gemm || !k ||
        (uint64_t)k * n * sizeof(float) > REFNPU_FAST_GEMM_MAX_B) {
        return REFNPU_ENGINE_DECLINED;
    }
    rows = REFNPU_FAST_GEMM_MAX_SLICE / (MAX(k, n) * sizeof(float));
    rows = MAX(MIN(rows, m), 1);

    b = refnpu_scratch(&q->gemm_b, k * n * sizeof(float));
    a = refnpu_scratch(&q->gemm_a, rows * k * sizeof(float));
    c = refnpu_scratch(&q->gemm_c, rows * n * sizeof(float));
    *fault_flags = 0;

    for (size_t r = 0; r < k && !st; r++) {
        st = refnpu_job_rw(job, g->b.va + r * g->b.pitch, b + r * n,
                           n * sizeof(float), false, fault_va);
    }
    if (!st && (g->hdr.flags & REFNPU_GEMM_F_BIAS)) {
        bias = g_new(float, n);
        st = refnpu_job_rw(job, g->bias_va, bias, n * sizeof(float), false,
                           fault_va);
    }

    for (size_t i0 = 0; i0 < m && !st; i0 += rows) {
        size_t mb = MIN(rows, m - i0);

        for (size_t r = 0; r < mb && !st; r++) {
            st = refnpu_job_rw(job, g->a.va + (i0 + r) * g->a.pitch,
                               a + r * k, k * sizeof(float), false, fault_va);
        }
        if (st) {
            break;
        }
        if (!refnpu_sgemm(q->s->gemm_kernel, mb, n, k, a, k, b, n, c, n,
                          refnpu_gemm_stop, job)) {
            st = refnpu_job_check(job) ?: REFNPU_ERR_ABORTED;
            break;
        }
        if (bias || (g->hdr.flags & REFNPU_GEMM_F_RELU)) {
            for (size_t r = 0; r < mb; r++) {
                float *row = c + r * n;

                for (size_t j = 0; j < n; j++) {
                    float v = row[j];

                    if (bias) {
                        v = v + bias[j];
                    }
                    if (g->hdr.flags & REFNPU_GEMM_F_RELU) {
                        v = refnpu_relu(v);
                    }
                    row[j] = v;
                }
            }
        }
        for (size_t r = 0; r < mb && !st; r++) {
            st = refnpu_job_rw(job, g->c.va + (i0 + r) * g->c.pitch,
                               c + r * n, n * sizeof(float), true, fault_va);
            if (st) {
                *fault_flags = REFNPU_FAULT_F_WRITE;
            }
        }
    }

    *fault_va_out = fva;
    g_free(bias);
    return st;
}

/*
 * ---------------------------------------------------------------------
 * Job execution (worker thread, no BQL, no locks held unless stated)
 */

/*
 * Sleep for @us microseconds or until the job must stop.  With @us == 0
 * wait forever (injected hang).  Returns the job's stop reason or 0.
 */
static uint32_t refnpu_job_wait(RefnpuJob *job, uint64_t us)
{
    RefnpuQueue *q = job->q;
    int64_t deadline = refnpu_now(q->s) + us * SCALE_US;
    uint32_t st;

    qemu_mutex_lock(&q->lock);
    for (;;) {
        int64_t left_ms = 100;

        st = refnpu_job_check(job);
        if (st || q->stop) {
            st = st ? st : REFNPU_ERR_ABORTED;
            break;
        }
        if (us) {
            int64_t left = deadline - refnpu_now(q->s);

            if (left <= 0) {
                break;
            }
            if (left < SCALE_MS) {
                qemu_mutex_unlock(&q->lock);
                g_usleep(MAX(left / SCALE_US, 1));
                qemu_mutex_lock(&q->lock);
                continue;
            }
            left_ms = MIN(left_ms, left / SCALE_MS);
        }
        if (job->watchdog_ms) {
            int64_t wd = job->start_ns + job->watchdog_ms * SCALE_MS -
                         refnpu_now(q->s);
            left_ms = MIN(left_ms, MAX(wd / SCALE_MS, 1));
        }
        qemu_cond_timedwait(&q->cond, &q->lock, left_ms);
    }
    qemu_mutex_unlock(&q->lock);
    return st;
}

/* Write a completion record; the "done" word goes last. */
static MemTxResult refnpu_write_completion(RefnpuQueue *q, dma_addr_t addr,
                                           const struct refnpu_completion *c)
{
    struct refnpu_completion le = {
        .status = cpu_to_le32(c->status),
        .fault_flags = cpu_to_le32(c->fault_flags),
        .seq = cpu_to_le64(c->seq),
        .fault_va = cpu_to_le64(c->fault_va),
        .cmd_index = cpu_to_le32(c->cmd_index),
        .cmd_offset = cpu_to_le32(c->cmd_offset),
        .start_ts = cpu_to_le64(c->start_ts),
        .end_ts = cpu_to_le64(c->end_ts),
        .done = 0,
        .ctx_id = cpu_to_le32(c->ctx_id),
        .rsvd = 0,
    };
    size_t done_off = offsetof(struct refnpu_completion, done);
    uint32_t done = cpu_to_le32(REFNPU_COMPLETION_DONE);
    MemTxResult r;

    r = refnpu_dma_rw(q, addr, &le, sizeof(le), DMA_DIRECTION_FROM_DEVICE);
    if (r == MEMTX_OK) {
        r = refnpu_dma_rw(q, addr + done_off, &done, sizeof(done),
                          DMA_DIRECTION_FROM_DEVICE);
    }
    return r;
}

/* Halt the queue with @code (ring-level error: no completion possible). */
static void refnpu_queue_halt(RefnpuQueue *q, uint32_t code, uint32_t flags,
                              uint32_t ctx, uint64_t addr, uint64_t seq)
{
    qemu_mutex_lock(&q->lock);
    if (!q->error) {
        q->error = code;
    }
    qemu_mutex_unlock(&q->lock);
    refnpu_record_fault(q->s, q->idx, code, flags | REFNPU_FAULT_F_RING,
                        ctx, addr, seq);
}

/*
 * Injected stray DMA: write a burst straight to bus address @addr, with no
 * device MMU translation, as a device with a broken DMA engine would.  A
 * system IOMMU in front of the device is what is supposed to stop it.
 */
static uint32_t refnpu_stray_dma(RefnpuQueue *q, uint64_t addr)
{
    uint8_t burst[REFNPU_DBG_STRAY_DMA_BYTES];
    MemTxResult r;

    memset(burst, REFNPU_DBG_STRAY_DMA_PATTERN, sizeof(burst));
    r = refnpu_dma_rw(q, addr, burst, sizeof(burst),
                      DMA_DIRECTION_FROM_DEVICE);
    if (r != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: injected stray DMA write at 0x%" PRIx64
                      " rejected (%d)\n", addr, r);
        return REFNPU_ERR_DMA;
    }
    return REFNPU_ERR_NONE;
}

/*
 * Run the descriptor at ring index @idx.  Returns false when the queue
 * halted (the descriptor is not consumed).
 */
static bool refnpu_run_job(RefnpuQueue *q, uint32_t idx,
                           const RefnpuInject *inj, uint32_t watchdog_ms,
                           uint64_t ring_base)
{
    RefnpuState *s = q->s;
    PCIDevice *pdev = PCI_DEVICE(s);
    RefnpuJob *job = &q->job;
    struct refnpu_engine_env env = {
        .opaque = job,
        .read = refnpu_eng_read,
        .write = refnpu_eng_write,
        .checkpoint = refnpu_eng_checkpoint,
        .gemm_f32 = refnpu_eng_gemm_f32,
    };
    struct refnpu_engine_result res = { 0 };
    struct refnpu_completion comp = { 0 };
    struct refnpu_job_desc d;
    dma_addr_t desc_addr = ring_base + (uint64_t)idx * REFNPU_JOB_DESC_SIZE;
    struct refnpu_ctx_entry ce;
    uint32_t ctx_count;
    uint64_t ctx_base;
    bool send_irq = true;
    MemTxResult r;
    uint32_t st;

    memset(job, 0, sizeof(*job));
    q->dma_bql = pci_device_iommu_address_space(pdev) != &address_space_memory;
    job->q = q;
    job->start_ns = refnpu_now(s);
    job->watchdog_ms = watchdog_ms;
    job->inj = *inj;

    r = refnpu_dma_rw(q, desc_addr, &d, sizeof(d), DMA_DIRECTION_TO_DEVICE);
    if (r != MEMTX_OK) {
        refnpu_queue_halt(q, REFNPU_ERR_DMA, 0, 0, desc_addr, 0);
        return false;
    }
    d.ctx_id = le32_to_cpu(d.ctx_id);
    d.flags = le32_to_cpu(d.flags);
    d.cmd_va = le64_to_cpu(d.cmd_va);
    d.cmd_size = le64_to_cpu(d.cmd_size);
    d.completion_addr = le64_to_cpu(d.completion_addr);
    d.seq = le64_to_cpu(d.seq);
    job->seq = d.seq;
    job->ctx = d.ctx_id;

    if (d.completion_addr % REFNPU_COMPLETION_ALIGN) {
        refnpu_queue_halt(q, REFNPU_ERR_BAD_DESCRIPTOR, 0, d.ctx_id,
                          d.completion_addr, d.seq);
        return false;
    }

    comp.start_ts = job->start_ns;
    comp.seq = d.seq;
    comp.ctx_id = d.ctx_id;

    res.status = refnpu_job_desc_check(&d);
    if (res.status) {
        res.fault_flags = REFNPU_FAULT_F_RING;
        goto complete;
    }

    qemu_mutex_lock(&s->lock);
    ctx_base = s->ctx_table_base;
    ctx_count = s->ctx_table_count;
    qemu_mutex_unlock(&s->lock);
    if (d.ctx_id >= ctx_count || d.ctx_id >= REFNPU_MAX_CONTEXTS) {
        res.status = REFNPU_ERR_INVALID_CONTEXT;
        res.fault_flags = REFNPU_FAULT_F_RING;
        goto complete;
    }
    r = refnpu_dma_rw(q, ctx_base + (uint64_t)d.ctx_id * REFNPU_CTX_ENTRY_SIZE,
                      &ce, sizeof(ce), DMA_DIRECTION_TO_DEVICE);
    if (r != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: context table read failed (%d)\n", r);
        res.status = REFNPU_ERR_MMU_WALK;
        res.fault_flags = REFNPU_FAULT_F_RING;
        goto complete;
    }
    ce.pt_root = le64_to_cpu(ce.pt_root);
    ce.flags = le32_to_cpu(ce.flags);
    ce.rsvd = le32_to_cpu(ce.rsvd);
    res.status = refnpu_ctx_entry_check(&ce);
    if (res.status) {
        res.fault_flags = REFNPU_FAULT_F_RING;
        goto complete;
    }
    job->pt_root = ce.pt_root;

    if (inj->bits & REFNPU_DBG_INJECT_STRAY_DMA) {
        res.status = refnpu_stray_dma(q, inj->fault_va);
        if (res.status) {
            res.fault_flags = REFNPU_FAULT_F_RING | REFNPU_FAULT_F_WRITE;
            res.fault_va = inj->fault_va;
            goto complete;
        }
    }
    if (inj->bits & REFNPU_DBG_INJECT_HANG) {
        res.status = refnpu_job_wait(job, 0);
        goto complete;
    }
    if (inj->bits & REFNPU_DBG_INJECT_ERROR) {
        res.status = inj->error && inj->error < REFNPU_ERR_COUNT ?
                     inj->error : REFNPU_ERR_INJECTED;
        goto complete;
    }

    refnpu_engine_run(&env, d.cmd_va, d.cmd_size, &res);

    if (!res.status && (inj->bits & REFNPU_DBG_INJECT_DELAY) &&
        inj->delay_us) {
        st = refnpu_job_wait(job, inj->delay_us);
        if (st) {
            res.status = st;
        }
    }

complete:
    if (res.status == REFNPU_ERR_ABORTED) {
        /*
         * Stopped by a reset (or unplug): the job leaves no trace, no
         * completion record and no interrupt; the reset clears the ring.
         */
        return true;
    }
    comp.status = res.status;
    comp.fault_flags = res.fault_flags;
    comp.fault_va = res.fault_va;
    comp.cmd_index = res.cmd_index;
    comp.cmd_offset = res.cmd_offset;
    comp.end_ts = refnpu_now(s);

    r = refnpu_write_completion(q, d.completion_addr, &comp);
    if (r != MEMTX_OK) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: completion write at 0x%" PRIx64
                      " failed (%d)\n", (uint64_t)d.completion_addr, r);
        refnpu_record_fault(s, q->idx, REFNPU_ERR_DMA,
                            REFNPU_FAULT_F_RING | REFNPU_FAULT_F_WRITE,
                            d.ctx_id, d.completion_addr, d.seq);
    }
    if (res.status) {
        refnpu_record_fault(s, q->idx, res.status, res.fault_flags,
                            d.ctx_id, res.fault_va, d.seq);
    }

    if (inj->bits & REFNPU_DBG_INJECT_DROP_IRQ) {
        send_irq = false;
    }
    qemu_mutex_lock(&q->lock);
    q->last_seq = d.seq;
    q->head = (idx + 1) & (q->ring_size - 1);
    if ((d.flags & REFNPU_JOB_F_IRQ) && !q->reset_req) {
        qemu_mutex_lock(&s->lock);
        refnpu_irq_raise_locked(s, REFNPU_IRQ_QUEUE(q->idx), send_irq);
        qemu_mutex_unlock(&s->lock);
    }
    qemu_mutex_unlock(&q->lock);
    return true;
}

/* Reset the queue's registers; q->lock held, no job running. */
static void refnpu_queue_reset_locked(RefnpuQueue *q)
{
    q->ring_base = 0;
    q->ring_size = 0;
    q->ctrl = 0;
    q->tail = 0;
    q->head = 0;
    q->error = 0;
    q->last_seq = 0;
    q->watchdog_ms = 0;
    q->dbg_inject = 0;
    q->dbg_error = 0;
    q->dbg_delay_us = 0;
    q->dbg_fault_va = 0;
    refnpu_tlb_flush(&q->tlb);
}

/* Reset the global registers; s->lock held, every queue idle. */
static void refnpu_global_reset_locked(RefnpuState *s)
{
    s->irq_status = 0;
    s->irq_mask = 0;
    s->ctx_table_base = 0;
    s->ctx_table_count = 0;
    s->fault_status = 0;
    s->fault_ctx = 0;
    s->fault_addr = 0;
    s->fault_seq = 0;
    s->scratch = 0;
    qatomic_set(&s->irq_pending, 0);
    refnpu_tlb_invalidate_all(s);
}

/* Worker: carry out a requested reset.  q->lock held. */
static void refnpu_queue_do_reset(RefnpuQueue *q)
{
    RefnpuState *s = q->s;
    bool global = q->reset_global;

    refnpu_queue_reset_locked(q);
    q->reset_req = false;
    q->reset_global = false;
    qatomic_set(&q->abort, false);

    qemu_mutex_lock(&s->lock);
    s->irq_status &= ~REFNPU_IRQ_QUEUE(q->idx);
    if (global && s->reset_pending && --s->reset_pending == 0) {
        refnpu_global_reset_locked(s);
        s->resetting = false;
        qemu_cond_broadcast(&s->reset_cond);
    }
    qemu_mutex_unlock(&s->lock);
    qemu_cond_broadcast(&q->cond);
}

static void *refnpu_queue_thread(void *opaque)
{
    RefnpuQueue *q = opaque;

    qemu_mutex_lock(&q->lock);
    for (;;) {
        RefnpuInject inj;
        uint32_t idx, watchdog_ms;
        uint64_t ring_base;

        if (q->reset_req) {
            refnpu_queue_do_reset(q);
            continue;
        }
        if (q->stop) {
            break;
        }
        if (!(q->ctrl & REFNPU_Q_CTRL_ENABLE) || q->error) {
            qemu_cond_wait(&q->cond, &q->lock);
            continue;
        }
        if (!refnpu_ring_valid(q->ring_base, q->ring_size, q->tail)) {
            uint64_t base = q->ring_base;

            q->error = REFNPU_ERR_RING;
            qemu_mutex_unlock(&q->lock);
            refnpu_record_fault(q->s, q->idx, REFNPU_ERR_RING,
                                REFNPU_FAULT_F_RING, 0, base, 0);
            qemu_mutex_lock(&q->lock);
            continue;
        }
        if (q->head == q->tail) {
            qemu_cond_wait(&q->cond, &q->lock);
            continue;
        }

        idx = q->head;
        ring_base = q->ring_base;
        watchdog_ms = q->watchdog_ms;
        inj.bits = q->dbg_inject;
        inj.error = q->dbg_error;
        inj.delay_us = q->dbg_delay_us;
        inj.fault_va = q->dbg_fault_va;
        q->dbg_inject = 0;
        q->busy = true;
        qemu_mutex_unlock(&q->lock);

        refnpu_run_job(q, idx, &inj, watchdog_ms, ring_base);
        refnpu_scratch_trim(q, false);

        qemu_mutex_lock(&q->lock);
        q->busy = false;
        qemu_cond_broadcast(&q->cond);
    }
    q->exited = true;
    qemu_cond_broadcast(&q->cond);
    qemu_mutex_unlock(&q->lock);
    return NULL;
}

/* Ask the worker of @q to abort its job and reset the queue. */
static void refnpu_queue_request_reset(RefnpuQueue *q, bool global)
{
    qemu_mutex_lock(&q->lock);
    q->reset_req = true;
    q->reset_global |= global;
    qatomic_set(&q->abort, true);
    qemu_cond_broadcast(&q->cond);
    qemu_mutex_unlock(&q->lock);
}

/* Start a device reset; it completes asynchronously on the workers. */
static void refnpu_request_reset(RefnpuState *s)
{
    qemu_mutex_lock(&s->lock);
    if (s->resetting) {
        qemu_mutex_unlock(&s->lock);
        return;
    }
    s->resetting = true;
    s->reset_pending = s->num_queues;
    qemu_mutex_unlock(&s->lock);

    for (unsigned i = 0; i < s->num_queues; i++) {
        refnpu_queue_request_reset(&s->queues[i], true);
    }
}

/*
 * ---------------------------------------------------------------------
 * MMIO
 */

static uint32_t refnpu_queue_read32(RefnpuState *s, RefnpuQueue *q,
                                    hwaddr off)
{
    uint32_t val = 0;

    qemu_mutex_lock(&q->lock);
    switch (off) {
    case REFNPU_Q_RING_BASE:
        val = q->ring_base;
        break;
    case REFNPU_Q_RING_BASE + 4:
        val = q->ring_base >> 32;
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
        if (q->ctrl & REFNPU_Q_CTRL_ENABLE) {
            val |= REFNPU_Q_STATUS_ENABLED;
        }
        if (q->busy || (!q->error && (q->ctrl & REFNPU_Q_CTRL_ENABLE) &&
                        q->head != q->tail)) {
            val |= REFNPU_Q_STATUS_BUSY;
        }
        if (q->error) {
            val |= REFNPU_Q_STATUS_ERROR;
        }
        if (q->reset_req) {
            val |= REFNPU_Q_STATUS_RESETTING;
        }
        break;
    case REFNPU_Q_WATCHDOG_MS:
        val = q->watchdog_ms;
        break;
    case REFNPU_Q_ERROR:
        val = q->error;
        break;
    case REFNPU_Q_LAST_SEQ:
        val = q->last_seq;
        break;
    case REFNPU_Q_LAST_SEQ + 4:
        val = q->last_seq >> 32;
        break;
    case REFNPU_Q_DBG_INJECT:
        val = s->fault_inject ? q->dbg_inject : 0;
        break;
    case REFNPU_Q_DBG_ERROR:
        val = s->fault_inject ? q->dbg_error : 0;
        break;
    case REFNPU_Q_DBG_DELAY_US:
        val = s->fault_inject ? q->dbg_delay_us : 0;
        break;
    case REFNPU_Q_DBG_FAULT_VA:
        val = s->fault_inject ? q->dbg_fault_va : 0;
        break;
    case REFNPU_Q_DBG_FAULT_VA + 4:
        val = s->fault_inject ? q->dbg_fault_va >> 32 : 0;
        break;
    default:
        break;
    }
    qemu_mutex_unlock(&q->lock);
    return val;
}

static bool refnpu_queue_busy(RefnpuQueue *q)
{
    bool busy;

    qemu_mutex_lock(&q->lock);
    busy = q->busy || (!q->error && (q->ctrl & REFNPU_Q_CTRL_ENABLE) &&
                       q->head != q->tail);
    qemu_mutex_unlock(&q->lock);
    return busy;
}

static uint32_t refnpu_read32(RefnpuState *s, hwaddr addr)
{
    uint32_t val = 0;
    uint64_t ts;

    if (addr >= REFNPU_QUEUE_BLOCK_BASE) {
        unsigned qi = (addr - REFNPU_QUEUE_BLOCK_BASE) /
                      REFNPU_QUEUE_BLOCK_STRIDE;

        if (qi < s->num_queues) {
            return refnpu_queue_read32(s, &s->queues[qi],
                                       (addr - REFNPU_QUEUE_BLOCK_BASE) %
                                       REFNPU_QUEUE_BLOCK_STRIDE);
        }
        return 0;
    }

    switch (addr) {
    case REFNPU_REG_ID:
        return REFNPU_ID_VALUE;
    case REFNPU_REG_VERSION:
        return REFNPU_VERSION_VALUE;
    case REFNPU_REG_CAPS:
        return REFNPU_CAPS_BASE |
               (s->fault_inject ? REFNPU_CAP_FAULT_INJECT : 0);
    case REFNPU_REG_NUM_QUEUES:
        return s->num_queues;
    case REFNPU_REG_MMU_CAPS:
        return REFNPU_MMU_CAPS_VALUE;
    case REFNPU_REG_MAX_CONTEXTS:
        return REFNPU_MAX_CONTEXTS;
    case REFNPU_REG_TIMESTAMP_FREQ:
        return REFNPU_TIMESTAMP_FREQ_HZ;
    case REFNPU_REG_TIMESTAMP:
        return refnpu_now(s);
    case REFNPU_REG_TIMESTAMP + 4:
        ts = refnpu_now(s);
        return ts >> 32;
    case REFNPU_REG_STATUS:
        for (unsigned i = 0; i < s->num_queues; i++) {
            if (refnpu_queue_busy(&s->queues[i])) {
                val |= REFNPU_STATUS_BUSY;
                break;
            }
        }
        break;
    case REFNPU_REG_TLB_INVALIDATE:
        return 0;   /* invalidation completes before the write returns */
    default:
        break;
    }

    qemu_mutex_lock(&s->lock);
    switch (addr) {
    case REFNPU_REG_STATUS:
        if (!s->resetting) {
            val |= REFNPU_STATUS_READY;
        }
        if (s->fault_status & REFNPU_FAULT_STATUS_VALID) {
            val |= REFNPU_STATUS_FAULT;
        }
        break;
    case REFNPU_REG_IRQ_STATUS:
        val = s->irq_status;
        break;
    case REFNPU_REG_IRQ_MASK:
        val = s->irq_mask;
        break;
    case REFNPU_REG_CTX_TABLE_BASE:
        val = s->ctx_table_base;
        break;
    case REFNPU_REG_CTX_TABLE_BASE + 4:
        val = s->ctx_table_base >> 32;
        break;
    case REFNPU_REG_CTX_TABLE_COUNT:
        val = s->ctx_table_count;
        break;
    case REFNPU_REG_FAULT_STATUS:
        val = s->fault_status;
        break;
    case REFNPU_REG_FAULT_CTX:
        val = s->fault_ctx;
        break;
    case REFNPU_REG_FAULT_ADDR:
        val = s->fault_addr;
        break;
    case REFNPU_REG_FAULT_ADDR + 4:
        val = s->fault_addr >> 32;
        break;
    case REFNPU_REG_FAULT_SEQ:
        val = s->fault_seq;
        break;
    case REFNPU_REG_FAULT_SEQ + 4:
        val = s->fault_seq >> 32;
        break;
    case REFNPU_REG_SCRATCH:
        val = s->scratch;
        break;
    default:
        break;
    }
    qemu_mutex_unlock(&s->lock);
    return val;
}

static void refnpu_queue_write32(RefnpuState *s, RefnpuQueue *q, hwaddr off,
                                 uint32_t val)
{
    qemu_mutex_lock(&q->lock);
    switch (off) {
    case REFNPU_Q_RING_BASE:
        q->ring_base = deposit64(q->ring_base, 0, 32, val);
        break;
    case REFNPU_Q_RING_BASE + 4:
        q->ring_base = deposit64(q->ring_base, 32, 32, val);
        break;
    case REFNPU_Q_RING_SIZE:
        q->ring_size = val;
        break;
    case REFNPU_Q_CTRL:
        q->ctrl = val & REFNPU_Q_CTRL_ENABLE;
        qemu_cond_broadcast(&q->cond);
        break;
    case REFNPU_Q_TAIL:
        q->tail = val;
        qemu_cond_broadcast(&q->cond);   /* the doorbell */
        break;
    case REFNPU_Q_RESET:
        if (val & REFNPU_Q_RESET_GO) {
            qemu_mutex_unlock(&q->lock);
            refnpu_queue_request_reset(q, false);
            return;
        }
        break;
    case REFNPU_Q_WATCHDOG_MS:
        q->watchdog_ms = val;
        break;
    case REFNPU_Q_DBG_INJECT:
        if (s->fault_inject) {
            q->dbg_inject = val & REFNPU_DBG_INJECT_ALL;
        }
        break;
    case REFNPU_Q_DBG_ERROR:
        if (s->fault_inject) {
            q->dbg_error = val;
        }
        break;
    case REFNPU_Q_DBG_DELAY_US:
        if (s->fault_inject) {
            q->dbg_delay_us = val;
        }
        break;
    case REFNPU_Q_DBG_FAULT_VA:
        if (s->fault_inject) {
            q->dbg_fault_va = deposit64(q->dbg_fault_va, 0, 32, val);
        }
        break;
    case REFNPU_Q_DBG_FAULT_VA + 4:
        if (s->fault_inject) {
            q->dbg_fault_va = deposit64(q->dbg_fault_va, 32, 32, val);
        }
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: write 0x%x to read-only or undefined queue "
                      "register 0x%" HWADDR_PRIx "\n", val, off);
        break;
    }
    qemu_mutex_unlock(&q->lock);
}

static void refnpu_write32(RefnpuState *s, hwaddr addr, uint32_t val)
{
    uint32_t unmasked;

    if (addr >= REFNPU_QUEUE_BLOCK_BASE) {
        unsigned qi = (addr - REFNPU_QUEUE_BLOCK_BASE) /
                      REFNPU_QUEUE_BLOCK_STRIDE;

        if (qi < s->num_queues) {
            refnpu_queue_write32(s, &s->queues[qi],
                                 (addr - REFNPU_QUEUE_BLOCK_BASE) %
                                 REFNPU_QUEUE_BLOCK_STRIDE, val);
        }
        return;
    }

    switch (addr) {
    case REFNPU_REG_RESET:
        if (val & REFNPU_RESET_GO) {
            refnpu_request_reset(s);
        }
        return;
    case REFNPU_REG_TLB_INVALIDATE:
        /* Per-context invalidation drops every context: always correct. */
        refnpu_tlb_invalidate_all(s);
        return;
    case REFNPU_REG_DBG_SPURIOUS_IRQ:
        if (s->fault_inject && val < refnpu_num_vectors(s)) {
            refnpu_send_vector(s, val);
        }
        return;
    default:
        break;
    }

    qemu_mutex_lock(&s->lock);
    switch (addr) {
    case REFNPU_REG_IRQ_STATUS:
        s->irq_status &= ~val;
        break;
    case REFNPU_REG_IRQ_MASK:
        unmasked = s->irq_mask & ~val;
        s->irq_mask = val & (MAKE_64BIT_MASK(0, s->num_queues) |
                             REFNPU_IRQ_ERROR);
        /* Sources pending while masked fire when unmasked. */
        if (s->irq_status & unmasked) {
            refnpu_irq_raise_locked(s, s->irq_status & unmasked, true);
        }
        break;
    case REFNPU_REG_CTX_TABLE_BASE:
        s->ctx_table_base = deposit64(s->ctx_table_base, 0, 32, val);
        refnpu_tlb_invalidate_all(s);
        break;
    case REFNPU_REG_CTX_TABLE_BASE + 4:
        s->ctx_table_base = deposit64(s->ctx_table_base, 32, 32, val);
        refnpu_tlb_invalidate_all(s);
        break;
    case REFNPU_REG_CTX_TABLE_COUNT:
        s->ctx_table_count = MIN(val, REFNPU_MAX_CONTEXTS);
        refnpu_tlb_invalidate_all(s);
        break;
    case REFNPU_REG_FAULT_ACK:
        if (val & REFNPU_FAULT_ACK_GO) {
            s->fault_status = 0;
            s->fault_ctx = 0;
            s->fault_addr = 0;
            s->fault_seq = 0;
        }
        break;
    case REFNPU_REG_SCRATCH:
        s->scratch = val;
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "refnpu: write 0x%x to read-only or undefined register "
                      "0x%" HWADDR_PRIx "\n", val, addr);
        break;
    }
    qemu_mutex_unlock(&s->lock);
}

static uint64_t refnpu_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    RefnpuState *s = opaque;
    uint64_t val = refnpu_read32(s, addr);

    if (size == 8) {
        val |= (uint64_t)refnpu_read32(s, addr + 4) << 32;
    }
    return val;
}

static void refnpu_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                              unsigned size)
{
    RefnpuState *s = opaque;

    refnpu_write32(s, addr, val);
    if (size == 8) {
        refnpu_write32(s, addr + 4, val >> 32);
    }
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
 * Wait for the workers to carry out a device reset.  Workers do not need
 * the BQL, except in one corner: a vIOMMU that reports a translation fault
 * with an MSI does an MMIO write, which takes the BQL.  So never wait for
 * them unboundedly with the BQL held: after REFNPU_RESET_WAIT_MS the reset
 * is left to complete asynchronously (STATUS.READY tells the driver).
 */
#define REFNPU_RESET_WAIT_MS 2000

static void refnpu_reset_hold(Object *obj, ResetType type)
{
    RefnpuState *s = REFNPU(obj);
    int64_t deadline = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                       REFNPU_RESET_WAIT_MS;

    refnpu_request_reset(s);
    qemu_mutex_lock(&s->lock);
    while (s->resetting) {
        int64_t left = deadline - qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

        if (left <= 0) {
            warn_report("refnpu: device reset continues in the background");
            break;
        }
        qemu_cond_timedwait(&s->reset_cond, &s->lock, left);
    }
    qemu_mutex_unlock(&s->lock);
}

/*
 * Join a worker that was told to stop.  As for reset, a worker may need
 * the BQL for a moment (vIOMMU fault report): if it has not exited after
 * a while, let it have the BQL while we wait.
 */
static void refnpu_join_worker(RefnpuQueue *q)
{
    int waited_ms = 0;

    qemu_mutex_lock(&q->lock);
    while (!q->exited) {
        if (waited_ms >= REFNPU_RESET_WAIT_MS && bql_locked()) {
            qemu_mutex_unlock(&q->lock);
            bql_unlock();
            g_usleep(1000);
            bql_lock();
            qemu_mutex_lock(&q->lock);
            continue;
        }
        qemu_cond_timedwait(&q->cond, &q->lock, 10);
        waited_ms += 10;
    }
    qemu_mutex_unlock(&q->lock);
    qemu_thread_join(&q->thread);
}

static void refnpu_stop_queues(RefnpuState *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        RefnpuQueue *q = &s->queues[i];

        qemu_mutex_lock(&q->lock);
        q->stop = true;
        qatomic_set(&q->abort, true);
        qemu_cond_broadcast(&q->cond);
        qemu_mutex_unlock(&q->lock);
    }
    for (unsigned i = 0; i < n; i++) {
        RefnpuQueue *q = &s->queues[i];

        refnpu_join_worker(q);
        refnpu_scratch_trim(q, true);
        qemu_cond_destroy(&q->cond);
        qemu_mutex_destroy(&q->lock);
    }
}

static void refnpu_realize(PCIDevice *pdev, Error **errp)
{
    RefnpuState *s = REFNPU(pdev);
    DeviceState *dev = DEVICE(pdev);

    if (s->num_queues < REFNPU_MIN_QUEUES ||
        s->num_queues > REFNPU_MAX_QUEUES) {
        error_setg(errp, "refnpu: queues must be in [%u, %u]",
                   REFNPU_MIN_QUEUES, REFNPU_MAX_QUEUES);
        return;
    }

    s->gemm_kernel = refnpu_sgemm_kernel(s->gemm_kernel_name);
    if (!s->gemm_kernel) {
        error_setg(errp, "refnpu: GEMM kernel '%s' is unknown or not "
                   "supported by this host", s->gemm_kernel_name);
        return;
    }

    s->clock_base = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    pci_set_word(pdev->config + PCI_SUBSYSTEM_VENDOR_ID,
                 REFNPU_PCI_SUBSYSTEM_VENDOR_ID);
    pci_set_word(pdev->config + PCI_SUBSYSTEM_ID, REFNPU_PCI_SUBSYSTEM_ID);

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

    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->reset_cond);
    s->irq_bh = qemu_bh_new_guarded(refnpu_irq_bh, s,
                                    &dev->mem_reentrancy_guard);

    s->queues = g_new0(RefnpuQueue, s->num_queues);
    for (unsigned i = 0; i < s->num_queues; i++) {
        RefnpuQueue *q = &s->queues[i];
        g_autofree char *name = g_strdup_printf("refnpu-q%u", i);

        q->s = s;
        q->idx = i;
        qemu_mutex_init(&q->lock);
        qemu_cond_init(&q->cond);
        qemu_thread_create(&q->thread, name, refnpu_queue_thread, q,
                           QEMU_THREAD_JOINABLE);
    }
}

static void refnpu_exit(PCIDevice *pdev)
{
    RefnpuState *s = REFNPU(pdev);

    refnpu_stop_queues(s, s->num_queues);
    g_free(s->queues);
    s->queues = NULL;
    qemu_bh_delete(s->irq_bh);
    qemu_cond_destroy(&s->reset_cond);
    qemu_mutex_destroy(&s->lock);
    for (unsigned v = 0; v < refnpu_num_vectors(s); v++) {
        msix_vector_unuse(pdev, v);
    }
    msix_uninit_exclusive_bar(pdev);
}

static const VMStateDescription vmstate_refnpu = {
    .name = TYPE_REFNPU,
    .unmigratable = 1,
};

static const Property refnpu_properties[] = {
    DEFINE_PROP_UINT32("queues", RefnpuState, num_queues,
                       REFNPU_DEFAULT_QUEUES),
    DEFINE_PROP_BOOL("fault-inject", RefnpuState, fault_inject, false),
    /* fp32 GEMM host fast path, and its micro-kernel (auto/avx512/...) */
    DEFINE_PROP_BOOL("x-fast-gemm", RefnpuState, fast_gemm, true),
    DEFINE_PROP_STRING("x-gemm-kernel", RefnpuState, gemm_kernel_name),
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
