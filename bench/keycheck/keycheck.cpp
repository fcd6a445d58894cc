// Bench-only key-check service for nginx's auth_request pattern (bench/run case 5): the best case
// for that pattern. Loads SHA-256 hex digests (one per line) at start; answers each request 204 if
// SHA-256(Bearer token from Authorization) is in the set, else 401. Plain blocking sockets, one
// thread per connection (nginx keeps a small pool of keep-alive upstream connections), HTTP/1.1
// keep-alive and pipelining; no request bodies (auth_request sends none).
//     tronch_keycheck <port> <hash file>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "tronch/key_hash.hpp"

namespace {

std::unordered_set<std::string> g_hashes;

bool iequals_prefix(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    return true;
}

bool authorized(std::string_view head) {
    std::size_t pos = 0;
    while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
        pos += 2;
        std::string_view line = head.substr(pos, head.find("\r\n", pos) - pos);
        if (iequals_prefix(line, "authorization:")) {
            line.remove_prefix(14);
            while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
            if (!iequals_prefix(line, "bearer ")) return false;
            line.remove_prefix(7);
            char hex[tronch::kSha256HexLength];
            if (!tronch::key_hash_hex(line, hex)) return false;
            return g_hashes.count(std::string(hex, sizeof hex)) != 0;
        }
    }
    return false;
}

void serve(int fd) {
    static const char ok[] = "HTTP/1.1 204 No Content\r\n\r\n";
    static const char no[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    std::string buf;
    char chunk[8192];
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) break;
        buf.append(chunk, static_cast<std::size_t>(n));
        std::string out;
        std::size_t end;
        while ((end = buf.find("\r\n\r\n")) != std::string::npos) {
            bool yes = authorized(std::string_view(buf).substr(0, end + 2));
            out.append(yes ? ok : no, yes ? sizeof ok - 1 : sizeof no - 1);
            buf.erase(0, end + 4);
        }
        if (!out.empty() && ::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) break;
        if (buf.size() > 65536) break;
    }
    ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: tronch_keycheck <port> <hash file>\n";
        return 2;
    }
    std::ifstream in(argv[2]);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) g_hashes.insert(line);
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(argv[1])));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(s, 512) != 0) {
        std::perror("bind/listen");
        return 1;
    }
    std::cerr << "tronch_keycheck: " << g_hashes.size() << " hashes\n";
    for (;;) {
        int c = ::accept(s, nullptr, nullptr);
        if (c < 0) continue;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::thread(serve, c).detach();
    }
}
