#define BOOST_TEST_MODULE redis_keys
#include <boost/test/unit_test.hpp>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "tronch/key_hash.hpp"
#include "tronch/redis_keys.hpp"

namespace rk = tronch::redis_keys;
using nlohmann::json;

namespace {

constexpr const char* kId = "0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20";
const std::string kHash = tronch::key_hash_hex("tronch_sk_live_example");

std::string changed_event(const json& key_hash, const json& id) {
    return json{{"v", 1}, {"type", "key.changed"}, {"key_hash", key_hash}, {"id", id}}.dump();
}

bool parses(std::string_view text) {
    rk::Event event;
    return rk::parse_event(text, event);
}

}  // namespace

BOOST_AUTO_TEST_CASE(names) {
    BOOST_TEST(rk::key_record(kHash) == "tronch:key:{" + kHash + "}");
    BOOST_TEST(rk::key_record(kHash).starts_with(rk::kKeyRecordPrefix));
    BOOST_TEST(rk::rate_limit_key(kId) == std::string("tronch:rl:{") + kId + "}");
    BOOST_TEST(rk::kMirrorEpoch == "tronch:mirror:epoch");
    BOOST_TEST(rk::kEventsChannel == "tronch:events");
    BOOST_TEST(rk::kUsagePending == "tronch:usage:pending");
}

BOOST_AUTO_TEST_CASE(usage_field_format) {
    BOOST_TEST(rk::usage_field(kId, 1'700'000'040, rk::UsageCounter::requests) ==
               std::string(kId) + "|1700000040|r");
    BOOST_TEST(rk::usage_field(kId, 60, rk::UsageCounter::errors) == std::string(kId) + "|60|e");
    BOOST_TEST(rk::usage_field(kId, 0, rk::UsageCounter::last_used) == std::string(kId) + "|0|l");
}

BOOST_AUTO_TEST_CASE(usage_field_round_trip) {
    for (rk::UsageCounter counter :
         {rk::UsageCounter::requests, rk::UsageCounter::errors, rk::UsageCounter::last_used}) {
        for (std::int64_t bucket : {std::int64_t{0}, std::int64_t{60}, std::int64_t{1'700'000'040},
                                    std::numeric_limits<std::int64_t>::max()}) {
            rk::UsageField parsed;
            BOOST_REQUIRE(rk::parse_usage_field(rk::usage_field(kId, bucket, counter), parsed));
            BOOST_TEST(parsed.key_id == kId);
            BOOST_TEST(parsed.bucket_start == bucket);
            BOOST_TEST((parsed.counter == counter));
        }
    }
}

BOOST_AUTO_TEST_CASE(usage_field_rejects) {
    const std::string id = kId;
    const std::string upper = "0F8E2C1A-5B7D-4E3F-9A21-7C6B5D4E3F20";
    const std::string bad_fields[] = {
        "",
        "|",
        "||",
        id,
        id + "|60",
        id + "|60|",
        id + "||r",
        "|60|r",
        "not-a-uuid|60|r",
        upper + "|60|r",
        id + "x|60|r",
        id + "|-1|r",
        id + "|+1|r",
        id + "|01|r",
        id + "| 1|r",
        id + "|1 |r",
        id + "|1.0|r",
        id + "|1e3|r",
        id + "|0x10|r",
        id + "|9223372036854775808|r",  // one past int64
        id + "|99999999999999999999999|r",
        id + "|60|x",
        id + "|60|R",
        id + "|60|rr",
        id + "|60|r|",
        id + "|60|r|r",
        id + "|60|r\n",
        id + std::string("|60|r\0", 6),
    };
    for (const std::string& field : bad_fields) {
        rk::UsageField parsed;
        parsed.key_id = "sentinel";
        BOOST_TEST(!rk::parse_usage_field(field, parsed), field);
        BOOST_TEST(parsed.key_id == "sentinel");
    }
}

BOOST_AUTO_TEST_CASE(event_round_trip) {
    rk::Event changed;
    changed.type = rk::EventType::key_changed;
    changed.key_hash = kHash;
    changed.id = kId;
    rk::Event parsed;
    BOOST_REQUIRE(rk::parse_event(rk::event_json(changed), parsed));
    BOOST_TEST((parsed.type == rk::EventType::key_changed));
    BOOST_TEST(parsed.key_hash == kHash);
    BOOST_TEST(parsed.id == kId);

    const json document = json::parse(rk::event_json(changed));
    BOOST_TEST(document == (json{{"v", 1}, {"type", "key.changed"}, {"key_hash", kHash}, {"id", kId}}));

    rk::Event rebuilt;
    rebuilt.type = rk::EventType::mirror_rebuilt;
    rebuilt.key_hash = "ignored";
    BOOST_TEST(json::parse(rk::event_json(rebuilt)) == (json{{"v", 1}, {"type", "mirror.rebuilt"}}));
    rk::Event parsed_rebuilt;
    parsed_rebuilt.key_hash = "stale";
    BOOST_REQUIRE(rk::parse_event(rk::event_json(rebuilt), parsed_rebuilt));
    BOOST_TEST((parsed_rebuilt.type == rk::EventType::mirror_rebuilt));
    BOOST_TEST(parsed_rebuilt.key_hash.empty());
    BOOST_TEST(parsed_rebuilt.id.empty());
}

BOOST_AUTO_TEST_CASE(event_accepts_any_field_order_and_whitespace) {
    BOOST_TEST(parses(R"( { "type" : "mirror.rebuilt" , "v" : 1 } )"));
    BOOST_TEST(parses(R"({"id":")" + std::string(kId) + R"(","key_hash":")" + kHash +
                      R"(","type":"key.changed","v":1})"));
}

BOOST_AUTO_TEST_CASE(event_rejects) {
    std::string upper_hash = kHash;
    for (char& c : upper_hash) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string rejects[] = {
        "",
        "null",
        "[]",
        "{}",
        "1",
        R"({"v":1})",
        R"({"type":"mirror.rebuilt"})",
        R"({"v":2,"type":"mirror.rebuilt"})",
        R"({"v":"1","type":"mirror.rebuilt"})",
        R"({"v":1.0,"type":"mirror.rebuilt"})",
        R"({"v":true,"type":"mirror.rebuilt"})",
        R"({"v":1,"type":"key.deleted"})",
        R"({"v":1,"type":1})",
        R"({"v":1,"type":"mirror.rebuilt","extra":1})",
        R"({"v":1,"type":"mirror.rebuilt")",
        R"({"v":1,"type":"key.changed"})",
        R"({"v":1,"type":"key.changed","id":")" + std::string(kId) + R"("})",
        R"({"v":1,"type":"key.changed","key_hash":")" + kHash + R"("})",
        changed_event(kHash.substr(1), kId),
        changed_event(kHash + "0", kId),
        changed_event(upper_hash, kId),
        changed_event(kHash.substr(1) + "g", kId),
        changed_event(1, kId),
        changed_event(nullptr, kId),
        changed_event(kHash, "not-a-uuid"),
        changed_event(kHash, "0F8E2C1A-5B7D-4E3F-9A21-7C6B5D4E3F20"),
        changed_event(kHash, 5),
        R"({"v":1,"type":"key.changed","key_hash":")" + kHash + R"(","id":")" + std::string(kId) +
            R"(","extra":true})",
    };
    for (const std::string& text : rejects) {
        rk::Event event;
        event.id = "sentinel";
        BOOST_TEST(!rk::parse_event(text, event), text);
        BOOST_TEST(event.id == "sentinel");
    }
}

BOOST_AUTO_TEST_CASE(event_parser_survives_random_bytes) {
    std::mt19937_64 random(2718);
    std::uniform_int_distribution<int> length(0, 200);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 1000; ++i) {
        std::string text(static_cast<std::size_t>(length(random)), '\0');
        for (char& c : text) c = static_cast<char>(byte(random));
        BOOST_TEST(!parses(text));
        rk::UsageField field;
        BOOST_TEST(!rk::parse_usage_field(text, field));
    }
}
