"""Decompression bombs for tests: small files whose headers promise huge images.

Each builder runs in about a second and a few MB of memory: the huge image never
exists on this side. A decoder that trusts the header allocates (and for the PNG,
really fills) width x height pixels.

    png = png_bomb()              # ~0.4 MB of bytes, 20000x20000 gray = 400 MB decoded
    jpeg = jpeg_bomb()            # ~0.3 KB of bytes, header says 20000x20000 RGB
    webp = webp_bomb()            # ~0.1 KB of bytes, header says 16383x16383 RGBA

None of them is for anything but tests of the size checks in zoo/tasks/image_codec.py.
"""

from __future__ import annotations

import io
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC-32 of type + payload."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 20000, height: int = 20000, rows_per_chunk: int = 256) -> bytes:
    """A valid 8-bit grayscale PNG of all-black pixels: every byte decodes.

    The IDAT stream is zlib-compressed scanlines (filter byte 0 + `width` zero bytes),
    fed to one `zlib.compressobj` `rows_per_chunk` rows at a time, so at most one
    block of rows (~5 MB) and the compressed output (~0.4 MB for 20000x20000) are
    ever in memory, never the width*height raw bytes.
    """
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ValueError(f"PNG sizes are 1 to 2**31-1, not {width}x{height}.")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bit, gray, deflate, no filter, no interlace
    compressor = zlib.compressobj(9)
    block = bytes((width + 1) * min(rows_per_chunk, height))
    pieces = []
    for start in range(0, height, rows_per_chunk):
        rows = min(rows_per_chunk, height - start)
        pieces.append(compressor.compress(block if rows * (width + 1) == len(block) else block[: rows * (width + 1)]))
    pieces.append(compressor.flush())
    return (PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(pieces))
            + png_chunk(b"IEND", b""))


def _small_jpeg() -> bytes:
    """A real 16x16 baseline JPEG (SOF0) from PIL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 60)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def jpeg_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A small real baseline JPEG whose SOF0 header is patched to `width` x `height`.

    A decoder reading the header allocates width*height*3 bytes before it finds that
    the entropy-coded data runs out. JPEG sizes are 16-bit: at most 65535 each.
    """
    if not (0 < width <= 65535 and 0 < height <= 65535):
        raise ValueError(f"JPEG sizes are 1 to 65535, not {width}x{height}.")
    data = bytearray(_small_jpeg())
    sof = _find_jpeg_marker(data, 0xC0)
    # SOF0 segment: FF C0, length (2), precision (1), height (2), width (2), ...
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _find_jpeg_marker(data: bytes, marker: int) -> int:
    """Offset of the first FF `marker` segment, walking the segments from SOI."""
    pos = 2  # after FF D8
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"Not a JPEG segment at byte {pos}.")
        kind = data[pos + 1]
        if kind == marker:
            return pos
        if kind == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    raise ValueError(f"No FF {marker:02X} marker before the scan data.")


def webp_bomb(width: int = 16383, height: int = 16383) -> bytes:
    """A small real lossless WebP (VP8L) whose header is patched to `width` x `height`.

    WebP sizes are 14-bit: at most 16383 each, so the largest is 268 M pixels (1 GB
    as RGBA). The patched image data no longer matches, so a decoder fails, but only
    after reading the size.
    """
    from PIL import Image

    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise ValueError(f"WebP sizes are 1 to 16384, not {width}x{height}.")
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (10, 20, 30, 40)).save(buffer, "WEBP", lossless=True)
    data = bytearray(buffer.getvalue())
    if data[12:16] != b"VP8L" or data[20] != 0x2F:
        raise ValueError("PIL did not write a simple lossless WebP.")
    # VP8L: signature 0x2F, then 14 bits width-1, 14 bits height-1, alpha bit, 3 bits
    # version, little-endian, in bytes 21..24.
    bits = struct.unpack_from("<I", data, 21)[0]
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    struct.pack_into("<I", data, 21, bits)
    return bytes(data)
