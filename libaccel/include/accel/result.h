// SPDX-License-Identifier: MIT
/*
 * Copyright (C) 2025 The refnpu authors
 */
/**
 * \file result.h
 * \brief Error codes of libaccel and the Result<T> return type.
 *
 * No exception ever crosses the libaccel API: every operation that can fail
 * returns a Result<T> holding either a value or an Error. An Error carries a
 * std::error_code in the accel category (see Errc), the errno that caused it
 * (if any) and a message that says what failed and what to do about it.
 *
 * Thread safety: Error and Result are plain values; distinct objects may be
 * used from different threads, one object is not synchronised.
 */
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <accel/export.h>

namespace accel {

/**
 * \brief Kinds of failure, the values of the accel error category.
 *
 * Each kind calls for a different reaction from the application, which is
 * why they are told apart. The category maps them to the portable
 * std::errc conditions, so `code == std::errc::timed_out` works too.
 */
enum class Errc {
	/** No such device: no accel node, driver not loaded, wrong index or address. */
	no_device = 1,
	/** The node exists but cannot be opened or the operation is not allowed. */
	permission_denied,
	/** The driver or its uAPI is too old (or too new) for this feature. */
	unsupported,
	/** The device was removed or reset, or this context was banned. */
	device_lost,
	/** A deadline passed before the operation completed. */
	timeout,
	/** An argument is invalid; the message names it and says why. */
	invalid_argument,
	/** Out of memory, address space, file descriptors or the memlock limit. */
	resource_limit,
	/** The device ran the job and reported an error (MMU fault, malformed command, DMA error).
	 */
	job_failed,
	/** Anything else the system reported; the message carries the errno. */
	system_error,
};

/** \brief The accel error category (name "accel"). */
ACCEL_EXPORT const std::error_category &category() noexcept;

/** \brief Make a std::error_code of the accel category. */
inline std::error_code make_error_code(Errc e) noexcept
{
	return {static_cast<int>(e), category()};
}

/**
 * \brief Classify an errno returned by the kernel.
 * \param err positive errno value
 * \return the accel error kind an application should react to
 */
ACCEL_EXPORT Errc errc_from_errno(int err) noexcept;

/**
 * \brief What went wrong: a code, the causing errno and a message.
 */
class ACCEL_EXPORT Error
{
public:
	/** \brief An error of kind \a e with message \a message and causing errno \a sys_errno. */
	Error(Errc e, std::string message, int sys_errno = 0)
		: code_(make_error_code(e)), message_(std::move(message)), errno_(sys_errno)
	{
	}

	/** \brief An error classified from errno \a sys_errno, with \a message. */
	static Error from_errno(int sys_errno, std::string message)
	{
		return Error(errc_from_errno(sys_errno), std::move(message), sys_errno);
	}

	/** \brief The error code, in the accel category. */
	std::error_code code() const noexcept { return code_; }
	/** \brief The error kind. */
	Errc errc() const noexcept { return static_cast<Errc>(code_.value()); }
	/** \brief The errno that caused the error, or 0. */
	int sys_errno() const noexcept { return errno_; }
	/** \brief What failed and what to do about it. */
	const std::string &message() const noexcept { return message_; }
	/** \brief The message followed by the category's description and errno text. */
	std::string what() const;

	/** \brief Prefix the message with context ("opening X: ..."). */
	Error &&context(const std::string &prefix) &&
	{
		message_ = prefix + ": " + message_;
		return std::move(*this);
	}

private:
	std::error_code code_;
	std::string message_;
	int errno_;
};

/**
 * \brief The Error of a job that completed with negative errno \a status
 *        (as DRM_IOCTL_REFNPU_BO_WAIT and sync_file status report it).
 */
ACCEL_EXPORT Error job_status_error(int status);

/**
 * \brief A value of type T or an Error (like C++23 std::expected).
 *
 * value() on an error prints the error and aborts: check has_value() or
 * the bool conversion first.
 */
template <typename T>
class [[nodiscard]] Result
{
public:
	/** \brief A successful result. */
	Result(T value) : v_(std::in_place_index<0>, std::move(value)) { }
	/** \brief A failed result. */
	Result(Error error) : v_(std::in_place_index<1>, std::move(error)) { }

	/** \brief True when a value is held. */
	bool has_value() const noexcept { return v_.index() == 0; }
	/** \brief True when a value is held. */
	explicit operator bool() const noexcept { return has_value(); }

	/** \brief The value; aborts when an error is held. */
	T &value() &
	{
		check();
		return std::get<0>(v_);
	}
	/** \copydoc value() */
	const T &value() const &
	{
		check();
		return std::get<0>(v_);
	}
	/** \copydoc value() */
	T &&value() &&
	{
		check();
		return std::get<0>(std::move(v_));
	}
	/** \brief The value; aborts when an error is held. */
	T &operator*() & { return value(); }
	/** \copydoc operator*() */
	const T &operator*() const & { return value(); }
	/** \copydoc operator*() */
	T &&operator*() && { return std::move(*this).value(); }
	/** \brief Member access to the value; aborts when an error is held. */
	T *operator->() { return &value(); }
	/** \copydoc operator->() */
	const T *operator->() const { return &value(); }

	/** \brief The value, or \a other when an error is held. */
	template <typename U>
	T value_or(U &&other) const &
	{
		return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(other));
	}

	/** \brief The error; only valid when has_value() is false. */
	const Error &error() const & { return std::get<1>(v_); }
	/** \copydoc error() */
	Error &&error() && { return std::get<1>(std::move(v_)); }
	/** \brief The error code, or a default (success) code when a value is held. */
	std::error_code code() const noexcept
	{
		return has_value() ? std::error_code() : std::get<1>(v_).code();
	}

private:
	void check() const
	{
		if (!has_value()) {
			std::fprintf(stderr, "accel: value() of a failed Result: %s\n",
				     std::get<1>(v_).what().c_str());
			std::abort();
		}
	}

	std::variant<T, Error> v_;
};

/** \brief Success or an Error. */
template <>
class [[nodiscard]] Result<void>
{
public:
	/** \brief Success. */
	Result() = default;
	/** \brief A failed result. */
	Result(Error error) : err_(std::move(error)), ok_(false) { }

	/** \brief True on success. */
	bool has_value() const noexcept { return ok_; }
	/** \brief True on success. */
	explicit operator bool() const noexcept { return ok_; }
	/** \brief Aborts with the error's message when the result is an error. */
	void value() const
	{
		if (!ok_) {
			std::fprintf(stderr, "accel: value() of a failed Result: %s\n",
				     err_.what().c_str());
			std::abort();
		}
	}
	/** \brief The error; only valid when has_value() is false. */
	const Error &error() const & { return err_; }
	/** \copydoc error() */
	Error &&error() && { return std::move(err_); }
	/** \brief The error code, or a default (success) code on success. */
	std::error_code code() const noexcept { return ok_ ? std::error_code() : err_.code(); }

private:
	Error err_{Errc::system_error, {}};
	bool ok_ = true;
};

} // namespace accel

template <>
struct std::is_error_code_enum<accel::Errc> : std::true_type {
};
