"""The whole way for any registered model of any registered task, written once.

`go_the_whole_way(names, workdir)` takes each model through build (tiny) -> one
training step on its task's data -> export -> verification in one fresh process ->
one `zoo-model-server` serving them all -> every warm-up request of every signature
sent over gRPC (Predict, Classify or Regress, by the signature's method) -> the
answer compared with the Keras model's by the model's own task. Nothing here knows
a task: a new task or model is checked by calling it with the new name.
"""

from __future__ import annotations

import pathlib

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from export import export_saved_model
from export.archive import plan_export
from export.model_card import read_signatures
from export.verify import verify_in_subprocess
from export.warmup import prediction_log
from model_checks import TINY_BY_MODEL
from serving import ModelServer
from zoo import registry, tasks
from zoo.data import load_dataset, registry as datasets


def offline_data(name: str):
    """(dataset name, first batch, DatasetInfo) of an offline set of `name`'s task that
    the tiny model builds on (the model's default set when that one is offline)."""
    spec = registry.get_model_spec(name)
    task = tasks.get_task(spec.task)
    candidates = [spec.default_dataset] + datasets.list_datasets(spec.task)
    for dataset in dict.fromkeys(candidates):
        if dataset not in datasets.list_datasets() or not datasets.get_dataset(dataset).offline:
            continue
        ds, info = load_dataset(dataset, "train", batch_size=4, shuffle=False, with_info=True,
                                **registry.data_options(name, TINY_BY_MODEL.get(name, {})))
        kwargs = dict(TINY_BY_MODEL.get(name, {}), **task.builder_arguments(info))
        try:
            model = registry.build_model(name, **kwargs)
        except ValueError:  # e.g. images too small for this architecture
            continue
        return dataset, next(iter(ds)), model
    raise AssertionError(f"no offline {spec.task} dataset that {name} builds on; register one")


def train_one_step(name: str):
    """(tiny model of `name` after one fit step on real data, dataset name)."""
    dataset, (x, y), model = offline_data(name)
    task = tasks.get_task(registry.get_model_spec(name).task)
    model.compile(optimizer="adam", loss=task.loss(), metrics=task.metrics(), run_eagerly=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights)), \
        f"{name}: one fit step changed no weight"
    return model, dataset


def send(stub, request, model_name: str) -> dict:
    """One warm-up `Request` over gRPC by its method; the outputs as a dict of arrays."""
    log = prediction_log(request, model_name)
    kind = log.WhichOneof("log_type")
    rpc = getattr(log, kind).request
    if kind == "predict_log":
        response = stub.Predict(rpc, timeout=60)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    if kind == "classify_log":
        result = stub.Classify(rpc, timeout=60).result
        return {"classes": np.array([[c.label.encode() for c in row.classes] for row in result.classifications],
                                    dtype=object),
                "scores": np.array([[c.score for c in row.classes] for row in result.classifications], np.float32)}
    result = stub.Regress(rpc, timeout=60).result
    return {"outputs": np.array([r.value for r in result.regressions], np.float32)}


def go_the_whole_way(names, workdir) -> dict:
    """Every model in `names` the whole way; returns {name: max |diff| over all served calls}."""
    base = pathlib.Path(workdir).resolve() / "models"
    plans, paths = {}, {}
    for name in names:
        model, dataset = train_one_step(name)
        paths[name] = export_saved_model(model, base, name, dataset=dataset, verify=False)
        plans[name] = plan_export(model, dataset=dataset)
    # Verification of all of them in ONE fresh process (TensorFlow is imported once).
    jobs = [plans[n].verification_job(paths[n], {k: s["method_name"] for k, s in read_signatures(paths[n]).items()})
            for n in names]
    for name, report in zip(names, verify_in_subprocess(jobs)):
        assert report["ok"], (name, report["errors"])
        assert report["records"] == len(plans[name].requests)

    diffs = {}
    with ModelServer(model_config_file=str(base / "models.config"), port=0) as server:
        channel = grpc.insecure_channel(f"localhost:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for name in names:
            plan = plans[name]
            for request in plan.requests:
                outputs = send(stub, request, name)
                errors, diff = plan.task.compare(request, outputs, plan.reference, plan.assets)
                assert not errors, (name, request.signature, errors)
                diffs[name] = max(diffs.get(name, 0.0), diff)
        channel.close()
    return diffs
