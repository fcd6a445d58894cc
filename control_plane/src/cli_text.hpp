// Text the CLI prints that came from elsewhere (names, owners, metadata, error messages): made
// safe for a terminal. C0/C1 controls, bidi controls (U+061C, U+200E/F, U+202A-E, U+2066-9) and
// bytes that are not UTF-8 are shown escaped (\u{202e}, \x1b), so a name cannot reorder or
// recolour what an operator reads.
#pragma once

#include <string>
#include <string_view>

namespace tronch::cp {

std::string terminal_safe(std::string_view text);

}  // namespace tronch::cp
