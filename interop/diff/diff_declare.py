import sys

from harness import P, main, spec

S = []


def scenario(fn):
    S.append((fn.__name__, fn))
    return fn


Q = spec.Queue
E = spec.Exchange
B = spec.Basic


def c1(s):
    c = s.conn()
    c.open(1)
    return c


def qdecl(c, ch, name, **kw):
    return c.rpc(ch, Q.Declare(queue=name, **kw))


def arg_case(args, **kw):
    def f(s):
        c = c1(s)
        qdecl(c, 1, s.n("q"), arguments=args, **kw)
        c.open(2)
        qdecl(c, 2, s.n("q"), passive=True)
    return f


ARG_CASES = {
    "qtype-quorum-nondurable": ({"x-queue-type": "quorum"}, {}),
    "qtype-quorum-exclusive": ({"x-queue-type": "quorum"}, {"durable": True, "exclusive": True}),
    "qtype-quorum-autodelete": ({"x-queue-type": "quorum"}, {"durable": True, "auto_delete": True}),
    "qtype-stream-nondurable": ({"x-queue-type": "stream"}, {}),
    "qtype-bogus": ({"x-queue-type": "bogus"}, {}),
    "qtype-int": ({"x-queue-type": 5}, {}),
    "qtype-classic": ({"x-queue-type": "classic"}, {}),
    "qmode-lazy": ({"x-queue-mode": "lazy"}, {}),
    "qmode-bogus": ({"x-queue-mode": "bogus"}, {}),
    "qmode-int": ({"x-queue-mode": 1}, {}),
    "qversion-2": ({"x-queue-version": 2}, {}),
    "qversion-3": ({"x-queue-version": 3}, {}),
    "qversion-str": ({"x-queue-version": "1"}, {}),
    "maxlen-bool": ({"x-max-length": True}, {}),
    "maxlen-float": ({"x-max-length": 1.5}, {}),
    "maxlen-zero": ({"x-max-length": 0}, {}),
    "maxlen-big": ({"x-max-length": 2 ** 40}, {}),
    "maxlenbytes-str": ({"x-max-length-bytes": "1"}, {}),
    "ttl-float": ({"x-message-ttl": 1.5}, {}),
    "ttl-zero": ({"x-message-ttl": 0}, {}),
    "ttl-huge": ({"x-message-ttl": 2 ** 40}, {}),
    "expires-huge": ({"x-expires": 2 ** 40}, {}),
    "expires-float": ({"x-expires": 1.5}, {}),
    "overflow-rpdlx": ({"x-overflow": "reject-publish-dlx"}, {}),
    "overflow-empty": ({"x-overflow": ""}, {}),
    "dlx-empty": ({"x-dead-letter-exchange": ""}, {}),
    "dlx-bool": ({"x-dead-letter-exchange": True}, {}),
    "dlrk-int": ({"x-dead-letter-exchange": "x", "x-dead-letter-routing-key": 5}, {}),
    "dlrk-empty": ({"x-dead-letter-exchange": "x", "x-dead-letter-routing-key": ""}, {}),
    "prio-zero": ({"x-max-priority": 0}, {}),
    "prio-str": ({"x-max-priority": "5"}, {}),
    "prio-bool": ({"x-max-priority": True}, {}),
    "sac-int": ({"x-single-active-consumer": 1}, {}),
    "sac-false": ({"x-single-active-consumer": False}, {}),
    "delivery-limit": ({"x-delivery-limit": 5}, {}),
    "delivery-limit-str": ({"x-delivery-limit": "a"}, {}),
    "maxinmem": ({"x-max-in-memory-length": 5}, {}),
    "maxinmem-neg": ({"x-max-in-memory-length": -5}, {}),
    "master-locator": ({"x-queue-master-locator": "bogus"}, {}),
    "master-locator-ok": ({"x-queue-master-locator": "min-masters"}, {}),
    "two-bad": ({"x-max-length": -1, "x-message-ttl": -1}, {}),
    "two-bad-b": ({"x-message-ttl": -1, "x-expires": 0}, {}),
    "two-bad-c": ({"x-overflow": "x", "x-max-priority": 999}, {}),
    "dlrk-nodlx-and-bad": ({"x-dead-letter-routing-key": "k", "x-max-length": -1}, {}),
    "dlx-dlrk-bad": ({"x-dead-letter-routing-key": 5}, {}),
    "stream-durable": ({"x-queue-type": "stream"}, {"durable": True}),
    "quorum-durable": ({"x-queue-type": "quorum"}, {"durable": True}),
    "quorum-prio": ({"x-queue-type": "quorum", "x-max-priority": 5}, {"durable": True}),
}

for _name, (_args, _kw) in ARG_CASES.items():
    S.append((f"arg-{_name}", arg_case(_args, **_kw)))


def redecl_case(first, second, kw1=None, kw2=None):
    def f(s):
        c = c1(s)
        qdecl(c, 1, s.n("q"), arguments=first, **(kw1 or {}))
        qdecl(c, 1, s.n("q"), arguments=second, **(kw2 or {}))
    return f


REDECL = {
    "durable": (None, None, {"durable": True}, {}),
    "autodelete": (None, None, {}, {"auto_delete": True}),
    "exclusive-same-conn": (None, None, {"exclusive": True}, {}),
    "qtype-classic-vs-none": (None, {"x-queue-type": "classic"}, {}, {}),
    "qtype-none-vs-classic": ({"x-queue-type": "classic"}, None, {}, {}),
    "qtype-classic-vs-quorum": (None, {"x-queue-type": "quorum"}, {}, {}),
    "qmode-change": ({"x-queue-mode": "lazy"}, {"x-queue-mode": "default"}, {}, {}),
    "qmode-none": ({"x-queue-mode": "lazy"}, None, {}, {}),
    "expires-change": ({"x-expires": 1000}, {"x-expires": 2000}, {}, {}),
    "maxlenbytes-change": ({"x-max-length-bytes": 10}, {"x-max-length-bytes": 20}, {}, {}),
    "dlrk-change": ({"x-dead-letter-exchange": "a", "x-dead-letter-routing-key": "k"},
                    {"x-dead-letter-exchange": "a", "x-dead-letter-routing-key": "j"}, {}, {}),
    "ttl-int-vs-long": ({"x-message-ttl": 100}, {"x-message-ttl": 2 ** 40}, {}, {}),
    "sac-change": ({"x-single-active-consumer": True}, {"x-single-active-consumer": False}, {}, {}),
    "qversion-change": ({"x-queue-version": 1}, {"x-queue-version": 2}, {}, {}),
    "ttl-invalid-on-redeclare": ({"x-message-ttl": 100}, {"x-message-ttl": -1}, {}, {}),
    "overflow-none": ({"x-overflow": "reject-publish"}, None, {}, {}),
    "maxlen-none": ({"x-max-length": 1}, None, {}, {}),
    "passive-ignores": ({"x-max-length": 1}, {"x-max-length": 2}, {}, {"passive": True}),
    "passive-durable": (None, None, {"durable": True}, {"passive": True}),
    "dlx-none": ({"x-dead-letter-exchange": "a"}, None, {}, {}),
    "durable-and-arg": ({"x-max-length": 1}, {"x-max-length": 2}, {"durable": True}, {}),
}
for _name, (_a, _b, _k1, _k2) in REDECL.items():
    S.append((f"redecl-{_name}", redecl_case(_a, _b, _k1, _k2)))


@scenario
def exclusive_other_conn_ops(s):
    c = c1(s)
    q = s.n("exq")
    qdecl(c, 1, q, exclusive=True)
    c.publish(1, "", q, b"x")
    c.sync(1)
    d = s.conn("other")
    ops = [
        Q.Declare(queue=q, passive=True),
        Q.Declare(queue=q),
        Q.Declare(queue=q, exclusive=True),
        Q.Bind(queue=q, exchange="amq.direct", routing_key="k"),
        Q.Unbind(queue=q, exchange="amq.direct", routing_key="k"),
        Q.Purge(queue=q),
        Q.Delete(queue=q),
        B.Get(queue=q),
        B.Consume(queue=q, consumer_tag="t"),
    ]
    for i, op in enumerate(ops):
        d.open(i + 1)
        d.rpc(i + 1, op)


@scenario
def exclusive_bind_nowait_other(s):
    c = c1(s)
    q = s.n("exq")
    qdecl(c, 1, q, exclusive=True)
    d = s.conn("other")
    d.open(1)
    d.rpc(1, Q.Bind(queue=q, exchange="amq.direct", routing_key="k", nowait=True))


@scenario
def exchange_redeclare(s):
    c = c1(s)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="direct"))
    for i, kw in enumerate([dict(durable=True), dict(auto_delete=True), dict(internal=True),
                            dict(arguments={"alternate-exchange": "ae"}), dict(type="topic"),
                            dict(type="bogus"), dict(passive=True, type="bogus"),
                            dict(arguments={"x-foo": 1})]):
        c.open(i + 2)
        kw.setdefault("type", "direct")
        c.rpc(i + 2, E.Declare(exchange=x, **kw))


@scenario
def exchange_ae_change(s):
    c = c1(s)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="direct", arguments={"alternate-exchange": "a"}))
    c.rpc(1, E.Declare(exchange=x, type="direct", arguments={"alternate-exchange": "b"}))
    c.open(2)
    c.rpc(2, E.Declare(exchange=x, type="direct"))
    c.open(3)
    c.rpc(3, E.Declare(exchange=s.n("y"), type="direct", arguments={"alternate-exchange": 5}))
    c.open(4)
    c.rpc(4, E.Declare(exchange=s.n("y"), type="direct", passive=True))


@scenario
def exchange_names(s):
    c = c1(s)
    for i, (name, typ) in enumerate([(s.n("bad name!"), "direct"), ("amq.direct", "direct"),
                                      ("amq.direct", "fanout"), ("amq.topic", "topic"),
                                      ("amq.rabbitmq.trace", "topic"), ("AMQ.x", "direct"),
                                      ("amq.", "direct"), (s.n("x"), ""),
                                      (s.n("x2"), "x-consistent-hash"),
                                      (s.n("x3"), "x-delayed-message")]):
        c.open(i + 2)
        c.rpc(i + 2, E.Declare(exchange=name, type=typ))
        if c.dead:
            c = s.conn()
            c.open(i + 2)


@scenario
def exchange_delete_variants(s):
    c = c1(s)
    for i, m in enumerate([E.Delete(exchange="amq.nonexistent"), E.Delete(exchange="amq.direct", if_unused=True),
                           E.Delete(exchange=""), E.Delete(exchange=s.n("missing"), if_unused=True),
                           E.Delete(exchange="amq.default")]):
        c.open(i + 2)
        c.rpc(i + 2, m)


@scenario
def exchange_bind_variants(s):
    c = c1(s)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="direct", auto_delete=True))
    ops = [
        E.Bind(destination=x, source=s.n("missing"), routing_key="k"),
        E.Bind(destination=s.n("missing"), source=x, routing_key="k"),
        E.Bind(destination=s.n("m1"), source=s.n("m2"), routing_key="k"),
        E.Bind(destination=x, source="", routing_key="k"),
        E.Bind(destination="", source=x, routing_key="k"),
        E.Bind(destination="amq.direct", source=x, routing_key="k"),
        E.Unbind(destination=x, source=s.n("missing"), routing_key="k"),
        E.Unbind(destination=s.n("missing"), source=x, routing_key="k"),
        E.Unbind(destination=x, source="", routing_key="k"),
        E.Unbind(destination="", source=x, routing_key="k"),
        E.Unbind(destination="amq.direct", source=x, routing_key="k"),
        E.Unbind(destination="amq.direct", source=x, routing_key="nonexist"),
    ]
    for i, op in enumerate(ops):
        c.open(i + 2)
        c.rpc(i + 2, op)


@scenario
def queue_bind_variants(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    ops = [
        Q.Bind(queue=s.n("missing"), exchange="amq.direct", routing_key="k"),
        Q.Bind(queue=q, exchange=s.n("missing"), routing_key="k"),
        Q.Bind(queue=s.n("missing"), exchange=s.n("missing2"), routing_key="k"),
        Q.Bind(queue=q, exchange="", routing_key="k"),
        Q.Bind(queue=q, exchange="", routing_key=q),
        Q.Unbind(queue=s.n("missing"), exchange="amq.direct", routing_key="k"),
        Q.Unbind(queue=q, exchange=s.n("missing"), routing_key="k"),
        Q.Unbind(queue=q, exchange="", routing_key=q),
        Q.Unbind(queue=q, exchange="amq.direct", routing_key="notbound"),
        Q.Bind(queue=q, exchange="amq.default", routing_key="k"),
        Q.Bind(queue="", exchange="amq.direct", routing_key="k"),
        Q.Bind(queue="", exchange="amq.direct", routing_key=""),
        Q.Unbind(queue="", exchange="amq.direct", routing_key="k"),
        Q.Purge(queue=""),
        Q.Delete(queue=""),
        B.Get(queue=""),
    ]
    for i, op in enumerate(ops):
        c.open(i + 2)
        c.rpc(i + 2, op)


@scenario
def empty_queue_name_last_declared(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.rpc(1, Q.Bind(queue="", exchange="amq.direct", routing_key=""))
    c.publish(1, "amq.direct", q, b"via-rk-q")
    c.publish(1, "amq.direct", "", b"via-empty")
    c.sync(1)
    c.rpc(1, B.Get(queue="", no_ack=True))
    c.rpc(1, B.Get(queue="", no_ack=True))
    c.rpc(1, B.Get(queue="", no_ack=True))
    c.rpc(1, B.Consume(queue="", consumer_tag="ct", no_ack=True))
    c.rpc(1, Q.Purge(queue=""))
    c.rpc(1, Q.Delete(queue=""))
    c.rpc(1, Q.Delete(queue=""))
    c.rpc(1, B.Get(queue=""))


@scenario
def amq_prefix_queue(s):
    c = c1(s)
    for i, m in enumerate([Q.Declare(queue="amq.foo", passive=True), Q.Declare(queue="amq.foo"),
                           Q.Declare(queue="amq.gen-abc"), Q.Delete(queue="amq.foo"),
                           Q.Purge(queue="amq.foo"), Q.Declare(queue="AMQ.foo", exclusive=True)]):
        c.open(i + 2)
        c.rpc(i + 2, m)


@scenario
def delete_if_empty_with_unacked(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Delete(queue=q, if_empty=True))
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def delete_if_unused_with_consumer_other_channel(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="ct"))
    c.rpc(1, Q.Delete(queue=q, if_unused=True))
    c.open(3)
    c.rpc(3, Q.Delete(queue=q, if_unused=True, if_empty=True))
    c.open(4)
    c.rpc(4, Q.Delete(queue=q))
    c.wait(0.3)


@scenario
def delete_queue_with_unacked_then_ack(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    for i in range(3):
        c.publish(1, "", q, str(i).encode())
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Delete(queue=q))
    c.send(1, B.Ack(delivery_tag=1))
    c.send(1, B.Nack(delivery_tag=2, requeue=True))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def purge_count_and_unacked(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    for i in range(5):
        c.publish(1, "", q, str(i).encode())
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Purge(queue=q))
    c.send(1, B.Reject(delivery_tag=1, requeue=True))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q))
    c.rpc(1, Q.Purge(queue=q, nowait=True))
    c.rpc(1, Q.Declare(queue=q))
    c.rpc(1, Q.Delete(queue=q, nowait=True))
    c.rpc(1, Q.Declare(queue=q, passive=True))


if __name__ == "__main__":
    main(S, sys.argv[1:])
