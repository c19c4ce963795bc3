import sys
import time

from harness import P, main, spec

S = []


def scenario(fn):
    S.append((fn.__name__, fn))
    return fn


Q = spec.Queue
E = spec.Exchange
B = spec.Basic
TX = spec.Tx
CF = spec.Confirm


def c1(s):
    c = s.conn()
    c.open(1)
    return c


def qdecl(c, ch, name, **kw):
    return c.rpc(ch, Q.Declare(queue=name, **kw))


@scenario
def unknown_tags(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    for i, m in enumerate([B.Ack(delivery_tag=5), B.Reject(delivery_tag=5), B.Nack(delivery_tag=5),
                           B.Nack(delivery_tag=5, multiple=True), B.Ack(delivery_tag=5, multiple=True),
                           B.Nack(delivery_tag=0, multiple=False), B.Reject(delivery_tag=0),
                           B.Nack(delivery_tag=0, multiple=True)]):
        c.open(i + 2)
        c.send(i + 2, m)
        c.sync(i + 2)


@scenario
def nack_multiple_zero(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    for i in range(3):
        c.publish(1, "", q, str(i).encode())
    c.sync(1)
    for _ in range(3):
        c.rpc(1, B.Get(queue=q))
    c.send(1, B.Nack(delivery_tag=0, multiple=True, requeue=True))
    c.sync(1)
    for _ in range(4):
        c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def reject_requeue_order_and_redelivered(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    for i in range(4):
        c.publish(1, "", q, str(i).encode())
    c.sync(1)
    for _ in range(4):
        c.rpc(1, B.Get(queue=q))
    c.send(1, B.Reject(delivery_tag=3, requeue=True))
    c.send(1, B.Reject(delivery_tag=1, requeue=True))
    c.sync(1)
    for _ in range(3):
        c.rpc(1, B.Get(queue=q))


@scenario
def recover_with_consumer(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    for i in range(3):
        c.publish(1, "", q, str(i).encode())
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="ct"))
    c.wait(0.3)
    c.send(1, B.Ack(delivery_tag=2))
    c.rpc(1, B.Recover(requeue=True))
    c.wait(0.3)
    c.send(1, B.Ack(delivery_tag=1))
    c.send(1, B.Ack(delivery_tag=5))
    c.sync(1)


@scenario
def recover_async(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.RecoverAsync(requeue=True))
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.open(2)
    c.send(2, B.RecoverAsync(requeue=False))
    c.sync(2)


@scenario
def recover_get_then_consume(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.publish(1, "", q, b"1")
    c.publish(1, "", q, b"2")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Consume(queue=q, consumer_tag="ct", no_ack=True))
    c.wait(0.2)
    c.rpc(1, B.Recover(requeue=True))
    c.wait(0.3)


@scenario
def qos_variants(s):
    c = c1(s)
    for i, m in enumerate([B.Qos(prefetch_count=5, global_qos=True), B.Qos(prefetch_size=10),
                           B.Qos(prefetch_count=65535), B.Qos(prefetch_size=1, global_qos=True)]):
        c.open(i + 2)
        c.rpc(i + 2, m)


@scenario
def qos_global_shared(s):
    c = c1(s)
    q1, q2 = s.n("q1"), s.n("q2")
    qdecl(c, 1, q1, exclusive=True)
    qdecl(c, 1, q2, exclusive=True)
    for i in range(4):
        c.publish(1, "", q1, b"a%d" % i)
        c.publish(1, "", q2, b"b%d" % i)
    c.sync(1)
    c.rpc(1, B.Qos(prefetch_count=3, global_qos=True))
    c.rpc(1, B.Consume(queue=q1, consumer_tag="c1"))
    c.wait(0.3)
    c.rpc(1, B.Consume(queue=q2, consumer_tag="c2"))
    c.wait(0.3)
    c.send(1, B.Ack(delivery_tag=3, multiple=True))
    c.wait(0.3)


@scenario
def qos_global_and_consumer(s):
    c = c1(s)
    q1 = s.n("q1")
    qdecl(c, 1, q1, exclusive=True)
    for i in range(6):
        c.publish(1, "", q1, b"a%d" % i)
    c.sync(1)
    c.rpc(1, B.Qos(prefetch_count=4, global_qos=True))
    c.rpc(1, B.Qos(prefetch_count=2, global_qos=False))
    c.rpc(1, B.Consume(queue=q1, consumer_tag="c1"))
    c.wait(0.3)
    c.rpc(1, B.Consume(queue=q1, consumer_tag="c2"))
    c.wait(0.3)
    c.rpc(1, B.Consume(queue=q1, consumer_tag="c3"))
    c.wait(0.3)


@scenario
def qos_lowered_while_consuming(s):
    c = c1(s)
    q1 = s.n("q1")
    qdecl(c, 1, q1, exclusive=True)
    for i in range(6):
        c.publish(1, "", q1, b"a%d" % i)
    c.sync(1)
    c.rpc(1, B.Qos(prefetch_count=3, global_qos=False))
    c.rpc(1, B.Consume(queue=q1, consumer_tag="c1"))
    c.wait(0.3)
    c.rpc(1, B.Qos(prefetch_count=1, global_qos=False))
    c.send(1, B.Ack(delivery_tag=1))
    c.wait(0.3)
    c.rpc(1, B.Qos(prefetch_count=5, global_qos=False))
    c.wait(0.3)


@scenario
def consume_variants(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="", no_local=True, no_ack=True))
    c.wait(0.2)
    c.rpc(1, B.Consume(queue=q, consumer_tag="nw", nowait=True))
    c.rpc(1, B.Cancel(consumer_tag="nw", nowait=True))
    c.rpc(1, B.Cancel(consumer_tag="nw"))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="ex", exclusive=True))
    c.open(3)
    c.rpc(3, B.Consume(queue=q, consumer_tag="x", arguments={"x-priority": 2 ** 40}))
    c.open(4)
    c.rpc(4, B.Consume(queue=q, consumer_tag="y", arguments={"x-priority": "high"}))
    c.open(5)
    c.rpc(5, B.Consume(queue=q, consumer_tag="z", arguments={"x-cancel-on-ha-failover": True, "foo": 1}))


@scenario
def consume_exclusive_then_get(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    c.rpc(1, B.Consume(queue=q, consumer_tag="ex", exclusive=True))
    c.open(2)
    c.publish(2, "", q, b"1")
    c.sync(2)
    c.wait(0.2)
    c.rpc(2, B.Get(queue=q))
    c.rpc(2, Q.Declare(queue=q, passive=True))
    c.rpc(1, Q.Delete(queue=q))
    c.wait(0.2)


@scenario
def consume_nowait_duplicate_tag(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="a", nowait=True))


@scenario
def consume_missing_nowait(s):
    c = c1(s)
    c.rpc(1, B.Consume(queue=s.n("missing"), consumer_tag="a", nowait=True))


@scenario
def get_count_and_redelivered(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    for i in range(3):
        c.publish(1, "", q, str(i).encode(), P(content_type="text/plain", headers={"h": 1}))
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.send(1, B.Nack(delivery_tag=1, requeue=True))
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.rpc(1, Q.Declare(queue=q))


@scenario
def publish_props_roundtrip(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    props = [
        P(expiration="0"), P(expiration="-1"), P(expiration="abc"), P(expiration=" 5"),
        P(expiration="99999999999999999999"), P(expiration=""), P(expiration="1.5"),
        P(priority=300 % 256), P(delivery_mode=3), P(delivery_mode=0),
    ]
    for i, p in enumerate(props):
        c.open(i + 2)
        c.publish(i + 2, "", q, b"%d" % i, p)
        c.sync(i + 2)
    c.wait(0.2)
    for _ in range(len(props) + 1):
        c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def cc_bcc(s):
    c = c1(s)
    q1, q2, q3 = s.n("q1"), s.n("q2"), s.n("q3")
    for q in (q1, q2, q3):
        qdecl(c, 1, q, exclusive=True)
    c.publish(1, "", q1, b"m", P(headers={"CC": [q2], "BCC": [q3], "other": "x"}))
    c.publish(1, "", q1, b"m2", P(headers={"CC": [q2, 5], "BCC": q3}))
    c.sync(1)
    c.open(2)
    c.publish(2, "", q1, b"m3", P(headers={"CC": "q2"}))
    c.sync(2)
    c.open(3)
    c.publish(3, "", q1, b"m4", P(headers={"BCC": "q2"}))
    c.sync(3)
    c.open(4)
    c.publish(4, "", q1, b"m5", P(headers={"CC": [], "BCC": []}))
    c.sync(4)
    for q in (q1, q2, q3):
        for _ in range(4):
            c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def mandatory_return_variants(s):
    c = c1(s)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="topic", auto_delete=False))
    c.publish(1, x, "a.b", b"1", P(headers={"CC": ["c.d"]}), mandatory=True)
    c.publish(1, "", s.n("nope"), b"2", P(priority=3, headers={"BCC": ["x"]}), mandatory=True)
    c.publish(1, "amq.fanout", "", b"3", mandatory=True)
    c.publish(1, "amq.headers", "", b"4", mandatory=True)
    c.sync(1)
    c.wait(0.2)


@scenario
def alternate_exchange_chain(s):
    c = c1(s)
    x, ae, ae2 = s.n("x"), s.n("ae"), s.n("ae2")
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.rpc(1, E.Declare(exchange=ae2, type="fanout"))
    c.rpc(1, Q.Bind(queue=q, exchange=ae2))
    c.rpc(1, E.Declare(exchange=ae, type="direct", arguments={"alternate-exchange": ae2}))
    c.rpc(1, E.Declare(exchange=x, type="direct", arguments={"alternate-exchange": ae}))
    c.publish(1, x, "k", b"1", mandatory=True)
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    # AE cycle
    c.rpc(1, E.Declare(exchange=s.n("cy1"), type="direct", arguments={"alternate-exchange": s.n("cy2")}))
    c.rpc(1, E.Declare(exchange=s.n("cy2"), type="direct", arguments={"alternate-exchange": s.n("cy1")}))
    c.publish(1, s.n("cy1"), "k", b"2", mandatory=True)
    c.sync(1)
    # AE to internal exchange
    c.rpc(1, E.Declare(exchange=s.n("int"), type="fanout", internal=True))
    c.rpc(1, Q.Bind(queue=q, exchange=s.n("int")))
    c.rpc(1, E.Declare(exchange=s.n("xi"), type="direct", arguments={"alternate-exchange": s.n("int")}))
    c.publish(1, s.n("xi"), "k", b"3", mandatory=True)
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    # AE with CC
    c.publish(1, x, "k", b"4", P(headers={"CC": ["j"]}), mandatory=True)
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))
    # AE as non-string
    c.rpc(1, E.Declare(exchange=s.n("xb"), type="direct", arguments={"alternate-exchange": 5}))
    c.publish(1, s.n("xb"), "k", b"5", mandatory=True)
    c.sync(1)


@scenario
def dlx_headers_rejected(s):
    c = c1(s)
    q, dq = s.n("q"), s.n("dq")
    qdecl(c, 1, dq, exclusive=True)
    qdecl(c, 1, q, exclusive=True, arguments={"x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": dq})
    c.publish(1, "", q, b"1", P(expiration="60000", priority=2, headers={"a": 1}))
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.Reject(delivery_tag=1, requeue=False))
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=dq, no_ack=True))


@scenario
def dlx_expired(s):
    c = c1(s)
    q, dq = s.n("q"), s.n("dq")
    qdecl(c, 1, dq, exclusive=True)
    qdecl(c, 1, q, exclusive=True, arguments={"x-dead-letter-exchange": "amq.direct",
                                               "x-message-ttl": 50})
    c.rpc(1, Q.Bind(queue=dq, exchange="amq.direct", routing_key=q))
    c.publish(1, "", q, b"1", P(headers={"x-death": "bogus"}))
    c.publish(1, "", q, b"2", P(expiration="10"))
    c.sync(1)
    time.sleep(0.4)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, B.Get(queue=dq, no_ack=True))
    c.rpc(1, B.Get(queue=dq, no_ack=True))


@scenario
def dlx_twice_two_queues(s):
    c = c1(s)
    q1, q2, dq = s.n("q1"), s.n("q2"), s.n("dq")
    qdecl(c, 1, dq, exclusive=True)
    qdecl(c, 1, q2, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dq})
    qdecl(c, 1, q1, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q2})
    c.publish(1, "", q1, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q1))
    c.send(1, B.Nack(delivery_tag=1, requeue=False))
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=q2))
    c.send(1, B.Reject(delivery_tag=2, requeue=False))
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=dq, no_ack=True))


@scenario
def dlx_missing_exchange(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True, arguments={"x-dead-letter-exchange": s.n("missing")})
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Get(queue=q))
    c.send(1, B.Reject(delivery_tag=1, requeue=False))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def dlx_maxlen(s):
    c = c1(s)
    q, dq = s.n("q"), s.n("dq")
    qdecl(c, 1, dq, exclusive=True)
    qdecl(c, 1, q, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dq,
                                               "x-max-length": 1})
    c.publish(1, "", q, b"1", P(headers={"CC": ["zz"]}))
    c.publish(1, "", q, b"2")
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=dq, no_ack=True))
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def maxlen_zero_and_reject_publish(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    c.rpc(1, CF.Select())
    c.publish(1, "", q, b"1", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    q2 = s.n("q2")
    qdecl(c, 1, q2, exclusive=True, arguments={"x-max-length": 0})
    c.publish(1, "", q2, b"1", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q2, passive=True))


@scenario
def reject_publish_fanout_partial(s):
    c = c1(s)
    q1, q2 = s.n("q1"), s.n("q2")
    qdecl(c, 1, q1, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    qdecl(c, 1, q2, exclusive=True)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="fanout"))
    c.rpc(1, Q.Bind(queue=q1, exchange=x))
    c.rpc(1, Q.Bind(queue=q2, exchange=x))
    c.rpc(1, CF.Select())
    c.publish(1, x, "", b"1")
    c.publish(1, x, "", b"2")
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q2, passive=True))


@scenario
def tx_variants(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.rpc(1, TX.Select())
    c.publish(1, "", q, b"1")
    c.send(1, B.Ack(delivery_tag=7))
    c.sync(1)
    c.open(2)
    c.rpc(2, TX.Select())
    c.publish(2, "", q, b"2")
    c.rpc(2, TX.Commit())
    c.rpc(2, B.Get(queue=q))
    c.send(2, B.Ack(delivery_tag=1))
    c.send(2, B.Ack(delivery_tag=1))
    c.rpc(2, TX.Commit())
    c.open(3)
    c.rpc(3, TX.Select())
    c.rpc(3, CF.Select())
    c.open(4)
    c.rpc(4, TX.Select())
    c.rpc(4, TX.Select())
    c.rpc(4, CF.Select(nowait=True))


@scenario
def tx_get_ack_then_close(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.open(2)
    c.rpc(2, TX.Select())
    c.rpc(2, B.Get(queue=q))
    c.send(2, B.Ack(delivery_tag=1))
    c.rpc(2, spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.rpc(1, B.Get(queue=q, no_ack=True))
    c.rpc(1, Q.Delete(queue=q))


@scenario
def tx_publish_mandatory_unroutable_rollback(s):
    c = c1(s)
    c.rpc(1, TX.Select())
    c.publish(1, "", s.n("nope"), b"1", mandatory=True)
    c.rpc(1, TX.Rollback())
    c.publish(1, "", s.n("nope"), b"2", mandatory=True)
    c.rpc(1, TX.Commit())
    c.wait(0.2)


@scenario
def confirm_nowait_and_tags(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    c.rpc(1, CF.Select(nowait=True))
    c.publish(1, "", q, b"1")
    c.publish(1, "", s.n("none"), b"2")
    c.publish(1, "", s.n("none"), b"3", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.publish(1, s.n("missingx"), "k", b"4")
    c.wait(0.3)


@scenario
def headers_types(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, exclusive=True)
    x = s.n("hx")
    c.rpc(1, E.Declare(exchange=x, type="headers"))
    binds = [{"f": 1.5}, {"l": [1, 2]}, {"t": {"a": 1}}, {"x-match": "any", "a": 1, "b": None},
             {"x-match": "all", "x-match2": 1}, {"x-match": 5}, {"X-Match": "any", "a": 1}]
    for i, b in enumerate(binds):
        c.open(10 + i)
        c.rpc(10 + i, Q.Bind(queue=q, exchange=x, routing_key=str(i), arguments=b))
    msgs = [{"f": 1.5}, {"l": [1, 2]}, {"t": {"a": 1}}, {"b": 2}, {"x-match2": 1}, {"a": 1}]
    for i, h in enumerate(msgs):
        c.publish(1, x, "", b"%d" % i, P(headers=h))
    c.sync(1)
    for _ in range(len(msgs) + 1):
        c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def topic_odd_keys(s):
    c = c1(s)
    x = s.n("tx")
    c.rpc(1, E.Declare(exchange=x, type="topic"))
    pats = ["#.#.#", "*.#.*", "#.*.#", "a.*.#", "#.b.#.c", "*.*.*", "##", "a.##"]
    keys = ["a", "a.b", "a.b.c", "b.c", "a.b.x.c", "", "..", "a.b.c.d", "##", "a.##"]
    qs = []
    for i, p in enumerate(pats):
        q = s.n(f"q{i}")
        qdecl(c, 1, q, exclusive=True)
        c.rpc(1, Q.Bind(queue=q, exchange=x, routing_key=p))
        qs.append(q)
    for k in keys:
        c.publish(1, x, k, k.encode())
    c.sync(1)
    for q in qs:
        c.rpc(1, Q.Declare(queue=q, passive=True))
        for _ in range(10):
            m = c.rpc(1, B.Get(queue=q, no_ack=True))
            if isinstance(m, B.GetEmpty):
                break


@scenario
def autodelete_queue_get_only(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, auto_delete=True)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="b"))
    c.rpc(1, B.Cancel(consumer_tag="a"))
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, B.Cancel(consumer_tag="b"))
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def autodelete_exclusive_consumer_queue_delete_cancel(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    d = s.conn("d")
    d.open(1)
    d.rpc(1, Q.Delete(queue=q))
    c.wait(0.3)
    c.rpc(1, B.Cancel(consumer_tag="a"))


@scenario
def channel_close_with_consumers_autodelete_queue(s):
    c = c1(s)
    q = s.n("q")
    qdecl(c, 1, q, auto_delete=True)
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(2, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def server_named_queue_variants(s):
    c = c1(s)
    c.rpc(1, Q.Declare(queue="", passive=False, durable=True))
    c.rpc(1, Q.Declare(queue="", exclusive=False))
    c.rpc(1, Q.Declare(queue="", nowait=True))
    c.rpc(1, Q.Declare(queue="", passive=True))


@scenario
def publish_to_default_with_amq_names(s):
    c = c1(s)
    c.publish(1, "amq.default", "x", b"1")
    c.sync(1)
    c.open(2)
    c.publish(2, "amq.direct", "x", b"1", mandatory=True)
    c.sync(2)
    c.open(3)
    c.publish(3, "amq.rabbitmq.trace", "x", b"1")
    c.sync(3)


@scenario
def flow_and_misc(s):
    c = c1(s)
    c.rpc(1, spec.Channel.Flow(active=True))
    c.open(2)
    c.rpc(2, spec.Channel.Flow(active=False))
    c.open(3)
    c.send(3, spec.Channel.FlowOk(active=True))
    c.sync(3)
    c.open(4)
    c.send(4, B.GetOk(delivery_tag=1, redelivered=False, exchange="", routing_key="", message_count=0))
    c.wait(0.3)



@scenario
def qos_global_nack_and_raise(s):
    c = c1(s)
    q1, q2 = s.n("q1"), s.n("q2")
    qdecl(c, 1, q1, exclusive=True)
    qdecl(c, 1, q2, exclusive=True)
    for i in range(4):
        c.publish(1, "", q1, b"a%d" % i)
        c.publish(1, "", q2, b"b%d" % i)
    c.sync(1)
    c.rpc(1, B.Qos(prefetch_count=2, global_qos=False))
    c.rpc(1, B.Qos(prefetch_count=3, global_qos=True))
    c.rpc(1, B.Consume(queue=q1, consumer_tag="c1"))
    c.wait(0.3)
    c.rpc(1, B.Consume(queue=q2, consumer_tag="c2"))
    c.wait(0.3)
    c.send(1, B.Nack(delivery_tag=1, requeue=False))
    c.wait(0.3)
    c.rpc(1, B.Qos(prefetch_count=6, global_qos=True))
    c.wait(0.3)
    c.rpc(1, B.Recover(requeue=True))
    c.wait(0.3)



if __name__ == "__main__":
    main(S, sys.argv[1:])
