// Pagination cursors (?cursor= on /keys and /audit): client-controlled text decoded by tronchd.
// Invariants: base64url round-trips; a decoded cursor re-encodes to a cursor that decodes to it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cursor.hpp"

using namespace tronch::cp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (base64url_decode(base64url_encode(text)) != std::string(text)) abort();
    if (auto key = decode_key_cursor(text)) {
        auto again = decode_key_cursor(encode_key_cursor(*key));
        if (!again || again->created_us != key->created_us || again->id != key->id) abort();
    }
    if (auto id = decode_id_cursor(text)) {
        if (decode_id_cursor(encode_id_cursor(*id)) != id) abort();
    }
    return 0;
}
