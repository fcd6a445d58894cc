#include "log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace tronch::cp::log {

void write(std::string_view level, std::string_view msg, nlohmann::json fields) {
    using namespace std::chrono;
    auto now = system_clock::now();
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char ts[96];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    // Written out directly rather than through an ordered_json copy of the fields: that copy
    // was most of a request's logging cost. Strings are escaped by nlohmann (invalid UTF-8 replaced).
    constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
    auto append_quoted = [](std::string& out, std::string_view s) {
        out += nlohmann::json(s).dump(-1, ' ', false, kReplace);
    };
    std::string text = "{\"ts\":\"";
    text += ts;
    text += "\",\"level\":";
    append_quoted(text, level);
    text += ",\"msg\":";
    append_quoted(text, msg);
    if (fields.is_object()) {
        for (auto& [key, value] : fields.items()) {
            if (key == "ts" || key == "level" || key == "msg") continue;  // never two of one name
            text += ',';
            append_quoted(text, key);
            text += ':';
            text += value.dump(-1, ' ', false, kReplace);
        }
    }
    text += "}\n";
    static std::mutex mu;
    std::lock_guard lock(mu);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

}  // namespace tronch::cp::log
