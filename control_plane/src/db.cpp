#include "db.hpp"
#include "pg_notice.hpp"

#include <algorithm>
#include <string_view>

namespace tronch::cp {

std::string PgResult::bytea(int row, int col) const {
    std::size_t len = 0;
    unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &len);
    if (!raw) throw std::runtime_error("PQunescapeBytea failed");
    std::string out(reinterpret_cast<char*>(raw), len);
    PQfreemem(raw);
    return out;
}

std::string PgConn::escape_bytea(std::string_view raw) {
    static const char* H = "0123456789abcdef";
    std::string out = "\\x";
    for (unsigned char c : raw) {
        out += H[c >> 4];
        out += H[c & 15];
    }
    return out;
}

PgResult PgConn::check(PGresult* r) {
    PgResult res(r);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return res;
    std::string msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c_.get());
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    // 0A000 with this text is the only way the server says it (libpq has no finer code).
    if (sqlstate == "0A000" && msg.find("cached plan must not change result type") != std::string::npos) {
        broken_ = true;
        throw DbPlanChanged(msg);
    }
    if (sqlstate == "25006") {  // read_only_sql_transaction: a standby, or a demoted primary
        broken_ = true;
        throw DbReadOnly(msg);
    }
    // Class 08 (connection), 57P0x (shutdown), 57014 (statement timeout), 53 (resources).
    if (PQstatus(c_.get()) != CONNECTION_OK || sqlstate.empty() || sqlstate.rfind("08", 0) == 0 ||
        sqlstate.rfind("57P0", 0) == 0 || sqlstate == "57014" || sqlstate.rfind("53", 0) == 0) {
        broken_ = broken_ || PQstatus(c_.get()) != CONNECTION_OK || sqlstate.empty() || sqlstate.rfind("57P0", 0) == 0 ||
                  sqlstate.rfind("08", 0) == 0;
        throw DbUnavailable(msg);
    }
    throw DbError(msg, sqlstate);
}

namespace {

// Far more than the daemon's distinct statements (about 40); a statement with a value built
// into its text runs unprepared once the cap is reached instead of growing the map.
constexpr std::size_t kMaxPreparedStatements = 256;

std::vector<const char*> param_values(const std::vector<Param>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    return values;
}

}  // namespace

const std::string* PgConn::prepared_name(const std::string& sql) const {
    auto it = prepared_.find(sql);
    return it == prepared_.end() ? nullptr : &it->second;
}

// A statement already prepared goes alone (Bind/Execute); anything else (deferred statements,
// or one to prepare first) goes through the pipeline, so a first use costs no extra round trip.
PgResult PgConn::exec(const std::string& sql, const std::vector<Param>& params) {
    const std::string* name = deferred_.empty() ? prepared_name(sql) : nullptr;
    if (name == nullptr) return exec_pipelined(sql, params);
    auto values = param_values(params);
    PgResult r = check(PQexecPrepared(c_.get(), name->c_str(), static_cast<int>(params.size()), values.data(),
                                      nullptr, nullptr, 0));
    ++answered_;
    return r;
}

void PgConn::defer(std::string sql, std::vector<Param> params) {
    deferred_.push_back({std::move(sql), std::move(params)});
}

bool PgConn::in_transaction() const {
    PGTransactionStatusType st = PQtransactionStatus(c_.get());
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

// The deferred statements and this one, sent back to back and answered after one sync. A
// statement this connection has not prepared yet is parsed first, in the same batch (a Parse,
// then Bind/Execute by name); it is remembered as prepared only once the server said so. After
// an error the server skips the rest (PGRES_PIPELINE_ABORTED); the first error is thrown, once
// every result up to the sync has been read, so the connection stays usable. The connection is
// blocking, which is safe here only because a batch is a few small statements: their results fit
// in the socket buffers while we are still sending.
PgResult PgConn::exec_pipelined(const std::string& sql, const std::vector<Param>& params) {
    std::vector<Deferred> batch;
    batch.swap(deferred_);
    PGconn* c = c_.get();
    auto fail = [&]() -> PgResult {
        broken_ = true;  // the pipeline's state is unknown: never reuse this connection
        return check(nullptr);
    };
    if (PQenterPipelineMode(c) != 1) return fail();

    struct Sent {
        const std::string* parsed_sql;  // a Parse: its SQL text; nullptr for a statement
        std::string name;
    };
    std::vector<Sent> sent;
    sent.reserve(2 * batch.size() + 2);
    std::unordered_map<std::string, std::string> parsing;  // Parses queued in this batch
    auto send = [&](const std::string& text, const std::vector<Param>& ps) {
        auto values = param_values(ps);
        const int n = static_cast<int>(ps.size());
        const std::string* name = prepared_name(text);
        if (name == nullptr) {
            if (auto it = parsing.find(text); it != parsing.end()) {
                name = &it->second;
            } else if (prepared_.size() + parsing.size() < kMaxPreparedStatements) {
                auto [added, _] = parsing.emplace(text, "tronch_" + std::to_string(next_statement_++));
                if (PQsendPrepare(c, added->second.c_str(), text.c_str(), 0, nullptr) != 1) return false;
                sent.push_back({&added->first, added->second});
                name = &added->second;
            }
        }
        sent.push_back({nullptr, {}});
        return (name ? PQsendQueryPrepared(c, name->c_str(), n, values.data(), nullptr, nullptr, 0)
                     : PQsendQueryParams(c, text.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0)) == 1;
    };
    for (auto& d : batch) {
        if (!send(d.sql, d.params)) return fail();
    }
    if (!send(sql, params) || PQpipelineSync(c) != 1) return fail();

    std::optional<PgResult> first_error;
    std::optional<PgResult> last;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        PGresult* r = PQgetResult(c);
        if (r == nullptr) return fail();
        while (PGresult* extra = PQgetResult(c)) PQclear(extra);  // up to this query's end (NULL)
        ExecStatusType st = PQresultStatus(r);
        PgResult res(r);
        if (st == PGRES_PIPELINE_ABORTED) continue;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            if (!first_error) first_error.emplace(std::move(res));
            continue;
        }
        if (sent[i].parsed_sql) {
            prepared_.emplace(*sent[i].parsed_sql, sent[i].name);
            continue;
        }
        ++answered_;
        if (i + 1 == sent.size()) last.emplace(std::move(res));
    }
    PGresult* sync = PQgetResult(c);
    bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!synced || PQexitPipelineMode(c) != 1) return fail();
    if (first_error) {
        ++answered_;  // the server answered, with an error
        return check(first_error->release());
    }
    return std::move(*last);
}

void PgConn::exec_script(const std::string& sql) { check(PQexec(c_.get(), sql.c_str())); }

namespace {

std::string trimmed(std::string msg) {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return msg;
}

}  // namespace

// Any libpq connection string (URL or key=value, several hosts, sslmode=verify-full, ...), parsed
// by libpq itself, with tronchd's defaults added where the string has none: connect_timeout and
// application_name only if it does not set them; tronchd's timeouts go first in `options`, so the
// string's own options (e.g. -c statement_timeout=...) come after them and win.
std::unique_ptr<PgConn> PgPool::connect_one() {
    // A bare word is a database name, as libpq's expand_dbname treats it.
    const bool conninfo = opt_.url.find('=') != std::string::npos || opt_.url.rfind("postgres://", 0) == 0 ||
                          opt_.url.rfind("postgresql://", 0) == 0;
    const std::string text = conninfo ? opt_.url : "dbname='" + opt_.url + "'";
    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(text.c_str(), &err);
    if (!parsed) {
        std::string msg = err ? err : "out of memory";
        if (err) PQfreemem(err);
        throw DbUnavailable("TRONCH_DATABASE_URL is not a valid libpq connection string: " + trimmed(msg));
    }
    std::vector<std::string> keys, vals;
    std::string string_options;
    for (PQconninfoOption* o = parsed; o->keyword; ++o) {
        if (!o->val) continue;
        if (std::string_view(o->keyword) == "options") {
            string_options = o->val;
            continue;
        }
        keys.emplace_back(o->keyword);
        vals.emplace_back(o->val);
    }
    PQconninfoFree(parsed);
    auto has = [&](std::string_view k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
    if (!has("connect_timeout")) {
        keys.emplace_back("connect_timeout");
        vals.push_back(std::to_string(opt_.connect_timeout_s));
    }
    if (!has("application_name")) {
        keys.emplace_back("application_name");
        vals.emplace_back("tronchd");
    }
    keys.emplace_back("options");
    vals.push_back("-c statement_timeout=" + std::to_string(opt_.statement_timeout_ms) +
                   " -c lock_timeout=" + std::to_string(opt_.statement_timeout_ms) +
                   " -c idle_in_transaction_session_timeout=60000" +
                   (string_options.empty() ? "" : " " + string_options));
    std::vector<const char*> k, v;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        k.push_back(keys[i].c_str());
        v.push_back(vals[i].c_str());
    }
    k.push_back(nullptr);
    v.push_back(nullptr);
    PGconn* c = PQconnectdbParams(k.data(), v.data(), 0);
    if (c) route_notices_to_log(c);  // else libpq prints a raw "NOTICE:" line into the JSON log
    auto conn = std::make_unique<PgConn>(c);
    if (!c || PQstatus(c) != CONNECTION_OK)
        throw DbUnavailable("cannot connect to PostgreSQL: " + trimmed(c ? PQerrorMessage(c) : "out of memory"));
    return conn;
}

PgPool::Lease PgPool::acquire() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(opt_.acquire_timeout_ms),
                      [&] { return !idle_.empty() || in_use_ + idle_.size() < opt_.size; })) {
        throw DbUnavailable("no free PostgreSQL connection (pool exhausted)");
    }
    ++in_use_;
    if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(c), true);
    }
    lock.unlock();
    try {
        return Lease(this, connect_one(), false);
    } catch (...) {
        lock.lock();
        --in_use_;
        cv_.notify_one();
        throw;
    }
}

void PgPool::release(std::unique_ptr<PgConn> c) {
    std::lock_guard lock(mu_);
    --in_use_;
    if (c && !c->broken()) {
        idle_.push_back(std::move(c));
    } else if (c && c->lost()) {
        // The server dropped this one, so it most likely dropped the idle ones too (a restart):
        // forget them, so that the caller's one retry gets a fresh connection, not another stale one.
        idle_.clear();
    }
    cv_.notify_one();
}

void PgPool::drop_idle() {
    std::lock_guard lock(mu_);
    idle_.clear();
}

PgPool::Stats PgPool::stats() const {
    std::lock_guard lock(mu_);
    return {opt_.size, in_use_, idle_.size()};
}

}  // namespace tronch::cp
