// SPDX-License-Identifier: MIT
/*
 * Small helpers shared by the in-guest suites that use raw ioctls: a
 * monotonic clock, an errno-returning ioctl wrapper and an owned file
 * descriptor.
 */
#ifndef REFNPU_TESTS_GUEST_UTIL_H
#define REFNPU_TESTS_GUEST_UTIL_H

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include <xf86drm.h>

namespace refnpu_test {

/*
 * DRM_IOCTL_SYNCOBJ_EVENTFD (Linux 6.6), which Debian 12's libdrm headers
 * lack: struct drm_syncobj_eventfd of include/uapi/drm/drm.h.
 */
struct syncobj_eventfd {
	__u32 handle;
	__u32 flags;
	__u64 point;
	__s32 fd;
	__u32 pad;
};
#define REFNPU_TEST_IOCTL_SYNCOBJ_EVENTFD DRM_IOWR(0xCF, struct refnpu_test::syncobj_eventfd)

/* CLOCK_MONOTONIC in nanoseconds, the clock of the uAPI's deadlines. */
inline int64_t now_ns()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/* ioctl returning 0 or -errno, retrying on EINTR/EAGAIN as libdrm does. */
inline int xioctl(int fd, unsigned long req, void *arg)
{
	return drmIoctl(fd, req, arg) ? -errno : 0;
}

/*
 * Whether every streaming DMA mapping bounces (swiotlb=force): imported
 * buffers are then coherent only if their exporter syncs our mapping,
 * which vgem's does not (Documentation/dma-buf.rst).
 */
inline bool dma_always_bounced()
{
	std::ifstream f("/proc/cmdline");
	std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());

	return cmdline.find("swiotlb=") != std::string::npos &&
	       cmdline.find("force") != std::string::npos;
}

/* An owned file descriptor, closed on destruction. */
class Fd
{
public:
	explicit Fd(int fd = -1) : fd_(fd) { }
	Fd(const Fd &) = delete;
	Fd &operator=(const Fd &) = delete;
	Fd(Fd &&o) noexcept : fd_(o.release()) { }
	Fd &operator=(Fd &&o) noexcept
	{
		reset(o.release());
		return *this;
	}
	~Fd() { reset(); }
	int get() const { return fd_; }
	int release()
	{
		int fd = fd_;

		fd_ = -1;
		return fd;
	}
	void reset(int fd = -1)
	{
		if (fd_ >= 0)
			close(fd_);
		fd_ = fd;
	}

private:
	int fd_;
};

} // namespace refnpu_test

#endif /* REFNPU_TESTS_GUEST_UTIL_H */
