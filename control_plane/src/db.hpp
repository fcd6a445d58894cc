// A small libpq connection pool. Every connection has connect_timeout and a
// statement_timeout, so no request waits on Postgres forever. A connection the server
// dropped (restart, network) is discarded and the pool reconnects on the next use.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <libpq-fe.h>

namespace tronch::cp {

// Postgres cannot be reached (connect failure, dropped connection, timeout): 503.
struct DbUnavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// A prepared statement's result type changed under it (a migration altered a column it returns):
// the server refuses it on this connection from then on. The connection is dropped, and the pool
// retries the work once on a fresh one, where the statement is prepared again.
struct DbPlanChanged : DbUnavailable {
    using DbUnavailable::DbUnavailable;
};
// The server refused a write because it is read-only (SQLSTATE 25006): the connection reached a
// standby, or a primary that was demoted. Nothing was written, so the work is retried once on a
// fresh connection (the pool drops its idle ones, which most likely point at the same server);
// with target_session_attrs=read-write libpq then finds the new primary.
struct DbReadOnly : DbUnavailable {
    using DbUnavailable::DbUnavailable;
};
// A query failed for another reason (constraint, syntax): a bug or a conflict.
struct DbError : std::runtime_error {
    std::string sqlstate;
    DbError(const std::string& msg, std::string state) : std::runtime_error(msg), sqlstate(std::move(state)) {}
};

using Param = std::optional<std::string>;  // nullopt = SQL NULL

class PgResult {
public:
    explicit PgResult(PGresult* r) : r_(r, PQclear) {}
    int rows() const { return PQntuples(r_.get()); }
    bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col); }
    std::string str(int row, int col) const { return std::string(PQgetvalue(r_.get(), row, col), PQgetlength(r_.get(), row, col)); }
    std::optional<std::string> opt(int row, int col) const { return null(row, col) ? std::nullopt : std::optional(str(row, col)); }
    std::int64_t i64(int row, int col) const { return std::stoll(str(row, col)); }
    std::optional<std::int64_t> opt_i64(int row, int col) const { return null(row, col) ? std::nullopt : std::optional(i64(row, col)); }
    // A bytea column selected as-is (text format, \x hex) decoded to raw bytes.
    std::string bytea(int row, int col) const;
    PGresult* release() { return r_.release(); }

private:
    std::unique_ptr<PGresult, decltype(&PQclear)> r_;
};

class PgConn {
public:
    explicit PgConn(PGconn* c) : c_(c, PQfinish) {}
    // Parameterised query (text params). Throws DbUnavailable / DbError. Statements queued with
    // defer() go first, in the same round trip.
    PgResult exec(const std::string& sql, const std::vector<Param>& params = {});
    // Queues a statement whose result nobody reads (BEGIN, audit rows, idempotency records): it
    // is sent together with the next exec(), in one round trip (libpq pipeline mode), and its
    // error, if any, is thrown by that exec(). A create is then 2 round trips instead of 4.
    void defer(std::string sql, std::vector<Param> params = {});
    // Forgets queued statements (the transaction is abandoned before they were sent).
    void drop_deferred() { deferred_.clear(); }
    // Statements the server has answered on this connection so far. Unchanged across a failed
    // call means the server answered nothing: the connection failed, not the statement.
    std::size_t answered() const { return answered_; }
    // The socket is gone (the server restarted or the network dropped it).
    bool lost() const { return PQstatus(c_.get()) != CONNECTION_OK; }
    // True inside a transaction block on the server (after BEGIN was sent), even a failed one.
    bool in_transaction() const;
    // Several statements at once (migrations). Throws DbUnavailable / DbError.
    void exec_script(const std::string& sql);
    bool broken() const { return broken_ || PQstatus(c_.get()) != CONNECTION_OK; }
    void mark_broken() { broken_ = true; }
    std::string escape_bytea(std::string_view raw);  // -> '\x..' text for a bytea param

private:
    PgResult check(PGresult* r);
    PgResult exec_pipelined(const std::string& sql, const std::vector<Param>& params);
    // The server-side name of sql's prepared statement, or nullptr when sql is not prepared yet.
    const std::string* prepared_name(const std::string& sql) const;
    struct Deferred {
        std::string sql;
        std::vector<Param> params;
    };
    std::unique_ptr<PGconn, decltype(&PQfinish)> c_;
    std::vector<Deferred> deferred_;
    // SQL text -> server statement name. Statements are prepared on first use: parsing and
    // planning were a third of Postgres's CPU per create (bench/RESULTS.md). Bounded, because
    // a statement with a value built into its text would otherwise grow it without end.
    std::unordered_map<std::string, std::string> prepared_;
    std::size_t next_statement_ = 0;
    std::size_t answered_ = 0;
    bool broken_ = false;
};

class PgPool {
public:
    struct Options {
        std::string url;
        std::size_t size = 8;
        int connect_timeout_s = 3;
        int statement_timeout_ms = 5000;
        int acquire_timeout_ms = 3000;
    };
    explicit PgPool(Options o) : opt_(std::move(o)) {}

    class Lease {
    public:
        Lease(PgPool* pool, std::unique_ptr<PgConn> c, bool reused) : pool_(pool), c_(std::move(c)), reused_(reused) {}
        Lease(Lease&& o) noexcept = default;
        Lease& operator=(Lease&&) = delete;
        ~Lease() { if (pool_ && c_) pool_->release(std::move(c_)); }
        PgConn& operator*() { return *c_; }
        PgConn* operator->() { return c_.get(); }
        bool reused() const { return reused_; }

    private:
        PgPool* pool_;
        std::unique_ptr<PgConn> c_;
        bool reused_;
    };

    // Waits up to acquire_timeout_ms for a free slot; throws DbUnavailable on timeout or
    // when a new connection cannot be made.
    Lease acquire();
    std::unique_ptr<PgConn> connect_one();  // outside the pool (migrations, tools)

    struct Stats { std::size_t size, in_use, idle; };
    // Forgets every idle connection (the server they reach became read-only).
    void drop_idle();
    Stats stats() const;

    // Runs f(PgConn&) inside BEGIN/COMMIT (ROLLBACK on exception). A pooled connection the
    // server dropped while idle is replaced once, transparently.
    template <class F>
    auto transaction(F&& f) -> decltype(f(std::declval<PgConn&>()));
    // Runs f(PgConn&) outside a transaction, with the same retry on a stale connection.
    template <class F>
    auto with_conn(F&& f) -> decltype(f(std::declval<PgConn&>()));

private:
    void release(std::unique_ptr<PgConn> c);
    Options opt_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<PgConn>> idle_;
    std::size_t in_use_ = 0;
};

template <class F>
auto PgPool::transaction(F&& f) -> decltype(f(std::declval<PgConn&>())) {
    for (int attempt = 0;; ++attempt) {
        Lease conn = acquire();
        const std::size_t answered_before = conn->answered();
        conn->defer("BEGIN");  // sent with f's first statement
        try {
            if constexpr (std::is_void_v<decltype(f(*conn))>) {
                f(*conn);
                conn->exec("COMMIT");
                return;
            } else {
                auto result = f(*conn);
                conn->exec("COMMIT");
                return result;
            }
        } catch (const DbPlanChanged&) {
            conn->drop_deferred();
            conn->mark_broken();  // dropping it rolls the transaction back
            if (attempt == 0) continue;
            throw;
        } catch (const DbReadOnly&) {
            conn->drop_deferred();
            conn->mark_broken();  // refused, so nothing was written: safe to run again
            drop_idle();
            if (attempt == 0) continue;
            throw;
        } catch (const DbUnavailable&) {
            conn->drop_deferred();
            conn->mark_broken();
            // a stale idle connection fails on its first round trip: retry once on a new one
            if (conn.reused() && attempt == 0 && conn->answered() == answered_before) continue;
            throw;
        } catch (...) {
            conn->drop_deferred();
            if (!conn->broken() && conn->in_transaction()) {
                try { conn->exec("ROLLBACK"); } catch (...) { conn->mark_broken(); }
            }
            throw;
        }
    }
}

template <class F>
auto PgPool::with_conn(F&& f) -> decltype(f(std::declval<PgConn&>())) {
    for (int attempt = 0;; ++attempt) {
        Lease conn = acquire();
        try {
            return f(*conn);
        } catch (const DbPlanChanged&) {
            conn->mark_broken();
            if (attempt == 0) continue;
            throw;
        } catch (const DbReadOnly&) {
            conn->mark_broken();
            drop_idle();
            if (attempt == 0) continue;
            throw;
        } catch (const DbUnavailable&) {
            conn->mark_broken();
            if (conn.reused() && attempt == 0) continue;
            throw;
        }
    }
}

}  // namespace tronch::cp
