// SPDX-License-Identifier: MIT
/*
 * Reference execution: command buffers from the encoder run on the shared
 * engine and match a naive C++ implementation; faults are reported like
 * the device reports them. Built with -ffp-contract=off so that the naive
 * loops round every product and sum as the engine does.
 */
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include <accel/accel.h>

using namespace accel;

namespace {

std::vector<float> random_vec(size_t n, unsigned seed, float scale = 1.0f)
{
	std::mt19937 rng(seed);
	std::uniform_real_distribution<float> d(-scale, scale);
	std::vector<float> v(n);
	for (auto &x : v)
		x = d(rng);
	return v;
}

/* C = act(A[m,k] * B[k,n] + bias), accumulating in k order like the engine. */
std::vector<float> naive_dense(const std::vector<float> &a, const std::vector<float> &b,
			       const std::vector<float> *bias, uint32_t m, uint32_t k, uint32_t n,
			       bool relu)
{
	std::vector<float> c(size_t(m) * n);
	for (uint32_t i = 0; i < m; i++)
		for (uint32_t j = 0; j < n; j++) {
			float acc = 0.0f;
			for (uint32_t kk = 0; kk < k; kk++)
				acc = acc + a[size_t(i) * k + kk] * b[size_t(kk) * n + j];
			if (bias)
				acc = acc + (*bias)[j];
			if (relu && acc < 0.0f)
				acc = 0.0f;
			c[size_t(i) * n + j] = acc;
		}
	return c;
}

std::vector<float> naive_softmax(const std::vector<float> &x, uint32_t rows, uint32_t cols)
{
	std::vector<float> y(x.size());
	for (uint32_t r = 0; r < rows; r++) {
		double m = -INFINITY, s = 0;
		for (uint32_t c = 0; c < cols; c++)
			m = std::max(m, double(x[r * cols + c]));
		for (uint32_t c = 0; c < cols; c++)
			s += std::exp(double(x[r * cols + c]) - m);
		for (uint32_t c = 0; c < cols; c++)
			y[r * cols + c] = float(std::exp(double(x[r * cols + c]) - m) / s);
	}
	return y;
}

template <typename T>
void put(ReferenceMachine &rm, const Memory &m, const std::vector<T> &v, uint64_t off = 0)
{
	std::memcpy(rm.data(m).data() + off, v.data(), v.size() * sizeof(T));
}

template <typename T>
std::vector<T> get(ReferenceMachine &rm, const Memory &m, size_t n, uint64_t off = 0)
{
	std::vector<T> v(n);
	std::memcpy(v.data(), rm.data(m).data() + off, n * sizeof(T));
	return v;
}

void expect_bits_equal(const std::vector<float> &got, const std::vector<float> &want)
{
	ASSERT_EQ(got.size(), want.size());
	size_t bad = 0;
	for (size_t i = 0; i < got.size(); i++)
		if (std::memcmp(&got[i], &want[i], 4) && bad++ < 5)
			ADD_FAILURE() << "element " << i << ": " << got[i] << " != " << want[i];
	EXPECT_EQ(bad, 0u);
}

void expect_near_rel(const std::vector<float> &got, const std::vector<float> &want, double rel)
{
	ASSERT_EQ(got.size(), want.size());
	for (size_t i = 0; i < got.size(); i++)
		ASSERT_NEAR(got[i], want[i], rel * std::max(1.0, std::fabs(double(want[i]))))
			<< "element " << i;
}

struct Mlp {
	uint32_t batch = 8, in = 32, hidden = 64, out = 10;
	std::vector<float> x, w1, b1, w2, b2;
	Mlp()
		: x(random_vec(size_t(batch) * in, 1)),
		  w1(random_vec(size_t(in) * hidden, 2, 0.3f)), b1(random_vec(hidden, 3, 0.1f)),
		  w2(random_vec(size_t(hidden) * out, 4, 0.3f)), b2(random_vec(out, 5, 0.1f))
	{
	}
	std::vector<float> hidden_ref() const
	{
		return naive_dense(x, w1, &b1, batch, in, hidden, true);
	}
	std::vector<float> logits_ref() const
	{
		return naive_dense(hidden_ref(), w2, &b2, batch, hidden, out, false);
	}
};

} // namespace

TEST(Reference, MlpThroughTheEncoderMatchesNaiveCpp)
{
	Mlp n;
	ReferenceMachine rm;
	Memory x = rm.alloc(n.x.size() * 4), w1 = rm.alloc(n.w1.size() * 4),
	       b1 = rm.alloc(n.b1.size() * 4), w2 = rm.alloc(n.w2.size() * 4),
	       b2 = rm.alloc(n.b2.size() * 4), h = rm.alloc(size_t(n.batch) * n.hidden * 4),
	       lg = rm.alloc(size_t(n.batch) * n.out * 4),
	       y = rm.alloc(size_t(n.batch) * n.out * 4);
	put(rm, x, n.x);
	put(rm, w1, n.w1);
	put(rm, b1, n.b1);
	put(rm, w2, n.w2);
	put(rm, b2, n.b2);

	CommandEncoder e;
	GemmOp l1{tensor2d(x, DType::fp32, n.batch, n.in),
		  tensor2d(w1, DType::fp32, n.in, n.hidden),
		  tensor2d(h, DType::fp32, n.batch, n.hidden), VectorRef{b1, 0}, true};
	GemmOp l2{tensor2d(h, DType::fp32, n.batch, n.hidden),
		  tensor2d(w2, DType::fp32, n.hidden, n.out),
		  tensor2d(lg, DType::fp32, n.batch, n.out), VectorRef{b2, 0}, false};
	ASSERT_TRUE(e.gemm(l1));
	ASSERT_TRUE(e.gemm(l2));
	ASSERT_TRUE(e.softmax(tensor2d(y, DType::fp32, n.batch, n.out),
			      tensor2d(lg, DType::fp32, n.batch, n.out)));
	auto r = rm.run(e.data());
	ASSERT_TRUE(r) << r.error().what();
	EXPECT_EQ(rm.last_status().code, 0u);
	EXPECT_EQ(rm.last_status().cmd_index, 3u);

	expect_bits_equal(get<float>(rm, h, size_t(n.batch) * n.hidden), n.hidden_ref());
	auto logits = n.logits_ref();
	expect_bits_equal(get<float>(rm, lg, logits.size()), logits);
	auto probs = get<float>(rm, y, logits.size());
	expect_near_rel(probs, naive_softmax(logits, n.batch, n.out), 1e-6);
	for (uint32_t r = 0; r < n.batch; r++) {
		double s = 0;
		for (uint32_t c = 0; c < n.out; c++)
			s += probs[r * n.out + c];
		EXPECT_NEAR(s, 1.0, 1e-5);
	}
}

TEST(Reference, MlpThroughTheGraphMatchesNaiveCpp)
{
	Mlp n;
	Graph g;
	auto x = g.input("x", {n.batch, n.in});
	auto w1 = g.constant("w1", {n.in, n.hidden}, n.w1);
	auto b1 = g.constant("b1", {n.hidden}, n.b1);
	auto w2 = g.constant("w2", {n.hidden, n.out}, n.w2);
	auto b2 = g.constant("b2", {1, n.out}, n.b2);
	ASSERT_TRUE(x && w1 && b1 && w2 && b2);
	auto h = g.dense(*x, *w1, *b1, true);
	ASSERT_TRUE(h);
	auto lg = g.dense(*h, *w2, *b2);
	ASSERT_TRUE(lg);
	auto y = g.softmax(*lg);
	ASSERT_TRUE(y);
	ASSERT_TRUE(g.output(*lg, "logits"));
	ASSERT_TRUE(g.output(*y, "probs"));
	EXPECT_EQ(g.op_count(), 3u);
	EXPECT_EQ(g.macs(), uint64_t(n.batch) * (n.in * n.hidden + n.hidden * n.out + n.out));

	auto cg = CompiledGraph::compile_reference(g);
	ASSERT_TRUE(cg) << cg.error().what();
	ASSERT_TRUE(cg->set_input(*x, n.x));
	auto t = cg->run();
	ASSERT_TRUE(t) << t.error().what();
	auto logits = cg->read(*lg);
	ASSERT_TRUE(logits);
	expect_bits_equal(*logits, n.logits_ref());
	auto probs = cg->read(*g.find("probs"));
	ASSERT_TRUE(probs);
	expect_near_rel(*probs, naive_softmax(n.logits_ref(), n.batch, n.out), 1e-6);
	/* The hidden activation is an intermediate: its memory may be reused. */
	EXPECT_EQ(cg->read(*h).code(), Errc::invalid_argument);
}

TEST(Reference, GraphReusesIntermediateMemory)
{
	/* Eight layers of 64x64: intermediates only need two live slots. */
	Graph g;
	const uint32_t m = 16, d = 64;
	auto x = *g.input("x", {m, d});
	std::vector<std::vector<float>> ws;
	TensorId cur = x;
	for (int l = 0; l < 8; l++) {
		ws.push_back(random_vec(d * d, 100 + l, 0.2f));
		auto w = *g.constant("w" + std::to_string(l), {d, d}, ws.back());
		cur = *g.dense(cur, w, {}, true);
	}
	ASSERT_TRUE(g.output(cur, "y"));
	auto cg = CompiledGraph::compile_reference(g);
	ASSERT_TRUE(cg);
	uint64_t all = (uint64_t(m) * d + 8 * (uint64_t(d) * d + uint64_t(m) * d)) * 4;
	EXPECT_LT(cg->arena_size(), all - 4 * uint64_t(m) * d * 4);

	auto xv = random_vec(m * d, 7);
	ASSERT_TRUE(cg->set_input(x, xv));
	ASSERT_TRUE(cg->run());
	std::vector<float> want = xv;
	for (int l = 0; l < 8; l++)
		want = naive_dense(want, ws[l], nullptr, m, d, d, true);
	expect_bits_equal(*cg->read(cur), want);
}

TEST(Reference, SmallCnn)
{
	const uint32_t n = 2, h = 8, w = 8, c = 3, oc = 4, classes = 5;
	Graph g;
	auto x = *g.input("image", {n, h, w, c});
	auto f = random_vec(3 * 3 * c * oc, 11, 0.5f);
	auto fb = random_vec(oc, 12, 0.1f);
	auto filt = *g.constant("filter", {3, 3, c, oc}, f);
	auto bias = *g.constant("conv_bias", {oc}, fb);
	Window2D win;
	win.kh = win.kw = 3;
	win.pad_top = win.pad_bottom = win.pad_left = win.pad_right = 1;
	auto conv = g.conv2d(x, filt, bias, win, true);
	ASSERT_TRUE(conv) << conv.error().what();
	EXPECT_EQ(g.shape(*conv), (std::vector<uint32_t>{n, h, w, oc}));
	Window2D pw;
	pw.kh = pw.kw = pw.stride_h = pw.stride_w = 2;
	auto pool = *g.pool2d(PoolMode::max, *conv, pw);
	EXPECT_EQ(g.shape(pool), (std::vector<uint32_t>{n, 4, 4, oc}));
	auto flat = *g.flatten(pool);
	EXPECT_EQ(g.shape(flat), (std::vector<uint32_t>{n, 4 * 4 * oc}));
	auto wd = random_vec(4 * 4 * oc * classes, 13, 0.2f);
	auto dense = *g.dense(flat, *g.constant("wd", {4 * 4 * oc, classes}, wd));
	ASSERT_TRUE(g.output(dense, "logits"));
	ASSERT_TRUE(g.output(conv.value(), "conv"));

	auto cg = CompiledGraph::compile_reference(g);
	ASSERT_TRUE(cg) << cg.error().what();
	auto xv = random_vec(n * h * w * c, 14);
	ASSERT_TRUE(cg->set_input(x, xv));
	auto r = cg->run();
	ASSERT_TRUE(r) << r.error().what();

	/* Naive convolution (double accumulation) with ReLU. */
	std::vector<float> cv(n * h * w * oc);
	for (uint32_t b = 0; b < n; b++)
		for (uint32_t y = 0; y < h; y++)
			for (uint32_t xx = 0; xx < w; xx++)
				for (uint32_t o = 0; o < oc; o++) {
					double acc = fb[o];
					for (int ky = 0; ky < 3; ky++)
						for (int kx = 0; kx < 3; kx++) {
							int iy = int(y) + ky - 1,
							    ix = int(xx) + kx - 1;
							if (iy < 0 || ix < 0 || iy >= int(h) ||
							    ix >= int(w))
								continue;
							for (uint32_t ci = 0; ci < c; ci++)
								acc += double(xv[((b * h + iy) * w +
										  ix) * c +
										 ci]) *
								       f[((ky * 3 + kx) * c + ci) *
										 oc +
									 o];
						}
					cv[((b * h + y) * w + xx) * oc + o] =
						float(std::max(acc, 0.0));
				}
	expect_near_rel(*cg->read(*conv), cv, 1e-5);

	std::vector<float> pooled(n * 4 * 4 * oc);
	for (uint32_t b = 0; b < n; b++)
		for (uint32_t y = 0; y < 4; y++)
			for (uint32_t xx = 0; xx < 4; xx++)
				for (uint32_t o = 0; o < oc; o++) {
					float m = -INFINITY;
					for (int ky = 0; ky < 2; ky++)
						for (int kx = 0; kx < 2; kx++)
							m = std::max(m,
								     cv[((b * h + 2 * y + ky) * w +
									 2 * xx + kx) *
										oc +
									o]);
					pooled[((b * 4 + y) * 4 + xx) * oc + o] = m;
				}
	expect_near_rel(*cg->read(dense),
			naive_dense(pooled, wd, nullptr, n, 4 * 4 * oc, classes, false), 1e-4);
}

TEST(Reference, GraphShapeErrors)
{
	Graph g;
	auto x = *g.input("x", {4, 8});
	auto w = *g.constant("w", {7, 3}, std::vector<float>(21));
	auto d = g.dense(x, w);
	ASSERT_FALSE(d);
	EXPECT_EQ(d.code(), Errc::invalid_argument);
	EXPECT_NE(d.error().message().find("inner dimensions"), std::string::npos);
	EXPECT_FALSE(g.constant("c", {2, 2}, std::vector<float>(3)));
	EXPECT_FALSE(g.input("x", {1, 1})) << "duplicate name";
	EXPECT_FALSE(g.input("y", {1, 2, 3})) << "3-D input";
	EXPECT_FALSE(g.ewise(EwiseOp::add, x, *g.constant("b", {2, 8}, std::vector<float>(16))));
	EXPECT_FALSE(g.softmax(TensorId{999}));
	EXPECT_FALSE(g.pool2d(PoolMode::max, x, Window2D{}));
	EXPECT_FALSE(CompiledGraph::compile_reference(g)) << "a graph without operations";
}

TEST(Reference, FaultsAreReportedLikeTheDevice)
{
	ReferenceMachine rm;
	Memory a = rm.alloc(4096), out = rm.alloc(4096);
	/* Bypass the encoder: a copy reading past the end of a. */
	refnpu_cmd_copy c = {};
	c.hdr.opcode = REFNPU_OP_COPY;
	c.hdr.len_dw = sizeof(c) / 4;
	c.src = {a.va, 0};
	c.dst = {out.va, 0};
	c.rows = 1;
	c.row_bytes = 4096 + 256;
	CommandEncoder e;
	ASSERT_TRUE(e.nop());
	e.append_raw(std::as_bytes(std::span(&c, 1)));
	auto r = rm.run(e.data());
	ASSERT_FALSE(r);
	EXPECT_EQ(r.code(), Errc::job_failed);
	EXPECT_NE(r.error().message().find("MMU_UNMAPPED"), std::string::npos)
		<< r.error().message();
	EXPECT_EQ(rm.last_status().code, uint32_t(REFNPU_ERR_MMU_UNMAPPED));
	EXPECT_EQ(rm.last_status().cmd_index, 1u);
	EXPECT_EQ(rm.last_status().cmd_offset, uint32_t(REFNPU_CMD_NOP_SIZE));
	EXPECT_EQ(rm.last_status().fault_va, a.va + 4096);

	/* Writing device-read-only memory. */
	Memory ro = rm.alloc(4096, true);
	CommandEncoder w;
	ASSERT_TRUE(w.fill_f32(tensor2d(ro, DType::fp32, 1, 4), 1.0f));
	ASSERT_FALSE(rm.run(w.data()));
	EXPECT_EQ(rm.last_status().code, uint32_t(REFNPU_ERR_MMU_WRITE_PERM));

	/* A malformed header. */
	refnpu_cmd_nop bad = {};
	bad.hdr.opcode = REFNPU_OP_NOP;
	bad.hdr.len_dw = 4;
	ASSERT_FALSE(rm.run(std::as_bytes(std::span(&bad, 1))));
	EXPECT_EQ(rm.last_status().code, uint32_t(REFNPU_ERR_MALFORMED));
	EXPECT_STREQ(engine_error_name(REFNPU_ERR_MALFORMED), "MALFORMED");

	/* Freed memory faults. */
	rm.free(a);
	EXPECT_TRUE(rm.data(a).empty());
}

TEST(Reference, EveryValidEncodingRunsOnTheEngine)
{
	/* Whatever the encoder accepts, the engine must accept too. */
	ReferenceMachine rm;
	Memory m = rm.alloc(1 << 20);
	CommandEncoder e;
	auto t = [&](uint64_t off, uint32_t r, uint32_t c, DType d = DType::fp32) {
		return tensor2d(m, d, r, c, off);
	};
	ASSERT_TRUE(e.nop());
	ASSERT_TRUE(e.fill_f32(t(0, 8, 8), 0.5f));
	ASSERT_TRUE(e.copy(t(4096, 8, 8), t(0, 8, 8)));
	ASSERT_TRUE(e.gemm({t(0, 8, 8), t(4096, 8, 8), t(8192, 8, 8), VectorRef{m, 12288}, true}));
	GemmOp half{t(16384, 4, 8, DType::fp16),
		    t(20480, 8, 4, DType::fp16),
		    t(24576, 4, 4, DType::bf16),
		    {}};
	ASSERT_TRUE(e.gemm(half));
	GemmOp q{t(28672, 4, 8, DType::int8),
		 t(32768, 8, 4, DType::int8),
		 t(36864, 4, 4, DType::int8),
		 {}};
	q.rq_multiplier = 1 << 30;
	q.rq_shift = 31;
	ASSERT_TRUE(e.gemm(q));
	ASSERT_TRUE(e.ewise(EwiseOp::max, t(8192, 8, 8), t(8192, 8, 8), t(0, 8, 1)));
	ASSERT_TRUE(e.act(Activation::gelu_tanh, t(8192, 8, 8), t(8192, 8, 8)));
	ASSERT_TRUE(e.softmax(t(40960, 8, 8), t(8192, 8, 8)));
	ASSERT_TRUE(
		e.layernorm({t(40960, 8, 8), t(45056, 8, 8), VectorRef{m, 0}, VectorRef{m, 4096}}));
	Conv2dOp cv;
	cv.in = TensorNHWC{m, 49152, DType::fp32, 1, 4, 4, 2};
	cv.out = TensorNHWC{m, 53248, DType::fp32, 1, 2, 2, 3};
	cv.filter = t(57344, 2 * 2 * 2, 3);
	cv.win.kh = cv.win.kw = 2;
	cv.win.stride_h = cv.win.stride_w = 2;
	ASSERT_TRUE(e.conv2d(cv));
	Pool2dOp pl;
	pl.in = cv.out;
	pl.out = TensorNHWC{m, 61440, DType::fp32, 1, 1, 1, 3};
	pl.win.kh = pl.win.kw = 2;
	pl.mode = PoolMode::avg;
	ASSERT_TRUE(e.pool2d(pl));
	auto r = rm.run(e.data());
	ASSERT_TRUE(r) << r.error().what();
	EXPECT_EQ(rm.last_status().cmd_index, e.command_count());
}

TEST(Reference, HalfPrecisionConversions)
{
	EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
	EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
	EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00) << "rounds to infinity";
	EXPECT_EQ(fp16_to_fp32(0x3555), 0x1.554p-2f);
	EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
	EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
	EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
	EXPECT_GT(gemm_tolerance(1024, 1.0), 0.0);
	EXPECT_LT(gemm_tolerance(1024, 1.0), 1e-3);
}

TEST(Reference, IndependentMachinesRunConcurrently)
{
	/* Distinct objects may be used from different threads. */
	Mlp n;
	auto want = n.logits_ref();
	std::vector<std::thread> threads;
	std::vector<int> ok(4, 0);
	for (int i = 0; i < 4; i++)
		threads.emplace_back([&, i] {
			Graph g;
			auto x = *g.input("x", {n.batch, n.in});
			auto h = *g.dense(x, *g.constant("w1", {n.in, n.hidden}, n.w1),
					  *g.constant("b1", {n.hidden}, n.b1), true);
			auto y = *g.dense(h, *g.constant("w2", {n.hidden, n.out}, n.w2),
					  *g.constant("b2", {n.out}, n.b2));
			(void)g.output(y, "y");
			auto cg = CompiledGraph::compile_reference(g);
			for (int it = 0; it < 20 && cg; it++) {
				(void)cg->set_input(x, n.x);
				if (!cg->run())
					return;
				if (*cg->read(y) != want)
					return;
			}
			ok[i] = 1;
		});
	for (auto &t : threads)
		t.join();
	EXPECT_EQ(ok, std::vector<int>(4, 1));
}
