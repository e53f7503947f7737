// SPDX-License-Identifier: MIT
//
// The engine built without floating point (REFNPU_ENGINE_NO_FP), as the
// in-kernel virtual device builds it where the kernel cannot use the FPU:
// the integer commands run exactly as in the full engine, every
// floating-point one fails with REFNPU_ERR_UNSUPPORTED before touching
// memory, and the capabilities it backs leave out the floating-point ones.
// This program's engine is compiled with -mgeneral-regs-only where the
// compiler has it, so any floating-point code left in it fails the build.
#include "harness.h"

using namespace refnpu_test;

static_assert(!REFNPU_ENGINE_HAS_FP, "build this test with -DREFNPU_ENGINE_NO_FP");

TEST(NoFp, CapabilitiesLeaveOutFloatingPoint)
{
	EXPECT_EQ(REFNPU_ENGINE_CAPS & REFNPU_ENGINE_FP_CAPS, 0u);
	EXPECT_TRUE(REFNPU_ENGINE_CAPS & REFNPU_CAP_INT8);
	EXPECT_TRUE(REFNPU_ENGINE_CAPS & REFNPU_CAP_WATCHDOG);
	EXPECT_EQ(REFNPU_ENGINE_CAPS | REFNPU_ENGINE_FP_CAPS, uint32_t(REFNPU_CAPS_BASE));
}

TEST(NoFp, IntegerCommandsRun)
{
	FlatMem m;
	const uint64_t src = m.alloc(64), dst = m.alloc(64), fill = m.alloc(64);
	std::vector<uint8_t> data(64);
	for (size_t i = 0; i < data.size(); i++)
		data[i] = uint8_t(i * 7 + 1);
	m.put(src, data);

	refnpu_cmd_copy c{};
	c.src = t2d(src, 64);
	c.dst = t2d(dst, 64);
	c.rows = 1;
	c.row_bytes = 64;
	refnpu_cmd_fill f{};
	f.dst = t2d(fill, 64);
	f.rows = 1;
	f.row_bytes = 64;
	f.pattern = 0xa5;
	f.pattern_bytes = 1;
	CmdBuf b;
	b.add(refnpu_cmd_nop{}, REFNPU_OP_NOP).add(c, REFNPU_OP_COPY).add(f, REFNPU_OP_FILL);
	refnpu_engine_result res = b.run(m);
	ASSERT_EQ(res.status, REFNPU_ERR_NONE);
	EXPECT_EQ(res.cmd_index, 3u);
	EXPECT_EQ(m.get<uint8_t>(dst, 64), data);
	EXPECT_EQ(m.get<uint8_t>(fill, 64), std::vector<uint8_t>(64, 0xa5));
}

TEST(NoFp, Int8GemmIsExact)
{
	FlatMem m;
	const int M = 3, N = 5, K = 7;
	std::vector<int8_t> a(M * K), bm(K * N);
	for (int i = 0; i < M * K; i++)
		a[i] = int8_t(i * 13 - 60);
	for (int i = 0; i < K * N; i++)
		bm[i] = int8_t(50 - i * 3);
	refnpu_cmd_gemm g{};
	g.m = M;
	g.n = N;
	g.k = K;
	g.in_dtype = REFNPU_DTYPE_INT8;
	g.out_dtype = REFNPU_DTYPE_INT32;
	g.a = t2d(m.alloc(M * K), K);
	g.b = t2d(m.alloc(K * N), N);
	g.c = t2d(m.alloc(M * N * 4), N * 4);
	m.put(g.a.va, a);
	m.put(g.b.va, bm);
	ASSERT_EQ(run1(m, g, REFNPU_OP_GEMM).status, REFNPU_ERR_NONE);
	std::vector<int32_t> c = m.get<int32_t>(g.c.va, M * N);
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			int32_t want = 0;
			for (int k = 0; k < K; k++)
				want += a[i * K + k] * bm[k * N + j];
			EXPECT_EQ(c[i * N + j], want) << i << "," << j;
		}
}

TEST(NoFp, FloatingPointCommandsAreUnsupported)
{
	FlatMem m;
	const uint64_t buf = m.alloc(4096);
	std::vector<uint8_t> before = m.get<uint8_t>(buf, 4096);

	refnpu_cmd_gemm g{};
	g.m = g.n = g.k = 2;
	g.in_dtype = g.out_dtype = REFNPU_DTYPE_FP32;
	g.a = g.b = g.c = t2d(buf, 8);
	refnpu_cmd_ewise e{};
	e.rows = e.cols = 1;
	e.a = e.b = e.out = t2d(buf, 4);
	refnpu_cmd_act act{};
	act.rows = act.cols = 1;
	act.src = act.dst = t2d(buf, 4);
	refnpu_cmd_softmax sm{};
	sm.rows = sm.cols = 1;
	sm.src = sm.dst = t2d(buf, 4);
	refnpu_cmd_layernorm ln{};
	ln.rows = ln.cols = 1;
	ln.src = ln.dst = t2d(buf, 4);
	refnpu_cmd_conv2d cv{};
	refnpu_cmd_pool2d pl{};

	EXPECT_EQ(run1(m, g, REFNPU_OP_GEMM).status, REFNPU_ERR_UNSUPPORTED);
	g.in_dtype = g.out_dtype = REFNPU_DTYPE_FP16;
	EXPECT_EQ(run1(m, g, REFNPU_OP_GEMM).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(run1(m, e, REFNPU_OP_EWISE).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(run1(m, act, REFNPU_OP_ACT).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(run1(m, sm, REFNPU_OP_SOFTMAX).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(run1(m, ln, REFNPU_OP_LAYERNORM).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(run1(m, cv, REFNPU_OP_CONV2D).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(run1(m, pl, REFNPU_OP_POOL2D).status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(m.get<uint8_t>(buf, 4096), before) << "an unsupported command touched memory";

	// The failing command is reported like any other: index and offset.
	CmdBuf b;
	b.add(refnpu_cmd_nop{}, REFNPU_OP_NOP).add(e, REFNPU_OP_EWISE);
	refnpu_engine_result res = b.run(m);
	EXPECT_EQ(res.status, REFNPU_ERR_UNSUPPORTED);
	EXPECT_EQ(res.cmd_index, 1u);
	EXPECT_EQ(res.cmd_offset, uint32_t(REFNPU_CMD_NOP_SIZE));
}
