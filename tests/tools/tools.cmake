# tronch_testkit: keys, records, Redis names and events through the core library, for the
# black-box tests (tests/integration/tronch_testkit.py finds it in TRONCH_BUILD_DIR).
add_executable(tronch_testkit ${CMAKE_CURRENT_LIST_DIR}/tronch_testkit.cpp)
target_link_libraries(tronch_testkit PRIVATE tronch_core)
