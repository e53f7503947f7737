// SPDX-License-Identifier: MIT
/*
 * accel-run: run one operation or a small network on an accel device,
 * verify the result against the CPU reference engine (the device's own
 * numerics) and print timings.
 */
#include <getopt.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <accel/accel.h>

#include "common.h"
#include "json.h"
#include "model.h"

using namespace tools;
using accel::DType;
using accel::Errc;

namespace {

const char *const tool = "accel-run";

struct Options {
	std::string device = "0";
	bool reference_only = false;
	bool json = false;
	uint64_t iterations = 5;
	uint64_t seed = 0;
	bool seed_set = false;
	double rtol = 1e-4, atol = 1e-5;
	uint64_t print = 0;
	/* --op mode */
	std::string op;
	std::string shape;
	std::string dtype = "fp32";
	std::string out_dtype;
	bool bias = false;
	bool relu = false;
	double timeout_s = 120;
};

void usage(FILE *f)
{
	std::fprintf(
		f,
		"usage: accel-run [OPTIONS] MODEL\n"
		"       accel-run [OPTIONS] --op gemm --shape MxKxN [--dtype T] [--out-dtype T]\n"
		"\n"
		"Runs a network (MODEL: a JSON or text model file, or builtin:NAME) or one\n"
		"GEMM on the device, checks the result against the CPU reference engine\n"
		"(the same code the device runs) and prints timings.  Weights and inputs\n"
		"come from the files a model names, or from a seeded generator.\n"
		"\n"
		"Options:\n"
		"  -d, --device DEV      device index, node, accelN or PCI address (default 0)\n"
		"  -r, --reference-only  run on the CPU reference engine only (no device)\n"
		"  -n, --iterations N    timed runs after a warm-up run (default 5)\n"
		"  -s, --seed S          seed of generated weights and inputs (default:\n"
		"                        the model's 'seed', else 1)\n"
		"      --rtol R          relative tolerance of the comparison (default 1e-4)\n"
		"      --atol A          absolute tolerance of the comparison (default 1e-5)\n"
		"      --print N         print the first N output values\n"
		"      --timeout SECS    per-run completion timeout (default 120)\n"
		"  -j, --json            print the result as JSON\n"
		"  -l, --list            list the built-in models\n"
		"  -h, --help            this help\n"
		"\n"
		"Single-operation mode:\n"
		"      --op gemm         C[M,N] = A[M,K] * B[K,N] (+ bias) (ReLU)\n"
		"      --shape MxKxN     sizes (default 256x256x256)\n"
		"      --dtype T         input type: fp32, fp16, bf16, int8 (default fp32)\n"
		"      --out-dtype T     output type (default fp32; int32 for int8 input)\n"
		"      --bias, --relu    add a bias vector, fuse a ReLU\n"
		"\n"
		"fp32 GEMM results may differ from the reference within the tolerance of\n"
		"the hardware specification (REFNPU_GEMM_TOL_*); everything else is\n"
		"expected bit-exact, networks are compared with --rtol/--atol.\n"
		"\n"
		"Model text format, one statement per line ('#' starts a comment):\n"
		"  input x 64 784            name and shape ([rows, cols] or [n, h, w, c])\n"
		"  dense 128 relu            units; 'nobias' via bias=0; weights=FILE bias=FILE\n"
		"  conv2d filters=8 kernel=3 pad=1 relu\n"
		"  pool max kernel=2 stride=2\n"
		"  flatten | softmax | act gelu | layernorm gamma beta | ewise add operand=row\n"
		"The JSON form has the same fields: {\"input\": {\"name\", \"shape\"},\n"
		"\"layers\": [{\"op\": \"dense\", \"units\": 128, \"relu\": true}, ...]}.\n"
		"Weight files are raw little-endian fp32, relative to the model file.\n"
		"\n"
		"%s",
		exit_codes_help);
}

struct Compare {
	size_t n = 0, mismatches = 0, first_bad = 0;
	double max_abs = 0, max_rel = 0;
	bool bit_exact = true;
};

Compare compare(const std::vector<float> &got, const std::vector<float> &want, double rtol,
		double atol)
{
	Compare c;
	c.n = want.size();
	for (size_t i = 0; i < want.size(); i++) {
		double g = got[i], w = want[i];
		if (std::memcmp(&got[i], &want[i], 4))
			c.bit_exact = false;
		if (std::isnan(g) && std::isnan(w))
			continue;
		double d = std::fabs(g - w);
		double rel = d / std::max(std::fabs(w), 1e-30);
		c.max_abs = std::max(c.max_abs, d);
		if (std::fabs(w) > atol)
			c.max_rel = std::max(c.max_rel, rel);
		if (!(d <= atol + rtol * std::fabs(w))) {
			if (!c.mismatches)
				c.first_bad = i;
			c.mismatches++;
		}
	}
	return c;
}

Json timing_json(const Stats &s)
{
	Json j = Json::object();
	j.set("min_ms", s.min / 1e6);
	j.set("p50_ms", s.p50 / 1e6);
	j.set("max_ms", s.max / 1e6);
	j.set("mean_ms", s.mean / 1e6);
	j.set("runs", s.n);
	return j;
}

void print_values(const char *what, const std::vector<float> &v, uint64_t n)
{
	if (!n)
		return;
	std::printf("  %s:", what);
	for (size_t i = 0; i < v.size() && i < n; i++)
		std::printf(" %.6g", v[i]);
	std::printf("\n");
}

/* ---------------------------------------------------------------- model */

int run_model(const Options &o, const std::string &spec)
{
	accel::Result<ModelSpec> m =
		spec.rfind("builtin:", 0) == 0 ? builtin_model(spec.substr(8)) : load_model(spec);
	/* A model that cannot be read, parsed or built is a usage error. */
	if (!m) {
		report(tool, m.error());
		return exit_usage;
	}
	uint64_t seed = o.seed_set ? o.seed : m->seed;
	auto b = build_model(*m, seed);
	if (!b) {
		report(tool, b.error());
		return exit_usage;
	}
	const accel::Graph &g = b->graph;

	Json out = Json::object();
	out.set("model", m->name);
	out.set("seed", seed);
	out.set("ops", g.op_count());
	out.set("macs", g.macs());
	Json shape = Json::array();
	for (auto d : g.shape(b->output))
		shape.push(d);
	out.set("output_shape", shape);

	/* The CPU reference first: it is what the device must reproduce. */
	auto ref = accel::CompiledGraph::compile_reference(g);
	if (!ref)
		return report(tool, ref.error());
	(void)ref->set_input(b->input, b->input_values);
	auto t0 = Clock::now();
	auto rr = ref->run();
	if (!rr)
		return report(tool, std::move(rr).error().context("reference run"));
	double ref_ns = ns_since(t0);
	auto want = *ref->read(b->output);
	out.set("reference_ms", ref_ns / 1e6);

	if (!o.json)
		std::printf("%s: %zu ops, %.2f M multiply-adds, output [%s]\n", m->name.c_str(),
			    g.op_count(), double(g.macs()) / 1e6,
			    [&] {
				    std::string s;
				    for (auto d : g.shape(b->output))
					    s += (s.empty() ? "" : ", ") + std::to_string(d);
				    return s;
			    }()
				    .c_str());
	if (o.reference_only) {
		out.set("device", "reference");
		out.set("verified", false);
		if (o.json) {
			std::printf("%s\n", out.dump(2).c_str());
		} else {
			std::printf("  reference engine: %.2f ms (%.3f GMAC/s)\n", ref_ns / 1e6,
				    double(g.macs()) / ref_ns);
			print_values("output", want, o.print);
		}
		return exit_ok;
	}

	auto dev = open_device(o.device);
	if (!dev)
		return report(tool, dev.error());
	auto ctx = accel::Context::create(*dev);
	if (!ctx)
		return report(tool, ctx.error());
	t0 = Clock::now();
	auto cg = accel::CompiledGraph::compile(g, *ctx);
	if (!cg)
		return report(tool, cg.error());
	double compile_ns = ns_since(t0);
	t0 = Clock::now();
	(void)cg->set_input(b->input, b->input_values);
	double upload_ns = ns_since(t0);
	auto timeout = std::chrono::nanoseconds(int64_t(o.timeout_s * 1e9));
	t0 = Clock::now();
	if (auto r = cg->run(timeout); !r)
		return report(tool, std::move(r).error().context("device run"));
	double first_ns = ns_since(t0);
	std::vector<double> runs;
	for (uint64_t i = 0; i < o.iterations; i++) {
		t0 = Clock::now();
		auto r = cg->run(timeout);
		if (!r)
			return report(tool, std::move(r).error().context("device run " +
									 std::to_string(i)));
		runs.push_back(ns_since(t0));
	}
	auto got = *cg->read(b->output);
	Compare c = compare(got, want, o.rtol, o.atol);
	Stats s = stats(runs.empty() ? std::vector<double>{first_ns} : runs);

	out.set("device", dev->node());
	out.set("driver", dev->version().name);
	out.set("compile_ms", compile_ns / 1e6);
	out.set("upload_ms", upload_ns / 1e6);
	out.set("first_run_ms", first_ns / 1e6);
	out.set("run", timing_json(s));
	out.set("gmacs_per_s", double(g.macs()) / s.p50);
	out.set("device_vs_reference", ref_ns / s.p50);
	out.set("arena_bytes", cg->arena_size());
	out.set("command_bytes", cg->commands().size());
	Json v = Json::object();
	v.set("elements", c.n);
	v.set("bit_exact", c.bit_exact);
	v.set("max_abs_diff", c.max_abs);
	v.set("max_rel_diff", c.max_rel);
	v.set("mismatches", c.mismatches);
	v.set("rtol", o.rtol);
	v.set("atol", o.atol);
	out.set("verify", v);
	out.set("verified", c.mismatches == 0);

	if (o.json) {
		std::printf("%s\n", out.dump(2).c_str());
	} else {
		std::printf(
			"  device %s (%s): compile %.2f ms, upload %.3f ms, first run %.2f ms\n",
			dev->node().c_str(), dev->version().name.c_str(), compile_ns / 1e6,
			upload_ns / 1e6, first_ns / 1e6);
		std::printf("  run x%zu: p50 %.3f ms, min %.3f ms, max %.3f ms (%.3f GMAC/s)\n",
			    s.n, s.p50 / 1e6, s.min / 1e6, s.max / 1e6, double(g.macs()) / s.p50);
		std::printf(
			"  reference engine (this CPU): %.3f ms; device/reference speed %.2fx\n",
			ref_ns / 1e6, ref_ns / s.p50);
		print_values("device output", got, o.print);
		print_values("reference    ", want, o.print);
		if (c.mismatches)
			std::printf(
				"FAIL: %zu of %zu outputs differ from the reference beyond "
				"rtol %g / atol %g (first: [%zu] device %.9g, reference %.9g)\n",
				c.mismatches, c.n, o.rtol, o.atol, c.first_bad, got[c.first_bad],
				want[c.first_bad]);
		else
			std::printf(
				"PASS: %zu outputs match the reference (%s, max abs diff %.3g)\n",
				c.n, c.bit_exact ? "bit-exact" : "within tolerance", c.max_abs);
	}
	return c.mismatches ? exit_failed : exit_ok;
}

/* ---------------------------------------------------------- single GEMM */

/* Host-side values of a tensor in any dtype, converted to/from float. */
std::vector<std::byte> encode_values(const std::vector<float> &v, DType t)
{
	std::vector<std::byte> out(v.size() * accel::dtype_size(t));
	for (size_t i = 0; i < v.size(); i++) {
		switch (t) {
		case DType::fp32:
			std::memcpy(&out[i * 4], &v[i], 4);
			break;
		case DType::fp16: {
			uint16_t h = accel::fp32_to_fp16(v[i]);
			std::memcpy(&out[i * 2], &h, 2);
			break;
		}
		case DType::bf16: {
			uint16_t h = accel::fp32_to_bf16(v[i]);
			std::memcpy(&out[i * 2], &h, 2);
			break;
		}
		case DType::int8:
			out[i] = std::byte(int8_t(std::lround(v[i])));
			break;
		case DType::int32: {
			int32_t x = int32_t(std::lround(v[i]));
			std::memcpy(&out[i * 4], &x, 4);
			break;
		}
		}
	}
	return out;
}

std::vector<float> decode_values(std::span<const std::byte> b, size_t n, DType t)
{
	std::vector<float> v(n);
	for (size_t i = 0; i < n; i++) {
		switch (t) {
		case DType::fp32:
			std::memcpy(&v[i], &b[i * 4], 4);
			break;
		case DType::fp16:
		case DType::bf16: {
			uint16_t h;
			std::memcpy(&h, &b[i * 2], 2);
			v[i] = t == DType::fp16 ? accel::fp16_to_fp32(h) : accel::bf16_to_fp32(h);
			break;
		}
		case DType::int8:
			v[i] = float(int8_t(b[i]));
			break;
		case DType::int32: {
			int32_t x;
			std::memcpy(&x, &b[i * 4], 4);
			v[i] = float(x);
			break;
		}
		}
	}
	return v;
}

int run_gemm(const Options &o)
{
	std::string shape = o.shape.empty() ? "256x256x256" : o.shape;
	unsigned m = 0, k = 0, n = 0;
	char tail = 0;
	if (std::sscanf(shape.c_str(), "%ux%ux%u%c", &m, &k, &n, &tail) != 3 || !m || !k || !n)
		return usage_error(tool, "bad --shape '" + shape + "' (MxKxN)");
	auto in_t = accel::dtype_from_name(o.dtype);
	if (!in_t)
		return usage_error(tool, "unknown --dtype '" + o.dtype + "'");
	DType out_t = *in_t == DType::int8 ? DType::int32 : DType::fp32;
	if (!o.out_dtype.empty()) {
		auto t = accel::dtype_from_name(o.out_dtype);
		if (!t)
			return usage_error(tool, "unknown --out-dtype '" + o.out_dtype + "'");
		out_t = *t;
	}
	uint64_t seed = o.seed_set ? o.seed : 1;
	bool is_int = *in_t == DType::int8;
	auto av = seeded_values(size_t(m) * k, seed, is_int ? 127.0f : 1.0f);
	auto bv = seeded_values(size_t(k) * n, seed + 1, is_int ? 127.0f : 1.0f);
	auto biasv = seeded_values(n, seed + 2, is_int ? 1000.0f : 0.5f);
	auto a_bytes = encode_values(av, *in_t), b_bytes = encode_values(bv, *in_t);
	auto bias_bytes = encode_values(biasv, is_int ? DType::int32 : DType::fp32);
	/* Values as the device sees them (after rounding to the input type). */
	av = decode_values(a_bytes, av.size(), *in_t);
	bv = decode_values(b_bytes, bv.size(), *in_t);
	biasv = decode_values(bias_bytes, n, is_int ? DType::int32 : DType::fp32);
	uint64_t c_bytes = uint64_t(m) * n * accel::dtype_size(out_t);

	auto make_op = [&](accel::Memory a, accel::Memory b, accel::Memory c, accel::Memory bias) {
		accel::GemmOp g;
		g.a = accel::tensor2d(a, *in_t, m, k);
		g.b = accel::tensor2d(b, *in_t, k, n);
		g.c = accel::tensor2d(c, out_t, m, n);
		if (o.bias)
			g.bias = accel::VectorRef{bias, 0};
		g.relu = o.relu;
		if (out_t == DType::int8) {
			g.rq_multiplier = 1 << 30;
			g.rq_shift = 38;
		}
		return g;
	};

	Json out = Json::object();
	out.set("op", "gemm");
	out.set("m", m);
	out.set("k", k);
	out.set("n", n);
	out.set("in_dtype", accel::dtype_name(*in_t));
	out.set("out_dtype", accel::dtype_name(out_t));
	double flop = 2.0 * m * n * k;

	/* Reference */
	accel::ReferenceMachine rm;
	auto ra = rm.alloc(a_bytes.size()), rb = rm.alloc(b_bytes.size()), rc = rm.alloc(c_bytes),
	     rbias = rm.alloc(bias_bytes.size());
	std::memcpy(rm.data(ra).data(), a_bytes.data(), a_bytes.size());
	std::memcpy(rm.data(rb).data(), b_bytes.data(), b_bytes.size());
	std::memcpy(rm.data(rbias).data(), bias_bytes.data(), bias_bytes.size());
	accel::CommandEncoder re;
	if (auto r = re.gemm(make_op(ra, rb, rc, rbias)); !r)
		return report(tool, r.error());
	auto t0 = Clock::now();
	if (auto r = rm.run(re.data()); !r)
		return report(tool, r.error());
	double ref_ns = ns_since(t0);
	auto want = decode_values(rm.data(rc), size_t(m) * n, out_t);
	out.set("reference_ms", ref_ns / 1e6);
	out.set("reference_gflops", flop / ref_ns);

	if (o.reference_only) {
		if (o.json) {
			std::printf("%s\n", out.dump(2).c_str());
		} else {
			std::printf("gemm %ux%ux%u %s->%s on the reference engine: %.2f ms, %.3f "
				    "GFLOP/s\n",
				    m, k, n, accel::dtype_name(*in_t), accel::dtype_name(out_t),
				    ref_ns / 1e6, flop / ref_ns);
			print_values("output", want, o.print);
		}
		return exit_ok;
	}

	auto dev = open_device(o.device);
	if (!dev)
		return report(tool, dev.error());
	auto ctx = accel::Context::create(*dev);
	if (!ctx)
		return report(tool, ctx.error());
	auto alloc = [&](uint64_t size) { return dev->create_buffer(std::max<uint64_t>(size, 1)); };
	auto da = alloc(a_bytes.size()), db = alloc(b_bytes.size()), dc = alloc(c_bytes),
	     dbias = alloc(bias_bytes.size());
	for (auto *r : {&da, &db, &dc, &dbias})
		if (!*r)
			return report(tool, r->error());
	{
		auto ma = da->map(), mb = db->map(), mbias = dbias->map();
		if (!ma || !mb || !mbias)
			return report(tool, (!ma ? ma : !mb ? mb : mbias).error());
		std::memcpy(ma->data(), a_bytes.data(), a_bytes.size());
		std::memcpy(mb->data(), b_bytes.data(), b_bytes.size());
		std::memcpy(mbias->data(), bias_bytes.data(), bias_bytes.size());
	}
	accel::CommandEncoder de;
	if (auto r = de.gemm(make_op(da->memory(), db->memory(), dc->memory(), dbias->memory()));
	    !r)
		return report(tool, r.error());
	auto job = accel::Job::create(*dev, de);
	if (!job)
		return report(tool, job.error());
	auto timeout = std::chrono::nanoseconds(int64_t(o.timeout_s * 1e9));
	std::vector<double> runs;
	double first_ns = 0;
	for (uint64_t i = 0; i <= o.iterations; i++) {
		t0 = Clock::now();
		auto f = ctx->submit(*job);
		if (!f)
			return report(tool, f.error());
		if (auto r = f->wait_for(timeout); !r)
			return report(tool, r.error());
		(i ? runs.push_back(ns_since(t0)) : void(first_ns = ns_since(t0)));
	}
	auto mc = dc->map();
	if (!mc)
		return report(tool, mc.error());
	auto got = decode_values(mc->bytes(), size_t(m) * n, out_t);

	/* fp32 -> fp32 may use the device's fast path: the spec's tolerance. */
	size_t bad = 0, first_bad = 0;
	double max_abs = 0;
	bool exact = std::memcmp(mc->data(), rm.data(rc).data(), c_bytes) == 0;
	bool tolerant = *in_t == DType::fp32 && out_t == DType::fp32;
	for (unsigned i = 0; i < m && !exact; i++)
		for (unsigned j = 0; j < n; j++) {
			size_t idx = size_t(i) * n + j;
			double d = std::fabs(double(got[idx]) - want[idx]);
			if (std::isnan(got[idx]) && std::isnan(want[idx]))
				continue;
			max_abs = std::max(max_abs, d);
			double tol = 0;
			if (tolerant) {
				double s = o.bias ? std::fabs(biasv[j]) : 0;
				for (unsigned kk = 0; kk < k; kk++)
					s += std::fabs(double(av[size_t(i) * k + kk]) *
						       bv[size_t(kk) * n + j]);
				tol = accel::gemm_tolerance(k, s);
			}
			if (!(d <= tol)) {
				if (!bad)
					first_bad = idx;
				bad++;
			}
		}
	Stats s = stats(runs.empty() ? std::vector<double>{first_ns} : runs);
	out.set("device", dev->node());
	out.set("first_run_ms", first_ns / 1e6);
	out.set("run", timing_json(s));
	out.set("gflops", flop / s.p50);
	out.set("device_vs_reference", ref_ns / s.p50);
	Json v = Json::object();
	v.set("elements", size_t(m) * n);
	v.set("bit_exact", exact);
	v.set("max_abs_diff", max_abs);
	v.set("mismatches", bad);
	v.set("rule", tolerant ? "REFNPU_GEMM_TOL" : "bit-exact");
	out.set("verify", v);
	out.set("verified", bad == 0);
	if (o.json) {
		std::printf("%s\n", out.dump(2).c_str());
	} else {
		std::printf("gemm %ux%ux%u %s->%s%s%s on %s\n", m, k, n, accel::dtype_name(*in_t),
			    accel::dtype_name(out_t), o.bias ? " +bias" : "",
			    o.relu ? " +relu" : "", dev->node().c_str());
		std::printf("  first run %.2f ms; run x%zu: p50 %.3f ms, min %.3f ms "
			    "(%.3f GFLOP/s)\n",
			    first_ns / 1e6, s.n, s.p50 / 1e6, s.min / 1e6, flop / s.p50);
		std::printf("  reference engine (this CPU): %.3f ms (%.3f GFLOP/s); "
			    "device/reference speed %.2fx\n",
			    ref_ns / 1e6, flop / ref_ns, ref_ns / s.p50);
		print_values("device output", got, o.print);
		print_values("reference    ", want, o.print);
		if (bad)
			std::printf("FAIL: %zu of %zu elements outside %s (first [%zu]: device "
				    "%.9g, reference %.9g)\n",
				    bad, size_t(m) * n,
				    tolerant ? "the GEMM tolerance" : "bit-exactness", first_bad,
				    got[first_bad], want[first_bad]);
		else
			std::printf("PASS: %zu elements %s\n", size_t(m) * n,
				    exact ? "bit-exact" : "within the GEMM tolerance");
	}
	return bad ? exit_failed : exit_ok;
}

} // namespace

int main(int argc, char **argv)
{
	Options o;
	enum {
		opt_rtol = 256,
		opt_atol,
		opt_print,
		opt_op,
		opt_shape,
		opt_dtype,
		opt_out_dtype,
		opt_bias,
		opt_relu,
		opt_timeout,
	};
	static const struct option longopts[] = {
		{"device", required_argument, nullptr, 'd'},
		{"reference-only", no_argument, nullptr, 'r'},
		{"iterations", required_argument, nullptr, 'n'},
		{"seed", required_argument, nullptr, 's'},
		{"json", no_argument, nullptr, 'j'},
		{"list", no_argument, nullptr, 'l'},
		{"help", no_argument, nullptr, 'h'},
		{"rtol", required_argument, nullptr, opt_rtol},
		{"atol", required_argument, nullptr, opt_atol},
		{"print", required_argument, nullptr, opt_print},
		{"op", required_argument, nullptr, opt_op},
		{"shape", required_argument, nullptr, opt_shape},
		{"dtype", required_argument, nullptr, opt_dtype},
		{"out-dtype", required_argument, nullptr, opt_out_dtype},
		{"bias", no_argument, nullptr, opt_bias},
		{"relu", no_argument, nullptr, opt_relu},
		{"timeout", required_argument, nullptr, opt_timeout},
		{nullptr, 0, nullptr, 0},
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "d:rn:s:jlh", longopts, nullptr)) != -1) {
		std::string arg = optarg ? optarg : "";
		switch (c) {
		case 'd':
			o.device = arg;
			break;
		case 'r':
			o.reference_only = true;
			break;
		case 'n':
			if (!parse_u64(arg, o.iterations))
				return usage_error(tool, "bad --iterations '" + arg + "'");
			break;
		case 's':
			if (!parse_u64(arg, o.seed))
				return usage_error(tool, "bad --seed '" + arg + "'");
			o.seed_set = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'l':
			for (const auto &n : builtin_models())
				std::printf("builtin:%s\n", n.c_str());
			return exit_ok;
		case 'h':
			usage(stdout);
			return exit_ok;
		case opt_rtol:
			if (!parse_double(arg, o.rtol))
				return usage_error(tool, "bad --rtol '" + arg + "'");
			break;
		case opt_atol:
			if (!parse_double(arg, o.atol))
				return usage_error(tool, "bad --atol '" + arg + "'");
			break;
		case opt_print:
			if (!parse_u64(arg, o.print))
				return usage_error(tool, "bad --print '" + arg + "'");
			break;
		case opt_op:
			o.op = arg;
			break;
		case opt_shape:
			o.shape = arg;
			break;
		case opt_dtype:
			o.dtype = arg;
			break;
		case opt_out_dtype:
			o.out_dtype = arg;
			break;
		case opt_bias:
			o.bias = true;
			break;
		case opt_relu:
			o.relu = true;
			break;
		case opt_timeout:
			if (!parse_double(arg, o.timeout_s) || o.timeout_s <= 0)
				return usage_error(tool, "bad --timeout '" + arg + "'");
			break;
		default:
			return usage_error(tool, std::string("unknown or incomplete option '") +
							 argv[optind - 1] + "'");
		}
	}
	if (!o.op.empty()) {
		if (optind != argc)
			return usage_error(tool, "--op takes no MODEL");
		if (o.op != "gemm")
			return usage_error(tool, "--op supports 'gemm'; run other operations as "
						 "a one-layer model file");
		return run_gemm(o);
	}
	if (optind + 1 != argc)
		return usage_error(tool, optind == argc ? "no MODEL given" : "more than one MODEL");
	return run_model(o, argv[optind]);
}
