// The Redis mirror. After a change commits, sync_key() re-reads the row from Postgres (so
// writes for one key can never land out of order) and writes the core library's record
// JSON under redis_keys::key_record(hash), then publishes a key.changed event.
//
// A change whose rows the transaction itself returned needs no re-read: hold() the keys'
// stripes before the COMMIT (a create: after its INSERT; a rotation: while both rows are locked)
// and write() those rows after it. Nobody else can change the rows before the COMMIT, and whoever
// changes them after waits for the stripes, so the writes still land in commit order.
//
// Redis lifetimes: active -> no TTL; rotating -> PXAT grace end (drops out on time);
// revoked/expired -> EX revoked_ttl (gateways answer "revoked"/"expired", not "unknown").
//
// Every record is stored signed (record_signer.hpp): an envelope naming the key hash, the row's
// version and a validity end `record_validity_seconds` ahead. tick() re-signs the whole mirror
// once half of that has passed since the last full pass (a rebuild, or the re-sign itself), so a
// genuine record never lapses while tronchd runs; a superseded one lapses at most one validity
// after it was superseded.
//
// If Redis cannot be written, the mirror is marked dirty and tick() rebuilds everything
// once Redis answers again. tick() also rebuilds when the completeness mark
// (kMirrorEpoch) is missing, i.e. Redis was flushed or restarted, and when the client has
// connected to another master (Sentinel fail-over; see RedisClient::master_changes).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "db.hpp"
#include "key_row.hpp"
#include "record_signer.hpp"
#include "redis_client.hpp"

namespace tronch::cp {

class Metrics;

class Mirror {
public:
    Mirror(RedisClient& redis, PgPool& pg, Metrics& metrics, const RecordSigner& signer, long revoked_ttl_seconds)
        : redis_(redis), pg_(pg), metrics_(metrics), signer_(signer), revoked_ttl_(revoked_ttl_seconds) {}

    // While held, no other write for the keys (and no rebuild) can start.
    struct Hold {
        std::shared_lock<std::shared_mutex> rebuild;
        std::unique_lock<std::mutex> stripe, other;  // other: a second key on another stripe
    };
    Hold hold(const std::string& id);
    Hold hold(const std::string& id, const std::string& other_id);  // stripes in index order
    // Writes k as it is, under the caller's hold on k.id. Never throws: a failure marks the
    // mirror dirty.
    void write(const KeyRow& k, const Hold& held) noexcept;

    // Never throws: a failure marks the mirror dirty.
    void sync_key(const std::string& id) noexcept;
    void sync_keys(const std::vector<std::string>& ids) noexcept;
    // Rebuild if dirty or if the epoch mark is gone; re-sign if half the validity has passed
    // since the last full pass. Never throws. True if it rebuilt (or re-signed).
    bool tick() noexcept;
    // Re-mirror every live key, set the epoch mark, publish mirror.rebuilt. Throws.
    void rebuild();
    // Re-mirror (so re-sign) every live key; no event: nothing a gateway holds changed. Throws.
    void resign();
    bool dirty() const { return dirty_.load(); }

    // A restart without a full re-mirror (mirror_handover.cpp). At a clean shutdown with the
    // mirror complete, hand_over() leaves a note in Redis (kHandover: the signing kid and when
    // the last full pass was signed); at start-up take_over() consumes it (GETDEL) and, if the
    // epoch mark is there, the kid is this signer's and the signatures are fresh, takes the mirror
    // as complete: no rebuild, the usual re-sign at half the validity. A crash, a failed write
    // (dirty), a flushed Redis or a new signing key leave no usable note: full rebuild as before.
    // Neither throws.
    void hand_over() noexcept;
    bool take_over() noexcept;
    static constexpr const char* kHandover = "tronch:mirror:handover";
    const RecordSigner& signer() const { return signer_; }

private:
    void rebuild_locked(PgConn& c, std::chrono::steady_clock::time_point start, bool announce);
    bool resign_due() const;
    std::vector<std::vector<std::string>> commands_for(const KeyRow& k, std::int64_t now_us) const;
    RedisClient& redis_;
    PgPool& pg_;
    Metrics& metrics_;
    const RecordSigner& signer_;
    long revoked_ttl_;
    std::atomic<std::int64_t> last_full_pass_{0};  // steady_clock ticks when the last full pass began
    std::atomic<bool> dirty_{true};  // nothing mirrored yet: rebuild at start-up
    std::atomic<std::uint64_t> mirrored_master_{0};  // redis_.master_changes() at the last rebuild
    std::shared_mutex rebuild_mu_;   // exclusive during a rebuild
    std::size_t stripe_of(const std::string& id) const { return std::hash<std::string>{}(id) % stripes_.size(); }
    std::array<std::mutex, 64> stripes_;
};

}  // namespace tronch::cp
