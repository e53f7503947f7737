// SPDX-License-Identifier: MIT
/*
 * DRM client statistics from /proc/<pid>/fdinfo (drm-usage-stats): which
 * processes hold accel devices open, their engine time and memory.
 */
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tools {

struct DrmClient {
	pid_t pid = 0;
	std::string comm;
	/* Device node the descriptor refers to, e.g. /dev/accel/accel0. */
	std::string node;
	std::string driver;
	uint64_t client_id = 0;
	/* drm-engine-<name>: busy nanoseconds. */
	std::map<std::string, uint64_t> engine_ns;
	/* drm-<stat>-<region>: bytes (total, shared, active, resident, purgeable). */
	std::map<std::string, uint64_t> memory;
	/* How many descriptors of the process refer to this client. */
	unsigned fds = 0;
};

/*
 * Every DRM client on accel nodes (one entry per process and client id).
 * Processes whose fdinfo cannot be read (other users, without privileges)
 * are counted in *unreadable.
 */
std::vector<DrmClient> scan_accel_clients(unsigned *unreadable = nullptr);

} // namespace tools
