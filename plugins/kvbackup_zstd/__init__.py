"""Built-in transform plugin: Zstandard compression."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvbackup import hookimpl
from kvbackup.options import option
from kvbackup.transforms import TransformError

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterTransform

DEFAULT_LEVEL = 3
# Below this gain the compressed form is not kept: the object is stored as it is.
MIN_SAVING = 0.02


class ZstdTransform:
    """Compresses with zstd at ``level``; skips objects it cannot shrink."""

    name = "zstd"
    authenticates = False

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        import zstandard

        if not 1 <= level <= 22:
            raise ValueError(f"zstd level must be 1..22, not {level}")
        self.level = level
        self._zstd = zstandard
        self._local = threading.local()  # compressor objects are not thread-safe

    def _compressor(self) -> Any:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = self._zstd.ZstdCompressor(level=self.level)
            self._local.d = self._zstd.ZstdDecompressor()
        return c

    def encode(self, data: bytes, aad: bytes) -> bytes | None:
        out: bytes = self._compressor().compress(data)
        if len(out) > len(data) * (1 - MIN_SAVING):
            return None
        return out

    def decode(self, data: bytes, aad: bytes) -> bytes:
        self._compressor()
        try:
            out: bytes = self._local.d.decompress(data)
        except self._zstd.ZstdError as exc:
            raise TransformError(f"zstd: {exc}") from None
        return out


@dataclass(frozen=True)
class ZstdOptions:
    """Options of the ``zstd`` transform (``--compression zstd:LEVEL``)."""

    level: int = option(DEFAULT_LEVEL, min=1, max=22, help="compression level")


def _factory(options: ZstdOptions, keys: Any) -> ZstdTransform:
    return ZstdTransform(options.level)


@hookimpl
def kvbackup_register_transforms(register: RegisterTransform) -> None:
    register(
        "zstd",
        _factory,
        role="compression",
        default=True,
        options=ZstdOptions,
        description="Zstandard compression (option: level, 1-22, default 3)",
    )
