"""docs/testing.md: every example test module in it runs through pytest with the plugin and
has the outcomes the text promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_pytest_plugin import plugin_args, share_the_s3_server

from kvbackup.testing import SourceConformance, StoreConformance, TransformConformance

pytest_plugins = ["pytester"]
__all__ = ["share_the_s3_server"]  # an autouse fixture: example sessions share one S3 server

DOC = Path(__file__).parent.parent / "docs" / "testing.md"


def _tests_of(suite: type) -> int:
    return sum(name.startswith("test_") for name in dir(suite))


#: Each example module of the doc, by the file name on its first line, and its outcomes.
OUTCOMES = {
    "test_nightly.py": {"passed": 4},
    "test_upload.py": {"passed": 2},
    # One test per rule of the store contract.
    "test_my_store.py": {"passed": _tests_of(StoreConformance)},
    # Every source rule passes: the example is ordered, seeks, reads on any thread, can hold
    # any name and says how to break a file.
    "test_my_source.py": {"passed": _tests_of(SourceConformance)},
    # Small inputs are five cases of one test; the two rules of an AEAD are skipped.
    "test_my_transform.py": {"passed": _tests_of(TransformConformance) + 4 - 2, "skipped": 2},
}


def examples() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    named = {}
    for block in blocks:
        first = block.splitlines()[0]
        match = re.match(r"# (test_\w+\.py):", first)
        assert match, f"example without a '# test_NAME.py:' first line: {first!r}"
        named[match.group(1)] = block
    return named


def test_every_example_has_its_outcomes_stated() -> None:
    assert sorted(examples()) == sorted(OUTCOMES)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_the_example_runs_with_the_outcomes_it_promises(
    pytester: pytest.Pytester, name: str
) -> None:
    pytester.makepyfile(**{name[: -len(".py")]: examples()[name]})
    result = pytester.runpytest(*plugin_args(), "--strict-markers")
    result.assert_outcomes(**OUTCOMES[name])
