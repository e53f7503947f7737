/*
 * refnpu fuzz target: jobs built from the fuzzer's bytes
 *
 * generic-fuzz (generic-fuzz-refnpu) drives the device's registers and
 * fills guest memory on each DMA read, but the chance that such bytes form
 * a valid ring, context table, page-table tree and command buffer is nil.
 * This target builds those structures in guest memory -- well formed
 * except where the input says otherwise -- and lets the input choose the
 * descriptors, the commands and their fields, the data, the page
 * permissions, fault injection and a tail of raw register writes.  The
 * device runs with x-sync=on: a doorbell runs its queue inside the MMIO
 * write, so an input's effect depends on its bytes alone.  Each input
 * starts from a system reset and cleared guest memory.
 *
 * Copied into QEMU's tests/qtest/fuzz/ by qemu/build-qemu.sh; built with
 * --enable-fuzzing.  See qemu/README.md, "Fuzzing".
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include "qemu/module.h"
#include "hw/pci/pci_regs.h"
#include "tests/qtest/libqtest.h"
#include "fuzz.h"
#include "../../../hw/misc/refnpu/refnpu_hw.h"
#include "../../../hw/misc/refnpu/refnpu_engine.h"

#define PCI_CFG_ADDR    0xcf8
#define PCI_CFG_DATA    0xcfc
#define BAR_ADDR        0xe0000000ULL

/* Guest-physical layout, rebuilt for every input. */
#define CTX_TABLE       0x100000ULL
#define NUM_CTX         4
#define PT_BASE         0x101000ULL     /* 4 levels, one table each */
#define RING_BASE       0x110000ULL     /* one page per queue */
#define RING_ENTRIES    64
#define COMP_BASE       0x120000ULL     /* one record per ring slot */
#define WIN_PA          0x200000ULL
#define WIN_PAGES       256
#define WIN_SIZE        (WIN_PAGES * REFNPU_PAGE_SIZE)
#define VA_BASE         0x0000004000000000ULL
#define CMD_MAX         (16 * 1024)     /* command buffer at VA_BASE */
#define NUM_QUEUES      2
#define MAX_JOBS        8
#define MAX_REG_OPS     32

/* The engine's opcodes, found once by asking it for their sizes. */
static uint16_t ops[256];
static unsigned int num_ops;

/* The input, consumed from the front; reads past its end give zeros. */
typedef struct Input {
    const uint8_t *p;
    size_t left;
} Input;

static uint8_t in_u8(Input *in)
{
    uint8_t v = 0;

    if (in->left) {
        v = *in->p++;
        in->left--;
    }
    return v;
}

static uint32_t in_u32(Input *in)
{
    uint32_t v = in_u8(in);

    v |= (uint32_t)in_u8(in) << 8;
    v |= (uint32_t)in_u8(in) << 16;
    return v | (uint32_t)in_u8(in) << 24;
}

static uint64_t in_u64(Input *in)
{
    uint64_t lo = in_u32(in);

    return lo | (uint64_t)in_u32(in) << 32;
}

static int refnpu_devfn = -1;

static void cfg_writel(QTestState *s, int devfn, uint8_t off, uint32_t val)
{
    qtest_outl(s, PCI_CFG_ADDR, 0x80000000u | devfn << 8 | off);
    qtest_outl(s, PCI_CFG_DATA, val);
}

static uint32_t cfg_readl(QTestState *s, int devfn, uint8_t off)
{
    qtest_outl(s, PCI_CFG_ADDR, 0x80000000u | devfn << 8 | off);
    return qtest_inl(s, PCI_CFG_DATA);
}

static void reg_write(QTestState *s, uint32_t off, uint32_t val)
{
    qtest_writel(s, BAR_ADDR + off, val);
}

static void qreg_write(QTestState *s, unsigned q, uint32_t off, uint32_t val)
{
    reg_write(s, REFNPU_REG_QUEUE(q, off), val);
}

/* Find the device on bus 0 and the engine's opcodes, once. */
static void refnpu_pre_fuzz(QTestState *s)
{
    uint32_t id = REFNPU_PCI_DEVICE_ID << 16 | REFNPU_PCI_VENDOR_ID;

    for (unsigned op = 0; op < ARRAY_SIZE(ops); op++) {
        if (refnpu_engine_cmd_size(op)) {
            ops[num_ops++] = op;
        }
    }
    g_assert(num_ops > 0);

    for (int devfn = 0; devfn < 256; devfn += 8) {
        if (cfg_readl(s, devfn, PCI_VENDOR_ID) == id) {
            refnpu_devfn = devfn;
            return;
        }
    }
    fprintf(stderr, "refnpu-fuzz: no refnpu device on bus 0\n");
    abort();
}

/* Map BAR0, enable memory decoding and bus mastering (lost on reset). */
static void enable_device(QTestState *s)
{
    cfg_writel(s, refnpu_devfn, PCI_BASE_ADDRESS_0, (uint32_t)BAR_ADDR);
    cfg_writel(s, refnpu_devfn, PCI_BASE_ADDRESS_0 + 4, BAR_ADDR >> 32);
    cfg_writel(s, refnpu_devfn, PCI_COMMAND,
               PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

/*
 * Context table and page tables: every context shares one tree mapping
 * the window at VA_BASE; the input picks the permissions of its last 16
 * pages and may invalidate one context or point one at garbage.
 */
static void build_tables(QTestState *s, Input *in)
{
    uint8_t ctx_bits = in_u8(in);
    uint16_t perm_bits = in_u8(in) | in_u8(in) << 8;
    uint64_t table = PT_BASE;

    for (unsigned c = 0; c < NUM_CTX; c++) {
        uint64_t e = CTX_TABLE + c * REFNPU_CTX_ENTRY_SIZE;
        uint64_t root = PT_BASE;
        uint32_t flags = REFNPU_CTX_F_VALID;

        if (ctx_bits & (1u << c)) {
            root = WIN_PA + (in_u8(in) % WIN_PAGES) * REFNPU_PAGE_SIZE;
        }
        if (ctx_bits & (0x10u << c)) {
            flags = in_u32(in);
        }
        qtest_writeq(s, e, root);
        qtest_writel(s, e + 8, flags);
    }
    for (int l = REFNPU_PT_LEVELS - 1; l > 0; l--) {
        uint64_t next = table + REFNPU_PAGE_SIZE;

        qtest_writeq(s, table + REFNPU_PT_INDEX(VA_BASE, l) * REFNPU_PTE_SIZE,
                     next | REFNPU_PTE_VALID);
        table = next;
    }
    for (unsigned i = 0; i < WIN_PAGES; i++) {
        uint64_t perm = REFNPU_PTE_READ | REFNPU_PTE_WRITE | REFNPU_PTE_VALID;
        unsigned j = i - (WIN_PAGES - 16);

        if (i >= WIN_PAGES - 16 && (perm_bits & (1u << j))) {
            perm = (j & 1) ? REFNPU_PTE_READ | REFNPU_PTE_VALID : 0;
        }
        qtest_writeq(s, table + (REFNPU_PT_INDEX(VA_BASE, 0) + i) *
                     REFNPU_PTE_SIZE,
                     (WIN_PA + i * REFNPU_PAGE_SIZE) | perm);
    }
}

/*
 * One command from the input: a real opcode with its size, then fields.
 * A 64-bit word whose top two bits are set becomes an address in the
 * window; 32-bit words are small unless their top bit asks otherwise, so
 * that most jobs finish quickly and reach the engine's arithmetic.
 */
static uint32_t build_cmd(Input *in, uint8_t *cmd, uint32_t room)
{
    uint8_t sel = in_u8(in);
    uint16_t opcode = ops[sel % num_ops];
    uint32_t size = refnpu_engine_cmd_size(opcode);
    struct refnpu_cmd_hdr hdr = {
        .opcode = opcode,
        .len_dw = size / 4,
    };

    if (size > room) {
        return 0;
    }
    if (sel & 0x80) {
        hdr.flags = in_u8(in);
    }
    if ((sel & 0x40) && in_u8(in) < 16) {
        hdr.len_dw = in_u32(in);            /* a malformed length */
    }
    memcpy(cmd, &hdr, sizeof(hdr));
    for (uint32_t o = sizeof(hdr); o + 8 <= size; o += 8) {
        uint64_t w = in_u64(in);

        if ((w >> 62) == 3) {
            w = VA_BASE + (w % WIN_SIZE);
        } else {
            uint32_t lo = w, hi = w >> 32;

            lo = (lo & 0x80000000u) && (hi & 1) ? lo : lo % 97;
            hi = (hi & 0x80000000u) && (lo & 1) ? hi : hi % 97;
            w = (uint64_t)hi << 32 | lo;
        }
        memcpy(cmd + o, &w, sizeof(w));
    }
    return size;
}

/* Raw register writes: the driver doing things out of order. */
static void reg_ops(QTestState *s, Input *in)
{
    unsigned n = in_u8(in) % MAX_REG_OPS;

    for (unsigned i = 0; i < n && in->left; i++) {
        uint32_t off = in_u32(in) % REFNPU_BAR_REGS_SIZE & ~3u;

        if (in_u8(in) & 1) {
            qtest_readl(s, BAR_ADDR + off);
        } else {
            reg_write(s, off, in_u32(in));
        }
    }
}

/*
 * Zero the tables and the window.  Not qtest_memset(): QEMU 10.0's fuzz
 * wrapper of it leaks its buffer on every call.
 */
static void clear_memory(QTestState *s)
{
    static const uint8_t zero[64 * 1024];

    for (uint64_t a = CTX_TABLE; a < WIN_PA + WIN_SIZE; a += sizeof(zero)) {
        qtest_memwrite(s, a, zero, sizeof(zero));
    }
}

static void refnpu_fuzz(QTestState *s, const unsigned char *data, size_t size)
{
    Input in = { .p = data, .left = size };
    static uint8_t cmdbuf[CMD_MAX];
    uint32_t tail[NUM_QUEUES] = { 0 };
    uint8_t hdr = in_u8(&in);
    unsigned jobs = hdr % MAX_JOBS + 1;
    uint32_t cmd_off = 0;

    enable_device(s);
    clear_memory(s);
    build_tables(s, &in);

    qtest_writeq(s, BAR_ADDR + REFNPU_REG_CTX_TABLE_BASE, CTX_TABLE);
    reg_write(s, REFNPU_REG_CTX_TABLE_COUNT, NUM_CTX);
    reg_write(s, REFNPU_REG_IRQ_MASK, in_u8(&in) & 1 ? ~0u : 0);
    for (unsigned q = 0; q < NUM_QUEUES; q++) {
        qtest_writeq(s, BAR_ADDR + REFNPU_REG_QUEUE(q, REFNPU_Q_RING_BASE),
                     RING_BASE + q * REFNPU_PAGE_SIZE);
        qreg_write(s, q, REFNPU_Q_RING_SIZE,
                   hdr & 0x80 ? in_u32(&in) : RING_ENTRIES);
        qreg_write(s, q, REFNPU_Q_WATCHDOG_MS, in_u8(&in) % 4 ? 0 : 1000);
        qreg_write(s, q, REFNPU_Q_CTRL, REFNPU_Q_CTRL_ENABLE);
    }

    for (unsigned j = 0; j < jobs && in.left; j++) {
        unsigned q = in_u8(&in) % NUM_QUEUES;
        uint8_t kind = in_u8(&in);
        unsigned ncmds = in_u8(&in) % 8;
        uint32_t start = cmd_off;
        struct refnpu_job_desc d = {
            .ctx_id = kind & 0x80 ? in_u8(&in) : kind % NUM_CTX,
            .flags = kind & 0x40 ? in_u32(&in) : REFNPU_JOB_F_IRQ,
            .completion_addr = COMP_BASE + (q * RING_ENTRIES + tail[q]) *
                               REFNPU_COMPLETION_SIZE,
            .seq = j + 1,
        };

        for (unsigned c = 0; c < ncmds; c++) {
            cmd_off += build_cmd(&in, cmdbuf + cmd_off, CMD_MAX - cmd_off);
        }
        d.cmd_va = VA_BASE + start;
        d.cmd_size = cmd_off - start;
        if (kind & 0x20) {
            d.cmd_size = in_u64(&in);       /* a wrong size */
        }
        if (kind & 0x10) {
            d.completion_addr = in_u64(&in);
        }
        if (kind & 0x08) {                  /* fault injection */
            qreg_write(s, q, REFNPU_Q_DBG_ERROR, in_u8(&in));
            qreg_write(s, q, REFNPU_Q_DBG_DELAY_US, in_u8(&in));
            qtest_writeq(s, BAR_ADDR + REFNPU_REG_QUEUE(q,
                         REFNPU_Q_DBG_FAULT_VA),
                         VA_BASE + in_u32(&in) % WIN_SIZE);
            qreg_write(s, q, REFNPU_Q_DBG_INJECT, in_u8(&in));
        }
        qtest_memwrite(s, RING_BASE + q * REFNPU_PAGE_SIZE +
                       tail[q] * REFNPU_JOB_DESC_SIZE, &d, sizeof(d));
        tail[q] = (tail[q] + 1) % RING_ENTRIES;
        if (kind & 0x04) {
            reg_ops(s, &in);
        }
        qtest_memwrite(s, WIN_PA, cmdbuf, cmd_off);
        qreg_write(s, q, REFNPU_Q_TAIL, tail[q]);
    }

    /* The rest seeds the data area behind the command buffer. */
    if (in.left) {
        qtest_memwrite(s, WIN_PA + CMD_MAX, in.p,
                       MIN(in.left, WIN_SIZE - CMD_MAX));
    }
    reg_write(s, REFNPU_REG_RESET, REFNPU_RESET_GO);
    flush_events(s);
    fuzz_reset(s);
}

static GString *refnpu_fuzz_cmdline(FuzzTarget *t)
{
    return g_string_new(TARGET_NAME " -machine q35,accel=qtest -nodefaults "
                        "-m 64M -display none -device refnpu,x-sync=on,"
                        "fault-inject=on,num-queues=2,host-mem-budget=16M");
}

static void register_refnpu_fuzz_targets(void)
{
    fuzz_add_target(&(FuzzTarget){
        .name = "refnpu-fuzz",
        .description = "Fuzz the refnpu NPU with rings, page tables and "
                       "command buffers built from the input",
        .get_init_cmdline = refnpu_fuzz_cmdline,
        .pre_fuzz = refnpu_pre_fuzz,
        .fuzz = refnpu_fuzz,
    });
}

fuzz_target_init(register_refnpu_fuzz_targets);
