// SPDX-License-Identifier: MIT
//
// The device front end shared by the QEMU model and the in-kernel virtual
// device (kernel/hw/refnpu_mmu_walk.c): the page-table walk, its error
// codes and their order, permissions, the software TLB and its
// invalidation, and the ring, descriptor and context-entry checks, against
// Documentation/hardware.rst.

#include <cstdint>
#include <map>
#include <set>

#include <gtest/gtest.h>

extern "C" {
#include "refnpu_mmu_walk.h"
}

namespace {

constexpr uint64_t kRoot = 0x100000;
constexpr uint64_t kPage = REFNPU_PAGE_SIZE;
constexpr uint64_t kHuge = REFNPU_HUGE_PAGE_SIZE;
constexpr uint64_t kRW = REFNPU_PTE_VALID | REFNPU_PTE_READ | REFNPU_PTE_WRITE;
constexpr uint64_t kTable = REFNPU_PTE_VALID;

// Bus memory holding page tables: 8-byte entries, zero unless written;
// reads of addresses in `fail` fail like a bus error.
struct Bus {
	std::map<uint64_t, uint64_t> mem;
	std::set<uint64_t> fail;
	unsigned reads = 0;
	uint64_t next_table = kRoot + kPage;

	static int read64(void *opaque, __u64 addr, __u64 *val)
	{
		auto *b = static_cast<Bus *>(opaque);

		b->reads++;
		if (b->fail.count(addr))
			return -1;
		auto it = b->mem.find(addr);
		*val = it == b->mem.end() ? 0 : it->second;
		return 0;
	}

	static uint64_t slot(uint64_t table, uint64_t va, int level)
	{
		return table + REFNPU_PT_INDEX(va, level) * REFNPU_PTE_SIZE;
	}

	// The table at @level for @va, creating the pointers down to it.
	uint64_t table(uint64_t va, int level)
	{
		uint64_t t = kRoot;

		for (int l = REFNPU_PT_LEVELS - 1; l > level; l--) {
			uint64_t &e = mem[slot(t, va, l)];

			if (!(e & REFNPU_PTE_VALID)) {
				e = next_table | kTable;
				next_table += kPage;
			}
			t = e & REFNPU_PTE_ADDR_MASK;
		}
		return t;
	}

	void set(uint64_t va, int level, uint64_t pte)
	{
		mem[slot(table(va, level), va, level)] = pte;
	}
	void map4k(uint64_t va, uint64_t pa, uint64_t perm = kRW) { set(va, 0, pa | perm); }
	void map2m(uint64_t va, uint64_t pa, uint64_t perm = kRW)
	{
		set(va, 1, pa | perm | REFNPU_PTE_LEAF);
	}

	uint32_t walk(uint64_t va, refnpu_mmu_leaf *leaf)
	{
		return refnpu_mmu_walk(kRoot, va, &Bus::read64, this, leaf);
	}

	uint32_t translate(refnpu_tlb *tlb, uint32_t gen, uint32_t ctx, uint64_t va, bool write,
			   uint64_t *pa, uint64_t *room)
	{
		__u64 p = 0, r = 0;
		uint32_t st = refnpu_mmu_translate(tlb, gen, ctx, kRoot, va, write, &Bus::read64,
						   this, &p, &r);

		*pa = p;
		*room = r;
		return st;
	}
};

const uint64_t kVa = 0x0000123456789000ULL;

TEST(MmuWalk, Maps4KiBPage)
{
	Bus b;
	refnpu_mmu_leaf leaf{};

	b.map4k(kVa, 0xabcde000, kRW);
	ASSERT_EQ(b.walk(kVa + 0x123, &leaf), REFNPU_ERR_NONE);
	EXPECT_EQ(leaf.level, 0u);
	EXPECT_EQ(leaf.size, kPage);
	EXPECT_EQ(leaf.page, 0xabcde000u);
	EXPECT_EQ(leaf.pte, 0xabcde000u | kRW);
	EXPECT_EQ(b.reads, 4u); // one entry per level
	// The neighbouring page is not mapped.
	EXPECT_EQ(b.walk(kVa + kPage, &leaf), REFNPU_ERR_MMU_UNMAPPED);
}

TEST(MmuWalk, Maps2MiBPageAtLevel1)
{
	Bus b;
	refnpu_mmu_leaf leaf{};
	const uint64_t va = 0x40000000ULL + 3 * kHuge;

	b.map2m(va, 0x80000000ULL + kHuge);
	ASSERT_EQ(b.walk(va + 0x1234f, &leaf), REFNPU_ERR_NONE);
	EXPECT_EQ(leaf.level, 1u);
	EXPECT_EQ(leaf.size, kHuge);
	EXPECT_EQ(leaf.page, 0x80000000ULL + kHuge);
	EXPECT_EQ(b.reads, 3u);
}

TEST(MmuWalk, LeafBitIsIgnoredAtLevel0)
{
	Bus b;
	refnpu_mmu_leaf leaf{};

	b.map4k(kVa, 0x5000, kRW | REFNPU_PTE_LEAF);
	ASSERT_EQ(b.walk(kVa, &leaf), REFNPU_ERR_NONE);
	EXPECT_EQ(leaf.size, kPage);
	EXPECT_EQ(leaf.page, 0x5000u);
}

TEST(MmuWalk, VaBeyondLimitIsUnmappedWithoutReading)
{
	Bus b;
	refnpu_mmu_leaf leaf{};

	EXPECT_EQ(b.walk(REFNPU_VA_LIMIT, &leaf), REFNPU_ERR_MMU_UNMAPPED);
	EXPECT_EQ(b.walk(~0ULL, &leaf), REFNPU_ERR_MMU_UNMAPPED);
	EXPECT_EQ(b.reads, 0u);
	// The last page below the limit translates.
	b.map4k(REFNPU_VA_LIMIT - kPage, 0x7000);
	EXPECT_EQ(b.walk(REFNPU_VA_LIMIT - 1, &leaf), REFNPU_ERR_NONE);
}

TEST(MmuWalk, InvalidEntryAtEachLevelIsUnmapped)
{
	for (int level = REFNPU_PT_LEVELS - 1; level >= 0; level--) {
		Bus b;
		refnpu_mmu_leaf leaf{};

		b.map4k(kVa, 0x5000);
		b.set(kVa, level, 0); // clear the entry at @level
		EXPECT_EQ(b.walk(kVa, &leaf), REFNPU_ERR_MMU_UNMAPPED) << "level " << level;
		// The walk stops there.
		EXPECT_EQ(b.reads, unsigned(REFNPU_PT_LEVELS - level)) << "level " << level;
		// Entries without VALID are unmapped whatever else they hold.
		b.set(kVa, level, REFNPU_PTE_RSVD_MASK | REFNPU_PTE_LEAF | 0x5000);
		EXPECT_EQ(b.walk(kVa, &leaf), REFNPU_ERR_MMU_UNMAPPED) << "level " << level;
	}
}

TEST(MmuWalk, ReservedBitsAtEachLevelAreWalkErrors)
{
	const uint64_t bits[] = {REFNPU_BIT_ULL(4), REFNPU_BIT_ULL(11), REFNPU_BIT_ULL(52),
				 REFNPU_BIT_ULL(63)};

	for (int level = REFNPU_PT_LEVELS - 1; level >= 0; level--) {
		for (uint64_t bit : bits) {
			Bus b;
			refnpu_mmu_leaf leaf{};

			b.map4k(kVa, 0x5000);
			uint64_t t = b.table(kVa, level);
			b.mem[Bus::slot(t, kVa, level)] |= bit;
			EXPECT_EQ(b.walk(kVa, &leaf), REFNPU_ERR_MMU_WALK)
				<< "level " << level << " bit 0x" << std::hex << bit;
		}
	}
}

TEST(MmuWalk, LeafAboveLevel1IsAWalkError)
{
	for (int level : {3, 2}) {
		Bus b;
		refnpu_mmu_leaf leaf{};

		b.set(kVa, level, 0x40000000ULL | kRW | REFNPU_PTE_LEAF);
		EXPECT_EQ(b.walk(kVa, &leaf), REFNPU_ERR_MMU_WALK) << "level " << level;
	}
}

TEST(MmuWalk, Misaligned2MiBLeafIsAWalkError)
{
	Bus b;
	refnpu_mmu_leaf leaf{};

	b.map2m(0x40000000ULL, 0x80000000ULL + kPage);
	EXPECT_EQ(b.walk(0x40000000ULL, &leaf), REFNPU_ERR_MMU_WALK);
}

TEST(MmuWalk, FailedTableReadAtEachLevelIsAWalkError)
{
	for (int level = REFNPU_PT_LEVELS - 1; level >= 0; level--) {
		Bus b;
		refnpu_mmu_leaf leaf{};

		b.map4k(kVa, 0x5000);
		b.fail.insert(Bus::slot(b.table(kVa, level), kVa, level));
		EXPECT_EQ(b.walk(kVa, &leaf), REFNPU_ERR_MMU_WALK) << "level " << level;
	}
}

TEST(MmuWalk, PermissionsAreTheLeafs)
{
	EXPECT_EQ(refnpu_mmu_check_perm(kRW, false), REFNPU_ERR_NONE);
	EXPECT_EQ(refnpu_mmu_check_perm(kRW, true), REFNPU_ERR_NONE);
	EXPECT_EQ(refnpu_mmu_check_perm(REFNPU_PTE_VALID | REFNPU_PTE_READ, true),
		  REFNPU_ERR_MMU_WRITE_PERM);
	EXPECT_EQ(refnpu_mmu_check_perm(REFNPU_PTE_VALID | REFNPU_PTE_WRITE, false),
		  REFNPU_ERR_MMU_READ_PERM);
	EXPECT_EQ(refnpu_mmu_check_perm(REFNPU_PTE_VALID, false), REFNPU_ERR_MMU_READ_PERM);

	// Table pointers carry no permission: only the leaf's count.
	Bus b;
	uint64_t pa, room;

	b.map4k(kVa, 0x5000, REFNPU_PTE_VALID | REFNPU_PTE_READ);
	EXPECT_EQ(b.translate(nullptr, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(b.translate(nullptr, 0, 1, kVa, true, &pa, &room), REFNPU_ERR_MMU_WRITE_PERM);
}

TEST(MmuTranslate, AddressAndRoomToTheEndOfThePage)
{
	Bus b;
	uint64_t pa, room;

	b.map4k(kVa, 0x5000);
	ASSERT_EQ(b.translate(nullptr, 0, 1, kVa + 0xff8, true, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0x5ff8u);
	EXPECT_EQ(room, 8u);

	b.map2m(0x40000000ULL, 0x80000000ULL);
	ASSERT_EQ(b.translate(nullptr, 0, 1, 0x40000000ULL + 0x100, false, &pa, &room),
		  REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0x80000100u);
	EXPECT_EQ(room, kHuge - 0x100);
}

TEST(MmuTlb, HitUsesTheCachedTranslationUntilInvalidated)
{
	Bus b;
	refnpu_tlb tlb{};
	uint64_t pa, room;

	refnpu_tlb_flush(&tlb);
	b.map4k(kVa, 0x5000);
	ASSERT_EQ(b.translate(&tlb, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(b.reads, 4u);
	ASSERT_EQ(b.translate(&tlb, 0, 1, kVa + 8, true, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(b.reads, 4u) << "a hit reads no table";
	EXPECT_EQ(pa, 0x5008u);

	// Re-pointed without invalidation: the device still uses the old page.
	b.map4k(kVa, 0x9000);
	ASSERT_EQ(b.translate(&tlb, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0x5000u);
	// Unmapped without invalidation: still translated.
	b.set(kVa, 0, 0);
	EXPECT_EQ(b.translate(&tlb, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);

	// An invalidation (a new generation) makes the next access walk.
	EXPECT_EQ(b.translate(&tlb, 1, 1, kVa, false, &pa, &room), REFNPU_ERR_MMU_UNMAPPED);
	b.map4k(kVa, 0x9000);
	ASSERT_EQ(b.translate(&tlb, 1, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0x9000u);
}

TEST(MmuTlb, PermissionsAreCachedToo)
{
	Bus b;
	refnpu_tlb tlb{};
	uint64_t pa, room;

	b.map4k(kVa, 0x5000, kRW);
	ASSERT_EQ(b.translate(&tlb, 0, 1, kVa, true, &pa, &room), REFNPU_ERR_NONE);
	// Downgraded to read-only without invalidation: writes still pass.
	b.map4k(kVa, 0x5000, REFNPU_PTE_VALID | REFNPU_PTE_READ);
	EXPECT_EQ(b.translate(&tlb, 0, 1, kVa, true, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(b.translate(&tlb, 7, 1, kVa, true, &pa, &room), REFNPU_ERR_MMU_WRITE_PERM);
	EXPECT_EQ(b.translate(&tlb, 7, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
}

TEST(MmuTlb, EntriesBelongToOneContext)
{
	Bus b;
	refnpu_tlb tlb{};
	uint64_t pa, room;

	refnpu_tlb_flush(&tlb);
	b.map4k(kVa, 0x5000);
	ASSERT_EQ(b.translate(&tlb, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	unsigned reads = b.reads;
	ASSERT_EQ(b.translate(&tlb, 0, 2, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_GT(b.reads, reads) << "another context's access must walk its own tables";
}

TEST(MmuTlb, FailedWalksAreNotCached)
{
	Bus b;
	refnpu_tlb tlb{};
	uint64_t pa, room;

	refnpu_tlb_flush(&tlb);
	EXPECT_EQ(b.translate(&tlb, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_MMU_UNMAPPED);
	// Making an invalid entry valid needs no invalidation.
	b.map4k(kVa, 0x5000);
	ASSERT_EQ(b.translate(&tlb, 0, 1, kVa, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0x5000u);
}

TEST(MmuTlb, FlushDropsEverything)
{
	Bus b;
	refnpu_tlb tlb{};
	uint64_t pa, room;

	b.map2m(0x40000000ULL, 0x80000000ULL);
	ASSERT_EQ(b.translate(&tlb, 0, 1, 0x40000000ULL, false, &pa, &room), REFNPU_ERR_NONE);
	b.map2m(0x40000000ULL, 0xc0000000ULL);
	ASSERT_EQ(b.translate(&tlb, 0, 1, 0x40000000ULL, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0x80000000u);
	refnpu_tlb_flush(&tlb);
	ASSERT_EQ(b.translate(&tlb, 0, 1, 0x40000000ULL, false, &pa, &room), REFNPU_ERR_NONE);
	EXPECT_EQ(pa, 0xc0000000u);
}

TEST(FrontEnd, RingConfiguration)
{
	EXPECT_TRUE(refnpu_ring_valid(0x1000, 128, 0));
	EXPECT_TRUE(refnpu_ring_valid(0x1040, REFNPU_RING_MIN_ENTRIES, 1));
	EXPECT_TRUE(refnpu_ring_valid(0, REFNPU_RING_MAX_ENTRIES, REFNPU_RING_MAX_ENTRIES - 1));
	EXPECT_FALSE(refnpu_ring_valid(0x1000, 0, 0));
	EXPECT_FALSE(refnpu_ring_valid(0x1000, 1, 0));
	EXPECT_FALSE(refnpu_ring_valid(0x1000, 96, 0)) << "not a power of two";
	EXPECT_FALSE(refnpu_ring_valid(0x1000, 2 * REFNPU_RING_MAX_ENTRIES, 0));
	EXPECT_FALSE(refnpu_ring_valid(0x1000 + REFNPU_RING_ALIGN / 2, 128, 0));
	EXPECT_FALSE(refnpu_ring_valid(0x1000, 128, 128)) << "tail outside the ring";
	EXPECT_TRUE(refnpu_ring_valid(~0ULL - 128 * REFNPU_JOB_DESC_SIZE + 1, 128, 0));
	EXPECT_FALSE(refnpu_ring_valid(~0ULL - 128 * REFNPU_JOB_DESC_SIZE + 1 + REFNPU_RING_ALIGN,
				       128, 0))
		<< "wraps the bus address space";
}

TEST(FrontEnd, DescriptorChecks)
{
	refnpu_job_desc d{};

	d.ctx_id = 1;
	d.flags = REFNPU_JOB_F_IRQ;
	d.cmd_va = 0x1000000;
	d.cmd_size = 64;
	EXPECT_EQ(refnpu_job_desc_check(&d), REFNPU_ERR_NONE);
	d.cmd_size = 0;
	EXPECT_EQ(refnpu_job_desc_check(&d), REFNPU_ERR_NONE) << "an empty buffer runs nothing";
	d.cmd_size = REFNPU_CMDBUF_MAX_SIZE;
	EXPECT_EQ(refnpu_job_desc_check(&d), REFNPU_ERR_NONE);

	auto bad = [](void (*f)(refnpu_job_desc &)) {
		refnpu_job_desc x{};
		x.cmd_va = 0x1000000;
		x.cmd_size = 64;
		f(x);
		return refnpu_job_desc_check(&x);
	};
	EXPECT_EQ(bad([](refnpu_job_desc &x) { x.flags = 2; }), REFNPU_ERR_BAD_DESCRIPTOR);
	EXPECT_EQ(bad([](refnpu_job_desc &x) { x.rsvd[0] = 1; }), REFNPU_ERR_BAD_DESCRIPTOR);
	EXPECT_EQ(bad([](refnpu_job_desc &x) { x.rsvd[2] = 1ULL << 63; }),
		  REFNPU_ERR_BAD_DESCRIPTOR);
	EXPECT_EQ(bad([](refnpu_job_desc &x) { x.cmd_va += 4; }), REFNPU_ERR_BAD_DESCRIPTOR);
	EXPECT_EQ(bad([](refnpu_job_desc &x) { x.cmd_size = 12; }), REFNPU_ERR_BAD_DESCRIPTOR);
	EXPECT_EQ(bad([](refnpu_job_desc &x) {
			  x.cmd_size = REFNPU_CMDBUF_MAX_SIZE + REFNPU_CMD_ALIGN;
		  }),
		  REFNPU_ERR_BAD_DESCRIPTOR);
	// The completion address is the host's to check (it halts the queue).
	EXPECT_EQ(bad([](refnpu_job_desc &x) { x.completion_addr = 8; }), REFNPU_ERR_NONE);
}

TEST(FrontEnd, ContextEntryChecks)
{
	refnpu_ctx_entry ce{};

	ce.pt_root = 0x200000;
	ce.flags = REFNPU_CTX_F_VALID;
	EXPECT_EQ(refnpu_ctx_entry_check(&ce), REFNPU_ERR_NONE);
	ce.flags = 0;
	EXPECT_EQ(refnpu_ctx_entry_check(&ce), REFNPU_ERR_INVALID_CONTEXT);
	ce.flags = REFNPU_CTX_F_VALID | 2;
	EXPECT_EQ(refnpu_ctx_entry_check(&ce), REFNPU_ERR_INVALID_CONTEXT);
	ce.flags = REFNPU_CTX_F_VALID;
	ce.rsvd = 1;
	EXPECT_EQ(refnpu_ctx_entry_check(&ce), REFNPU_ERR_INVALID_CONTEXT);
	ce.rsvd = 0;
	ce.pt_root = 0x200008;
	EXPECT_EQ(refnpu_ctx_entry_check(&ce), REFNPU_ERR_INVALID_CONTEXT);
}

} // namespace
