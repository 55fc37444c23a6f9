// Shared by the Redis link and its fuzz target. Not API.
#pragma once

#include <hiredis/hiredis.h>

#include "rebound/redis/client.hpp"

namespace rebound::redis::detail {

/// hiredis' reply structure as a rebound::redis::reply: its type, its
/// integer or text, its elements, and for an error its RESP code.
reply convert(const redisReply* r);

/// The most elements a reply's array may declare. hiredis 0.14 allocates a
/// declared array's element pointers before any element arrives, so
/// `*888888881` alone asks for 7 GB (found by fuzz_redis_reply). The link's
/// replies are a few elements long.
inline constexpr int max_reply_elements = 1 << 20;

/// Makes `r` refuse an array declaring more than max_reply_elements (or a
/// negative count): hiredis then fails the read as out of memory, a protocol
/// error that breaks the connection, like any other. Everything else is
/// hiredis' own reply building.
void limit_reply_size(redisReader* r) noexcept;

}  // namespace rebound::redis::detail
