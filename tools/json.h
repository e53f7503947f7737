// SPDX-License-Identifier: MIT
/*
 * A small JSON value for the tools: one data model per command, printed as
 * text or, with --json, serialised; and parsed, for accel-run's network
 * files.
 */
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tools {

class Json
{
public:
	using Array = std::vector<Json>;
	/* Members keep their insertion order. */
	using Object = std::vector<std::pair<std::string, Json>>;

	Json() = default;
	Json(std::nullptr_t) { }
	Json(bool b) : v_(b) { }
	Json(int i) : v_(int64_t(i)) { }
	Json(unsigned i) : v_(int64_t(i)) { }
	Json(long i) : v_(int64_t(i)) { }
	Json(unsigned long i) : v_(int64_t(i)) { }
	Json(long long i) : v_(int64_t(i)) { }
	Json(unsigned long long i) : v_(int64_t(i)) { }
	Json(double d) : v_(d) { }
	Json(const char *s) : v_(std::string(s)) { }
	Json(std::string s) : v_(std::move(s)) { }
	Json(std::string_view s) : v_(std::string(s)) { }
	Json(Array a) : v_(std::move(a)) { }
	Json(Object o) : v_(std::move(o)) { }

	static Json array() { return Json(Array{}); }
	static Json object() { return Json(Object{}); }

	bool is_null() const { return v_.index() == 0; }
	bool is_bool() const { return v_.index() == 1; }
	bool is_int() const { return v_.index() == 2; }
	bool is_number() const { return v_.index() == 2 || v_.index() == 3; }
	bool is_string() const { return v_.index() == 4; }
	bool is_array() const { return v_.index() == 5; }
	bool is_object() const { return v_.index() == 6; }

	bool as_bool() const { return std::get<bool>(v_); }
	int64_t as_int() const
	{
		return is_int() ? std::get<int64_t>(v_) : int64_t(std::get<double>(v_));
	}
	double as_double() const
	{
		return is_int() ? double(std::get<int64_t>(v_)) : std::get<double>(v_);
	}
	const std::string &as_string() const { return std::get<std::string>(v_); }
	const Array &as_array() const { return std::get<Array>(v_); }
	Array &as_array() { return std::get<Array>(v_); }
	const Object &as_object() const { return std::get<Object>(v_); }

	/* Object member access; set() replaces or appends. */
	Json &set(const std::string &key, Json value);
	const Json *get(const std::string &key) const;
	/* Array append. */
	Json &push(Json value);

	/* Compact serialisation (indent < 0) or pretty with that many spaces. */
	std::string dump(int indent = -1) const;

	/* Parse; on error returns nullopt and sets *err (with line and column). */
	static std::optional<Json> parse(std::string_view text, std::string *err);

private:
	void dump_to(std::string &out, int indent, int depth) const;

	std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v_;
};

/* A JSON string literal for s. */
std::string json_quote(std::string_view s);

} // namespace tools
