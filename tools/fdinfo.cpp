// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "fdinfo.h"

namespace tools {

namespace {

std::string read_link(const std::string &p)
{
	char buf[256];
	ssize_t n = readlink(p.c_str(), buf, sizeof(buf) - 1);
	if (n < 0)
		return {};
	buf[n] = '\0';
	return buf;
}

bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

uint64_t parse_size(const std::string &v)
{
	std::istringstream in(v);
	uint64_t n = 0;
	std::string unit;
	in >> n >> unit;
	if (unit == "KiB")
		n <<= 10;
	else if (unit == "MiB")
		n <<= 20;
	else if (unit == "GiB")
		n <<= 30;
	return n;
}

} // namespace

std::vector<DrmClient> scan_accel_clients(unsigned *unreadable)
{
	std::vector<DrmClient> out;
	if (unreadable)
		*unreadable = 0;
	DIR *proc = opendir("/proc");
	if (!proc)
		return out;
	while (struct dirent *pe = readdir(proc)) {
		if (!is_number(pe->d_name))
			continue;
		pid_t pid = pid_t(std::atoi(pe->d_name));
		std::string base = std::string("/proc/") + pe->d_name;
		DIR *fds = opendir((base + "/fd").c_str());
		if (!fds) {
			if (unreadable && errno == EACCES)
				(*unreadable)++;
			continue;
		}
		std::string comm;
		while (struct dirent *fe = readdir(fds)) {
			if (!is_number(fe->d_name))
				continue;
			std::string target = read_link(base + "/fd/" + fe->d_name);
			if (target.rfind("/dev/accel/", 0) != 0)
				continue;
			std::ifstream info(base + "/fdinfo/" + fe->d_name);
			DrmClient c;
			c.pid = pid;
			c.node = target;
			std::string line;
			while (std::getline(info, line)) {
				auto colon = line.find(':');
				if (colon == std::string::npos)
					continue;
				std::string key = line.substr(0, colon);
				std::string val = line.substr(colon + 1);
				val.erase(0, val.find_first_not_of(" \t"));
				if (key == "drm-driver")
					c.driver = val;
				else if (key == "drm-client-id")
					c.client_id = std::strtoull(val.c_str(), nullptr, 10);
				else if (key.rfind("drm-engine-", 0) == 0 &&
					 key.rfind("drm-engine-capacity-", 0) != 0)
					c.engine_ns[key.substr(11)] =
						std::strtoull(val.c_str(), nullptr, 10);
				else if (key.rfind("drm-", 0) == 0 &&
					 (key.find("memory") != std::string::npos ||
					  key.rfind("drm-total-", 0) == 0 ||
					  key.rfind("drm-resident-", 0) == 0 ||
					  key.rfind("drm-shared-", 0) == 0 ||
					  key.rfind("drm-active-", 0) == 0 ||
					  key.rfind("drm-purgeable-", 0) == 0))
					c.memory[key.substr(4)] = parse_size(val);
			}
			if (c.driver.empty())
				continue;
			if (comm.empty()) {
				std::ifstream cf(base + "/comm");
				std::getline(cf, comm);
			}
			c.comm = comm;
			bool merged = false;
			for (auto &o : out)
				if (o.pid == pid && o.client_id == c.client_id &&
				    o.node == c.node) {
					o.fds++;
					merged = true;
				}
			if (!merged) {
				c.fds = 1;
				out.push_back(std::move(c));
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return out;
}

} // namespace tools
