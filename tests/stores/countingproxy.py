"""An S3 proxy that injects nothing and records every request, to count what a run fetched."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from kvbackup.testkit.faultproxy import FaultProxy


class CountingProxy(FaultProxy):
    """A proxy that injects nothing and records every request (method, path)."""

    def __init__(self, upstream: str):
        self.requests: list[tuple[str, str]] = []
        super().__init__(upstream)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        proxy = self

        class Counting(base):  # type: ignore[valid-type,misc]
            def _relay(self) -> None:
                proxy.requests.append((self.command, self.path))
                super()._relay()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Counting

    def object_gets(self) -> list[str]:
        """GETs of object bodies (not listings), as their paths without the query: a GET
        whose path before any ``?`` names a key in a bucket (``/bucket/key``; a listing is
        ``/bucket?list-type=2...``). A client may add a query to an object GET
        (``?x-id=GetObject``, ``?versionId=...``): it is still one."""
        paths = [p.split("?", 1)[0] for m, p in self.requests if m == "GET"]
        return [p for p in paths if "/" in p.strip("/")]
