// SPDX-License-Identifier: MIT
/*
 * What the accel tools share: exit codes, error reporting, formatting and
 * statistics.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <accel/accel.h>

namespace tools {

/* Exit codes of every tool (documented in --help and Documentation/tools.rst). */
enum Exit {
	exit_ok = 0,
	/* The operation ran and failed: a check mismatched, a job failed, a timeout. */
	exit_failed = 1,
	/* No such device (none present, driver not loaded, wrong index). */
	exit_no_device = 2,
	/* The device node or debugfs file is not accessible. */
	exit_permission = 3,
	/* The driver lacks what the command needs (not refnpu, uAPI too old). */
	exit_unsupported = 4,
	/* Bad command line. */
	exit_usage = 64,
};

/* Help text paragraph on exit codes, shared by every --help. */
extern const char *const exit_codes_help;

/* The exit code for an error. */
int exit_code(const accel::Error &e);
/* Print "tool: message" to stderr and return exit_code(e). */
int report(const char *tool, const accel::Error &e);
/* Print "tool: message" (and the usage hint) to stderr; return exit_usage. */
int usage_error(const char *tool, const std::string &message);

/* Open the device named by spec (index, node, accelN, PCI address). */
accel::Result<accel::Device> open_device(const std::string &spec);

/* printf into a std::string. */
std::string strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "1.5 MiB" */
std::string human_bytes(uint64_t bytes);
/* "12.3 us" */
std::string human_ns(double ns);

/* Parse an unsigned integer (decimal, or 0x hex); false if not one. */
bool parse_u64(const std::string &s, uint64_t &out);
/* Parse a positive number (may be fractional). */
bool parse_double(const std::string &s, double &out);

using Clock = std::chrono::steady_clock;
inline double ns_since(Clock::time_point t0)
{
	return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

/* Percentiles of samples (sorted copy); p in [0, 100]. */
struct Stats {
	double min = 0, p50 = 0, p99 = 0, max = 0, mean = 0;
	size_t n = 0;
};
Stats stats(std::vector<double> samples);

} // namespace tools
