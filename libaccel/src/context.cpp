// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Jobs and contexts: DRM_IOCTL_REFNPU_SUBMIT with a timeline syncobj per
 * context as the completion handle.
 */
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include <drm/refnpu_accel.h>

#include <accel/context.h>
#include <accel/hw/refnpu_hw.h>

#include "internal.h"

namespace accel {

static_assert(uint32_t(Priority::normal) == DRM_REFNPU_PRIORITY_NORMAL);
static_assert(uint32_t(Priority::low) == DRM_REFNPU_PRIORITY_LOW);
static_assert(uint32_t(Priority::high) == DRM_REFNPU_PRIORITY_HIGH);
static_assert(access_read == DRM_REFNPU_BO_REF_READ);
static_assert(access_write == DRM_REFNPU_BO_REF_WRITE);

namespace detail {

struct ContextImpl {
	Device dev;
	ContextOptions opts;
	std::shared_ptr<Syncobj> timeline;

	std::mutex lock;
	uint64_t last_point = 0;
	Fence last;
	/*
	 * Fence states whose binary syncobj receives each job's own fence (its
	 * error status), reused once no Fence refers to them any more. Only
	 * this ring hands out references, under lock, so use_count() == 1
	 * there means free: other threads can drop references, never add one.
	 */
	std::vector<std::shared_ptr<FenceState>> ring;
	size_t ring_next = 0;

	Result<std::shared_ptr<FenceState>> fence_state();
};

/* A free FenceState of the ring, or a new one. Called under lock. */
Result<std::shared_ptr<FenceState>> ContextImpl::fence_state()
{
	size_t n = ring.size();
	for (size_t i = 0; i < std::min<size_t>(n, 4); i++) {
		auto &st = ring[(ring_next + i) % n];
		if (st.use_count() == 1) {
			ring_next = (ring_next + i + 1) % n;
			return st;
		}
	}
	auto s = Syncobj::create(dev.impl(), false);
	if (!s)
		return std::move(s).error();
	auto st = std::make_shared<FenceState>();
	st->status = std::move(*s);
	st->sync = timeline ? timeline : st->status;
	ring.push_back(st);
	return st;
}

/* A small array on the stack, on the heap beyond N elements. */
template <typename T, size_t N>
class SmallVec
{
public:
	explicit SmallVec(size_t n) : n_(n)
	{
		if (n > N)
			heap_.resize(n);
	}
	T *data() { return n_ > N ? heap_.data() : inline_; }
	T &operator[](size_t i) { return data()[i]; }
	size_t size() const { return n_; }
	void resize_down(size_t n) { n_ = std::min(n_, n); }

private:
	size_t n_;
	T inline_[N];
	std::vector<T> heap_;
};

namespace {

/* Opcodes used by a command buffer that the device does not support. */
Result<void> check_ops(std::span<const std::byte> cmds, uint64_t ops)
{
	size_t off = 0;
	while (off + sizeof(refnpu_cmd_hdr) <= cmds.size()) {
		refnpu_cmd_hdr hdr;
		std::memcpy(&hdr, cmds.data() + off, sizeof(hdr));
		if (hdr.opcode >= 64 || !(ops & (1ULL << hdr.opcode)))
			return Error(Errc::unsupported,
				     "opcode " + std::to_string(hdr.opcode) +
					     " is not supported by this device "
					     "(DRM_REFNPU_PARAM_OPS); update the device or driver");
		if (!hdr.len_dw)
			break;
		off += size_t(hdr.len_dw) * 4;
	}
	return {};
}

} // namespace

} // namespace detail

void Job::use(uint32_t handle, uint32_t access)
{
	if (!handle)
		return;
	for (auto &u : uses_) {
		if (u.handle == handle) {
			u.access |= access;
			return;
		}
	}
	uses_.push_back({handle, access});
}

Result<Job> Job::create(const Device &dev, const CommandEncoder &enc)
{
	if (auto r = dev.require_refnpu(); !r)
		return std::move(r).error();
	if (!enc.size())
		return Error(Errc::invalid_argument, "Job::create: the encoder holds no command");
	if (dev.impl()->ops)
		if (auto r = detail::check_ops(enc.data(), dev.impl()->ops); !r)
			return std::move(r).error();
	auto buf = dev.create_buffer(enc.size());
	if (!buf)
		return std::move(buf).error().context("allocating the command buffer");
	{
		auto map = buf->map();
		if (!map)
			return std::move(map).error().context("mapping the command buffer");
		std::memcpy(map->data(), enc.data().data(), enc.size());
	}
	auto job = from_buffer(std::move(*buf), 0, enc.size());
	if (!job)
		return job;
	for (const auto &u : enc.buffer_uses())
		job->use(u.handle, u.access);
	return job;
}

Result<Job> Job::from_buffer(Buffer cmd, uint64_t offset, uint64_t size)
{
	if (!cmd.is_valid())
		return Error(Errc::invalid_argument, "Job::from_buffer: empty command buffer");
	if (!size || size % REFNPU_CMD_ALIGN || offset % REFNPU_CMD_ALIGN)
		return Error(Errc::invalid_argument,
			     "Job::from_buffer: command offset and size must be non-zero "
			     "multiples of 8 (offset " +
				     std::to_string(offset) + ", size " + std::to_string(size) +
				     ")");
	if (offset > cmd.size() || size > cmd.size() - offset)
		return Error(Errc::invalid_argument,
			     "Job::from_buffer: commands [" + std::to_string(offset) + ", +" +
				     std::to_string(size) + ") exceed the " +
				     std::to_string(cmd.size()) + "-byte buffer");
	Job j;
	j.cmd_ = std::move(cmd);
	j.offset_ = offset;
	j.size_ = size;
	return j;
}

Result<Context> Context::create(const Device &dev, const ContextOptions &opts)
{
	if (auto r = dev.require_refnpu(); !r)
		return std::move(r).error();
	const auto &impl = dev.impl();
	if (impl->num_queues && opts.queue >= impl->num_queues)
		return Error(Errc::invalid_argument,
			     "queue " + std::to_string(opts.queue) +
				     " does not exist: " + dev.node() + " has " +
				     std::to_string(impl->num_queues) + " queues");
	if (uint32_t(opts.priority) > DRM_REFNPU_PRIORITY_HIGH)
		return Error(Errc::invalid_argument,
			     "unknown priority " + std::to_string(uint32_t(opts.priority)));
	auto ctx = std::make_shared<detail::ContextImpl>();
	ctx->dev = dev;
	ctx->opts = opts;
	if (impl->caps & DRM_REFNPU_CAP_TIMELINE_SYNCOBJ) {
		auto s = detail::Syncobj::create(impl, true);
		if (!s)
			return std::move(s).error();
		ctx->timeline = std::move(*s);
	}
	Context c;
	c.impl_ = std::move(ctx);
	return c;
}

const Device &Context::device() const noexcept
{
	static const Device none;
	return impl_ ? impl_->dev : none;
}

const ContextOptions &Context::options() const noexcept
{
	static const ContextOptions none;
	return impl_ ? impl_->opts : none;
}

Result<Fence> Context::submit(const Job &job)
{
	if (!impl_)
		return Error(Errc::invalid_argument, "submit on an empty Context");
	const auto &dimpl = impl_->dev.impl();
	if (!job.command_buffer().is_valid())
		return Error(Errc::invalid_argument, "submit of an empty Job");
	if (!(job.command_buffer().device() == impl_->dev))
		return Error(Errc::invalid_argument,
			     "submit: the job's command buffer belongs to another device");

	detail::SmallVec<drm_refnpu_bo_ref, 16> bos(job.uses().size());
	for (size_t i = 0; i < job.uses().size(); i++)
		bos[i] = {job.uses()[i].handle, job.uses()[i].access};

	/* Fences of other devices travel as sync_files. */
	std::vector<Fence> imported;
	detail::SmallVec<drm_refnpu_sync, 8> in(job.dependencies().size());
	size_t n_in = 0;
	for (const auto &f : job.dependencies()) {
		if (!f.is_valid())
			continue;
		if (f.state()->sync->dev != dimpl) {
			auto sf = f.export_sync_file();
			if (!sf)
				return std::move(sf).error().context("submit: foreign in-fence");
			auto nf = Fence::import_sync_file(impl_->dev, sf->get());
			if (!nf)
				return std::move(nf).error().context("submit: foreign in-fence");
			imported.push_back(*nf);
			in[n_in++] = {nf->syncobj_handle(), 0, 0};
		} else {
			in[n_in++] = {f.syncobj_handle(), 0, f.point()};
		}
	}
	in.resize_down(n_in);

	struct drm_refnpu_submit s = {};
	s.queue = impl_->opts.queue;
	s.priority = uint32_t(impl_->opts.priority);
	s.flags = job.implicit_sync() ? 0 : DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC;
	s.cmd_handle = job.command_buffer().handle();
	s.cmd_offset = job.command_offset();
	s.cmd_size = job.command_size();
	s.bos = reinterpret_cast<uintptr_t>(bos.data());
	s.bo_count = uint32_t(bos.size());
	s.bo_stride = sizeof(drm_refnpu_bo_ref);
	s.in_syncs = reinterpret_cast<uintptr_t>(in.data());
	s.in_sync_count = uint32_t(in.size());
	s.in_sync_stride = sizeof(drm_refnpu_sync);
	/*
	 * Out-fences: the context's timeline point, plus a binary syncobj that
	 * holds the job's own fence, through which its error is visible (a
	 * timeline point only holds a dma_fence_chain, which drops errors).
	 */
	drm_refnpu_sync out[2] = {};
	s.out_syncs = reinterpret_cast<uintptr_t>(out);
	s.out_sync_count = impl_->timeline ? 2 : 1;
	s.out_sync_stride = sizeof(drm_refnpu_sync);

	/* Points must reach the timeline in order: submit under the lock. */
	std::lock_guard<std::mutex> lk(impl_->lock);
	auto st = impl_->fence_state();
	if (!st)
		return std::move(st).error();
	out[0].handle = (*st)->status->handle;
	if (impl_->timeline) {
		out[1].handle = impl_->timeline->handle;
		out[1].point = impl_->last_point + 1;
	}
	int err = ioctl_retry(dimpl->fd.get(), DRM_IOCTL_REFNPU_SUBMIT, &s);
	if (err) {
		switch (err) {
		case EPERM:
			return Error(Errc::permission_denied,
				     "high priority needs CAP_SYS_NICE (run as root or grant "
				     "the capability), or use Priority::normal",
				     err);
		case ECANCELED:
			return Error(Errc::device_lost,
				     "this process' context on " + dimpl->node +
					     " is banned after repeated job timeouts: reopen "
					     "the device (a new process) to get a new context",
				     err);
		case ENOENT:
			return Error(Errc::invalid_argument,
				     "submit: a listed buffer or in-fence does not exist "
				     "(destroyed too early, or a fence never submitted)",
				     err);
		case EINVAL:
			return Error(Errc::invalid_argument,
				     "submit: the driver rejected the job (queue, sizes, "
				     "flags or counts out of range)",
				     err);
		default:
			return detail::ioctl_error(err, "DRM_IOCTL_REFNPU_SUBMIT");
		}
	}
	if (impl_->timeline)
		(*st)->point = ++impl_->last_point;
	impl_->last = Fence(*st);
	return Fence(std::move(*st));
}

Result<Fence> Context::submit(const CommandEncoder &enc)
{
	if (!impl_)
		return Error(Errc::invalid_argument, "submit on an empty Context");
	auto job = Job::create(impl_->dev, enc);
	if (!job)
		return std::move(job).error();
	return submit(*job);
}

Fence Context::last_fence() const
{
	if (!impl_)
		return {};
	std::lock_guard<std::mutex> lk(impl_->lock);
	return impl_->last;
}

Result<void> Context::finish(std::chrono::steady_clock::time_point deadline) const
{
	return last_fence().wait(deadline);
}

} // namespace accel
