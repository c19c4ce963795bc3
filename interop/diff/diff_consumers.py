import sys
from harness import P, main, spec
S = []
def scenario(fn):
    S.append((fn.__name__, fn)); return fn
Q = spec.Queue; E = spec.Exchange; B = spec.Basic

def c1(s):
    c = s.conn(); c.open(1); return c

@scenario
def consumer_priority_with_prefetch(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Qos(prefetch_count=1))
    c.rpc(1, B.Consume(queue=q, consumer_tag="lo", arguments={"x-priority": 1}))
    c.rpc(1, B.Consume(queue=q, consumer_tag="hi", arguments={"x-priority": 10}))
    for i in range(4):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.wait(0.3)
    c.rpc(1, Q.Declare(queue=q, passive=True))

@scenario
def sac_with_get_and_priority(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-single-active-consumer": True}))
    c.rpc(1, B.Consume(queue=q, consumer_tag="lo", arguments={"x-priority": 1}))
    c.rpc(1, B.Consume(queue=q, consumer_tag="hi", arguments={"x-priority": 10}))
    for i in range(2):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.wait(0.3)
    c.rpc(1, B.Get(queue=q))

@scenario
def self_dlx_expired(s):
    import time
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-message-ttl": 50}))
    c.publish(1, "", q, b"1")
    c.sync(1)
    time.sleep(0.3)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.rpc(1, B.Get(queue=q, no_ack=True))

@scenario
def e2e_autodelete_source(s):
    c = c1(s)
    a, b = s.n("a"), s.n("b")
    c.rpc(1, E.Declare(exchange=a, type="fanout", auto_delete=True))
    c.rpc(1, E.Declare(exchange=b, type="fanout", auto_delete=True))
    c.rpc(1, E.Bind(destination=b, source=a))
    c.rpc(1, E.Delete(exchange=b))
    c.rpc(1, E.Declare(exchange=a, passive=True))

@scenario
def headers_mandatory_no_match(s):
    c = c1(s)
    c.publish(1, "amq.headers", "", b"x", P(headers={"a": 1}), mandatory=True)
    c.sync(1)
    c.wait(0.2)

@scenario
def cancel_then_consume_same_tag(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Consume(queue=q, consumer_tag="t"))
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Cancel(consumer_tag="t"))
    c.rpc(1, B.Consume(queue=q, consumer_tag="t"))
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)
    c.publish(1, "", q, b"2")
    c.sync(1)
    c.wait(0.2)

@scenario
def delete_queue_with_consumer_unacked_then_ack(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q))
    c.publish(1, "", q, b"1")
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="t"))
    c.wait(0.2)
    c.open(2)
    c.rpc(2, Q.Delete(queue=q))
    c.wait(0.2)
    c.send(1, B.Ack(delivery_tag=1))
    c.send(1, B.Ack(delivery_tag=1))
    c.sync(1)

if __name__ == "__main__":
    main(S, sys.argv[1:])
