"""Each failure the command meets is one line, the right exit code, and no side effect."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PASSWORD, cli_env, kvbackup
from test_hostile_restore import craft_snapshot

from kvbackup import Repository
from kvbackup.errors import ExitCode
from kvbackup.sources import DIR, FILE, SYMLINK


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one backup of a few files."""
    path, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "big.bin").write_bytes(os.urandom(1 << 20))
    kvbackup("init", path)
    kvbackup("backup", src, "--repo", path)
    return path


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs at ``where`` (needs root: the test is skipped without it)."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def one_line(stderr: str) -> None:
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "b'" not in stderr, stderr


def test_a_read_only_restore_target_is_its_own_exit_code(repo: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as target:
        done = kvbackup("restore", "latest", target, "--repo", repo, check=False)
    assert done.returncode == ExitCode.TARGET, done.stderr
    one_line(done.stderr)
    assert "not writable" in done.stderr and str(target) in done.stderr


def test_a_full_disk_during_restore_names_the_path(repo: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=256k") as target:
        done = kvbackup("restore", "latest", target, "--repo", repo, check=False)
        assert not (target / "big.bin").exists()  # no partial file left behind
    assert done.returncode == ExitCode.TARGET, done.stderr
    one_line(done.stderr)
    assert "big.bin: No space left on device" in done.stderr


def test_a_password_file_that_is_not_utf8_is_used_byte_for_byte(tmp_path: Path) -> None:
    repo, password = tmp_path / "repo", tmp_path / "password"
    password.write_bytes(b"caf\xe9 latin-1\n")
    env = cli_env()
    del env["KVBACKUP_PASSWORD"]
    kvbackup("init", repo, "--password-file", password, env=env)
    kvbackup("snapshots", "--repo", repo, "--password-file", password, env=env)
    command = f"printf 'caf\\351 latin-1\\n' # {password}"
    kvbackup("snapshots", "--repo", repo, "--password-command", command, env=env)
    wrong = kvbackup("snapshots", "--repo", repo, env=cli_env(), check=False)
    assert wrong.returncode == ExitCode.BAD_PASSWORD
    one_line(wrong.stderr)


def test_ls_into_a_pipe_closed_early_is_quiet(repo: Path, tmp_path: Path) -> None:
    opened = Repository.open(repo, password=PASSWORD)
    craft_snapshot(opened, [(f"file-{i:05d}".encode(), DIR, b"") for i in range(20_000)])
    exe = shutil.which("kvbackup")
    assert exe
    proc = subprocess.Popen(
        [exe, "ls", "latest", "--repo", str(repo)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout and proc.stderr
    assert proc.stdout.readline() == b"file-00000\n"
    proc.stdout.close()  # what `| head -1` does
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as `yes | head` ends
    assert stderr == b"", stderr


@pytest.mark.parametrize("args", [["snapshots", "-r", ""], ["init", ""], ["snapshots", "-r", " "]])
def test_an_empty_repository_is_an_error_not_the_default(tmp_path: Path, args: list[str]) -> None:
    home = tmp_path / "home"
    env = cli_env(HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    done = kvbackup(*args, env=env, check=False)
    assert done.returncode == ExitCode.USAGE, done.stderr
    one_line(done.stderr)
    assert "empty" in done.stderr
    assert not home.exists()  # no default repository made or looked at


def interrupt_after(args: list[str], delay: float) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kvbackup")
    assert exe
    proc = subprocess.Popen(
        [exe, *args], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def before_kvbackup_ran(done: subprocess.CompletedProcess[str]) -> bool:
    """The interrupt came while Python was still starting: before its SIGINT handler was
    installed (killed by the signal, nothing printed), or in its ``site`` module or the
    console script's own ``import re``. No code of kvbackup had run, none could help."""
    if done.returncode == -signal.SIGINT and not done.stderr:
        return True
    stderr = done.stderr
    return "Traceback" in stderr and "kvbackup/" not in stderr.replace("bin/kvbackup", "")


@pytest.mark.parametrize("delay", [0.1, 0.25, 0.5, 0.8])
def test_ctrl_c_during_start_up_is_one_line_and_130(repo: Path, delay: float) -> None:
    done = interrupt_after(["snapshots", "--repo", str(repo)], delay)
    while before_kvbackup_ran(done):
        delay += 0.05
        done = interrupt_after(["snapshots", "--repo", str(repo)], delay)
    assert done.returncode in (0, ExitCode.INTERRUPTED), (done.returncode, done.stderr)
    if done.returncode:
        assert done.stderr == "kvbackup: interrupted\n", done.stderr


def test_ctrl_c_at_any_point_of_a_restore_is_one_line_and_130(repo: Path, tmp_path: Path) -> None:
    seen = set()
    for n, delay in enumerate([0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.2, 2.6, 3.0, 3.5]):
        done = interrupt_after(
            ["restore", "latest", str(tmp_path / f"out{n}"), "--repo", str(repo)], delay
        )
        if before_kvbackup_ran(done):
            continue
        assert done.returncode in (0, ExitCode.INTERRUPTED), (delay, done.returncode, done.stderr)
        seen.add(done.returncode)
        if done.returncode:
            assert done.stderr == "kvbackup: interrupted\n", done.stderr
    assert ExitCode.INTERRUPTED in seen


def test_ls_escapes_terminal_sequences_and_newlines_in_names(repo: Path) -> None:
    opened = Repository.open(repo, password=PASSWORD)
    craft_snapshot(
        opened,
        [
            (b"evil\x1b]0;owned\x07\x1b[2J", FILE, b"x"),
            (b"two\nlines", FILE, b"x"),
            (b"back\\slash", FILE, b"x"),
            (b"link", SYMLINK, b"\x1b[31mred"),
        ],
    )
    for args in (["ls", "latest"], ["ls", "latest", "--long"]):
        done = kvbackup(*args, "--repo", repo)
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout
        assert done.stdout.count("\n") == 4, done.stdout
        assert "evil\\x1b]0;owned\\x07\\x1b[2J" in done.stdout
        assert "two\\nlines" in done.stdout and "back\\\\slash" in done.stdout
    assert "link -> \\x1b[31mred" in kvbackup("ls", "latest", "-l", "--repo", repo).stdout


def test_json_names_that_are_not_utf8_have_an_exact_base64_form(repo: Path) -> None:
    opened = Repository.open(repo, password=PASSWORD)
    craft_snapshot(opened, [(b"caf\xe9.txt", FILE, b"x"), (b"plain.txt", FILE, b"y")])
    exe = shutil.which("kvbackup")
    assert exe
    raw = subprocess.run(
        [exe, "ls", "latest", "--json", "--repo", str(repo)], env=cli_env(), capture_output=True
    ).stdout
    text = raw.decode("utf-8")  # strict: valid UTF-8, no lone surrogates
    assert "\\udc" not in text
    rows = {row["path"]: row for row in json.loads(text)}
    assert rows["caf\\xe9.txt"]["path_base64"] == base64.b64encode(b"caf\xe9.txt").decode()
    assert "path_base64" not in rows["plain.txt"]
