// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Enumeration of accel devices from sysfs, without opening them.
 */
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>

#include <accel/device.h>

#include "internal.h"

namespace fs = std::filesystem;

namespace accel {

namespace {

std::string link_target_name(const fs::path &p)
{
	std::error_code ec;
	fs::path t = fs::read_symlink(p, ec);
	return ec ? std::string() : t.filename().string();
}

uint16_t read_hex_u16(const fs::path &p)
{
	std::ifstream f(p);
	std::string s;
	if (!(f >> s))
		return 0;
	if (s.rfind("0x", 0) == 0)
		s = s.substr(2);
	unsigned v = 0;
	auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
	return ec == std::errc() ? static_cast<uint16_t>(v) : 0;
}

} // namespace

std::string detail::group_name(gid_t gid)
{
	struct group grp, *res = nullptr;
	char buf[1024];
	if (getgrgid_r(gid, &grp, buf, sizeof(buf), &res) == 0 && res)
		return res->gr_name;
	return std::to_string(gid);
}

Result<std::vector<DeviceInfo>> enumerate_devices(const EnumerateOptions &opts)
{
	std::vector<DeviceInfo> out;
	fs::path cls = fs::path(opts.sysfs_root) / "class/accel";
	std::error_code ec;
	if (!fs::is_directory(cls, ec))
		return Error(Errc::no_device,
			     cls.string() + " does not exist: the kernel has no accel "
					    "subsystem (CONFIG_DRM_ACCEL) or no accel driver is "
					    "loaded (try 'modprobe refnpu')",
			     ENOENT);

	for (const auto &e : fs::directory_iterator(cls, ec)) {
		std::string name = e.path().filename().string();
		unsigned idx = 0;
		if (name.rfind("accel", 0) != 0)
			continue;
		auto [ptr, perr] = std::from_chars(name.data() + 5, name.data() + name.size(), idx);
		if (perr != std::errc() || ptr != name.data() + name.size())
			continue;

		DeviceInfo d;
		d.index = idx;
		d.name = name;
		d.sysfs_path = e.path().string();
		d.node = (fs::path(opts.dev_root) / "accel" / name).string();
		fs::path dev = e.path() / "device";
		d.driver = link_target_name(dev / "driver");
		d.bus = link_target_name(dev / "subsystem");
		std::error_code cec;
		fs::path real = fs::canonical(dev, cec);
		d.bus_address = cec ? std::string() : real.filename().string();
		if (d.bus == "pci") {
			d.pci_vendor = read_hex_u16(dev / "vendor");
			d.pci_device = read_hex_u16(dev / "device");
		}
		struct stat st;
		if (::stat(d.node.c_str(), &st) == 0) {
			d.node_exists = true;
			d.node_group = detail::group_name(st.st_gid);
			d.accessible = ::access(d.node.c_str(), R_OK | W_OK) == 0;
		}
		out.push_back(std::move(d));
	}
	if (ec)
		return Error::from_errno(ec.value(), "reading " + cls.string());
	std::sort(out.begin(), out.end(),
		  [](const DeviceInfo &a, const DeviceInfo &b) { return a.index < b.index; });
	return out;
}

} // namespace accel
