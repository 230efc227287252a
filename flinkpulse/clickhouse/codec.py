"""Streaming (de)compression for HTTP bodies: Content-Encoding / Accept-Encoding (gzip, deflate,
zstd, lz4 frame, br when installed) and ClickHouse's own block format (``compress=1`` /
``decompress=1``: checksum + method byte + sizes + LZ4/ZSTD payload per block)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, Protocol

import lz4.block
import lz4.frame
import zstandard


class Decoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self.d = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> bytes:
        return self.d.decompress(data)

    def finish(self) -> bytes:
        return self.d.flush()


class _Frames:
    """Concatenated frames (zstd, lz4): a new decompressor after each frame ends."""

    def __init__(self, new: Callable[[], Any]) -> None:
        self.new = new
        self.d = new()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            out += self.d.decompress(data)
            data = self.d.unused_data if self.d.eof else b""
            if self.d.eof:
                self.d = self.new()
        return bytes(out)

    def finish(self) -> bytes:
        return b""


def _brotli() -> Any:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        return None
    return brotli


class _Brotli:
    def __init__(self) -> None:
        self.d = _brotli().Decompressor()

    def feed(self, data: bytes) -> bytes:
        return bytes(self.d.process(data))

    def finish(self) -> bytes:
        return b""


def content_decoder(encoding: str) -> Decoder | None:
    """A streaming decoder for an HTTP Content-Encoding; None for identity; KeyError if unknown."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    makers: dict[str, Callable[[], Decoder]] = {
        "gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
        "x-gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
        "deflate": lambda: _Zlib(zlib.MAX_WBITS),
        "zstd": lambda: _Frames(zstandard.ZstdDecompressor().decompressobj),
        "lz4": lambda: _Frames(lz4.frame.LZ4FrameDecompressor),
    }
    if _brotli() is not None:
        makers["br"] = _Brotli
    return makers[enc]()


class _ZlibEnc:
    def __init__(self, wbits: int, level: int) -> None:
        self.c = zlib.compressobj(level, zlib.DEFLATED, wbits)

    def compress(self, data: bytes) -> bytes:
        return self.c.compress(data)

    def flush(self) -> bytes:
        return self.c.flush()


class _ZstdEnc:
    def __init__(self, level: int) -> None:
        self.c = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self.c.compress(data)

    def flush(self) -> bytes:
        return self.c.flush()


class _Lz4Enc:
    def __init__(self) -> None:
        self.c = lz4.frame.LZ4FrameCompressor()
        self.started = False

    def compress(self, data: bytes) -> bytes:
        head = b""
        if not self.started:
            head = self.c.begin()
            self.started = True
        return head + self.c.compress(data)

    def flush(self) -> bytes:
        head = b"" if self.started else self.c.begin()
        self.started = True
        return head + self.c.flush()


class _BrotliEnc:
    def __init__(self) -> None:
        self.c = _brotli().Compressor()

    def compress(self, data: bytes) -> bytes:
        return bytes(self.c.process(data))

    def flush(self) -> bytes:
        return bytes(self.c.finish())


#: the encodings we can produce, in the order we prefer them when a client accepts several
RESPONSE_ENCODINGS = ("zstd", "lz4", "gzip", "deflate", "br")


def choose_encoding(accept: str) -> str | None:
    """The first encoding in the client's Accept-Encoding list that we can produce."""
    for part in accept.split(","):
        enc = part.split(";")[0].strip().lower()
        if enc in RESPONSE_ENCODINGS and (enc != "br" or _brotli() is not None):
            return enc
    return None


def content_encoder(encoding: str, level: int = 3) -> Encoder:
    if encoding == "gzip":
        return _ZlibEnc(16 + zlib.MAX_WBITS, level)
    if encoding == "deflate":
        return _ZlibEnc(zlib.MAX_WBITS, level)
    if encoding == "zstd":
        return _ZstdEnc(level)
    if encoding == "lz4":
        return _Lz4Enc()
    if encoding == "br":
        return _BrotliEnc()
    raise KeyError(encoding)


# -- ClickHouse native compression (compress=1 / decompress=1) -------------------------------

_METHOD_NONE, _METHOD_LZ4, _METHOD_ZSTD = 0x02, 0x82, 0x90
_HEADER = 9  # method byte + compressed size (incl. header) + uncompressed size


def _cityhash128(data: bytes) -> bytes:
    from clickhouse_cityhash.cityhash import CityHash128  # type: ignore[import-not-found]

    h = CityHash128(data)
    return struct.pack("<QQ", h & 0xFFFFFFFFFFFFFFFF, h >> 64)


class NativeBlockEncoder:
    """Frames output as ClickHouse compressed blocks (LZ4), one per ~1 MB of input."""

    def __init__(self, block: int = 1 << 20) -> None:
        self.buf = bytearray()
        self.block = block

    def _frame(self, data: bytes) -> bytes:
        payload = lz4.block.compress(data, store_size=False)
        body = struct.pack("<BII", _METHOD_LZ4, len(payload) + _HEADER, len(data)) + payload
        return _cityhash128(body) + body

    def compress(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while len(self.buf) >= self.block:
            out += self._frame(bytes(self.buf[: self.block]))
            del self.buf[: self.block]
        return bytes(out)

    def flush(self) -> bytes:
        if not self.buf:
            return b""
        out = self._frame(bytes(self.buf))
        self.buf.clear()
        return out


class NativeBlockDecoder:
    """Reads ClickHouse compressed blocks (checksum verified) from a byte stream."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while len(self.buf) >= 16 + _HEADER:
            method, csize, usize = struct.unpack_from("<BII", self.buf, 16)
            if len(self.buf) < 16 + csize:
                break
            body = bytes(self.buf[16 : 16 + csize])
            if _cityhash128(body) != bytes(self.buf[:16]):
                raise ValueError("checksum mismatch in compressed block")
            payload = body[_HEADER:]
            if method == _METHOD_LZ4:
                out += lz4.block.decompress(payload, uncompressed_size=usize)
            elif method == _METHOD_ZSTD:
                out += zstandard.ZstdDecompressor().decompress(payload, max_output_size=usize)
            elif method == _METHOD_NONE:
                out += payload
            else:
                raise ValueError(f"unknown compression method 0x{method:02x}")
            del self.buf[: 16 + csize]
        return bytes(out)

    def finish(self) -> bytes:
        if self.buf:
            raise ValueError("truncated compressed block")
        return b""
