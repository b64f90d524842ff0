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
#: Levels whose match-finder tables are sized for chunks rather than whole files. zstd's
#: own level 3 tables (hash 2^17, chain 2^16) spill out of the CPU caches; on the 1 MiB
#: chunks of the shared benchmark these compress 1.3% worse and 1.5 times faster
#: (docs/performance.md). The frames are ordinary zstd frames: any version decodes them.
CHUNK_TUNED = {3: {"hash_log": 15, "chain_log": 14}}


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
            tuned = CHUNK_TUNED.get(self.level)
            if tuned:
                params = self._zstd.ZstdCompressionParameters.from_level(self.level, **tuned)
                c = self._zstd.ZstdCompressor(compression_params=params)
            else:
                c = self._zstd.ZstdCompressor(level=self.level)
            self._local.c = c
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

    def _limited_decompressor(self, window: int) -> Any:
        """This thread's decompressor for frames whose window is at most ``window``."""
        cache = getattr(self._local, "limited", None)
        if cache is None:
            cache = self._local.limited = {}
        if window not in cache:
            cache[window] = self._zstd.ZstdDecompressor(max_window_size=window)
        return cache[window]

    def decode_limited(self, data: bytes, aad: bytes, max_size: int) -> bytes:
        """Decompress, refusing before allocation a frame that would exceed ``max_size``:
        a frame stating a larger size is refused outright; one that states none is
        stream-decoded and cut off one byte past the bound."""
        zstd = self._zstd
        try:
            claimed = zstd.frame_content_size(data)
        except zstd.ZstdError as exc:
            raise TransformError(f"zstd: {exc}") from None
        if claimed > max_size:
            raise TransformError(
                f"zstd: frame claims {claimed} bytes, more than the {max_size} allowed"
            )
        decompressor = self._limited_decompressor(1 << max(20, (max_size - 1).bit_length()))
        try:
            if claimed >= 0:
                out: bytes = decompressor.decompress(data)
            else:
                with decompressor.stream_reader(data) as reader:
                    out = reader.read(max_size + 1)
        except zstd.ZstdError as exc:
            raise TransformError(f"zstd: {exc}") from None
        if len(out) > max_size:
            raise TransformError(f"zstd: decodes to more than the {max_size} bytes allowed")
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
