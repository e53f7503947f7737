/* SPDX-License-Identifier: MIT */
/*
 * refnpu hardware definition: the one place where every number describing
 * the device lives (PCI identity, BAR layout, registers, ring descriptors,
 * completion records, device MMU, command-buffer format, opcodes, error
 * codes).  Documentation/hardware.rst is the prose specification; it cites
 * the names defined here.
 *
 * This header is shared by the kernel driver, the in-kernel virtual device,
 * the QEMU device model, libaccel and the tests.  It is freestanding: it
 * needs only fixed-width integer types.  Every structure is little-endian,
 * has explicit padding and a size that is a multiple of 8 bytes; the sizes
 * are given as REFNPU_*_SIZE constants so users can static_assert them.
 *
 * Copyright (c) 2025 The refnpu authors
 */
#ifndef REFNPU_HW_H
#define REFNPU_HW_H

#if defined(__KERNEL__)
#include <linux/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#endif

/* Bit helpers usable from the kernel, QEMU, C++ and assembly-free C. */
#define REFNPU_BIT(n)		(1U << (n))
#define REFNPU_BIT_ULL(n)	(1ULL << (n))
#define REFNPU_GENMASK(h, l)	((~0U >> (31 - (h))) & (~0U << (l)))
#define REFNPU_GENMASK_ULL(h, l) \
	((~0ULL >> (63 - (h))) & (~0ULL << (l)))

/* ------------------------------------------------------------------------
 * PCI identity
 */
#define REFNPU_PCI_VENDOR_ID		0x1234	/* QEMU's experimental vendor */
#define REFNPU_PCI_DEVICE_ID		0x4e50	/* "NP"; unused by QEMU */
#define REFNPU_PCI_REVISION		0x01
/* PCI class 0x12 "processing accelerator", subclass 0, prog-if 0 */
#define REFNPU_PCI_CLASS_CODE		0x120000
#define REFNPU_PCI_SUBSYSTEM_VENDOR_ID	0x1af4
#define REFNPU_PCI_SUBSYSTEM_ID		0x1100

/* BAR0: 64-bit non-prefetchable MMIO register file. */
#define REFNPU_BAR_REGS			0
#define REFNPU_BAR_REGS_SIZE		0x10000
/* BAR2: MSI-X table and PBA (exclusive BAR). */
#define REFNPU_BAR_MSIX			2

/* MSI-X vectors: vector 0 reports errors, vector 1 + q completes queue q. */
#define REFNPU_MSIX_VEC_ERROR		0
#define REFNPU_MSIX_VEC_QUEUE(q)	(1 + (q))
#define REFNPU_MSIX_NUM_VECTORS(nq)	(1 + (nq))

/* Queue count: a device property in [REFNPU_MIN_QUEUES, REFNPU_MAX_QUEUES]. */
#define REFNPU_MIN_QUEUES		1
#define REFNPU_MAX_QUEUES		16
#define REFNPU_DEFAULT_QUEUES		4

/* ------------------------------------------------------------------------
 * BAR0 register map.  All registers are little-endian.  32-bit registers
 * must be accessed with 32-bit accesses.  64-bit registers (marked 64) are
 * 8-byte aligned and may be accessed either with one 64-bit access or with
 * two 32-bit accesses (low half at the register offset, high half at +4);
 * each half takes effect when written.  Reads of undefined offsets return
 * 0 and writes to them are ignored.
 */

/* Global block, 0x0000 - 0x07ff */
#define REFNPU_REG_ID			0x0000	/* RO32 */
#define REFNPU_REG_VERSION		0x0004	/* RO32 */
#define REFNPU_REG_CAPS			0x0008	/* RO32 */
#define REFNPU_REG_NUM_QUEUES		0x000c	/* RO32 */
#define REFNPU_REG_MMU_CAPS		0x0010	/* RO32 */
#define REFNPU_REG_MAX_CONTEXTS		0x0014	/* RO32 */
#define REFNPU_REG_TIMESTAMP_FREQ	0x0018	/* RO32, Hz */
#define REFNPU_REG_STATUS		0x0024	/* RO32 */
#define REFNPU_REG_RESET		0x0028	/* WO32 */
#define REFNPU_REG_IRQ_STATUS		0x0030	/* RW1C32 */
#define REFNPU_REG_IRQ_MASK		0x0034	/* RW32 */
#define REFNPU_REG_TIMESTAMP		0x0038	/* RO64 */
#define REFNPU_REG_CTX_TABLE_BASE	0x0040	/* RW64 */
#define REFNPU_REG_CTX_TABLE_COUNT	0x0048	/* RW32 */
#define REFNPU_REG_TLB_INVALIDATE	0x004c	/* RW32 */
#define REFNPU_REG_FAULT_STATUS		0x0060	/* RO32 */
#define REFNPU_REG_FAULT_CTX		0x0064	/* RO32 */
#define REFNPU_REG_FAULT_ADDR		0x0068	/* RO64 */
#define REFNPU_REG_FAULT_SEQ		0x0070	/* RO64 */
#define REFNPU_REG_FAULT_ACK		0x0078	/* WO32 */
#define REFNPU_REG_SCRATCH		0x007c	/* RW32 */

/* Debug / fault-injection block (global part), 0x0800 - 0x0fff. */
#define REFNPU_REG_DBG_SPURIOUS_IRQ	0x0800	/* WO32 */

/* Per-queue blocks: queue q occupies [REFNPU_QUEUE_BLOCK(q), +STRIDE). */
#define REFNPU_QUEUE_BLOCK_BASE		0x1000
#define REFNPU_QUEUE_BLOCK_STRIDE	0x0100
#define REFNPU_QUEUE_BLOCK(q) \
	(REFNPU_QUEUE_BLOCK_BASE + (q) * REFNPU_QUEUE_BLOCK_STRIDE)

/* Offsets within a queue block */
#define REFNPU_Q_RING_BASE		0x00	/* RW64 */
#define REFNPU_Q_RING_SIZE		0x08	/* RW32, entries */
#define REFNPU_Q_CTRL			0x0c	/* RW32 */
#define REFNPU_Q_TAIL			0x10	/* RW32, doorbell: entry index */
#define REFNPU_Q_HEAD			0x14	/* RO32, entry index */
#define REFNPU_Q_STATUS			0x18	/* RO32 */
#define REFNPU_Q_RESET			0x1c	/* WO32 */
#define REFNPU_Q_WATCHDOG_MS		0x20	/* RW32 */
#define REFNPU_Q_ERROR			0x24	/* RO32 */
#define REFNPU_Q_LAST_SEQ		0x28	/* RO64 */
/* Per-queue fault injection, RAZ/WI unless REFNPU_CAP_FAULT_INJECT */
#define REFNPU_Q_DBG_INJECT		0x40	/* RW32, one-shot bits */
#define REFNPU_Q_DBG_ERROR		0x44	/* RW32, error code */
#define REFNPU_Q_DBG_DELAY_US		0x48	/* RW32 */
#define REFNPU_Q_DBG_FAULT_VA		0x50	/* RW64, VA or bus address */

#define REFNPU_REG_QUEUE(q, off)	(REFNPU_QUEUE_BLOCK(q) + (off))

/* --- register fields and values ------------------------------------- */

/* REFNPU_REG_ID: constant identification value ("RFNP" little-endian) */
#define REFNPU_ID_VALUE			0x504e4652

/* REFNPU_REG_VERSION */
#define REFNPU_VERSION_MAJOR_MASK	REFNPU_GENMASK(31, 16)
#define REFNPU_VERSION_MAJOR_SHIFT	16
#define REFNPU_VERSION_MINOR_MASK	REFNPU_GENMASK(15, 0)
#define REFNPU_VERSION_MAJOR		1
#define REFNPU_VERSION_MINOR		0
#define REFNPU_VERSION_VALUE \
	((REFNPU_VERSION_MAJOR << REFNPU_VERSION_MAJOR_SHIFT) | \
	 REFNPU_VERSION_MINOR)

/* REFNPU_REG_CAPS */
#define REFNPU_CAP_FP16			REFNPU_BIT(0)
#define REFNPU_CAP_BF16			REFNPU_BIT(1)
#define REFNPU_CAP_INT8			REFNPU_BIT(2)
#define REFNPU_CAP_CONV			REFNPU_BIT(3)
#define REFNPU_CAP_WATCHDOG		REFNPU_BIT(4)
/* fp32 GEMM, EWISE, ACT, SOFTMAX and LAYERNORM */
#define REFNPU_CAP_FP32			REFNPU_BIT(5)
#define REFNPU_CAP_FAULT_INJECT		REFNPU_BIT(31)	/* debug block live */
#define REFNPU_CAPS_BASE \
	(REFNPU_CAP_FP16 | REFNPU_CAP_BF16 | REFNPU_CAP_INT8 | \
	 REFNPU_CAP_CONV | REFNPU_CAP_WATCHDOG | REFNPU_CAP_FP32)

/* REFNPU_REG_MMU_CAPS */
#define REFNPU_MMU_CAPS_VA_BITS_MASK	REFNPU_GENMASK(7, 0)
#define REFNPU_MMU_CAPS_LEVELS_MASK	REFNPU_GENMASK(11, 8)
#define REFNPU_MMU_CAPS_LEVELS_SHIFT	8
#define REFNPU_MMU_CAPS_PGSZ_4K		REFNPU_BIT(16)
#define REFNPU_MMU_CAPS_PGSZ_2M		REFNPU_BIT(17)

/* REFNPU_REG_MAX_CONTEXTS reset value; context ids are [0, this) */
#define REFNPU_MAX_CONTEXTS		4096

/* REFNPU_REG_TIMESTAMP_FREQ value: timestamps count nanoseconds */
#define REFNPU_TIMESTAMP_FREQ_HZ	1000000000U

/* REFNPU_REG_STATUS */
#define REFNPU_STATUS_READY		REFNPU_BIT(0)	/* not in reset */
#define REFNPU_STATUS_BUSY		REFNPU_BIT(1)	/* some queue busy */
#define REFNPU_STATUS_FAULT		REFNPU_BIT(2)	/* fault record valid */

/* REFNPU_REG_RESET: write this value to reset the whole device */
#define REFNPU_RESET_GO			REFNPU_BIT(0)
/*
 * Upper bound the device takes to set REFNPU_STATUS_READY after a reset
 * (and to clear REFNPU_Q_STATUS_RESETTING after a queue reset). Generous
 * for silicon: the device is emulated by host threads, which an
 * oversubscribed host may keep off the CPU for tens of milliseconds
 * (Documentation/hardware.rst).
 */
#define REFNPU_RESET_TIMEOUT_US		1000000

/* REFNPU_REG_IRQ_STATUS / REFNPU_REG_IRQ_MASK */
#define REFNPU_IRQ_QUEUE(q)		REFNPU_BIT(q)
#define REFNPU_IRQ_QUEUE_MASK		REFNPU_GENMASK(REFNPU_MAX_QUEUES - 1, 0)
#define REFNPU_IRQ_ERROR		REFNPU_BIT(31)

/* REFNPU_REG_CTX_TABLE_BASE: bus address, REFNPU_CTX_TABLE_ALIGN aligned */
#define REFNPU_CTX_TABLE_ALIGN		4096

/* REFNPU_REG_TLB_INVALIDATE: write; reads return REFNPU_TLB_INV_BUSY */
#define REFNPU_TLB_INV_CTX_MASK		REFNPU_GENMASK(23, 0)
#define REFNPU_TLB_INV_ALL		REFNPU_BIT(31)	/* ignore CTX field */
#define REFNPU_TLB_INV_BUSY		REFNPU_BIT(0)
/* Upper bound REFNPU_TLB_INV_BUSY reads set after a write (as the reset's) */
#define REFNPU_TLB_INV_TIMEOUT_US	1000000

/* REFNPU_REG_FAULT_STATUS */
#define REFNPU_FAULT_STATUS_VALID	REFNPU_BIT(0)
#define REFNPU_FAULT_STATUS_OVERFLOW	REFNPU_BIT(1)	/* later fault lost */
/* REFNPU_FAULT_F_* flags of the faulting access (see struct refnpu_completion) */
#define REFNPU_FAULT_STATUS_FLAGS_MASK	REFNPU_GENMASK(7, 2)
#define REFNPU_FAULT_STATUS_FLAGS_SHIFT	2
#define REFNPU_FAULT_STATUS_QUEUE_MASK	REFNPU_GENMASK(15, 8)
#define REFNPU_FAULT_STATUS_QUEUE_SHIFT	8
#define REFNPU_FAULT_STATUS_CODE_MASK	REFNPU_GENMASK(31, 16)
#define REFNPU_FAULT_STATUS_CODE_SHIFT	16

/* REFNPU_REG_FAULT_ACK: write to clear the record (VALID and OVERFLOW) */
#define REFNPU_FAULT_ACK_GO		REFNPU_BIT(0)

/* REFNPU_Q_CTRL */
#define REFNPU_Q_CTRL_ENABLE		REFNPU_BIT(0)

/*
 * REFNPU_Q_RING_SIZE: power of two in [MIN, MAX] entries.  HEAD and TAIL
 * are entry indices in [0, RING_SIZE): empty when equal, at most
 * RING_SIZE - 1 descriptors outstanding.
 */
#define REFNPU_RING_MIN_ENTRIES		2
#define REFNPU_RING_MAX_ENTRIES		4096
/* REFNPU_Q_RING_BASE alignment (bytes) */
#define REFNPU_RING_ALIGN		64

/* REFNPU_Q_STATUS */
#define REFNPU_Q_STATUS_ENABLED		REFNPU_BIT(0)
#define REFNPU_Q_STATUS_BUSY		REFNPU_BIT(1)	/* job in flight */
#define REFNPU_Q_STATUS_ERROR		REFNPU_BIT(2)	/* halted, see Q_ERROR */
#define REFNPU_Q_STATUS_RESETTING	REFNPU_BIT(3)

/*
 * REFNPU_Q_RESET: write this value to reset the queue.  A register reset
 * (this or REFNPU_RESET_GO) writes a completion record with status
 * REFNPU_ERR_ABORTED for the job it stops, i.e. one whose descriptor the
 * device had fetched and checked and which had not completed (a job that
 * completes meanwhile gets its ordinary record), at the descriptor's
 * completion_addr, before the reset completes; no interrupt, no fault
 * record, HEAD not advanced.  Descriptors not yet fetched get no record.
 * A system or function-level (bus) reset writes nothing.
 */
#define REFNPU_Q_RESET_GO		REFNPU_BIT(0)

/* REFNPU_Q_DBG_INJECT: one-shot injections armed for the next job */
#define REFNPU_DBG_INJECT_HANG		REFNPU_BIT(0)
#define REFNPU_DBG_INJECT_ERROR		REFNPU_BIT(1)
#define REFNPU_DBG_INJECT_DELAY		REFNPU_BIT(2)
#define REFNPU_DBG_INJECT_DROP_IRQ	REFNPU_BIT(3)
#define REFNPU_DBG_INJECT_MMU_FAULT	REFNPU_BIT(4)
#define REFNPU_DBG_INJECT_STRAY_DMA	REFNPU_BIT(5)	/* bus write, no MMU */
#define REFNPU_DBG_INJECT_STUCK		REFNPU_BIT(6)	/* slow to stop */
#define REFNPU_DBG_INJECT_ALL		REFNPU_GENMASK(6, 0)
/* REFNPU_DBG_INJECT_STUCK stops at most this long after a register reset */
#define REFNPU_DBG_STUCK_MAX_US		10000000
/* REFNPU_DBG_INJECT_STRAY_DMA writes this many bytes of this value */
#define REFNPU_DBG_STRAY_DMA_BYTES	64
#define REFNPU_DBG_STRAY_DMA_PATTERN	0xa5

/* ------------------------------------------------------------------------
 * Error codes: job completion status, fault record code, queue error.
 */
#define REFNPU_ERR_NONE			0x00	/* success */
#define REFNPU_ERR_MMU_UNMAPPED		0x01	/* no valid translation */
#define REFNPU_ERR_MMU_READ_PERM	0x02	/* page not readable */
#define REFNPU_ERR_MMU_WRITE_PERM	0x03	/* page not writable */
#define REFNPU_ERR_MMU_WALK		0x04	/* table DMA failed / bad PTE */
#define REFNPU_ERR_DMA			0x05	/* data DMA failed (bus error) */
#define REFNPU_ERR_MALFORMED		0x06	/* malformed command */
#define REFNPU_ERR_UNSUPPORTED		0x07	/* unknown opcode/type/mode */
#define REFNPU_ERR_INVALID_CONTEXT	0x08	/* ctx out of range/invalid */
#define REFNPU_ERR_TIMEOUT		0x09	/* watchdog expired */
#define REFNPU_ERR_INJECTED		0x0a	/* injected by debug block */
#define REFNPU_ERR_BAD_DESCRIPTOR	0x0b	/* job descriptor invalid */
#define REFNPU_ERR_RING			0x0c	/* ring config/tail invalid */
#define REFNPU_ERR_ABORTED		0x0d	/* started, stopped by reset */
#define REFNPU_ERR_COUNT		0x0e

/* ------------------------------------------------------------------------
 * Ring job descriptor, written by the driver into the ring (bus memory).
 */
#define REFNPU_JOB_F_IRQ		REFNPU_BIT(0)	/* interrupt on completion */
#define REFNPU_JOB_F_VALID_MASK		REFNPU_JOB_F_IRQ

/* Largest command buffer a job may reference (bytes). */
#define REFNPU_CMDBUF_MAX_SIZE		REFNPU_BIT(30)
/* Command buffers and commands are aligned to this many bytes. */
#define REFNPU_CMD_ALIGN		8

/**
 * struct refnpu_job_desc - one ring entry (REFNPU_JOB_DESC_SIZE bytes)
 * @ctx_id: context id; selects the page tables for every device VA below
 * @flags: REFNPU_JOB_F_*; unknown bits fail the job (BAD_DESCRIPTOR)
 * @cmd_va: device VA of the command buffer (REFNPU_CMD_ALIGN aligned)
 * @cmd_size: bytes of commands; multiple of REFNPU_CMD_ALIGN, at most
 *            REFNPU_CMDBUF_MAX_SIZE; 0 runs nothing and completes OK
 * @completion_addr: bus address of the struct refnpu_completion to write
 *                   (REFNPU_COMPLETION_ALIGN aligned)
 * @seq: job sequence number, echoed into the completion and fault record
 * @rsvd: must be zero (BAD_DESCRIPTOR otherwise)
 */
struct refnpu_job_desc {
	__u32 ctx_id;
	__u32 flags;
	__u64 cmd_va;
	__u64 cmd_size;
	__u64 completion_addr;
	__u64 seq;
	__u64 rsvd[3];
};

#define REFNPU_JOB_DESC_SIZE		64

/* struct refnpu_completion.done value, written together with the record */
#define REFNPU_COMPLETION_DONE		0x454e4f44	/* "DONE" */
#define REFNPU_COMPLETION_ALIGN		64
/* struct refnpu_completion.fault_flags */
#define REFNPU_FAULT_F_WRITE		REFNPU_BIT(0)	/* faulting access wrote */
#define REFNPU_FAULT_F_CMD_FETCH	REFNPU_BIT(1)	/* while reading commands */
#define REFNPU_FAULT_F_RING		REFNPU_BIT(2)	/* not in a command */

/**
 * struct refnpu_completion - completion record written by the device
 * @status: REFNPU_ERR_* (REFNPU_ERR_NONE on success)
 * @fault_flags: REFNPU_FAULT_F_*
 * @seq: the job descriptor's seq
 * @fault_va: device VA of the failing access (MMU/DMA errors), else 0
 * @cmd_index: index of the failing command (number of commands completed
 *             when @status is REFNPU_ERR_NONE)
 * @cmd_offset: byte offset of the failing command in the command buffer
 *              (cmd_size on success)
 * @start_ts: REFNPU_REG_TIMESTAMP when the device fetched the descriptor
 * @end_ts: REFNPU_REG_TIMESTAMP when the job finished
 * @done: REFNPU_COMPLETION_DONE
 * @ctx_id: the descriptor's context id
 * @rsvd: written as zero
 */
struct refnpu_completion {
	__u32 status;
	__u32 fault_flags;
	__u64 seq;
	__u64 fault_va;
	__u32 cmd_index;
	__u32 cmd_offset;
	__u64 start_ts;
	__u64 end_ts;
	__u32 done;
	__u32 ctx_id;
	__u64 rsvd;
};

#define REFNPU_COMPLETION_SIZE		64

/* ------------------------------------------------------------------------
 * Device MMU.  Context table in bus memory: REFNPU_REG_CTX_TABLE_COUNT
 * entries at REFNPU_REG_CTX_TABLE_BASE, indexed by context id.
 */
#define REFNPU_CTX_F_VALID		REFNPU_BIT(0)

/**
 * struct refnpu_ctx_entry - context table entry
 * @pt_root: bus address of the top-level page table (REFNPU_PAGE_SIZE
 *           aligned; low bits must be zero)
 * @flags: REFNPU_CTX_F_*; an entry without VALID fails jobs with
 *         REFNPU_ERR_INVALID_CONTEXT
 * @rsvd: must be zero
 */
struct refnpu_ctx_entry {
	__u64 pt_root;
	__u32 flags;
	__u32 rsvd;
};

#define REFNPU_CTX_ENTRY_SIZE		16

/*
 * Page tables: 4 levels of 512 little-endian 64-bit entries (one 4 KiB
 * page each), 48-bit device VA.  Level 3 is the root.  VA bits:
 * [47:39] level 3, [38:30] level 2, [29:21] level 1, [20:12] level 0,
 * [11:0] page offset.  A VA with any of bits [63:48] set is unmapped.
 * A level-1 entry with REFNPU_PTE_LEAF maps a 2 MiB page; a level-0 entry
 * always maps a 4 KiB page.  R/W are only checked in leaf entries.
 */
#define REFNPU_VA_BITS			48
#define REFNPU_PT_LEVELS		4
#define REFNPU_PAGE_SHIFT		12
#define REFNPU_PAGE_SIZE		REFNPU_BIT_ULL(REFNPU_PAGE_SHIFT)
#define REFNPU_HUGE_PAGE_SHIFT		21
#define REFNPU_HUGE_PAGE_SIZE		REFNPU_BIT_ULL(REFNPU_HUGE_PAGE_SHIFT)
#define REFNPU_PT_INDEX_BITS		9
#define REFNPU_PT_ENTRIES		REFNPU_BIT(REFNPU_PT_INDEX_BITS)
#define REFNPU_PTE_SIZE			8
#define REFNPU_PT_SHIFT(level) \
	(REFNPU_PAGE_SHIFT + (level) * REFNPU_PT_INDEX_BITS)
#define REFNPU_PT_INDEX(va, level) \
	(((va) >> REFNPU_PT_SHIFT(level)) & (REFNPU_PT_ENTRIES - 1))
#define REFNPU_VA_LIMIT			REFNPU_BIT_ULL(REFNPU_VA_BITS)

#define REFNPU_PTE_VALID		REFNPU_BIT_ULL(0)
#define REFNPU_PTE_READ			REFNPU_BIT_ULL(1)
#define REFNPU_PTE_WRITE		REFNPU_BIT_ULL(2)
#define REFNPU_PTE_LEAF			REFNPU_BIT_ULL(3)	/* level 1 only */
#define REFNPU_PTE_ADDR_MASK		REFNPU_GENMASK_ULL(51, 12)
/* Bits that must be zero in a valid entry (else REFNPU_ERR_MMU_WALK) */
#define REFNPU_PTE_RSVD_MASK \
	(REFNPU_GENMASK_ULL(63, 52) | REFNPU_GENMASK_ULL(11, 4))
/* In a 2 MiB leaf, address bits [20:12] must also be zero */
#define REFNPU_PTE_HUGE_ADDR_MASK	REFNPU_GENMASK_ULL(51, 21)

/* MMU_CAPS reset value */
#define REFNPU_MMU_CAPS_VALUE \
	(REFNPU_VA_BITS | (REFNPU_PT_LEVELS << REFNPU_MMU_CAPS_LEVELS_SHIFT) | \
	 REFNPU_MMU_CAPS_PGSZ_4K | REFNPU_MMU_CAPS_PGSZ_2M)

/* ------------------------------------------------------------------------
 * Command buffer: a packed stream of commands, each starting with a
 * struct refnpu_cmd_hdr whose len_dw gives the command's total length in
 * 32-bit words.  len_dw must equal the opcode's REFNPU_CMD_*_SIZE / 4
 * exactly, and the command must lie entirely within cmd_size.
 */

/* Opcodes */
#define REFNPU_OP_NOP			0x0000
#define REFNPU_OP_COPY			0x0001
#define REFNPU_OP_FILL			0x0002
#define REFNPU_OP_GEMM			0x0010
#define REFNPU_OP_EWISE			0x0020
#define REFNPU_OP_ACT			0x0021
#define REFNPU_OP_SOFTMAX		0x0022
#define REFNPU_OP_LAYERNORM		0x0023
#define REFNPU_OP_CONV2D		0x0030
#define REFNPU_OP_POOL2D		0x0031

/* Element types */
#define REFNPU_DTYPE_FP32		0
#define REFNPU_DTYPE_FP16		1
#define REFNPU_DTYPE_BF16		2
#define REFNPU_DTYPE_INT8		3
#define REFNPU_DTYPE_INT32		4
#define REFNPU_DTYPE_COUNT		5
/* Bytes per element of dtype t (t < REFNPU_DTYPE_COUNT): nibble lookup */
#define REFNPU_DTYPE_SIZE(t)		((unsigned int)((0x41224ULL >> (4 * (t))) & 0xf))

/**
 * struct refnpu_cmd_hdr - command header
 * @opcode: REFNPU_OP_*; unknown opcodes fail with REFNPU_ERR_UNSUPPORTED
 * @flags: per-opcode REFNPU_*_F_* bits; unknown bits are MALFORMED
 * @len_dw: total command length in 32-bit words, including this header
 */
struct refnpu_cmd_hdr {
	__u16 opcode;
	__u16 flags;
	__u32 len_dw;
};

#define REFNPU_CMD_HDR_SIZE		8

/**
 * struct refnpu_tensor2d - strided 2-D view of device memory
 * @va: device VA of element [0][0]; aligned to the element size
 * @pitch: bytes between the starts of consecutive rows; aligned to the
 *         element size and at least the row size when there is more than
 *         one row (ignored for a single row)
 */
struct refnpu_tensor2d {
	__u64 va;
	__u64 pitch;
};

/**
 * struct refnpu_tensor_nhwc - strided NHWC view of device memory
 * @va: device VA of element [0][0][0][0]; aligned to the element size
 * @pitch_h: bytes between consecutive rows (h); each row is W*C packed
 *           elements; at least W*C*esize when H > 1
 * @pitch_n: bytes between consecutive images (n); at least
 *           (H - 1) * pitch_h + W*C*esize when N > 1
 */
struct refnpu_tensor_nhwc {
	__u64 va;
	__u64 pitch_h;
	__u64 pitch_n;
};

/* NOP: no operands; may carry no flags. */
struct refnpu_cmd_nop {
	struct refnpu_cmd_hdr hdr;
};

#define REFNPU_CMD_NOP_SIZE		8

/**
 * struct refnpu_cmd_copy - 2-D byte copy, dst[r][0..row_bytes) = src[r][..]
 * @hdr: header, opcode REFNPU_OP_COPY, no flags
 * @src: source rows
 * @dst: destination rows
 * @rows: number of rows
 * @row_bytes: bytes per row
 * Overlapping src and dst give an undefined result (but no fault beyond
 * those of the accesses themselves).
 */
struct refnpu_cmd_copy {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d src;
	struct refnpu_tensor2d dst;
	__u32 rows;
	__u32 row_bytes;
};

#define REFNPU_CMD_COPY_SIZE		48

/**
 * struct refnpu_cmd_fill - 2-D pattern fill
 * @hdr: header, opcode REFNPU_OP_FILL, no flags
 * @dst: destination rows
 * @rows: number of rows
 * @row_bytes: bytes per row; a multiple of @pattern_bytes
 * @pattern: fill value; its low @pattern_bytes bytes are stored repeatedly
 *           (little-endian)
 * @pattern_bytes: 1, 2, 4 or 8; dst.va and dst.pitch must be multiples
 * @rsvd: must be zero
 */
struct refnpu_cmd_fill {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d dst;
	__u32 rows;
	__u32 row_bytes;
	__u64 pattern;
	__u32 pattern_bytes;
	__u32 rsvd;
};

#define REFNPU_CMD_FILL_SIZE		48

/* GEMM flags (hdr.flags) */
#define REFNPU_GEMM_F_BIAS		REFNPU_BIT(0)
#define REFNPU_GEMM_F_RELU		REFNPU_BIT(1)
#define REFNPU_GEMM_F_VALID_MASK	(REFNPU_GEMM_F_BIAS | REFNPU_GEMM_F_RELU)

/**
 * struct refnpu_cmd_gemm - C[m][n] = act(sum_k A[m][k] * B[k][n] + bias[n])
 * @hdr: header, opcode REFNPU_OP_GEMM, flags REFNPU_GEMM_F_*
 * @a: M x K, @in_dtype
 * @b: K x N, @in_dtype
 * @c: M x N, @out_dtype; must not overlap A, B or bias
 * @bias_va: N contiguous elements (fp32 for float GEMM, int32 for int8),
 *           used when REFNPU_GEMM_F_BIAS
 * @m: rows of A and C
 * @n: columns of B and C
 * @k: inner dimension (0 is allowed: C = act(bias or 0))
 * @in_dtype: FP32, FP16, BF16 or INT8
 * @out_dtype: FP32/FP16/BF16 for float inputs; INT32 or INT8 for INT8
 * @rq_multiplier: INT8 output: requantisation multiplier, in [0, 2^31)
 * @rq_shift: INT8 output: right shift, in [0, 63]
 * @rq_zero_point: INT8 output: added after scaling, in [-128, 127]
 * Fields that do not apply to the dtypes must be zero.
 */
struct refnpu_cmd_gemm {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d a;
	struct refnpu_tensor2d b;
	struct refnpu_tensor2d c;
	__u64 bias_va;
	__u32 m;
	__u32 n;
	__u32 k;
	__u32 in_dtype;
	__u32 out_dtype;
	__s32 rq_multiplier;
	__u32 rq_shift;
	__s32 rq_zero_point;
};

#define REFNPU_CMD_GEMM_SIZE		96
#define REFNPU_RQ_SHIFT_MAX		63

/*
 * Performance contract: an implementation may execute FP32-in/FP32-out
 * GEMM with a faster method (blocking, vectorisation, FMA, host BLAS)
 * whose every element c' satisfies, against the reference result c:
 *   |c' - c| <= REFNPU_GEMM_TOL_FACTOR * (k + 1) * 2^-24 *
 *               (sum_k |A[m][k] * B[k][n]| + |bias[n]|) + REFNPU_GEMM_TOL_ABS
 * (before the ReLU, which is monotonic so the bound carries over), where
 * the sum is exact; NaN results must be NaN and infinities must match.
 * REFNPU_GEMM_TOL_ABS is FLT_MIN as an IEEE bit pattern (0x00800000).
 */
#define REFNPU_GEMM_TOL_FACTOR		2
#define REFNPU_GEMM_TOL_ABS_BITS	0x00800000U

/* EWISE operations */
#define REFNPU_EWISE_ADD		0
#define REFNPU_EWISE_SUB		1
#define REFNPU_EWISE_MUL		2
#define REFNPU_EWISE_MAX		3
#define REFNPU_EWISE_MIN		4
#define REFNPU_EWISE_COUNT		5

/* Broadcast of the second operand B */
#define REFNPU_BCAST_NONE		0	/* B is rows x cols */
#define REFNPU_BCAST_ROW		1	/* B is 1 x cols, reused per row */
#define REFNPU_BCAST_COL		2	/* B is rows x 1: B[r] at va+r*pitch */
#define REFNPU_BCAST_SCALAR		3	/* B is one element */
#define REFNPU_BCAST_COUNT		4

/**
 * struct refnpu_cmd_ewise - out[r][c] = op(a[r][c], b[bcast(r, c)])
 * @hdr: header, opcode REFNPU_OP_EWISE, no flags
 * @a: rows x cols
 * @b: shape per @bcast
 * @out: rows x cols; may be exactly A or B (same va and pitch)
 * @rows: rows
 * @cols: columns
 * @op: REFNPU_EWISE_*
 * @bcast: REFNPU_BCAST_*
 * @dtype: REFNPU_DTYPE_FP32
 * @rsvd: must be zero
 */
struct refnpu_cmd_ewise {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d a;
	struct refnpu_tensor2d b;
	struct refnpu_tensor2d out;
	__u32 rows;
	__u32 cols;
	__u32 op;
	__u32 bcast;
	__u32 dtype;
	__u32 rsvd;
};

#define REFNPU_CMD_EWISE_SIZE		80

/* ACT functions */
#define REFNPU_ACT_RELU			0
#define REFNPU_ACT_GELU			1	/* x * Phi(x), erf form */
#define REFNPU_ACT_GELU_TANH		2	/* tanh approximation */
#define REFNPU_ACT_SIGMOID		3
#define REFNPU_ACT_TANH			4
#define REFNPU_ACT_COUNT		5

/**
 * struct refnpu_cmd_act - out = f(src), elementwise
 * @hdr: header, opcode REFNPU_OP_ACT, no flags
 * @src: rows x cols
 * @dst: rows x cols; may be exactly src
 * @rows: rows
 * @cols: columns
 * @func: REFNPU_ACT_*
 * @dtype: REFNPU_DTYPE_FP32
 */
struct refnpu_cmd_act {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d src;
	struct refnpu_tensor2d dst;
	__u32 rows;
	__u32 cols;
	__u32 func;
	__u32 dtype;
};

#define REFNPU_CMD_ACT_SIZE		56

/**
 * struct refnpu_cmd_softmax - row-wise softmax
 * @hdr: header, opcode REFNPU_OP_SOFTMAX, no flags
 * @src: rows x cols
 * @dst: rows x cols; may be exactly src
 * @rows: rows
 * @cols: columns
 * @dtype: REFNPU_DTYPE_FP32
 * @rsvd: must be zero
 */
struct refnpu_cmd_softmax {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d src;
	struct refnpu_tensor2d dst;
	__u32 rows;
	__u32 cols;
	__u32 dtype;
	__u32 rsvd;
};

#define REFNPU_CMD_SOFTMAX_SIZE		56

/* LAYERNORM flags (hdr.flags) */
#define REFNPU_LN_F_GAMMA		REFNPU_BIT(0)
#define REFNPU_LN_F_BETA		REFNPU_BIT(1)
#define REFNPU_LN_F_VALID_MASK		(REFNPU_LN_F_GAMMA | REFNPU_LN_F_BETA)

/**
 * struct refnpu_cmd_layernorm - row-wise layer normalisation
 * @hdr: header, opcode REFNPU_OP_LAYERNORM, flags REFNPU_LN_F_*
 * @src: rows x cols
 * @dst: rows x cols; may be exactly src
 * @gamma_va: cols contiguous scale values (REFNPU_LN_F_GAMMA)
 * @beta_va: cols contiguous offsets (REFNPU_LN_F_BETA)
 * @rows: rows
 * @cols: columns
 * @eps_bits: epsilon, IEEE fp32 bit pattern; finite and >= 0
 * @dtype: REFNPU_DTYPE_FP32
 */
struct refnpu_cmd_layernorm {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor2d src;
	struct refnpu_tensor2d dst;
	__u64 gamma_va;
	__u64 beta_va;
	__u32 rows;
	__u32 cols;
	__u32 eps_bits;
	__u32 dtype;
};

#define REFNPU_CMD_LAYERNORM_SIZE	72

/* CONV2D flags (hdr.flags) */
#define REFNPU_CONV_F_BIAS		REFNPU_BIT(0)
#define REFNPU_CONV_F_RELU		REFNPU_BIT(1)
#define REFNPU_CONV_F_VALID_MASK	(REFNPU_CONV_F_BIAS | REFNPU_CONV_F_RELU)

/**
 * struct refnpu_cmd_conv2d - 2-D convolution, NHWC input/output, HWIO filter
 * @hdr: header, opcode REFNPU_OP_CONV2D, flags REFNPU_CONV_F_*
 * @in: N x H x W x C
 * @out: N x OH x OW x OC, OH/OW as defined below; must not overlap inputs
 * @filter: KH*KW*C rows of OC elements; row (kh*KW + kw)*C + c holds
 *          W[kh][kw][c][0..OC)
 * @bias_va: OC contiguous fp32 values (REFNPU_CONV_F_BIAS)
 * @n: batch
 * @h: input height
 * @w: input width
 * @c: input channels
 * @oc: output channels
 * @kh: kernel height (>= 1)
 * @kw: kernel width (>= 1)
 * @stride_h: vertical stride (>= 1)
 * @stride_w: horizontal stride (>= 1)
 * @dil_h: vertical dilation (>= 1)
 * @dil_w: horizontal dilation (>= 1)
 * @pad_top: zero rows above
 * @pad_bottom: zero rows below
 * @pad_left: zero columns left
 * @pad_right: zero columns right
 * @dtype: REFNPU_DTYPE_FP32
 *
 * OH = (H + pad_top + pad_bottom - (dil_h * (KH - 1) + 1)) / stride_h + 1
 * OW = (W + pad_left + pad_right - (dil_w * (KW - 1) + 1)) / stride_w + 1
 * (integer division); the subtraction must not be negative.
 */
struct refnpu_cmd_conv2d {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor_nhwc in;
	struct refnpu_tensor_nhwc out;
	struct refnpu_tensor2d filter;
	__u64 bias_va;
	__u32 n;
	__u32 h;
	__u32 w;
	__u32 c;
	__u32 oc;
	__u32 kh;
	__u32 kw;
	__u32 stride_h;
	__u32 stride_w;
	__u32 dil_h;
	__u32 dil_w;
	__u32 pad_top;
	__u32 pad_bottom;
	__u32 pad_left;
	__u32 pad_right;
	__u32 dtype;
};

#define REFNPU_CMD_CONV2D_SIZE		144

/* POOL2D modes */
#define REFNPU_POOL_MAX			0
#define REFNPU_POOL_AVG			1	/* divides by valid taps */
#define REFNPU_POOL_COUNT		2

/**
 * struct refnpu_cmd_pool2d - 2-D max/average pooling, NHWC
 * @hdr: header, opcode REFNPU_OP_POOL2D, no flags
 * @in: N x H x W x C
 * @out: N x OH x OW x C (OH/OW as for conv2d with dilation 1)
 * @n: batch
 * @h: input height
 * @w: input width
 * @c: channels
 * @kh: window height (>= 1)
 * @kw: window width (>= 1)
 * @stride_h: vertical stride (>= 1)
 * @stride_w: horizontal stride (>= 1)
 * @pad_top: padding above, < kh
 * @pad_bottom: padding below, < kh
 * @pad_left: padding left, < kw
 * @pad_right: padding right, < kw
 * @mode: REFNPU_POOL_*
 * @dtype: REFNPU_DTYPE_FP32
 */
struct refnpu_cmd_pool2d {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_tensor_nhwc in;
	struct refnpu_tensor_nhwc out;
	__u32 n;
	__u32 h;
	__u32 w;
	__u32 c;
	__u32 kh;
	__u32 kw;
	__u32 stride_h;
	__u32 stride_w;
	__u32 pad_top;
	__u32 pad_bottom;
	__u32 pad_left;
	__u32 pad_right;
	__u32 mode;
	__u32 dtype;
};

#define REFNPU_CMD_POOL2D_SIZE		112

/* Largest command defined by this version (bytes) */
#define REFNPU_CMD_MAX_SIZE		REFNPU_CMD_CONV2D_SIZE

#endif /* REFNPU_HW_H */
