// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The typed command encoder: validates operands against the rules of the
 * hardware specification (refnpu_hw.h) and writes the commands.
 */
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include <accel/encoder.h>

namespace accel {

static_assert(std::endian::native == std::endian::little,
	      "refnpu command buffers are little-endian; add byte swapping");
static_assert(sizeof(refnpu_cmd_hdr) == REFNPU_CMD_HDR_SIZE);
static_assert(sizeof(refnpu_cmd_nop) == REFNPU_CMD_NOP_SIZE);
static_assert(sizeof(refnpu_cmd_copy) == REFNPU_CMD_COPY_SIZE);
static_assert(sizeof(refnpu_cmd_fill) == REFNPU_CMD_FILL_SIZE);
static_assert(sizeof(refnpu_cmd_gemm) == REFNPU_CMD_GEMM_SIZE);
static_assert(sizeof(refnpu_cmd_ewise) == REFNPU_CMD_EWISE_SIZE);
static_assert(sizeof(refnpu_cmd_act) == REFNPU_CMD_ACT_SIZE);
static_assert(sizeof(refnpu_cmd_softmax) == REFNPU_CMD_SOFTMAX_SIZE);
static_assert(sizeof(refnpu_cmd_layernorm) == REFNPU_CMD_LAYERNORM_SIZE);
static_assert(sizeof(refnpu_cmd_conv2d) == REFNPU_CMD_CONV2D_SIZE);
static_assert(sizeof(refnpu_cmd_pool2d) == REFNPU_CMD_POOL2D_SIZE);

std::size_t dtype_size(DType t) noexcept
{
	auto v = static_cast<uint32_t>(t);
	return v < REFNPU_DTYPE_COUNT ? REFNPU_DTYPE_SIZE(v) : 0;
}

const char *dtype_name(DType t) noexcept
{
	switch (t) {
	case DType::fp32:
		return "fp32";
	case DType::fp16:
		return "fp16";
	case DType::bf16:
		return "bf16";
	case DType::int8:
		return "int8";
	case DType::int32:
		return "int32";
	}
	return "invalid";
}

std::optional<DType> dtype_from_name(std::string_view name) noexcept
{
	for (auto t : {DType::fp32, DType::fp16, DType::bf16, DType::int8, DType::int32})
		if (name == dtype_name(t))
			return t;
	return std::nullopt;
}

std::optional<uint32_t> window_output(uint32_t in, uint32_t k, uint32_t stride, uint32_t dil,
				      uint32_t pad_lo, uint32_t pad_hi) noexcept
{
	if (!k || !stride || !dil)
		return std::nullopt;
	uint64_t eff = uint64_t(dil) * (k - 1) + 1;
	uint64_t total = uint64_t(in) + pad_lo + pad_hi;
	if (total < eff)
		return std::nullopt;
	uint64_t out = (total - eff) / stride + 1;
	if (out > std::numeric_limits<uint32_t>::max())
		return std::nullopt;
	return uint32_t(out);
}

namespace {

using u128 = unsigned __int128;

std::string hex(uint64_t v)
{
	char b[24];
	std::snprintf(b, sizeof(b), "0x%llx", static_cast<unsigned long long>(v));
	return b;
}

std::string str(uint64_t v)
{
	return std::to_string(v);
}

/* Collects the first violated rule of one command. */
class Check
{
public:
	explicit Check(const char *op) : op_(op) { }

	bool ok() const { return msg_.empty(); }
	Result<void> result() const
	{
		if (ok())
			return {};
		return Error(Errc::invalid_argument, std::string(op_) + ": " + msg_);
	}
	void fail(const std::string &m)
	{
		if (ok())
			msg_ = m;
	}
	void require(bool cond, const std::string &m)
	{
		if (!cond)
			fail(m);
	}

	/* The bytes [off, off + len) must lie in mem, without VA overflow. */
	void range(const char *name, const Memory &mem, uint64_t off, u128 len)
	{
		if (!len)
			return;
		if (!mem.size) {
			fail(std::string(name) + ": no memory given (Memory.size is 0)");
			return;
		}
		if (u128(off) + len > mem.size) {
			fail(std::string(name) + ": needs bytes [" + str(off) + ", " +
			     str(uint64_t(u128(off) + len)) + ") but its memory has " +
			     str(mem.size) + " bytes");
			return;
		}
		if (u128(mem.va) + off + len > REFNPU_VA_LIMIT)
			fail(std::string(name) +
			     ": extends beyond the 48-bit device address space");
	}

	void dtype(const char *name, DType t)
	{
		if (!dtype_size(t))
			fail(std::string(name) + ": invalid dtype " + str(uint32_t(t)));
	}

	void aligned(const char *name, const char *what, uint64_t v, uint64_t align)
	{
		if (align && v % align)
			fail(std::string(name) + ": " + what + " " + hex(v) +
			     " is not a multiple of the element size " + str(align));
	}

	void t2d(const char *name, const Tensor2D &t)
	{
		dtype(name, t.dtype);
		if (!ok())
			return;
		uint64_t es = dtype_size(t.dtype);
		u128 row = u128(t.cols) * es;
		aligned(name, "address", t.va(), es);
		if (t.rows > 1) {
			aligned(name, "pitch", t.row_pitch(), es);
			if (t.row_pitch() < row)
				fail(std::string(name) + ": pitch " + str(t.row_pitch()) +
				     " is smaller than a row of " + str(uint64_t(row)) +
				     " bytes (" + str(t.cols) + " x " + dtype_name(t.dtype) + ")");
		}
		if (t.rows && t.cols)
			range(name, t.mem, t.offset, u128(t.rows - 1) * t.row_pitch() + row);
	}

	void nhwc(const char *name, const TensorNHWC &t)
	{
		dtype(name, t.dtype);
		if (!ok())
			return;
		uint64_t es = dtype_size(t.dtype);
		u128 row = u128(t.w) * t.c * es;
		aligned(name, "address", t.va(), es);
		if (t.h > 1) {
			aligned(name, "pitch_h", t.row_pitch(), es);
			require(t.row_pitch() >= row, std::string(name) + ": pitch_h " +
							      str(t.row_pitch()) +
							      " is smaller than a row of " +
							      str(uint64_t(row)) + " bytes (W*C)");
		}
		if (t.n > 1) {
			aligned(name, "pitch_n", t.image_pitch(), es);
			require(u128(t.image_pitch()) >= u128(t.h) * t.row_pitch(),
				std::string(name) + ": pitch_n " + str(t.image_pitch()) +
					" is smaller than H * pitch_h");
		}
		if (t.n && t.h && t.w && t.c)
			range(name, t.mem, t.offset,
			      u128(t.n - 1) * t.image_pitch() + u128(t.h - 1) * t.row_pitch() +
				      row);
	}

	void vec(const char *name, const VectorRef &v, uint32_t count, DType t)
	{
		uint64_t es = dtype_size(t);
		aligned(name, "address", v.mem.va + v.offset, es);
		range(name, v.mem, v.offset, u128(count) * es);
	}

	void dtype_is(const char *name, DType t, DType want)
	{
		if (t != want)
			fail(std::string(name) + ": dtype " + dtype_name(t) +
			     " is not supported, " + "this operation takes " + dtype_name(want));
	}

	void shape(const char *name, const Tensor2D &t, uint32_t rows, uint32_t cols)
	{
		if (t.rows != rows || t.cols != cols)
			fail(std::string(name) + ": shape " + str(t.rows) + "x" + str(t.cols) +
			     " should be " + str(rows) + "x" + str(cols));
	}

private:
	const char *op_;
	std::string msg_;
};

struct Span {
	uint64_t start, len;
};

Span span_of(const Tensor2D &t)
{
	return {t.va(), t.extent()};
}

Span span_of(const TensorNHWC &t)
{
	return {t.va(), t.extent()};
}

Span span_of(const VectorRef &v, uint32_t count, DType t)
{
	return {v.mem.va + v.offset, uint64_t(count) * dtype_size(t)};
}

bool overlaps(Span a, Span b)
{
	return a.len && b.len && a.start < b.start + b.len && b.start < a.start + a.len;
}

bool same_view(const Tensor2D &a, const Tensor2D &b)
{
	return a.va() == b.va() && (a.rows <= 1 || a.row_pitch() == b.row_pitch());
}

refnpu_tensor2d enc(const Tensor2D &t)
{
	return {t.va(), t.row_pitch()};
}

refnpu_tensor_nhwc enc(const TensorNHWC &t)
{
	return {t.va(), t.row_pitch(), t.image_pitch()};
}

template <typename T>
void header(T &cmd, uint16_t opcode, uint16_t flags = 0)
{
	static_assert(sizeof(T) % 8 == 0);
	cmd.hdr.opcode = opcode;
	cmd.hdr.flags = flags;
	cmd.hdr.len_dw = sizeof(T) / 4;
}

} // namespace

Result<void> CommandEncoder::check_op(uint16_t opcode, const char *name) const
{
	if (opcode >= 64 || !(supported_ops_ & (1ULL << opcode)))
		return Error(Errc::unsupported, std::string(name) + ": opcode " + hex(opcode) +
							" is not supported by the target device");
	return {};
}

void CommandEncoder::emit(const void *cmd, std::size_t size)
{
	auto p = static_cast<const std::byte *>(cmd);
	buf_.insert(buf_.end(), p, p + size);
	count_++;
}

void CommandEncoder::note(const Memory &mem, uint32_t access)
{
	if (!mem.handle)
		return;
	for (auto &u : uses_) {
		if (u.handle == mem.handle) {
			u.access |= access;
			return;
		}
	}
	uses_.push_back({mem.handle, access});
}

void CommandEncoder::clear() noexcept
{
	buf_.clear();
	uses_.clear();
	count_ = 0;
}

void CommandEncoder::append_raw(std::span<const std::byte> cmd)
{
	buf_.insert(buf_.end(), cmd.begin(), cmd.end());
	count_++;
}

Result<void> CommandEncoder::nop()
{
	if (auto r = check_op(REFNPU_OP_NOP, "nop"); !r)
		return r;
	refnpu_cmd_nop c = {};
	header(c, REFNPU_OP_NOP);
	emit(&c, sizeof(c));
	return {};
}

Result<void> CommandEncoder::copy(const Tensor2D &dst, const Tensor2D &src)
{
	if (auto r = check_op(REFNPU_OP_COPY, "copy"); !r)
		return r;
	Check k("copy");
	k.t2d("src", src);
	k.t2d("dst", dst);
	k.require(src.dtype == dst.dtype, "src and dst dtypes differ");
	k.shape("dst", dst, src.rows, src.cols);
	k.require(u128(src.cols) * dtype_size(src.dtype) <= UINT32_MAX,
		  "a row is larger than 4 GiB");
	k.require(!overlaps(span_of(src), span_of(dst)), "src and dst overlap");
	if (!k.ok())
		return k.result();
	refnpu_cmd_copy c = {};
	header(c, REFNPU_OP_COPY);
	c.src = enc(src);
	c.dst = enc(dst);
	c.rows = src.rows;
	c.row_bytes = uint32_t(src.cols * dtype_size(src.dtype));
	emit(&c, sizeof(c));
	note(src.mem, access_read);
	note(dst.mem, access_write);
	return {};
}

Result<void> CommandEncoder::copy_bytes(const Memory &dst, uint64_t dst_offset, const Memory &src,
					uint64_t src_offset, uint64_t bytes)
{
	if (auto r = check_op(REFNPU_OP_COPY, "copy"); !r)
		return r;
	Check k("copy");
	k.range("src", src, src_offset, bytes);
	k.range("dst", dst, dst_offset, bytes);
	k.require(!overlaps({src.va + src_offset, bytes}, {dst.va + dst_offset, bytes}),
		  "src and dst overlap");
	if (!k.ok())
		return k.result();
	/* Rows of at most 1 GiB; a remainder goes into a second command. */
	constexpr uint64_t chunk = 1ULL << 30;
	uint64_t rows = bytes / chunk, rest = bytes % chunk;
	if (rows) {
		refnpu_cmd_copy c = {};
		header(c, REFNPU_OP_COPY);
		c.src = {src.va + src_offset, chunk};
		c.dst = {dst.va + dst_offset, chunk};
		c.rows = uint32_t(rows);
		c.row_bytes = uint32_t(chunk);
		emit(&c, sizeof(c));
	}
	if (rest || !bytes) {
		refnpu_cmd_copy c = {};
		header(c, REFNPU_OP_COPY);
		c.src = {src.va + src_offset + rows * chunk, rest};
		c.dst = {dst.va + dst_offset + rows * chunk, rest};
		c.rows = 1;
		c.row_bytes = uint32_t(rest);
		emit(&c, sizeof(c));
	}
	note(src, access_read);
	note(dst, access_write);
	return {};
}

Result<void> CommandEncoder::fill(const Tensor2D &dst, uint64_t pattern)
{
	if (auto r = check_op(REFNPU_OP_FILL, "fill"); !r)
		return r;
	Check k("fill");
	k.t2d("dst", dst);
	if (!k.ok())
		return k.result();
	uint32_t pb = uint32_t(dtype_size(dst.dtype));
	k.require(pb == 8 || pattern >> (8 * pb) == 0, "pattern " + hex(pattern) +
							       " has bits beyond one " +
							       dtype_name(dst.dtype) + " element");
	k.require(u128(dst.cols) * pb <= UINT32_MAX, "a row is larger than 4 GiB");
	if (!k.ok())
		return k.result();
	refnpu_cmd_fill c = {};
	header(c, REFNPU_OP_FILL);
	c.dst = enc(dst);
	c.rows = dst.rows;
	c.row_bytes = dst.cols * pb;
	c.pattern = pattern;
	c.pattern_bytes = pb;
	emit(&c, sizeof(c));
	note(dst.mem, access_write);
	return {};
}

Result<void> CommandEncoder::fill_f32(const Tensor2D &dst, float value)
{
	if (dst.dtype != DType::fp32)
		return Error(Errc::invalid_argument,
			     std::string("fill: fill_f32 needs an fp32 tensor, dst is ") +
				     dtype_name(dst.dtype));
	return fill(dst, std::bit_cast<uint32_t>(value));
}

Result<void> CommandEncoder::gemm(const GemmOp &op)
{
	if (auto r = check_op(REFNPU_OP_GEMM, "gemm"); !r)
		return r;
	Check k("gemm");
	k.t2d("a", op.a);
	k.t2d("b", op.b);
	k.t2d("c", op.c);
	if (!k.ok())
		return k.result();
	DType in = op.a.dtype, out = op.c.dtype;
	bool is_int = in == DType::int8;
	k.require(in == DType::fp32 || in == DType::fp16 || in == DType::bf16 || is_int,
		  std::string("a: input dtype ") + dtype_name(in) +
			  " is not supported (fp32, fp16, bf16 or int8)");
	k.require(op.b.dtype == in, std::string("b: dtype ") + dtype_name(op.b.dtype) +
					    " differs from a's " + dtype_name(in));
	if (is_int)
		k.require(out == DType::int32 || out == DType::int8,
			  std::string("c: int8 inputs produce int32 or int8, not ") +
				  dtype_name(out));
	else
		k.require(out == DType::fp32 || out == DType::fp16 || out == DType::bf16,
			  std::string("c: float inputs produce fp32, fp16 or bf16, not ") +
				  dtype_name(out));
	uint32_t m = op.a.rows, kk = op.a.cols, n = op.b.cols;
	k.require(op.b.rows == kk, "b: has " + str(op.b.rows) + " rows, a has " + str(kk) +
					   " columns (the inner dimension K must match)");
	k.shape("c", op.c, m, n);
	DType bias_t = is_int ? DType::int32 : DType::fp32;
	if (op.bias)
		k.vec("bias", *op.bias, n, bias_t);
	if (out == DType::int8) {
		k.require(op.rq_multiplier >= 0, "rq_multiplier " +
							 std::to_string(op.rq_multiplier) +
							 " is negative (range [0, 2^31))");
		k.require(op.rq_shift <= REFNPU_RQ_SHIFT_MAX,
			  "rq_shift " + str(op.rq_shift) + " is above 63");
		k.require(op.rq_zero_point >= -128 && op.rq_zero_point <= 127,
			  "rq_zero_point " + std::to_string(op.rq_zero_point) +
				  " is outside [-128, 127]");
	} else {
		k.require(!op.rq_multiplier && !op.rq_shift && !op.rq_zero_point,
			  std::string("requantisation parameters apply only to int8 output, "
				      "must be 0 for ") +
				  dtype_name(out));
	}
	Span cs = span_of(op.c);
	k.require(!overlaps(cs, span_of(op.a)), "c overlaps a");
	k.require(!overlaps(cs, span_of(op.b)), "c overlaps b");
	if (op.bias)
		k.require(!overlaps(cs, span_of(*op.bias, n, bias_t)), "c overlaps bias");
	if (!k.ok())
		return k.result();

	refnpu_cmd_gemm c = {};
	header(c, REFNPU_OP_GEMM,
	       uint16_t((op.bias ? REFNPU_GEMM_F_BIAS : 0) | (op.relu ? REFNPU_GEMM_F_RELU : 0)));
	c.a = enc(op.a);
	c.b = enc(op.b);
	c.c = enc(op.c);
	c.bias_va = op.bias ? op.bias->mem.va + op.bias->offset : 0;
	c.m = m;
	c.n = n;
	c.k = kk;
	c.in_dtype = uint32_t(in);
	c.out_dtype = uint32_t(out);
	c.rq_multiplier = op.rq_multiplier;
	c.rq_shift = op.rq_shift;
	c.rq_zero_point = op.rq_zero_point;
	emit(&c, sizeof(c));
	note(op.a.mem, access_read);
	note(op.b.mem, access_read);
	if (op.bias)
		note(op.bias->mem, access_read);
	note(op.c.mem, access_write);
	return {};
}

Result<void> CommandEncoder::ewise(EwiseOp op, const Tensor2D &out, const Tensor2D &a,
				   const Tensor2D &b)
{
	if (auto r = check_op(REFNPU_OP_EWISE, "ewise"); !r)
		return r;
	Check k("ewise");
	k.require(uint32_t(op) < REFNPU_EWISE_COUNT, "unknown operation " + str(uint32_t(op)));
	k.t2d("a", a);
	k.t2d("b", b);
	k.t2d("out", out);
	k.dtype_is("a", a.dtype, DType::fp32);
	k.dtype_is("b", b.dtype, DType::fp32);
	k.dtype_is("out", out.dtype, DType::fp32);
	k.shape("out", out, a.rows, a.cols);
	uint32_t bcast = REFNPU_BCAST_NONE;
	if (b.rows == a.rows && b.cols == a.cols)
		bcast = REFNPU_BCAST_NONE;
	else if (b.rows == 1 && b.cols == a.cols)
		bcast = REFNPU_BCAST_ROW;
	else if (b.rows == a.rows && b.cols == 1)
		bcast = REFNPU_BCAST_COL;
	else if (b.rows == 1 && b.cols == 1)
		bcast = REFNPU_BCAST_SCALAR;
	else
		k.fail("b: shape " + str(b.rows) + "x" + str(b.cols) + " broadcasts neither as " +
		       str(a.rows) + "x" + str(a.cols) + ", 1x" + str(a.cols) + ", " + str(a.rows) +
		       "x1 nor 1x1");
	Span os = span_of(out);
	k.require(same_view(out, a) || !overlaps(os, span_of(a)),
		  "out partially overlaps a (it may only be exactly a)");
	k.require((bcast == REFNPU_BCAST_NONE && same_view(out, b)) || !overlaps(os, span_of(b)),
		  "out overlaps b (it may only be exactly b, of the same shape)");
	if (!k.ok())
		return k.result();

	refnpu_cmd_ewise c = {};
	header(c, REFNPU_OP_EWISE);
	c.a = enc(a);
	c.b = enc(b);
	c.out = enc(out);
	c.rows = a.rows;
	c.cols = a.cols;
	c.op = uint32_t(op);
	c.bcast = bcast;
	c.dtype = REFNPU_DTYPE_FP32;
	emit(&c, sizeof(c));
	note(a.mem, access_read);
	note(b.mem, access_read);
	note(out.mem, access_write);
	return {};
}

namespace {

/* Rules shared by the unary row operations (act, softmax, layernorm). */
void unary(Check &k, const Tensor2D &dst, const Tensor2D &src)
{
	k.t2d("src", src);
	k.t2d("dst", dst);
	k.dtype_is("src", src.dtype, DType::fp32);
	k.dtype_is("dst", dst.dtype, DType::fp32);
	k.shape("dst", dst, src.rows, src.cols);
	k.require(same_view(dst, src) || !overlaps(span_of(dst), span_of(src)),
		  "dst partially overlaps src (it may only be exactly src)");
}

} // namespace

Result<void> CommandEncoder::act(Activation f, const Tensor2D &dst, const Tensor2D &src)
{
	if (auto r = check_op(REFNPU_OP_ACT, "act"); !r)
		return r;
	Check k("act");
	k.require(uint32_t(f) < REFNPU_ACT_COUNT, "unknown function " + str(uint32_t(f)));
	unary(k, dst, src);
	if (!k.ok())
		return k.result();
	refnpu_cmd_act c = {};
	header(c, REFNPU_OP_ACT);
	c.src = enc(src);
	c.dst = enc(dst);
	c.rows = src.rows;
	c.cols = src.cols;
	c.func = uint32_t(f);
	c.dtype = REFNPU_DTYPE_FP32;
	emit(&c, sizeof(c));
	note(src.mem, access_read);
	note(dst.mem, access_write);
	return {};
}

Result<void> CommandEncoder::softmax(const Tensor2D &dst, const Tensor2D &src)
{
	if (auto r = check_op(REFNPU_OP_SOFTMAX, "softmax"); !r)
		return r;
	Check k("softmax");
	unary(k, dst, src);
	if (!k.ok())
		return k.result();
	refnpu_cmd_softmax c = {};
	header(c, REFNPU_OP_SOFTMAX);
	c.src = enc(src);
	c.dst = enc(dst);
	c.rows = src.rows;
	c.cols = src.cols;
	c.dtype = REFNPU_DTYPE_FP32;
	emit(&c, sizeof(c));
	note(src.mem, access_read);
	note(dst.mem, access_write);
	return {};
}

Result<void> CommandEncoder::layernorm(const LayerNormOp &op)
{
	if (auto r = check_op(REFNPU_OP_LAYERNORM, "layernorm"); !r)
		return r;
	Check k("layernorm");
	unary(k, op.dst, op.src);
	uint32_t cols = op.src.cols;
	if (op.gamma) {
		k.vec("gamma", *op.gamma, cols, DType::fp32);
		k.require(!overlaps(span_of(op.dst), span_of(*op.gamma, cols, DType::fp32)),
			  "dst overlaps gamma");
	}
	if (op.beta) {
		k.vec("beta", *op.beta, cols, DType::fp32);
		k.require(!overlaps(span_of(op.dst), span_of(*op.beta, cols, DType::fp32)),
			  "dst overlaps beta");
	}
	k.require(std::isfinite(op.eps) && op.eps >= 0,
		  "eps " + std::to_string(op.eps) + " must be finite and >= 0");
	if (!k.ok())
		return k.result();
	refnpu_cmd_layernorm c = {};
	header(c, REFNPU_OP_LAYERNORM,
	       uint16_t((op.gamma ? REFNPU_LN_F_GAMMA : 0) | (op.beta ? REFNPU_LN_F_BETA : 0)));
	c.src = enc(op.src);
	c.dst = enc(op.dst);
	c.gamma_va = op.gamma ? op.gamma->mem.va + op.gamma->offset : 0;
	c.beta_va = op.beta ? op.beta->mem.va + op.beta->offset : 0;
	c.rows = op.src.rows;
	c.cols = cols;
	c.eps_bits = std::bit_cast<uint32_t>(op.eps);
	c.dtype = REFNPU_DTYPE_FP32;
	emit(&c, sizeof(c));
	note(op.src.mem, access_read);
	if (op.gamma)
		note(op.gamma->mem, access_read);
	if (op.beta)
		note(op.beta->mem, access_read);
	note(op.dst.mem, access_write);
	return {};
}

namespace {

void window(Check &k, const Window2D &w, bool dilation)
{
	k.require(w.kh >= 1 && w.kw >= 1, "kernel size must be at least 1x1");
	k.require(w.stride_h >= 1 && w.stride_w >= 1, "strides must be at least 1");
	if (dilation)
		k.require(w.dil_h >= 1 && w.dil_w >= 1, "dilations must be at least 1");
	else
		k.require(w.dil_h == 1 && w.dil_w == 1, "pooling has no dilation (must be 1)");
}

void out_dims(Check &k, const TensorNHWC &in, const TensorNHWC &out, const Window2D &w)
{
	auto oh = window_output(in.h, w.kh, w.stride_h, w.dil_h, w.pad_top, w.pad_bottom);
	auto ow = window_output(in.w, w.kw, w.stride_w, w.dil_w, w.pad_left, w.pad_right);
	if (!oh || !ow) {
		k.fail("the window (" + str(w.kh) + "x" + str(w.kw) +
		       " with dilation) is larger than the padded input " + str(in.h) + "x" +
		       str(in.w));
		return;
	}
	k.require(out.n == in.n && out.h == *oh && out.w == *ow,
		  "out: N x OH x OW is " + str(out.n) + "x" + str(out.h) + "x" + str(out.w) +
			  ", the window gives " + str(in.n) + "x" + str(*oh) + "x" + str(*ow));
}

} // namespace

Result<void> CommandEncoder::conv2d(const Conv2dOp &op)
{
	if (auto r = check_op(REFNPU_OP_CONV2D, "conv2d"); !r)
		return r;
	Check k("conv2d");
	k.nhwc("in", op.in);
	k.nhwc("out", op.out);
	k.t2d("filter", op.filter);
	k.dtype_is("in", op.in.dtype, DType::fp32);
	k.dtype_is("out", op.out.dtype, DType::fp32);
	k.dtype_is("filter", op.filter.dtype, DType::fp32);
	window(k, op.win, true);
	if (!k.ok())
		return k.result();
	out_dims(k, op.in, op.out, op.win);
	uint32_t oc = op.out.c;
	k.require(op.filter.cols == oc, "filter: has " + str(op.filter.cols) +
						" columns, out has " + str(oc) + " channels");
	u128 frows = u128(op.win.kh) * op.win.kw * op.in.c;
	k.require(frows == op.filter.rows, "filter: has " + str(op.filter.rows) +
						   " rows, KH*KW*C is " + str(uint64_t(frows)));
	if (op.bias)
		k.vec("bias", *op.bias, oc, DType::fp32);
	Span os = span_of(op.out);
	k.require(!overlaps(os, span_of(op.in)), "out overlaps in");
	k.require(!overlaps(os, span_of(op.filter)), "out overlaps filter");
	if (op.bias)
		k.require(!overlaps(os, span_of(*op.bias, oc, DType::fp32)), "out overlaps bias");
	if (!k.ok())
		return k.result();

	refnpu_cmd_conv2d c = {};
	header(c, REFNPU_OP_CONV2D,
	       uint16_t((op.bias ? REFNPU_CONV_F_BIAS : 0) | (op.relu ? REFNPU_CONV_F_RELU : 0)));
	c.in = enc(op.in);
	c.out = enc(op.out);
	c.filter = enc(op.filter);
	c.bias_va = op.bias ? op.bias->mem.va + op.bias->offset : 0;
	c.n = op.in.n;
	c.h = op.in.h;
	c.w = op.in.w;
	c.c = op.in.c;
	c.oc = oc;
	c.kh = op.win.kh;
	c.kw = op.win.kw;
	c.stride_h = op.win.stride_h;
	c.stride_w = op.win.stride_w;
	c.dil_h = op.win.dil_h;
	c.dil_w = op.win.dil_w;
	c.pad_top = op.win.pad_top;
	c.pad_bottom = op.win.pad_bottom;
	c.pad_left = op.win.pad_left;
	c.pad_right = op.win.pad_right;
	c.dtype = REFNPU_DTYPE_FP32;
	emit(&c, sizeof(c));
	note(op.in.mem, access_read);
	note(op.filter.mem, access_read);
	if (op.bias)
		note(op.bias->mem, access_read);
	note(op.out.mem, access_write);
	return {};
}

Result<void> CommandEncoder::pool2d(const Pool2dOp &op)
{
	if (auto r = check_op(REFNPU_OP_POOL2D, "pool2d"); !r)
		return r;
	Check k("pool2d");
	k.require(uint32_t(op.mode) < REFNPU_POOL_COUNT, "unknown mode " + str(uint32_t(op.mode)));
	k.nhwc("in", op.in);
	k.nhwc("out", op.out);
	k.dtype_is("in", op.in.dtype, DType::fp32);
	k.dtype_is("out", op.out.dtype, DType::fp32);
	window(k, op.win, false);
	const Window2D &w = op.win;
	k.require(w.pad_top < w.kh && w.pad_bottom < w.kh && w.pad_left < w.kw &&
			  w.pad_right < w.kw,
		  "each padding must be smaller than the window");
	if (!k.ok())
		return k.result();
	out_dims(k, op.in, op.out, w);
	k.require(op.out.c == op.in.c,
		  "out: has " + str(op.out.c) + " channels, in has " + str(op.in.c));
	k.require(!overlaps(span_of(op.out), span_of(op.in)), "out overlaps in");
	if (!k.ok())
		return k.result();

	refnpu_cmd_pool2d c = {};
	header(c, REFNPU_OP_POOL2D);
	c.in = enc(op.in);
	c.out = enc(op.out);
	c.n = op.in.n;
	c.h = op.in.h;
	c.w = op.in.w;
	c.c = op.in.c;
	c.kh = w.kh;
	c.kw = w.kw;
	c.stride_h = w.stride_h;
	c.stride_w = w.stride_w;
	c.pad_top = w.pad_top;
	c.pad_bottom = w.pad_bottom;
	c.pad_left = w.pad_left;
	c.pad_right = w.pad_right;
	c.mode = uint32_t(op.mode);
	c.dtype = REFNPU_DTYPE_FP32;
	emit(&c, sizeof(c));
	note(op.in.mem, access_read);
	note(op.out.mem, access_write);
	return {};
}

} // namespace accel
