// Where tronchd's Redis is and how to reach it, parsed from its configuration. Accepted forms:
//   host:port | unix:/path                       (the old TRONCH_REDIS_ADDR forms; no auth, no TLS)
//   redis://[user[:password]@]host[:port][/db]   rediss://... the same over TLS
//   redis-sentinel://[user[:password]@]h1:p1,h2:p2,h3:p3/<master_name>[/db]
//   rediss-sentinel://...                        TLS to the sentinels and to the master
// The user/password in a URL are the data node's ACL credentials (the sentinels' own, if they
// need any, come from TRONCH_REDIS_SENTINEL_USER / _PASSWORD_FILE). A password is better kept in
// a file (TRONCH_REDIS_PASSWORD_FILE); either way it is never logged: display() redacts it.
#pragma once

#include <string>
#include <vector>

namespace tronch::cp {

struct RedisEndpoint {
    std::string host;  // a name (resolved on every connect) or an IP; IPv6 in [brackets] in URLs
    int port = 6379;
};

struct RedisTls {
    bool enabled = false;
    std::string ca_file;      // empty: the system's trusted CAs
    std::string server_name;  // SNI and the name the certificate must carry; empty: the host
    std::string cert_file;    // client certificate (optional) ...
    std::string key_file;     // ... and its key
};

struct RedisTarget {
    std::string unix_path;               // set: a Unix socket, nothing else applies
    std::vector<RedisEndpoint> hosts;    // the server, or the sentinels when master_name is set
    std::string master_name;             // non-empty: Sentinel mode
    std::string user, password;          // ACL user (empty: the legacy AUTH <password>) and password
    std::string sentinel_user, sentinel_password;
    int db = 0;
    RedisTls tls;

    bool sentinel() const { return !master_name.empty(); }
    // The target without secrets, for logs and error messages.
    std::string display() const;
};

// Parses one of the forms above. Throws std::runtime_error naming the problem (never the password).
RedisTarget parse_redis_target(const std::string& spec);

}  // namespace tronch::cp
