// Mirror::hand_over / take_over: see mirror.hpp. Kept apart from mirror.cpp: only start-up and
// shutdown use it.
#include <chrono>
#include <sstream>

#include "log.hpp"
#include "mirror.hpp"
#include "tronch/redis_keys.hpp"

namespace tronch::cp {
namespace {
std::int64_t unix_now() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}
}  // namespace

void Mirror::hand_over() noexcept {
    try {
        if (dirty_.load()) return;  // something failed to reach Redis: the next start rebuilds
        auto since = std::chrono::steady_clock::now().time_since_epoch() -
                     std::chrono::steady_clock::duration(last_full_pass_.load());
        std::int64_t signed_at = unix_now() - std::chrono::duration_cast<std::chrono::seconds>(since).count() - 1;
        std::int64_t ttl = signer_.validity_seconds() / 2;
        if (ttl < 1) return;
        redis_.command({"SET", kHandover, signer_.kid() + " " + std::to_string(signed_at), "EX", std::to_string(ttl)});
        log::info("redis mirror handed over", {{"kid", signer_.kid()}, {"signed_at_unix", signed_at}});
    } catch (const std::exception& e) {
        log::warn("redis mirror hand-over not written; the next start re-mirrors", {{"error", e.what()}});
    }
}

bool Mirror::take_over() noexcept {
    try {
        auto note = redis_.command({"GETDEL", kHandover});  // one start consumes it
        auto mark = redis_.command({"EXISTS", std::string(redis_keys::kMirrorEpoch)});
        if (note->type != REDIS_REPLY_STRING || mark->type != REDIS_REPLY_INTEGER || mark->integer != 1) return false;
        std::istringstream in(std::string(note->str, note->len));
        std::string kid;
        std::int64_t signed_at = 0;
        if (!(in >> kid >> signed_at) || kid != signer_.kid()) return false;
        std::int64_t age = unix_now() - signed_at;
        if (age < 0 || age >= signer_.validity_seconds() / 2) return false;
        // as if the last full pass had run here `age` seconds ago: the re-sign comes on time
        last_full_pass_ = (std::chrono::steady_clock::now().time_since_epoch() -
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::seconds(age)))
                              .count();
        mirrored_master_ = redis_.master_changes();
        dirty_ = false;
        log::info("redis mirror taken over from the previous run (no re-mirror)", {{"kid", kid}, {"signed_age_s", age}});
        return true;
    } catch (const std::exception& e) {
        log::warn("redis mirror hand-over not readable; re-mirroring", {{"error", e.what()}});
        return false;
    }
}

}  // namespace tronch::cp
