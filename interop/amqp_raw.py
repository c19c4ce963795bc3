"""A tiny raw AMQP 0-9-1 client built on pika's frame codec.

pika hides or validates some protocol details (it negotiates tuning itself,
refuses to exceed channel_max, has no `immediate` flag on BlockingChannel,
...). Tests that need to see the exact frames the broker sends, or to send
frames pika would not, use this helper instead. Every socket operation has a
timeout so nothing can hang.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import unquote, urlparse

import pika.frame
import pika.spec as spec


class ConnectionDropped(Exception):
    """The broker closed the TCP connection."""


class RawConnection:
    def __init__(self, url: str, timeout: float = 5.0):
        u = urlparse(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 5672
        self.user = unquote(u.username or "guest")
        self.password = unquote(u.password or "guest")
        vhost = u.path[1:] if u.path and u.path != "/" else "/"
        self.vhost = unquote(vhost) if vhost else "/"
        self.timeout = timeout
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.start = None  # Connection.Start method
        self.tune = None  # Connection.Tune method
        self.server_closed = False  # broker sent Connection.Close
        self.dropped = False  # broker closed the socket
        self.opened = False  # Connection.Open-Ok received

    # -- low level -------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, frame) -> None:
        self.sock.sendall(frame.marshal())

    def send_method(self, channel: int, method) -> None:
        self.send(pika.frame.Method(channel, method))

    def send_content(self, channel: int, method, body: bytes = b"",
                     properties: spec.BasicProperties | None = None,
                     frame_max: int = 131072) -> None:
        props = properties or spec.BasicProperties()
        data = pika.frame.Method(channel, method).marshal()
        data += pika.frame.Header(channel, len(body), props).marshal()
        chunk = frame_max - 8
        for i in range(0, len(body), chunk):
            data += pika.frame.Body(channel, body[i:i + chunk]).marshal()
        self.sock.sendall(data)

    def recv_frame(self, timeout: float | None = None):
        """Return the next frame (skipping heartbeats)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            if self.buf:
                consumed, frame = pika.frame.decode_frame(self.buf)
                if consumed:
                    self.buf = self.buf[consumed:]
                    if isinstance(frame, pika.frame.Heartbeat):
                        continue
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from broker")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no frame from broker") from None
            except ConnectionResetError:
                self.dropped = True
                raise ConnectionDropped() from None
            if not data:
                self.dropped = True
                raise ConnectionDropped()
            self.buf += data

    def recv_method(self, timeout: float | None = None):
        """Return (channel, method) of the next method frame, skipping content frames."""
        while True:
            frame = self.recv_frame(timeout)
            if isinstance(frame, pika.frame.Method):
                if isinstance(frame.method, spec.Connection.Close):
                    self.server_closed = True
                return frame.channel_number, frame.method

    def expect(self, cls, timeout: float | None = None):
        ch, method = self.recv_method(timeout)
        assert isinstance(method, cls), f"expected {cls.NAME}, got {method!r} on channel {ch}"
        return ch, method

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the broker closes the socket within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv_frame(deadline - time.monotonic())
            except ConnectionDropped:
                return True
            except TimeoutError:
                return False
        return False

    # -- handshake ---------------------------------------------------------
    def handshake(self, channel_max=None, frame_max=None, heartbeat=0, vhost=None,
                  password=None, open_connection=True):
        """Run the handshake; None for a tune value means 'accept the broker's'."""
        self.send(pika.frame.ProtocolHeader())
        _, self.start = self.expect(spec.Connection.Start)
        response = b"\0" + self.user.encode() + b"\0" + (password or self.password).encode()
        self.send_method(0, spec.Connection.StartOk(
            client_properties={"product": "warren-interop-raw",
                               "capabilities": {"authentication_failure_close": True}},
            mechanism="PLAIN", response=response, locale="en_US"))
        _, self.tune = self.expect(spec.Connection.Tune)
        self.channel_max = self.tune.channel_max if channel_max is None else channel_max
        self.frame_max = self.tune.frame_max if frame_max is None else frame_max
        self.heartbeat = self.tune.heartbeat if heartbeat is None else heartbeat
        self.send_method(0, spec.Connection.TuneOk(channel_max=self.channel_max,
                                                   frame_max=self.frame_max,
                                                   heartbeat=self.heartbeat))
        if open_connection:
            self.send_method(0, spec.Connection.Open(virtual_host=vhost or self.vhost))
            self.expect(spec.Connection.OpenOk)
            self.opened = True
        return self

    def open_channel(self, number: int) -> None:
        self.send_method(number, spec.Channel.Open())
        self.expect(spec.Channel.OpenOk)

    def close(self) -> None:
        try:
            if self.dropped or not self.opened:
                pass
            elif self.server_closed:
                self.send_method(0, spec.Connection.CloseOk())
            else:
                self.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye",
                                                          class_id=0, method_id=0))
                deadline = time.monotonic() + 1
                while time.monotonic() < deadline:
                    _, m = self.recv_method(deadline - time.monotonic())
                    if isinstance(m, (spec.Connection.CloseOk, spec.Connection.Close)):
                        break
        except Exception:
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
