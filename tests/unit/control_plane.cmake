# tronchd's pure pieces (validation, cursor codec, idempotency crypto).
tronch_unit_test(test_cp_pure test_cp_pure.cpp LIBS tronch_cp)
