// Times as tronchd handles them: unix microseconds inside, RFC 3339 on the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tronch::cp {

// Times are refused from 10000-01-01T00:00:00Z on: RFC 3339 has four-digit years.
inline constexpr std::int64_t kTimeLimitUs = 253402300800LL * 1000000;

// The wall clock in unix microseconds (the one clock every service reads).
std::int64_t now_us();

// RFC 3339 ("2030-01-02T03:04:05Z", fractional seconds and offsets allowed) -> unix us; only
// 1970-01-01T00:00:00Z <= t < 10000-01-01T00:00:00Z (so every time we echo is valid RFC 3339).
std::optional<std::int64_t> parse_rfc3339(std::string_view text) noexcept;
// unix us -> "2030-01-02T03:04:05.123456Z" (microseconds shown only when non-zero).
std::string format_rfc3339(std::int64_t unix_us);

// "3600", "90s", "15m", "12h", "7d" -> seconds (> 0).
std::optional<std::int64_t> parse_duration_seconds(std::string_view text) noexcept;

}  // namespace tronch::cp
