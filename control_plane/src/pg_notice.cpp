#include "pg_notice.hpp"

#include <string>

#include "log.hpp"

namespace tronch::cp {
namespace {

// Called by libpq with its formatted text ("NOTICE:  relation ... already exists, skipping\n").
void to_log(void* /*arg*/, const char* message) noexcept {
    try {
        std::string text = message ? message : "";
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        log::info("postgres notice", {{"message", text}});
    } catch (...) {
        // a notice is never worth failing the query that raised it
    }
}

}  // namespace

void route_notices_to_log(PGconn* conn) noexcept {
    PQsetNoticeProcessor(conn, to_log, nullptr);
}

}  // namespace tronch::cp
