"""Every built-in source and transform passes the conformance suites of kvbackup.testing
(the built-in stores pass StoreConformance in tests/stores/). Each is made through the
registry, as the engine makes it, so its registration is checked too."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from kvbackup import KeyMaterial
from kvbackup.registry import PluginRegistry
from kvbackup.sources import Entry, Source
from kvbackup.testing import MakeSource, SourceConformance, TransformConformance
from kvbackup.transforms import Transform

REGISTRY = PluginRegistry(autoload=False)


@pytest.fixture(
    params=[
        ("zstd", {}),
        ("zstd", {"level": 19}),
        ("chacha20-poly1305", {}),
        ("aes-256-gcm", {}),
    ],
    ids=["zstd", "zstd-19", "chacha20-poly1305", "aes-256-gcm"],
)
def builtin_transform(request: pytest.FixtureRequest, keys: KeyMaterial) -> Transform:
    name, options = request.param
    return REGISTRY.make_transform(name, options, keys)


class TestBuiltinTransforms(TransformConformance):
    large_size = 2 * 2**20

    @pytest.fixture
    def transform(self, builtin_transform: Transform) -> Transform:
        return builtin_transform


@pytest.fixture
def keys() -> KeyMaterial:
    return KeyMaterial(bytes(range(32)))


def test_every_built_in_transform_is_covered() -> None:
    assert {r.name for r in REGISTRY.all("transform")} == {
        "zstd",
        "chacha20-poly1305",
        "aes-256-gcm",
    }


class TestDirectorySource(SourceConformance):
    @pytest.fixture
    def make_source(self, tmp_path: Path) -> MakeSource:
        roots = iter(range(1000))

        def make(files: dict[bytes, bytes]) -> Source:
            root = os.path.join(os.fsencode(tmp_path), b"tree%d" % next(roots))
            os.makedirs(root)
            for path, content in files.items():
                full = os.path.join(root, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as fh:
                    fh.write(content)
            source, _ = REGISTRY.make_source(os.fsdecode(root), "directory")
            return source

        return make

    def break_file(self, source: Source, entry: Entry) -> None:
        os.remove(os.path.join(source.root, entry.path))  # type: ignore[attr-defined]


class _UnreadableFile:
    def read(self, size: int = -1) -> bytes:
        raise OSError("device gone")

    def __enter__(self) -> _UnreadableFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class TestIterableSource(SourceConformance):
    @pytest.fixture
    def make_source(self) -> MakeSource:
        def make(files: dict[bytes, bytes]) -> Source:
            source, _ = REGISTRY.make_source(list(files.items()), "iterable")
            return source

        return make

    def break_file(self, source: Source, entry: Entry) -> None:
        entry.handle = _UnreadableFile()


class TestFsspecSource(SourceConformance):
    """The fsspec source over fsspec's in-memory filesystem (object names are text)."""

    non_utf8_names = False

    @pytest.fixture
    def make_source(self) -> MakeSource:
        import fsspec

        fs = fsspec.filesystem("memory")

        def make(files: dict[bytes, bytes]) -> Source:
            root = f"/conformance-{uuid.uuid4().hex}"
            fs.mkdir(root)
            for path, content in files.items():
                fs.pipe_file(f"{root}/{path.decode()}", content)
            source, _ = REGISTRY.make_source(f"memory://{root}", "fsspec")
            return source

        return make

    def break_file(self, source: Source, entry: Entry) -> None:
        source.fs.rm(entry.handle)  # type: ignore[attr-defined]


#: Built-in sources of one stream, or of paths kept under their absolute names, which the
#: suite's trees do not fit; each is tested end to end through the command instead.
END_TO_END_ONLY = {
    "paths": "tests/test_sources.py::test_several_folders_and_files_are_each_restored_under_"
    "their_own_path",
    "stdin": "tests/test_sources.py::test_stdin_with_a_name",
    "command": "tests/test_sources.py::test_stdin_from_command",
}


def test_every_built_in_source_is_covered() -> None:
    covered = {"directory", "iterable", "fsspec"}
    assert {r.name for r in REGISTRY.all("source")} == covered | set(END_TO_END_ONLY)
    here = Path(__file__).parent
    for test in END_TO_END_ONLY.values():
        module, name = test.split("::")
        assert f"def {name}(" in (here.parent / module).read_text(), test
