#include "mirror.hpp"

#include <chrono>
#include <functional>
#include <utility>

#include "log.hpp"
#include "metrics.hpp"
#include "times.hpp"
#include "tronch/redis_keys.hpp"

namespace tronch::cp {
std::vector<std::vector<std::string>> Mirror::commands_for(const KeyRow& k, std::int64_t now) const {
    std::string name = redis_keys::key_record(k.key_hash);
    std::vector<std::vector<std::string>> cmds;
    auto signed_record = [&] { return signer_.sign(k.key_hash, k.version, encode_key_record(key_record_of(k)), now / 1000000); };
    if (k.status == KeyStatus::active) {
        cmds.push_back({"SET", name, signed_record()});
    } else if (k.status == KeyStatus::rotating) {
        if (k.expires_us && *k.expires_us > now) {
            cmds.push_back({"SET", name, signed_record(), "PXAT", std::to_string(*k.expires_us / 1000)});
        } else {
            cmds.push_back({"DEL", name});  // grace over; the sweep marks it expired
        }
    } else {
        // revoked_ttl from the change, not from this write: re-signing must not keep it forever
        std::int64_t left = revoked_ttl_ - (now - k.updated_us) / 1000000;
        cmds.push_back({"SET", name, signed_record(), "EX", std::to_string(left > 1 ? left : 1)});
    }
    return cmds;
}

void Mirror::sync_keys(const std::vector<std::string>& ids) noexcept {
    for (auto& id : ids) sync_key(id);
}

Mirror::Hold Mirror::hold(const std::string& id) { return hold(id, id); }

Mirror::Hold Mirror::hold(const std::string& id, const std::string& other_id) {
    std::size_t a = stripe_of(id), b = stripe_of(other_id);
    if (a > b) std::swap(a, b);  // two stripes are always taken lower index first
    // rebuild before stripes, always: the order every writer takes them in
    Hold h{std::shared_lock(rebuild_mu_), {}, {}};
    h.stripe = std::unique_lock(stripes_[a]);
    if (b != a) h.other = std::unique_lock(stripes_[b]);
    return h;
}

void Mirror::write(const KeyRow& k, const Hold& /*held*/) noexcept {
    try {
        auto cmds = commands_for(k, now_us());
        redis_keys::Event ev{redis_keys::EventType::key_changed, k.key_hash, k.id};
        cmds.push_back({"PUBLISH", std::string(redis_keys::kEventsChannel), redis_keys::event_json(ev)});
        redis_.pipeline(cmds);
    } catch (const std::exception& e) {
        dirty_ = true;
        log::warn("redis mirror write failed; full re-mirror pending", {{"key_id", k.id}, {"error", e.what()}});
    }
}

void Mirror::sync_key(const std::string& id) noexcept {
    try {
        // the connection before the locks, for every writer: a create holds its stripe while it
        // holds its connection, so waiting for a connection under a stripe could deadlock
        pg_.with_conn([&](PgConn& c) {
            Hold held = hold(id);
            auto row = c.exec(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1::uuid", {id});
            if (row.rows() > 0) write(read_key_row(row, 0), held);
        });
    } catch (const std::exception& e) {
        dirty_ = true;
        log::warn("redis mirror write failed; full re-mirror pending", {{"key_id", id}, {"error", e.what()}});
    }
}

bool Mirror::tick() noexcept {
    try {
        bool need = dirty_.load();
        if (!need) {
            auto r = redis_.command({"EXISTS", std::string(redis_keys::kMirrorEpoch)});
            need = r->type == REDIS_REPLY_INTEGER && r->integer == 0;
            if (need) log::warn("mirror epoch mark missing (Redis flushed or restarted); re-mirroring");
        }
        // Connected to another master since the last rebuild (a Sentinel fail-over): the replica
        // it was may have missed the last writes before the old master died, mark or no mark.
        if (!need && redis_.master_changes() != mirrored_master_) {
            need = true;
            log::warn("redis master changed; re-mirroring");
        }
        if (!need) {
            if (!resign_due()) return false;
            resign();
            return true;
        }
        rebuild();
        return true;
    } catch (const std::exception& e) {
        if (!dirty_.exchange(true)) log::warn("redis mirror check failed", {{"error", e.what()}});
        return false;
    }
}

void Mirror::rebuild() {
    // Connected first, so the master this rebuild writes to is the one recorded; recorded before
    // the writes, so a fail-over during the rebuild triggers another.
    redis_.command({"EXISTS", std::string(redis_keys::kMirrorEpoch)});
    mirrored_master_ = redis_.master_changes();
    auto start = std::chrono::steady_clock::now();
    pg_.with_conn([&](PgConn& c) { rebuild_locked(c, start, true); });  // the connection first: see sync_key
}

void Mirror::resign() {
    auto start = std::chrono::steady_clock::now();
    pg_.with_conn([&](PgConn& c) { rebuild_locked(c, start, false); });
}

bool Mirror::resign_due() const {
    auto since = std::chrono::steady_clock::now().time_since_epoch().count() - last_full_pass_.load();
    auto half = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::seconds(signer_.validity_seconds()) / 2);
    return since >= half.count();
}

void Mirror::rebuild_locked(PgConn& c, std::chrono::steady_clock::time_point start, bool announce) {
    std::unique_lock lock(rebuild_mu_);
    // from here on every record written is signed at least this late
    last_full_pass_ = std::chrono::steady_clock::now().time_since_epoch().count();
    if (announce) dirty_ = true;
    auto rows = c.exec(std::string("SELECT ") + kKeyColumns +
                           " FROM api_keys WHERE status = 'active'"
                           " OR (status = 'rotating' AND expires_at > now())"
                           " OR (status IN ('revoked', 'expired') AND updated_at > now() - $1::bigint * interval '1 second')",
                       {std::to_string(revoked_ttl_)});
    std::int64_t now = now_us();
    std::vector<std::vector<std::string>> batch;
    for (int i = 0; i < rows.rows(); ++i) {
        KeyRow k = read_key_row(rows, i);
        for (auto& cmd : commands_for(k, now)) batch.push_back(std::move(cmd));
        if (batch.size() >= 500) {
            redis_.pipeline(batch);
            batch.clear();
        }
    }
    if (announce) {
        batch.push_back({"SET", std::string(redis_keys::kMirrorEpoch), std::to_string(now / 1000000)});
        batch.push_back({"PUBLISH", std::string(redis_keys::kEventsChannel),
                         redis_keys::event_json({redis_keys::EventType::mirror_rebuilt, "", ""})});
    }
    if (!batch.empty()) redis_.pipeline(batch);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!announce) {
        log::info("redis mirror re-signed", {{"keys", rows.rows()}, {"duration_ms", ms}, {"kid", signer_.kid()}});
        return;
    }
    dirty_ = false;
    metrics_.mirror_rebuild();
    log::info("redis mirror rebuilt", {{"keys", rows.rows()}, {"duration_ms", ms}, {"kid", signer_.kid()}});
}

}  // namespace tronch::cp
