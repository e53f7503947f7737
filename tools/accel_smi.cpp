// SPDX-License-Identifier: MIT
/*
 * accel-smi: list compute-accelerator devices and show what their driver
 * reports.  Works for any drivers/accel driver; refnpu-specific information
 * is read through the same node.
 */
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <xf86drm.h>

namespace fs = std::filesystem;

namespace {

struct AccelDev {
	int index;
	std::string node;
	std::string driver;
	std::string bus;
	std::string bus_addr;
};

std::string basename_of_link(const fs::path &p)
{
	std::error_code ec;
	auto t = fs::read_symlink(p, ec);
	return ec ? std::string() : t.filename().string();
}

std::vector<AccelDev> enumerate()
{
	std::vector<AccelDev> out;
	std::error_code ec;
	for (const auto &e : fs::directory_iterator("/sys/class/accel", ec)) {
		std::string n = e.path().filename().string();
		if (n.rfind("accel", 0) != 0)
			continue;
		AccelDev d;
		d.index = std::stoi(n.substr(5));
		d.node = "/dev/accel/" + n;
		d.driver = basename_of_link(e.path() / "device/driver");
		d.bus = basename_of_link(e.path() / "device/subsystem");
		d.bus_addr = fs::canonical(e.path() / "device", ec).filename().string();
		out.push_back(d);
	}
	std::sort(out.begin(), out.end(),
		  [](const AccelDev &a, const AccelDev &b) { return a.index < b.index; });
	return out;
}

std::string json_str(std::string_view s)
{
	std::string o = "\"";
	for (char c : s) {
		if (c == '"' || c == '\\')
			o += '\\';
		o += c;
	}
	return o + "\"";
}

int usage(FILE *f, int rc)
{
	std::fprintf(f, "usage: accel-smi [--json] list\n"
			"       accel-smi [--json] info [INDEX]\n\n"
			"  list   one line per /dev/accel/accelN: driver, bus, address\n"
			"  info   driver name, version and description read through the node\n");
	return rc;
}

int cmd_list(bool json)
{
	auto devs = enumerate();
	if (json) {
		std::printf("[");
		for (size_t i = 0; i < devs.size(); i++)
			std::printf("%s{\"index\":%d,\"node\":%s,\"driver\":%s,\"bus\":%s,"
				    "\"address\":%s}",
				    i ? "," : "", devs[i].index, json_str(devs[i].node).c_str(),
				    json_str(devs[i].driver).c_str(), json_str(devs[i].bus).c_str(),
				    json_str(devs[i].bus_addr).c_str());
		std::printf("]\n");
	} else {
		for (const auto &d : devs)
			std::printf("accel%d  %-10s %-8s %s  %s\n", d.index, d.driver.c_str(),
				    d.bus.c_str(), d.bus_addr.c_str(), d.node.c_str());
	}
	if (devs.empty()) {
		std::fprintf(stderr, "accel-smi: no accel devices found in /sys/class/accel "
				     "(is the driver loaded? try 'modprobe refnpu')\n");
		return 2;
	}
	return 0;
}

int cmd_info(bool json, int index)
{
	std::string node = "/dev/accel/accel" + std::to_string(index);
	int fd = open(node.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		std::fprintf(stderr, "accel-smi: cannot open %s: %s%s\n", node.c_str(),
			     std::strerror(e),
			     e == EACCES   ? " (add yourself to the node's group, see ls -l)"
			     : e == ENOENT ? " (no such device; run 'accel-smi list')"
					   : "");
		return e == ENOENT ? 2 : 1;
	}
	drmVersionPtr v = drmGetVersion(fd);
	if (!v) {
		std::fprintf(stderr, "accel-smi: DRM_IOCTL_VERSION on %s failed: %s\n",
			     node.c_str(), std::strerror(errno));
		close(fd);
		return 1;
	}
	std::string name(v->name, v->name_len), desc(v->desc, v->desc_len);
	if (json)
		std::printf(
			"{\"node\":%s,\"driver\":%s,\"version\":\"%d.%d.%d\",\"description\":%s}\n",
			json_str(node).c_str(), json_str(name).c_str(), v->version_major,
			v->version_minor, v->version_patchlevel, json_str(desc).c_str());
	else
		std::printf("%s: driver %s version %d.%d.%d (%s)\n", node.c_str(), name.c_str(),
			    v->version_major, v->version_minor, v->version_patchlevel,
			    desc.c_str());
	drmFreeVersion(v);
	close(fd);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	bool json = false;
	std::vector<std::string> args;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--json")
			json = true;
		else if (a == "-h" || a == "--help")
			return usage(stdout, 0);
		else if (a.rfind("--", 0) == 0) {
			std::fprintf(stderr, "accel-smi: unknown option %s\n", a.c_str());
			return usage(stderr, 64);
		} else
			args.push_back(a);
	}
	if (args.empty() || args[0] == "list")
		return cmd_list(json);
	if (args[0] == "info") {
		int idx = 0;
		if (args.size() > 1) {
			char *end = nullptr;
			long v = std::strtol(args[1].c_str(), &end, 10);
			if (*end || v < 0) {
				std::fprintf(stderr, "accel-smi: bad device index '%s'\n",
					     args[1].c_str());
				return 64;
			}
			idx = static_cast<int>(v);
		}
		return cmd_info(json, idx);
	}
	std::fprintf(stderr, "accel-smi: unknown command '%s'\n", args[0].c_str());
	return usage(stderr, 64);
}
