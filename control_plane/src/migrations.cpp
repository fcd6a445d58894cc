#include "migrations.hpp"

#include <algorithm>

#include "embedded.hpp"
#include "log.hpp"

namespace tronch::cp {
namespace {
constexpr const char* kLockId = "7316248805";  // pg_advisory_lock key, fixed for tronchd
}

std::vector<std::string> run_migrations(PgConn& conn) {
    std::vector<std::string> applied;
    conn.exec(std::string("SELECT pg_advisory_lock(") + kLockId + ")");
    try {
        conn.exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
        auto done = conn.exec("SELECT version FROM schema_migrations");
        std::vector<long> versions;
        for (int i = 0; i < done.rows(); ++i) versions.push_back(done.i64(i, 0));
        for (const auto& m : embedded_migrations()) {
            std::string name(m.name);
            long version = std::stol(name.substr(0, 4));
            if (std::find(versions.begin(), versions.end(), version) != versions.end()) continue;
            conn.exec("BEGIN");
            try {
                conn.exec_script(std::string(m.content));
                conn.exec("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                          {std::to_string(version), name});
                conn.exec("COMMIT");
            } catch (...) {
                try { conn.exec("ROLLBACK"); } catch (...) {}
                throw;
            }
            log::info("migration applied", {{"migration", name}});
            applied.push_back(name);
        }
    } catch (...) {
        try { conn.exec(std::string("SELECT pg_advisory_unlock(") + kLockId + ")"); } catch (...) {}
        throw;
    }
    conn.exec(std::string("SELECT pg_advisory_unlock(") + kLockId + ")");
    return applied;
}

}  // namespace tronch::cp
