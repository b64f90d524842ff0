"""The conformance example in docs/stores.md runs and passes as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "stores.md"
MARKER = "<!-- example: conformance"


def example_code() -> str:
    text = DOC.read_text()
    block = text[text.index(MARKER) :]
    start = block.index("```python\n") + len("```python\n")
    return block[start : block.index("```\n", start)]


def test_conformance_example_in_docs_passes(tmp_path: Path) -> None:
    (tmp_path / "test_my_store.py").write_text(example_code())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path[1:], str(DOC.parents[1])])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_store.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
