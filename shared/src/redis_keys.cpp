#include "tronch/redis_keys.hpp"

#include <charconv>
#include <exception>
#include <nlohmann/json.hpp>

#include "tronch/key_hash.hpp"
#include "tronch/key_record.hpp"

namespace tronch::redis_keys {
namespace {

using nlohmann::json;

constexpr std::string_view kKeyChanged = "key.changed";
constexpr std::string_view kMirrorRebuilt = "mirror.rebuilt";
constexpr int kEventVersion = 1;

// "<prefix>{<item>}": the braces are Redis Cluster's hash tag.
std::string tagged(std::string_view prefix, std::string_view item) {
    std::string name;
    name.reserve(prefix.size() + item.size() + 1);
    name.append(prefix).append(item).push_back('}');
    return name;
}

bool valid_key_hash(std::string_view text) noexcept {
    if (text.size() != kSha256HexLength) return false;
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

// Strict non-negative decimal: digits only, no sign, no leading zero (one spelling per value).
bool parse_bucket(std::string_view text, std::int64_t& out) noexcept {
    if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
    }
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc() && end == text.data() + text.size();
}

bool parse_counter(std::string_view text, UsageCounter& out) noexcept {
    if (text.size() != 1) return false;
    switch (text[0]) {
        case 'r':
            out = UsageCounter::requests;
            return true;
        case 'e':
            out = UsageCounter::errors;
            return true;
        case 'l':
            out = UsageCounter::last_used;
            return true;
        default:
            return false;
    }
}

bool is_version_one(const json& value) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>() == kEventVersion;
    if (value.is_number_integer()) return value.get<std::int64_t>() == kEventVersion;
    return false;  // 1.0, "1", true: not the integer 1
}

bool read_event(std::string_view json_text, Event& out) {
    const json document =
        json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
    if (!document.is_object()) return false;  // also covers discarded (invalid) input
    const auto version = document.find("v");
    const auto type = document.find("type");
    if (version == document.end() || !is_version_one(*version)) return false;
    if (type == document.end() || !type->is_string()) return false;

    const auto& type_name = type->get_ref<const std::string&>();
    if (type_name == kMirrorRebuilt) {
        if (document.size() != 2) return false;  // unknown fields: refused, as for key records
        out = Event{EventType::mirror_rebuilt, {}, {}};
        return true;
    }
    if (type_name != kKeyChanged || document.size() != 4) return false;
    const auto key_hash = document.find("key_hash");
    const auto id = document.find("id");
    if (key_hash == document.end() || id == document.end()) return false;
    if (!key_hash->is_string() || !valid_key_hash(key_hash->get_ref<const std::string&>())) return false;
    if (!id->is_string() || !valid_uuid(id->get_ref<const std::string&>())) return false;
    out = Event{EventType::key_changed, key_hash->get<std::string>(), id->get<std::string>()};
    return true;
}

}  // namespace

std::string key_record(std::string_view key_hash_hex) { return tagged(kKeyRecordPrefix, key_hash_hex); }

std::string rate_limit_key(std::string_view key_id) { return tagged("tronch:rl:{", key_id); }

std::string usage_field(std::string_view key_id, std::int64_t bucket_start, UsageCounter counter) {
    std::string field(key_id);
    field.push_back('|');
    field.append(std::to_string(bucket_start));
    field.push_back('|');
    field.push_back(static_cast<char>(counter));
    return field;
}

bool parse_usage_field(std::string_view field, UsageField& out) noexcept {
    const std::size_t first = field.find('|');
    if (first == std::string_view::npos) return false;
    const std::size_t second = field.find('|', first + 1);
    if (second == std::string_view::npos) return false;

    const std::string_view id = field.substr(0, first);
    const std::string_view bucket = field.substr(first + 1, second - first - 1);
    const std::string_view counter = field.substr(second + 1);  // a third '|' fails here
    UsageField parsed;
    if (!valid_uuid(id) || !parse_bucket(bucket, parsed.bucket_start) ||
        !parse_counter(counter, parsed.counter)) {
        return false;
    }
    try {
        parsed.key_id.assign(id);
    } catch (...) {
        return false;  // out of memory: the header promises noexcept
    }
    out = std::move(parsed);
    return true;
}

std::string event_json(const Event& event) {
    json document;
    document["v"] = kEventVersion;
    if (event.type == EventType::mirror_rebuilt) {
        document["type"] = kMirrorRebuilt;
    } else {
        document["type"] = kKeyChanged;
        document["key_hash"] = event.key_hash;
        document["id"] = event.id;
    }
    return document.dump();
}

bool parse_event(std::string_view json_text, Event& out) noexcept {
    try {
        return read_event(json_text, out);
    } catch (...) {
        return false;
    }
}

}  // namespace tronch::redis_keys
