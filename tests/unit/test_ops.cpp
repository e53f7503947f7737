// SPDX-License-Identifier: MIT
//
// Every opcode against straightforward C++ reference implementations.
// Where the specification fixes the order of floating-point operations
// (GEMM, conv2d, pooling, elementwise) results must be bit-identical;
// where it involves transcendental functions the documented ulp or
// relative bounds apply.
#include <cmath>
#include <limits>
#include <tuple>

#include "harness.h"

using namespace refnpu_test;

namespace {

uint32_t esize(uint32_t dt)
{
	return REFNPU_DTYPE_SIZE(dt);
}

// Encode/decode one element of a float dtype, independently of the engine.
uint16_t to_half(float f)
{
	_Float16 h = static_cast<_Float16>(f);
	uint16_t b;
	std::memcpy(&b, &h, 2);
	return b;
}

float from_half(uint16_t b)
{
	_Float16 h;
	std::memcpy(&h, &b, 2);
	return static_cast<float>(h);
}

uint16_t to_bf16(float f)
{
	uint32_t u = f2u(f);
	if (std::isnan(f))
		return static_cast<uint16_t>((u >> 16) | 0x40);
	uint32_t lsb = (u >> 16) & 1;
	return static_cast<uint16_t>((static_cast<uint64_t>(u) + 0x7fff + lsb) >> 16);
}

float from_bf16(uint16_t b)
{
	return u2f(static_cast<uint32_t>(b) << 16);
}

// Typed host matrix stored as raw bytes of the element type.
struct HostMat {
	uint32_t dtype;
	size_t rows, cols;
	std::vector<uint8_t> bytes;

	HostMat(uint32_t dt, size_t r, size_t c)
		: dtype(dt), rows(r), cols(c), bytes(r * c * esize(dt))
	{
	}

	void set(size_t r, size_t c, float v)
	{
		uint8_t *p = &bytes[(r * cols + c) * esize(dtype)];
		if (dtype == REFNPU_DTYPE_FP32) {
			std::memcpy(p, &v, 4);
		} else {
			uint16_t h = dtype == REFNPU_DTYPE_FP16 ? to_half(v) : to_bf16(v);
			std::memcpy(p, &h, 2);
		}
	}
	float get(size_t r, size_t c) const
	{
		const uint8_t *p = &bytes[(r * cols + c) * esize(dtype)];
		if (dtype == REFNPU_DTYPE_FP32) {
			float f;
			std::memcpy(&f, p, 4);
			return f;
		}
		uint16_t h;
		std::memcpy(&h, p, 2);
		return dtype == REFNPU_DTYPE_FP16 ? from_half(h) : from_bf16(h);
	}
};

// Place a host matrix in device memory with a given pitch.
uint64_t place(FlatMem &m, const HostMat &h, uint64_t pitch)
{
	uint64_t va = m.alloc(h.rows ? (h.rows - 1) * pitch + h.cols * esize(h.dtype) : 0, 64);
	m.put2d(va, pitch, h.rows, h.cols * esize(h.dtype), h.bytes);
	return va;
}

bool same_float(float a, float b)
{
	return (std::isnan(a) && std::isnan(b)) || f2u(a) == f2u(b);
}

// ---------------------------------------------------------------- GEMM

struct GemmCase {
	uint32_t m, n, k;
	uint32_t in, out;
	uint16_t flags;
	uint32_t pad; // extra elements of pitch
};

void run_float_gemm(const GemmCase &gc)
{
	FlatMem mem;
	Rng rng(gc.m * 131 + gc.n * 7 + gc.k + gc.in * 3 + gc.out + gc.flags * 1000);
	HostMat A(gc.in, gc.m, gc.k), B(gc.in, gc.k, gc.n);
	for (size_t r = 0; r < gc.m; r++)
		for (size_t c = 0; c < gc.k; c++)
			A.set(r, c, rng.uniform(-2, 2));
	for (size_t r = 0; r < gc.k; r++)
		for (size_t c = 0; c < gc.n; c++)
			B.set(r, c, rng.uniform(-2, 2));
	std::vector<float> bias = rng.floats(gc.n, -1, 1);
	const uint32_t ies = esize(gc.in), oes = esize(gc.out);
	uint64_t pa = (gc.k + gc.pad) * ies, pb = (gc.n + gc.pad) * ies, pc = (gc.n + gc.pad) * oes;

	refnpu_cmd_gemm g{};
	g.a = t2d(place(mem, A, pa), pa);
	g.b = t2d(place(mem, B, pb), pb);
	g.c = t2d(mem.alloc(gc.m * pc + 64), pc);
	if (gc.flags & REFNPU_GEMM_F_BIAS) {
		g.bias_va = mem.alloc(gc.n * 4 + 4);
		mem.put(g.bias_va, bias);
	}
	g.hdr.flags = gc.flags;
	g.m = gc.m;
	g.n = gc.n;
	g.k = gc.k;
	g.in_dtype = gc.in;
	g.out_dtype = gc.out;
	auto res = run1(mem, g, REFNPU_OP_GEMM);
	ASSERT_EQ(res.status, 0u) << refnpu_engine_err_name(res.status);

	HostMat C(gc.out, gc.m, gc.n);
	C.bytes = mem.get2d<uint8_t>(g.c.va, pc, gc.m, gc.n * oes);
	for (size_t i = 0; i < gc.m; i++) {
		for (size_t j = 0; j < gc.n; j++) {
			float acc = 0.0f;
			for (size_t kk = 0; kk < gc.k; kk++)
				acc = acc + A.get(i, kk) * B.get(kk, j);
			if (gc.flags & REFNPU_GEMM_F_BIAS)
				acc = acc + bias[j];
			if ((gc.flags & REFNPU_GEMM_F_RELU) && acc < 0)
				acc = 0.0f;
			HostMat want(gc.out, 1, 1);
			want.set(0, 0, acc);
			ASSERT_TRUE(same_float(C.get(i, j), want.get(0, 0)))
				<< "C[" << i << "][" << j << "] got " << C.get(i, j) << " want "
				<< want.get(0, 0);
		}
	}
}

class GemmFloat : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t, int>>
{
};

TEST_P(GemmFloat, MatchesReference)
{
	auto [in, out, shape] = GetParam();
	static const uint32_t shapes[][4] = {
		{1, 1, 1, 0},	{3, 5, 7, 1},	{4, 32, 32, 0}, {5, 33, 65, 3},
		{17, 31, 3, 2}, {9, 70, 40, 0}, {2, 1, 100, 5},
	};
	const auto *s = shapes[shape];
	for (uint16_t flags = 0; flags < 4; flags++)
		run_float_gemm({s[0], s[1], s[2], in, out, flags, s[3]});
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GemmFloat,
			 ::testing::Combine(::testing::Values(REFNPU_DTYPE_FP32, REFNPU_DTYPE_FP16,
							      REFNPU_DTYPE_BF16),
					    ::testing::Values(REFNPU_DTYPE_FP32, REFNPU_DTYPE_FP16,
							      REFNPU_DTYPE_BF16),
					    ::testing::Range(0, 7)));

TEST(Gemm, ZeroKGivesBiasThenRelu)
{
	FlatMem mem;
	std::vector<float> bias = {-1.5f, 2.5f, 0.0f};
	refnpu_cmd_gemm g{};
	g.hdr.flags = REFNPU_GEMM_F_BIAS | REFNPU_GEMM_F_RELU;
	g.m = 2;
	g.n = 3;
	g.k = 0;
	g.a = t2d(0, 0); // never touched
	g.b = t2d(0, 0);
	g.c = t2d(mem.alloc(24), 12);
	g.bias_va = mem.alloc(12);
	mem.put(g.bias_va, bias);
	auto res = run1(mem, g, REFNPU_OP_GEMM);
	EXPECT_OK(res);
	EXPECT_EQ(mem.get<float>(g.c.va, 6), (std::vector<float>{0, 2.5f, 0, 0, 2.5f, 0}));
}

TEST(Gemm, ZeroSizeTouchesNothing)
{
	for (int which = 0; which < 2; which++) {
		FlatMem mem;
		refnpu_cmd_gemm g{};
		g.m = which ? 5 : 0;
		g.n = which ? 0 : 5;
		g.k = 7;
		g.a = t2d(8, 4); // unmapped, would fault if used
		g.b = t2d(8, 4);
		g.c = t2d(8, 4);
		g.in_dtype = g.out_dtype = REFNPU_DTYPE_FP32;
		uint64_t before = mem.reads;
		auto res = run1(mem, g, REFNPU_OP_GEMM);
		EXPECT_OK(res);
		EXPECT_EQ(mem.writes, 0u);
		EXPECT_EQ(mem.reads - before, 1u + 1u); // header + body fetch only
	}
}

TEST(Gemm, NanAndInfPropagate)
{
	FlatMem mem;
	// A = [[NaN, 1], [inf, 0]], B = [[1, 0], [1, inf]]
	std::vector<float> a = {NAN, 1, INFINITY, 0}, b = {1, 0, 1, INFINITY};
	refnpu_cmd_gemm g{};
	g.m = g.n = g.k = 2;
	g.a = t2d(mem.alloc(16), 8);
	g.b = t2d(mem.alloc(16), 8);
	g.c = t2d(mem.alloc(16), 8);
	mem.put(g.a.va, a);
	mem.put(g.b.va, b);
	auto res = run1(mem, g, REFNPU_OP_GEMM);
	EXPECT_OK(res);
	auto c = mem.get<float>(g.c.va, 4);
	EXPECT_TRUE(std::isnan(c[0]));
	EXPECT_TRUE(std::isnan(c[1]));
	EXPECT_EQ(c[2], INFINITY); // inf*1 + 0*1
	EXPECT_TRUE(std::isnan(c[3])); // inf*0 + 0*inf
}

void run_int8_gemm(uint32_t m, uint32_t n, uint32_t k, uint32_t out, uint16_t flags, int32_t mult,
		   uint32_t shift, int32_t zp, uint32_t pad)
{
	FlatMem mem;
	Rng rng(m * 1000 + n * 10 + k + flags);
	std::vector<int8_t> a(m * k), b(k * n);
	std::vector<int32_t> bias(n);
	for (auto &x : a)
		x = rng.s8();
	for (auto &x : b)
		x = rng.s8();
	for (auto &x : bias)
		x = static_cast<int32_t>(rng.next() % 20001) - 10000;
	const uint32_t oes = out == REFNPU_DTYPE_INT8 ? 1 : 4;
	refnpu_cmd_gemm g{};
	g.hdr.flags = flags;
	g.m = m;
	g.n = n;
	g.k = k;
	g.in_dtype = REFNPU_DTYPE_INT8;
	g.out_dtype = out;
	g.a = t2d(mem.alloc(m * (k + pad)), k + pad);
	g.b = t2d(mem.alloc(k * (n + pad)), n + pad);
	g.c = t2d(mem.alloc(m * (n + pad) * oes), (n + pad) * oes);
	mem.put2d(g.a.va, g.a.pitch, m, k, a);
	mem.put2d(g.b.va, g.b.pitch, k, n, b);
	if (flags & REFNPU_GEMM_F_BIAS) {
		g.bias_va = mem.alloc(n * 4);
		mem.put(g.bias_va, bias);
	}
	if (out == REFNPU_DTYPE_INT8) {
		g.rq_multiplier = mult;
		g.rq_shift = shift;
		g.rq_zero_point = zp;
	}
	auto res = run1(mem, g, REFNPU_OP_GEMM);
	ASSERT_EQ(res.status, 0u) << refnpu_engine_err_name(res.status);
	for (size_t i = 0; i < m; i++) {
		for (size_t j = 0; j < n; j++) {
			int64_t acc = 0;
			for (size_t kk = 0; kk < k; kk++)
				acc += static_cast<int64_t>(a[i * k + kk]) * b[kk * n + j];
			if (flags & REFNPU_GEMM_F_BIAS)
				acc += bias[j];
			int32_t acc32 = static_cast<int32_t>(static_cast<uint32_t>(acc));
			if (out == REFNPU_DTYPE_INT32) {
				if ((flags & REFNPU_GEMM_F_RELU) && acc32 < 0)
					acc32 = 0;
				ASSERT_EQ(mem.get1<int32_t>(g.c.va + i * g.c.pitch + j * 4), acc32);
			} else {
				// round half away from zero of acc*mult/2^shift
				__int128 p = static_cast<__int128>(acc32) * mult;
				__int128 mag = p < 0 ? -p : p, den = static_cast<__int128>(1)
								     << shift;
				__int128 q =
					mag / den + ((shift && 2 * (mag % den) >= den) ? 1 : 0);
				__int128 v = (p < 0 ? -q : q) + zp;
				v = v > 127 ? 127 : v < -128 ? -128 : v;
				if ((flags & REFNPU_GEMM_F_RELU) && v < zp)
					v = zp;
				ASSERT_EQ(mem.get1<int8_t>(g.c.va + i * g.c.pitch + j),
					  static_cast<int8_t>(v))
					<< i << "," << j;
			}
		}
	}
}

TEST(Gemm, Int8ToInt32)
{
	for (uint16_t flags = 0; flags < 4; flags++) {
		run_int8_gemm(1, 1, 1, REFNPU_DTYPE_INT32, flags, 0, 0, 0, 0);
		run_int8_gemm(7, 45, 33, REFNPU_DTYPE_INT32, flags, 0, 0, 0, 3);
		run_int8_gemm(16, 32, 64, REFNPU_DTYPE_INT32, flags, 0, 0, 0, 0);
	}
}

TEST(Gemm, Int8RequantSaturatesAndRounds)
{
	for (uint16_t flags = 0; flags < 4; flags++) {
		run_int8_gemm(5, 37, 29, REFNPU_DTYPE_INT8, flags, 1 << 30, 38, -3, 1);
		run_int8_gemm(3, 9, 65, REFNPU_DTYPE_INT8, flags, 1 << 30, 30, 5, 0); // saturates
		run_int8_gemm(4, 4, 4, REFNPU_DTYPE_INT8, flags, 3, 1, 0, 0); // ties
		run_int8_gemm(2, 3, 1, REFNPU_DTYPE_INT8, flags, 1, 0, 127, 0);
	}
}

TEST(Gemm, Int32AccumulatorWraps)
{
	// 140000 products of (-128)(-128) = 2293760000 > INT32_MAX: wraps.
	const uint32_t k = 140000;
	FlatMem mem(1 << 20);
	refnpu_cmd_gemm g{};
	g.m = g.n = 1;
	g.k = k;
	g.in_dtype = REFNPU_DTYPE_INT8;
	g.out_dtype = REFNPU_DTYPE_INT32;
	g.a = t2d(mem.alloc(k), k);
	g.b = t2d(mem.alloc(k), 1);
	g.c = t2d(mem.alloc(4), 4);
	mem.put(g.a.va, std::vector<int8_t>(k, -128));
	mem.put(g.b.va, std::vector<int8_t>(k, -128));
	auto res = run1(mem, g, REFNPU_OP_GEMM);
	EXPECT_OK(res);
	EXPECT_EQ(mem.get1<int32_t>(g.c.va),
		  static_cast<int32_t>(static_cast<uint32_t>(2293760000u)));
}

// ---------------------------------------------------------------- COPY/FILL

TEST(Copy, StridedRowsAnySize)
{
	for (uint32_t row_bytes : {1u, 7u, 256u, 257u, 1000u}) {
		FlatMem mem;
		const uint32_t rows = 5;
		Rng rng(row_bytes);
		std::vector<uint8_t> src(rows * row_bytes);
		for (auto &b : src)
			b = static_cast<uint8_t>(rng.next());
		refnpu_cmd_copy c{};
		c.rows = rows;
		c.row_bytes = row_bytes;
		c.src = t2d(mem.alloc(rows * (row_bytes + 3)), row_bytes + 3);
		c.dst = t2d(mem.alloc(rows * (row_bytes + 64)), row_bytes + 64);
		mem.put2d(c.src.va, c.src.pitch, rows, row_bytes, src);
		auto before = mem.get<uint8_t>(c.dst.va, rows * (row_bytes + 64));
		auto res = run1(mem, c, REFNPU_OP_COPY);
		EXPECT_OK(res);
		EXPECT_EQ(mem.get2d<uint8_t>(c.dst.va, c.dst.pitch, rows, row_bytes), src);
		// Bytes between rows are untouched.
		auto after = mem.get<uint8_t>(c.dst.va, rows * (row_bytes + 64));
		for (uint32_t r = 0; r < rows; r++)
			for (uint32_t i = row_bytes; i < row_bytes + 64; i++)
				ASSERT_EQ(after[r * (row_bytes + 64) + i],
					  before[r * (row_bytes + 64) + i]);
		EXPECT_LE(mem.max_xfer, 256u);
	}
}

TEST(Fill, PatternsAndPitch)
{
	for (uint32_t pb : {1u, 2u, 4u, 8u}) {
		FlatMem mem;
		refnpu_cmd_fill f{};
		f.pattern_bytes = pb;
		f.pattern = 0x0807060504030201ULL & (pb == 8 ? ~0ULL : ((1ULL << (8 * pb)) - 1));
		f.rows = 3;
		f.row_bytes = pb * 100;
		f.dst = t2d(mem.alloc(3 * 1024), 1024);
		auto res = run1(mem, f, REFNPU_OP_FILL);
		EXPECT_OK(res);
		for (uint32_t r = 0; r < 3; r++) {
			auto row = mem.get<uint8_t>(f.dst.va + r * 1024, f.row_bytes + 1);
			for (uint32_t i = 0; i < f.row_bytes; i++)
				ASSERT_EQ(row[i],
					  static_cast<uint8_t>(f.pattern >> (8 * (i % pb))));
			EXPECT_EQ(row[f.row_bytes], 0xcd);
		}
	}
}

// ---------------------------------------------------------------- EWISE

float ref_ewise(uint32_t op, float a, float b)
{
	switch (op) {
	case REFNPU_EWISE_ADD:
		return a + b;
	case REFNPU_EWISE_SUB:
		return a - b;
	case REFNPU_EWISE_MUL:
		return a * b;
	case REFNPU_EWISE_MAX:
	case REFNPU_EWISE_MIN: {
		if (std::isnan(a) || std::isnan(b))
			return NAN;
		bool mx = op == REFNPU_EWISE_MAX;
		if (a == b) // +-0: max prefers +0, min prefers -0
			return (std::signbit(a) == mx) ? b : a;
		return mx ? std::max(a, b) : std::min(a, b);
	}
	}
	return 0;
}

class Ewise : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>>
{
};

TEST_P(Ewise, MatchesReference)
{
	auto [op, bc] = GetParam();
	for (auto [rows, cols] : {std::pair{1u, 1u}, {3u, 65u}, {7u, 130u}, {2u, 3u}}) {
		FlatMem mem;
		Rng rng(op * 10 + bc + rows * cols);
		auto a = rng.floats(rows * cols);
		a[0] = NAN;
		if (a.size() > 2) {
			a[1] = 0.0f;
			a[2] = -0.0f;
		}
		size_t brows = (bc == REFNPU_BCAST_NONE || bc == REFNPU_BCAST_COL) ? rows : 1;
		size_t bcols = (bc == REFNPU_BCAST_NONE || bc == REFNPU_BCAST_ROW) ? cols : 1;
		auto b = rng.floats(brows * bcols);
		if (b.size() > 2) {
			b[1] = -0.0f;
			b[2] = 0.0f;
		}
		refnpu_cmd_ewise e{};
		e.rows = rows;
		e.cols = cols;
		e.op = op;
		e.bcast = bc;
		e.dtype = REFNPU_DTYPE_FP32;
		e.a = t2d(mem.alloc(rows * (cols + 2) * 4), (cols + 2) * 4);
		e.b = t2d(mem.alloc(brows * (bcols + 1) * 4), (bcols + 1) * 4);
		e.out = t2d(mem.alloc(rows * (cols + 5) * 4), (cols + 5) * 4);
		mem.put2d(e.a.va, e.a.pitch, rows, cols * 4,
			  std::vector<uint8_t>(reinterpret_cast<uint8_t *>(a.data()),
					       reinterpret_cast<uint8_t *>(a.data() + a.size())));
		mem.put2d(e.b.va, e.b.pitch, brows, bcols * 4,
			  std::vector<uint8_t>(reinterpret_cast<uint8_t *>(b.data()),
					       reinterpret_cast<uint8_t *>(b.data() + b.size())));
		auto res = run1(mem, e, REFNPU_OP_EWISE);
		ASSERT_EQ(res.status, 0u);
		auto out = mem.get2d<float>(e.out.va, e.out.pitch, rows, cols);
		for (size_t r = 0; r < rows; r++) {
			for (size_t c = 0; c < cols; c++) {
				size_t br = brows == 1 ? 0 : r, bcix = bcols == 1 ? 0 : c;
				float want = ref_ewise(op, a[r * cols + c], b[br * bcols + bcix]);
				ASSERT_TRUE(same_float(out[r * cols + c], want))
					<< r << "," << c << " got " << out[r * cols + c] << " want "
					<< want;
			}
		}
	}
}

INSTANTIATE_TEST_SUITE_P(
	AllOps, Ewise,
	::testing::Combine(::testing::Range(0u, static_cast<uint32_t>(REFNPU_EWISE_COUNT)),
			   ::testing::Range(0u, static_cast<uint32_t>(REFNPU_BCAST_COUNT))));

TEST(Ewise, InPlace)
{
	FlatMem mem;
	std::vector<float> a = {1, 2, 3, 4, 5}, b = {10, 20, 30, 40, 50};
	refnpu_cmd_ewise e{};
	e.rows = 1;
	e.cols = 5;
	e.op = REFNPU_EWISE_ADD;
	e.dtype = REFNPU_DTYPE_FP32;
	e.a = t2d(mem.alloc(20), 20);
	e.b = t2d(mem.alloc(20), 20);
	e.out = e.a;
	mem.put(e.a.va, a);
	mem.put(e.b.va, b);
	EXPECT_OK(run1(mem, e, REFNPU_OP_EWISE));
	EXPECT_EQ(mem.get<float>(e.a.va, 5), (std::vector<float>{11, 22, 33, 44, 55}));
}

// ---------------------------------------------------------------- ACT

TEST(Act, AllFunctionsWithinOneUlp)
{
	for (uint32_t func = 0; func < REFNPU_ACT_COUNT; func++) {
		FlatMem mem;
		const uint32_t rows = 3, cols = 131;
		Rng rng(func);
		auto x = rng.floats(rows * cols, -8, 8);
		x[0] = NAN;
		x[1] = INFINITY;
		x[2] = -INFINITY;
		x[3] = -0.0f;
		refnpu_cmd_act a{};
		a.rows = rows;
		a.cols = cols;
		a.func = func;
		a.dtype = REFNPU_DTYPE_FP32;
		a.src = t2d(mem.alloc(rows * 1024), 1024);
		a.dst = t2d(mem.alloc(rows * 600), 600);
		mem.put2d(a.src.va, a.src.pitch, rows, cols * 4,
			  std::vector<uint8_t>(reinterpret_cast<uint8_t *>(x.data()),
					       reinterpret_cast<uint8_t *>(x.data() + x.size())));
		auto res = run1(mem, a, REFNPU_OP_ACT);
		ASSERT_EQ(res.status, 0u);
		auto y = mem.get2d<float>(a.dst.va, a.dst.pitch, rows, cols);
		for (size_t i = 0; i < x.size(); i++) {
			long double v = x[i], w;
			switch (func) {
			case REFNPU_ACT_RELU:
				w = v < 0 ? 0.0L : v;
				break;
			case REFNPU_ACT_GELU:
				w = std::isinf(v) ? (v > 0 ? v : -0.0L)
						  : 0.5L * v * std::erfc(-v / std::sqrt(2.0L));
				break;
			case REFNPU_ACT_GELU_TANH: {
				long double u = 0.7978845608028653558798921198687637L *
						(v + 0.044715L * v * v * v);
				w = std::isinf(v) ? (v > 0 ? v : -0.0L)
						  : v / (1.0L + std::exp(-2.0L * u));
				break;
			}
			case REFNPU_ACT_SIGMOID:
				w = 1.0L / (1.0L + std::exp(-v));
				break;
			default:
				w = std::tanh(v);
				break;
			}
			ASSERT_LE(ulp_diff(y[i], static_cast<float>(w)), 1)
				<< "func " << func << " x=" << x[i] << " got " << y[i];
		}
	}
}

// ---------------------------------------------------------------- SOFTMAX

TEST(Softmax, MatchesDoubleReference)
{
	for (uint32_t cols : {1u, 5u, 64u, 65u, 300u}) {
		FlatMem mem;
		const uint32_t rows = 4;
		Rng rng(cols);
		auto x = rng.floats(rows * cols, -10, 10);
		x[0] = 1000.0f; // stability: no overflow
		refnpu_cmd_softmax s{};
		s.rows = rows;
		s.cols = cols;
		s.dtype = REFNPU_DTYPE_FP32;
		s.src = t2d(mem.alloc(rows * (cols + 1) * 4), (cols + 1) * 4);
		s.dst = t2d(mem.alloc(rows * cols * 4), cols * 4);
		mem.put2d(s.src.va, s.src.pitch, rows, cols * 4,
			  std::vector<uint8_t>(reinterpret_cast<uint8_t *>(x.data()),
					       reinterpret_cast<uint8_t *>(x.data() + x.size())));
		auto res = run1(mem, s, REFNPU_OP_SOFTMAX);
		ASSERT_EQ(res.status, 0u);
		auto y = mem.get<float>(s.dst.va, rows * cols);
		for (uint32_t r = 0; r < rows; r++) {
			double mx = -INFINITY, sum = 0;
			for (uint32_t c = 0; c < cols; c++)
				mx = std::max(mx, static_cast<double>(x[r * cols + c]));
			for (uint32_t c = 0; c < cols; c++)
				sum += std::exp(static_cast<double>(x[r * cols + c]) - mx);
			for (uint32_t c = 0; c < cols; c++) {
				double want =
					std::exp(static_cast<double>(x[r * cols + c]) - mx) / sum;
				// fp32 x - max rounding plus the sequential fp32 sum:
				// relative error <= (cols + 3 + |x - max|) * 2^-23
				double d = std::fabs(x[r * cols + c] - mx);
				ASSERT_NEAR(y[r * cols + c], want,
					    want * (cols + 3 + d) * 0x1p-23 + 1e-38)
					<< r << "," << c;
			}
		}
	}
}

TEST(Softmax, SpecialValues)
{
	FlatMem mem;
	// row 0: NaN -> all NaN; row 1: -inf entries -> 0; row 2: +inf -> NaN;
	// row 3: all -inf -> NaN
	std::vector<float> x = {1,	  NAN, 2, -INFINITY, 0,		-INFINITY,
				INFINITY, 1,   2, -INFINITY, -INFINITY, -INFINITY};
	refnpu_cmd_softmax s{};
	s.rows = 4;
	s.cols = 3;
	s.dtype = REFNPU_DTYPE_FP32;
	s.src = t2d(mem.alloc(48), 12);
	s.dst = s.src; // in place
	mem.put(s.src.va, x);
	EXPECT_OK(run1(mem, s, REFNPU_OP_SOFTMAX));
	auto y = mem.get<float>(s.dst.va, 12);
	for (int i = 0; i < 3; i++)
		EXPECT_TRUE(std::isnan(y[i]));
	EXPECT_EQ(y[3], 0.0f);
	EXPECT_EQ(y[4], 1.0f);
	EXPECT_EQ(y[5], 0.0f);
	for (int i = 6; i < 12; i++)
		EXPECT_TRUE(std::isnan(y[i])) << i;
}

// ---------------------------------------------------------------- LAYERNORM

TEST(LayerNorm, MatchesDoubleReference)
{
	for (uint16_t flags = 0; flags < 4; flags++) {
		for (uint32_t cols : {1u, 3u, 64u, 100u, 257u}) {
			FlatMem mem;
			const uint32_t rows = 3;
			Rng rng(cols + flags);
			auto x = rng.floats(rows * cols, -3, 5);
			auto gamma = rng.floats(cols, 0.5f, 2.0f), beta = rng.floats(cols, -1, 1);
			const float eps = 1e-5f;
			refnpu_cmd_layernorm l{};
			l.hdr.flags = flags;
			l.rows = rows;
			l.cols = cols;
			l.dtype = REFNPU_DTYPE_FP32;
			l.eps_bits = f2u(eps);
			l.src = t2d(mem.alloc(rows * (cols + 3) * 4), (cols + 3) * 4);
			l.dst = t2d(mem.alloc(rows * cols * 4), cols * 4);
			mem.put2d(l.src.va, l.src.pitch, rows, cols * 4,
				  std::vector<uint8_t>(
					  reinterpret_cast<uint8_t *>(x.data()),
					  reinterpret_cast<uint8_t *>(x.data() + x.size())));
			if (flags & REFNPU_LN_F_GAMMA) {
				l.gamma_va = mem.alloc(cols * 4);
				mem.put(l.gamma_va, gamma);
			}
			if (flags & REFNPU_LN_F_BETA) {
				l.beta_va = mem.alloc(cols * 4);
				mem.put(l.beta_va, beta);
			}
			auto res = run1(mem, l, REFNPU_OP_LAYERNORM);
			ASSERT_EQ(res.status, 0u);
			auto y = mem.get<float>(l.dst.va, rows * cols);
			for (uint32_t r = 0; r < rows; r++) {
				double mean = 0, var = 0;
				for (uint32_t c = 0; c < cols; c++)
					mean += x[r * cols + c];
				mean /= cols;
				for (uint32_t c = 0; c < cols; c++)
					var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
				var /= cols;
				for (uint32_t c = 0; c < cols; c++) {
					double w = (x[r * cols + c] - mean) / std::sqrt(var + eps);
					if (flags & REFNPU_LN_F_GAMMA)
						w *= gamma[c];
					if (flags & REFNPU_LN_F_BETA)
						w += beta[c];
					ASSERT_NEAR(y[r * cols + c], w, 1e-5 * (cols + 4))
						<< "flags " << flags << " cols " << cols;
				}
			}
		}
	}
}

TEST(LayerNorm, ConstantRowAndNan)
{
	FlatMem mem;
	std::vector<float> x = {3, 3, 3, 3, 1, NAN, 2, 4};
	refnpu_cmd_layernorm l{};
	l.rows = 2;
	l.cols = 4;
	l.dtype = REFNPU_DTYPE_FP32;
	l.eps_bits = f2u(0.0f);
	l.src = t2d(mem.alloc(32), 16);
	l.dst = t2d(mem.alloc(32), 16);
	mem.put(l.src.va, x);
	EXPECT_OK(run1(mem, l, REFNPU_OP_LAYERNORM));
	auto y = mem.get<float>(l.dst.va, 8);
	for (int i = 0; i < 4; i++) // 0 * (1 / sqrt(0)) = 0 * inf = NaN
		EXPECT_TRUE(std::isnan(y[i]));
	for (int i = 4; i < 8; i++)
		EXPECT_TRUE(std::isnan(y[i]));
	// With eps > 0, a constant row normalises to exactly 0.
	l.eps_bits = f2u(1e-5f);
	EXPECT_OK(run1(mem, l, REFNPU_OP_LAYERNORM));
	y = mem.get<float>(l.dst.va, 4);
	EXPECT_EQ(y, (std::vector<float>{0, 0, 0, 0}));
}

// ---------------------------------------------------------------- CONV2D

struct ConvCase {
	uint32_t n, h, w, c, oc, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
	uint16_t flags;
};

void run_conv(const ConvCase &cc)
{
	FlatMem mem(16 << 20);
	Rng rng(cc.h * 100 + cc.c * 10 + cc.oc + cc.flags);
	const uint64_t oh = (cc.h + cc.pt + cc.pb - (cc.dh * (cc.kh - 1) + 1)) / cc.sh + 1;
	const uint64_t ow = (cc.w + cc.pl + cc.pr - (cc.dw * (cc.kw - 1) + 1)) / cc.sw + 1;
	auto x = rng.floats(static_cast<size_t>(cc.n) * cc.h * cc.w * cc.c);
	auto wt = rng.floats(static_cast<size_t>(cc.kh) * cc.kw * cc.c * cc.oc);
	auto bias = rng.floats(cc.oc);
	refnpu_cmd_conv2d c{};
	c.hdr.flags = cc.flags;
	c.n = cc.n;
	c.h = cc.h;
	c.w = cc.w;
	c.c = cc.c;
	c.oc = cc.oc;
	c.kh = cc.kh;
	c.kw = cc.kw;
	c.stride_h = cc.sh;
	c.stride_w = cc.sw;
	c.dil_h = cc.dh;
	c.dil_w = cc.dw;
	c.pad_top = cc.pt;
	c.pad_bottom = cc.pb;
	c.pad_left = cc.pl;
	c.pad_right = cc.pr;
	c.dtype = REFNPU_DTYPE_FP32;
	// padded pitches everywhere
	c.in.pitch_h = (static_cast<uint64_t>(cc.w) * cc.c + 3) * 4;
	c.in.pitch_n = c.in.pitch_h * cc.h + 64;
	c.in.va = mem.alloc(c.in.pitch_n * cc.n);
	c.out.pitch_h = (ow * cc.oc + 1) * 4;
	c.out.pitch_n = c.out.pitch_h * oh + 32;
	c.out.va = mem.alloc(c.out.pitch_n * cc.n);
	c.filter.pitch = (cc.oc + 2) * 4;
	c.filter.va = mem.alloc(c.filter.pitch * cc.kh * cc.kw * cc.c);
	for (uint32_t n = 0; n < cc.n; n++)
		for (uint32_t h = 0; h < cc.h; h++)
			mem.put(c.in.va + n * c.in.pitch_n + h * c.in.pitch_h,
				std::vector<float>(x.begin() + ((n * cc.h + h) * cc.w) * cc.c,
						   x.begin() + ((n * cc.h + h + 1) * cc.w) * cc.c));
	for (uint32_t r = 0; r < cc.kh * cc.kw * cc.c; r++)
		mem.put(c.filter.va + r * c.filter.pitch,
			std::vector<float>(wt.begin() + r * cc.oc, wt.begin() + (r + 1) * cc.oc));
	if (cc.flags & REFNPU_CONV_F_BIAS) {
		c.bias_va = mem.alloc(cc.oc * 4);
		mem.put(c.bias_va, bias);
	}
	auto res = run1(mem, c, REFNPU_OP_CONV2D);
	ASSERT_EQ(res.status, 0u) << refnpu_engine_err_name(res.status);
	for (uint32_t n = 0; n < cc.n; n++)
		for (uint64_t y = 0; y < oh; y++)
			for (uint64_t xo = 0; xo < ow; xo++)
				for (uint32_t o = 0; o < cc.oc; o++) {
					float acc = 0.0f;
					for (uint32_t i = 0; i < cc.kh; i++) {
						int64_t ih = static_cast<int64_t>(y * cc.sh +
										  i * cc.dh) -
							     cc.pt;
						if (ih < 0 || ih >= cc.h)
							continue;
						for (uint32_t j = 0; j < cc.kw; j++) {
							int64_t iw =
								static_cast<int64_t>(xo * cc.sw +
										     j * cc.dw) -
								cc.pl;
							if (iw < 0 || iw >= cc.w)
								continue;
							for (uint32_t ch = 0; ch < cc.c; ch++)
								acc = acc +
								      x[((n * cc.h + ih) * cc.w +
									 iw) * cc.c +
									ch] * wt[((i * cc.kw + j) *
											  cc.c +
										  ch) * cc.oc +
										 o];
						}
					}
					if (cc.flags & REFNPU_CONV_F_BIAS)
						acc = acc + bias[o];
					if ((cc.flags & REFNPU_CONV_F_RELU) && acc < 0)
						acc = 0;
					float got = mem.get1<float>(c.out.va + n * c.out.pitch_n +
								    y * c.out.pitch_h +
								    (xo * cc.oc + o) * 4);
					ASSERT_EQ(f2u(got), f2u(acc))
						<< n << "," << y << "," << xo << "," << o;
				}
}

TEST(Conv2d, Shapes)
{
	for (uint16_t flags = 0; flags < 4; flags++) {
		run_conv({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, flags});
		run_conv({2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, flags});
		run_conv({1, 9, 7, 37, 33, 3, 2, 2, 3, 1, 1, 1, 0, 2, 1, flags});
		run_conv({1, 8, 8, 2, 5, 3, 3, 1, 2, 2, 2, 2, 2, 0, 3, flags});
		run_conv({3, 4, 4, 1, 70, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, flags});
	}
}

TEST(Conv2d, AllPaddingWindowGivesBias)
{
	// H = W = 0 with padding: every tap is padding, output = bias.
	run_conv({1, 0, 0, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, REFNPU_CONV_F_BIAS});
}

// ---------------------------------------------------------------- POOL2D

void run_pool(uint32_t mode, uint32_t n, uint32_t h, uint32_t w, uint32_t ch, uint32_t kh,
	      uint32_t kw, uint32_t sh, uint32_t sw, uint32_t pt, uint32_t pb, uint32_t pl,
	      uint32_t pr)
{
	FlatMem mem;
	Rng rng(h * w + ch + mode);
	const uint64_t oh = (h + pt + pb - kh) / sh + 1, ow = (w + pl + pr - kw) / sw + 1;
	auto x = rng.floats(static_cast<size_t>(n) * h * w * ch, -5, 5);
	if (x.size() > 10)
		x[7] = NAN;
	refnpu_cmd_pool2d p{};
	p.n = n;
	p.h = h;
	p.w = w;
	p.c = ch;
	p.kh = kh;
	p.kw = kw;
	p.stride_h = sh;
	p.stride_w = sw;
	p.pad_top = pt;
	p.pad_bottom = pb;
	p.pad_left = pl;
	p.pad_right = pr;
	p.mode = mode;
	p.dtype = REFNPU_DTYPE_FP32;
	p.in.pitch_h = (w * ch + 1) * 4;
	p.in.pitch_n = p.in.pitch_h * h;
	p.in.va = mem.alloc(p.in.pitch_n * n);
	p.out.pitch_h = ow * ch * 4;
	p.out.pitch_n = p.out.pitch_h * oh + 16;
	p.out.va = mem.alloc(p.out.pitch_n * n);
	for (uint32_t b = 0; b < n; b++)
		for (uint32_t y = 0; y < h; y++)
			mem.put(p.in.va + b * p.in.pitch_n + y * p.in.pitch_h,
				std::vector<float>(x.begin() + ((b * h + y) * w) * ch,
						   x.begin() + ((b * h + y + 1) * w) * ch));
	auto res = run1(mem, p, REFNPU_OP_POOL2D);
	ASSERT_EQ(res.status, 0u) << refnpu_engine_err_name(res.status);
	for (uint32_t b = 0; b < n; b++)
		for (uint64_t y = 0; y < oh; y++)
			for (uint64_t xo = 0; xo < ow; xo++)
				for (uint32_t c = 0; c < ch; c++) {
					float acc = mode == REFNPU_POOL_MAX ? -INFINITY : 0.0f;
					bool nan = false;
					int count = 0;
					for (uint32_t i = 0; i < kh; i++) {
						int64_t ih = static_cast<int64_t>(y * sh + i) - pt;
						if (ih < 0 || ih >= h)
							continue;
						for (uint32_t j = 0; j < kw; j++) {
							int64_t iw =
								static_cast<int64_t>(xo * sw + j) -
								pl;
							if (iw < 0 || iw >= w)
								continue;
							float v =
								x[((b * h + ih) * w + iw) * ch + c];
							nan |= std::isnan(v);
							acc = mode == REFNPU_POOL_MAX
								      ? std::max(acc, v)
								      : acc + v;
							count++;
						}
					}
					if (mode == REFNPU_POOL_AVG)
						acc = acc / static_cast<float>(count);
					float got = mem.get1<float>(p.out.va + b * p.out.pitch_n +
								    y * p.out.pitch_h +
								    (xo * ch + c) * 4);
					if (nan)
						ASSERT_TRUE(std::isnan(got));
					else
						ASSERT_EQ(f2u(got), f2u(acc))
							<< b << "," << y << "," << xo << "," << c;
				}
}

TEST(Pool2d, MaxAndAvg)
{
	for (uint32_t mode :
	     {static_cast<uint32_t>(REFNPU_POOL_MAX), static_cast<uint32_t>(REFNPU_POOL_AVG)}) {
		run_pool(mode, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0);
		run_pool(mode, 2, 6, 6, 3, 2, 2, 2, 2, 0, 0, 0, 0);
		run_pool(mode, 1, 7, 5, 70, 3, 3, 2, 1, 1, 1, 1, 2);
		run_pool(mode, 1, 5, 5, 2, 3, 2, 3, 1, 2, 2, 1, 1);
	}
}

// ---------------------------------------------------------------- chains

TEST(Chain, MlpInOneCommandBuffer)
{
	// x[4x8] -> GEMM(W1 8x16) + b1, ReLU -> GEMM(W2 16x5) + b2 -> softmax
	FlatMem mem;
	Rng rng(99);
	const uint32_t M = 4, D = 8, H = 16, O = 5;
	auto x = rng.floats(M * D), w1 = rng.floats(D * H), b1 = rng.floats(H);
	auto w2 = rng.floats(H * O), b2 = rng.floats(O);
	uint64_t vx = mem.alloc(M * D * 4), vw1 = mem.alloc(D * H * 4), vb1 = mem.alloc(H * 4);
	uint64_t vw2 = mem.alloc(H * O * 4), vb2 = mem.alloc(O * 4);
	uint64_t vh = mem.alloc(M * H * 4), vo = mem.alloc(M * O * 4);
	mem.put(vx, x);
	mem.put(vw1, w1);
	mem.put(vb1, b1);
	mem.put(vw2, w2);
	mem.put(vb2, b2);

	refnpu_cmd_gemm g1{}, g2{};
	g1.hdr.flags = REFNPU_GEMM_F_BIAS | REFNPU_GEMM_F_RELU;
	g1.a = t2d(vx, D * 4);
	g1.b = t2d(vw1, H * 4);
	g1.c = t2d(vh, H * 4);
	g1.bias_va = vb1;
	g1.m = M;
	g1.n = H;
	g1.k = D;
	g2.hdr.flags = REFNPU_GEMM_F_BIAS;
	g2.a = t2d(vh, H * 4);
	g2.b = t2d(vw2, O * 4);
	g2.c = t2d(vo, O * 4);
	g2.bias_va = vb2;
	g2.m = M;
	g2.n = O;
	g2.k = H;
	refnpu_cmd_softmax s{};
	s.src = s.dst = t2d(vo, O * 4);
	s.rows = M;
	s.cols = O;
	CmdBuf cb;
	cb.add(refnpu_cmd_nop{}, REFNPU_OP_NOP)
		.add(g1, REFNPU_OP_GEMM)
		.add(g2, REFNPU_OP_GEMM)
		.add(s, REFNPU_OP_SOFTMAX);
	auto res = cb.run(mem);
	EXPECT_OK(res);
	EXPECT_EQ(res.cmd_index, 4u);
	EXPECT_EQ(res.cmd_offset, cb.bytes().size());

	auto out = mem.get<float>(vo, M * O);
	for (uint32_t i = 0; i < M; i++) {
		std::vector<double> logits(O);
		for (uint32_t o = 0; o < O; o++) {
			double acc = b2[o];
			for (uint32_t j = 0; j < H; j++) {
				double hj = b1[j];
				for (uint32_t d = 0; d < D; d++)
					hj += static_cast<double>(x[i * D + d]) * w1[d * H + j];
				acc += std::max(hj, 0.0) * w2[j * O + o];
			}
			logits[o] = acc;
		}
		double mx = *std::max_element(logits.begin(), logits.end()), sum = 0;
		for (double l : logits)
			sum += std::exp(l - mx);
		for (uint32_t o = 0; o < O; o++)
			EXPECT_NEAR(out[i * O + o], std::exp(logits[o] - mx) / sum, 1e-5);
	}
}

} // namespace

// Empty outputs succeed without touching memory (all addresses unmapped).
TEST(ZeroSize, EveryOpTouchesNothing)
{
	FlatMem mem;
	const refnpu_tensor2d bad = t2d(16, 4);
	const refnpu_tensor_nhwc badn = {16, 4, 4};
	auto check = [&](auto cmd, uint16_t op, const char *what) {
		uint64_t reads = mem.reads, writes = mem.writes;
		auto res = run1(mem, cmd, op);
		EXPECT_OK(res) << what;
		EXPECT_EQ(mem.writes, writes) << what;
		EXPECT_EQ(mem.reads - reads, 2u) << what; // header + body fetch
	};
	for (int zr = 0; zr < 2; zr++) {
		refnpu_cmd_copy c{};
		c.src = c.dst = bad;
		(zr ? c.rows : c.row_bytes) = 5;
		check(c, REFNPU_OP_COPY, "copy");
		refnpu_cmd_fill f{};
		f.dst = bad;
		f.pattern_bytes = 4;
		(zr ? f.rows : f.row_bytes) = 8;
		check(f, REFNPU_OP_FILL, "fill");
		refnpu_cmd_ewise e{};
		e.a = e.b = e.out = bad;
		(zr ? e.rows : e.cols) = 3;
		check(e, REFNPU_OP_EWISE, "ewise");
		refnpu_cmd_act a{};
		a.src = a.dst = bad;
		a.func = REFNPU_ACT_GELU;
		(zr ? a.rows : a.cols) = 3;
		check(a, REFNPU_OP_ACT, "act");
		refnpu_cmd_softmax s{};
		s.src = s.dst = bad;
		(zr ? s.rows : s.cols) = 3;
		check(s, REFNPU_OP_SOFTMAX, "softmax");
		refnpu_cmd_layernorm l{};
		l.src = l.dst = bad;
		(zr ? l.rows : l.cols) = 3;
		check(l, REFNPU_OP_LAYERNORM, "layernorm");
		refnpu_cmd_conv2d cv{};
		cv.in = cv.out = badn;
		cv.filter = bad;
		cv.n = zr ? 0 : 2;
		cv.oc = zr ? 3 : 0;
		cv.h = cv.w = cv.c = 4;
		cv.kh = cv.kw = cv.stride_h = cv.stride_w = cv.dil_h = cv.dil_w = 1;
		check(cv, REFNPU_OP_CONV2D, "conv2d");
		refnpu_cmd_pool2d p{};
		p.in = p.out = badn;
		p.n = zr ? 0 : 2;
		p.c = zr ? 3 : 0;
		p.h = p.w = 4;
		p.kh = p.kw = p.stride_h = p.stride_w = 1;
		check(p, REFNPU_OP_POOL2D, "pool2d");
	}
}
