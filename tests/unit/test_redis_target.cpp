// Unit tests of tronchd's Redis address parsing (redis_target.hpp) and its redaction.
#define BOOST_TEST_MODULE tronchd_redis_target
#include <boost/test/unit_test.hpp>

#include <stdexcept>

#include "redis_target.hpp"

using namespace tronch::cp;

namespace {
std::string error_of(const std::string& spec) {
    try {
        parse_redis_target(spec);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

BOOST_AUTO_TEST_CASE(old_forms_still_work) {
    auto t = parse_redis_target("127.0.0.1:6390");
    BOOST_TEST(t.hosts.size() == 1u);
    BOOST_TEST(t.hosts[0].host == "127.0.0.1");
    BOOST_TEST(t.hosts[0].port == 6390);
    BOOST_TEST(!t.tls.enabled);
    BOOST_TEST(parse_redis_target("unix:/run/redis.sock").unix_path == "/run/redis.sock");
    BOOST_TEST(parse_redis_target("redis.internal").hosts[0].port == 6379);
}

BOOST_AUTO_TEST_CASE(url_with_user_password_db) {
    auto t = parse_redis_target("rediss://tronchd:p%40ss:w@redis.internal:6380/2");
    BOOST_TEST(t.tls.enabled);
    BOOST_TEST(t.user == "tronchd");
    BOOST_TEST(t.password == "p@ss:w");
    BOOST_TEST(t.hosts[0].host == "redis.internal");
    BOOST_TEST(t.hosts[0].port == 6380);
    BOOST_TEST(t.db == 2);
    BOOST_TEST(t.display() == "rediss://tronchd:***@redis.internal:6380/2");
    BOOST_TEST(parse_redis_target("redis://:secret@[::1]:7000").display() == "redis://:***@[::1]:7000");
}

BOOST_AUTO_TEST_CASE(sentinel_form) {
    auto t = parse_redis_target("redis-sentinel://u:pw@s1:26379,s2:26380,10.0.0.3:26381/mymaster/1");
    BOOST_TEST(t.sentinel());
    BOOST_TEST(t.master_name == "mymaster");
    BOOST_TEST(t.hosts.size() == 3u);
    BOOST_TEST(t.hosts[2].host == "10.0.0.3");
    BOOST_TEST(t.db == 1);
    BOOST_TEST(t.display() == "redis-sentinel://u:***@s1:26379,s2:26380,10.0.0.3:26381/mymaster/1");
    BOOST_TEST(parse_redis_target("rediss-sentinel://s1:1/m").tls.enabled);
}

BOOST_AUTO_TEST_CASE(bad_addresses_are_named_without_the_password) {
    BOOST_TEST(error_of("http://x:1").find("unknown scheme") != std::string::npos);
    BOOST_TEST(error_of("redis://u:topsecret@h:99999").find("port out of range") != std::string::npos);
    BOOST_TEST(error_of("redis://u:topsecret@h:99999").find("topsecret") == std::string::npos);
    BOOST_TEST(error_of("redis-sentinel://h1:1,h2:2").find("master's name") != std::string::npos);
    BOOST_TEST(error_of("redis://h1:1,h2:2").find("sentinel form") != std::string::npos);
    BOOST_TEST(error_of("redis://h:1/x").find("database number") != std::string::npos);
    BOOST_TEST(error_of("redis://h:1?ssl=1").find("not supported") != std::string::npos);
    BOOST_TEST(error_of("unix:").find("socket path") != std::string::npos);
}
