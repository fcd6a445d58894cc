#!/bin/sh
# render_acl.sh <gateway password file> <tronchd password file> [template] > users.acl
# Writes the ACL users of users.acl.in with each password as its SHA-256 (#<hex>): the
# rendered file holds no plaintext password. A password file holds the password on its first
# line (a trailing newline is ignored), as the module's tronch_redis_auth reads it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 <gateway password file> <tronchd password file> [template]" >&2; exit 2; }
hash() { head -n 1 "$1" | tr -d '\r\n' | sha256sum | cut -d' ' -f1; }
gw=$(hash "$1")
cp=$(hash "$2")
sed -e "s/@GATEWAY_SHA256@/$gw/" -e "s/@TRONCHD_SHA256@/$cp/" "${3:-$here/users.acl.in}" | grep -v '^#'
