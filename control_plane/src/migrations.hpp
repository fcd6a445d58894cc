// Schema migrations: sql/NNNN_name.sql embedded in the binary, applied in order, each in
// its own transaction, under a Postgres advisory lock, recorded in schema_migrations.
#pragma once

#include <string>
#include <vector>

#include "db.hpp"

namespace tronch::cp {

// Returns the names of the migrations applied now (empty when up to date).
std::vector<std::string> run_migrations(PgConn& conn);

}  // namespace tronch::cp
