"""``kvbackup copy``: snapshots between repositories with different stores, passwords and
ciphers; deduplicated, skipping what the target has, resumable, never into itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import assert_same_tree, make_tree
from kvtools import SMALL_CHUNKS, SMALL_PACKS, write_tree

from kvbackup.errors import ExitCode
from kvbackup.repository import Repository

PASSWORDS = {"a": "password of A", "b": "password of B", "c": "password of C"}


def env_of(target: str, source: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a command on repository ``target`` (copying from ``source``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(KVBACKUP_PASSWORD=PASSWORDS[target], **extra)
    if source:
        env["KVBACKUP_FROM_PASSWORD"] = PASSWORDS[source]
    return env


def kvb(*args: Any, env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "kvbackup", *map(str, args)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == expect, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def copy_json(source: str, target: str, env: dict[str, str], *args: str) -> Any:
    return json.loads(
        kvb("copy", "--from-repo", source, "--repo", target, "--json", *args, env=env).stdout
    )


def restore(location: str, snapshot: str, target: Path, env: dict[str, str]) -> Path:
    kvb("restore", snapshot, target, "--repo", location, "-q", env=env)
    return target


def test_copy_local_to_s3_to_local_restores_identical_and_verifies_clean(
    tmp_path: Path, moto_s3: Any
) -> None:
    src = make_tree(tmp_path / "src")
    # 10 MiB: chunks are at most 4 MiB, so at least the first two end before the edited tail
    # (make_tree's 3 MiB can be one chunk, and then shares nothing with its edit)
    (src / "big.bin").write_bytes(os.urandom(10 << 20))
    a = str(tmp_path / "a")
    with Repository.init(a, password=PASSWORDS["a"]) as repo:
        done = repo.backup(src)
        first, unique = done.snapshot.id, done.stats.bytes_new
        (src / "docs" / "added.txt").write_text("new in the second snapshot")
        (src / "big.bin").write_bytes((src / "big.bin").read_bytes()[:-5000] + b"tail")
        done = repo.backup(src)
        second, unique = done.snapshot.id, unique + done.stats.bytes_new
    s3 = moto_s3.env()
    b = f"s3://{moto_s3.new_bucket()}/copy"
    c = str(tmp_path / "c")
    kvb("init", "--repo", b, "--encryption", "aes-256-gcm", env=env_of("b", **s3))
    kvb("init", "--repo", c, "--compression", "none", env=env_of("c"))

    to_b = copy_json(a, b, env_of("b", "a", **s3))
    assert [row["from"] for row in to_b["copied"]] == [first, second]
    assert to_b["skipped"] == []
    # the second snapshot's unchanged chunks are not stored again: B stores what A does
    assert to_b["stats"]["bytes_new"] < to_b["bytes"]
    assert to_b["stats"]["bytes_new"] <= unique * 1.05
    to_c = copy_json(b, c, env_of("c", "b", **s3))
    assert len(to_c["copied"]) == 2

    reference = restore(a, first, tmp_path / "ref-first", env_of("a"))
    assert_same_tree(reference, restore(c, first, tmp_path / "c-first", env_of("c")))
    b_second = to_b["copied"][1]["to"]
    assert_same_tree(src, restore(b, b_second, tmp_path / "b-second", env_of("b", **s3)))
    assert_same_tree(src, restore(c, "latest", tmp_path / "c-latest", env_of("c")))
    for location, env in ((b, env_of("b", **s3)), (c, env_of("c"))):
        kvb("verify", "--repo", location, env=env)
    with Repository.open(c, password=PASSWORDS["c"]) as repo:
        snaps = repo.snapshots()
        assert [(s.host, s.source, s.complete) for s in snaps] == [(snaps[0].host, str(src),
                                                                    True)] * 2  # fmt: skip
        assert len({s.group for s in snaps}) == 1  # one source group stays one group
        with Repository.open(a, password=PASSWORDS["a"]) as origin:
            first_made = {"repository": origin.config.id, "snapshot": first}
        assert snaps[0].original == first_made  # a copy of a copy names the first origin

    again = copy_json(a, b, env_of("b", "a", **s3))
    assert again["copied"] == [] and again["skipped"] == [first, second]
    assert again["requests_to"]["put"] == 1  # its lock on the target: nothing is stored


def test_copy_selected_snapshots_with_a_password_command(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with Repository.init(a, password=PASSWORDS["a"]) as repo:
        ids = [repo.backup(write_tree(tmp_path / f"s{n}", {"f": bytes([n])})).snapshot.id
               for n in range(3)]  # fmt: skip
    Repository.init(b, password=PASSWORDS["b"]).close()
    (tmp_path / "a.pw").write_text(PASSWORDS["a"])
    env = env_of("b")
    out = copy_json(a, b, env, ids[1], "--from-password-command", f"cat {tmp_path / 'a.pw'}")
    assert [row["from"] for row in out["copied"]] == [ids[1]]
    with Repository.open(b, password=PASSWORDS["b"]) as repo:
        assert [s.source for s in repo.snapshots()] == [str(tmp_path / "s1")]
    err = kvb("copy", "--from-repo", a, "--repo", b, env=env, expect=ExitCode.BAD_PASSWORD)
    assert "KVBACKUP_FROM_PASSWORD" in err.stderr and err.stderr.count("\n") == 1


def test_copy_into_the_same_repository_is_refused(tmp_path: Path) -> None:
    a = str(tmp_path / "a")
    with Repository.init(a, password=PASSWORDS["a"]) as repo:
        repo.backup(write_tree(tmp_path / "s", {"f": b"x"}))
    done = kvb("copy", "--from-repo", a, "--repo", a, env=env_of("a", "a"), expect=ExitCode.USAGE)
    assert done.stderr.count("\n") == 1 and "a copy needs two repositories" in done.stderr


def test_interrupted_copy_resumes_reusing_what_it_stored(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{n}.bin": os.urandom(400_000) for n in range(20)})
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with Repository.init(
        a, password=PASSWORDS["a"], chunker=SMALL_CHUNKS, pack_size=SMALL_PACKS
    ) as repo:
        repo.backup(src)
    Repository.init(b, password=PASSWORDS["b"], pack_size=SMALL_PACKS).close()
    env = env_of("b", "a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvbackup", "copy", "--from-repo", a, "--repo", b, "-q"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    packs = lambda: list(Path(b).glob("groups/*/packs/*"))  # noqa: E731
    deadline = time.monotonic() + 60
    while len(packs()) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored_before = len(packs())
    assert 20 <= stored_before < 150, "the copy was not interrupted half-way"
    with Repository.open(b, password=PASSWORDS["b"]) as repo:
        (stale,) = repo.snapshots()
        assert not stale.complete

    out = copy_json(a, b, env)
    assert out["resumed"] == [stale.id] and out["copied"][0]["to"] == stale.id
    assert out["stats"]["chunks_deduplicated"] >= stored_before  # a pack holds >= 1 chunk
    assert out["stats"]["bytes_new"] < 8_000_000 - stored_before * 40_000
    with Repository.open(b, password=PASSWORDS["b"]) as repo:
        assert [(s.id, s.complete) for s in repo.snapshots()] == [(stale.id, True)]
    assert_same_tree(src, restore(b, "latest", tmp_path / "restored", env_of("b")))
    kvb("verify", "--repo", b, env=env_of("b"))
