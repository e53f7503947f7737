// SPDX-License-Identifier: MIT
/*
 * Error category, errno classification, job status mapping and Result<T>.
 */
#include <cerrno>
#include <system_error>

#include <gtest/gtest.h>

#include <accel/accel.h>

using accel::Errc;

TEST(ErrorCategory, NameAndMessages)
{
	EXPECT_STREQ(accel::category().name(), "accel");
	for (int e = int(Errc::no_device); e <= int(Errc::system_error); e++) {
		std::error_code ec(e, accel::category());
		EXPECT_FALSE(ec.message().empty());
		EXPECT_EQ(ec.message().find("unknown"), std::string::npos) << e;
	}
}

TEST(ErrorCategory, MapsToPortableConditions)
{
	EXPECT_EQ(make_error_code(Errc::timeout), std::errc::timed_out);
	EXPECT_EQ(make_error_code(Errc::permission_denied), std::errc::permission_denied);
	EXPECT_EQ(make_error_code(Errc::invalid_argument), std::errc::invalid_argument);
	EXPECT_EQ(make_error_code(Errc::unsupported), std::errc::not_supported);
	EXPECT_EQ(make_error_code(Errc::resource_limit), std::errc::not_enough_memory);
	EXPECT_EQ(make_error_code(Errc::no_device), std::errc::no_such_device);
	EXPECT_NE(make_error_code(Errc::timeout), std::errc::invalid_argument);
	/* Implicit conversion from the enum works (is_error_code_enum). */
	std::error_code ec = Errc::device_lost;
	EXPECT_EQ(ec.category(), accel::category());
}

struct ErrnoCase {
	int err;
	Errc want;
};

class ErrnoMapping : public ::testing::TestWithParam<ErrnoCase>
{
};

TEST_P(ErrnoMapping, Classifies)
{
	EXPECT_EQ(accel::errc_from_errno(GetParam().err), GetParam().want)
		<< "errno " << GetParam().err;
}

INSTANTIATE_TEST_SUITE_P(
	AllKinds, ErrnoMapping,
	::testing::Values(
		ErrnoCase{ENODEV, Errc::device_lost}, ErrnoCase{ECANCELED, Errc::device_lost},
		ErrnoCase{EACCES, Errc::permission_denied},
		ErrnoCase{EPERM, Errc::permission_denied}, ErrnoCase{ENOTTY, Errc::unsupported},
		ErrnoCase{EOPNOTSUPP, Errc::unsupported}, ErrnoCase{ETIME, Errc::timeout},
		ErrnoCase{ETIMEDOUT, Errc::timeout}, ErrnoCase{EINVAL, Errc::invalid_argument},
		ErrnoCase{ENOENT, Errc::invalid_argument}, ErrnoCase{ENOMEM, Errc::resource_limit},
		ErrnoCase{ENOSPC, Errc::resource_limit}, ErrnoCase{EMFILE, Errc::resource_limit},
		ErrnoCase{EFAULT, Errc::job_failed}, ErrnoCase{EIO, Errc::job_failed},
		ErrnoCase{EXDEV, Errc::system_error}));

TEST(JobStatus, EveryDocumentedStatus)
{
	/* The job statuses of the uAPI overview. */
	EXPECT_EQ(accel::job_status_error(-EFAULT).errc(), Errc::job_failed);
	EXPECT_NE(accel::job_status_error(-EFAULT).message().find("MMU fault"), std::string::npos);
	EXPECT_EQ(accel::job_status_error(-EINVAL).errc(), Errc::job_failed);
	EXPECT_NE(accel::job_status_error(-EINVAL).message().find("malformed"), std::string::npos);
	EXPECT_EQ(accel::job_status_error(-EIO).errc(), Errc::job_failed);
	EXPECT_EQ(accel::job_status_error(-ETIMEDOUT).errc(), Errc::timeout);
	EXPECT_EQ(accel::job_status_error(-ECANCELED).errc(), Errc::device_lost);
	EXPECT_EQ(accel::job_status_error(-ENODEV).errc(), Errc::device_lost);
	EXPECT_EQ(accel::job_status_error(-ECANCELED).sys_errno(), ECANCELED);
	/* A job a reset stopped part-way: not a resource limit as for an ioctl. */
	EXPECT_EQ(accel::job_status_error(-EAGAIN).errc(), Errc::device_lost);
	EXPECT_EQ(accel::job_status_error(-EAGAIN).sys_errno(), EAGAIN);
	EXPECT_NE(accel::job_status_error(-EAGAIN).message().find("partly written"),
		  std::string::npos);
}

TEST(ErrorValue, WhatCarriesMessageKindAndErrno)
{
	accel::Error e = accel::Error::from_errno(EACCES, "cannot open /dev/accel/accel0");
	EXPECT_EQ(e.errc(), Errc::permission_denied);
	EXPECT_EQ(e.sys_errno(), EACCES);
	std::string w = e.what();
	EXPECT_NE(w.find("/dev/accel/accel0"), std::string::npos) << w;
	EXPECT_NE(w.find("EACCES"), std::string::npos) << w;
	EXPECT_NE(w.find("permission denied"), std::string::npos) << w;

	accel::Error c = accel::Error(Errc::timeout, "waiting").context("job 3");
	EXPECT_EQ(c.message(), "job 3: waiting");
}

TEST(ResultValue, HoldsValueOrError)
{
	accel::Result<int> ok = 42;
	ASSERT_TRUE(ok);
	EXPECT_EQ(*ok, 42);
	EXPECT_FALSE(ok.code());
	EXPECT_EQ(ok.value_or(7), 42);

	accel::Result<int> bad = accel::Error(Errc::invalid_argument, "nope");
	ASSERT_FALSE(bad);
	EXPECT_EQ(bad.code(), Errc::invalid_argument);
	EXPECT_EQ(bad.error().message(), "nope");
	EXPECT_EQ(bad.value_or(7), 7);

	accel::Result<void> v;
	EXPECT_TRUE(v);
	accel::Result<void> vbad = accel::Error(Errc::timeout, "late");
	EXPECT_FALSE(vbad);
	EXPECT_EQ(vbad.code(), std::errc::timed_out);
}

TEST(ResultValue, MoveOnlyValues)
{
	accel::Result<accel::UniqueFd> r = accel::UniqueFd(-1);
	ASSERT_TRUE(r);
	accel::UniqueFd fd = std::move(r).value();
	EXPECT_FALSE(fd.is_valid());
}

TEST(ResultValueDeathTest, ValueOfErrorAborts)
{
	accel::Result<int> bad = accel::Error(Errc::no_device, "no accel device here");
	EXPECT_DEATH((void)bad.value(), "no accel device here");
}
