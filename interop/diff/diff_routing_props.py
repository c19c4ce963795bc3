"""Round 2: headers/topic matching, CC/BCC, property round trips, AE and e2e loops."""
import datetime
import decimal
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


def headers_case(s, bind_args, msg_headers_list):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange="amq.headers", routing_key="", arguments=bind_args))
    for i, h in enumerate(msg_headers_list):
        c.publish(1, "amq.headers", "", b"%d" % i, P(headers=h))
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    for _ in msg_headers_list:
        c.rpc(1, B.Get(queue=q, no_ack=True))
    c.rpc(1, Q.Unbind(queue=q, exchange="amq.headers", routing_key="", arguments=bind_args))


HEADER_MSGS = [None, {}, {"a": 1}, {"a": "1"}, {"a": 1, "b": 2}, {"a": 2}, {"b": 2},
               {"a": True}, {"x-a": 1}, {"a": None}, {"a": {"n": 1}}, {"a": [1]},
               {"a": b"1"}]


@scenario
def headers_all(s):
    headers_case(s, {"x-match": "all", "a": 1, "b": 2}, HEADER_MSGS)


@scenario
def headers_any(s):
    headers_case(s, {"x-match": "any", "a": 1, "b": 2}, HEADER_MSGS)


@scenario
def headers_default_match(s):
    headers_case(s, {"a": 1}, HEADER_MSGS)


@scenario
def headers_empty_binding(s):
    headers_case(s, {}, HEADER_MSGS)


@scenario
def headers_only_xmatch_any(s):
    headers_case(s, {"x-match": "any"}, HEADER_MSGS)


@scenario
def headers_void_value(s):
    headers_case(s, {"x-match": "all", "a": None}, HEADER_MSGS)


@scenario
def headers_string_vs_int(s):
    headers_case(s, {"a": "1"}, HEADER_MSGS)


@scenario
def headers_bool(s):
    headers_case(s, {"a": True}, HEADER_MSGS)


@scenario
def headers_float(s):
    headers_case(s, HEADER_MSGS)


@scenario
def headers_nested_table(s):
    headers_case(s, {"a": {"n": 1}}, HEADER_MSGS)


@scenario
def headers_array(s):
    headers_case(s, {"a": [1]}, HEADER_MSGS)


@scenario
def headers_x_prefixed_binding_key(s):
    headers_case(s, {"x-match": "all", "x-a": 1}, HEADER_MSGS)


@scenario
def headers_all_with_x(s):
    headers_case(s, {"x-match": "all-with-x", "x-a": 1}, HEADER_MSGS)


@scenario
def headers_any_with_x(s):
    headers_case(s, {"x-match": "any-with-x", "x-a": 1, "zz": 3}, HEADER_MSGS)


@scenario
def headers_bad_xmatch(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange="amq.headers", arguments={"x-match": "some"}))
    c.open(2)
    c.rpc(2, Q.Bind(queue=q, exchange="amq.headers", arguments={"x-match": 1}))
    c.open(3)
    c.rpc(3, Q.Bind(queue=q, exchange="amq.headers", arguments={"x-match": b"any"}))


def topic_case(s, keys, rks):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    for k in keys:
        c.rpc(1, Q.Bind(queue=q, exchange="amq.topic", routing_key=k))
    for rk in rks:
        c.publish(1, "amq.topic", rk, rk.encode() or b"-")
    c.sync(1)
    c.rpc(1, Q.Declare(queue=q, passive=True))
    while True:
        m = c.rpc(1, B.Get(queue=q, no_ack=True))
        if not isinstance(m, B.GetOk):
            break


TOPIC_RKS = ["", ".", "a", "a.", ".a", "a.b", "a..b", "a.b.c", "b.a", "a.b.c.d", "..", "#", "*",
             "a.#", "x" * 255]


@scenario
def topic_hash_only(s):
    topic_case(s, ["#"], TOPIC_RKS)


@scenario
def topic_star_only(s):
    topic_case(s, ["*"], TOPIC_RKS)


@scenario
def topic_hash_star_combos(s):
    topic_case(s, ["#.*"], TOPIC_RKS)


@scenario
def topic_star_hash_star(s):
    topic_case(s, ["*.#.*"], TOPIC_RKS)


@scenario
def topic_a_hash_hash(s):
    topic_case(s, ["a.#.#"], TOPIC_RKS)


@scenario
def topic_empty_words(s):
    topic_case(s, ["a..b", ".", ""], TOPIC_RKS)


@scenario
def topic_hash_b(s):
    topic_case(s, ["#.b", "#.b.#"], TOPIC_RKS)


@scenario
def topic_star_empty(s):
    topic_case(s, ["*.", ".*", "a.*"], TOPIC_RKS)


@scenario
def topic_literal_hash_in_word(s):
    topic_case(s, ["a#", "a*"], TOPIC_RKS + ["a#", "a*"])


@scenario
def cc_bcc_variants(s):
    c = c1(s)
    qa, qb, qc = s.n("a"), s.n("b"), s.n("c")
    for q in (qa, qb, qc):
        c.rpc(1, Q.Declare(queue=q, exclusive=True))
    cases = [{"CC": [qb]}, {"BCC": [qc]}, {"CC": qb}, {"CC": [qb, 1]}, {"BCC": qc},
             {"CC": [qb, qb]}, {"CC": [], "BCC": []}, {"cc": [qb]}, {"CC": [b"x"]}, {"CC": None}]
    for i, h in enumerate(cases):
        c.publish(1, "", qa, b"%d" % i, P(headers=h))
    c.sync(1)
    for q in (qa, qb, qc):
        while True:
            m = c.rpc(1, B.Get(queue=q, no_ack=True))
            if not isinstance(m, B.GetOk):
                break


@scenario
def cc_to_fanout_and_direct(s):
    c = c1(s)
    qa, qb = s.n("a"), s.n("b")
    for q in (qa, qb):
        c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=qa, exchange="amq.fanout"))
    c.rpc(1, Q.Bind(queue=qb, exchange="amq.direct", routing_key="k"))
    c.publish(1, "amq.fanout", "zz", b"f", P(headers={"CC": ["k"]}))
    c.publish(1, "amq.direct", "zz", b"d", P(headers={"CC": ["k"], "BCC": ["k"]}), mandatory=True)
    c.sync(1)
    c.wait(0.2)
    for q in (qa, qb):
        while True:
            m = c.rpc(1, B.Get(queue=q, no_ack=True))
            if not isinstance(m, B.GetOk):
                break


@scenario
def properties_full_roundtrip(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    props = P(content_type="text/plain", content_encoding="gzip",
              headers={"s": "x", "i": 1, "neg": -5, "big": 2**40, "t": True,
                       "n": None, "tbl": {"a": {"b": [1, "x"]}}, "arr": [1, "a", None, [2]],
                       "bin": b"\x00\xff", "dec": decimal.Decimal("1.25"),
                       "ts": datetime.datetime(2020, 1, 2, 3, 4, 5)},
              delivery_mode=2, priority=7, correlation_id="cid", reply_to="rt",
              expiration="60000", message_id="mid", timestamp=1234567890, type="ty",
              user_id="guest", app_id="app", cluster_id="cl")
    c.publish(1, "", q, b"body", props)
    c.sync(1)
    c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def properties_each_alone(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    fields = dict(content_type="t", content_encoding="e", headers={}, delivery_mode=1, priority=0,
                  correlation_id="", reply_to="r", expiration="100000", message_id="m",
                  timestamp=0, type="t", user_id="guest", app_id="a", cluster_id="c")
    for k, v in fields.items():
        c.publish(1, "", q, k.encode(), P(**{k: v}))
    c.sync(1)
    for _ in fields:
        c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def wrong_user_id(s):
    c = c1(s)
    c.publish(1, "", "x", b"1", P(user_id="bob"))
    c.sync(1)


@scenario
def priority_above_max(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True, arguments={"x-max-priority": 3}))
    for p in (0, 255, 3, 9, 1, None):
        c.publish(1, "", q, b"%s" % str(p).encode(), P(priority=p))
    c.sync(1)
    for _ in range(6):
        c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def big_headers(s):
    c = c1(s)
    q = s.n("q")
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.publish(1, "", q, b"1", P(headers={"h%d" % i: "v" * 100 for i in range(1000)}))
    c.sync(1)
    m = c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def ae_chain_and_loop(s):
    c = c1(s)
    a, b, x = s.n("a"), s.n("b"), s.n("x")
    q = s.n("q")
    c.rpc(1, E.Declare(exchange=a, type="direct", arguments={"alternate-exchange": b}))
    c.rpc(1, E.Declare(exchange=b, type="direct", arguments={"alternate-exchange": a}))
    c.rpc(1, E.Declare(exchange=x, type="fanout"))
    c.publish(1, a, "k", b"loop", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange=b, routing_key="k2"))
    c.publish(1, a, "k2", b"viaB", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, B.Get(queue=q, no_ack=True))


@scenario
def ae_missing_and_wrong_type(s):
    c = c1(s)
    a, b = s.n("a"), s.n("b")
    c.rpc(1, E.Declare(exchange=a, type="direct", arguments={"alternate-exchange": s.n("none")}))
    c.publish(1, a, "k", b"m", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, E.Declare(exchange=b, type="direct", arguments={"alternate-exchange": 5}))
    c.publish(1, b, "k", b"m", mandatory=True)
    c.sync(1)
    c.wait(0.2)


@scenario
def e2e_loop(s):
    c = c1(s)
    a, b = s.n("a"), s.n("b")
    q = s.n("q")
    c.rpc(1, E.Declare(exchange=a, type="fanout"))
    c.rpc(1, E.Declare(exchange=b, type="fanout"))
    c.rpc(1, E.Bind(destination=b, source=a))
    c.rpc(1, E.Bind(destination=a, source=b))
    c.rpc(1, E.Bind(destination=a, source=a))
    c.rpc(1, Q.Declare(queue=q, exclusive=True))
    c.rpc(1, Q.Bind(queue=q, exchange=a))
    c.rpc(1, Q.Bind(queue=q, exchange=b))
    c.publish(1, a, "", b"m", mandatory=True)
    c.sync(1)
    c.wait(0.2)
    c.rpc(1, Q.Declare(queue=q, passive=True))


@scenario
def e2e_bind_missing(s):
    c = c1(s)
    c.rpc(1, E.Bind(destination=s.n("nd"), source="amq.direct"))
    c.open(2)
    c.rpc(2, E.Bind(destination="amq.direct", source=s.n("ns")))
    c.open(3)
    c.rpc(3, E.Unbind(destination="amq.fanout", source="amq.direct", routing_key="zz"))
    c.open(4)
    c.rpc(4, E.Bind(destination="amq.default", source="amq.direct"))
    c.open(5)
    c.rpc(5, E.Bind(destination="", source="amq.direct"))


if __name__ == "__main__":
    main(S, sys.argv[1:])
