"""Decompression bombs for tests: small files whose headers promise huge images.

Each builder takes at most about a second and a few MB of memory: the huge image
never exists on this side. A decoder that trusts the file allocates (and for PNG and
GIF, really fills) what it promises.

    png_bomb()                    # 0.4 MB, a valid 20000x20000 gray PNG: 400 MB decoded
    jpeg_bomb()                   # 0.6 KB, SOF0 says 20000x20000 RGB
    webp_bomb()                   # 38 B, VP8L header says 16383x16383 RGBA
    gif_bomb(20000, 20000, screen=(16, 16))  # 0.3 MB, valid; the header says 16x16
    gif_bomb(6000, 6000, frames=40)          # 1 MB, valid; 40 frames TF keeps at once
    jxl_bomb()                    # 41 B, JPEG XL SizeHeader says 20000x20000
    webp_animation_without_alpha()  # 140 B: crashes tf.io.decode_image in TF 2.21

Nothing but tests of the checks in zoo/tasks/image_codec.py should use them.
"""

from __future__ import annotations

import io
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC-32 of type + payload."""
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def png_bomb(width: int = 20000, height: int = 20000, rows_per_chunk: int = 256) -> bytes:
    """A valid 8-bit grayscale PNG of all-black pixels: every byte decodes.

    The IDAT stream is zlib-compressed scanlines (filter byte 0 + `width` zero bytes),
    fed to one `zlib.compressobj` `rows_per_chunk` rows at a time, so at most one
    block of rows (~5 MB) and the compressed output (~0.4 MB for 20000x20000) are
    ever in memory, never the width*height raw bytes.
    """
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ValueError(f"PNG sizes are 1 to 2**31-1, not {width}x{height}.")
    # 8 bits, grayscale, deflate, adaptive filtering, no interlace.
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    block = bytes((width + 1) * min(rows_per_chunk, height))
    pieces = []
    for start in range(0, height, rows_per_chunk):
        rows = min(rows_per_chunk, height - start)
        pieces.append(compressor.compress(memoryview(block)[: rows * (width + 1)]))
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

    VP8L sizes are 14-bit: at most 16384 each, so the largest is 268 M pixels (1 GB
    as RGBA). The patched image data no longer matches, so a decoder fails, but only
    after reading the size (TF allocates its output first).
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


def _lzw_constant(pixels: int, min_code_size: int = 2) -> bytes:
    """GIF LZW data for `pixels` pixels of color 0, without a pixels-long buffer.

    A run of one color encodes as the strings of length 1, 2, 3, ... (each code is
    the table entry being defined), with a clear code before the 12-bit table fills:
    ~6 KB for every 8 M pixels. Code widths follow giflib's decoder
    (DGifDecompressInput): the width grows after the read that takes the running
    code past 2**width.
    """
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    out, acc, nbits = bytearray(), 0, 0
    state = {}

    def reset():
        state.update(running=end + 1, bits=min_code_size + 1)

    def emit(code):
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += state["bits"]
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
        if state["running"] < 4097:
            state["running"] += 1
            if state["running"] > (1 << state["bits"]) and state["bits"] < 12:
                state["bits"] += 1

    reset()
    emit(clear)
    reset()
    length = 1
    while pixels > 0:
        take = min(length, pixels)
        emit(0 if take == 1 else end + take - 1)
        pixels -= take
        length += 1
        if end + length >= 4000 and pixels > 0:  # well before the 4096-entry table fills
            emit(clear)
            reset()
            length = 1
    emit(end)
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def _sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255]
                    for i in range(0, len(data), 255)) + b"\x00"


def gif_bomb(width: int = 20000, height: int = 20000, frames: int = 1,
             screen: tuple[int, int] | None = None) -> bytes:
    """A GIF89a of `frames` black frames of `width` x `height`, every pixel encoded.

    `screen` (width, height) sets the logical screen, which is all a header check
    sees; it defaults to the frame size. giflib (which TF uses) decodes every frame
    into its own frame-sized buffer before TF looks at them, so a small screen
    with big frames, or many screen-sized frames, is a bomb the screen size hides.
    The LZW data of a frame is built once and repeated: ~6 KB per 8 M pixels.
    """
    if not (0 < width < 65536 and 0 < height < 65536):
        raise ValueError(f"GIF sizes are 1 to 65535, not {width}x{height}.")
    screen_w, screen_h = screen or (width, height)
    # Global color table of 4 colors (flag 0x80, size bits 1), all black.
    header = b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, 0x81, 0, 0)
    palette = bytes(3 * 4)
    frame = (b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
             + b"\x02" + _sub_blocks(_lzw_constant(width * height)))
    return header + palette + frame * frames + b"\x3b"


# A 16x16 lossless JPEG XL codestream (cjxl -d 0 of one solid color), 36 bytes.
_JXL_16X16 = bytes.fromhex(
    "ff0a4340407121080201005c004b188b1500d48c3118c70b4400404824100639056aab04")
_JXL_16X16_HEADER_BITS = 9  # small (1), ysize/8-1 (5), ratio 1 (3)


def jxl_size_header(width: int, height: int) -> tuple[int, int]:
    """(bits, count) of a JPEG XL SizeHeader, least significant bit first, not "small".

    Each size is U32(Bits(9), Bits(13), Bits(18), Bits(30)) + 1 after a 2-bit
    selector; ratio 0 means the width is coded too.
    """
    value, count = 0, 0

    def put(bits, n):
        nonlocal value, count
        value |= bits << count
        count += n

    def dimension(size):
        for selector, n in enumerate((9, 13, 18, 30)):
            if size - 1 < (1 << n):
                put(selector, 2)
                put(size - 1, n)
                return
        raise ValueError(f"JPEG XL sizes are 1 to 2**30, not {size}.")

    put(0, 1)  # not small
    dimension(height)
    put(0, 3)  # ratio 0: width follows
    dimension(width)
    return value, count


def jxl_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A small real JPEG XL codestream whose SizeHeader is rewritten to `width` x `height`.

    The rest of the bitstream is the 16x16 image's, shifted to follow the new header.
    libjxl accepts the header (TF's "Failed to decode JXL header" does not come), and
    TF allocates height x width x channels for the output before the image data,
    now out of byte alignment, fails to decode.
    """
    rest = int.from_bytes(_JXL_16X16[2:], "little") >> _JXL_16X16_HEADER_BITS
    rest_bits = 8 * (len(_JXL_16X16) - 2) - _JXL_16X16_HEADER_BITS
    header, count = jxl_size_header(width, height)
    bits = header | (rest << count)
    return b"\xff\x0a" + bits.to_bytes((count + rest_bits + 7) // 8, "little")


def jxl_container(codestream: bytes, first_part: int | None = None) -> bytes:
    """`codestream` in an ISO BMFF JPEG XL container: one jxlc box, or two jxlp boxes
    split after `first_part` bytes (as cjxl writes when it transcodes a JPEG)."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    boxes = box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
    if first_part is None:
        boxes += box(b"jxlc", codestream)
    else:
        boxes += (box(b"jxlp", struct.pack(">I", 0) + codestream[:first_part])
                  + box(b"jxlp", struct.pack(">I", 0x80000001) + codestream[first_part:]))
    return b"\x00\x00\x00\x0cJXL \r\n\x87\n" + boxes


def webp_animation_without_alpha(frames: int = 2, size: int = 16) -> bytes:
    """A tiny animated WebP (VP8X flags: animation, no alpha) from PIL.

    TF 2.21's tf.io.decode_image writes RGBA frames into a 3-channel buffer for
    these and corrupts the heap (the process aborts): never decode one directly.
    """
    from PIL import Image

    colors = [(255, 0, 0), (0, 0, 255)]
    images = [Image.new("RGB", (size, size), colors[i % 2]) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "WEBP", save_all=True, append_images=images[1:], lossless=True,
                   duration=10)
    data = buffer.getvalue()
    if data[12:16] != b"VP8X" or data[20] & 0x12 != 0x02:
        raise ValueError(f"PIL did not write an animated WebP without alpha (flags {data[20]:#x}).")
    return data
