/*
 * refnpu GEMM benchmark: the device model's fp32 GEMM against OpenBLAS
 *
 * Boots the custom QEMU under qtest, programs the refnpu device through
 * its registers (context table, 4 KiB page tables, one queue), and runs
 * C = A x B (fp32, M = N = K = 1024 by default) as a device job, timing
 * from the doorbell write to the completion record.  The same product is
 * computed by single-threaded OpenBLAS cblas_sgemm in this process on the
 * same host, alternating with the device runs so both see the same load;
 * both are repeated and the best times compared.  The
 * device result is checked against OpenBLAS with the REFNPU_GEMM_TOL_*
 * bound of refnpu_hw.h.
 *
 * Prints the ratio of device throughput to OpenBLAS throughput.  This is a
 * measurement, not a test: the exit status only reflects correctness
 * (and --min-ratio if given).
 *
 * Usage: QTEST_QEMU_BINARY=qemu-system-x86_64 refnpu-gemm-bench
 *        [-n SIZE] [-r REPS] [--huge] [--min-ratio R] [-k KERNEL]
 * -k selects the device's micro-kernel (gemm-kernel: auto, avx512, avx2,
 * generic).
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include <math.h>
#include <cblas.h>
#include "libqtest.h"
#include "libqos/libqos-pc.h"
#include "libqos/pci.h"

#include "refnpu_hw.h"

#define CTX 1
#define RING_ENTRIES 8
#define VA_BASE 0x0000100000000000ULL


typedef struct Bench {
    QOSState *qs;
    QTestState *qts;
    QPCIDevice *dev;
    QPCIBar bar;
    uint64_t pt_root;
    uint64_t ring;
    uint32_t tail;
    uint64_t next_va;
    bool huge;
} Bench;

static uint64_t galloc(Bench *b, uint64_t size, uint64_t align)
{
    uint64_t pa = guest_alloc(&b->qs->alloc, size + align);

    g_assert(pa);
    return ROUND_UP(pa, align);
}

static uint64_t pt_table(Bench *b, uint64_t va, int level)
{
    uint64_t table = b->pt_root;

    for (int l = REFNPU_PT_LEVELS - 1; l > level; l--) {
        uint64_t addr = table + REFNPU_PT_INDEX(va, l) * REFNPU_PTE_SIZE;
        uint64_t pte = qtest_readq(b->qts, addr);

        if (!(pte & REFNPU_PTE_VALID)) {
            uint64_t t = galloc(b, REFNPU_PAGE_SIZE, REFNPU_PAGE_SIZE);

            qtest_memset(b->qts, t, 0, REFNPU_PAGE_SIZE);
            pte = t | REFNPU_PTE_VALID;
            qtest_writeq(b->qts, addr, pte);
        }
        table = pte & REFNPU_PTE_ADDR_MASK;
    }
    return table;
}

/* Allocate and map @size bytes; returns the device VA, *pa the bus address */
static uint64_t map_buf(Bench *b, uint64_t size, uint64_t *pa)
{
    uint64_t psize = b->huge ? REFNPU_HUGE_PAGE_SIZE : REFNPU_PAGE_SIZE;
    uint64_t va = ROUND_UP(b->next_va, psize);
    uint64_t perm = REFNPU_PTE_READ | REFNPU_PTE_WRITE | REFNPU_PTE_VALID;

    size = ROUND_UP(size, psize);
    *pa = galloc(b, size, psize);
    for (uint64_t off = 0; off < size; off += psize) {
        int level = b->huge ? 1 : 0;
        uint64_t table = pt_table(b, va + off, level);

        qtest_writeq(b->qts, table + REFNPU_PT_INDEX(va + off, level) *
                     REFNPU_PTE_SIZE, (*pa + off) | perm |
                     (b->huge ? REFNPU_PTE_LEAF : 0));
    }
    b->next_va = va + size + psize;
    return va;
}

static void bench_start(Bench *b, const char *kernel)
{
    uint64_t ctx_table;

    b->qs = qtest_pc_boot("-m 2G -device refnpu,addr=04.0,gemm-kernel=%s",
                          kernel);
    b->qts = b->qs->qts;
    b->dev = qpci_device_find(b->qs->pcibus, QPCI_DEVFN(4, 0));
    g_assert(b->dev);
    qpci_device_enable(b->dev);
    b->bar = qpci_iomap(b->dev, REFNPU_BAR_REGS, NULL);

    ctx_table = galloc(b, 4096, 4096);
    qtest_memset(b->qts, ctx_table, 0, 4096);
    b->pt_root = galloc(b, REFNPU_PAGE_SIZE, REFNPU_PAGE_SIZE);
    qtest_memset(b->qts, b->pt_root, 0, REFNPU_PAGE_SIZE);
    qtest_writeq(b->qts, ctx_table + CTX * REFNPU_CTX_ENTRY_SIZE, b->pt_root);
    qtest_writel(b->qts, ctx_table + CTX * REFNPU_CTX_ENTRY_SIZE + 8,
                 REFNPU_CTX_F_VALID);
    qpci_io_writeq(b->dev, b->bar, REFNPU_REG_CTX_TABLE_BASE, ctx_table);
    qpci_io_writel(b->dev, b->bar, REFNPU_REG_CTX_TABLE_COUNT, CTX + 1);

    b->ring = galloc(b, RING_ENTRIES * REFNPU_JOB_DESC_SIZE, 4096);
    qpci_io_writeq(b->dev, b->bar, REFNPU_REG_QUEUE(0, REFNPU_Q_RING_BASE),
                   b->ring);
    qpci_io_writel(b->dev, b->bar, REFNPU_REG_QUEUE(0, REFNPU_Q_RING_SIZE),
                   RING_ENTRIES);
    qpci_io_writel(b->dev, b->bar, REFNPU_REG_QUEUE(0, REFNPU_Q_CTRL),
                   REFNPU_Q_CTRL_ENABLE);
    b->next_va = VA_BASE;
}

/* Run one command buffer; returns wall-clock seconds doorbell->done. */
static double run_job(Bench *b, uint64_t cmd_va, uint64_t cmd_size,
                      uint64_t comp, uint32_t *status)
{
    struct refnpu_job_desc d = {
        .ctx_id = CTX, .cmd_va = cmd_va, .cmd_size = cmd_size,
        .completion_addr = comp, .seq = b->tail + 1,
    };
    uint64_t done = comp + offsetof(struct refnpu_completion, done);
    gint64 t0, t1, deadline;

    qtest_writel(b->qts, done, 0);
    qtest_memwrite(b->qts, b->ring + b->tail * sizeof(d), &d, sizeof(d));
    b->tail = (b->tail + 1) % RING_ENTRIES;

    t0 = g_get_monotonic_time();
    qpci_io_writel(b->dev, b->bar, REFNPU_REG_QUEUE(0, REFNPU_Q_TAIL),
                   b->tail);
    deadline = t0 + 600 * G_USEC_PER_SEC;
    while (qtest_readl(b->qts, done) != REFNPU_COMPLETION_DONE) {
        g_assert(g_get_monotonic_time() < deadline);
        g_usleep(200);
    }
    t1 = g_get_monotonic_time();
    *status = qtest_readl(b->qts, comp);
    return (t1 - t0) / 1e6;
}

static double now(void)
{
    return g_get_monotonic_time() / 1e6;
}

int main(int argc, char **argv)
{
    uint32_t n = 1024, reps = 9;
    double min_ratio = 0;
    const char *kernel = "auto";
    Bench b = { 0 };
    size_t bytes;
    float *A, *B, *C, *Cdev, *absA, *absB, *mag;
    uint64_t a_pa, b_pa, c_pa, cmd_pa, comp;
    uint64_t a_va, b_va, c_va, cmd_va;
    struct refnpu_cmd_gemm g = { 0 };
    double t_dev = INFINITY, t_blas = INFINITY, flops, ratio;
    double max_err = 0, worst = 0;
    float tol_abs;
    uint32_t bits = REFNPU_GEMM_TOL_ABS_BITS;
    size_t bad = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--huge")) {
            b.huge = true;
        } else if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            kernel = argv[++i];
        } else if (!strcmp(argv[i], "--min-ratio") && i + 1 < argc) {
            min_ratio = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [-n SIZE] [-r REPS] [--huge] "
                    "[--min-ratio R] [-k KERNEL]\n", argv[0]);
            return 2;
        }
    }
    if (!n || !reps || n > 4096) {
        fprintf(stderr, "bad size or repetition count\n");
        return 2;
    }
    memcpy(&tol_abs, &bits, 4);
    bytes = (size_t)n * n * sizeof(float);
    flops = 2.0 * n * n * n;

    A = g_malloc(bytes);
    B = g_malloc(bytes);
    C = g_malloc(bytes);
    Cdev = g_malloc(bytes);
    absA = g_malloc(bytes);
    absB = g_malloc(bytes);
    mag = g_malloc(bytes);
    srand(1);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        A[i] = (float)rand() / RAND_MAX * 2 - 1;
        B[i] = (float)rand() / RAND_MAX * 2 - 1;
        absA[i] = fabsf(A[i]);
        absB[i] = fabsf(B[i]);
    }

    /* Device */
    bench_start(&b, kernel);
    a_va = map_buf(&b, bytes, &a_pa);
    b_va = map_buf(&b, bytes, &b_pa);
    c_va = map_buf(&b, bytes, &c_pa);
    cmd_va = map_buf(&b, sizeof(g), &cmd_pa);
    comp = galloc(&b, REFNPU_COMPLETION_SIZE, REFNPU_COMPLETION_ALIGN);
    qtest_bufwrite(b.qts, a_pa, A, bytes);
    qtest_bufwrite(b.qts, b_pa, B, bytes);
    g.hdr.opcode = REFNPU_OP_GEMM;
    g.hdr.len_dw = sizeof(g) / 4;
    g.a.va = a_va;
    g.a.pitch = n * 4;
    g.b.va = b_va;
    g.b.pitch = n * 4;
    g.c.va = c_va;
    g.c.pitch = n * 4;
    g.m = g.n = g.k = n;
    g.in_dtype = REFNPU_DTYPE_FP32;
    g.out_dtype = REFNPU_DTYPE_FP32;
    qtest_memwrite(b.qts, cmd_pa, &g, sizeof(g));

    /*
     * Alternate device and OpenBLAS runs so that both see the same load
     * on a shared machine; keep the best time of each.
     */
    openblas_set_num_threads(1);
    for (uint32_t r = 0; r < reps; r++) {
        uint32_t status;
        double t = run_job(&b, cmd_va, sizeof(g), comp, &status);

        if (status != REFNPU_ERR_NONE) {
            fprintf(stderr, "device job failed with status 0x%x\n", status);
            return 1;
        }
        t_dev = MIN(t_dev, t);

        t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
                    1.0f, A, n, B, n, 0.0f, C, n);
        t = now() - t;
        t_blas = MIN(t_blas, t);
    }
    qtest_bufread(b.qts, c_pa, Cdev, bytes);
    qpci_iounmap(b.dev, b.bar);
    g_free(b.dev);
    qtest_shutdown(b.qs);

    /* Accuracy: both within the tolerance of the exact product. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
                1.0f, absA, n, absB, n, 0.0f, mag, n);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        double err = fabs((double)Cdev[i] - C[i]);
        /* twice the bound: each result may be off by it from the exact */
        double tol = 2 * (REFNPU_GEMM_TOL_FACTOR * (n + 1.0) *
                          ldexp(1, -24) * mag[i] * 1.01 + tol_abs);

        max_err = MAX(max_err, err);
        worst = MAX(worst, err / tol);
        if (!(err <= tol)) {
            bad++;
        }
    }

    ratio = t_blas / t_dev;
    printf("refnpu GEMM fp32 %ux%ux%u, %s pages, %s kernel, best of %u\n",
           n, n, n, b.huge ? "2 MiB" : "4 KiB", kernel, reps);
    printf("  device (doorbell to completion): %9.3f ms  %7.2f GFLOP/s\n",
           t_dev * 1e3, flops / t_dev / 1e9);
    printf("  OpenBLAS cblas_sgemm, 1 thread:  %9.3f ms  %7.2f GFLOP/s  (%s)\n",
           t_blas * 1e3, flops / t_blas / 1e9, openblas_get_config());
    printf("  max |device - OpenBLAS| = %.3g (%.1f%% of tolerance), "
           "%zu outside\n", max_err, worst * 100, bad);
    printf("ratio device/OpenBLAS: %.2f\n", ratio);

    g_free(A);
    g_free(B);
    g_free(C);
    g_free(Cdev);
    g_free(absA);
    g_free(absB);
    g_free(mag);
    if (bad) {
        return 1;
    }
    return ratio >= min_ratio ? 0 : 3;
}
