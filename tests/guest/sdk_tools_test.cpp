// SPDX-License-Identifier: MIT
/*
 * Smoke tests of the tools inside the guest: accel-smi, accel-run and
 * accel-bench run as a user runs them; their output is checked, --json
 * output must parse, and exit codes must be honest, failures included
 * (no such device, bad arguments).  Tools are looked up in $PATH (or
 * $ACCEL_TOOLS_DIR); a missing tool skips its tests.
 */
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "json.h"

namespace fs = std::filesystem;
using tools::Json;

namespace {

struct ToolRun {
	int status = -1;
	std::string out;
	std::string err;
};

std::string find_tool(const std::string &name)
{
	if (const char *dir = std::getenv("ACCEL_TOOLS_DIR"))
		if (fs::exists(fs::path(dir) / name))
			return (fs::path(dir) / name).string();
	const char *path = std::getenv("PATH");
	std::string p = path ? path : "/usr/bin:/bin";
	size_t start = 0;
	while (start <= p.size()) {
		size_t end = p.find(':', start);
		std::string dir = p.substr(start, end == std::string::npos ? end : end - start);
		if (!dir.empty() && fs::exists(fs::path(dir) / name))
			return (fs::path(dir) / name).string();
		if (end == std::string::npos)
			break;
		start = end + 1;
	}
	return {};
}

/* Run tool with args (shell-free), capturing stdout and stderr. */
ToolRun run(const std::string &tool, const std::vector<std::string> &args)
{
	ToolRun r;
	std::string exe = find_tool(tool);
	if (exe.empty())
		return r;
	char out_t[] = "/tmp/tool-out-XXXXXX", err_t[] = "/tmp/tool-err-XXXXXX";
	int of = mkstemp(out_t), ef = mkstemp(err_t);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(of, 1);
		dup2(ef, 2);
		std::vector<char *> argv;
		argv.push_back(const_cast<char *>(exe.c_str()));
		for (const auto &a : args)
			argv.push_back(const_cast<char *>(a.c_str()));
		argv.push_back(nullptr);
		execv(exe.c_str(), argv.data());
		_exit(127);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	auto slurp = [](const char *p) {
		std::ifstream f(p);
		return std::string(std::istreambuf_iterator<char>(f), {});
	};
	r.out = slurp(out_t);
	r.err = slurp(err_t);
	close(of);
	close(ef);
	unlink(out_t);
	unlink(err_t);
	return r;
}

Json parse(const ToolRun &r)
{
	std::string err;
	auto j = Json::parse(r.out, &err);
	EXPECT_TRUE(j) << "invalid JSON (" << err << "):\n" << r.out;
	return j ? *j : Json();
}

bool have_device()
{
	const char *e = std::getenv("REFNPU_NODE");
	return fs::exists(e ? e : "/dev/accel/accel0");
}

#define NEED(tool)                                                                                 \
	do {                                                                                       \
		if (find_tool(tool).empty())                                                       \
			GTEST_SKIP() << tool << " not found in $PATH";                             \
	} while (0)

#define NEED_DEVICE()                                                                              \
	do {                                                                                       \
		if (!have_device())                                                                \
			GTEST_SKIP() << "no accel device";                                         \
	} while (0)

} // namespace

TEST(ToolsUsage, HelpAndBadArguments)
{
	for (const char *t : {"accel-smi", "accel-run", "accel-bench"}) {
		if (find_tool(t).empty())
			continue;
		ToolRun h = run(t, {"--help"});
		EXPECT_EQ(h.status, 0) << t;
		EXPECT_NE(h.out.find("usage: "), std::string::npos) << t;
		EXPECT_NE(h.out.find("Exit status"), std::string::npos) << t;
		ToolRun b = run(t, {"--no-such-option"});
		EXPECT_EQ(b.status, 64) << t << ": " << b.err;
		EXPECT_NE(b.err.find("--help"), std::string::npos) << t << ": " << b.err;
	}
	NEED("accel-smi");
	EXPECT_EQ(run("accel-smi", {"frobnicate"}).status, 64);
	EXPECT_EQ(run("accel-smi", {"top", "-i", "-3"}).status, 64);
	NEED("accel-run");
	EXPECT_EQ(run("accel-run", {}).status, 64);
	EXPECT_EQ(run("accel-run", {"/nonexistent/model.json"}).status, 64);
	EXPECT_EQ(run("accel-run", {"--op", "gemm", "--shape", "4x4"}).status, 64);
	EXPECT_EQ(run("accel-run", {"builtin:nope"}).status, 64);
	NEED("accel-bench");
	EXPECT_EQ(run("accel-bench", {"nosuchbench"}).status, 64);
}

TEST(ToolsNoDevice, EveryToolSaysSoWithExitCode2)
{
	NEED("accel-smi");
	ToolRun i = run("accel-smi", {"info", "77"});
	EXPECT_EQ(i.status, 2) << i.err;
	EXPECT_NE(i.err.find("accel-smi list"), std::string::npos) << i.err;
	EXPECT_EQ(run("accel-smi", {"validate", "77"}).status, 2);
	EXPECT_EQ(run("accel-smi", {"reset", "77"}).status, 2);
	NEED("accel-run");
	EXPECT_EQ(run("accel-run", {"-d", "77", "builtin:mlp"}).status, 2);
	NEED("accel-bench");
	EXPECT_EQ(run("accel-bench", {"-d", "77"}).status, 2);
}

TEST(AccelSmi, ListTextAndJson)
{
	NEED("accel-smi");
	NEED_DEVICE();
	ToolRun t = run("accel-smi", {"list"});
	EXPECT_EQ(t.status, 0) << t.err;
	EXPECT_NE(t.out.find("refnpu"), std::string::npos) << t.out;
	Json j = parse(run("accel-smi", {"--json", "list"}));
	ASSERT_TRUE(j.is_array());
	ASSERT_FALSE(j.as_array().empty());
	const Json &d = j.as_array()[0];
	/* The bus driver: "refnpu" (PCI) or "refnpu-virt" (virtual device). */
	EXPECT_EQ(d.get("driver")->as_string().rfind("refnpu", 0), 0u);
	EXPECT_TRUE(d.get("index")->is_int());
	EXPECT_TRUE(d.get("accessible")->as_bool());
}

TEST(AccelSmi, InfoTextAndJson)
{
	NEED("accel-smi");
	NEED_DEVICE();
	ToolRun t = run("accel-smi", {"info", "0"});
	EXPECT_EQ(t.status, 0) << t.err;
	EXPECT_NE(t.out.find("queues:"), std::string::npos) << t.out;
	Json j = parse(run("accel-smi", {"info", "--json", "0"}));
	ASSERT_TRUE(j.is_object());
	EXPECT_EQ(j.get("driver")->as_string(), "refnpu");
	EXPECT_TRUE(j.get("refnpu")->as_bool());
	EXPECT_GE(j.get("queues")->as_int(), 1);
	EXPECT_TRUE(j.get("ops")->is_array());
	EXPECT_GT(j.get("va_size")->as_int(), 0);
}

TEST(AccelSmi, ValidatePasses)
{
	NEED("accel-smi");
	NEED_DEVICE();
	ToolRun t = run("accel-smi", {"validate"});
	EXPECT_EQ(t.status, 0) << t.out << t.err;
	EXPECT_NE(t.out.find("PASS gemm"), std::string::npos) << t.out;
	ToolRun jr = run("accel-smi", {"--json", "validate"});
	EXPECT_EQ(jr.status, 0);
	Json j = parse(jr);
	ASSERT_TRUE(j.is_object());
	EXPECT_TRUE(j.get("ok")->as_bool());
	EXPECT_EQ(j.get("failed")->as_int(), 0);
	EXPECT_GE(j.get("checks")->as_array().size(), 7u);
}

TEST(AccelSmi, PsAndTop)
{
	NEED("accel-smi");
	NEED_DEVICE();
	Json ps = parse(run("accel-smi", {"ps", "--json"}));
	EXPECT_TRUE(ps.is_array());
	ToolRun csv = run("accel-smi", {"top", "-n", "1", "-i", "0.1", "--csv"});
	EXPECT_EQ(csv.status, 0) << csv.err;
	EXPECT_EQ(csv.out.rfind("time_s,pid,comm,node,client_id,engine,busy_pct\n", 0), 0u)
		<< csv.out;
	ToolRun js = run("accel-smi", {"top", "-n", "2", "-i", "0.1", "--json"});
	EXPECT_EQ(js.status, 0);
	/* One JSON object per refresh. */
	size_t lines = 0;
	std::istringstream in(js.out);
	for (std::string l; std::getline(in, l); lines++) {
		std::string err;
		auto j = Json::parse(l, &err);
		ASSERT_TRUE(j) << err << ": " << l;
		EXPECT_TRUE(j->get("queues_busy_pct"));
	}
	EXPECT_EQ(lines, 2u);
}

TEST(AccelSmi, ResetIsConfirmed)
{
	NEED("accel-smi");
	NEED_DEVICE();
	if (geteuid() != 0 || !fs::exists("/sys/kernel/debug/accel"))
		GTEST_SKIP() << "needs root and debugfs";
	ToolRun r = run("accel-smi", {"--json", "reset"});
	EXPECT_EQ(r.status, 0) << r.err;
	Json j = parse(r);
	EXPECT_TRUE(j.get("reset")->as_bool());
	/* The device works after the reset. */
	EXPECT_EQ(run("accel-smi", {"validate"}).status, 0);
}

TEST(AccelRun, BuiltinNetworksVerify)
{
	NEED("accel-run");
	NEED_DEVICE();
	ToolRun t = run("accel-run", {"-n", "2", "builtin:mlp"});
	EXPECT_EQ(t.status, 0) << t.out << t.err;
	EXPECT_NE(t.out.find("PASS:"), std::string::npos) << t.out;
	EXPECT_NE(t.out.find("p50"), std::string::npos) << t.out;
	for (const char *m : {"builtin:cnn", "builtin:mlp-block"}) {
		ToolRun r = run("accel-run", {"--json", "-n", "1", m});
		EXPECT_EQ(r.status, 0) << m << r.err;
		Json j = parse(r);
		ASSERT_TRUE(j.is_object());
		EXPECT_TRUE(j.get("verified")->as_bool()) << m;
		EXPECT_GT(j.get("run")->get("p50_ms")->as_double(), 0.0);
	}
}

TEST(AccelRun, ModelFileAndSingleGemm)
{
	NEED("accel-run");
	NEED_DEVICE();
	std::string path = "/tmp/accel-run-model.txt";
	std::ofstream(path) << "# two layers\n"
			       "input x 8 32\n"
			       "dense 16 relu\n"
			       "layernorm gamma beta\n"
			       "dense 4\n"
			       "softmax\n";
	ToolRun r = run("accel-run", {"-n", "1", path});
	EXPECT_EQ(r.status, 0) << r.out << r.err;
	EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
	std::ofstream(path) << "input x 8 32\ndense\n";
	ToolRun bad = run("accel-run", {path});
	EXPECT_EQ(bad.status, 64) << "a layer without units";
	EXPECT_NE(bad.err.find("units"), std::string::npos) << bad.err;
	for (const char *dt : {"fp32", "fp16", "bf16", "int8"}) {
		ToolRun g = run("accel-run", {"--json", "-n", "1", "--op", "gemm", "--shape",
					      "48x40x24", "--dtype", dt, "--bias"});
		EXPECT_EQ(g.status, 0) << dt << g.out << g.err;
		Json j = parse(g);
		ASSERT_TRUE(j.is_object());
		EXPECT_TRUE(j.get("verified")->as_bool()) << dt;
	}
}

TEST(AccelBench, JsonWithRatios)
{
	NEED("accel-bench");
	NEED_DEVICE();
	ToolRun r = run("accel-bench", {"--json", "-n", "50", "submit", "latency"});
	EXPECT_EQ(r.status, 0) << r.err;
	Json j = parse(r);
	ASSERT_TRUE(j.is_object());
	bool saw_submit = false;
	for (const auto &row : j.get("results")->as_array()) {
		EXPECT_TRUE(row.get("name")->is_string());
		if (row.get("name")->as_string() == "libaccel submit") {
			saw_submit = true;
			EXPECT_TRUE(row.get("ratio")->is_number());
			EXPECT_GT(row.get("ratio")->as_double(), 0.0);
		}
	}
	EXPECT_TRUE(saw_submit);
	EXPECT_TRUE(j.get("errors")->as_array().empty());
}
