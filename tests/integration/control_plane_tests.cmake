# Control plane (tronchd) black-box tests: real PostgreSQL + Redis via the harness.
tronch_pytest(cp_keys test_cp_keys.py LABELS cp)
