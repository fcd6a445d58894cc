// Redis replies as the module reads them: hiredis's reader (the same redisReader the module's
// async context feeds) over arbitrary bytes, then the bridge's conversion of each reply: a bulk
// string is a key record (GET tronch:key:<hash>), a pub/sub "message" array carries an event.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <hiredis/hiredis.h>

#include "tronch_bridge.h"

namespace {

void convert(const redisReply* reply) {
    if (reply->type == REDIS_REPLY_STRING) {
        tronch_record_t record;
        char err[128];
        (void)tronch_bridge_decode_record(reply->str, reply->len, &record, err, sizeof(err));
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
               reply->element[0]->type == REDIS_REPLY_STRING && reply->element[2]->type == REDIS_REPLY_STRING &&
               reply->element[0]->len == 7 && std::memcmp(reply->element[0]->str, "message", 7) == 0) {
        int type = -1;
        uint8_t digest[TRONCH_DIGEST_LEN];
        (void)tronch_bridge_parse_event(reply->element[2]->str, reply->element[2]->len, &type, digest);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; ++i) convert(reply->element[i]);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    redisReader* reader = redisReaderCreate();
    if (reader == nullptr) return 0;
    // fed in two pieces, as replies arrive over TCP
    size_t half = size / 2;
    if (redisReaderFeed(reader, reinterpret_cast<const char*>(data), half) == REDIS_OK &&
        redisReaderFeed(reader, reinterpret_cast<const char*>(data) + half, size - half) == REDIS_OK) {
        for (int i = 0; i < 64; ++i) {
            void* reply = nullptr;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr) break;
            convert(static_cast<redisReply*>(reply));
            freeReplyObject(reply);
        }
    }
    redisReaderFree(reader);
    return 0;
}
