#include "http_server.hpp"

#include <thread>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "api.hpp"
#include "api_error.hpp"
#include "log.hpp"
#include "json_body.hpp"

namespace tronch::cp {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// What HTTP/1.1 requires of every request and Beast lets through: an origin-form target
// ("/path?query"; absolute-form, "*" and relative targets are refused) and exactly one Host
// (HTTP/1.0 may omit it). A doubled Host is what request smuggling through proxies rides on.
const char* framing_problem(const http::request<http::string_body>& msg) {
    if (msg.version() != 10 && msg.version() != 11) return "only HTTP/1.0 and HTTP/1.1 are served";
    if (msg.target().empty() || msg.target().front() != '/') return "the request target must start with '/'";
    auto hosts = msg.count(http::field::host);
    if (hosts > 1) return "more than one Host header";
    if (hosts == 0 && msg.version() >= 11) return "an HTTP/1.1 request needs a Host header";
    return nullptr;
}

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket s, Api& api, net::thread_pool& workers) : stream_(std::move(s)), api_(api), workers_(workers) {
        beast::error_code ec;
        auto ep = stream_.socket().remote_endpoint(ec);
        if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
    }

    void start() { net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); }); }

private:
    void read() {
        parser_.emplace();
        parser_->body_limit(kMaxBodyBytes);
        parser_->header_limit(16 * 1024);
        stream_.expires_after(std::chrono::seconds(60));
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
            ec == net::error::connection_reset || ec == net::error::operation_aborted) {
            return close();
        }
        HttpRequest req;
        req.remote = remote_;
        if (ec) {
            // Malformed HTTP or a body over the limit: answer, then close.
            auto& h = parser_->get();
            req.method = std::string(h.method_string());
            req.target = std::string(h.target());
            HttpResponse res = ec == http::error::body_limit
                                   ? api_.protocol_error(req, 413, ErrorCode::body_too_large,
                                                         "the body is larger than " + std::to_string(kMaxBodyBytes) + " bytes")
                                   : api_.protocol_error(req, 400, ErrorCode::bad_request, "malformed HTTP request: " + ec.message());
            return write(std::move(res), false);
        }
        auto msg = parser_->release();
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        for (auto& f : msg) {
            std::string name(f.name_string());
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            auto [it, inserted] = req.headers.emplace(name, std::string(f.value()));
            if (!inserted) it->second += ", " + std::string(f.value());
        }
        req.body = std::move(msg.body());
        bool keep_alive = msg.keep_alive();
        if (auto problem = framing_problem(msg)) return write(api_.protocol_error(req, 400, ErrorCode::bad_request, problem), false);
        net::post(workers_, [self = shared_from_this(), req = std::move(req), keep_alive]() mutable {
            HttpResponse res = self->api_.handle(req);
            net::post(self->stream_.get_executor(), [self, res = std::move(res), keep_alive]() mutable {
                self->write(std::move(res), keep_alive);
            });
        });
    }

    void write(HttpResponse r, bool keep_alive) {
        auto res = std::make_shared<http::response<http::string_body>>();
        res->version(11);
        res->result(static_cast<unsigned>(r.status));
        res->set(http::field::server, "tronchd");
        if (!r.content_type.empty()) res->set(http::field::content_type, r.content_type);
        for (auto& [k, v] : r.headers) res->set(k, v);
        res->keep_alive(keep_alive);
        res->body() = std::move(r.body);
        res->prepare_payload();
        stream_.expires_after(std::chrono::seconds(30));
        http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
            if (ec) return self->close();
            if (keep_alive) return self->read();
            self->linger();
        });
    }

    // Close without a reset: stop sending, then drain what the client still sends (the
    // rest of a refused body) for a moment, so it can read our answer.
    void linger() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream_.expires_after(std::chrono::seconds(2));
        drain();
    }
    void drain() {
        stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->close();
            self->drain();
        });
    }

    void close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    beast::tcp_stream stream_;
    Api& api_;
    net::thread_pool& workers_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::string remote_;
    std::array<char, 16384> discard_{};
};

}  // namespace

struct HttpServer::Impl {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    net::thread_pool workers;
    int io_threads;
    Api& api;

    Impl(int io, int w, Api& a) : ioc(io), workers(static_cast<std::size_t>(w)), io_threads(io), api(a) {}

    void accept() {
        acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
            if (ec == net::error::operation_aborted) return;
            if (!ec) std::make_shared<Session>(std::move(s), api, workers)->start();
            accept();
        });
    }
};

HttpServer::HttpServer(const std::string& listen, int io_threads, int worker_threads, Api& api)
    : impl_(std::make_unique<Impl>(io_threads, worker_threads, api)) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("listen address must be ip:port, got " + listen);
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto addr = net::ip::make_address(host);
    auto port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
    tcp::endpoint ep(addr, port);
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.set_option(net::socket_base::reuse_address(true));
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen(net::socket_base::max_listen_connections);
}

HttpServer::~HttpServer() = default;

void HttpServer::run(const std::function<void()>& on_stop) {
    net::signal_set signals(impl_->ioc, SIGINT, SIGTERM);
    signals.async_wait([this, &on_stop](beast::error_code, int sig) {
        log::info("shutting down", {{"signal", sig}});
        beast::error_code ec;
        impl_->acceptor.close(ec);
        on_stop();
        impl_->ioc.stop();
    });
    impl_->accept();
    std::vector<std::thread> threads;
    for (int i = 1; i < impl_->io_threads; ++i) threads.emplace_back([this] { impl_->ioc.run(); });
    impl_->ioc.run();
    for (auto& t : threads) t.join();
    impl_->workers.join();
}

}  // namespace tronch::cp
