# Control plane (tronchd) black-box tests: real PostgreSQL + Redis via the harness.
tronch_pytest(cp_keys test_cp_keys.py LABELS cp)
tronch_pytest(cp_rotation test_cp_rotation.py LABELS cp)
tronch_pytest(cp_faults test_cp_faults.py LABELS cp)
tronch_pytest(cp_ops test_cp_ops.py LABELS cp TIMEOUT 900)
# Issue 12: hostile input findings, the hostile REST table, the OpenAPI lint + response contract.
tronch_pytest(cp_hardening test_cp_hardening.py LABELS cp)
tronch_pytest(cp_hostile test_cp_hostile.py LABELS cp)
tronch_pytest(cp_openapi test_cp_openapi.py LABELS cp TIMEOUT 900)
tronch_pytest(cp_crash test_cp_crash.py LABELS cp)
tronch_pytest(cp_postgres test_cp_postgres.py LABELS cp)
tronch_pytest(cp_redis_prod test_cp_redis_prod.py LABELS cp TIMEOUT 600)
# Issue 21: operator experience, one test per finding (tronchd, tronchctl).
tronch_pytest(cp_ops_findings test_ops_findings.py LABELS cp)
