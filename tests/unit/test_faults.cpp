// SPDX-License-Identifier: MIT
//
// Faults in the middle of commands: a failing callback must stop the job
// with the callee's code, the exact faulting VA, the access direction and
// the failing command's index and offset.  Also the checkpoint (yield and
// abort) and the fp32 GEMM fast-path hook.
#include <cmath>

#include "harness.h"

using namespace refnpu_test;

namespace {

struct Operand {
	const char *name;
	uint64_t lo, hi;
	bool written;
};

// One valid instance of every opcode, with the address ranges it touches.
struct OpCase {
	const char *name;
	std::vector<uint8_t> cmd;
	std::vector<Operand> operands;
};

template <typename T>
std::vector<uint8_t> encode(T c, uint16_t op)
{
	c.hdr.opcode = op;
	c.hdr.len_dw = sizeof(T) / 4;
	std::vector<uint8_t> b(sizeof(T));
	std::memcpy(b.data(), &c, sizeof(T));
	return b;
}

std::vector<OpCase> all_ops(FlatMem &m)
{
	std::vector<OpCase> v;
	auto region = [&](uint64_t bytes) { return m.alloc(bytes, 64); };
	{
		refnpu_cmd_copy c{};
		c.rows = 4;
		c.row_bytes = 300;
		c.src = t2d(region(1200), 300);
		c.dst = t2d(region(1200), 300);
		v.push_back({"copy",
			     encode(c, REFNPU_OP_COPY),
			     {{"src", c.src.va, c.src.va + 1200, false},
			      {"dst", c.dst.va, c.dst.va + 1200, true}}});
	}
	{
		refnpu_cmd_fill f{};
		f.rows = 2;
		f.row_bytes = 512;
		f.pattern_bytes = 4;
		f.dst = t2d(region(1024), 512);
		v.push_back({"fill",
			     encode(f, REFNPU_OP_FILL),
			     {{"dst", f.dst.va, f.dst.va + 1024, true}}});
	}
	for (uint32_t in : {REFNPU_DTYPE_FP32, REFNPU_DTYPE_BF16, REFNPU_DTYPE_INT8}) {
		refnpu_cmd_gemm g{};
		uint32_t es = REFNPU_DTYPE_SIZE(in);
		g.hdr.flags = REFNPU_GEMM_F_BIAS;
		g.m = 9;
		g.n = 40;
		g.k = 35;
		g.in_dtype = in;
		g.out_dtype = in == REFNPU_DTYPE_INT8 ? REFNPU_DTYPE_INT32 : in;
		uint32_t oes = REFNPU_DTYPE_SIZE(g.out_dtype);
		g.a = t2d(region(9 * 35 * es), 35 * es);
		g.b = t2d(region(35 * 40 * es), 40 * es);
		g.c = t2d(region(9 * 40 * oes), 40 * oes);
		g.bias_va = region(160);
		m.put(g.a.va, std::vector<uint8_t>(9 * 35 * es, 0));
		m.put(g.b.va, std::vector<uint8_t>(35 * 40 * es, 0));
		m.put(g.bias_va, std::vector<uint8_t>(160, 0));
		v.push_back({"gemm",
			     encode(g, REFNPU_OP_GEMM),
			     {{"a", g.a.va, g.a.va + 9 * 35 * es, false},
			      {"b", g.b.va, g.b.va + 35 * 40 * es, false},
			      {"bias", g.bias_va, g.bias_va + 160, false},
			      {"c", g.c.va, g.c.va + 9 * 40 * oes, true}}});
	}
	for (uint32_t bc = 0; bc < REFNPU_BCAST_COUNT; bc++) {
		refnpu_cmd_ewise e{};
		e.rows = 3;
		e.cols = 70;
		e.bcast = bc;
		e.op = REFNPU_EWISE_MUL;
		e.a = t2d(region(840), 280);
		e.b = t2d(region(840), bc == REFNPU_BCAST_COL ? 4 : 280);
		e.out = t2d(region(840), 280);
		uint64_t blen = bc == REFNPU_BCAST_NONE	 ? 840
				: bc == REFNPU_BCAST_ROW ? 280
				: bc == REFNPU_BCAST_COL ? 12
							 : 4;
		v.push_back({"ewise",
			     encode(e, REFNPU_OP_EWISE),
			     {{"a", e.a.va, e.a.va + 840, false},
			      {"b", e.b.va, e.b.va + blen, false},
			      {"out", e.out.va, e.out.va + 840, true}}});
	}
	{
		refnpu_cmd_act a{};
		a.rows = 2;
		a.cols = 100;
		a.func = REFNPU_ACT_GELU;
		a.src = t2d(region(800), 400);
		a.dst = t2d(region(800), 400);
		v.push_back({"act",
			     encode(a, REFNPU_OP_ACT),
			     {{"src", a.src.va, a.src.va + 800, false},
			      {"dst", a.dst.va, a.dst.va + 800, true}}});
	}
	{
		refnpu_cmd_softmax s{};
		s.rows = 2;
		s.cols = 100;
		s.src = t2d(region(800), 400);
		s.dst = t2d(region(800), 400);
		v.push_back({"softmax",
			     encode(s, REFNPU_OP_SOFTMAX),
			     {{"src", s.src.va, s.src.va + 800, false},
			      {"dst", s.dst.va, s.dst.va + 800, true}}});
	}
	{
		refnpu_cmd_layernorm l{};
		l.hdr.flags = REFNPU_LN_F_GAMMA | REFNPU_LN_F_BETA;
		l.rows = 2;
		l.cols = 100;
		l.src = t2d(region(800), 400);
		l.dst = t2d(region(800), 400);
		l.gamma_va = region(400);
		l.beta_va = region(400);
		v.push_back({"layernorm",
			     encode(l, REFNPU_OP_LAYERNORM),
			     {{"src", l.src.va, l.src.va + 800, false},
			      {"gamma", l.gamma_va, l.gamma_va + 400, false},
			      {"beta", l.beta_va, l.beta_va + 400, false},
			      {"dst", l.dst.va, l.dst.va + 800, true}}});
	}
	{
		refnpu_cmd_conv2d c{};
		c.hdr.flags = REFNPU_CONV_F_BIAS;
		c.n = 1;
		c.h = 5;
		c.w = 5;
		c.c = 3;
		c.oc = 4;
		c.kh = c.kw = 3;
		c.stride_h = c.stride_w = c.dil_h = c.dil_w = 1;
		c.pad_top = c.pad_bottom = c.pad_left = c.pad_right = 1;
		c.in = {region(300), 60, 300};
		c.out = {region(400), 80, 400};
		c.filter = t2d(region(27 * 16), 16);
		c.bias_va = region(16);
		v.push_back({"conv2d",
			     encode(c, REFNPU_OP_CONV2D),
			     {{"in", c.in.va, c.in.va + 300, false},
			      {"filter", c.filter.va, c.filter.va + 432, false},
			      {"bias", c.bias_va, c.bias_va + 16, false},
			      {"out", c.out.va, c.out.va + 400, true}}});
	}
	for (uint32_t mode = 0; mode < REFNPU_POOL_COUNT; mode++) {
		refnpu_cmd_pool2d p{};
		p.n = 1;
		p.h = 4;
		p.w = 4;
		p.c = 3;
		p.kh = p.kw = 2;
		p.stride_h = p.stride_w = 2;
		p.mode = mode;
		p.in = {region(192), 48, 192};
		p.out = {region(48), 24, 48};
		v.push_back({"pool2d",
			     encode(p, REFNPU_OP_POOL2D),
			     {{"in", p.in.va, p.in.va + 192, false},
			      {"out", p.out.va, p.out.va + 48, true}}});
	}
	return v;
}

} // namespace

// For every op and operand, a fault injected on the operand (after letting
// a few accesses through, so that it hits mid-operation) is reported with
// the injected code, a VA inside the operand, the access direction and the
// index/offset of the command (which follows a NOP).
TEST(Faults, EveryOperandOfEveryOp)
{
	FlatMem m(16 << 20);
	auto ops = all_ops(m);
	int cases = 0;
	for (auto &oc : ops) {
		// Baseline: the op runs cleanly.
		CmdBuf ok;
		ok.raw(oc.cmd);
		ASSERT_EQ(ok.run(m).status, 0u) << oc.name;
		for (auto &opd : oc.operands) {
			for (int skip : {0, 1, 3}) {
				for (uint32_t code :
				     {static_cast<uint32_t>(REFNPU_ERR_DMA),
				      static_cast<uint32_t>(REFNPU_ERR_MMU_UNMAPPED)}) {
					m.inject = FlatMem::Inject{opd.lo,	 opd.hi,      code,
								   !opd.written, opd.written, skip};
					CmdBuf cb;
					cb.add(refnpu_cmd_nop{}, REFNPU_OP_NOP).raw(oc.cmd);
					auto res = cb.run(m);
					bool passed_through = !m.inject->fired;
					m.inject.reset();
					if (passed_through)
						continue; // operand touched fewer times than skip
					cases++;
					EXPECT_EQ(res.status, code)
						<< oc.name << "." << opd.name << " skip " << skip;
					EXPECT_EQ(res.fault_va, m.last_fault_va)
						<< oc.name << "." << opd.name;
					EXPECT_GE(res.fault_va, opd.lo)
						<< oc.name << "." << opd.name;
					EXPECT_LT(res.fault_va, opd.hi)
						<< oc.name << "." << opd.name;
					EXPECT_EQ(res.fault_flags,
						  opd.written ? static_cast<uint32_t>(
									REFNPU_FAULT_F_WRITE)
							      : 0u)
						<< oc.name << "." << opd.name;
					EXPECT_EQ(res.cmd_index, 1u);
					EXPECT_EQ(res.cmd_offset,
						  static_cast<uint32_t>(REFNPU_CMD_NOP_SIZE));
				}
			}
		}
	}
	EXPECT_GT(cases, 100);
}

TEST(Faults, ExactVaAndPartialProgress)
{
	// COPY of 4 rows of 1000 bytes where the source's second page is
	// unmapped: rows entirely below the page are copied, the fault names
	// the first byte of the page.
	FlatMem m;
	uint64_t src = m.alloc_pages(2), dst = m.alloc_pages(2);
	m.set_perm(src + FlatMem::kPage, FlatMem::kPage, FlatMem::kNone);
	std::vector<uint8_t> data(4096);
	for (size_t i = 0; i < data.size(); i++)
		data[i] = static_cast<uint8_t>(i * 7);
	m.put(src, data);
	refnpu_cmd_copy c{};
	c.rows = 5;
	c.row_bytes = 1000;
	c.src = t2d(src, 1000);
	c.dst = t2d(dst, 1000);
	auto res = run1(m, c, REFNPU_OP_COPY);
	EXPECT_STATUS(res, REFNPU_ERR_MMU_UNMAPPED);
	EXPECT_EQ(res.fault_va, src + FlatMem::kPage);
	EXPECT_EQ(res.fault_flags, 0u);
	EXPECT_EQ(m.get<uint8_t>(dst, 4000),
		  std::vector<uint8_t>(data.begin(), data.begin() + 4000));
}

TEST(Faults, PermissionBits)
{
	FlatMem m;
	uint64_t ro = m.alloc_pages(1), wo = m.alloc_pages(1), rw = m.alloc_pages(1);
	m.set_perm(ro, 1, FlatMem::kR);
	m.set_perm(wo, 1, FlatMem::kW);
	refnpu_cmd_act a{};
	a.rows = 2;
	a.cols = 64;
	a.func = REFNPU_ACT_RELU;
	a.src = t2d(rw, 256);
	a.dst = t2d(ro + 512, 256);
	auto res = run1(m, a, REFNPU_OP_ACT);
	EXPECT_STATUS(res, REFNPU_ERR_MMU_WRITE_PERM);
	EXPECT_EQ(res.fault_va, ro + 512);
	EXPECT_EQ(res.fault_flags, static_cast<uint32_t>(REFNPU_FAULT_F_WRITE));

	a.src = t2d(wo + 256, 256);
	a.dst = t2d(rw, 256);
	res = run1(m, a, REFNPU_OP_ACT);
	EXPECT_STATUS(res, REFNPU_ERR_MMU_READ_PERM);
	EXPECT_EQ(res.fault_va, wo + 256);
	EXPECT_EQ(res.fault_flags, 0u);
}

TEST(Faults, CommandFetch)
{
	FlatMem m;
	uint64_t page = m.alloc_pages(2);
	// Fill the first page with NOPs so the second page holds command 512.
	std::vector<uint8_t> nops;
	for (int i = 0; i < 512; i++) {
		auto h = refnpu_cmd_hdr{REFNPU_OP_NOP, 0, 2};
		auto *p = reinterpret_cast<uint8_t *>(&h);
		nops.insert(nops.end(), p, p + 8);
	}
	m.put(page, nops);
	m.set_perm(page + FlatMem::kPage, FlatMem::kPage, FlatMem::kNone);
	refnpu_engine_result res{};
	refnpu_engine_run(m.env(), page, FlatMem::kPage + 64, &res);
	EXPECT_STATUS(res, REFNPU_ERR_MMU_UNMAPPED);
	EXPECT_EQ(res.cmd_index, 512u);
	EXPECT_EQ(res.cmd_offset, FlatMem::kPage);
	EXPECT_EQ(res.fault_va, page + FlatMem::kPage);
	EXPECT_EQ(res.fault_flags, static_cast<uint32_t>(REFNPU_FAULT_F_CMD_FETCH));

	// A command whose body (not header) crosses into the unmapped page.
	refnpu_cmd_softmax s{};
	s.hdr = {REFNPU_OP_SOFTMAX, 0, REFNPU_CMD_SOFTMAX_SIZE / 4};
	std::vector<uint8_t> b(sizeof(s));
	std::memcpy(b.data(), &s, sizeof(s));
	m.put(page + FlatMem::kPage - 16, b);
	refnpu_engine_run(m.env(), page + FlatMem::kPage - 16, 56, &res);
	EXPECT_STATUS(res, REFNPU_ERR_MMU_UNMAPPED);
	EXPECT_EQ(res.cmd_index, 0u);
	EXPECT_EQ(res.fault_va, page + FlatMem::kPage);
	EXPECT_EQ(res.fault_flags, static_cast<uint32_t>(REFNPU_FAULT_F_CMD_FETCH));
}

TEST(Faults, CheckpointYieldsAndAborts)
{
	FlatMem m;
	refnpu_cmd_gemm g{};
	g.m = g.n = g.k = 96;
	g.a = t2d(m.alloc(96 * 384), 384);
	g.b = t2d(m.alloc(96 * 384), 384);
	g.c = t2d(m.alloc(96 * 384), 384);
	m.put(g.a.va, std::vector<float>(96 * 96, 1.0f));
	m.put(g.b.va, std::vector<float>(96 * 96, 1.0f));
	EXPECT_OK(run1(m, g, REFNPU_OP_GEMM));
	// 96^3 MACs / REFNPU_ENGINE_CHUNK_WORK
	EXPECT_GE(m.checkpoints, 96ULL * 96 * 96 / REFNPU_ENGINE_CHUNK_WORK);
	EXPECT_LE(m.checkpoints, 96ULL * 96 * 96 / REFNPU_ENGINE_CHUNK_WORK + 2);

	m.checkpoints = 0;
	m.stop_code = REFNPU_ERR_ABORTED;
	m.stop_after = 3;
	auto res = run1(m, g, REFNPU_OP_GEMM);
	EXPECT_STATUS(res, REFNPU_ERR_ABORTED);
	EXPECT_EQ(res.fault_va, 0u);
	EXPECT_EQ(m.checkpoints, 4u);

	// Without a checkpoint callback the op simply completes.
	m.mutable_env()->checkpoint = nullptr;
	EXPECT_OK(run1(m, g, REFNPU_OP_GEMM));
	EXPECT_EQ(m.get1<float>(g.c.va), 96.0f);
}

namespace {
struct Hook {
	int calls = 0;
	uint32_t ret = REFNPU_ENGINE_DECLINED;
	FlatMem *mem = nullptr;
};
Hook *g_hook;

__u32 hook_fn(void *, const struct refnpu_cmd_gemm *cmd, __u64 *fva, __u32 *flags)
{
	g_hook->calls++;
	if (g_hook->ret == REFNPU_ERR_NONE) {
		// A "fast path" that writes a recognisable result.
		for (uint32_t i = 0; i < cmd->m; i++)
			g_hook->mem->put(cmd->c.va + i * cmd->c.pitch,
					 std::vector<float>(cmd->n, 42.0f));
	} else if (g_hook->ret != REFNPU_ENGINE_DECLINED) {
		*fva = cmd->c.va + 4;
		*flags = REFNPU_FAULT_F_WRITE;
	}
	return g_hook->ret;
}
} // namespace

TEST(Faults, GemmFastPathHook)
{
	FlatMem m;
	Hook h;
	h.mem = &m;
	g_hook = &h;
	m.mutable_env()->gemm_f32 = hook_fn;
	refnpu_cmd_gemm g{};
	g.m = 2;
	g.n = 3;
	g.k = 4;
	g.a = t2d(m.alloc(32), 16);
	g.b = t2d(m.alloc(48), 12);
	g.c = t2d(m.alloc(24), 12);
	m.put(g.a.va, std::vector<float>(8, 1.0f));
	m.put(g.b.va, std::vector<float>(12, 2.0f));

	EXPECT_OK(run1(m, g, REFNPU_OP_GEMM)); // declined -> reference
	EXPECT_EQ(h.calls, 1);
	EXPECT_EQ(m.get<float>(g.c.va, 6), std::vector<float>(6, 8.0f));

	h.ret = REFNPU_ERR_NONE;
	EXPECT_OK(run1(m, g, REFNPU_OP_GEMM));
	EXPECT_EQ(m.get<float>(g.c.va, 6), std::vector<float>(6, 42.0f));

	h.ret = REFNPU_ERR_DMA;
	auto res = run1(m, g, REFNPU_OP_GEMM);
	EXPECT_STATUS(res, REFNPU_ERR_DMA);
	EXPECT_EQ(res.fault_va, g.c.va + 4);
	EXPECT_EQ(res.fault_flags, static_cast<uint32_t>(REFNPU_FAULT_F_WRITE));

	// Not called for other dtypes, empty outputs or invalid commands.
	int calls = h.calls;
	g.in_dtype = REFNPU_DTYPE_BF16;
	g.a.pitch = 8;
	g.b.pitch = 6;
	EXPECT_OK(run1(m, g, REFNPU_OP_GEMM));
	g.in_dtype = REFNPU_DTYPE_FP32;
	g.m = 0;
	EXPECT_OK(run1(m, g, REFNPU_OP_GEMM));
	g.m = 2;
	EXPECT_STATUS(run1(m, g, REFNPU_OP_GEMM), REFNPU_ERR_MALFORMED); // pitch < row
	EXPECT_EQ(h.calls, calls);
	g_hook = nullptr;
}

TEST(Faults, TransfersAreBounded)
{
	// Large rows are streamed in bounded pieces, never in one transfer.
	FlatMem m;
	refnpu_cmd_act a{};
	a.rows = 1;
	a.cols = 100000;
	a.func = REFNPU_ACT_RELU;
	a.src = a.dst = t2d(m.alloc(400000), 400000);
	EXPECT_OK(run1(m, a, REFNPU_OP_ACT));
	EXPECT_LE(m.max_xfer, 256u);
}
