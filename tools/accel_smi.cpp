// SPDX-License-Identifier: MIT
/*
 * accel-smi: list compute-accelerator devices, show what their driver
 * reports, watch their use, check that they work and reset them.
 *
 * 'list' works for every drivers/accel driver; the other commands use
 * refnpu's uAPI where they need more than the DRM core.  Every command
 * builds one data model, printed as text or, with --json, as JSON.
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <accel/accel.h>

#include "common.h"
#include "fdinfo.h"
#include "json.h"

using namespace tools;
using accel::Errc;

namespace {

const char *const tool = "accel-smi";

struct Options {
	bool json = false;
	bool csv = false;
	std::string device = "0";
	double interval = 1.0;
	uint64_t count = 0; /* 0: until interrupted (top) */
	bool count_set = false;
};

void usage(FILE *f)
{
	std::fprintf(f,
		     "usage: accel-smi [OPTIONS] [COMMAND [DEVICE]]\n"
		     "\n"
		     "Commands:\n"
		     "  list              every accel device: index, driver, bus address, node\n"
		     "                    (the default; works for any drivers/accel driver)\n"
		     "  info [DEVICE]     driver and uAPI versions, capabilities, queues,\n"
		     "                    address space and memory limits\n"
		     "  top [DEVICE]      per-queue and per-process utilisation from fdinfo,\n"
		     "                    refreshed every --interval seconds\n"
		     "  ps [DEVICE]       processes holding accel devices open, with their\n"
		     "                    engine time and memory\n"
		     "  validate [DEVICE] quick self-test: null job, copy, GEMM against the\n"
		     "                    CPU reference, MMU fault reporting, dma-buf round\n"
		     "                    trip, fence export; one PASS/FAIL/SKIP line each\n"
		     "  reset [DEVICE]    reset the device through debugfs (root) and wait\n"
		     "                    until the driver reports the reset done\n"
		     "\n"
		     "DEVICE is an index (0), a node (/dev/accel/accel0), accelN or a PCI\n"
		     "address (0000:00:04.0); default 0.\n"
		     "\n"
		     "Options:\n"
		     "  -j, --json            machine-readable JSON (top: one object per line)\n"
		     "  -c, --csv             top: CSV rows instead of a table\n"
		     "  -d, --device DEVICE   device for info/top/ps/validate/reset\n"
		     "  -i, --interval SECS   top: refresh interval (default 1)\n"
		     "  -n, --count N         top: number of refreshes (default: until\n"
		     "                        interrupted on a terminal, 1 otherwise)\n"
		     "  -h, --help            this help\n"
		     "\n"
		     "%s",
		     exit_codes_help);
}

/* ---------------------------------------------------------------- list */

Json device_info_json(const accel::DeviceInfo &d)
{
	Json o = Json::object();
	o.set("index", d.index);
	o.set("node", d.node);
	o.set("driver", d.driver);
	o.set("bus", d.bus);
	o.set("address", d.bus_address);
	if (d.bus == "pci") {
		o.set("pci_vendor", strf("0x%04x", d.pci_vendor));
		o.set("pci_device", strf("0x%04x", d.pci_device));
	}
	o.set("node_exists", d.node_exists);
	o.set("group", d.node_group);
	o.set("accessible", d.accessible);
	return o;
}

int cmd_list(const Options &o)
{
	auto devs = accel::enumerate_devices();
	if (!devs)
		return report(tool, devs.error());
	if (o.json) {
		Json a = Json::array();
		for (const auto &d : *devs)
			a.push(device_info_json(d));
		std::printf("%s\n", a.dump(2).c_str());
	} else {
		for (const auto &d : *devs)
			std::printf("accel%-3u %-10s %-8s %-14s %s%s\n", d.index,
				    d.driver.empty() ? "-" : d.driver.c_str(), d.bus.c_str(),
				    d.bus_address.c_str(), d.node.c_str(),
				    !d.node_exists ? "  (no node)"
				    : !d.accessible
					    ? ("  (no access: group " + d.node_group + ")").c_str()
					    : "");
	}
	if (devs->empty()) {
		std::fprintf(stderr,
			     "%s: no accel devices in /sys/class/accel (is the driver "
			     "loaded? try 'modprobe refnpu')\n",
			     tool);
		return exit_no_device;
	}
	return exit_ok;
}

/* ---------------------------------------------------------------- info */

const char *op_name(int op)
{
	switch (op) {
	case REFNPU_OP_NOP:
		return "nop";
	case REFNPU_OP_COPY:
		return "copy";
	case REFNPU_OP_FILL:
		return "fill";
	case REFNPU_OP_GEMM:
		return "gemm";
	case REFNPU_OP_EWISE:
		return "ewise";
	case REFNPU_OP_ACT:
		return "act";
	case REFNPU_OP_SOFTMAX:
		return "softmax";
	case REFNPU_OP_LAYERNORM:
		return "layernorm";
	case REFNPU_OP_CONV2D:
		return "conv2d";
	case REFNPU_OP_POOL2D:
		return "pool2d";
	default:
		return nullptr;
	}
}

Json bits(uint64_t v, const std::vector<std::pair<uint64_t, const char *>> &names)
{
	Json a = Json::array();
	uint64_t known = 0;
	for (const auto &[bit, name] : names) {
		known |= bit;
		if (v & bit)
			a.push(name);
	}
	for (int i = 0; i < 64; i++)
		if ((v & ~known) & (1ULL << i))
			a.push(strf("bit%d", i));
	return a;
}

Json ops_json(uint64_t ops)
{
	Json a = Json::array();
	for (int i = 0; i < 64; i++)
		if (ops & (1ULL << i))
			a.push(op_name(i) ? std::string(op_name(i)) : strf("op%d", i));
	return a;
}

std::string join(const Json &a)
{
	std::string s;
	for (const auto &v : a.as_array())
		s += (s.empty() ? "" : " ") + v.as_string();
	return s.empty() ? "-" : s;
}

uint64_t meminfo(const char *key)
{
	std::ifstream f("/proc/meminfo");
	std::string k;
	uint64_t v;
	std::string unit;
	while (f >> k >> v >> unit)
		if (k == std::string(key) + ":")
			return v * 1024;
	return 0;
}

int cmd_info(const Options &o)
{
	auto dev = open_device(o.device);
	if (!dev)
		return report(tool, dev.error());
	Json j = Json::object();
	j.set("node", dev->node());
	const auto &v = dev->version();
	j.set("driver", v.name);
	j.set("driver_version", strf("%d.%d.%d", v.major, v.minor, v.patch));
	j.set("description", v.description);
	auto devs = accel::enumerate_devices();
	if (devs)
		for (const auto &d : *devs)
			if (d.node == dev->node()) {
				j.set("bus", d.bus);
				j.set("address", d.bus_address);
			}
	if (!dev->is_refnpu()) {
		auto r = dev->require_refnpu();
		j.set("refnpu", false);
		j.set("note", r ? "" : r.error().message());
	} else {
		auto p = dev->properties();
		if (!p)
			return report(tool, p.error());
		auto opt = [](const std::optional<uint64_t> &x) { return x ? Json(*x) : Json(); };
		j.set("refnpu", true);
		if (p->driver_version)
			j.set("uapi_version",
			      strf("%llu.%llu", (unsigned long long)(*p->driver_version >> 16),
				   (unsigned long long)(*p->driver_version & 0xffff)));
		if (p->hw_version)
			j.set("hw_version",
			      strf("%llu.%llu", (unsigned long long)(*p->hw_version >> 16),
				   (unsigned long long)(*p->hw_version & 0xffff)));
		j.set("capabilities", bits(p->capabilities.value_or(0),
					   {{accel::cap_timeline_syncobj, "timeline_syncobj"},
					    {accel::cap_prime, "prime"},
					    {accel::cap_virtual, "virtual"}}));
		j.set("hw_capabilities",
		      bits(p->hw_caps.value_or(0), {{REFNPU_CAP_FP32, "fp32"},
						    {REFNPU_CAP_FP16, "fp16"},
						    {REFNPU_CAP_BF16, "bf16"},
						    {REFNPU_CAP_INT8, "int8"},
						    {REFNPU_CAP_CONV, "conv"},
						    {REFNPU_CAP_WATCHDOG, "watchdog"},
						    {REFNPU_CAP_FAULT_INJECT, "fault_inject"}}));
		j.set("ops", ops_json(p->ops.value_or(0)));
		j.set("queues", opt(p->num_queues));
		j.set("va_start", opt(p->va_start));
		j.set("va_size", opt(p->va_size));
		j.set("page_sizes", opt(p->page_sizes));
		j.set("max_bo_size", opt(p->max_bo_size));
		j.set("timestamp_hz", opt(p->timestamp_freq));
		j.set("max_submit_bos", opt(p->max_submit_bos));
		j.set("max_submit_syncs", opt(p->max_submit_syncs));
		j.set("job_timeout_ms", opt(p->job_timeout_ms));
		j.set("hang_limit", opt(p->hang_limit));
		j.set("context_banned", opt(p->context_banned));
	}
	Json mem = Json::object();
	mem.set("kind", "system RAM (shmem-backed buffers)");
	mem.set("total", meminfo("MemTotal"));
	mem.set("available", meminfo("MemAvailable"));
	j.set("memory", mem);

	if (o.json) {
		std::printf("%s\n", j.dump(2).c_str());
		return exit_ok;
	}
	std::printf("%s: %s %s (%s)\n", dev->node().c_str(), v.name.c_str(),
		    j.get("driver_version")->as_string().c_str(), v.description.c_str());
	if (const Json *b = j.get("bus"))
		std::printf("  bus:              %s %s\n", b->as_string().c_str(),
			    j.get("address")->as_string().c_str());
	if (!dev->is_refnpu()) {
		std::printf("  %s\n", j.get("note")->as_string().c_str());
		return exit_ok;
	}
	auto num = [&](const char *k) {
		const Json *x = j.get(k);
		return x && !x->is_null() ? std::to_string(x->as_int()) : std::string("-");
	};
	auto hex = [&](const char *k) {
		const Json *x = j.get(k);
		return x && !x->is_null() ? strf("0x%llx", (unsigned long long)x->as_int())
					  : std::string("-");
	};
	auto bytes = [&](const char *k) {
		const Json *x = j.get(k);
		return x && !x->is_null() ? human_bytes(uint64_t(x->as_int())) : std::string("-");
	};
	std::printf("  uAPI version:     %s\n",
		    j.get("uapi_version") ? j.get("uapi_version")->as_string().c_str() : "-");
	std::printf("  hardware version: %s\n",
		    j.get("hw_version") ? j.get("hw_version")->as_string().c_str() : "-");
	std::printf("  capabilities:     %s\n", join(*j.get("capabilities")).c_str());
	std::printf("  hw capabilities:  %s\n", join(*j.get("hw_capabilities")).c_str());
	std::printf("  operations:       %s\n", join(*j.get("ops")).c_str());
	std::printf("  queues:           %s\n", num("queues").c_str());
	std::printf("  device VA:        %s + %s\n", hex("va_start").c_str(),
		    bytes("va_size").c_str());
	std::printf("  page sizes:       %s\n", hex("page_sizes").c_str());
	std::printf("  max buffer:       %s\n", bytes("max_bo_size").c_str());
	std::printf("  submit limits:    %s buffers, %s syncs\n", num("max_submit_bos").c_str(),
		    num("max_submit_syncs").c_str());
	std::printf("  job timeout:      %s ms (context banned after %s)\n",
		    num("job_timeout_ms").c_str(), num("hang_limit").c_str());
	std::printf("  timestamps:       %s Hz\n", num("timestamp_hz").c_str());
	std::printf("  memory:           %s, %s available of %s\n",
		    mem.get("kind")->as_string().c_str(),
		    human_bytes(uint64_t(mem.get("available")->as_int())).c_str(),
		    human_bytes(uint64_t(mem.get("total")->as_int())).c_str());
	return exit_ok;
}

/* ----------------------------------------------------------- ps / top */

/* Node filter: empty spec = every device, else the device's node. */
accel::Result<std::string> node_filter(const std::string &spec, bool explicit_device)
{
	if (!explicit_device)
		return std::string();
	if (!spec.empty() && spec[0] == '/')
		return spec;
	uint64_t idx;
	if (parse_u64(spec, idx))
		return "/dev/accel/accel" + std::to_string(idx);
	if (spec.rfind("accel", 0) == 0)
		return "/dev/accel/" + spec;
	auto devs = accel::enumerate_devices();
	if (!devs)
		return std::move(devs).error();
	for (const auto &d : *devs)
		if (d.bus_address == spec || d.bus_address.ends_with(":" + spec))
			return d.node;
	return accel::Error(Errc::no_device, "no accel device '" + spec + "'");
}

std::vector<DrmClient> clients_of(const std::string &node, unsigned *unreadable)
{
	auto all = scan_accel_clients(unreadable);
	std::vector<DrmClient> out;
	for (auto &c : all)
		if (node.empty() || c.node == node)
			out.push_back(std::move(c));
	return out;
}

uint64_t total_ns(const DrmClient &c)
{
	uint64_t t = 0;
	for (const auto &[k, v] : c.engine_ns)
		t += v;
	return t;
}

uint64_t mem_total(const DrmClient &c)
{
	uint64_t t = 0;
	for (const auto &[k, v] : c.memory)
		if (k.rfind("total-", 0) == 0)
			t += v;
	return t;
}

uint64_t mem_resident(const DrmClient &c)
{
	uint64_t t = 0;
	for (const auto &[k, v] : c.memory)
		if (k.rfind("resident-", 0) == 0)
			t += v;
	return t;
}

void warn_unreadable(unsigned n)
{
	if (n)
		std::fprintf(stderr,
			     "%s: %u processes could not be inspected (run as root to see them)\n",
			     tool, n);
}

int cmd_ps(const Options &o, bool explicit_device)
{
	auto node = node_filter(o.device, explicit_device);
	if (!node)
		return report(tool, node.error());
	unsigned unreadable = 0;
	auto clients = clients_of(*node, &unreadable);
	if (o.json) {
		Json a = Json::array();
		for (const auto &c : clients) {
			Json j = Json::object();
			j.set("pid", long(c.pid));
			j.set("comm", c.comm);
			j.set("node", c.node);
			j.set("driver", c.driver);
			j.set("client_id", c.client_id);
			j.set("fds", c.fds);
			Json e = Json::object();
			for (const auto &[k, v] : c.engine_ns)
				e.set(k, v);
			j.set("engine_ns", e);
			Json m = Json::object();
			for (const auto &[k, v] : c.memory)
				m.set(k, v);
			j.set("memory", m);
			a.push(j);
		}
		std::printf("%s\n", a.dump(2).c_str());
	} else {
		std::printf("%7s %-16s %-18s %6s %12s %10s %10s\n", "PID", "COMMAND", "DEVICE",
			    "CLIENT", "ENGINE-TIME", "MEMORY", "RESIDENT");
		for (const auto &c : clients)
			std::printf("%7d %-16s %-18s %6llu %12s %10s %10s\n", int(c.pid),
				    c.comm.c_str(), c.node.c_str(), (unsigned long long)c.client_id,
				    human_ns(double(total_ns(c))).c_str(),
				    human_bytes(mem_total(c)).c_str(),
				    human_bytes(mem_resident(c)).c_str());
	}
	warn_unreadable(unreadable);
	return exit_ok;
}

int cmd_top(const Options &o, bool explicit_device)
{
	auto node = node_filter(o.device, explicit_device);
	if (!node)
		return report(tool, node.error());
	uint64_t count = o.count_set ? o.count : (isatty(STDOUT_FILENO) ? 0 : 1);
	unsigned unreadable = 0;
	auto key = [](const DrmClient &c) {
		return std::to_string(c.pid) + "/" + c.node + "/" + std::to_string(c.client_id);
	};
	std::map<std::string, DrmClient> prev;
	for (const auto &c : clients_of(*node, &unreadable))
		prev[key(c)] = c;
	auto t_prev = Clock::now();
	if (o.csv)
		std::printf("time_s,pid,comm,node,client_id,engine,busy_pct\n");
	double t_total = 0;
	for (uint64_t it = 0; count == 0 || it < count; it++) {
		std::this_thread::sleep_for(std::chrono::duration<double>(o.interval));
		auto cur = clients_of(*node, &unreadable);
		auto now = Clock::now();
		double wall = std::chrono::duration<double, std::nano>(now - t_prev).count();
		t_total += wall / 1e9;
		t_prev = now;
		std::map<std::string, double> per_queue;
		std::map<std::string, DrmClient> next;
		struct Row {
			const DrmClient *c;
			std::map<std::string, double> pct;
		};
		std::vector<Row> rows;
		for (const auto &c : cur) {
			Row r{&c, {}};
			auto p = prev.find(key(c));
			for (const auto &[eng, ns] : c.engine_ns) {
				uint64_t before = 0;
				if (p != prev.end() && p->second.engine_ns.count(eng))
					before = p->second.engine_ns.at(eng);
				double pct =
					ns >= before ? double(ns - before) / wall * 100.0 : 0.0;
				r.pct[eng] = pct;
				per_queue[c.node + " " + eng] += pct;
			}
			rows.push_back(r);
			next[key(c)] = c;
		}
		if (o.csv) {
			for (const auto &r : rows)
				for (const auto &[eng, pct] : r.pct)
					std::printf("%.3f,%d,%s,%s,%llu,%s,%.2f\n", t_total,
						    int(r.c->pid), r.c->comm.c_str(),
						    r.c->node.c_str(),
						    (unsigned long long)r.c->client_id, eng.c_str(),
						    pct);
		} else if (o.json) {
			Json j = Json::object();
			j.set("time_s", t_total);
			Json q = Json::object();
			for (const auto &[k, v] : per_queue)
				q.set(k, v);
			j.set("queues_busy_pct", q);
			Json procs = Json::array();
			for (const auto &r : rows) {
				Json pj = Json::object();
				pj.set("pid", long(r.c->pid));
				pj.set("comm", r.c->comm);
				pj.set("node", r.c->node);
				pj.set("client_id", r.c->client_id);
				Json e = Json::object();
				for (const auto &[eng, pct] : r.pct)
					e.set(eng, pct);
				pj.set("busy_pct", e);
				pj.set("memory", mem_total(*r.c));
				procs.push(pj);
			}
			j.set("processes", procs);
			std::printf("%s\n", j.dump().c_str());
		} else {
			if (count != 1 && isatty(STDOUT_FILENO))
				std::printf("\033[H\033[2J");
			std::printf("accel-smi top  interval %.1fs  %zu clients\n\n", o.interval,
				    rows.size());
			std::printf("%-30s %7s\n", "QUEUE", "BUSY");
			for (const auto &[k, v] : per_queue)
				std::printf("%-30s %6.1f%%\n", k.c_str(), v);
			std::printf("\n%7s %-16s %-18s %6s %-10s %7s %10s\n", "PID", "COMMAND",
				    "DEVICE", "CLIENT", "QUEUE", "BUSY", "MEMORY");
			for (const auto &r : rows)
				for (const auto &[eng, pct] : r.pct)
					std::printf("%7d %-16s %-18s %6llu %-10s %6.1f%% %10s\n",
						    int(r.c->pid), r.c->comm.c_str(),
						    r.c->node.c_str(),
						    (unsigned long long)r.c->client_id, eng.c_str(),
						    pct, human_bytes(mem_total(*r.c)).c_str());
		}
		std::fflush(stdout);
		prev = std::move(next);
	}
	warn_unreadable(unreadable);
	return exit_ok;
}

/* ------------------------------------------------------------ validate */

struct Check {
	std::string name;
	std::string result; /* PASS, FAIL, SKIP */
	std::string detail;
	double ms = 0;
};

std::vector<float> random_floats(size_t n, unsigned seed)
{
	std::mt19937 rng(seed);
	std::uniform_real_distribution<float> d(-1.0f, 1.0f);
	std::vector<float> v(n);
	for (auto &x : v)
		x = d(rng);
	return v;
}

const auto job_timeout = std::chrono::seconds(30);

accel::Result<std::string> check_null_job(accel::Context &ctx)
{
	accel::CommandEncoder e;
	(void)e.nop();
	auto f = ctx.submit(e);
	if (!f)
		return std::move(f).error();
	if (auto r = f->wait_for(job_timeout); !r)
		return std::move(r).error();
	return std::string("NOP job completed");
}

accel::Result<std::string> check_copy(const accel::Device &dev, accel::Context &ctx)
{
	const size_t n = 64 * 1024;
	auto src = dev.create_buffer(n);
	auto dst = dev.create_buffer(n);
	if (!src)
		return std::move(src).error();
	if (!dst)
		return std::move(dst).error();
	auto ms = src->map();
	auto md = dst->map();
	if (!ms)
		return std::move(ms).error();
	if (!md)
		return std::move(md).error();
	auto s = ms->as<uint32_t>();
	for (size_t i = 0; i < s.size(); i++)
		s[i] = uint32_t(i * 2654435761u);
	std::memset(md->data(), 0xa5, md->size());
	accel::CommandEncoder e;
	if (auto r = e.copy_bytes(dst->memory(), 0, src->memory(), 0, n); !r)
		return std::move(r).error();
	auto f = ctx.submit(e);
	if (!f)
		return std::move(f).error();
	if (auto r = f->wait_for(job_timeout); !r)
		return std::move(r).error();
	if (std::memcmp(md->data(), ms->data(), n))
		return accel::Error(Errc::job_failed, "the copied bytes differ from the source");
	return strf("%zu bytes copied and verified", n);
}

accel::Result<std::string> check_gemm(accel::Context &ctx)
{
	const uint32_t m = 64, k = 96, nn = 80;
	auto a = random_floats(size_t(m) * k, 1), b = random_floats(size_t(k) * nn, 2);
	auto bias = random_floats(nn, 3);
	accel::Graph g;
	auto x = *g.input("a", {m, k});
	auto y = *g.dense(x, *g.constant("b", {k, nn}, b), *g.constant("bias", {nn}, bias));
	(void)g.output(y, "c");
	auto dg = accel::CompiledGraph::compile(g, ctx);
	if (!dg)
		return std::move(dg).error();
	auto rg = accel::CompiledGraph::compile_reference(g);
	if (!rg)
		return std::move(rg).error();
	(void)dg->set_input(x, a);
	(void)rg->set_input(x, a);
	if (auto r = dg->run(job_timeout); !r)
		return std::move(r).error();
	if (auto r = rg->run(); !r)
		return std::move(r).error();
	auto got = *dg->read(y), want = *rg->read(y);
	for (uint32_t i = 0; i < m; i++)
		for (uint32_t j = 0; j < nn; j++) {
			double abs_sum = std::fabs(bias[j]);
			for (uint32_t kk = 0; kk < k; kk++)
				abs_sum += std::fabs(double(a[i * k + kk]) * b[kk * nn + j]);
			double tol = accel::gemm_tolerance(k, abs_sum);
			double d = std::fabs(double(got[i * nn + j]) - want[i * nn + j]);
			if (!(d <= tol))
				return accel::Error(Errc::job_failed,
						    strf("C[%u][%u] = %.9g, reference %.9g "
							 "(difference %.3g above tolerance %.3g)",
							 i, j, got[i * nn + j], want[i * nn + j], d,
							 tol));
		}
	return strf("%ux%ux%u fp32 GEMM matches the reference engine", m, k, nn);
}

accel::Result<std::string> check_fault(const accel::Device &dev, accel::Context &ctx)
{
	/* A copy from an address no buffer covers must fail the job, not the device. */
	auto dst = dev.create_buffer(4096);
	if (!dst)
		return std::move(dst).error();
	accel::CommandEncoder e;
	accel::Memory bogus{0, REFNPU_VA_LIMIT - (1ULL << 32), 4096};
	if (auto r = e.copy_bytes(dst->memory(), 0, bogus, 0, 4096); !r)
		return std::move(r).error();
	auto f = ctx.submit(e);
	if (!f)
		return std::move(f).error();
	auto r = f->wait_for(job_timeout);
	if (r)
		return accel::Error(Errc::job_failed,
				    "a job reading an unmapped address completed successfully");
	if (r.error().errc() != Errc::job_failed)
		return std::move(r).error();
	/* The device must still run work afterwards. */
	auto again = check_null_job(ctx);
	if (!again)
		return std::move(again).error().context("after the fault");
	return "unmapped access reported (" + r.error().message() + "), device still runs jobs";
}

accel::Result<std::string> check_dmabuf(const accel::Device &dev)
{
	if (!dev.has_capability(accel::cap_prime))
		return accel::Error(Errc::unsupported, "the driver does not report PRIME");
	auto buf = dev.create_buffer(8192);
	if (!buf)
		return std::move(buf).error();
	size_t handles = dev.handle_count();
	auto fd = buf->export_dmabuf();
	if (!fd)
		return std::move(fd).error();
	auto imp1 = dev.import_dmabuf(fd->get());
	if (!imp1)
		return std::move(imp1).error();
	auto imp2 = dev.import_dmabuf(fd->get());
	if (!imp2)
		return std::move(imp2).error();
	if (imp1->handle() != buf->handle() || imp2->handle() != buf->handle() ||
	    dev.handle_count() != handles)
		return accel::Error(Errc::job_failed, "re-importing an own buffer created a new "
						      "GEM handle (no deduplication)");
	auto m1 = buf->map();
	if (!m1)
		return std::move(m1).error();
	std::memcpy(m1->data(), "refnpu", 7);
	/* Drop the original first: the imports keep the handle alive. */
	*buf = accel::Buffer();
	auto m2 = imp2->map();
	if (!m2)
		return std::move(m2).error();
	if (std::memcmp(m2->data(), "refnpu", 7))
		return accel::Error(Errc::job_failed, "the imported buffer shows other bytes");
	*imp1 = accel::Buffer();
	*imp2 = accel::Buffer();
	if (dev.handle_count() != handles - 1)
		return accel::Error(Errc::job_failed, "the GEM handle was not closed with the "
						      "last reference");
	return std::string("export, double import (one handle), any close order");
}

accel::Result<std::string> check_fence(const accel::Device &, accel::Context &ctx)
{
	accel::CommandEncoder e;
	(void)e.nop();
	auto f = ctx.submit(e);
	if (!f)
		return std::move(f).error();
	auto fd = f->poll_fd();
	if (!fd)
		return std::move(fd).error();
	struct pollfd p = {fd->get(), POLLIN, 0};
	int n = poll(&p, 1, 30000);
	if (n != 1 || !(p.revents & POLLIN))
		return accel::Error(Errc::timeout, "the fence's sync_file did not poll readable");
	if (auto r = f->status(); !r)
		return std::move(r).error();
	auto imported = accel::Fence::import_sync_file(ctx.device(), fd->get());
	if (!imported)
		return std::move(imported).error();
	if (auto r = imported->wait_for(job_timeout); !r)
		return std::move(r).error();
	return std::string("sync_file export polls readable, imports and waits");
}

int cmd_validate(const Options &o)
{
	std::vector<Check> checks;
	auto run = [&](const std::string &name, auto fn) {
		auto t0 = Clock::now();
		accel::Result<std::string> r = fn();
		Check c{name, "PASS", "", ns_since(t0) / 1e6};
		if (r) {
			c.detail = *r;
		} else {
			c.result = r.error().errc() == Errc::unsupported ? "SKIP" : "FAIL";
			c.detail = r.error().what();
		}
		if (!o.json)
			std::printf("%-4s %-10s %8.1f ms  %s\n", c.result.c_str(), c.name.c_str(),
				    c.ms, c.detail.c_str());
		std::fflush(stdout);
		checks.push_back(c);
		return c.result == "PASS";
	};

	accel::Device dev;
	accel::Context ctx;
	bool ok = run("open", [&]() -> accel::Result<std::string> {
		auto d = open_device(o.device);
		if (!d)
			return std::move(d).error();
		dev = *d;
		if (auto r = dev.require_refnpu(); !r)
			return std::move(r).error();
		auto c = accel::Context::create(dev);
		if (!c)
			return std::move(c).error();
		ctx = *c;
		return dev.node() + ": " + dev.version().name + " " +
		       std::to_string(dev.version().major) + "." +
		       std::to_string(dev.version().minor);
	});
	int rc = exit_ok;
	if (!ok) {
		/* Nothing else can run; report why with the matching exit code. */
		auto d = open_device(o.device);
		if (!d)
			rc = exit_code(d.error());
		else if (auto r = d->require_refnpu(); !r)
			rc = exit_code(r.error());
		else
			rc = exit_failed;
	} else {
		run("null-job", [&] { return check_null_job(ctx); });
		run("copy", [&] { return check_copy(dev, ctx); });
		run("gemm", [&] { return check_gemm(ctx); });
		run("mmu-fault", [&] { return check_fault(dev, ctx); });
		run("dma-buf", [&] { return check_dmabuf(dev); });
		run("fence", [&] { return check_fence(dev, ctx); });
		for (const auto &c : checks)
			if (c.result == "FAIL")
				rc = exit_failed;
	}
	unsigned pass = 0, fail = 0, skip = 0;
	for (const auto &c : checks)
		(c.result == "PASS" ? pass : c.result == "FAIL" ? fail : skip)++;
	if (o.json) {
		Json j = Json::object();
		j.set("device", dev.is_valid() ? dev.node() : o.device);
		Json a = Json::array();
		for (const auto &c : checks) {
			Json cj = Json::object();
			cj.set("name", c.name);
			cj.set("result", c.result);
			cj.set("ms", c.ms);
			cj.set("detail", c.detail);
			a.push(cj);
		}
		j.set("checks", a);
		j.set("passed", pass);
		j.set("failed", fail);
		j.set("skipped", skip);
		j.set("ok", rc == exit_ok);
		std::printf("%s\n", j.dump(2).c_str());
	} else {
		std::printf("%s: %u passed, %u failed, %u skipped\n",
			    rc == exit_ok ? "PASS" : "FAIL", pass, fail, skip);
	}
	return rc;
}

/* --------------------------------------------------------------- reset */

accel::Result<uint64_t> read_resets(const std::string &dir)
{
	std::ifstream f(dir + "/counters");
	if (!f)
		return accel::Error(Errc::unsupported, "cannot read " + dir + "/counters");
	std::string k;
	uint64_t v;
	while (f >> k >> v)
		if (k == "device_resets")
			return v;
	return accel::Error(Errc::unsupported, dir + "/counters has no device_resets");
}

int cmd_reset(const Options &o)
{
	auto dev = open_device(o.device);
	if (!dev)
		return report(tool, dev.error());
	if (!dev->is_refnpu())
		return report(tool, dev->require_refnpu().error());
	std::string address;
	auto devs = accel::enumerate_devices();
	if (devs)
		for (const auto &d : *devs)
			if (d.node == dev->node())
				address = d.bus_address;
	const std::string root = "/sys/kernel/debug/accel";
	if (access("/sys/kernel/debug", X_OK) != 0 || access(root.c_str(), F_OK) != 0) {
		if (errno == EACCES)
			return report(tool, accel::Error(Errc::permission_denied,
							 "debugfs is only accessible to root: run "
							 "'sudo accel-smi reset'"));
		return report(tool,
			      accel::Error(Errc::unsupported,
					   root + " does not exist: mount debugfs "
						  "(mount -t debugfs none /sys/kernel/debug)"));
	}
	std::string dir = root + "/" + address;
	if (address.empty() || access((dir + "/reset").c_str(), F_OK) != 0)
		return report(tool, accel::Error(Errc::unsupported,
						 "no reset file under " + dir +
							 " (driver without debugfs reset?)"));
	auto before = read_resets(dir);
	int fd = ::open((dir + "/reset").c_str(), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return report(tool, accel::Error::from_errno(errno, "opening " + dir + "/reset"));
	ssize_t n = write(fd, "1\n", 2);
	int err = errno;
	close(fd);
	if (n != 2)
		return report(tool, accel::Error::from_errno(err, "writing " + dir + "/reset"));
	/* The reset runs asynchronously: wait until the driver counts it. */
	if (!before) {
		std::fprintf(stderr,
			     "%s: reset requested, but completion cannot be confirmed (%s)\n", tool,
			     before.error().message().c_str());
		return exit_failed;
	}
	auto t0 = Clock::now();
	while (ns_since(t0) < 30e9) {
		auto now = read_resets(dir);
		if (now && *now > *before) {
			double ms = ns_since(t0) / 1e6;
			if (o.json)
				std::printf("{\"device\":%s,\"reset\":true,\"device_resets\":%llu,"
					    "\"ms\":%.3f}\n",
					    json_quote(dev->node()).c_str(),
					    (unsigned long long)*now, ms);
			else
				std::printf("%s: reset done in %.1f ms (%llu resets so far)\n",
					    dev->node().c_str(), ms, (unsigned long long)*now);
			return exit_ok;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}
	std::fprintf(stderr, "%s: the reset of %s did not complete within 30 s\n", tool,
		     dev->node().c_str());
	return exit_failed;
}

} // namespace

int main(int argc, char **argv)
{
	Options o;
	bool explicit_device = false;
	static const struct option longopts[] = {
		{"json", no_argument, nullptr, 'j'},
		{"csv", no_argument, nullptr, 'c'},
		{"device", required_argument, nullptr, 'd'},
		{"interval", required_argument, nullptr, 'i'},
		{"count", required_argument, nullptr, 'n'},
		{"help", no_argument, nullptr, 'h'},
		{nullptr, 0, nullptr, 0},
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+jcd:i:n:h", longopts, nullptr)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'c':
			o.csv = true;
			break;
		case 'd':
			o.device = optarg;
			explicit_device = true;
			break;
		case 'i':
			if (!parse_double(optarg, o.interval) || o.interval < 0.01)
				return usage_error(tool, std::string("bad interval '") + optarg +
								 "' (seconds, at least 0.01)");
			break;
		case 'n':
			if (!parse_u64(optarg, o.count) || !o.count)
				return usage_error(tool, std::string("bad count '") + optarg + "'");
			o.count_set = true;
			break;
		case 'h':
			usage(stdout);
			return exit_ok;
		default:
			return usage_error(tool, std::string("unknown option '") +
							 argv[optind - 1] + "'");
		}
	}
	std::vector<std::string> args(argv + optind, argv + argc);
	/* Options may also follow the command. */
	std::vector<std::string> pos;
	for (size_t i = 0; i < args.size(); i++) {
		const std::string &a = args[i];
		if (a == "--json" || a == "-j")
			o.json = true;
		else if (a == "--csv" || a == "-c")
			o.csv = true;
		else if (a == "-h" || a == "--help") {
			usage(stdout);
			return exit_ok;
		} else if ((a == "-i" || a == "--interval" || a == "-n" || a == "--count" ||
			    a == "-d" || a == "--device") &&
			   i + 1 < args.size()) {
			const std::string &v = args[++i];
			if (a == "-d" || a == "--device") {
				o.device = v;
				explicit_device = true;
			} else if (a == "-i" || a == "--interval") {
				if (!parse_double(v, o.interval) || o.interval < 0.01)
					return usage_error(tool, "bad interval '" + v + "'");
			} else if (!parse_u64(v, o.count) || !o.count) {
				return usage_error(tool, "bad count '" + v + "'");
			} else {
				o.count_set = true;
			}
		} else if (a.size() > 1 && a[0] == '-') {
			return usage_error(tool, "unknown option '" + a + "'");
		} else {
			pos.push_back(a);
		}
	}
	std::string cmd = pos.empty() ? "list" : pos[0];
	if (pos.size() > 2)
		return usage_error(tool, "too many arguments");
	if (pos.size() == 2) {
		if (cmd == "list")
			return usage_error(tool, "'list' takes no device");
		o.device = pos[1];
		explicit_device = true;
	}
	if (o.csv && cmd != "top")
		return usage_error(tool, "--csv applies to 'top' only");
	if (cmd == "list")
		return cmd_list(o);
	if (cmd == "info")
		return cmd_info(o);
	if (cmd == "top")
		return cmd_top(o, explicit_device);
	if (cmd == "ps")
		return cmd_ps(o, explicit_device);
	if (cmd == "validate")
		return cmd_validate(o);
	if (cmd == "reset")
		return cmd_reset(o);
	return usage_error(tool, "unknown command '" + cmd + "'");
}
