"""Exchanges: declare/delete semantics, errors, bindings and routing of every type."""

import pika
import pika.exceptions as exc
import pytest

from helpers import declare_queue, drain, get_message, settle


def vhost_of(connection):
    return connection._impl.params.virtual_host


# ---------------------------------------------------------------- declare


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type(channel, unique, kind):
    name = unique(kind)
    ok = channel.exchange_declare(name, kind, auto_delete=True)
    assert isinstance(ok.method, pika.spec.Exchange.DeclareOk)
    try:
        channel.exchange_declare(name, kind, auto_delete=True)  # idempotent
        channel.exchange_declare(name, passive=True)
    finally:
        channel.exchange_delete(name)


def test_passive_declare_missing_404(connection, channel, unique):
    name = unique("missing")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare(name, passive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange '{name}' in vhost '{vhost_of(connection)}'")
    assert connection.is_open


def test_passive_declare_ignores_type(channel):
    """A passive declare only checks existence: a different type is not an error."""
    channel.exchange_declare("amq.direct", "fanout", passive=True)


@pytest.mark.parametrize("first,second,arg,received,current", [
    (dict(exchange_type="direct"), dict(exchange_type="fanout"), "type", "fanout", "direct"),
    (dict(durable=False), dict(durable=True), "durable", "true", "false"),
    (dict(auto_delete=False), dict(auto_delete=True), "auto_delete", "true", "false"),
    (dict(internal=False), dict(internal=True), "internal", "true", "false"),
])
def test_redeclare_inequivalent_406(connection, unique, cleanup, first, second, arg, received,
                                    current):
    name = cleanup.exchange(unique("ex"))
    ch = connection.channel()
    ch.exchange_declare(name, **{"exchange_type": "direct", **first})
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_declare(name, **{"exchange_type": "direct", **second})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' in vhost "
        f"'{vhost_of(connection)}': received '{received}' but current is '{current}'")


def test_redeclare_different_arguments_406(connection, unique, cleanup):
    name = cleanup.exchange(unique("ex"))
    ch = connection.channel()
    ch.exchange_declare(name, "direct")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_declare(name, "direct", arguments={"alternate-exchange": "foo"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{name}' in "
        f"vhost '{vhost_of(connection)}': received the value 'foo' of type 'longstr' but "
        "current is none")


def test_declare_amq_prefix_403(connection, channel, unique):
    name = "amq." + unique("ex")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare(name, "direct")
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'")


def test_passive_declare_missing_amq_prefix_is_404(channel, unique):
    name = "amq." + unique("ex")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_unknown_type_is_connection_error_503(connection, channel, unique):
    name = unique("ex")
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        channel.exchange_declare(name, "no-such-type")
    assert info.value.reply_code == 503
    # RabbitMQ says "unknown exchange type" for names that are not Erlang atoms and
    # "invalid exchange type" for names that happen to be atoms (e.g. 'foo').
    assert info.value.reply_text in (
        "COMMAND_INVALID - unknown exchange type 'no-such-type'",
        "COMMAND_INVALID - invalid exchange type 'no-such-type'")
    assert connection.is_closed


def test_empty_type_is_invalid_exchange_type_503(connection, channel, unique):
    with pytest.raises(exc.ConnectionClosedByBroker) as info:
        channel.exchange_declare(unique("ex"), "")
    assert info.value.reply_code == 503
    assert info.value.reply_text == "COMMAND_INVALID - invalid exchange type ''"


@pytest.mark.parametrize("value,type_name", [(5, "signedint"), (True, "bool")])
def test_alternate_exchange_must_be_a_string_406(connection, unique, value, type_name):
    name = unique("ex")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().exchange_declare(name, "direct", arguments={"alternate-exchange": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid type '{type_name}' for arg 'alternate-exchange' in "
        f"exchange '{name}' in vhost '{connection._impl.params.virtual_host}'")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        connection.channel().exchange_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_declare_default_exchange_403(channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare("", "direct")
    assert info.value.reply_code == 403
    assert info.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_passive_declare_default_exchange_403(channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare("", passive=True)
    assert info.value.reply_code == 403


@pytest.mark.parametrize("name,kind", [
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
])
def test_predeclared_exchanges(connection, name, kind):
    ch = connection.channel()
    ch.exchange_declare(name, passive=True)
    # they are durable, of the expected type: an equivalent declare is fine
    ch.exchange_declare(name, kind, durable=True)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_declare(name, kind, durable=False)
    assert info.value.reply_code == 406


def test_amq_default_is_not_an_exchange_name(channel):
    """The default exchange is only reachable as ''; 'amq.default' does not exist."""
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare("amq.default", passive=True)
    assert info.value.reply_code == 404


# ---------------------------------------------------------------- delete


def test_delete(channel, unique):
    name = unique("ex")
    channel.exchange_declare(name, "fanout")
    ok = channel.exchange_delete(name)
    assert isinstance(ok.method, pika.spec.Exchange.DeleteOk)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_delete_missing_is_ok(channel, unique):
    """RabbitMQ 3.10: deleting a non-existent exchange succeeds."""
    ok = channel.exchange_delete(unique("missing"))
    assert isinstance(ok.method, pika.spec.Exchange.DeleteOk)


def test_delete_if_unused_with_bindings_406(connection, unique, cleanup):
    name = cleanup.exchange(unique("ex"))
    ch = connection.channel()
    ch.exchange_declare(name, "direct")
    q = declare_queue(ch)
    ch.queue_bind(q, name, "k")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_delete(name, if_unused=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - exchange '{name}' in vhost '{vhost_of(connection)}' in use")


def test_delete_if_unused_counts_e2e_source_bindings_only(connection, unique, cleanup):
    src = cleanup.exchange(unique("src"))
    dst = cleanup.exchange(unique("dst"))
    ch = connection.channel()
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    # the destination of an e2e binding is "unused"
    ch.exchange_delete(dst, if_unused=True)
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_delete(src, if_unused=True)
    assert info.value.reply_code == 406


def test_delete_if_unused_without_bindings(channel, unique):
    name = unique("ex")
    channel.exchange_declare(name, "direct")
    channel.exchange_delete(name, if_unused=True)
    with pytest.raises(exc.ChannelClosedByBroker):
        channel.exchange_declare(name, passive=True)


def test_delete_default_exchange_403(channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_delete("")
    assert info.value.reply_code == 403
    assert info.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_delete_system_exchange_403(connection, channel):
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_delete("amq.direct")
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost "
        f"'{vhost_of(connection)}' not allowed")


def test_delete_exchange_removes_bindings(channel, unique):
    name = unique("ex")
    channel.exchange_declare(name, "fanout")
    q = declare_queue(channel)
    channel.queue_bind(q, name)
    channel.exchange_delete(name)
    channel.exchange_declare(name, "fanout")
    try:
        channel.confirm_delivery()
        channel.basic_publish(name, "", b"x")
        assert channel.queue_declare(q, passive=True).method.message_count == 0
    finally:
        channel.exchange_delete(name)


def test_auto_delete_exchange_deleted_after_last_queue_unbind(channel, unique):
    name = unique("ex")
    channel.exchange_declare(name, "direct", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, name, "a")
    channel.queue_bind(q, name, "b")
    channel.queue_unbind(q, name, "a")
    channel.exchange_declare(name, passive=True)  # still one binding
    channel.queue_unbind(q, name, "b")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_auto_delete_exchange_deleted_when_bound_queue_deleted(channel, unique):
    name = unique("ex")
    channel.exchange_declare(name, "direct", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, name, "k")
    channel.queue_delete(q)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_auto_delete_exchange_unused_from_start_survives(channel, unique):
    name = unique("ex")
    channel.exchange_declare(name, "direct", auto_delete=True)
    channel.exchange_declare(name, passive=True)
    channel.exchange_delete(name)


def test_auto_delete_only_counts_bindings_where_it_is_source(connection, unique, cleanup):
    """An auto-delete exchange that is only the *destination* of an e2e binding
    is not deleted when that binding goes; as a *source* it is."""
    dst = cleanup.exchange(unique("dst"))
    src = cleanup.exchange(unique("src"))
    ch = connection.channel()
    ch.exchange_declare(dst, "direct", auto_delete=True)
    ch.exchange_bind(dst, "amq.direct", "k")
    ch.exchange_unbind(dst, "amq.direct", "k")
    ch.exchange_declare(dst, passive=True)  # still there
    ch.exchange_declare(src, "direct", auto_delete=True)
    ch.exchange_bind("amq.direct", src, "k")
    ch.exchange_unbind("amq.direct", src, "k")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_declare(src, passive=True)
    assert info.value.reply_code == 404


# ---------------------------------------------------------------- publish errors


def test_publish_to_missing_exchange_404(connection, channel, unique):
    name = unique("missing")
    channel.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.basic_publish(name, "k", b"x")
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange '{name}' in vhost '{vhost_of(connection)}'")
    assert connection.is_open


def test_publish_to_internal_exchange_403(connection, unique):
    name = unique("internal")
    ch = connection.channel()
    ch.exchange_declare(name, "fanout", internal=True, auto_delete=True)
    pub = connection.channel()
    pub.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        pub.basic_publish(name, "k", b"x")
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        f"ACCESS_REFUSED - cannot publish to internal exchange '{name}' in vhost "
        f"'{vhost_of(connection)}'")
    ch.exchange_delete(name)


def test_publish_to_trace_exchange_403(connection):
    """amq.rabbitmq.trace is predeclared, internal: clients cannot publish to it."""
    ch = connection.channel()
    ch.exchange_declare("amq.rabbitmq.trace", passive=True)
    ch.exchange_declare("amq.rabbitmq.trace", "topic", durable=True, internal=True)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_declare("amq.rabbitmq.trace", "topic", durable=True, internal=False)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'internal' for exchange 'amq.rabbitmq.trace' "
        f"in vhost '{vhost_of(connection)}': received 'false' but current is 'true'")
    pub = connection.channel()
    pub.confirm_delivery()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        pub.basic_publish("amq.rabbitmq.trace", "k", b"x")
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.trace' in vhost "
        f"'{vhost_of(connection)}'")


def test_internal_exchange_reachable_through_e2e_binding(channel, unique):
    name = unique("internal")
    src = unique("src")
    channel.exchange_declare(src, "fanout", auto_delete=True)
    channel.exchange_declare(name, "fanout", internal=True, auto_delete=True)
    channel.exchange_bind(name, src)
    q = declare_queue(channel)
    channel.queue_bind(q, name)
    channel.confirm_delivery()
    channel.basic_publish(src, "", b"via-e2e")
    assert get_message(channel, q, auto_ack=True)[2] == b"via-e2e"
    channel.exchange_delete(src)
    channel.exchange_delete(name)


# ---------------------------------------------------------------- routing


def test_default_exchange_routes_by_queue_name(channel):
    q = declare_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"direct-to-queue")
    method, _, body = get_message(channel, q, auto_ack=True)
    assert body == b"direct-to-queue"
    assert method.exchange == ""
    assert method.routing_key == q


def test_default_exchange_bind_unbind_403(channel):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_bind(q, "", "other-key")
    assert info.value.reply_code == 403
    assert info.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_default_exchange_unbind_403(channel):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_unbind(q, "", q)
    assert info.value.reply_code == 403


def test_direct_routing(channel, unique):
    ex = unique("direct")
    channel.exchange_declare(ex, "direct", auto_delete=True)
    qa, qb = declare_queue(channel), declare_queue(channel)
    channel.queue_bind(qa, ex, "a")
    channel.queue_bind(qb, ex, "b")
    channel.queue_bind(qb, ex, "both")
    channel.queue_bind(qa, ex, "both")
    channel.confirm_delivery()
    for key in ["a", "b", "both", "none", "A"]:
        channel.basic_publish(ex, key, key.encode())
    assert [m[2] for m in drain(channel, qa)] == [b"a", b"both"]
    assert [m[2] for m in drain(channel, qb)] == [b"b", b"both"]


def test_same_queue_bound_twice_gets_one_copy(channel, unique):
    ex = unique("topic")
    channel.exchange_declare(ex, "topic", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, ex, "a.*")
    channel.queue_bind(q, ex, "*.b")
    channel.queue_bind(q, ex, "#")
    channel.confirm_delivery()
    channel.basic_publish(ex, "a.b", b"once")
    assert [m[2] for m in drain(channel, q)] == [b"once"]


def test_fanout_ignores_routing_key(channel, unique):
    ex = unique("fanout")
    channel.exchange_declare(ex, "fanout", auto_delete=True)
    queues = [declare_queue(channel) for _ in range(3)]
    for i, q in enumerate(queues):
        channel.queue_bind(q, ex, f"key-{i}")
    channel.confirm_delivery()
    channel.basic_publish(ex, "whatever", b"all")
    for q in queues:
        method, _, body = get_message(channel, q, auto_ack=True)
        assert body == b"all"
        assert method.routing_key == "whatever"
        assert method.exchange == ex


def test_unbind_stops_routing(channel, unique):
    ex = unique("direct")
    channel.exchange_declare(ex, "direct", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, ex, "k")
    channel.queue_bind(q, ex, "keep")
    channel.queue_unbind(q, ex, "k")
    channel.confirm_delivery()
    channel.basic_publish(ex, "k", b"dropped")
    channel.basic_publish(ex, "keep", b"kept")
    assert [m[2] for m in drain(channel, q)] == [b"kept"]


# Topic matrix, verified against RabbitMQ 3.10. Words are split on '.'; the empty
# routing key is zero words ('*' does not match it, '#' does); '.' is two empty words.
TOPIC_KEYS = ["", "a", ".", "a.", "..", ".a", "a.b", "a..b", "a.b.", "a.x.b", "a.x.y.b", "a.b.b",
              "b.a", "a.a", "a.b.c", "x.a.b.c", "a.c.b.d.c", "a#", "a*", "ab"]
TOPIC_CASES = {
    "*": ["a", "a#", "a*", "ab"],
    "#": TOPIC_KEYS,
    "": [""],
    "*.*": [".", "a.", ".a", "a.b", "b.a", "a.a"],
    "a.*": ["a.", "a.b", "a.a"],
    "a.#": ["a", "a.", "a.b", "a..b", "a.b.", "a.x.b", "a.x.y.b", "a.b.b", "a.a", "a.b.c",
            "a.c.b.d.c"],
    "#.a": ["a", ".a", "b.a", "a.a"],
    "a.*.b": ["a..b", "a.x.b", "a.b.b"],
    "a.#.b": ["a.b", "a..b", "a.x.b", "a.x.y.b", "a.b.b"],
    "#.#": TOPIC_KEYS,
    "*.#": [k for k in TOPIC_KEYS if k != ""],
    "#.*": [k for k in TOPIC_KEYS if k != ""],
    "a..b": ["a..b"],
    "a.*.*": ["a..b", "a.b.", "a.x.b", "a.b.b", "a.b.c"],
    "a.b.*": ["a.b.", "a.b.b", "a.b.c"],
    "*.b": ["a.b"],
    "a.#.#.b": ["a.b", "a..b", "a.x.b", "a.x.y.b", "a.b.b"],
    "#.a.#": ["a", "a.", ".a", "a.b", "a..b", "a.b.", "a.x.b", "a.x.y.b", "a.b.b", "b.a", "a.a",
              "a.b.c", "x.a.b.c", "a.c.b.d.c"],
    "a.#.b.#.c": ["a.b.c", "a.c.b.d.c"],
    "a#": ["a#"],  # wildcards only count as whole words
    "a*": ["a*"],
    "*a": [],
    "a.b#": [],
}


def test_topic_matrix(channel, unique):
    ex = unique("topic")
    channel.exchange_declare(ex, "topic", auto_delete=True)
    queues = {}
    for pattern in TOPIC_CASES:
        q = declare_queue(channel)
        channel.queue_bind(q, ex, pattern)
        queues[pattern] = q
    channel.confirm_delivery()
    for key in TOPIC_KEYS:
        channel.basic_publish(ex, key, key.encode())
    failures = []
    for pattern, expected in TOPIC_CASES.items():
        got = [m[2].decode() for m in drain(channel, queues[pattern])]
        if got != expected:
            failures.append(f"pattern {pattern!r}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("pattern,key,matches", [
    ("stock.usd.nyse", "stock.usd.nyse", True),
    ("stock.*.nyse", "stock.eur.nyse", True),
    ("stock.*.nyse", "stock.nyse", False),
    ("stock.#", "stock", True),
    ("#.nyse", "stock.usd.nyse", True),
    ("*.orange.*", "quick.orange.rabbit", True),
    ("*.*.rabbit", "quick.orange.rabbit", True),
    ("lazy.#", "lazy.orange.male.rabbit", True),
    ("*.orange.*", "quick.orange.male.rabbit", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.z.b", True),
    ("a.#.b", "a.x.y.z.c", False),
    ("#", "", True),
    ("*", "", False),
])
def test_topic_single(channel, unique, pattern, key, matches):
    ex = unique("topic")
    channel.exchange_declare(ex, "topic", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, ex, pattern)
    channel.confirm_delivery()
    channel.basic_publish(ex, key, b"m")
    assert len(drain(channel, q)) == (1 if matches else 0)


# Headers exchange matrix, verified against RabbitMQ 3.10.
HEADER_BINDINGS = {
    "none": None,
    "empty-all": {"x-match": "all"},
    "empty-any": {"x-match": "any"},  # any with no non-x- keys matches nothing
    "all-ab": {"x-match": "all", "a": "1", "b": "2"},
    "default-ab": {"a": "1", "b": "2"},  # x-match defaults to all
    "any-ab": {"x-match": "any", "a": "1", "b": "2"},
    "all-ax": {"x-match": "all", "a": "1", "x-foo": "bar"},  # x- keys ignored
    "any-x": {"x-match": "any", "x-foo": "bar"},
    "allx-ax": {"x-match": "all-with-x", "a": "1", "x-foo": "bar"},
    "anyx-x": {"x-match": "any-with-x", "x-foo": "bar"},
    "void-a": {"x-match": "all", "a": None},  # void value = header present
    "int-n": {"n": 1},
    "str-n": {"n": "1"},
    "bool-t": {"t": True},
}
HEADER_MESSAGES = {
    "noheaders": None,
    "a1": {"a": "1"},
    "a1b2": {"a": "1", "b": "2"},
    "a1b3": {"a": "1", "b": "3"},
    "a2b2": {"a": "2", "b": "2"},
    "a1b2c3": {"a": "1", "b": "2", "c": "3"},
    "a1xfoo": {"a": "1", "x-foo": "bar"},
    "xfoo": {"x-foo": "bar"},
    "a-void": {"a": None},
    "a-other": {"a": "zzz"},
    "n-int1": {"n": 1},
    "n-long1": {"n": 2 ** 40 - 2 ** 40 + 1},
    "n-str1": {"n": "1"},
    "n-bool": {"n": True},
    "t-true": {"t": True},
    "t-1": {"t": 1},
}
ALL_MSGS = list(HEADER_MESSAGES)
HEADER_EXPECTED = {
    "none": ALL_MSGS,
    "empty-all": ALL_MSGS,
    "empty-any": [],
    "all-ab": ["a1b2", "a1b2c3"],
    "default-ab": ["a1b2", "a1b2c3"],
    "any-ab": ["a1", "a1b2", "a1b3", "a2b2", "a1b2c3", "a1xfoo"],
    "all-ax": ["a1", "a1b2", "a1b3", "a1b2c3", "a1xfoo"],
    "any-x": [],
    "allx-ax": ["a1xfoo"],
    "anyx-x": ["a1xfoo", "xfoo"],
    "void-a": ["a1", "a1b2", "a1b3", "a2b2", "a1b2c3", "a1xfoo", "a-void", "a-other"],
    "int-n": ["n-int1", "n-long1"],
    "str-n": ["n-str1"],
    "bool-t": ["t-true"],
}


def test_headers_matrix(channel, unique):
    ex = unique("headers")
    channel.exchange_declare(ex, "headers", auto_delete=True)
    queues = {}
    for name, args in HEADER_BINDINGS.items():
        q = declare_queue(channel)
        channel.queue_bind(q, ex, "ignored", arguments=args)
        queues[name] = q
    channel.confirm_delivery()
    for name, headers in HEADER_MESSAGES.items():
        channel.basic_publish(ex, "rk", name.encode(), pika.BasicProperties(headers=headers))
    failures = []
    for name, expected in HEADER_EXPECTED.items():
        got = [m[2].decode() for m in drain(channel, queues[name])]
        if got != expected:
            failures.append(f"binding {name}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)


def test_headers_routing_key_ignored(channel):
    q = declare_queue(channel)
    channel.queue_bind(q, "amq.match", "some-key", arguments={"x-match": "all", "k": "v"})
    channel.confirm_delivery()
    channel.basic_publish("amq.match", "other-key", b"hit", pika.BasicProperties(headers={"k": "v"}))
    assert get_message(channel, q, auto_ack=True)[2] == b"hit"


def test_headers_invalid_x_match_406(channel):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_bind(q, "amq.headers", "", arguments={"x-match": "bogus"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        'PRECONDITION_FAILED - Invalid x-match field value <<"bogus">>; expected all, any, '
        'all-with-x, or any-with-x')



@pytest.mark.parametrize("value,text", [
    (1, "Invalid x-match field type signedint (value 1); expected longstr"),
    (b"any", 'Invalid x-match field type binary (value <<"any">>); expected longstr'),
])
def test_headers_x_match_wrong_type_406(channel, value, text):
    q = declare_queue(channel)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.queue_bind(q, "amq.headers", "", arguments={"x-match": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - " + text


def test_headers_longstr_matches_byte_array(channel):
    """A long-string binding value matches a byte-array header with the same octets
    (and the other way round)."""
    q = declare_queue(channel)
    channel.queue_bind(q, "amq.headers", "", arguments={"x-match": "any", "s": "1", "b": b"2"})
    channel.confirm_delivery()
    for body, headers in [(b"bytes", {"s": b"1"}), (b"str", {"b": "2"}), (b"no", {"s": b"2"})]:
        channel.basic_publish("amq.headers", "", body, pika.BasicProperties(headers=headers))
    got = [get_message(channel, q, auto_ack=True)[2] for _ in range(2)]
    assert got == [b"bytes", b"str"]
    assert channel.basic_get(q) == (None, None, None)

def test_headers_unbind_needs_same_arguments(channel, unique):
    ex = unique("headers")
    channel.exchange_declare(ex, "headers", auto_delete=True)
    q = declare_queue(channel)
    args = {"x-match": "any", "a": "1"}
    channel.queue_bind(q, ex, "", arguments=args)
    channel.queue_bind(q, ex, "", arguments={"x-match": "any", "keep": "1"})
    channel.queue_unbind(q, ex, "", arguments={"x-match": "any", "a": "2"})  # no such binding
    channel.confirm_delivery()
    channel.basic_publish(ex, "", b"1", pika.BasicProperties(headers={"a": "1"}))
    assert len(drain(channel, q)) == 1
    channel.queue_unbind(q, ex, "", arguments=args)
    channel.basic_publish(ex, "", b"2", pika.BasicProperties(headers={"a": "1"}))
    assert len(drain(channel, q)) == 0


# ---------------------------------------------------------------- e2e bindings


def test_exchange_to_exchange_bind_unbind(channel, unique):
    src = unique("src")
    dst = unique("dst")
    # not auto-delete: an auto-delete source would vanish with its last binding
    channel.exchange_declare(src, "topic")
    channel.exchange_declare(dst, "direct", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, dst, "a.b")
    channel.exchange_bind(dst, src, "a.*")
    channel.confirm_delivery()
    channel.basic_publish(src, "a.b", b"routed")
    channel.basic_publish(src, "a.c", b"dst-drops")  # matches e2e, not the queue binding
    channel.basic_publish(src, "x.b", b"src-drops")
    got = drain(channel, q)
    assert [m[2] for m in got] == [b"routed"]
    assert got[0][0].exchange == src  # delivered with the exchange it was published to
    channel.exchange_unbind(dst, src, "a.*")
    channel.basic_publish(src, "a.b", b"after-unbind")
    assert drain(channel, q) == []
    channel.exchange_delete(src)
    channel.exchange_delete(dst)


def test_exchange_binding_cycle_delivers_once(channel, unique):
    a, b = unique("a"), unique("b")
    channel.exchange_declare(a, "fanout", auto_delete=True)
    channel.exchange_declare(b, "fanout", auto_delete=True)
    q = declare_queue(channel)
    channel.queue_bind(q, a)
    channel.queue_bind(q, b)
    channel.exchange_bind(b, a)
    channel.exchange_bind(a, b)
    channel.confirm_delivery()
    channel.basic_publish(a, "", b"x")
    assert len(drain(channel, q)) == 1
    channel.exchange_delete(a)
    channel.exchange_delete(b)


def test_exchange_bind_missing_404(connection, unique):
    missing = unique("missing")
    ch = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_bind(missing, "amq.direct", "k")
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange '{missing}' in vhost '{vhost_of(connection)}'")
    ch = connection.channel()
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        ch.exchange_bind("amq.direct", missing, "k")
    assert info.value.reply_code == 404


@pytest.mark.parametrize("op", ["bind", "unbind"])
def test_exchange_bind_default_exchange_as_destination_403(channel, unique, op):
    src = unique("src")
    channel.exchange_declare(src, "direct", auto_delete=True)
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        getattr(channel, f"exchange_{op}")("", src, "k")
    assert info.value.reply_code == 403
    assert info.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_exchange_bind_both_missing_reports_source(connection, channel, unique):
    src, dst = unique("src"), unique("dst")
    with pytest.raises(exc.ChannelClosedByBroker) as info:
        channel.exchange_bind(dst, src, "k")
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange '{src}' in vhost '{connection._impl.params.virtual_host}'")


def test_unbind_nonexistent_is_ok(channel, unique):
    q = declare_queue(channel)
    channel.queue_unbind(q, "amq.direct", "never-bound")
    channel.queue_unbind(q, unique("missing-ex"), "k")
    channel.exchange_unbind(unique("missing"), "amq.direct", "k")


# ---------------------------------------------------------------- alternate exchange


def test_alternate_exchange(channel, unique):
    main, alt = unique("main"), unique("alt")
    channel.exchange_declare(alt, "fanout", auto_delete=True)
    channel.exchange_declare(main, "direct", auto_delete=True,
                             arguments={"alternate-exchange": alt})
    q_main, q_alt = declare_queue(channel), declare_queue(channel)
    channel.queue_bind(q_main, main, "known")
    channel.queue_bind(q_alt, alt)
    returned = []
    channel.add_on_return_callback(lambda *a: returned.append(a))
    channel.confirm_delivery()
    channel.basic_publish(main, "known", b"m1")
    channel.basic_publish(main, "unknown", b"m2", mandatory=True)  # AE routes it: no return
    assert [m[2] for m in drain(channel, q_main)] == [b"m1"]
    alt_msgs = drain(channel, q_alt)
    assert [m[2] for m in alt_msgs] == [b"m2"]
    assert alt_msgs[0][0].exchange == main
    assert alt_msgs[0][0].routing_key == "unknown"
    settle(channel.connection, 0.05)
    assert returned == []
    channel.exchange_delete(main)
    channel.exchange_delete(alt)


def test_alternate_exchange_missing_then_unroutable(channel, unique):
    main = unique("main")
    channel.exchange_declare(main, "direct", auto_delete=True,
                             arguments={"alternate-exchange": unique("nonexistent")})
    q = declare_queue(channel)
    channel.queue_bind(q, main, "k")
    channel.confirm_delivery()
    with pytest.raises(exc.UnroutableError):
        channel.basic_publish(main, "other", b"x", mandatory=True)
    channel.exchange_delete(main)
