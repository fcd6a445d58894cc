"""Production-shaped Redis for tests (issue 11): TLS with certificates made here by the openssl
CLI, the ACL users of shared/redis-acl/users.acl.in, and a Sentinel set (master, replica, three
sentinels). Everything on 127.0.0.1, free ports, temp dirs (tronch_harness.make_temp_dir), stopped
by stop(); nothing started by hand.

    pki = make_pki()                                   # CA, server cert (127.0.0.1, localhost), client cert
    users = AclUsers()                                 # passwords + rendered ACL file + password files
    srv = TlsRedis(pki, users).start()                 # TLS only (port 0), default user off
    srv.client()                                       # python3-redis as the test admin (all rights)
    srv.client(user="tronch-gateway")                  # ... as the gateway
    sset = SentinelSet(users).start()                  # plain TCP; SentinelSet(users, pki=pki) for TLS
    sset.master_port(); sset.sentinel_addrs(); sset.kill_master(); sset.wait_new_master(old)
"""
from __future__ import annotations

import pathlib
import secrets
import subprocess
import time

import tronch_harness as h

ACL_TEMPLATE = h.SOURCE_DIR / "shared" / "redis-acl" / "users.acl.in"
GATEWAY_USER = "tronch-gateway"
TRONCHD_USER = "tronchd"
ADMIN_USER = "tronch-test-admin"   # tests only: writes records, flushes; replicas and sentinels use it
MASTER_NAME = "tronch-master"


# --- certificates ---------------------------------------------------------------------------

class Pki:
    """Paths of one CA and the certificates it signed (PEM)."""

    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.ca_cert = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.server_cert = directory / "server.crt"
        self.server_key = directory / "server.key"
        self.client_cert = directory / "client.crt"
        self.client_key = directory / "client.key"


def _openssl(*args: str) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr}")


def _sign(pki: Pki, name: str, cn: str, ext: str) -> None:
    key, csr, crt = pki.dir / f"{name}.key", pki.dir / f"{name}.csr", pki.dir / f"{name}.crt"
    extfile = pki.dir / f"{name}.ext"
    extfile.write_text(ext)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
             "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(extfile), "-out", str(crt))
    for p in (key, crt):
        p.chmod(0o644)   # tests only: nginx's master reads them, redis may run as another user


def make_pki(directory: pathlib.Path | None = None, ca_name: str = "Tronch test CA",
             server_names: tuple[str, ...] = ("localhost",), server_ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A fresh CA, a server certificate (SAN: server_names and server_ips) and a client
    certificate, all signed by it. Call twice for a second, unrelated CA (the "wrong CA")."""
    pki = Pki(directory or h.make_temp_dir("tronch-pki-"))
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(pki.ca_key), "-out", str(pki.ca_cert), "-days", "2", "-subj", f"/CN={ca_name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    pki.ca_cert.chmod(0o644)
    san = ",".join([f"DNS:{n}" for n in server_names] + [f"IP:{a}" for a in server_ips])
    _sign(pki, "server", server_names[0] if server_names else server_ips[0],
          f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    _sign(pki, "client", "tronch-gateway",
          "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    return pki


# --- ACL users ------------------------------------------------------------------------------

class AclUsers:
    """Random passwords for the users of users.acl.in (plus the test admin), the rendered ACL file
    (passwords as #sha256 only) and one password file per user, as tronch_redis_auth reads them."""

    def __init__(self, directory: pathlib.Path | None = None):
        import hashlib
        self.dir = directory or h.make_temp_dir("tronch-acl-")
        self.passwords = {u: secrets.token_hex(16) for u in (GATEWAY_USER, TRONCHD_USER, ADMIN_USER)}
        sha = {u: hashlib.sha256(p.encode()).hexdigest() for u, p in self.passwords.items()}
        text = (ACL_TEMPLATE.read_text().replace("@GATEWAY_SHA256@", sha[GATEWAY_USER])
                .replace("@TRONCHD_SHA256@", sha[TRONCHD_USER]))
        lines = [l for l in text.splitlines() if l and not l.startswith("#")]
        lines.append(f"user {ADMIN_USER} on #{sha[ADMIN_USER]} ~* &* +@all")
        self.acl_file = self.dir / "users.acl"
        self.acl_file.write_text("\n".join(lines) + "\n")
        self.acl_file.chmod(0o644)

    def password(self, user: str) -> str:
        return self.passwords[user]

    def password_file(self, user: str, password: str | None = None) -> pathlib.Path:
        """A file holding the user's password (or `password`, e.g. a wrong one) and a newline."""
        path = self.dir / (f"{user}-{secrets.token_hex(4)}.password" if password is not None else f"{user}.password")
        path.write_text((password if password is not None else self.passwords[user]) + "\n")
        path.chmod(0o644)
        return path


# --- one redis-server -----------------------------------------------------------------------

def _tls_args(pki: Pki, auth_clients: bool) -> list[str]:
    return ["--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
            "--tls-ca-cert-file", str(pki.ca_cert), "--tls-auth-clients", "yes" if auth_clients else "no"]


class TlsRedis(h.Redis):
    """redis-server with TLS on `port` (no plain port unless plain=True: then `plain_port`), ACL
    users from `users`, optionally requiring client certificates."""

    def __init__(self, pki: Pki, users: AclUsers, *, plain: bool = False, auth_clients: bool = False,
                 extra_args: tuple[str, ...] = ()):
        super().__init__()
        self.pki = pki
        self.users = users
        self.plain_port = h.free_port() if plain else 0
        self.auth_clients = auth_clients
        self.extra_args = list(extra_args)

    def args(self) -> list[str]:
        return ["redis-server", "--port", str(self.plain_port), "--tls-port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"), "--aclfile", str(self.users.acl_file),
                *_tls_args(self.pki, self.auth_clients), *self.extra_args]

    def start(self) -> "TlsRedis":
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        h.wait_for_port(self.port, proc=self.proc)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, user: str = ADMIN_USER, password: str | None = None):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, username=user,
                           password=password if password is not None else self.users.password(user),
                           ssl=True, ssl_ca_certs=str(self.pki.ca_cert),
                           ssl_certfile=str(self.pki.client_cert), ssl_keyfile=str(self.pki.client_key),
                           decode_responses=True)


# --- Sentinel -------------------------------------------------------------------------------

class _Node:
    def __init__(self, args: list[str], port: int, directory: pathlib.Path):
        self.args, self.port, self.dir = args, port, directory
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        h.wait_for_port(self.port, proc=self.proc)

    def stop(self, sig=None) -> None:
        import signal as _signal
        h._stop(self.proc, sig or _signal.SIGTERM)
        self.proc = None


class SentinelSet:
    """One master, one replica, three sentinels (quorum 2) watching MASTER_NAME, with a short
    down-after (down_after_ms) and failover timeout. ACL users from `users` on the data nodes (the
    replica and the sentinels authenticate as ADMIN_USER); the sentinels themselves have no password.
    With `pki`, every node (sentinels too) speaks TLS only, with tls-replication."""

    def __init__(self, users: AclUsers, pki: Pki | None = None, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000, sentinel_password: str | None = None):
        self.users = users
        self.sentinel_password = sentinel_password   # requirepass on the sentinels (user "default")
        self.pki = pki
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.dir = h.make_temp_dir("tronch-sentinel-")
        self.data: list[_Node] = []
        self.sentinels: list[_Node] = []

    def _port_args(self, port: int) -> list[str]:
        if self.pki is None:
            return ["--port", str(port)]
        return ["--port", "0", "--tls-port", str(port), *_tls_args(self.pki, False), "--tls-replication", "yes"]

    def _data_node(self, name: str, replica_of: int | None) -> _Node:
        port = h.free_port()
        d = self.dir / name
        d.mkdir()
        args = ["redis-server", *self._port_args(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(d), "--logfile", str(d / "redis.log"),
                "--aclfile", str(self.users.acl_file),
                "--masteruser", ADMIN_USER, "--masterauth", self.users.password(ADMIN_USER)]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        return _Node(args, port, d)

    def _sentinel(self, i: int, master_port: int) -> _Node:
        port = h.free_port()
        d = self.dir / f"sentinel{i}"
        d.mkdir()
        conf = d / "sentinel.conf"
        lines = [f"bind 127.0.0.1", f"dir {d}", f"logfile {d / 'sentinel.log'}",
                 f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
                 f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                 f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
                 f"sentinel parallel-syncs {MASTER_NAME} 1",
                 f"sentinel auth-user {MASTER_NAME} {ADMIN_USER}",
                 f"sentinel auth-pass {MASTER_NAME} {self.users.password(ADMIN_USER)}"]
        if self.sentinel_password:
            lines += [f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
        if self.pki is None:
            lines.insert(0, f"port {port}")
        else:
            lines[:0] = ["port 0", f"tls-port {port}", f"tls-cert-file {self.pki.server_cert}",
                         f"tls-key-file {self.pki.server_key}", f"tls-ca-cert-file {self.pki.ca_cert}",
                         "tls-auth-clients no", "tls-replication yes"]
        conf.write_text("\n".join(lines) + "\n")
        return _Node(["redis-sentinel", str(conf)], port, d)

    def start(self) -> "SentinelSet":
        master = self._data_node("master", None)
        master.start()
        replica = self._data_node("replica", master.port)
        replica.start()
        self.data = [master, replica]
        self._wait(lambda: self._data_client(replica.port).info("replication").get("master_link_status") == "up",
                   "the replica to sync")
        for i in range(3):
            s = self._sentinel(i, master.port)
            s.start()
            self.sentinels.append(s)
        self._wait(lambda: all(self.sentinel_client(s.port).sentinel_master(MASTER_NAME).get("num-other-sentinels") == 2
                               and self.sentinel_client(s.port).sentinel_master(MASTER_NAME).get("num-slaves") == 1
                               for s in self.sentinels), "the sentinels to see each other and the replica")
        return self

    def stop(self) -> None:
        for n in self.sentinels + self.data:
            n.stop()

    @staticmethod
    def _wait(cond, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except Exception as e:  # a node still starting
                last = e
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout}s for {what} (last error: {last})")

    def _ssl(self) -> dict:
        if self.pki is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(self.pki.ca_cert)}

    def _data_client(self, port: int, user: str = ADMIN_USER):
        import redis
        return redis.Redis(host="127.0.0.1", port=port, username=user, password=self.users.password(user),
                           decode_responses=True, socket_timeout=2, **self._ssl())

    def sentinel_client(self, port: int):
        import redis
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2,
                           password=self.sentinel_password, **self._ssl())

    def sentinel_addrs(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    def master_port(self) -> int:
        """The master's port as the sentinels (the first that answers) see it."""
        for s in self.sentinels:
            try:
                host, port = self.sentinel_client(s.port).sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(port)
            except Exception:
                continue
        raise RuntimeError("no sentinel answers")

    def client(self, user: str = ADMIN_USER):
        """A client of the current master."""
        return self._data_client(self.master_port(), user)

    def kill_master(self) -> int:
        """kill -9 of the current master; returns its port."""
        import signal as _signal
        port = self.master_port()
        for n in self.data:
            if n.port == port:
                n.proc.send_signal(_signal.SIGKILL)
                n.proc.wait()
                n.proc = None
                return port
        raise RuntimeError(f"the master {port} is not one of ours")

    def wait_new_master(self, old_port: int, timeout: float = 60.0) -> int:
        """Waits until every sentinel names a master other than old_port and it answers as master."""
        def done():
            ports = {int(self.sentinel_client(s.port).sentinel_get_master_addr_by_name(MASTER_NAME)[1])
                     for s in self.sentinels}
            return (len(ports) == 1 and old_port not in ports
                    and self._data_client(ports.pop()).execute_command("ROLE")[0] == "master")
        self._wait(done, "the fail-over", timeout)
        return self.master_port()
