// The audit trail: one row per key change, written in the change's own transaction
// (write_audit_row) and read back newest first, a page at a time (GET /api/v1/audit).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "db.hpp"
#include "query.hpp"
#include "service.hpp"

namespace tronch::cp {

// Queued on `c` (sent with the next statement or the COMMIT). before/after: the key's API
// view, null for none.
void write_audit_row(PgConn& c, const RequestContext& ctx, const char* action, const std::string& key_id,
                     const nlohmann::json& before, const nlohmann::json& after);

class AuditLog {
public:
    explicit AuditLog(PgPool& pg) : pg_(pg) {}
    // Query: limit, cursor, key_id, action.
    ServiceResult list(const Query& q);

private:
    PgPool& pg_;
};

}  // namespace tronch::cp
