# The nginx module's black-box tests: real nginx with the built module, real Redis.
tronch_pytest(module_config test_module_config.py LABELS module)
tronch_pytest(module_auth test_module_auth.py LABELS module)
tronch_pytest(module_events test_module_events.py LABELS module)
tronch_pytest(module_faults test_module_faults.py LABELS module)
tronch_pytest(module_limit test_module_limit.py LABELS module)
tronch_pytest(module_limit_redis test_module_limit_redis.py LABELS module)
tronch_pytest(module_hostile test_module_hostile.py LABELS module)
tronch_pytest(module_fault_suite test_module_fault_suite.py LABELS module)
