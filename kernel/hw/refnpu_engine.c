// SPDX-License-Identifier: MIT
/*
 * refnpu compute engine: reference implementation of the command set.
 *
 * Everything here is deterministic: the order of every floating-point
 * operation is fixed (and documented in Documentation/hardware.rst), the
 * transcendental functions are implemented here in double precision, and
 * products and sums are rounded separately (no contraction into FMA).
 * Tensors are streamed through small fixed tiles on the stack, so the
 * engine never needs more than REFNPU_ENGINE_MAX_STACK bytes of stack.
 *
 * Copyright (c) 2025 The refnpu authors
 */

#ifdef __clang__
#pragma clang fp contract(off)
#elif defined(__FMA__) && !defined(REFNPU_ENGINE_FP_CONTRACT_OFF)
/*
 * GCC has no reliable per-file switch: with FMA available the build must
 * pass -ffp-contract=off and define REFNPU_ENGINE_FP_CONTRACT_OFF.
 */
#error "compile the refnpu engine with -ffp-contract=off"
#endif

#include "refnpu_engine.h"

#ifdef __KERNEL__
#include <linux/build_bug.h>
#else
#include <assert.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the refnpu engine assumes a little-endian host"
#endif

#define U64_MAXV	(~0ULL)

/* Tile sizes (elements) */
#define VEC		64	/* row chunk for streaming ops */
#define GEMM_MB		4	/* rows of C per tile */
#define GEMM_NB		32	/* columns of C per tile */
#define GEMM_KB		32	/* K slice of A per load */
#define CONV_OB		32	/* output channels per tile */
#define CONV_CB		32	/* input channels per load */
#define COPY_BYTES	256

#define FP32_QNAN	0x7fc00000U
#define FP32_PINF	0x7f800000U
#define FP32_NINF	0xff800000U
#define FP32_SIGN	0x80000000U

#define SIZE_CHECK(type, size) \
	static_assert(sizeof(struct type) == (size), #type)

SIZE_CHECK(refnpu_job_desc, REFNPU_JOB_DESC_SIZE);
SIZE_CHECK(refnpu_completion, REFNPU_COMPLETION_SIZE);
SIZE_CHECK(refnpu_ctx_entry, REFNPU_CTX_ENTRY_SIZE);
SIZE_CHECK(refnpu_cmd_hdr, REFNPU_CMD_HDR_SIZE);
SIZE_CHECK(refnpu_cmd_nop, REFNPU_CMD_NOP_SIZE);
SIZE_CHECK(refnpu_cmd_copy, REFNPU_CMD_COPY_SIZE);
SIZE_CHECK(refnpu_cmd_fill, REFNPU_CMD_FILL_SIZE);
SIZE_CHECK(refnpu_cmd_gemm, REFNPU_CMD_GEMM_SIZE);
SIZE_CHECK(refnpu_cmd_ewise, REFNPU_CMD_EWISE_SIZE);
SIZE_CHECK(refnpu_cmd_act, REFNPU_CMD_ACT_SIZE);
SIZE_CHECK(refnpu_cmd_softmax, REFNPU_CMD_SOFTMAX_SIZE);
SIZE_CHECK(refnpu_cmd_layernorm, REFNPU_CMD_LAYERNORM_SIZE);
SIZE_CHECK(refnpu_cmd_conv2d, REFNPU_CMD_CONV2D_SIZE);
SIZE_CHECK(refnpu_cmd_pool2d, REFNPU_CMD_POOL2D_SIZE);

union refnpu_any_cmd {
	struct refnpu_cmd_hdr hdr;
	struct refnpu_cmd_copy copy;
	struct refnpu_cmd_fill fill;
	struct refnpu_cmd_gemm gemm;
	struct refnpu_cmd_ewise ewise;
	struct refnpu_cmd_act act;
	struct refnpu_cmd_softmax softmax;
	struct refnpu_cmd_layernorm ln;
	struct refnpu_cmd_conv2d conv;
	struct refnpu_cmd_pool2d pool;
	__u64 raw[REFNPU_CMD_MAX_SIZE / 8];
};

struct eng {
	const struct refnpu_engine_env *env;
	struct refnpu_engine_result *res;
	__u64 work;
};

/* ---------------------------------------------------------------------
 * Bit-level helpers
 */
#ifndef REFNPU_ENGINE_NO_FP
static inline __u32 f2u(float f)
{
	union { float f; __u32 u; } v = { .f = f };

	return v.u;
}

static inline float u2f(__u32 u)
{
	union { __u32 u; float f; } v = { .u = u };

	return v.f;
}

static inline __u64 d2u(double d)
{
	union { double d; __u64 u; } v = { .d = d };

	return v.u;
}

static inline double u2d(__u64 u)
{
	union { __u64 u; double d; } v = { .u = u };

	return v.d;
}

static inline bool is_nan(float x)
{
	return x != x;
}

#endif /* !REFNPU_ENGINE_NO_FP: bit casts */

static inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

/* a * b into *r; returns true on overflow */
static inline bool mul_ovf(__u64 a, __u64 b, __u64 *r)
{
	if (a && b > U64_MAXV / a)
		return true;
	*r = a * b;
	return false;
}

static inline bool add_ovf(__u64 a, __u64 b, __u64 *r)
{
	if (b > U64_MAXV - a)
		return true;
	*r = a + b;
	return false;
}

/* ---------------------------------------------------------------------
 * Numerics
 */

#ifndef REFNPU_ENGINE_NO_FP
/* 2^k as a double, for -1022 <= k <= 1023 */
static inline double pow2i(int k)
{
	return u2d((__u64)(k + 1023) << 52);
}

/*
 * e^x in double precision, error below 2 ulp (double) for finite results:
 * x = k*ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), e^r by a
 * degree-13 Taylor polynomial (truncation error < 5e-18), scaled by 2^k.
 */
static double rn_exp(double x)
{
	/* fdlibm's split of ln 2: ln2_hi has 11 trailing zero bits */
	const double ln2_hi = u2d(0x3fe62e42fee00000ULL);
	const double ln2_lo = u2d(0x3dea39ef35793c76ULL);
	const double log2e = 1.44269504088896338700;
	double kd, r, p;
	int k, i;

	if (x != x)
		return x + x;
	if (x > 709.782712893384)
		return u2d(0x7ff0000000000000ULL);
	if (x < -745.2)
		return 0.0;
	kd = x * log2e;
	k = (int)(kd < 0 ? kd - 0.5 : kd + 0.5);
	r = (x - (double)k * ln2_hi) - (double)k * ln2_lo;
	p = 1.0;
	for (i = 13; i >= 1; i--)
		p = 1.0 + p * r / (double)i;
	if (k > 1023)
		return p * pow2i(1023) * pow2i(k - 1023);
	if (k < -1022)
		return p * pow2i(-1022) * pow2i(k + 1022);
	return p * pow2i(k);
}

/* erf(t) by its Maclaurin series, for |t| < 2 (abs. error < 1e-15) */
static double rn_erf_series(double t)
{
	static const double two_over_sqrtpi = 1.12837916709551257390;
	double t2 = t * t, term = t, sum = t;
	int n;

	for (n = 1; n < 60; n++) {
		term = -term * t2 / (double)n;
		sum += term / (double)(2 * n + 1);
	}
	return two_over_sqrtpi * sum;
}

/* erfc(t) for t >= 2 by its continued fraction, 80 terms from the tail */
static double rn_erfc_cf(double t)
{
	static const double one_over_sqrtpi = 0.56418958354775628695;
	double f = t;
	int k;

	for (k = 80; k >= 1; k--)
		f = t + (0.5 * (double)k) / f;
	return one_over_sqrtpi * rn_exp(-t * t) / f;
}

static double rn_erfc(double t)
{
	if (t != t)
		return t;
	if (t >= 2.0)
		return t > 27.3 ? 0.0 : rn_erfc_cf(t);
	if (t <= -2.0)
		return t < -6.0 ? 2.0 : 2.0 - rn_erfc_cf(-t);
	return 1.0 - rn_erf_series(t);
}

static float exp_f(float x)
{
	return (float)rn_exp((double)x);
}

static float sigmoid_f(float x)
{
	return (float)(1.0 / (1.0 + rn_exp(-(double)x)));
}

static float tanh_f(float x)
{
	double a = x < 0 ? -(double)x : (double)x, t, r;

	if (is_nan(x))
		return x + x;
	if (a < 0.000244140625) {	/* 2^-12 */
		double a2 = a * a;

		r = a - a * a2 / 3.0 + 2.0 * a * a2 * a2 / 15.0;
	} else {
		t = rn_exp(-2.0 * a);
		r = (1.0 - t) / (1.0 + t);
	}
	return (float)(x < 0 || f2u(x) == FP32_SIGN ? -r : r);
}

static float gelu_f(float x)
{
	static const double rsqrt2 = 0.70710678118654752440;
	double d = x;

	if (is_nan(x))
		return x + x;
	if (f2u(x) == FP32_NINF)
		return -0.0f;
	return (float)(0.5 * d * rn_erfc(-d * rsqrt2));
}

static float gelu_tanh_f(float x)
{
	static const double k0 = 0.79788456080286535588; /* sqrt(2/pi) */
	static const double k1 = 0.044715;
	double d = x, u;

	if (is_nan(x))
		return x + x;
	if (f2u(x) == FP32_PINF)
		return x;
	if (f2u(x) == FP32_NINF)
		return -0.0f;
	u = k0 * (d + k1 * d * d * d);
	/* 0.5 * x * (1 + tanh(u)) == x / (1 + exp(-2u)), no cancellation */
	return (float)(d / (1.0 + rn_exp(-2.0 * u)));
}

static inline float relu_f(float x)
{
	return x < 0.0f ? 0.0f : x;
}

/* Correctly rounded square root of a float (Newton in double precision) */
static float sqrt_f(float x)
{
	__u64 bits;
	double m, y;
	int e, i;

	if (is_nan(x))
		return x + x;
	if (x == 0.0f)
		return x;
	if (x < 0.0f)
		return u2f(FP32_QNAN);
	if (f2u(x) == FP32_PINF)
		return x;
	bits = d2u((double)x);
	e = (int)((bits >> 52) & 0x7ff) - 1023;
	m = u2d((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
	if (e & 1) {
		m *= 2.0;
		e -= 1;
	}
	/* m in [1, 4): start from the chord, 6 Newton steps */
	y = 0.6666666666666666 + m / 3.0;
	for (i = 0; i < 6; i++)
		y = 0.5 * (y + m / y);
	return (float)(y * pow2i(e / 2));
}

/* IEEE 754-2019 maximum/minimum: NaN-propagating, -0 < +0 */
static inline float max_f(float a, float b)
{
	if (is_nan(a))
		return u2f(f2u(a) | 0x00400000U);
	if (is_nan(b))
		return u2f(f2u(b) | 0x00400000U);
	if (a == b)
		return u2f(f2u(a) & f2u(b));
	return a > b ? a : b;
}

static inline float min_f(float a, float b)
{
	if (is_nan(a))
		return u2f(f2u(a) | 0x00400000U);
	if (is_nan(b))
		return u2f(f2u(b) | 0x00400000U);
	if (a == b)
		return u2f(f2u(a) | f2u(b));
	return a < b ? a : b;
}

#endif /* !REFNPU_ENGINE_NO_FP: transcendental functions */

static __u16 f32_to_f16(__u32 x)
{
	__u32 sign = (x >> 16) & 0x8000;
	__u32 exp = (x >> 23) & 0xff;
	__u32 man = x & 0x7fffff;
	__u32 h, rem, half, shift;
	int e;

	if (exp == 0xff)
		return (__u16)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	e = (int)exp - 127 + 15;
	if (e >= 31)
		return (__u16)(sign | 0x7c00);
	if (e <= 0) {
		if (e < -10)
			return (__u16)sign;
		man |= 0x800000;
		shift = (__u32)(14 - e);
		h = man >> shift;
		rem = man & ((1U << shift) - 1);
		half = 1U << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return (__u16)(sign | h);
	}
	h = ((__u32)e << 10) | (man >> 13);
	rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (__u16)(sign | h);
}

static __u32 f16_to_f32(__u16 h)
{
	__u32 sign = (__u32)(h & 0x8000) << 16;
	__u32 exp = (h >> 10) & 0x1f;
	__u32 man = h & 0x3ff;

	if (exp == 0x1f)
		return sign | FP32_PINF | (man << 13);
	if (exp == 0) {
		if (!man)
			return sign;
		exp = 127 - 15 + 1;
		while (!(man & 0x400)) {
			man <<= 1;
			exp--;
		}
		return sign | (exp << 23) | ((man & 0x3ff) << 13);
	}
	return sign | ((exp + 127 - 15) << 23) | (man << 13);
}

static __u16 f32_to_bf16(__u32 x)
{
	if ((x & 0x7fffffffU) > FP32_PINF)
		return (__u16)((x >> 16) | 0x0040);
	return (__u16)((x + 0x7fffU + ((x >> 16) & 1)) >> 16);
}

static inline __u32 bf16_to_f32(__u16 h)
{
	return (__u32)h << 16;
}

static __s32 requant(__s32 acc, __s32 mult, __u32 shift, __s32 zp)
{
	__s64 p = (__s64)acc * (__s64)mult;
	__u64 mag = p < 0 ? (__u64)0 - (__u64)p : (__u64)p;
	__s64 q;

	if (shift)
		mag = (mag + (1ULL << (shift - 1))) >> shift;
	q = p < 0 ? -(__s64)mag : (__s64)mag;
	q += zp;
	if (q > 127)
		q = 127;
	if (q < -128)
		q = -128;
	return (__s32)q;
}

#ifndef REFNPU_ENGINE_NO_FP
static float act_f(__u32 func, float x)
{
	switch (func) {
	case REFNPU_ACT_RELU:
		return relu_f(x);
	case REFNPU_ACT_GELU:
		return gelu_f(x);
	case REFNPU_ACT_GELU_TANH:
		return gelu_tanh_f(x);
	case REFNPU_ACT_SIGMOID:
		return sigmoid_f(x);
	default:
		return tanh_f(x);
	}
}

#endif /* !REFNPU_ENGINE_NO_FP: activations */

/* ---------------------------------------------------------------------
 * Memory access and progress
 */
static __u32 eng_read(struct eng *e, __u64 va, void *buf, __u64 len)
{
	__u64 fva = va;
	__u32 st;

	if (!len)
		return REFNPU_ERR_NONE;
	st = e->env->read(e->env->opaque, va, buf, len, &fva);
	if (st) {
		e->res->fault_va = fva;
		e->res->fault_flags = 0;
	}
	return st;
}

static __u32 eng_write(struct eng *e, __u64 va, const void *buf, __u64 len)
{
	__u64 fva = va;
	__u32 st;

	if (!len)
		return REFNPU_ERR_NONE;
	st = e->env->write(e->env->opaque, va, buf, len, &fva);
	if (st) {
		e->res->fault_va = fva;
		e->res->fault_flags = REFNPU_FAULT_F_WRITE;
	}
	return st;
}

static __u32 eng_tick(struct eng *e, __u64 cost)
{
	e->work += cost;
	if (e->work < REFNPU_ENGINE_CHUNK_WORK)
		return REFNPU_ERR_NONE;
	e->work = 0;
	if (!e->env->checkpoint)
		return REFNPU_ERR_NONE;
	return e->env->checkpoint(e->env->opaque);
}

#ifndef REFNPU_ENGINE_NO_FP
/* Load n (<= VEC) elements of a float dtype, widened to fp32 */
static __u32 load_f32(struct eng *e, __u64 va, __u32 dtype, __u32 n,
		      float *out)
{
	__u16 raw[VEC];
	__u32 i, st;

	if (dtype == REFNPU_DTYPE_FP32)
		return eng_read(e, va, out, (__u64)n * 4);
	st = eng_read(e, va, raw, (__u64)n * 2);
	if (st)
		return st;
	for (i = 0; i < n; i++)
		out[i] = u2f(dtype == REFNPU_DTYPE_FP16 ? f16_to_f32(raw[i]) :
			     bf16_to_f32(raw[i]));
	return REFNPU_ERR_NONE;
}

/* Store n (<= VEC) fp32 values narrowed to a float dtype */
static __u32 store_f32(struct eng *e, __u64 va, __u32 dtype, __u32 n,
		       const float *in)
{
	__u16 raw[VEC];
	__u32 i;

	if (dtype == REFNPU_DTYPE_FP32)
		return eng_write(e, va, in, (__u64)n * 4);
	for (i = 0; i < n; i++)
		raw[i] = dtype == REFNPU_DTYPE_FP16 ? f32_to_f16(f2u(in[i])) :
			 f32_to_bf16(f2u(in[i]));
	return eng_write(e, va, raw, (__u64)n * 2);
}

#endif /* !REFNPU_ENGINE_NO_FP: fp32 loads and stores */

/* ---------------------------------------------------------------------
 * Operand validation
 */

/*
 * A rows x row_bytes view at (va, pitch), elements of esize bytes: the
 * address and (for more than one row) the pitch must be aligned, the pitch
 * must cover a row and the whole extent must not wrap the address space.
 * Empty views are always valid and never accessed.
 */
static bool view_ok(__u64 va, __u64 pitch, __u64 rows, __u64 row_bytes,
		    __u32 esize)
{
	__u64 ext, end;

	if (!rows || !row_bytes)
		return true;
	if (va % esize)
		return false;
	if (rows > 1) {
		if (pitch % esize || pitch < row_bytes)
			return false;
		if (mul_ovf(rows - 1, pitch, &ext))
			return false;
	} else {
		ext = 0;
	}
	if (add_ovf(ext, row_bytes - 1, &ext) || add_ovf(va, ext, &end))
		return false;
	return true;
}

static bool t2d_ok(const struct refnpu_tensor2d *t, __u64 rows, __u64 cols,
		   __u32 esize)
{
	return view_ok(t->va, t->pitch, rows, cols * esize, esize);
}

/* A contiguous vector of n elements */
static bool vec_ok(__u64 va, __u64 n, __u32 esize)
{
	return view_ok(va, 0, n ? 1 : 0, n * esize, esize);
}

#ifndef REFNPU_ENGINE_NO_FP
/* N x H x W x C view; row_bytes = W*C*esize */
static bool nhwc_ok(const struct refnpu_tensor_nhwc *t, __u64 n, __u64 h,
		    __u64 w, __u64 c, __u32 esize)
{
	__u64 row, img;

	if (!n || !h || !w || !c)
		return true;
	if (mul_ovf(w, c, &row) || mul_ovf(row, esize, &row))
		return false;
	/* one image: h rows at pitch_h */
	if (!view_ok(t->va, t->pitch_h, h, row, esize))
		return false;
	img = (h - 1) * t->pitch_h + row;	/* checked by view_ok */
	if (n > 1 && (t->pitch_n % esize || t->pitch_n < img))
		return false;
	return view_ok(t->va, t->pitch_n, n, img, esize);
}

#endif /* !REFNPU_ENGINE_NO_FP: only conv2d and pool2d use it */

static inline bool float_dtype(__u32 t)
{
	return t == REFNPU_DTYPE_FP32 || t == REFNPU_DTYPE_FP16 ||
	       t == REFNPU_DTYPE_BF16;
}

/* ---------------------------------------------------------------------
 * COPY / FILL
 */
static __u32 op_copy(struct eng *e, const struct refnpu_cmd_copy *c)
{
	__u8 buf[COPY_BYTES];
	__u64 r, off, n;
	__u32 st;

	if (c->hdr.flags)
		return REFNPU_ERR_MALFORMED;
	if (!t2d_ok(&c->src, c->rows, c->row_bytes, 1) ||
	    !t2d_ok(&c->dst, c->rows, c->row_bytes, 1))
		return REFNPU_ERR_MALFORMED;
	if (!c->row_bytes)
		return REFNPU_ERR_NONE;
	for (r = 0; r < c->rows; r++) {
		for (off = 0; off < c->row_bytes; off += n) {
			n = c->row_bytes - off;
			if (n > COPY_BYTES)
				n = COPY_BYTES;
			st = eng_read(e, c->src.va + r * c->src.pitch + off,
				      buf, n);
			if (!st)
				st = eng_write(e, c->dst.va +
					       r * c->dst.pitch + off, buf, n);
			if (!st)
				st = eng_tick(e, n / 4 + 1);
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

static __u32 op_fill(struct eng *e, const struct refnpu_cmd_fill *c)
{
	__u8 buf[COPY_BYTES];
	__u32 pb = c->pattern_bytes, i;
	__u64 r, off, n;
	__u32 st;

	if (c->hdr.flags || c->rsvd)
		return REFNPU_ERR_MALFORMED;
	if (pb != 1 && pb != 2 && pb != 4 && pb != 8)
		return REFNPU_ERR_MALFORMED;
	if (pb < 8 && (c->pattern >> (8 * pb)))
		return REFNPU_ERR_MALFORMED;
	if (c->row_bytes % pb ||
	    !view_ok(c->dst.va, c->dst.pitch, c->rows, c->row_bytes, pb))
		return REFNPU_ERR_MALFORMED;
	if (!c->row_bytes)
		return REFNPU_ERR_NONE;
	for (i = 0; i < COPY_BYTES; i++)
		buf[i] = (__u8)(c->pattern >> (8 * (i % pb)));
	for (r = 0; r < c->rows; r++) {
		for (off = 0; off < c->row_bytes; off += n) {
			n = c->row_bytes - off;
			if (n > COPY_BYTES)
				n = COPY_BYTES;
			st = eng_write(e, c->dst.va + r * c->dst.pitch + off,
				       buf, n);
			if (!st)
				st = eng_tick(e, n / 4 + 1);
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

/* ---------------------------------------------------------------------
 * GEMM
 */
#ifndef REFNPU_ENGINE_NO_FP
static inline void axpy_f(float *acc, float a, const float *b, __u32 n)
{
	__u32 j;

	for (j = 0; j < n; j++)
		acc[j] = acc[j] + a * b[j];
}

#endif /* !REFNPU_ENGINE_NO_FP: float axpy */

static inline void axpy_i(__u32 *acc, __s32 a, const __s8 *b, __u32 n)
{
	__u32 j;

	for (j = 0; j < n; j++)
		acc[j] += (__u32)(a * b[j]);
}

#ifndef REFNPU_ENGINE_NO_FP
/* Sum over all of K into the tile C[i0..i0+mb][j0..j0+nb], float types */
static __u32 gemm_f_accumulate(struct eng *e, const struct refnpu_cmd_gemm *g,
			       __u32 i0, __u32 mb, __u32 j0, __u32 nb,
			       float acc[GEMM_MB][GEMM_NB])
{
	const __u32 es = REFNPU_DTYPE_SIZE(g->in_dtype);
	float a[GEMM_MB][GEMM_KB];
	float b[GEMM_NB];
	__u32 k0, kb, kk, r, st;

	for (k0 = 0; k0 < g->k; k0 += kb) {
		kb = min_u32(GEMM_KB, g->k - k0);
		for (r = 0; r < mb; r++) {
			st = load_f32(e, g->a.va + (__u64)(i0 + r) * g->a.pitch +
				      (__u64)k0 * es, g->in_dtype, kb, a[r]);
			if (st)
				return st;
		}
		for (kk = 0; kk < kb; kk++) {
			st = load_f32(e, g->b.va + (__u64)(k0 + kk) * g->b.pitch +
				      (__u64)j0 * es, g->in_dtype, nb, b);
			if (st)
				return st;
			for (r = 0; r < mb; r++)
				axpy_f(acc[r], a[r][kk], b, nb);
		}
		st = eng_tick(e, (__u64)mb * nb * kb);
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

/* Epilogue of a float tile: bias, ReLU, narrowing, store */
static __u32 gemm_f_store(struct eng *e, const struct refnpu_cmd_gemm *g,
			  __u32 i0, __u32 mb, __u32 j0, __u32 nb,
			  float acc[GEMM_MB][GEMM_NB])
{
	const __u32 es = REFNPU_DTYPE_SIZE(g->out_dtype);
	float bias[GEMM_NB];
	__u32 r, j, st;

	if (g->hdr.flags & REFNPU_GEMM_F_BIAS) {
		st = eng_read(e, g->bias_va + (__u64)j0 * 4, bias, (__u64)nb * 4);
		if (st)
			return st;
		for (r = 0; r < mb; r++)
			for (j = 0; j < nb; j++)
				acc[r][j] = acc[r][j] + bias[j];
	}
	for (r = 0; r < mb; r++) {
		if (g->hdr.flags & REFNPU_GEMM_F_RELU)
			for (j = 0; j < nb; j++)
				acc[r][j] = relu_f(acc[r][j]);
		st = store_f32(e, g->c.va + (__u64)(i0 + r) * g->c.pitch +
			       (__u64)j0 * es, g->out_dtype, nb, acc[r]);
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

static __u32 gemm_float(struct eng *e, const struct refnpu_cmd_gemm *g)
{
	float acc[GEMM_MB][GEMM_NB];
	__u32 i0, j0, mb, nb, r, j, st;

	for (i0 = 0; i0 < g->m; i0 += mb) {
		mb = min_u32(GEMM_MB, g->m - i0);
		for (j0 = 0; j0 < g->n; j0 += nb) {
			nb = min_u32(GEMM_NB, g->n - j0);
			for (r = 0; r < mb; r++)
				for (j = 0; j < nb; j++)
					acc[r][j] = 0.0f;
			st = gemm_f_accumulate(e, g, i0, mb, j0, nb, acc);
			if (!st)
				st = gemm_f_store(e, g, i0, mb, j0, nb, acc);
			if (!st)
				st = eng_tick(e, (__u64)mb * nb + 1);
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

#endif /* !REFNPU_ENGINE_NO_FP: float GEMM */

/* Sum over all of K into an int8 tile (wrapping int32 accumulators) */
static __u32 gemm_i_accumulate(struct eng *e, const struct refnpu_cmd_gemm *g,
			       __u32 i0, __u32 mb, __u32 j0, __u32 nb,
			       __u32 acc[GEMM_MB][GEMM_NB])
{
	__s8 a[GEMM_MB][GEMM_KB];
	__s8 b[GEMM_NB];
	__u32 k0, kb, kk, r, st;

	for (k0 = 0; k0 < g->k; k0 += kb) {
		kb = min_u32(GEMM_KB, g->k - k0);
		for (r = 0; r < mb; r++) {
			st = eng_read(e, g->a.va + (__u64)(i0 + r) * g->a.pitch +
				      k0, a[r], kb);
			if (st)
				return st;
		}
		for (kk = 0; kk < kb; kk++) {
			st = eng_read(e, g->b.va + (__u64)(k0 + kk) * g->b.pitch +
				      j0, b, nb);
			if (st)
				return st;
			for (r = 0; r < mb; r++)
				axpy_i(acc[r], a[r][kk], b, nb);
		}
		st = eng_tick(e, (__u64)mb * nb * kb);
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

/* Epilogue of an int8 tile: bias, requantisation or ReLU, store */
static __u32 gemm_i_store(struct eng *e, const struct refnpu_cmd_gemm *g,
			  __u32 i0, __u32 mb, __u32 j0, __u32 nb,
			  __u32 acc[GEMM_MB][GEMM_NB])
{
	const bool out8 = g->out_dtype == REFNPU_DTYPE_INT8;
	const bool relu = g->hdr.flags & REFNPU_GEMM_F_RELU;
	__s32 bias[GEMM_NB];
	__s8 o8[GEMM_NB];
	__u32 r, j, st;
	__u64 va;

	if (g->hdr.flags & REFNPU_GEMM_F_BIAS) {
		st = eng_read(e, g->bias_va + (__u64)j0 * 4, bias, (__u64)nb * 4);
		if (st)
			return st;
		for (r = 0; r < mb; r++)
			for (j = 0; j < nb; j++)
				acc[r][j] += (__u32)bias[j];
	}
	for (r = 0; r < mb; r++) {
		__s32 *o32 = (__s32 *)acc[r];

		va = g->c.va + (__u64)(i0 + r) * g->c.pitch;
		if (out8) {
			for (j = 0; j < nb; j++) {
				__s32 s = requant((__s32)acc[r][j],
						  g->rq_multiplier, g->rq_shift,
						  g->rq_zero_point);

				if (relu && s < g->rq_zero_point)
					s = g->rq_zero_point;
				o8[j] = (__s8)s;
			}
			st = eng_write(e, va + j0, o8, nb);
		} else {
			for (j = 0; j < nb; j++)
				if (relu && o32[j] < 0)
					o32[j] = 0;
			st = eng_write(e, va + (__u64)j0 * 4, o32, (__u64)nb * 4);
		}
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

static __u32 gemm_int8(struct eng *e, const struct refnpu_cmd_gemm *g)
{
	__u32 acc[GEMM_MB][GEMM_NB];
	__u32 i0, j0, mb, nb, r, j, st;

	for (i0 = 0; i0 < g->m; i0 += mb) {
		mb = min_u32(GEMM_MB, g->m - i0);
		for (j0 = 0; j0 < g->n; j0 += nb) {
			nb = min_u32(GEMM_NB, g->n - j0);
			for (r = 0; r < mb; r++)
				for (j = 0; j < nb; j++)
					acc[r][j] = 0;
			st = gemm_i_accumulate(e, g, i0, mb, j0, nb, acc);
			if (!st)
				st = gemm_i_store(e, g, i0, mb, j0, nb, acc);
			if (!st)
				st = eng_tick(e, (__u64)mb * nb + 1);
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

static __u32 op_gemm(struct eng *e, const struct refnpu_cmd_gemm *g)
{
	const struct refnpu_engine_env *env = e->env;
	__u32 ies, oes, st;

	if (g->hdr.flags & ~REFNPU_GEMM_F_VALID_MASK)
		return REFNPU_ERR_MALFORMED;
	if (g->in_dtype >= REFNPU_DTYPE_COUNT ||
	    g->out_dtype >= REFNPU_DTYPE_COUNT)
		return REFNPU_ERR_UNSUPPORTED;
	if (float_dtype(g->in_dtype)) {
		if (!float_dtype(g->out_dtype) || !REFNPU_ENGINE_HAS_FP)
			return REFNPU_ERR_UNSUPPORTED;
	} else if (g->in_dtype == REFNPU_DTYPE_INT8) {
		if (g->out_dtype != REFNPU_DTYPE_INT8 &&
		    g->out_dtype != REFNPU_DTYPE_INT32)
			return REFNPU_ERR_UNSUPPORTED;
	} else {
		return REFNPU_ERR_UNSUPPORTED;
	}
	if (g->out_dtype == REFNPU_DTYPE_INT8) {
		if (g->rq_multiplier < 0 || g->rq_shift > REFNPU_RQ_SHIFT_MAX ||
		    g->rq_zero_point < -128 || g->rq_zero_point > 127)
			return REFNPU_ERR_MALFORMED;
	} else if (g->rq_multiplier || g->rq_shift || g->rq_zero_point) {
		return REFNPU_ERR_MALFORMED;
	}
	if (!(g->hdr.flags & REFNPU_GEMM_F_BIAS) && g->bias_va)
		return REFNPU_ERR_MALFORMED;
	ies = REFNPU_DTYPE_SIZE(g->in_dtype);
	oes = REFNPU_DTYPE_SIZE(g->out_dtype);
	if (!t2d_ok(&g->c, g->m, g->n, oes))
		return REFNPU_ERR_MALFORMED;
	if (!g->m || !g->n)
		return REFNPU_ERR_NONE;
	if (!t2d_ok(&g->a, g->m, g->k, ies) || !t2d_ok(&g->b, g->k, g->n, ies))
		return REFNPU_ERR_MALFORMED;
	if ((g->hdr.flags & REFNPU_GEMM_F_BIAS) && !vec_ok(g->bias_va, g->n, 4))
		return REFNPU_ERR_MALFORMED;

	if (g->in_dtype == REFNPU_DTYPE_INT8)
		return gemm_int8(e, g);
#ifndef REFNPU_ENGINE_NO_FP
	if (g->in_dtype == REFNPU_DTYPE_FP32 &&
	    g->out_dtype == REFNPU_DTYPE_FP32 && env->gemm_f32) {
		__u64 fva = 0;
		__u32 ff = 0;

		st = env->gemm_f32(env->opaque, g, &fva, &ff);
		if (st != REFNPU_ENGINE_DECLINED) {
			if (st) {
				e->res->fault_va = fva;
				e->res->fault_flags = ff;
			}
			return st;
		}
	}
	return gemm_float(e, g);
#else
	(void)env;
	(void)st;
	return REFNPU_ERR_UNSUPPORTED;
#endif
}

#ifndef REFNPU_ENGINE_NO_FP
/* ---------------------------------------------------------------------
 * Elementwise, activations, softmax, layernorm
 */
static inline float ewise_f(__u32 op, float a, float b)
{
	switch (op) {
	case REFNPU_EWISE_ADD:
		return a + b;
	case REFNPU_EWISE_SUB:
		return a - b;
	case REFNPU_EWISE_MUL:
		return a * b;
	case REFNPU_EWISE_MAX:
		return max_f(a, b);
	default:
		return min_f(a, b);
	}
}

static __u32 op_ewise(struct eng *e, const struct refnpu_cmd_ewise *c)
{
	float a[VEC], b[VEC];
	__u64 brows, bcols;
	__u32 r, c0, n, j, st;
	float bs = 0.0f;

	if (c->hdr.flags || c->rsvd)
		return REFNPU_ERR_MALFORMED;
	if (c->dtype != REFNPU_DTYPE_FP32 || c->op >= REFNPU_EWISE_COUNT ||
	    c->bcast >= REFNPU_BCAST_COUNT)
		return REFNPU_ERR_UNSUPPORTED;
	if (!c->rows || !c->cols)
		return REFNPU_ERR_NONE;
	switch (c->bcast) {
	case REFNPU_BCAST_NONE:
		brows = c->rows;
		bcols = c->cols;
		break;
	case REFNPU_BCAST_ROW:
		brows = 1;
		bcols = c->cols;
		break;
	case REFNPU_BCAST_COL:
		brows = c->rows;
		bcols = 1;
		break;
	default:
		brows = 1;
		bcols = 1;
		break;
	}
	if (!t2d_ok(&c->a, c->rows, c->cols, 4) ||
	    !t2d_ok(&c->b, brows, bcols, 4) ||
	    !t2d_ok(&c->out, c->rows, c->cols, 4))
		return REFNPU_ERR_MALFORMED;
	if (c->bcast == REFNPU_BCAST_SCALAR) {
		st = eng_read(e, c->b.va, &bs, 4);
		if (st)
			return st;
	}
	for (r = 0; r < c->rows; r++) {
		if (c->bcast == REFNPU_BCAST_COL) {
			st = eng_read(e, c->b.va + (__u64)r * c->b.pitch, &bs, 4);
			if (st)
				return st;
		}
		for (c0 = 0; c0 < c->cols; c0 += n) {
			n = min_u32(VEC, c->cols - c0);
			st = eng_read(e, c->a.va + (__u64)r * c->a.pitch +
				      (__u64)c0 * 4, a, (__u64)n * 4);
			if (st)
				return st;
			if (c->bcast == REFNPU_BCAST_NONE ||
			    c->bcast == REFNPU_BCAST_ROW) {
				__u64 brow = c->bcast == REFNPU_BCAST_NONE ? r : 0;

				st = eng_read(e, c->b.va + brow * c->b.pitch +
					      (__u64)c0 * 4, b, (__u64)n * 4);
				if (st)
					return st;
				for (j = 0; j < n; j++)
					a[j] = ewise_f(c->op, a[j], b[j]);
			} else {
				for (j = 0; j < n; j++)
					a[j] = ewise_f(c->op, a[j], bs);
			}
			st = eng_write(e, c->out.va + (__u64)r * c->out.pitch +
				       (__u64)c0 * 4, a, (__u64)n * 4);
			if (!st)
				st = eng_tick(e, n);
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

static __u32 op_act(struct eng *e, const struct refnpu_cmd_act *c)
{
	float x[VEC];
	__u32 r, c0, n, j, st;

	if (c->hdr.flags)
		return REFNPU_ERR_MALFORMED;
	if (c->dtype != REFNPU_DTYPE_FP32 || c->func >= REFNPU_ACT_COUNT)
		return REFNPU_ERR_UNSUPPORTED;
	if (!t2d_ok(&c->src, c->rows, c->cols, 4) ||
	    !t2d_ok(&c->dst, c->rows, c->cols, 4))
		return REFNPU_ERR_MALFORMED;
	if (!c->cols)
		return REFNPU_ERR_NONE;
	for (r = 0; r < c->rows; r++) {
		for (c0 = 0; c0 < c->cols; c0 += n) {
			n = min_u32(VEC, c->cols - c0);
			st = eng_read(e, c->src.va + (__u64)r * c->src.pitch +
				      (__u64)c0 * 4, x, (__u64)n * 4);
			if (st)
				return st;
			for (j = 0; j < n; j++)
				x[j] = act_f(c->func, x[j]);
			st = eng_write(e, c->dst.va + (__u64)r * c->dst.pitch +
				       (__u64)c0 * 4, x, (__u64)n * 4);
			if (!st)
				st = eng_tick(e, (__u64)n *
					      (c->func == REFNPU_ACT_RELU ? 1 : 16));
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

/* softmax of one row: pass 0 max, pass 1 sum of exp, pass 2 normalise */
static __u32 softmax_row(struct eng *e, __u64 srow, __u64 drow, __u32 cols)
{
	float x[VEC];
	float m = u2f(FP32_NINF), s = 0.0f;
	__u32 c0, n, j, st;
	int pass;

	for (pass = 0; pass < 3; pass++) {
		for (c0 = 0; c0 < cols; c0 += n) {
			n = min_u32(VEC, cols - c0);
			st = eng_read(e, srow + (__u64)c0 * 4, x, (__u64)n * 4);
			if (st)
				return st;
			for (j = 0; j < n; j++) {
				if (pass == 0)
					m = max_f(m, x[j]);
				else if (pass == 1)
					s = s + exp_f(x[j] - m);
				else
					x[j] = exp_f(x[j] - m) / s;
			}
			if (pass == 2)
				st = eng_write(e, drow + (__u64)c0 * 4, x,
					       (__u64)n * 4);
			if (!st)
				st = eng_tick(e, (__u64)n * 8);
			if (st)
				return st;
		}
	}
	return REFNPU_ERR_NONE;
}

static __u32 op_softmax(struct eng *e, const struct refnpu_cmd_softmax *c)
{
	__u32 r, st;

	if (c->hdr.flags || c->rsvd)
		return REFNPU_ERR_MALFORMED;
	if (c->dtype != REFNPU_DTYPE_FP32)
		return REFNPU_ERR_UNSUPPORTED;
	if (!t2d_ok(&c->src, c->rows, c->cols, 4) ||
	    !t2d_ok(&c->dst, c->rows, c->cols, 4))
		return REFNPU_ERR_MALFORMED;
	if (!c->cols)
		return REFNPU_ERR_NONE;
	for (r = 0; r < c->rows; r++) {
		st = softmax_row(e, c->src.va + (__u64)r * c->src.pitch,
				 c->dst.va + (__u64)r * c->dst.pitch, c->cols);
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

/* x[j] = x[j] op p[j] for a chunk of a vector operand at va */
static __u32 ln_apply(struct eng *e, __u64 va, float *x, __u32 n, bool add)
{
	float p[VEC];
	__u32 j, st;

	st = eng_read(e, va, p, (__u64)n * 4);
	if (st)
		return st;
	for (j = 0; j < n; j++)
		x[j] = add ? x[j] + p[j] : x[j] * p[j];
	return REFNPU_ERR_NONE;
}

/* layernorm of one row: pass 0 mean, pass 1 variance, pass 2 normalise */
static __u32 ln_row(struct eng *e, const struct refnpu_cmd_layernorm *c,
		    __u64 srow, __u64 drow)
{
	float x[VEC];
	float sum = 0.0f, mean = 0.0f, var = 0.0f, rstd = 0.0f, d;
	__u32 c0, n, j, st;
	int pass;

	for (pass = 0; pass < 3; pass++) {
		for (c0 = 0; c0 < c->cols; c0 += n) {
			n = min_u32(VEC, c->cols - c0);
			st = eng_read(e, srow + (__u64)c0 * 4, x, (__u64)n * 4);
			if (st)
				return st;
			for (j = 0; j < n; j++) {
				if (pass == 0) {
					sum = sum + x[j];
				} else if (pass == 1) {
					d = x[j] - mean;
					var = var + d * d;
				} else {
					x[j] = (x[j] - mean) * rstd;
				}
			}
			if (pass == 2 && (c->hdr.flags & REFNPU_LN_F_GAMMA))
				st = ln_apply(e, c->gamma_va + (__u64)c0 * 4, x, n,
					      false);
			if (!st && pass == 2 && (c->hdr.flags & REFNPU_LN_F_BETA))
				st = ln_apply(e, c->beta_va + (__u64)c0 * 4, x, n,
					      true);
			if (!st && pass == 2)
				st = eng_write(e, drow + (__u64)c0 * 4, x,
					       (__u64)n * 4);
			if (!st)
				st = eng_tick(e, (__u64)n * 4);
			if (st)
				return st;
		}
		if (pass == 0)
			mean = sum / (float)c->cols;
		else if (pass == 1)
			rstd = 1.0f / sqrt_f(var / (float)c->cols +
					     u2f(c->eps_bits));
	}
	return REFNPU_ERR_NONE;
}

static __u32 op_layernorm(struct eng *e, const struct refnpu_cmd_layernorm *c)
{
	const bool has_g = c->hdr.flags & REFNPU_LN_F_GAMMA;
	const bool has_b = c->hdr.flags & REFNPU_LN_F_BETA;
	__u32 r, st;

	if (c->hdr.flags & ~REFNPU_LN_F_VALID_MASK)
		return REFNPU_ERR_MALFORMED;
	if (c->dtype != REFNPU_DTYPE_FP32)
		return REFNPU_ERR_UNSUPPORTED;
	if ((c->eps_bits & FP32_SIGN) || (c->eps_bits & FP32_PINF) == FP32_PINF)
		return REFNPU_ERR_MALFORMED;
	if ((!has_g && c->gamma_va) || (!has_b && c->beta_va))
		return REFNPU_ERR_MALFORMED;
	if (!t2d_ok(&c->src, c->rows, c->cols, 4) ||
	    !t2d_ok(&c->dst, c->rows, c->cols, 4))
		return REFNPU_ERR_MALFORMED;
	if (!c->rows || !c->cols)
		return REFNPU_ERR_NONE;
	if ((has_g && !vec_ok(c->gamma_va, c->cols, 4)) ||
	    (has_b && !vec_ok(c->beta_va, c->cols, 4)))
		return REFNPU_ERR_MALFORMED;
	for (r = 0; r < c->rows; r++) {
		st = ln_row(e, c, c->src.va + (__u64)r * c->src.pitch,
			    c->dst.va + (__u64)r * c->dst.pitch);
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

/* ---------------------------------------------------------------------
 * CONV2D / POOL2D
 */

/* Output extent; false if the padded input is smaller than the window */
static bool out_dim(__u64 in, __u64 pad0, __u64 pad1, __u64 k, __u64 dil,
		    __u64 stride, __u64 *out)
{
	__u64 span = in + pad0 + pad1, eff = dil * (k - 1) + 1;

	if (span < eff)
		return false;
	*out = (span - eff) / stride + 1;
	return true;
}

/* Input coordinate of output position o, tap t; -1 if in the padding */
static inline __s64 in_coord(__u64 o, __u64 stride, __u64 t, __u64 dil,
			     __u64 pad, __u64 size)
{
	__s64 i = (__s64)(o * stride + t * dil) - (__s64)pad;

	return i < (__s64)size ? i : -1;
}

/* One filter tap: acc[o] += sum_c x[px + c] * W[frow + c][oc0 + o] */
static __u32 conv_tap(struct eng *e, const struct refnpu_cmd_conv2d *c,
		      __u64 px, __u64 frow, __u32 oc0, __u32 ob, float *acc)
{
	float x[CONV_CB], w[CONV_OB];
	__u32 c0, cb, cc, st;

	for (c0 = 0; c0 < c->c; c0 += cb) {
		cb = min_u32(CONV_CB, c->c - c0);
		st = eng_read(e, px + (__u64)c0 * 4, x, (__u64)cb * 4);
		if (st)
			return st;
		for (cc = 0; cc < cb; cc++) {
			st = eng_read(e, c->filter.va +
				      (frow + c0 + cc) * c->filter.pitch +
				      (__u64)oc0 * 4, w, (__u64)ob * 4);
			if (st)
				return st;
			axpy_f(acc, x[cc], w, ob);
		}
		st = eng_tick(e, (__u64)cb * ob);
		if (st)
			return st;
	}
	return REFNPU_ERR_NONE;
}

/* Output pixel (n, oh, ow), output channels [oc0, oc0 + ob) */
static __u32 conv_pixel(struct eng *e, const struct refnpu_cmd_conv2d *c,
			__u64 n, __u64 oh, __u64 ow, __u32 oc0, __u32 ob)
{
	float acc[CONV_OB], bias[CONV_OB];
	__u64 kh, kw;
	__s64 ih, iw;
	__u32 o, st;

	for (o = 0; o < ob; o++)
		acc[o] = 0.0f;
	for (kh = 0; kh < c->kh; kh++) {
		ih = in_coord(oh, c->stride_h, kh, c->dil_h, c->pad_top, c->h);
		for (kw = 0; kw < c->kw; kw++) {
			iw = in_coord(ow, c->stride_w, kw, c->dil_w, c->pad_left,
				      c->w);
			st = eng_tick(e, 1);
			if (!st && ih >= 0 && iw >= 0)
				st = conv_tap(e, c, c->in.va + n * c->in.pitch_n +
					      (__u64)ih * c->in.pitch_h +
					      (__u64)iw * c->c * 4,
					      (kh * c->kw + kw) * c->c, oc0, ob,
					      acc);
			if (st)
				return st;
		}
	}
	if (c->hdr.flags & REFNPU_CONV_F_BIAS) {
		st = eng_read(e, c->bias_va + (__u64)oc0 * 4, bias,
			      (__u64)ob * 4);
		if (st)
			return st;
		for (o = 0; o < ob; o++)
			acc[o] = acc[o] + bias[o];
	}
	if (c->hdr.flags & REFNPU_CONV_F_RELU)
		for (o = 0; o < ob; o++)
			acc[o] = relu_f(acc[o]);
	return eng_write(e, c->out.va + n * c->out.pitch_n +
			 oh * c->out.pitch_h + (ow * c->oc + oc0) * 4, acc,
			 (__u64)ob * 4);
}

static __u32 op_conv2d(struct eng *e, const struct refnpu_cmd_conv2d *c)
{
	const bool bias = c->hdr.flags & REFNPU_CONV_F_BIAS;
	__u64 oh_n, ow_n, frows, n, oh, ow;
	__u32 oc0, ob, st;

	if (c->hdr.flags & ~REFNPU_CONV_F_VALID_MASK)
		return REFNPU_ERR_MALFORMED;
	if (c->dtype != REFNPU_DTYPE_FP32)
		return REFNPU_ERR_UNSUPPORTED;
	if (!c->kh || !c->kw || !c->stride_h || !c->stride_w || !c->dil_h ||
	    !c->dil_w)
		return REFNPU_ERR_MALFORMED;
	if (!bias && c->bias_va)
		return REFNPU_ERR_MALFORMED;
	if (!out_dim(c->h, c->pad_top, c->pad_bottom, c->kh, c->dil_h,
		     c->stride_h, &oh_n) ||
	    !out_dim(c->w, c->pad_left, c->pad_right, c->kw, c->dil_w,
		     c->stride_w, &ow_n))
		return REFNPU_ERR_MALFORMED;
	if (!c->n || !c->oc)
		return REFNPU_ERR_NONE;
	frows = (__u64)c->kh * c->kw;
	if (mul_ovf(frows, c->c, &frows))
		return REFNPU_ERR_MALFORMED;
	if (!nhwc_ok(&c->in, c->n, c->h, c->w, c->c, 4) ||
	    !nhwc_ok(&c->out, c->n, oh_n, ow_n, c->oc, 4) ||
	    !t2d_ok(&c->filter, frows, c->oc, 4) ||
	    (bias && !vec_ok(c->bias_va, c->oc, 4)))
		return REFNPU_ERR_MALFORMED;

	for (n = 0; n < c->n; n++) {
		for (oh = 0; oh < oh_n; oh++) {
			for (ow = 0; ow < ow_n; ow++) {
				for (oc0 = 0; oc0 < c->oc; oc0 += ob) {
					ob = min_u32(CONV_OB, c->oc - oc0);
					st = conv_pixel(e, c, n, oh, ow, oc0, ob);
					if (st)
						return st;
				}
			}
		}
	}
	return REFNPU_ERR_NONE;
}

/* Pooling window of output pixel (n, oh, ow), channels [c0, c0 + cb) */
static __u32 pool_pixel(struct eng *e, const struct refnpu_cmd_pool2d *c,
			__u64 n, __u64 oh, __u64 ow, __u32 c0, __u32 cb)
{
	const bool is_max = c->mode == REFNPU_POOL_MAX;
	float acc[VEC], x[VEC];
	__u32 j, st, count = 0;
	__u64 kh, kw;
	__s64 ih, iw;

	for (j = 0; j < cb; j++)
		acc[j] = is_max ? u2f(FP32_NINF) : 0.0f;
	for (kh = 0; kh < c->kh; kh++) {
		ih = in_coord(oh, c->stride_h, kh, 1, c->pad_top, c->h);
		for (kw = 0; kw < c->kw; kw++) {
			iw = in_coord(ow, c->stride_w, kw, 1, c->pad_left, c->w);
			st = eng_tick(e, cb);
			if (!st && ih >= 0 && iw >= 0)
				st = eng_read(e, c->in.va + n * c->in.pitch_n +
					      (__u64)ih * c->in.pitch_h +
					      ((__u64)iw * c->c + c0) * 4, x,
					      (__u64)cb * 4);
			if (st)
				return st;
			if (ih < 0 || iw < 0)
				continue;
			for (j = 0; j < cb; j++)
				acc[j] = is_max ? max_f(acc[j], x[j]) :
					 acc[j] + x[j];
			count++;
		}
	}
	if (!is_max)
		for (j = 0; j < cb; j++)
			acc[j] = acc[j] / (float)count;
	return eng_write(e, c->out.va + n * c->out.pitch_n +
			 oh * c->out.pitch_h + (ow * c->c + c0) * 4, acc,
			 (__u64)cb * 4);
}

static __u32 op_pool2d(struct eng *e, const struct refnpu_cmd_pool2d *c)
{
	__u64 oh_n, ow_n, n, oh, ow;
	__u32 c0, cb, st;

	if (c->hdr.flags)
		return REFNPU_ERR_MALFORMED;
	if (c->dtype != REFNPU_DTYPE_FP32 || c->mode >= REFNPU_POOL_COUNT)
		return REFNPU_ERR_UNSUPPORTED;
	if (!c->kh || !c->kw || !c->stride_h || !c->stride_w ||
	    (c->n && c->c && (!c->h || !c->w)) || c->pad_top >= c->kh ||
	    c->pad_bottom >= c->kh || c->pad_left >= c->kw ||
	    c->pad_right >= c->kw)
		return REFNPU_ERR_MALFORMED;
	if (!out_dim(c->h, c->pad_top, c->pad_bottom, c->kh, 1, c->stride_h,
		     &oh_n) ||
	    !out_dim(c->w, c->pad_left, c->pad_right, c->kw, 1, c->stride_w,
		     &ow_n))
		return REFNPU_ERR_MALFORMED;
	if (!c->n || !c->c)
		return REFNPU_ERR_NONE;
	if (!nhwc_ok(&c->in, c->n, c->h, c->w, c->c, 4) ||
	    !nhwc_ok(&c->out, c->n, oh_n, ow_n, c->c, 4))
		return REFNPU_ERR_MALFORMED;

	for (n = 0; n < c->n; n++) {
		for (oh = 0; oh < oh_n; oh++) {
			for (ow = 0; ow < ow_n; ow++) {
				for (c0 = 0; c0 < c->c; c0 += cb) {
					cb = min_u32(VEC, c->c - c0);
					st = pool_pixel(e, c, n, oh, ow, c0, cb);
					if (st)
						return st;
				}
			}
		}
	}
	return REFNPU_ERR_NONE;
}

#endif /* !REFNPU_ENGINE_NO_FP: elementwise, softmax, layernorm, conv2d, pool2d */

/* ---------------------------------------------------------------------
 * Dispatch
 */

/**
 * refnpu_engine_cmd_size() - size of a command
 * @opcode: REFNPU_OP_*
 *
 * Return: the exact size in bytes a command with @opcode must have
 * (REFNPU_CMD_*_SIZE), or 0 if the opcode is unknown.
 */
__u32 refnpu_engine_cmd_size(__u32 opcode)
{
	switch (opcode) {
	case REFNPU_OP_NOP:
		return REFNPU_CMD_NOP_SIZE;
	case REFNPU_OP_COPY:
		return REFNPU_CMD_COPY_SIZE;
	case REFNPU_OP_FILL:
		return REFNPU_CMD_FILL_SIZE;
	case REFNPU_OP_GEMM:
		return REFNPU_CMD_GEMM_SIZE;
	case REFNPU_OP_EWISE:
		return REFNPU_CMD_EWISE_SIZE;
	case REFNPU_OP_ACT:
		return REFNPU_CMD_ACT_SIZE;
	case REFNPU_OP_SOFTMAX:
		return REFNPU_CMD_SOFTMAX_SIZE;
	case REFNPU_OP_LAYERNORM:
		return REFNPU_CMD_LAYERNORM_SIZE;
	case REFNPU_OP_CONV2D:
		return REFNPU_CMD_CONV2D_SIZE;
	case REFNPU_OP_POOL2D:
		return REFNPU_CMD_POOL2D_SIZE;
	default:
		return 0;
	}
}

static __u32 check_hdr(const struct refnpu_cmd_hdr *h, __u64 avail)
{
	__u32 want = refnpu_engine_cmd_size(h->opcode);
	__u64 len = (__u64)h->len_dw * 4;

	if (len < REFNPU_CMD_HDR_SIZE || len % REFNPU_CMD_ALIGN || len > avail)
		return REFNPU_ERR_MALFORMED;
	if (!want)
		return REFNPU_ERR_UNSUPPORTED;
	if (len != want)
		return REFNPU_ERR_MALFORMED;
	return REFNPU_ERR_NONE;
}

static __u32 dispatch(struct eng *e, const union refnpu_any_cmd *c)
{
	switch (c->hdr.opcode) {
	case REFNPU_OP_NOP:
		return c->hdr.flags ? REFNPU_ERR_MALFORMED : REFNPU_ERR_NONE;
	case REFNPU_OP_COPY:
		return op_copy(e, &c->copy);
	case REFNPU_OP_FILL:
		return op_fill(e, &c->fill);
	case REFNPU_OP_GEMM:
		return op_gemm(e, &c->gemm);
#ifndef REFNPU_ENGINE_NO_FP
	case REFNPU_OP_EWISE:
		return op_ewise(e, &c->ewise);
	case REFNPU_OP_ACT:
		return op_act(e, &c->act);
	case REFNPU_OP_SOFTMAX:
		return op_softmax(e, &c->softmax);
	case REFNPU_OP_LAYERNORM:
		return op_layernorm(e, &c->ln);
	case REFNPU_OP_CONV2D:
		return op_conv2d(e, &c->conv);
	case REFNPU_OP_POOL2D:
		return op_pool2d(e, &c->pool);
#endif
	default:
		/* Unknown opcodes, and without FP every floating-point one. */
		return REFNPU_ERR_UNSUPPORTED;
	}
}

static void res_init(struct refnpu_engine_result *res)
{
	res->status = REFNPU_ERR_NONE;
	res->fault_flags = 0;
	res->fault_va = 0;
	res->cmd_index = 0;
	res->cmd_offset = 0;
}

static __u32 finish(struct refnpu_engine_result *res, __u32 st)
{
	res->status = st;
	if (!st) {
		res->fault_flags = 0;
		res->fault_va = 0;
	}
	return st;
}

/**
 * refnpu_engine_run() - execute a command buffer
 * @env: memory callbacks and hooks
 * @cmd_va: device VA of the first command (REFNPU_CMD_ALIGN aligned)
 * @cmd_size: size of the command buffer in bytes
 * @res: filled with the outcome, always
 *
 * Commands are fetched through @env->read and executed in order; the first
 * failing command stops the buffer.  Everything written by commands before
 * it stays written; the failing command may have written part of its
 * output.
 *
 * Return: REFNPU_ERR_NONE or the error code also stored in @res->status.
 */
__u32 refnpu_engine_run(const struct refnpu_engine_env *env, __u64 cmd_va,
			__u64 cmd_size, struct refnpu_engine_result *res)
{
	struct eng e = { .env = env, .res = res, .work = 0 };
	union refnpu_any_cmd cmd;
	__u64 off = 0, end;
	__u32 idx = 0, st;

	res_init(res);
	if (cmd_va % REFNPU_CMD_ALIGN || cmd_size % REFNPU_CMD_ALIGN ||
	    cmd_size > REFNPU_CMDBUF_MAX_SIZE || add_ovf(cmd_va, cmd_size, &end))
		return finish(res, REFNPU_ERR_MALFORMED);
	while (off < cmd_size) {
		res->cmd_index = idx;
		res->cmd_offset = (__u32)off;
		st = eng_read(&e, cmd_va + off, &cmd.hdr, REFNPU_CMD_HDR_SIZE);
		if (st) {
			res->fault_flags = REFNPU_FAULT_F_CMD_FETCH;
			return finish(res, st);
		}
		st = check_hdr(&cmd.hdr, cmd_size - off);
		if (st)
			return finish(res, st);
		st = eng_read(&e, cmd_va + off + REFNPU_CMD_HDR_SIZE,
			      (__u8 *)&cmd + REFNPU_CMD_HDR_SIZE,
			      (__u64)cmd.hdr.len_dw * 4 - REFNPU_CMD_HDR_SIZE);
		if (st) {
			res->fault_flags = REFNPU_FAULT_F_CMD_FETCH;
			return finish(res, st);
		}
		st = dispatch(&e, &cmd);
		if (!st)
			st = eng_tick(&e, 64);
		if (st)
			return finish(res, st);
		off += (__u64)cmd.hdr.len_dw * 4;
		idx++;
	}
	res->cmd_index = idx;
	res->cmd_offset = (__u32)off;
	return finish(res, REFNPU_ERR_NONE);
}

/**
 * refnpu_engine_exec() - execute one command held in host memory
 * @env: memory callbacks for the command's operands
 * @cmd: the command, starting with struct refnpu_cmd_hdr
 * @len: bytes available at @cmd
 * @res: filled with the outcome (cmd_index/cmd_offset 0)
 *
 * Return: REFNPU_ERR_NONE or the error code also stored in @res->status.
 */
__u32 refnpu_engine_exec(const struct refnpu_engine_env *env,
			 const void *cmd, __u64 len,
			 struct refnpu_engine_result *res)
{
	struct eng e = { .env = env, .res = res, .work = 0 };
	union refnpu_any_cmd c;
	const __u8 *src = cmd;
	__u32 st, i, n;

	res_init(res);
	if (len < REFNPU_CMD_HDR_SIZE)
		return finish(res, REFNPU_ERR_MALFORMED);
	for (i = 0; i < REFNPU_CMD_HDR_SIZE; i++)
		((__u8 *)&c)[i] = src[i];
	st = check_hdr(&c.hdr, len);
	if (st)
		return finish(res, st);
	n = c.hdr.len_dw * 4;
	for (i = REFNPU_CMD_HDR_SIZE; i < n; i++)
		((__u8 *)&c)[i] = src[i];
	return finish(res, dispatch(&e, &c));
}

/**
 * refnpu_engine_err_name() - short name of an error code
 * @code: REFNPU_ERR_*
 *
 * Return: a static string such as "MMU_UNMAPPED", or "UNKNOWN".
 */
const char *refnpu_engine_err_name(__u32 code)
{
	static const char * const names[REFNPU_ERR_COUNT] = {
		[REFNPU_ERR_NONE] = "NONE",
		[REFNPU_ERR_MMU_UNMAPPED] = "MMU_UNMAPPED",
		[REFNPU_ERR_MMU_READ_PERM] = "MMU_READ_PERM",
		[REFNPU_ERR_MMU_WRITE_PERM] = "MMU_WRITE_PERM",
		[REFNPU_ERR_MMU_WALK] = "MMU_WALK",
		[REFNPU_ERR_DMA] = "DMA",
		[REFNPU_ERR_MALFORMED] = "MALFORMED",
		[REFNPU_ERR_UNSUPPORTED] = "UNSUPPORTED",
		[REFNPU_ERR_INVALID_CONTEXT] = "INVALID_CONTEXT",
		[REFNPU_ERR_TIMEOUT] = "TIMEOUT",
		[REFNPU_ERR_INJECTED] = "INJECTED",
		[REFNPU_ERR_BAD_DESCRIPTOR] = "BAD_DESCRIPTOR",
		[REFNPU_ERR_RING] = "RING",
		[REFNPU_ERR_ABORTED] = "ABORTED",
	};

	return code < REFNPU_ERR_COUNT ? names[code] : "UNKNOWN";
}

/**
 * refnpu_fp32_to_fp16() - narrow fp32 to fp16, round to nearest even
 * @f: IEEE binary32 bit pattern
 *
 * Overflow gives infinity, NaN stays NaN (quieted, payload truncated).
 *
 * Return: IEEE binary16 bit pattern.
 */
__u16 refnpu_fp32_to_fp16(__u32 f)
{
	return f32_to_f16(f);
}

/**
 * refnpu_fp16_to_fp32() - widen fp16 to fp32 (exact)
 * @h: IEEE binary16 bit pattern
 *
 * Return: IEEE binary32 bit pattern.
 */
__u32 refnpu_fp16_to_fp32(__u16 h)
{
	return f16_to_f32(h);
}

/**
 * refnpu_fp32_to_bf16() - narrow fp32 to bfloat16, round to nearest even
 * @f: IEEE binary32 bit pattern
 *
 * Return: bfloat16 bit pattern; NaN stays NaN (quieted).
 */
__u16 refnpu_fp32_to_bf16(__u32 f)
{
	return f32_to_bf16(f);
}

/**
 * refnpu_bf16_to_fp32() - widen bfloat16 to fp32 (exact)
 * @h: bfloat16 bit pattern
 *
 * Return: IEEE binary32 bit pattern.
 */
__u32 refnpu_bf16_to_fp32(__u16 h)
{
	return bf16_to_f32(h);
}

/**
 * refnpu_requantize() - the INT8 GEMM output stage
 * @acc: int32 accumulator (bias already added)
 * @multiplier: rq_multiplier, >= 0
 * @shift: rq_shift, <= REFNPU_RQ_SHIFT_MAX
 * @zero_point: rq_zero_point
 *
 * Return: clamp(round_half_away(acc * multiplier / 2^shift) + zero_point)
 * to [-128, 127].
 */
__s8 refnpu_requantize(__s32 acc, __s32 multiplier, __u32 shift,
		       __s32 zero_point)
{
	return (__s8)requant(acc, multiplier, shift, zero_point);
}

#ifndef REFNPU_ENGINE_NO_FP
/**
 * refnpu_act_fp32() - one activation function on one value
 * @func: REFNPU_ACT_*
 * @x: IEEE binary32 bit pattern
 *
 * Return: the result bit pattern, exactly as REFNPU_OP_ACT computes it
 * (REFNPU_ACT_TANH for unknown @func).
 */
__u32 refnpu_act_fp32(__u32 func, __u32 x)
{
	return f2u(act_f(func, u2f(x)));
}

/**
 * refnpu_exp_fp32() - the engine's e^x (as used by softmax)
 * @x: IEEE binary32 bit pattern
 *
 * Return: the result bit pattern.
 */
__u32 refnpu_exp_fp32(__u32 x)
{
	return f2u(exp_f(u2f(x)));
}

/**
 * refnpu_sqrt_fp32() - the engine's correctly rounded square root
 * @x: IEEE binary32 bit pattern
 *
 * Return: the result bit pattern.
 */
__u32 refnpu_sqrt_fp32(__u32 x)
{
	return f2u(sqrt_f(u2f(x)));
}
#endif /* !REFNPU_ENGINE_NO_FP */
