"""The built .so neither lends nor borrows symbols beyond nginx's dynamic-module ABI.

nginx dlopens modules RTLD_GLOBAL: an exported symbol can bind another module's references,
and an unversioned reference can bind another module's definition (nchan exports hiredis 1.x).
So: exports are exactly what load_module dlsyms; imports are nginx's own ngx_* functions (and
data) or *versioned* references to the system's libc/libm/libgcc_s/libstdc++/libssl/libcrypto/libz,
which the dynamic linker only binds to a definition carrying that version."""
from __future__ import annotations

import re
import subprocess

import tronch_harness as h

EXPORTS_REQUIRED = {"ngx_modules", "ngx_module_names"}
EXPORTS_ALLOWED = EXPORTS_REQUIRED | {"ngx_module_order"}
# symbol version tags of the libraries allowed as ordinary shared dependencies
VERSIONS = re.compile(r"^(GLIBC_2\.[0-9.]+|GLIBCXX_3\.4(\.[0-9]+)?|CXXABI_1\.3(\.[0-9]+)?|GCC_[0-9.]+"
                      r"|OPENSSL_3\.[0-9.]+|ZLIB_1\.[0-9.]+)$")
WEAK_TOOLCHAIN = {"_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable", "__gmon_start__"}
NEEDED_ALLOWED = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6", "libssl.so.3", "libcrypto.so.3", "libz.so.1"}
FORBIDDEN = re.compile(r"redis|sds|tronch", re.IGNORECASE)


def nm(*args: str, path=h.MODULE_SO) -> list[tuple[str, str]]:
    """(type letter, name[@version]) for each dynamic symbol."""
    out = subprocess.run(["nm", "-D", *args, str(path)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        rows.append((parts[-2], parts[-1]))
    return rows


def test_exports_only_what_load_module_looks_up():
    names = {name for _, name in nm("--defined-only")}
    assert EXPORTS_REQUIRED <= names <= EXPORTS_ALLOWED, sorted(names - EXPORTS_ALLOWED)


def test_imports_only_nginx_and_versioned_system_symbols():
    nginx_exports = {name for _, name in nm("--defined-only", path=h.NGINX_BIN)}
    bad = []
    for kind, sym in nm("--undefined-only"):
        name, _, version = sym.partition("@")
        if FORBIDDEN.search(name):
            bad.append(f"{sym}: Redis client or Tronch code must be inside the .so")
        elif version:
            if not VERSIONS.match(version):
                bad.append(f"{sym}: not a libc/libstdc++/libssl/libcrypto/libz version")
        elif name.startswith("ngx_"):
            if name not in nginx_exports:
                bad.append(f"{sym}: nginx does not export it")
        elif not (kind == "w" and name in WEAK_TOOLCHAIN):
            bad.append(f"{sym}: unversioned, could bind any module's definition")
    assert not bad, "\n".join(bad)


def test_shared_dependencies_are_the_system_libraries():
    out = subprocess.run(["readelf", "-d", str(h.MODULE_SO)], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    assert needed <= NEEDED_ALLOWED, sorted(needed - NEEDED_ALLOWED)
    assert "libhiredis" not in out
