import sys
from harness import P, main, spec
S = []
def scenario(fn):
    S.append((fn.__name__, fn)); return fn
Q = spec.Queue; E = spec.Exchange; B = spec.Basic

def c1(s):
    c = s.conn(); c.open(1); return c

@scenario
def long_names_in_errors(s):
    c = c1(s)
    long = s.n("L" * 230)
    ops = [Q.Declare(queue=long, passive=True), E.Declare(exchange=long, passive=True),
           Q.Bind(queue=long, exchange="amq.direct"), Q.Declare(queue="amq." + long[:240]),
           Q.Declare(queue=long[:250], arguments={"x-max-length": -1}),
           E.Declare(exchange="amq." + long[:240], type="direct"),
           E.Delete(exchange="amq." + long[:240])]
    for i, m in enumerate(ops):
        c.open(i + 2)
        c.rpc(i + 2, m)
    c.open(20)
    c.publish(20, long, "k", b"x")
    c.sync(20)

@scenario
def unicode_names(s):
    c = c1(s)
    for i, name in enumerate([s.n("ü-ñ"), s.n("a b"), s.n("tab\tx"), s.n("new\nline")]):
        c.open(i + 2)
        c.rpc(i + 2, Q.Declare(queue=name, exclusive=True))
        c.rpc(i + 2, Q.Declare(queue=name, exclusive=True, durable=True))

@scenario
def inequivalent_types(s):
    c = c1(s)
    cases = [({"x-dead-letter-exchange": "a"}, {"x-dead-letter-exchange": True}),
             ({"x-max-length": 5}, {"x-max-length": 5.0}),
             ({"x-max-length": 5}, {"x-max-length": 2**40}),
             ({"x-max-priority": 5}, {"x-max-priority": "5"}),
             ({"x-message-ttl": 5}, {"x-message-ttl": None}),
             ({"x-expires": 5000}, {"x-expires": [1]}),
             ({"x-overflow": "drop-head"}, {"x-overflow": {"a": 1}}),
             ({"x-dead-letter-exchange": ""}, {"x-dead-letter-exchange": b"x"}),
             ({"x-single-active-consumer": False}, {"x-single-active-consumer": 0}),
             ]
    for i, (a, b) in enumerate(cases):
        q = s.n(f"q{i}")
        c.open(i + 2)
        c.rpc(i + 2, Q.Declare(queue=q, arguments=a))
        c.rpc(i + 2, Q.Declare(queue=q, arguments=b))

@scenario
def exchange_inequivalent_texts(s):
    c = c1(s)
    x = s.n("x")
    c.rpc(1, E.Declare(exchange=x, type="headers", durable=True, auto_delete=True, internal=True, arguments={"alternate-exchange": "ae"}))
    for i, kw in enumerate([dict(type="headers", durable=True, auto_delete=True, internal=True),
                            dict(type="headers", durable=True, auto_delete=True, internal=True, arguments={"alternate-exchange": True}),
                            dict(type="headers", durable=False, auto_delete=False, internal=False, arguments={"alternate-exchange": "ae"}),
                            dict(type="headers", durable=True, auto_delete=False, internal=False, arguments={"alternate-exchange": "ae"}),
                            dict(type="headers", durable=True, auto_delete=True, internal=False, arguments={"alternate-exchange": "ae"}),
                            dict(type="fanout", durable=False, auto_delete=False, internal=False)]):
        c.open(i + 2)
        c.rpc(i + 2, E.Declare(exchange=x, **kw))

@scenario
def queue_inequivalent_order(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, durable=True, arguments={"x-max-length": 1, "x-message-ttl": 5}))
    for i, kw in enumerate([dict(durable=False, auto_delete=True, arguments={"x-max-length": 2}),
                            dict(durable=True, auto_delete=True, arguments={"x-max-length": 2}),
                            dict(durable=True, arguments={"x-max-length": 2, "x-message-ttl": 6}),
                            dict(durable=True, arguments={"x-message-ttl": 6, "x-max-length": 2}),
                            dict(durable=True, exclusive=True, arguments={"x-max-length": 2})]):
        c.open(i + 2)
        c.rpc(i + 2, Q.Declare(queue=q, **kw))
    c.open(20)
    c.rpc(20, Q.Delete(queue=q))

@scenario
def x_expires_passive_and_redeclare(s):
    import time
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, arguments={"x-expires": 400}))
    for _ in range(4):
        time.sleep(0.2)
        c.rpc(1, Q.Declare(queue=q, passive=True))
    time.sleep(0.6)
    c.rpc(1, Q.Declare(queue=q, passive=True))

@scenario
def get_on_queue_with_consumers_and_counts(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, B.Qos(prefetch_count=1))
    for i in range(3):
        c.publish(1, "", q, b"%d" % i)
    c.sync(1)
    c.rpc(1, B.Consume(queue=q, consumer_tag="a"))
    c.wait(0.2)
    c.rpc(1, B.Get(queue=q))
    c.rpc(1, Q.Declare(queue=q, passive=True))
    c.send(1, B.Ack(delivery_tag=2))
    c.wait(0.2)
    c.send(1, B.Ack(delivery_tag=1))
    c.wait(0.2)

@scenario
def cancel_notify_exclusive_queue_owner_close(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.open(2)
    c.rpc(2, B.Consume(queue=q, consumer_tag="a"))
    c.rpc(1, Q.Delete(queue=q))
    c.wait(0.3)
    c.rpc(2, B.Cancel(consumer_tag="a"))

if __name__ == "__main__":
    main(S, sys.argv[1:])
