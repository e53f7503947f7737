// SPDX-License-Identifier: MIT
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "json.h"
#include "model.h"

namespace tools {

using accel::Errc;
using accel::Error;

namespace {

Error bad(const std::string &where, const std::string &why)
{
	return Error(Errc::invalid_argument, where + ": " + why);
}

const char *const builtin_mlp = R"({
  "name": "mlp",
  "input": {"name": "x", "shape": [64, 784]},
  "seed": 1,
  "layers": [
    {"op": "dense", "units": 256, "relu": true},
    {"op": "dense", "units": 128, "relu": true},
    {"op": "dense", "units": 10},
    {"op": "softmax"}
  ]
})";

const char *const builtin_cnn = R"({
  "name": "cnn",
  "input": {"name": "image", "shape": [8, 28, 28, 1]},
  "seed": 1,
  "layers": [
    {"op": "conv2d", "filters": 8, "kernel": [3, 3], "pad": 1, "relu": true},
    {"op": "pool", "mode": "max", "kernel": [2, 2], "stride": 2},
    {"op": "conv2d", "filters": 16, "kernel": [3, 3], "pad": 1, "relu": true},
    {"op": "pool", "mode": "max", "kernel": [2, 2], "stride": 2},
    {"op": "flatten"},
    {"op": "dense", "units": 10},
    {"op": "softmax"}
  ]
})";

const char *const builtin_transformer_block = R"({
  "name": "mlp-block",
  "input": {"name": "tokens", "shape": [32, 128]},
  "seed": 1,
  "layers": [
    {"op": "layernorm", "gamma": true, "beta": true},
    {"op": "dense", "units": 512},
    {"op": "act", "func": "gelu"},
    {"op": "dense", "units": 128},
    {"op": "ewise", "func": "add", "operand": "row"},
    {"op": "softmax"}
  ]
})";

std::string arg_text(const Json &v)
{
	if (v.is_bool())
		return v.as_bool() ? "1" : "0";
	if (v.is_int())
		return std::to_string(v.as_int());
	if (v.is_number()) {
		std::ostringstream o;
		o << v.as_double();
		return o.str();
	}
	if (v.is_string())
		return v.as_string();
	if (v.is_array()) {
		std::string s;
		for (const auto &e : v.as_array())
			s += (s.empty() ? "" : "x") + arg_text(e);
		return s;
	}
	return {};
}

accel::Result<std::vector<uint32_t>> parse_dims(const std::string &s, const std::string &where)
{
	std::vector<uint32_t> d;
	std::stringstream in(s);
	std::string tok;
	while (std::getline(in, tok, 'x')) {
		char *end = nullptr;
		unsigned long v = std::strtoul(tok.c_str(), &end, 10);
		if (tok.empty() || *end || v == 0 || v > (1u << 30))
			return bad(where, "bad dimension '" + tok + "' in '" + s + "'");
		d.push_back(uint32_t(v));
	}
	return d;
}

accel::Result<ModelSpec> from_json(const Json &j, const std::string &where)
{
	if (!j.is_object())
		return bad(where, "the model must be a JSON object");
	ModelSpec m;
	if (const Json *n = j.get("name"); n && n->is_string())
		m.name = n->as_string();
	if (const Json *s = j.get("seed"); s && s->is_int())
		m.seed = uint64_t(s->as_int());
	const Json *in = j.get("input");
	if (!in || !in->is_object() || !in->get("shape"))
		return bad(where, "missing \"input\": {\"name\": ..., \"shape\": [...]}");
	if (const Json *n = in->get("name"); n && n->is_string())
		m.input_name = n->as_string();
	auto dims = parse_dims(arg_text(*in->get("shape")), where + ": input shape");
	if (!dims)
		return std::move(dims).error();
	m.input_shape = *dims;
	const Json *layers = j.get("layers");
	if (!layers || !layers->is_array() || layers->as_array().empty())
		return bad(where, "missing \"layers\": [...]");
	int i = 0;
	for (const auto &l : layers->as_array()) {
		LayerSpec ls;
		ls.where = where + ": layer " + std::to_string(i++);
		if (!l.is_object() || !l.get("op") || !l.get("op")->is_string())
			return bad(ls.where, "each layer needs \"op\"");
		ls.op = l.get("op")->as_string();
		for (const auto &[k, v] : l.as_object())
			if (k != "op")
				ls.args[k] = arg_text(v);
		m.layers.push_back(std::move(ls));
	}
	return m;
}

/*
 * Text format, one statement per line, '#' comments:
 *   name mlp
 *   seed 7
 *   input x 64 784
 *   dense 128 relu            (positional: units; words: flags; k=v)
 *   conv2d filters=8 kernel=3x3 pad=1 relu
 *   pool max kernel=2 stride=2
 */
accel::Result<ModelSpec> from_text(const std::string &text, const std::string &where)
{
	ModelSpec m;
	std::istringstream in(text);
	std::string line;
	int lineno = 0;
	bool have_input = false;
	while (std::getline(in, line)) {
		lineno++;
		if (auto h = line.find('#'); h != std::string::npos)
			line.resize(h);
		std::istringstream ls(line);
		std::vector<std::string> tok;
		for (std::string t; ls >> t;)
			tok.push_back(t);
		if (tok.empty())
			continue;
		std::string at = where + ":" + std::to_string(lineno);
		if (tok[0] == "name" && tok.size() == 2) {
			m.name = tok[1];
		} else if (tok[0] == "seed" && tok.size() == 2) {
			m.seed = std::strtoull(tok[1].c_str(), nullptr, 0);
		} else if (tok[0] == "input") {
			if (tok.size() < 4)
				return bad(at, "'input NAME D0 D1 [D2 D3]'");
			m.input_name = tok[1];
			std::string dims;
			for (size_t i = 2; i < tok.size(); i++)
				dims += (i > 2 ? "x" : "") + tok[i];
			auto d = parse_dims(dims, at);
			if (!d)
				return std::move(d).error();
			m.input_shape = *d;
			have_input = true;
		} else {
			LayerSpec l;
			l.op = tok[0];
			l.where = at;
			int positional = 0;
			for (size_t i = 1; i < tok.size(); i++) {
				auto eq = tok[i].find('=');
				if (eq != std::string::npos) {
					l.args[tok[i].substr(0, eq)] = tok[i].substr(eq + 1);
				} else if (std::isdigit(static_cast<unsigned char>(tok[i][0]))) {
					/* dense 128; conv2d 8 */
					l.args[positional++ ? "extra" : "units"] = tok[i];
				} else if (tok[i] == "max" || tok[i] == "avg") {
					l.args["mode"] = tok[i];
				} else if (l.op == "act" || l.op == "ewise") {
					l.args["func"] = tok[i];
				} else {
					l.args[tok[i]] = "1";
				}
			}
			if (l.op == "conv2d" && l.args.count("units"))
				l.args["filters"] = l.args["units"];
			m.layers.push_back(std::move(l));
		}
	}
	if (!have_input)
		return bad(where, "no 'input NAME D0 D1 ...' line");
	if (m.layers.empty())
		return bad(where, "no layers");
	return m;
}

} // namespace

std::vector<std::string> builtin_models()
{
	return {"mlp", "cnn", "mlp-block"};
}

accel::Result<ModelSpec> builtin_model(const std::string &name)
{
	if (name == "mlp")
		return parse_model(builtin_mlp, "builtin:mlp");
	if (name == "cnn")
		return parse_model(builtin_cnn, "builtin:cnn");
	if (name == "mlp-block")
		return parse_model(builtin_transformer_block, "builtin:mlp-block");
	return Error(Errc::invalid_argument, "no built-in model '" + name +
						     "' (have: mlp, cnn, "
						     "mlp-block)");
}

accel::Result<ModelSpec> parse_model(const std::string &text, const std::string &where)
{
	size_t first = text.find_first_not_of(" \t\r\n");
	if (first != std::string::npos && text[first] == '{') {
		std::string err;
		auto j = Json::parse(text, &err);
		if (!j)
			return bad(where, "invalid JSON: " + err);
		return from_json(*j, where);
	}
	return from_text(text, where);
}

accel::Result<ModelSpec> load_model(const std::string &path)
{
	std::ifstream f(path);
	if (!f)
		return Error(Errc::invalid_argument, "cannot read model file '" + path + "'",
			     errno);
	std::stringstream ss;
	ss << f.rdbuf();
	auto m = parse_model(ss.str(), path);
	if (m) {
		auto slash = path.rfind('/');
		m->base_dir = slash == std::string::npos ? "." : path.substr(0, slash);
		if (m->name.empty())
			m->name = path.substr(slash == std::string::npos ? 0 : slash + 1);
	}
	return m;
}

std::vector<float> seeded_values(size_t n, uint64_t seed, float scale)
{
	std::mt19937_64 rng(seed);
	std::uniform_real_distribution<float> d(-scale, scale);
	std::vector<float> v(n);
	for (auto &x : v)
		x = d(rng);
	return v;
}

namespace {

class Builder
{
public:
	Builder(const ModelSpec &m, uint64_t seed) : m_(m), seed_(seed) { }

	accel::Result<BuiltModel> build()
	{
		BuiltModel b;
		auto in = b.graph.input(m_.input_name, m_.input_shape);
		if (!in)
			return std::move(in).error();
		b.input = *in;
		size_t n = 1;
		for (auto d : m_.input_shape)
			n *= d;
		b.input_values = seeded_values(n, seed_ * 7919 + 1, 1.0f);
		accel::TensorId cur = *in;
		for (size_t i = 0; i < m_.layers.size(); i++) {
			auto t = layer(b.graph, m_.layers[i], cur, i);
			if (!t)
				return std::move(t).error().context(m_.layers[i].where);
			cur = *t;
		}
		if (auto r = b.graph.output(cur, "output"); !r)
			return std::move(r).error();
		b.output = cur;
		return b;
	}

private:
	/* Weights from a file (raw little-endian fp32) or the seeded generator. */
	accel::Result<accel::TensorId> weights(accel::Graph &g, const LayerSpec &l,
					       const std::string &key, const std::string &name,
					       std::vector<uint32_t> shape, float scale, size_t idx)
	{
		size_t n = 1;
		for (auto d : shape)
			n *= d;
		std::vector<float> v;
		auto it = l.args.find(key);
		if (it != l.args.end() && it->second != "1" && it->second != "0") {
			std::string path =
				it->second[0] == '/' ? it->second : m_.base_dir + "/" + it->second;
			std::ifstream f(path, std::ios::binary);
			if (!f)
				return bad(l.where, "cannot read " + key + " file '" + path + "'");
			v.resize(n);
			f.read(reinterpret_cast<char *>(v.data()), std::streamsize(n * 4));
			if (size_t(f.gcount()) != n * 4)
				return bad(l.where, key + " file '" + path + "' holds " +
							    std::to_string(f.gcount() / 4) +
							    " floats, the layer needs " +
							    std::to_string(n));
		} else {
			v = seeded_values(n, seed_ * 1000003 + idx * 17 + key.size(), scale);
		}
		return g.constant(name, shape, std::move(v));
	}

	bool flag(const LayerSpec &l, const std::string &k, bool dflt)
	{
		auto it = l.args.find(k);
		if (it == l.args.end())
			return dflt;
		return it->second != "0" && it->second != "false";
	}

	accel::Result<uint32_t> num(const LayerSpec &l, const std::string &k, uint32_t dflt,
				    bool required = false)
	{
		auto it = l.args.find(k);
		if (it == l.args.end()) {
			if (required)
				return bad(l.where, "missing '" + k + "'");
			return dflt;
		}
		char *end = nullptr;
		unsigned long v = std::strtoul(it->second.c_str(), &end, 10);
		if (*end || v > (1u << 30))
			return bad(l.where, "bad " + k + " '" + it->second + "'");
		return uint32_t(v);
	}

	/* "3" or "3x2" -> {h, w} */
	accel::Result<std::pair<uint32_t, uint32_t>> pair(const LayerSpec &l, const std::string &k,
							  uint32_t dflt)
	{
		auto it = l.args.find(k);
		if (it == l.args.end())
			return std::pair{dflt, dflt};
		auto d = parse_dims(it->second, l.where);
		if (!d && it->second == "0")
			return std::pair{0u, 0u};
		if (!d)
			return std::move(d).error();
		if (d->size() == 1)
			return std::pair{(*d)[0], (*d)[0]};
		if (d->size() == 2)
			return std::pair{(*d)[0], (*d)[1]};
		return bad(l.where, k + " takes one or two values");
	}

	accel::Result<accel::Window2D> window(const LayerSpec &l, bool conv)
	{
		accel::Window2D w;
		auto k = pair(l, "kernel", conv ? 3 : 2);
		auto s = pair(l, "stride", conv ? 1 : 0);
		if (!k)
			return std::move(k).error();
		if (!s)
			return std::move(s).error();
		w.kh = k->first;
		w.kw = k->second;
		w.stride_h = s->first ? s->first : w.kh;
		w.stride_w = s->second ? s->second : w.kw;
		auto p = num(l, "pad", 0);
		if (!p)
			return std::move(p).error();
		w.pad_top = w.pad_bottom = w.pad_left = w.pad_right = *p;
		if (conv) {
			auto d = num(l, "dilation", 1);
			if (!d)
				return std::move(d).error();
			w.dil_h = w.dil_w = *d;
		}
		return w;
	}

	accel::Result<accel::TensorId> layer(accel::Graph &g, const LayerSpec &l, accel::TensorId x,
					     size_t idx)
	{
		std::string p = "l" + std::to_string(idx) + "_";
		auto shape = g.shape(x);
		if (l.op == "dense") {
			auto units = num(l, "units", 0, true);
			if (!units)
				return std::move(units).error();
			if (shape.size() != 2)
				return bad(l.where, "dense needs a 2-D input (add 'flatten')");
			float scale = std::sqrt(6.0f / float(shape[1] + *units));
			auto w = weights(g, l, "weights", p + "w", {shape[1], *units}, scale, idx);
			if (!w)
				return w;
			std::optional<accel::TensorId> b;
			if (flag(l, "bias", true)) {
				auto bt = weights(g, l, "bias", p + "b", {*units}, 0.1f, idx);
				if (!bt)
					return bt;
				b = *bt;
			}
			return g.dense(x, *w, b, flag(l, "relu", false));
		}
		if (l.op == "conv2d") {
			auto f = num(l, "filters", 0, true);
			if (!f)
				return std::move(f).error();
			auto win = window(l, true);
			if (!win)
				return std::move(win).error();
			if (shape.size() != 4)
				return bad(l.where, "conv2d needs an [N, H, W, C] input");
			float scale = std::sqrt(6.0f / float(win->kh * win->kw * shape[3] + *f));
			auto w = weights(g, l, "weights", p + "filter",
					 {win->kh, win->kw, shape[3], *f}, scale, idx);
			if (!w)
				return w;
			std::optional<accel::TensorId> b;
			if (flag(l, "bias", true)) {
				auto bt = weights(g, l, "bias", p + "b", {*f}, 0.1f, idx);
				if (!bt)
					return bt;
				b = *bt;
			}
			return g.conv2d(x, *w, b, *win, flag(l, "relu", false));
		}
		if (l.op == "pool") {
			auto win = window(l, false);
			if (!win)
				return std::move(win).error();
			auto it = l.args.find("mode");
			std::string mode = it == l.args.end() ? "max" : it->second;
			if (mode != "max" && mode != "avg")
				return bad(l.where, "pool mode is max or avg, not '" + mode + "'");
			return g.pool2d(mode == "max" ? accel::PoolMode::max : accel::PoolMode::avg,
					x, *win);
		}
		if (l.op == "flatten")
			return g.flatten(x);
		if (l.op == "softmax")
			return g.softmax(x);
		if (l.op == "act") {
			auto it = l.args.find("func");
			std::string f = it == l.args.end() ? "relu" : it->second;
			const std::pair<const char *, accel::Activation> fs[] = {
				{"relu", accel::Activation::relu},
				{"gelu", accel::Activation::gelu},
				{"gelu_tanh", accel::Activation::gelu_tanh},
				{"sigmoid", accel::Activation::sigmoid},
				{"tanh", accel::Activation::tanh},
			};
			for (const auto &[n, a] : fs)
				if (f == n)
					return g.act(a, x);
			return bad(l.where, "unknown activation '" + f + "'");
		}
		if (l.op == "layernorm") {
			if (shape.size() != 2)
				return bad(l.where, "layernorm needs a 2-D input");
			std::optional<accel::TensorId> gm, bt;
			if (flag(l, "gamma", false)) {
				auto t = weights(g, l, "gamma_file", p + "gamma", {shape[1]}, 1.0f,
						 idx);
				if (!t)
					return t;
				gm = *t;
			}
			if (flag(l, "beta", false)) {
				auto t = weights(g, l, "beta_file", p + "beta", {shape[1]}, 0.5f,
						 idx);
				if (!t)
					return t;
				bt = *t;
			}
			float eps = 1e-5f;
			if (auto it = l.args.find("eps"); it != l.args.end())
				eps = std::strtof(it->second.c_str(), nullptr);
			return g.layernorm(x, gm, bt, eps);
		}
		if (l.op == "ewise") {
			if (shape.size() != 2)
				return bad(l.where, "ewise needs a 2-D input");
			auto it = l.args.find("func");
			std::string f = it == l.args.end() ? "add" : it->second;
			const std::pair<const char *, accel::EwiseOp> ops[] = {
				{"add", accel::EwiseOp::add}, {"sub", accel::EwiseOp::sub},
				{"mul", accel::EwiseOp::mul}, {"max", accel::EwiseOp::max},
				{"min", accel::EwiseOp::min},
			};
			std::optional<accel::EwiseOp> op;
			for (const auto &[n, o] : ops)
				if (f == n)
					op = o;
			if (!op)
				return bad(l.where, "unknown ewise function '" + f + "'");
			auto ot = l.args.find("operand");
			std::string kind = ot == l.args.end() ? "row" : ot->second;
			std::vector<uint32_t> bs =
				kind == "full"	   ? shape
				: kind == "row"	   ? std::vector<uint32_t>{1, shape[1]}
				: kind == "col"	   ? std::vector<uint32_t>{shape[0], 1}
				: kind == "scalar" ? std::vector<uint32_t>{1, 1}
						   : std::vector<uint32_t>{};
			if (bs.empty())
				return bad(l.where, "operand is full, row, col or scalar");
			auto b = weights(g, l, "values", p + "operand", bs, 1.0f, idx);
			if (!b)
				return b;
			return g.ewise(*op, x, *b);
		}
		return bad(l.where,
			   "unknown op '" + l.op +
				   "' (dense, conv2d, pool, flatten, act, softmax, layernorm, "
				   "ewise)");
	}

	const ModelSpec &m_;
	uint64_t seed_;
};

} // namespace

accel::Result<BuiltModel> build_model(const ModelSpec &m, uint64_t seed)
{
	return Builder(m, seed).build();
}

} // namespace tools
