#include "redis_conn.hpp"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <hiredis/read.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace tronch::cp {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

bool is_ip(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

std::unique_ptr<asio::ssl::context> make_tls_context(const RedisTls& tls) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->set_verify_mode(asio::ssl::verify_peer);  // always: an unverified TLS link guards nothing
    try {
        if (tls.ca_file.empty()) ctx->set_default_verify_paths();
        else ctx->load_verify_file(tls.ca_file);
    } catch (const boost::system::system_error& e) {
        throw RedisUnavailable("Redis TLS: cannot load the CA file '" + tls.ca_file + "': " + e.code().message());
    }
    if (!tls.cert_file.empty() || !tls.key_file.empty()) {
        try {
            ctx->use_certificate_chain_file(tls.cert_file);
            ctx->use_private_key_file(tls.key_file.empty() ? tls.cert_file : tls.key_file, asio::ssl::context::pem);
        } catch (const boost::system::system_error& e) {
            throw RedisUnavailable("Redis TLS: cannot load the client certificate '" + tls.cert_file + "' or its key: " +
                                   e.code().message());
        }
    }
    return ctx;
}

}  // namespace

std::string reply_text(const redisReply* r) {
    if (r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STRING))
        return std::string(r->str, r->len);
    return {};
}

struct RedisConn::Impl {
    // What a completion handler writes. Shared with the handler, so an operation abandoned after
    // a timeout can still complete later (on the next run) without touching freed memory.
    struct Op {
        boost::system::error_code ec;
        bool done = false;
        std::size_t n = 0;
        tcp::resolver::results_type results;
    };

    asio::io_context io;
    std::chrono::milliseconds timeout;
    const RedisTls* tls_opts = nullptr;
    std::unique_ptr<asio::ssl::context> ctx;
    std::unique_ptr<asio::ssl::stream<tcp::socket>> tls;
    std::unique_ptr<tcp::socket> tcp_sock;
    std::unique_ptr<asio::local::stream_protocol::socket> unix_sock;
    redisReader* reader = nullptr;
    char buf[16384];

    ~Impl() {
        close();
        if (reader) redisReaderFree(reader);
    }

    template <class F>
    void with_stream(F&& f) {
        if (tls) f(*tls);
        else if (tcp_sock) f(*tcp_sock);
        else f(*unix_sock);
    }

    void close() {
        boost::system::error_code ec;
        if (tls) tls->next_layer().close(ec);
        if (tcp_sock) tcp_sock->close(ec);
        if (unix_sock) unix_sock->close(ec);
    }

    // Starts one asynchronous operation and runs the io_context until it completes or the
    // deadline passes (then the socket is closed and the operation abandoned).
    std::shared_ptr<Op> step(const std::string& what, Clock::time_point deadline,
                             const std::function<void(std::shared_ptr<Op>)>& start) {
        auto op = std::make_shared<Op>();
        start(op);
        io.restart();
        io.run_until(deadline);
        if (!op->done) {
            close();
            throw RedisUnavailable(what + ": timed out after " + std::to_string(timeout.count()) + " ms");
        }
        if (op->ec) throw RedisUnavailable(what + ": " + op->ec.message() + tls_detail());
        return op;
    }

    // Why OpenSSL refused the server's certificate, when it did.
    std::string tls_detail() {
        if (!tls) return "";
        long v = SSL_get_verify_result(tls->native_handle());
        return v == X509_V_OK ? "" : std::string(" (") + X509_verify_cert_error_string(v) + ")";
    }

    void new_reader() {
        if (reader) redisReaderFree(reader);
        reader = redisReaderCreate();
        if (!reader) throw RedisUnavailable("out of memory");
    }
};

RedisConn::RedisConn(const RedisTls* tls, int timeout_ms) : impl_(std::make_unique<Impl>()) {
    impl_->timeout = std::chrono::milliseconds(timeout_ms);
    if (tls && tls->enabled) {
        impl_->tls_opts = tls;
        impl_->ctx = make_tls_context(*tls);
    }
}

RedisConn::~RedisConn() = default;

void RedisConn::connect_tcp(const RedisEndpoint& ep) {
    Impl& m = *impl_;
    where_ = "Redis at " + ep.host + ":" + std::to_string(ep.port);
    auto deadline = Clock::now() + m.timeout;
    tcp::resolver resolver(m.io);
    auto resolved = m.step(where_ + ": resolving", deadline, [&](std::shared_ptr<Impl::Op> op) {
        resolver.async_resolve(ep.host, std::to_string(ep.port), [op](auto ec, auto results) {
            op->ec = ec;
            op->results = results;
            op->done = true;
        });
    });
    tcp::socket* sock = nullptr;
    if (m.ctx) {
        m.tls = std::make_unique<asio::ssl::stream<tcp::socket>>(m.io, *m.ctx);
        sock = &m.tls->next_layer();
        const std::string& name = m.tls_opts->server_name.empty() ? ep.host : m.tls_opts->server_name;
        SSL* ssl = m.tls->native_handle();
        if (is_ip(name)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
        } else {
            SSL_set_tlsext_host_name(ssl, name.c_str());  // SNI
            SSL_set1_host(ssl, name.c_str());             // and the name the certificate must carry
        }
    } else {
        m.tcp_sock = std::make_unique<tcp::socket>(m.io);
        sock = m.tcp_sock.get();
    }
    m.step(where_ + ": connecting", deadline, [&](std::shared_ptr<Impl::Op> op) {
        asio::async_connect(*sock, resolved->results, [op](auto ec, auto) {
            op->ec = ec;
            op->done = true;
        });
    });
    sock->set_option(tcp::no_delay(true));
    if (m.tls) {
        m.step(where_ + ": TLS handshake", deadline, [&](std::shared_ptr<Impl::Op> op) {
            m.tls->async_handshake(asio::ssl::stream_base::client, [op](auto ec) {
                op->ec = ec;
                op->done = true;
            });
        });
    }
    m.new_reader();
}

void RedisConn::connect_unix(const std::string& path) {
    Impl& m = *impl_;
    where_ = "Redis at unix:" + path;
    m.unix_sock = std::make_unique<asio::local::stream_protocol::socket>(m.io);
    m.step(where_ + ": connecting", Clock::now() + m.timeout, [&](std::shared_ptr<Impl::Op> op) {
        m.unix_sock->async_connect(asio::local::stream_protocol::endpoint(path), [op](auto ec) {
            op->ec = ec;
            op->done = true;
        });
    });
    m.new_reader();
}

std::vector<RedisReply> RedisConn::roundtrip(const std::vector<std::vector<std::string>>& commands) {
    Impl& m = *impl_;
    std::string out;
    for (const auto& argv : commands) {
        std::vector<const char*> a;
        std::vector<size_t> l;
        for (const auto& s : argv) {
            a.push_back(s.data());
            l.push_back(s.size());
        }
        char* cmd = nullptr;
        int len = redisFormatCommandArgv(&cmd, static_cast<int>(a.size()), a.data(), l.data());
        if (len < 0 || !cmd) throw RedisUnavailable("out of memory formatting a Redis command");
        out.append(cmd, static_cast<std::size_t>(len));
        std::free(cmd);
    }
    auto deadline = Clock::now() + m.timeout;
    m.step(where_ + ": sending", deadline, [&](std::shared_ptr<Impl::Op> op) {
        m.with_stream([&](auto& s) {
            asio::async_write(s, asio::buffer(out), [op](auto ec, std::size_t) {
                op->ec = ec;
                op->done = true;
            });
        });
    });
    std::vector<RedisReply> replies;
    while (replies.size() < commands.size()) {
        void* r = nullptr;
        if (redisReaderGetReply(m.reader, &r) != REDIS_OK)
            throw RedisUnavailable(where_ + ": protocol error: " + m.reader->errstr);
        if (r) {
            replies.emplace_back(static_cast<redisReply*>(r), freeReplyObject);
            continue;
        }
        auto got = m.step(where_ + ": reading", deadline, [&](std::shared_ptr<Impl::Op> op) {
            m.with_stream([&](auto& s) {
                s.async_read_some(asio::buffer(m.buf), [op](auto ec, std::size_t n) {
                    op->ec = ec;
                    op->n = n;
                    op->done = true;
                });
            });
        });
        redisReaderFeed(m.reader, m.buf, got->n);
    }
    return replies;
}

void RedisConn::auth(const std::string& user, const std::string& password) {
    if (password.empty() && user.empty()) return;
    std::vector<std::string> cmd{"AUTH"};
    if (!user.empty()) cmd.push_back(user);
    cmd.push_back(password);
    auto r = roundtrip({cmd});
    if (r.front()->type == REDIS_REPLY_ERROR)
        throw RedisUnavailable(where_ + ": AUTH" + (user.empty() ? "" : " as user '" + user + "'") +
                               " refused: " + reply_text(r.front().get()));
}

}  // namespace tronch::cp
