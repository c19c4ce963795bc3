"""Connection-level behaviour: handshake, auth, tuning, vhosts, close."""

import socket
import struct
import time

import pika
import pika.data as data
import pika.exceptions as exc
import pika.frame
import pika.spec as spec
import pytest

from amqp_raw import ConnectionDropped
from helpers import WAIT, declare_queue, get_message

CAPABILITIES = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
    "consumer_priorities",
]


def _url_with(amqp_url, user=None, password=None, vhost=None):
    params = pika.URLParameters(amqp_url)
    creds = params.credentials
    user = user if user is not None else creds.username
    password = password if password is not None else creds.password
    vhost = vhost if vhost is not None else params.virtual_host
    return pika.ConnectionParameters(
        host=params.host, port=params.port, virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1, socket_timeout=WAIT, stack_timeout=WAIT * 2)


def test_connect_plain_and_use(connection):
    assert connection.is_open
    ch = connection.channel()
    q = declare_queue(ch)
    ch.basic_publish("", q, b"hello")
    method, _, body = get_message(ch, q, auto_ack=True)
    assert body == b"hello"


def test_wrong_password_is_authentication_error(amqp_url):
    with pytest.raises((exc.ProbableAuthenticationError, exc.AuthenticationError)) as info:
        pika.BlockingConnection(_url_with(amqp_url, password="definitely-wrong"))
    # pika announces authentication_failure_close, so the broker explains itself
    assert "403" in str(info.value)
    assert "ACCESS_REFUSED" in str(info.value)


def test_unknown_user_is_authentication_error(amqp_url):
    with pytest.raises((exc.ProbableAuthenticationError, exc.AuthenticationError)):
        pika.BlockingConnection(_url_with(amqp_url, user="no-such-user-interop", password="x"))


def test_wrong_password_raw_close_403(raw):
    r = raw()
    r.send(pika.frame.ProtocolHeader())
    r.expect(spec.Connection.Start)
    user = r.user.encode()
    r.send_method(0, spec.Connection.StartOk(
        client_properties={"capabilities": {"authentication_failure_close": True}},
        mechanism="PLAIN", response=b"\0" + user + b"\0wrong-password", locale="en_US"))
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 403
    assert close.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile.")


def _start_ok(r, mechanism, response, capabilities=None):
    r.send(pika.frame.ProtocolHeader())
    r.expect(spec.Connection.Start)
    r.send_method(0, spec.Connection.StartOk(
        client_properties={"capabilities": capabilities or {}},
        mechanism=mechanism, response=response, locale="en_US"))


def test_silent_handshake_failures_drop_socket(raw):
    """Handshake failures that RabbitMQ answers by closing the TCP socket without a
    Connection.Close frame (after its ~3 s 'silent close' delay):
    - wrong password when the client did NOT announce authentication_failure_close
    - an unknown SASL mechanism
    - tune-ok with frame_max below the 4096 minimum
    - tune-ok with frame_max above what the server proposed
    All four run concurrently so the test pays the delay once."""
    bad_pw = raw()
    _start_ok(bad_pw, "PLAIN", b"\0" + bad_pw.user.encode() + b"\0wrong-password")
    bad_mech = raw()
    _start_ok(bad_mech, "NOPE", b"x")
    small = raw().handshake(frame_max=1024, open_connection=False)
    small.send_method(0, spec.Connection.Open(virtual_host=small.vhost))
    big = raw().handshake(frame_max=10 * 1024 * 1024, open_connection=False)
    big.send_method(0, spec.Connection.Open(virtual_host=big.vhost))
    for name, r in [("bad password", bad_pw), ("bad mechanism", bad_mech),
                    ("frame_max too small", small), ("frame_max too big", big)]:
        with pytest.raises(ConnectionDropped):
            r.recv_frame(timeout=WAIT)
            pytest.fail(f"{name}: broker sent a frame instead of dropping")


def test_amqplain_mechanism(raw):
    r = raw()
    r.send(pika.frame.ProtocolHeader())
    r.expect(spec.Connection.Start)
    pieces = []
    data.encode_table(pieces, {"LOGIN": r.user, "PASSWORD": r.password})
    response = b"".join(pieces)[4:]  # AMQPLAIN: table without its length prefix
    r.send_method(0, spec.Connection.StartOk(client_properties={}, mechanism="AMQPLAIN",
                                             response=response, locale="en_US"))
    r.expect(spec.Connection.Tune)


def test_connection_start_fields(raw):
    r = raw()
    r.send(pika.frame.ProtocolHeader())
    _, start = r.expect(spec.Connection.Start)
    assert (start.version_major, start.version_minor) == (0, 9)
    mechanisms = start.mechanisms.split()
    assert b"PLAIN" in mechanisms
    assert b"AMQPLAIN" in mechanisms
    assert b"en_US" in start.locales.split()


def test_server_properties(connection):
    props = connection._impl.server_properties
    for key in ("product", "version", "platform", "copyright", "information"):
        assert key in props, key
        assert isinstance(props[key], (str, bytes)) and props[key], key
    # Clients tell the broker by product and version (amqplib's suite asserts "RabbitMQ").
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in props.items()}
    assert text["product"] == "RabbitMQ"
    assert text["version"].startswith("3.")
    assert "cluster_name" in props
    caps = props["capabilities"]
    assert isinstance(caps, dict)
    for cap in CAPABILITIES:
        assert caps.get(cap) is True, cap
    assert connection.publisher_confirms_supported
    assert connection.basic_nack_supported
    assert connection.consumer_cancel_notify_supported
    assert connection.exchange_exchange_bindings_supported


def test_server_tune_defaults(raw):
    """RabbitMQ proposes channel_max 2047, frame_max 131072, heartbeat 60."""
    r = raw().handshake()
    assert r.tune.channel_max == 2047
    assert r.tune.frame_max == 131072
    assert r.tune.heartbeat == 60


def test_tune_negotiation_lower_values(connect):
    seen = {}

    def heartbeat(conn, server_value):
        seen["server"] = server_value
        return 7

    conn = connect(frame_max=8192, channel_max=10, heartbeat=heartbeat)
    params = conn._impl.params
    assert params.frame_max == 8192
    assert params.channel_max == 10
    assert params.heartbeat == 7
    assert seen["server"] == 60
    # the negotiated connection works, including multi-frame bodies
    ch = conn.channel()
    q = declare_queue(ch)
    body = bytes(range(256)) * 100  # 25600 bytes > frame_max
    ch.basic_publish("", q, body)
    _, _, got = get_message(ch, q, auto_ack=True)
    assert got == body
    # all 10 negotiated channels can be opened (one already is)
    chans = [conn.channel() for _ in range(9)]
    assert all(c.is_open for c in chans)


def test_broker_respects_negotiated_frame_max(raw):
    """With frame_max 4096 negotiated, every frame the broker sends fits in 4096
    bytes (7 header + payload + frame-end), so a 20000-byte body arrives split."""
    r = raw().handshake(frame_max=4096)
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    _, ok = r.expect(spec.Queue.DeclareOk)
    body = bytes(range(250)) * 80  # 20000 bytes
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key=ok.queue), body,
                   frame_max=4096)
    r.send_method(1, spec.Basic.Get(queue=ok.queue, no_ack=True))
    r.expect(spec.Basic.GetOk)
    got = b""
    sizes = []
    while len(got) < len(body):
        while len(r.buf) < 7 or len(r.buf) < 8 + struct.unpack(">I", r.buf[3:7])[0]:
            r.buf += r.sock.recv(65536)
        size = struct.unpack(">I", r.buf[3:7])[0]
        sizes.append(size + 8)
        frame = r.recv_frame()
        if isinstance(frame, pika.frame.Body):
            got += frame.fragment
    assert got == body
    assert max(sizes) <= 4096
    assert len(sizes) >= 1 + 5  # header + at least 5 body frames


def test_frame_larger_than_frame_max_is_501(raw):
    r = raw().handshake(frame_max=8192)
    r.open_channel(1)
    # a single 20000-byte body frame on a connection negotiated at 8192
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="nowhere"),
                   body=b"a" * 20000, frame_max=20000)
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR")
    assert "frame_too_large" in close.reply_text


def test_frame_error_close_ok_still_deliverable(raw):
    """After a framing error the broker keeps reading (and discarding) until the client
    closes: the client's close-ok is not met by a connection reset."""
    r = raw().handshake(frame_max=8192)
    r.open_channel(1)
    r.send_content(1, spec.Basic.Publish(exchange="", routing_key="nowhere"),
                   body=b"a" * 20000, frame_max=20000)
    r.expect(spec.Connection.Close)
    time.sleep(0.3)
    r.send_method(0, spec.Connection.CloseOk())  # must not raise (EPIPE / ECONNRESET)
    time.sleep(0.1)
    r.send_method(0, spec.Connection.CloseOk())

def test_channel_max_exceeded_is_530(raw):
    r = raw().handshake(channel_max=10, frame_max=8192)
    for n in range(1, 11):
        r.open_channel(n)
    r.send_method(11, spec.Channel.Open())
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 530
    assert close.reply_text == (
        "NOT_ALLOWED - number of channels opened (10) has reached the "
        "negotiated channel_max (10)")
    assert (close.class_id, close.method_id) == (0, 0)


def test_channel_max_counts_channels_not_numbers(raw):
    """RabbitMQ 3.10 only limits the number of open channels: a channel *number*
    above channel_max opens fine while fewer than channel_max are open."""
    r = raw().handshake(channel_max=10, frame_max=8192)
    r.send_method(11, spec.Channel.Open())
    ch, _ = r.expect(spec.Channel.OpenOk)
    assert ch == 11


def test_pika_channel_max_enforced(connect):
    conn = connect(channel_max=3)
    for _ in range(3):
        conn.channel()
    with pytest.raises(exc.NoFreeChannels):
        conn.channel()


def test_unknown_vhost_530(amqp_url):
    with pytest.raises(exc.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(_url_with(amqp_url, vhost="no-such-vhost-interop"))
    assert "530" in str(info.value)
    assert "NOT_ALLOWED - vhost no-such-vhost-interop not found" in str(info.value)


def test_unknown_vhost_raw_close(raw):
    r = raw().handshake(open_connection=False)
    r.send_method(0, spec.Connection.Open(virtual_host="no-such-vhost-interop"))
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 530
    assert close.reply_text == "NOT_ALLOWED - vhost no-such-vhost-interop not found"
    assert (close.class_id, close.method_id) == (10, 40)


def test_heartbeats_sent_by_server(raw):
    r = raw().handshake(heartbeat=1)
    r.sock.settimeout(3)
    deadline = time.monotonic() + 3
    data = b""
    while time.monotonic() < deadline and b"\x08\x00\x00\x00\x00\x00\x00\xce" not in data:
        chunk = r.sock.recv(1024)
        if not chunk:
            break
        data += chunk
    assert b"\x08\x00\x00\x00\x00\x00\x00\xce" in data


def test_missed_client_heartbeats_close_connection(raw):
    """heartbeat=1 and a silent client: the broker drops the socket within a few seconds."""
    r = raw().handshake(heartbeat=1)
    start = time.monotonic()
    r.sock.settimeout(6)
    closed = False
    try:
        while time.monotonic() - start < 6:
            if not r.sock.recv(1024):
                closed = True
                break
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    except socket.timeout:
        pass
    assert closed
    assert time.monotonic() - start < 5.5


def test_protocol_header_mismatch(amqp_url):
    params = pika.URLParameters(amqp_url)
    with socket.create_connection((params.host, params.port), timeout=WAIT) as s:
        s.sendall(b"AMQP\x01\x01\x00\x0a")  # AMQP 0-10 header
        reply = s.recv(8)
        assert reply == b"AMQP\x00\x00\x09\x01"
        s.settimeout(WAIT)
        try:
            assert s.recv(8) == b""  # then closes
        except ConnectionResetError:
            pass


def test_garbage_instead_of_header(amqp_url):
    params = pika.URLParameters(amqp_url)
    with socket.create_connection((params.host, params.port), timeout=WAIT) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert s.recv(8) == b"AMQP\x00\x00\x09\x01"


def test_connection_close_clean(connect):
    conn = connect()
    ch = conn.channel()
    conn.close()
    assert conn.is_closed
    assert ch.is_closed


def test_connection_close_raw_close_ok(raw):
    r = raw().handshake()
    r.open_channel(1)
    r.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    ch, _ = r.expect(spec.Connection.CloseOk)
    assert ch == 0
    # NB: RabbitMQ does not close the socket itself after close-ok (the client does)


def test_many_connections(connect):
    conns = [connect() for _ in range(10)]
    for c in conns:
        c.channel().queue_declare("", exclusive=True)
    assert all(c.is_open for c in conns)


HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"


def test_heartbeats_accepted_during_handshake(raw):
    """Heartbeat frames before start-ok and before tune-ok are ignored, not fatal."""
    r = raw()
    r.send(pika.frame.ProtocolHeader())
    r.expect(spec.Connection.Start)
    r.send_raw(HEARTBEAT_FRAME)
    r.send_method(0, spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN",
        response=b"\0" + r.user.encode() + b"\0" + r.password.encode(), locale="en_US"))
    _, tune = r.expect(spec.Connection.Tune)
    r.send_raw(HEARTBEAT_FRAME)
    r.send_method(0, spec.Connection.TuneOk(channel_max=tune.channel_max,
                                            frame_max=tune.frame_max, heartbeat=0))
    r.send_raw(HEARTBEAT_FRAME)
    r.send_method(0, spec.Connection.Open(virtual_host=r.vhost))
    r.expect(spec.Connection.OpenOk)


def test_tune_ok_unlimited_or_too_high_limits_drop_socket(raw):
    """RabbitMQ refuses a tune-ok whose channel_max or frame_max is 0 ('no limit') or
    above the server's proposal: the socket is closed without a connection.close."""
    conns = []
    for name, kw in [("channel_max=0", dict(channel_max=0)),
                     ("channel_max too big", dict(channel_max=5000)),
                     ("frame_max=0", dict(frame_max=0))]:
        r = raw().handshake(open_connection=False, **kw)
        r.send_method(0, spec.Connection.Open(virtual_host=r.vhost))
        conns.append((name, r))
    for name, r in conns:
        with pytest.raises(ConnectionDropped):
            r.recv_frame(timeout=WAIT)
            pytest.fail(f"{name}: broker sent a frame instead of dropping")


def test_close_after_tune_ok_before_open_is_504(raw):
    r = raw().handshake(open_connection=False)
    r.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye",
                                           class_id=0, method_id=0))
    ch, close = r.expect(spec.Connection.Close)
    assert ch == 0
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - unexpected method in connection state opening"
    assert (close.class_id, close.method_id) == (10, 50)


@pytest.mark.parametrize("method,ids", [
    (spec.Connection.CloseOk(), (10, 51)),
    (spec.Connection.Blocked(reason="x"), (10, 60)),
    (spec.Connection.Unblocked(), (10, 61)),
])
def test_server_only_connection_methods_from_client_504(raw, method, ids):
    """connection.close-ok without a close, and blocked/unblocked (server to client
    only) are hard errors on an open connection."""
    r = raw().handshake()
    r.send_method(0, method)
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - unexpected method in connection state running"
    assert (close.class_id, close.method_id) == ids


@pytest.mark.parametrize("frame,text", [
    (pika.frame.Header(0, 1, spec.BasicProperties()),
     "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,1,0,0>>"),
    (pika.frame.Body(0, b"x"), 'UNEXPECTED_FRAME - type 3, all octets = <<"x">>'),
])
def test_content_frame_on_channel_zero_505(raw, frame, text):
    r = raw().handshake()
    r.send(frame)
    _, close = r.expect(spec.Connection.Close)
    assert close.reply_code == 505
    assert close.reply_text == text
    assert (close.class_id, close.method_id) == (0, 0)
