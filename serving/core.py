"""The transport-independent server: TF Serving's APIs on tensorflow_serving.apis protos.

`ServerCore` takes the request protos of PredictionService and ModelService and
returns their response protos, or raises `ServingError` with the status code and
text TF Serving gives (predict_util.cc, classifier.cc, regressor.cc,
multi_inference.cc, get_model_metadata_impl.cc, get_model_status_impl.cc,
server_core.cc). The gRPC servicers call it directly; the REST API converts its JSON
into the same protos and calls the same methods, so both transports agree on every
answer and every error.

Example:
    >>> core = ServerCore(manager, batcher=None, metrics=Metrics())
    >>> request = predict_pb2.PredictRequest()
    >>> request.model_spec.name = "mnist"
    >>> request.inputs["image"].CopyFrom(tensors.from_ndarray(images))
    >>> response = core.predict(request)
    >>> tensors.to_ndarray(response.outputs["probabilities"])
"""

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections import namedtuple
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)
from tensorflow_serving.apis import status_pb2

from serving import tensors
from serving.errors import ServingError
from serving.metrics import Metrics
from serving.servables import as_serving_error

log = logging.getLogger(__name__)

# SignatureDef names, as TF Serving and tf.saved_model spell them.
DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
PREDICT_METHOD = tf.saved_model.PREDICT_METHOD_NAME
CLASSIFY_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME
REGRESS_METHOD = tf.saved_model.REGRESS_METHOD_NAME
CLASSIFY_INPUTS = tf.saved_model.CLASSIFY_INPUTS
CLASSIFY_CLASSES = tf.saved_model.CLASSIFY_OUTPUT_CLASSES
CLASSIFY_SCORES = tf.saved_model.CLASSIFY_OUTPUT_SCORES
REGRESS_INPUTS = tf.saved_model.REGRESS_INPUTS
REGRESS_OUTPUTS = tf.saved_model.REGRESS_OUTPUTS
SIGNATURE_DEF_FIELD = "signature_def"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


# One model run an API's steps ask for (see ServerCore._drive).
_Run = namedtuple("_Run", "servable signature_name inputs output_keys timeout batch api")


def _invalid(message):
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _deadline_exceeded(timeout):
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"Deadline Exceeded: the model run took longer than the request's {timeout * 1000:.0f} ms")


def _debug_string(message):
    return text_format.MessageToString(message)


def _set_model_spec(spec, name, signature_name, version):
    # TF Serving's MakeModelSpec: the request's name, the resolved signature and version.
    spec.Clear()
    spec.name = name
    if signature_name is not None:
        spec.signature_name = signature_name or DEFAULT_SIGNATURE
    if version is not None:
        spec.version.value = version


def _examples(model_input):
    """The serialized tf.Examples of an `Input` proto, as a [N] string array."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        # TF Serving prepends the serialized context to each example: parsing the
        # concatenation merges them, the example winning on shared features.
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise _invalid("Input is empty.")
    array = np.empty(len(serialized), dtype=object)
    array[:] = serialized
    return array


class ServerCore:
    """TF Serving's PredictionService and ModelService, independent of the transport.

    Args:
        manager: the `serving.servables.ModelManager` holding the models.
        batcher: a `serving.batching.BatchScheduler`, or None to run every request
            on its own.
        metrics: the `serving.metrics.Metrics` to record into (a fresh one if None).
        enable_signature_method_name_check: TF Serving's flag of the same name:
            require a SignatureDef's method_name to match the API (off by default,
            as there, so TF2 `classify`/`regress` signatures serve Classify/Regress).

    Every request method takes the request proto and keyword-only `timeout`
    (seconds a batched request may wait, or None) and `entrypoint` (the
    `entrypoint` label of the latency metric: "GRPC", "REST", ...), returns the
    response proto, and raises `ServingError`. Predict, Classify, Regress and
    MultiInference also come as coroutines (`predict_async`, ...) for an asyncio
    server: the same checks, answers, errors and metrics, awaiting the model run
    instead of blocking a thread on it.
    """

    def __init__(self, manager, *, batcher=None, metrics=None, enable_signature_method_name_check=False,
                 max_concurrent_runs=64, max_request_tensor_bytes=tensors.DEFAULT_MAX_REQUEST_TENSOR_BYTES,
                 reload_refusal=""):
        self.manager = manager
        # Non-empty: why HandleReloadConfigRequest is refused (a worker process of several).
        self.reload_refusal = reload_refusal
        self.batcher = batcher
        self.metrics = metrics if metrics is not None else Metrics()
        self.enable_signature_method_name_check = enable_signature_method_name_check
        self.max_concurrent_runs = max_concurrent_runs
        # --max_request_tensor_bytes: 0 or None is no limit.
        self.max_request_tensor_bytes = max_request_tensor_bytes or None
        self._deadline_pool = None

    # PredictionService.

    def predict(self, request: predict_pb2.PredictRequest, *, timeout=None, entrypoint="GRPC"):
        """Predict: run a signature on named input tensors (output_filter selects outputs)."""
        return self._observe("Predict", request.model_spec.name, entrypoint,
                             self._with_servable(request, self._predict_steps, timeout))

    def classify(self, request: classification_pb2.ClassificationRequest, *, timeout=None, entrypoint="GRPC"):
        """Classify: tf.Examples in, (label, score) pairs per example out."""
        return self._observe("Classify", request.model_spec.name, entrypoint,
                             self._with_servable(request, self._classify_steps, timeout))

    def regress(self, request: regression_pb2.RegressionRequest, *, timeout=None, entrypoint="GRPC"):
        """Regress: tf.Examples in, one float per example out."""
        return self._observe("Regress", request.model_spec.name, entrypoint,
                             self._with_servable(request, self._regress_steps, timeout))

    def multi_inference(self, request: inference_pb2.MultiInferenceRequest, *, timeout=None, entrypoint="GRPC"):
        """MultiInference: several Classify/Regress signatures of one model on one input."""
        name = request.tasks[0].model_spec.name if request.tasks else ""
        return self._observe("MultiInference", name, entrypoint, self._multi_inference_steps_for(request, timeout))

    # The same four for an asyncio event loop (the gRPC server when batching is on):
    # the same checks, answers, errors and metrics, but a request waits for its
    # batch without holding a thread.

    async def predict_async(self, request, *, timeout=None, entrypoint="GRPC"):
        """`predict`, awaiting the model run (see `serving.batching.BatchScheduler.run_async`)."""
        return await self._observe_async("Predict", request.model_spec.name, entrypoint,
                                         self._with_servable(request, self._predict_steps, timeout))

    async def classify_async(self, request, *, timeout=None, entrypoint="GRPC"):
        """`classify`, awaiting the model run."""
        return await self._observe_async("Classify", request.model_spec.name, entrypoint,
                                         self._with_servable(request, self._classify_steps, timeout))

    async def regress_async(self, request, *, timeout=None, entrypoint="GRPC"):
        """`regress`, awaiting the model run."""
        return await self._observe_async("Regress", request.model_spec.name, entrypoint,
                                         self._with_servable(request, self._regress_steps, timeout))

    async def multi_inference_async(self, request, *, timeout=None, entrypoint="GRPC"):
        """`multi_inference`, awaiting the model runs."""
        name = request.tasks[0].model_spec.name if request.tasks else ""
        return await self._observe_async("MultiInference", name, entrypoint,
                                         self._multi_inference_steps_for(request, timeout))

    def get_model_metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, *, entrypoint="GRPC"):
        """GetModelMetadata: the model's SignatureDefMap under "signature_def"."""

        def call():
            self._require_model_spec(request)
            if not request.metadata_field:
                raise _invalid("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != SIGNATURE_DEF_FIELD:
                    raise _invalid(f"Metadata field {field} is not supported")
            with self.manager.handle(request.model_spec) as servable:
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                for key, signature in servable.signature_defs.items():
                    signature_map.signature_def[key].CopyFrom(signature)
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                _set_model_spec(response.model_spec, servable.name, None, servable.version)
                response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
                return response

        return self._observe("GetModelMetadata", request.model_spec.name, entrypoint, call)

    # ModelService.

    def get_model_status(self, request: get_model_status_pb2.GetModelStatusRequest, *, entrypoint="GRPC"):
        """GetModelStatus: the state (and load error, if any) of every version."""
        self._require_model_spec(request)
        name = request.model_spec.name
        states = self.manager.version_states(name)
        if request.model_spec.HasField("version"):
            version = request.model_spec.version.value
            states = [s for s in states if s.version == version]
            if not states:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}"
                )
        elif not states:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in states:
            status = response.model_version_status.add(version=state.version, state=state.state)
            if state.error is not None:
                status.status.CopyFrom(
                    status_pb2.StatusProto(
                        error_code=state.error.error_code, error_message=state.error.message
                    )
                )
            else:
                status.status.CopyFrom(status_pb2.StatusProto())
        return response

    def handle_reload_config(self, request: model_management_pb2.ReloadConfigRequest, *, entrypoint="GRPC"):
        """HandleReloadConfigRequest: switch to a new ModelConfigList."""
        if self.reload_refusal:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, self.reload_refusal)
        if request.config.WhichOneof("config") != "model_config_list":
            raise _invalid(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        for index, model in enumerate(request.config.model_config_list.config):
            log.info("Config entry index: %d path: %s name: %s platform: %s",
                     index, model.base_path, model.name, model.model_platform)
        try:
            self.manager.reload_config(request.config)
        except ServingError as e:
            log.error("ReloadConfig failed: %s", e.message)
            raise
        response = model_management_pb2.ReloadConfigResponse()
        response.status.CopyFrom(status_pb2.StatusProto())
        return response

    # Helpers for other front ends (the REST API).

    def resolve_signature(self, model_spec, default_signature=DEFAULT_SIGNATURE):
        """The resolved ModelSpec (name, signature, version) and SignatureDef a spec names.

        The REST API uses this to learn the input dtypes before it builds a
        PredictRequest from JSON.

        Raises:
            ServingError: NOT_FOUND / INVALID_ARGUMENT as `predict` would, and
                FAILED_PRECONDITION for an unknown signature.
        """
        with self.manager.handle(model_spec) as servable:
            name = model_spec.signature_name or default_signature
            signature = servable.signature_defs.get(name)
            if signature is None:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.'
                )
            spec = type(model_spec)()
            _set_model_spec(spec, model_spec.name, name, servable.version)
            return spec, signature

    def metrics_exposition(self):
        """(content_type, body) of the Prometheus metrics, for the monitoring path."""
        return self.metrics.exposition()

    # The APIs on one loaded servable (also what warmup replays).

    def predict_on(self, servable, request, *, timeout=None, batch=True):
        return self._drive(self._predict_steps(servable, request, timeout, batch))

    def classify_on(self, servable, request, *, timeout=None, batch=True):
        return self._drive(self._classify_steps(servable, request, timeout, batch))

    def regress_on(self, servable, request, *, timeout=None, batch=True):
        return self._drive(self._regress_steps(servable, request, timeout, batch))

    def multi_inference_on(self, servable, request, *, timeout=None, batch=True):
        return self._drive(self._multi_inference_steps(servable, request, timeout, batch))

    # Each API as a generator of "steps": it yields a `_Run` whenever it needs the
    # model run, and is sent back the outputs (or has the run's error thrown into
    # it). `_drive` runs the steps on this thread, `_drive_async` on an event loop,
    # so the checks and answers are written once for both.

    def _predict_steps(self, servable, request, timeout, batch=True):
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(signature_name)
        if signature is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        if self.enable_signature_method_name_check and signature.method_name not in (
            PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD
        ):
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}",
            )
        inputs = self._predict_inputs(servable, signature_name, signature, request)
        output_keys = (self._output_keys(signature, request.output_filter) if request.output_filter
                       else self._plan(servable, signature_name, signature)[2])
        outputs = yield _Run(servable, signature_name, inputs, output_keys, timeout, batch, "Predict")
        response = predict_pb2.PredictResponse()
        _set_model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
        response_outputs = response.outputs
        for alias in output_keys:
            tensors.fill(response_outputs[alias], outputs[alias])
        return response

    def _classify_steps(self, servable, request, timeout, batch=True):
        signature_name = request.model_spec.signature_name or self._default_signature(servable, CLASSIFY_METHOD)
        signature = self._signature_for(servable, signature_name, CLASSIFY_METHOD, "classification")
        input_alias, output_keys = self._classification_parts(signature)
        examples = _examples(request.input)
        outputs = yield _Run(
            servable, signature_name, {input_alias: examples}, output_keys, timeout, batch, "Classify"
        )
        response = classification_pb2.ClassificationResponse()
        _set_model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
        self._classification_result(len(examples), outputs, response.result)
        return response

    def _regress_steps(self, servable, request, timeout, batch=True):
        signature_name = request.model_spec.signature_name or self._default_signature(servable, REGRESS_METHOD)
        signature = self._signature_for(servable, signature_name, REGRESS_METHOD, "regression")
        input_alias, output_keys = self._regression_parts(signature)
        examples = _examples(request.input)
        outputs = yield _Run(
            servable, signature_name, {input_alias: examples}, output_keys, timeout, batch, "Regress"
        )
        response = regression_pb2.RegressionResponse()
        _set_model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
        self._regression_result(len(examples), outputs, response.result)
        return response

    def _multi_inference_steps_for(self, request, timeout):
        if not request.tasks:
            raise _invalid("Expected at least one task")
        with self.manager.handle(request.tasks[0].model_spec) as servable:
            return (yield from self._multi_inference_steps(servable, request, timeout))

    def _multi_inference_steps(self, servable, request, timeout, batch=True):
        model_name = ""
        signature_names = []
        plans = []
        for task in request.tasks:
            if not task.model_spec.name:
                raise _invalid("Found ModelSpec with an empty model name.")
            if not model_name:
                model_name = task.model_spec.name
            elif task.model_spec.name != model_name:
                raise _invalid("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if signature_name in signature_names:
                raise _invalid(f"Duplicate evaluation of signature: {signature_name}")
            signature_names.append(signature_name)
            signature = servable.signature_defs.get(signature_name)
            if signature is None:
                raise _invalid(f"Requested signature not found in model graph: {signature_name}")
            if task.method_name == CLASSIFY_METHOD:
                self._check_method(signature, CLASSIFY_METHOD, "classification")
                input_alias, output_keys = self._classification_parts(signature)
            elif task.method_name == REGRESS_METHOD:
                self._check_method(signature, REGRESS_METHOD, "regression")
                input_alias, output_keys = self._regression_parts(signature)
            else:
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
                )
            # The same serialized examples go to every task's input tensor, whatever its
            # name (tf.saved_model.save gives each signature a placeholder of its own).
            plans.append((task, signature_name, input_alias, output_keys))
        examples = _examples(request.input)
        response = inference_pb2.MultiInferenceResponse()
        for task, signature_name, input_alias, output_keys in plans:
            outputs = yield _Run(
                servable, signature_name, {input_alias: examples}, output_keys, timeout, batch,
                "MultiInference",
            )
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                self._classification_result(len(examples), outputs, result.classification_result)
            else:
                self._regression_result(len(examples), outputs, result.regression_result)
            _set_model_spec(result.model_spec, task.model_spec.name, signature_name, servable.version)
        return response

    def warmup(self, servable, iterations=1):
        """Replay assets.extra/tf_serving_warmup_requests against a newly loaded version.

        Each record (a PredictionLog) is run `iterations` times; a record that fails
        fails the load, as in TF Serving.
        """
        path = os.path.join(servable.path, WARMUP_FILE)
        if not os.path.exists(path):
            log.info("No warmup data file found at %s", path)
            return
        start = time.perf_counter()
        count = 0
        try:
            records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
        except tf.errors.DataLossError as e:
            raise ServingError(
                grpc.StatusCode.DATA_LOSS,
                f"{e.message}. Please verify your warmup data is in TFRecord format.",
            ) from e
        for record in records:
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise _invalid(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
            try:
                entry = prediction_log_pb2.PredictionLog.FromString(record)
            except Exception as e:
                raise _invalid(f"Failed to parse warmup record: {record!r} from {path}") from e
            for _ in range(max(1, iterations)):
                self._replay(servable, entry)
        log.info(
            "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
            "Elapsed time (microseconds): %d.", path, count, (time.perf_counter() - start) * 1e6,
        )

    def _replay(self, servable, entry):
        kind = entry.WhichOneof("log_type")
        if kind == "predict_log":
            self.predict_on(servable, entry.predict_log.request, batch=False)
        elif kind == "classify_log":
            self.classify_on(servable, entry.classify_log.request, batch=False)
        elif kind == "regress_log":
            self.regress_on(servable, entry.regress_log.request, batch=False)
        elif kind == "multi_inference_log":
            self.multi_inference_on(servable, entry.multi_inference_log.request, batch=False)
        else:
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")

    # Internals.

    @contextlib.contextmanager
    def _observed(self, api, model_name, entrypoint):
        """Record the request in the metrics, with the status it ends with; an
        unexpected failure reaches the client as a ServingError."""
        start = time.perf_counter()
        status = "OK"
        try:
            yield
        except ServingError as e:
            status = e.code.name
            raise
        except asyncio.CancelledError:  # the client went away while its batch ran
            status = grpc.StatusCode.CANCELLED.name
            raise
        except Exception as e:
            error = as_serving_error(e)
            status = error.code.name
            log.exception("%s failed", api)
            raise error from e
        finally:
            self.metrics.record_request(
                model_name, api, entrypoint, status, (time.perf_counter() - start) * 1e6
            )

    def _observe(self, api, model_name, entrypoint, call):
        """Run `call` (a function, or the steps of an API) and record the request's metrics."""
        with self._observed(api, model_name, entrypoint):
            return self._drive(call) if inspect.isgenerator(call) else call()

    async def _observe_async(self, api, model_name, entrypoint, steps):
        with self._observed(api, model_name, entrypoint):
            return await self._drive_async(steps)

    def _with_servable(self, request, steps, timeout):
        """The steps of an API on the servable `request.model_spec` names, held throughout."""
        self._require_model_spec(request)
        with self.manager.handle(request.model_spec) as servable:
            return (yield from steps(servable, request, timeout))

    def _drive(self, steps):
        """Run an API's steps here: each model run blocks this thread."""
        send, throw = steps.send, steps.throw
        try:
            run = send(None)
            while True:
                try:
                    outputs = self._run(*run)
                except BaseException as e:  # the steps' `with` blocks see it, then it goes on
                    run = throw(e)
                else:
                    run = send(outputs)
        except StopIteration as done:
            return done.value

    async def _drive_async(self, steps):
        """Run an API's steps on the running event loop, awaiting each model run."""
        send, throw = steps.send, steps.throw
        try:
            run = send(None)
            while True:
                try:
                    outputs = await self._run_async(*run)
                except BaseException as e:
                    run = throw(e)
                else:
                    run = send(outputs)
        except StopIteration as done:
            return done.value

    @staticmethod
    def _require_model_spec(request):
        if not request.HasField("model_spec"):
            raise _invalid("Missing ModelSpec")

    @contextlib.contextmanager
    def _model_run(self, servable, api):
        """Time a model run into the runtime metric; its failures become ServingErrors."""
        start = time.perf_counter()
        try:
            yield
        except ServingError:
            raise
        except Exception as e:
            raise as_serving_error(e) from e
        self.metrics.record_runtime(servable.name, api, servable.runtime, (time.perf_counter() - start) * 1e6)

    def _run(self, servable, signature_name, inputs, output_keys, timeout, batch, api):
        with self._model_run(servable, api):
            if batch and self.batcher is not None:
                return self.batcher.run(servable, signature_name, inputs, output_keys, timeout)
            if timeout is None:
                return servable.run(signature_name, inputs, output_keys)
            # The deadline is the caller's (a gRPC deadline, --rest_api_timeout_in_ms):
            # past it the request is answered DEADLINE_EXCEEDED, as TF Serving's session
            # run with RunOptions.timeout_in_ms is, while the run finishes on its thread.
            future = self._runner().submit(servable.run, signature_name, inputs, output_keys)
            try:
                return future.result(timeout=max(timeout, 0.0))
            except futures.TimeoutError:
                raise _deadline_exceeded(timeout) from None

    async def _run_async(self, servable, signature_name, inputs, output_keys, timeout, batch, api):
        with self._model_run(servable, api):
            if batch and self.batcher is not None:
                return await self.batcher.run_async(servable, signature_name, inputs, output_keys, timeout)
            run = asyncio.get_running_loop().run_in_executor(
                None, servable.run, signature_name, inputs, output_keys
            )
            if timeout is None:
                return await run
            try:
                return await asyncio.wait_for(asyncio.shield(run), max(timeout, 0.0))
            except asyncio.TimeoutError:
                raise _deadline_exceeded(timeout) from None

    def close(self):
        """Lets the model runs in flight finish on their threads, then ends those threads."""
        if self._deadline_pool is not None:
            self._deadline_pool.shutdown(wait=False)
            self._deadline_pool = None

    def _runner(self) -> futures.ThreadPoolExecutor:
        """Threads for model runs that have a deadline (made on first use)."""
        if self._deadline_pool is None:
            self._deadline_pool = futures.ThreadPoolExecutor(
                max_workers=self.max_concurrent_runs, thread_name_prefix="model-run")
        return self._deadline_pool

    @staticmethod
    def _plan(servable, signature_name, signature):
        """What every Predict on a signature looks up, made once and kept on the servable:
        (input aliases sorted, [(alias, dtype, dims or None)], output aliases sorted).
        """
        plan = servable.plans.get(signature_name)
        if plan is None:
            expected = sorted(signature.inputs)
            specs = []
            for alias in expected:
                info = signature.inputs[alias]
                shape = info.tensor_shape
                dims = None
                if info.HasField("tensor_shape") and not shape.unknown_rank:
                    dims = tuple(d.size for d in shape.dim)
                specs.append((alias, info.dtype, dims))
            plan = servable.plans[signature_name] = (expected, specs, tuple(sorted(signature.outputs)))
        return plan

    def _predict_inputs(self, servable, signature_name, signature, request):
        # The common case, every input sent and nothing else, checked as below
        # but from the signature's plan.
        expected, specs, _ = self._plan(servable, signature_name, signature)
        given = request.inputs
        if len(given) != len(expected) or not all(alias in given for alias in expected):
            return self._predict_inputs_in_full(signature, request)
        # Names and dtypes are checked, not shapes: TF Serving feeds each tensor to the
        # session by name and lets the graph decide (half_plus_two takes x of shape [3]
        # into a [-1,1] signature), as the servables here do too.
        inputs = {}
        for index, (alias, dtype, _dims) in enumerate(specs):
            proto = given[alias]
            array = tensors.to_ndarray(proto, alias, max_bytes=self.max_request_tensor_bytes)
            if dtype != types_pb2.DT_INVALID and proto.dtype != dtype:
                raise self._dtype_error(index, dtype, proto.dtype)
            inputs[alias] = array
        return inputs

    @staticmethod
    def _dtype_error(index, expected, got):
        # The text of TF's session feed check, which TF Serving passes on.
        return _invalid(
            f"Expects arg[{index}] to be {tensors.dtype_string(expected)} but "
            f"{tensors.dtype_string(got)} is provided"
        )

    def _predict_inputs_in_full(self, signature, request):
        # predict_util.cc: VerifyRequestInputsSize, then saved_model::GetInputValues.
        sent = sorted(request.inputs)
        expected = sorted(signature.inputs)
        defaults = signature.defaults
        if len(sent) > len(expected) or (len(sent) < len(expected) and not defaults):
            extra = sorted(set(sent) - set(expected))
            missing = sorted(set(expected) - set(sent))
            raise _invalid(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
                f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
            )
        inputs = {}
        for index, alias in enumerate(expected):
            info = signature.inputs[alias]
            if alias in request.inputs:
                proto = request.inputs[alias]
            elif alias in defaults:
                proto = defaults[alias]
            else:
                raise _invalid(
                    f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                    f"and no default value provided. Inputs expected to be in the request "
                    f"{{{','.join(sent)}}}, or default input alias set: {','.join(sorted(defaults))}"
                )
            array = tensors.to_ndarray(proto, alias, max_bytes=self.max_request_tensor_bytes)
            if info.dtype != types_pb2.DT_INVALID and proto.dtype != info.dtype:
                raise self._dtype_error(index, info.dtype, proto.dtype)
            inputs[alias] = array
        unused = sorted(set(sent) - set(expected))
        if unused:
            raise _invalid(
                f"Inputs contains invalid name. Used request inputs: "
                f"{','.join(a for a in sent if a in inputs)}, request input: {','.join(sent)}"
            )
        return inputs

    @staticmethod
    def _output_keys(signature, output_filter):
        keys = []
        for alias in output_filter:
            if alias not in signature.outputs:
                raise _invalid(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be "
                    f"in the set {{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in keys:
                raise _invalid(f"duplicate output tensor alias: {alias}")
            keys.append(alias)
        return keys or sorted(signature.outputs)

    def _check_method(self, signature, method, kind):
        if self.enable_signature_method_name_check and signature.method_name != method:
            raise _invalid(
                f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
            )

    @staticmethod
    def _default_signature(servable, method):
        """The signature a Classify or Regress without a signature name runs.

        TF Serving runs serving_default, and refuses it when it is not a `method`
        signature. A model whose serving_default predicts and that has exactly one
        `method` signature (the zoo's exports: serving_default and "classify") runs
        that one instead, where TF Serving would answer "Expected classification
        signature method_name to be tensorflow/serving/classify".
        """
        default = servable.signature_defs.get(DEFAULT_SIGNATURE)
        if default is not None and default.method_name == method:
            return DEFAULT_SIGNATURE
        named = [key for key, signature in servable.signature_defs.items() if signature.method_name == method]
        return named[0] if len(named) == 1 else DEFAULT_SIGNATURE

    def _signature_for(self, servable, signature_name, method, kind):
        signature = servable.signature_defs.get(signature_name)
        if signature is None:
            raise _invalid(f"No signature was found with the name: {signature_name}")
        self._check_method(signature, method, kind)
        return signature

    @staticmethod
    def _classification_parts(signature):
        if len(signature.inputs) != 1:
            raise _invalid("Expected one input Tensor.")
        if len(signature.outputs) not in (1, 2):
            raise _invalid(f"Expected one or two output Tensors, found {len(signature.outputs)}")
        if CLASSIFY_INPUTS not in signature.inputs:
            raise _invalid(f"No classification inputs found in SignatureDef: {_debug_string(signature)}")
        keys = [k for k in (CLASSIFY_CLASSES, CLASSIFY_SCORES) if k in signature.outputs]
        if not keys:
            raise _invalid(
                f'Expected classification signature outputs to contain at least one of "classes" '
                f'or "scores". Signature was: {_debug_string(signature)}'
            )
        return CLASSIFY_INPUTS, keys

    @staticmethod
    def _regression_parts(signature):
        if len(signature.inputs) != 1:
            raise _invalid("Expected one input Tensor.")
        if len(signature.outputs) != 1:
            raise _invalid("Expected one output Tensor.")
        if REGRESS_INPUTS not in signature.inputs:
            raise _invalid(f"No regression inputs found in SignatureDef: {_debug_string(signature)}")
        if REGRESS_OUTPUTS not in signature.outputs:
            raise _invalid(f"No regression outputs found in SignatureDef: {_debug_string(signature)}")
        return REGRESS_INPUTS, [REGRESS_OUTPUTS]

    @staticmethod
    def _classification_result(num_examples, outputs, result):
        classes = outputs.get(CLASSIFY_CLASSES)
        scores = outputs.get(CLASSIFY_SCORES)
        for name, value, dtype in ((CLASSIFY_CLASSES, classes, "DT_STRING"), (CLASSIFY_SCORES, scores, "DT_FLOAT")):
            if value is None:
                continue
            if value.ndim != 2:
                raise _invalid(
                    f"Expected Tensor shape: [batch_size num_classes] but got "
                    f"{tensors.shape_string(value.shape)}"
                )
            got = types_pb2.DataType.Name(tensors.datatype_of(value))
            if got != dtype:
                raise _invalid(f"Expected {name} Tensor of {dtype}. Got: {got}")
            if value.shape[0] != num_examples:
                raise _invalid(
                    f"Expected {name} output batch size of {num_examples}. Got: {value.shape[0]}"
                )
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise _invalid(
                f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} "
                f"vs. {scores.shape[1]}"
            )
        num_classes = (classes if classes is not None else scores).shape[1]
        for i in range(num_examples):
            classifications = result.classifications.add()
            for c in range(num_classes):
                entry = classifications.classes.add()
                if classes is not None:
                    label = classes[i, c]
                    entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
                if scores is not None:
                    entry.score = float(scores[i, c])

    @staticmethod
    def _regression_result(num_examples, outputs, result):
        value = outputs[REGRESS_OUTPUTS]
        if not (value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)):
            raise _invalid(
                f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                f"{tensors.shape_string(value.shape)}"
            )
        if value.shape[0] != num_examples:
            raise _invalid(
                f"Input batch size did not match output batch size: {num_examples} vs. {value.shape[0]}"
            )
        if value.dtype != np.float32:
            got = types_pb2.DataType.Name(tensors.datatype_of(value))
            raise _invalid(f"Expected output Tensor of DT_FLOAT.  Got: {got}")
        for v in value.reshape(-1):
            result.regressions.add(value=float(v))
