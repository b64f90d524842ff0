"""Starting a test S3 server on a free port when parallel test workers start theirs too: a
port taken between :func:`free_port` and the server's bind must not hand a test another
process's server."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest

from kvbackup.testkit.s3server import (
    S3ServerStartError,
    free_port,
    run_s3_server,
    serve_on_free_port,
)

TRUE = shutil.which("true") or "/bin/true"
LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "time.sleep(60)\n"
)


def exits_soon(port: int) -> list[str]:
    """A 'server' that loses the race for its port: it exits without listening."""
    return [TRUE, str(port)]


def listens(port: int) -> list[str]:
    return [sys.executable, "-c", LISTEN, str(port)]


def test_a_port_someone_else_listens_on_is_not_taken_for_our_server(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with (
            pytest.raises(S3ServerStartError),
            run_s3_server("loser", exits_soon(port), port, tmp_path),
        ):
            pass


def test_a_server_that_fails_to_start_is_started_again_on_another_port(tmp_path: Path) -> None:
    tried: list[int] = []

    def argv(port: int) -> list[str]:
        tried.append(port)
        return exits_soon(port) if len(tried) == 1 else listens(port)

    with serve_on_free_port("flaky", argv, tmp_path) as server:
        assert server.endpoint == f"http://127.0.0.1:{tried[-1]}"
        with socket.create_connection(("127.0.0.1", tried[-1]), timeout=5):
            pass
    assert len(tried) == 2


def test_a_server_that_never_starts_fails_after_its_attempts(tmp_path: Path) -> None:
    tried: list[int] = []

    def argv(port: int) -> list[str]:
        tried.append(port)
        return exits_soon(port)

    with (
        pytest.raises(S3ServerStartError, match="did not start"),
        serve_on_free_port("broken", argv, tmp_path, attempts=2),
    ):
        pass
    assert len(tried) == 2


def test_free_ports_of_parallel_workers_come_from_disjoint_bands_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {}
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        ports[worker] = {free_port() for _ in range(20)}
    for worker, picked in ports.items():
        assert all(10000 <= port < ephemeral_start for port in picked), worker
    assert max(ports["gw0"]) < min(ports["gw1"])
    assert max(ports["gw1"]) < min(ports["gw2"])
