#include "tronch/key_record.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>

#include "tronch/gcra.hpp"

namespace tronch {
namespace {

using nlohmann::json;

constexpr std::int64_t kMicrosecondsPerSecond = 1'000'000;

bool is_lower_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool is_scope_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
}

// ---- encoding ------------------------------------------------------------------------

json encode_limit(const std::optional<RateLimit>& limit) {
    if (!limit) return nullptr;
    return json{{"rate", limit->rate}, {"period_seconds", limit->period_seconds}, {"burst", limit->burst}};
}

json encode_cidrs(const std::vector<Cidr>& cidrs) {
    json array = json::array();
    for (const Cidr& cidr : cidrs) array.push_back(cidr.to_string());
    return array;
}

// A null metadata (a default-constructed json) is written as {}; anything else that is not an
// object would make a record no gateway can decode, so it is refused here, at the writer.
json encode_metadata(const json& metadata) {
    if (metadata.is_null()) return json::object();
    if (!metadata.is_object()) throw std::invalid_argument("key record: metadata must be a JSON object");
    return metadata;
}

// ---- decoding ------------------------------------------------------------------------
// Each reader returns an empty string on success, or what was wrong.

// nlohmann keeps the last of duplicate object keys silently; a record where "status"
// appears twice is not one we can read without guessing, so duplicates are refused.
class DuplicateKeyDetector {
  public:
    bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
                open_objects_.emplace_back();
                break;
            case json::parse_event_t::object_end:
                if (!open_objects_.empty()) open_objects_.pop_back();
                break;
            case json::parse_event_t::key:
                if (!open_objects_.empty() && parsed.is_string() &&
                    !open_objects_.back().insert(parsed.get<std::string>()).second) {
                    duplicate_ = true;
                }
                break;
            default:
                break;
        }
        return true;
    }
    bool found() const noexcept { return duplicate_; }

  private:
    std::vector<std::set<std::string>> open_objects_;
    bool duplicate_ = false;
};

std::string read_int64(const json& value, std::int64_t& out) {
    if (value.is_number_unsigned()) {
        const auto unsigned_value = value.get<std::uint64_t>();
        if (unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return "is out of range";
        }
        out = static_cast<std::int64_t>(unsigned_value);
        return {};
    }
    if (value.is_number_integer()) {
        out = value.get<std::int64_t>();
        return {};
    }
    return "must be an integer";
}

std::string read_string(const json& value, std::string& out) {
    if (!value.is_string()) return "must be a string";
    out = value.get<std::string>();
    return {};
}

std::string read_version(const json& value) {
    std::int64_t version = 0;
    if (std::string error = read_int64(value, version); !error.empty()) return error;
    if (version != kKeyRecordVersion) return "is not a supported version (expected 1)";
    return {};
}

std::string read_id(const json& value, std::string& out) {
    if (std::string error = read_string(value, out); !error.empty()) return error;
    if (!valid_uuid(out)) return "must be a lower-case UUID";
    return {};
}

std::string read_environment(const json& value, Environment& out) {
    if (!value.is_string()) return "must be a string";
    if (!parse_environment(value.get_ref<const std::string&>(), out)) return "must be \"live\" or \"test\"";
    return {};
}

std::string read_status(const json& value, KeyStatus& out) {
    if (!value.is_string()) return "must be a string";
    if (!parse_status(value.get_ref<const std::string&>(), out)) {
        return "must be one of active, rotating, revoked, expired";
    }
    return {};
}

std::string read_expires_at(const json& value, std::optional<std::int64_t>& out) {
    if (value.is_null()) {
        out.reset();
        return {};
    }
    std::int64_t seconds = 0;
    if (std::string error = read_int64(value, seconds); !error.empty()) return error;
    if (seconds < 0) return "must not be negative";
    out = seconds;
    return {};
}

std::string read_limit(const json& value, std::optional<RateLimit>& out) {
    if (value.is_null()) {
        out.reset();
        return {};
    }
    if (!value.is_object()) return "must be an object or null";
    RateLimit limit;
    bool have_rate = false, have_period = false, have_burst = false;
    for (const auto& [field, item] : value.items()) {
        std::string error;
        if (field == "rate") {
            error = read_int64(item, limit.rate);
            have_rate = true;
        } else if (field == "period_seconds") {
            error = read_int64(item, limit.period_seconds);
            have_period = true;
        } else if (field == "burst") {
            error = read_int64(item, limit.burst);
            have_burst = true;
        } else {
            return "\"" + field + "\" is not a known field";
        }
        if (!error.empty()) return field + " " + error;
    }
    if (!have_rate || !have_period || !have_burst) return "needs rate, period_seconds and burst";
    if (!valid_rate_limit(limit)) return "is out of range";
    out = limit;
    return {};
}

std::string read_cidrs(const json& value, std::vector<Cidr>& out) {
    if (!value.is_array()) return "must be an array";
    if (value.size() > kMaxCidrs) return "has more than " + std::to_string(kMaxCidrs) + " entries";
    std::vector<Cidr> cidrs;
    cidrs.reserve(value.size());
    for (const json& item : value) {
        Cidr cidr;
        if (!item.is_string() || !Cidr::parse(item.get_ref<const std::string&>(), cidr)) {
            return "has an entry that is not a CIDR range";
        }
        cidrs.push_back(cidr);
    }
    out = std::move(cidrs);
    return {};
}

std::string read_scopes(const json& value, std::vector<std::string>& out) {
    if (!value.is_array()) return "must be an array";
    if (value.size() > kMaxScopes) return "has more than " + std::to_string(kMaxScopes) + " entries";
    std::vector<std::string> scopes;
    scopes.reserve(value.size());
    for (const json& item : value) {
        if (!item.is_string() || !valid_scope(item.get_ref<const std::string&>())) {
            return "has an entry that is not a valid scope";
        }
        scopes.push_back(item.get<std::string>());
    }
    out = std::move(scopes);
    return {};
}

std::string read_metadata(const json& value, json& out) {
    if (!value.is_object()) return "must be an object";
    out = value;
    return {};
}

constexpr std::string_view kRequiredFields[] = {"v", "id", "prefix", "environment", "status"};

// Reads one top-level field into `record`.
std::string read_field(const std::string& field, const json& value, KeyRecord& record) {
    if (field == "v") return read_version(value);
    if (field == "id") return read_id(value, record.id);
    if (field == "prefix") return read_string(value, record.prefix);
    if (field == "environment") return read_environment(value, record.environment);
    if (field == "status") return read_status(value, record.status);
    if (field == "name") return read_string(value, record.name);
    if (field == "owner") return read_string(value, record.owner);
    if (field == "expires_at") return read_expires_at(value, record.expires_at);
    if (field == "limit") return read_limit(value, record.limit);
    if (field == "allowed_cidrs") return read_cidrs(value, record.allowed_cidrs);
    if (field == "scopes") return read_scopes(value, record.scopes);
    if (field == "metadata") return read_metadata(value, record.metadata);
    return "is not a known field";
}

DecodeResult failure(std::string message) {
    DecodeResult result;
    result.error = std::move(message);
    return result;
}

DecodeResult decode(std::string_view json_text, KeyRecord& out) {
    DuplicateKeyDetector duplicates;
    const json document =
        json::parse(json_text.begin(), json_text.end(), std::ref(duplicates), /*allow_exceptions=*/false);
    if (document.is_discarded()) return failure("key record: not valid JSON");
    if (duplicates.found()) return failure("key record: an object has a duplicate field");
    if (!document.is_object()) return failure("key record: not a JSON object");

    for (std::string_view required : kRequiredFields) {
        if (!document.contains(required)) {
            return failure("key record: required field \"" + std::string(required) + "\" is missing");
        }
    }
    // Decode into a fresh record so that `out` is untouched on failure.
    KeyRecord record;
    for (const auto& [field, value] : document.items()) {
        if (std::string error = read_field(field, value, record); !error.empty()) {
            return failure("key record: \"" + field + "\": " + error);
        }
    }
    out = std::move(record);
    return DecodeResult{true, {}};
}

}  // namespace

std::string_view to_string(KeyStatus status) noexcept {
    switch (status) {
        case KeyStatus::active:
            return "active";
        case KeyStatus::rotating:
            return "rotating";
        case KeyStatus::revoked:
            return "revoked";
        case KeyStatus::expired:
            return "expired";
    }
    return "unknown";
}

bool parse_status(std::string_view text, KeyStatus& out) noexcept {
    for (KeyStatus status :
         {KeyStatus::active, KeyStatus::rotating, KeyStatus::revoked, KeyStatus::expired}) {
        if (text == to_string(status)) {
            out = status;
            return true;
        }
    }
    return false;
}

bool valid_rate_limit(const RateLimit& limit) noexcept {
    if (limit.rate < 1 || limit.rate > kMaxRate) return false;
    if (limit.period_seconds < 1 || limit.period_seconds > kMaxPeriodSeconds) return false;
    if (limit.burst < 0 || limit.burst > kMaxBurst) return false;
    // The gateway must be able to enforce exactly what the API accepted: refuse the few
    // absurd shapes (e.g. 1 per day with a burst of 10^6) that exceed GCRA's bounds (gcra.cpp).
    const GcraLimit gcra{limit.rate, limit.period_seconds * kMicrosecondsPerSecond, limit.burst};
    return gcra.valid();
}

bool valid_scope(std::string_view scope) noexcept {
    if (scope.empty() || scope.size() > kMaxScopeLength) return false;
    for (char c : scope) {
        if (!is_scope_char(c)) return false;
    }
    return true;
}

bool valid_uuid(std::string_view text) noexcept {
    if (text.size() != 36) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_position ? text[i] != '-' : !is_lower_hex(text[i])) return false;
    }
    return true;
}

bool KeyRecord::usable_at(std::int64_t now_seconds) const noexcept {
    switch (status) {
        case KeyStatus::active:
            return !expires_at || now_seconds < *expires_at;
        case KeyStatus::rotating:
            // A rotated-out key lives only through its grace period, which must have an end.
            return expires_at && now_seconds < *expires_at;
        case KeyStatus::revoked:
        case KeyStatus::expired:
            return false;
    }
    return false;
}

// Built member by member: nlohmann's initializer-list constructor copies every nested value
// (and builds a 2-element array per member), which made it half of the encoding's time.
std::string encode_key_record(const KeyRecord& record) {
    json document(json::value_t::object);
    auto& members = document.get_ref<json::object_t&>();
    members.emplace("v", kKeyRecordVersion);
    members.emplace("id", record.id);
    members.emplace("prefix", record.prefix);
    members.emplace("environment", to_string(record.environment));
    members.emplace("status", to_string(record.status));
    members.emplace("name", record.name);
    members.emplace("owner", record.owner);
    members.emplace("expires_at", record.expires_at ? json(*record.expires_at) : json(nullptr));
    members.emplace("limit", encode_limit(record.limit));
    members.emplace("allowed_cidrs", encode_cidrs(record.allowed_cidrs));
    members.emplace("scopes", record.scopes);
    members.emplace("metadata", encode_metadata(record.metadata));
    return document.dump();
}

DecodeResult decode_key_record(std::string_view json_text, KeyRecord& out) noexcept {
    try {
        return decode(json_text, out);
    } catch (const std::exception& error) {
        try {
            return failure(std::string("key record: ") + error.what());
        } catch (...) {
            return DecodeResult{};  // out of memory even for the message
        }
    } catch (...) {
        return DecodeResult{};
    }
}

}  // namespace tronch
