"""Encoded image bytes -> model pixels, in graph ops that TF Serving can run.

The `image_bytes` and `classify` signatures decode client bytes inside the exported
graph. A decoder allocates what the image header promises, so a small file can
ask for gigabytes: a 1.2 MB PNG of 20000x20000 zero pixels decodes to 400 MB (and,
as float32 RGB, to 4.8 GB). `decode_image` therefore reads the width and height from
the header first, with a handful of byte reads, and refuses an image over
`max_pixels` before any decoder runs:

    size = image_header_size(data)              # int64 [2]: height, width
    pixels = decode_image(data, 32, 32, 3)      # float32 [32, 32, 3], 0-255, or
    # InvalidArgumentError: assertion failed: [Image of 20000x20000 = 400000000
    # pixels is over the limit of 40000000 pixels of this model ...]

Only core TensorFlow ops are used (no py_function, no XLA, no tensorflow-io): the
graphs run in TF Serving's C++ model server.

Formats are the ones `tf.io.decode_image` accepts in TF 2.21, detected by the same
magic bytes, in the same order: JPEG, PNG, GIF, BMP, WebP and JPEG XL. Bytes of
no known format get size (0, 0), pass the check, and `tf.io.decode_image` raises
its usual "Unknown image file format" error. A known format whose size cannot be
read gets (-1, -1) and is refused.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# 40 M pixels is a 7300x5500 photo, above any camera a client is likely to send as
# is. At this size the decoder's uint8 output is 40-160 MB (gray to RGBA) and the
# resize reads it directly (no full-size float32 copy), so an RGB model peaks at
# about 280 MB per image in flight; a grayscale model converting an RGB image goes
# through TF's float32 rgb_to_grayscale, about 800 MB. Both stay under ~1 GB.
# Raise it at export for models that must see bigger images.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000

_HEAD = 32  # bytes of header every fixed-offset format below reads
_UNKNOWN_FORMAT = (0, 0)  # let tf.io.decode_image raise its own error
_UNREADABLE = (-1, -1)  # a known format whose size could not be read: refuse it
_JXL_MAX_BOXES = 64  # ISO BMFF boxes walked to find a JPEG XL codestream


def _bytes(data, pos, length):
    """`length` bytes of `data` from `pos` as int64 [length], zero-padded past the end.

    `pos` may be any int64 scalar: past the end of `data` gives all zeros, where
    `tf.strings.substr` alone would raise (and echo the bytes in its error).
    """
    pos = tf.cast(pos, tf.int64)
    inside = tf.logical_and(pos >= 0, pos <= tf.cast(tf.strings.length(data), tf.int64))
    piece = tf.strings.substr(data, tf.where(inside, pos, 0), length)
    piece = tf.where(inside, piece, "")
    return tf.cast(tf.io.decode_raw(piece, tf.uint8, fixed_length=length), tf.int64)


def _uint(b, start, size, little_endian):
    """The unsigned integer in b[start:start+size] (int64 bytes), as int64."""
    order = range(size) if little_endian else range(size - 1, -1, -1)
    value = tf.constant(0, tf.int64)
    for shift, i in enumerate(order):
        value += b[start + i] * (256 ** shift)
    return value


def _matches(b, start, magic: bytes):
    return tf.reduce_all(tf.equal(b[start:start + len(magic)], list(magic)))


def _size(height, width):
    return tf.stack([tf.cast(height, tf.int64), tf.cast(width, tf.int64)])


def _png_size(b):
    # Signature (8), then the IHDR chunk: length (4), b"IHDR", width, height, both
    # big-endian uint32.
    return _size(_uint(b, 20, 4, False), _uint(b, 16, 4, False))


def _gif_size(b):
    # b"GIF87a"/b"GIF89a", then the logical screen: width, height, little-endian
    # uint16. TF decodes every frame into a screen-sized buffer.
    return _size(_uint(b, 8, 2, True), _uint(b, 6, 2, True))


def _bmp_size(b):
    # BITMAPINFOHEADER, read as TF's decoder reads it: width and height are
    # little-endian int32 at bytes 18 and 22; a negative height means top-down rows.
    def signed(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    return _size(tf.abs(signed(_uint(b, 22, 4, True))), tf.abs(signed(_uint(b, 18, 4, True))))


def _webp_size(b):
    # RIFF container; the first chunk (bytes 12..16) says which header follows at 20.
    lossy = _size(_uint(b, 28, 2, True) % 2**14, _uint(b, 26, 2, True) % 2**14)  # "VP8 ": 14 bits each
    bits = _uint(b, 21, 4, True)  # "VP8L": 0x2F, then width-1 and height-1, 14 bits each
    lossless = _size(bits // 2**14 % 2**14 + 1, bits % 2**14 + 1)
    extended = _size(_uint(b, 27, 3, True) + 1, _uint(b, 24, 3, True) + 1)  # "VP8X": canvas-1, 24 bits each
    return tf.case([
        (_matches(b, 12, b"VP8 "), lambda: lossy),
        (_matches(b, 12, b"VP8L"), lambda: lossless),
        (_matches(b, 12, b"VP8X"), lambda: extended),
    ], default=lambda: tf.constant(_UNKNOWN_FORMAT, tf.int64), exclusive=False)


def _jpeg_size(data):
    # libjpeg reads the markers up to the frame header (SOF0..SOF15), as the decoder
    # does; invalid data raises InvalidArgumentError ("Invalid JPEG data...") here.
    shape = tf.image.extract_jpeg_shape(data, output_type=tf.int32)
    return _size(shape[0], shape[1])


# JPEG XL: the codestream starts with FF 0A and a bit-packed SizeHeader (the spec's
# Annex D / libjxl headers.cc), read least significant bit first:
#   small (1 bit); small: ysize = (Bits(5)+1)*8; else: ysize = U32(9,13,18,30 bits)+1
#   ratio (3 bits); ratio 0: xsize the same way; else xsize = ysize * ratio fraction.
_JXL_RATIOS = [(1, 1), (1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1)]


def _jxl_codestream_size(c):
    """(size, bits it took) from the codestream whose first 16 bytes are int64 `c`."""
    c = c[2:]  # after FF 0A

    def bits(pos, count):
        # `count` (<= 30) bits from bit `pos`: 5 bytes always cover them.
        chunk = tf.gather(c, pos // 8 + tf.range(5, dtype=tf.int64))
        word = tf.reduce_sum(chunk * tf.constant([256**i for i in range(5)], tf.int64))  # < 2**40
        return tf.bitwise.right_shift(word, pos % 8) % tf.bitwise.left_shift(tf.constant(1, tf.int64), count)

    def dimension(pos, small):
        """(value, bit after it) of one dimension that starts at bit `pos`."""
        count = tf.gather(tf.constant([9, 13, 18, 30], tf.int64), bits(pos, 2))
        value = tf.where(small, (bits(pos, 5) + 1) * 8, bits(pos + 2, count) + 1)
        return value, tf.where(small, pos + 5, pos + 2 + count)

    small = bits(tf.constant(0, tf.int64), 1) > 0
    ysize, pos = dimension(tf.constant(1, tf.int64), small)
    ratio = bits(pos, 3)
    xsize_own, end = dimension(pos + 3, small)
    numerator = tf.gather(tf.constant([n for n, _ in _JXL_RATIOS], tf.int64), ratio)
    denominator = tf.gather(tf.constant([d for _, d in _JXL_RATIOS], tf.int64), ratio)
    xsize = tf.where(ratio == 0, xsize_own, ysize * numerator // denominator)
    return _size(ysize, xsize), tf.where(ratio == 0, end, pos + 3)


def _jxl_size(data, b):
    """Size of a bare JPEG XL codestream, or of one in an ISO BMFF container.

    A container (12-byte signature box b"JXL ") holds the codestream in one jxlc box
    or split over jxlp boxes; the boxes are walked to the first of these. A first
    jxlp part that ends inside the SizeHeader is refused rather than guessed (cjxl
    itself writes a 7-byte first part when it transcodes a JPEG: enough for small
    images).
    """
    length = tf.cast(tf.strings.length(data), tf.int64)

    def find_codestream():
        def step(pos, found, available, count):
            box = _bytes(data, pos, 16)
            size = _uint(box, 0, 4, False)
            header = tf.where(size == 1, tf.constant(16, tf.int64), 8)
            size = tf.where(size == 1, _uint(box, 8, 8, False), size)
            size = tf.where(size == 0, length - pos, size)  # 0: to the end of the file
            jxlc, jxlp = _matches(box, 4, b"jxlc"), _matches(box, 4, b"jxlp")
            start = pos + header + tf.where(jxlp, tf.constant(4, tf.int64), 0)
            hit = tf.logical_or(jxlc, jxlp)
            # A malformed size (smaller than its header) ends the walk: not found.
            bad = size < header
            return (tf.where(hit | bad, length, pos + size), tf.where(hit, start, found),
                    tf.where(hit, pos + size - start, available), count + 1)

        def more(pos, found, available, count):
            return (pos < length) & (found < 0) & (count < _JXL_MAX_BOXES)

        _, found, available, _ = tf.while_loop(
            more, step, (tf.constant(0, tf.int64), tf.constant(-1, tf.int64),
                         tf.constant(0, tf.int64), tf.constant(0, tf.int32)))
        return found, available

    container = _matches(b, 0, b"\x00\x00\x00\x0cJXL \r\n\x87\n")
    start, available = tf.cond(container, find_codestream,
                               lambda: (tf.constant(0, tf.int64), length))
    codestream = _bytes(data, start, 16)
    size, bits = _jxl_codestream_size(codestream)
    readable = (start >= 0) & _matches(codestream, 0, b"\xff\x0a") & (16 + bits <= 8 * available)
    return tf.where(readable, size, tf.constant(_UNREADABLE, tf.int64))


def image_header_size(data):
    """(height, width) as int64 [2], read from the header of one encoded image.

    Args:
        data: scalar tf.string, JPEG, PNG, GIF, BMP, WebP or JPEG XL bytes.

    Returns:
        int64 [2]. (0, 0) for bytes of no known format or too short to hold a
        header, so that `tf.io.decode_image` raises its own error on them; (-1, -1)
        for a JPEG XL container whose size cannot be read. Invalid JPEG headers raise
        InvalidArgumentError (from `tf.image.extract_jpeg_shape`).

    Example:
        >>> image_header_size(tf.constant(open("cat.png", "rb").read())).numpy()
        array([480, 640])
    """
    data = tf.convert_to_tensor(data, tf.string)
    b = _bytes(data, 0, _HEAD)
    length = tf.strings.length(data)
    # Same magic bytes and order as tf.io.decode_image (decode_image_op.cc).
    return tf.case([
        (_matches(b, 0, b"\xff\xd8\xff"), lambda: _jpeg_size(data)),
        (_matches(b, 0, b"\x89PNG\r\n\x1a\n"), lambda: _png_size(b)),
        (_matches(b, 0, b"GIF8"), lambda: _gif_size(b)),
        (_matches(b, 0, b"BM"), lambda: _bmp_size(b)),
        (_matches(b, 0, b"RIFF") & _matches(b, 8, b"WEBP") & (length > 12), lambda: _webp_size(b)),
        (_matches(b, 0, b"\xff\x0a") | _matches(b, 0, b"\x00\x00\x00\x0cJXL \r\n\x87\n"),
         lambda: _jxl_size(data, b)),
    ], default=lambda: tf.constant(_UNKNOWN_FORMAT, tf.int64), exclusive=False)


def check_image_size(data, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    """An Assert op that fails when the header of `data` says more than `max_pixels`.

    Run the decoder under `tf.control_dependencies([check])` so it never starts on a
    refused image. The message has no quote characters: TF Serving C-escapes the
    error text on its way to a gRPC client.
    """
    size = image_header_size(data)
    height, width = size[0], size[1]
    pixels = height * width
    over = tf.strings.format(
        "Image of {}x{} = {} pixels (width x height, from its header) is over the limit of "
        f"{max_pixels} pixels of this model (max_image_pixels, set at export); resize it "
        "before sending.", (width, height, pixels))
    unreadable = tf.constant(
        "Could not read the image size from its header (a JPEG XL container whose "
        "codestream does not start with its size); send JPEG, PNG, GIF, BMP or WebP.")
    ok = tf.logical_and(height >= 0, pixels <= max_pixels)
    return tf.debugging.Assert(ok, [tf.where(height >= 0, over, unreadable)])


def decode_image(data, height: int, width: int, channels: int,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    """One encoded image -> float32 [height, width, channels], 0-255.

    The header is read first and an image over `max_pixels` (width x height) raises
    InvalidArgumentError before any decoding. Then the image is decoded with its own
    channel count (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; GIF is always RGB) and
    converted to `channels` (gray -> RGB repeats it, RGB(A) -> gray weighs it as
    `tf.image.rgb_to_grayscale` does, alpha is dropped), and resized like the
    training pipeline resizes (bilinear, aspect ratio not kept).

    The numbers are exactly those of
    `tf.image.resize(tf.cast(tf.io.decode_image(data, expand_animations=False),
    tf.float32), (height, width))` after the channel conversion; the resize reads
    the uint8 pixels directly, so no full-size float32 copy is made.

    Example:
        >>> decode_image(tf.constant(png_bytes), 32, 32, 3).shape
        TensorShape([32, 32, 3])
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels!r}.")
    data = tf.convert_to_tensor(data, tf.string)
    with tf.control_dependencies([check_image_size(data, max_pixels)]):
        image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    found = tf.shape(image)[-1]  # 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA

    def resize(pixels):
        # Bilinear resize of uint8 input computes in float32: the same numbers as
        # resizing tf.cast(pixels, tf.float32), without the 4-bytes-a-value copy.
        return tf.image.resize(pixels, (height, width))

    if channels == 3:
        # Resizing works channel by channel, so repeating gray after the resize
        # gives the numbers of repeating it before, from a third of the memory.
        image = tf.cond(found < 3, lambda: tf.tile(resize(image[..., :1]), (1, 1, 3)),
                        lambda: resize(image[..., :3]))
    else:
        image = tf.cond(found < 3, lambda: resize(image[..., :1]),
                        lambda: resize(tf.image.rgb_to_grayscale(image[..., :3])))
    return tf.ensure_shape(image, (height, width, channels))


def encode_png(image) -> bytes:
    """[H,W,C] 0-255 pixels -> PNG bytes (lossless, so decoding gives the pixels back)."""
    return tf.io.encode_png(np.clip(np.round(image), 0, 255).astype(np.uint8)).numpy()
