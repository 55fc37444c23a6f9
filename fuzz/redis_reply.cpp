// Redis replies as the link reads them: bytes off the wire through hiredis'
// own reader, then into rebound's reply (type, text, elements, the RESP
// error code) and the Redis error table.
#include <hiredis/hiredis.h>

#include "../src/redis/internal.hpp"
#include "input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return 0;
  rebound::redis::detail::limit_reply_size(reader);  // as the link's contexts are
  if (redisReaderFeed(reader, reinterpret_cast<const char*>(data), size) == REDIS_OK) {
    for (int i = 0; i < 64; ++i) {
      void* r = nullptr;
      if (redisReaderGetReply(reader, &r) != REDIS_OK || r == nullptr) break;
      const auto reply = rebound::redis::detail::convert(static_cast<redisReply*>(r));
      (void)rebound::redis::classify(reply);
      (void)rebound::redis::server_unusable(reply.code);
      if (reply.type == rebound::redis::reply::kind::error &&
          rebound::redis::parse_error_code(reply.text) != reply.code) {
        __builtin_trap();
      }
      freeReplyObject(r);
    }
  }
  redisReaderFree(reader);
  return 0;
}
