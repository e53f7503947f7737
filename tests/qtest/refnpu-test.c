/*
 * qtest for the refnpu PCI device model
 *
 * Drives the device only through PCI config space, BAR0 registers, MSI-X
 * and guest memory, as a driver would, and checks every result against the
 * shared reference engine run on the host.
 *
 * Built inside QEMU's tree (qemu/build-qemu.sh --qtest) and run by
 * tests/qtest/run-qtest.sh from `meson test --suite qtest`.
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include <math.h>
#include "libqtest.h"
#include "qobject/qdict.h"
#include "libqos/libqos-pc.h"
#include "libqos/pci.h"
#include "standard-headers/linux/pci_regs.h"

#include "refnpu_hw.h"
#include "refnpu_engine.h"

#define DEVFN           QPCI_DEVFN(4, 0)
#define NUM_QUEUES      REFNPU_DEFAULT_QUEUES
#define RING_ENTRIES    16
#define NUM_CTX         8
#define CTX             3           /* context used by most tests */
#define VA_BASE         0x00005a0000000000ULL
#define TIMEOUT_US      (20 * G_USEC_PER_SEC)
#define MS              1000000LL   /* nanoseconds */
/* Bus address nothing is mapped at (above the guest's RAM, below 2^48). */
#define UNBACKED_PA     0x0000400000000000ULL

typedef struct Npu {
    QOSState *qs;
    QTestState *qts;
    QPCIDevice *dev;
    QPCIBar bar;
    uint64_t ctx_table;
    uint64_t pt_root[NUM_CTX];
    uint64_t ring[NUM_QUEUES];
    uint32_t tail[NUM_QUEUES];
    uint64_t next_va;
    uint64_t seq;
} Npu;

/* A buffer mapped in the device's context CTX. */
typedef struct Buf {
    uint64_t va;
    uint64_t pa;
    uint64_t size;
} Buf;

/*
 * ---------------------------------------------------------------------
 * Register and memory helpers
 */

static uint32_t rd(Npu *n, uint64_t off)
{
    return qpci_io_readl(n->dev, n->bar, off);
}

static uint64_t rdq(Npu *n, uint64_t off)
{
    return qpci_io_readq(n->dev, n->bar, off);
}

static void wr(Npu *n, uint64_t off, uint32_t val)
{
    qpci_io_writel(n->dev, n->bar, off, val);
}

static void wrq(Npu *n, uint64_t off, uint64_t val)
{
    qpci_io_writeq(n->dev, n->bar, off, val);
}

static uint32_t qrd(Npu *n, unsigned q, uint64_t off)
{
    return rd(n, REFNPU_REG_QUEUE(q, off));
}

static void qwr(Npu *n, unsigned q, uint64_t off, uint32_t val)
{
    wr(n, REFNPU_REG_QUEUE(q, off), val);
}

static uint64_t galloc(Npu *n, uint64_t size)
{
    uint64_t pa = guest_alloc(&n->qs->alloc, size);

    g_assert(pa);
    qtest_memset(n->qts, pa, 0, size);
    return pa;
}

/* Wait (in real time) until @cond holds; false on timeout. */
#define WAIT_FOR(cond) ({                                           \
    gint64 _end = g_get_monotonic_time() + TIMEOUT_US;              \
    bool _ok;                                                       \
    while (!(_ok = (cond)) && g_get_monotonic_time() < _end) {      \
        g_usleep(1000);                                             \
    }                                                               \
    _ok;                                                            \
})

/*
 * ---------------------------------------------------------------------
 * Device MMU: page tables built in guest memory
 */

static uint64_t pt_new(Npu *n)
{
    return galloc(n, REFNPU_PAGE_SIZE);
}

/* Return the table at @level for @va, creating intermediate tables. */
static uint64_t pt_table(Npu *n, unsigned ctx, uint64_t va, int level)
{
    uint64_t table = n->pt_root[ctx];

    for (int l = REFNPU_PT_LEVELS - 1; l > level; l--) {
        uint64_t pte_addr = table + REFNPU_PT_INDEX(va, l) * REFNPU_PTE_SIZE;
        uint64_t pte = qtest_readq(n->qts, pte_addr);

        if (!(pte & REFNPU_PTE_VALID)) {
            pte = pt_new(n) | REFNPU_PTE_VALID;
            qtest_writeq(n->qts, pte_addr, pte);
        }
        g_assert(!(pte & REFNPU_PTE_LEAF));
        table = pte & REFNPU_PTE_ADDR_MASK;
    }
    return table;
}

static void map_page(Npu *n, unsigned ctx, uint64_t va, uint64_t pa,
                     uint64_t perm)
{
    uint64_t table = pt_table(n, ctx, va, 0);

    qtest_writeq(n->qts, table + REFNPU_PT_INDEX(va, 0) * REFNPU_PTE_SIZE,
                 (pa & REFNPU_PTE_ADDR_MASK) | perm | REFNPU_PTE_VALID);
}

static void map_huge(Npu *n, unsigned ctx, uint64_t va, uint64_t pa,
                     uint64_t perm)
{
    uint64_t table = pt_table(n, ctx, va, 1);

    g_assert(!(va % REFNPU_HUGE_PAGE_SIZE) && !(pa % REFNPU_HUGE_PAGE_SIZE));
    qtest_writeq(n->qts, table + REFNPU_PT_INDEX(va, 1) * REFNPU_PTE_SIZE,
                 pa | perm | REFNPU_PTE_LEAF | REFNPU_PTE_VALID);
}

static void map_range(Npu *n, unsigned ctx, uint64_t va, uint64_t pa,
                      uint64_t size, uint64_t perm)
{
    for (uint64_t off = 0; off < size; off += REFNPU_PAGE_SIZE) {
        map_page(n, ctx, va + off, pa + off, perm);
    }
}

static uint64_t va_reserve(Npu *n, uint64_t size)
{
    uint64_t va = n->next_va;

    /* Leave an unmapped guard page after every buffer. */
    n->next_va += ROUND_UP(size, REFNPU_PAGE_SIZE) + REFNPU_PAGE_SIZE;
    return va;
}

static Buf buf_new_perm(Npu *n, uint64_t size, uint64_t perm)
{
    Buf b;

    b.size = ROUND_UP(MAX(size, 1), REFNPU_PAGE_SIZE);
    b.pa = galloc(n, b.size);
    b.va = va_reserve(n, b.size);
    map_range(n, CTX, b.va, b.pa, b.size, perm);
    return b;
}

static Buf buf_new(Npu *n, uint64_t size)
{
    return buf_new_perm(n, size, REFNPU_PTE_READ | REFNPU_PTE_WRITE);
}

static void buf_write(Npu *n, Buf *b, const void *data, size_t len)
{
    g_assert(len <= b->size);
    qtest_bufwrite(n->qts, b->pa, data, len);
}

static void buf_read(Npu *n, Buf *b, void *data, size_t len)
{
    g_assert(len <= b->size);
    qtest_bufread(n->qts, b->pa, data, len);
}

/*
 * ---------------------------------------------------------------------
 * Device set-up and job submission
 */

static void npu_setup_queue(Npu *n, unsigned q)
{
    if (!n->ring[q]) {
        n->ring[q] = galloc(n, RING_ENTRIES * REFNPU_JOB_DESC_SIZE);
    }
    n->tail[q] = 0;
    wrq(n, REFNPU_REG_QUEUE(q, REFNPU_Q_RING_BASE), n->ring[q]);
    qwr(n, q, REFNPU_Q_RING_SIZE, RING_ENTRIES);
    qwr(n, q, REFNPU_Q_CTRL, REFNPU_Q_CTRL_ENABLE);
}

/* Program context table, MMU and queues after boot or a device reset. */
static void npu_setup(Npu *n)
{
    wrq(n, REFNPU_REG_CTX_TABLE_BASE, n->ctx_table);
    wr(n, REFNPU_REG_CTX_TABLE_COUNT, NUM_CTX);
    for (unsigned q = 0; q < NUM_QUEUES; q++) {
        npu_setup_queue(n, q);
    }
}

/* Boot with @machine options (may be "") and refnpu properties @extra. */
static Npu *npu_start_on(const char *machine, const char *extra)
{
    Npu *n = g_new0(Npu, 1);

    n->qs = qtest_pc_boot("%s -m 512M -device refnpu,addr=04.0%s%s",
                          machine, extra ? "," : "", extra ? extra : "");
    n->qts = n->qs->qts;
    n->dev = qpci_device_find(n->qs->pcibus, DEVFN);
    g_assert(n->dev);
    qpci_device_enable(n->dev);
    n->bar = qpci_iomap(n->dev, REFNPU_BAR_REGS, NULL);
    qpci_msix_enable(n->dev);

    n->ctx_table = galloc(n, NUM_CTX * REFNPU_CTX_ENTRY_SIZE);
    for (unsigned c = 0; c < NUM_CTX; c++) {
        n->pt_root[c] = pt_new(n);
        qtest_writeq(n->qts, n->ctx_table + c * REFNPU_CTX_ENTRY_SIZE,
                     n->pt_root[c]);
        qtest_writel(n->qts, n->ctx_table + c * REFNPU_CTX_ENTRY_SIZE + 8,
                     REFNPU_CTX_F_VALID);
    }
    n->next_va = VA_BASE;
    n->seq = 100;
    npu_setup(n);
    return n;
}

static Npu *npu_start(const char *extra)
{
    return npu_start_on("", extra);
}

static void npu_stop(Npu *n)
{
    qpci_iounmap(n->dev, n->bar);
    g_free(n->dev);
    qtest_shutdown(n->qs);
    g_free(n);
}

typedef struct Job {
    uint64_t comp;          /* completion record (bus address) */
    uint64_t seq;
    unsigned q;
} Job;

/* Queue a job without ringing the doorbell. */
static Job job_queue(Npu *n, unsigned q, uint32_t ctx, uint32_t flags,
                     Buf *cmd, uint64_t cmd_size)
{
    struct refnpu_job_desc d = { 0 };
    Job j = { .q = q, .seq = n->seq++ };

    j.comp = galloc(n, REFNPU_COMPLETION_SIZE);
    d.ctx_id = ctx;
    d.flags = flags;
    d.cmd_va = cmd ? cmd->va : 0;
    d.cmd_size = cmd_size;
    d.completion_addr = j.comp;
    d.seq = j.seq;
    qtest_memwrite(n->qts, n->ring[q] + n->tail[q] * REFNPU_JOB_DESC_SIZE,
                   &d, sizeof(d));
    n->tail[q] = (n->tail[q] + 1) % RING_ENTRIES;
    return j;
}

static void doorbell(Npu *n, unsigned q)
{
    qwr(n, q, REFNPU_Q_TAIL, n->tail[q]);
}

static Job job_submit(Npu *n, unsigned q, uint32_t flags, Buf *cmd,
                      uint64_t cmd_size)
{
    Job j = job_queue(n, q, CTX, flags, cmd, cmd_size);

    doorbell(n, q);
    return j;
}

static bool job_done(Npu *n, Job *j)
{
    return qtest_readl(n->qts, j->comp +
                       offsetof(struct refnpu_completion, done)) ==
           REFNPU_COMPLETION_DONE;
}

/*
 * Advance the virtual clock by @step_ns until @j completes (at most
 * @max_steps steps). Under qtest the device's clock moves only when the
 * test steps it, and the worker may read it for a job's deadline after
 * the test saw the job fetched: a single step can land before that read
 * and leave the job waiting forever, so step until it is done.
 */
static void job_step_until_done(Npu *n, Job *j, int64_t step_ns,
                                int max_steps)
{
    int i;

    for (i = 0; i < max_steps && !job_done(n, j); i++) {
        qtest_clock_step(n->qts, step_ns);
        g_usleep(1000);
    }
}

static struct refnpu_completion job_wait(Npu *n, Job *j)
{
    struct refnpu_completion c;

    g_assert(WAIT_FOR(job_done(n, j)));
    qtest_memread(n->qts, j->comp, &c, sizeof(c));
    g_assert_cmphex(c.done, ==, REFNPU_COMPLETION_DONE);
    g_assert_cmpuint(c.seq, ==, j->seq);
    g_assert_cmpuint(c.end_ts, >=, c.start_ts);
    g_assert_cmpuint(c.rsvd, ==, 0);
    return c;
}

/* Wait until queue @q is idle (head caught up, not busy). */
static void queue_idle(Npu *n, unsigned q)
{
    g_assert(WAIT_FOR(!(qrd(n, q, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_BUSY)));
}

static void fault_ack(Npu *n)
{
    wr(n, REFNPU_REG_FAULT_ACK, REFNPU_FAULT_ACK_GO);
    wr(n, REFNPU_REG_IRQ_STATUS, REFNPU_IRQ_ERROR);
}

/* Write @len bytes of commands into a new command buffer. */
static Buf cmdbuf(Npu *n, const void *cmds, size_t len)
{
    Buf b = buf_new_perm(n, len, REFNPU_PTE_READ);

    buf_write(n, &b, cmds, len);
    return b;
}

/* Run one command buffer synchronously on queue 0; return completion. */
static struct refnpu_completion run_cmds(Npu *n, const void *cmds,
                                         size_t len)
{
    Buf cb = cmdbuf(n, cmds, len);
    Job j = job_submit(n, 0, 0, &cb, len);

    return job_wait(n, &j);
}

#define HDR(op, type, fl) \
    ((struct refnpu_cmd_hdr){ .opcode = (op), .flags = (fl), \
                              .len_dw = sizeof(type) / 4 })

/*
 * ---------------------------------------------------------------------
 * Host model: run the reference engine on host copies of the buffers
 */

typedef struct HostRegion {
    uint64_t va;
    uint64_t size;
    uint8_t *data;
} HostRegion;

typedef struct HostMem {
    HostRegion r[16];
    unsigned n;
} HostMem;

static uint8_t *host_ptr(HostMem *m, uint64_t va, uint64_t len)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (va >= m->r[i].va && va - m->r[i].va + len <= m->r[i].size) {
            return m->r[i].data + (va - m->r[i].va);
        }
    }
    return NULL;
}

static __u32 host_read(void *opaque, __u64 va, void *buf, __u64 len,
                       __u64 *fault_va)
{
    uint8_t *p = host_ptr(opaque, va, len);

    if (!p) {
        return REFNPU_ERR_MMU_UNMAPPED;
    }
    memcpy(buf, p, len);
    return REFNPU_ERR_NONE;
}

static __u32 host_write(void *opaque, __u64 va, const void *buf, __u64 len,
                        __u64 *fault_va)
{
    uint8_t *p = host_ptr(opaque, va, len);

    if (!p) {
        return REFNPU_ERR_MMU_UNMAPPED;
    }
    memcpy(p, buf, len);
    return REFNPU_ERR_NONE;
}

/* Mirror device buffer @b (its current guest contents) into @m. */
static void host_add(Npu *n, HostMem *m, Buf *b)
{
    HostRegion *r = &m->r[m->n++];

    g_assert(m->n <= G_N_ELEMENTS(m->r));
    r->va = b->va;
    r->size = b->size;
    r->data = g_malloc(b->size);
    buf_read(n, b, r->data, b->size);
}

static void host_free(HostMem *m)
{
    for (unsigned i = 0; i < m->n; i++) {
        g_free(m->r[i].data);
    }
    m->n = 0;
}

/*
 * Run @cmd on the device and on the host engine, with @bufs holding the
 * operands, and check the device's status and every buffer byte-exactly.
 */
static void check_against_engine(Npu *n, const void *cmd, size_t len,
                                 Buf **bufs, unsigned nbufs)
{
    struct refnpu_engine_env env = {
        .read = host_read,
        .write = host_write,
    };
    struct refnpu_engine_result res;
    struct refnpu_completion c;
    HostMem m = { 0 };
    uint32_t st;
    bool changed = false;

    for (unsigned i = 0; i < nbufs; i++) {
        host_add(n, &m, bufs[i]);
    }
    env.opaque = &m;
    st = refnpu_engine_exec(&env, cmd, len, &res);

    /*
     * The device and the host run the same engine: agreeing on memory
     * neither of them wrote would prove nothing, so the op must have
     * changed some byte.
     */
    for (unsigned i = 0; i < nbufs && !changed; i++) {
        g_autofree uint8_t *before = g_malloc(bufs[i]->size);

        buf_read(n, bufs[i], before, bufs[i]->size);
        changed = memcmp(before, m.r[i].data, bufs[i]->size) != 0;
    }
    g_assert_true(changed);

    c = run_cmds(n, cmd, len);
    g_assert_cmphex(c.status, ==, st);
    g_assert_cmphex(st, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(c.cmd_index, ==, 1);
    g_assert_cmpuint(c.cmd_offset, ==, len);

    for (unsigned i = 0; i < nbufs; i++) {
        g_autofree uint8_t *dev = g_malloc(bufs[i]->size);

        buf_read(n, bufs[i], dev, bufs[i]->size);
        g_assert(memcmp(dev, m.r[i].data, bufs[i]->size) == 0);
    }
    host_free(&m);
}

static void fill_f32(float *v, size_t count, unsigned seed)
{
    for (size_t i = 0; i < count; i++) {
        v[i] = (float)((int)((i * 37 + seed * 101) % 41) - 20) / 8.0f;
    }
}

static void fill_bytes(uint8_t *v, size_t count, unsigned seed)
{
    for (size_t i = 0; i < count; i++) {
        v[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 3));
    }
}

static Buf buf_f32(Npu *n, size_t count, unsigned seed)
{
    g_autofree float *v = g_new(float, count);
    Buf b = buf_new(n, count * 4);

    fill_f32(v, count, seed);
    buf_write(n, &b, v, count * 4);
    return b;
}

static Buf buf_bytes(Npu *n, size_t count, unsigned seed)
{
    g_autofree uint8_t *v = g_malloc(count);
    Buf b = buf_new(n, count);

    fill_bytes(v, count, seed);
    buf_write(n, &b, v, count);
    return b;
}

/*
 * ---------------------------------------------------------------------
 * Tests: registers
 */

static void test_reset_values(void)
{
    Npu *n = npu_start(NULL);
    uint32_t msix_cap;

    g_assert_cmphex(qpci_config_readw(n->dev, PCI_VENDOR_ID), ==,
                    REFNPU_PCI_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(n->dev, PCI_DEVICE_ID), ==,
                    REFNPU_PCI_DEVICE_ID);
    g_assert_cmphex(qpci_config_readb(n->dev, PCI_REVISION_ID), ==,
                    REFNPU_PCI_REVISION);
    g_assert_cmphex(qpci_config_readl(n->dev, PCI_CLASS_REVISION) >> 8, ==,
                    REFNPU_PCI_CLASS_CODE);
    g_assert_cmphex(qpci_config_readw(n->dev, PCI_SUBSYSTEM_VENDOR_ID), ==,
                    REFNPU_PCI_SUBSYSTEM_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(n->dev, PCI_SUBSYSTEM_ID), ==,
                    REFNPU_PCI_SUBSYSTEM_ID);
    g_assert_cmphex(qpci_config_readl(n->dev, PCI_BASE_ADDRESS_0) &
                    PCI_BASE_ADDRESS_MEM_TYPE_MASK, ==,
                    PCI_BASE_ADDRESS_MEM_TYPE_64);
    msix_cap = qpci_find_capability(n->dev, PCI_CAP_ID_MSIX, 0);
    g_assert(msix_cap);
    g_assert_cmphex(qpci_config_readl(n->dev, msix_cap + PCI_MSIX_TABLE) &
                    PCI_MSIX_FLAGS_BIRMASK, ==, REFNPU_BAR_MSIX);
    g_assert_cmpuint(qpci_msix_table_size(n->dev), ==,
                     REFNPU_MSIX_NUM_VECTORS(NUM_QUEUES));

    g_assert_cmphex(rd(n, REFNPU_REG_ID), ==, REFNPU_ID_VALUE);
    g_assert_cmphex(rd(n, REFNPU_REG_VERSION), ==, REFNPU_VERSION_VALUE);
    g_assert_cmphex(rd(n, REFNPU_REG_CAPS), ==, REFNPU_CAPS_BASE);
    g_assert_cmpuint(rd(n, REFNPU_REG_NUM_QUEUES), ==, NUM_QUEUES);
    g_assert_cmphex(rd(n, REFNPU_REG_MMU_CAPS), ==, REFNPU_MMU_CAPS_VALUE);
    g_assert_cmpuint(rd(n, REFNPU_REG_MAX_CONTEXTS), ==, REFNPU_MAX_CONTEXTS);
    g_assert_cmpuint(rd(n, REFNPU_REG_TIMESTAMP_FREQ), ==,
                     REFNPU_TIMESTAMP_FREQ_HZ);
    g_assert_cmphex(rd(n, REFNPU_REG_STATUS), ==, REFNPU_STATUS_READY);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_MASK), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_CTX), ==, 0);
    g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_ADDR), ==, 0);
    g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_SEQ), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_SCRATCH), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_TLB_INVALIDATE) & REFNPU_TLB_INV_BUSY,
                    ==, 0);
    /* npu_start() programmed the context table: check it reads back. */
    g_assert_cmphex(rdq(n, REFNPU_REG_CTX_TABLE_BASE), ==, n->ctx_table);
    g_assert_cmpuint(rd(n, REFNPU_REG_CTX_TABLE_COUNT), ==, NUM_CTX);

    /* Scratch is read/write; undefined offsets read as zero. */
    wr(n, REFNPU_REG_SCRATCH, 0xdeadbeef);
    g_assert_cmphex(rd(n, REFNPU_REG_SCRATCH), ==, 0xdeadbeef);
    g_assert_cmphex(rd(n, 0x0200), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_QUEUE(NUM_QUEUES, REFNPU_Q_RING_SIZE)),
                    ==, 0);

    /* Debug block is RAZ/WI without fault-inject=on. */
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
    qwr(n, 0, REFNPU_Q_DBG_DELAY_US, 1234);
    g_assert_cmphex(qrd(n, 0, REFNPU_Q_DBG_INJECT), ==, 0);
    g_assert_cmphex(qrd(n, 0, REFNPU_Q_DBG_DELAY_US), ==, 0);

    /* The 64-bit timestamp counts (virtual) nanoseconds. */
    {
        uint64_t t0 = rdq(n, REFNPU_REG_TIMESTAMP);

        qtest_clock_step(n->qts, 1000000);
        g_assert_cmpuint(rdq(n, REFNPU_REG_TIMESTAMP), >=, t0 + 1000000);
    }

    /* After a device reset, every register is back at its reset value. */
    wr(n, REFNPU_REG_RESET, REFNPU_RESET_GO);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_STATUS) & REFNPU_STATUS_READY));
    g_assert_cmphex(rd(n, REFNPU_REG_SCRATCH), ==, 0);
    g_assert_cmphex(rdq(n, REFNPU_REG_CTX_TABLE_BASE), ==, 0);
    g_assert_cmpuint(rd(n, REFNPU_REG_CTX_TABLE_COUNT), ==, 0);
    for (unsigned q = 0; q < NUM_QUEUES; q++) {
        g_assert_cmphex(rdq(n, REFNPU_REG_QUEUE(q, REFNPU_Q_RING_BASE)), ==,
                        0);
        g_assert_cmpuint(qrd(n, q, REFNPU_Q_RING_SIZE), ==, 0);
        g_assert_cmphex(qrd(n, q, REFNPU_Q_CTRL), ==, 0);
        g_assert_cmpuint(qrd(n, q, REFNPU_Q_TAIL), ==, 0);
        g_assert_cmpuint(qrd(n, q, REFNPU_Q_HEAD), ==, 0);
        g_assert_cmphex(qrd(n, q, REFNPU_Q_STATUS), ==, 0);
        g_assert_cmpuint(qrd(n, q, REFNPU_Q_WATCHDOG_MS), ==, 0);
        g_assert_cmphex(qrd(n, q, REFNPU_Q_ERROR), ==, 0);
        g_assert_cmpuint(rdq(n, REFNPU_REG_QUEUE(q, REFNPU_Q_LAST_SEQ)), ==,
                         0);
    }
    npu_stop(n);
}

static void test_queue_count(void)
{
    Npu *n = npu_start("num-queues=7,fault-inject=on");

    g_assert_cmpuint(rd(n, REFNPU_REG_NUM_QUEUES), ==, 7);
    g_assert_cmpuint(qpci_msix_table_size(n->dev), ==,
                     REFNPU_MSIX_NUM_VECTORS(7));
    g_assert_cmphex(rd(n, REFNPU_REG_CAPS), ==,
                    REFNPU_CAPS_BASE | REFNPU_CAP_FAULT_INJECT);
    /* Queue 6 exists, queue 7 does not. */
    qwr(n, 6, REFNPU_Q_RING_SIZE, 8);
    g_assert_cmpuint(qrd(n, 6, REFNPU_Q_RING_SIZE), ==, 8);
    qwr(n, 7, REFNPU_Q_RING_SIZE, 8);
    g_assert_cmpuint(qrd(n, 7, REFNPU_Q_RING_SIZE), ==, 0);
    npu_stop(n);
}

/*
 * ---------------------------------------------------------------------
 * Tests: queues and interrupts
 */

static void test_round_trip(void)
{
    Npu *n = npu_start(NULL);
    struct refnpu_cmd_nop nop[3] = {
        { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop, 0) },
        { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop, 0) },
        { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop, 0) },
    };
    Buf cb = cmdbuf(n, nop, sizeof(nop));
    struct refnpu_completion c;
    unsigned vec = REFNPU_MSIX_VEC_QUEUE(1);
    uint64_t msi_addr;
    Job j;

    /* Vectors are masked after reset: completion sets the pending bit. */
    g_assert(qpci_msix_masked(n->dev, vec));
    g_assert(!qpci_msix_pending(n->dev, vec));

    j = job_submit(n, 1, REFNPU_JOB_F_IRQ, &cb, sizeof(nop));
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(c.ctx_id, ==, CTX);
    g_assert_cmpuint(c.cmd_index, ==, 3);
    g_assert_cmpuint(c.cmd_offset, ==, sizeof(nop));
    g_assert_cmphex(c.fault_va, ==, 0);
    g_assert_cmphex(c.fault_flags, ==, 0);
    queue_idle(n, 1);
    g_assert_cmpuint(qrd(n, 1, REFNPU_Q_HEAD), ==, 1);
    g_assert_cmpuint(rdq(n, REFNPU_REG_QUEUE(1, REFNPU_Q_LAST_SEQ)), ==,
                     j.seq);
    g_assert(WAIT_FOR(qpci_msix_pending(n->dev, vec)));
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, REFNPU_IRQ_QUEUE(1));
    g_assert(!qpci_msix_pending(n->dev, REFNPU_MSIX_VEC_QUEUE(0)));
    g_assert(!qpci_msix_pending(n->dev, REFNPU_MSIX_VEC_ERROR));

    /* IRQ_STATUS is write-one-to-clear. */
    wr(n, REFNPU_REG_IRQ_STATUS, REFNPU_IRQ_QUEUE(1));
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, 0);

    /* A job without REFNPU_JOB_F_IRQ completes silently. */
    j = job_submit(n, 1, 0, &cb, sizeof(nop));
    job_wait(n, &j);
    queue_idle(n, 1);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, 0);

    /* Unmask the vector: the message is written to its address. */
    msi_addr = galloc(n, 64);
    qpci_io_writel(n->dev, n->dev->msix_table_bar, n->dev->msix_table_off +
                   vec * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_LOWER_ADDR,
                   msi_addr);
    qpci_io_writel(n->dev, n->dev->msix_table_bar, n->dev->msix_table_off +
                   vec * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_UPPER_ADDR, 0);
    qpci_io_writel(n->dev, n->dev->msix_table_bar, n->dev->msix_table_off +
                   vec * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA, 0x5a5a);
    qpci_io_writel(n->dev, n->dev->msix_table_bar, n->dev->msix_table_off +
                   vec * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    /* Unmasking delivers the pending message. */
    g_assert(WAIT_FOR(qtest_readl(n->qts, msi_addr) == 0x5a5a));
    g_assert(!qpci_msix_pending(n->dev, vec));
    qtest_writel(n->qts, msi_addr, 0);
    j = job_submit(n, 1, REFNPU_JOB_F_IRQ, &cb, sizeof(nop));
    job_wait(n, &j);
    g_assert(WAIT_FOR(qtest_readl(n->qts, msi_addr) == 0x5a5a));

    /* IRQ_MASK suppresses the message; unmasking a pending source fires. */
    qtest_writel(n->qts, msi_addr, 0);
    wr(n, REFNPU_REG_IRQ_STATUS, ~0u);
    wr(n, REFNPU_REG_IRQ_MASK, REFNPU_IRQ_QUEUE(1));
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_MASK), ==, REFNPU_IRQ_QUEUE(1));
    j = job_submit(n, 1, REFNPU_JOB_F_IRQ, &cb, sizeof(nop));
    job_wait(n, &j);
    queue_idle(n, 1);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, REFNPU_IRQ_QUEUE(1));
    g_usleep(50000);
    g_assert_cmphex(qtest_readl(n->qts, msi_addr), ==, 0);
    wr(n, REFNPU_REG_IRQ_MASK, 0);
    g_assert(WAIT_FOR(qtest_readl(n->qts, msi_addr) == 0x5a5a));
    npu_stop(n);
}

static void test_ring_many(void)
{
    Npu *n = npu_start(NULL);
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf cb = cmdbuf(n, &nop, sizeof(nop));
    Job jobs[RING_ENTRIES * 2];

    /* Wrap the ring twice, in batches, on every queue. */
    for (unsigned round = 0; round < 4; round++) {
        for (unsigned q = 0; q < NUM_QUEUES; q++) {
            for (unsigned i = 0; i < RING_ENTRIES - 1; i++) {
                jobs[i] = job_queue(n, q, CTX, 0, &cb, sizeof(nop));
            }
            doorbell(n, q);
            for (unsigned i = 0; i < RING_ENTRIES - 1; i++) {
                struct refnpu_completion c = job_wait(n, &jobs[i]);

                g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
            }
            queue_idle(n, q);
            g_assert_cmpuint(qrd(n, q, REFNPU_Q_HEAD), ==, n->tail[q]);
        }
    }
    npu_stop(n);
}

/* Several queues run at once: a long job does not block another queue. */
static void test_concurrent_queues(void)
{
    Npu *n = npu_start(NULL);
    const uint32_t dim = 192;
    Buf a = buf_bytes(n, dim * dim, 1);
    Buf b = buf_bytes(n, dim * dim, 2);
    Buf c = buf_new(n, dim * dim * 4);
    struct refnpu_cmd_gemm g = {
        .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm, 0),
        .a = { a.va, dim }, .b = { b.va, dim }, .c = { c.va, dim * 4 },
        .m = dim, .n = dim, .k = dim,
        .in_dtype = REFNPU_DTYPE_INT8, .out_dtype = REFNPU_DTYPE_INT32,
    };
    struct refnpu_cmd_gemm cmds[8];
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf big, small = cmdbuf(n, &nop, sizeof(nop));
    Job slow[NUM_QUEUES - 1], fast;

    for (unsigned i = 0; i < G_N_ELEMENTS(cmds); i++) {
        cmds[i] = g;
    }
    big = cmdbuf(n, cmds, sizeof(cmds));
    for (unsigned q = 1; q < NUM_QUEUES; q++) {
        slow[q - 1] = job_submit(n, q, 0, &big, sizeof(cmds));
    }
    fast = job_submit(n, 0, 0, &small, sizeof(nop));
    job_wait(n, &fast);
    for (unsigned q = 1; q < NUM_QUEUES; q++) {
        struct refnpu_completion cr = job_wait(n, &slow[q - 1]);

        g_assert_cmphex(cr.status, ==, REFNPU_ERR_NONE);
        g_assert_cmpuint(cr.cmd_index, ==, G_N_ELEMENTS(cmds));
    }
    npu_stop(n);
}

static void test_ring_errors(void)
{
    Npu *n = npu_start(NULL);
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf cb = cmdbuf(n, &nop, sizeof(nop));
    struct refnpu_completion c;
    Job j;

    /* Unknown descriptor flags: the job fails, the queue goes on. */
    j = job_submit(n, 0, 0x80, &cb, sizeof(nop));
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_BAD_DESCRIPTOR);
    fault_ack(n);

    /* Invalid context id. */
    j = job_queue(n, 0, NUM_CTX, 0, &cb, sizeof(nop));
    doorbell(n, 0);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_INVALID_CONTEXT);
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS) &
                    REFNPU_FAULT_STATUS_CODE_MASK, ==,
                    REFNPU_ERR_INVALID_CONTEXT << 16);
    fault_ack(n);

    /* Command size not a multiple of 8. */
    j = job_submit(n, 0, 0, &cb, 4);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_BAD_DESCRIPTOR);
    fault_ack(n);

    /* An empty command buffer completes successfully. */
    j = job_submit(n, 0, 0, NULL, 0);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(c.cmd_index, ==, 0);

    /* Tail beyond the ring: the queue halts with a ring error. */
    qwr(n, 2, REFNPU_Q_TAIL, RING_ENTRIES + 3);
    g_assert(WAIT_FOR(qrd(n, 2, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_ERROR));
    g_assert_cmphex(qrd(n, 2, REFNPU_Q_ERROR), ==, REFNPU_ERR_RING);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_IRQ_STATUS) & REFNPU_IRQ_ERROR));
    g_assert(WAIT_FOR(qpci_msix_pending(n->dev, REFNPU_MSIX_VEC_ERROR)));
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS) &
                    REFNPU_FAULT_STATUS_QUEUE_MASK, ==, 2 << 8);
    /* Only that queue is affected; a queue reset recovers it. */
    j = job_submit(n, 3, 0, &cb, sizeof(nop));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_NONE);
    qwr(n, 2, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
    g_assert(WAIT_FOR(qrd(n, 2, REFNPU_Q_STATUS) == 0));
    g_assert_cmphex(qrd(n, 2, REFNPU_Q_ERROR), ==, 0);
    npu_setup_queue(n, 2);
    j = job_submit(n, 2, 0, &cb, sizeof(nop));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_NONE);
    fault_ack(n);

    /* Enabling a queue with a ring size that is not a power of two. */
    qwr(n, 3, REFNPU_Q_CTRL, 0);
    qwr(n, 3, REFNPU_Q_RING_SIZE, 12);
    qwr(n, 3, REFNPU_Q_CTRL, REFNPU_Q_CTRL_ENABLE);
    g_assert(WAIT_FOR(qrd(n, 3, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_ERROR));
    g_assert_cmphex(qrd(n, 3, REFNPU_Q_ERROR), ==, REFNPU_ERR_RING);

    /* A ring the device cannot read halts the queue (DMA error). */
    qwr(n, 1, REFNPU_Q_CTRL, 0);
    wrq(n, REFNPU_REG_QUEUE(1, REFNPU_Q_RING_BASE), UNBACKED_PA);
    qwr(n, 1, REFNPU_Q_CTRL, REFNPU_Q_CTRL_ENABLE);
    qwr(n, 1, REFNPU_Q_TAIL, 1);
    g_assert(WAIT_FOR(qrd(n, 1, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_ERROR));
    g_assert_cmphex(qrd(n, 1, REFNPU_Q_ERROR), ==, REFNPU_ERR_DMA);
    npu_stop(n);
}

/*
 * ---------------------------------------------------------------------
 * Tests: every opcode against the engine
 */

static void test_op_copy_fill(void)
{
    Npu *n = npu_start(NULL);
    Buf src = buf_bytes(n, 3 * 4096, 3);
    Buf dst = buf_bytes(n, 3 * 4096, 4);
    Buf *bufs[] = { &src, &dst };
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        /* Rows straddle page boundaries. */
        .src = { src.va + 5, 1000 }, .dst = { dst.va + 3000, 777 },
        .rows = 9, .row_bytes = 700,
    };
    struct refnpu_cmd_fill fl = {
        .hdr = HDR(REFNPU_OP_FILL, struct refnpu_cmd_fill, 0),
        .dst = { dst.va + 64, 512 }, .rows = 5, .row_bytes = 96,
        .pattern = 0x1122334455667788ULL, .pattern_bytes = 8,
    };

    check_against_engine(n, &cp, sizeof(cp), bufs, 2);
    check_against_engine(n, &fl, sizeof(fl), bufs, 2);
    fl.pattern_bytes = 2;
    fl.pattern = 0xa55a;
    fl.dst.va = dst.va + 2;
    fl.row_bytes = 30;
    check_against_engine(n, &fl, sizeof(fl), bufs, 2);
    fl.pattern_bytes = 1;
    fl.pattern = 0xc3;
    fl.dst.va = dst.va + 4095;
    fl.rows = 1;
    fl.row_bytes = 3;
    check_against_engine(n, &fl, sizeof(fl), bufs, 2);
    npu_stop(n);
}

/* |dev - ref| within the REFNPU_GEMM_TOL_* contract, NaN/Inf alike. */
static void check_gemm_f32_tol(const float *dev, const float *ref,
                               const float *a, const float *b,
                               const float *bias, uint32_t m, uint32_t nn,
                               uint32_t k, size_t ldc)
{
    float tol_abs;
    uint32_t bits = REFNPU_GEMM_TOL_ABS_BITS;

    memcpy(&tol_abs, &bits, 4);
    for (uint32_t i = 0; i < m; i++) {
        for (uint32_t j = 0; j < nn; j++) {
            double mag = bias ? fabs(bias[j]) : 0;
            float d = dev[i * ldc + j], r = ref[i * ldc + j];

            for (uint32_t p = 0; p < k; p++) {
                mag += fabs((double)a[i * k + p] * b[p * nn + j]);
            }
            if (isnan(r) || isinf(r)) {
                g_assert(isnan(r) ? isnan(d) : d == r);
                continue;
            }
            g_assert_cmpfloat(fabs((double)d - r), <=,
                              REFNPU_GEMM_TOL_FACTOR * (k + 1) *
                              ldexp(1, -24) * mag + tol_abs);
        }
    }
}

/*
 * fp32 GEMM through the device's host fast path (with the micro-kernel
 * given in @opaque) or, with fast-gemm=off, the reference engine itself,
 * which must then match bit for bit.
 */
static void test_op_gemm_f32(const void *opaque)
{
    const char *props = opaque;
    bool exact = strstr(props, "fast-gemm=off");
    Npu *n = npu_start(props);
    static const uint32_t shapes[][3] = {
        { 1, 1, 1 }, { 7, 13, 5 }, { 33, 17, 70 }, { 64, 48, 300 },
        { 13, 70, 600 },
    };

    for (unsigned s = 0; s < G_N_ELEMENTS(shapes); s++) {
        uint32_t m = shapes[s][0], nn = shapes[s][1], k = shapes[s][2];
        g_autofree float *a = g_new(float, m * k);
        g_autofree float *b = g_new(float, k * nn);
        g_autofree float *bias = g_new(float, nn);
        g_autofree float *dev = g_new(float, m * nn);
        g_autofree float *ref = g_new0(float, m * nn);
        Buf ab = buf_new(n, m * k * 4), bb = buf_new(n, k * nn * 4);
        Buf biasb = buf_new(n, nn * 4), cb = buf_new(n, m * nn * 4);
        struct refnpu_cmd_gemm g = {
            .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm,
                       REFNPU_GEMM_F_BIAS | REFNPU_GEMM_F_RELU),
            .a = { ab.va, k * 4 }, .b = { bb.va, nn * 4 },
            .c = { cb.va, nn * 4 }, .bias_va = biasb.va,
            .m = m, .n = nn, .k = k,
            .in_dtype = REFNPU_DTYPE_FP32, .out_dtype = REFNPU_DTYPE_FP32,
        };
        HostRegion regs[] = {
            { ab.va, m * k * 4, (uint8_t *)a },
            { bb.va, k * nn * 4, (uint8_t *)b },
            { biasb.va, nn * 4, (uint8_t *)bias },
            { cb.va, m * nn * 4, (uint8_t *)ref },
        };
        HostMem hm = { .n = 4 };
        struct refnpu_engine_env env = {
            .opaque = &hm, .read = host_read, .write = host_write,
        };
        struct refnpu_engine_result res;
        struct refnpu_completion c;

        memcpy(hm.r, regs, sizeof(regs));
        fill_f32(a, m * k, s + 1);
        fill_f32(b, k * nn, s + 2);
        fill_f32(bias, nn, s + 3);
        if (s == 1) {
            a[3] = NAN;
            b[5] = INFINITY;
        }
        buf_write(n, &ab, a, m * k * 4);
        buf_write(n, &bb, b, k * nn * 4);
        buf_write(n, &biasb, bias, nn * 4);

        g_assert_cmphex(refnpu_engine_exec(&env, &g, sizeof(g), &res), ==,
                        REFNPU_ERR_NONE);
        c = run_cmds(n, &g, sizeof(g));
        g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
        buf_read(n, &cb, dev, m * nn * 4);
        if (exact) {
            g_assert(memcmp(dev, ref, m * nn * 4) == 0);
        } else {
            check_gemm_f32_tol(dev, ref, a, b, bias, m, nn, k, nn);
        }
    }
    npu_stop(n);
}

static void test_op_gemm_other(void)
{
    Npu *n = npu_start(NULL);
    const uint32_t m = 9, nn = 21, k = 37;
    Buf a8 = buf_bytes(n, m * k, 5), b8 = buf_bytes(n, k * nn, 6);
    Buf a16 = buf_bytes(n, m * k * 2, 7), b16 = buf_bytes(n, k * nn * 2, 8);
    Buf bias = buf_bytes(n, nn * 4, 9), c = buf_new(n, m * nn * 4);
    Buf *b8s[] = { &a8, &b8, &bias, &c };
    Buf *b16s[] = { &a16, &b16, &bias, &c };
    struct refnpu_cmd_gemm g = {
        .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm,
                   REFNPU_GEMM_F_BIAS),
        .a = { a8.va, k }, .b = { b8.va, nn }, .c = { c.va, nn * 4 },
        .bias_va = bias.va, .m = m, .n = nn, .k = k,
        .in_dtype = REFNPU_DTYPE_INT8, .out_dtype = REFNPU_DTYPE_INT32,
    };
    g_autofree uint16_t *h = g_new(uint16_t, MAX(m * k, k * nn));
    g_autofree float *f = g_new(float, MAX(m * k, k * nn));

    /* int8 x int8 -> int32 with bias */
    check_against_engine(n, &g, sizeof(g), b8s, 4);
    /* int8 -> int8 requantised, with ReLU */
    g.hdr.flags |= REFNPU_GEMM_F_RELU;
    g.out_dtype = REFNPU_DTYPE_INT8;
    g.c.pitch = nn;
    g.rq_multiplier = 1234567890;
    g.rq_shift = 40;
    g.rq_zero_point = -3;
    check_against_engine(n, &g, sizeof(g), b8s, 4);

    /* fp16 and bf16 inputs: finite values, fp32 accumulation */
    for (int t = 0; t < 2; t++) {
        uint32_t dt = t ? REFNPU_DTYPE_BF16 : REFNPU_DTYPE_FP16;

        for (int op = 0; op < 2; op++) {
            uint32_t cnt = op ? k * nn : m * k;
            Buf *dst = op ? &b16 : &a16;

            fill_f32(f, cnt, 10 + t + op);
            for (uint32_t i = 0; i < cnt; i++) {
                uint32_t bits;

                memcpy(&bits, &f[i], 4);
                h[i] = t ? refnpu_fp32_to_bf16(bits) :
                           refnpu_fp32_to_fp16(bits);
            }
            buf_write(n, dst, h, cnt * 2);
        }
        memset(&g, 0, sizeof(g));
        g.hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm,
                    REFNPU_GEMM_F_RELU);
        g.a = (struct refnpu_tensor2d){ a16.va, k * 2 };
        g.b = (struct refnpu_tensor2d){ b16.va, nn * 2 };
        g.c = (struct refnpu_tensor2d){ c.va, nn * 4 };
        g.m = m;
        g.n = nn;
        g.k = k;
        g.in_dtype = dt;
        g.out_dtype = REFNPU_DTYPE_FP32;
        check_against_engine(n, &g, sizeof(g), b16s, 4);
        g.out_dtype = dt;
        g.c.pitch = nn * 2;
        check_against_engine(n, &g, sizeof(g), b16s, 4);
    }
    npu_stop(n);
}

static void test_op_ewise_act(void)
{
    Npu *n = npu_start(NULL);
    const uint32_t rows = 5, cols = 19;
    Buf a = buf_f32(n, rows * 32, 11), b = buf_f32(n, rows * 32, 12);
    Buf out = buf_new(n, rows * 32 * 4);
    Buf *bufs[] = { &a, &b, &out };
    struct refnpu_cmd_ewise e = {
        .hdr = HDR(REFNPU_OP_EWISE, struct refnpu_cmd_ewise, 0),
        .a = { a.va, 32 * 4 }, .b = { b.va, 32 * 4 },
        .out = { out.va, 24 * 4 }, .rows = rows, .cols = cols,
        .dtype = REFNPU_DTYPE_FP32,
    };
    struct refnpu_cmd_act act = {
        .hdr = HDR(REFNPU_OP_ACT, struct refnpu_cmd_act, 0),
        .src = { a.va, 32 * 4 }, .dst = { out.va, 20 * 4 },
        .rows = rows, .cols = cols, .dtype = REFNPU_DTYPE_FP32,
    };

    for (uint32_t op = 0; op < REFNPU_EWISE_COUNT; op++) {
        for (uint32_t bc = 0; bc < REFNPU_BCAST_COUNT; bc++) {
            e.op = op;
            e.bcast = bc;
            check_against_engine(n, &e, sizeof(e), bufs, 3);
        }
    }
    for (uint32_t fn = 0; fn < REFNPU_ACT_COUNT; fn++) {
        act.func = fn;
        check_against_engine(n, &act, sizeof(act), bufs, 3);
    }
    npu_stop(n);
}

static void test_op_softmax_layernorm(void)
{
    Npu *n = npu_start(NULL);
    const uint32_t rows = 6, cols = 70;
    Buf src = buf_f32(n, rows * cols, 13), dst = buf_new(n, rows * cols * 4);
    Buf gamma = buf_f32(n, cols, 14), beta = buf_f32(n, cols, 15);
    Buf *bufs[] = { &src, &dst, &gamma, &beta };
    struct refnpu_cmd_softmax sm = {
        .hdr = HDR(REFNPU_OP_SOFTMAX, struct refnpu_cmd_softmax, 0),
        .src = { src.va, cols * 4 }, .dst = { dst.va, cols * 4 },
        .rows = rows, .cols = cols, .dtype = REFNPU_DTYPE_FP32,
    };
    float eps = 1e-5f;
    struct refnpu_cmd_layernorm ln = {
        .hdr = HDR(REFNPU_OP_LAYERNORM, struct refnpu_cmd_layernorm,
                   REFNPU_LN_F_GAMMA | REFNPU_LN_F_BETA),
        .src = { src.va, cols * 4 }, .dst = { dst.va, cols * 4 },
        .gamma_va = gamma.va, .beta_va = beta.va,
        .rows = rows, .cols = cols, .dtype = REFNPU_DTYPE_FP32,
    };

    memcpy(&ln.eps_bits, &eps, 4);
    check_against_engine(n, &sm, sizeof(sm), bufs, 4);
    check_against_engine(n, &ln, sizeof(ln), bufs, 4);
    ln.hdr.flags = 0;
    ln.gamma_va = ln.beta_va = 0;
    check_against_engine(n, &ln, sizeof(ln), bufs, 4);
    npu_stop(n);
}

static void test_op_conv_pool(void)
{
    Npu *n = npu_start(NULL);
    const uint32_t N = 2, H = 9, W = 8, C = 5, OC = 6, KH = 3, KW = 2;
    Buf in = buf_f32(n, N * H * W * C, 16);
    Buf filt = buf_f32(n, KH * KW * C * OC, 17);
    Buf bias = buf_f32(n, OC, 18);
    Buf out = buf_new(n, N * H * W * OC * 4);
    Buf *bufs[] = { &in, &filt, &bias, &out };
    struct refnpu_cmd_conv2d cv = {
        .hdr = HDR(REFNPU_OP_CONV2D, struct refnpu_cmd_conv2d,
                   REFNPU_CONV_F_BIAS | REFNPU_CONV_F_RELU),
        .in = { in.va, W * C * 4, H * W * C * 4 },
        .out = { out.va, W * OC * 4, H * W * OC * 4 },
        .filter = { filt.va, OC * 4 }, .bias_va = bias.va,
        .n = N, .h = H, .w = W, .c = C, .oc = OC, .kh = KH, .kw = KW,
        .stride_h = 2, .stride_w = 1, .dil_h = 1, .dil_w = 2,
        .pad_top = 1, .pad_bottom = 1, .pad_left = 2, .pad_right = 0,
        .dtype = REFNPU_DTYPE_FP32,
    };
    struct refnpu_cmd_pool2d pl = {
        .hdr = HDR(REFNPU_OP_POOL2D, struct refnpu_cmd_pool2d, 0),
        .in = { in.va, W * C * 4, H * W * C * 4 },
        .out = { out.va, W * C * 4, H * W * C * 4 },
        .n = N, .h = H, .w = W, .c = C, .kh = 3, .kw = 2,
        .stride_h = 2, .stride_w = 2, .pad_top = 1, .pad_bottom = 1,
        .pad_left = 1, .pad_right = 0, .dtype = REFNPU_DTYPE_FP32,
    };

    check_against_engine(n, &cv, sizeof(cv), bufs, 4);
    cv.hdr.flags = 0;
    cv.bias_va = 0;
    cv.stride_h = cv.stride_w = cv.dil_h = cv.dil_w = 1;
    cv.pad_top = cv.pad_bottom = cv.pad_left = cv.pad_right = 0;
    check_against_engine(n, &cv, sizeof(cv), bufs, 4);
    pl.mode = REFNPU_POOL_MAX;
    check_against_engine(n, &pl, sizeof(pl), bufs, 4);
    pl.mode = REFNPU_POOL_AVG;
    check_against_engine(n, &pl, sizeof(pl), bufs, 4);
    npu_stop(n);
}

/* Malformed and unknown commands fail the job at the right command. */
static void test_malformed(void)
{
    Npu *n = npu_start(NULL);
    struct {
        struct refnpu_cmd_nop nop;
        struct refnpu_cmd_fill fill;
    } cmds = {
        { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop, 0) },
        { HDR(REFNPU_OP_FILL, struct refnpu_cmd_fill, 0) },
    };
    Buf dst = buf_new(n, 4096);
    struct refnpu_completion c;

    cmds.fill.dst.va = dst.va;
    cmds.fill.rows = 1;
    cmds.fill.row_bytes = 16;
    cmds.fill.pattern_bytes = 3;          /* invalid */
    c = run_cmds(n, &cmds, sizeof(cmds));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MALFORMED);
    g_assert_cmpuint(c.cmd_index, ==, 1);
    g_assert_cmpuint(c.cmd_offset, ==, sizeof(cmds.nop));
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                      REFNPU_FAULT_STATUS_VALID));
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS) &
                    REFNPU_FAULT_STATUS_CODE_MASK, ==,
                    REFNPU_ERR_MALFORMED << 16);
    fault_ack(n);

    cmds.fill.hdr.opcode = 0x7777;
    c = run_cmds(n, &cmds, sizeof(cmds));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_UNSUPPORTED);
    g_assert_cmpuint(c.cmd_index, ==, 1);
    npu_stop(n);
}

/*
 * ---------------------------------------------------------------------
 * Tests: device MMU
 */

static void test_mmu_translation(void)
{
    Npu *n = npu_start(NULL);
    const uint64_t len = 3 * REFNPU_PAGE_SIZE;
    uint64_t src_pa = galloc(n, len), dst_pa = galloc(n, len);
    uint64_t src_va = va_reserve(n, len), dst_va = va_reserve(n, len);
    uint64_t huge_pa, huge_va;
    g_autofree uint8_t *data = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src_va, 0 }, .dst = { dst_va, 0 },
        .rows = 1, .row_bytes = len,
    };
    struct refnpu_completion c;

    /* Source pages mapped in reverse physical order. */
    for (int i = 0; i < 3; i++) {
        map_page(n, CTX, src_va + i * REFNPU_PAGE_SIZE,
                 src_pa + (2 - i) * REFNPU_PAGE_SIZE, REFNPU_PTE_READ);
    }
    map_range(n, CTX, dst_va, dst_pa, len, REFNPU_PTE_WRITE);
    fill_bytes(data, len, 20);
    for (int i = 0; i < 3; i++) {
        qtest_memwrite(n->qts, src_pa + (2 - i) * REFNPU_PAGE_SIZE,
                       data + i * REFNPU_PAGE_SIZE, REFNPU_PAGE_SIZE);
    }
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    qtest_memread(n->qts, dst_pa, got, len);
    g_assert(memcmp(got, data, len) == 0);

    /* 2 MiB page: copy into its last and first bytes across a boundary. */
    huge_pa = ROUND_UP(galloc(n, 2 * REFNPU_HUGE_PAGE_SIZE),
                       REFNPU_HUGE_PAGE_SIZE);
    huge_va = ROUND_UP(n->next_va, REFNPU_HUGE_PAGE_SIZE);
    n->next_va = huge_va + 2 * REFNPU_HUGE_PAGE_SIZE;
    map_huge(n, CTX, huge_va, huge_pa,
             REFNPU_PTE_READ | REFNPU_PTE_WRITE);
    cp.src.va = src_va;
    cp.dst.va = huge_va + REFNPU_HUGE_PAGE_SIZE - len;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    qtest_memread(n->qts, huge_pa + REFNPU_HUGE_PAGE_SIZE - len, got, len);
    g_assert(memcmp(got, data, len) == 0);

    /* Contexts are isolated: context 2 has nothing mapped. */
    {
        Buf cb = cmdbuf(n, &cp, sizeof(cp));
        Job j;

        map_range(n, 2, cb.va, cb.pa, cb.size, REFNPU_PTE_READ);
        j = job_queue(n, 0, 2, 0, &cb, sizeof(cp));
        doorbell(n, 0);
        c = job_wait(n, &j);
        g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_UNMAPPED);
        g_assert_cmphex(c.fault_va, ==, src_va);
        g_assert_cmpuint(c.ctx_id, ==, 2);
        g_assert_cmpuint(rd(n, REFNPU_REG_FAULT_CTX), ==, 2);
        fault_ack(n);
    }

    /* Remap the destination and invalidate the TLB: the new page is used. */
    {
        uint64_t new_pa = galloc(n, REFNPU_PAGE_SIZE);

        cp.src.va = src_va;
        cp.dst.va = dst_va;
        cp.row_bytes = 64;
        c = run_cmds(n, &cp, sizeof(cp));   /* warm the TLB */
        g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
        map_page(n, CTX, dst_va, new_pa, REFNPU_PTE_WRITE);
        wr(n, REFNPU_REG_TLB_INVALIDATE, REFNPU_TLB_INV_ALL);
        g_assert_cmphex(rd(n, REFNPU_REG_TLB_INVALIDATE), ==, 0);
        c = run_cmds(n, &cp, sizeof(cp));
        g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
        qtest_memread(n->qts, new_pa, got, 64);
        g_assert(memcmp(got, data, 64) == 0);
    }

    /* Reserved bits in a page-table entry: walk error. */
    qtest_writeq(n->qts, pt_table(n, CTX, dst_va, 0) +
                 REFNPU_PT_INDEX(dst_va, 0) * REFNPU_PTE_SIZE,
                 dst_pa | REFNPU_BIT_ULL(60) | REFNPU_PTE_WRITE |
                 REFNPU_PTE_VALID);
    wr(n, REFNPU_REG_TLB_INVALIDATE, CTX);
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_WALK);
    g_assert_cmphex(c.fault_va, ==, dst_va);
    fault_ack(n);

    /* A VA beyond 48 bits is unmapped. */
    cp.src.va = REFNPU_VA_LIMIT;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_UNMAPPED);
    npu_stop(n);
}

static void test_mmu_permission(void)
{
    Npu *n = npu_start(NULL);
    Buf src = buf_bytes(n, 4096, 21);
    Buf ro = buf_new_perm(n, 4096, REFNPU_PTE_READ);
    Buf wo = buf_new_perm(n, 4096, REFNPU_PTE_WRITE);
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { ro.va + 128, 0 },
        .rows = 1, .row_bytes = 256,
    };
    Buf cb = cmdbuf(n, &cp, sizeof(cp));
    struct refnpu_completion c;
    uint8_t zero[256] = { 0 }, got[256];
    Job j;

    j = job_submit(n, 2, REFNPU_JOB_F_IRQ, &cb, sizeof(cp));
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_WRITE_PERM);
    g_assert_cmphex(c.fault_va, ==, ro.va + 128);
    g_assert_cmphex(c.fault_flags & REFNPU_FAULT_F_WRITE, ==,
                    REFNPU_FAULT_F_WRITE);
    g_assert_cmpuint(c.cmd_index, ==, 0);
    buf_read(n, &ro, got, sizeof(got));
    g_assert(memcmp(got, zero, sizeof(got)) == 0);

    /* Fault record, error interrupt and its MSI-X pending bit. */
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_IRQ_STATUS) & REFNPU_IRQ_ERROR));
    g_assert(WAIT_FOR(qpci_msix_pending(n->dev, REFNPU_MSIX_VEC_ERROR)));
    g_assert_cmphex(rd(n, REFNPU_REG_STATUS) & REFNPU_STATUS_FAULT, ==,
                    REFNPU_STATUS_FAULT);
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS), ==,
                    REFNPU_FAULT_STATUS_VALID |
                    (REFNPU_FAULT_F_WRITE << 2) | (2 << 8) |
                    (REFNPU_ERR_MMU_WRITE_PERM << 16));
    g_assert_cmpuint(rd(n, REFNPU_REG_FAULT_CTX), ==, CTX);
    g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_ADDR), ==, ro.va + 128);
    g_assert_cmpuint(rdq(n, REFNPU_REG_FAULT_SEQ), ==, j.seq);

    /* A second fault before the ack only sets OVERFLOW. */
    cp.src.va = wo.va;
    cp.dst.va = src.va;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_READ_PERM);
    g_assert_cmphex(c.fault_flags & REFNPU_FAULT_F_WRITE, ==, 0);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                      REFNPU_FAULT_STATUS_OVERFLOW));
    g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_ADDR), ==, ro.va + 128);

    fault_ack(n);
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_STATUS) & REFNPU_STATUS_FAULT, ==, 0);

    /* The queue carries on. */
    cp.src.va = src.va;
    cp.dst.va = wo.va;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    npu_stop(n);
}

/* Data DMA to an unbacked bus address or to device MMIO fails the job. */
static void test_dma_unbacked(void)
{
    Npu *n = npu_start(NULL);
    Buf src = buf_bytes(n, 4096, 22);
    uint64_t bad_va = va_reserve(n, REFNPU_PAGE_SIZE);
    uint64_t mmio_va = va_reserve(n, REFNPU_PAGE_SIZE);
    uint64_t bar_pa = qpci_config_readl(n->dev, PCI_BASE_ADDRESS_0) &
                      PCI_BASE_ADDRESS_MEM_MASK;
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { bad_va + 8, 0 },
        .rows = 1, .row_bytes = 64,
    };
    struct refnpu_completion c;

    map_page(n, CTX, bad_va, UNBACKED_PA, REFNPU_PTE_READ | REFNPU_PTE_WRITE);
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_DMA);
    g_assert_cmphex(c.fault_va, ==, bad_va + 8);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                      REFNPU_FAULT_STATUS_VALID));
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS) &
                    REFNPU_FAULT_STATUS_CODE_MASK, ==,
                    REFNPU_ERR_DMA << 16);
    fault_ack(n);

    /* Reading from an unbacked page fails the same way. */
    cp.src.va = bad_va;
    cp.dst.va = src.va;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_DMA);
    fault_ack(n);

    /* The device's own registers are not memory: no DMA into MMIO. */
    map_page(n, CTX, mmio_va, bar_pa, REFNPU_PTE_READ | REFNPU_PTE_WRITE);
    cp.src.va = src.va;
    cp.dst.va = mmio_va + REFNPU_REG_SCRATCH;
    cp.row_bytes = 4;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_DMA);
    g_assert_cmphex(rd(n, REFNPU_REG_SCRATCH), ==, 0);
    fault_ack(n);

    /* A completion record that cannot be written: fault recorded. */
    {
        struct refnpu_cmd_nop nop = {
            HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop, 0)
        };
        Buf cb = cmdbuf(n, &nop, sizeof(nop));
        struct refnpu_job_desc d = {
            .ctx_id = CTX, .cmd_va = cb.va, .cmd_size = sizeof(nop),
            .completion_addr = UNBACKED_PA, .seq = 4242,
        };

        qtest_memwrite(n->qts, n->ring[0] + n->tail[0] * sizeof(d), &d,
                       sizeof(d));
        n->tail[0] = (n->tail[0] + 1) % RING_ENTRIES;
        doorbell(n, 0);
        g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                          REFNPU_FAULT_STATUS_VALID));
        g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS) &
                        REFNPU_FAULT_STATUS_CODE_MASK, ==,
                        REFNPU_ERR_DMA << 16);
        g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_ADDR), ==, UNBACKED_PA);
        g_assert_cmpuint(rdq(n, REFNPU_REG_FAULT_SEQ), ==, 4242);
        queue_idle(n, 0);
        fault_ack(n);
    }

    /* And the device still works. */
    cp.dst.va = src.va + 1024;
    cp.row_bytes = 64;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    npu_stop(n);
}

/*
 * ------------------------------------------------------------------------
 * Tests: system IOMMU (intel-iommu, legacy mode, second-level tables)
 */

#define VTD_BASE        0xfed90000ULL
#define VTD_GCMD        0x18
#define VTD_GSTS        0x1c
#define VTD_RTADDR      0x20
#define VTD_TE          (1u << 31)
#define VTD_SRTP        (1u << 30)
#define VTD_SL_R        1ULL
#define VTD_SL_W        2ULL
#define VTD_SL_PS       (1ULL << 7)
#define VTD_IDENT_SIZE  (1ULL << 30)    /* identity-mapped IOVA range */

typedef struct Vtd {
    Npu *n;
    uint64_t root_table;    /* VT-d root table */
    uint64_t root;          /* level-3 second-level table */
} Vtd;

/* Second-level entry address for @iova at @level (3..0); splits 2M pages. */
static uint64_t vtd_pte(Vtd *v, uint64_t iova, int level)
{
    uint64_t table = v->root;

    for (int l = 3; l > level; l--) {
        uint64_t addr = table + ((iova >> (12 + 9 * l)) & 511) * 8;
        uint64_t pte = qtest_readq(v->n->qts, addr);

        if (!(pte & (VTD_SL_R | VTD_SL_W))) {
            pte = galloc(v->n, 4096) | VTD_SL_R | VTD_SL_W;
            qtest_writeq(v->n->qts, addr, pte);
        } else if (pte & VTD_SL_PS) {
            /* split a 2 MiB identity page into 4 KiB entries */
            uint64_t t = galloc(v->n, 4096);
            uint64_t base = pte & ~0x1fffffULL & ((1ULL << 52) - 1);

            for (int i = 0; i < 512; i++) {
                qtest_writeq(v->n->qts, t + i * 8, (base + i * 4096ULL) |
                             VTD_SL_R | VTD_SL_W);
            }
            pte = t | VTD_SL_R | VTD_SL_W;
            qtest_writeq(v->n->qts, addr, pte);
        }
        table = pte & ~0xfffULL & ((1ULL << 52) - 1);
    }
    return table + ((iova >> (12 + 9 * level)) & 511) * 8;
}

/* Identity-map the low 1 GiB of IOVA space for refnpu (bus 0, DEVFN). */
static Vtd vtd_setup(Npu *n)
{
    Vtd v = { .n = n, .root = galloc(n, 4096),
              .root_table = galloc(n, 4096) };
    uint64_t ctx_table = galloc(n, 4096);

    for (uint64_t iova = 0; iova < VTD_IDENT_SIZE; iova += 1ULL << 21) {
        qtest_writeq(n->qts, vtd_pte(&v, iova, 1),
                     iova | VTD_SL_PS | VTD_SL_R | VTD_SL_W);
    }
    qtest_writeq(n->qts, v.root_table, ctx_table | 1);
    /* present, TT=0 (untranslated requests), 4-level table, domain 1 */
    qtest_writeq(n->qts, ctx_table + DEVFN * 16, v.root | 1);
    qtest_writeq(n->qts, ctx_table + DEVFN * 16 + 8, 2 | (1 << 8));
    return v;
}

/* Install the tables and turn translation on (no caches to flush yet). */
static void vtd_enable(Npu *n, Vtd *v)
{
    qtest_writeq(n->qts, VTD_BASE + VTD_RTADDR, v->root_table);
    qtest_writel(n->qts, VTD_BASE + VTD_GCMD, VTD_SRTP);
    g_assert(qtest_readl(n->qts, VTD_BASE + VTD_GSTS) & VTD_SRTP);
    qtest_writel(n->qts, VTD_BASE + VTD_GCMD, VTD_TE);
    g_assert(qtest_readl(n->qts, VTD_BASE + VTD_GSTS) & VTD_TE);
}

static void test_iommu(void)
{
    Npu *n = npu_start_on("-machine q35 -device intel-iommu", NULL);
    Buf src = buf_bytes(n, 4096, 50), dst = buf_new(n, 4096);
    Buf unm = buf_new(n, 4096);
    uint64_t alt = galloc(n, 4096);
    uint64_t pt_va = ROUND_UP(n->next_va, REFNPU_HUGE_PAGE_SIZE);
    uint64_t pt_page;
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { dst.va, 0 },
        .rows = 1, .row_bytes = 256,
    };
    uint8_t data[256], got[256], zero[256] = { 0 };
    struct refnpu_completion c;
    Buf cb;
    Vtd v;

    /* A VA whose last-level device page table the IOMMU will not map. */
    n->next_va = pt_va + REFNPU_HUGE_PAGE_SIZE;
    map_page(n, CTX, pt_va, src.pa, REFNPU_PTE_READ);
    pt_page = pt_table(n, CTX, pt_va, 0);
    cb = cmdbuf(n, &cp, sizeof(cp));

    /* IOMMU: identity, except dst -> alt, and two pages not mapped. */
    v = vtd_setup(n);
    qtest_writeq(n->qts, vtd_pte(&v, dst.pa, 0), alt | VTD_SL_R | VTD_SL_W);
    qtest_writeq(n->qts, vtd_pte(&v, unm.pa, 0), 0);
    qtest_writeq(n->qts, vtd_pte(&v, pt_page, 0), 0);
    vtd_enable(n, &v);

    /* The copy lands where the IOMMU says, not at the bus address. */
    {
        Job j = job_submit(n, 0, 0, &cb, sizeof(cp));

        c = job_wait(n, &j);
    }
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    buf_read(n, &src, data, sizeof(data));
    qtest_memread(n->qts, alt, got, sizeof(got));
    g_assert(memcmp(got, data, sizeof(got)) == 0);
    buf_read(n, &dst, got, sizeof(got));
    g_assert(memcmp(got, zero, sizeof(got)) == 0);

    /* Data DMA to a page the IOMMU does not map fails the job. */
    cp.dst.va = unm.va;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_DMA);
    g_assert_cmphex(c.fault_va, ==, unm.va);
    fault_ack(n);

    /* Page-table walks are translated too. */
    cp.src.va = pt_va;
    cp.dst.va = dst.va;
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_WALK);
    g_assert_cmphex(c.fault_va, ==, pt_va);
    fault_ack(n);
    npu_stop(n);
}

/*
 * ---------------------------------------------------------------------
 * Tests: reset
 */

/* A job that takes a while in the reference engine (int8 GEMMs). */
static Buf long_job(Npu *n, size_t *len)
{
    const uint32_t dim = 256;
    Buf a = buf_bytes(n, dim * dim, 30), b = buf_bytes(n, dim * dim, 31);
    Buf c = buf_new(n, dim * dim * 4);
    struct refnpu_cmd_gemm g = {
        .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm, 0),
        .a = { a.va, dim }, .b = { b.va, dim }, .c = { c.va, dim * 4 },
        .m = dim, .n = dim, .k = dim,
        .in_dtype = REFNPU_DTYPE_INT8, .out_dtype = REFNPU_DTYPE_INT32,
    };
    static struct refnpu_cmd_gemm cmds[512];

    for (unsigned i = 0; i < G_N_ELEMENTS(cmds); i++) {
        cmds[i] = g;
    }
    *len = sizeof(cmds);
    return cmdbuf(n, cmds, sizeof(cmds));
}

static void test_reset_busy(void)
{
    Npu *n = npu_start(NULL);
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf small = cmdbuf(n, &nop, sizeof(nop));
    size_t len;
    Buf big = long_job(n, &len);
    Job j, k;

    /* Queue reset while a job runs: it is aborted, the queue cleared. */
    j = job_submit(n, 1, REFNPU_JOB_F_IRQ, &big, len);
    k = job_queue(n, 1, CTX, 0, &small, sizeof(nop));
    doorbell(n, 1);
    g_assert(WAIT_FOR(qrd(n, 1, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_BUSY));
    g_usleep(20000);
    g_assert(!job_done(n, &j));
    qwr(n, 1, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
    g_assert(WAIT_FOR(qrd(n, 1, REFNPU_Q_STATUS) == 0));
    /*
     * The aborted job's record says so (it had started); the pending one,
     * never fetched, leaves none.
     */
    g_assert(job_done(n, &j));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_ABORTED);
    g_usleep(50000);
    g_assert(!job_done(n, &k));
    g_assert_cmpuint(qrd(n, 1, REFNPU_Q_HEAD), ==, 0);
    g_assert_cmpuint(qrd(n, 1, REFNPU_Q_TAIL), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS) & REFNPU_IRQ_QUEUE(1), ==,
                    0);
    /* Aborting is not a fault. */
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS), ==, 0);
    /* Other queues were not disturbed; the reset queue works again. */
    g_assert_cmphex(qrd(n, 0, REFNPU_Q_STATUS), ==, REFNPU_Q_STATUS_ENABLED);
    npu_setup_queue(n, 1);
    j = job_submit(n, 1, 0, &small, sizeof(nop));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_NONE);

    /* Device reset with jobs running on several queues. */
    j = job_submit(n, 0, 0, &big, len);
    k = job_submit(n, 3, 0, &big, len);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_STATUS) & REFNPU_STATUS_BUSY));
    g_usleep(200000);   /* let both workers fetch their job */
    g_assert(!job_done(n, &j) && !job_done(n, &k));
    wr(n, REFNPU_REG_RESET, REFNPU_RESET_GO);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_STATUS) == REFNPU_STATUS_READY));
    g_assert(job_done(n, &j) && job_done(n, &k));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_ABORTED);
    g_assert_cmphex(job_wait(n, &k).status, ==, REFNPU_ERR_ABORTED);
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS), ==, 0);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, 0);
    for (unsigned q = 0; q < NUM_QUEUES; q++) {
        g_assert_cmphex(qrd(n, q, REFNPU_Q_STATUS), ==, 0);
    }
    g_assert_cmphex(rdq(n, REFNPU_REG_CTX_TABLE_BASE), ==, 0);

    /* After re-programming, the device works. */
    npu_setup(n);
    j = job_submit(n, 2, 0, &small, sizeof(nop));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_NONE);

    /*
     * System reset (qmp system_reset) while busy drains the workers and,
     * being a hard reset, writes no record into the guest's memory.
     */
    j = job_submit(n, 2, 0, &big, len);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_STATUS) & REFNPU_STATUS_BUSY));
    qtest_qmp_assert_success(n->qts, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(n->qts, "RESET");
    g_usleep(50000);
    g_assert(!job_done(n, &j));
    npu_stop(n);
}

/* A reset stops a long fp32 GEMM on the host fast path promptly. */
static void test_reset_fast_gemm(void)
{
    Npu *n = npu_start(NULL);
    const uint32_t dim = 1024;
    Buf a = buf_new(n, dim * dim * 4), b = buf_new(n, dim * dim * 4);
    Buf c = buf_new(n, dim * dim * 4);
    struct refnpu_cmd_gemm g = {
        .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm, 0),
        .a = { a.va, dim * 4 }, .b = { b.va, dim * 4 },
        .c = { c.va, dim * 4 }, .m = dim, .n = dim, .k = dim,
        .in_dtype = REFNPU_DTYPE_FP32, .out_dtype = REFNPU_DTYPE_FP32,
    };
    static struct refnpu_cmd_gemm cmds[200];
    Buf cb;
    gint64 t0;
    Job j;

    for (unsigned i = 0; i < G_N_ELEMENTS(cmds); i++) {
        cmds[i] = g;
    }
    cb = cmdbuf(n, cmds, sizeof(cmds));
    j = job_submit(n, 0, 0, &cb, sizeof(cmds));
    g_usleep(100000);
    g_assert(!job_done(n, &j));
    t0 = g_get_monotonic_time();
    qwr(n, 0, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_STATUS) == 0));
    /* Generous bound for a loaded machine; typically a few ms. */
    g_assert_cmpint(g_get_monotonic_time() - t0, <,
                    10 * REFNPU_RESET_TIMEOUT_US);
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_ABORTED);
    npu_stop(n);
}

/* Hot-unplug while a job hangs and another runs: workers are stopped. */
static void test_unplug_busy(void)
{
    Npu *n = npu_start("id=npu0,fault-inject=on");
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf small = cmdbuf(n, &nop, sizeof(nop));
    size_t len;
    Buf big = long_job(n, &len);
    Job j, k;

    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
    j = job_submit(n, 0, 0, &small, sizeof(nop));
    k = job_submit(n, 1, 0, &big, len);
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_DBG_INJECT) == 0));
    g_usleep(50000);
    g_assert(!job_done(n, &j) && !job_done(n, &k));
    qpci_unplug_acpi_device_test(n->qts, "npu0", 4);
    /* QEMU is alive, the device is gone and left no completion. */
    g_assert(!job_done(n, &j));
    g_assert(!job_done(n, &k));
    npu_stop(n);
}

/*
 * ---------------------------------------------------------------------
 * Tests: fault injection
 */

static void test_inject_hang(void)
{
    Npu *n = npu_start("fault-inject=on");
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf cb = cmdbuf(n, &nop, sizeof(nop));
    struct refnpu_completion c;
    Job j, k;

    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
    g_assert_cmphex(qrd(n, 0, REFNPU_Q_DBG_INJECT), ==,
                    REFNPU_DBG_INJECT_HANG);
    j = job_submit(n, 0, REFNPU_JOB_F_IRQ, &cb, sizeof(nop));
    k = job_queue(n, 0, CTX, 0, &cb, sizeof(nop));
    doorbell(n, 0);
    /* The injection is one-shot: consumed when the job is fetched. */
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_DBG_INJECT) == 0));
    g_usleep(200000);
    qtest_clock_step(n->qts, 10 * (1000 * MS));
    g_usleep(200000);
    g_assert(!job_done(n, &j));
    g_assert(!job_done(n, &k));
    g_assert(qrd(n, 0, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_BUSY);
    /* Other queues still run. */
    {
        Job o = job_submit(n, 1, 0, &cb, sizeof(nop));

        g_assert_cmphex(job_wait(n, &o).status, ==, REFNPU_ERR_NONE);
    }
    /* Only a reset ends it: ABORTED, and nothing for the job behind. */
    qwr(n, 0, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_STATUS) == 0));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_ABORTED);
    g_usleep(50000);
    g_assert(!job_done(n, &k));

    /* With the watchdog armed, a hang times out instead. */
    npu_setup_queue(n, 0);
    qwr(n, 0, REFNPU_Q_WATCHDOG_MS, 50);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
    j = job_submit(n, 0, 0, &cb, sizeof(nop));
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_DBG_INJECT) == 0));
    g_usleep(100000);
    g_assert(!job_done(n, &j));
    qtest_clock_step(n->qts, 60 * MS);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_TIMEOUT);
    g_assert_cmpuint(c.end_ts - c.start_ts, >=, 50 * MS);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                      REFNPU_FAULT_STATUS_VALID));
    g_assert_cmphex(rd(n, REFNPU_REG_FAULT_STATUS) &
                    REFNPU_FAULT_STATUS_CODE_MASK, ==,
                    REFNPU_ERR_TIMEOUT << 16);
    npu_stop(n);
}

static void test_inject_error(void)
{
    Npu *n = npu_start("fault-inject=on");
    Buf src = buf_bytes(n, 4096, 40), dst = buf_new(n, 4096);
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { dst.va, 0 },
        .rows = 1, .row_bytes = 128,
    };
    struct refnpu_completion c;
    uint8_t got[128], zero[128] = { 0 };

    qwr(n, 0, REFNPU_Q_DBG_ERROR, REFNPU_ERR_MALFORMED);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_ERROR);
    g_assert_cmphex(qrd(n, 0, REFNPU_Q_DBG_ERROR), ==, REFNPU_ERR_MALFORMED);
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MALFORMED);
    buf_read(n, &dst, got, sizeof(got));
    g_assert(memcmp(got, zero, sizeof(got)) == 0);
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_IRQ_STATUS) & REFNPU_IRQ_ERROR));
    fault_ack(n);

    /* Error code 0 means REFNPU_ERR_INJECTED. */
    qwr(n, 0, REFNPU_Q_DBG_ERROR, 0);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_ERROR);
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_INJECTED);
    fault_ack(n);

    /* One-shot: the next job succeeds. */
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    buf_read(n, &dst, got, sizeof(got));
    g_assert(memcmp(got, zero, sizeof(got)) != 0);
    npu_stop(n);
}

static void test_inject_delay(void)
{
    Npu *n = npu_start("fault-inject=on");
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf cb = cmdbuf(n, &nop, sizeof(nop));
    struct refnpu_completion c;
    Job j;

    qwr(n, 0, REFNPU_Q_DBG_DELAY_US, 30000);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_DELAY);
    g_assert_cmpuint(qrd(n, 0, REFNPU_Q_DBG_DELAY_US), ==, 30000);
    j = job_submit(n, 0, 0, &cb, sizeof(nop));
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_DBG_INJECT) == 0));
    /* The device's clock is frozen under qtest: no completion yet. */
    g_usleep(150000);
    g_assert(!job_done(n, &j));
    qtest_clock_step(n->qts, 20 * MS);
    g_usleep(150000);
    g_assert(!job_done(n, &j));
    qtest_clock_step(n->qts, 15 * MS);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(c.end_ts - c.start_ts, >=, 30 * MS);
    npu_stop(n);
}

static void test_inject_irq(void)
{
    Npu *n = npu_start("fault-inject=on");
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };
    Buf cb = cmdbuf(n, &nop, sizeof(nop));
    unsigned vec = REFNPU_MSIX_VEC_QUEUE(2);
    Job j;

    /* Dropped interrupt: status latched, no message (no pending bit). */
    qwr(n, 2, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_DROP_IRQ);
    j = job_submit(n, 2, REFNPU_JOB_F_IRQ, &cb, sizeof(nop));
    g_assert_cmphex(job_wait(n, &j).status, ==, REFNPU_ERR_NONE);
    queue_idle(n, 2);
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, REFNPU_IRQ_QUEUE(2));
    g_usleep(50000);
    g_assert(!qpci_msix_pending(n->dev, vec));
    wr(n, REFNPU_REG_IRQ_STATUS, REFNPU_IRQ_QUEUE(2));

    /* One-shot: the next completion interrupts. */
    j = job_submit(n, 2, REFNPU_JOB_F_IRQ, &cb, sizeof(nop));
    job_wait(n, &j);
    g_assert(WAIT_FOR(qpci_msix_pending(n->dev, vec)));

    /* Spurious interrupt on vector 1 (queue 0): no status change. */
    wr(n, REFNPU_REG_IRQ_STATUS, ~0u);
    g_assert(!qpci_msix_pending(n->dev, REFNPU_MSIX_VEC_QUEUE(0)));
    wr(n, REFNPU_REG_DBG_SPURIOUS_IRQ, REFNPU_MSIX_VEC_QUEUE(0));
    g_assert(WAIT_FOR(qpci_msix_pending(n->dev, REFNPU_MSIX_VEC_QUEUE(0))));
    g_assert_cmphex(rd(n, REFNPU_REG_IRQ_STATUS), ==, 0);
    /* Out-of-range vectors are ignored. */
    wr(n, REFNPU_REG_DBG_SPURIOUS_IRQ, 1000);
    npu_stop(n);
}

static void test_inject_mmu_fault(void)
{
    Npu *n = npu_start("fault-inject=on");
    Buf src = buf_bytes(n, 3 * 4096, 41), dst = buf_new(n, 3 * 4096);
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { dst.va, 0 },
        .rows = 1, .row_bytes = 3 * 4096,
    };
    uint64_t fva = src.va + 4096 + 100;
    struct refnpu_completion c;

    wrq(n, REFNPU_REG_QUEUE(1, REFNPU_Q_DBG_FAULT_VA), fva);
    g_assert_cmphex(rdq(n, REFNPU_REG_QUEUE(1, REFNPU_Q_DBG_FAULT_VA)), ==,
                    fva);
    qwr(n, 1, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_MMU_FAULT);
    {
        Buf cb = cmdbuf(n, &cp, sizeof(cp));
        Job j = job_submit(n, 1, 0, &cb, sizeof(cp));

        c = job_wait(n, &j);
    }
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_UNMAPPED);
    /* The fault hits the first access to the chosen page. */
    g_assert_cmphex(c.fault_va & ~(REFNPU_PAGE_SIZE - 1), ==,
                    fva & ~(REFNPU_PAGE_SIZE - 1));
    g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                      REFNPU_FAULT_STATUS_VALID));
    g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_ADDR), ==, c.fault_va);
    fault_ack(n);

    /* One-shot: the same job now succeeds. */
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    npu_stop(n);
}

/*
 * Stray DMA: the device writes to a bus address without its MMU.  Without
 * an IOMMU the burst lands and the job runs; behind an intel-iommu that
 * does not map the address it is blocked, the job fails with a DMA error
 * and memory is untouched.
 */
static void stray_dma_check(Npu *n, uint64_t target, bool blocked)
{
    Buf src = buf_bytes(n, 4096, 60), dst = buf_new(n, 4096);
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { dst.va, 0 },
        .rows = 1, .row_bytes = 4096,
    };
    uint8_t before[256], after[256], burst[REFNPU_DBG_STRAY_DMA_BYTES];
    uint8_t data[4096], got[4096];
    struct refnpu_completion c;
    const uint64_t off = 64;

    for (unsigned i = 0; i < sizeof(before); i++) {
        before[i] = i ^ 0x3c;
    }
    qtest_memwrite(n->qts, target, before, sizeof(before));
    memset(burst, REFNPU_DBG_STRAY_DMA_PATTERN, sizeof(burst));

    wrq(n, REFNPU_REG_QUEUE(0, REFNPU_Q_DBG_FAULT_VA), target + off);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_STRAY_DMA);
    c = run_cmds(n, &cp, sizeof(cp));
    qtest_memread(n->qts, target, after, sizeof(after));
    buf_read(n, &src, data, sizeof(data));
    buf_read(n, &dst, got, sizeof(got));

    if (blocked) {
        g_assert_cmphex(c.status, ==, REFNPU_ERR_DMA);
        g_assert_cmphex(c.fault_flags, ==,
                        REFNPU_FAULT_F_RING | REFNPU_FAULT_F_WRITE);
        g_assert_cmphex(c.fault_va, ==, target + off);
        g_assert(memcmp(after, before, sizeof(after)) == 0);
        /* The commands did not run. */
        g_assert(memcmp(got, data, sizeof(got)) != 0);
        g_assert(WAIT_FOR(rd(n, REFNPU_REG_FAULT_STATUS) &
                          REFNPU_FAULT_STATUS_VALID));
        g_assert_cmphex(rdq(n, REFNPU_REG_FAULT_ADDR), ==, target + off);
        g_assert_cmphex((rd(n, REFNPU_REG_FAULT_STATUS) &
                         REFNPU_FAULT_STATUS_CODE_MASK) >>
                        REFNPU_FAULT_STATUS_CODE_SHIFT, ==, REFNPU_ERR_DMA);
        fault_ack(n);
    } else {
        g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
        g_assert(memcmp(after, before, off) == 0);
        g_assert(memcmp(after + off, burst, sizeof(burst)) == 0);
        g_assert(memcmp(after + off + sizeof(burst),
                        before + off + sizeof(burst),
                        sizeof(after) - off - sizeof(burst)) == 0);
        g_assert(memcmp(got, data, sizeof(got)) == 0);
    }

    /* One-shot: the next job neither writes stray data nor fails. */
    qtest_memwrite(n->qts, target, before, sizeof(before));
    c = run_cmds(n, &cp, sizeof(cp));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    qtest_memread(n->qts, target, after, sizeof(after));
    g_assert(memcmp(after, before, sizeof(after)) == 0);
}

static void test_inject_stray_dma(void)
{
    Npu *n = npu_start("fault-inject=on");

    stray_dma_check(n, galloc(n, 4096), false);
    npu_stop(n);
}

static void test_inject_stray_dma_iommu(void)
{
    Npu *n = npu_start_on("-machine q35 -device intel-iommu",
                          "fault-inject=on");
    uint64_t target = galloc(n, 4096);
    Vtd v = vtd_setup(n);

    /* Everything else stays identity-mapped, so the job itself works. */
    qtest_writeq(n->qts, vtd_pte(&v, target, 0), 0);
    vtd_enable(n, &v);
    stray_dma_check(n, target, true);
    npu_stop(n);
}

/*
 * ---------------------------------------------------------------------
 * Tests: what a hostile or buggy guest must not be able to do to the host
 * (each of these failed on an earlier version of the model)
 */

/* A command buffer holding one NOP. */
static Buf nop_cmdbuf(Npu *n)
{
    struct refnpu_cmd_nop nop = { HDR(REFNPU_OP_NOP, struct refnpu_cmd_nop,
                                      0) };

    return cmdbuf(n, &nop, sizeof(nop));
}

/*
 * fp32 GEMM with n = k = 2^31 and B at VA 0 with a pitch of 8 GiB: a valid
 * view, whose k * n * 4 bytes wrap 64 bits.  The fast path must decline
 * it (it once sized its buffer from the wrapped product and copied 64 MiB
 * of mapped B into it), and the reference engine faults at B's second row.
 */
static void test_gemm_size_overflow(void)
{
    Npu *n = npu_start(NULL);
    uint64_t pa = ROUND_UP(galloc(n, 2 * REFNPU_HUGE_PAGE_SIZE),
                           REFNPU_HUGE_PAGE_SIZE);
    Buf ab = buf_new(n, 4096), cb = buf_new(n, 4096);
    const uint64_t big = 1ULL << 31;
    struct refnpu_cmd_gemm g = {
        .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm, 0),
        .a = { ab.va, 0 }, .b = { 0, big * 4 }, .c = { cb.va, 0 },
        .m = 1, .n = big, .k = big,
        .in_dtype = REFNPU_DTYPE_FP32, .out_dtype = REFNPU_DTYPE_FP32,
    };
    struct refnpu_completion c;

    /* B's first row: 64 MiB of VA, all on one 2 MiB guest page. */
    for (uint64_t va = 0; va < 64 * REFNPU_HUGE_PAGE_SIZE / 2;
         va += REFNPU_HUGE_PAGE_SIZE) {
        map_huge(n, CTX, va, pa, REFNPU_PTE_READ);
    }
    c = run_cmds(n, &g, sizeof(g));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_MMU_UNMAPPED);
    g_assert_cmphex(c.fault_va, ==, big * 4);
    fault_ack(n);

    /* The device is still fine. */
    g.m = g.n = g.k = 1;
    g.b.va = ab.va;
    c = run_cmds(n, &g, sizeof(g));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    npu_stop(n);
}

/* How gemm_f32_check() compares the device's C with the host engine's. */
typedef enum GemmExpect {
    GEMM_TOL,               /* within the tolerance contract */
    GEMM_EXACT,             /* bit for bit: the reference ran */
    GEMM_FAST,              /* within tolerance, and not bit for bit */
} GemmExpect;

/*
 * fp32 GEMM m x n x k of @a_in and @b_in (NULL: data whose sums round, so
 * that the summation order shows in the last bits) on the device and on
 * the host engine; compare as @expect says.  Returns C[0][0].
 */
static float gemm_f32_check(Npu *n, uint32_t m, uint32_t nn, uint32_t k,
                            const float *a_in, const float *b_in,
                            GemmExpect expect)
{
    g_autofree float *a = g_new(float, m * k);
    g_autofree float *b = g_new(float, k * nn);
    g_autofree float *dev = g_new(float, m * nn);
    g_autofree float *ref = g_new0(float, m * nn);
    Buf ab = buf_new(n, m * k * 4), bb = buf_new(n, k * nn * 4);
    Buf cb = buf_new(n, m * nn * 4);
    struct refnpu_cmd_gemm g = {
        .hdr = HDR(REFNPU_OP_GEMM, struct refnpu_cmd_gemm, 0),
        .a = { ab.va, k * 4 }, .b = { bb.va, nn * 4 },
        .c = { cb.va, nn * 4 },
        .m = m, .n = nn, .k = k,
        .in_dtype = REFNPU_DTYPE_FP32, .out_dtype = REFNPU_DTYPE_FP32,
    };
    HostRegion regs[] = {
        { ab.va, m * k * 4, (uint8_t *)a },
        { bb.va, k * nn * 4, (uint8_t *)b },
        { cb.va, m * nn * 4, (uint8_t *)ref },
    };
    HostMem hm = { .n = 3 };
    struct refnpu_engine_env env = {
        .opaque = &hm, .read = host_read, .write = host_write,
    };
    struct refnpu_engine_result res;
    struct refnpu_completion c;

    memcpy(hm.r, regs, sizeof(regs));
    if (a_in) {
        memcpy(a, a_in, m * k * 4);
        memcpy(b, b_in, k * nn * 4);
    } else {
        fill_f32(a, m * k, 5);
        fill_f32(b, k * nn, 6);
        for (uint32_t i = 0; i < m * k; i++) {
            a[i] *= 1.0f + (float)(i % 1000) * 0x1p-12f;
        }
    }
    buf_write(n, &ab, a, m * k * 4);
    buf_write(n, &bb, b, k * nn * 4);
    g_assert_cmphex(refnpu_engine_exec(&env, &g, sizeof(g), &res), ==,
                    REFNPU_ERR_NONE);
    c = run_cmds(n, &g, sizeof(g));
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    buf_read(n, &cb, dev, m * nn * 4);
    if (expect == GEMM_EXACT) {
        g_assert(memcmp(dev, ref, m * nn * 4) == 0);
    } else {
        check_gemm_f32_tol(dev, ref, a, b, NULL, m, nn, k, nn);
        if (expect == GEMM_FAST) {
            g_assert(memcmp(dev, ref, m * nn * 4) != 0);
        }
    }
    return dev[0];
}

/*
 * The fast path holds its buffers within host-mem-budget: a GEMM whose
 * operands do not fit runs on the reference engine (bit for bit) instead
 * of allocating; within budget the same GEMM takes the fast path, which
 * for this data differs from the reference in the last bits (so the first
 * check can fail).
 */
static void test_gemm_host_budget(void)
{
    Npu *n = npu_start("host-mem-budget=1M,gemm-kernel=auto");

    /* B alone is 4 MiB. */
    gemm_f32_check(n, 8, 1024, 1024, NULL, NULL, GEMM_EXACT);
    npu_stop(n);

    n = npu_start("gemm-kernel=auto");
    gemm_f32_check(n, 8, 1024, 1024, NULL, NULL, GEMM_FAST);
    npu_stop(n);
}

/*
 * Infinities must match the reference.  1 * -FLT_MAX + 2^64 * 2^64: the
 * reference rounds the second product to +inf, so the sum is +inf; a
 * fused multiply-add gives the finite 2^128 - FLT_MAX = 2^104.
 */
static void test_gemm_overflow_inf(const void *opaque)
{
    Npu *n = npu_start(opaque);
    const float a[] = { 1.0f, 0x1p64f };
    const float b[] = { -FLT_MAX, 0x1p64f };

    g_assert_true(isinf(gemm_f32_check(n, 1, 1, 2, a, b, GEMM_TOL)));
    npu_stop(n);
}

/* An injected REFNPU_ERR_ABORTED is a job status: HEAD moves on. */
static void test_inject_aborted(void)
{
    Npu *n = npu_start("fault-inject=on");
    Buf src = buf_bytes(n, 4096, 41), dst = buf_new(n, 4096);
    struct refnpu_cmd_copy cp = {
        .hdr = HDR(REFNPU_OP_COPY, struct refnpu_cmd_copy, 0),
        .src = { src.va, 0 }, .dst = { dst.va, 0 },
        .rows = 1, .row_bytes = 128,
    };
    Buf cb = cmdbuf(n, &cp, sizeof(cp));
    struct refnpu_completion c;
    uint8_t got[128], zero[128] = { 0 };
    Job j1, j2;

    qwr(n, 0, REFNPU_Q_DBG_ERROR, REFNPU_ERR_ABORTED);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_ERROR);
    j1 = job_submit(n, 0, 0, &cb, sizeof(cp));
    c = job_wait(n, &j1);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_ABORTED);
    queue_idle(n, 0);
    g_assert_cmpuint(qrd(n, 0, REFNPU_Q_HEAD), ==, n->tail[0]);
    g_assert_cmpuint(rdq(n, REFNPU_REG_QUEUE(0, REFNPU_Q_LAST_SEQ)), ==,
                     j1.seq);
    /* Not run again: the copy never happened. */
    buf_read(n, &dst, got, sizeof(got));
    g_assert(memcmp(got, zero, sizeof(got)) == 0);
    fault_ack(n);

    j2 = job_submit(n, 0, 0, &cb, sizeof(cp));
    c = job_wait(n, &j2);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(rdq(n, REFNPU_REG_QUEUE(0, REFNPU_Q_LAST_SEQ)), ==,
                     j2.seq);
    npu_stop(n);
}

/*
 * Reading TIMESTAMP's low half latches the high half: a 64-bit value read
 * as two 32-bit halves does not tear, even across a carry.
 */
static void test_timestamp_latch(void)
{
    Npu *n = npu_start(NULL);
    uint64_t t0, t1, lo, hi;

    t0 = rdq(n, REFNPU_REG_TIMESTAMP);
    lo = rd(n, REFNPU_REG_TIMESTAMP);
    qtest_clock_step(n->qts, (1LL << 32) + 5 * MS);
    hi = rd(n, REFNPU_REG_TIMESTAMP + 4);
    t1 = rdq(n, REFNPU_REG_TIMESTAMP);
    g_assert_cmpuint((hi << 32 | lo) - t0, <, 1ULL << 32);
    g_assert_cmpuint(t1 - t0, >=, 1ULL << 32);
    npu_stop(n);
}

/*
 * A watchdog of 4295 ms (4295 * 10^6 ns > 2^32) must not wrap to 32 us:
 * a job delayed by 1 ms of device time completes normally.
 */
static void test_watchdog_large(void)
{
    Npu *n = npu_start("fault-inject=on");
    Buf cb = nop_cmdbuf(n);
    struct refnpu_completion c;
    Job j;

    qwr(n, 0, REFNPU_Q_WATCHDOG_MS, 4295);
    qwr(n, 0, REFNPU_Q_DBG_DELAY_US, 1000);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_DELAY);
    j = job_submit(n, 0, 0, &cb, REFNPU_CMD_NOP_SIZE);
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_DBG_INJECT) == 0));
    /* At most 1 s of device time: the watchdog (4.295 s) must not fire. */
    job_step_until_done(n, &j, MS, 1000);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(c.end_ts - c.start_ts, >=, MS);

    /* And the watchdog still fires at its time. */
    qwr(n, 0, REFNPU_Q_WATCHDOG_MS, 5);
    qwr(n, 0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
    j = job_submit(n, 0, 0, &cb, REFNPU_CMD_NOP_SIZE);
    g_assert(WAIT_FOR(qrd(n, 0, REFNPU_Q_DBG_INJECT) == 0));
    job_step_until_done(n, &j, MS, 1000);
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_TIMEOUT);
    g_assert_cmpuint(c.end_ts - c.start_ts, >=, 5 * MS);
    npu_stop(n);
}

/*
 * x-sync=on: the doorbell runs the queue before the MMIO write returns,
 * and a job that would wait ends as the watchdog would.
 */
static void test_sync_mode(void)
{
    Npu *n = npu_start("x-sync=on,fault-inject=on");
    Buf cb = nop_cmdbuf(n);
    struct refnpu_completion c;
    Job j;

    j = job_submit(n, 0, REFNPU_JOB_F_IRQ, &cb, REFNPU_CMD_NOP_SIZE);
    g_assert_true(job_done(n, &j));
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_NONE);
    g_assert_cmpuint(qrd(n, 0, REFNPU_Q_HEAD), ==, n->tail[0]);

    qwr(n, 1, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
    j = job_submit(n, 1, 0, &cb, REFNPU_CMD_NOP_SIZE);
    g_assert_true(job_done(n, &j));
    c = job_wait(n, &j);
    g_assert_cmphex(c.status, ==, REFNPU_ERR_TIMEOUT);
    npu_stop(n);
}

/* One worker serves every queue in turn. */
static void test_one_worker(void)
{
    Npu *n = npu_start("num-workers=1,fault-inject=on");
    Buf cb = nop_cmdbuf(n);
    Job jobs[NUM_QUEUES][RING_ENTRIES - 1];

    for (unsigned i = 0; i < RING_ENTRIES - 1; i++) {
        for (unsigned q = 0; q < NUM_QUEUES; q++) {
            jobs[q][i] = job_queue(n, q, CTX, 0, &cb, REFNPU_CMD_NOP_SIZE);
        }
    }
    for (unsigned q = 0; q < NUM_QUEUES; q++) {
        doorbell(n, q);
    }
    for (unsigned q = 0; q < NUM_QUEUES; q++) {
        for (unsigned i = 0; i < RING_ENTRIES - 1; i++) {
            g_assert_cmphex(job_wait(n, &jobs[q][i]).status, ==,
                            REFNPU_ERR_NONE);
        }
    }
    npu_stop(n);
}

/* Properties out of range are refused at realize, with a message. */
static void test_bad_properties(void)
{
    static const struct {
        const char *name;
        int64_t num;            /* used when str is NULL */
        const char *str;
        const char *msg;        /* part of the error */
    } bad[] = {
        { "num-queues", 0, NULL, "num-queues" },
        { "num-queues", REFNPU_MAX_QUEUES + 1, NULL, "num-queues" },
        { "num-workers", 0, NULL, "num-workers" },
        { "gemm-kernel", 0, "sse9", "sse9" },
    };
    QTestState *qts = qtest_init("-machine pc");

    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        QDict *args = qdict_new(), *r, *err;

        qdict_put_str(args, "driver", "refnpu");
        if (bad[i].str) {
            qdict_put_str(args, bad[i].name, bad[i].str);
        } else {
            qdict_put_int(args, bad[i].name, bad[i].num);
        }
        r = qtest_qmp(qts, "{ 'execute': 'device_add', 'arguments': %p }",
                      args);
        err = qdict_get_qdict(r, "error");
        g_assert_nonnull(err);
        g_test_message("%s: %s", bad[i].name, qdict_get_str(err, "desc"));
        g_assert_nonnull(strstr(qdict_get_str(err, "desc"), bad[i].msg));
        qobject_unref(r);
    }
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/refnpu/regs/reset-values", test_reset_values);
    qtest_add_func("/refnpu/regs/queue-count", test_queue_count);
    qtest_add_func("/refnpu/queue/round-trip", test_round_trip);
    qtest_add_func("/refnpu/queue/ring-wrap", test_ring_many);
    qtest_add_func("/refnpu/queue/concurrent", test_concurrent_queues);
    qtest_add_func("/refnpu/queue/errors", test_ring_errors);
    qtest_add_func("/refnpu/op/copy-fill", test_op_copy_fill);
    qtest_add_data_func("/refnpu/op/gemm-f32/fast-auto",
                        "gemm-kernel=auto", test_op_gemm_f32);
    qtest_add_data_func("/refnpu/op/gemm-f32/fast-generic",
                        "gemm-kernel=generic", test_op_gemm_f32);
    qtest_add_data_func("/refnpu/op/gemm-f32/reference",
                        "fast-gemm=off", test_op_gemm_f32);
    qtest_add_func("/refnpu/op/gemm-int8-f16-bf16", test_op_gemm_other);
    qtest_add_func("/refnpu/op/ewise-act", test_op_ewise_act);
    qtest_add_func("/refnpu/op/softmax-layernorm", test_op_softmax_layernorm);
    qtest_add_func("/refnpu/op/conv-pool", test_op_conv_pool);
    qtest_add_func("/refnpu/op/malformed", test_malformed);
    qtest_add_func("/refnpu/mmu/translation", test_mmu_translation);
    qtest_add_func("/refnpu/mmu/permission", test_mmu_permission);
    qtest_add_func("/refnpu/dma/unbacked", test_dma_unbacked);
    qtest_add_func("/refnpu/dma/intel-iommu", test_iommu);
    qtest_add_func("/refnpu/reset/busy", test_reset_busy);
    qtest_add_func("/refnpu/reset/fast-gemm", test_reset_fast_gemm);
    qtest_add_func("/refnpu/hotplug/unplug-busy", test_unplug_busy);
    qtest_add_func("/refnpu/inject/hang", test_inject_hang);
    qtest_add_func("/refnpu/inject/error", test_inject_error);
    qtest_add_func("/refnpu/inject/delay", test_inject_delay);
    qtest_add_func("/refnpu/inject/irq", test_inject_irq);
    qtest_add_func("/refnpu/inject/mmu-fault", test_inject_mmu_fault);
    qtest_add_func("/refnpu/inject/stray-dma", test_inject_stray_dma);
    qtest_add_func("/refnpu/inject/stray-dma-iommu",
                   test_inject_stray_dma_iommu);
    qtest_add_func("/refnpu/guest/gemm-size-overflow", test_gemm_size_overflow);
    qtest_add_func("/refnpu/guest/gemm-host-budget", test_gemm_host_budget);
    qtest_add_data_func("/refnpu/guest/gemm-overflow-inf/auto",
                        "gemm-kernel=auto", test_gemm_overflow_inf);
    qtest_add_data_func("/refnpu/guest/gemm-overflow-inf/avx2",
                        "gemm-kernel=avx2", test_gemm_overflow_inf);
    qtest_add_func("/refnpu/guest/inject-aborted", test_inject_aborted);
    qtest_add_func("/refnpu/guest/timestamp-latch", test_timestamp_latch);
    qtest_add_func("/refnpu/guest/watchdog-large", test_watchdog_large);
    qtest_add_func("/refnpu/guest/sync-mode", test_sync_mode);
    qtest_add_func("/refnpu/guest/one-worker", test_one_worker);
    qtest_add_func("/refnpu/guest/bad-properties", test_bad_properties);

    return g_test_run();
}
