// Shared by the Redis link and its fuzz target. Not API.
#pragma once

#include <hiredis/hiredis.h>

#include "rebound/redis/client.hpp"

namespace rebound::redis::detail {

/// hiredis' reply structure as a rebound::redis::reply: its type, its
/// integer or text, its elements, and for an error its RESP code.
reply convert(const redisReply* r);

}  // namespace rebound::redis::detail
