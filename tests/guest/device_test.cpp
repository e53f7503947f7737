// SPDX-License-Identifier: MIT
/*
 * First in-guest check: the accel node exists, belongs to refnpu and answers
 * DRM_IOCTL_VERSION through libdrm.
 */
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <xf86drm.h>

namespace {

const char *accel_node()
{
	const char *env = std::getenv("REFNPU_NODE");
	return env ? env : "/dev/accel/accel0";
}

struct FdCloser {
	void operator()(const int *fd) const
	{
		if (*fd >= 0)
			close(*fd);
		delete fd;
	}
};
using UniqueFd = std::unique_ptr<int, FdCloser>;

UniqueFd open_node()
{
	return UniqueFd(new int(open(accel_node(), O_RDWR | O_CLOEXEC)));
}

/* The "drm-client-id" line DRM prints in /proc/self/fdinfo for @fd. */
std::string client_id(int fd)
{
	std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
	std::string line;
	while (std::getline(in, line))
		if (line.rfind("drm-client-id:", 0) == 0) {
			size_t v = line.find_first_not_of(" \t", 14);
			return v == std::string::npos ? std::string() : line.substr(v);
		}
	return {};
}

struct VersionDeleter {
	void operator()(drmVersionPtr v) const { drmFreeVersion(v); }
};

} // namespace

TEST(Device, NodeIsAnAccelCharDevice)
{
	if (!std::filesystem::exists(accel_node()))
		GTEST_SKIP() << accel_node() << " does not exist";
	auto st = std::filesystem::status(accel_node());
	EXPECT_EQ(st.type(), std::filesystem::file_type::character);
	/* drivers/accel registers its nodes under the "accel" class. */
	EXPECT_TRUE(std::filesystem::exists("/sys/class/accel/accel0"));
}

TEST(Device, VersionThroughLibdrm)
{
	if (!std::filesystem::exists(accel_node()))
		GTEST_SKIP() << accel_node() << " does not exist";
	UniqueFd fd = open_node();
	ASSERT_GE(*fd, 0) << "open " << accel_node() << ": " << strerror(errno);

	std::unique_ptr<drmVersion, VersionDeleter> v(drmGetVersion(*fd));
	ASSERT_NE(v, nullptr) << "DRM_IOCTL_VERSION failed: " << strerror(errno);
	EXPECT_EQ(std::string(v->name, v->name_len), "refnpu");
	EXPECT_GT(v->desc_len, 0);
	EXPECT_GE(v->version_major, 0);
	EXPECT_GE(v->version_minor, 0);
}

TEST(Device, SysfsDriverIsRefnpu)
{
	if (!std::filesystem::exists("/sys/class/accel/accel0"))
		GTEST_SKIP() << "no accel device";
	auto drv = std::filesystem::read_symlink("/sys/class/accel/accel0/device/driver");
	EXPECT_NE(drv.filename().string().find("refnpu"), std::string::npos) << drv;
}

TEST(Device, OpenIsPerFile)
{
	if (!std::filesystem::exists(accel_node()))
		GTEST_SKIP() << accel_node() << " does not exist";
	UniqueFd a = open_node();
	UniqueFd b = open_node();
	ASSERT_GE(*a, 0);
	ASSERT_GE(*b, 0);
	EXPECT_NE(*a, *b);
	/* Each open is its own DRM client, not a shared one. */
	std::string ida = client_id(*a);
	std::string idb = client_id(*b);
	ASSERT_FALSE(ida.empty()) << "no drm-client-id in fdinfo";
	ASSERT_FALSE(idb.empty()) << "no drm-client-id in fdinfo";
	EXPECT_NE(ida, idb);
}
