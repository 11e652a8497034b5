"""TF Serving's gRPC services over `ServerCore`, plus the standard health service.

`tensorflow.serving.PredictionService` (Predict, Classify, Regress,
MultiInference, GetModelMetadata) and `tensorflow.serving.ModelService`
(GetModelStatus, HandleReloadConfigRequest), one row each in `RPCS` naming the
`ServerCore` method that answers it (message types from tensorflow-serving-api's
service descriptors), and `grpc.health.v1.Health` from grpcio-health-checking. Message
sizes are unlimited (TF Serving sets INT32_MAX); `--grpc_channel_arguments` are
passed through, integers as integers. The ports are plain text unless given
credentials: `server_credentials` makes them from an `SSLConfig`
(--ssl_config_file: TLS, with client certificates required and checked against
its custom_ca when client_verify is true) or for Google ALTS
(--use_alts_credentials), as TF Serving's BuildServerCredentials does; they apply
to the TCP port and the Unix socket alike.

Two servers behind one interface, the same services and answers on both:

- without batching, grpcio's thread-pool server: each request runs the model on
  its own worker thread, the cheapest way in Python to run one model call per
  request;
- with batching, grpcio's asyncio server (`asynchronous=True`): Predict,
  Classify, Regress and MultiInference are coroutines that queue their rows and
  await the batch (`ServerCore.predict_async`), so a request waiting for its batch
  holds no thread, and a whole batch's answers reach the event loop with one
  wake-up. On a small machine the thread hand-offs are most of what a served
  request costs: per request this needs about half the context switches of
  worker threads blocked on a batch. The other methods (metadata, status,
  reload, health) run as they are on a thread pool.

Example:
    >>> server, port, health = build_grpc_server(core, host="localhost", port=0)
    >>> server.start()
"""

import asyncio
import logging
import threading
from concurrent import futures
from typing import Callable, NamedTuple

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from serving.core import ServerCore
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


async def _call_async(method, request, context):
    """`_call` for a coroutine method on the asyncio server."""
    try:
        remaining = context.time_remaining()
        timeout = remaining if remaining is not None and remaining < _NO_DEADLINE else None
        return await method(request, timeout=timeout, entrypoint="GRPC")
    except ServingError as e:
        error = e
    except asyncio.CancelledError:
        raise
    except Exception as e:  # every failure reaches the client as a status
        error = as_serving_error(e)
        log.exception("gRPC handler failed")
    await context.abort(error.code, error.message)


class Rpc(NamedTuple):
    """One RPC: where it is served and which `ServerCore` method answers it.

    `answer` takes (request, *, entrypoint) — and `timeout` when `timed`, for the
    RPCs that run a model under the caller's deadline; `answer_async`, where given,
    is its coroutine twin, which the asyncio server (batching) awaits.
    """

    service: str
    method: str
    answer: Callable
    timed: bool = False
    answer_async: Callable | None = None


# Every RPC served: a new one is a row here plus its ServerCore method.
RPCS = (
    Rpc(PREDICTION_SERVICE, "Predict", ServerCore.predict, True, ServerCore.predict_async),
    Rpc(PREDICTION_SERVICE, "Classify", ServerCore.classify, True, ServerCore.classify_async),
    Rpc(PREDICTION_SERVICE, "Regress", ServerCore.regress, True, ServerCore.regress_async),
    Rpc(PREDICTION_SERVICE, "MultiInference", ServerCore.multi_inference, True, ServerCore.multi_inference_async),
    Rpc(PREDICTION_SERVICE, "GetModelMetadata", ServerCore.get_model_metadata),
    Rpc(MODEL_SERVICE, "GetModelStatus", ServerCore.get_model_status),
    Rpc(MODEL_SERVICE, "HandleReloadConfigRequest", ServerCore.handle_reload_config),
)

_SERVICE_FILES = {PREDICTION_SERVICE: prediction_service_pb2, MODEL_SERVICE: model_service_pb2}


def _message_classes(rpc):
    # The request and response types, from tensorflow-serving-api's service descriptors.
    service = _SERVICE_FILES[rpc.service].DESCRIPTOR.services_by_name[rpc.service.rsplit(".", 1)[1]]
    method = service.methods_by_name[rpc.method]
    return (message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type))


def _handler(rpc, core, asynchronous):
    request_class, response_class = _message_classes(rpc)
    if asynchronous and rpc.answer_async is not None:
        answer_async = rpc.answer_async.__get__(core)

        async def behaviour(request, context):
            return await _call_async(answer_async, request, context)
    else:
        # On the asyncio server a plain function runs on its thread pool.
        answer = rpc.answer.__get__(core)

        def behaviour(request, context):
            return _call(answer, request, context, timed=rpc.timed)

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString)


def _add_services(server, core, asynchronous):
    methods = {}
    for rpc in RPCS:
        methods.setdefault(rpc.service, {})[rpc.method] = _handler(rpc, core, asynchronous)
    server.add_generic_rpc_handlers(tuple(
        grpc.method_handlers_generic_handler(service, handlers) for service, handlers in methods.items()))


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


class AsyncioServer:
    """grpcio's asyncio server on an event loop thread of its own, driven like `grpc.Server`.

    `add_insecure_port`, `add_secure_port`, `start()` and `stop(grace)` (which returns a
    `threading.Event` set once the server has stopped) behave as on the
    thread-pool server, so `ModelServer` starts, drains and stops both alike.
    """

    def __init__(self, *, max_threads, options):
        self._loop = asyncio.new_event_loop()
        self._pool = futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc")
        self._loop.set_default_executor(self._pool)
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc_asyncio", daemon=True)
        self._thread.start()
        self._stopped = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._holds: list[threading.Event] = []

        async def create():
            return grpc.aio.server(migration_thread_pool=self._pool, options=options)

        self._server = self._run(create())

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on, for other asyncio servers to share (REST)."""
        return self._loop

    def hold(self) -> threading.Event:
        """Keeps the loop running after this server stops, until the returned event is set:
        a server sharing the loop (REST) sets it once it has stopped."""
        held = threading.Event()
        self._holds.append(held)
        return held

    def _in_loop(self, function, *args):
        async def call():
            return function(*args)

        return self._run(call())

    def health_servicer(self):
        """grpcio-health-checking's asyncio servicer, with `set` and
        `enter_graceful_shutdown` callable from any thread, as on the thread one.

        The thread servicer's Watch would block a pool thread that the asyncio
        server never releases (the process then hangs at exit); the asyncio one
        is a coroutine that a cancelled call or a stopped server ends.
        """
        loop_run = self._run

        class LoopHealthServicer(health.aio.HealthServicer):
            def set(self, service, status):
                loop_run(super().set(service, status))

            def enter_graceful_shutdown(self):
                loop_run(super().enter_graceful_shutdown())

        return LoopHealthServicer()

    def add_generic_rpc_handlers(self, handlers):
        self._in_loop(self._server.add_generic_rpc_handlers, handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        self._in_loop(self._server.add_registered_method_handlers, service_name, method_handlers)

    def add_insecure_port(self, address):
        return self._in_loop(self._server.add_insecure_port, address)

    def add_secure_port(self, address, credentials):
        return self._in_loop(self._server.add_secure_port, address, credentials)

    def start(self):
        self._run(self._server.start())

    def stop(self, grace):
        """Refuse new RPCs, give those in flight `grace` seconds (None: none), then stop."""
        with self._lock:
            if self._stopped.is_set():
                return self._stopped
            first = not self._stopping
            self._stopping = True
        try:
            stopping = asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop)
        except RuntimeError:  # the loop closed under us: the first stop has finished
            self._stopped.wait()
            return self._stopped
        if first:
            def finish(_):
                # The loop stays up until the server has stopped: in-flight requests
                # still need it to receive their batches; and so does a REST server on it.
                for held in self._holds:
                    held.wait()
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join()
                self._loop.close()
                self._pool.shutdown(wait=False)
                self._stopped.set()

            stopping.add_done_callback(lambda f: threading.Thread(target=finish, args=(f,), daemon=True).start())
        return self._stopped


def server_credentials(ssl_config=None, use_alts=False):
    """gRPC server credentials for an `SSLConfig` or ALTS; None for plain text.

    Args:
        ssl_config: a checked `tensorflow.serving.SSLConfig` (serving.config
            read_ssl_config / check_ssl_config), or None.
        use_alts: Google ALTS credentials (--use_alts_credentials).

    Raises:
        ServingError: INVALID_ARGUMENT when both are asked for (TF Serving takes
            one or the other), or when gRPC cannot make ALTS credentials here.
    """
    if ssl_config is not None and use_alts:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "Only one of --use_alts_credentials and --ssl_config_file can be set.")
    if use_alts:
        return grpc.alts_server_credentials()
    if ssl_config is None:
        return None
    return grpc.ssl_server_credentials(
        [(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
        root_certificates=ssl_config.custom_ca.encode() if ssl_config.custom_ca else None,
        require_client_auth=ssl_config.client_verify,
    )


def _add_port(server, address, credentials):
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio raises where it used to return 0
        return 0


def build_grpc_server(core, *, host="localhost", port=0, socket_path="", channel_arguments="",
                      max_threads=32, asynchronous=False, credentials=None, health_service=True,
                      alts=False, reuse_port=False):
    """A gRPC server with TF Serving's services on `core`, bound but not started.

    Args:
        core: the `ServerCore`.
        host: the address to bind; `port` 0 picks a free port.
        port: the TCP port, or None for no TCP listener (socket only).
        socket_path: also listen on this Unix socket if non-empty.
        channel_arguments: `--grpc_channel_arguments` text.
        max_threads: the worker threads (concurrent requests being handled; on the
            asyncio server, the pool for the methods that do not await).
        asynchronous: serve on the asyncio server (for batching; see the module
            docstring) instead of the thread-pool server.
        credentials: `server_credentials(...)` for the ports, or None for plain text.
        health_service: register grpc.health.v1.Health (the returned servicer
            exists, and is driven, either way).
        alts: the credentials are ALTS (for the error when they cannot bind).
        reuse_port: bind the TCP port with SO_REUSEPORT, shared with the other
            worker processes of the same server.

    Returns:
        (server, bound_port, health_servicer).
    """
    options = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        # Off, so that a port another server holds fails the start; on for the
        # workers of one server, which share it (serving.workers).
        ("grpc.so_reuseport", int(reuse_port)),
    ]
    extra = parse_channel_arguments(channel_arguments)
    overridden = {key for key, _ in extra}
    options = [o for o in options if o[0] not in overridden] + extra
    if asynchronous:
        server = AsyncioServer(max_threads=max_threads, options=options)
    else:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
            options=options,
        )
    _add_services(server, core, asynchronous)
    if asynchronous:
        health_servicer = server.health_servicer()
    else:
        health_servicer = health.HealthServicer()
    if health_service:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    why = ""
    if alts:
        why = " with ALTS credentials (gRPC makes them only on Google Cloud)"
    bound = None
    try:
        if port is not None:
            address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
            bound = _add_port(server, address, credentials)
            if not bound:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, f"Failed to bind gRPC server to {address}{why}")
        if socket_path:
            if not _add_port(server, f"unix:{socket_path}", credentials):
                raise ServingError(grpc.StatusCode.UNAVAILABLE, f"Failed to listen on unix:{socket_path}{why}")
    except BaseException:
        server.stop(None)  # the asyncio server's loop thread and pool end with it
        raise
    return server, bound, health_servicer


def set_serving(health_servicer, serving):
    """Mark the server (and its two services) SERVING or NOT_SERVING."""
    status = (
        health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", PREDICTION_SERVICE, MODEL_SERVICE):
        health_servicer.set(service, status)
