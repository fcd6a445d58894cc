// Request validation, one header per thing validated (each pure: no I/O, unit tested):
//   json_body.hpp    strict JSON bodies (duplicates, depth, inexact numbers)
//   key_fields.hpp   the create / patch / rotate bodies
//   metadata.hpp     a key's metadata bounds
//   query.hpp        query strings and their parameters
//   times.hpp        RFC 3339 times, durations, the clock
//   text_checks.hpp  UTF-8, control and bidi characters, request ids
//   etag.hpp         ETags and If-Match
// This header gathers them for the places (tests, fuzz targets) that want them all.
#pragma once

#include "etag.hpp"
#include "json_body.hpp"
#include "key_fields.hpp"
#include "metadata.hpp"
#include "query.hpp"
#include "text_checks.hpp"
#include "times.hpp"
