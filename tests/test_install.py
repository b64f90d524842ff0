"""A fresh install resolves with the pip that a new virtual environment ships.

pip 23.2 backtracked into a dead end when s3fs (through aiobotocore) and boto3 pinned different
botocore ranges (issue 8); CI upgraded pip first and never saw it. These tests build a fresh
venv with its bundled pip, never upgrade it, and ask pip to resolve the project and its test
extra: a resolution failure or a long backtrack fails here before it reaches a user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
BACKTRACKING = "pip is looking at multiple versions"


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("fresh-venv")
    venv.create(where, with_pip=True)  # the pip bundled with this Python, as a user gets it
    return where / "bin" / "python"


def dry_run(python: Path, requirement: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--no-input", requirement],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize("requirement", [".", ".[test]"])
def test_the_project_resolves_with_the_bundled_pip_without_backtracking(
    fresh_python: Path, requirement: str
) -> None:
    done = dry_run(fresh_python, requirement)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Would install" in done.stdout
    assert "kvbackup" in done.stdout
    assert BACKTRACKING not in output, output[-3000:]


def test_a_missing_optional_package_names_the_extra_to_install(tmp_path: Path) -> None:
    # s3fs is behind the fsspec extra; hide it as if it were not installed
    script = (
        "import sys; sys.modules['s3fs'] = None; sys.argv[0] = 'kvbackup'\n"
        "from kvbackup.cli.main import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "init", "fsspec::s3://bucket/repo"],
        cwd=tmp_path,
        env={**os.environ, "KVBACKUP_PASSWORD": "pw"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 17, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'kvbackup[fsspec]'" in lines[0]
    assert list(tmp_path.iterdir()) == []
