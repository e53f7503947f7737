// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * KUnit: the device virtual address allocator of a context (refnpu_mmu_map()
 * and refnpu_mmu_unmap() under BO creation and handle close): where BOs
 * land, their alignment, the unmapped guard gap after each, release on
 * close, -ENOSPC without side effects, and one address space per file.
 */

#include <kunit/test.h>

#include <linux/sizes.h>

#include <drm/drm_mm.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_kunit.h"
#include "refnpu_mmu.h"

/**
 * struct va_bo - a BO created by a test
 * @handle: GEM handle
 * @va: device virtual address
 * @size: size
 */
struct va_bo {
	u32 handle;
	u64 va;
	u64 size;
};

static u64 va_lookup(struct refnpu_ctx *ctx, u64 va)
{
	u64 pte;

	mutex_lock(&ctx->vm_lock);
	pte = refnpu_pgtable_lookup(&ctx->pgt, va, NULL);
	mutex_unlock(&ctx->vm_lock);

	return pte;
}

static bool va_node_at(struct refnpu_ctx *ctx, u64 va)
{
	struct drm_mm_node *node;
	bool found = false;

	mutex_lock(&ctx->vm_lock);
	drm_mm_for_each_node(node, &ctx->mm)
		found |= node->start == va;
	mutex_unlock(&ctx->vm_lock);

	return found;
}

static struct va_bo va_new(struct kunit *test, struct file *filp, u64 size)
{
	struct va_bo bo = { .size = PAGE_ALIGN(size) };

	KUNIT_ASSERT_EQ(test, refnpu_test_bo(test, filp, size, 0, &bo.handle,
					     &bo.va), 0);
	return bo;
}

/* The BO is mapped from its first to its last page, not one page more. */
static void expect_bo_mapped(struct kunit *test, struct refnpu_ctx *ctx,
			     const struct va_bo *bo)
{
	KUNIT_EXPECT_NE_MSG(test, va_lookup(ctx, bo->va), 0ULL, "va 0x%llx",
			    bo->va);
	KUNIT_EXPECT_NE_MSG(test, va_lookup(ctx, bo->va + bo->size - SZ_4K),
			    0ULL, "va 0x%llx", bo->va);
	KUNIT_EXPECT_EQ_MSG(test, va_lookup(ctx, bo->va + bo->size), 0ULL,
			    "guard after 0x%llx", bo->va);
	KUNIT_EXPECT_EQ_MSG(test, va_lookup(ctx, bo->va + bo->size +
					    REFNPU_VA_GUARD - SZ_4K), 0ULL,
			    "guard after 0x%llx", bo->va);
}

static void va_placement(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct refnpu_ctx *ctx = refnpu_test_ctx(filp);
	u64 va_size = refnpu_test_param(test, filp, DRM_REFNPU_PARAM_VA_SIZE);
	struct va_bo bos[4];
	unsigned int i, j;

	bos[0] = va_new(test, filp, SZ_4K);
	bos[1] = va_new(test, filp, 3 * SZ_4K - 100);
	bos[2] = va_new(test, filp, SZ_4M);
	bos[3] = va_new(test, filp, SZ_2M + SZ_4K);

	for (i = 0; i < ARRAY_SIZE(bos); i++) {
		KUNIT_EXPECT_GE(test, bos[i].va, (u64)REFNPU_VA_START);
		KUNIT_EXPECT_LE(test, bos[i].va + bos[i].size,
				(u64)REFNPU_VA_START + va_size);
		KUNIT_EXPECT_TRUE(test, IS_ALIGNED(bos[i].va, SZ_4K));
		/* Large BOs are 2 MiB aligned, so they can use 2 MiB pages. */
		if (bos[i].size >= SZ_2M)
			KUNIT_EXPECT_TRUE_MSG(test, IS_ALIGNED(bos[i].va, SZ_2M),
					      "va 0x%llx", bos[i].va);
		expect_bo_mapped(test, ctx, &bos[i]);
		/* No BO, guard included, overlaps another. */
		for (j = 0; j < i; j++) {
			bool apart = bos[i].va >= bos[j].va + bos[j].size +
					       REFNPU_VA_GUARD ||
				     bos[j].va >= bos[i].va + bos[i].size +
					       REFNPU_VA_GUARD;

			KUNIT_EXPECT_TRUE_MSG(test, apart, "0x%llx and 0x%llx",
					      bos[i].va, bos[j].va);
		}
	}
	KUNIT_EXPECT_EQ(test, bos[1].size, (u64)3 * SZ_4K);
}

static void va_released_on_close(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct refnpu_ctx *ctx = refnpu_test_ctx(filp);
	struct va_bo a, b;

	a = va_new(test, filp, SZ_64K);
	b = va_new(test, filp, SZ_8K);
	KUNIT_EXPECT_TRUE(test, va_node_at(ctx, a.va));

	refnpu_test_bo_close(test, filp, a.handle);
	KUNIT_EXPECT_FALSE(test, va_node_at(ctx, a.va));
	KUNIT_EXPECT_EQ(test, va_lookup(ctx, a.va), 0ULL);
	KUNIT_EXPECT_EQ(test, va_lookup(ctx, a.va + SZ_64K - SZ_4K), 0ULL);
	expect_bo_mapped(test, ctx, &b);

	/* With the last BO gone, every page table but the root is freed. */
	refnpu_test_bo_close(test, filp, b.handle);
	KUNIT_EXPECT_EQ(test, ctx->pgt.tables, 1U);

	/* The space is reusable. */
	a = va_new(test, filp, SZ_64K);
	expect_bo_mapped(test, ctx, &a);
}

/**
 * struct va_fill - reservations filling a context's address space
 * @ctx: context
 * @n: number of nodes
 * @nodes: the reservations
 */
struct va_fill {
	struct refnpu_ctx *ctx;
	unsigned int n;
	struct drm_mm_node nodes[8];
};

static void va_unfill(void *data)
{
	struct va_fill *fill = data;

	mutex_lock(&fill->ctx->vm_lock);
	while (fill->n)
		drm_mm_remove_node(&fill->nodes[--fill->n]);
	mutex_unlock(&fill->ctx->vm_lock);
}

static void va_address_space_full(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *filp = refnpu_test_open(test, rdev);
	struct refnpu_ctx *ctx = refnpu_test_ctx(filp);
	u64 starts[8], ends[8], start, end;
	unsigned int holes = 0, i, tables;
	struct drm_mm_node *pos;
	struct va_fill *fill;
	struct va_bo a;
	u32 handle;

	a = va_new(test, filp, SZ_4K);
	fill = kunit_kzalloc(test, sizeof(*fill), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, fill);
	fill->ctx = ctx;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, va_unfill, fill),
			0);

	/* Reserve every hole left, the way a full address space looks. */
	mutex_lock(&ctx->vm_lock);
	drm_mm_for_each_hole(pos, &ctx->mm, start, end) {
		if (holes == ARRAY_SIZE(starts))
			break;
		starts[holes] = start;
		ends[holes++] = end;
	}
	for (i = 0; i < holes; i++) {
		fill->nodes[i].start = starts[i];
		fill->nodes[i].size = ends[i] - starts[i];
		if (drm_mm_reserve_node(&ctx->mm, &fill->nodes[i]))
			break;
		fill->n++;
	}
	tables = ctx->pgt.tables;
	mutex_unlock(&ctx->vm_lock);
	KUNIT_ASSERT_EQ(test, fill->n, holes);
	KUNIT_ASSERT_LT(test, holes, (unsigned int)ARRAY_SIZE(starts));

	KUNIT_EXPECT_EQ(test, refnpu_test_bo(test, filp, SZ_4K, 0, &handle, NULL),
			-ENOSPC);
	/* The failure left nothing behind. */
	KUNIT_EXPECT_EQ(test, ctx->pgt.tables, tables);
	expect_bo_mapped(test, ctx, &a);

	/* Room again: it works. */
	va_unfill(fill);
	a = va_new(test, filp, SZ_4K);
	expect_bo_mapped(test, ctx, &a);
}

static void va_one_space_per_file(struct kunit *test)
{
	struct refnpu_device *rdev = refnpu_test_device(test, 0);
	struct file *fa = refnpu_test_open(test, rdev);
	struct file *fb = refnpu_test_open(test, rdev);
	struct refnpu_ctx *ca = refnpu_test_ctx(fa), *cb = refnpu_test_ctx(fb);
	struct va_bo a, b;
	u64 pa, pb;

	KUNIT_EXPECT_NE(test, ca->id, cb->id);
	KUNIT_EXPECT_NE(test, ca->id, 0U);
	KUNIT_EXPECT_NE(test, cb->id, 0U);

	a = va_new(test, fa, SZ_64K);
	KUNIT_EXPECT_EQ(test, va_lookup(cb, a.va), 0ULL);
	b = va_new(test, fb, SZ_64K);

	/* The same address may name different memory in each context. */
	pa = va_lookup(ca, b.va);
	pb = va_lookup(cb, b.va);
	KUNIT_EXPECT_NE(test, pb, 0ULL);
	KUNIT_EXPECT_TRUE(test, !pa || (pa & REFNPU_PTE_ADDR_MASK) !=
			  (pb & REFNPU_PTE_ADDR_MASK));

	/* The context table points the device at each context's tree. */
	KUNIT_EXPECT_EQ(test, le64_to_cpu((__force __le64)rdev->ctx_table[ca->id].pt_root),
			(u64)ca->pgt.root->dma);
	KUNIT_EXPECT_EQ(test, le64_to_cpu((__force __le64)rdev->ctx_table[cb->id].pt_root),
			(u64)cb->pgt.root->dma);
	KUNIT_EXPECT_TRUE(test, le32_to_cpu((__force __le32)rdev->ctx_table[ca->id].flags) &
			  REFNPU_CTX_F_VALID);
}

static struct kunit_case refnpu_va_cases[] = {
	KUNIT_CASE(va_placement),
	KUNIT_CASE(va_released_on_close),
	KUNIT_CASE(va_address_space_full),
	KUNIT_CASE(va_one_space_per_file),
	{}
};

static struct kunit_suite refnpu_va_suite = {
	.name = "refnpu_va",
	.test_cases = refnpu_va_cases,
};

kunit_test_suite(refnpu_va_suite);
