// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * KUnit: the device page-table builder (refnpu_pgtable_*() in
 * refnpu_mmu.c). Every mapping is checked twice: with
 * refnpu_pgtable_lookup(), which follows the driver's own table pointers,
 * and with a walk that follows the bus addresses written in the entries,
 * as the device does, so a wrong table address in an entry is caught.
 */

#include <kunit/test.h>

#include <linux/dma-direct.h>
#include <linux/list.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>

#include "refnpu_drv.h"
#include "refnpu_kunit.h"
#include "refnpu_mmu.h"
#include "refnpu_mmu_walk.h"

#define PTE_RW		(REFNPU_PTE_VALID | REFNPU_PTE_READ | REFNPU_PTE_WRITE)
#define PTE_RO		(REFNPU_PTE_VALID | REFNPU_PTE_READ)
#define PTE_HUGE_RW	(PTE_RW | REFNPU_PTE_LEAF)

/**
 * struct pgt_fixture - one test's page-table tree
 * @pgt: the tree
 * @freelist: tables removed by unmaps and not freed yet
 */
struct pgt_fixture {
	struct refnpu_pgtable pgt;
	struct list_head freelist;
};

static void pgt_fixture_fini(void *data)
{
	struct pgt_fixture *f = data;

	refnpu_pgtable_free_tables(&f->pgt, &f->freelist);
	refnpu_pgtable_fini(&f->pgt);
}

static struct refnpu_pgtable *pgt_new(struct kunit *test, bool huge)
{
	struct device *dev = refnpu_test_dma_device(test);
	struct pgt_fixture *f;

	f = kunit_kzalloc(test, sizeof(*f), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, f);
	INIT_LIST_HEAD(&f->freelist);
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_init(&f->pgt, dev, huge), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, pgt_fixture_fini, f),
			0);
	KUNIT_EXPECT_EQ(test, f->pgt.tables, 1U);

	return &f->pgt;
}

static struct list_head *pgt_freelist(struct refnpu_pgtable *pgt)
{
	return &container_of(pgt, struct pgt_fixture, pgt)->freelist;
}

static int pgt_read64(void *opaque, u64 addr, u64 *val)
{
	struct refnpu_pgtable *pgt = opaque;
	__le64 *entry = phys_to_virt(dma_to_phys(pgt->dev, addr));

	*val = le64_to_cpu(*entry);
	return 0;
}

/* Walk the tree with the device's own walker, from the root's bus address. */
static u64 pgt_hw_walk(struct refnpu_pgtable *pgt, u64 va, unsigned int *level)
{
	struct refnpu_mmu_leaf leaf;

	if (refnpu_mmu_walk(pgt->root->dma, va, pgt_read64, pgt, &leaf))
		return 0;
	*level = leaf.level;
	return leaf.pte;
}

/* @va must translate to @addr with @prot at @level, seen both ways. */
static void expect_mapped(struct kunit *test, struct refnpu_pgtable *pgt,
			  u64 va, u64 addr, u64 prot, unsigned int level)
{
	u64 mask = level ? REFNPU_PTE_HUGE_ADDR_MASK : REFNPU_PTE_ADDR_MASK;
	unsigned int l1 = ~0U, l2 = ~0U;
	u64 pte, hw;

	pte = refnpu_pgtable_lookup(pgt, va, &l1);
	hw = pgt_hw_walk(pgt, va, &l2);
	KUNIT_EXPECT_EQ_MSG(test, pte, hw, "va 0x%llx: lookup and walk differ", va);
	KUNIT_EXPECT_EQ_MSG(test, l1, level, "va 0x%llx", va);
	KUNIT_EXPECT_EQ_MSG(test, l2, level, "va 0x%llx", va);
	KUNIT_EXPECT_EQ_MSG(test, pte & mask, addr & mask, "va 0x%llx", va);
	KUNIT_EXPECT_EQ_MSG(test, pte & ~REFNPU_PTE_ADDR_MASK, prot,
			    "va 0x%llx", va);
	KUNIT_EXPECT_EQ_MSG(test, pte & REFNPU_PTE_RSVD_MASK, 0ULL,
			    "va 0x%llx", va);
}

static void expect_unmapped(struct kunit *test, struct refnpu_pgtable *pgt,
			    u64 va)
{
	unsigned int l;

	KUNIT_EXPECT_EQ_MSG(test, refnpu_pgtable_lookup(pgt, va, NULL), 0ULL,
			    "va 0x%llx", va);
	KUNIT_EXPECT_EQ_MSG(test, pgt_hw_walk(pgt, va, &l), 0ULL,
			    "va 0x%llx", va);
}

static void pgt_unmap(struct refnpu_pgtable *pgt, u64 va, u64 size)
{
	refnpu_pgtable_unmap(pgt, va, size, pgt_freelist(pgt));
}

static void pgt_free(struct refnpu_pgtable *pgt)
{
	refnpu_pgtable_free_tables(pgt, pgt_freelist(pgt));
}

static void pgtable_map_one_page(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, false);
	u64 va = SZ_4G, addr = 0x12345000;

	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, addr, SZ_4K, true), 0);
	expect_mapped(test, pgt, va, addr, PTE_RW, 0);
	/* The whole page, and nothing around it. */
	expect_mapped(test, pgt, va + SZ_4K - 1, addr, PTE_RW, 0);
	expect_unmapped(test, pgt, va - SZ_4K);
	expect_unmapped(test, pgt, va + SZ_4K);
	/* Root, then one table per level below it. */
	KUNIT_EXPECT_EQ(test, pgt->tables, 4U);

	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va + SZ_4K, addr + SZ_4K,
						 SZ_4K, false), 0);
	expect_mapped(test, pgt, va + SZ_4K, addr + SZ_4K, PTE_RO, 0);
	KUNIT_EXPECT_EQ(test, pgt->tables, 4U);
}

static void pgtable_map_unmap_range(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, false);
	u64 va = SZ_1G + SZ_64K, addr = SZ_256M;
	unsigned int i;

	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, addr, 16 * SZ_4K,
						 true), 0);
	for (i = 0; i < 16; i++)
		expect_mapped(test, pgt, va + i * SZ_4K, addr + i * SZ_4K,
			      PTE_RW, 0);

	pgt_unmap(pgt, va, 16 * SZ_4K);
	for (i = 0; i < 16; i++)
		expect_unmapped(test, pgt, va + i * SZ_4K);
	/* Emptied tables wait for the TLB invalidation before being freed. */
	KUNIT_EXPECT_EQ(test, list_count_nodes(pgt_freelist(pgt)), (size_t)3);
	KUNIT_EXPECT_EQ(test, pgt->tables, 4U);
	pgt_free(pgt);
	KUNIT_EXPECT_EQ(test, pgt->tables, 1U);
	KUNIT_EXPECT_TRUE(test, list_empty(pgt_freelist(pgt)));
}

static void pgtable_partial_unmap(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, false);
	u64 va = SZ_1G, addr = SZ_512M;
	unsigned int i;

	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, addr, 16 * SZ_4K,
						 true), 0);

	pgt_unmap(pgt, va + 4 * SZ_4K, 4 * SZ_4K);
	for (i = 0; i < 16; i++) {
		if (i >= 4 && i < 8)
			expect_unmapped(test, pgt, va + i * SZ_4K);
		else
			expect_mapped(test, pgt, va + i * SZ_4K,
				      addr + i * SZ_4K, PTE_RW, 0);
	}
	/* The tables still hold other pages. */
	KUNIT_EXPECT_TRUE(test, list_empty(pgt_freelist(pgt)));
	KUNIT_EXPECT_EQ(test, pgt->tables, 4U);

	/* Unmapping an already unmapped hole is harmless. */
	pgt_unmap(pgt, va + 4 * SZ_4K, 4 * SZ_4K);
	expect_mapped(test, pgt, va + 8 * SZ_4K, addr + 8 * SZ_4K, PTE_RW, 0);

	pgt_unmap(pgt, va, 4 * SZ_4K);
	KUNIT_EXPECT_TRUE(test, list_empty(pgt_freelist(pgt)));
	pgt_unmap(pgt, va + 8 * SZ_4K, 8 * SZ_4K);
	KUNIT_EXPECT_EQ(test, list_count_nodes(pgt_freelist(pgt)), (size_t)3);
	pgt_free(pgt);
	KUNIT_EXPECT_EQ(test, pgt->tables, 1U);
}

static void pgtable_huge_pages(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, true);
	u64 va = SZ_1G, addr = SZ_2G;
	u64 size = 2 * SZ_2M + 2 * SZ_4K;

	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, addr, size, true), 0);
	expect_mapped(test, pgt, va, addr, PTE_HUGE_RW, 1);
	expect_mapped(test, pgt, va + SZ_2M - 1, addr, PTE_HUGE_RW, 1);
	expect_mapped(test, pgt, va + SZ_2M + SZ_64K, addr + SZ_2M, PTE_HUGE_RW, 1);
	/* The tail is smaller than 2 MiB: 4 KiB pages. */
	expect_mapped(test, pgt, va + 2 * SZ_2M, addr + 2 * SZ_2M, PTE_RW, 0);
	expect_mapped(test, pgt, va + 2 * SZ_2M + SZ_4K,
		      addr + 2 * SZ_2M + SZ_4K, PTE_RW, 0);
	expect_unmapped(test, pgt, va + size);
	/* Root, level 2, level 1, and one level-0 table for the tail. */
	KUNIT_EXPECT_EQ(test, pgt->tables, 4U);

	pgt_unmap(pgt, va, size);
	expect_unmapped(test, pgt, va);
	expect_unmapped(test, pgt, va + 2 * SZ_2M);
	pgt_free(pgt);
	KUNIT_EXPECT_EQ(test, pgt->tables, 1U);
}

static void pgtable_huge_pages_need_alignment(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, true);
	struct refnpu_pgtable *small = pgt_new(test, false);
	u64 va = SZ_1G;

	/* Bus address not 2 MiB aligned. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, SZ_2G + SZ_4K, SZ_2M,
						 true), 0);
	expect_mapped(test, pgt, va, SZ_2G + SZ_4K, PTE_RW, 0);
	expect_mapped(test, pgt, va + SZ_2M - SZ_4K, SZ_2G + SZ_2M, PTE_RW, 0);

	/* Virtual address not 2 MiB aligned. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va + SZ_4M + SZ_4K, SZ_4G,
						 SZ_2M, true), 0);
	expect_mapped(test, pgt, va + SZ_4M + SZ_4K, SZ_4G, PTE_RW, 0);

	/* A tree built without huge pages never uses them. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(small, va, SZ_2G, SZ_2M, true),
			0);
	expect_mapped(test, small, va, SZ_2G, PTE_RW, 0);
	expect_mapped(test, small, va + SZ_2M - SZ_4K, SZ_2G + SZ_2M - SZ_4K,
		      PTE_RW, 0);
}

static void pgtable_table_boundaries(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, false);
	u64 va, addr = SZ_1G;
	unsigned int i;

	/* Across a level-1 table (1 GiB) boundary: two level-1 tables. */
	va = SZ_1G - 2 * SZ_4K;
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, addr, 4 * SZ_4K, true),
			0);
	for (i = 0; i < 4; i++)
		expect_mapped(test, pgt, va + i * SZ_4K, addr + i * SZ_4K,
			      PTE_RW, 0);
	KUNIT_EXPECT_EQ(test, pgt->tables, 6U);

	/* Across a level-2 table (512 GiB) boundary. */
	va = (1ULL << REFNPU_PT_SHIFT(3)) - SZ_4K;
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, addr, 2 * SZ_4K, true),
			0);
	expect_mapped(test, pgt, va, addr, PTE_RW, 0);
	expect_mapped(test, pgt, va + SZ_4K, addr + SZ_4K, PTE_RW, 0);
	KUNIT_EXPECT_EQ(test, pgt->tables, 6U + 5U);

	/* The first and the last page of the address space. */
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, 0, addr, SZ_4K, true), 0);
	expect_mapped(test, pgt, 0, addr, PTE_RW, 0);
	va = REFNPU_VA_LIMIT - SZ_4K;
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, va, addr, SZ_4K, true), 0);
	expect_mapped(test, pgt, va, addr, PTE_RW, 0);
	expect_unmapped(test, pgt, REFNPU_VA_LIMIT);
	expect_unmapped(test, pgt, U64_MAX & ~(u64)(SZ_4K - 1));

	/* Unmapping across the boundaries frees every table on the way. */
	pgt_unmap(pgt, SZ_1G - 2 * SZ_4K, 4 * SZ_4K);
	pgt_unmap(pgt, (1ULL << REFNPU_PT_SHIFT(3)) - SZ_4K, 2 * SZ_4K);
	pgt_unmap(pgt, 0, SZ_4K);
	pgt_unmap(pgt, va, SZ_4K);
	pgt_free(pgt);
	KUNIT_EXPECT_EQ(test, pgt->tables, 1U);
}

static void pgtable_rejects_bad_ranges(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, true);
	u64 top = REFNPU_VA_LIMIT - SZ_4K;

	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, SZ_1G + 1, 0, SZ_4K, true),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, SZ_1G, 0x800, SZ_4K, true),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, SZ_1G, 0, SZ_4K + 8, true),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, SZ_1G, 0, 0, true), -EINVAL);
	/* Beyond the VA limit, or wrapping around. */
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, top, 0, 2 * SZ_4K, true),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, REFNPU_VA_LIMIT, 0, SZ_4K,
						 true), -EINVAL);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, U64_MAX & ~0xfffULL, 0,
						 2 * SZ_4K, true), -EINVAL);
	/* A bus address the entry format cannot hold. */
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, SZ_1G, 1ULL << 52, SZ_4K,
						 true), -EINVAL);
	/* None of it allocated anything. */
	KUNIT_EXPECT_EQ(test, pgt->tables, 1U);
	expect_unmapped(test, pgt, SZ_1G);
}

static void pgtable_rejects_overlap(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, true);
	u64 va = SZ_1G;

	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va, SZ_2G, SZ_4K, true), 0);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, va, SZ_4G, SZ_4K, true),
			-EEXIST);
	expect_mapped(test, pgt, va, SZ_2G, PTE_RW, 0);

	/* A 2 MiB page over a range holding a 4 KiB page. */
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, va, SZ_4G, SZ_2M, true),
			-EEXIST);
	expect_mapped(test, pgt, va, SZ_2G, PTE_RW, 0);

	/* A 4 KiB page inside a 2 MiB page. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va + SZ_2M, SZ_4G, SZ_2M,
						 true), 0);
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, va + SZ_2M + SZ_64K,
						 SZ_2G, SZ_4K, true), -EEXIST);
	expect_mapped(test, pgt, va + SZ_2M + SZ_64K, SZ_4G, PTE_HUGE_RW, 1);
}

static void pgtable_map_failure_unwinds(struct kunit *test)
{
	struct refnpu_pgtable *pgt = pgt_new(test, true);
	u64 va = SZ_1G;
	unsigned int tables;

	/* Something already sits at the third page of the range. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, va + 2 * SZ_4K, SZ_4G,
						 SZ_4K, false), 0);
	tables = pgt->tables;

	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, va, SZ_2G, 4 * SZ_4K, true),
			-EEXIST);
	/* The pages mapped before the collision are gone again... */
	expect_unmapped(test, pgt, va);
	expect_unmapped(test, pgt, va + SZ_4K);
	expect_unmapped(test, pgt, va + 3 * SZ_4K);
	/* ...what was there before is untouched, and no table leaked. */
	expect_mapped(test, pgt, va + 2 * SZ_4K, SZ_4G, PTE_RO, 0);
	KUNIT_EXPECT_EQ(test, pgt->tables, tables);

	/* The same with a 2 MiB page mapped, then a collision. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map(pgt, SZ_2G + SZ_2M, SZ_4G,
						 SZ_4K, true), 0);
	tables = pgt->tables;
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map(pgt, SZ_2G, SZ_2G, SZ_4M, true),
			-EEXIST);
	expect_unmapped(test, pgt, SZ_2G);
	expect_unmapped(test, pgt, SZ_2G + SZ_1M);
	KUNIT_EXPECT_EQ(test, pgt->tables, tables);
	KUNIT_EXPECT_TRUE(test, list_empty(pgt_freelist(pgt)));
}

KUNIT_DEFINE_ACTION_WRAPPER(pgt_sg_free, sg_free_table, struct sg_table *);

/* A scatter table whose DMA segments are @segs (address, length) pairs. */
static struct sg_table *pgt_sgt(struct kunit *test, const u64 (*segs)[2],
				unsigned int n)
{
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned int i;

	sgt = kunit_kzalloc(test, sizeof(*sgt), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, sgt);
	KUNIT_ASSERT_EQ(test, sg_alloc_table(sgt, n, GFP_KERNEL), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, pgt_sg_free, sgt),
			0);
	for_each_sgtable_sg(sgt, sg, i) {
		sg_dma_address(sg) = segs[i][0];
		sg_dma_len(sg) = segs[i][1];
	}
	sgt->nents = n;

	return sgt;
}

static void pgtable_map_sgt(struct kunit *test)
{
	static const u64 segs[][2] = {
		{ SZ_1G, 2 * SZ_4K },
		{ SZ_2G + SZ_64K, SZ_4K },
		{ SZ_4G, 3 * SZ_4K },
	};
	struct refnpu_pgtable *pgt = pgt_new(test, true);
	struct sg_table *sgt = pgt_sgt(test, segs, ARRAY_SIZE(segs));
	u64 va = SZ_256M;

	/* Only 4 pages of the 6 the segments hold. */
	KUNIT_ASSERT_EQ(test, refnpu_pgtable_map_sgt(pgt, va, sgt, 4 * SZ_4K,
						     false, NULL), 0);
	expect_mapped(test, pgt, va, SZ_1G, PTE_RO, 0);
	expect_mapped(test, pgt, va + SZ_4K, SZ_1G + SZ_4K, PTE_RO, 0);
	expect_mapped(test, pgt, va + 2 * SZ_4K, SZ_2G + SZ_64K, PTE_RO, 0);
	expect_mapped(test, pgt, va + 3 * SZ_4K, SZ_4G, PTE_RO, 0);
	expect_unmapped(test, pgt, va + 4 * SZ_4K);
}

/*
 * A failed map_sgt() leaves nothing mapped and hands the tables that
 * became empty to its caller, who frees them after a TLB invalidation.
 */
static void expect_map_sgt_fails(struct kunit *test,
				 struct refnpu_pgtable *pgt, u64 va,
				 struct sg_table *sgt, u64 size)
{
	LIST_HEAD(freelist);

	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map_sgt(pgt, va, sgt, size, true,
						     &freelist), -EINVAL);
	expect_unmapped(test, pgt, va);
	expect_unmapped(test, pgt, va + SZ_4K);
	KUNIT_EXPECT_FALSE_MSG(test, list_empty(&freelist),
			       "the new tables were not handed back");
	refnpu_pgtable_free_tables(pgt, &freelist);
	KUNIT_EXPECT_EQ(test, pgt->tables, 1U);
}

static void pgtable_map_sgt_failure_unwinds(struct kunit *test)
{
	/* The second segment ends inside a page, before the size is reached. */
	static const u64 bad_len[][2] = {
		{ SZ_1G, 2 * SZ_4K },
		{ SZ_2G, SZ_4K + 512 },
		{ SZ_4G, SZ_4K },
	};
	static const u64 bad_addr[][2] = {
		{ SZ_1G, 2 * SZ_4K },
		{ SZ_2G + 512, SZ_4K },
	};
	static const u64 short_segs[][2] = {
		{ SZ_1G, 2 * SZ_4K },
	};
	struct refnpu_pgtable *pgt = pgt_new(test, false);
	u64 va = SZ_256M;

	expect_map_sgt_fails(test, pgt, va,
			     pgt_sgt(test, bad_len, ARRAY_SIZE(bad_len)),
			     4 * SZ_4K);
	expect_map_sgt_fails(test, pgt, va,
			     pgt_sgt(test, bad_addr, ARRAY_SIZE(bad_addr)),
			     3 * SZ_4K);
	/* Segments that do not cover the size. */
	expect_map_sgt_fails(test, pgt, va,
			     pgt_sgt(test, short_segs, ARRAY_SIZE(short_segs)),
			     4 * SZ_4K);

	/* The last segment may be longer than needed: it is clipped. */
	KUNIT_EXPECT_EQ(test, refnpu_pgtable_map_sgt(pgt, va,
						     pgt_sgt(test, bad_len,
							     ARRAY_SIZE(bad_len)),
						     3 * SZ_4K, true, NULL), 0);
	expect_mapped(test, pgt, va + 2 * SZ_4K, SZ_2G, PTE_RW, 0);
	expect_unmapped(test, pgt, va + 3 * SZ_4K);
}

static struct kunit_case refnpu_pgtable_cases[] = {
	KUNIT_CASE(pgtable_map_one_page),
	KUNIT_CASE(pgtable_map_unmap_range),
	KUNIT_CASE(pgtable_partial_unmap),
	KUNIT_CASE(pgtable_huge_pages),
	KUNIT_CASE(pgtable_huge_pages_need_alignment),
	KUNIT_CASE(pgtable_table_boundaries),
	KUNIT_CASE(pgtable_rejects_bad_ranges),
	KUNIT_CASE(pgtable_rejects_overlap),
	KUNIT_CASE(pgtable_map_failure_unwinds),
	KUNIT_CASE(pgtable_map_sgt),
	KUNIT_CASE(pgtable_map_sgt_failure_unwinds),
	{}
};

static struct kunit_suite refnpu_pgtable_suite = {
	.name = "refnpu_pgtable",
	.test_cases = refnpu_pgtable_cases,
};

kunit_test_suite(refnpu_pgtable_suite);
