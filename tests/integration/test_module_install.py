"""`cmake --install` lays Tronch out as docs/operator-guide.md says ("Installing into an existing
nginx"), and Debian's stock nginx.conf, copied into a temp dir with only its absolute paths
rewritten, runs it: the installed modules-enabled link loads the .so, conf.d/tronch.conf gives the
http-level settings, the shipped /api/ example site protects its upstream."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess

import requests

import tronch_harness as h
from module_support import bearer, problem

ETC = "etc/nginx"


def install(destdir) -> None:
    env = dict(os.environ, DESTDIR=str(destdir))
    r = subprocess.run(["cmake", "--install", str(h.BUILD_DIR), "--prefix", "/usr"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def stock_conffile(name: str) -> str:
    """/etc/nginx/<name> as Debian ships it (its md5 must match dpkg's record of the conffile)."""
    path = f"/etc/nginx/{name}"
    conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "nginx-common"],
                               capture_output=True, text=True, check=True).stdout
    recorded = {line.split()[0]: line.split()[1] for line in conffiles.splitlines() if line.strip()}
    data = open(path, "rb").read()
    assert hashlib.md5(data).hexdigest() == recorded[path], f"{path} is not Debian's stock file"
    return data.decode()


def test_install_layout_and_stock_debian_nginx(redis_server, keys):
    root = h.make_temp_dir("tronch-install-")
    install(root)

    so = root / "usr/lib/nginx/modules/ngx_http_tronch_module.so"
    assert so.read_bytes() == h.MODULE_SO.read_bytes()
    available = root / ETC / "modules-available/mod-http-tronch.conf"
    assert available.read_text().strip() == "load_module modules/ngx_http_tronch_module.so;"
    enabled = root / ETC / "modules-enabled/50-mod-http-tronch.conf"
    assert enabled.is_symlink() and os.readlink(enabled) == "../modules-available/mod-http-tronch.conf"
    conf = root / ETC / "conf.d/tronch.conf"
    assert conf.read_text() == (h.SOURCE_DIR / "nginx_conf/tronch.conf").read_text()
    for tool in ("tronchd", "tronchctl"):
        assert os.access(root / "usr/bin" / tool, os.X_OK), tool
    assert (root / "usr/share/doc/tronch/tronch-api-site.conf").is_file()

    # Debian's nginx layout around the installed files. nginx.conf: absolute paths rewritten only.
    nginx_conf = stock_conffile("nginx.conf")
    for old, new in (("/etc/nginx/", f"{root}/etc/nginx/"), ("/var/log/nginx/", f"{root}/var/log/nginx/"),
                     ("/run/nginx.pid", f"{root}/run/nginx.pid")):
        assert old in nginx_conf
        nginx_conf = nginx_conf.replace(old, new)
    (root / ETC / "nginx.conf").write_text(nginx_conf)
    (root / ETC / "mime.types").write_text(stock_conffile("mime.types"))
    for d in ("var/log/nginx", "run", ETC + "/sites-enabled", "usr/share/nginx"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "usr/share/nginx/modules").symlink_to("../../lib/nginx/modules")  # as Debian ships it

    # The operator's edits: Redis's address in conf.d/tronch.conf, ports in the example site.
    conf.write_text(conf.read_text().replace("tronch_redis 127.0.0.1:6379;",
                                             f"tronch_redis 127.0.0.1:{redis_server.port};"))
    port, backend = h.free_port(), h.free_port()
    site = (h.SOURCE_DIR / "nginx_conf/tronch-api-site.conf").read_text()
    # the guide shows this very example (everything after the file's comment header)
    assert site[site.index("upstream "):] in (h.SOURCE_DIR / "docs/operator-guide.md").read_text()
    assert "listen 80;" in site and "server 127.0.0.1:8080;" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(
        "server 127.0.0.1:8080;", f"server 127.0.0.1:{backend};")
    (root / ETC / "sites-enabled/tronch-api").write_text(site)
    (root / ETC / "sites-enabled/backend").write_text(
        f"server {{ listen 127.0.0.1:{backend}; location / {{ return 200 'key_id=$http_x_tronch_key_id "
        f"auth=$http_authorization'; }} }}\n")

    args = ["/usr/sbin/nginx", "-p", f"{root}/usr/share/nginx", "-e", f"{root}/var/log/nginx/error.log",
            "-c", f"{root}/{ETC}/nginx.conf"]
    t = subprocess.run([*args, "-t"], capture_output=True, text=True)
    assert t.returncode == 0, t.stderr
    proc = subprocess.Popen([*args, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_for_port(port, proc=proc)
        key, _, key_id = keys.make()
        ok = requests.get(f"http://127.0.0.1:{port}/api/things", headers=bearer(key), timeout=5)
        assert (ok.status_code, ok.text) == (200, f"key_id={key_id} auth="), ok.text
        no_key = requests.get(f"http://127.0.0.1:{port}/api/things", timeout=5)
        assert no_key.status_code == 401 and problem(no_key)["code"] == "missing_key"
        status = requests.get(f"http://127.0.0.1:{port}/tronch_status", timeout=5)
        assert status.status_code == 200 and "tronch_requests_total" in status.text
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=15)
    log = (root / "var/log/nginx/error.log").read_text(errors="replace")
    assert not [l for l in log.splitlines() if h.Nginx.ALERT.search(l)], log
    shutil.rmtree(root, ignore_errors=True)
