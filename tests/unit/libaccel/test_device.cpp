// SPDX-License-Identifier: MIT
/*
 * Device enumeration against a fake sysfs tree, and the errors of opening
 * things that are not (usable) accel devices -- all without a device.
 */
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <accel/accel.h>

namespace fs = std::filesystem;
using accel::Errc;

namespace {

class FakeSysfs : public ::testing::Test
{
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/accel-sysfs-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		root_ = tmpl;
		fs::create_directories(root_ / "sys/class/accel");
		fs::create_directories(root_ / "sys/bus/pci/drivers/refnpu");
		fs::create_directories(root_ / "sys/bus/pci/drivers/ivpu");
		fs::create_directories(root_ / "sys/bus/platform/drivers/refnpu");
		fs::create_directories(root_ / "dev/accel");
	}

	void TearDown() override { fs::remove_all(root_); }

	/* An accel class device whose parent sits on bus at addr, bound to drv. */
	void add(const std::string &name, const std::string &bus, const std::string &addr,
		 const std::string &drv, bool node = true)
	{
		fs::path dev = root_ / "sys/devices" / bus / addr;
		fs::create_directories(dev / "accel" / name);
		fs::create_symlink(root_ / "sys/bus" / bus, dev / "subsystem");
		if (!drv.empty())
			fs::create_symlink(root_ / "sys/bus" / bus / "drivers" / drv,
					   dev / "driver");
		if (bus == "pci") {
			std::ofstream(dev / "vendor") << "0x1234\n";
			std::ofstream(dev / "device") << "0x4e50\n";
		}
		fs::create_symlink(dev / "accel" / name, root_ / "sys/class/accel" / name);
		fs::create_symlink(dev, dev / "accel" / name / "device");
		if (node)
			std::ofstream(root_ / "dev/accel" / name) << "";
	}

	accel::EnumerateOptions opts() const
	{
		return {(root_ / "sys").string(), (root_ / "dev").string()};
	}

	fs::path root_;
};

} // namespace

TEST_F(FakeSysfs, ListsEveryAccelDriverSortedByIndex)
{
	add("accel10", "pci", "0000:00:05.0", "ivpu");
	add("accel0", "pci", "0000:00:04.0", "refnpu");
	add("accel1", "platform", "refnpu-virt.0", "refnpu", false);
	/* Not accel class devices: ignored. */
	fs::create_directories(root_ / "sys/class/accel/card0");
	auto r = accel::enumerate_devices(opts());
	ASSERT_TRUE(r) << r.error().what();
	ASSERT_EQ(r->size(), 3u);
	const auto &d0 = (*r)[0], &d1 = (*r)[1], &d10 = (*r)[2];
	EXPECT_EQ(d0.index, 0u);
	EXPECT_EQ(d0.name, "accel0");
	EXPECT_EQ(d0.driver, "refnpu");
	EXPECT_EQ(d0.bus, "pci");
	EXPECT_EQ(d0.bus_address, "0000:00:04.0");
	EXPECT_EQ(d0.pci_vendor, 0x1234);
	EXPECT_EQ(d0.pci_device, 0x4e50);
	EXPECT_EQ(d0.node, (root_ / "dev/accel/accel0").string());
	EXPECT_TRUE(d0.node_exists);
	EXPECT_FALSE(d0.node_group.empty());
	EXPECT_EQ(d1.index, 1u);
	EXPECT_EQ(d1.bus, "platform");
	EXPECT_EQ(d1.bus_address, "refnpu-virt.0");
	EXPECT_EQ(d1.pci_vendor, 0);
	EXPECT_FALSE(d1.node_exists);
	EXPECT_FALSE(d1.accessible);
	EXPECT_EQ(d10.index, 10u);
	EXPECT_EQ(d10.driver, "ivpu");
}

TEST_F(FakeSysfs, UnboundDeviceHasNoDriver)
{
	add("accel3", "pci", "0000:00:07.0", "");
	auto r = accel::enumerate_devices(opts());
	ASSERT_TRUE(r);
	ASSERT_EQ(r->size(), 1u);
	EXPECT_TRUE((*r)[0].driver.empty());
}

TEST_F(FakeSysfs, EmptyClassIsAnEmptyList)
{
	auto r = accel::enumerate_devices(opts());
	ASSERT_TRUE(r);
	EXPECT_TRUE(r->empty());
}

TEST_F(FakeSysfs, MissingClassIsNoDevice)
{
	fs::remove_all(root_ / "sys/class/accel");
	auto r = accel::enumerate_devices(opts());
	ASSERT_FALSE(r);
	EXPECT_EQ(r.code(), Errc::no_device);
	EXPECT_NE(r.error().message().find("CONFIG_DRM_ACCEL"), std::string::npos);
}

TEST(DeviceOpen, MissingNodeIsNoDevice)
{
	auto d = accel::Device::open("/dev/accel/accel-does-not-exist");
	ASSERT_FALSE(d);
	EXPECT_EQ(d.code(), Errc::no_device);
	EXPECT_NE(d.error().message().find("accel-smi list"), std::string::npos);
}

TEST(DeviceOpen, RegularFileIsInvalid)
{
	auto d = accel::Device::open("/etc/hostname");
	ASSERT_FALSE(d);
	EXPECT_EQ(d.code(), Errc::invalid_argument);
}

TEST(DeviceOpen, NonDrmCharDeviceIsUnsupported)
{
	auto d = accel::Device::open("/dev/null");
	ASSERT_FALSE(d);
	EXPECT_EQ(d.code(), Errc::unsupported);
	EXPECT_NE(d.error().message().find("not a DRM"), std::string::npos);
}

TEST(DeviceOpen, BadSpecifications)
{
	EXPECT_EQ(accel::Device::open("").code(), Errc::invalid_argument);
	EXPECT_EQ(accel::Device::open("not-a-device").code(), Errc::invalid_argument);
	EXPECT_EQ(accel::Device::open(std::string_view("accel99999")).code(), Errc::no_device);
	EXPECT_EQ(accel::Device::open(99999u).code(), Errc::no_device);
}

TEST(DeviceOpen, PermissionHintNamesTheGroup)
{
	if (geteuid() == 0)
		GTEST_SKIP() << "root bypasses file permissions";
	/* A character device this user may not open read-write. */
	const char *node = "/dev/mem";
	struct stat st;
	if (stat(node, &st) || access(node, R_OK | W_OK) == 0)
		GTEST_SKIP() << node << " missing or accessible";
	auto d = accel::Device::open(node);
	ASSERT_FALSE(d);
	EXPECT_EQ(d.code(), Errc::permission_denied);
	EXPECT_NE(d.error().message().find("group"), std::string::npos) << d.error().what();
}

TEST(DeviceHandle, EmptyHandleFailsCleanly)
{
	accel::Device d;
	EXPECT_FALSE(d.is_valid());
	EXPECT_EQ(d.fd(), -1);
	EXPECT_EQ(d.require_refnpu().code(), Errc::invalid_argument);
	EXPECT_EQ(d.handle_count(), 0u);
	EXPECT_FALSE(d.is_refnpu());
	EXPECT_EQ(accel::Context::create(d).code(), Errc::invalid_argument);
}
