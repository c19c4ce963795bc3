"""AMQP over TLS (amqps) with pika and Python's ssl module.

These run only when the broker under test has a TLS listener, described by:
  AMQPS_URL            e.g. amqps://guest:guest@localhost:5671/
  AMQPS_CA_FILE        PEM CA that signed the broker's certificate
  AMQPS_CLIENT_CERT,   optional: a client certificate (and key) signed by a CA the
  AMQPS_CLIENT_KEY     broker trusts
  AMQPS_VERIFY_PEER=1  optional: the broker verifies client certificates
                       (verify_peer), so an untrusted one is refused
.ci/test sets them for the Warren it starts (certificates from make_certs.sh);
without them every test here is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import struct
import subprocess
import urllib.parse

import pika
import pytest

from helpers import WAIT

AMQPS_URL = os.environ.get("AMQPS_URL")
CA_FILE = os.environ.get("AMQPS_CA_FILE")
CLIENT_CERT = os.environ.get("AMQPS_CLIENT_CERT")
CLIENT_KEY = os.environ.get("AMQPS_CLIENT_KEY")

pytestmark = pytest.mark.skipif(
    not (AMQPS_URL and CA_FILE), reason="no TLS listener (AMQPS_URL, AMQPS_CA_FILE unset)"
)

VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _context(version=None, cert=None, key=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=CA_FILE)
    if version is not None:
        ctx.minimum_version = VERSIONS[version]
        ctx.maximum_version = VERSIONS[version]
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def _host_port():
    u = urllib.parse.urlparse(AMQPS_URL)
    return u.hostname, u.port or 5671


def _params(ctx: ssl.SSLContext) -> pika.URLParameters:
    params = pika.URLParameters(AMQPS_URL)
    host, _ = _host_port()
    params.ssl_options = pika.SSLOptions(ctx, server_hostname=host)
    params.connection_attempts = 1
    params.socket_timeout = WAIT
    params.blocked_connection_timeout = WAIT
    params.stack_timeout = WAIT * 2
    return params


def _recv_exact(sock, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        out += chunk
    return out


def _raw_start(ctx: ssl.SSLContext):
    """TLS handshake, AMQP header, connection.start: (TLS version, mechanisms)."""
    host, port = _host_port()
    with socket.create_connection((host, port), timeout=WAIT) as tcp:
        with ctx.wrap_socket(tcp, server_hostname=host) as tls:
            version = tls.version()
            tls.sendall(b"AMQP\x00\x00\x09\x01")
            kind, channel, size = struct.unpack(">BHI", _recv_exact(tls, 7))
            payload = _recv_exact(tls, size + 1)[:-1]
            assert (kind, channel) == (1, 0)
            assert struct.unpack(">HH", payload[:4]) == (10, 10), "connection.start"
            at = 6
            (props_len,) = struct.unpack(">I", payload[at:at + 4])
            at += 4 + props_len
            (mech_len,) = struct.unpack(">I", payload[at:at + 4])
            mechanisms = payload[at + 4:at + 4 + mech_len].decode()
            return version, mechanisms.split()


def _round_trip(conn: pika.BlockingConnection, body: bytes) -> None:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, body)
    for method, _props, got in ch.consume(q, auto_ack=True, inactivity_timeout=WAIT):
        assert method is not None, "no delivery over TLS"
        assert got == body
        break
    ch.cancel()


def test_publish_and_consume_over_tls():
    conn = pika.BlockingConnection(_params(_context()))
    try:
        _round_trip(conn, b"over TLS")
        _round_trip(conn, b"x" * 100_000)
    finally:
        conn.close()


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_tls_version_negotiates(version):
    got, mechanisms = _raw_start(_context(version))
    assert got == version
    assert "PLAIN" in mechanisms
    conn = pika.BlockingConnection(_params(_context(version)))
    try:
        _round_trip(conn, version.encode())
    finally:
        conn.close()


def test_client_certificate_is_accepted():
    if not (CLIENT_CERT and CLIENT_KEY):
        pytest.skip("no client certificate (AMQPS_CLIENT_CERT, AMQPS_CLIENT_KEY unset)")
    ctx = _context(cert=CLIENT_CERT, key=CLIENT_KEY)
    _, mechanisms = _raw_start(ctx)
    assert "PLAIN" in mechanisms
    conn = pika.BlockingConnection(_params(ctx))
    try:
        _round_trip(conn, b"with a client certificate")
    finally:
        conn.close()


def test_untrusted_client_certificate_is_refused(tmp_path):
    if os.environ.get("AMQPS_VERIFY_PEER") != "1":
        pytest.skip("the broker does not verify client certificates (AMQPS_VERIFY_PEER unset)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "rogue.pem", tmp_path / "rogue.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=rogue", "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "extendedKeyUsage=clientAuth", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    for version in sorted(VERSIONS):
        # TLS 1.2 fails in the handshake; TLS 1.3 sends the client certificate after
        # the client's side of the handshake, so the refusal arrives on the first read.
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _raw_start(_context(version, cert=str(cert), key=str(key)))
