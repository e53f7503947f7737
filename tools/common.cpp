// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "common.h"

namespace tools {

const char *const exit_codes_help =
	"Exit status: 0 success; 1 the operation ran and failed (check mismatch,\n"
	"job error, timeout); 2 no such device; 3 permission denied; 4 not\n"
	"supported by this driver or uAPI version; 64 bad command line.\n";

int exit_code(const accel::Error &e)
{
	switch (e.errc()) {
	case accel::Errc::no_device:
		return exit_no_device;
	case accel::Errc::permission_denied:
		return exit_permission;
	case accel::Errc::unsupported:
		return exit_unsupported;
	case accel::Errc::invalid_argument:
	case accel::Errc::device_lost:
	case accel::Errc::timeout:
	case accel::Errc::resource_limit:
	case accel::Errc::job_failed:
	case accel::Errc::system_error:
		break;
	}
	return exit_failed;
}

int report(const char *tool, const accel::Error &e)
{
	std::fprintf(stderr, "%s: %s\n", tool, e.what().c_str());
	return exit_code(e);
}

int usage_error(const char *tool, const std::string &message)
{
	std::fprintf(stderr, "%s: %s (see '%s --help')\n", tool, message.c_str(), tool);
	return exit_usage;
}

accel::Result<accel::Device> open_device(const std::string &spec)
{
	return accel::Device::open(std::string_view(spec));
}

std::string strf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[512];
	int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < int(sizeof(buf)))
		return buf;
	std::string s(size_t(n) + 1, '\0');
	va_start(ap, fmt);
	std::vsnprintf(s.data(), s.size(), fmt, ap);
	va_end(ap);
	s.resize(size_t(n));
	return s;
}

std::string human_bytes(uint64_t b)
{
	const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = double(b);
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	return i ? strf("%.1f %s", v, unit[i]) : strf("%llu B", (unsigned long long)b);
}

std::string human_ns(double ns)
{
	if (ns < 1e3)
		return strf("%.0f ns", ns);
	if (ns < 1e6)
		return strf("%.1f us", ns / 1e3);
	if (ns < 1e9)
		return strf("%.2f ms", ns / 1e6);
	return strf("%.3f s", ns / 1e9);
}

bool parse_u64(const std::string &s, uint64_t &out)
{
	if (s.empty() || s[0] == '-')
		return false;
	char *end = nullptr;
	errno = 0;
	unsigned long long v = std::strtoull(s.c_str(), &end, 0);
	if (errno || *end)
		return false;
	out = v;
	return true;
}

bool parse_double(const std::string &s, double &out)
{
	char *end = nullptr;
	double v = std::strtod(s.c_str(), &end);
	if (s.empty() || *end || !std::isfinite(v) || v < 0)
		return false;
	out = v;
	return true;
}

Stats stats(std::vector<double> v)
{
	Stats s;
	s.n = v.size();
	if (v.empty())
		return s;
	std::sort(v.begin(), v.end());
	auto pct = [&](double p) {
		size_t i = size_t(std::ceil(p / 100.0 * double(v.size()))) - (p > 0 ? 1 : 0);
		return v[std::min(i, v.size() - 1)];
	};
	s.min = v.front();
	s.max = v.back();
	s.p50 = pct(50);
	s.p99 = pct(99);
	s.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
	return s;
}

} // namespace tools
