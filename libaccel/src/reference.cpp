// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The reference machine: a host-memory device address space driving the
 * shared compute engine (kernel/hw/refnpu_engine.c, compiled into libaccel).
 */
#include <bit>
#include <cmath>
#include <cstring>
#include <map>

#include <accel/reference.h>

#include "refnpu_engine.h"

namespace accel {

namespace {

constexpr uint64_t page = REFNPU_PAGE_SIZE;
/* First address handed out; low addresses stay unmapped to catch nulls. */
constexpr uint64_t va_base = 1ULL << 20;
/* The command buffer of a run lives at the top of the address space. */
constexpr uint64_t cmd_va = REFNPU_VA_LIMIT - REFNPU_CMDBUF_MAX_SIZE - page;

struct Region {
	std::unique_ptr<std::byte[]> bytes;
	uint64_t size = 0;
	bool read_only = false;
};

} // namespace

struct ReferenceMachine::Impl {
	std::map<uint64_t, Region> regions;
	uint64_t next_va = va_base;
	EngineStatus status;
	std::span<const std::byte> cmds;

	/* The region holding va, or nullptr. */
	const Region *find(uint64_t va, uint64_t &base) const
	{
		auto it = regions.upper_bound(va);
		if (it == regions.begin())
			return nullptr;
		--it;
		if (va - it->first >= it->second.size)
			return nullptr;
		base = it->first;
		return &it->second;
	}

	static __u32 read(void *opaque, __u64 va, void *buf, __u64 len, __u64 *fault_va)
	{
		auto *self = static_cast<Impl *>(opaque);
		if (va >= cmd_va && va - cmd_va < self->cmds.size()) {
			if (len > self->cmds.size() - (va - cmd_va)) {
				*fault_va = cmd_va + self->cmds.size();
				return REFNPU_ERR_MMU_UNMAPPED;
			}
			std::memcpy(buf, self->cmds.data() + (va - cmd_va), len);
			return REFNPU_ERR_NONE;
		}
		uint64_t base;
		const Region *r = self->find(va, base);
		if (!r) {
			*fault_va = va;
			return REFNPU_ERR_MMU_UNMAPPED;
		}
		uint64_t off = va - base;
		if (len > r->size - off) {
			*fault_va = base + r->size;
			return REFNPU_ERR_MMU_UNMAPPED;
		}
		std::memcpy(buf, r->bytes.get() + off, len);
		return REFNPU_ERR_NONE;
	}

	static __u32 write(void *opaque, __u64 va, const void *buf, __u64 len, __u64 *fault_va)
	{
		auto *self = static_cast<Impl *>(opaque);
		if (va >= cmd_va && va - cmd_va < self->cmds.size()) {
			*fault_va = va;
			return REFNPU_ERR_MMU_WRITE_PERM;
		}
		uint64_t base;
		const Region *r = self->find(va, base);
		if (!r) {
			*fault_va = va;
			return REFNPU_ERR_MMU_UNMAPPED;
		}
		if (r->read_only) {
			*fault_va = va;
			return REFNPU_ERR_MMU_WRITE_PERM;
		}
		uint64_t off = va - base;
		if (len > r->size - off) {
			/* Like the device: the prefix in the mapped page is stored. */
			std::memcpy(r->bytes.get() + off, buf, r->size - off);
			*fault_va = base + r->size;
			return REFNPU_ERR_MMU_UNMAPPED;
		}
		std::memcpy(r->bytes.get() + off, buf, len);
		return REFNPU_ERR_NONE;
	}
};

ReferenceMachine::ReferenceMachine() : impl_(std::make_unique<Impl>())
{
}
ReferenceMachine::~ReferenceMachine() = default;
ReferenceMachine::ReferenceMachine(ReferenceMachine &&) noexcept = default;
ReferenceMachine &ReferenceMachine::operator=(ReferenceMachine &&) noexcept = default;

Memory ReferenceMachine::alloc(uint64_t size, bool device_read_only)
{
	uint64_t rounded = (std::max<uint64_t>(size, 1) + page - 1) & ~(page - 1);
	Region r;
	r.bytes = std::make_unique<std::byte[]>(rounded);
	r.size = rounded;
	r.read_only = device_read_only;
	uint64_t va = impl_->next_va;
	/* One unmapped guard page after every allocation. */
	impl_->next_va += rounded + page;
	impl_->regions.emplace(va, std::move(r));
	return Memory{0, va, rounded};
}

void ReferenceMachine::free(const Memory &mem)
{
	impl_->regions.erase(mem.va);
}

std::span<std::byte> ReferenceMachine::data(const Memory &mem) const
{
	auto it = impl_->regions.find(mem.va);
	if (it == impl_->regions.end())
		return {};
	return {it->second.bytes.get(), std::min(mem.size, it->second.size)};
}

const EngineStatus &ReferenceMachine::last_status() const noexcept
{
	return impl_->status;
}

const char *engine_error_name(uint32_t code) noexcept
{
	return refnpu_engine_err_name(code);
}

Result<void> ReferenceMachine::run(std::span<const std::byte> commands)
{
	if (commands.size() > REFNPU_CMDBUF_MAX_SIZE)
		return Error(Errc::invalid_argument,
			     "command buffer of " + std::to_string(commands.size()) +
				     " bytes is above the device's 1 GiB limit");
	struct refnpu_engine_env env = {};
	env.opaque = impl_.get();
	env.read = &Impl::read;
	env.write = &Impl::write;
	impl_->cmds = commands;
	struct refnpu_engine_result res = {};
	refnpu_engine_run(&env, cmd_va, commands.size(), &res);
	impl_->cmds = {};
	impl_->status = {res.status, res.fault_flags, res.fault_va, res.cmd_index, res.cmd_offset};
	if (res.status == REFNPU_ERR_NONE)
		return {};
	uint16_t opcode = 0;
	if (res.cmd_offset + sizeof(refnpu_cmd_hdr) <= commands.size())
		std::memcpy(&opcode, commands.data() + res.cmd_offset, sizeof(opcode));
	char va[64] = "";
	if (res.fault_va)
		std::snprintf(va, sizeof(va), " at device address 0x%llx",
			      static_cast<unsigned long long>(res.fault_va));
	return Error(Errc::job_failed,
		     "reference engine: command " + std::to_string(res.cmd_index) + " (opcode " +
			     std::to_string(opcode) + ", offset " + std::to_string(res.cmd_offset) +
			     ") failed with " + refnpu_engine_err_name(res.status) + va);
}

uint16_t fp32_to_fp16(float f) noexcept
{
	return refnpu_fp32_to_fp16(std::bit_cast<uint32_t>(f));
}

float fp16_to_fp32(uint16_t h) noexcept
{
	return std::bit_cast<float>(refnpu_fp16_to_fp32(h));
}

uint16_t fp32_to_bf16(float f) noexcept
{
	return refnpu_fp32_to_bf16(std::bit_cast<uint32_t>(f));
}

float bf16_to_fp32(uint16_t h) noexcept
{
	return std::bit_cast<float>(refnpu_bf16_to_fp32(h));
}

double gemm_tolerance(uint32_t k, double abs_sum) noexcept
{
	return REFNPU_GEMM_TOL_FACTOR * (double(k) + 1) * std::ldexp(1.0, -24) * abs_sum +
	       double(std::bit_cast<float>(uint32_t(REFNPU_GEMM_TOL_ABS_BITS)));
}

} // namespace accel
