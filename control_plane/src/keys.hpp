// The key lifecycle on Postgres: each change and its audit row in one transaction, then
// the Redis mirror (after commit). Idempotency-Key records live in the same transaction
// as the creation they protect.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "db.hpp"
#include "mirror.hpp"
#include "query.hpp"
#include "service.hpp"

namespace tronch::cp {

class KeyService {
public:
    KeyService(PgPool& pg, Mirror& mirror, std::string secret, std::int64_t max_grace_seconds)
        : pg_(pg), mirror_(mirror), secret_(std::move(secret)), max_grace_(max_grace_seconds) {}

    ServiceResult create(const nlohmann::json& body, const RequestContext& ctx);
    ServiceResult get(const std::string& id);
    ServiceResult list(const Query& q);
    ServiceResult patch(const std::string& id, const nlohmann::json& body, const RequestContext& ctx);
    ServiceResult rotate(const std::string& id, const nlohmann::json& body, const RequestContext& ctx);
    ServiceResult revoke(const std::string& id, const RequestContext& ctx);

    // Marks active/rotating keys past expires_at as expired (audit action "expire"),
    // then mirrors them. Returns how many.
    int sweep_expired();
    // Deletes idempotency records older than 24 hours.
    void purge_idempotency();

private:
    struct Idem {
        std::string key, lookup, endpoint, request_hash, aad;
    };
    std::optional<Idem> idem_for(const RequestContext& ctx, const std::string& endpoint, const nlohmann::json& body);
    std::optional<ServiceResult> idem_replay(PgConn& c, const Idem& idem);
    void idem_store(PgConn& c, const Idem& idem, const ServiceResult& r);

    PgPool& pg_;
    Mirror& mirror_;
    std::string secret_;
    std::int64_t max_grace_;
};

}  // namespace tronch::cp
