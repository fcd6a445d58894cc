#define BOOST_TEST_MODULE key_record
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tronch/key_record.hpp"

namespace {

using nlohmann::json;
using tronch::Cidr;
using tronch::DecodeResult;
using tronch::KeyRecord;
using tronch::KeyStatus;

constexpr const char* kId = "0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20";

Cidr cidr(std::string_view text) {
    Cidr out;
    BOOST_REQUIRE(Cidr::parse(text, out));
    return out;
}

KeyRecord full_record() {
    KeyRecord record;
    record.id = kId;
    record.prefix = "tronch_sk_test_AbCd1234";
    record.environment = tronch::Environment::test;
    record.status = KeyStatus::rotating;
    record.name = "billing \"prod\" \u00e9\u4e2d";
    record.owner = "team-billing@example.com";
    record.expires_at = 1'900'000'000;
    record.limit = tronch::RateLimit{100, 60, 20};
    record.allowed_cidrs = {cidr("10.0.0.0/8"), cidr("2001:db8::/32"), cidr("192.0.2.7")};
    record.scopes = {"read", "billing:write", "a.b-c_d"};
    record.metadata = json{{"team", "billing"}, {"nested", {{"n", 1}, {"list", {1, "two", nullptr}}}}};
    return record;
}

// The minimal valid document, as JSON, for tests to modify one field at a time.
json minimal_document() {
    return json{{"v", 1},
                {"id", kId},
                {"prefix", "tronch_sk_live_AbCd1234"},
                {"environment", "live"},
                {"status", "active"}};
}

json with_field(const std::string& field, const json& value) {
    json document = minimal_document();
    document[field] = value;
    return document;
}

bool same_cidr(const Cidr& a, const Cidr& b) {
    return a.family == b.family && a.prefix_length == b.prefix_length &&
           std::memcmp(a.address, b.address, sizeof a.address) == 0;
}

void check_equal(const KeyRecord& a, const KeyRecord& b) {
    BOOST_TEST(a.id == b.id);
    BOOST_TEST(a.prefix == b.prefix);
    BOOST_TEST((a.environment == b.environment));
    BOOST_TEST((a.status == b.status));
    BOOST_TEST(a.name == b.name);
    BOOST_TEST(a.owner == b.owner);
    BOOST_TEST((a.expires_at == b.expires_at));
    BOOST_TEST((a.limit == b.limit));
    BOOST_REQUIRE_EQUAL(a.allowed_cidrs.size(), b.allowed_cidrs.size());
    for (std::size_t i = 0; i < a.allowed_cidrs.size(); ++i) {
        BOOST_TEST(same_cidr(a.allowed_cidrs[i], b.allowed_cidrs[i]));
    }
    BOOST_TEST(a.scopes == b.scopes);
    BOOST_TEST(a.metadata == b.metadata);
}

// Decoding must fail with a message, must not throw, and must leave `out` alone.
void expect_rejected(std::string_view text, const std::string& why) {
    KeyRecord out;
    out.name = "sentinel";
    DecodeResult result;
    BOOST_REQUIRE_NO_THROW(result = tronch::decode_key_record(text, out));
    BOOST_TEST(!result.ok, why << ": " << std::string(text.substr(0, 200)));
    BOOST_TEST(!result.error.empty(), why);
    BOOST_TEST(out.name == "sentinel", why);
}

void expect_field_rejected(const std::string& field, const json& value) {
    json document = minimal_document();
    document[field] = value;
    expect_rejected(document.dump(), field + " = " + value.dump());
}

KeyRecord expect_accepted(const json& document) {
    KeyRecord out;
    const DecodeResult result = tronch::decode_key_record(document.dump(), out);
    BOOST_TEST(result.ok, document.dump() << ": " << result.error);
    BOOST_TEST(result.error.empty());
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_full_record) {
    const KeyRecord record = full_record();
    const std::string text = tronch::encode_key_record(record);
    KeyRecord decoded;
    const DecodeResult result = tronch::decode_key_record(text, decoded);
    BOOST_REQUIRE_MESSAGE(result.ok, result.error);
    check_equal(record, decoded);
    BOOST_TEST(tronch::encode_key_record(decoded) == text);  // stable
}

BOOST_AUTO_TEST_CASE(round_trip_every_status_and_environment) {
    for (KeyStatus status :
         {KeyStatus::active, KeyStatus::rotating, KeyStatus::revoked, KeyStatus::expired}) {
        for (tronch::Environment environment : {tronch::Environment::live, tronch::Environment::test}) {
            KeyRecord record = full_record();
            record.status = status;
            record.environment = environment;
            record.expires_at.reset();
            record.limit.reset();
            KeyRecord decoded;
            BOOST_REQUIRE(tronch::decode_key_record(tronch::encode_key_record(record), decoded).ok);
            check_equal(record, decoded);
        }
    }
}

BOOST_AUTO_TEST_CASE(encode_writes_every_field) {
    KeyRecord record;
    record.id = kId;
    record.prefix = "tronch_sk_live_AbCd1234";
    const json document = json::parse(tronch::encode_key_record(record));
    BOOST_TEST(document.size() == 12U);
    BOOST_TEST(document.at("v") == 1);
    BOOST_TEST(document.at("id") == kId);
    BOOST_TEST(document.at("prefix") == "tronch_sk_live_AbCd1234");
    BOOST_TEST(document.at("environment") == "live");
    BOOST_TEST(document.at("status") == "active");
    BOOST_TEST(document.at("name") == "");
    BOOST_TEST(document.at("owner") == "");
    BOOST_TEST(document.at("expires_at").is_null());
    BOOST_TEST(document.at("limit").is_null());
    BOOST_TEST(document.at("allowed_cidrs") == json::array());
    BOOST_TEST(document.at("scopes") == json::array());
    BOOST_TEST(document.at("metadata") == json::object());

    const json full = json::parse(tronch::encode_key_record(full_record()));
    BOOST_TEST(full.at("limit") == (json{{"rate", 100}, {"period_seconds", 60}, {"burst", 20}}));
    BOOST_TEST(full.at("allowed_cidrs") == (json{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"}));
    BOOST_TEST(full.at("expires_at") == 1'900'000'000);
    BOOST_TEST(full.at("status") == "rotating");
    BOOST_TEST(full.at("environment") == "test");
}

BOOST_AUTO_TEST_CASE(encode_metadata_null_as_empty_object_and_refuses_non_objects) {
    KeyRecord record = full_record();
    record.metadata = nullptr;
    BOOST_TEST(json::parse(tronch::encode_key_record(record)).at("metadata") == json::object());
    record.metadata = json::array();
    BOOST_CHECK_THROW(tronch::encode_key_record(record), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(missing_optional_fields_take_defaults) {
    const KeyRecord record = expect_accepted(minimal_document());
    BOOST_TEST(record.id == kId);
    BOOST_TEST(record.prefix == "tronch_sk_live_AbCd1234");
    BOOST_TEST((record.environment == tronch::Environment::live));
    BOOST_TEST((record.status == KeyStatus::active));
    BOOST_TEST(record.name.empty());
    BOOST_TEST(record.owner.empty());
    BOOST_TEST(!record.expires_at.has_value());
    BOOST_TEST(!record.limit.has_value());
    BOOST_TEST(record.allowed_cidrs.empty());
    BOOST_TEST(record.scopes.empty());
    BOOST_TEST(record.metadata == json::object());
}

BOOST_AUTO_TEST_CASE(missing_required_fields_are_rejected) {
    for (const char* field : {"v", "id", "prefix", "environment", "status"}) {
        json document = minimal_document();
        document.erase(field);
        expect_rejected(document.dump(), std::string("without ") + field);
    }
}

BOOST_AUTO_TEST_CASE(garbage_is_rejected_cleanly) {
    for (std::string_view text : {"", " ", "null", "[]", "{}", "1", "\"record\"", "true", "{", "}",
                                  "{\"v\":1", "{\"v\":1,}", "{'v':1}", "\xff\xfe", "[{\"v\":1}]"}) {
        expect_rejected(text, "garbage");
    }
    expect_rejected(std::string_view("{\"v\":1}\0", 8), "embedded NUL");
}

BOOST_AUTO_TEST_CASE(every_truncation_of_a_valid_record_is_rejected) {
    const std::string text = tronch::encode_key_record(full_record());
    for (std::size_t length = 0; length < text.size(); ++length) {
        expect_rejected(std::string_view(text).substr(0, length), "truncated to " + std::to_string(length));
    }
}

BOOST_AUTO_TEST_CASE(random_bytes_are_rejected_cleanly) {
    std::mt19937_64 random(424242);
    std::uniform_int_distribution<int> length(0, 300);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 1000; ++i) {
        std::string text(static_cast<std::size_t>(length(random)), '\0');
        for (char& c : text) c = static_cast<char>(byte(random));
        expect_rejected(text, "random bytes #" + std::to_string(i));
    }
}

BOOST_AUTO_TEST_CASE(random_mutations_never_throw_and_any_success_is_valid) {
    // Flip bytes of a valid encoding: most results are invalid, a few may stay valid. Either
    // way decoding must not throw, and anything accepted must meet the record's invariants.
    const std::string text = tronch::encode_key_record(full_record());
    std::mt19937_64 random(31337);
    std::uniform_int_distribution<std::size_t> position(0, text.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    int accepted = 0;
    for (int i = 0; i < 2000; ++i) {
        std::string mutated = text;
        for (int flips = 1 + i % 3; flips > 0; --flips) {
            mutated[position(random)] = static_cast<char>(byte(random));
        }
        KeyRecord out;
        DecodeResult result;
        BOOST_REQUIRE_NO_THROW(result = tronch::decode_key_record(mutated, out));
        if (!result.ok) {
            BOOST_REQUIRE(!result.error.empty());
            continue;
        }
        ++accepted;
        BOOST_REQUIRE(tronch::valid_uuid(out.id));
        if (out.limit) BOOST_REQUIRE(tronch::valid_rate_limit(*out.limit));
        BOOST_REQUIRE_LE(out.allowed_cidrs.size(), tronch::kMaxCidrs);
        for (const std::string& scope : out.scopes) BOOST_REQUIRE(tronch::valid_scope(scope));
        KeyRecord again;
        BOOST_REQUIRE(tronch::decode_key_record(tronch::encode_key_record(out), again).ok);
    }
    BOOST_TEST_MESSAGE("mutations accepted: " << accepted);
}

BOOST_AUTO_TEST_CASE(version_must_be_the_integer_one) {
    for (const json& value : {json(2), json(0), json(-1), json("1"), json(1.0), json(true), json(nullptr),
                              json::array({1}), json(18446744073709551615ULL)}) {
        expect_field_rejected("v", value);
    }
}

BOOST_AUTO_TEST_CASE(wrong_types_and_values_per_field_are_rejected) {
    const std::string upper_id = "0F8E2C1A-5B7D-4E3F-9A21-7C6B5D4E3F20";
    expect_field_rejected("id", 123);
    expect_field_rejected("id", nullptr);
    expect_field_rejected("id", "not-a-uuid");
    expect_field_rejected("id", upper_id);
    expect_field_rejected("id", "0f8e2c1a5b7d4e3f9a217c6b5d4e3f20");
    expect_field_rejected("id", "{0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20}");
    expect_field_rejected("id", "");

    expect_field_rejected("prefix", 1);
    expect_field_rejected("prefix", nullptr);
    expect_field_rejected("prefix", json::array());

    for (const json& value : {json("prod"), json("LIVE"), json(""), json(0), json(nullptr)}) {
        expect_field_rejected("environment", value);
    }
    for (const json& value : {json("deleted"), json("Active"), json(""), json(0), json(nullptr)}) {
        expect_field_rejected("status", value);
    }
    for (const char* field : {"name", "owner"}) {
        for (const json& value : {json(1), json(nullptr), json::array(), json::object(), json(false)}) {
            expect_field_rejected(field, value);
        }
    }
    for (const json& value : {json("1900000000"), json(1.5), json(-1), json(true), json::object(),
                              json(9223372036854775808ULL), json(1e300)}) {
        expect_field_rejected("expires_at", value);
    }
    for (const json& value :
         {json("10.0.0.0/8"), json(nullptr), json::object(), json::array({1}), json::array({"10.0.0.1/8"}),
          json::array({"bad"}), json::array({"10.0.0.0/8", ""})}) {
        expect_field_rejected("allowed_cidrs", value);
    }
    for (const json& value : {json("read"), json(nullptr), json::object(), json::array({1}),
                              json::array({"READ"}), json::array({""}), json::array({"has space"}),
                              json::array({std::string(65, 'a')}), json::array({"é"})}) {
        expect_field_rejected("scopes", value);
    }
    for (const json& value : {json::array(), json("x"), json(nullptr), json(1)}) {
        expect_field_rejected("metadata", value);
    }
}

BOOST_AUTO_TEST_CASE(limit_is_checked_strictly) {
    const auto limit = [](json rate, json period, json burst) {
        return json{{"rate", rate}, {"period_seconds", period}, {"burst", burst}};
    };
    for (const json& value : {
             json::array(), json("x"), json(1), json{{"rate", 1}}, json{{"rate", 1}, {"period_seconds", 1}},
             json{{"rate", 1}, {"period_seconds", 1}, {"burst", 0}, {"extra", 1}}, limit(0, 1, 0),
             limit(-1, 1, 0), limit(tronch::kMaxRate + 1, 1, 0), limit(1, 0, 0),
             limit(1, tronch::kMaxPeriodSeconds + 1, 0), limit(1, 1, -1), limit(1, 1, tronch::kMaxBurst + 1),
             limit("1", 1, 0), limit(1.0, 1, 0), limit(1, nullptr, 0), limit(1, 1, false),
             limit(1, 86'400, 1'000'000),  // 1 per day, burst 10^6: beyond what GCRA enforces exactly
         }) {
        expect_field_rejected("limit", value);
    }
    const KeyRecord top = expect_accepted(
        with_field("limit", limit(tronch::kMaxRate, tronch::kMaxPeriodSeconds, tronch::kMaxBurst)));
    BOOST_TEST(
        (top.limit == tronch::RateLimit{tronch::kMaxRate, tronch::kMaxPeriodSeconds, tronch::kMaxBurst}));
    const KeyRecord bottom = expect_accepted(with_field("limit", limit(1, 1, 0)));
    BOOST_TEST((bottom.limit == tronch::RateLimit{1, 1, 0}));
    BOOST_TEST(!expect_accepted(with_field("limit", nullptr)).limit.has_value());
}

BOOST_AUTO_TEST_CASE(list_sizes_are_bounded) {
    json cidrs = json::array();
    for (std::size_t i = 0; i < tronch::kMaxCidrs; ++i)
        cidrs.push_back("10.0.0." + std::to_string(i) + "/32");
    BOOST_TEST(expect_accepted(with_field("allowed_cidrs", cidrs)).allowed_cidrs.size() == tronch::kMaxCidrs);
    cidrs.push_back("10.0.1.0/24");
    expect_field_rejected("allowed_cidrs", cidrs);

    json scopes = json::array();
    for (std::size_t i = 0; i < tronch::kMaxScopes; ++i) scopes.push_back("scope" + std::to_string(i));
    scopes[0] = std::string(tronch::kMaxScopeLength, 'z');
    BOOST_TEST(expect_accepted(with_field("scopes", scopes)).scopes.size() == tronch::kMaxScopes);
    scopes.push_back("one-too-many");
    expect_field_rejected("scopes", scopes);
}

BOOST_AUTO_TEST_CASE(unknown_and_duplicate_fields_are_rejected) {
    expect_field_rejected("extra", 1);
    expect_field_rejected("V", 1);
    expect_field_rejected("expiresAt", 1);
    // nlohmann would keep the last duplicate; a record with two statuses is refused instead.
    const std::string duplicate_status =
        R"({"v":1,"id":"0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20","prefix":"p","environment":"live",)"
        R"("status":"revoked","status":"active"})";
    expect_rejected(duplicate_status, "duplicate status");
    const std::string duplicate_in_limit =
        R"({"v":1,"id":"0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20","prefix":"p","environment":"live",)"
        R"("status":"active","limit":{"rate":1,"rate":1000,"period_seconds":1,"burst":0}})";
    expect_rejected(duplicate_in_limit, "duplicate rate");
    // The same name in different objects is not a duplicate.
    const std::string nested_same_name =
        R"({"v":1,"id":"0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20","prefix":"p","environment":"live",)"
        R"("status":"active","metadata":{"status":"x","a":{"status":"y"}}})";
    KeyRecord out;
    BOOST_TEST(tronch::decode_key_record(nested_same_name, out).ok);
}

BOOST_AUTO_TEST_CASE(deeply_nested_metadata_does_not_crash) {
    std::string deep =
        R"({"v":1,"id":"0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20","prefix":"p","environment":"live",)"
        R"("status":"active","metadata":{"x":)";
    deep += std::string(5000, '[') + std::string(5000, ']') + "}}";
    KeyRecord out;
    DecodeResult result;
    BOOST_REQUIRE_NO_THROW(result = tronch::decode_key_record(deep, out));
    BOOST_TEST(result.ok);
}

BOOST_AUTO_TEST_CASE(valid_uuid_cases) {
    BOOST_TEST(tronch::valid_uuid(kId));
    BOOST_TEST(tronch::valid_uuid("00000000-0000-0000-0000-000000000000"));
    BOOST_TEST(tronch::valid_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"));
    for (std::string_view bad :
         {"", "0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f2", "0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f200",
          "0F8E2C1A-5B7D-4E3F-9A21-7C6B5D4E3F20", "0f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f2g",
          "0f8e2c1a_5b7d_4e3f_9a21_7c6b5d4e3f20", "0f8e2c1a5-b7d-4e3f-9a21-7c6b5d4e3f20",
          "0f8e2c1a-5b7d-4e3f-9a217c6b5d4e3f20-", " f8e2c1a-5b7d-4e3f-9a21-7c6b5d4e3f20"}) {
        BOOST_TEST(!tronch::valid_uuid(bad), bad);
    }
}

BOOST_AUTO_TEST_CASE(valid_scope_cases) {
    for (std::string_view good : {"read", "a", "billing:write", "a.b-c_d", "0", "x:y:z"}) {
        BOOST_TEST(tronch::valid_scope(good), good);
    }
    BOOST_TEST(tronch::valid_scope(std::string(64, 'a')));
    BOOST_TEST(!tronch::valid_scope(std::string(65, 'a')));
    for (std::string_view bad : {"", "Read", "has space", "a/b", "a*", "a\n", "é"}) {
        BOOST_TEST(!tronch::valid_scope(bad), bad);
    }
}

BOOST_AUTO_TEST_CASE(valid_rate_limit_ranges) {
    using tronch::RateLimit;
    BOOST_TEST(tronch::valid_rate_limit(RateLimit{1, 1, 0}));
    BOOST_TEST(
        tronch::valid_rate_limit(RateLimit{tronch::kMaxRate, tronch::kMaxPeriodSeconds, tronch::kMaxBurst}));
    BOOST_TEST(tronch::valid_rate_limit(RateLimit{1, tronch::kMaxPeriodSeconds, 0}));
    BOOST_TEST(tronch::valid_rate_limit(RateLimit{1, tronch::kMaxPeriodSeconds, 50'000}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{1, tronch::kMaxPeriodSeconds, 60'000}));  // GCRA bound
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{0, 1, 0}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{tronch::kMaxRate + 1, 1, 0}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{1, 0, 0}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{1, tronch::kMaxPeriodSeconds + 1, 0}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{1, 1, -1}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{1, 1, tronch::kMaxBurst + 1}));
    BOOST_TEST(!tronch::valid_rate_limit(RateLimit{1, std::numeric_limits<std::int64_t>::max(), 0}));
}

BOOST_AUTO_TEST_CASE(status_names) {
    for (KeyStatus status :
         {KeyStatus::active, KeyStatus::rotating, KeyStatus::revoked, KeyStatus::expired}) {
        KeyStatus parsed = KeyStatus::active;
        BOOST_TEST(tronch::parse_status(tronch::to_string(status), parsed));
        BOOST_TEST((parsed == status));
    }
    BOOST_TEST(tronch::to_string(KeyStatus::rotating) == "rotating");
    KeyStatus untouched = KeyStatus::revoked;
    for (std::string_view bad : {"", "Active", "deleted", "active "}) {
        BOOST_TEST(!tronch::parse_status(bad, untouched));
    }
    BOOST_TEST((untouched == KeyStatus::revoked));
}

BOOST_AUTO_TEST_CASE(usable_at_combines_status_and_expiry) {
    KeyRecord record;
    record.status = KeyStatus::active;
    BOOST_TEST(record.usable_at(0));
    BOOST_TEST(record.usable_at(4'000'000'000));
    record.expires_at = 100;
    BOOST_TEST(record.usable_at(99));
    BOOST_TEST(!record.usable_at(100));
    BOOST_TEST(!record.usable_at(101));

    record.status = KeyStatus::rotating;
    BOOST_TEST(record.usable_at(99));
    BOOST_TEST(!record.usable_at(100));
    record.expires_at.reset();
    BOOST_TEST(!record.usable_at(0));  // a grace period must end

    for (KeyStatus dead : {KeyStatus::revoked, KeyStatus::expired}) {
        record.status = dead;
        record.expires_at.reset();
        BOOST_TEST(!record.usable_at(0));
        record.expires_at = 100;
        BOOST_TEST(!record.usable_at(50));
    }
}
