// The error every layer throws and the API turns into {"error":{"code","message"}}. The code
// is an enum, so nothing ever has to read an exception's text to know what went wrong.
#pragma once

#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tronch::cp {

// Stable error codes; to_string() gives the wire name (also listed in openapi.json).
enum class ErrorCode {
    unauthorized,
    not_found,
    method_not_allowed,
    invalid_json,
    unknown_field,
    invalid_field,
    missing_field,
    unknown_parameter,
    invalid_parameter,
    invalid_id,
    invalid_cursor,
    invalid_header,
    body_too_large,
    unsupported_media_type,
    key_not_found,
    key_not_active,
    precondition_failed,
    idempotency_key_reused,
    database_unavailable,
    internal_error,
    bad_request,
};

constexpr std::string_view to_string(ErrorCode c) noexcept {
    constexpr std::string_view names[] = {
        "unauthorized",     "not_found",           "method_not_allowed",     "invalid_json",
        "unknown_field",    "invalid_field",       "missing_field",          "unknown_parameter",
        "invalid_parameter", "invalid_id",         "invalid_cursor",         "invalid_header",
        "body_too_large",   "unsupported_media_type", "key_not_found",       "key_not_active",
        "precondition_failed", "idempotency_key_reused", "database_unavailable",
        "internal_error",   "bad_request",
    };
    static_assert(std::size(names) == static_cast<std::size_t>(ErrorCode::bad_request) + 1);
    return names[static_cast<std::size_t>(c)];
}

struct ApiError : std::runtime_error {
    int status;
    ErrorCode code;
    std::string allow;  // 405 only: the Allow header's value
    ApiError(int http_status, ErrorCode error_code, const std::string& message, std::string allow_methods = {})
        : std::runtime_error(message), status(http_status), code(error_code), allow(std::move(allow_methods)) {}
};

// A client's mistake in what it sent: 400 with `code`.
[[noreturn]] inline void bad_input(ErrorCode code, const std::string& message) { throw ApiError(400, code, message); }

}  // namespace tronch::cp
