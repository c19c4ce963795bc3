"""RabbitMQ's stream protocol, driven by the `rstream` client: creating and deleting
streams, publishing with confirms, subscribing from first / last / next / an offset / a
timestamp, storing and querying a named consumer's offset, publisher deduplication by
publisher name and publishing id, single active consumer (RabbitMQ 3.11+, so skipped on
3.10), and the interop between protocols: a message published with pika is read with
rstream with its body, properties and application properties, and the other way round.

The stream listener is `$STREAM_URL`
(`rabbitmq-stream://guest:guest@127.0.0.1:5552/%2f` by default, Warren's port; the
reference RabbitMQ's is 5553). When STREAM_URL is not set and nothing listens at the
default, the tests are skipped; when it is set, they must pass. The AMQP side is
`$AMQP_URL` as everywhere else. Passed against RabbitMQ 3.10.8.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import urllib.parse
import uuid

import pika
import pika.exceptions as exc
import pytest

rstream = pytest.importorskip("rstream")

from rstream import (  # noqa: E402
    AMQPMessage,
    CompressionType,
    Consumer,
    ConsumerOffsetSpecification,
    OffsetSpecification,
    OffsetType,
    Producer,
    Properties,
    amqp_decoder,
)
from rstream.exceptions import OffsetNotFound, StreamAlreadyExists, StreamDoesNotExist  # noqa: E402

from helpers import WAIT, wait_for  # noqa: E402

DEFAULT_STREAM_URL = "rabbitmq-stream://guest:guest@127.0.0.1:5552/%2f"


def _stream_target():
    url = os.environ.get("STREAM_URL", DEFAULT_STREAM_URL)
    u = urllib.parse.urlparse(url)
    vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 5552,
        "username": urllib.parse.unquote(u.username or "guest"),
        "password": urllib.parse.unquote(u.password or "guest"),
        "vhost": vhost,
    }


@pytest.fixture(scope="module")
def target():
    t = _stream_target()
    if "STREAM_URL" not in os.environ:
        try:
            socket.create_connection((t["host"], t["port"]), timeout=1).close()
        except OSError:
            pytest.skip(f"no stream listener at {t['host']}:{t['port']} (set STREAM_URL)")
    return t


def run(coro, timeout=WAIT * 3):
    """Run one async scenario with a deadline (no scenario may hang the suite)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def producer(t, **kw):
    return Producer(t["host"], t["port"], vhost=t["vhost"], username=t["username"],
                    password=t["password"], **kw)


def consumer(t, **kw):
    return Consumer(t["host"], t["port"], vhost=t["vhost"], username=t["username"],
                    password=t["password"], **kw)


async def until(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Collector:
    """An rstream subscription recording (offset, message) in arrival order."""

    def __init__(self):
        self.got = []

    async def __call__(self, msg, ctx):
        self.got.append((ctx.offset, msg))

    def offsets(self):
        return [o for o, _ in self.got]

    def bodies(self):
        return [m.body for _, m in self.got]


async def subscribe(c, stream, spec, offset=None, **kw):
    col = Collector()
    await c.subscribe(stream, col, decoder=amqp_decoder,
                      offset_specification=ConsumerOffsetSpecification(spec, offset), **kw)
    return col


@pytest.fixture
def stream_name(unique):
    """A new stream's name; the janitor deletes it (over AMQP) at teardown."""
    return unique("s")


def amqp_stream(connect, name):
    ch = connect().channel()
    ch.queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})
    return name


def msg(body, **kw):
    return AMQPMessage(body=body, **kw)


# ---------------------------------------------------------------------------


def test_create_stream_is_an_amqp_stream_queue(target, connect, stream_name):
    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            with pytest.raises(StreamAlreadyExists):
                await p.create_stream(stream_name)
            assert await p.stream_exists(stream_name)

    run(scenario())
    ch = connect().channel()
    # Equivalent to a declaration of a durable stream over AMQP.
    ok = ch.queue_declare(stream_name, durable=True, arguments={"x-queue-type": "stream"})
    assert ok.method.queue == stream_name


def test_delete_stream_removes_the_queue(target, connect, stream_name):
    amqp_stream(connect, stream_name)

    async def scenario():
        async with producer(target) as p:
            await p.delete_stream(stream_name)
            assert not await p.stream_exists(stream_name)
            with pytest.raises(StreamDoesNotExist):
                await p.delete_stream(stream_name)

    run(scenario())
    ch = connect().channel()
    with pytest.raises(exc.ChannelClosedByBroker) as e:
        ch.queue_declare(stream_name, passive=True)
    assert e.value.reply_code == 404


def test_subscribe_to_a_missing_stream(target, unique):
    async def scenario():
        async with consumer(target) as c:
            with pytest.raises(StreamDoesNotExist):
                await subscribe(c, unique("missing"), OffsetType.FIRST)

    run(scenario())


def test_publish_with_confirms_then_read_from_first(target, stream_name):
    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            ids = [await p.send_wait(stream_name, msg(b"m%d" % i)) for i in range(5)]
            assert ids == [1, 2, 3, 4, 5]
            confirmed = []
            for i in range(5, 10):
                await p.send(stream_name, msg(b"m%d" % i),
                             on_publish_confirm=lambda st: confirmed.append(st.is_confirmed))
            await until(lambda: len(confirmed) == 5, "5 asynchronous confirms")
            assert all(confirmed)
        async with consumer(target) as c:
            col = await subscribe(c, stream_name, OffsetType.FIRST)
            await until(lambda: len(col.got) == 10, "10 messages")
            assert col.offsets() == list(range(10))
            assert col.bodies() == [b"m%d" % i for i in range(10)]

    run(scenario())


@pytest.mark.parametrize(
    "spec,offset,expected",
    [
        (OffsetType.FIRST, None, [0, 1, 2, 3, 4, 5]),
        (OffsetType.OFFSET, 0, [0, 1, 2, 3, 4, 5]),
        (OffsetType.OFFSET, 3, [3, 4, 5]),
        (OffsetType.OFFSET, 5, [5]),
        (OffsetType.LAST, None, [4, 5]),  # the last chunk: each confirmed publish is one
        (OffsetType.NEXT, None, [5]),
    ],
    ids=["first", "offset-0", "offset-3", "offset-next", "last", "next"],
)
def test_subscribe_offset_specifications(target, stream_name, spec, offset, expected):
    """Offsets 0-4 exist when the subscription starts; offset 5 is published after."""

    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            for i in range(5):
                await p.send_wait(stream_name, msg(b"m%d" % i))
            async with consumer(target) as c:
                col = await subscribe(c, stream_name, spec, offset)
                await until(lambda: len(col.got) >= len(expected) - 1, "the old messages")
                await p.send_wait(stream_name, msg(b"m5"))
                await until(lambda: len(col.got) >= len(expected), "the new message")
                await asyncio.sleep(0.3)  # only to prove that nothing more comes
                assert col.offsets() == expected
                assert col.bodies() == [b"m%d" % o for o in expected]

    run(scenario())


def test_subscribe_from_a_timestamp(target, stream_name):
    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            await p.send_wait(stream_name, msg(b"old"))
            await asyncio.sleep(1.5)  # the feature under test is the passing of time
            ts = int(time.time() * 1000)
            await p.send_wait(stream_name, msg(b"new"))
            async with consumer(target) as c:
                col = await subscribe(c, stream_name, OffsetType.TIMESTAMP, ts)
                await until(lambda: len(col.got) >= 1, "the new message")
                await asyncio.sleep(0.3)  # only to prove that nothing more comes
                assert col.got[0][0] == 1
                assert col.bodies() == [b"new"]

    run(scenario())


def test_store_and_query_offset(target, stream_name):
    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            for i in range(5):
                await p.send_wait(stream_name, msg(b"m%d" % i))
        async with consumer(target) as c:
            with pytest.raises(OffsetNotFound):
                await c.query_offset(stream_name, "reader-1")
            await c.store_offset(stream_name, "reader-1", 3)
            # store_offset has no answer: poll until the broker reports it.
            seen = []

            async def stored():
                while True:
                    try:
                        seen.append(await c.query_offset(stream_name, "reader-1"))
                        if seen[-1] == 3:
                            return
                    except OffsetNotFound:
                        pass
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(stored(), WAIT)
            # Resuming after the stored offset reads the rest.
            col = await subscribe(c, stream_name, OffsetType.OFFSET,
                                  await c.query_offset(stream_name, "reader-1") + 1,
                                  subscriber_name="reader-1")
            await until(lambda: len(col.got) == 1, "the message after the stored offset")
            assert col.bodies() == [b"m4"]
            await c.store_offset(stream_name, "reader-1", 4)
            await asyncio.wait_for(_until_offset(c, stream_name, "reader-1", 4), WAIT)

    run(scenario())


async def _until_offset(c, stream, name, want):
    while await c.query_offset(stream, name) != want:
        await asyncio.sleep(0.05)


def test_deduplication_by_publisher_name_and_publishing_id(target, stream_name):
    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
        async with producer(target) as dedup:
            for pid in [1, 2, 2, 3, 1]:
                m = msg(b"d%d" % pid)
                m.publishing_id = pid
                # Duplicates are confirmed too (send_wait returns), but not stored.
                await dedup.send_wait(stream_name, m, publisher_name="pub-a")
            client = await dedup.default_client
            assert await client.query_publisher_sequence(stream_name, "pub-a") == 3
            assert await client.query_publisher_sequence(stream_name, "pub-b") == 0
        # A new producer with the same name carries on after the stored sequence.
        async with producer(target) as again:
            assert await again.send_wait(stream_name, msg(b"d4"), publisher_name="pub-a") == 4
        async with consumer(target) as c:
            col = await subscribe(c, stream_name, OffsetType.FIRST)
            await until(lambda: len(col.got) >= 4, "4 messages")
            await asyncio.sleep(0.3)  # only to prove that nothing more comes
            assert col.bodies() == [b"d1", b"d2", b"d3", b"d4"]

    run(scenario())


def test_pika_message_read_with_rstream(target, connect, stream_name):
    amqp_stream(connect, stream_name)
    ch = connect().channel()
    ch.confirm_delivery()
    ch.basic_publish("", stream_name, b"from-pika", pika.BasicProperties(
        headers={"h1": "v1", "n": 7}, content_type="application/json", content_encoding="gz",
        message_id="pm", correlation_id="pc", reply_to="rt", delivery_mode=2, priority=4,
        timestamp=1700000000, type="ty", app_id="ap", user_id="guest", expiration="100000"))

    async def scenario():
        async with consumer(target) as c:
            col = await subscribe(c, stream_name, OffsetType.FIRST)
            await until(lambda: len(col.got) == 1, "the message")
            return col.got[0]

    offset, m = run(scenario())
    assert offset == 0
    assert m.body == b"from-pika"
    p = m.properties
    assert (p.message_id, p.correlation_id, p.reply_to, p.user_id) == (b"pm", b"pc", b"rt", b"guest")
    assert (p.content_type, p.content_encoding) == (b"application/json", b"gz")
    assert p.creation_time == 1700000000 * 1000  # AMQP 1.0 timestamps are milliseconds
    app = {k.decode(): v for k, v in m.application_properties.items()}
    assert app == {"h1": b"v1", "n": 7, "x-basic-type": b"ty", "x-basic-app-id": b"ap"}
    ann = {k.decode(): v for k, v in m.message_annotations.items()}
    assert ann == {"x-exchange": b"", "x-routing-key": stream_name.encode(),
                   "x-basic-priority": 4, "x-basic-delivery-mode": 2,
                   "x-basic-expiration": b"100000"}


def test_rstream_message_read_with_pika(target, connect, stream_name):
    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            await p.send_wait(stream_name, msg(
                b"from-rstream",
                application_properties={"s": "str", "i": 42, "b": True},
                properties=Properties(message_id="mid", user_id=b"guest", reply_to="rt",
                                      correlation_id="cid", content_type="text/plain",
                                      content_encoding="utf8",
                                      creation_time=1700000000000)))
            await p.send_wait(stream_name, msg(b"bare"))

    run(scenario())
    conn = connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got = []
    ch.basic_consume(stream_name, lambda c, m, p, b: got.append((m, p, b)),
                     arguments={"x-stream-offset": "first"})
    wait_for(conn, lambda: len(got) == 2, what="2 deliveries")
    (m1, p1, b1), (m2, p2, b2) = got
    assert (b1, m1.exchange, m1.routing_key, m1.redelivered) == (
        b"from-rstream", "", stream_name, False)
    assert p1.headers == {"s": "str", "i": 42, "b": True, "x-stream-offset": 0}
    assert (p1.message_id, p1.user_id, p1.reply_to, p1.correlation_id) == (
        "mid", "guest", "rt", "cid")
    assert (p1.content_type, p1.content_encoding, p1.timestamp) == (
        "text/plain", "utf8", 1700000000)
    assert (b2, m2.routing_key, p2.headers) == (b"bare", stream_name, {"x-stream-offset": 1})
    ch.basic_ack(2, multiple=True)


def test_amqp_and_stream_publishers_share_one_log(target, connect, stream_name):
    amqp_stream(connect, stream_name)
    ch = connect().channel()
    ch.confirm_delivery()
    ch.basic_publish("", stream_name, b"a0")

    async def publish_and_read():
        async with producer(target) as p:
            await p.send_wait(stream_name, msg(b"s1"))
            ch.basic_publish("", stream_name, b"a2")  # confirmed before it returns
            await p.send_wait(stream_name, msg(b"s3"))
        async with consumer(target) as c:
            col = await subscribe(c, stream_name, OffsetType.FIRST)
            await until(lambda: len(col.got) == 4, "4 messages")
            return col

    col = run(publish_and_read())
    assert col.offsets() == [0, 1, 2, 3]
    assert col.bodies() == [b"a0", b"s1", b"a2", b"s3"]


def test_single_active_consumer_hands_over_from_the_answered_offset(target, stream_name):
    """Two rstream consumers named alike with single-active-consumer: only the first
    reads; when it closes, the second's consumer_update_listener is called and the second
    reads from the offset it answered (its subscription said first). RabbitMQ 3.11+: on a
    broker without it (RabbitMQ 3.10, recognised by its platform) the test is skipped."""

    async def scenario():
        async with producer(target) as p:
            await p.create_stream(stream_name)
            for i in range(4):
                await p.send_wait(stream_name, msg(b"m%d" % i))
        updates = []

        def listener(who, offset):
            async def on_update(active, _ctx):
                updates.append((who, active))
                return OffsetSpecification(OffsetType.OFFSET, offset)

            return on_update

        group = {"single-active-consumer": "true", "name": "interop-app"}
        async with consumer(target) as first, consumer(target) as second:
            platform = (await first.default_client).server_properties.get("platform", "")
            if not platform.startswith("Warren"):
                pytest.skip(f"single active consumer needs RabbitMQ 3.11+ ({platform})")
            a = await subscribe(first, stream_name, OffsetType.FIRST, properties=dict(group),
                                consumer_update_listener=listener("first", 0))
            b = await subscribe(second, stream_name, OffsetType.FIRST, properties=dict(group),
                                consumer_update_listener=listener("second", 2))
            await until(lambda: len(a.got) == 4, "the active consumer's 4 messages")
            assert a.offsets() == [0, 1, 2, 3]
            assert updates == [("first", True)]
            assert b.got == [], "the waiting consumer reads nothing"
            await first.close()
            await until(lambda: len(b.got) == 2, "the second consumer taking over")
            assert updates == [("first", True), ("second", True)]
            assert b.offsets() == [2, 3]
            assert b.bodies() == [b"m2", b"m3"]

    run(scenario())


@pytest.mark.parametrize("compression", [CompressionType.No, CompressionType.Gzip])
def test_sub_entry_batches_take_an_offset_per_record(target, connect, stream_name, compression):
    """rstream's send_sub_entry: the batch is confirmed by its one publishing id, its
    records are read at consecutive offsets between the messages around it. Over AMQP
    0-9-1 an uncompressed batch's records arrive one by one; a gzip one crashes RabbitMQ
    3.10's AMQP consumer (541 INTERNAL_ERROR) and arrives inflated from Warren."""
    async def scenario():
        confirmed = []

        def on_confirm(st):
            confirmed.append((st.message_id, st.is_confirmed))

        async with producer(target) as p:
            await p.create_stream(stream_name)
            await p.send(stream_name, msg(b"before"), on_publish_confirm=on_confirm)
            await p.send_sub_entry(stream_name, [msg(b"b%d" % i) for i in range(3)],
                                   compression_type=compression, on_publish_confirm=on_confirm)
            await p.send(stream_name, msg(b"after"), on_publish_confirm=on_confirm)
            await until(lambda: len(confirmed) == 3, "3 confirms (one for the batch)")
        assert all(ok for _, ok in confirmed)
        async with consumer(target) as c:
            col = await subscribe(c, stream_name, OffsetType.FIRST)
            await until(lambda: len(col.got) == 5, "5 records")
            assert col.offsets() == [0, 1, 2, 3, 4]
            assert col.bodies() == [b"before", b"b0", b"b1", b"b2", b"after"]

    run(scenario())
    ch = connect().channel()
    ch.basic_qos(prefetch_count=100)
    got = []
    try:
        for m, props, body in ch.consume(stream_name, arguments={"x-stream-offset": "first"},
                                         inactivity_timeout=WAIT):
            assert m is not None, f"timed out after {got}"
            got.append((props.headers["x-stream-offset"], body))
            ch.basic_ack(m.delivery_tag)
            if len(got) == 5:
                break
    except exc.ConnectionClosedByBroker as e:
        # RabbitMQ 3.10 on a compressed batch.
        assert compression is CompressionType.Gzip
        assert (e.reply_code, e.reply_text) == (541, "INTERNAL_ERROR")
        return
    assert got == [(0, b"before"), (1, b"b0"), (2, b"b1"), (3, b"b2"), (4, b"after")]
