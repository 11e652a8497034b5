"""Decompression bombs sent to a served image classifier's `image_bytes` and `classify`,
and tensor bombs (a shape that pads a few values out to gigabytes, too many dimensions).

A 0.4 MB PNG or a 634-byte JPEG whose header says 20000x20000 used to be decoded in
full (the server's memory peaked at 7.9 GB and stayed there). The export reads the
size from the header and refuses the image before any decoder runs. Here a real
`zoo-model-server` process serves a real export; each bomb must get INVALID_ARGUMENT
naming the limit, the server's peak memory must stay within a stated bound, and a good
image right after must be answered.
"""

import time

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from export import export_saved_model
from export_checks import encode, real_images
from image_bombs import gif_bomb, jpeg_bomb, png_bomb, webp_animation_without_alpha
from model_checks import tiny_model
from serving import Client
from serving.client import ClientError
from serving_models import free_port, server_process
from zoo.tasks.image_classification import image_example

# Peak growth of the server's resident memory over the whole bomb run. A decoded
# 20000x20000 image alone is 400 MB (gray) to 1.6 GB (RGBA), before any float copy.
MEMORY_BOUND_MB = 150
LIMIT = 1_000_000  # max_image_pixels of this export: 1000x1000


def _peak_mb(pid) -> float:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmHWM"].split()[0]) / 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("bombs") / "models"
    images = real_images("synthetic_shapes", n=4)
    export_saved_model(tiny_model("simple_cnn"), base, "shapes", examples=images, task_options={"max_image_pixels": LIMIT})
    port, rest_port = free_port(), free_port()
    with server_process(f"--port={port}", f"--rest_api_port={rest_port}", "--model_name=shapes",
                        f"--model_base_path={(base / 'shapes').resolve()}") as process:
        process.grpc_address = f"localhost:{port}"
        client = Client(f"localhost:{port}", "shapes")
        client.wait_until_available(timeout=120)
        yield process, client, Client(f"localhost:{rest_port}", "shapes", protocol="rest"), images
        client.close()


BOMBS = {
    "png 20000x20000": lambda: png_bomb(20000, 20000),
    "jpeg 20000x20000": lambda: jpeg_bomb(20000, 20000),
    "gif with a 16x16 header and a 20000x20000 frame": lambda: gif_bomb(20000, 20000, screen=(16, 16)),
}


def test_bombs_are_refused_before_decoding_and_memory_stays_bounded(server):
    process, client, rest, images = server
    good = encode(images[0], "PNG")
    client.predict({"image_bytes": np.array([good], dtype=object)}, signature="image_bytes")  # warm
    before = _peak_mb(process.pid)
    for name, make in BOMBS.items():
        data = make()
        started = time.perf_counter()
        with pytest.raises(ClientError) as e:
            client.predict({"image_bytes": np.array([data], dtype=object)}, signature="image_bytes")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value)
        assert f"over the limit of {LIMIT} pixels" in str(e.value) and "max_image_pixels" in str(e.value), name
        assert time.perf_counter() - started < 10, name
        # The same bomb inside a batch with a good image, and inside a tf.Example for Classify.
        with pytest.raises(ClientError, match="over the limit"):
            client.predict({"image_bytes": np.array([good, data], dtype=object)}, signature="image_bytes")
        with pytest.raises(ClientError, match="over the limit") as e:
            client.classify([image_example(encoded=data)])
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ClientError, match="over the limit") as e:  # REST answers 400 with the same text
        rest.predict({"image_bytes": np.array([png_bomb(20000, 20000)], dtype=object)}, signature="image_bytes")
    assert e.value.http_status == 400
    growth = _peak_mb(process.pid) - before
    print(f"peak memory growth over the bombs: {growth:.1f} MB")
    assert growth < MEMORY_BOUND_MB, f"the server's peak memory grew by {growth:.0f} MB"

    # It keeps serving: a good image right after is answered as before.
    out = client.predict({"image_bytes": np.array([good], dtype=object)}, signature="image_bytes")
    want = client.predict({"image": images[:1]})
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], atol=1e-5)
    assert process.poll() is None


def _raw_predict(address, proto):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "shapes"
    request.inputs["image"].CopyFrom(proto)
    with grpc.insecure_channel(address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)


def _declared(dims, **fields):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for d in dims:
        proto.tensor_shape.dim.add().size = d
    for name, values in fields.items():
        getattr(proto, name).extend(values)
    return proto


def test_tensor_bombs_are_refused_and_memory_stays_bounded(server):
    # A 46-byte request declaring [1000000,8,8,1] with one float_val once drove the
    # server past 6 GB in 6 s: TensorFlow pads the values out, and the model runs on
    # a million images. Shapes with more dimensions than an array holds were INTERNAL.
    process, client, _, images = server
    _, height, width, channels = images.shape
    client.predict({"image": images[:1]})  # warm
    before = _peak_mb(process.pid)
    bombs = {
        "amplified": _declared([1_000_000, height, width, channels], float_val=[1.0]),
        "65 dims": _declared([1] * 65, float_val=[1.0]),
        "254 dims": _declared([1] * 254, float_val=[1.0]),
        "huge declared size": _declared([1 << 40, height, width, channels], float_val=[1.0]),
    }
    for name, proto in bombs.items():
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as e:
            _raw_predict(process.grpc_address, proto)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value.details())
        assert e.value.details().startswith("tensor parsing error: image"), (name, e.value.details())
        assert time.perf_counter() - started < 5, name
        # And the next good request is answered.
        assert client.predict({"image": images[:1]})["probabilities"].shape == (1, 3)
    growth = _peak_mb(process.pid) - before
    print(f"peak memory growth over the tensor bombs: {growth:.1f} MB")
    assert growth < MEMORY_BOUND_MB, f"the server's peak memory grew by {growth:.0f} MB"
    assert process.poll() is None


def test_an_image_at_the_limit_is_answered_and_one_pixel_more_is_not(server):
    _, client, _, images = server
    at_limit = encode(images[0], "PNG", size=(1000, 1000))
    over = encode(images[0], "PNG", size=(1001, 1000))
    out = client.predict({"image_bytes": np.array([at_limit], dtype=object)}, signature="image_bytes")
    assert out["probabilities"].shape == (1, 3)
    with pytest.raises(ClientError, match=r"Image of 1001x1000 = 1001000 pixels is over the limit of 1000000"):
        client.predict({"image_bytes": np.array([over], dtype=object)}, signature="image_bytes")


def test_an_animated_webp_without_alpha_is_refused_not_crashing_the_server(server):
    # TF 2.21's WebP decoder corrupts the heap on these (the process aborts).
    process, client, _, images = server
    with pytest.raises(ClientError, match="Animated WebP images without an alpha channel") as e:
        client.predict({"image_bytes": np.array([webp_animation_without_alpha()], dtype=object)},
                       signature="image_bytes")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert process.poll() is None
    client.predict({"image": images[:1]})


def test_the_limit_is_recorded_in_the_export(server, tmp_path):
    from export.model_card import read_model_card

    images = real_images("synthetic_shapes", n=4)
    path = export_saved_model(tiny_model("simple_cnn"), tmp_path / "models", "s", examples=images, verify=False)
    assert read_model_card(path)["max_image_pixels"] == 40_000_000  # the default
    path = export_saved_model(tiny_model("simple_cnn"), tmp_path / "models", "s", examples=images, verify=False,
                              task_options={"max_image_pixels": LIMIT})
    assert read_model_card(path)["max_image_pixels"] == LIMIT
