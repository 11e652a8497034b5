"""`zoo demo`: the whole way on the offline digits set, in about a minute on a laptop CPU.

train simple_cnn with fit → evaluate → export a SavedModel → serve it with
zoo-model-server → query it over gRPC with serving.Client → print the answers.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np


def run_demo(out: str = "zoo-demo") -> int:
    import zoo
    from zoo.data import offline

    out_dir = pathlib.Path(out)
    run_dir = out_dir / "runs" / "simple_cnn-digits"
    print(f"[1/5] training simple_cnn on the offline digits set -> {run_dir}")
    zoo.train("simple_cnn", "digits", epochs=15, out_dir=run_dir, overwrite=True)
    print(f"      curves: {run_dir / 'curves.png'}")

    print("[2/5] evaluating on the held-out test split")
    metrics = zoo.evaluate(run_dir)
    print(f"      test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")

    try:
        from export import export_saved_model
    except ImportError:
        print("[3/5] export is not available in this build; stopping after training")
        return 0
    base = out_dir / "models"
    print(f"[3/5] exporting a verified SavedModel to {base}/digits/")
    version_dir = export_saved_model(run_dir, base, "digits", overwrite=True)
    print(f"      {version_dir}")

    try:
        from serving import Client, ModelServer
    except ImportError:
        print("[4/5] serving is not available in this build; stopping after export")
        return 0
    print("[4/5] serving it with zoo-model-server (gRPC on a free localhost port)")
    server = ModelServer(model_name="digits", model_base_path=str((base / "digits").resolve()), port=0)
    server.start()
    try:
        client = Client(f"localhost:{server.grpc_port}", "digits")
        client.wait_until_available(timeout=60)
        images, labels = offline.arrays("digits", "test")
        batch = images[:8].astype(np.float32)
        print("[5/5] querying over gRPC (Predict, serving_default):")
        result = client.predict({"image": batch})
        for i, (label, truth) in enumerate(zip(result["label"], labels[:8])):
            label = label.decode() if isinstance(label, bytes) else str(label)
            score = float(np.max(result["probabilities"][i]))
            mark = "ok" if label == str(truth) else "WRONG"
            print(f"      image {i}: predicted {label} (p={score:.3f}), true {truth}  {mark}")
        print(json.dumps({"model_spec": "digits", "status": client.status()}, default=str)[:400])
    finally:
        server.stop()
    return 0
