// The metrics endpoint's answer to one request (src/metrics.cpp), apart
// from its sockets so that fuzz/metrics_request.cpp can feed it anything.
// Not API.
#pragma once

#include <string>

#include "rebound/metrics.hpp"

namespace rebound::metrics::detail {

/// The whole HTTP/1.1 answer to `req`: what a client sent before its
/// header's blank line (or all it sent, when it never came): 200 with the
/// exposition for GET /metrics, else 400, 404, 405 or 431, always with a
/// Content-Length and Connection: close.
std::string answer_request(const registry& r, const std::string& req);

}  // namespace rebound::metrics::detail
