# tronchd's pure pieces (validation, cursor codec, idempotency crypto).
tronch_unit_test(test_cp_pure test_cp_pure.cpp LIBS tronch_cp)
# tronchd Redis address parsing (TRONCH_REDIS_URL forms, redaction).
tronch_unit_test(test_redis_target test_redis_target.cpp LIBS tronch_cp)
# Issue 21: CLI terminal-safe text, prefix filter, failure-log throttle, secret fingerprints.
tronch_unit_test(test_cp_ops test_cp_ops.cpp LIBS tronch_cp)
