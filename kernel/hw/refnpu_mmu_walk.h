/* SPDX-License-Identifier: MIT */
/*
 * refnpu device front end: what the device checks and translates before a
 * command runs (ring configuration, job descriptors, context entries) and
 * its MMU: the page-table walk of Documentation/hardware.rst ("Device
 * MMU") and a small software TLB.
 *
 * Freestanding C like the compute engine: no libc, every table read goes
 * through a callback that may fail.  The QEMU model and the in-kernel
 * virtual device both compile this file, so the walk, its error codes and
 * its caching exist once.
 *
 * Structures passed in (descriptors, context entries) are in CPU byte
 * order: the host converts them from little-endian after its DMA read.
 * The read64 callback returns table entries in CPU byte order too.
 *
 * Copyright (c) 2025 The refnpu authors
 */
#ifndef REFNPU_MMU_WALK_H
#define REFNPU_MMU_WALK_H

#include "refnpu_hw.h"

#ifndef __KERNEL__
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * typedef refnpu_mmu_read64_t - read one page-table entry
 * @opaque: the host's context, as passed to the walk
 * @addr: bus address of the entry (8-byte aligned)
 * @val: receives the entry, in CPU byte order
 *
 * Return: 0 on success, non-zero when the read failed (bus error, system
 * IOMMU fault); the walk then fails with REFNPU_ERR_MMU_WALK.
 */
typedef int (*refnpu_mmu_read64_t)(void *opaque, __u64 addr, __u64 *val);

/**
 * struct refnpu_mmu_leaf - the leaf entry a walk ended on
 * @pte: the entry itself
 * @page: bus address of the page it maps
 * @size: REFNPU_PAGE_SIZE or REFNPU_HUGE_PAGE_SIZE
 * @level: 0 for a 4 KiB leaf, 1 for a 2 MiB leaf
 */
struct refnpu_mmu_leaf {
	__u64 pte;
	__u64 page;
	__u64 size;
	__u32 level;
};

/* Entries of a refnpu_tlb: direct-mapped, indexed by 4 KiB page number. */
#define REFNPU_TLB_ENTRIES		64

/**
 * struct refnpu_tlb_entry - a cached translation
 * @va: device VA of the page
 * @mask: page size - 1
 * @pa: bus address of the page
 * @ctx: context id the translation belongs to
 * @perm: REFNPU_PTE_READ and REFNPU_PTE_WRITE bits of the leaf
 * @valid: the entry holds a translation
 */
struct refnpu_tlb_entry {
	__u64 va;
	__u64 mask;
	__u64 pa;
	__u32 ctx;
	__u8 perm;
	bool valid;
};

/**
 * struct refnpu_tlb - translations cached by one walker (a queue)
 * @gen: the host's invalidation generation these entries belong to
 * @entries: the cached translations
 *
 * Not thread safe: one walker owns it.  Invalidation is by generation:
 * the host bumps a counter on every invalidation (TLB_INVALIDATE, context
 * table change, reset) and passes its current value to each translation,
 * which flushes the TLB when it changed.
 */
struct refnpu_tlb {
	__u32 gen;
	struct refnpu_tlb_entry entries[REFNPU_TLB_ENTRIES];
};

bool refnpu_ring_valid(__u64 ring_base, __u32 ring_size, __u32 tail);
__u32 refnpu_job_desc_check(const struct refnpu_job_desc *d);
__u32 refnpu_ctx_entry_check(const struct refnpu_ctx_entry *ce);

__u32 refnpu_mmu_walk(__u64 pt_root, __u64 va, refnpu_mmu_read64_t read64,
		      void *opaque, struct refnpu_mmu_leaf *leaf);
__u32 refnpu_mmu_check_perm(__u64 pte, bool write);

void refnpu_tlb_flush(struct refnpu_tlb *tlb);
__u32 refnpu_mmu_translate(struct refnpu_tlb *tlb, __u32 gen, __u32 ctx,
			   __u64 pt_root, __u64 va, bool write,
			   refnpu_mmu_read64_t read64, void *opaque,
			   __u64 *pa, __u64 *room);

#ifdef __cplusplus
}
#endif

#endif /* REFNPU_MMU_WALK_H */
