#!/usr/bin/env bash
# Makes a test PKI for the amqps tests with openssl, into DIR (created if missing):
#   ca.pem                        a CA
#   server.pem, server.key        a server certificate for localhost and 127.0.0.1
#   client.pem, client.key        a client certificate, CN "interop-client"
# Keys are unencrypted and made fresh each time: never commit them.
#   interop/make_certs.sh DIR
set -euo pipefail
dir="$1"
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@"; exit 1; }; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Warren interop CA" \
    -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name, subject, extensions
    quiet openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr"
    printf '%s\n' "$3" >"$1.ext"
    quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem"
    rm -f "$1.csr" "$1.ext"
}
leaf server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
leaf client "/CN=interop-client" "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
rm -f ca.key ca.srl
