# The nginx module's unit tests: its C bridge over the core library.
if(TARGET tronch_ngx_bridge)
  tronch_unit_test(test_module_bridge test_module_bridge.cpp LIBS tronch_ngx_bridge)
  set_tests_properties(unit.test_module_bridge PROPERTIES LABELS "unit;module")
  tronch_unit_test(test_bridge_limit test_bridge_limit.cpp LIBS tronch_ngx_bridge)
  set_tests_properties(unit.test_bridge_limit PROPERTIES LABELS "unit;module")
endif()
