// SPDX-License-Identifier: MIT
/*
 * The command encoder: every opcode encodes the layout of refnpu_hw.h, and
 * every rule is checked before anything is appended.
 */
#include <bit>
#include <cstring>

#include <gtest/gtest.h>

#include <accel/accel.h>

using namespace accel;

namespace {

const Memory memA{1, 0x100000, 0x10000};
const Memory memB{2, 0x200000, 0x10000};
const Memory memC{3, 0x300000, 0x10000};

template <typename T>
T last(const CommandEncoder &e)
{
	T c;
	EXPECT_GE(e.size(), sizeof(T));
	std::memcpy(&c, e.data().data() + e.size() - sizeof(T), sizeof(T));
	return c;
}

/* Expect an invalid_argument whose message contains every word of want. */
void expect_invalid(const Result<void> &r, const std::string &want,
		    Errc code = Errc::invalid_argument)
{
	ASSERT_FALSE(r) << "expected an error mentioning '" << want << "'";
	EXPECT_EQ(r.code(), code);
	EXPECT_NE(r.error().message().find(want), std::string::npos) << r.error().message();
}

} // namespace

TEST(Encoder, Dtypes)
{
	EXPECT_EQ(dtype_size(DType::fp32), 4u);
	EXPECT_EQ(dtype_size(DType::fp16), 2u);
	EXPECT_EQ(dtype_size(DType::bf16), 2u);
	EXPECT_EQ(dtype_size(DType::int8), 1u);
	EXPECT_EQ(dtype_size(DType::int32), 4u);
	EXPECT_EQ(dtype_size(DType(77)), 0u);
	EXPECT_EQ(dtype_from_name("bf16"), DType::bf16);
	EXPECT_FALSE(dtype_from_name("fp64"));
}

TEST(Encoder, NopHeader)
{
	CommandEncoder e;
	ASSERT_TRUE(e.nop());
	ASSERT_EQ(e.size(), size_t(REFNPU_CMD_NOP_SIZE));
	auto c = last<refnpu_cmd_nop>(e);
	EXPECT_EQ(c.hdr.opcode, REFNPU_OP_NOP);
	EXPECT_EQ(c.hdr.flags, 0);
	EXPECT_EQ(c.hdr.len_dw, REFNPU_CMD_NOP_SIZE / 4u);
	EXPECT_EQ(e.command_count(), 1u);
	EXPECT_TRUE(e.buffer_uses().empty());
}

TEST(Encoder, GemmLayoutFlagsAndBufferUses)
{
	CommandEncoder e;
	GemmOp g;
	g.a = tensor2d(memA, DType::fp32, 4, 8);
	g.b = tensor2d(memB, DType::fp32, 8, 16, 64, 128);
	g.c = tensor2d(memC, DType::fp32, 4, 16);
	g.bias = VectorRef{memC, 4096};
	g.relu = true;
	ASSERT_TRUE(e.gemm(g));
	auto c = last<refnpu_cmd_gemm>(e);
	EXPECT_EQ(c.hdr.opcode, REFNPU_OP_GEMM);
	EXPECT_EQ(c.hdr.flags, REFNPU_GEMM_F_BIAS | REFNPU_GEMM_F_RELU);
	EXPECT_EQ(c.hdr.len_dw, REFNPU_CMD_GEMM_SIZE / 4u);
	EXPECT_EQ(c.a.va, memA.va);
	EXPECT_EQ(c.a.pitch, 32u);
	EXPECT_EQ(c.b.va, memB.va + 64);
	EXPECT_EQ(c.b.pitch, 128u);
	EXPECT_EQ(c.bias_va, memC.va + 4096);
	EXPECT_EQ(c.m, 4u);
	EXPECT_EQ(c.n, 16u);
	EXPECT_EQ(c.k, 8u);
	EXPECT_EQ(c.in_dtype, REFNPU_DTYPE_FP32);
	EXPECT_EQ(c.out_dtype, REFNPU_DTYPE_FP32);
	ASSERT_EQ(e.buffer_uses().size(), 3u);
	EXPECT_EQ(e.buffer_uses()[0].handle, 1u);
	EXPECT_EQ(e.buffer_uses()[0].access, uint32_t(access_read));
	EXPECT_EQ(e.buffer_uses()[2].handle, 3u);
	EXPECT_EQ(e.buffer_uses()[2].access, uint32_t(access_read_write));
}

TEST(Encoder, GemmShapeRules)
{
	CommandEncoder e;
	GemmOp g;
	g.a = tensor2d(memA, DType::fp32, 4, 8);
	g.b = tensor2d(memB, DType::fp32, 7, 16);
	g.c = tensor2d(memC, DType::fp32, 4, 16);
	expect_invalid(e.gemm(g), "inner dimension K");
	g.b.rows = 8;
	g.c.cols = 15;
	expect_invalid(e.gemm(g), "c: shape 4x15 should be 4x16");
	EXPECT_EQ(e.size(), 0u) << "nothing is appended on error";
}

TEST(Encoder, GemmDtypeRules)
{
	CommandEncoder e;
	GemmOp g;
	g.a = tensor2d(memA, DType::fp16, 4, 8);
	g.b = tensor2d(memB, DType::fp32, 8, 16);
	g.c = tensor2d(memC, DType::fp32, 4, 16);
	expect_invalid(e.gemm(g), "b: dtype fp32 differs from a's fp16");
	g.b.dtype = DType::fp16;
	g.c.dtype = DType::int32;
	expect_invalid(e.gemm(g), "float inputs produce");
	g.a.dtype = g.b.dtype = DType::int32;
	expect_invalid(e.gemm(g), "input dtype int32 is not supported");

	/* int8 x int8 -> int8 with requantisation */
	g.a.dtype = g.b.dtype = DType::int8;
	g.c.dtype = DType::int8;
	g.rq_multiplier = 1 << 30;
	g.rq_shift = 64;
	expect_invalid(e.gemm(g), "rq_shift 64");
	g.rq_shift = 31;
	g.rq_zero_point = 200;
	expect_invalid(e.gemm(g), "rq_zero_point 200");
	g.rq_zero_point = -3;
	ASSERT_TRUE(e.gemm(g));
	auto c = last<refnpu_cmd_gemm>(e);
	EXPECT_EQ(c.in_dtype, REFNPU_DTYPE_INT8);
	EXPECT_EQ(c.out_dtype, REFNPU_DTYPE_INT8);
	EXPECT_EQ(c.rq_multiplier, 1 << 30);
	EXPECT_EQ(c.rq_shift, 31u);
	EXPECT_EQ(c.rq_zero_point, -3);

	/* Requantisation fields must be zero for int32 output. */
	g.c.dtype = DType::int32;
	expect_invalid(e.gemm(g), "requantisation parameters apply only to int8 output");
}

TEST(Encoder, StrideAlignmentAndBounds)
{
	CommandEncoder e;
	GemmOp g;
	g.a = tensor2d(memA, DType::fp32, 4, 8, 0, 16);
	g.b = tensor2d(memB, DType::fp32, 8, 16);
	g.c = tensor2d(memC, DType::fp32, 4, 16);
	expect_invalid(e.gemm(g), "a: pitch 16 is smaller than a row of 32 bytes");
	g.a.pitch = 34;
	expect_invalid(e.gemm(g), "a: pitch 0x22 is not a multiple of the element size 4");
	g.a.pitch = 0;
	g.a.offset = 2;
	expect_invalid(e.gemm(g), "a: address");
	g.a.offset = memA.size - 64;
	expect_invalid(e.gemm(g), "a: needs bytes");
	g.a.offset = 0;
	g.a.mem.size = 0;
	expect_invalid(e.gemm(g), "no memory given");
	/* A single row ignores the pitch. */
	g.a = tensor2d(memA, DType::fp32, 1, 8, 0, 4);
	g.c = tensor2d(memC, DType::fp32, 1, 16);
	EXPECT_TRUE(e.gemm(g));
}

TEST(Encoder, GemmOutputMustNotOverlapInputs)
{
	CommandEncoder e;
	GemmOp g;
	g.a = tensor2d(memA, DType::fp32, 4, 8);
	g.b = tensor2d(memB, DType::fp32, 8, 16);
	g.c = tensor2d(memA, DType::fp32, 4, 16, 64);
	expect_invalid(e.gemm(g), "c overlaps a");
	g.c = tensor2d(memC, DType::fp32, 4, 16);
	g.bias = VectorRef{memC, 128};
	expect_invalid(e.gemm(g), "c overlaps bias");
}

TEST(Encoder, EwiseBroadcastFollowsShape)
{
	CommandEncoder e;
	auto a = tensor2d(memA, DType::fp32, 3, 5);
	auto out = tensor2d(memC, DType::fp32, 3, 5);
	struct {
		uint32_t rows, cols, bcast;
	} cases[] = {
		{3, 5, REFNPU_BCAST_NONE},
		{1, 5, REFNPU_BCAST_ROW},
		{3, 1, REFNPU_BCAST_COL},
		{1, 1, REFNPU_BCAST_SCALAR},
	};
	for (auto cs : cases) {
		auto b = tensor2d(memB, DType::fp32, cs.rows, cs.cols);
		ASSERT_TRUE(e.ewise(EwiseOp::mul, out, a, b));
		auto c = last<refnpu_cmd_ewise>(e);
		EXPECT_EQ(c.bcast, cs.bcast) << cs.rows << "x" << cs.cols;
		EXPECT_EQ(c.op, REFNPU_EWISE_MUL);
		EXPECT_EQ(c.rows, 3u);
		EXPECT_EQ(c.cols, 5u);
	}
	expect_invalid(e.ewise(EwiseOp::add, out, a, tensor2d(memB, DType::fp32, 2, 5)),
		       "broadcasts neither");
	expect_invalid(e.ewise(EwiseOp::add, out, a, tensor2d(memB, DType::int32, 3, 5)),
		       "b: dtype int32 is not supported");
}

TEST(Encoder, InPlaceOnlyWhenExactlyTheSameView)
{
	CommandEncoder e;
	auto a = tensor2d(memA, DType::fp32, 4, 4);
	auto b = tensor2d(memB, DType::fp32, 4, 4);
	EXPECT_TRUE(e.ewise(EwiseOp::add, a, a, b));
	EXPECT_TRUE(e.ewise(EwiseOp::add, b, a, b));
	auto shifted = tensor2d(memA, DType::fp32, 4, 4, 4);
	expect_invalid(e.ewise(EwiseOp::add, shifted, a, b), "out partially overlaps a");
	EXPECT_TRUE(e.act(Activation::gelu, a, a));
	expect_invalid(e.act(Activation::gelu, shifted, a), "dst partially overlaps src");
	EXPECT_TRUE(e.softmax(a, a));
	expect_invalid(e.softmax(shifted, a), "partially overlaps");
}

TEST(Encoder, ActivationSoftmaxLayernormFields)
{
	CommandEncoder e;
	auto x = tensor2d(memA, DType::fp32, 2, 64);
	auto y = tensor2d(memB, DType::fp32, 2, 64);
	ASSERT_TRUE(e.act(Activation::sigmoid, y, x));
	EXPECT_EQ(last<refnpu_cmd_act>(e).func, REFNPU_ACT_SIGMOID);
	ASSERT_TRUE(e.softmax(y, x));
	EXPECT_EQ(last<refnpu_cmd_softmax>(e).hdr.opcode, REFNPU_OP_SOFTMAX);

	LayerNormOp ln;
	ln.src = x;
	ln.dst = y;
	ln.gamma = VectorRef{memC, 0};
	ln.eps = 1e-3f;
	ASSERT_TRUE(e.layernorm(ln));
	auto c = last<refnpu_cmd_layernorm>(e);
	EXPECT_EQ(c.hdr.flags, REFNPU_LN_F_GAMMA);
	EXPECT_EQ(c.gamma_va, memC.va);
	EXPECT_EQ(c.beta_va, 0u);
	EXPECT_EQ(c.eps_bits, std::bit_cast<uint32_t>(1e-3f));
	ln.eps = -1.0f;
	expect_invalid(e.layernorm(ln), "eps");
	ln.eps = 1e-5f;
	ln.beta = VectorRef{memC, memC.size - 16};
	expect_invalid(e.layernorm(ln), "beta: needs bytes");
	EXPECT_EQ(e.command_count(), 3u);
}

TEST(Encoder, Conv2dGeometry)
{
	CommandEncoder e;
	Conv2dOp cv;
	cv.in = TensorNHWC{memA, 0, DType::fp32, 1, 8, 8, 3};
	cv.win.kh = cv.win.kw = 3;
	cv.win.pad_top = cv.win.pad_bottom = cv.win.pad_left = cv.win.pad_right = 1;
	cv.out = TensorNHWC{memC, 0, DType::fp32, 1, 8, 8, 4};
	cv.filter = tensor2d(memB, DType::fp32, 3 * 3 * 3, 4);
	cv.bias = VectorRef{memB, 4096};
	cv.relu = true;
	ASSERT_TRUE(e.conv2d(cv)) << e.conv2d(cv).error().message();
	auto c = last<refnpu_cmd_conv2d>(e);
	EXPECT_EQ(c.hdr.flags, REFNPU_CONV_F_BIAS | REFNPU_CONV_F_RELU);
	EXPECT_EQ(c.in.pitch_h, 8u * 3 * 4);
	EXPECT_EQ(c.in.pitch_n, 8u * 8 * 3 * 4);
	EXPECT_EQ(c.oc, 4u);
	EXPECT_EQ(c.kh, 3u);
	EXPECT_EQ(c.pad_left, 1u);
	EXPECT_EQ(c.dil_h, 1u);

	cv.win.stride_h = cv.win.stride_w = 2;
	expect_invalid(e.conv2d(cv), "the window gives 1x4x4");
	cv.out.h = cv.out.w = 4;
	EXPECT_TRUE(e.conv2d(cv));
	cv.filter.rows = 26;
	expect_invalid(e.conv2d(cv), "KH*KW*C is 27");
	cv.filter.rows = 27;
	cv.win.dil_h = 0;
	expect_invalid(e.conv2d(cv), "dilations");
	EXPECT_EQ(window_output(5, 7, 1, 1, 0, 0), std::nullopt);
	EXPECT_EQ(window_output(8, 3, 2, 2, 2, 2), 4u);
}

TEST(Encoder, Pool2dRules)
{
	CommandEncoder e;
	Pool2dOp p;
	p.in = TensorNHWC{memA, 0, DType::fp32, 2, 4, 4, 8};
	p.out = TensorNHWC{memC, 0, DType::fp32, 2, 2, 2, 8};
	p.win.kh = p.win.kw = 2;
	p.win.stride_h = p.win.stride_w = 2;
	p.mode = PoolMode::avg;
	ASSERT_TRUE(e.pool2d(p));
	EXPECT_EQ(last<refnpu_cmd_pool2d>(e).mode, REFNPU_POOL_AVG);
	p.win.pad_top = 2;
	expect_invalid(e.pool2d(p), "padding must be smaller than the window");
	p.win.pad_top = 0;
	p.win.dil_w = 2;
	expect_invalid(e.pool2d(p), "no dilation");
	p.win.dil_w = 1;
	p.out.c = 4;
	expect_invalid(e.pool2d(p), "channels");
}

TEST(Encoder, CopyAndFill)
{
	CommandEncoder e;
	auto src = tensor2d(memA, DType::int8, 4, 100, 0, 128);
	auto dst = tensor2d(memB, DType::int8, 4, 100);
	ASSERT_TRUE(e.copy(dst, src));
	auto c = last<refnpu_cmd_copy>(e);
	EXPECT_EQ(c.rows, 4u);
	EXPECT_EQ(c.row_bytes, 100u);
	EXPECT_EQ(c.src.pitch, 128u);
	EXPECT_EQ(c.dst.pitch, 100u);
	expect_invalid(e.copy(tensor2d(memA, DType::int8, 4, 100, 64), src), "overlap");
	ASSERT_TRUE(e.copy_bytes(memB, 0, memA, 0, 1000));
	EXPECT_EQ(last<refnpu_cmd_copy>(e).row_bytes, 1000u);
	expect_invalid(e.copy_bytes(memB, 0, memA, 0, memA.size + 1), "src: needs bytes");

	auto f = tensor2d(memC, DType::fp16, 3, 3);
	ASSERT_TRUE(e.fill(f, 0x3c00));
	auto fc = last<refnpu_cmd_fill>(e);
	EXPECT_EQ(fc.pattern_bytes, 2u);
	EXPECT_EQ(fc.row_bytes, 6u);
	EXPECT_EQ(fc.pattern, 0x3c00u);
	expect_invalid(e.fill(f, 0x13c00), "has bits beyond one fp16 element");
	ASSERT_TRUE(e.fill_f32(tensor2d(memC, DType::fp32, 2, 2), 1.5f));
	EXPECT_EQ(last<refnpu_cmd_fill>(e).pattern, std::bit_cast<uint32_t>(1.5f));
	expect_invalid(e.fill_f32(f, 1.0f), "fill_f32 needs an fp32 tensor");
}

TEST(Encoder, UnsupportedOpcodeOfTheTarget)
{
	CommandEncoder e;
	e.set_supported_ops((1ULL << REFNPU_OP_NOP) | (1ULL << REFNPU_OP_COPY));
	EXPECT_TRUE(e.nop());
	auto x = tensor2d(memA, DType::fp32, 2, 2);
	expect_invalid(e.softmax(tensor2d(memB, DType::fp32, 2, 2), x), "not supported",
		       Errc::unsupported);
	e.clear();
	EXPECT_EQ(e.size(), 0u);
	EXPECT_EQ(e.command_count(), 0u);
}

TEST(Encoder, AddressSpaceLimit)
{
	CommandEncoder e;
	Memory top{9, REFNPU_VA_LIMIT - 4096, 8192};
	auto t = tensor2d(top, DType::fp32, 1, 2048);
	expect_invalid(e.fill_f32(t, 0.0f), "48-bit");
}
