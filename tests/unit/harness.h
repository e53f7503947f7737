// SPDX-License-Identifier: MIT
//
// Test harness for the refnpu engine: a flat "device memory" with
// per-page permissions and fault injection behind the engine callbacks,
// a command-buffer builder and numeric helpers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include "refnpu_engine.h"
}

namespace refnpu_test {

inline uint32_t f2u(float f)
{
	uint32_t u;
	std::memcpy(&u, &f, 4);
	return u;
}

inline float u2f(uint32_t u)
{
	float f;
	std::memcpy(&f, &u, 4);
	return f;
}

// Distance in units in the last place between two finite floats (or NaNs
// compared as equal, infinities compared exactly).
inline int64_t ulp_diff(float a, float b)
{
	if (std::isnan(a) && std::isnan(b))
		return 0;
	if (std::isnan(a) || std::isnan(b))
		return INT64_MAX;
	auto key = [](float x) {
		int32_t i = static_cast<int32_t>(f2u(x));
		return i < 0 ? static_cast<int64_t>(INT32_MIN) - i : static_cast<int64_t>(i);
	};
	int64_t d = key(a) - key(b);
	return d < 0 ? -d : d;
}

// Device memory: VA window [kBase, kBase + size) made of 4 KiB pages, each
// unmapped, read-only, write-only or read-write.
class FlatMem
{
public:
	static constexpr uint64_t kBase = 0x10000000ULL;
	static constexpr uint64_t kPage = 4096;
	enum Perm : uint8_t { kNone = 0, kR = 1, kW = 2, kRW = 3 };

	struct Inject {
		uint64_t lo, hi; // faulting VA range [lo, hi)
		uint32_t code;
		bool on_read = true, on_write = true;
		int skip = 0; // let this many matching accesses pass first
		bool fired = false;
	};

	explicit FlatMem(size_t bytes = 8 << 20) : mem_(bytes, 0xcd), perm_(bytes / kPage, kRW)
	{
		env_.opaque = this;
		env_.read = &FlatMem::read_cb;
		env_.write = &FlatMem::write_cb;
		env_.checkpoint = &FlatMem::checkpoint_cb;
		env_.gemm_f32 = nullptr;
	}

	const refnpu_engine_env *env() const { return &env_; }
	refnpu_engine_env *mutable_env() { return &env_; }

	// Bump allocator; returns a device VA aligned to `align`.
	uint64_t alloc(uint64_t bytes, uint64_t align = 64)
	{
		next_ = (next_ + align - 1) / align * align;
		uint64_t va = kBase + next_;
		next_ += bytes ? bytes : 1;
		if (next_ > mem_.size())
			throw std::runtime_error("FlatMem exhausted");
		return va;
	}

	// Start the next allocation on a fresh page.
	uint64_t alloc_pages(uint64_t pages)
	{
		uint64_t va = alloc(pages * kPage, kPage);
		return va;
	}

	void set_perm(uint64_t va, uint64_t len, Perm p)
	{
		for (uint64_t a = va & ~(kPage - 1); a < va + len; a += kPage)
			perm_.at((a - kBase) / kPage) = p;
	}

	template <typename T>
	void put(uint64_t va, const std::vector<T> &v)
	{
		if (!v.empty())
			std::memcpy(host(va, v.size() * sizeof(T)), v.data(), v.size() * sizeof(T));
	}
	template <typename T>
	void put1(uint64_t va, T v)
	{
		std::memcpy(host(va, sizeof(T)), &v, sizeof(T));
	}
	template <typename T>
	std::vector<T> get(uint64_t va, size_t n)
	{
		std::vector<T> v(n);
		if (n)
			std::memcpy(v.data(), host(va, n * sizeof(T)), n * sizeof(T));
		return v;
	}
	template <typename T>
	T get1(uint64_t va)
	{
		return get<T>(va, 1)[0];
	}

	// 2-D helpers: rows x cols elements at va with pitch bytes.
	template <typename T>
	void put2d(uint64_t va, uint64_t pitch, size_t rows, size_t cols, const std::vector<T> &v)
	{
		for (size_t r = 0; r < rows; r++)
			std::memcpy(host(va + r * pitch, cols * sizeof(T)), &v[r * cols],
				    cols * sizeof(T));
	}
	template <typename T>
	std::vector<T> get2d(uint64_t va, uint64_t pitch, size_t rows, size_t cols)
	{
		std::vector<T> v(rows * cols);
		for (size_t r = 0; r < rows; r++)
			std::memcpy(&v[r * cols], host(va + r * pitch, cols * sizeof(T)),
				    cols * sizeof(T));
		return v;
	}

	uint8_t *host(uint64_t va, uint64_t len)
	{
		if (va < kBase || va - kBase + len > mem_.size())
			throw std::out_of_range("host(): VA outside FlatMem");
		return &mem_[va - kBase];
	}

	std::optional<Inject> inject;
	uint64_t reads = 0, writes = 0, read_bytes = 0, write_bytes = 0;
	uint64_t checkpoints = 0;
	// Stop with this code once `stop_after` checkpoints have passed.
	uint32_t stop_code = 0;
	uint64_t stop_after = 0;
	uint64_t last_fault_va = 0;
	// Largest single transfer seen (the engine must chunk).
	uint64_t max_xfer = 0;

private:
	uint32_t access(uint64_t va, void *buf, uint64_t len, uint64_t *fault_va, bool is_write)
	{
		max_xfer = std::max(max_xfer, len);
		if (inject && (is_write ? inject->on_write : inject->on_read) && va < inject->hi &&
		    va + len > inject->lo) {
			if (inject->skip > 0) {
				inject->skip--;
			} else {
				*fault_va = last_fault_va = std::max(va, inject->lo);
				inject->fired = true;
				return inject->code;
			}
		}
		uint64_t end = va + len;
		if (end < va) {
			*fault_va = last_fault_va = va;
			return REFNPU_ERR_MMU_UNMAPPED;
		}
		for (uint64_t a = va; a < end; a = (a & ~(kPage - 1)) + kPage) {
			if (a < kBase || a - kBase >= mem_.size()) {
				*fault_va = last_fault_va = a;
				return REFNPU_ERR_MMU_UNMAPPED;
			}
			uint8_t p = perm_[(a - kBase) / kPage];
			if (p == kNone) {
				*fault_va = last_fault_va = a;
				return REFNPU_ERR_MMU_UNMAPPED;
			}
			if (!(p & (is_write ? kW : kR))) {
				*fault_va = last_fault_va = a;
				return is_write ? REFNPU_ERR_MMU_WRITE_PERM
						: REFNPU_ERR_MMU_READ_PERM;
			}
		}
		if (is_write) {
			writes++;
			write_bytes += len;
			std::memcpy(&mem_[va - kBase], buf, len);
		} else {
			reads++;
			read_bytes += len;
			std::memcpy(buf, &mem_[va - kBase], len);
		}
		return REFNPU_ERR_NONE;
	}

	// The engine API uses the kernel's __u64 (unsigned long long).
	static __u32 read_cb(void *o, __u64 va, void *buf, __u64 len, __u64 *fva)
	{
		uint64_t f = *fva;
		__u32 st = static_cast<FlatMem *>(o)->access(va, buf, len, &f, false);
		*fva = f;
		return st;
	}
	static __u32 write_cb(void *o, __u64 va, const void *buf, __u64 len, __u64 *fva)
	{
		uint64_t f = *fva;
		__u32 st = static_cast<FlatMem *>(o)->access(va, const_cast<void *>(buf), len, &f,
							     true);
		*fva = f;
		return st;
	}
	static __u32 checkpoint_cb(void *o)
	{
		auto *m = static_cast<FlatMem *>(o);
		m->checkpoints++;
		if (m->stop_code && m->checkpoints > m->stop_after)
			return m->stop_code;
		return 0;
	}

	std::vector<uint8_t> mem_;
	std::vector<uint8_t> perm_;
	uint64_t next_ = 0;
	refnpu_engine_env env_{};
};

// Command-buffer builder: appends commands, then places them in FlatMem.
class CmdBuf
{
public:
	template <typename T>
	CmdBuf &add(T cmd, uint16_t opcode)
	{
		static_assert(sizeof(T) % 8 == 0);
		cmd.hdr.opcode = opcode;
		cmd.hdr.len_dw = sizeof(T) / 4;
		const auto *p = reinterpret_cast<const uint8_t *>(&cmd);
		bytes_.insert(bytes_.end(), p, p + sizeof(T));
		return *this;
	}
	CmdBuf &raw(const std::vector<uint8_t> &b)
	{
		bytes_.insert(bytes_.end(), b.begin(), b.end());
		return *this;
	}
	const std::vector<uint8_t> &bytes() const { return bytes_; }

	refnpu_engine_result run(FlatMem &m) const
	{
		uint64_t va = m.alloc(bytes_.size(), 8);
		m.put(va, bytes_);
		refnpu_engine_result res{};
		uint32_t st = refnpu_engine_run(m.env(), va, bytes_.size(), &res);
		EXPECT_EQ(st, res.status);
		last_va = va;
		return res;
	}
	mutable uint64_t last_va = 0;

private:
	std::vector<uint8_t> bytes_;
};

// Run one command through a fresh single-command buffer.
template <typename T>
refnpu_engine_result run1(FlatMem &m, T cmd, uint16_t opcode)
{
	CmdBuf b;
	b.add(cmd, opcode);
	return b.run(m);
}

inline refnpu_tensor2d t2d(uint64_t va, uint64_t pitch)
{
	return refnpu_tensor2d{va, pitch};
}

// Deterministic pseudo-random numbers (xorshift), independent of libstdc++.
class Rng
{
public:
	explicit Rng(uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ULL + 1) { }
	uint64_t next()
	{
		s_ ^= s_ << 13;
		s_ ^= s_ >> 7;
		s_ ^= s_ << 17;
		return s_;
	}
	float uniform(float lo, float hi)
	{
		return lo + (hi - lo) * static_cast<float>((next() >> 40) * (1.0 / (1ULL << 24)));
	}
	int8_t s8() { return static_cast<int8_t>(next() >> 56); }
	std::vector<float> floats(size_t n, float lo = -2.0f, float hi = 2.0f)
	{
		std::vector<float> v(n);
		for (auto &x : v)
			x = uniform(lo, hi);
		return v;
	}

private:
	uint64_t s_;
};

#define EXPECT_OK(res)                                                                             \
	EXPECT_EQ((res).status, static_cast<uint32_t>(REFNPU_ERR_NONE))                            \
		<< refnpu_engine_err_name((res).status)
#define EXPECT_STATUS(res, code)                                                                   \
	EXPECT_EQ((res).status, static_cast<uint32_t>(code)) << refnpu_engine_err_name((res).status)

} // namespace refnpu_test
