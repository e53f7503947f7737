// SPDX-License-Identifier: MIT
//
// The device core shared by the QEMU model and the in-kernel virtual device
// (kernel/hw/refnpu_core.c), driven through its platform interface by a
// scripted platform: flat bus memory, a clock the test moves, locks that
// check the core's locking rules, and hooks inside DMA so a test can act
// while an access is in flight (TLB invalidation, reset, pause), which the
// QEMU and kernel platforms cannot do deterministically.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include "refnpu_core.h"
#include "refnpu_engine.h"
}

namespace {

constexpr uint64_t kRing = 0x1000;
constexpr uint64_t kCtxTable = 0x3000;
constexpr uint64_t kTables = 0x10000; // page tables from here
constexpr uint64_t kComp = 0x8000; // completion records, 64 B apart
constexpr uint64_t kCmd = 0x100000; // command buffer (PA = VA - kVa)
constexpr uint64_t kData = 0x200000; // data buffers
constexpr uint64_t kVa = 0x40000000; // VA of PA 0
constexpr uint64_t kBusSize = 8 << 20;
constexpr uint32_t kRingSize = 16;
constexpr uint32_t kCtx = 1;

struct Platform {
	struct refnpu_core core;
	std::vector<uint8_t> bus = std::vector<uint8_t>(kBusSize);
	uint64_t now = 1000;
	uint64_t next_table = kTables + REFNPU_PAGE_SIZE;
	int held_dev = 0;
	std::vector<int> held_queue = std::vector<int>(REFNPU_MAX_QUEUES);
	std::vector<unsigned> kicks;
	std::vector<unsigned> irqs;
	std::vector<uint64_t> dma_lens;
	unsigned data_dmas = 0;
	unsigned waits = 0;
	bool have_wait = false;
	// Called inside every access to [kData, kBusSize), before the copy.
	std::function<void(uint64_t addr, uint64_t len, bool write)> on_data_dma;
	std::function<void()> on_wait;
	uint32_t tail[REFNPU_MAX_QUEUES] = {};
	uint64_t seq = 1;

	static Platform *of(void *o) { return static_cast<Platform *>(o); }

	bool any_lock_held() const
	{
		if (held_dev)
			return true;
		for (int h : held_queue)
			if (h)
				return true;
		return false;
	}

	static __u32 dma(void *o, unsigned int, __u64 addr, void *buf, __u64 len, bool write)
	{
		Platform *p = of(o);

		EXPECT_FALSE(p->any_lock_held()) << "DMA with a core lock held";
		EXPECT_LE(len, (__u64)REFNPU_CORE_DMA_CHUNK);
		p->dma_lens.push_back(len);
		if (addr >= kBusSize || len > kBusSize - addr)
			return REFNPU_ERR_DMA;
		if (addr >= kData) {
			p->data_dmas++;
			if (p->on_data_dma)
				p->on_data_dma(addr, len, write);
		}
		if (write)
			memcpy(&p->bus[addr], buf, len);
		else
			memcpy(buf, &p->bus[addr], len);
		return REFNPU_ERR_NONE;
	}
	static void irq(void *o, unsigned int vector) { of(o)->irqs.push_back(vector); }
	static __u64 now_ns(void *o) { return of(o)->now; }
	static void lock(void *o, int l)
	{
		Platform *p = of(o);

		if (l == REFNPU_CORE_DEV_LOCK) {
			EXPECT_EQ(p->held_dev, 0) << "device lock taken twice";
			p->held_dev++;
			return;
		}
		EXPECT_EQ(p->held_dev, 0) << "queue lock taken under the device lock";
		for (int h : p->held_queue)
			EXPECT_EQ(h, 0) << "two queue locks held at once";
		p->held_queue.at(l)++;
	}
	static void unlock(void *o, int l)
	{
		Platform *p = of(o);

		if (l == REFNPU_CORE_DEV_LOCK)
			EXPECT_EQ(p->held_dev--, 1);
		else
			EXPECT_EQ(p->held_queue.at(l)--, 1);
	}
	static void kick(void *o, unsigned int q) { of(o)->kicks.push_back(q); }
	static void wait(void *o, unsigned int, __u64)
	{
		Platform *p = of(o);

		EXPECT_FALSE(p->any_lock_held()) << "wait with a core lock held";
		p->waits++;
		if (p->on_wait)
			p->on_wait();
	}
	static void wake(void *, unsigned int) { }

	struct refnpu_core_ops ops = {};

	explicit Platform(bool with_wait = false, bool stray = false)
	{
		ops.dma = dma;
		ops.irq = irq;
		ops.now_ns = now_ns;
		ops.lock = lock;
		ops.unlock = unlock;
		ops.kick = kick;
		if (with_wait) {
			ops.wait = wait;
			ops.wake = wake;
		}
		refnpu_core_init(&core, &ops, this, 4, REFNPU_CAPS_BASE | REFNPU_CAP_FAULT_INJECT,
				 stray);
		// Context kCtx maps VA kVa + x to PA x for the whole bus.
		uint64_t root = kTables;
		struct refnpu_ctx_entry ce = {root, REFNPU_CTX_F_VALID, 0};
		memcpy(&bus[kCtxTable + kCtx * REFNPU_CTX_ENTRY_SIZE], &ce, sizeof(ce));
		for (uint64_t pa = 0; pa < kBusSize; pa += REFNPU_HUGE_PAGE_SIZE)
			map_huge(root, kVa + pa, pa);
		wr64(REFNPU_REG_CTX_TABLE_BASE, kCtxTable);
		wr(REFNPU_REG_CTX_TABLE_COUNT, 4);
		for (unsigned q = 0; q < 4; q++) {
			wr64(REFNPU_REG_QUEUE(q, REFNPU_Q_RING_BASE), kRing + q * 0x400);
			wr(REFNPU_REG_QUEUE(q, REFNPU_Q_RING_SIZE), kRingSize);
			wr(REFNPU_REG_QUEUE(q, REFNPU_Q_CTRL), REFNPU_Q_CTRL_ENABLE);
		}
		kicks.clear();
	}

	uint64_t rd_pte(uint64_t a) const
	{
		uint64_t v;
		memcpy(&v, &bus[a], 8);
		return v;
	}
	void wr_pte(uint64_t a, uint64_t v) { memcpy(&bus[a], &v, 8); }
	void map_huge(uint64_t root, uint64_t va, uint64_t pa)
	{
		uint64_t t = root;

		for (int l = REFNPU_PT_LEVELS - 1; l > 1; l--) {
			uint64_t slot = t + REFNPU_PT_INDEX(va, l) * REFNPU_PTE_SIZE;
			uint64_t e = rd_pte(slot);

			if (!(e & REFNPU_PTE_VALID)) {
				e = next_table | REFNPU_PTE_VALID;
				next_table += REFNPU_PAGE_SIZE;
				wr_pte(slot, e);
			}
			t = e & REFNPU_PTE_ADDR_MASK;
		}
		wr_pte(t + REFNPU_PT_INDEX(va, 1) * REFNPU_PTE_SIZE,
		       pa | REFNPU_PTE_VALID | REFNPU_PTE_LEAF | REFNPU_PTE_READ |
			       REFNPU_PTE_WRITE);
	}

	uint32_t rd(uint32_t a) { return (uint32_t)refnpu_core_read(&core, a, 4); }
	uint64_t rd64(uint32_t a) { return refnpu_core_read(&core, a, 8); }
	void wr(uint32_t a, uint32_t v) { refnpu_core_write(&core, a, v, 4); }
	void wr64(uint32_t a, uint64_t v) { refnpu_core_write(&core, a, v, 8); }
	uint32_t qrd(unsigned q, uint32_t off) { return rd(REFNPU_REG_QUEUE(q, off)); }
	void qwr(unsigned q, uint32_t off, uint32_t v) { wr(REFNPU_REG_QUEUE(q, off), v); }

	// Queue a job running @cmd (copied to kCmd) on queue @q; ring the doorbell.
	uint64_t submit(unsigned q, const void *cmd, size_t len, uint32_t flags = 0)
	{
		struct refnpu_job_desc d = {};
		uint32_t t = tail[q];

		memcpy(&bus[kCmd + t * 0x200], cmd, len);
		d.ctx_id = kCtx;
		d.flags = flags;
		d.cmd_va = kVa + kCmd + t * 0x200;
		d.cmd_size = len;
		d.completion_addr = comp_addr(q, t);
		d.seq = seq++;
		memset(&bus[d.completion_addr], 0, REFNPU_COMPLETION_SIZE);
		memcpy(&bus[kRing + q * 0x400 + t * REFNPU_JOB_DESC_SIZE], &d, sizeof(d));
		tail[q] = (t + 1) % kRingSize;
		qwr(q, REFNPU_Q_TAIL, tail[q]);
		return d.seq;
	}
	static uint64_t comp_addr(unsigned q, uint32_t slot)
	{
		return kComp + (q * kRingSize + slot) * REFNPU_COMPLETION_SIZE;
	}
	struct refnpu_completion comp(unsigned q, uint32_t slot) const
	{
		struct refnpu_completion c;
		memcpy(&c, &bus[comp_addr(q, slot)], sizeof(c));
		return c;
	}
	void run(unsigned q) { refnpu_core_queue_run(&core, q); }
};

struct refnpu_cmd_copy copy_cmd(uint64_t src_pa, uint64_t dst_pa, uint32_t bytes)
{
	struct refnpu_cmd_copy cp = {};

	cp.hdr.opcode = REFNPU_OP_COPY;
	cp.hdr.len_dw = sizeof(cp) / 4;
	cp.src = {kVa + src_pa, 0};
	cp.dst = {kVa + dst_pa, 0};
	cp.rows = 1;
	cp.row_bytes = bytes;
	return cp;
}

TEST(Core, RoundTripAndLockRules)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x100000, 4096);

	memset(&p.bus[kData], 0x5a, 4096);
	uint64_t seq = p.submit(0, &cp, sizeof(cp), REFNPU_JOB_F_IRQ);
	ASSERT_EQ(p.kicks.size(), 1u);
	EXPECT_EQ(p.kicks[0], 0u);
	p.run(0);
	auto c = p.comp(0, 0);
	EXPECT_EQ(c.done, REFNPU_COMPLETION_DONE);
	EXPECT_EQ(c.status, REFNPU_ERR_NONE);
	EXPECT_EQ(c.seq, seq);
	EXPECT_EQ(p.bus[kData + 0x100000 + 4095], 0x5a);
	EXPECT_EQ(p.qrd(0, REFNPU_Q_HEAD), 1u);
	EXPECT_EQ(p.rd64(REFNPU_REG_QUEUE(0, REFNPU_Q_LAST_SEQ)), seq);
	ASSERT_EQ(p.irqs.size(), 1u);
	EXPECT_EQ(p.irqs[0], (unsigned)REFNPU_MSIX_VEC_QUEUE(0));
	EXPECT_FALSE(p.any_lock_held());
}

// TLB_INVALIDATE reads BUSY while an access that was translated before it
// is still in flight, and the next access walks the page tables again.
TEST(Core, TlbInvalidateBusyWhileAccessInFlight)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x100000, 3 * REFNPU_CORE_DMA_CHUNK);
	int seen = 0;
	uint32_t busy_in_flight = 0, busy_after = 1;

	p.on_data_dma = [&](uint64_t, uint64_t, bool) {
		if (seen++ == 0) {
			p.wr(REFNPU_REG_TLB_INVALIDATE, 1);
			busy_in_flight = p.rd(REFNPU_REG_TLB_INVALIDATE);
		} else if (seen == 2) {
			// A later access uses the new generation: not busy.
			busy_after = p.rd(REFNPU_REG_TLB_INVALIDATE);
		}
	};
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(busy_in_flight, (uint32_t)REFNPU_TLB_INV_BUSY);
	EXPECT_EQ(busy_after, 0u);
	EXPECT_EQ(p.rd(REFNPU_REG_TLB_INVALIDATE), 0u);
	EXPECT_EQ(p.comp(0, 0).status, REFNPU_ERR_NONE);
}

// A translation cached before an invalidation is not used after it: remap
// the destination while the job runs and the rest of the data follows.
TEST(Core, InvalidateDropsCachedTranslations)
{
	Platform p;
	const uint32_t len = 4 * REFNPU_CORE_DMA_CHUNK; // within one 2 MiB page
	auto cp = copy_cmd(kData, kData + 0x200000, len);
	int writes = 0;

	memset(&p.bus[kData], 0x77, len);
	p.on_data_dma = [&](uint64_t, uint64_t, bool write) {
		if (write && writes++ == 0) {
			// Move the destination page to kData + 0x400000.
			p.map_huge(kTables, kVa + kData + 0x200000, kData + 0x400000);
			p.wr(REFNPU_REG_TLB_INVALIDATE, 1);
		}
	};
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(p.comp(0, 0).status, REFNPU_ERR_NONE);
	// The first chunk went to the old page, the rest to the new one.
	EXPECT_EQ(p.bus[kData + 0x200000], 0x77);
	EXPECT_EQ(p.bus[kData + 0x200000 + REFNPU_CORE_DMA_CHUNK], 0);
	EXPECT_EQ(p.bus[kData + 0x400000 + REFNPU_CORE_DMA_CHUNK], 0x77);
	EXPECT_EQ(p.bus[kData + 0x400000 + len - 1], 0x77);
}

// Transfers are cut into REFNPU_CORE_DMA_CHUNK pieces and a reset stops a
// job at the next piece: the job's record says ABORTED, the queue resets.
TEST(Core, ResetStopsTransferWithinOneChunk)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x200000, 1 << 20);
	unsigned after_reset = 0;
	bool reset = false;

	p.on_data_dma = [&](uint64_t, uint64_t, bool) {
		if (reset)
			after_reset++;
		if (p.data_dmas == 3) {
			p.qwr(0, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
			EXPECT_TRUE(p.qrd(0, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_RESETTING);
			reset = true;
		}
	};
	uint64_t seq = p.submit(0, &cp, sizeof(cp), REFNPU_JOB_F_IRQ);
	p.run(0);
	EXPECT_EQ(after_reset, 0u);
	auto c = p.comp(0, 0);
	EXPECT_EQ(c.done, REFNPU_COMPLETION_DONE);
	EXPECT_EQ(c.status, REFNPU_ERR_ABORTED);
	EXPECT_EQ(c.seq, seq);
	EXPECT_EQ(c.ctx_id, kCtx);
	EXPECT_EQ(c.fault_va, 0u);
	EXPECT_EQ(c.fault_flags, 0u);
	// Not a completion: no interrupt, no fault, HEAD cleared by the reset.
	EXPECT_TRUE(p.irqs.empty());
	EXPECT_EQ(p.rd(REFNPU_REG_FAULT_STATUS), 0u);
	EXPECT_EQ(p.qrd(0, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_RESETTING, 0u);
	EXPECT_EQ(p.qrd(0, REFNPU_Q_CTRL), 0u);
	EXPECT_EQ(p.qrd(0, REFNPU_Q_HEAD), 0u);
	for (uint64_t l : p.dma_lens)
		EXPECT_LE(l, (uint64_t)REFNPU_CORE_DMA_CHUNK);
}

// Queue two 1 MiB copies on @q and run it; @reset runs at the second data
// DMA of the first one, so that it meets that job part-way.
void run_two_copies_resetting(Platform &p, unsigned q, const std::function<void()> &reset)
{
	auto cp = copy_cmd(kData, kData + 0x200000, 1 << 20);

	p.on_data_dma = [&](uint64_t, uint64_t, bool) {
		if (p.data_dmas == 2)
			reset();
	};
	p.submit(q, &cp, sizeof(cp));
	p.submit(q, &cp, sizeof(cp));
	p.run(q);
}

// Only the job the device had fetched gets an ABORTED record; the jobs
// behind it in the ring get none, so a driver can tell which had started.
TEST(Core, ResetRecordsOnlyTheStartedJob)
{
	Platform p;

	run_two_copies_resetting(p, 1, [&] { p.qwr(1, REFNPU_Q_RESET, REFNPU_Q_RESET_GO); });
	EXPECT_EQ(p.comp(1, 0).done, REFNPU_COMPLETION_DONE);
	EXPECT_EQ(p.comp(1, 0).status, REFNPU_ERR_ABORTED);
	EXPECT_EQ(p.comp(1, 1).done, 0u);
	EXPECT_EQ(p.data_dmas, 2u);
}

// A device reset does the same on every queue with a job in flight.
TEST(Core, DeviceResetRecordsAbortedJobs)
{
	Platform p;

	run_two_copies_resetting(p, 2, [&] {
		p.wr(REFNPU_REG_RESET, REFNPU_RESET_GO);
		EXPECT_FALSE(p.rd(REFNPU_REG_STATUS) & REFNPU_STATUS_READY);
	});
	EXPECT_EQ(p.comp(2, 0).status, REFNPU_ERR_ABORTED);
	EXPECT_EQ(p.comp(2, 0).done, REFNPU_COMPLETION_DONE);
	EXPECT_EQ(p.comp(2, 1).done, 0u);
	EXPECT_TRUE(p.rd(REFNPU_REG_STATUS) & REFNPU_STATUS_READY);
	EXPECT_EQ(p.rd(REFNPU_REG_FAULT_STATUS), 0u);
}

// A hard reset (system or function reset) writes nothing, also when it
// comes while a register reset is still waiting for the job to stop.
TEST(Core, HardResetWritesNoRecord)
{
	for (bool after_register_reset : {false, true}) {
		Platform p;
		auto cp = copy_cmd(kData, kData + 0x200000, 1 << 20);

		p.on_data_dma = [&](uint64_t, uint64_t, bool) {
			if (p.data_dmas != 2)
				return;
			if (after_register_reset)
				p.wr(REFNPU_REG_RESET, REFNPU_RESET_GO);
			refnpu_core_hard_reset(&p.core);
		};
		p.submit(0, &cp, sizeof(cp));
		p.run(0);
		EXPECT_EQ(p.comp(0, 0).done, 0u) << after_register_reset;
		EXPECT_EQ(p.comp(0, 0).status, 0u) << after_register_reset;
		EXPECT_FALSE(refnpu_core_resetting(&p.core));
	}
}

// The record goes where the checked descriptor said when it was fetched:
// rewriting the ring meanwhile cannot aim it elsewhere, and a descriptor
// whose completion address fails the checks never runs, so a reset has
// nothing to record for it.
TEST(Core, AbortRecordOnlyAtTheCheckedAddress)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x200000, 1 << 20);
	const uint64_t elsewhere = kData + 0x400000;
	const uint64_t desc = kRing + offsetof(struct refnpu_job_desc, completion_addr);

	p.on_data_dma = [&](uint64_t, uint64_t, bool) {
		if (p.data_dmas == 2) {
			memcpy(&p.bus[desc], &elsewhere, sizeof(elsewhere));
			p.qwr(0, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
		}
	};
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(p.comp(0, 0).status, REFNPU_ERR_ABORTED);
	for (unsigned i = 0; i < REFNPU_COMPLETION_SIZE; i++)
		ASSERT_EQ(p.bus[elsewhere + i], 0) << i;

	// Misaligned: the queue halts at the descriptor, nothing runs.
	p.on_data_dma = nullptr;
	p.qwr(0, REFNPU_Q_RING_BASE, kRing);
	p.qwr(0, REFNPU_Q_RING_SIZE, kRingSize);
	p.qwr(0, REFNPU_Q_CTRL, REFNPU_Q_CTRL_ENABLE);
	p.tail[0] = 0;
	p.submit(0, &cp, sizeof(cp));
	const uint64_t bad = elsewhere + 8;
	memcpy(&p.bus[desc], &bad, sizeof(bad));
	unsigned dmas = p.data_dmas;
	p.run(0);
	EXPECT_TRUE(p.qrd(0, REFNPU_Q_STATUS) & REFNPU_Q_STATUS_ERROR);
	p.qwr(0, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
	p.run(0);
	EXPECT_EQ(p.data_dmas, dmas);
	for (unsigned i = 0; i < 2 * REFNPU_COMPLETION_SIZE; i++)
		ASSERT_EQ(p.bus[elsewhere + i], 0) << i;
}

// One large transfer, as the QEMU model's GEMM fast path issues for a whole
// row: refnpu_core_job_rw() stops at the next chunk once the job must stop.
TEST(Core, JobTransferStopsWithinOneChunk)
{
	Platform p;
	std::vector<uint8_t> buf(2 << 20);
	struct refnpu_core_job job = {};
	__u64 fault_va = 0;

	job.q = &p.core.queues[0];
	job.ctx = kCtx;
	job.pt_root = kTables;
	job.start_ns = p.now;
	p.on_data_dma = [&](uint64_t, uint64_t, bool) {
		if (p.data_dmas == 2)
			refnpu_core_stop(&p.core);
	};
	EXPECT_EQ(refnpu_core_job_rw(&job, kVa + kData, buf.data(), buf.size(), false, &fault_va),
		  REFNPU_ERR_ABORTED);
	EXPECT_EQ(p.data_dmas, 2u);
	EXPECT_EQ(fault_va, kVa + kData + 2 * REFNPU_CORE_DMA_CHUNK);
}

// An idle queue resets at once, with no worker involved.
TEST(Core, IdleQueueResetsSynchronously)
{
	Platform p;

	p.qwr(1, REFNPU_Q_WATCHDOG_MS, 7);
	p.qwr(1, REFNPU_Q_RESET, REFNPU_Q_RESET_GO);
	EXPECT_EQ(p.qrd(1, REFNPU_Q_WATCHDOG_MS), 0u);
	EXPECT_EQ(p.qrd(1, REFNPU_Q_STATUS), 0u);
	p.wr(REFNPU_REG_RESET, REFNPU_RESET_GO);
	EXPECT_TRUE(p.rd(REFNPU_REG_STATUS) & REFNPU_STATUS_READY);
	EXPECT_FALSE(refnpu_core_resetting(&p.core));
	EXPECT_EQ(p.rd64(REFNPU_REG_CTX_TABLE_BASE), 0u);
}

// An injected REFNPU_ERR_ABORTED is a job status like any other: the job
// completes with it, HEAD moves past it, and it does not run again.
TEST(Core, InjectedAbortedCompletes)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x100000, 256);

	memset(&p.bus[kData], 0x11, 256);
	p.qwr(0, REFNPU_Q_DBG_ERROR, REFNPU_ERR_ABORTED);
	p.qwr(0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_ERROR);
	uint64_t seq = p.submit(0, &cp, sizeof(cp));
	p.run(0);
	auto c = p.comp(0, 0);
	EXPECT_EQ(c.done, REFNPU_COMPLETION_DONE);
	EXPECT_EQ(c.status, REFNPU_ERR_ABORTED);
	EXPECT_EQ(p.qrd(0, REFNPU_Q_HEAD), 1u);
	EXPECT_EQ(p.rd64(REFNPU_REG_QUEUE(0, REFNPU_Q_LAST_SEQ)), seq);
	EXPECT_EQ(p.bus[kData + 0x100000], 0);
	p.run(0);
	EXPECT_EQ(p.data_dmas, 0u);
}

TEST(Core, TimestampHighHalfLatched)
{
	Platform p;

	p.now = 0xfffffff0ULL;
	uint32_t lo = p.rd(REFNPU_REG_TIMESTAMP);
	p.now += 0x100;
	uint32_t hi = p.rd(REFNPU_REG_TIMESTAMP + 4);
	EXPECT_EQ(((uint64_t)hi << 32) | lo, 0xfffffff0ULL);
	EXPECT_EQ(p.rd64(REFNPU_REG_TIMESTAMP), 0x1000000f0ULL);
}

// REFNPU_Q_WATCHDOG_MS * 10^6 does not wrap 32 bits; the watchdog fires
// at its time.
TEST(Core, WatchdogLargeValue)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x100000, 8 * REFNPU_CORE_DMA_CHUNK);

	p.qwr(0, REFNPU_Q_WATCHDOG_MS, 4295);
	p.on_data_dma = [&](uint64_t, uint64_t, bool) { p.now += 1000000; };
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(p.comp(0, 0).status, REFNPU_ERR_NONE);

	p.qwr(0, REFNPU_Q_WATCHDOG_MS, 3);
	cp = copy_cmd(kData, kData + 0x100000, 64 * REFNPU_CORE_DMA_CHUNK);
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(p.comp(0, 1).status, REFNPU_ERR_TIMEOUT);
}

// Without a wait op (a synchronous platform) a hang ends as the watchdog.
TEST(Core, SynchronousHangTimesOut)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x100000, 16);

	p.qwr(2, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_HANG);
	p.submit(2, &cp, sizeof(cp));
	p.run(2);
	EXPECT_EQ(p.comp(2, 0).status, REFNPU_ERR_TIMEOUT);
}

// While paused, an access waits before it starts, with nothing in flight
// (refnpu_core_dma_idle() true): a VM stop sees no DMA until resumed.
TEST(Core, PauseHoldsAccessesOutOfFlight)
{
	Platform p(true);
	auto cp = copy_cmd(kData, kData + 0x100000, 4 * REFNPU_CORE_DMA_CHUNK);
	unsigned dmas_while_paused = 0;
	bool idle_in_wait = true;

	p.on_data_dma = [&](uint64_t, uint64_t, bool) {
		if (p.data_dmas == 2)
			refnpu_core_set_paused(&p.core, true);
		else if (p.core.paused)
			dmas_while_paused++;
	};
	p.on_wait = [&]() {
		idle_in_wait &= refnpu_core_dma_idle(&p.core);
		if (p.waits == 3)
			refnpu_core_set_paused(&p.core, false);
	};
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(dmas_while_paused, 0u);
	EXPECT_TRUE(idle_in_wait);
	EXPECT_EQ(p.waits, 3u);
	EXPECT_EQ(p.comp(0, 0).status, REFNPU_ERR_NONE);
}

// A paused queue starts no job; stopping ends a paused wait with no trace.
TEST(Core, StopEndsPausedJob)
{
	Platform p(true);
	auto cp = copy_cmd(kData, kData + 0x100000, 2 * REFNPU_CORE_DMA_CHUNK);

	p.on_data_dma = [&](uint64_t, uint64_t, bool) { refnpu_core_set_paused(&p.core, true); };
	p.on_wait = [&]() { refnpu_core_stop(&p.core); };
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(p.comp(0, 0).done, 0u);
	EXPECT_EQ(p.data_dmas, 1u);
	p.submit(0, &cp, sizeof(cp));
	p.run(0);
	EXPECT_EQ(p.data_dmas, 1u);
}

// refnpu_core_queue_run_jobs() stops at its budget and says so.
TEST(Core, RunJobsBudget)
{
	Platform p;
	auto cp = copy_cmd(kData, kData + 0x100000, 16);

	for (int i = 0; i < 5; i++)
		p.submit(0, &cp, sizeof(cp));
	EXPECT_TRUE(refnpu_core_queue_run_jobs(&p.core, 0, 2));
	EXPECT_EQ(p.qrd(0, REFNPU_Q_HEAD), 2u);
	EXPECT_TRUE(refnpu_core_queue_run_jobs(&p.core, 0, 2));
	EXPECT_FALSE(refnpu_core_queue_run_jobs(&p.core, 0, 2));
	EXPECT_EQ(p.qrd(0, REFNPU_Q_HEAD), 5u);
}

// Stray DMA injection writes the bus only where the platform allows it.
TEST(Core, StrayDmaOnlyWhereAllowed)
{
	for (bool allowed : {false, true}) {
		Platform p(false, allowed);
		auto cp = copy_cmd(kData, kData + 0x100000, 16);

		p.wr64(REFNPU_REG_QUEUE(0, REFNPU_Q_DBG_FAULT_VA), kData + 0x300000);
		p.qwr(0, REFNPU_Q_DBG_INJECT, REFNPU_DBG_INJECT_STRAY_DMA);
		p.submit(0, &cp, sizeof(cp));
		p.run(0);
		EXPECT_EQ(p.comp(0, 0).status, allowed ? REFNPU_ERR_NONE : REFNPU_ERR_UNSUPPORTED);
		EXPECT_EQ(p.bus[kData + 0x300000], allowed ? REFNPU_DBG_STRAY_DMA_PATTERN : 0);
	}
}

// 64-bit reads take both halves in one lock section; writes of the two
// halves of a 64-bit register land in order.
TEST(Core, SixtyFourBitRegisters)
{
	Platform p;

	p.wr64(REFNPU_REG_QUEUE(3, REFNPU_Q_RING_BASE), 0x123456789abcdef0ULL);
	EXPECT_EQ(p.rd64(REFNPU_REG_QUEUE(3, REFNPU_Q_RING_BASE)), 0x123456789abcdef0ULL);
	EXPECT_EQ(p.qrd(3, REFNPU_Q_RING_BASE + 4), 0x12345678u);
	// Queues beyond NUM_QUEUES read as zero and ignore writes.
	p.wr(REFNPU_REG_QUEUE(9, REFNPU_Q_RING_SIZE), 16);
	EXPECT_EQ(p.rd(REFNPU_REG_QUEUE(9, REFNPU_Q_RING_SIZE)), 0u);
}

} // namespace
