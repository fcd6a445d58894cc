// A repeating failure logged as a transition, not once per attempt: the first failure at once,
// then at most one line per `every` while it lasts (with how many attempts failed meanwhile),
// and one line when it recovers. A loop that runs each second while PostgreSQL is down would
// otherwise write 3600 identical lines an hour.
#pragma once

#include <chrono>
#include <string>

#include "log.hpp"

namespace tronch::cp {

class FailureLog {
public:
    FailureLog(std::string what, std::chrono::steady_clock::duration every) : what_(std::move(what)), every_(every) {}

    // Not thread-safe: one loop owns it.
    void failed(const std::string& error, std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
        ++failures_;
        if (failures_ > 1 && now - last_logged_ < every_) return;
        log::warn(what_ + " failed", {{"error", error},
                                      {"failures", failures_},
                                      {"next_log_in_s", std::chrono::duration_cast<std::chrono::seconds>(every_).count()}});
        last_logged_ = now;
    }
    void succeeded() {
        if (failures_ > 0) log::info(what_ + " works again", {{"failures", failures_}});
        failures_ = 0;
    }
    long failures() const { return failures_; }

private:
    std::string what_;
    std::chrono::steady_clock::duration every_;
    std::chrono::steady_clock::time_point last_logged_{};
    long failures_ = 0;
};

}  // namespace tronch::cp
