// PostgreSQL NOTICE/WARNING messages as JSON log lines. libpq's default notice processor writes
// them raw to stderr ("NOTICE:  ..."), which breaks a log read as one JSON object per line.
#pragma once

#include <libpq-fe.h>

namespace tronch::cp {

void route_notices_to_log(PGconn* conn) noexcept;

}  // namespace tronch::cp
