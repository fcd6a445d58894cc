// The control plane's request validation: JSON bodies of create, PATCH and rotate, query strings,
// RFC 3339 times, durations, If-Match. A client's mistake must be an ApiError (a 4xx with a JSON
// error); any other exception would be a 500, so it aborts here.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "api_error.hpp"
#include "validation.hpp"

using namespace tronch::cp;

namespace {

template <class F>
void client_error_only(F&& f) {
    try {
        f();
    } catch (const ApiError& e) {
        if (e.status < 400 || e.status > 499) abort();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "not an ApiError: %s\n", e.what());
        abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    // The first byte picks what the rest is, so one corpus covers every entry point.
    unsigned char which = size ? data[0] : 0;
    std::string_view rest = size ? text.substr(1) : text;
    const std::int64_t now_us = 1'700'000'000'000'000;
    switch (which % 5) {
        case 0:
        case 1:
        case 2:
            client_error_only([&] {
                nlohmann::json body = parse_json_object(rest);
                if (which % 5 == 0) (void)parse_create_request(body, now_us);
                if (which % 5 == 1) (void)parse_patch_request(body);
                if (which % 5 == 2) (void)parse_rotate_request(body, 7 * 86400);
            });
            break;
        case 3:
            client_error_only([&] {
                auto query = parse_query(rest);
                check_parameters(query, {"limit", "cursor", "owner", "status", "environment"});
                (void)parse_page_size(query);
                (void)percent_decode(rest, true);
            });
            break;
        default:
            if (auto t = parse_rfc3339(rest)) {
                // what we accept we can print, and what we print we accept
                std::string printed = format_rfc3339(*t);
                if (parse_rfc3339(printed) != t) abort();
            }
            (void)parse_duration_seconds(rest);
            (void)sane_request_id(rest);
            client_error_only([&] { (void)if_match_allows(std::string(rest), 3); });
            break;
    }
    return 0;
}
