"""Encoded image bytes -> model pixels, in graph ops that TF Serving can run.

The `image_bytes` and `classify` signatures decode client bytes inside the exported
graph. A decoder allocates what the image header promises, so a small file can ask
for gigabytes: a 0.4 MB PNG of 20000x20000 black pixels decodes to 400 MB (1.2 GB as
RGB, 4.8 GB as float32 RGB). `decode_image` therefore reads the size first, with a
few byte reads, and refuses an image over `max_pixels` before any decoder runs:

    image_header_size(data)                  # int64 [2]: height, width
    decode_image(data, 32, 32, 3)            # float32 [32, 32, 3], 0-255, or
    # InvalidArgumentError: assertion failed: [Image of 20000x20000 = 400000000
    # pixels is over the limit of 40000000 pixels of this model (max_image_pixels,
    # set at export); resize it before sending.]

Only core TensorFlow ops (no py_function, no XLA, no tensorflow-io): the graphs run
in TF Serving's C++ model server.

The formats are those `tf.io.decode_image` accepts in TF 2.21, told apart by the
same magic bytes in the same order: JPEG, PNG, GIF, BMP, WebP and JPEG XL. Sizes
come from the header (JPEG through `tf.image.extract_jpeg_shape`), except GIF: TF
decodes all frames and sizes its output by the largest frame, not by the header's
logical screen, so the frame descriptors are walked. Bytes of no known format get
size (0, 0): they pass the check and `tf.io.decode_image` raises its usual
"Unknown image file format" error. Two kinds are refused whatever their size: an
animated WebP without alpha (TF 2.21 corrupts the heap decoding one) and a JPEG XL
container whose size cannot be read before its codestream is split.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# 40 M pixels: a 7300x5479 image. Peak memory of one decode_image at that size,
# measured on TF 2.21 CPU: 140-350 MB for a 3-channel model (decoder output, 40-160
# MB, plus the RGB slice; the resize reads uint8, no full-size float32 copy) against
# 610-820 MB before; 780-850 MB for a 1-channel model given a color image (TF's
# rgb_to_grayscale works in float32, as it did before). So under ~1 GB for each
# image in flight (map_fn runs up to 10 at once in a graph). Raise it at export for
# models that must see bigger images, lower it for small servers.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000

_HEAD = 32  # bytes of header every fixed-offset format below reads
_UNKNOWN_FORMAT = (0, 0)  # let tf.io.decode_image raise its own error
_UNREADABLE = (-1, -1)  # a known format whose size could not be read: refuse it
_JXL_MAX_BOXES = 64  # ISO BMFF boxes walked to find a JPEG XL codestream
# Refusals for images whose size is fine (no quote characters: see check_image_size).
_ANIMATED_WEBP = ("Animated WebP images without an alpha channel are not accepted by "
                  "this model; send a still image (its first frame as PNG or JPEG).")
_JXL_UNREADABLE = ("Could not read the size of this JPEG XL image from its header (its "
                   "first codestream part ends inside it); send JPEG, PNG, GIF, BMP or WebP.")


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


# GIF: TF 2.21 decodes every frame (giflib's DGifSlurp keeps one byte a pixel for
# each) and returns a canvas of the largest frame width x the largest frame height,
# whatever the logical screen in the header says. So the frames' image descriptors
# are what count, and they sit between the LZW data of earlier frames: the blocks
# are walked. A loop step per sub-block would be slow on a GIF of 1-byte sub-blocks,
# so each loop step takes a window of bytes and follows the chain through all of it
# by pointer doubling: about 30 vector ops a window, whatever the data.
_GIF_WINDOW = 4096
_GIF_DOUBLINGS = 12  # hops move >= 2 bytes: 2**12 of them cross any window
_GIF_MAX_JUMP = 1 + 10 + 768 + 1  # terminator, descriptor, local color table, code size


def _gif_info(data, b):
    """(size [2], pixels, frames) of a GIF: TF's canvas, and the pixels giflib fills."""
    length = tf.cast(tf.strings.length(data), tf.int64)
    window = _GIF_WINDOW
    offsets = tf.range(window, dtype=tf.int32)
    offsets64 = tf.cast(offsets, tf.int64)

    def color_table(packed):  # 3 * 2**(bits + 1) bytes when its flag (0x80) is set
        return tf.where(packed >= 128, 3 * tf.bitwise.left_shift(2, packed % 8), 0)

    def step(pos, first, frames, area, max_w, max_h, done):
        # Every node is the offset of a sub-block length byte. Length n > 0: the next
        # one is n + 1 bytes on. Length 0 ends the sub-blocks, and the next block
        # follows: 0x21 extension (label, then sub-blocks), 0x2C image (descriptor,
        # color table, code size, then sub-blocks), anything else ends the walk.
        # The first step starts on a block: its offset 0 acts as a length 0.
        w = tf.cast(_bytes(data, pos, window + 16), tf.int32)
        byte = tf.where((offsets == 0) & first, 0, w[:window])
        block = w[1:window + 1]
        image, extension = (byte == 0) & (block == 0x2C), (byte == 0) & (block == 0x21)
        image_to = offsets + 12 + color_table(w[10:window + 10])
        to = tf.where(byte > 0, offsets + 1 + byte, tf.where(extension, offsets + 3, image_to))
        # A length byte must be in the data; after a 0, the block byte must be too.
        inside = pos + offsets64 + tf.cast(byte == 0, tf.int64) < length
        end = ~inside | ((byte == 0) & ~image & ~extension)
        leaves = ~end & (to >= window)
        stops = end | leaves
        # Pointer doubling: jumps[k][i] is where 2**k hops from node i lead (a node
        # that ends the walk or leaves the window points to itself). Then, from the
        # longest jumps down, every node reached so far marks where its jump leads:
        # that marks each node of the walk from offset 0, up to where it stops.
        jumps = [tf.where(stops, offsets, to)]
        for _ in range(_GIF_DOUBLINGS - 1):
            jumps.append(tf.gather(jumps[-1], jumps[-1]))
        walked = tf.one_hot(0, window, dtype=tf.int32)
        for jump in reversed(jumps):
            walked = tf.minimum(walked + tf.math.unsorted_segment_sum(walked, jump, window), 1)
        walked = walked > 0
        last = tf.reduce_max(tf.where(walked & stops, offsets, -1))
        counted = walked & image & (~stops | leaves)  # a frame that leaves the window counts
        frame_w = tf.where(counted, w[6:window + 6] + 256 * w[7:window + 7], 0)
        frame_h = tf.where(counted, w[8:window + 8] + 256 * w[9:window + 9], 0)
        out = leaves[last]
        return (pos + tf.cast(tf.where(out, to[last], 0), tf.int64), tf.constant(False),
                frames + tf.reduce_sum(tf.cast(counted, tf.int64)),
                area + tf.reduce_sum(tf.cast(frame_w, tf.int64) * tf.cast(frame_h, tf.int64)),
                tf.maximum(max_w, tf.reduce_max(frame_w)),
                tf.maximum(max_h, tf.reduce_max(frame_h)), ~out)

    # Header (6), logical screen (7), global color table.
    start = 13 + tf.cast(color_table(tf.cast(b[10], tf.int32)), tf.int64)
    zero = tf.constant(0, tf.int64)
    # Start one byte early: the walk begins with the (virtual) end of sub-blocks.
    _, _, frames, area, max_w, max_h, _ = tf.while_loop(
        lambda *state: ~state[-1], step,
        (tf.minimum(start - 1, length), tf.constant(True), zero, zero,
         tf.constant(0, tf.int32), tf.constant(0, tf.int32), tf.constant(False)),
        maximum_iterations=tf.cast(length // (_GIF_WINDOW - _GIF_MAX_JUMP) + 2, tf.int32))
    max_w, max_h = tf.cast(max_w, tf.int64), tf.cast(max_h, tf.int64)
    return _size(max_h, max_w), tf.maximum(area, max_w * max_h), frames


def _bmp_size(b):
    # BITMAPINFOHEADER, read as TF's decoder reads it: width and height are
    # little-endian int32 at bytes 18 and 22; a negative height means top-down rows.
    def signed(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    height, width = signed(_uint(b, 22, 4, True)), signed(_uint(b, 18, 4, True))
    return _size(tf.abs(height), tf.abs(width))


def _webp_size(b):
    # RIFF container; the first chunk (bytes 12..16) says which header follows at 20.
    # "VP8 " (lossy): frame tag (3), start code (3), width and height, 14 bits each.
    lossy = _size(_uint(b, 28, 2, True) % 2**14, _uint(b, 26, 2, True) % 2**14)
    # "VP8L" (lossless): 0x2F, then width-1 and height-1, 14 bits each.
    bits = _uint(b, 21, 4, True)
    lossless = _size(bits // 2**14 % 2**14 + 1, bits % 2**14 + 1)
    # "VP8X" (extended): flags (4), then canvas width-1 and height-1, 24 bits each.
    extended = _size(_uint(b, 27, 3, True) + 1, _uint(b, 24, 3, True) + 1)
    return tf.case([
        (_matches(b, 12, b"VP8 "), lambda: lossy),
        (_matches(b, 12, b"VP8L"), lambda: lossless),
        (_matches(b, 12, b"VP8X"), lambda: extended),
    ], default=lambda: tf.constant(_UNKNOWN_FORMAT, tf.int64), exclusive=False)


def _webp_problem(b):
    # VP8X flags (byte 20): 0x02 animation, 0x10 alpha. TF 2.21 decodes an animation
    # into a buffer of the header's channel count but writes RGBA frames into it: an
    # animated WebP without the alpha flag overruns the heap and crashes the process
    # (checked: a 2-frame, 140-byte file). With the flag it decodes the first frame.
    flags = b[20]
    animated = _matches(b, 12, b"VP8X") & (flags // 2 % 2 == 1) & (flags // 16 % 2 == 0)
    return tf.where(animated, _ANIMATED_WEBP, "")


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
        word = tf.reduce_sum(chunk * tf.constant([256**i for i in range(5)], tf.int64))
        one = tf.constant(1, tf.int64)
        return tf.bitwise.right_shift(word, pos % 8) % tf.bitwise.left_shift(one, count)

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
            # A malformed size (smaller than its header, or past the end of the data,
            # which also catches a 64-bit size that overflowed) ends the walk.
            bad = (size < header) | (size > length - pos)
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
    readable = (start >= 0) & _matches(codestream, 0, b"\xff\x0a")
    readable &= 16 + bits <= 8 * available  # FF 0A and the whole SizeHeader
    return tf.where(readable, size, tf.constant(_UNREADABLE, tf.int64))


def _image_info(data):
    """(size [2] height, width; pixels a decoder fills; frames; problem) of one image.

    `problem` is an empty string, or the message that refuses the image whatever its
    size.
    """
    data = tf.convert_to_tensor(data, tf.string)
    b = _bytes(data, 0, _HEAD)
    length = tf.strings.length(data)

    def still(size_fn, problem_fn=lambda size: tf.constant("")):
        def info():
            size = size_fn()
            return size, size[0] * size[1], tf.constant(1, tf.int64), problem_fn(size)
        return info

    def gif():
        return (*_gif_info(data, b), tf.constant(""))

    def jxl_problem(size):
        return tf.where(size[0] < 0, _JXL_UNREADABLE, "")

    # Same magic bytes, in the same order, as tf.io.decode_image (decode_image_op.cc).
    return tf.case([
        (_matches(b, 0, b"\xff\xd8\xff"), still(lambda: _jpeg_size(data))),
        (_matches(b, 0, b"\x89PNG\r\n\x1a\n"), still(lambda: _png_size(b))),
        (_matches(b, 0, b"GIF8"), gif),
        (_matches(b, 0, b"BM"), still(lambda: _bmp_size(b))),
        (_matches(b, 0, b"RIFF") & _matches(b, 8, b"WEBP") & (length > 12),
         still(lambda: _webp_size(b), lambda size: _webp_problem(b))),
        (_matches(b, 0, b"\xff\x0a") | _matches(b, 0, b"\x00\x00\x00\x0cJXL \r\n\x87\n"),
         still(lambda: _jxl_size(data, b), jxl_problem)),
    ], default=still(lambda: tf.constant(_UNKNOWN_FORMAT, tf.int64)), exclusive=False)


def image_header_size(data):
    """(height, width) as int64 [2] of one encoded image, read without decoding it.

    The size `tf.io.decode_image(data, expand_animations=False)` would return: from
    the header for JPEG, PNG, BMP, WebP and JPEG XL; for GIF, the largest frame
    width and height (TF's canvas; the logical screen size in the header is not
    used by TF 2.21), from walking the frame descriptors.

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
    return _image_info(data)[0]


def check_image_size(data, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    """An Assert op that fails when decoding `data` would fill over `max_pixels`.

    Pixels are width x height; for a GIF, the sum over its frames when that is more
    (TF decodes them all, even when it returns the first). It also fails on the
    images refused whatever their size (an animated WebP without alpha, a JPEG XL
    whose size cannot be read). Run the decoder under
    `tf.control_dependencies([check])` so that it never starts on a refused image.

    The messages have no quote characters: TF Serving C-escapes the error text on
    its way to a gRPC client.
    """
    size, pixels, frames, problem = _image_info(data)
    height, width = size[0], size[1]
    # tf.strings.join, not tf.strings.format: format puts quotes around strings.
    number = tf.strings.as_string
    over = tf.strings.join([
        "Image of ", number(width), "x", number(height),
        tf.where(frames > 1, tf.strings.join([" in ", number(frames), " GIF frames"]), ""),
        " = ", number(pixels), f" pixels is over the limit of {max_pixels} pixels of this "
        "model (max_image_pixels, set at export); resize it before sending."])
    ok = tf.equal(problem, "") & (pixels <= max_pixels)
    message = tf.where(tf.equal(problem, ""), over, problem)
    if tf.executing_eagerly() and not bool(ok):
        # Eager Assert words it as Python sees it (quotes, b prefix); same text as a graph.
        raise tf.errors.InvalidArgumentError(None, None, "assertion failed: [%s]"
                                             % message.numpy().decode())
    return tf.debugging.Assert(ok, [message])


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
