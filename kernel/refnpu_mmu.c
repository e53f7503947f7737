// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Device MMU: per-context address spaces.
 *
 * Every open file owns a context: a hardware context id, a drm_mm
 * allocator of device virtual addresses and a four-level page-table tree
 * in the format of refnpu_hw.h, built in bus memory from the DMA addresses
 * of each BO (dma_map_sgtable()), so that a system IOMMU translates the
 * device's table walks and data accesses in turn. The context table, one
 * entry per context id, points the device at each tree.
 *
 * Nothing here touches a register: TLB invalidation and the context table
 * base go through the backend.
 */

#include <linux/dma-mapping.h>
#include <linux/overflow.h>
#include <linux/scatterlist.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include <drm/drm_drv.h>
#include <drm/drm_managed.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_gem.h"
#include "refnpu_hw_ops.h"
#include "refnpu_job.h"
#include "refnpu_mmu.h"

#define REFNPU_PT_ROOT_LEVEL	(REFNPU_PT_LEVELS - 1)
#define REFNPU_PT_HUGE_LEVEL	1

static struct refnpu_pt *refnpu_pt_alloc(struct refnpu_pgtable *pgt,
					 unsigned int level)
{
	struct refnpu_pt *pt;

	pt = kzalloc(struct_size(pt, children, level ? REFNPU_PT_ENTRIES : 0),
		     GFP_KERNEL);
	if (!pt)
		return NULL;

	pt->entries = dma_alloc_coherent(pgt->dev, REFNPU_PAGE_SIZE, &pt->dma,
					 GFP_KERNEL);
	if (!pt->entries) {
		kfree(pt);
		return NULL;
	}
	INIT_LIST_HEAD(&pt->free_link);
	pgt->tables++;

	return pt;
}

static void __refnpu_pt_free(struct device *dev, struct refnpu_pt *pt)
{
	dma_free_coherent(dev, REFNPU_PAGE_SIZE, pt->entries, pt->dma);
	kfree(pt);
}

static void refnpu_pt_free(struct refnpu_pgtable *pgt, struct refnpu_pt *pt)
{
	__refnpu_pt_free(pgt->dev, pt);
	pgt->tables--;
}

static void refnpu_pt_free_tree(struct refnpu_pgtable *pgt,
				struct refnpu_pt *pt, unsigned int level)
{
	unsigned int i;

	if (level) {
		for (i = 0; i < REFNPU_PT_ENTRIES; i++)
			if (pt->children[i])
				refnpu_pt_free_tree(pgt, pt->children[i],
						    level - 1);
	}
	refnpu_pt_free(pgt, pt);
}

static void refnpu_pte_write(struct refnpu_pt *pt, unsigned int idx, u64 pte)
{
	WRITE_ONCE(pt->entries[idx], cpu_to_le64(pte));
}

static u64 refnpu_pte_read(struct refnpu_pt *pt, unsigned int idx)
{
	return le64_to_cpu(READ_ONCE(pt->entries[idx]));
}

/**
 * refnpu_pgtable_init() - set up an empty page-table tree
 * @pgt: tree to set up
 * @dev: device whose DMA API allocates the tables
 * @huge: map 2 MiB pages where virtual and bus addresses allow it
 *
 * Return: 0 or -ENOMEM.
 */
int refnpu_pgtable_init(struct refnpu_pgtable *pgt, struct device *dev,
			bool huge)
{
	pgt->dev = dev;
	pgt->huge = huge;
	pgt->tables = 0;
	pgt->root = refnpu_pt_alloc(pgt, REFNPU_PT_ROOT_LEVEL);

	return pgt->root ? 0 : -ENOMEM;
}

/**
 * refnpu_pgtable_fini() - free a page-table tree
 * @pgt: tree to free; the device must no longer walk it
 */
void refnpu_pgtable_fini(struct refnpu_pgtable *pgt)
{
	if (pgt->root)
		refnpu_pt_free_tree(pgt, pgt->root, REFNPU_PT_ROOT_LEVEL);
	pgt->root = NULL;
	WARN_ON(pgt->tables);
}

static void refnpu_pt_take_tree(struct refnpu_pt *pt, unsigned int level,
				struct list_head *list)
{
	unsigned int i;

	if (level) {
		for (i = 0; i < REFNPU_PT_ENTRIES; i++)
			if (pt->children[i])
				refnpu_pt_take_tree(pt->children[i], level - 1,
						    list);
	}
	list_add_tail(&pt->free_link, list);
}

/**
 * refnpu_pgtable_take_tree() - detach every table of a tree, unfreed
 * @pgt: tree; left empty, its tables still counted
 * @list: gets the tables, for refnpu_pgtable_free_tables() or the
 *	device's quarantine
 */
void refnpu_pgtable_take_tree(struct refnpu_pgtable *pgt,
			      struct list_head *list)
{
	if (pgt->root)
		refnpu_pt_take_tree(pgt->root, REFNPU_PT_ROOT_LEVEL, list);
	pgt->root = NULL;
}

/*
 * Write one leaf entry at @leaf_level, allocating the tables above it.
 * Fails with -EEXIST when the slot (or a 2 MiB page covering it) is
 * already mapped, which means overlapping ranges: a driver bug.
 */
static int refnpu_pgtable_set(struct refnpu_pgtable *pgt, u64 va,
			      unsigned int leaf_level, u64 pte)
{
	struct refnpu_pt *pt = pgt->root;
	unsigned int level, idx;

	for (level = REFNPU_PT_ROOT_LEVEL; level > leaf_level; level--) {
		struct refnpu_pt *child;

		idx = REFNPU_PT_INDEX(va, level);
		child = pt->children[idx];
		if (!child) {
			if (refnpu_pte_read(pt, idx) & REFNPU_PTE_VALID)
				return -EEXIST; /* a 2 MiB page is there */
			child = refnpu_pt_alloc(pgt, level - 1);
			if (!child)
				return -ENOMEM;
			pt->children[idx] = child;
			refnpu_pte_write(pt, idx, (child->dma & REFNPU_PTE_ADDR_MASK) |
					 REFNPU_PTE_VALID);
			pt->used++;
		}
		pt = child;
	}

	idx = REFNPU_PT_INDEX(va, leaf_level);
	if (refnpu_pte_read(pt, idx) & REFNPU_PTE_VALID ||
	    (leaf_level && pt->children[idx]))
		return -EEXIST;
	refnpu_pte_write(pt, idx, pte);
	pt->used++;

	return 0;
}

/*
 * Clear [va, end) below @pt (a table of @level covering @va). Tables that
 * become empty are unlinked and queued on @freelist: the device may still
 * walk them until its TLB is invalidated.
 */
static void refnpu_pgtable_clear(struct refnpu_pgtable *pgt,
				 struct refnpu_pt *pt, unsigned int level,
				 u64 va, u64 end, struct list_head *freelist)
{
	u64 span = 1ULL << REFNPU_PT_SHIFT(level);

	while (va < end) {
		unsigned int idx = REFNPU_PT_INDEX(va, level);
		u64 next = min((va | (span - 1)) + 1, end);
		struct refnpu_pt *child = level ? pt->children[idx] : NULL;

		if (child) {
			refnpu_pgtable_clear(pgt, child, level - 1, va, next,
					     freelist);
			if (!child->used) {
				pt->children[idx] = NULL;
				refnpu_pte_write(pt, idx, 0);
				pt->used--;
				list_add_tail(&child->free_link, freelist);
			}
		} else if (refnpu_pte_read(pt, idx) & REFNPU_PTE_VALID) {
			/* A leaf: only whole pages are ever unmapped. */
			WARN_ON(va & (span - 1) || next - va != span);
			refnpu_pte_write(pt, idx, 0);
			pt->used--;
		}
		va = next;
	}
}

/**
 * refnpu_pgtable_unmap() - remove the translations of a range
 * @pgt: tree
 * @va: first address, page aligned
 * @size: size in bytes, page aligned
 * @freelist: list that receives the tables that became empty; pass it to
 *	refnpu_pgtable_free_tables() once the device's TLB was invalidated
 */
void refnpu_pgtable_unmap(struct refnpu_pgtable *pgt, u64 va, u64 size,
			  struct list_head *freelist)
{
	if (!size)
		return;
	refnpu_pgtable_clear(pgt, pgt->root, REFNPU_PT_ROOT_LEVEL, va,
			     va + size, freelist);
}

/**
 * refnpu_pgtable_free_tables() - free tables removed by an unmap
 * @pgt: tree the tables belonged to
 * @freelist: list filled by refnpu_pgtable_unmap()
 */
void refnpu_pgtable_free_tables(struct refnpu_pgtable *pgt,
				struct list_head *freelist)
{
	struct refnpu_pt *pt, *tmp;

	list_for_each_entry_safe(pt, tmp, freelist, free_link) {
		list_del(&pt->free_link);
		refnpu_pt_free(pgt, pt);
	}
}

/*
 * Map a bus-contiguous range as far as possible; *@done receives how many
 * bytes from @va are mapped, also on failure, when the caller unmaps them.
 */
static int __refnpu_pgtable_map(struct refnpu_pgtable *pgt, u64 va,
				dma_addr_t addr, u64 size, bool writable,
				u64 *done)
{
	u64 prot = REFNPU_PTE_VALID | REFNPU_PTE_READ |
		   (writable ? REFNPU_PTE_WRITE : 0);
	u64 end;
	int ret;

	*done = 0;
	if (!IS_ALIGNED(va | addr | size, REFNPU_PAGE_SIZE) || !size ||
	    check_add_overflow(va, size, &end) || end > REFNPU_VA_LIMIT ||
	    (u64)addr + size - 1 > REFNPU_PTE_ADDR_MASK)
		return -EINVAL;

	while (*done < size) {
		u64 v = va + *done, a = addr + *done;

		if (pgt->huge && size - *done >= REFNPU_HUGE_PAGE_SIZE &&
		    IS_ALIGNED(v | a, REFNPU_HUGE_PAGE_SIZE)) {
			ret = refnpu_pgtable_set(pgt, v, REFNPU_PT_HUGE_LEVEL,
						 (a & REFNPU_PTE_HUGE_ADDR_MASK) |
						 prot | REFNPU_PTE_LEAF);
			if (ret)
				return ret;
			*done += REFNPU_HUGE_PAGE_SIZE;
		} else {
			ret = refnpu_pgtable_set(pgt, v, 0,
						 (a & REFNPU_PTE_ADDR_MASK) | prot);
			if (ret)
				return ret;
			*done += REFNPU_PAGE_SIZE;
		}
	}

	return 0;
}

/**
 * refnpu_pgtable_map() - map a bus-contiguous range of a tree no device uses
 * @pgt: tree
 * @va: device virtual address, page aligned
 * @addr: bus address, page aligned
 * @size: size in bytes, page aligned
 * @writable: allow device writes
 *
 * Uses 2 MiB pages wherever @va and @addr are both 2 MiB aligned and at
 * least 2 MiB remain. On failure nothing of the range stays mapped, and
 * the tables that became empty are freed at once: only for a tree that no
 * device can walk (a context's tree is mapped by refnpu_pgtable_map_sgt(),
 * whose caller invalidates first).
 *
 * Return: 0, -EINVAL for unaligned or out-of-range arguments, -EEXIST when
 * part of the range is already mapped, -ENOMEM.
 */
int refnpu_pgtable_map(struct refnpu_pgtable *pgt, u64 va, dma_addr_t addr,
		       u64 size, bool writable)
{
	LIST_HEAD(freelist);
	u64 done;
	int ret;

	ret = __refnpu_pgtable_map(pgt, va, addr, size, writable, &done);
	if (ret) {
		refnpu_pgtable_unmap(pgt, va, done, &freelist);
		refnpu_pgtable_free_tables(pgt, &freelist);
	}

	return ret;
}

/**
 * refnpu_pgtable_map_sgt() - map the DMA segments of a scatter table
 * @pgt: tree
 * @va: device virtual address of the first segment, page aligned
 * @sgt: table mapped with dma_map_sgtable()
 * @size: bytes to map; the segments must cover it
 * @writable: allow device writes
 * @freelist: receives, on failure, the tables that became empty
 *
 * On failure nothing of the range stays mapped. A job of the same context
 * may have walked the new tables meanwhile, so the tables on @freelist are
 * the caller's to free once the device's TLB was invalidated
 * (refnpu_pgtable_free_tables()).
 *
 * Return: 0, -EINVAL for segments that are not page aligned or do not
 * cover @size, -EEXIST, -ENOMEM.
 */
int refnpu_pgtable_map_sgt(struct refnpu_pgtable *pgt, u64 va,
			   struct sg_table *sgt, u64 size, bool writable,
			   struct list_head *freelist)
{
	struct scatterlist *sg;
	u64 done = 0, seg;
	unsigned int i;
	int ret = 0;

	for_each_sgtable_dma_sg(sgt, sg, i) {
		u64 len = min_t(u64, sg_dma_len(sg), size - done);

		if (!len)
			break;
		if (!IS_ALIGNED(len, REFNPU_PAGE_SIZE)) {
			ret = -EINVAL;
			break;
		}
		ret = __refnpu_pgtable_map(pgt, va + done, sg_dma_address(sg),
					   len, writable, &seg);
		done += seg;
		if (ret)
			break;
	}
	if (!ret && done != size)
		ret = -EINVAL;

	if (ret)
		refnpu_pgtable_unmap(pgt, va, done, freelist);

	return ret;
}

/**
 * refnpu_pgtable_lookup() - translate like the device would
 * @pgt: tree
 * @va: device virtual address
 * @level: if not NULL, receives the level of the leaf entry
 *
 * Return: the leaf entry translating @va (REFNPU_PTE_* bits included), or
 * 0 when @va is unmapped.
 */
u64 refnpu_pgtable_lookup(struct refnpu_pgtable *pgt, u64 va,
			  unsigned int *level)
{
	struct refnpu_pt *pt = pgt->root;
	unsigned int l;

	if (va >= REFNPU_VA_LIMIT)
		return 0;

	for (l = REFNPU_PT_ROOT_LEVEL;; l--) {
		unsigned int idx = REFNPU_PT_INDEX(va, l);
		u64 pte = refnpu_pte_read(pt, idx);

		if (!(pte & REFNPU_PTE_VALID))
			return 0;
		if (!l || (l == REFNPU_PT_HUGE_LEVEL && (pte & REFNPU_PTE_LEAF))) {
			if (level)
				*level = l;
			return pte;
		}
		pt = pt->children[idx];
		if (!pt)
			return 0;
	}
}

/* Write a context-table entry; the table is gone after unplug. */
static void refnpu_ctx_entry_set(struct refnpu_device *rdev, u32 id,
				 dma_addr_t root)
{
	struct refnpu_ctx_entry *e;

	lockdep_assert_held(&rdev->ctx_lock);
	if (!rdev->ctx_table)
		return;
	e = &rdev->ctx_table[id];

	if (root) {
		WRITE_ONCE(e->pt_root, (__force u64)cpu_to_le64(root));
		dma_wmb();
		WRITE_ONCE(e->flags,
			   (__force u32)cpu_to_le32(REFNPU_CTX_F_VALID));
	} else {
		WRITE_ONCE(e->flags, 0);
		dma_wmb();
		WRITE_ONCE(e->pt_root, 0);
	}
}

/*
 * Invalidate a context's cached translations. Invalidations are
 * serialised: the device has one invalidation engine, and a second
 * request while one is in progress is not defined by the spec. Returns
 * with @rdev->tlb_lock held when the invalidation failed, so that the
 * caller quarantines what the device may still reach before anyone else
 * can see the invalidation as done (refnpu_mmu_quarantine()).
 */
static int refnpu_mmu_tlb_invalidate(struct refnpu_device *rdev, u32 id)
{
	int idx, ret;

	/*
	 * A removed device can no longer be asked to invalidate, but until
	 * refnpu_device_fini() stopped it, it still runs the jobs in its
	 * rings: what was unmapped meanwhile is quarantined like after a
	 * failed invalidation, and refnpu_mmu_fini() frees it once the device
	 * has stopped. Once stopped, it walks nothing any more.
	 */
	if (!drm_dev_enter(&rdev->drm, &idx)) {
		mutex_lock(&rdev->tlb_lock);
		if (rdev->hw_stopped) {
			mutex_unlock(&rdev->tlb_lock);
			return 0;
		}
		return -ENODEV;
	}
	/*
	 * Nor does a wedged one, cut off from memory (refnpu_wedge()): the
	 * reset that ends the wedge empties the TLB before the device can
	 * reach memory or run a job again, and what was unmapped before that
	 * is no longer in the page tables.
	 */
	if (READ_ONCE(rdev->wedged)) {
		drm_dev_exit(idx);
		return 0;
	}
	mutex_lock(&rdev->tlb_lock);
	ret = rdev->hw_ops->tlb_invalidate(rdev, id);
	drm_dev_exit(idx);
	if (!ret) {
		mutex_unlock(&rdev->tlb_lock);
		return 0;
	}

	atomic64_inc(&rdev->tlb_timeouts);
	refnpu_err_ratelimited(rdev, "TLB invalidation of context %u failed (%d): quarantining its memory until a device reset\n",
			       id, ret);
	return ret;
}

/*
 * Called with @rdev->tlb_lock held after a failed invalidation: keep the
 * page-table pages on @freelist (removed from @pgt), the BO of @map and
 * context id @id (when not 0) away from reuse until a device reset dropped
 * every cached translation, and ask for that reset. Drops the lock.
 */
static void refnpu_mmu_quarantine(struct refnpu_device *rdev,
				  struct refnpu_pgtable *pgt,
				  struct list_head *freelist,
				  struct refnpu_mapping *map, u32 id)
{
	struct refnpu_pt *pt;

	lockdep_assert_held(&rdev->tlb_lock);

	list_for_each_entry(pt, freelist, free_link)
		pgt->tables--;
	list_splice_tail_init(freelist, &rdev->tlb_quarantine.pts);
	if (map)
		list_add_tail(&map->link, &rdev->tlb_quarantine.maps);
	if (id)
		__set_bit(id, rdev->tlb_quarantine.ids);
	mutex_unlock(&rdev->tlb_lock);

	/* A removed device is not reset: its removal stops it. */
	if (!drm_dev_is_unplugged(&rdev->drm))
		refnpu_device_reset_async(rdev);
}

/* Move everything @from holds to @to; tlb_lock held. */
static void refnpu_quarantine_move(struct refnpu_quarantine *to,
				   struct refnpu_quarantine *from)
{
	list_splice_tail_init(&from->pts, &to->pts);
	list_splice_tail_init(&from->maps, &to->maps);
	bitmap_or(to->ids, to->ids, from->ids, REFNPU_NUM_CONTEXTS);
	bitmap_zero(from->ids, REFNPU_NUM_CONTEXTS);
}

/*
 * Free what failed invalidations kept, once the device dropped its TLB:
 * what device resets that succeeded covered (@tlb_released), or with @all,
 * after the device stopped for good, everything.
 */
static void refnpu_mmu_release_quarantine(struct refnpu_device *rdev, bool all)
{
	struct refnpu_mapping *map, *tmp_map;
	struct refnpu_quarantine q;
	struct refnpu_pt *pt, *tmp;
	unsigned int id;

	INIT_LIST_HEAD(&q.pts);
	INIT_LIST_HEAD(&q.maps);
	bitmap_zero(q.ids, REFNPU_NUM_CONTEXTS);

	mutex_lock(&rdev->tlb_lock);
	refnpu_quarantine_move(&q, &rdev->tlb_released);
	if (all) {
		refnpu_quarantine_move(&q, &rdev->tlb_resetting);
		refnpu_quarantine_move(&q, &rdev->tlb_quarantine);
	}
	for_each_set_bit(id, q.ids, REFNPU_NUM_CONTEXTS)
		ida_free(&rdev->ctx_ids, id);
	mutex_unlock(&rdev->tlb_lock);

	list_for_each_entry_safe(pt, tmp, &q.pts, free_link) {
		list_del(&pt->free_link);
		__refnpu_pt_free(rdev->drm.dev, pt);
	}
	list_for_each_entry_safe(map, tmp_map, &q.maps, link) {
		struct refnpu_ctx *ctx = map->ctx;

		list_del(&map->link);
		/* Its device address may be handed out again now. */
		mutex_lock(&ctx->vm_lock);
		if (drm_mm_node_allocated(&map->node))
			drm_mm_remove_node(&map->node);
		mutex_unlock(&ctx->vm_lock);
		drm_gem_object_put(&map->bo->base.base);
		kfree(map);
		refnpu_ctx_put(ctx);
	}
}

static void refnpu_mmu_release_work(struct work_struct *work)
{
	refnpu_mmu_release_quarantine(container_of(work, struct refnpu_device,
						   tlb_release_work), false);
}

/**
 * refnpu_mmu_reset_begin() - a device reset is about to drop the TLB
 * @rdev: device
 *
 * What failed TLB invalidations quarantined so far is what this reset
 * covers; what is quarantined from now on may have been cached after the
 * reset dropped the TLB, and waits for a reset of its own.
 */
void refnpu_mmu_reset_begin(struct refnpu_device *rdev)
{
	mutex_lock(&rdev->tlb_lock);
	refnpu_quarantine_move(&rdev->tlb_resetting, &rdev->tlb_quarantine);
	mutex_unlock(&rdev->tlb_lock);
}

/**
 * refnpu_mmu_reset_done() - a device reset dropped every cached translation
 * @rdev: device
 *
 * Frees, from &refnpu_wq, what failed TLB invalidations kept before
 * refnpu_mmu_reset_begin() (the caller is a reset, on the fence
 * signalling path, where nothing may be freed that takes BO locks). After
 * a failed reset it stays: the next reset's begin adds to it.
 */
void refnpu_mmu_reset_done(struct refnpu_device *rdev)
{
	mutex_lock(&rdev->tlb_lock);
	refnpu_quarantine_move(&rdev->tlb_released, &rdev->tlb_resetting);
	mutex_unlock(&rdev->tlb_lock);
	queue_work(refnpu_wq, &rdev->tlb_release_work);
}

static void refnpu_mmu_release(struct drm_device *drm, void *arg)
{
	struct refnpu_device *rdev = to_refnpu(drm);

	cancel_work_sync(&rdev->tlb_release_work);
	refnpu_mmu_release_quarantine(rdev, true);
	ida_destroy(&rdev->ctx_ids);
}

static void refnpu_mmu_free_ctx_table(struct refnpu_device *rdev)
{
	if (!rdev->ctx_table)
		return;
	dma_free_coherent(rdev->drm.dev,
			  REFNPU_NUM_CONTEXTS * sizeof(struct refnpu_ctx_entry),
			  rdev->ctx_table, rdev->ctx_table_dma);
	rdev->ctx_table = NULL;
}

/**
 * refnpu_mmu_init() - allocate the context table and program it
 * @rdev: device, after the backend's init
 *
 * Return: 0 or a negative errno.
 */
int refnpu_mmu_init(struct refnpu_device *rdev)
{
	struct drm_device *drm = &rdev->drm;
	int ret;

	BUILD_BUG_ON(sizeof(struct refnpu_ctx_entry) != REFNPU_CTX_ENTRY_SIZE);

	if (rdev->info.max_contexts < REFNPU_NUM_CONTEXTS) {
		refnpu_err(rdev, "device supports %u contexts, %u needed\n",
			   rdev->info.max_contexts, REFNPU_NUM_CONTEXTS);
		return -ENODEV;
	}

	ida_init(&rdev->ctx_ids);
	INIT_WORK(&rdev->tlb_release_work, refnpu_mmu_release_work);
	ret = drmm_add_action_or_reset(drm, refnpu_mmu_release, NULL);
	if (ret)
		return ret;

	rdev->ctx_table = dma_alloc_coherent(drm->dev,
					     REFNPU_NUM_CONTEXTS *
					     sizeof(struct refnpu_ctx_entry),
					     &rdev->ctx_table_dma, GFP_KERNEL);
	if (!rdev->ctx_table)
		return -ENOMEM;

	refnpu_mmu_restore(rdev);

	return 0;
}

/**
 * refnpu_mmu_restore() - program the context table into the device
 * @rdev: device, after init or a device reset
 */
void refnpu_mmu_restore(struct refnpu_device *rdev)
{
	rdev->hw_ops->set_ctx_table(rdev, rdev->ctx_table_dma,
				    REFNPU_NUM_CONTEXTS);
}

/**
 * refnpu_mmu_fini() - release the device's bus memory of every context
 * @rdev: device, unplugged and quiesced by the backend
 *
 * Contexts of files still open outlive the device. What they mapped for
 * the device goes now, while the device is still bound, so that no DMA
 * mapping or coherent allocation outlives the driver's binding: the page
 * tables of every context and the context table. The contexts' address
 * allocators stay until their files close.
 */
void refnpu_mmu_fini(struct refnpu_device *rdev)
{
	struct refnpu_ctx *ctx;

	mutex_lock(&rdev->ctx_lock);
	list_for_each_entry(ctx, &rdev->ctx_list, link) {
		mutex_lock(&ctx->vm_lock);
		refnpu_pgtable_fini(&ctx->pgt);
		mutex_unlock(&ctx->vm_lock);
	}
	refnpu_mmu_free_ctx_table(rdev);
	mutex_unlock(&rdev->ctx_lock);

	/* The device is stopped: what failed invalidations kept can go. */
	cancel_work_sync(&rdev->tlb_release_work);
	refnpu_mmu_release_quarantine(rdev, true);
}

/**
 * refnpu_ctx_create() - create a device context
 * @rdev: device
 *
 * Return: the new context with one reference, or an ERR_PTR(): -ENOSPC
 * when every context id is in use, -ENOMEM.
 */
struct refnpu_ctx *refnpu_ctx_create(struct refnpu_device *rdev)
{
	u64 va_end = min_t(u64, REFNPU_VA_END,
			   1ULL << (rdev->info.mmu_caps &
				    REFNPU_MMU_CAPS_VA_BITS_MASK));
	struct refnpu_ctx *ctx;
	int ret;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return ERR_PTR(-ENOMEM);

	kref_init(&ctx->refcount);
	ctx->rdev = rdev;
	mutex_init(&ctx->vm_lock);
	drm_mm_init(&ctx->mm, REFNPU_VA_START, va_end - REFNPU_VA_START);
	ctx->pid = get_pid(task_tgid(current));

	ret = refnpu_pgtable_init(&ctx->pgt, rdev->drm.dev,
				  rdev->info.mmu_caps & REFNPU_MMU_CAPS_PGSZ_2M);
	if (ret)
		goto err_free;

	ret = ida_alloc_range(&rdev->ctx_ids, 1, REFNPU_NUM_CONTEXTS - 1,
			      GFP_KERNEL);
	if (ret < 0) {
		if (ret == -ENOSPC)
			refnpu_dbg(rdev, MMU, "out of context ids\n");
		goto err_pgtable;
	}
	ctx->id = ret;

	mutex_lock(&rdev->ctx_lock);
	refnpu_ctx_entry_set(rdev, ctx->id, ctx->pgt.root->dma);
	list_add_tail(&ctx->link, &rdev->ctx_list);
	mutex_unlock(&rdev->ctx_lock);

	drm_dev_get(&rdev->drm);
	refnpu_dbg(rdev, MMU, "context %u created\n", ctx->id);

	return ctx;

err_pgtable:
	refnpu_pgtable_fini(&ctx->pgt);
err_free:
	put_pid(ctx->pid);
	drm_mm_takedown(&ctx->mm);
	mutex_destroy(&ctx->vm_lock);
	kfree(ctx);
	return ERR_PTR(ret);
}

/**
 * refnpu_ctx_get() - take a context reference
 * @ctx: context
 *
 * Return: @ctx
 */
struct refnpu_ctx *refnpu_ctx_get(struct refnpu_ctx *ctx)
{
	kref_get(&ctx->refcount);
	return ctx;
}

static void refnpu_ctx_free_work(struct work_struct *work)
{
	struct refnpu_ctx *ctx = container_of(work, struct refnpu_ctx,
					      free_work);
	struct refnpu_device *rdev = ctx->rdev;

	kfree(ctx);
	drm_dev_put(&rdev->drm);
}

static void refnpu_ctx_release(struct kref *kref)
{
	struct refnpu_ctx *ctx = container_of(kref, struct refnpu_ctx, refcount);
	struct refnpu_device *rdev = ctx->rdev;

	/* No job and no mapping is left: stop walks, then free the tree. */
	mutex_lock(&rdev->ctx_lock);
	list_del(&ctx->link);
	refnpu_ctx_entry_set(rdev, ctx->id, 0);
	mutex_unlock(&rdev->ctx_lock);
	if (refnpu_mmu_tlb_invalidate(rdev, ctx->id)) {
		LIST_HEAD(freelist);

		/* The whole tree and the id wait for a device reset. */
		refnpu_pgtable_take_tree(&ctx->pgt, &freelist);
		refnpu_mmu_quarantine(rdev, &ctx->pgt, &freelist, NULL,
				      ctx->id);
	} else {
		ida_free(&rdev->ctx_ids, ctx->id);
	}

	refnpu_pgtable_fini(&ctx->pgt);
	drm_mm_takedown(&ctx->mm);
	mutex_destroy(&ctx->vm_lock);
	put_pid(ctx->pid);
	refnpu_dbg(rdev, MMU, "context %u destroyed\n", ctx->id);

	/*
	 * This may be the last device reference, and the last context
	 * reference is often dropped by a job freed in a scheduler's
	 * free_job work: releasing the device there would tear down that
	 * scheduler (drm_sched_fini()), which waits for the very work it
	 * runs in. Drop it from the driver's own workqueue instead.
	 */
	INIT_WORK(&ctx->free_work, refnpu_ctx_free_work);
	queue_work(refnpu_wq, &ctx->free_work);
}

/**
 * refnpu_ctx_put() - drop a context reference
 * @ctx: context, may be NULL
 *
 * The last reference clears the context's table entry, invalidates the
 * device TLB and frees the page tables, then drops the context's device
 * reference from &refnpu_wq, never from the caller: the caller may be a
 * scheduler's work, which the device's release waits for. May sleep.
 */
void refnpu_ctx_put(struct refnpu_ctx *ctx)
{
	if (ctx)
		kref_put(&ctx->refcount, refnpu_ctx_release);
}

/**
 * refnpu_mmu_map() - give a BO a device virtual address and map it
 * @ctx: context
 * @map: mapping to fill in (@map->node must be zeroed)
 * @sgt: DMA-mapped pages of the BO
 * @size: size of the BO
 * @writable: allow device writes
 * @quarantined: set when the map failed and its rollback could not
 *	invalidate the TLB: @map (with a BO and a context reference of its
 *	own, and its range) then belongs to the quarantine; else untouched
 *
 * The range reserved is followed by a REFNPU_VA_GUARD gap that stays
 * unmapped. BOs of 2 MiB or more are 2 MiB aligned so that they can use
 * 2 MiB pages.
 *
 * Return: 0, -ENOSPC when the address space is full, -EINVAL, -ENOMEM.
 */
int refnpu_mmu_map(struct refnpu_ctx *ctx, struct refnpu_mapping *map,
		   struct sg_table *sgt, u64 size, bool writable,
		   bool *quarantined)
{
	u64 align = size >= REFNPU_HUGE_PAGE_SIZE ? REFNPU_HUGE_PAGE_SIZE :
		    REFNPU_PAGE_SIZE;
	LIST_HEAD(freelist);
	int ret;

	mutex_lock(&ctx->vm_lock);
	if (!ctx->pgt.root) {
		ret = -ENODEV;
		goto out;
	}
	ret = drm_mm_insert_node_generic(&ctx->mm, &map->node,
					 size + REFNPU_VA_GUARD, align, 0,
					 DRM_MM_INSERT_BEST);
	if (ret)
		goto out;

	map->va = map->node.start;
	ret = refnpu_pgtable_map_sgt(&ctx->pgt, map->va, sgt, size, writable,
				     &freelist);
	if (!ret)
		goto out;
	/*
	 * A job of this context may have walked the new tables and cached
	 * translations of the range: as for an unmap, they go only after an
	 * invalidation, and when that fails, the tables, the range and the
	 * BO (whose pages the range pointed to) are quarantined.
	 */
	if (refnpu_mmu_tlb_invalidate(ctx->rdev, ctx->id)) {
		drm_gem_object_get(&map->bo->base.base);
		refnpu_ctx_get(ctx);
		refnpu_mmu_quarantine(ctx->rdev, &ctx->pgt, &freelist, map, 0);
		*quarantined = true;
	} else {
		refnpu_pgtable_free_tables(&ctx->pgt, &freelist);
		drm_mm_remove_node(&map->node);
	}
out:
	mutex_unlock(&ctx->vm_lock);

	refnpu_dbg(ctx->rdev, MMU, "ctx %u map va 0x%llx size 0x%llx: %d\n",
		   ctx->id, map->va, size, ret);
	return ret;
}

/**
 * refnpu_mmu_unmap() - unmap a BO and release its device virtual address
 * @ctx: context
 * @map: mapping filled in by refnpu_mmu_map()
 *
 * Invalidates the device TLB before the range and the freed tables can be
 * reused. When the invalidation fails, the device may still reach the
 * BO's pages and the freed tables through stale translations: they are
 * quarantined with @map, which keeps its device address, until a device
 * reset, which is requested. May sleep.
 *
 * Return: true when @map was quarantined: it, its BO reference and its
 * context reference now belong to the device, which drops them after the
 * reset.
 */
bool refnpu_mmu_unmap(struct refnpu_ctx *ctx, struct refnpu_mapping *map)
{
	bool quarantined = false;
	LIST_HEAD(freelist);

	mutex_lock(&ctx->vm_lock);
	/* After unplug the tables are gone already. */
	if (ctx->pgt.root) {
		refnpu_pgtable_unmap(&ctx->pgt, map->va,
				     map->bo->base.base.size, &freelist);
		if (refnpu_mmu_tlb_invalidate(ctx->rdev, ctx->id)) {
			refnpu_mmu_quarantine(ctx->rdev, &ctx->pgt, &freelist,
					      map, 0);
			quarantined = true;
		} else {
			refnpu_pgtable_free_tables(&ctx->pgt, &freelist);
		}
	}
	/*
	 * A quarantined range keeps its device address: a BO mapped there
	 * could be reached through the stale translations, at the old pages.
	 */
	if (!quarantined)
		drm_mm_remove_node(&map->node);
	mutex_unlock(&ctx->vm_lock);

	refnpu_dbg(ctx->rdev, MMU, "ctx %u unmap va 0x%llx%s\n", ctx->id,
		   map->va, quarantined ? " (quarantined)" : "");
	return quarantined;
}

/**
 * refnpu_mmu_show() - print a context's address space, for debugfs
 * @ctx: context
 * @p: printer
 */
void refnpu_mmu_show(struct refnpu_ctx *ctx, struct drm_printer *p)
{
	struct drm_mm_node *node;

	mutex_lock(&ctx->vm_lock);
	drm_printf(p, "context %u: %u page-table pages\n", ctx->id,
		   ctx->pgt.tables);
	drm_mm_for_each_node(node, &ctx->mm) {
		struct refnpu_mapping *map =
			container_of(node, struct refnpu_mapping, node);

		drm_printf(p, "  0x%012llx-0x%012llx %s\n", map->va,
			   map->va + map->bo->base.base.size,
			   (map->bo->flags & DRM_REFNPU_BO_DEVICE_RO) ? "ro" : "rw");
	}
	mutex_unlock(&ctx->vm_lock);
}
