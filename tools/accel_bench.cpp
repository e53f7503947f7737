// SPDX-License-Identifier: MIT
/*
 * accel-bench: latency, throughput and bandwidth of an accel device
 * through libaccel, each measured together with a baseline in the same
 * process and run, and printed as a ratio to it -- absolute numbers from
 * an emulated machine mean little, ratios to the same kernel's software
 * paths do.
 */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <drm/refnpu_accel.h>
#include <xf86drm.h>

#include <accel/accel.h>

#include "common.h"
#include "json.h"

using namespace tools;
using accel::Errc;

namespace {

const char *const tool = "accel-bench";

/*
 * vgem's two ioctls (include/uapi/drm/vgem_drm.h, stable uAPI; the header
 * is not shipped by libdrm).
 */
struct vgem_fence_attach {
	uint32_t handle;
	uint32_t flags;
	uint32_t out_fence;
	uint32_t pad;
};
struct vgem_fence_signal {
	uint32_t fence;
	uint32_t flags;
};
constexpr uint32_t VGEM_FENCE_WRITE = 0x1;
constexpr unsigned long VGEM_IOCTL_FENCE_ATTACH =
	DRM_IOWR(DRM_COMMAND_BASE + 0x1, struct vgem_fence_attach);
constexpr unsigned long VGEM_IOCTL_FENCE_SIGNAL =
	DRM_IOW(DRM_COMMAND_BASE + 0x2, struct vgem_fence_signal);

struct Options {
	std::string device = "0";
	bool json = false;
	uint64_t iterations = 2000;
	uint64_t gemm_size = 1024;
	uint64_t gemm_runs = 3;
	double host_engine_gflops = 0;
	std::vector<std::string> benches;
};

void usage(FILE *f)
{
	std::fprintf(
		f,
		"usage: accel-bench [OPTIONS] [BENCHMARK...]\n"
		"\n"
		"Benchmarks (default: all), each with a baseline measured in the same run\n"
		"and printed as a ratio:\n"
		"  latency     null-job round trip p50/p99  vs vgem FENCE_ATTACH+SIGNAL+wait\n"
		"  throughput  pipelined null jobs/s         vs vgem attach+signal pairs/s\n"
		"  bo          buffer create+map+free rate   vs vgem dumb create+mmap+destroy\n"
		"  dmabuf      dma-buf export and import     vs the same with vgem buffers\n"
		"  submit      libaccel submission cost      vs the raw ioctl\n"
		"  copy        device COPY bandwidth         vs memcpy on this CPU\n"
		"  gemm        fp32 GEMM through the stack   vs the reference engine alone\n"
		"The syscall floor, getppid(), is printed first for scale.\n"
		"\n"
		"Options:\n"
		"  -d, --device DEV          device (default 0)\n"
		"  -n, --iterations N        iterations of the fast benchmarks (default 2000)\n"
		"      --gemm-size N         N for the NxNxN GEMM (default 1024)\n"
		"      --gemm-runs N         timed GEMM runs (default 3)\n"
		"      --host-engine-gflops G  also compare the GEMM with the engine's speed\n"
		"                            measured on the host (accel-run -r --op gemm)\n"
		"  -j, --json                JSON output\n"
		"  -h, --help                this help\n"
		"\n"
		"vgem baselines need the vgem module (modprobe vgem); without it they are\n"
		"reported as missing and no ratio is printed.  Targets are printed for\n"
		"reference; missing one does not change the exit status.\n"
		"\n"
		"%s",
		exit_codes_help);
}

struct Row {
	Row(std::string n, double v, std::string u)
		: name(std::move(n)), value(v), unit(std::move(u))
	{
	}

	std::string name;
	double value = NAN;
	std::string unit;
	std::string baseline_name;
	double baseline = NAN;
	/* ratio = value / baseline; target: ratio <= max or >= min (NAN: none) */
	double target_max = NAN, target_min = NAN;

	double ratio() const { return value / baseline; }
	bool has_ratio() const
	{
		return std::isfinite(value) && std::isfinite(baseline) && baseline;
	}
	std::string target() const
	{
		if (std::isfinite(target_max))
			return strf("<= %.2g", target_max);
		if (std::isfinite(target_min))
			return strf(">= %.2g", target_min);
		return "";
	}
	std::optional<bool> met() const
	{
		if (!has_ratio())
			return std::nullopt;
		if (std::isfinite(target_max))
			return ratio() <= target_max;
		if (std::isfinite(target_min))
			return ratio() >= target_min;
		return std::nullopt;
	}
};

/* ------------------------------------------------------------- vgem */

class Vgem
{
public:
	bool open()
	{
		DIR *d = opendir("/dev/dri");
		if (!d)
			return false;
		while (struct dirent *e = readdir(d)) {
			if (std::strncmp(e->d_name, "card", 4))
				continue;
			std::string p = std::string("/dev/dri/") + e->d_name;
			int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
			if (fd < 0)
				continue;
			drmVersionPtr v = drmGetVersion(fd);
			bool is_vgem = v && std::string(v->name, v->name_len) == "vgem";
			drmFreeVersion(v);
			if (is_vgem) {
				fd_.reset(fd);
				break;
			}
			::close(fd);
		}
		closedir(d);
		return fd_.is_valid();
	}
	int fd() const { return fd_.get(); }

	/* A dumb buffer: handle, size, or 0. */
	uint32_t create(uint64_t bytes)
	{
		struct drm_mode_create_dumb c = {};
		c.width = 1024;
		c.height = uint32_t((bytes + 4095) / 4096);
		c.bpp = 32;
		if (accel::ioctl_retry(fd(), DRM_IOCTL_MODE_CREATE_DUMB, &c))
			return 0;
		return c.handle;
	}
	void destroy(uint32_t h)
	{
		struct drm_gem_close c = {};
		c.handle = h;
		accel::ioctl_retry(fd(), DRM_IOCTL_GEM_CLOSE, &c);
	}

private:
	accel::UniqueFd fd_;
};

/* ------------------------------------------------------------- helpers */

/* A failed measurement. */
constexpr double failed_ns = std::numeric_limits<double>::quiet_NaN();

/*
 * Measurements and their baselines alternate in short chunks, and the
 * median of the chunks is reported: both sides see the same machine state
 * (other guests, host load, TCG translation caches), which on an emulated
 * machine moves more than any difference being measured.
 */
struct Pair {
	double value = NAN, baseline = NAN;
	std::vector<double> value_samples, baseline_samples;
};

/* Per-chunk means of chunk() calls, each returning ns per operation (NAN: failed). */
Pair alternate(uint64_t rounds, const std::function<double()> &value,
	       const std::function<double()> &baseline)
{
	Pair p;
	for (uint64_t r = 0; r < rounds; r++) {
		double v = value();
		if (!std::isfinite(v))
			return p;
		p.value_samples.push_back(v);
		if (baseline) {
			double b = baseline();
			if (std::isfinite(b))
				p.baseline_samples.push_back(b);
		}
	}
	p.value = stats(p.value_samples).p50;
	if (!p.baseline_samples.empty())
		p.baseline = stats(p.baseline_samples).p50;
	return p;
}

double per_op_ns(uint64_t n, const std::function<bool()> &op)
{
	auto t0 = Clock::now();
	for (uint64_t i = 0; i < n; i++)
		if (!op())
			return failed_ns;
	return ns_since(t0) / double(n);
}

const auto wait_limit = std::chrono::seconds(30);

struct Bench {
	explicit Bench(const Options &opts) : o(opts) { }

	const Options &o;
	accel::Device dev;
	accel::Context ctx;
	Vgem vgem;
	bool have_vgem = false;
	std::vector<Row> rows;
	std::vector<std::string> errors;
	/* The first libaccel error of a measurement. */
	std::optional<accel::Error> err;

	template <typename T>
	bool ok(const accel::Result<T> &r)
	{
		if (!r && !err)
			err = r.error();
		return bool(r);
	}

	accel::Result<accel::Job> null_job()
	{
		accel::CommandEncoder e;
		(void)e.nop();
		return accel::Job::create(dev, e);
	}

	void fail(const std::string &what, const accel::Error &e)
	{
		errors.push_back(what + ": " + e.what());
		std::fprintf(stderr, "%s: %s: %s\n", tool, what.c_str(), e.what().c_str());
	}
	/* Report err (set by ok()) as the failure of what; true if there was one. */
	bool failed(const std::string &what)
	{
		if (!err)
			return false;
		fail(what, *err);
		err.reset();
		return true;
	}

	/* vgem: attach a write fence to bo, signal it, wait for the dma-buf. */
	bool vgem_fence_round_trip(uint32_t bo, int dmabuf)
	{
		vgem_fence_attach a = {bo, VGEM_FENCE_WRITE, 0, 0};
		if (accel::ioctl_retry(vgem.fd(), VGEM_IOCTL_FENCE_ATTACH, &a))
			return false;
		vgem_fence_signal s = {a.out_fence, 0};
		if (accel::ioctl_retry(vgem.fd(), VGEM_IOCTL_FENCE_SIGNAL, &s))
			return false;
		struct pollfd p = {dmabuf, POLLOUT, 0};
		return poll(&p, 1, 30000) == 1;
	}

	void syscall_floor()
	{
		std::vector<double> v;
		for (uint64_t i = 0; i < o.iterations * 10; i++) {
			auto t0 = Clock::now();
			(void)getppid();
			v.push_back(ns_since(t0));
		}
		rows.emplace_back("syscall floor getppid() p50", stats(v).p50, "ns");
	}

	void latency()
	{
		auto job = null_job();
		if (!ok(job))
			return (void)failed("latency");
		auto null_rt = [&] {
			auto t0 = Clock::now();
			auto f = ctx.submit(*job);
			if (!ok(f) || !ok(f->wait_for(wait_limit)))
				return failed_ns;
			return ns_since(t0);
		};
		uint32_t bo = have_vgem ? vgem.create(4096) : 0;
		int dmabuf = -1;
		if (bo && drmPrimeHandleToFD(vgem.fd(), bo, DRM_CLOEXEC, &dmabuf))
			dmabuf = -1;
		std::function<double()> base;
		if (dmabuf >= 0)
			base = [&] {
				auto t0 = Clock::now();
				return vgem_fence_round_trip(bo, dmabuf) ? ns_since(t0) : failed_ns;
			};
		alternate(20, null_rt, base); /* warm up */
		Pair p = alternate(o.iterations, null_rt, base);
		if (dmabuf >= 0)
			::close(dmabuf);
		if (bo)
			vgem.destroy(bo);
		if (failed("latency"))
			return;
		Stats s = stats(p.value_samples), b = stats(p.baseline_samples);
		Row p50("null-job round trip p50", s.p50 / 1e3, "us");
		Row p99("null-job round trip p99", s.p99 / 1e3, "us");
		p50.target_max = 5;
		if (b.n) {
			p50.baseline_name = "vgem fence attach+signal+wait p50";
			p50.baseline = b.p50 / 1e3;
			p99.baseline_name = "vgem fence attach+signal+wait p99";
			p99.baseline = b.p99 / 1e3;
		}
		rows.push_back(p50);
		rows.push_back(p99);
	}

	void throughput()
	{
		auto job = null_job();
		if (!ok(job))
			return (void)failed("throughput");
		const uint64_t chunk = 64;
		auto pipelined = [&] {
			auto t0 = Clock::now();
			accel::Fence last;
			for (uint64_t i = 0; i < chunk; i++) {
				auto f = ctx.submit(*job);
				if (!ok(f))
					return failed_ns;
				last = *f;
			}
			if (!ok(last.wait_for(wait_limit)))
				return failed_ns;
			return ns_since(t0) / double(chunk);
		};
		uint32_t bo = have_vgem ? vgem.create(4096) : 0;
		std::function<double()> base;
		if (bo)
			base = [&] {
				return per_op_ns(chunk, [&] {
					vgem_fence_attach a = {bo, VGEM_FENCE_WRITE, 0, 0};
					if (accel::ioctl_retry(vgem.fd(), VGEM_IOCTL_FENCE_ATTACH,
							       &a))
						return false;
					vgem_fence_signal s = {a.out_fence, 0};
					return !accel::ioctl_retry(vgem.fd(),
								   VGEM_IOCTL_FENCE_SIGNAL, &s);
				});
			};
		Pair p = alternate(std::max<uint64_t>(o.iterations / chunk, 5), pipelined, base);
		if (bo)
			vgem.destroy(bo);
		if (failed("throughput"))
			return;
		/* Rates: ratio = jobs/s over pairs/s. */
		Row r("pipelined null jobs", 1e9 / p.value / 1e3, "k/s");
		r.target_min = 0.5;
		if (std::isfinite(p.baseline)) {
			r.baseline_name = "vgem fence attach+signal pairs";
			r.baseline = 1e9 / p.baseline / 1e3;
		}
		rows.push_back(r);
	}

	void bo()
	{
		const uint64_t size = 64 * 1024;
		const uint64_t chunk = 16;
		auto create_map_free = [&] {
			return per_op_ns(chunk, [&] {
				auto b = dev.create_buffer(size);
				if (!ok(b))
					return false;
				auto m = b->map();
				if (!ok(m))
					return false;
				m->data()[0] = std::byte{1};
				return true;
			});
		};
		std::function<double()> base;
		if (have_vgem)
			base = [&] {
				return per_op_ns(chunk, [&] {
					uint32_t h = vgem.create(size);
					if (!h)
						return false;
					struct drm_mode_map_dumb md = {};
					md.handle = h;
					bool good = !accel::ioctl_retry(
						vgem.fd(), DRM_IOCTL_MODE_MAP_DUMB, &md);
					if (good) {
						void *p = mmap(nullptr, size,
							       PROT_READ | PROT_WRITE, MAP_SHARED,
							       vgem.fd(), off_t(md.offset));
						good = p != MAP_FAILED;
						if (good) {
							static_cast<char *>(p)[0] = 1;
							munmap(p, size);
						}
					}
					vgem.destroy(h);
					return good;
				});
			};
		Pair p = alternate(std::max<uint64_t>(o.iterations / chunk / 2, 5), create_map_free,
				   base);
		if (failed("bo"))
			return;
		Row r("BO create+map+free (64 KiB)", 1e9 / p.value / 1e3, "k/s");
		r.target_min = 1.0;
		if (std::isfinite(p.baseline)) {
			r.baseline_name = "vgem dumb create+mmap+destroy";
			r.baseline = 1e9 / p.baseline / 1e3;
		}
		rows.push_back(r);
	}

	void dmabuf()
	{
		const uint64_t chunk = 16;
		uint64_t rounds = std::max<uint64_t>(o.iterations / chunk / 2, 5);
		auto buf = dev.create_buffer(64 * 1024);
		if (!ok(buf))
			return (void)failed("dmabuf");
		uint32_t h = have_vgem ? vgem.create(64 * 1024) : 0;
		int vfd = -1;
		if (h && drmPrimeHandleToFD(vgem.fd(), h, DRM_CLOEXEC | DRM_RDWR, &vfd))
			vfd = -1;

		auto export_ours = [&] {
			return per_op_ns(chunk, [&] { return ok(buf->export_dmabuf()); });
		};
		std::function<double()> export_vgem;
		if (h)
			export_vgem = [&] {
				return per_op_ns(chunk, [&] {
					int fd;
					if (drmPrimeHandleToFD(vgem.fd(), h, DRM_CLOEXEC, &fd))
						return false;
					::close(fd);
					return true;
				});
			};
		Pair ex = alternate(rounds, export_ours, export_vgem);
		Row er("dma-buf export+close", 1e9 / ex.value / 1e3, "k/s");
		if (std::isfinite(ex.baseline)) {
			er.baseline_name = "vgem export+close";
			er.baseline = 1e9 / ex.baseline / 1e3;
		}
		rows.push_back(er);

		if (vfd >= 0) {
			/* Importing a foreign buffer: refnpu of vgem's, vgem of refnpu's. */
			auto rfd = buf->export_dmabuf();
			auto import_ours = [&] {
				return per_op_ns(chunk, [&] { return ok(dev.import_dmabuf(vfd)); });
			};
			std::function<double()> import_vgem;
			if (rfd)
				import_vgem = [&] {
					return per_op_ns(chunk, [&] {
						uint32_t vh;
						if (drmPrimeFDToHandle(vgem.fd(), rfd->get(), &vh))
							return false;
						vgem.destroy(vh);
						return true;
					});
				};
			Pair im = alternate(rounds, import_ours, import_vgem);
			if (std::isfinite(im.value)) {
				Row ir("dma-buf import+release (of vgem's)", 1e9 / im.value / 1e3,
				       "k/s");
				if (std::isfinite(im.baseline)) {
					ir.baseline_name = "vgem import+close (of refnpu's)";
					ir.baseline = 1e9 / im.baseline / 1e3;
				}
				rows.push_back(ir);
			}
			::close(vfd);
		}
		if (h)
			vgem.destroy(h);
		failed("dmabuf");
	}

	void submit()
	{
		auto job = null_job();
		if (!ok(job))
			return (void)failed("submit");
		const uint64_t batch = 16;
		/* Raw: the same ioctl with a prepared argument and one timeline point. */
		uint32_t tl = 0;
		if (drmSyncobjCreate(dev.fd(), 0, &tl))
			return fail("submit", accel::Error::from_errno(errno, "syncobj create"));
		drm_refnpu_sync out = {tl, 0, 0};
		drm_refnpu_submit s = {};
		s.cmd_handle = job->command_buffer().handle();
		s.cmd_size = job->command_size();
		s.out_syncs = reinterpret_cast<uintptr_t>(&out);
		s.out_sync_count = 1;
		s.out_sync_stride = sizeof(out);
		s.bo_stride = sizeof(drm_refnpu_bo_ref);
		s.in_sync_stride = sizeof(drm_refnpu_sync);
		uint64_t point = 0;
		int raw_err = 0;
		/* Only the submissions are timed; each batch is drained after. */
		auto lib = [&] {
			accel::Fence last;
			auto t0 = Clock::now();
			for (uint64_t i = 0; i < batch; i++) {
				auto f = ctx.submit(*job);
				if (!ok(f))
					return failed_ns;
				last = *f;
			}
			double ns = ns_since(t0) / double(batch);
			return ok(last.wait_for(wait_limit)) ? ns : failed_ns;
		};
		auto raw = [&] {
			auto t0 = Clock::now();
			for (uint64_t i = 0; i < batch; i++) {
				out.point = ++point;
				if ((raw_err = accel::ioctl_retry(dev.fd(), DRM_IOCTL_REFNPU_SUBMIT,
								  &s)))
					return failed_ns;
			}
			double ns = ns_since(t0) / double(batch);
			uint64_t p = point;
			drmSyncobjTimelineWait(dev.fd(), &tl, &p, 1, INT64_MAX,
					       DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT, nullptr);
			return ns;
		};
		Pair p = alternate(std::max<uint64_t>(o.iterations / batch, 10), lib, raw);
		drmSyncobjDestroy(dev.fd(), tl);
		if (failed("submit"))
			return;
		if (raw_err)
			return fail("submit", accel::Error::from_errno(raw_err, "raw submit"));
		Row r("libaccel submit", p.value / 1e3, "us/job");
		r.baseline_name = "raw DRM_IOCTL_REFNPU_SUBMIT";
		r.baseline = p.baseline / 1e3;
		r.target_max = 1.1;
		rows.push_back(r);
	}

	void copy()
	{
		const uint64_t size = 32ULL << 20;
		auto a = dev.create_buffer(size), b = dev.create_buffer(size);
		if (!ok(a) || !ok(b))
			return (void)failed("copy");
		{
			/* Populate the pages first so that faults are not measured. */
			auto ma = a->map(), mb = b->map();
			if (!ok(ma) || !ok(mb))
				return (void)failed("copy");
			std::memset(ma->data(), 1, size);
			std::memset(mb->data(), 2, size);
		}
		accel::CommandEncoder e;
		if (!ok(e.copy_bytes(b->memory(), 0, a->memory(), 0, size)))
			return (void)failed("copy");
		auto job = accel::Job::create(dev, e);
		if (!ok(job))
			return (void)failed("copy");
		std::vector<char> x(size, 1), y(size, 2);
		auto dev_copy = [&] {
			auto t0 = Clock::now();
			auto f = ctx.submit(*job);
			if (!ok(f) || !ok(f->wait_for(wait_limit)))
				return failed_ns;
			return ns_since(t0);
		};
		auto host_copy = [&] {
			auto t0 = Clock::now();
			std::memcpy(y.data(), x.data(), size);
			return ns_since(t0);
		};
		alternate(1, dev_copy, host_copy);
		Pair p = alternate(4, dev_copy, host_copy);
		if (failed("copy"))
			return;
		Row r("device COPY 32 MiB", double(size) / p.value, "GB/s");
		r.baseline_name = "memcpy on this CPU";
		r.baseline = double(size) / p.baseline;
		rows.push_back(r);
	}

	void gemm()
	{
		uint32_t n = uint32_t(o.gemm_size);
		accel::Graph g;
		auto x = *g.input("a", {n, n});
		auto w = *g.constant("b", {n, n},
				     std::vector<float>(size_t(n) * n, 1.0f / float(n)));
		auto y = *g.dense(x, w);
		(void)g.output(y, "c");
		std::vector<float> in(size_t(n) * n, 0.5f);
		double flop = 2.0 * n * n * n;

		auto cg = accel::CompiledGraph::compile(g, ctx);
		if (!ok(cg))
			return (void)failed("gemm");
		auto ref = accel::CompiledGraph::compile_reference(g);
		if (!ok(ref))
			return (void)failed("gemm");
		(void)cg->set_input(x, in);
		(void)ref->set_input(x, in);
		auto on_device = [&] {
			auto t0 = Clock::now();
			return ok(cg->run(std::chrono::seconds(600))) ? ns_since(t0) : failed_ns;
		};
		/* The engine alone, in this process, on the same problem. */
		auto engine = [&] {
			auto t0 = Clock::now();
			return ok(ref->run()) ? ns_since(t0) : failed_ns;
		};
		if (!std::isfinite(on_device()))
			return (void)failed("gemm"); /* warm up: page faults, upload */
		Pair p = alternate(o.gemm_runs, on_device, engine);
		if (failed("gemm"))
			return;
		Row r(strf("GEMM %ux%ux%u fp32 through the stack", n, n, n), flop / p.value,
		      "GFLOP/s");
		r.target_min = 0.8;
		r.baseline_name = "reference engine alone (this CPU)";
		r.baseline = flop / p.baseline;
		rows.push_back(r);
		if (o.host_engine_gflops > 0) {
			Row h = r;
			h.name += " (vs host)";
			h.baseline_name = "engine alone on the host (given)";
			h.baseline = o.host_engine_gflops;
			rows.push_back(h);
		}
	}
};

} // namespace

int main(int argc, char **argv)
{
	Options o;
	enum { opt_gemm_size = 256, opt_gemm_runs, opt_host };
	static const struct option longopts[] = {
		{"device", required_argument, nullptr, 'd'},
		{"iterations", required_argument, nullptr, 'n'},
		{"json", no_argument, nullptr, 'j'},
		{"help", no_argument, nullptr, 'h'},
		{"gemm-size", required_argument, nullptr, opt_gemm_size},
		{"gemm-runs", required_argument, nullptr, opt_gemm_runs},
		{"host-engine-gflops", required_argument, nullptr, opt_host},
		{nullptr, 0, nullptr, 0},
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "d:n:jh", longopts, nullptr)) != -1) {
		std::string arg = optarg ? optarg : "";
		switch (c) {
		case 'd':
			o.device = arg;
			break;
		case 'n':
			if (!parse_u64(arg, o.iterations) || o.iterations < 10)
				return usage_error(tool, "bad --iterations '" + arg + "' (>= 10)");
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return exit_ok;
		case opt_gemm_size:
			if (!parse_u64(arg, o.gemm_size) || !o.gemm_size || o.gemm_size > 8192)
				return usage_error(tool, "bad --gemm-size '" + arg + "'");
			break;
		case opt_gemm_runs:
			if (!parse_u64(arg, o.gemm_runs) || !o.gemm_runs)
				return usage_error(tool, "bad --gemm-runs '" + arg + "'");
			break;
		case opt_host:
			if (!parse_double(arg, o.host_engine_gflops))
				return usage_error(tool, "bad --host-engine-gflops '" + arg + "'");
			break;
		default:
			return usage_error(tool, std::string("unknown or incomplete option '") +
							 argv[optind - 1] + "'");
		}
	}
	const std::vector<std::string> all = {"latency", "throughput", "bo",  "dmabuf",
					      "submit",	 "copy",       "gemm"};
	for (int i = optind; i < argc; i++) {
		std::string b = argv[i];
		if (b == "all") {
			o.benches = all;
			continue;
		}
		if (std::find(all.begin(), all.end(), b) == all.end())
			return usage_error(tool, "unknown benchmark '" + b + "'");
		o.benches.push_back(b);
	}
	if (o.benches.empty())
		o.benches = all;

	Bench bench(o);
	auto dev = open_device(o.device);
	if (!dev)
		return report(tool, dev.error());
	if (auto r = dev->require_refnpu(); !r)
		return report(tool, r.error());
	bench.dev = *dev;
	auto ctx = accel::Context::create(*dev);
	if (!ctx)
		return report(tool, ctx.error());
	bench.ctx = *ctx;
	bench.have_vgem = bench.vgem.open();
	if (!bench.have_vgem)
		std::fprintf(stderr,
			     "%s: no vgem device: baselines that need it are missing "
			     "(modprobe vgem)\n",
			     tool);

	bench.syscall_floor();
	for (const auto &b : o.benches) {
		if (b == "latency")
			bench.latency();
		else if (b == "throughput")
			bench.throughput();
		else if (b == "bo")
			bench.bo();
		else if (b == "dmabuf")
			bench.dmabuf();
		else if (b == "submit")
			bench.submit();
		else if (b == "copy")
			bench.copy();
		else if (b == "gemm")
			bench.gemm();
	}

	if (o.json) {
		Json j = Json::object();
		j.set("device", dev->node());
		j.set("driver", dev->version().name);
		j.set("vgem", bench.have_vgem);
		Json a = Json::array();
		for (const auto &r : bench.rows) {
			Json rj = Json::object();
			rj.set("name", r.name);
			rj.set("value", r.value);
			rj.set("unit", r.unit);
			if (!r.baseline_name.empty()) {
				rj.set("baseline", r.baseline_name);
				rj.set("baseline_value", r.baseline);
			}
			rj.set("ratio", r.has_ratio() ? Json(r.ratio()) : Json());
			if (!r.target().empty())
				rj.set("target", r.target());
			auto met = r.met();
			rj.set("met", met ? Json(*met) : Json());
			a.push(rj);
		}
		j.set("results", a);
		Json errs = Json::array();
		for (const auto &e : bench.errors)
			errs.push(e);
		j.set("errors", errs);
		std::printf("%s\n", j.dump(2).c_str());
	} else {
		std::printf("%s (%s)%s\n", dev->node().c_str(), dev->version().name.c_str(),
			    bench.have_vgem ? "" : "  [no vgem: baselines missing]");
		std::printf("%-40s %14s   %-36s %12s %7s %9s\n", "benchmark", "value",
			    "baseline (same run)", "", "ratio", "target");
		for (const auto &r : bench.rows) {
			std::string val = strf("%.3g %s", r.value, r.unit.c_str());
			std::string base = r.baseline_name.empty() ? "" : r.baseline_name;
			std::string bval = std::isfinite(r.baseline)
						   ? strf("%.3g %s", r.baseline, r.unit.c_str())
						   : (r.baseline_name.empty() ? "" : "-");
			std::string ratio = r.has_ratio() ? strf("%.2f", r.ratio()) : "";
			auto met = r.met();
			std::string tgt = r.target();
			if (met)
				tgt += *met ? " ok" : " MISS";
			std::printf("%-40s %14s   %-36s %12s %7s %9s\n", r.name.c_str(),
				    val.c_str(), base.c_str(), bval.c_str(), ratio.c_str(),
				    tgt.c_str());
		}
	}
	return bench.errors.empty() ? exit_ok : exit_failed;
}
