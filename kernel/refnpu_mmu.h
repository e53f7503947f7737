/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_MMU_H__
#define __REFNPU_MMU_H__

#include <linux/list.h>
#include <linux/types.h>

struct device;
struct drm_printer;
struct sg_table;
struct refnpu_ctx;
struct refnpu_device;
struct refnpu_mapping;

/**
 * struct refnpu_pt - one page-table page of the device MMU
 * @entries: REFNPU_PT_ENTRIES little-endian entries, in bus memory
 * @dma: bus address of @entries
 * @used: number of valid entries
 * @free_link: entry in a list of tables to free after a TLB invalidation
 * @children: for levels above 0, the table each entry points to
 */
struct refnpu_pt {
	__le64 *entries;
	dma_addr_t dma;
	unsigned int used;
	struct list_head free_link;
	struct refnpu_pt *children[];
};

/**
 * struct refnpu_pgtable - a device MMU page-table tree
 * @dev: device that DMA-maps the tables
 * @root: top-level table (level REFNPU_PT_LEVELS - 1)
 * @huge: use 2 MiB pages where the addresses allow it
 * @tables: number of page-table pages allocated, for debugfs and tests
 */
struct refnpu_pgtable {
	struct device *dev;
	struct refnpu_pt *root;
	bool huge;
	unsigned int tables;
};

int refnpu_pgtable_init(struct refnpu_pgtable *pgt, struct device *dev,
			bool huge);
void refnpu_pgtable_fini(struct refnpu_pgtable *pgt);
void refnpu_pgtable_take_tree(struct refnpu_pgtable *pgt,
			      struct list_head *list);
int refnpu_pgtable_map(struct refnpu_pgtable *pgt, u64 va, dma_addr_t addr,
		       u64 size, bool writable);
int refnpu_pgtable_map_sgt(struct refnpu_pgtable *pgt, u64 va,
			   struct sg_table *sgt, u64 size, bool writable,
			   struct list_head *freelist);
void refnpu_pgtable_unmap(struct refnpu_pgtable *pgt, u64 va, u64 size,
			  struct list_head *freelist);
void refnpu_pgtable_free_tables(struct refnpu_pgtable *pgt,
				struct list_head *freelist);
u64 refnpu_pgtable_lookup(struct refnpu_pgtable *pgt, u64 va,
			  unsigned int *level);

int refnpu_mmu_init(struct refnpu_device *rdev);
void refnpu_mmu_fini(struct refnpu_device *rdev);
void refnpu_mmu_restore(struct refnpu_device *rdev);

struct refnpu_ctx *refnpu_ctx_create(struct refnpu_device *rdev);
struct refnpu_ctx *refnpu_ctx_get(struct refnpu_ctx *ctx);
void refnpu_ctx_put(struct refnpu_ctx *ctx);

int refnpu_mmu_map(struct refnpu_ctx *ctx, struct refnpu_mapping *map,
		   struct sg_table *sgt, u64 size, bool writable,
		   bool *quarantined);
bool refnpu_mmu_unmap(struct refnpu_ctx *ctx, struct refnpu_mapping *map);
void refnpu_mmu_reset_begin(struct refnpu_device *rdev);
void refnpu_mmu_reset_done(struct refnpu_device *rdev);
void refnpu_mmu_show(struct refnpu_ctx *ctx, struct drm_printer *p);

#endif /* __REFNPU_MMU_H__ */
