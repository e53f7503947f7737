// SPDX-License-Identifier: MIT
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "json.h"

namespace tools {

Json &Json::set(const std::string &key, Json value)
{
	auto &o = std::get<Object>(v_);
	for (auto &kv : o)
		if (kv.first == key) {
			kv.second = std::move(value);
			return kv.second;
		}
	o.emplace_back(key, std::move(value));
	return o.back().second;
}

const Json *Json::get(const std::string &key) const
{
	if (!is_object())
		return nullptr;
	for (const auto &kv : std::get<Object>(v_))
		if (kv.first == key)
			return &kv.second;
	return nullptr;
}

Json &Json::push(Json value)
{
	auto &a = std::get<Array>(v_);
	a.push_back(std::move(value));
	return a.back();
}

std::string json_quote(std::string_view s)
{
	std::string o = "\"";
	for (unsigned char c : s) {
		switch (c) {
		case '"':
			o += "\\\"";
			break;
		case '\\':
			o += "\\\\";
			break;
		case '\n':
			o += "\\n";
			break;
		case '\t':
			o += "\\t";
			break;
		case '\r':
			o += "\\r";
			break;
		default:
			if (c < 0x20) {
				char b[8];
				std::snprintf(b, sizeof(b), "\\u%04x", c);
				o += b;
			} else {
				o += char(c);
			}
		}
	}
	return o + "\"";
}

std::string Json::dump(int indent) const
{
	std::string out;
	dump_to(out, indent, 0);
	return out;
}

void Json::dump_to(std::string &out, int indent, int depth) const
{
	auto nl = [&](int d) {
		if (indent >= 0) {
			out += '\n';
			out.append(size_t(indent * d), ' ');
		}
	};
	switch (v_.index()) {
	case 0:
		out += "null";
		break;
	case 1:
		out += as_bool() ? "true" : "false";
		break;
	case 2:
		out += std::to_string(std::get<int64_t>(v_));
		break;
	case 3: {
		double d = std::get<double>(v_);
		if (!std::isfinite(d)) {
			out += "null";
			break;
		}
		char b[32];
		std::snprintf(b, sizeof(b), "%.9g", d);
		out += b;
		break;
	}
	case 4:
		out += json_quote(as_string());
		break;
	case 5: {
		const auto &a = as_array();
		out += '[';
		for (size_t i = 0; i < a.size(); i++) {
			if (i)
				out += ',';
			nl(depth + 1);
			a[i].dump_to(out, indent, depth + 1);
		}
		if (!a.empty())
			nl(depth);
		out += ']';
		break;
	}
	case 6: {
		const auto &o = as_object();
		out += '{';
		for (size_t i = 0; i < o.size(); i++) {
			if (i)
				out += ',';
			nl(depth + 1);
			out += json_quote(o[i].first);
			out += indent >= 0 ? ": " : ":";
			o[i].second.dump_to(out, indent, depth + 1);
		}
		if (!o.empty())
			nl(depth);
		out += '}';
		break;
	}
	}
}

namespace {

class Parser
{
public:
	Parser(std::string_view t, std::string *err) : t_(t), err_(err) { }

	std::optional<Json> document()
	{
		auto v = value(0);
		if (!v)
			return std::nullopt;
		ws();
		if (p_ != t_.size())
			return fail("trailing characters after the document");
		return v;
	}

private:
	std::optional<Json> fail(const std::string &m)
	{
		if (err_ && err_->empty()) {
			size_t line = 1, col = 1;
			for (size_t i = 0; i < p_ && i < t_.size(); i++) {
				if (t_[i] == '\n') {
					line++;
					col = 1;
				} else {
					col++;
				}
			}
			*err_ = "line " + std::to_string(line) + ", column " + std::to_string(col) +
				": " + m;
		}
		return std::nullopt;
	}

	void ws()
	{
		while (p_ < t_.size()) {
			char c = t_[p_];
			if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
				p_++;
			} else if (c == '#') {
				/* Comments to the end of the line: a convenience for model files.
				 */
				while (p_ < t_.size() && t_[p_] != '\n')
					p_++;
			} else {
				break;
			}
		}
	}

	bool lit(std::string_view s)
	{
		if (t_.substr(p_, s.size()) == s) {
			p_ += s.size();
			return true;
		}
		return false;
	}

	std::optional<Json> value(int depth)
	{
		if (depth > 64)
			return fail("nesting too deep");
		ws();
		if (p_ >= t_.size())
			return fail("unexpected end of input");
		char c = t_[p_];
		if (c == '{')
			return object(depth);
		if (c == '[')
			return array(depth);
		if (c == '"') {
			auto s = string();
			if (!s)
				return std::nullopt;
			return Json(*s);
		}
		if (lit("true"))
			return Json(true);
		if (lit("false"))
			return Json(false);
		if (lit("null"))
			return Json(nullptr);
		return number();
	}

	std::optional<Json> number()
	{
		size_t start = p_;
		bool is_float = false;
		if (p_ < t_.size() && (t_[p_] == '-' || t_[p_] == '+'))
			p_++;
		while (p_ < t_.size()) {
			char c = t_[p_];
			if (c >= '0' && c <= '9') {
				p_++;
			} else if (c == '.' || c == 'e' || c == 'E' ||
				   ((c == '-' || c == '+') && is_float)) {
				is_float = true;
				p_++;
			} else {
				break;
			}
		}
		std::string s(t_.substr(start, p_ - start));
		if (s.empty() || s == "-" || s == "+")
			return fail("expected a value");
		char *end = nullptr;
		if (!is_float) {
			long long v = std::strtoll(s.c_str(), &end, 10);
			if (*end)
				return fail("bad number '" + s + "'");
			return Json(v);
		}
		double d = std::strtod(s.c_str(), &end);
		if (*end)
			return fail("bad number '" + s + "'");
		return Json(d);
	}

	std::optional<std::string> string()
	{
		std::string out;
		p_++; /* opening quote */
		while (p_ < t_.size()) {
			char c = t_[p_++];
			if (c == '"')
				return out;
			if (c != '\\') {
				out += c;
				continue;
			}
			if (p_ >= t_.size())
				break;
			char e = t_[p_++];
			switch (e) {
			case 'n':
				out += '\n';
				break;
			case 't':
				out += '\t';
				break;
			case 'r':
				out += '\r';
				break;
			case 'b':
				out += '\b';
				break;
			case 'f':
				out += '\f';
				break;
			case 'u': {
				if (p_ + 4 > t_.size()) {
					fail("bad \\u escape");
					return std::nullopt;
				}
				unsigned v = std::strtoul(std::string(t_.substr(p_, 4)).c_str(),
							  nullptr, 16);
				p_ += 4;
				if (v < 0x80) {
					out += char(v);
				} else if (v < 0x800) {
					out += char(0xc0 | (v >> 6));
					out += char(0x80 | (v & 0x3f));
				} else {
					out += char(0xe0 | (v >> 12));
					out += char(0x80 | ((v >> 6) & 0x3f));
					out += char(0x80 | (v & 0x3f));
				}
				break;
			}
			default:
				out += e;
			}
		}
		fail("unterminated string");
		return std::nullopt;
	}

	std::optional<Json> array(int depth)
	{
		Json a = Json::array();
		p_++;
		ws();
		if (lit("]"))
			return a;
		for (;;) {
			auto v = value(depth + 1);
			if (!v)
				return std::nullopt;
			a.push(std::move(*v));
			ws();
			if (lit("]"))
				return a;
			if (!lit(","))
				return fail("expected ',' or ']'");
		}
	}

	std::optional<Json> object(int depth)
	{
		Json o = Json::object();
		p_++;
		ws();
		if (lit("}"))
			return o;
		for (;;) {
			ws();
			if (p_ >= t_.size() || t_[p_] != '"')
				return fail("expected a member name in quotes");
			auto k = string();
			if (!k)
				return std::nullopt;
			ws();
			if (!lit(":"))
				return fail("expected ':' after \"" + *k + "\"");
			auto v = value(depth + 1);
			if (!v)
				return std::nullopt;
			o.set(*k, std::move(*v));
			ws();
			if (lit("}"))
				return o;
			if (!lit(","))
				return fail("expected ',' or '}'");
		}
	}

	std::string_view t_;
	std::string *err_;
	size_t p_ = 0;
};

} // namespace

std::optional<Json> Json::parse(std::string_view text, std::string *err)
{
	if (err)
		err->clear();
	return Parser(text, err).document();
}

} // namespace tools
