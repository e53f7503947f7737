// SPDX-License-Identifier: MIT
//
// Malformed command buffers and operands: each must fail with the
// documented code at the right command, without touching memory it should
// not, and random garbage must never crash the engine.
#include "harness.h"

using namespace refnpu_test;

namespace {

refnpu_cmd_gemm good_gemm(FlatMem &m)
{
	refnpu_cmd_gemm g{};
	g.m = 3;
	g.n = 4;
	g.k = 5;
	g.in_dtype = g.out_dtype = REFNPU_DTYPE_FP32;
	g.a = t2d(m.alloc(3 * 20), 20);
	g.b = t2d(m.alloc(5 * 16), 16);
	g.c = t2d(m.alloc(3 * 16), 16);
	return g;
}

std::vector<uint8_t> hdr_bytes(uint16_t opcode, uint16_t flags, uint32_t len_dw, size_t total)
{
	std::vector<uint8_t> b(total, 0);
	refnpu_cmd_hdr h{opcode, flags, len_dw};
	std::memcpy(b.data(), &h, sizeof(h));
	return b;
}

refnpu_engine_result run_raw(FlatMem &m, const std::vector<uint8_t> &bytes, uint64_t size)
{
	uint64_t va = m.alloc(bytes.size() + 8, 8);
	m.put(va, bytes);
	refnpu_engine_result res{};
	refnpu_engine_run(m.env(), va, size, &res);
	return res;
}

} // namespace

TEST(Malformed, BufferLevel)
{
	FlatMem m;
	std::vector<uint8_t> nop = hdr_bytes(REFNPU_OP_NOP, 0, 2, 8);
	refnpu_engine_result res{};

	// size not a multiple of 8
	EXPECT_STATUS(run_raw(m, nop, 4), REFNPU_ERR_MALFORMED);
	// misaligned buffer
	uint64_t va = m.alloc(16, 8) + 4;
	EXPECT_EQ(refnpu_engine_run(m.env(), va, 8, &res),
		  static_cast<uint32_t>(REFNPU_ERR_MALFORMED));
	// too large, and wrapping the address space
	EXPECT_EQ(refnpu_engine_run(m.env(), FlatMem::kBase, REFNPU_CMDBUF_MAX_SIZE + 8ULL, &res),
		  static_cast<uint32_t>(REFNPU_ERR_MALFORMED));
	EXPECT_EQ(refnpu_engine_run(m.env(), ~0ULL - 7, 16, &res),
		  static_cast<uint32_t>(REFNPU_ERR_MALFORMED));
	// empty buffer: success, nothing read
	uint64_t reads = m.reads;
	EXPECT_EQ(refnpu_engine_run(m.env(), 0, 0, &res), 0u);
	EXPECT_EQ(res.cmd_index, 0u);
	EXPECT_EQ(m.reads, reads);
}

TEST(Malformed, HeaderLength)
{
	FlatMem m;
	// len 0, len odd, len beyond the buffer, len != opcode size
	EXPECT_STATUS(run_raw(m, hdr_bytes(REFNPU_OP_NOP, 0, 0, 8), 8), REFNPU_ERR_MALFORMED);
	EXPECT_STATUS(run_raw(m, hdr_bytes(REFNPU_OP_NOP, 0, 3, 16), 16), REFNPU_ERR_MALFORMED);
	EXPECT_STATUS(run_raw(m, hdr_bytes(REFNPU_OP_NOP, 0, 4, 8), 8), REFNPU_ERR_MALFORMED);
	EXPECT_STATUS(run_raw(m, hdr_bytes(REFNPU_OP_NOP, 0, 4, 16), 16), REFNPU_ERR_MALFORMED);
	EXPECT_STATUS(
		run_raw(m, hdr_bytes(REFNPU_OP_GEMM, 0, REFNPU_CMD_GEMM_SIZE / 4 - 2, 96), 96),
		REFNPU_ERR_MALFORMED);
	EXPECT_STATUS(run_raw(m, hdr_bytes(REFNPU_OP_GEMM, 0, 0xffffffffu, 96), 96),
		      REFNPU_ERR_MALFORMED);
	// flags on NOP
	EXPECT_STATUS(run_raw(m, hdr_bytes(REFNPU_OP_NOP, 1, 2, 8), 8), REFNPU_ERR_MALFORMED);
}

TEST(Malformed, UnknownOpcodeStopsAtRightCommand)
{
	FlatMem m;
	refnpu_cmd_fill f{};
	f.rows = 1;
	f.row_bytes = 8;
	f.pattern = 0xab;
	f.pattern_bytes = 1;
	f.dst = t2d(m.alloc(16), 8);
	refnpu_cmd_fill f2 = f;
	f2.dst = t2d(m.alloc(16), 8);
	CmdBuf cb;
	cb.add(refnpu_cmd_nop{}, REFNPU_OP_NOP).add(f, REFNPU_OP_FILL);
	cb.raw(hdr_bytes(0x0999, 0, 4, 16));
	cb.add(f2, REFNPU_OP_FILL);
	auto res = cb.run(m);
	EXPECT_STATUS(res, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(res.cmd_index, 2u);
	EXPECT_EQ(res.cmd_offset, 8u + REFNPU_CMD_FILL_SIZE);
	EXPECT_EQ(res.fault_va, 0u);
	EXPECT_EQ(m.get1<uint8_t>(f.dst.va), 0xab); // earlier command ran
	EXPECT_EQ(m.get1<uint8_t>(f2.dst.va), 0xcd); // later one did not
}

TEST(Malformed, Gemm)
{
	FlatMem m;
	auto expect = [&](auto mutate, uint32_t code) {
		auto g = good_gemm(m);
		mutate(g);
		uint64_t w = m.writes;
		auto res = run1(m, g, REFNPU_OP_GEMM);
		EXPECT_STATUS(res, code);
		if (code != REFNPU_ERR_NONE) {
			EXPECT_EQ(m.writes, w) << "a rejected command must not write";
		}
	};
	using G = refnpu_cmd_gemm;
	expect([](G &) {}, REFNPU_ERR_NONE);
	expect([](G &g) { g.hdr.flags = 4; }, REFNPU_ERR_MALFORMED);
	expect([](G &g) { g.out_dtype = REFNPU_DTYPE_INT8; }, REFNPU_ERR_UNSUPPORTED);
	expect([](G &g) { g.in_dtype = 99; }, REFNPU_ERR_UNSUPPORTED);
	expect([](G &g) { g.in_dtype = g.out_dtype = REFNPU_DTYPE_INT32; }, REFNPU_ERR_UNSUPPORTED);
	expect(
		[](G &g) {
			g.in_dtype = REFNPU_DTYPE_INT8;
			g.out_dtype = REFNPU_DTYPE_FP32;
		},
		REFNPU_ERR_UNSUPPORTED);
	expect([](G &g) { g.rq_shift = 3; }, REFNPU_ERR_MALFORMED);
	expect([](G &g) { g.bias_va = g.c.va; }, REFNPU_ERR_MALFORMED);
	expect(
		[](G &g) {
			g.in_dtype = REFNPU_DTYPE_INT8;
			g.out_dtype = REFNPU_DTYPE_INT8;
			g.rq_shift = 64;
		},
		REFNPU_ERR_MALFORMED);
	expect(
		[](G &g) {
			g.in_dtype = REFNPU_DTYPE_INT8;
			g.out_dtype = REFNPU_DTYPE_INT8;
			g.rq_multiplier = -1;
		},
		REFNPU_ERR_MALFORMED);
	expect(
		[](G &g) {
			g.in_dtype = REFNPU_DTYPE_INT8;
			g.out_dtype = REFNPU_DTYPE_INT8;
			g.rq_zero_point = 128;
		},
		REFNPU_ERR_MALFORMED);
	expect([](G &g) { g.a.pitch = 16; }, REFNPU_ERR_MALFORMED); // < row bytes
	expect([](G &g) { g.a.pitch = 22; }, REFNPU_ERR_MALFORMED); // misaligned
	expect([](G &g) { g.c.va += 2; }, REFNPU_ERR_MALFORMED); // misaligned
	expect(
		[](G &g) {
			g.m = 0xffffffffu;
			g.a.pitch = 1ULL << 40;
		},
		REFNPU_ERR_MALFORMED); // overflow
	expect([](G &g) { g.b.va = ~0ULL - 63; }, REFNPU_ERR_MALFORMED); // wraps
	expect(
		[](G &g) {
			g.n = 0x40000000u;
			g.c.pitch = 0;
		},
		REFNPU_ERR_MALFORMED);
	expect(
		[](G &g) {
			g.hdr.flags = REFNPU_GEMM_F_BIAS;
			g.bias_va = 2;
		},
		REFNPU_ERR_MALFORMED);
	// a single row ignores its pitch
	expect(
		[](G &g) {
			g.m = 1;
			g.a.pitch = 0;
			g.c.pitch = 3;
		},
		REFNPU_ERR_NONE);
}

TEST(Malformed, OtherOps)
{
	FlatMem m;
	uint64_t buf = m.alloc(4096);

	refnpu_cmd_copy c{};
	c.rows = 2;
	c.row_bytes = 16;
	c.src = t2d(buf, 8); // pitch < row
	c.dst = t2d(buf + 1024, 16);
	EXPECT_STATUS(run1(m, c, REFNPU_OP_COPY), REFNPU_ERR_MALFORMED);
	c.src = t2d(buf, 1ULL << 63); // extent overflows
	c.rows = 3;
	EXPECT_STATUS(run1(m, c, REFNPU_OP_COPY), REFNPU_ERR_MALFORMED);

	refnpu_cmd_fill f{};
	f.rows = 1;
	f.row_bytes = 12;
	f.dst = t2d(buf, 12);
	f.pattern_bytes = 3;
	EXPECT_STATUS(run1(m, f, REFNPU_OP_FILL), REFNPU_ERR_MALFORMED);
	f.pattern_bytes = 8; // 12 % 8
	EXPECT_STATUS(run1(m, f, REFNPU_OP_FILL), REFNPU_ERR_MALFORMED);
	f.pattern_bytes = 2;
	f.pattern = 0x10000; // bits beyond pattern_bytes
	EXPECT_STATUS(run1(m, f, REFNPU_OP_FILL), REFNPU_ERR_MALFORMED);
	f.pattern = 0;
	f.rsvd = 1;
	EXPECT_STATUS(run1(m, f, REFNPU_OP_FILL), REFNPU_ERR_MALFORMED);

	refnpu_cmd_ewise e{};
	e.rows = e.cols = 2;
	e.a = e.b = e.out = t2d(buf, 8);
	e.op = REFNPU_EWISE_COUNT;
	EXPECT_STATUS(run1(m, e, REFNPU_OP_EWISE), REFNPU_ERR_UNSUPPORTED);
	e.op = 0;
	e.bcast = REFNPU_BCAST_COUNT;
	EXPECT_STATUS(run1(m, e, REFNPU_OP_EWISE), REFNPU_ERR_UNSUPPORTED);
	e.bcast = REFNPU_BCAST_COL;
	e.b = t2d(buf, 2); // column vector pitch not aligned
	EXPECT_STATUS(run1(m, e, REFNPU_OP_EWISE), REFNPU_ERR_MALFORMED);
	e.b = t2d(buf, 8);
	e.dtype = REFNPU_DTYPE_FP16;
	EXPECT_STATUS(run1(m, e, REFNPU_OP_EWISE), REFNPU_ERR_UNSUPPORTED);
	e.dtype = 0;
	e.rsvd = 5;
	EXPECT_STATUS(run1(m, e, REFNPU_OP_EWISE), REFNPU_ERR_MALFORMED);

	refnpu_cmd_act a{};
	a.rows = a.cols = 1;
	a.src = a.dst = t2d(buf, 4);
	a.func = REFNPU_ACT_COUNT;
	EXPECT_STATUS(run1(m, a, REFNPU_OP_ACT), REFNPU_ERR_UNSUPPORTED);
	a.func = 0;
	a.hdr.flags = 1;
	EXPECT_STATUS(run1(m, a, REFNPU_OP_ACT), REFNPU_ERR_MALFORMED);

	refnpu_cmd_softmax s{};
	s.rows = s.cols = 1;
	s.src = s.dst = t2d(buf, 4);
	s.rsvd = 1;
	EXPECT_STATUS(run1(m, s, REFNPU_OP_SOFTMAX), REFNPU_ERR_MALFORMED);

	refnpu_cmd_layernorm l{};
	l.rows = l.cols = 2;
	l.src = l.dst = t2d(buf, 8);
	for (uint32_t eps : {0x7fc00000u, 0x7f800000u, f2u(-1e-5f)}) {
		l.eps_bits = eps;
		EXPECT_STATUS(run1(m, l, REFNPU_OP_LAYERNORM), REFNPU_ERR_MALFORMED);
	}
	l.eps_bits = 0;
	l.gamma_va = buf; // without the flag
	EXPECT_STATUS(run1(m, l, REFNPU_OP_LAYERNORM), REFNPU_ERR_MALFORMED);
	l.hdr.flags = REFNPU_LN_F_GAMMA;
	EXPECT_STATUS(run1(m, l, REFNPU_OP_LAYERNORM), REFNPU_ERR_NONE);
	l.hdr.flags = 4;
	EXPECT_STATUS(run1(m, l, REFNPU_OP_LAYERNORM), REFNPU_ERR_MALFORMED);
}

TEST(Malformed, ConvAndPool)
{
	FlatMem m;
	uint64_t buf = m.alloc(1 << 16);
	refnpu_cmd_conv2d c{};
	c.n = 1;
	c.h = c.w = 4;
	c.c = 2;
	c.oc = 3;
	c.kh = c.kw = 3;
	c.stride_h = c.stride_w = c.dil_h = c.dil_w = 1;
	c.in = {buf, 32, 128};
	c.out = {buf + 4096, 24, 48};
	c.filter = t2d(buf + 8192, 12);
	EXPECT_STATUS(run1(m, c, REFNPU_OP_CONV2D), REFNPU_ERR_NONE);
	auto bad = [&](auto mutate, uint32_t code) {
		auto x = c;
		mutate(x);
		EXPECT_STATUS(run1(m, x, REFNPU_OP_CONV2D), code);
	};
	using C = refnpu_cmd_conv2d;
	bad([](C &x) { x.stride_h = 0; }, REFNPU_ERR_MALFORMED);
	bad([](C &x) { x.dil_w = 0; }, REFNPU_ERR_MALFORMED);
	bad([](C &x) { x.kh = 0; }, REFNPU_ERR_MALFORMED);
	bad([](C &x) { x.kh = 5; }, REFNPU_ERR_MALFORMED); // window > input
	bad([](C &x) { x.dil_h = 2; }, REFNPU_ERR_MALFORMED); // 5 > 4
	bad([](C &x) { x.in.pitch_h = 28; }, REFNPU_ERR_MALFORMED);
	bad(
		[](C &x) {
			x.n = 2;
			x.in.pitch_n = 100;
		},
		REFNPU_ERR_MALFORMED);
	bad(
		[](C &x) {
			x.kh = x.kw = 0xffffffffu;
			x.c = 0xffffffffu;
			x.h = x.w = 0xffffffffu;
		},
		REFNPU_ERR_MALFORMED);
	bad([](C &x) { x.hdr.flags = 4; }, REFNPU_ERR_MALFORMED);
	bad([](C &x) { x.bias_va = 8; }, REFNPU_ERR_MALFORMED);
	bad([](C &x) { x.dtype = REFNPU_DTYPE_BF16; }, REFNPU_ERR_UNSUPPORTED);

	refnpu_cmd_pool2d p{};
	p.n = 1;
	p.h = p.w = 4;
	p.c = 2;
	p.kh = p.kw = 2;
	p.stride_h = p.stride_w = 2;
	p.in = {buf, 32, 128};
	p.out = {buf + 4096, 16, 32};
	EXPECT_STATUS(run1(m, p, REFNPU_OP_POOL2D), REFNPU_ERR_NONE);
	auto pbad = [&](auto mutate, uint32_t code) {
		auto x = p;
		mutate(x);
		EXPECT_STATUS(run1(m, x, REFNPU_OP_POOL2D), code);
	};
	using P = refnpu_cmd_pool2d;
	pbad([](P &x) { x.pad_top = 2; }, REFNPU_ERR_MALFORMED); // pad >= k
	pbad([](P &x) { x.stride_w = 0; }, REFNPU_ERR_MALFORMED);
	pbad(
		[](P &x) {
			x.h = 0;
			x.pad_top = x.pad_bottom = 1;
		},
		REFNPU_ERR_MALFORMED);
	pbad([](P &x) { x.mode = REFNPU_POOL_COUNT; }, REFNPU_ERR_UNSUPPORTED);
	pbad([](P &x) { x.out.pitch_h = 8; }, REFNPU_ERR_MALFORMED);
}

TEST(Malformed, ExecSingleCommand)
{
	FlatMem m;
	refnpu_cmd_fill f{};
	f.hdr.opcode = REFNPU_OP_FILL;
	f.hdr.len_dw = REFNPU_CMD_FILL_SIZE / 4;
	f.rows = 1;
	f.row_bytes = 4;
	f.pattern = 0x11;
	f.pattern_bytes = 1;
	f.dst = t2d(m.alloc(4), 4);
	refnpu_engine_result res{};
	EXPECT_EQ(refnpu_engine_exec(m.env(), &f, sizeof(f), &res), 0u);
	EXPECT_EQ(m.get1<uint32_t>(f.dst.va), 0x11111111u);
	EXPECT_EQ(refnpu_engine_exec(m.env(), &f, sizeof(f) - 8, &res),
		  static_cast<uint32_t>(REFNPU_ERR_MALFORMED));
	EXPECT_EQ(refnpu_engine_exec(m.env(), &f, 4, &res),
		  static_cast<uint32_t>(REFNPU_ERR_MALFORMED));
}

// Random command streams: the engine must terminate with a defined code.
TEST(Malformed, RandomStreamsNeverCrash)
{
	FlatMem m(4 << 20);
	m.stop_code = REFNPU_ERR_TIMEOUT;
	static const uint16_t ops[] = {REFNPU_OP_NOP,
				       REFNPU_OP_COPY,
				       REFNPU_OP_FILL,
				       REFNPU_OP_GEMM,
				       REFNPU_OP_EWISE,
				       REFNPU_OP_ACT,
				       REFNPU_OP_SOFTMAX,
				       REFNPU_OP_LAYERNORM,
				       REFNPU_OP_CONV2D,
				       REFNPU_OP_POOL2D,
				       0x55};
	Rng rng(2024);
	uint64_t region = m.alloc(1 << 20, 4096);
	uint64_t cmd_va = m.alloc(4096, 8);
	int counts[REFNPU_ERR_COUNT] = {};
	for (int iter = 0; iter < 50000; iter++) {
		std::vector<uint8_t> b(REFNPU_CMD_MAX_SIZE + 8);
		for (auto &x : b)
			x = static_cast<uint8_t>(rng.next());
		// Bias the fields towards plausible values so validation is
		// exercised deep, not only at the first check.
		std::vector<uint32_t> w(b.size() / 4);
		std::memcpy(w.data(), b.data(), b.size());
		for (size_t i = 2; i < w.size(); i++) {
			switch (rng.next() % 4) {
			case 0:
				w[i] = static_cast<uint32_t>(rng.next() % 9);
				break;
			case 1:
				w[i] = static_cast<uint32_t>(region + (rng.next() % (1 << 20)));
				break;
			case 2:
				w[i] = i % 2 ? 0 : w[i];
				break;
			default:
				break;
			}
		}
		uint16_t op = ops[rng.next() % (sizeof(ops) / sizeof(ops[0]))];
		uint32_t size = refnpu_engine_cmd_size(op);
		w[0] = op | (rng.next() % 8 == 0 ? 0x10000u : 0);
		w[1] = (size ? size : 16) / 4 + (rng.next() % 16 == 0 ? 2 : 0);
		std::memcpy(b.data(), w.data(), b.size());
		m.put(cmd_va, b);
		m.checkpoints = 0;
		m.stop_after = 4;
		refnpu_engine_result res{};
		uint32_t st = refnpu_engine_run(m.env(), cmd_va, (size ? size : 16), &res);
		ASSERT_LT(st, static_cast<uint32_t>(REFNPU_ERR_COUNT));
		counts[st]++;
	}
	for (uint32_t i = 0; i < REFNPU_ERR_COUNT; i++)
		if (counts[i])
			RecordProperty(refnpu_engine_err_name(i), counts[i]);
	// The stream reached execution, faults and every validation outcome.
	EXPECT_GT(counts[REFNPU_ERR_NONE], 0);
	EXPECT_GT(counts[REFNPU_ERR_MALFORMED], 0);
	EXPECT_GT(counts[REFNPU_ERR_UNSUPPORTED], 0);
	EXPECT_GT(counts[REFNPU_ERR_MMU_UNMAPPED], 0);
}
