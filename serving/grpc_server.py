"""TF Serving's gRPC services over `ServerCore`, plus the standard health service.

`tensorflow.serving.PredictionService` (Predict, Classify, Regress,
MultiInference, GetModelMetadata) and `tensorflow.serving.ModelService`
(GetModelStatus, HandleReloadConfigRequest) from tensorflow-serving-api's
generated stubs, and `grpc.health.v1.Health` from grpcio-health-checking. Message
sizes are unlimited (TF Serving sets INT32_MAX); `--grpc_channel_arguments` are
passed through, integers as integers.

Example:
    >>> server, port, health = build_grpc_server(core, host="localhost", port=0)
    >>> server.start()
"""

import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.errors import ServingError
from serving.servables import as_serving_error

log = logging.getLogger(__name__)

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
_MAX_MESSAGE = 2**31 - 1
_NO_DEADLINE = 10**8  # seconds; a longer time_remaining() means no deadline was set


def _call(method, request, context, timed=True):
    """Call `method(request, ...)`, turning a ServingError into the RPC's status."""
    try:
        if timed:
            # No deadline reads as a practically infinite time_remaining().
            remaining = context.time_remaining()
            timeout = remaining if remaining is not None and remaining < _NO_DEADLINE else None
            return method(request, timeout=timeout, entrypoint="GRPC")
        return method(request, entrypoint="GRPC")
    except ServingError as e:
        context.abort(e.code, e.message)
    except Exception as e:  # every failure reaches the client as a status
        error = as_serving_error(e)
        log.exception("gRPC handler failed")
        context.abort(error.code, error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService on a ServerCore."""

    def __init__(self, core):
        self.core = core

    def Predict(self, request, context):  # noqa: N802 - gRPC method names
        return _call(self.core.predict, request, context)

    def Classify(self, request, context):  # noqa: N802
        return _call(self.core.classify, request, context)

    def Regress(self, request, context):  # noqa: N802
        return _call(self.core.regress, request, context)

    def MultiInference(self, request, context):  # noqa: N802
        return _call(self.core.multi_inference, request, context)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _call(self.core.get_model_metadata, request, context, timed=False)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService on a ServerCore."""

    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):  # noqa: N802
        return _call(self.core.get_model_status, request, context, timed=False)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        return _call(self.core.handle_reload_config, request, context, timed=False)


def parse_channel_arguments(text):
    """`--grpc_channel_arguments` ("k=v,k2=v2") as gRPC options, integers as integers."""
    options = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"grpc_channel_arguments entry {item!r} is not key=value")
        try:
            options.append((key, int(value)))
        except ValueError:
            options.append((key, value))
    return options


def build_grpc_server(core, *, host="localhost", port=0, socket_path="", channel_arguments="",
                      max_threads=32):
    """A gRPC server with TF Serving's services on `core`, bound but not started.

    Args:
        core: the `ServerCore`.
        host: the address to bind; `port` 0 picks a free port.
        port: the TCP port, or None for no TCP listener (socket only).
        socket_path: also listen on this Unix socket if non-empty.
        channel_arguments: `--grpc_channel_arguments` text.
        max_threads: the worker threads (concurrent requests being handled).

    Returns:
        (server, bound_port, health_servicer).
    """
    options = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        ("grpc.so_reuseport", 0),
    ]
    extra = parse_channel_arguments(channel_arguments)
    overridden = {key for key, _ in extra}
    options = [o for o in options if o[0] not in overridden] + extra
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
        options=options,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = None
    if port is not None:
        address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        bound = server.add_insecure_port(address)
        if not bound:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"Failed to bind gRPC server to {address}")
    if socket_path:
        if not server.add_insecure_port(f"unix:{socket_path}"):
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"Failed to listen on unix:{socket_path}")
    return server, bound, health_servicer


def set_serving(health_servicer, serving):
    """Mark the server (and its two services) SERVING or NOT_SERVING."""
    status = (
        health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", PREDICTION_SERVICE, MODEL_SERVICE):
        health_servicer.set(service, status)
