// SPDX-License-Identifier: MIT
//
// The engine's scalar numerics against independent references: fp16/bf16
// conversion, e^x, sqrt, activations and int8 requantisation.  The error
// bounds asserted here are the ones Documentation/hardware.rst states.
#include <cmath>
#include <limits>

#include "harness.h"

using namespace refnpu_test;

namespace {

// Independent fp32 -> bf16 round to nearest even, by comparing distances.
uint16_t ref_bf16(float f)
{
	uint32_t u = f2u(f);
	if (std::isnan(f))
		return static_cast<uint16_t>((u >> 16) | 0x40);
	if (std::isinf(f))
		return static_cast<uint16_t>(u >> 16);
	uint32_t lo = u & 0xffff0000u;
	uint32_t hi = lo + 0x10000u; // next magnitude (may become inf)
	double dl = std::fabs(static_cast<double>(f) - u2f(lo));
	double dh = std::fabs(static_cast<double>(u2f(hi)) - f);
	if ((hi & 0x7fffffffu) == 0x7f800000u) // towards infinity: overflow threshold
		dh = std::fabs(std::ldexp(1.0, 128) - std::fabs(static_cast<double>(f)));
	if (dl < dh)
		return static_cast<uint16_t>(lo >> 16);
	if (dh < dl)
		return static_cast<uint16_t>(hi >> 16);
	return static_cast<uint16_t>(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

uint16_t ref_fp16(float f)
{
	_Float16 h = static_cast<_Float16>(f);
	uint16_t b;
	std::memcpy(&b, &h, 2);
	return b;
}

float ref_fp16_to_f32(uint16_t b)
{
	_Float16 h;
	std::memcpy(&h, &b, 2);
	return static_cast<float>(h);
}

float eng_act(uint32_t func, float x)
{
	return u2f(refnpu_act_fp32(func, f2u(x)));
}

// Worst ulp error of f against ref over a sweep of fp32 inputs in [lo, hi].
template <typename F, typename R>
int64_t sweep(F f, R ref, float lo, float hi, int steps)
{
	int64_t worst = 0;
	for (int i = 0; i <= steps; i++) {
		float x = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(steps);
		float got = f(x);
		float want = static_cast<float>(ref(static_cast<long double>(x)));
		int64_t d = ulp_diff(got, want);
		if (d > worst)
			worst = d;
		EXPECT_LE(d, 2) << "x=" << x << " got=" << got << " want=" << want;
		if (d > 2)
			break;
	}
	return worst;
}

} // namespace

TEST(Numerics, Fp16ToFp32Exhaustive)
{
	for (uint32_t b = 0; b < 0x10000; b++) {
		float want = ref_fp16_to_f32(static_cast<uint16_t>(b));
		float got = u2f(refnpu_fp16_to_fp32(static_cast<uint16_t>(b)));
		if (std::isnan(want))
			ASSERT_TRUE(std::isnan(got)) << std::hex << b;
		else
			ASSERT_EQ(f2u(got), f2u(want)) << std::hex << b;
	}
}

TEST(Numerics, Fp32ToFp16RoundsToNearestEven)
{
	// Every 127th fp32 bit pattern (all exponents, signs, NaN and Inf).
	for (uint64_t u = 0; u <= 0xffffffffULL; u += 127) {
		float f = u2f(static_cast<uint32_t>(u));
		uint16_t got = refnpu_fp32_to_fp16(static_cast<uint32_t>(u));
		if (std::isnan(f)) {
			ASSERT_EQ(got & 0x7c00, 0x7c00);
			ASSERT_NE(got & 0x03ff, 0);
			ASSERT_NE(got & 0x0200, 0) << "NaN must be quiet";
			ASSERT_EQ(got >> 15, u >> 31);
			continue;
		}
		ASSERT_EQ(got, ref_fp16(f)) << std::hex << u;
	}
	// Ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> even (1.0).
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(1.0f + 0x1p-11f)), 0x3c00);
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(1.0f + 3 * 0x1p-11f)), 0x3c02);
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(65520.0f)), 0x7c00); // overflow
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(65519.0f)), 0x7bff);
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(0x1p-25f)), 0x0000); // tie -> 0
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(0x1.000002p-25f)), 0x0001);
	EXPECT_EQ(refnpu_fp32_to_fp16(f2u(-0.0f)), 0x8000);
}

TEST(Numerics, Bf16)
{
	for (uint64_t u = 0; u <= 0xffffffffULL; u += 59) {
		float f = u2f(static_cast<uint32_t>(u));
		uint16_t got = refnpu_fp32_to_bf16(static_cast<uint32_t>(u));
		ASSERT_EQ(got, ref_bf16(f)) << std::hex << u;
		if (!std::isnan(f)) {
			ASSERT_EQ(refnpu_bf16_to_fp32(got) >> 16, got);
		}
	}
	EXPECT_EQ(refnpu_fp32_to_bf16(0x3f808000u), 0x3f80); // tie -> even
	EXPECT_EQ(refnpu_fp32_to_bf16(0x3f818000u), 0x3f82); // tie -> even
	EXPECT_EQ(refnpu_fp32_to_bf16(0x7f7fffffu), 0x7f80); // max -> inf
	EXPECT_EQ(refnpu_fp32_to_bf16(0x7f800001u), 0x7fc0); // sNaN quieted
}

TEST(Numerics, ExpWithinOneUlp)
{
	int64_t worst = 0;
	for (int i = 0; i <= 400000; i++) {
		float x = -104.0f + 193.0f * static_cast<float>(i) / 400000.0f;
		float got = u2f(refnpu_exp_fp32(f2u(x)));
		float want = static_cast<float>(std::exp(static_cast<long double>(x)));
		int64_t d = ulp_diff(got, want);
		worst = std::max(worst, d);
		ASSERT_LE(d, 1) << "x=" << x;
	}
	RecordProperty("exp_max_ulp", static_cast<int>(worst));
	EXPECT_EQ(f2u(u2f(refnpu_exp_fp32(f2u(0.0f)))), f2u(1.0f));
	EXPECT_EQ(u2f(refnpu_exp_fp32(f2u(-INFINITY))), 0.0f);
	EXPECT_EQ(u2f(refnpu_exp_fp32(f2u(INFINITY))), INFINITY);
	EXPECT_EQ(u2f(refnpu_exp_fp32(f2u(89.0f))), INFINITY);
	EXPECT_TRUE(std::isnan(u2f(refnpu_exp_fp32(f2u(NAN)))));
}

TEST(Numerics, SqrtCorrectlyRounded)
{
	Rng rng(7);
	for (int i = 0; i < 2000000; i++) {
		uint32_t u = static_cast<uint32_t>(rng.next()) & 0x7fffffffu;
		float x = u2f(u);
		if (std::isnan(x))
			continue;
		ASSERT_EQ(refnpu_sqrt_fp32(u), f2u(std::sqrt(x))) << std::hex << u;
	}
	for (uint32_t u = 1; u < 0x800000; u += 97) // subnormals
		ASSERT_EQ(refnpu_sqrt_fp32(u), f2u(std::sqrt(u2f(u))));
	EXPECT_EQ(refnpu_sqrt_fp32(f2u(-0.0f)), f2u(-0.0f));
	EXPECT_TRUE(std::isnan(u2f(refnpu_sqrt_fp32(f2u(-1.0f)))));
	EXPECT_EQ(u2f(refnpu_sqrt_fp32(f2u(INFINITY))), INFINITY);
	EXPECT_EQ(u2f(refnpu_sqrt_fp32(f2u(4.0f))), 2.0f);
}

TEST(Numerics, Activations)
{
	auto sig = [](long double x) { return 1.0L / (1.0L + std::exp(-x)); };
	auto gelu = [](long double x) { return 0.5L * x * std::erfc(-x / std::sqrt(2.0L)); };
	auto gelu_tanh = [](long double x) {
		long double u = std::sqrt(2.0L / 3.14159265358979323846264338327950288L) *
				(x + 0.044715L * x * x * x);
		return x / (1.0L + std::exp(-2.0L * u)); // = 0.5x(1 + tanh u)
	};
	auto tanhl_ = [](long double x) { return std::tanh(x); };
	auto f_sig = [](float x) { return eng_act(REFNPU_ACT_SIGMOID, x); };
	auto f_gelu = [](float x) { return eng_act(REFNPU_ACT_GELU, x); };
	auto f_gelut = [](float x) { return eng_act(REFNPU_ACT_GELU_TANH, x); };
	auto f_tanh = [](float x) { return eng_act(REFNPU_ACT_TANH, x); };

	int64_t w_sig = sweep(f_sig, sig, -30.0f, 30.0f, 200000);
	int64_t w_tanh = sweep(f_tanh, tanhl_, -12.0f, 12.0f, 200000);
	int64_t w_tanh_small = sweep(f_tanh, tanhl_, -1e-3f, 1e-3f, 20000);
	int64_t w_gelu = sweep(f_gelu, gelu, -12.0f, 12.0f, 200000);
	int64_t w_gelut = sweep(f_gelut, gelu_tanh, -9.0f, 12.0f, 200000);
	EXPECT_LE(std::max({w_sig, w_tanh, w_tanh_small, w_gelu, w_gelut}), 1);
	RecordProperty("sigmoid_max_ulp", static_cast<int>(w_sig));
	RecordProperty("tanh_max_ulp", static_cast<int>(std::max(w_tanh, w_tanh_small)));
	RecordProperty("gelu_max_ulp", static_cast<int>(w_gelu));
	RecordProperty("gelu_tanh_max_ulp", static_cast<int>(w_gelut));

	// Special values
	const float inf = INFINITY;
	EXPECT_EQ(eng_act(REFNPU_ACT_SIGMOID, inf), 1.0f);
	EXPECT_EQ(eng_act(REFNPU_ACT_SIGMOID, -inf), 0.0f);
	EXPECT_EQ(eng_act(REFNPU_ACT_TANH, inf), 1.0f);
	EXPECT_EQ(eng_act(REFNPU_ACT_TANH, -inf), -1.0f);
	EXPECT_EQ(f2u(eng_act(REFNPU_ACT_TANH, -0.0f)), f2u(-0.0f));
	EXPECT_EQ(eng_act(REFNPU_ACT_GELU, inf), inf);
	EXPECT_EQ(f2u(eng_act(REFNPU_ACT_GELU, -inf)), f2u(-0.0f));
	EXPECT_EQ(eng_act(REFNPU_ACT_GELU_TANH, inf), inf);
	EXPECT_EQ(f2u(eng_act(REFNPU_ACT_GELU_TANH, -inf)), f2u(-0.0f));
	EXPECT_EQ(eng_act(REFNPU_ACT_RELU, -3.0f), 0.0f);
	EXPECT_EQ(eng_act(REFNPU_ACT_RELU, 3.0f), 3.0f);
	EXPECT_EQ(f2u(eng_act(REFNPU_ACT_RELU, -0.0f)), f2u(-0.0f));
	EXPECT_EQ(eng_act(REFNPU_ACT_RELU, inf), inf);
	for (uint32_t f = 0; f < REFNPU_ACT_COUNT; f++)
		EXPECT_TRUE(std::isnan(eng_act(f, NAN))) << f;
}

namespace {

// Requantisation, formulated independently: exact rational value
// acc * mult / 2^shift rounded half away from zero, via __int128.
int8_t ref_requant(int32_t acc, int32_t mult, uint32_t shift, int32_t zp)
{
	__int128 p = static_cast<__int128>(acc) * mult;
	bool neg = p < 0;
	__int128 mag = neg ? -p : p;
	__int128 den = static_cast<__int128>(1) << shift;
	__int128 q = mag / den, rem = mag % den;
	if (shift && 2 * rem >= den)
		q++;
	__int128 v = (neg ? -q : q) + zp;
	return static_cast<int8_t>(v > 127 ? 127 : v < -128 ? -128 : v);
}

} // namespace

TEST(Numerics, Requantize)
{
	// Hand-checked: 3/2 = 1.5 -> 2, -3/2 -> -2, 5/4 -> 1, -5/2 -> -3
	EXPECT_EQ(refnpu_requantize(3, 1, 1, 0), 2);
	EXPECT_EQ(refnpu_requantize(-3, 1, 1, 0), -2);
	EXPECT_EQ(refnpu_requantize(5, 1, 2, 0), 1);
	EXPECT_EQ(refnpu_requantize(-5, 1, 1, 0), -3);
	EXPECT_EQ(refnpu_requantize(1000, 1, 0, 0), 127); // saturate
	EXPECT_EQ(refnpu_requantize(-1000, 1, 0, 0), -128);
	EXPECT_EQ(refnpu_requantize(100, 1, 0, 27), 127);
	EXPECT_EQ(refnpu_requantize(0, 12345, 7, -5), -5);
	EXPECT_EQ(refnpu_requantize(INT32_MIN, INT32_MAX, 63, 0), 0);
	EXPECT_EQ(refnpu_requantize(INT32_MIN, INT32_MAX, 62, 0), -1);
	EXPECT_EQ(refnpu_requantize(INT32_MAX, INT32_MAX, 62, 0), 1);
	EXPECT_EQ(refnpu_requantize(INT32_MIN, INT32_MAX, 0, 0), -128);

	Rng rng(11);
	for (int i = 0; i < 1000000; i++) {
		int32_t acc = static_cast<int32_t>(rng.next());
		if (i & 1)
			acc >>= (rng.next() % 31);
		int32_t mult = static_cast<int32_t>(rng.next() & 0x7fffffff);
		uint32_t shift = static_cast<uint32_t>(rng.next() % 64);
		int32_t zp = static_cast<int32_t>(rng.next() % 256) - 128;
		ASSERT_EQ(refnpu_requantize(acc, mult, shift, zp),
			  ref_requant(acc, mult, shift, zp))
			<< acc << " " << mult << " " << shift << " " << zp;
	}
}

TEST(Numerics, ErrorNames)
{
	EXPECT_STREQ(refnpu_engine_err_name(REFNPU_ERR_NONE), "NONE");
	EXPECT_STREQ(refnpu_engine_err_name(REFNPU_ERR_ABORTED), "ABORTED");
	EXPECT_STREQ(refnpu_engine_err_name(REFNPU_ERR_COUNT), "UNKNOWN");
	for (uint32_t c = 0; c < REFNPU_ERR_COUNT; c++)
		EXPECT_NE(refnpu_engine_err_name(c), nullptr);
}

TEST(Numerics, CmdSizes)
{
	EXPECT_EQ(refnpu_engine_cmd_size(REFNPU_OP_GEMM), REFNPU_CMD_GEMM_SIZE);
	EXPECT_EQ(refnpu_engine_cmd_size(REFNPU_OP_CONV2D), REFNPU_CMD_CONV2D_SIZE);
	EXPECT_EQ(refnpu_engine_cmd_size(0x7777), 0u);
}
