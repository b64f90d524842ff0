"""A network that stops answering fails a command in bounded time, with one line naming the
endpoint; an endpoint that is not S3 is not "no repository here"."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import PASSWORD, cli_env, kvbackup
from s3servers import S3Server

from kvbackup import Repository
from kvbackup.errors import ExitCode

#: Options that keep a hung request short in the tests (the defaults are 5 s, 15 s, 30 s).
QUICK = ["-o", "connect_timeout=1", "-o", "read_timeout=1", "-o", "deadline=3"]


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)  # read nothing, answer nothing

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


class FreezingProxy:
    """Relays TCP to ``upstream`` until ``freeze_after`` bytes went upstream, then relays
    nothing more in either direction while keeping every connection open."""

    def __init__(self, upstream: str, freeze_after: int) -> None:
        host, port = upstream.rsplit("//", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.freeze_after = freeze_after
        self.sent = 0
        self.frozen = threading.Event()
        self._lock = threading.Lock()
        self.server = SilentServer()
        self.endpoint = self.server.endpoint
        self.server._accept = self._accept  # type: ignore[method-assign]
        self.server._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.server.sock.settimeout(0.2)
        while not self.server._stop.is_set():
            try:
                conn, _ = self.server.sock.accept()
            except OSError:
                continue
            up = socket.create_connection(self.upstream)
            self.server.held += [conn, up]
            for a, b, counted in ((conn, up, True), (up, conn, False)):
                threading.Thread(target=self._pump, args=(a, b, counted), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while not self.frozen.is_set():
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if counted:
                    with self._lock:
                        self.sent += len(data)
                        if self.sent > self.freeze_after:
                            self.frozen.set()
                if self.frozen.is_set():
                    return
                dst.sendall(data)
        except OSError:
            return

    def __enter__(self) -> FreezingProxy:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__()


def s3_env(endpoint: str, **extra: str) -> dict[str, str]:
    return cli_env(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )


def test_a_server_that_never_answers_fails_in_bounded_time_naming_the_endpoint() -> None:
    with SilentServer() as server:
        started = time.monotonic()
        done = kvbackup(
            "snapshots", "--repo", "s3://bucket/repo", *QUICK, env=s3_env(server.endpoint),
            check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert done.returncode == ExitCode.STORE, done.stderr
    assert server.endpoint.split("//")[1] in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert elapsed < 30, elapsed  # was 362 s


def test_the_deadline_can_be_set_by_environment() -> None:
    with SilentServer() as server:
        started = time.monotonic()
        done = kvbackup(
            "snapshots", "--repo", "s3://bucket/repo",
            "-o", "connect_timeout=1", "-o", "read_timeout=1",
            env=s3_env(server.endpoint, KVBACKUP_STORE_DEADLINE="2"), check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert done.returncode == ExitCode.STORE, done.stderr
    assert "failed after" in done.stderr and elapsed < 20, (elapsed, done.stderr)


def test_a_server_frozen_mid_backup_fails_it_in_bounded_time_and_keeps_older_snapshots(
    tmp_path: Path, moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = moto_s3.new_bucket()
    url = f"s3://{bucket}/frozen"
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    src = tmp_path / "src"
    src.mkdir()
    (src / "first.txt").write_text("first")
    repo = Repository.init(url, password=PASSWORD)
    repo.backup(src)
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    with FreezingProxy(moto_s3.endpoint, freeze_after=256 * 1024) as proxy:
        started = time.monotonic()
        done = kvbackup(
            "backup", src, "--repo", url, *QUICK, env=s3_env(proxy.endpoint), check=False
        )
        elapsed = time.monotonic() - started
        assert proxy.frozen.is_set()
    assert done.returncode == ExitCode.STORE, done.stderr
    assert "127.0.0.1" in done.stderr and "Traceback" not in done.stderr
    assert elapsed < 60, elapsed  # was 371 s
    again = Repository.open(url, password=PASSWORD)
    assert [s.complete for s in again.snapshots()][:1] == [True]
    again.restore(again.snapshots()[0], tmp_path / "out")
    assert (tmp_path / "out" / "first.txt").read_text() == "first"


class NotS3(BaseHTTPRequestHandler):
    """A web server that answers 404 with an HTML page to everything."""

    def _answer(self) -> None:
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_s3() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_answering_404_is_not_no_repository_here(not_s3: str) -> None:
    done = kvbackup("snapshots", "--repo", "s3://bucket/repo", env=s3_env(not_s3), check=False)
    assert done.returncode == ExitCode.STORE, done.stderr
    assert "no kvbackup repository" not in done.stderr
    assert "not an S3" in done.stderr or "S3 endpoint" in done.stderr
    assert not_s3.split("//")[1] in done.stderr and done.stderr.count("\n") == 1
