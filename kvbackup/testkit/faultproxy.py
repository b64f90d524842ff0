"""A small HTTP proxy that injects S3 failures in front of a real server (for tests).

Each request is forwarded to the upstream server unless a fault is drawn for it: a
``503 SlowDown`` answer, a connection reset, or a delay before forwarding. Faults are drawn
from a seeded random generator, so a run is reproducible. Where the fault belongs in the
store rather than on the wire, :class:`kvbackup.testkit.faultystore.FaultyStore` is simpler.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["SLOWDOWN", "FaultProxy"]

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy:
    """Forward to ``upstream``; ``slowdown``, ``reset`` and ``slow`` are fault fractions."""

    def __init__(self, upstream: str, *, slowdown: float = 0.0, reset: float = 0.0,
                 slow: float = 0.0, delay: float = 0.3, seed: int = 0):  # fmt: skip
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.slowdown, self.reset, self.slow, self.delay = slowdown, reset, slow, delay
        self.faults: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def draw(self) -> str:
        """The fault for the next request: "slowdown", "reset", "slow" or "ok"."""
        with self._lock:
            x = self._random.random()
            for name, fraction in (("slowdown", self.slowdown), ("reset", self.reset),
                                   ("slow", self.slow)):  # fmt: skip
                if x < fraction:
                    self.faults[name] += 1
                    return name
                x -= fraction
            self.faults["ok"] += 1
            return "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.draw()
                if fault == "reset":
                    # An abortive close: the client sees "connection reset by peer".
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "slowdown":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN)))
                    self.end_headers()
                    self.wfile.write(SLOWDOWN)
                    return
                if fault == "slow":
                    time.sleep(proxy.delay)
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    # The Host header is signed: forward it as it came. Expect was answered.
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status, response.reason)
                # A HEAD answer has no body but the length of the one a GET would get.
                dropped: tuple[str, ...] = ("transfer-encoding", "connection")
                if self.command != "HEAD":
                    dropped += ("content-length",)
                    self.send_header("Content-Length", str(len(data)))
                for name, value in response.getheaders():
                    if name.lower() not in dropped:
                        self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
