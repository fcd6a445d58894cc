// The HTTP server (Boost.Beast/Asio): a few network threads accept and parse requests; the
// API runs on a separate worker pool (libpq/hiredis block), and the response is posted back
// to the connection. Bodies over kMaxBodyBytes are refused with 413 before they are read.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace tronch::cp {

class Api;

class HttpServer {
public:
    HttpServer(const std::string& listen, int io_threads, int worker_threads, Api& api);
    ~HttpServer();
    // Serves until SIGINT/SIGTERM. `on_stop` runs once the signal arrived.
    void run(const std::function<void()>& on_stop);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tronch::cp
