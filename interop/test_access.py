"""Users, vhosts, permissions, topic permissions and limits, as RabbitMQ's access-control
guide describes them, seen by pika.

Set-up: the users and vhosts of interop/definitions.json (made by make_definitions.py).
.ci/test starts Warren with it (WARREN_DEFINITIONS__IMPORT_FILE); a RabbitMQ gets it with

    curl -u guest:guest -H 'content-type: application/json' -X POST \
        --data @interop/definitions.json http://127.0.0.1:15673/api/definitions

Without it every test here is skipped. Every interop-* user's password is "interop".
"""

from __future__ import annotations

import ast
import os
import re
import ssl
import time
import urllib.parse
import uuid

import pika
import pika.data
import pika.exceptions as exc
import pika.frame
import pika.spec as spec
import pytest

from amqp_raw import RawConnection
from helpers import WAIT, bounded, close_quietly, get_message

PASSWORD = "interop"
ACCESS_REFUSED, NOT_ALLOWED, PRECONDITION_FAILED, NOT_FOUND = 403, 530, 406, 404
LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism {}. "
                 "For details see the broker logfile.")


def _params(amqp_url: str, user: str, password: str, vhost: str) -> pika.URLParameters:
    params = pika.URLParameters(amqp_url)
    params.credentials = pika.PlainCredentials(user, password)
    params.virtual_host = vhost
    params.connection_attempts = 1
    params.socket_timeout = WAIT
    params.blocked_connection_timeout = WAIT
    params.stack_timeout = WAIT * 2
    return params


def broker_close(err: Exception) -> tuple[int, str]:
    """(reply code, reply text) of the Connection.Close or Channel.Close behind err.

    During the handshake pika wraps the broker's close in ProbableAuthenticationError
    (refused login) or ProbableAccessDeniedError (refused connection.open), keeping
    only the repr of ConnectionClosedByBroker: "ConnectionClosedByBroker: (530) '...'"."""
    if isinstance(err, (exc.ConnectionClosed, exc.ChannelClosed)):
        return err.reply_code, err.reply_text
    m = re.fullmatch(r"\w+: \((\d+)\) (.+)", str(err.args[0]) if err.args else "", re.S)
    assert m, f"no reply code and text in {err!r}"
    return int(m.group(1)), ast.literal_eval(m.group(2))


@pytest.fixture(scope="module", autouse=True)
def definitions_loaded(amqp_url):
    """Skip the module when the broker lacks interop/definitions.json's users."""
    try:
        with bounded(WAIT * 2):
            conn = pika.BlockingConnection(
                _params(amqp_url, "interop-perm", PASSWORD, "interop-perm"))
    except (exc.AMQPConnectionError, exc.AMQPError) as e:
        pytest.skip("interop/definitions.json is not loaded into this broker (user "
                    f"interop-perm cannot open vhost interop-perm: {type(e).__name__}); "
                    "see interop/README.md")
    close_quietly(conn)


@pytest.fixture
def connect_as(amqp_url):
    """connect_as(user, vhost, password=PASSWORD): a BlockingConnection, closed at teardown."""
    opened: list[pika.BlockingConnection] = []

    def _connect(user: str, vhost: str, password: str = PASSWORD) -> pika.BlockingConnection:
        conn = pika.BlockingConnection(_params(amqp_url, user, password, vhost))
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        close_quietly(conn)


def refused(connect, *args) -> tuple[int, str]:
    with pytest.raises((exc.AMQPConnectionError, exc.ConnectionClosedByBroker)) as info:
        connect(*args)
    return broker_close(info.value)


def connect_when_free(connect, *args, timeout: float = WAIT):
    """Connect, retrying while a limit is still reached: RabbitMQ counts a closed
    connection for a moment after it is gone (its connection tracking is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(*args)
        except (exc.ProbableAccessDeniedError, exc.ConnectionClosedByBroker):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


class Admin:
    """guest, administrator of every interop vhost: sets up and deletes what tests use."""

    def __init__(self, amqp_url: str):
        self.url = amqp_url
        self.conns: dict[str, pika.BlockingConnection] = {}
        self.created: list[tuple[str, str, str]] = []  # (vhost, kind, name)

    def channel(self, vhost: str):
        conn = self.conns.get(vhost)
        if conn is None or not conn.is_open:
            params = pika.URLParameters(self.url)
            params.virtual_host = vhost
            params.socket_timeout = WAIT
            conn = self.conns[vhost] = pika.BlockingConnection(params)
        return conn.channel()

    def remove_later(self, vhost: str, kind: str, name: str) -> str:
        self.created.append((vhost, kind, name))
        return name

    def close(self) -> None:
        for vhost, kind, name in self.created:
            try:
                with bounded(WAIT):
                    ch = self.channel(vhost)
                    (ch.queue_delete if kind == "queue" else ch.exchange_delete)(name)
                    ch.close()
            except Exception:
                pass
        for conn in self.conns.values():
            close_quietly(conn)


@pytest.fixture
def admin(amqp_url):
    a = Admin(amqp_url)
    yield a
    a.close()


def uid() -> str:
    return uuid.uuid4().hex[:10]


# --- logging in ------------------------------------------------------------------------


def test_user_bitnami_logs_in_and_works_on_the_default_vhost(connect_as):
    conn = connect_as("user", "/", "bitnami")
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello")
    assert get_message(ch, q, auto_ack=True)[2] == b"hello"


@pytest.mark.parametrize("user, password", [("user", "wrong"), ("interop-perm", "wrong"),
                                            ("interop-no-such-user", PASSWORD)])
def test_a_wrong_password_or_unknown_user_is_refused(connect_as, user, password):
    with pytest.raises(exc.ProbableAuthenticationError) as info:
        connect_as(user, "/", password)
    assert broker_close(info.value) == (ACCESS_REFUSED, LOGIN_REFUSED.format("PLAIN"))


def _amqplain_start_ok(r: RawConnection, user: str, password: str) -> None:
    r.send(pika.frame.ProtocolHeader())
    _, start = r.expect(spec.Connection.Start)
    assert b"AMQPLAIN" in start.mechanisms.split()
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, {"LOGIN": user, "PASSWORD": password})
    r.send_method(0, spec.Connection.StartOk(
        client_properties={"capabilities": {"authentication_failure_close": True}},
        mechanism="AMQPLAIN",
        response=b"".join(pieces)[4:],  # AMQPLAIN: the table without its length prefix
        locale="en_US"))


def test_amqplain_login(raw):
    """pika speaks only PLAIN and EXTERNAL; AMQPLAIN is done by hand."""
    r = raw()
    _amqplain_start_ok(r, "user", "bitnami")
    _, tune = r.expect(spec.Connection.Tune)
    r.send_method(0, spec.Connection.TuneOk(channel_max=tune.channel_max,
                                            frame_max=tune.frame_max, heartbeat=0))
    r.send_method(0, spec.Connection.Open(virtual_host="/"))
    r.expect(spec.Connection.OpenOk)
    r.opened = True
    r.open_channel(1)
    r.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    r.expect(spec.Queue.DeclareOk)


def test_amqplain_wrong_password_is_refused(raw):
    r = raw()
    _amqplain_start_ok(r, "user", "wrong")
    _, close = r.expect(spec.Connection.Close)
    assert (close.reply_code, close.reply_text) == (
        ACCESS_REFUSED, LOGIN_REFUSED.format("AMQPLAIN"))


AMQPS_URL = os.environ.get("AMQPS_URL")
CA_FILE = os.environ.get("AMQPS_CA_FILE")
CLIENT_CERT = os.environ.get("AMQPS_CLIENT_CERT")
CLIENT_KEY = os.environ.get("AMQPS_CLIENT_KEY")


@pytest.mark.skipif(not (AMQPS_URL and CA_FILE and CLIENT_CERT and CLIENT_KEY),
                    reason="no TLS listener with a client certificate (AMQPS_URL, "
                           "AMQPS_CA_FILE, AMQPS_CLIENT_CERT, AMQPS_CLIENT_KEY unset)")
def test_external_login_with_a_client_certificate():
    """SASL EXTERNAL: the user is the certificate's CN (make_certs.sh: interop-client),
    a user without a password. (RabbitMQ needs rabbitmq_auth_mechanism_ssl and
    ssl_cert_login_from = common_name for this.)"""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=CA_FILE)
    ctx.load_cert_chain(CLIENT_CERT, CLIENT_KEY)
    params = pika.URLParameters(AMQPS_URL)
    params.ssl_options = pika.SSLOptions(ctx, server_hostname=urllib.parse.urlparse(
        AMQPS_URL).hostname)
    params.credentials = pika.credentials.ExternalCredentials()
    params.virtual_host = "/"
    params.connection_attempts = 1
    params.socket_timeout = WAIT
    params.stack_timeout = WAIT * 2
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        # The broker refuses a user_id other than the connection's user (406): the
        # delivery proves the connection is interop-client's.
        ch.basic_publish("", q, b"by certificate",
                         pika.BasicProperties(user_id="interop-client"))
        _, props, body = get_message(ch, q, auto_ack=True)
        assert (body, props.user_id) == (b"by certificate", "interop-client")
    finally:
        close_quietly(conn)


# --- opening a vhost -------------------------------------------------------------------


def test_connection_open_to_an_unknown_vhost(connect_as):
    assert refused(connect_as, "interop-perm", "interop-no-such-vhost") == (
        NOT_ALLOWED, "NOT_ALLOWED - vhost interop-no-such-vhost not found")


def test_connection_open_to_a_vhost_without_permissions(connect_as):
    assert refused(connect_as, "interop-perm", "interop-noperm") == (
        NOT_ALLOWED,
        "NOT_ALLOWED - access to vhost 'interop-noperm' refused for user 'interop-perm'")


# --- the permission table --------------------------------------------------------------
# interop-perm's permissions on vhost interop-perm: configure ^(c|cr)-, write ^w-,
# read ^(r|cr)-. guest makes queues c-q, w-q, r-q, x-q and direct exchanges r-x, w-x, x-x
# (each name with a per-run suffix); each case runs on a fresh channel.

VHOST = USER = "interop-perm"


def _publish(ch, exchange):
    ch.confirm_delivery()
    ch.basic_publish(exchange, "k", b"m")


# (case, action(channel, name), None if allowed or (kind, name) refused)
TABLE = [
    # configure: declaring and deleting
    ("queue.declare", lambda ch, n: ch.queue_declare(n("c-new")), None),
    ("queue.declare without configure", lambda ch, n: ch.queue_declare(n("w-new")),
     ("queue", "w-new")),
    ("queue.declare passive needs nothing",
     lambda ch, n: ch.queue_declare(n("x-q"), passive=True), None),
    ("exchange.declare", lambda ch, n: ch.exchange_declare(n("c-x")), None),
    ("exchange.declare without configure", lambda ch, n: ch.exchange_declare(n("w-x2")),
     ("exchange", "w-x2")),
    ("exchange.declare passive needs nothing",
     lambda ch, n: ch.exchange_declare(n("x-x"), passive=True), None),
    ("queue.delete without configure", lambda ch, n: ch.queue_delete(n("x-q")),
     ("queue", "x-q")),
    ("exchange.delete without configure", lambda ch, n: ch.exchange_delete(n("x-x")),
     ("exchange", "x-x")),
    # dead-lettering reads the queue and writes to the dead-letter exchange
    ("queue.declare with a DLX",
     lambda ch, n: ch.queue_declare(n("cr-dlx"), arguments={
         "x-dead-letter-exchange": n("w-x")}), None),
    ("queue.declare with a DLX without read on the queue",
     lambda ch, n: ch.queue_declare(n("c-dlx"), arguments={
         "x-dead-letter-exchange": n("w-x")}), ("queue", "c-dlx")),
    ("queue.declare with a DLX without write on it",
     lambda ch, n: ch.queue_declare(n("cr-dlx2"), arguments={
         "x-dead-letter-exchange": n("r-x")}), ("exchange", "r-x")),
    # bindings: write on the destination, read on the source
    ("queue.bind", lambda ch, n: ch.queue_bind(n("w-q"), n("r-x"), "k"), None),
    ("queue.bind without write on the queue",
     lambda ch, n: ch.queue_bind(n("r-q"), n("r-x"), "k"), ("queue", "r-q")),
    ("queue.bind without read on the exchange",
     lambda ch, n: ch.queue_bind(n("w-q"), n("x-x"), "k"), ("exchange", "x-x")),
    ("queue.unbind without write on the queue",
     lambda ch, n: ch.queue_unbind(n("r-q"), n("r-x"), "k"), ("queue", "r-q")),
    ("exchange.bind", lambda ch, n: ch.exchange_bind(n("w-x"), n("r-x"), "k"), None),
    ("exchange.bind without write on the destination",
     lambda ch, n: ch.exchange_bind(n("x-x"), n("r-x"), "k"), ("exchange", "x-x")),
    ("exchange.bind without read on the source",
     lambda ch, n: ch.exchange_bind(n("w-x"), n("x-x"), "k"), ("exchange", "x-x")),
    # publishing: write on the exchange, the default one included
    ("basic.publish", lambda ch, n: _publish(ch, n("w-x")), None),
    ("basic.publish without write", lambda ch, n: _publish(ch, n("x-x")),
     ("exchange", "x-x")),
    ("basic.publish to the default exchange", lambda ch, n: _publish(ch, ""),
     ("exchange", "amq.default")),
    # reading: read on the queue
    ("basic.get", lambda ch, n: ch.basic_get(n("r-q")), None),
    ("basic.get without read", lambda ch, n: ch.basic_get(n("w-q")), ("queue", "w-q")),
    ("basic.consume", lambda ch, n: ch.basic_consume(n("r-q"), lambda *a: None), None),
    ("basic.consume without read",
     lambda ch, n: ch.basic_consume(n("c-q"), lambda *a: None), ("queue", "c-q")),
    ("queue.purge", lambda ch, n: ch.queue_purge(n("r-q")), None),
    ("queue.purge without read", lambda ch, n: ch.queue_purge(n("w-q")), ("queue", "w-q")),
]


@pytest.fixture(scope="module")
def perm_names(amqp_url, definitions_loaded):
    """n('c-q') -> 'c-q-<suffix>': the entities guest made for the table."""
    suffix = uid()
    admin = Admin(amqp_url)

    def n(name: str) -> str:
        return name if name.startswith("amq.") else f"{name}-{suffix}"

    ch = admin.channel(VHOST)
    for q in ("c-q", "w-q", "r-q", "x-q"):
        ch.queue_declare(admin.remove_later(VHOST, "queue", n(q)))
    for x in ("r-x", "w-x", "x-x"):
        ch.exchange_declare(admin.remove_later(VHOST, "exchange", n(x)))
    # what the allowed cases create
    for q in ("c-new", "cr-dlx"):
        admin.remove_later(VHOST, "queue", n(q))
    admin.remove_later(VHOST, "exchange", n("c-x"))
    yield n
    admin.close()


@pytest.mark.parametrize("case, action, refusal", TABLE, ids=[c[0] for c in TABLE])
def test_each_operation_needs_its_permission(connect_as, perm_names, case, action, refusal):
    n = perm_names
    conn = connect_as(USER, VHOST)
    ch = conn.channel()
    if refusal is None:
        action(ch, n)
        assert ch.is_open
        return
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        action(ch, n)
    kind, name = refusal
    assert broker_close(info.value) == (
        ACCESS_REFUSED,
        f"ACCESS_REFUSED - access to {kind} '{n(name)}' in vhost '{VHOST}' "
        f"refused for user '{USER}'")
    # A denial closes only the channel: the connection goes on.
    assert conn.is_open
    conn.channel().basic_qos(prefetch_count=1)


def test_a_server_named_queue_is_checked_under_its_generated_name(connect_as):
    ch = connect_as(USER, VHOST).channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare("")  # an amq.gen-* name matches no configure expression
    code, text = broker_close(info.value)
    assert code == ACCESS_REFUSED
    assert re.fullmatch(rf"ACCESS_REFUSED - access to queue 'amq\.gen-[\w-]+' in vhost "
                        rf"'{VHOST}' refused for user '{USER}'", text), text


# --- topic permissions -----------------------------------------------------------------
# interop-topic on vhost interop-topic: everything, but on amq.topic only routing keys
# matching ^{username}\. may be published and ^rd\. bound.


def test_topic_permissions_restrict_routing_keys_with_variables(connect_as, admin):
    user = vhost = "interop-topic"
    conn = connect_as(user, vhost)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", f"{user}.k", b"mine")  # {username} expanded
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.basic_publish("amq.topic", "other.k", b"not mine")
    assert broker_close(info.value) == (
        ACCESS_REFUSED,
        f"ACCESS_REFUSED - access to topic 'other.k' in exchange 'amq.topic' in vhost "
        f"'{vhost}' refused for user '{user}'")

    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "rd.k")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_bind(q, "amq.topic", "no.k")
    assert broker_close(info.value) == (
        ACCESS_REFUSED,
        f"ACCESS_REFUSED - access to topic 'no.k' in exchange 'amq.topic' in vhost "
        f"'{vhost}' refused for user '{user}'")

    # Topic permissions name one exchange: another topic exchange takes any key.
    ch = conn.channel()
    ch.confirm_delivery()
    other = admin.remove_later(vhost, "exchange", f"interop-t2-{uid()}")
    ch.exchange_declare(other, "topic")
    ch.basic_publish(other, "other.k", b"anything goes")


# --- vhost isolation -------------------------------------------------------------------


def test_vhosts_are_isolated(connect_as, admin):
    ch_a = connect_as("interop-iso", "interop-iso-a").channel()
    ch_b = connect_as("interop-iso", "interop-iso-b").channel()
    name = f"interop-same-{uid()}"
    for ch in (ch_a, ch_b):
        ch.queue_declare(name, exclusive=True)
    ch_a.basic_publish("", name, b"in a")
    assert get_message(ch_a, name, auto_ack=True)[2] == b"in a"
    ch_a.basic_publish("", name, b"in a again")
    assert ch_b.queue_declare(name, passive=True).method.message_count == 0
    # Exchanges too: one declared in b does not exist in a.
    x = admin.remove_later("interop-iso-b", "exchange", name)
    ch_b.exchange_declare(x, "fanout")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch_a.exchange_declare(x, "fanout", passive=True)
    assert broker_close(info.value) == (
        NOT_FOUND, f"NOT_FOUND - no exchange '{x}' in vhost 'interop-iso-a'")


# --- limits ----------------------------------------------------------------------------


def test_vhost_connection_limit(connect_as):
    user = vhost = "interop-vlimit-conn"  # max-connections 1
    first = connect_when_free(connect_as, user, vhost)
    assert refused(connect_as, user, vhost) == (
        NOT_ALLOWED,
        f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}': "
        f"connection limit (1) is reached")
    first.close()
    connect_when_free(connect_as, user, vhost)  # its place is free again


def test_vhost_queue_limit(connect_as):
    user = vhost = "interop-vlimit-queues"  # max-queues 1
    ch = connect_as(user, vhost).channel()
    q1, q2 = f"interop-q1-{uid()}", f"interop-q2-{uid()}"
    ch.queue_declare(q1, exclusive=True)
    ch.queue_declare(q1, exclusive=True)  # redeclaring is not a new queue
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(q2, exclusive=True)
    assert broker_close(info.value) == (
        PRECONDITION_FAILED,
        f"PRECONDITION_FAILED - cannot declare queue '{q2}': queue limit in vhost "
        f"'{vhost}' (1) is reached")


def test_user_connection_limit(connect_as):
    user = "interop-ulimit-conn"  # max-connections 1
    first = connect_when_free(connect_as, user, "/")
    assert refused(connect_as, user, "/") == (
        NOT_ALLOWED,
        f"NOT_ALLOWED - connection refused for user '{user}': "
        f"user connection limit (1) is reached")
    first.close()
    connect_when_free(connect_as, user, "/")


def test_user_channel_limit(connect_as):
    user = "interop-ulimit-chan"  # max-channels 1
    conn = connect_as(user, "/")
    conn.channel()
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        conn.channel()
    assert broker_close(info.value) == (
        NOT_ALLOWED,
        f"NOT_ALLOWED - number of channels opened for user '{user}' has reached "
        f"the maximum allowed user limit of (1)")
