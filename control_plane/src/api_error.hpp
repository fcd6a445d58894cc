// The error every layer throws and the API turns into {"error":{"code","message"}}.
#pragma once

#include <stdexcept>
#include <string>

namespace tronch::cp {

struct ApiError : std::runtime_error {
    int status;
    std::string code;
    ApiError(int http_status, std::string error_code, const std::string& message)
        : std::runtime_error(message), status(http_status), code(std::move(error_code)) {}
};

// Stable error codes (also listed in openapi.json).
namespace codes {
inline constexpr const char* unauthorized = "unauthorized";
inline constexpr const char* not_found = "not_found";
inline constexpr const char* method_not_allowed = "method_not_allowed";
inline constexpr const char* invalid_json = "invalid_json";
inline constexpr const char* unknown_field = "unknown_field";
inline constexpr const char* invalid_field = "invalid_field";
inline constexpr const char* missing_field = "missing_field";
inline constexpr const char* unknown_parameter = "unknown_parameter";
inline constexpr const char* invalid_parameter = "invalid_parameter";
inline constexpr const char* invalid_id = "invalid_id";
inline constexpr const char* invalid_cursor = "invalid_cursor";
inline constexpr const char* invalid_header = "invalid_header";
inline constexpr const char* body_too_large = "body_too_large";
inline constexpr const char* unsupported_media_type = "unsupported_media_type";
inline constexpr const char* key_not_found = "key_not_found";
inline constexpr const char* key_not_active = "key_not_active";
inline constexpr const char* precondition_failed = "precondition_failed";
inline constexpr const char* idempotency_key_reused = "idempotency_key_reused";
inline constexpr const char* idempotency_in_progress = "idempotency_in_progress";
inline constexpr const char* idempotency_secret_unknown = "idempotency_secret_unknown";
inline constexpr const char* idempotency_unreadable = "idempotency_unreadable";
inline constexpr const char* database_unavailable = "database_unavailable";
inline constexpr const char* internal_error = "internal_error";
inline constexpr const char* bad_request = "bad_request";
}  // namespace codes

}  // namespace tronch::cp
