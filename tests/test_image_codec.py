"""zoo/tasks/image_codec.py: sizes read from headers, and bombs refused before decoding.

Fast and self-contained: images are made with PIL or by tests/image_bombs.py, the
graph functions are traced once per module, and no server is started.
"""

import functools
import io
import os
import random
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import image_bombs
from zoo.tasks import image_codec
from zoo.tasks.image_codec import DEFAULT_MAX_IMAGE_PIXELS, decode_image, image_header_size

SCALAR = [tf.TensorSpec((), tf.string)]
HEIGHT, WIDTH = 24, 20  # the model size the decode tests resize to
LIMIT_TEXT = f"pixels is over the limit of {DEFAULT_MAX_IMAGE_PIXELS} pixels of this model"

header_size = tf.function(image_header_size, input_signature=SCALAR)
image_info = tf.function(image_codec._image_info, input_signature=SCALAR)
decode_rgb = tf.function(lambda data: decode_image(data, HEIGHT, WIDTH, 3), input_signature=SCALAR)
decode_gray = tf.function(lambda data: decode_image(data, HEIGHT, WIDTH, 1), input_signature=SCALAR)
decode_max_100 = tf.function(lambda data: decode_image(data, 8, 8, 3, max_pixels=100),
                             input_signature=SCALAR)
png_bomb = functools.cache(image_bombs.png_bomb)  # 1 s to build: once per session


def old_decode_image(data, height, width, channels):
    """decode_image as export/signatures.py had it before the size check: the reference."""
    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    found = tf.shape(image)[-1]
    if channels == 3:
        image = tf.cond(found < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                        lambda: image[..., :3])
    else:
        image = tf.cond(found < 3, lambda: image[..., :1],
                        lambda: tf.image.rgb_to_grayscale(image[..., :3]))
    return tf.image.resize(tf.cast(image, tf.float32), (height, width))


def encode(pixels, fmt, **options) -> bytes:
    buffer = io.BytesIO()
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
    image = Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(height, width, channels, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


# (format, PIL options, channels of the pixels saved): every kind TF 2.21 decodes.
FORMATS = [
    ("PNG", {}, 1), ("PNG", {}, 2), ("PNG", {}, 3), ("PNG", {}, 4),
    ("JPEG", {}, 1), ("JPEG", {}, 3), ("JPEG", {"progressive": True}, 3),
    ("GIF", {}, 3), ("BMP", {}, 1), ("BMP", {}, 3),
    ("WEBP", {}, 3), ("WEBP", {"lossless": True}, 3), ("WEBP", {"lossless": True}, 4),
]
FORMAT_IDS = [f"{f}-{c}ch{'-' + '-'.join(o) if o else ''}" for f, o, c in FORMATS]


def jxl_files():
    """name -> ((height, width), JPEG XL bytes). PIL cannot write JPEG XL and TF 2.21
    decodes but does not encode it: a 36-byte cjxl file, containers around it, and
    SizeHeaders written by tests/image_bombs.py."""
    base = image_bombs._JXL_16X16  # small header, 16x16, ratio 1
    return {
        "cjxl 16x16": ((16, 16), base),
        "container jxlc": ((16, 16), image_bombs.jxl_container(base)),
        "container jxlp split after 5 bytes": ((16, 16), image_bombs.jxl_container(base, 5)),
        "header 53x37": ((53, 37), image_bombs.jxl_bomb(37, 53)),
        "header 3x8192": ((3, 8192), image_bombs.jxl_bomb(8192, 3)),
        "header 300000x1": ((1, 300000), image_bombs.jxl_bomb(300000, 1)),
        "header 20000x20000": ((20000, 20000), image_bombs.jxl_bomb()),
    }


def memory_mb():
    """(VmHWM, VmRSS) in MB: the process's peak and current resident memory."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmHWM"].split()[0]) // 1024, int(fields["VmRSS"].split()[0]) // 1024


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux, writing 5 to clear_refs) if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_growth_mb(fn) -> int:
    """How far the resident memory peaks above where it was while `fn` runs.

    Without clear_refs, VmHWM cannot be reset and only growth past the process's
    earlier peak is seen: the bound then checks less, never wrongly. Big buffers are
    mmap-ed and given back when freed, so a decode of one shows (see
    test_memory_check_sees_a_real_decode).
    """
    resettable = reset_peak()
    peak_before, rss_before = memory_mb()
    try:
        fn()
    finally:
        peak_after, _ = memory_mb()
    return peak_after - (rss_before if resettable else peak_before)


def assert_refused(fn, data, *fragments, seconds=3.0, growth_mb=500):
    """`fn(data)` raises InvalidArgumentError naming `fragments`, fast and lean."""
    start = time.perf_counter()
    errors = []

    def call():
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            fn(tf.constant(data))
        errors.append(error.value.message)

    growth = peak_growth_mb(call)
    elapsed = time.perf_counter() - start
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert '"' not in errors[0].split("assertion failed:")[-1].split("\n")[0]
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert growth < growth_mb, f"memory peaked {growth} MB above where it was"
    return errors[0]


# --- sizes from headers ---------------------------------------------------------


@pytest.mark.parametrize("fmt,options,channels", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("height,width", [(53, 37), (37, 53)])
def test_header_size_of_each_format(fmt, options, channels, height, width):
    data = encode(noise(height, width, channels), fmt, **options)
    assert header_size(data).numpy().tolist() == [height, width]
    decoded = tf.io.decode_image(data, expand_animations=False)
    assert decoded.shape[:2] == (height, width)


@pytest.mark.parametrize("name", list(jxl_files()))
def test_header_size_of_jpeg_xl(name):
    (height, width), data = jxl_files()[name]
    assert header_size(data).numpy().tolist() == [height, width]


def test_jpeg_xl_files_decode_to_the_sizes_read():
    for name in ["cjxl 16x16", "container jxlc", "container jxlp split after 5 bytes"]:
        (height, width), data = jxl_files()[name]
        assert tf.io.decode_image(data).shape == (height, width, 3), name
        assert decode_rgb(data).shape == (HEIGHT, WIDTH, 3), name


def test_jpeg_xl_container_split_inside_the_size_is_refused():
    data = image_bombs.jxl_container(image_bombs.jxl_bomb(37, 53), first_part=4)
    assert header_size(data).numpy().tolist() == [-1, -1]
    assert_refused(decode_rgb, data, "Could not read the size of this JPEG XL image")


def test_bmp_top_down_height_is_positive():
    data = bytearray(encode(noise(7, 5, 3), "BMP"))
    struct.pack_into("<i", data, 22, -7)  # negative height: rows stored top-down
    assert header_size(bytes(data)).numpy().tolist() == [7, 5]
    assert tf.io.decode_image(bytes(data)).shape == (7, 5, 3)


def test_bomb_headers_say_what_the_builders_promise(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL refuses to open bombs
    bombs = {
        "png": (png_bomb(), (20000, 20000)),
        "jpeg": (image_bombs.jpeg_bomb(), (20000, 20000)),
        "webp": (image_bombs.webp_bomb(), (16383, 16383)),
        "gif": (image_bombs.gif_bomb(20000, 20000), (20000, 20000)),
    }
    for name, (data, (width, height)) in bombs.items():
        assert Image.open(io.BytesIO(data)).size == (width, height), name  # header only
        assert header_size(data).numpy().tolist() == [height, width], name
    assert header_size(image_bombs.jxl_bomb(20000, 10000)).numpy().tolist() == [10000, 20000]


def test_bombs_are_small_and_fast_to_build():
    start = time.perf_counter()
    growth = peak_growth_mb(lambda: (image_bombs.png_bomb(), image_bombs.gif_bomb()))
    assert time.perf_counter() - start < 3
    assert growth < 100
    assert len(image_bombs.png_bomb(2000, 2000)) < 10_000


def test_bomb_builders_make_valid_images():
    png = image_bombs.png_bomb(300, 200)
    assert tf.io.decode_image(png).shape == (200, 300, 1)
    assert int(tf.reduce_max(tf.io.decode_image(png))) == 0
    gif = image_bombs.gif_bomb(70, 30, frames=3)
    assert tf.io.decode_gif(gif).shape == (3, 30, 70, 3)
    assert Image.open(io.BytesIO(gif)).n_frames == 3


# --- GIF: TF's size is the largest frame, not the logical screen ----------------


def gif(frames, screen=(1, 1), sub_block=255, comment=b"", global_colors=True):
    """A GIF89a of solid frames (left, top, width, height, local color table bits)."""
    def sub_blocks(data):
        return b"".join(bytes([len(data[i:i + sub_block])]) + data[i:i + sub_block]
                        for i in range(0, len(data), sub_block)) + b"\x00"

    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x81 if global_colors else 0, 0, 0)
    out += bytes(12) if global_colors else b""
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for left, top, width, height, table_bits in frames:
        if comment:
            out += b"\x21\xfe" + sub_blocks(comment)
        out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"
        packed = 0x80 | (table_bits - 1) if table_bits else 0
        out += b"\x2c" + struct.pack("<HHHHB", left, top, width, height, packed)
        out += bytes(3 * 2**table_bits) if table_bits else b""
        out += b"\x02" + sub_blocks(image_bombs._lzw_constant(width * height))
    return out + b"\x3b"


def reference_gif_info(data):
    """The walk image_codec does with vector ops, one block at a time in Python."""
    def byte(i):
        return data[i] if 0 <= i < len(data) else 0

    def table(packed):
        return 3 << ((packed & 7) + 1) if packed & 0x80 else 0

    pos = 13 + table(byte(10))
    frames = area = max_w = max_h = 0
    while pos < len(data) and data[pos] in (0x21, 0x2C):
        if data[pos] == 0x21:
            pos += 2
        else:
            width, height = byte(pos + 5) | byte(pos + 6) << 8, byte(pos + 7) | byte(pos + 8) << 8
            frames, area = frames + 1, area + width * height
            max_w, max_h = max(max_w, width), max(max_h, height)
            pos += 11 + table(byte(pos + 9))
        while pos < len(data) and data[pos]:
            pos += 1 + data[pos]
        if pos >= len(data):
            break
        pos += 1
    return [max_h, max_w], max(area, max_w * max_h), frames


def test_gif_size_is_the_largest_frame_as_tf_decodes_it():
    cases = [
        gif([(0, 0, 37, 53, 0)], screen=(100, 100)),
        gif([(0, 0, 37, 53, 0)], screen=(10, 10)),
        gif([(5, 7, 37, 53, 0), (0, 0, 60, 20, 8), (3, 4, 5, 5, 1)], screen=(10, 10)),
        gif([(0, 0, 37, 53, 2)] * 7, sub_block=1, comment=bytes(range(256)) * 3),
    ]
    for data in cases:
        size, pixels, frames = [x.numpy().tolist() for x in image_info(data)[:3]]
        decoded = tf.io.decode_gif(data)
        assert size == list(decoded.shape[1:3])
        assert frames == decoded.shape[0]
        assert [size, pixels, frames] == list(reference_gif_info(data))


def test_gif_walk_matches_the_reference_on_random_structures():
    rng = random.Random(7)

    def sub(count):  # `count` sub-blocks of random lengths and bytes, then the 0
        lengths = [rng.randint(1, 255) for _ in range(count)]
        return b"".join(bytes([n]) + rng.randbytes(n) for n in lengths) + b"\x00"

    for case in range(40):
        blocks = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.4:
                blocks.append(b"\x21" + bytes([rng.randint(0, 255)]) + sub(rng.randint(0, 30)))
            else:
                bits = rng.choice([0, 0, 1, 8, 8])
                descriptor = struct.pack("<HHHHB", *(rng.randint(0, 65535) for _ in range(4)),
                                         (0x80 | (bits - 1)) if bits else rng.randint(0, 0x7F))
                blocks.append(b"\x2c" + descriptor + rng.randbytes(3 * 2**bits if bits else 0)
                              + b"\x02" + sub(rng.randint(0, 60)))
        packed = rng.choice([0x00, 0x81, 0x87, 0xF7])
        data = b"GIF89a" + struct.pack("<HHBBB", 1, 1, packed, 0, 0)
        data += rng.randbytes(3 << ((packed & 7) + 1) if packed & 0x80 else 0)
        data += b"".join(blocks) + rng.choice([b"\x3b", b"", rng.randbytes(5)])
        if case % 3 == 2:
            data = data[:rng.randint(0, len(data))]
        got = [x.numpy().tolist() for x in image_info(data)[:3]]
        assert got == list(reference_gif_info(data)), (case, len(data))


def test_gif_walk_is_fast_on_one_byte_sub_blocks():
    data = gif([(0, 0, 10000, 10000, 0)], sub_block=1)  # 70000 sub-blocks in 140 KB
    image_info(data)
    start = time.perf_counter()
    assert image_info(data)[2].numpy() == 1
    assert time.perf_counter() - start < 0.5  # ~0.02 s: 35 windows, not 70000 loop steps


# --- decode_image: the old numbers, or a refusal before decoding ----------------


@pytest.mark.parametrize("fmt,options,channels", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("model_channels", [3, 1])
def test_decode_image_matches_the_old_behaviour(fmt, options, channels, model_channels):
    data = encode(noise(53, 37, channels, seed=channels), fmt, **options)
    decode = decode_rgb if model_channels == 3 else decode_gray
    got = decode(data).numpy()
    assert got.shape == (HEIGHT, WIDTH, model_channels)
    want = old_decode_image(data, HEIGHT, WIDTH, model_channels).numpy()
    np.testing.assert_array_equal(got, want)


def test_channel_conversions():
    gray, rgb, rgba = noise(53, 37, 1, 1), noise(53, 37, 3, 2), noise(53, 37, 4, 3)

    def resized(pixels):
        return tf.image.resize(tf.cast(pixels, tf.float32), (HEIGHT, WIDTH)).numpy()

    # Gray -> RGB repeats the gray channel; RGBA -> RGB drops alpha.
    np.testing.assert_array_equal(decode_rgb(encode(gray, "PNG")), np.repeat(resized(gray), 3, -1))
    np.testing.assert_array_equal(decode_rgb(encode(rgba, "PNG")), resized(rgba[..., :3]))
    # RGB -> gray weighs the channels as tf.image.rgb_to_grayscale does.
    np.testing.assert_array_equal(decode_gray(encode(rgb, "PNG")),
                                  resized(tf.image.rgb_to_grayscale(rgb)))
    np.testing.assert_array_equal(decode_gray(encode(gray, "PNG")), resized(gray))


def test_decode_image_runs_eagerly():
    data = encode(noise(9, 7, 3), "PNG")
    np.testing.assert_array_equal(decode_image(data, HEIGHT, WIDTH, 3), decode_rgb(data))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode_image(data, HEIGHT, WIDTH, 3, max_pixels=10)
    assert error.value.message == (
        "assertion failed: [Image of 7x9 = 63 pixels is over the limit of 10 pixels of this "
        "model (max_image_pixels, set at export); resize it before sending.]")
    gif_data = gif([(0, 0, 7, 9, 0)] * 2, sub_block=3)
    np.testing.assert_array_equal(decode_image(gif_data, HEIGHT, WIDTH, 3), decode_rgb(gif_data))


def test_pixel_limit_is_inclusive():
    assert decode_max_100(encode(noise(10, 10, 3), "PNG")).shape == (8, 8, 3)
    assert decode_max_100(encode(noise(4, 25, 3), "BMP")).shape == (8, 8, 3)
    message = assert_refused(decode_max_100, encode(noise(11, 10, 3), "PNG"),
                             "Image of 10x11 = 110 pixels is over the limit of 100 pixels")
    assert "resize it before sending" in message
    # A GIF counts the pixels of all its frames: TF decodes them all.
    assert decode_max_100(gif([(0, 0, 10, 5, 0)] * 2)).shape == (8, 8, 3)
    assert_refused(decode_max_100, gif([(0, 0, 10, 5, 0)] * 3),
                   "Image of 10x5 in 3 GIF frames = 150 pixels is over the limit of 100")


BOMBS = {
    "png 20000x20000": png_bomb,
    "jpeg 20000x20000": lambda: image_bombs.jpeg_bomb(),
    "webp 16383x16383": lambda: image_bombs.webp_bomb(),
    "jxl 20000x20000": lambda: image_bombs.jxl_bomb(),
    # The logical screen says 16x16: only the frame descriptors tell.
    "gif frame 20000x20000": lambda: image_bombs.gif_bomb(20000, 20000, screen=(16, 16)),
    # Each frame is under the limit, but TF keeps all 40 (1.4 G pixels).
    "gif 40 frames of 6000x6000": lambda: image_bombs.gif_bomb(6000, 6000, frames=40),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_before_decoding(name):
    data = BOMBS[name]()
    width, height = name.split()[-1].split("x")
    assert_refused(decode_rgb, data, f"Image of {width}x{height}", LIMIT_TEXT)


def test_memory_check_sees_a_real_decode():
    # The control for the bound above: an unchecked decode of a smaller bomb (100 MB of
    # gray pixels) shows. In a fresh process: late in a long test session the allocator
    # may hand back memory freed earlier, which the peak does not count.
    code = ("import image_bombs, tensorflow as tf, test_image_codec as t\n"
            "data = image_bombs.png_bomb(10000, 10000)\n"
            "print(t.peak_growth_mb(lambda: tf.io.decode_image(data).shape), t.reset_peak())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    growth, resettable = proc.stdout.split()[-2:]
    if resettable == "True":
        assert int(growth) >= 90


def test_animated_webp_without_alpha_is_refused_not_decoded():
    # tf.io.decode_image corrupts the heap on this file: the check must come first.
    data = image_bombs.webp_animation_without_alpha()
    assert_refused(decode_rgb, data, "Animated WebP images without an alpha channel")


@pytest.mark.parametrize("data,fragment", [
    (b"", "Input is empty"),
    (b"hello", "Unknown image file format"),
    (b"\x89PNG\r\n\x1a\n" + bytes(30), "Invalid PNG"),
    (b"GIF89a", "GIF"),
    (b"BM" + bytes(40), "Number of channels"),
    (b"\xff\xd8\xff\xe0" + bytes(20), "Invalid JPEG data"),
], ids=["empty", "text", "png-header-only", "gif-signature-only", "bmp-zeros", "jpeg-zeros"])
def test_bad_bytes_give_invalid_argument(data, fragment):
    with pytest.raises(tf.errors.InvalidArgumentError, match=fragment):
        decode_rgb(tf.constant(data))


def test_truncated_images_give_invalid_argument():
    for fmt in ["PNG", "JPEG", "GIF", "WEBP"]:
        data = encode(noise(53, 37, 3), fmt)
        for cut in [3, 12, 30, len(data) // 2]:
            with pytest.raises(tf.errors.InvalidArgumentError):
                decode_rgb(tf.constant(data[:cut]))


# --- as the signatures run it: map_fn over a batch, and a reloaded SavedModel ---


def decode_batch(encoded):
    return tf.map_fn(lambda data: decode_image(data, HEIGHT, WIDTH, 3), encoded,
                     fn_output_signature=tf.TensorSpec((HEIGHT, WIDTH, 3), tf.float32))


def test_map_fn_over_a_batch():
    batch = tf.function(decode_batch, input_signature=[tf.TensorSpec((None,), tf.string)])
    good = [encode(noise(53, 37, c), "PNG") for c in (1, 3, 4)] + [encode(noise(5, 9, 3), "GIF")]
    np.testing.assert_array_equal(batch(tf.constant(good)), tf.stack([decode_rgb(d) for d in good]))
    mixed = [good[0], png_bomb(), good[1]]
    assert_refused(batch, mixed, "Image of 20000x20000", LIMIT_TEXT)


def test_error_text_from_a_reloaded_saved_model(tmp_path):
    class Decoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
        def image_bytes(self, image_bytes):
            return {"image": decode_batch(image_bytes)}

    module = Decoder()
    tf.saved_model.save(module, str(tmp_path), signatures={"image_bytes": module.image_bytes})
    signature = tf.saved_model.load(str(tmp_path)).signatures["image_bytes"]
    good = encode(noise(53, 37, 3), "JPEG")
    assert signature(image_bytes=tf.constant([good]))["image"].shape == (1, HEIGHT, WIDTH, 3)

    def call(data):
        return signature(image_bytes=tf.reshape(data, (-1,)))

    message = assert_refused(call, [png_bomb()], LIMIT_TEXT)
    assert (
        "assertion failed: [Image of 20000x20000 = 400000000 pixels is over the limit of "
        "40000000 pixels of this model (max_image_pixels, set at export); resize it before "
        "sending.]"
    ) in message
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        call(tf.constant([b"not an image"]))


def test_graph_uses_only_core_ops():
    graph = decode_rgb.get_concrete_function().graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    assert not [op for op in ops if op.startswith("Xla")]
    assert {"ExtractJpegShape", "DecodeImage", "Assert"} <= ops
