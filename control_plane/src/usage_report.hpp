// A key's usage as counted by the gateways and rolled up by UsageRollup (usage.hpp): one-minute
// buckets in key_usage, read back for GET /api/v1/keys/{id}/usage.
#pragma once

#include <string>

#include "db.hpp"
#include "query.hpp"
#include "service.hpp"

namespace tronch::cp {

class UsageReport {
public:
    explicit UsageReport(PgPool& pg) : pg_(pg) {}
    // Query: since, until (RFC 3339; the last 24 hours by default). 404 for an unknown key.
    ServiceResult of_key(const std::string& id, const Query& q);

private:
    PgPool& pg_;
};

}  // namespace tronch::cp
