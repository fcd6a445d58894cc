// Files embedded into the binary at build time (control_plane/embed.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace tronch::cp {

struct EmbeddedFile {
    std::string_view name;
    std::string_view content;
};

// sql/NNNN_name.sql, sorted by name.
const std::vector<EmbeddedFile>& embedded_migrations();
// control_plane/openapi.json
std::string_view embedded_openapi();

}  // namespace tronch::cp
