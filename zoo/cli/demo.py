"""`zoo demo`: the whole way on the offline digits set, in about a minute on a laptop CPU.

train simple_cnn with fit → evaluate → export a SavedModel → serve it with
zoo-model-server → query it over gRPC with serving.Client → print the answers.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import tensorflow as tf

import zoo
from export import export_saved_model
from serving import Client, ModelServer
from zoo.data import digits


def run_demo(out: str = "zoo-demo") -> int:
    out_dir = pathlib.Path(out)
    run_dir = out_dir / "runs" / "simple_cnn-digits"
    print(f"[1/5] training simple_cnn on the offline digits set -> {run_dir}")
    zoo.train("simple_cnn", "digits", epochs=15, out_dir=run_dir, overwrite=True)
    print(f"      curves: {run_dir / 'curves.png'}")

    print("[2/5] evaluating on the held-out test split")
    metrics = zoo.evaluate(run_dir)
    print(f"      test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")

    base = out_dir / "models"
    # A demo starts clean: TF Serving would otherwise serve the newest earlier export.
    shutil.rmtree(base / "digits", ignore_errors=True)
    print(f"[3/5] exporting a verified SavedModel to {base}/digits/")
    version_dir = export_saved_model(run_dir, base, "digits")
    print(f"      {version_dir}")

    print("[4/5] serving it with zoo-model-server (gRPC and REST on free localhost ports)")
    server = ModelServer(model_name="digits", model_base_path=str((base / "digits").resolve()),
                         port=0, rest_api_port=0)
    server.start()
    try:
        images, labels = digits.digits("test")
        client = Client(f"localhost:{server.grpc_port}", "digits")
        client.wait_until_available(timeout=60)
        print("[5/5] querying it")
        result = client.predict({"image": images[:6].astype(np.float32)})
        print("      gRPC Predict, serving_default (raw pixels):")
        for i, truth in enumerate(labels[:6]):
            label = _text(result["label"][i])
            score = float(np.max(result["probabilities"][i]))
            print(f"        image {i}: predicted {label} (p={score:.3f}), true {truth}"
                  f"  {'ok' if label == str(truth) else 'WRONG'}")
        png = [tf.io.encode_png(im).numpy() for im in images[6:9]]
        result = client.predict({"image_bytes": np.array(png, dtype=object)}, signature="image_bytes")
        print(f"      gRPC Predict, image_bytes (PNG files): labels {[_text(v) for v in result['label']]}, "
              f"true {[int(v) for v in labels[6:9]]}")
        top = client.classify([{"image/encoded": png[0]}])[0]
        best = max(top, key=lambda c: c[1])
        print(f"      gRPC Classify (tf.Example): top class {_text(best[0])} score {best[1]:.3f}")
        rest = Client(f"localhost:{server.rest_port}", "digits", protocol="rest")
        result = rest.predict({"image": images[9:12].astype(np.float32)})
        print(f"      REST :predict: labels {[_text(v) for v in result['label']]}, "
              f"true {[int(v) for v in labels[9:12]]}")
        print(f"      model status: {client.status()}")
        client.close()
        rest.close()
    finally:
        server.stop()
    return 0


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
