// SPDX-License-Identifier: MIT
/*
 * UniqueFd ownership.
 */
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <accel/unique_fd.h>

namespace {

bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

} // namespace

TEST(UniqueFd, ClosesOnDestruction)
{
	int raw = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(raw, 0);
	{
		accel::UniqueFd fd(raw);
		EXPECT_TRUE(fd_open(raw));
	}
	EXPECT_FALSE(fd_open(raw));
}

TEST(UniqueFd, MoveTransfersOwnership)
{
	int raw = open("/dev/null", O_RDONLY | O_CLOEXEC);
	accel::UniqueFd a(raw);
	accel::UniqueFd b(std::move(a));
	EXPECT_FALSE(a.is_valid());
	EXPECT_EQ(b.get(), raw);
	accel::UniqueFd c;
	c = std::move(b);
	EXPECT_EQ(c.get(), raw);
	EXPECT_TRUE(fd_open(raw));
	int released = c.release();
	EXPECT_EQ(released, raw);
	EXPECT_FALSE(c.is_valid());
	EXPECT_TRUE(fd_open(raw));
	close(raw);
}

TEST(UniqueFd, DupIsIndependentAndCloexec)
{
	accel::UniqueFd a(open("/dev/null", O_RDONLY | O_CLOEXEC));
	auto b = a.dup();
	ASSERT_TRUE(b) << b.error().what();
	EXPECT_NE(b->get(), a.get());
	EXPECT_TRUE(fcntl(b->get(), F_GETFD) & FD_CLOEXEC);
	int braw = b->get();
	a.reset();
	EXPECT_TRUE(fd_open(braw));

	accel::UniqueFd empty;
	auto e = empty.dup();
	ASSERT_FALSE(e);
	EXPECT_EQ(e.code(), accel::Errc::invalid_argument);
}
