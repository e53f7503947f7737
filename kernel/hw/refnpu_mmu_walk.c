// SPDX-License-Identifier: MIT
/*
 * refnpu device front end: ring, descriptor and context checks, the device
 * MMU's page-table walk and its software TLB.  See refnpu_mmu_walk.h and
 * Documentation/hardware.rst.
 *
 * Copyright (c) 2025 The refnpu authors
 */

#include "refnpu_mmu_walk.h"

/**
 * refnpu_ring_valid() - whether a queue's ring registers can be used
 * @ring_base: REFNPU_Q_RING_BASE
 * @ring_size: REFNPU_Q_RING_SIZE
 * @tail: REFNPU_Q_TAIL
 *
 * An enabled queue whose ring is not valid halts with REFNPU_ERR_RING.
 *
 * Return: true when the size is a power of two in range, the base is
 * aligned, the ring does not wrap the bus address space and the tail is
 * inside the ring.
 */
bool refnpu_ring_valid(__u64 ring_base, __u32 ring_size, __u32 tail)
{
	return ring_size >= REFNPU_RING_MIN_ENTRIES &&
	       ring_size <= REFNPU_RING_MAX_ENTRIES &&
	       !(ring_size & (ring_size - 1)) &&
	       !(ring_base % REFNPU_RING_ALIGN) &&
	       (__u64)ring_size * REFNPU_JOB_DESC_SIZE - 1 <= ~0ULL - ring_base &&
	       tail < ring_size;
}

/**
 * refnpu_job_desc_check() - the descriptor checks that fail a job
 * @d: descriptor, in CPU byte order
 *
 * The completion address is checked before, by the host: a misaligned
 * one halts the queue instead of failing the job.
 *
 * Return: REFNPU_ERR_NONE, or REFNPU_ERR_BAD_DESCRIPTOR for unknown flags,
 * non-zero reserved words, a misaligned command buffer or one that is too
 * large.
 */
__u32 refnpu_job_desc_check(const struct refnpu_job_desc *d)
{
	if ((d->flags & ~REFNPU_JOB_F_VALID_MASK) || d->rsvd[0] ||
	    d->rsvd[1] || d->rsvd[2] || d->cmd_va % REFNPU_CMD_ALIGN ||
	    d->cmd_size % REFNPU_CMD_ALIGN ||
	    d->cmd_size > REFNPU_CMDBUF_MAX_SIZE)
		return REFNPU_ERR_BAD_DESCRIPTOR;
	return REFNPU_ERR_NONE;
}

/**
 * refnpu_ctx_entry_check() - whether a context-table entry can be used
 * @ce: entry, in CPU byte order
 *
 * Return: REFNPU_ERR_NONE, or REFNPU_ERR_INVALID_CONTEXT for an entry
 * without REFNPU_CTX_F_VALID, with other flags, non-zero reserved bits or
 * a misaligned page-table root.
 */
__u32 refnpu_ctx_entry_check(const struct refnpu_ctx_entry *ce)
{
	if (!(ce->flags & REFNPU_CTX_F_VALID) ||
	    (ce->flags & ~REFNPU_CTX_F_VALID) || ce->rsvd ||
	    (ce->pt_root & (REFNPU_PAGE_SIZE - 1)))
		return REFNPU_ERR_INVALID_CONTEXT;
	return REFNPU_ERR_NONE;
}

/**
 * refnpu_mmu_walk() - walk a context's page tables for one device VA
 * @pt_root: bus address of the level-3 table
 * @va: device VA
 * @read64: reads one entry
 * @opaque: passed to @read64
 * @leaf: receives the leaf entry on success
 *
 * Permissions are not checked: see refnpu_mmu_check_perm().
 *
 * Return: REFNPU_ERR_NONE; REFNPU_ERR_MMU_UNMAPPED for a VA at or above
 * REFNPU_VA_LIMIT or an entry without REFNPU_PTE_VALID;
 * REFNPU_ERR_MMU_WALK when a table read fails, or for an entry with
 * reserved bits, a misaligned 2 MiB leaf or a leaf above level 1.
 */
__u32 refnpu_mmu_walk(__u64 pt_root, __u64 va, refnpu_mmu_read64_t read64,
		      void *opaque, struct refnpu_mmu_leaf *leaf)
{
	__u64 table = pt_root, pte = 0;
	int level;

	if (va >= REFNPU_VA_LIMIT)
		return REFNPU_ERR_MMU_UNMAPPED;

	for (level = REFNPU_PT_LEVELS - 1; level >= 0; level--) {
		if (read64(opaque, table + REFNPU_PT_INDEX(va, level) *
			   REFNPU_PTE_SIZE, &pte))
			return REFNPU_ERR_MMU_WALK;
		if (!(pte & REFNPU_PTE_VALID))
			return REFNPU_ERR_MMU_UNMAPPED;
		if (pte & REFNPU_PTE_RSVD_MASK)
			return REFNPU_ERR_MMU_WALK;
		if (!(pte & REFNPU_PTE_LEAF) && level > 0) {
			table = pte & REFNPU_PTE_ADDR_MASK;
			continue;
		}
		if (level > 1)
			return REFNPU_ERR_MMU_WALK;
		if (level == 1 &&
		    (pte & REFNPU_PTE_ADDR_MASK & ~REFNPU_PTE_HUGE_ADDR_MASK))
			return REFNPU_ERR_MMU_WALK;
		leaf->pte = pte;
		leaf->level = level;
		leaf->size = level ? REFNPU_HUGE_PAGE_SIZE : REFNPU_PAGE_SIZE;
		leaf->page = pte & (level ? REFNPU_PTE_HUGE_ADDR_MASK :
				    REFNPU_PTE_ADDR_MASK);
		return REFNPU_ERR_NONE;
	}

	return REFNPU_ERR_MMU_WALK; /* not reached: level 0 is a leaf */
}

/**
 * refnpu_mmu_check_perm() - check an access against a leaf's permissions
 * @pte: leaf entry (or its READ and WRITE bits)
 * @write: the access is a write
 *
 * Return: REFNPU_ERR_NONE, REFNPU_ERR_MMU_READ_PERM or
 * REFNPU_ERR_MMU_WRITE_PERM.
 */
__u32 refnpu_mmu_check_perm(__u64 pte, bool write)
{
	if (write)
		return pte & REFNPU_PTE_WRITE ? REFNPU_ERR_NONE :
		       REFNPU_ERR_MMU_WRITE_PERM;
	return pte & REFNPU_PTE_READ ? REFNPU_ERR_NONE :
	       REFNPU_ERR_MMU_READ_PERM;
}

/**
 * refnpu_tlb_flush() - drop every cached translation
 * @tlb: TLB
 */
void refnpu_tlb_flush(struct refnpu_tlb *tlb)
{
	unsigned int i;

	for (i = 0; i < REFNPU_TLB_ENTRIES; i++)
		tlb->entries[i].valid = false;
}

/**
 * refnpu_mmu_translate() - translate a device VA, through a TLB
 * @tlb: the walker's TLB, or NULL to walk on every access
 * @gen: the host's current invalidation generation
 * @ctx: context id of the job
 * @pt_root: bus address of the context's level-3 table
 * @va: device VA
 * @write: the access is a write
 * @read64: reads one table entry
 * @opaque: passed to @read64
 * @pa: receives the bus address of @va
 * @room: receives the bytes from @va to the end of its page
 *
 * A TLB hit uses the cached translation and permissions without reading
 * the tables: a driver that changes an entry without invalidating keeps
 * getting the old translation, as on real hardware. Failed walks are not
 * cached.
 *
 * Return: REFNPU_ERR_NONE or the error of refnpu_mmu_walk() or
 * refnpu_mmu_check_perm().
 */
__u32 refnpu_mmu_translate(struct refnpu_tlb *tlb, __u32 gen, __u32 ctx,
			   __u64 pt_root, __u64 va, bool write,
			   refnpu_mmu_read64_t read64, void *opaque,
			   __u64 *pa, __u64 *room)
{
	struct refnpu_tlb_entry *e, walked;
	struct refnpu_mmu_leaf leaf;
	__u32 st;

	e = &walked;
	if (tlb) {
		if (tlb->gen != gen) {
			refnpu_tlb_flush(tlb);
			tlb->gen = gen;
		}
		e = &tlb->entries[(va >> REFNPU_PAGE_SHIFT) % REFNPU_TLB_ENTRIES];
	}

	if (!tlb || !e->valid || e->ctx != ctx || (va & ~e->mask) != e->va) {
		st = refnpu_mmu_walk(pt_root, va, read64, opaque, &leaf);
		if (st)
			return st;
		e->mask = leaf.size - 1;
		e->va = va & ~e->mask;
		e->pa = leaf.page;
		e->ctx = ctx;
		e->perm = leaf.pte & (REFNPU_PTE_READ | REFNPU_PTE_WRITE);
		e->valid = true;
	}

	st = refnpu_mmu_check_perm(e->perm, write);
	if (st)
		return st;
	*pa = e->pa + (va & e->mask);
	*room = e->mask + 1 - (va & e->mask);
	return REFNPU_ERR_NONE;
}
