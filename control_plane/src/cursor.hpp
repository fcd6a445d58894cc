// Opaque pagination cursors: base64url (no padding) of "<created_at us>,<uuid>" for keys
// and "<audit id>" for the audit log. Pure; unit tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tronch::cp {

std::string base64url_encode(std::string_view data);
std::optional<std::string> base64url_decode(std::string_view text);

struct KeyCursor {
    std::int64_t created_us = 0;
    std::string id;
};
std::string encode_key_cursor(const KeyCursor& c);
std::optional<KeyCursor> decode_key_cursor(std::string_view text);

std::string encode_id_cursor(std::int64_t id);
std::optional<std::int64_t> decode_id_cursor(std::string_view text);

}  // namespace tronch::cp
