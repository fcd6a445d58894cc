#include "json_body.hpp"

#include <cmath>
#include <optional>
#include <set>
#include <vector>

#include "api_error.hpp"

namespace tronch::cp {
namespace {

// SAX handler that builds the tree like nlohmann's own DOM parser but refuses what that parser
// lets through: duplicate member names (which one wins differs between parsers), nesting past
// kMaxJsonDepth, and numbers a double cannot hold exactly.
class StrictSax {
public:
    using json = nlohmann::json;
    explicit StrictSax(json& root) : dom_(root, false) {}

    bool null() { return dom_.null(); }
    bool boolean(bool v) { return dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) {
        if (v > kMaxExactInteger || v < -kMaxExactInteger) return imprecise();
        return dom_.number_integer(v);
    }
    bool number_unsigned(json::number_unsigned_t v) {
        if (v > static_cast<json::number_unsigned_t>(kMaxExactInteger)) return imprecise();
        return dom_.number_unsigned(v);
    }
    bool number_float(json::number_float_t v, const json::string_t& text) {
        // An integer literal too long for 64 bits arrives here, already rounded.
        if (!std::isfinite(v) || text.find_first_of(".eE") == json::string_t::npos) return imprecise();
        return dom_.number_float(v, text);
    }
    bool string(json::string_t& v) { return dom_.string(v); }
    bool binary(json::binary_t& v) { return dom_.binary(v); }
    bool start_object(std::size_t n) {
        members_.emplace_back();
        return deeper() && dom_.start_object(n);
    }
    bool key(json::string_t& k) {
        if (!members_.back().insert(k).second) return fail(ErrorCode::invalid_json, "duplicate member name '" + k + "'");
        last_key_ = k;
        return dom_.key(k);
    }
    bool end_object() {
        members_.pop_back();
        return dom_.end_object();
    }
    bool start_array(std::size_t n) {
        members_.emplace_back();  // unused: keeps the depth count in one place
        return deeper() && dom_.start_array(n);
    }
    bool end_array() {
        members_.pop_back();
        return dom_.end_array();
    }
    bool parse_error(std::size_t pos, const std::string& tok, const nlohmann::detail::exception& e) {
        if (!code_) fail(ErrorCode::invalid_json, "the body is not valid JSON");
        return dom_.parse_error(pos, tok, e);
    }

    const std::optional<ErrorCode>& code() const { return code_; }
    const std::string& message() const { return message_; }

private:
    bool fail(ErrorCode code, std::string message) {
        code_ = code;
        message_ = std::move(message);
        return false;
    }
    bool deeper() {
        return members_.size() <= static_cast<std::size_t>(kMaxJsonDepth) ||
               fail(ErrorCode::invalid_json, "the body is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    bool imprecise() {
        return fail(ErrorCode::invalid_field, "'" + last_key_ +
                                              "' has a number that cannot be held exactly (integers must be within "
                                              "-2^53..2^53; no overflowing literals)");
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    std::vector<std::set<std::string>> members_;
    std::string last_key_;
    std::optional<ErrorCode> code_;  // the first failure wins
    std::string message_;
};

}  // namespace

nlohmann::json parse_json_object(std::string_view body) {
    nlohmann::json j;
    StrictSax sax(j);
    bool ok = nlohmann::json::sax_parse(body.begin(), body.end(), &sax, nlohmann::json::input_format_t::json, true);
    if (!ok || sax.code())
        bad_input(sax.code().value_or(ErrorCode::invalid_json), sax.message().empty() ? "the body is not valid JSON" : sax.message());
    if (j.is_discarded()) bad_input(ErrorCode::invalid_json, "the body is not valid JSON");
    if (!j.is_object()) bad_input(ErrorCode::invalid_json, "the body must be a JSON object");
    return j;
}

}  // namespace tronch::cp
