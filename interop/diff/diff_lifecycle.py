"""Round 2: connection and channel lifecycle (raw handshake variants)."""
import re
import sys
import time

import pika.frame
from harness import Conn, P, RawConnection, main, spec, SYNC_TIMEOUT

S = []


def scenario(fn):
    S.append((fn.__name__, fn))
    return fn


Q = spec.Queue
E = spec.Exchange
B = spec.Basic
C = spec.Connection
Ch = spec.Channel


def raw(s, label="r"):
    """A Conn that has only opened the socket (no protocol header sent)."""
    c = Conn.__new__(Conn)
    c.s = s
    c.label = label
    c.r = RawConnection(s.url, timeout=SYNC_TIMEOUT)
    c.dead = False
    c.pending_content = {}
    s.conns.append(c)
    return c


def send_raw(c, data, note=None):
    c.log(f"-> raw {note or data!r}")
    try:
        c.r.send_raw(data)
    except OSError:
        c.log("(send failed)")
        c.dead = True


def start(c):
    send_raw(c, b"AMQP\x00\x00\x09\x01", "header")
    return c.read_until(lambda m: isinstance(m, C.Start))


_orig_log = Conn.log


def _log(self, line):
    # server_properties differ by design (product, version...): keep the rest
    if "Connection.Start(" in line:
        line = re.sub(r"server_properties=\{.*\}, version_major", "server_properties=<props>, version_major", line)
    _orig_log(self, line)


Conn.log = _log


def plain(c):
    return b"\0" + c.r.user.encode() + b"\0" + c.r.password.encode()


def start_ok(c, mechanism="PLAIN", response=None):
    c.send(0, C.StartOk(client_properties={"product": "diff"}, mechanism=mechanism,
                        response=plain(c) if response is None else response, locale="en_US"))


def to_tune(c):
    start(c)
    start_ok(c)
    return c.read_until(lambda m: isinstance(m, C.Tune))


def to_open(c, channel_max=2047, frame_max=131072, vhost="/"):
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=0))
    c.rpc(0, C.Open(virtual_host=vhost))


@scenario
def header_091_variant_0_9_1(s):
    c = raw(s)
    send_raw(c, b"AMQP\x00\x00\x09\x01")
    c.read_until(lambda m: isinstance(m, C.Start))


@scenario
def header_amqp_1_0(s):
    c = raw(s)
    send_raw(c, b"AMQP\x00\x01\x00\x00")
    c.wait(0.5)
    c.log(f"buf={c.r.buf!r}")


@scenario
def header_0_8(s):
    c = raw(s)
    send_raw(c, b"AMQP\x01\x01\x08\x00")
    c.wait(0.5)
    c.log(f"buf={c.r.buf!r}")


@scenario
def header_0_9_0(s):
    c = raw(s)
    send_raw(c, b"AMQP\x00\x00\x09\x00")
    c.wait(0.5)
    c.log(f"buf={c.r.buf!r}")


@scenario
def header_0_10(s):
    c = raw(s)
    send_raw(c, b"AMQP\x01\x01\x00\x0a")
    c.wait(0.5)
    c.log(f"buf={c.r.buf!r}")


@scenario
def header_amqp_3(s):
    c = raw(s)
    send_raw(c, b"AMQP\x03\x01\x00\x00")
    c.wait(0.5)
    c.log(f"buf={c.r.buf!r}")


@scenario
def header_short_then_close(s):
    c = raw(s)
    send_raw(c, b"AMQP")
    c.wait(0.5)
    c.log(f"buf={c.r.buf!r}")


@scenario
def startok_bad_mechanism(s):
    c = raw(s)
    start(c)
    start_ok(c, mechanism="FOO")
    c.wait(0.5)


@scenario
def startok_plain_garbage_response(s):
    c = raw(s)
    start(c)
    start_ok(c, response=b"garbage")
    c.wait(0.5)


@scenario
def startok_plain_empty_response(s):
    c = raw(s)
    start(c)
    start_ok(c, response=b"")
    c.wait(0.5)


@scenario
def startok_external(s):
    c = raw(s)
    start(c)
    start_ok(c, mechanism="EXTERNAL", response=b"")
    c.wait(0.5)


@scenario
def method_instead_of_startok(s):
    c = raw(s)
    start(c)
    c.send(0, C.Open(virtual_host="/"))
    c.wait(0.5)


@scenario
def channel_open_before_tune(s):
    c = raw(s)
    start(c)
    c.send(1, Ch.Open())
    c.wait(0.5)


@scenario
def open_before_tuneok(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.Open(virtual_host="/"))
    c.wait(0.5)


@scenario
def tuneok_frame_max_too_small(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=1000, heartbeat=0))
    c.wait(0.5)


@scenario
def tuneok_frame_max_above_server(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=10000000, heartbeat=0))
    c.rpc(0, C.Open(virtual_host="/"))
    c.wait(0.3)


@scenario
def tuneok_frame_max_zero(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=0, heartbeat=0))
    c.rpc(0, C.Open(virtual_host="/"))
    c.wait(0.3)


@scenario
def tuneok_channel_max_above_server(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=5000, frame_max=131072, heartbeat=0))
    c.rpc(0, C.Open(virtual_host="/"))
    c.wait(0.3)


@scenario
def tuneok_channel_max_zero(s):
    c = raw(s)
    to_open(c, channel_max=0)
    c.wait(3)


@scenario
def tuneok_channel_max_2047_open_high(s):
    c = raw(s)
    to_open(c, channel_max=2047)
    c.rpc(2047, Ch.Open())
    c.rpc(2048, Ch.Open())
    c.wait(0.3)


@scenario
def tuneok_channel_max_3(s):
    c = raw(s)
    to_open(c, channel_max=3)
    c.rpc(3, Ch.Open())
    c.rpc(4, Ch.Open())
    c.wait(0.3)


@scenario
def open_missing_vhost(s):
    c = raw(s)
    to_open(c, vhost="/nope-" + s.prefix)
    c.wait(0.3)


@scenario
def open_vhost_empty(s):
    c = raw(s)
    to_open(c, vhost="")
    c.wait(0.3)


@scenario
def open_twice(s):
    c = raw(s)
    to_open(c)
    c.rpc(0, C.Open(virtual_host="/"))
    c.wait(0.3)


@scenario
def tuneok_twice(s):
    c = raw(s)
    to_open(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
    c.wait(0.3)


@scenario
def startok_after_open(s):
    c = raw(s)
    to_open(c)
    start_ok(c)
    c.wait(0.3)


@scenario
def close_during_handshake_after_start(s):
    c = raw(s)
    start(c)
    c.send(0, C.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.wait(0.5)


@scenario
def close_during_handshake_after_tune(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.wait(0.5)


@scenario
def close_after_tuneok_before_open(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
    c.send(0, C.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.wait(0.5)


@scenario
def heartbeat_during_handshake(s):
    c = raw(s)
    start(c)
    send_raw(c, b"\x08\x00\x00\x00\x00\x00\x00\xce", "heartbeat")
    start_ok(c)
    c.read_until(lambda m: isinstance(m, C.Tune))
    send_raw(c, b"\x08\x00\x00\x00\x00\x00\x00\xce", "heartbeat")
    c.send(0, C.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
    c.rpc(0, C.Open(virtual_host="/"))


@scenario
def heartbeat_on_channel_1(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, b"\x08\x00\x01\x00\x00\x00\x00\xce", "heartbeat ch1")
    c.wait(0.5)


@scenario
def heartbeat_with_payload(s):
    c = raw(s)
    to_open(c)
    send_raw(c, b"\x08\x00\x00\x00\x00\x00\x02ab\xce", "heartbeat payload")
    c.wait(0.5)


@scenario
def content_header_on_channel_0(s):
    c = raw(s)
    to_open(c)
    send_raw(c, pika.frame.Header(0, 1, P()).marshal(), "header ch0")
    c.wait(0.5)


@scenario
def body_on_channel_0(s):
    c = raw(s)
    to_open(c)
    send_raw(c, pika.frame.Body(0, b"x").marshal(), "body ch0")
    c.wait(0.5)


@scenario
def body_without_header(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, pika.frame.Body(1, b"x").marshal(), "body ch1")
    c.wait(0.5)


@scenario
def header_without_publish(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, pika.frame.Header(1, 1, P()).marshal(), "header ch1")
    c.wait(0.5)


@scenario
def method_during_content(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, pika.frame.Method(1, B.Publish(exchange="", routing_key="x")).marshal()
             + pika.frame.Header(1, 5, P()).marshal(), "publish+header(5)")
    c.send(1, B.Qos(prefetch_count=1))
    c.wait(0.5)


@scenario
def body_too_long(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, pika.frame.Method(1, B.Publish(exchange="", routing_key="x")).marshal()
             + pika.frame.Header(1, 2, P()).marshal() + pika.frame.Body(1, b"xyz").marshal(), "body too long")
    c.wait(0.5)


@scenario
def unknown_frame_type(s):
    c = raw(s)
    to_open(c)
    send_raw(c, b"\x05\x00\x00\x00\x00\x00\x00\xce", "type 5")
    c.wait(0.5)


@scenario
def bad_frame_end(s):
    c = raw(s)
    to_open(c)
    send_raw(c, b"\x08\x00\x00\x00\x00\x00\x00\xcd", "bad end")
    c.wait(0.5)


@scenario
def unknown_class_method(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x0a\xce", "class 99")
    c.wait(0.5)


@scenario
def unknown_method_in_basic(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x63\xce", "basic.99")
    c.wait(0.5)


@scenario
def truncated_method_args(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, b"\x01\x00\x01\x00\x00\x00\x05\x00\x32\x00\x0a\x00\xce", "queue.declare truncated")
    c.wait(0.5)


@scenario
def channel_open_twice(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.rpc(1, Ch.Open())
    c.wait(0.3)


@scenario
def channel_close_then_frames_before_closeok(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.send(1, Ch.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.send(1, Q.Declare(queue="", exclusive=True))
    c.publish(1, "", "x", b"m")
    c.wait(0.3)
    c.rpc(1, Ch.Open())
    c.rpc(1, Q.Declare(queue="", exclusive=True))


@scenario
def server_close_then_frames_before_closeok(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.r.send_method(1, E.Declare(exchange="nope-" + s.prefix, passive=True))
    c.log("-> passive declare missing")
    c.r.sock.settimeout(1)
    time.sleep(0.3)
    c.send(1, Q.Declare(queue="", exclusive=True))
    c.send(1, Ch.Open())
    c.send(1, Ch.CloseOk())
    c.wait(0.3)
    c.rpc(1, Ch.Open())


@scenario
def channel_closeok_unsolicited(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.send(1, Ch.CloseOk())
    c.wait(0.3)
    c.rpc(1, Q.Declare(queue="", exclusive=True))


@scenario
def channel_close_odd_code(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.rpc(1, Ch.Close(reply_code=999, reply_text="weird", class_id=50, method_id=10))
    c.rpc(1, Ch.Open())


@scenario
def channel_close_with_content_in_flight(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    send_raw(c, pika.frame.Method(1, B.Publish(exchange="", routing_key="x")).marshal()
             + pika.frame.Header(1, 5, P()).marshal(), "publish+header(5)")
    c.rpc(1, Ch.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.wait(0.3)


@scenario
def connection_close_odd_code(s):
    c = raw(s)
    to_open(c)
    c.rpc(0, C.Close(reply_code=999, reply_text="weird", class_id=10, method_id=50))
    c.wait(0.3)


@scenario
def connection_closeok_unsolicited(s):
    c = raw(s)
    to_open(c)
    c.send(0, C.CloseOk())
    c.wait(0.5)


@scenario
def frames_after_connection_close(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.send(0, C.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.send(1, Q.Declare(queue="", exclusive=True))
    c.wait(0.5)


@scenario
def update_secret(s):
    c = raw(s)
    to_open(c)
    c.rpc(0, C.UpdateSecret(new_secret=b"guest", reason="r"))
    c.rpc(1, Ch.Open())


@scenario
def blocked_from_client(s):
    c = raw(s)
    to_open(c)
    c.send(0, C.Blocked(reason="x"))
    c.wait(0.3)


@scenario
def connection_method_on_channel_1(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.send(1, C.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    c.wait(0.3)


@scenario
def channel_flow(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.rpc(1, Ch.Flow(active=True))
    c.rpc(1, Ch.Flow(active=False))
    c.wait(0.3)


@scenario
def channel_flowok_from_client(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.send(1, Ch.FlowOk(active=True))
    c.wait(0.3)


@scenario
def channel_open_ok_from_client(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    c.send(1, Ch.OpenOk())
    c.wait(0.3)


@scenario
def method_on_channel_0(s):
    c = raw(s)
    to_open(c)
    c.send(0, Q.Declare(queue="", exclusive=True))
    c.wait(0.3)


@scenario
def reopen_channel_many_times(s):
    c = raw(s)
    to_open(c)
    for i in range(3):
        c.rpc(1, Ch.Open())
        c.rpc(1, Ch.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.rpc(1, Ch.Open())
    c.rpc(1, Q.Declare(queue="", exclusive=True))


@scenario
def channel_open_out_of_band(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open(out_of_band="xyz"))


@scenario
def connection_open_insist_capabilities(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
    c.rpc(0, C.Open(virtual_host="/", capabilities="x", insist=True))


@scenario
def channel_close_on_channel_0(s):
    c = raw(s)
    to_open(c)
    c.send(0, Ch.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    c.wait(0.3)


@scenario
def channel_open_on_channel_0(s):
    c = raw(s)
    to_open(c)
    c.send(0, Ch.Open())
    c.wait(0.3)


@scenario
def body_frame_above_frame_max(s):
    c = raw(s)
    to_open(c, frame_max=4096)
    c.rpc(1, Ch.Open())
    send_raw(c, pika.frame.Method(1, B.Publish(exchange="", routing_key="x")).marshal()
             + pika.frame.Header(1, 5000, P()).marshal() + pika.frame.Body(1, b"y" * 5000).marshal(),
             "body 5000 > frame_max 4096")
    c.wait(0.5)


@scenario
def heartbeat_negotiated_then_silence_ok(s):
    c = raw(s)
    to_tune(c)
    c.send(0, C.TuneOk(channel_max=2047, frame_max=131072, heartbeat=1))
    c.rpc(0, C.Open(virtual_host="/"))
    c.rpc(1, Ch.Open())


@scenario
def channel_max_exceeded_count(s):
    c = raw(s)
    to_open(c, channel_max=2)
    c.rpc(1, Ch.Open())
    c.rpc(2, Ch.Open())
    c.rpc(3, Ch.Open())
    c.wait(0.3)


@scenario
def publish_on_unopened_channel_content(s):
    c = raw(s)
    to_open(c)
    c.publish(5, "", "x", b"m")
    c.wait(0.3)


@scenario
def header_wrong_class(s):
    c = raw(s)
    to_open(c)
    c.rpc(1, Ch.Open())
    hdr = pika.frame.Header(1, 1, P()).marshal()
    hdr = hdr[:7] + b"\x00\x32" + hdr[9:]
    send_raw(c, pika.frame.Method(1, B.Publish(exchange="", routing_key="x")).marshal() + hdr,
             "header class 50")
    c.wait(0.5)


if __name__ == "__main__":
    main(S, sys.argv[1:])
