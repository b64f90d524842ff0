"""Running the real ``kvbackup`` command in a child process and killing it mid-way (for the
SIGKILL tests of backup and restore)."""

from __future__ import annotations

import os
import signal
import subprocess

from places import PASSWORD


def cli_env() -> dict[str, str]:
    """The environment of a ``kvbackup`` child: the suite's password and cache folder, no
    other ``KVBACKUP_*`` setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(KVBACKUP_PASSWORD=PASSWORD)
    env["KVBACKUP_CACHE_DIR"] = os.environ.get("KVBACKUP_CACHE_DIR", "")
    return env


def sigkill_unless_finished(proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL ``proc``, unless it has already ended (then it must have succeeded). Returns
    what became of it: ``"killed"`` or ``"finished before the kill point"``."""
    if proc.poll() is not None:
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        return "finished before the kill point"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stderr:
        proc.stderr.close()
    return "killed"
