# End-to-end tests: tronchd + nginx with the module + PostgreSQL + Redis, all real (label e2e).
tronch_pytest(e2e_lifecycle test_e2e_lifecycle.py LABELS e2e)
tronch_pytest(e2e_stack test_e2e_stack.py LABELS e2e)
tronch_pytest(e2e_configs test_e2e_configs.py LABELS e2e)
tronch_pytest(e2e_durable test_e2e_durable.py LABELS e2e)
tronch_pytest(e2e_run_acl test_e2e_run_acl.py LABELS e2e)
tronch_pytest(e2e_records test_e2e_records.py LABELS e2e)
# Issue 21: every runbook procedure, literally, against a ./run.sh stack (scripts/stack.py).
tronch_pytest(e2e_ops_runbook test_ops_runbook.py LABELS e2e TIMEOUT 900)
