// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The graph API: shape-checked op sequences, tensor placement in one arena
 * with lifetime-based reuse, encoding, and execution on a device or on the
 * reference engine.
 */
#include <algorithm>
#include <cstring>
#include <numeric>

#include <drm/refnpu_accel.h>

#include <accel/graph.h>
#include <accel/reference.h>

namespace accel {

namespace {

enum class OpType { dense, ewise, act, softmax, layernorm, conv2d, pool2d };

struct TensorDesc {
	std::string name;
	std::vector<uint32_t> shape;
	bool is_input = false;
	bool is_constant = false;
	bool is_output = false;
	std::vector<float> values;
	/* Tensor whose memory this one views (itself unless flattened). */
	uint32_t storage = 0;
};

struct OpDesc {
	OpType type = OpType::dense;
	uint32_t sub = 0;
	/* dense: x w [bias]; ewise: a b; conv2d: x filter [bias]; ln: x [g] [b] */
	std::vector<uint32_t> ins;
	uint32_t out = 0;
	bool relu = false;
	bool has_bias = false, has_gamma = false, has_beta = false;
	float eps = 0;
	Window2D win;
};

uint64_t elements(const std::vector<uint32_t> &s)
{
	return std::accumulate(s.begin(), s.end(), uint64_t(1),
			       [](uint64_t a, uint32_t b) { return a * b; });
}

std::string shape_str(const std::vector<uint32_t> &s)
{
	std::string r = "[";
	for (size_t i = 0; i < s.size(); i++)
		r += (i ? ", " : "") + std::to_string(s[i]);
	return r + "]";
}

Error bad(const std::string &op, const std::string &why)
{
	return Error(Errc::invalid_argument, "graph: " + op + ": " + why);
}

} // namespace

struct Graph::Impl {
	std::vector<TensorDesc> tensors;
	std::vector<OpDesc> ops;
	std::vector<uint32_t> inputs, outputs;

	bool valid(TensorId t) const { return t.index < tensors.size(); }
	const std::vector<uint32_t> &shape(TensorId t) const { return tensors[t.index].shape; }

	TensorId add(std::vector<uint32_t> shape, uint32_t op_index)
	{
		TensorDesc d;
		d.name = "t" + std::to_string(tensors.size()) + "_op" + std::to_string(op_index);
		d.shape = std::move(shape);
		d.storage = uint32_t(tensors.size());
		tensors.push_back(std::move(d));
		return TensorId{uint32_t(tensors.size() - 1)};
	}

	Result<TensorId> push(OpDesc op, std::vector<uint32_t> out_shape)
	{
		TensorId out = add(std::move(out_shape), uint32_t(ops.size()));
		op.out = out.index;
		ops.push_back(std::move(op));
		return out;
	}

	Result<void> check_ids(const char *op, std::initializer_list<TensorId> ids) const
	{
		for (auto t : ids)
			if (!valid(t))
				return bad(op, "unknown tensor id " + std::to_string(t.index));
		return {};
	}

	/* An optional [n] or [1, n] vector. */
	Result<void> check_vec(const char *op, const char *what, TensorId t, uint32_t n) const
	{
		if (!valid(t))
			return bad(op, std::string(what) + ": unknown tensor id");
		const auto &s = shape(t);
		if (!((s.size() == 1 && s[0] == n) || (s.size() == 2 && s[0] == 1 && s[1] == n)))
			return bad(op, std::string(what) + " " + shape_str(s) + " should be [" +
					       std::to_string(n) + "]");
		return {};
	}
};

Graph::Graph() : impl_(std::make_unique<Impl>())
{
}
Graph::~Graph() = default;
Graph::Graph(const Graph &o) : impl_(std::make_unique<Impl>(*o.impl_))
{
}
Graph &Graph::operator=(const Graph &o)
{
	if (this != &o)
		impl_ = std::make_unique<Impl>(*o.impl_);
	return *this;
}
Graph::Graph(Graph &&) noexcept = default;
Graph &Graph::operator=(Graph &&) noexcept = default;

Result<TensorId> Graph::input(const std::string &name, const std::vector<uint32_t> &shape)
{
	if (shape.size() != 2 && shape.size() != 4)
		return bad("input " + name, "shape " + shape_str(shape) + " must have 2 or 4 dims");
	if (!elements(shape))
		return bad("input " + name, "shape " + shape_str(shape) + " is empty");
	if (find(name))
		return bad("input " + name, "the name is taken");
	TensorId t = impl_->add(shape, 0);
	impl_->tensors[t.index].name = name;
	impl_->tensors[t.index].is_input = true;
	impl_->inputs.push_back(t.index);
	return t;
}

Result<TensorId> Graph::constant(const std::string &name, const std::vector<uint32_t> &shape,
				 std::vector<float> values)
{
	if (shape.empty() || shape.size() > 4)
		return bad("constant " + name,
			   "shape " + shape_str(shape) + " must have 1 to 4 dims");
	if (values.size() != elements(shape))
		return bad("constant " + name,
			   std::to_string(values.size()) + " values for shape " + shape_str(shape));
	if (find(name))
		return bad("constant " + name, "the name is taken");
	TensorId t = impl_->add(shape, 0);
	auto &d = impl_->tensors[t.index];
	d.name = name;
	d.is_constant = true;
	d.values = std::move(values);
	return t;
}

Result<TensorId> Graph::dense(TensorId x, TensorId w, std::optional<TensorId> bias, bool relu)
{
	if (auto r = impl_->check_ids("dense", {x, w}); !r)
		return std::move(r).error();
	const auto &xs = impl_->shape(x), &ws = impl_->shape(w);
	if (xs.size() != 2 || ws.size() != 2)
		return bad("dense",
			   "x " + shape_str(xs) + " and w " + shape_str(ws) + " must be 2-D");
	if (xs[1] != ws[0])
		return bad("dense", "x " + shape_str(xs) + " times w " + shape_str(ws) +
					    ": inner dimensions differ");
	OpDesc op;
	op.type = OpType::dense;
	op.ins = {x.index, w.index};
	op.relu = relu;
	if (bias) {
		if (auto r = impl_->check_vec("dense", "bias", *bias, ws[1]); !r)
			return std::move(r).error();
		op.ins.push_back(bias->index);
		op.has_bias = true;
	}
	return impl_->push(std::move(op), {xs[0], ws[1]});
}

Result<TensorId> Graph::ewise(EwiseOp o, TensorId a, TensorId b)
{
	if (auto r = impl_->check_ids("ewise", {a, b}); !r)
		return std::move(r).error();
	const auto &as = impl_->shape(a), &bs = impl_->shape(b);
	if (as.size() != 2 || bs.size() != 2)
		return bad("ewise", "operands must be 2-D");
	bool ok = (bs[0] == as[0] || bs[0] == 1) && (bs[1] == as[1] || bs[1] == 1);
	if (!ok)
		return bad("ewise",
			   "b " + shape_str(bs) + " does not broadcast to a " + shape_str(as));
	OpDesc op;
	op.type = OpType::ewise;
	op.sub = uint32_t(o);
	op.ins = {a.index, b.index};
	return impl_->push(std::move(op), as);
}

Result<TensorId> Graph::act(Activation f, TensorId x)
{
	if (auto r = impl_->check_ids("act", {x}); !r)
		return std::move(r).error();
	if (impl_->shape(x).size() != 2)
		return bad("act", "x must be 2-D (flatten NHWC tensors first)");
	OpDesc op;
	op.type = OpType::act;
	op.sub = uint32_t(f);
	op.ins = {x.index};
	return impl_->push(std::move(op), impl_->shape(x));
}

Result<TensorId> Graph::softmax(TensorId x)
{
	if (auto r = impl_->check_ids("softmax", {x}); !r)
		return std::move(r).error();
	if (impl_->shape(x).size() != 2)
		return bad("softmax", "x must be 2-D");
	OpDesc op;
	op.type = OpType::softmax;
	op.ins = {x.index};
	return impl_->push(std::move(op), impl_->shape(x));
}

Result<TensorId> Graph::layernorm(TensorId x, std::optional<TensorId> gamma,
				  std::optional<TensorId> beta, float eps)
{
	if (auto r = impl_->check_ids("layernorm", {x}); !r)
		return std::move(r).error();
	const auto &xs = impl_->shape(x);
	if (xs.size() != 2)
		return bad("layernorm", "x must be 2-D");
	OpDesc op;
	op.type = OpType::layernorm;
	op.ins = {x.index};
	op.eps = eps;
	if (gamma) {
		if (auto r = impl_->check_vec("layernorm", "gamma", *gamma, xs[1]); !r)
			return std::move(r).error();
		op.ins.push_back(gamma->index);
		op.has_gamma = true;
	}
	if (beta) {
		if (auto r = impl_->check_vec("layernorm", "beta", *beta, xs[1]); !r)
			return std::move(r).error();
		op.ins.push_back(beta->index);
		op.has_beta = true;
	}
	return impl_->push(std::move(op), xs);
}

Result<TensorId> Graph::conv2d(TensorId x, TensorId filter, std::optional<TensorId> bias,
			       const Window2D &win, bool relu)
{
	if (auto r = impl_->check_ids("conv2d", {x, filter}); !r)
		return std::move(r).error();
	const auto &xs = impl_->shape(x), &fs = impl_->shape(filter);
	if (xs.size() != 4 || fs.size() != 4)
		return bad("conv2d", "x must be [N, H, W, C] and filter [KH, KW, C, OC]");
	if (fs[0] != win.kh || fs[1] != win.kw || fs[2] != xs[3])
		return bad("conv2d", "filter " + shape_str(fs) + " does not match a " +
					     std::to_string(win.kh) + "x" + std::to_string(win.kw) +
					     " window over " + std::to_string(xs[3]) + " channels");
	auto oh =
		window_output(xs[1], win.kh, win.stride_h, win.dil_h, win.pad_top, win.pad_bottom);
	auto ow =
		window_output(xs[2], win.kw, win.stride_w, win.dil_w, win.pad_left, win.pad_right);
	if (!oh || !ow)
		return bad("conv2d", "the window does not fit the padded input " + shape_str(xs));
	OpDesc op;
	op.type = OpType::conv2d;
	op.ins = {x.index, filter.index};
	op.relu = relu;
	op.win = win;
	if (bias) {
		if (auto r = impl_->check_vec("conv2d", "bias", *bias, fs[3]); !r)
			return std::move(r).error();
		op.ins.push_back(bias->index);
		op.has_bias = true;
	}
	return impl_->push(std::move(op), {xs[0], *oh, *ow, fs[3]});
}

Result<TensorId> Graph::pool2d(PoolMode mode, TensorId x, const Window2D &win)
{
	if (auto r = impl_->check_ids("pool2d", {x}); !r)
		return std::move(r).error();
	const auto &xs = impl_->shape(x);
	if (xs.size() != 4)
		return bad("pool2d", "x must be [N, H, W, C]");
	if (win.dil_h != 1 || win.dil_w != 1)
		return bad("pool2d", "pooling has no dilation");
	auto oh = window_output(xs[1], win.kh, win.stride_h, 1, win.pad_top, win.pad_bottom);
	auto ow = window_output(xs[2], win.kw, win.stride_w, 1, win.pad_left, win.pad_right);
	if (!oh || !ow)
		return bad("pool2d", "the window does not fit the padded input " + shape_str(xs));
	OpDesc op;
	op.type = OpType::pool2d;
	op.sub = uint32_t(mode);
	op.ins = {x.index};
	op.win = win;
	return impl_->push(std::move(op), {xs[0], *oh, *ow, xs[3]});
}

Result<TensorId> Graph::flatten(TensorId x)
{
	if (auto r = impl_->check_ids("flatten", {x}); !r)
		return std::move(r).error();
	const auto s = impl_->shape(x);
	if (s.size() != 4)
		return bad("flatten", "x must be [N, H, W, C]");
	TensorId t = impl_->add({s[0], s[1] * s[2] * s[3]}, uint32_t(impl_->ops.size()));
	impl_->tensors[t.index].storage = impl_->tensors[x.index].storage;
	return t;
}

Result<void> Graph::output(TensorId t, const std::string &name)
{
	if (!impl_->valid(t))
		return bad("output", "unknown tensor id");
	auto other = find(name);
	if (other && other->index != t.index)
		return bad("output " + name, "the name is taken");
	auto &d = impl_->tensors[t.index];
	d.name = name;
	if (!d.is_output) {
		d.is_output = true;
		impl_->outputs.push_back(t.index);
	}
	return {};
}

std::vector<uint32_t> Graph::shape(TensorId t) const
{
	return impl_->valid(t) ? impl_->shape(t) : std::vector<uint32_t>{};
}

std::string Graph::name(TensorId t) const
{
	return impl_->valid(t) ? impl_->tensors[t.index].name : std::string();
}

std::vector<TensorId> Graph::inputs() const
{
	std::vector<TensorId> r;
	for (auto i : impl_->inputs)
		r.push_back({i});
	return r;
}

std::vector<TensorId> Graph::outputs() const
{
	std::vector<TensorId> r;
	for (auto i : impl_->outputs)
		r.push_back({i});
	return r;
}

std::size_t Graph::op_count() const noexcept
{
	return impl_->ops.size();
}

uint64_t Graph::macs() const noexcept
{
	uint64_t total = 0;
	for (const auto &op : impl_->ops) {
		const auto &out = impl_->tensors[op.out].shape;
		if (op.type == OpType::dense)
			total += elements(out) * impl_->tensors[op.ins[0]].shape[1];
		else if (op.type == OpType::conv2d)
			total += elements(out) * uint64_t(op.win.kh) * op.win.kw *
				 impl_->tensors[op.ins[0]].shape[3];
		else
			total += elements(out);
	}
	return total;
}

std::optional<TensorId> Graph::find(const std::string &name) const
{
	for (uint32_t i = 0; i < impl_->tensors.size(); i++)
		if (impl_->tensors[i].name == name)
			return TensorId{i};
	return std::nullopt;
}

/* ------------------------------------------------------------------------ */

struct CompiledGraph::Impl {
	Graph graph;
	std::vector<uint64_t> offset; /* per tensor, in the arena */
	uint64_t arena_size = 0;
	CommandEncoder enc;

	/* Device target */
	Context ctx;
	Buffer arena_buf;
	Mapping arena_map;
	Job job;

	/* Reference target */
	std::unique_ptr<ReferenceMachine> ref;
	Memory ref_mem;

	std::span<std::byte> arena() const { return ref ? ref->data(ref_mem) : arena_map.bytes(); }
	const Graph::Impl &g() const { return graph.impl(); }

	void place();
	Result<void> encode(const Memory &mem, uint64_t supported_ops);
	void upload_constants();
};

/*
 * Give every storage an arena offset. Inputs, constants and outputs live for
 * the whole run; an intermediate lives from the op producing it to the last
 * op reading it (or a view of it), and shares space with intermediates
 * whose lifetimes do not overlap. An op's output never shares space with
 * its inputs, because both are live at that op.
 */
void CompiledGraph::Impl::place()
{
	const auto &t = g().tensors;
	const auto &ops = g().ops;
	const int end = int(ops.size());
	struct Life {
		int first = 0, last = -1;
		uint64_t bytes = 0;
		bool pinned = false;
		bool used = false;
	};
	std::vector<Life> life(t.size());
	for (uint32_t i = 0; i < t.size(); i++) {
		Life &l = life[t[i].storage];
		l.used = true;
		l.bytes = std::max(l.bytes, elements(t[i].shape) * 4);
		if (t[i].is_input || t[i].is_constant || t[i].is_output)
			l.pinned = true;
	}
	for (int i = 0; i < end; i++) {
		life[t[ops[i].out].storage].first = i;
		life[t[ops[i].out].storage].last = std::max(life[t[ops[i].out].storage].last, i);
		for (auto in : ops[i].ins)
			life[t[in].storage].last = std::max(life[t[in].storage].last, i);
	}
	for (auto &l : life)
		if (l.pinned) {
			l.first = -1;
			l.last = end;
		}

	constexpr uint64_t align = 256;
	struct Placed {
		uint64_t off, bytes;
		int first, last;
	};
	std::vector<Placed> placed;
	std::vector<uint64_t> soff(t.size(), 0);
	/* Pinned storages first, in tensor order; then intermediates by first use. */
	std::vector<uint32_t> order;
	for (uint32_t i = 0; i < t.size(); i++)
		if (life[i].used && t[i].storage == i)
			order.push_back(i);
	std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
		return life[a].pinned != life[b].pinned ? life[a].pinned
							: life[a].first < life[b].first;
	});
	arena_size = 0;
	for (uint32_t s : order) {
		const Life &l = life[s];
		uint64_t bytes = (l.bytes + align - 1) & ~(align - 1);
		/* Lowest offset clear of every placed storage alive at the same time. */
		std::vector<Placed> live;
		for (const auto &p : placed)
			if (p.first <= l.last && l.first <= p.last)
				live.push_back(p);
		std::sort(live.begin(), live.end(),
			  [](const Placed &a, const Placed &b) { return a.off < b.off; });
		uint64_t off = 0;
		for (const auto &p : live) {
			if (off + bytes <= p.off)
				break;
			off = std::max(off, p.off + p.bytes);
		}
		placed.push_back({off, bytes, l.first, l.last});
		soff[s] = off;
		arena_size = std::max(arena_size, off + bytes);
	}
	offset.resize(t.size());
	for (uint32_t i = 0; i < t.size(); i++)
		offset[i] = soff[t[i].storage];
	if (!arena_size)
		arena_size = align;
}

Result<void> CompiledGraph::Impl::encode(const Memory &mem, uint64_t supported_ops)
{
	const auto &t = g().tensors;
	enc.clear();
	enc.set_supported_ops(supported_ops);
	auto t2d = [&](uint32_t i) {
		const auto &s = t[i].shape;
		uint32_t rows = s.size() == 2 ? s[0] : 1;
		uint32_t cols = s.size() == 2 ? s[1] : uint32_t(elements(s));
		return tensor2d(mem, DType::fp32, rows, cols, offset[i]);
	};
	auto nhwc = [&](uint32_t i) {
		const auto &s = t[i].shape;
		return TensorNHWC{mem, offset[i], DType::fp32, s[0], s[1], s[2], s[3]};
	};
	auto vec = [&](uint32_t i) { return VectorRef{mem, offset[i]}; };

	for (const auto &op : g().ops) {
		Result<void> r;
		switch (op.type) {
		case OpType::dense: {
			GemmOp gm;
			gm.a = t2d(op.ins[0]);
			gm.b = t2d(op.ins[1]);
			gm.c = t2d(op.out);
			if (op.has_bias)
				gm.bias = vec(op.ins[2]);
			gm.relu = op.relu;
			r = enc.gemm(gm);
			break;
		}
		case OpType::ewise:
			r = enc.ewise(EwiseOp(op.sub), t2d(op.out), t2d(op.ins[0]), t2d(op.ins[1]));
			break;
		case OpType::act:
			r = enc.act(Activation(op.sub), t2d(op.out), t2d(op.ins[0]));
			break;
		case OpType::softmax:
			r = enc.softmax(t2d(op.out), t2d(op.ins[0]));
			break;
		case OpType::layernorm: {
			LayerNormOp ln;
			ln.src = t2d(op.ins[0]);
			ln.dst = t2d(op.out);
			size_t k = 1;
			if (op.has_gamma)
				ln.gamma = vec(op.ins[k++]);
			if (op.has_beta)
				ln.beta = vec(op.ins[k++]);
			ln.eps = op.eps;
			r = enc.layernorm(ln);
			break;
		}
		case OpType::conv2d: {
			Conv2dOp cv;
			cv.in = nhwc(op.ins[0]);
			cv.out = nhwc(op.out);
			const auto &fs = t[op.ins[1]].shape;
			cv.filter = tensor2d(mem, DType::fp32, fs[0] * fs[1] * fs[2], fs[3],
					     offset[op.ins[1]]);
			if (op.has_bias)
				cv.bias = vec(op.ins[2]);
			cv.relu = op.relu;
			cv.win = op.win;
			r = enc.conv2d(cv);
			break;
		}
		case OpType::pool2d: {
			Pool2dOp pl;
			pl.in = nhwc(op.ins[0]);
			pl.out = nhwc(op.out);
			pl.mode = PoolMode(op.sub);
			pl.win = op.win;
			r = enc.pool2d(pl);
			break;
		}
		}
		if (!r)
			return std::move(r).error();
	}
	if (!enc.size())
		return Error(Errc::invalid_argument, "graph: no operation to run");
	return {};
}

void CompiledGraph::Impl::upload_constants()
{
	auto a = arena();
	for (uint32_t i = 0; i < g().tensors.size(); i++) {
		const auto &d = g().tensors[i];
		if (d.is_constant)
			std::memcpy(a.data() + offset[i], d.values.data(), d.values.size() * 4);
	}
}

CompiledGraph::CompiledGraph() = default;
CompiledGraph::~CompiledGraph() = default;
CompiledGraph::CompiledGraph(CompiledGraph &&) noexcept = default;
CompiledGraph &CompiledGraph::operator=(CompiledGraph &&) noexcept = default;

Result<CompiledGraph> CompiledGraph::compile(const Graph &g, const Context &ctx)
{
	if (!ctx.is_valid())
		return Error(Errc::invalid_argument, "graph: compile needs a Context");
	auto impl = std::make_unique<Impl>();
	impl->graph = g;
	impl->ctx = ctx;
	impl->place();
	const Device &dev = ctx.device();
	auto buf = dev.create_buffer(impl->arena_size);
	if (!buf)
		return std::move(buf).error().context("graph: allocating the tensor arena");
	impl->arena_buf = std::move(*buf);
	auto map = impl->arena_buf.map();
	if (!map)
		return std::move(map).error().context("graph: mapping the tensor arena");
	impl->arena_map = std::move(*map);
	uint64_t ops = ~0ULL;
	if (auto p = dev.get_param(DRM_REFNPU_PARAM_OPS); p && *p)
		ops = *p;
	if (auto r = impl->encode(impl->arena_buf.memory(), ops); !r)
		return std::move(r).error();
	auto job = Job::create(dev, impl->enc);
	if (!job)
		return std::move(job).error().context("graph: uploading the commands");
	impl->job = std::move(*job);
	impl->upload_constants();
	CompiledGraph cg;
	cg.impl_ = std::move(impl);
	return cg;
}

Result<CompiledGraph> CompiledGraph::compile_reference(const Graph &g)
{
	auto impl = std::make_unique<Impl>();
	impl->graph = g;
	impl->place();
	impl->ref = std::make_unique<ReferenceMachine>();
	impl->ref_mem = impl->ref->alloc(impl->arena_size);
	if (auto r = impl->encode(impl->ref_mem, ~0ULL); !r)
		return std::move(r).error();
	impl->upload_constants();
	CompiledGraph cg;
	cg.impl_ = std::move(impl);
	return cg;
}

Result<void> CompiledGraph::set_input(TensorId t, std::span<const float> values)
{
	if (!impl_ || t.index >= impl_->g().tensors.size())
		return Error(Errc::invalid_argument, "set_input: unknown tensor");
	const auto &d = impl_->g().tensors[t.index];
	if (values.size() != elements(d.shape))
		return Error(Errc::invalid_argument,
			     "set_input: " + d.name + " " + shape_str(d.shape) + " takes " +
				     std::to_string(elements(d.shape)) + " values, got " +
				     std::to_string(values.size()));
	std::memcpy(impl_->arena().data() + impl_->offset[t.index], values.data(),
		    values.size_bytes());
	return {};
}

Result<RunTimes> CompiledGraph::run(std::chrono::nanoseconds timeout)
{
	if (!impl_)
		return Error(Errc::invalid_argument, "run: empty CompiledGraph");
	using clock = std::chrono::steady_clock;
	RunTimes times;
	auto t0 = clock::now();
	if (impl_->ref) {
		if (auto r = impl_->ref->run(impl_->enc.data()); !r)
			return std::move(r).error();
	} else {
		auto f = impl_->ctx.submit(impl_->job);
		if (!f)
			return std::move(f).error();
		if (auto r = f->wait(t0 + timeout); !r)
			return std::move(r).error();
	}
	times.execute = clock::now() - t0;
	return times;
}

Result<std::vector<float>> CompiledGraph::read(TensorId t) const
{
	if (!impl_ || t.index >= impl_->g().tensors.size())
		return Error(Errc::invalid_argument, "read: unknown tensor");
	const auto &d = impl_->g().tensors[t.index];
	if (!d.is_output && !d.is_input && !d.is_constant)
		return Error(Errc::invalid_argument,
			     "read: " + d.name +
				     " is an intermediate tensor whose memory is reused; "
				     "mark it with Graph::output() to read it");
	std::vector<float> v(elements(d.shape));
	std::memcpy(v.data(), impl_->arena().data() + impl_->offset[t.index], v.size() * 4);
	return v;
}

std::span<const std::byte> CompiledGraph::commands() const noexcept
{
	return impl_ ? impl_->enc.data() : std::span<const std::byte>{};
}

uint64_t CompiledGraph::arena_size() const noexcept
{
	return impl_ ? impl_->arena_size : 0;
}

} // namespace accel
