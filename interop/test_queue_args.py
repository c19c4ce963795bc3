"""Queue arguments: message TTL, queue expiry, length limits, overflow, dead-lettering
(x-death), priorities, single active consumer, argument validation.

Everything here is what RabbitMQ 3.10.8 does. Two RabbitMQ 3.10 behaviours to keep in mind:
- A classic queue removes expired messages only at the head. A message whose TTL has
  passed but that sits behind an unexpired one stays in message_count until it reaches
  the head. It is never delivered, though
  (test_expired_behind_live_head_never_delivered).
- A dead-letter cycle made only of automatic deaths (expired/maxlen) is dropped when it
  would re-enter a queue already in x-death. A cycle that includes a rejection is not.
"""

import datetime
import socket
import time

import pika
import pika.exceptions as exc
import pika.frame
import pika.spec as spec
import pytest
from pika.compat import long

from amqp_raw import RawConnection
from helpers import WAIT, declare_queue, drain, get_message, settle, wait_for

pytestmark = pytest.mark.queue_args

P = pika.BasicProperties
X_DEATH_KEYS = {"count", "reason", "queue", "time", "exchange", "routing-keys"}


# ---------------------------------------------------------------- helpers


def vhost_of(connection):
    return connection._impl.params.virtual_host


@pytest.fixture
def cch(channel):
    """A channel in confirm mode: basic_publish returns on ack, raises NackError on nack."""
    channel.confirm_delivery()
    return channel


def count(channel, queue):
    return channel.queue_declare(queue, passive=True).method.message_count


def wait_count(channel, queue, n, timeout=WAIT):
    """Poll passive declare until queue has exactly n ready messages; returns the seconds waited."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        got = count(channel, queue)
        if got == n:
            return time.monotonic() - start
        assert time.monotonic() < deadline, f"{queue}: message_count stayed {got}, wanted {n}"
        settle(channel.connection, 0.01)


def assert_empty(channel, queue):
    assert channel.basic_get(queue)[0] is None
    assert count(channel, queue) == 0


def fanout(channel, unique, *queues):
    name = unique("fx")
    channel.exchange_declare(name, "fanout", auto_delete=False)
    for q in queues:
        channel.queue_bind(q, name)
    return name


def direct(channel, unique, **bindings):
    """A direct exchange with bindings {routing_key: queue}."""
    name = unique("dx")
    channel.exchange_declare(name, "direct", auto_delete=False)
    for key, q in bindings.items():
        channel.queue_bind(q, name, key)
    return name


def death_time_ok(value, t0):
    """x-death 'time' is an AMQP timestamp (whole seconds, UTC) taken at the death."""
    assert isinstance(value, datetime.datetime), repr(value)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert t0 - datetime.timedelta(seconds=2) <= value <= now + datetime.timedelta(seconds=2), value


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def check_x_death(entry, *, count, reason, queue, exchange, routing_keys, t0,
                  original_expiration=None):
    keys = set(X_DEATH_KEYS)
    if original_expiration is not None:
        keys.add("original-expiration")
    assert set(entry) == keys, entry
    assert entry["count"] == count
    assert type(entry["count"]) is long, "x-death count must be a long (64-bit) field"
    assert entry["reason"] == reason
    assert entry["queue"] == queue
    assert entry["exchange"] == exchange
    assert entry["routing-keys"] == routing_keys
    death_time_ok(entry["time"], t0)
    if original_expiration is not None:
        assert entry["original-expiration"] == original_expiration


def reject_one(channel, queue):
    method, props, body = get_message(channel, queue)
    channel.basic_reject(method.delivery_tag, requeue=False)
    return method, props, body


def invalid_arg_text(arg, queue, vhost, detail):
    return (f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{queue}' in vhost "
            f"'{vhost}': {detail}")


# ---------------------------------------------------------------- x-message-ttl / expiration


def test_queue_ttl_expires_unconsumed(cch):
    q = declare_queue(cch, arguments={"x-message-ttl": 200})
    t0 = time.monotonic()
    for body in (b"0", b"1", b"2"):
        cch.basic_publish("", q, body)
    # well inside the TTL the messages are there
    assert cch.basic_get(q, auto_ack=True)[2] == b"0"
    wait_count(cch, q, 0)
    assert time.monotonic() - t0 >= 0.19, "messages expired before their TTL"
    assert_empty(cch, q)


def test_expired_behind_live_head_never_delivered(cch):
    """RabbitMQ 3.10 classic queues expire at the head only: the short-lived messages
    behind a long-lived head are never delivered, and are gone once the head is taken."""
    q = declare_queue(cch)
    cch.basic_publish("", q, b"long", P(expiration="60000"))
    for i in range(10):
        cch.basic_publish("", q, b"short%d" % i, P(expiration="30"))
    settle(cch.connection, 0.15)
    method, props, body = cch.basic_get(q, auto_ack=True)
    assert body == b"long"
    assert props.expiration == "60000"
    assert_empty(cch, q)


def test_per_message_expiration(cch):
    q = declare_queue(cch)
    cch.basic_publish("", q, b"short", P(expiration="30"))
    cch.basic_publish("", q, b"long", P(expiration="60000"))
    cch.basic_publish("", q, b"forever")
    wait_count(cch, q, 2)
    got = drain(cch, q)
    assert [m[2] for m in got] == [b"long", b"forever"]
    # the expiration property is delivered unchanged
    assert [m[1].expiration for m in got] == ["60000", None]


@pytest.mark.parametrize("queue_ttl,expiration", [(30, "60000"), (60000, "30")],
                         ids=["queue-ttl-lower", "expiration-lower"])
def test_lower_of_queue_ttl_and_expiration_wins(cch, queue_ttl, expiration):
    q = declare_queue(cch, arguments={"x-message-ttl": queue_ttl})
    cch.basic_publish("", q, b"m", P(expiration=expiration))
    waited = wait_count(cch, q, 0)
    assert waited < 2, "expired only after the longer of the two TTLs"
    assert_empty(cch, q)


@pytest.mark.parametrize("how", ["x-message-ttl", "expiration"])
def test_ttl_zero_delivered_to_waiting_consumer_only(connection, cch, how):
    args = {"x-message-ttl": 0} if how == "x-message-ttl" else None
    props = P(expiration="0") if how == "expiration" else None
    q = declare_queue(cch, arguments=args)
    consumer = connection.channel()
    got = []
    tag = consumer.basic_consume(q, lambda c, m, p, b: got.append((p, b)), auto_ack=True)
    cch.basic_publish("", q, b"now", props)
    wait_for(connection, lambda: got, what="TTL 0 message delivered to the waiting consumer")
    assert got[0][1] == b"now"
    if how == "expiration":
        assert got[0][0].expiration == "0"
    consumer.basic_cancel(tag)
    cch.basic_publish("", q, b"nobody-waiting", props)
    assert_empty(cch, q)
    settle(connection, 0.05)
    assert [b for _, b in got] == [b"now"]


def test_expired_while_unacked_dropped_on_requeue(cch):
    """An unacked message does not expire while held; requeued after its TTL it is dropped."""
    q = declare_queue(cch, arguments={"x-message-ttl": 50})
    cch.basic_publish("", q, b"held")
    method, _, body = cch.basic_get(q)
    assert body == b"held"
    settle(cch.connection, 0.15)
    cch.basic_nack(method.delivery_tag, requeue=True)
    wait_count(cch, q, 0)
    assert cch.basic_get(q)[0] is None


def test_queue_ttl_expired_dead_lettered(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": dlx})
    t0 = utcnow()
    cch.basic_publish("", q, b"expiring", P(headers={"h": "v"}, message_id="id-1"))
    method, props, body = get_message(cch, dlq, auto_ack=True)
    assert body == b"expiring"
    assert method.exchange == dlx
    assert method.routing_key == q  # original routing key kept
    assert props.message_id == "id-1"
    assert props.expiration is None
    headers = props.headers
    assert set(headers) == {"h", "x-death", "x-first-death-exchange", "x-first-death-queue",
                            "x-first-death-reason"}
    assert headers["h"] == "v"
    [death] = headers["x-death"]
    check_x_death(death, count=1, reason="expired", queue=q, exchange="", routing_keys=[q], t0=t0)
    assert headers["x-first-death-reason"] == "expired"
    assert headers["x-first-death-queue"] == q
    assert headers["x-first-death-exchange"] == ""
    assert_empty(cch, q)


def test_message_expiration_dead_lettered_with_original_expiration(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    t0 = utcnow()
    cch.basic_publish("", q, b"m", P(expiration="40"))
    method, props, body = get_message(cch, dlq, auto_ack=True)
    assert body == b"m"
    assert props.expiration is None
    [death] = props.headers["x-death"]
    check_x_death(death, count=1, reason="expired", queue=q, exchange="", routing_keys=[q],
                  t0=t0, original_expiration="40")


def test_rejected_message_keeps_original_expiration(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    t0 = utcnow()
    cch.basic_publish("", q, b"m", P(expiration="60000"))
    reject_one(cch, q)
    _, props, _ = get_message(cch, dlq, auto_ack=True)
    assert props.expiration is None
    [death] = props.headers["x-death"]
    check_x_death(death, count=1, reason="rejected", queue=q, exchange="", routing_keys=[q],
                  t0=t0, original_expiration="60000")


# ---------------------------------------------------------------- x-expires


def test_x_expires_unused_queue_deleted(connection, unique):
    name = unique("q")
    ch = connection.channel()
    t0 = time.monotonic()
    ch.queue_declare(name, arguments={"x-expires": 150})
    deadline = t0 + WAIT
    while True:
        # a passive declare is a use and restarts the expiry timer: poll less often
        settle(connection, 0.25)
        probe = connection.channel()
        try:
            probe.queue_declare(name, passive=True)
        except exc.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            assert e.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '{vhost_of(connection)}'"
            break
        probe.close()
        assert time.monotonic() < deadline, "unused queue was not deleted"
    assert time.monotonic() - t0 >= 0.15


def test_x_expires_queue_with_consumer_kept(connection, unique):
    name = unique("q")
    ch = connection.channel()
    ch.queue_declare(name, arguments={"x-expires": 100})
    tag = ch.basic_consume(name, lambda *a: None)
    settle(connection, 0.5)  # five expiry periods
    ok = connection.channel().queue_declare(name, passive=True)
    assert ok.method.consumer_count == 1
    ch.basic_cancel(tag)
    # once the consumer is gone the expiry period starts again
    deadline = time.monotonic() + WAIT
    while True:
        settle(connection, 0.25)
        probe = connection.channel()
        try:
            probe.queue_declare(name, passive=True)
        except exc.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        probe.close()
        assert time.monotonic() < deadline, "queue did not expire after its consumer left"


# ---------------------------------------------------------------- length limits / overflow


def test_max_length_drop_head_dead_letters_maxlen(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx})
    t0 = utcnow()
    for i in range(5):
        cch.basic_publish("", q, b"%d" % i)
    assert [m[2] for m in drain(cch, q)] == [b"3", b"4"]
    wait_count(cch, dlq, 3)
    dead = drain(cch, dlq)
    assert [m[2] for m in dead] == [b"0", b"1", b"2"]
    for _, props, _ in dead:
        [death] = props.headers["x-death"]
        check_x_death(death, count=1, reason="maxlen", queue=q, exchange="", routing_keys=[q],
                      t0=t0)
        assert props.headers["x-first-death-reason"] == "maxlen"


def test_requeued_message_counts_against_max_length(cch, unique):
    """Unacked messages do not count against x-max-length, but a requeued one does: with
    drop-head the queue drops (and dead-letters, reason maxlen) from the head at once."""
    dlq = declare_queue(cch)
    q = declare_queue(cch, arguments={"x-max-length": 2, "x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": dlq})
    cch.basic_publish("", q, b"0")
    cch.basic_publish("", q, b"1")
    method, _, _ = get_message(cch, q)
    cch.basic_publish("", q, b"2")
    cch.basic_publish("", q, b"3")  # ready [1, 2, 3]: "1" dropped
    assert count(cch, q) == 2
    cch.basic_reject(method.delivery_tag, requeue=True)  # "0" back at the head: dropped
    assert count(cch, q) == 2
    assert [m[2] for m in drain(cch, q)] == [b"2", b"3"]
    dead = drain(cch, dlq)
    assert [m[2] for m in dead] == [b"1", b"0"]
    assert [m[1].headers["x-death"][0]["reason"] for m in dead] == ["maxlen", "maxlen"]


def test_max_length_bytes_drop_head(cch):
    q = declare_queue(cch, arguments={"x-max-length-bytes": 10})
    for body in (b"aaaa", b"bbbb", b"cccc"):  # 12 bytes > 10: the head goes
        cch.basic_publish("", q, body)
    assert count(cch, q) == 2
    cch.basic_publish("", q, b"d" * 10)  # only this one fits
    assert count(cch, q) == 1
    cch.basic_publish("", q, b"e" * 11)  # larger than the limit on its own: dropped too
    assert count(cch, q) == 0
    cch.basic_publish("", q, b"ff")
    assert [m[2] for m in drain(cch, q)] == [b"ff"]


def test_max_length_bytes_dead_letters_maxlen(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-max-length-bytes": 6, "x-dead-letter-exchange": dlx})
    for body in (b"aaa", b"bbb", b"ccc"):
        cch.basic_publish("", q, body)
    _, props, body = get_message(cch, dlq, auto_ack=True)
    assert body == b"aaa"
    assert props.headers["x-death"][0]["reason"] == "maxlen"
    assert [m[2] for m in drain(cch, q)] == [b"bbb", b"ccc"]


def test_overflow_reject_publish_nacks_under_confirms(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-max-length": 2, "x-overflow": "reject-publish",
                                      "x-dead-letter-exchange": dlx})
    cch.basic_publish("", q, b"1")
    cch.basic_publish("", q, b"2")
    with pytest.raises(exc.NackError):
        cch.basic_publish("", q, b"3")
    assert count(cch, q) == 2
    # reject-publish does not dead-letter
    settle(cch.connection, 0.1)
    assert_empty(cch, dlq)
    # space freed: accepted again
    assert cch.basic_get(q, auto_ack=True)[2] == b"1"
    cch.basic_publish("", q, b"4")
    assert [m[2] for m in drain(cch, q)] == [b"2", b"4"]


def test_overflow_reject_publish_without_confirms_drops(channel):
    q = declare_queue(channel, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    for body in (b"1", b"2", b"3", b"4"):
        channel.basic_publish("", q, body)
    wait_count(channel, q, 2)
    settle(channel.connection, 0.1)
    assert [m[2] for m in drain(channel, q)] == [b"1", b"2"]
    assert channel.is_open


def test_overflow_reject_publish_dlx_nacks_and_dead_letters(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                      "x-dead-letter-exchange": dlx})
    t0 = utcnow()
    cch.basic_publish("", q, b"kept")
    with pytest.raises(exc.NackError):
        cch.basic_publish("", q, b"refused")
    _, props, body = get_message(cch, dlq, auto_ack=True)
    assert body == b"refused"
    [death] = props.headers["x-death"]
    check_x_death(death, count=1, reason="maxlen", queue=q, exchange="", routing_keys=[q], t0=t0)
    assert [m[2] for m in drain(cch, q)] == [b"kept"]


# ---------------------------------------------------------------- dead-lettering


def test_reject_requeue_false_dead_letters(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    cch.basic_publish("", q, b"r")
    reject_one(cch, q)
    _, props, body = get_message(cch, dlq, auto_ack=True)
    assert body == b"r"
    assert props.headers["x-death"][0]["reason"] == "rejected"
    assert props.headers["x-first-death-reason"] == "rejected"
    assert_empty(cch, q)


def test_nack_requeue_false_dead_letters_all(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    for body in (b"a", b"b", b"c"):
        cch.basic_publish("", q, body)
    get_message(cch, q)
    get_message(cch, q)
    last, _, _ = get_message(cch, q)
    cch.basic_nack(last.delivery_tag, multiple=True, requeue=False)
    wait_count(cch, dlq, 3)
    dead = drain(cch, dlq)
    assert [m[2] for m in dead] == [b"a", b"b", b"c"]
    assert [m[1].headers["x-death"][0]["reason"] for m in dead] == ["rejected"] * 3
    assert_empty(cch, q)


def test_reject_requeue_true_not_dead_lettered(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    cch.basic_publish("", q, b"again")
    method, _, _ = get_message(cch, q)
    cch.basic_reject(method.delivery_tag, requeue=True)
    method, props, body = get_message(cch, q, auto_ack=True)
    assert (body, method.redelivered, props.headers) == (b"again", True, None)
    settle(cch.connection, 0.05)
    assert_empty(cch, dlq)


def test_x_death_full_header_keeps_original_routing_key(cch, unique):
    dlq = declare_queue(cch)
    dlx = direct(cch, unique, orig=dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    src = direct(cch, unique, orig=q)
    t0 = utcnow()
    cch.basic_publish(src, "orig", b"payload", P(content_type="text/plain", headers={"a": 1}))
    reject_one(cch, q)
    method, props, body = get_message(cch, dlq, auto_ack=True)
    assert body == b"payload"
    assert (method.exchange, method.routing_key) == (dlx, "orig")
    assert props.content_type == "text/plain"
    headers = props.headers
    assert set(headers) == {"a", "x-death", "x-first-death-exchange", "x-first-death-queue",
                            "x-first-death-reason"}
    [death] = headers["x-death"]
    check_x_death(death, count=1, reason="rejected", queue=q, exchange=src,
                  routing_keys=["orig"], t0=t0)
    assert (headers["x-first-death-queue"], headers["x-first-death-reason"],
            headers["x-first-death-exchange"]) == (q, "rejected", src)


def test_dead_letter_routing_key_replaces_routing_key(cch, unique):
    by_new, by_orig = declare_queue(cch), declare_queue(cch)
    dlx = direct(cch, unique, **{"dl-key": by_new, "orig": by_orig})
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx,
                                      "x-dead-letter-routing-key": "dl-key"})
    src = direct(cch, unique, orig=q)
    cch.basic_publish(src, "orig", b"m")
    reject_one(cch, q)
    method, props, _ = get_message(cch, by_new, auto_ack=True)
    assert (method.exchange, method.routing_key) == (dlx, "dl-key")
    # x-death records the routing keys the message was originally published with
    assert props.headers["x-death"][0]["routing-keys"] == ["orig"]
    settle(cch.connection, 0.05)
    assert_empty(cch, by_orig)


def test_x_death_routing_keys_include_cc_not_bcc(cch, unique):
    dlq = declare_queue(cch)
    dlx = fanout(cch, unique, dlq)
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    src = direct(cch, unique, **{"k-main": q})
    cch.basic_publish(src, "k-main", b"m", P(headers={"CC": ["k-cc"], "BCC": ["k-bcc"]}))
    _, delivered, _ = reject_one(cch, q)
    assert delivered.headers == {"CC": ["k-cc"]}  # BCC is stripped on publish
    _, props, _ = get_message(cch, dlq, auto_ack=True)
    assert props.headers["CC"] == ["k-cc"]
    assert "BCC" not in props.headers
    assert props.headers["x-death"][0]["routing-keys"] == ["k-main", "k-cc"]


def test_dead_letter_without_routing_key_routes_by_cc_and_bcc_keys(cch, unique):
    """Without x-dead-letter-routing-key the message is re-routed with all its original
    routing keys: the publish key, the CC keys and the BCC keys."""
    main, cc, bcc, other = (declare_queue(cch) for _ in range(4))
    dlx = direct(cch, unique, **{"k-main": main, "k-cc": cc, "k-bcc": bcc, "k-other": other})
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx})
    src = direct(cch, unique, **{"k-main": q})
    cch.basic_publish(src, "k-main", b"m", P(headers={"CC": ["k-cc"], "BCC": ["k-bcc"]}))
    reject_one(cch, q)
    for target in (main, cc, bcc):
        method, props, body = get_message(cch, target, auto_ack=True)
        assert (body, method.routing_key) == (b"m", "k-main")
        assert "BCC" not in props.headers
    settle(cch.connection, 0.05)
    for target in (main, cc, bcc, other):
        assert_empty(cch, target)


def test_dead_letter_routing_key_removes_cc_header(cch, unique):
    dlq, cc = declare_queue(cch), declare_queue(cch)
    dlx = direct(cch, unique, **{"dl-key": dlq, "k-cc": cc})
    q = declare_queue(cch, arguments={"x-dead-letter-exchange": dlx,
                                      "x-dead-letter-routing-key": "dl-key"})
    src = direct(cch, unique, **{"k-main": q})
    cch.basic_publish(src, "k-main", b"m", P(headers={"CC": ["k-cc"], "keep": "me"}))
    reject_one(cch, q)
    method, props, _ = get_message(cch, dlq, auto_ack=True)
    assert method.routing_key == "dl-key"
    assert "CC" not in props.headers
    assert props.headers["keep"] == "me"
    assert props.headers["x-death"][0]["routing-keys"] == ["k-main", "k-cc"]
    settle(cch.connection, 0.05)
    assert_empty(cch, cc)


def test_second_death_same_queue_and_reason_increments_count(cch, unique):
    """A queue dead-lettering to itself on rejection (rejections are never a cycle)."""
    name = unique("q")
    q = declare_queue(cch, name,
                      arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name})
    t0 = utcnow()
    cch.basic_publish("", q, b"boomerang")
    reject_one(cch, q)
    _, props, _ = reject_one(cch, q)
    [death] = props.headers["x-death"]
    assert death["count"] == 1
    method, props, body = get_message(cch, q, auto_ack=True)
    assert body == b"boomerang"
    assert method.redelivered is False  # a dead-lettered message is a new message
    [death] = props.headers["x-death"]
    check_x_death(death, count=2, reason="rejected", queue=q, exchange="", routing_keys=[q],
                  t0=t0)
    assert (props.headers["x-first-death-queue"], props.headers["x-first-death-reason"],
            props.headers["x-first-death-exchange"]) == (q, "rejected", "")


def dead_letter_with_headers(cch, unique, headers):
    """Publishes with `headers` to a queue that dead-letters rejections to another;
    returns the dead-lettered message's headers."""
    dq = declare_queue(cch)
    name = unique("q")
    q = declare_queue(cch, name,
                      arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dq})
    cch.basic_publish("", q, b"m", P(headers=headers))
    reject_one(cch, q)
    return q, get_message(cch, dq, auto_ack=True)[1].headers


def test_dead_lettered_headers_are_sorted_by_name(cch, unique):
    q, headers = dead_letter_with_headers(cch, unique, {"zz": 1, "a": 2, "x-death2": 3, "m": 4})
    assert list(headers) == ["a", "m", "x-death", "x-death2", "x-first-death-exchange",
                             "x-first-death-queue", "x-first-death-reason", "zz"]
    # a first x-death entry keeps RabbitMQ's own field order
    assert list(headers["x-death"][0]) == ["count", "reason", "queue", "time", "exchange",
                                           "routing-keys"]


def test_x_death_of_another_type_is_replaced_without_first_death_headers(cch, unique):
    q, headers = dead_letter_with_headers(cch, unique, {"x-death": "not-a-list"})
    assert [k for k in headers if k.startswith("x-first-death")] == []
    [death] = headers["x-death"]
    assert (death["count"], death["reason"], death["queue"]) == (1, "rejected", q)


def test_client_x_death_array_gets_a_sorted_entry_and_no_first_death_headers(cch, unique):
    other = {"queue": "elsewhere", "reason": "expired", "count": 3}
    q, headers = dead_letter_with_headers(cch, unique, {"x-death": [other]})
    assert [k for k in headers if k.startswith("x-first-death")] == []
    new, old = headers["x-death"]
    assert list(new) == sorted(new) == ["count", "exchange", "queue", "reason",
                                        "routing-keys", "time"]
    assert (new["count"], new["queue"]) == (1, q)
    assert old == other


def test_matching_x_death_entry_counted_up_as_long_and_sorted(cch, unique):
    name = unique("q")
    q = declare_queue(cch, name,
                      arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name})
    cch.basic_publish("", q, b"m", P(headers={
        "x-death": [{"queue": q, "reason": "rejected", "count": 3, "zeta": 1}]}))
    reject_one(cch, q)
    [death] = get_message(cch, q, auto_ack=True)[1].headers["x-death"]
    assert death["count"] == 4 and type(death["count"]) is long
    assert list(death) == ["count", "queue", "reason", "zeta"]


def test_dead_letter_cycle_of_expiries_is_dropped(cch, unique):
    """A -> (expired) -> B -> (expired) -> back to A is a cycle: RabbitMQ drops the
    message for A. The observer queues show each hop happened exactly once."""
    seen_from_a, seen_from_b = declare_queue(cch), declare_queue(cch)
    a, b = unique("a"), unique("b")
    xa, xb = unique("xa"), unique("xb")
    a = declare_queue(cch, a, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": xa})
    b = declare_queue(cch, b, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": xb})
    for x, targets in ((xa, (b, seen_from_a)), (xb, (a, seen_from_b))):
        cch.exchange_declare(x, "fanout", auto_delete=False)
        for t in targets:
            cch.queue_bind(t, x)
    t0 = utcnow()
    cch.basic_publish("", a, b"loop")
    _, props, _ = get_message(cch, seen_from_a, auto_ack=True)
    [death] = props.headers["x-death"]
    check_x_death(death, count=1, reason="expired", queue=a, exchange="", routing_keys=[a], t0=t0)
    _, props, _ = get_message(cch, seen_from_b, auto_ack=True)
    deaths = props.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (b, "expired", 1), (a, "expired", 1)]
    assert deaths[0]["exchange"] == xa
    assert deaths[0]["routing-keys"] == [a]
    # no second lap: A never receives it again
    settle(cch.connection, 0.3)
    for q in (a, b, seen_from_a, seen_from_b):
        assert_empty(cch, q)


def test_dead_letter_cycle_with_rejection_is_not_dropped(cch, unique):
    """A (reject) -> B (expire) -> A: a rejection in the cycle means it is not dropped;
    the most recent death comes first in x-death."""
    a, b = unique("a"), unique("b")
    a = declare_queue(cch, a, arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": b})
    b = declare_queue(cch, b, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": a})
    t0 = utcnow()
    cch.basic_publish("", a, b"round")
    reject_one(cch, a)
    _, props, _ = reject_one(cch, a)  # back in A after expiring in B
    deaths = props.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (b, "expired", 1), (a, "rejected", 1)]
    method, props, body = get_message(cch, a, auto_ack=True)  # second lap
    assert (body, method.routing_key) == (b"round", a)
    deaths = props.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (b, "expired", 2), (a, "rejected", 2)]
    check_x_death(deaths[0], count=2, reason="expired", queue=b, exchange="",
                  routing_keys=[b], t0=t0)
    check_x_death(deaths[1], count=2, reason="rejected", queue=a, exchange="",
                  routing_keys=[a], t0=t0)
    assert (props.headers["x-first-death-queue"], props.headers["x-first-death-reason"],
            props.headers["x-first-death-exchange"]) == (a, "rejected", "")


# ---------------------------------------------------------------- x-max-priority


def test_priority_higher_first_fifo_within_priority(cch):
    q = declare_queue(cch, arguments={"x-max-priority": 5})
    for body, prio in [(b"1a", 1), (b"3a", 3), (b"1b", 1), (b"none", None), (b"3b", 3),
                       (b"0", 0), (b"5", 5), (b"1c", 1)]:
        cch.basic_publish("", q, body, P(priority=prio))
    got = drain(cch, q)
    assert [m[2] for m in got] == [b"5", b"3a", b"3b", b"1a", b"1b", b"1c", b"none", b"0"]


def test_priority_above_max_treated_as_max(cch):
    q = declare_queue(cch, arguments={"x-max-priority": 3})
    for body, prio in [(b"a", 3), (b"b", 9), (b"c", 3), (b"d", 2), (b"e", 255)]:
        cch.basic_publish("", q, body, P(priority=prio))
    got = drain(cch, q)
    assert [m[2] for m in got] == [b"a", b"b", b"c", b"e", b"d"]
    assert [m[1].priority for m in got] == [3, 9, 3, 255, 2]  # property delivered unchanged


def test_priority_consumer_gets_highest_first(connection, cch):
    q = declare_queue(cch, arguments={"x-max-priority": 10})
    for body, prio in [(b"low", 1), (b"high", 10), (b"mid", 5)]:
        cch.basic_publish("", q, body, P(priority=prio))
    consumer = connection.channel()
    got = []
    consumer.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    wait_for(connection, lambda: len(got) == 3, what="3 deliveries")
    assert got == [b"high", b"mid", b"low"]


# ---------------------------------------------------------------- x-single-active-consumer


def sac_queue(channel, unique):
    name = unique("sac")
    channel.queue_declare(name, arguments={"x-single-active-consumer": True})
    return name


def consumer_on(connect, queue, prefetch=0, auto_ack=False):
    conn = connect()
    ch = conn.channel()
    if prefetch:
        ch.basic_qos(prefetch_count=prefetch)
    got = []
    tag = ch.basic_consume(queue, lambda c, m, p, b: got.append((b, m.redelivered, m.delivery_tag)),
                           auto_ack=auto_ack)
    return conn, ch, tag, got


def test_sac_only_first_consumer_receives(connect, cch, unique):
    q = sac_queue(cch, unique)
    c1, _, _, got1 = consumer_on(connect, q, auto_ack=True)
    c2, _, _, got2 = consumer_on(connect, q, auto_ack=True)
    assert cch.queue_declare(q, passive=True).method.consumer_count == 2
    for i in range(5):
        cch.basic_publish("", q, b"%d" % i)
    wait_for(c1, lambda: len(got1) == 5, what="5 deliveries to the active consumer")
    settle(c2, 0.1)
    assert [b for b, _, _ in got1] == [b"0", b"1", b"2", b"3", b"4"]
    assert got2 == []


def test_sac_cancel_hands_over_to_next(connect, cch, unique):
    q = sac_queue(cch, unique)
    c1, ch1, tag1, got1 = consumer_on(connect, q, auto_ack=True)
    c2, _, _, got2 = consumer_on(connect, q, auto_ack=True)
    cch.basic_publish("", q, b"first")
    wait_for(c1, lambda: got1, what="delivery to the first consumer")
    ch1.basic_cancel(tag1)
    cch.basic_publish("", q, b"second")
    cch.basic_publish("", q, b"third")
    wait_for(c2, lambda: len(got2) == 2, what="deliveries to the next consumer")
    assert [b for b, _, _ in got2] == [b"second", b"third"]
    settle(c1, 0.05)
    assert [b for b, _, _ in got1] == [b"first"]


def test_sac_cancelled_consumers_requeued_messages_go_to_next(connect, cch, unique):
    q = sac_queue(cch, unique)
    c1, ch1, tag1, got1 = consumer_on(connect, q)
    c2, _, _, got2 = consumer_on(connect, q, auto_ack=True)
    for i in range(3):
        cch.basic_publish("", q, b"%d" % i)
    wait_for(c1, lambda: len(got1) == 3, what="3 unacked deliveries to the first consumer")
    ch1.basic_cancel(tag1)
    ch1.basic_nack(got1[-1][2], multiple=True, requeue=True)
    wait_for(c2, lambda: len(got2) == 3, what="requeued messages at the next consumer")
    assert [(b, r) for b, r, _ in got2] == [(b"0", True), (b"1", True), (b"2", True)]


def test_sac_channel_close_unacked_go_to_next_first(connect, cch, unique):
    q = sac_queue(cch, unique)
    c1, ch1, _, got1 = consumer_on(connect, q, prefetch=2)
    c2, _, _, got2 = consumer_on(connect, q, auto_ack=True)
    for i in range(4):
        cch.basic_publish("", q, b"%d" % i)
    wait_for(c1, lambda: len(got1) == 2, what="2 unacked deliveries to the first consumer")
    settle(c2, 0.05)
    assert got2 == []
    ch1.close()
    wait_for(c2, lambda: len(got2) == 4, what="all messages at the next consumer")
    assert [(b, r) for b, r, _ in got2] == [(b"0", True), (b"1", True), (b"2", False),
                                            (b"3", False)]


def test_sac_connection_close_hands_over(connect, cch, unique):
    q = sac_queue(cch, unique)
    c1, _, _, got1 = consumer_on(connect, q, prefetch=1)
    c2, _, _, got2 = consumer_on(connect, q, auto_ack=True)
    cch.basic_publish("", q, b"0")
    cch.basic_publish("", q, b"1")
    wait_for(c1, lambda: got1, what="delivery to the first consumer")
    c1.close()
    wait_for(c2, lambda: len(got2) == 2, what="messages at the next consumer")
    assert [(b, r) for b, r, _ in got2] == [(b"0", True), (b"1", False)]


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize("arg,value,detail", [
    ("x-max-length", "ten", '"expected integer, got longstr"'),
    ("x-max-length", -1, "{value_negative,-1}"),
    ("x-max-length-bytes", -1, "{value_negative,-1}"),
    ("x-message-ttl", "100", '"expected integer, got longstr"'),
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-expires", 0, "{value_zero,0}"),
    ("x-expires", -5, "{value_negative,-5}"),
    ("x-expires", "soon", '"expected integer, got longstr"'),
    ("x-expires", 315360000001, "{value_too_large,315360000001}"),
    ("x-message-ttl", 315360000001, "{value_too_large,315360000001}"),
    ("x-max-priority", 256, "{max_value_exceeded,256}"),
    ("x-max-priority", -1, "{value_negative,-1}"),
    ("x-overflow", "bogus", "invalid_overflow"),
    ("x-overflow", 5, "{unacceptable_type,signedint}"),
    ("x-single-active-consumer", "yes", "{unacceptable_type,longstr}"),
    ("x-queue-type", "bogus", '"unsupported queue type \'bogus\'"'),
    ("x-queue-type", "Classic", '"unsupported queue type \'Classic\'"'),
    ("x-queue-type", 5, "{unacceptable_type,signedint}"),
    ("x-queue-mode", "bogus", '"unsupported queue mode \'bogus\'"'),
    ("x-queue-mode", 1, "{unacceptable_type,signedint}"),
    ("x-queue-version", 3, '"unsupported queue version \'3\'"'),
    ("x-queue-version", 0, '"unsupported queue version \'0\'"'),
    ("x-queue-version", -1, "{value_negative,-1}"),
    ("x-queue-version", "1", '"expected integer, got longstr"'),
])
def test_invalid_argument_406(connection, unique, arg, value, detail):
    name = unique("q")
    ch = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, arguments={arg: value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == invalid_arg_text(arg, name, vhost_of(connection), detail)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, passive=True)
    assert info.value.reply_code == 404


@pytest.mark.parametrize("args,reported,detail", [
    ({"x-max-length": -1, "x-message-ttl": -1}, "x-message-ttl", "{value_negative,-1}"),
    ({"x-message-ttl": -1, "x-expires": 0}, "x-expires", "{value_zero,0}"),
    ({"x-overflow": "bogus", "x-max-priority": 999}, "x-max-priority",
     "{max_value_exceeded,999}"),
    ({"x-max-length": -1, "x-dead-letter-routing-key": "k"}, "x-dead-letter-routing-key",
     "routing_key_but_no_dlx_defined"),
    ({"x-single-active-consumer": "no", "x-queue-version": 5}, "x-queue-version",
     '"unsupported queue version \'5\'"'),
    ({"x-queue-version": 5, "x-queue-mode": "bogus"}, "x-queue-mode",
     '"unsupported queue mode \'bogus\'"'),
    ({"x-max-length": -1, "x-queue-type": "bogus"}, "x-queue-type",
     '"unsupported queue type \'bogus\'"'),
], ids=["ttl-before-max-length", "expires-before-ttl", "priority-before-overflow",
        "dlrk-before-max-length", "version-before-sac", "mode-before-version", "type-first"])
def test_invalid_arguments_reported_in_rabbitmq_order(connection, unique, args, reported, detail):
    """With several invalid arguments, RabbitMQ reports the first in its own fixed order
    (x-queue-type first), whatever their order in the table."""
    name = unique("q")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, arguments=args)
    assert info.value.reply_code == 406
    assert info.value.reply_text == invalid_arg_text(reported, name, vhost_of(connection), detail)


@pytest.mark.parametrize("args,arg,qtype", [
    ({"x-delivery-limit": 5}, "x-delivery-limit", "rabbit_classic_queue"),
    ({"x-max-in-memory-length": 5}, "x-max-in-memory-length", "rabbit_classic_queue"),
    ({"x-max-in-memory-length": -5}, "x-max-in-memory-length", "rabbit_classic_queue"),
    ({"x-max-age": "1D"}, "x-max-age", "rabbit_classic_queue"),
    ({"x-dead-letter-strategy": "at-most-once"}, "x-dead-letter-strategy",
     "rabbit_classic_queue"),
    ({"x-delivery-limit": 5, "x-queue-type": "classic"}, "x-delivery-limit",
     "rabbit_classic_queue"),
    ({"x-queue-type": "quorum", "x-max-priority": 5}, "x-max-priority", "rabbit_quorum_queue"),
    ({"x-queue-type": "quorum", "x-queue-mode": "lazy"}, "x-queue-mode", "rabbit_quorum_queue"),
    ({"x-queue-type": "stream", "x-message-ttl": 5}, "x-message-ttl", "rabbit_stream_queue"),
])
def test_argument_of_another_queue_type_406(connection, unique, args, arg, qtype):
    name = unique("q")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, durable=True, arguments=args)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}' in vhost "
        f"'{vhost_of(connection)}' of queue type {qtype}")


@pytest.mark.parametrize("qtype,flags,prop", [
    ("quorum", {}, "non-durable"),
    ("quorum", {"durable": True, "exclusive": True}, "exclusive-owner"),
    ("quorum", {"exclusive": True, "auto_delete": True}, "auto-delete"),
    ("quorum", {"exclusive": True}, "exclusive-owner"),
    ("stream", {}, "non-durable"),
    ("stream", {"durable": True, "auto_delete": True}, "auto-delete"),
])
def test_quorum_and_stream_queue_properties_406(connection, unique, qtype, flags, prop):
    name = unique("q")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, arguments={"x-queue-type": qtype}, **flags)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{name}' in vhost "
        f"'{vhost_of(connection)}'")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, passive=True)
    assert info.value.reply_code == 404


@pytest.mark.parametrize("first,second", [
    (None, {"x-queue-type": "classic"}),
    ({"x-queue-type": "classic"}, None),
    ({"x-queue-type": "classic"}, {"x-queue-type": "classic"}),
    ({"x-queue-mode": "lazy", "x-queue-version": 2}, {"x-queue-mode": "lazy", "x-queue-version": 2}),
])
def test_classic_queue_type_explicit_or_implicit_is_equivalent(channel, unique, first, second):
    name = unique("q")
    channel.queue_declare(name, arguments=first)
    assert channel.queue_declare(name, arguments=second).method.queue == name


def test_dead_letter_routing_key_without_exchange_406(connection, unique):
    name = unique("q")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, arguments={"x-dead-letter-routing-key": "k"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == invalid_arg_text(
        "x-dead-letter-routing-key", name, vhost_of(connection), "routing_key_but_no_dlx_defined")


def test_dead_letter_exchange_wrong_type_406(connection, unique):
    name = unique("q")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(name, arguments={"x-dead-letter-exchange": 5})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in "
        f"queue '{name}' in vhost '{vhost_of(connection)}'")


@pytest.mark.parametrize("arg", ["x-message-ttl", "x-expires"])
def test_ten_year_ttl_accepted(channel, arg):
    """RabbitMQ's limit for TTLs is 10 years (315360000000 ms), not 2^32-1 ms."""
    declare_queue(channel, arguments={arg: 4294967296})
    declare_queue(channel, arguments={arg: 315360000000})


def test_max_priority_255_accepted(channel):
    q = declare_queue(channel, arguments={"x-max-priority": 255})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"lo", P(priority=1))
    channel.basic_publish("", q, b"hi", P(priority=255))
    assert [m[2] for m in drain(channel, q)] == [b"hi", b"lo"]


@pytest.mark.parametrize("first,second,detail", [
    ({"x-message-ttl": 100}, {"x-message-ttl": 200}, "received '200' but current is '100'"),
    ({"x-message-ttl": 100}, None,
     "received none but current is the value '100' of type 'signedint'"),
    (None, {"x-expires": 1000},
     "received the value '1000' of type 'signedint' but current is none"),
    ({"x-max-length": 10}, {"x-max-length": "10"}, "received '10' but current is '10'"),
    ({"x-dead-letter-exchange": "a"}, {"x-dead-letter-exchange": "b"},
     "received 'b' but current is 'a'"),
    ({"x-overflow": "drop-head"}, {"x-overflow": "reject-publish"},
     "received 'reject-publish' but current is 'drop-head'"),
    ({"x-max-priority": 5}, {"x-max-priority": 6}, "received '6' but current is '5'"),
    ({"x-single-active-consumer": True}, None,
     "received none but current is the value 'true' of type 'bool'"),
    (None, {"x-queue-type": "quorum"},
     "received the value 'quorum' of type 'longstr' but current is none"),
    ({"x-queue-version": 1}, {"x-queue-version": 2}, "received '2' but current is '1'"),
    (None, {"x-queue-version": 1},
     "received the value '1' of type 'signedint' but current is none"),
    ({"x-queue-mode": "lazy"}, {"x-queue-mode": "default"},
     "received 'default' but current is 'lazy'"),
], ids=["ttl-changed", "ttl-missing", "expires-added", "max-length-type", "dlx-changed",
        "overflow-changed", "priority-changed", "sac-missing", "type-quorum-added",
        "version-changed", "version-added", "mode-changed"])
def test_redeclare_inequivalent_x_argument_406(connection, unique, first, second, detail):
    name = unique("q")
    ch = connection.channel()
    ch.queue_declare(name, arguments=first)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.queue_declare(name, arguments=second)
    arg = next(iter(second or first))
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in vhost "
        f"'{vhost_of(connection)}': {detail}")


def test_redeclare_with_different_unknown_argument_ok(connection, unique):
    name = unique("q")
    ch = connection.channel()
    ch.queue_declare(name, arguments={"x-interop-custom": 1})
    ok = ch.queue_declare(name, arguments={"x-interop-custom": 2})
    assert ok.method.queue == name


# ---------------------------------------------------------------- load


N_LOAD = 100_000
MAX_TTL_MS = 600


def publish_many_confirmed(url, queue, frames_for, n, chunk=2000):
    """Publish n messages (frames_for(i) -> marshalled bytes) on a raw connection in
    confirm mode, in large batches; returns the monotonic time the last confirm arrived."""
    r = RawConnection(url, timeout=WAIT)
    try:
        r.handshake()
        r.open_channel(1)
        r.send_method(1, spec.Confirm.Select())
        r.expect(spec.Confirm.SelectOk)
        acked = bytearray(n + 1)
        state = {"upto": 0, "acked": 0, "nacks": 0}

        def on_frame(frame):
            m = getattr(frame, "method", None)
            if isinstance(m, spec.Basic.Nack):
                state["nacks"] += 1
            elif isinstance(m, spec.Basic.Ack):
                lo = state["upto"] + 1 if m.multiple else m.delivery_tag
                for tag in range(lo, m.delivery_tag + 1):
                    if not acked[tag]:
                        acked[tag] = 1
                        state["acked"] += 1
                if m.multiple:
                    state["upto"] = max(state["upto"], m.delivery_tag)
            elif m is not None:
                raise AssertionError(f"unexpected {m!r}")

        def pump(block_until):
            while True:
                while r.buf:
                    consumed, frame = pika.frame.decode_frame(r.buf)
                    if not consumed:
                        break
                    r.buf = r.buf[consumed:]
                    on_frame(frame)
                if state["acked"] + state["nacks"] >= n:
                    return
                remaining = block_until - time.monotonic()
                r.sock.settimeout(max(remaining, 0.0) if remaining > 0 else 0.0)
                try:
                    data = r.sock.recv(1 << 20)
                except (BlockingIOError, socket.timeout):
                    if remaining > 0:
                        raise AssertionError("confirms did not arrive in time") from None
                    return
                if not data:
                    raise AssertionError("broker closed the connection")
                r.buf += data

        for start in range(0, n, chunk):
            r.sock.settimeout(WAIT)
            r.sock.sendall(b"".join(frames_for(i) for i in range(start, min(start + chunk, n))))
            pump(0)  # non-blocking: take in whatever confirms are there
        pump(time.monotonic() + 20)
        confirmed_at = time.monotonic()
        assert state["nacks"] == 0, f"{state['nacks']} publishes nacked"
        assert state["acked"] == n
        return confirmed_at
    finally:
        r.close()


@pytest.mark.timeout(60)
def test_load_mixed_per_message_ttl_all_expire(amqp_url, channel):
    q = declare_queue(channel)
    ttls = [100 + (i * 7919) % (MAX_TTL_MS - 100 + 1) for i in range(N_LOAD)]
    ttls[-100:] = [MAX_TTL_MS] * 100
    variants = {}

    def frames_for(i):
        ttl = ttls[i]
        data = variants.get(ttl)
        if data is None:
            data = (pika.frame.Method(1, spec.Basic.Publish(exchange="", routing_key=q)).marshal()
                    + pika.frame.Header(1, 5, P(expiration=str(ttl))).marshal()
                    + pika.frame.Body(1, b"x" * 5).marshal())
            variants[ttl] = data
        return data

    confirmed_at = publish_many_confirmed(amqp_url, q, frames_for, N_LOAD)
    assert count(channel, q) > 0  # the last 100 messages live 600 ms
    last_ttl_passed = confirmed_at + MAX_TTL_MS / 1000
    deadline = last_ttl_passed + 1.0
    while True:
        left = count(channel, q)
        if left == 0:
            break
        now = time.monotonic()
        assert now < deadline, (
            f"{left} messages still queued {now - last_ttl_passed:.2f}s after the last TTL passed")
        settle(channel.connection, 0.02)
    assert channel.basic_get(q)[0] is None
