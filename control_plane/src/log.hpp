// Structured logs: one JSON object per line on stdout (ts, level, msg, then fields).
// Nothing here ever receives a plaintext key: callers log ids and prefixes only.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace tronch::cp::log {

void write(std::string_view level, std::string_view msg, nlohmann::json fields = nlohmann::json::object());
inline void info(std::string_view msg, nlohmann::json f = nlohmann::json::object()) { write("info", msg, std::move(f)); }
inline void warn(std::string_view msg, nlohmann::json f = nlohmann::json::object()) { write("warn", msg, std::move(f)); }
inline void error(std::string_view msg, nlohmann::json f = nlohmann::json::object()) { write("error", msg, std::move(f)); }

}  // namespace tronch::cp::log
