"""kvbackup_tree: the comparison of a restored tree catches every kind of difference."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kvbackup.testkit import SourceTree


@pytest.fixture
def copy(kvbackup_tree: SourceTree, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(kvbackup_tree.path, target, symlinks=True)
    return target


def test_an_exact_copy_passes(kvbackup_tree: SourceTree, copy: Path) -> None:
    kvbackup_tree.assert_restored(copy)


def test_the_tree_has_the_awkward_entries(kvbackup_tree: SourceTree) -> None:
    root = kvbackup_tree.path
    assert (root / "empty.txt").stat().st_size == 0
    assert (root / "big.bin").stat().st_size == 3 << 20
    assert os.readlink(root / "dangling") == "../nowhere"
    assert b"latin1-\xe9t\xe9.bin" in os.listdir(os.fsencode(root))
    assert (root / "script.sh").stat().st_mode & 0o777 == 0o750


def _change_file_mtime(p: Path) -> None:
    os.utime(p / "docs" / "readme.txt", ns=(1, 1))


def _change_dir_mtime(p: Path) -> None:
    os.utime(p / "empty-dir", ns=(1, 1))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda p: (p / "big.bin").write_bytes(b"x"), "big.bin"),
        (lambda p: (p / "private").chmod(0o644), "private"),
        (_change_file_mtime, "readme.txt"),
        (_change_dir_mtime, "empty-dir"),
        (lambda p: (p / "empty.txt").unlink(), "missing [b'empty.txt']"),
        (lambda p: (p / "extra").write_text("x"), "extra [b'extra']"),
        (lambda p: (os.unlink(p / "dangling"), os.symlink("../elsewhere", p / "dangling")),
         "dangling"),
    ],
)  # fmt: skip
def test_a_difference_fails_naming_the_entry(
    kvbackup_tree: SourceTree, copy: Path, change: Callable[[Path], object], named: str
) -> None:
    change(copy)
    with pytest.raises(AssertionError, match=re.escape(named)):
        kvbackup_tree.assert_restored(copy)
