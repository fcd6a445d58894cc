// Checks on free text that reaches logs, JSON or PostgreSQL: UTF-8 well-formedness, control and
// bidi-override characters, and the request ids we echo back.
#pragma once

#include <string_view>

namespace tronch::cp {

// True if `text` (valid UTF-8) holds a C0/C1 control or a bidi override/isolate:
// U+0000-U+001F, U+007F-U+009F, U+202A-U+202E, U+2066-U+2069.
bool has_forbidden_chars(std::string_view text) noexcept;
// True if `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view text) noexcept;

// X-Request-Id values we echo back: [A-Za-z0-9._:-]{1,128}.
bool sane_request_id(std::string_view id) noexcept;

}  // namespace tronch::cp
