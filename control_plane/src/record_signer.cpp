#include "record_signer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "log.hpp"

namespace tronch::cp {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("record signing key " + path + ": cannot read: " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Written to a temporary name with the given mode, then renamed: never a half-written key.
void write_file(const std::string& path, const std::string& text, mode_t mode) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) throw std::runtime_error("cannot create " + tmp + ": " + std::strerror(errno));
    bool ok = ::fchmod(fd, mode) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        if (ok) err = errno;
        ::unlink(tmp.c_str());
        throw std::runtime_error("cannot write " + path + ": " + std::strerror(err));
    }
}

}  // namespace

std::string public_key_path(const std::string& private_path) {
    constexpr std::string_view suffix = ".key";
    if (private_path.size() > suffix.size() && private_path.ends_with(suffix))
        return private_path.substr(0, private_path.size() - suffix.size()) + ".pub";
    return private_path + ".pub";
}

RecordSigner RecordSigner::load_or_create(const std::string& path, long validity_seconds) {
    if (path.empty()) throw std::runtime_error("record_signing_key: empty path");
    if (validity_seconds < 2) throw std::runtime_error("record_validity_seconds: at least 2");
    RecordSigner s;
    s.validity_ = validity_seconds;
    s.public_path_ = public_key_path(path);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) throw std::runtime_error("record signing key " + path + ": " + std::strerror(errno));
        s.key_ = signing::generate_key();
        write_file(path, signing::private_key_pem(s.key_.get()), 0600);
        log::info("generated a record signing key", {{"path", path}, {"public_key", s.public_path_}});
    } else {
        if (st.st_mode & 077)
            log::warn("record signing key is readable by others; chmod 600 it", {{"path", path}});
        std::string error;
        s.key_ = signing::load_private_key(read_file(path), error);
        if (!s.key_) throw std::runtime_error("record signing key " + path + ": " + error);
    }
    s.kid_ = signing::key_id(s.key_.get());
    s.public_pem_ = signing::public_key_pem(s.key_.get());
    // the public key beside the private one is the one gateways load: (re)written unless it is already
    // right (so a read-only, pre-provisioned directory works)
    std::string current;
    try {
        current = read_file(s.public_path_);
    } catch (const std::exception&) {
    }
    if (current != s.public_pem_) write_file(s.public_path_, s.public_pem_, 0644);
    log::info("record signing key", {{"kid", s.kid_}, {"public_key", s.public_path_},
                                     {"validity_seconds", validity_seconds}});
    return s;
}

std::string RecordSigner::sign(std::string_view key_hash_hex, std::int64_t version, std::string_view record_json,
                               std::int64_t now_seconds) const {
    return signing::sign_record(key_.get(), kid_, key_hash_hex, version, now_seconds + validity_, record_json);
}

}  // namespace tronch::cp
